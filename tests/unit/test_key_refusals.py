"""A refused API key: one warning for the account, not one per target."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from exporter.core.errors import UpstreamError
from exporter.engine.daemon import Exporter
from exporter.engine.targetset import STATIC
from tests.unit.test_daemon import Fake, run


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


async def _all_fail(exp: Exporter, count: int, reason: str, caplog: pytest.LogCaptureFixture) -> list[Fake]:
    """``count`` targets of one account, each polled once and failing with ``reason``."""
    targets = [Fake(f"t{i}") for i in range(count)]
    await exp.poller.sync(STATIC, list(targets))
    with caplog.at_level(logging.DEBUG):
        for t in targets:
            t.fail = UpstreamError(reason, "GET /x failed")
            await exp.poller.poll_once(t)
    return targets


def test_a_refused_key_warns_once_for_the_account(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    async def body(exp: Exporter) -> None:
        targets = await _all_fail(exp, 5, "unauthorized", caplog)
        assert _warnings(caplog) == ["the vendor refuses the account's API key"]
        (record,) = [r for r in caplog.records if r.levelno >= logging.WARNING]
        assert record.__dict__["account"] == "default" and record.__dict__["targets"] == 5
        assert sum(r.getMessage() == "poll failed" for r in caplog.records) == 5  # each at debug
        # Once a target is answered, a new refusal warns again: the key changed since.
        caplog.clear()
        targets[0].fail = None
        with caplog.at_level(logging.DEBUG):
            await exp.poller.poll_once(targets[0])
            targets[0].fail = UpstreamError("unauthorized", "GET /x answered 401")
            await exp.poller.poll_once(targets[0])
            await exp.poller.poll_once(targets[1])
        assert _warnings(caplog) == ["the vendor refuses the account's API key"]

    run(body, tmp_path)


def test_other_failures_still_warn_per_target(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    async def body(exp: Exporter) -> None:
        await _all_fail(exp, 3, "server_error", caplog)
        assert _warnings(caplog) == ["poll failed"] * 3

    run(body, tmp_path)


class Queue(Fake):
    """A target of the Together account ``default``."""

    source = "together_queue"


def test_a_reload_with_another_key_warns_again_if_the_vendor_refuses_it_too(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config, key = tmp_path / "unused.yaml", tmp_path / "key"
    config.write_text("together:\n  api_key_file: key\n  base_url: http://127.0.0.1:9/v1\n")

    async def reload_with(exp: Exporter, value: str) -> None:
        key.write_text(value)
        assert (await exp.reload())[0]

    async def refused(exp: Exporter, targets: list[Queue]) -> list[str]:
        caplog.clear()
        with caplog.at_level(logging.DEBUG):
            for t in targets:
                t.fail = UpstreamError("unauthorized", "GET /x answered 401")
                await exp.poller.poll_once(t)
        return _warnings(caplog)

    async def body(exp: Exporter) -> None:
        await reload_with(exp, "k1")
        targets = [Queue("a"), Queue("b")]
        await exp.poller.sync("queues", list(targets))
        assert await refused(exp, targets) == ["the vendor refuses the account's API key"]
        await reload_with(exp, "k1")  # the same key: still known refused
        assert await refused(exp, targets) == []
        # A new client for the same key (another pool size): still known refused.
        config.write_text(
            "together:\n  api_key_file: key\n  base_url: http://127.0.0.1:9/v1\n  max_connections: 3\n"
        )
        await reload_with(exp, "k1")
        assert await refused(exp, targets) == []
        await reload_with(exp, "k2")  # another key, refused too: said again
        assert await refused(exp, targets) == ["the vendor refuses the account's API key"]

    run(body, tmp_path)
