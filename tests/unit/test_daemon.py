"""The daemon's bookkeeping, driven directly with fake targets (no HTTP)."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

from exporter.config import LoadedConfig
from exporter.config.model import Config
from exporter.core.errors import UpstreamError
from exporter.core.exposition import Family, Rendered, Sample, render
from exporter.core.scope import FilterRule, MetricFilter, Scope
from exporter.engine.daemon import Exporter
from exporter.engine.poller import PHASE_STEP_SECONDS, first_poll_at, start_offset
from exporter.engine.targetset import STATIC
from exporter.sources.base import Discovery, Target
from tests.helpers import scraped

T = TypeVar("T")
VALUE = Family("fake_value", "gauge", "A value.")


class Fake(Target):
    source = "fake"

    def __init__(self, name: str, value: float = 1.0, interval: float = 3600.0) -> None:
        super().__init__(f"fake/{name}", interval=interval, timeout=1.0, settings=(name, interval))
        self.value = value
        self.fail: UpstreamError | None = None
        self.hang = False
        self.closed = False

    async def poll(self, now: float) -> Rendered:
        if self.hang:
            await asyncio.sleep(3600)
        if self.fail is not None:
            raise self.fail
        return render([Sample(VALUE, (("name", self.id),), self.value)])

    async def close(self) -> None:
        self.closed = True


class FakeDiscovery(Discovery):
    source = "fake_discovery"

    def __init__(self) -> None:
        super().__init__("fake_discovery/all", interval=3600.0, timeout=1.0, settings=("d",))
        self.names: list[str] = []
        self.fail = False

    async def discover(self, now: float) -> tuple[Rendered, list[Target]]:
        if self.fail:
            raise UpstreamError("server_error", "list failed")
        return render([]), [Fake(n) for n in self.names]


def run(make: Callable[[Exporter], Awaitable[T]], tmp_path: Path, **global_: object) -> T:
    async def main() -> T:
        exp = Exporter(tmp_path / "unused.yaml")
        await exp.start(LoadedConfig(tmp_path, Config.model_validate({"global": global_})))
        try:
            return await make(exp)
        finally:
            await exp.stop()

    return asyncio.run(main())


def text(exp: Exporter) -> str:
    return scraped(exp.store).decode()


def ids(exp: Exporter) -> set[str]:
    return {t.id for t in exp.targets}


def on_grid(t: float) -> bool:
    return abs(t / PHASE_STEP_SECONDS - round(t / PHASE_STEP_SECONDS)) < 1e-6


def test_start_offsets_are_stable_and_within_spread_on_the_grid() -> None:
    offs = [start_offset(f"t/{i}", 30, 10) for i in range(1000)]
    assert all(0 <= o < 10 for o in offs)
    # On the grid, every step of it used, none by more than a few times its share.
    assert all(on_grid(o) for o in offs)
    slots = Counter(round(o / PHASE_STEP_SECONDS) for o in offs)
    assert len(slots) == round(10 / PHASE_STEP_SECONDS)
    assert max(slots.values()) < 3 * len(offs) / len(slots)
    assert start_offset("t/1", 30, 10) == start_offset("t/1", 30, 10)
    assert all(o < 2 for o in (start_offset(f"t/{i}", 2, 10) for i in range(50)))


def test_first_polls_fall_on_a_grid_shared_by_every_target() -> None:
    """Targets with the same phase, scheduled at different moments, fall due at the same
    times (one scheduler wakeup for all of them), never before they were scheduled."""
    step = PHASE_STEP_SECONDS
    offset = start_offset("t/7", 30, 10)
    for now in (1000.0, 1000 + step / 10, 1000 + step * 0.9, 1000 + step, 1003.9):
        at = first_poll_at(now, offset)
        assert now + offset <= at < now + offset + step + 1e-6
        assert on_grid(at - offset)
    assert first_poll_at(1000 + step / 10, offset) == first_poll_at(1000 + step * 0.9, offset)
    # Two phases that add up to the same time give the very same float.
    assert first_poll_at(1000.0, 3 * step) == first_poll_at(1000 + step, 2 * step)


def test_a_target_with_phase_zero_is_polled_at_once(tmp_path: Path) -> None:
    """Its start is "now", already past when the scheduler looks: still its first poll
    comes at once, not an interval later."""
    t = Fake("p11048")
    assert start_offset(t.id, t.interval, 5) == 0

    async def body(exp: Exporter) -> int:
        await exp.poller.sync(STATIC, [t])
        for _ in range(50):
            if exp.poller.health[t.id].polls.total():
                break
            await asyncio.sleep(0.05)
        return exp.poller.health[t.id].polls.total()

    assert run(body, tmp_path, start_spread=5) == 1


def test_health_before_and_after_polls(tmp_path: Path) -> None:
    async def body(exp: Exporter) -> None:
        t = Fake("a", 5)
        await exp.poller.sync(STATIC, [t])
        assert 'inference_exporter_target_up{target="fake/a",source="fake",account="default"} 0' in text(exp)
        assert (
            'inference_exporter_target_last_success_timestamp_seconds{target="fake/a",source="fake",account="default"} 0'
            in text(exp)
        )
        assert not exp.ready()
        await exp.poller.poll_once(t)
        assert exp.ready()
        out = text(exp)
        assert 'fake_value{name="fake/a"} 5' in out
        assert 'inference_exporter_target_up{target="fake/a",source="fake",account="default"} 1' in out
        assert (
            'inference_exporter_target_polls_total{target="fake/a",source="fake",result="success",account="default"} 1'
            in out
        )

    run(body, tmp_path)


def test_failure_keeps_values_within_grace_then_drops_them(tmp_path: Path) -> None:
    async def body(exp: Exporter) -> None:
        t = Fake("a", 5)
        await exp.poller.sync(STATIC, [t])
        await exp.poller.poll_once(t)
        t.fail = UpstreamError("rate_limited", "GET /x answered 429")
        await exp.poller.poll_once(t)
        out = text(exp)
        assert 'fake_value{name="fake/a"} 5' in out  # within grace
        assert 'inference_exporter_target_up{target="fake/a",source="fake",account="default"} 0' in out
        assert (
            'inference_exporter_target_error_info{target="fake/a",source="fake",reason="rate_limited",'
            'account="default"} 1' in out
        )
        assert 'result="rate_limited",account="default"} 1' in out
        exp.poller.health[t.id].last_success_timestamp -= 10  # grace is 1s here
        await exp.poller.poll_once(t)
        out = text(exp)
        assert "fake_value{" not in out
        assert 'result="rate_limited",account="default"} 2' in out
        t.fail = None
        await exp.poller.poll_once(t)
        assert 'fake_value{name="fake/a"} 5' in text(exp)
        assert "inference_exporter_target_error_info{" not in text(exp)

    run(body, tmp_path, stale_grace="1s")


def test_a_hanging_poll_is_cut_at_the_interval(tmp_path: Path) -> None:
    async def body(exp: Exporter) -> None:
        t = Fake("slow", interval=0.2)
        t.hang = True
        await exp.poller.sync(STATIC, [t])
        await exp.poller.poll_once(t)
        assert exp.poller.health[t.id].last_error_reason == "timeout"

    run(body, tmp_path)


def test_unexpected_exceptions_are_a_reason_not_a_crash(tmp_path: Path) -> None:
    class Broken(Fake):
        async def poll(self, now: float) -> Rendered:
            raise KeyError("boom")

    async def body(exp: Exporter) -> None:
        t = Broken("b")
        await exp.poller.sync(STATIC, [t])
        await exp.poller.poll_once(t)
        assert exp.poller.health[t.id].last_error_reason == "internal_error"

    run(body, tmp_path)


def test_discovery_groups_follow_the_list(tmp_path: Path) -> None:
    async def body(exp: Exporter) -> None:
        static = Fake("x")
        await exp.poller.sync(STATIC, [static])
        d = FakeDiscovery()
        await exp.poller.sync(STATIC, [static, d])
        assert exp.targets.get("fake/x") is static  # unchanged settings: same object kept
        d.names = ["a", "b", "x"]
        await exp.poller.poll_once(d)
        assert ids(exp) == {"fake/x", "fake_discovery/all", "fake/a", "fake/b"}
        assert exp.targets.group(d.id) == {"fake/a", "fake/b"}  # x stays the config's
        a = exp.targets.get("fake/a")
        assert isinstance(a, Fake)
        d.names = ["a"]
        await exp.poller.poll_once(d)
        assert exp.targets.get("fake/a") is a
        assert "fake/b" not in exp.targets and 'target="fake/b"' not in text(exp)
        d.fail = True
        await exp.poller.poll_once(d)  # a failed list keeps what was found
        assert "fake/a" in exp.targets
        await exp.poller.sync(STATIC, [static])  # discovery removed from the config
        assert ids(exp) == {"fake/x"}
        assert a.closed is True

    run(body, tmp_path)


def test_a_poll_finishing_after_its_target_was_removed_is_dropped(tmp_path: Path) -> None:
    async def body(exp: Exporter) -> None:
        t = Fake("a")
        await exp.poller.sync(STATIC, [t])
        await exp.poller.sync(STATIC, [])
        await exp.poller.poll_once(t)
        assert scraped(exp.store) == b""
        assert t.closed

    run(body, tmp_path)


def test_the_server_view_lists_targets_by_id_with_their_health(tmp_path: Path) -> None:
    async def body(exp: Exporter) -> None:
        b, a = Fake("b"), Fake("a")
        await exp.poller.sync(STATIC, [b, a])
        assert [t.id for t, _ in exp.targets_with_health()] == ["fake/a", "fake/b"]
        assert exp.target_count() == 2 and exp.unpolled_targets() == 2
        await exp.poller.poll_once(a)
        assert exp.unpolled_targets() == 1 and not exp.ready()
        (_, health_a), (_, health_b) = exp.targets_with_health()
        assert health_a.up and not health_b.polled
        exposition = b"".join(exp.exposition_parts()).decode()
        assert 'fake_value{name="fake/a"} 1' in exposition
        assert "inference_exporter_config_last_reload_successful 1.0" in exposition

    run(body, tmp_path)


class Scoped(Fake):
    """A fake whose series go through its scope, as every source's do."""

    def __init__(self, name: str, team: str, interval: float = 3600.0, deny: tuple[str, ...] = ()) -> None:
        super().__init__(name, interval=interval)
        self.scope = Scope(labels=(("team", team),), filter=MetricFilter((FilterRule(deny=deny),)))
        self.settings = (name, interval, self.scope)

    async def poll(self, now: float) -> Rendered:
        return self.scope.render([Sample(VALUE, (("name", self.id),), self.value)])


class ScopedDiscovery(FakeDiscovery):
    """Finds a Scoped target per name, with its own team."""

    def __init__(self, team: str) -> None:
        super().__init__()
        self.team = team
        self.settings = ("d", team)

    def reconfigure(self, new: Target) -> bool:
        if not isinstance(new, ScopedDiscovery) or not super().reconfigure(new):
            return False
        self.team = new.team
        return True

    def rebuild(self, found: Target) -> Target:
        return Scoped(found.id.removeprefix("fake/"), self.team)

    async def discover(self, now: float) -> tuple[Rendered, list[Target]]:
        return render([]), [Scoped(n, self.team) for n in self.names]


def test_a_reload_keeps_a_changed_target_and_applies_its_settings_at_once(tmp_path: Path) -> None:
    async def body(exp: Exporter) -> None:
        t = Scoped("a", team="a")
        await exp.poller.sync(STATIC, [t])
        await exp.poller.poll_once(t)
        changes = await exp.poller.sync(STATIC, [Scoped("a", team="b", interval=1800.0)])
        assert exp.targets.get(t.id) is t and [c.target for c in changes.reconfigured] == [t]
        assert not changes.added and not changes.removed and not t.closed
        # Its last series and its health carry the new labels before it is polled again.
        out = text(exp)
        assert 'team="a"' not in out
        assert 'fake_value{name="fake/a",account="default",team="b"} 1' in out
        health = '{target="fake/a",source="fake",account="default",team="b"} 1'
        assert "inference_exporter_target_up" + health in out
        polls = 'inference_exporter_target_polls_total{target="fake/a",source="fake",result="success",'
        assert polls + 'account="default",team="b"} 1' in out  # its health kept, counters and all
        job = exp.poller._scheduler.get_job(t.id)
        assert job is not None and job.trigger.interval.total_seconds() == 1800.0
        # A filter that now removes a family removes it at once.
        await exp.poller.sync(STATIC, [Scoped("a", team="b", interval=1800.0, deny=("fake_value",))])
        assert "fake_value{" not in text(exp) and exp.targets.get(t.id) is t

    run(body, tmp_path)


def test_settings_a_target_cannot_take_in_place_replace_it(tmp_path: Path) -> None:
    async def body(exp: Exporter) -> None:
        t = Fake("a")
        await exp.poller.sync(STATIC, [t])
        new = Scoped("a", team="b")  # another type: reconfigure refuses
        changes = await exp.poller.sync(STATIC, [new])
        assert changes.removed == [t] and changes.added == [new] and t.closed
        assert exp.targets.get("fake/a") is new

    run(body, tmp_path)


def test_a_changed_discovery_keeps_what_it_found_and_hands_on_its_settings(tmp_path: Path) -> None:
    async def body(exp: Exporter) -> None:
        d = ScopedDiscovery("a")
        await exp.poller.sync(STATIC, [d])
        d.names = ["x", "y"]
        await exp.poller.poll_once(d)
        found = {t.id: t for t in exp.targets if t.id.startswith("fake/")}
        for t in found.values():
            await exp.poller.poll_once(t)
        await exp.poller.sync(STATIC, [ScopedDiscovery("b")])
        assert exp.targets.get(d.id) is d
        for tid, t in found.items():
            assert exp.targets.get(tid) is t and t.scope.labels == (("team", "b"),)
        assert 'team="a"' not in text(exp)
        # Its next poll keeps the same targets.
        await exp.poller.poll_once(d)
        assert {t.id: t for t in exp.targets if t.id.startswith("fake/")} == found

    run(body, tmp_path)


def test_a_reload_that_names_a_found_target_makes_it_the_configs(tmp_path: Path) -> None:
    """As at start, the config's own target wins over the one a discovery found: its
    settings apply, and the discovery's next finds leave it out."""

    async def body(exp: Exporter) -> None:
        d = ScopedDiscovery("found")
        await exp.poller.sync(STATIC, [d])
        d.names = ["x", "y"]
        await exp.poller.poll_once(d)
        found = exp.targets.get("fake/x")
        assert found is not None
        await exp.poller.poll_once(found)
        explicit = Scoped("x", team="config")
        changes = await exp.poller.sync(STATIC, [d, explicit])
        assert changes.removed == [found] and changes.added == [explicit]
        assert exp.targets.get("fake/x") is explicit
        assert exp.targets.group(STATIC) == {d.id, "fake/x"} and exp.targets.group(d.id) == {"fake/y"}
        assert not [line for line in text(exp).splitlines() if "fake/x" in line and 'team="found"' in line]
        await exp.poller.poll_once(d)
        assert exp.targets.get("fake/x") is explicit and exp.targets.group(d.id) == {"fake/y"}
        await exp.poller.poll_once(explicit)
        assert 'fake_value{name="fake/x",account="default",team="config"} 1' in text(exp)

    run(body, tmp_path)


class Finishing(Fake):
    """A target that finishes: its series are kept until ``until``, then it yields none."""

    def __init__(self, name: str, interval: float = 3600.0) -> None:
        super().__init__(name, interval=interval)
        self.until: float | None = None

    def kept_until(self) -> float | None:
        return self.until

    async def poll(self, now: float) -> Rendered:
        return Rendered() if self.expired(now) else await super().poll(now)


def test_a_finished_target_past_its_retention_is_retired_and_a_reload_keeps_it_so(tmp_path: Path) -> None:
    async def body(exp: Exporter) -> None:
        t = Finishing("job")
        await exp.poller.sync(STATIC, [t])
        t.finished_at, t.until = time.time(), time.time() + 3600  # finished, series kept
        await exp.poller.poll_once(t)
        assert 'fake_value{name="fake/job"} 1' in text(exp)
        assert exp.poller._scheduler.get_job(t.id) is not None  # still yields its kept series
        t.until = time.time() - 1  # retention over
        await exp.poller.poll_once(t)
        assert "fake_value{" not in text(exp)
        assert exp.poller._scheduler.get_job(t.id) is None  # polled no more
        assert exp.targets.get(t.id) is t  # but still listed (as finished)
        # A reload with a new interval keeps it, state and all, and does not poll it again.
        changes = await exp.poller.sync(STATIC, [Finishing("job", interval=60.0)])
        assert exp.targets.get(t.id) is t and [c.target for c in changes.reconfigured] == [t]
        assert exp.poller._scheduler.get_job(t.id) is None

    run(body, tmp_path)
