"""Exporter.stop(): in-flight polls are cancelled and every target is closed."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from exporter.config import Config, load_config
from exporter.core.exposition import Rendered
from exporter.engine import daemon as daemon_mod
from exporter.engine.daemon import Exporter
from exporter.sources.base import Target
from exporter.upstream.api import Clients


class Hanging(Target):
    """A target whose poll never ends by itself, like a request to a stuck vendor."""

    source = "hanging"

    def __init__(self, tid: str) -> None:
        super().__init__(tid, interval=60, timeout=30, settings=())
        self.started = asyncio.Event()
        self.cancelled = False
        self.closed = False

    async def poll(self, now: float) -> Rendered:
        self.started.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            self.cancelled = True
            raise
        raise AssertionError("unreachable")

    async def close(self) -> None:
        self.closed = True


def test_stop_cancels_polls_and_closes_targets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[Hanging] = []

    def build(cfg: Config, clients: Clients) -> list[Target]:
        made.extend(Hanging(f"hanging/{i}") for i in range(3))
        return list(made)

    monkeypatch.setattr(daemon_mod, "build_targets", build)
    path = tmp_path / "c.yaml"
    path.write_text("global:\n  start_spread: 10ms\n")

    async def run() -> float:
        exporter = Exporter(path)
        await exporter.start(load_config(path))
        await asyncio.wait_for(asyncio.gather(*(t.started.wait() for t in made)), timeout=15)
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        await exporter.stop()
        return loop.time() - t0

    elapsed = asyncio.run(run())
    state = [(t.id, t.cancelled, t.closed) for t in made]
    assert len(made) == 3
    assert all(t.cancelled for t in made), state
    assert all(t.closed for t in made), state
    assert elapsed < 2.0, elapsed
