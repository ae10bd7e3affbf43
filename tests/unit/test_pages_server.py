"""What the pages read of the running exporter: its start, config file and reload state,
and the /targets query answered over HTTP (filter, refresh, bad parameters)."""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path

import httpx
import pytest
from aiohttp import web

from exporter.config import load_config
from exporter.core.errors import UpstreamError
from exporter.core.exposition import Rendered, render
from exporter.engine.daemon import Exporter
from exporter.engine.reloadstate import MAX_PROBLEM_CHARS, MAX_PROBLEMS, shown_problems
from exporter.engine.targetset import STATIC
from exporter.sources.base import Target
from exporter.web.server import make_app

GOOD = "global: {}\n"


class Stub(Target):
    source = "stub"

    def __init__(self, name: str, fail: bool = False) -> None:
        super().__init__(f"stub/{name}", interval=3600.0, timeout=1.0, settings=(name,))
        self.fail = fail

    async def poll(self, now: float) -> Rendered:
        if self.fail:
            raise UpstreamError("server_error", "GET /x answered 500: <b>no</b>")
        return render([])


def test_reload_state_follows_loads_and_reloads(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(GOOD)

    async def go() -> None:
        before = time.time()
        exp = Exporter(cfg)
        assert exp.config_path == cfg and before <= exp.started_at <= time.time()
        assert not exp.reload_state().ok and exp.reload_state().attempted_at == 0
        await exp.start(load_config(cfg))
        try:
            started = exp.reload_state()
            assert started.ok and not started.reloaded and started.loaded_at >= exp.started_at
            cfg.write_text("global: [\n")
            ok, message = await exp.reload()
            failed = exp.reload_state()
            assert not ok and not failed.ok and failed.reloaded
            assert failed.message == message and "keeping the running config" in message
            assert failed.loaded_at == started.loaded_at and failed.attempted_at >= started.attempted_at
            cfg.write_text(GOOD)
            assert (await exp.reload())[0]
            again = exp.reload_state()
            assert again.ok and again.reloaded and again.message == ""
            assert again.loaded_at == again.attempted_at >= failed.attempted_at
        finally:
            await exp.stop()

    asyncio.run(go())


def test_pages_over_http(tmp_path: Path) -> None:
    cfg = tmp_path / "exporter <test>.yaml"
    cfg.write_text(GOOD)

    async def go() -> None:
        exp = Exporter(cfg)
        await exp.start(load_config(cfg))
        ok, broken, new = Stub("ok"), Stub("broken", fail=True), Stub("new")
        await exp.poller.sync(STATIC, [ok, broken, new])
        await exp.poller.poll_once(ok)
        await exp.poller.poll_once(broken)
        runner = web.AppRunner(make_app(exp, "/m", enable_lifecycle=True))
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        url = f"http://127.0.0.1:{runner.addresses[0][1]}"
        try:
            async with httpx.AsyncClient(base_url=url) as c:
                home = await c.get("/")
                every = await c.get("/targets?format=json")
                failing = await c.get("/targets?format=json&state=down")
                nobody = await c.get("/targets?format=json&account=nobody")
                page = await c.get("/targets?state=down&refresh=5")
                bad_state = await c.get("/targets?state=sideways")
                bad_refresh = await c.get("/targets?format=json&refresh=never")
        finally:
            await runner.cleanup()
            await exp.stop()

        assert home.status_code == 200 and home.headers["content-type"].startswith("text/html")
        assert "exporter &lt;test&gt;.yaml" in home.text and "<test>" not in home.text
        assert '<span class="n">1</span> up' in home.text and '<span class="n">1</span> down' in home.text
        assert '<span class="n">1</span> not polled yet' in home.text
        assert 'href="/m"' in home.text and "<code>POST /-/reload</code>" in home.text
        assert "loaded at start" in home.text
        assert [t["id"] for t in every.json()["targets"]] == ["stub/broken", "stub/new", "stub/ok"]
        assert [t["id"] for t in failing.json()["targets"]] == ["stub/broken"]
        assert nobody.json() == {"targets": []}
        assert failing.json()["targets"][0]["last_error_detail"] == "GET /x answered 500: <b>no</b>"
        assert '<meta http-equiv="refresh" content="5">' in page.text
        assert 'data-target="stub/broken"' in page.text and 'data-target="stub/ok"' not in page.text
        assert "&lt;b&gt;no&lt;/b&gt;" in page.text and 'href="/m"' in page.text
        assert (
            bad_state.status_code == 400
            and bad_state.text == "state must be one of all, down, up, unknown, finished\n"
        )
        assert bad_refresh.status_code == 400 and "refresh must be" in bad_refresh.text

    asyncio.run(go())


def test_a_failed_reload_lists_its_problems_on_the_landing_page_without_secrets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before: the page said "see the exporter's log". Now each problem is on the page,
    with its file, line and key, and the running config's API key quoted in one is redacted."""
    cfg = tmp_path / "c.yaml"
    key = "tok-" + "5f1c" * 10
    monkeypatch.setenv("PAGES_TEST_KEY", key)
    cfg.write_text("together:\n  api_key_env: PAGES_TEST_KEY\n")

    async def go() -> str:
        exp = Exporter(cfg)
        await exp.start(load_config(cfg))
        cfg.write_text(
            f"global:\n  poll_interval: sometimes\ntogether:\n  api_key_env: PAGES_TEST_KEY\n  base_url: {key}\n"
        )
        try:
            ok, message = await exp.reload()
            assert not ok and "listed on the landing page" in message
            runner = web.AppRunner(make_app(exp, "/metrics"))
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            try:
                url = f"http://127.0.0.1:{runner.addresses[0][1]}"
                async with httpx.AsyncClient(base_url=url) as c:
                    return (await c.get("/")).text
            finally:
                await runner.cleanup()
        finally:
            await exp.stop()

    page = asyncio.run(go())
    problems = re.findall(r"<li><code>(.*?)</code></li>", page)
    assert len(problems) == 2, page
    assert problems[0].startswith(f"{cfg}:2:") and "global.poll_interval" in problems[0]
    assert problems[1].startswith(f"{cfg}:5:") and "base_url" in problems[1]
    assert key not in page and "&lt;redacted&gt;" in problems[1]


def test_the_problems_a_page_shows_are_capped_in_number_and_length() -> None:
    many = [f"c.yaml:{n}: k: " + "x" * 2000 for n in range(1, MAX_PROBLEMS + 6)]
    shown = shown_problems(many)
    assert len(shown) == MAX_PROBLEMS and all(len(p) == MAX_PROBLEM_CHARS for p in shown)
    assert shown[0].startswith("c.yaml:1: k: xx") and shown[0].endswith("…")
