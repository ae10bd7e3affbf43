"""/metrics served from the store's cached parts: plain, gzip and HEAD agree."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
from aiohttp import web

from exporter.config import load_config
from exporter.core.exposition import Family, Sample, render
from exporter.engine.daemon import Exporter
from exporter.web.server import make_app
from tests.helpers import parse

G = Family("test_gauge", "gauge", "A test gauge.")


def test_plain_gzip_and_head_agree(tmp_path: Path) -> None:
    async def go() -> None:
        cfg = tmp_path / "c.yaml"
        cfg.write_text("global: {}\n")
        exporter = Exporter(cfg)
        await exporter.start(load_config(cfg))
        for t in range(50):
            exporter.store.put(f"t{t}", render([Sample(G, (("target_id", str(t)),), float(t))]))
        runner = web.AppRunner(make_app(exporter))
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        url = f"http://127.0.0.1:{runner.addresses[0][1]}/metrics"
        try:
            async with httpx.AsyncClient() as c:
                identity = {"Accept-Encoding": "identity"}
                head = await c.head(url, headers=identity)
                plain = await c.get(url, headers=identity)  # same kept-alive connection
                zipped = await c.get(url, headers={"Accept-Encoding": "GZIP"})
                refused = await c.get(url, headers={"Accept-Encoding": "gzip;q=0, deflate"})
            assert head.status_code == 200 and head.content == b""
            assert "content-encoding" not in plain.headers
            assert int(plain.headers["content-length"]) == len(plain.content)
            assert int(head.headers["content-length"]) > 0
            s = parse(plain.text)
            assert s.value("test_gauge", target_id="49") == 49
            assert plain.text.count("# TYPE test_gauge gauge") == 1
            assert zipped.headers["content-encoding"] == "gzip"
            assert "content-encoding" not in refused.headers
            assert parse(refused.text).value("test_gauge", target_id="49") == 49
            z = parse(zipped.text)  # httpx decoded the single gzip member
            assert {k for k in z.samples if k[0] == "test_gauge"} == {
                k for k in s.samples if k[0] == "test_gauge"
            }
        finally:
            await runner.cleanup()
            await exporter.stop()

    asyncio.run(go())
