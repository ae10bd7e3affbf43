"""Shard assignment, pod-name ordinals, flags, and the daemon keeping only its share."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from exporter.config import load_config
from exporter.core.exposition import Family, Rendered, Sample, render
from exporter.core.sharding import Shard, ordinal_from_pod_name, resolve_shard, shard_of
from exporter.engine.daemon import Exporter
from exporter.engine.targetset import STATIC
from exporter.sources.base import Discovery, Target
from tests.helpers import REPO, parse, run_cli, scraped

IDS = [f"together_queue/org/model-{i}" for i in range(3000)]


def test_assignment_is_stable_and_even() -> None:
    # A digest, not Python's salted hash(): the same in every process.
    script = "from exporter.core.sharding import shard_of; print([shard_of(f'x/{i}', 5) for i in range(50)])"
    runs = {
        subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, check=True
        ).stdout
        for _ in range(2)
    }
    assert runs == {str([shard_of(f"x/{i}", 5) for i in range(50)]) + "\n"}
    counts = Counter(shard_of(t, 3) for t in IDS)
    assert set(counts) == {0, 1, 2}
    assert all(800 < n < 1200 for n in counts.values()), counts


def test_every_target_has_exactly_one_owner() -> None:
    shards = [Shard(i, 4) for i in range(4)]
    for t in IDS[:500]:
        assert sum(s.owns(t) for s in shards) == 1
    assert all(Shard().owns(t) for t in IDS[:10])


@pytest.mark.parametrize(
    ("name", "ordinal"),
    [("inference-exporter-0", 0), ("inference-exporter-3", 3), ("a-b-c-12", 12), (" x-7\n", 7)],
)
def test_ordinal_from_pod_name(name: str, ordinal: int) -> None:
    assert ordinal_from_pod_name(name) == ordinal


@pytest.mark.parametrize("name", ["inference-exporter", "exporter-x", "", "host3"])
def test_pod_name_without_ordinal_is_an_error(name: str) -> None:
    with pytest.raises(ValueError, match="does not end in -<ordinal>"):
        ordinal_from_pod_name(name)


def test_resolve_shard() -> None:
    assert resolve_shard(None, 1, False, {}, "h") == Shard(0, 1)
    assert resolve_shard(2, 3, False, {}, "h") == Shard(2, 3)
    assert resolve_shard(None, 3, True, {"POD_NAME": "ie-1"}, "other-2") == Shard(1, 3)
    assert resolve_shard(None, 3, True, {}, "ie-2") == Shard(2, 3)
    with pytest.raises(ValueError, match="out of range"):
        resolve_shard(None, 3, True, {"POD_NAME": "ie-3"}, "h")
    with pytest.raises(ValueError, match="not both"):
        resolve_shard(1, 3, True, {"POD_NAME": "ie-1"}, "h")
    with pytest.raises(ValueError, match="at least 1"):
        resolve_shard(None, 0, False, {}, "h")


def test_exporter_exposes_the_shard_count_budgets_divide_by(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    assert Exporter(cfg, Shard(1, 4)).total_shards == 4
    assert Exporter(cfg).total_shards == 1


def test_bad_shard_flags_exit_with_a_message(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("global: {}\n")
    res = run_cli("--config.file", str(cfg), "--shard", "3", "--total-shards", "3", timeout=30)
    assert res.returncode == 2
    assert "shard 3 is out of range for 3 total shards" in res.stderr


# --- the daemon keeps only its share, discovered targets included ---------------------

INFO = Family("fake_info", "gauge", "Test family.")


class Leaf(Target):
    source = "fake"

    def __init__(self, name: str) -> None:
        super().__init__(f"fake/{name}", interval=3600, timeout=1, settings=name)

    async def poll(self, now: float) -> Rendered:
        return render([Sample(INFO, (("name", self.id),), 1.0)])


class FakeDiscovery(Discovery):
    source = "fake_discovery"

    def __init__(self, names: list[str]) -> None:
        super().__init__("fake_discovery/all", interval=3600, timeout=1, settings="d")
        self.names = names

    async def discover(self, now: float) -> tuple[Rendered, list[Target]]:
        found: list[Target] = [Leaf(n) for n in self.names]
        return render([Sample(INFO, (("name", "discovery"),), 1.0)]), found


async def run_shard(shard: Shard, tmp_path: Path) -> tuple[set[str], set[str]]:
    """Targets the shard keeps, and the series names/labels it exports."""
    cfg = tmp_path / "empty.yaml"
    cfg.write_text("global:\n  start_spread: 1h\n")
    exporter = Exporter(cfg, shard)
    await exporter.start(load_config(cfg))
    try:
        names = [f"n{i}" for i in range(60)]
        static = [Leaf(f"static-{i}") for i in range(30)]
        discovery = FakeDiscovery(names)
        await exporter.poller.sync(STATIC, [*static, discovery])
        await exporter.poller.poll_once(discovery)
        for target in exporter.targets:
            if target is not discovery:
                await exporter.poller.poll_once(target)
        assert discovery.id in exporter.targets  # every shard runs the discovery
        text = scraped(exporter.store).decode()
        exported = {line.split(" ")[0] for line in text.splitlines() if not line.startswith("#")}
        return {t.id for t in exporter.targets} - {discovery.id}, exported
    finally:
        await exporter.stop()


def test_daemon_filters_static_and_discovered_targets(tmp_path: Path) -> None:
    whole_targets, whole_series = asyncio.run(run_shard(Shard(), tmp_path))
    assert len(whole_targets) == 90
    parts = [asyncio.run(run_shard(Shard(i, 3), tmp_path)) for i in range(3)]
    kept = [p[0] for p in parts]
    assert set().union(*kept) == whole_targets
    assert sum(len(k) for k in kept) == 90
    assert all(any(t.startswith("fake/n") for t in k) for k in kept)  # discovered ones are split too
    series = [p[1] for p in parts]
    assert set().union(*series) == whole_series
    assert sum(len(s) for s in series) == len(whole_series)  # no overlap, the discovery's own included
    owner = shard_of("fake_discovery/all", 3)
    assert any('name="discovery"' in s for s in series[owner])


def test_shard_self_metrics(tmp_path: Path) -> None:
    async def go() -> str:
        cfg = tmp_path / "empty.yaml"
        cfg.write_text("global: {}\n")
        exporter = Exporter(cfg, Shard(1, 3))
        await exporter.start(load_config(cfg))
        try:
            return exporter.metrics.render().decode()
        finally:
            await exporter.stop()

    s = parse(asyncio.run(go()))
    assert s.value("inference_exporter_shard_ordinal") == 1
    assert s.value("inference_exporter_total_shards") == 3
    assert s.value("inference_exporter_shard_targets") == 0
    assert s.types["inference_exporter_total_shards"] == "gauge"
