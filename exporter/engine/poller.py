"""Polling: every target on its own schedule, its health, and its snapshots in the store.

APScheduler runs one interval job per target, under the target's id: never two polls
of one target at once (``max_instances=1``), a late run folded into one
(``coalesce``), first polls spread by a stable hash of the id. A poll ends by its
interval; its result, or the reason it failed, becomes the target's health, and its
samples replace the target's snapshot in the store. A discovery's poll returns the
targets it found, which replace its group in the target set. A finished target past
its retention (``Target.expired``) is retired: its job is removed from the schedule.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from exporter.core.errors import UpstreamError
from exporter.core.exposition import Rendered
from exporter.core.logs import SCRUBBER
from exporter.core.sharding import Shard
from exporter.engine.health import HealthLines, TargetHealth
from exporter.engine.keyrefusals import REFUSED, KeyRefusals, account_of
from exporter.engine.store import Store
from exporter.engine.targetset import Changes, Reconfigured, TargetSet
from exporter.sources.base import Discovery, Target
from exporter.upstream.retry import POLL_DEADLINE

log = logging.getLogger("exporter.engine.poller")

# Share of the poll interval that requests and retries may use.
POLL_BUDGET_FRACTION = 0.9
# Longest wait for polls cancelled at shutdown to end.
STOP_POLLS_SECONDS = 0.5
# The step of the grid first polls start on (see first_poll_at).
PHASE_STEP_SECONDS = 0.1


def health_key(target_id: str) -> str:
    """The store key of a target's health series; its data is filed under its id.

    Target ids begin with their source's name, so this prefix never makes another id.
    """
    return "health:" + target_id


def start_offset(target_id: str, interval: float, spread: float) -> float:
    """A stable phase in [0, min(spread, interval)) so targets do not all fire together,
    on a grid of ``PHASE_STEP_SECONDS`` (see ``first_poll_at``)."""
    frac = (zlib.crc32(target_id.encode()) % 10_000) / 10_000
    return math.floor(frac * min(spread, interval) / PHASE_STEP_SECONDS) * PHASE_STEP_SECONDS


def first_poll_at(now: float, offset: float) -> float:
    """Unix time of a target's first poll: ``offset`` after the next point of a grid of
    ``PHASE_STEP_SECONDS`` steps shared by every target.

    APScheduler wakes up once for every distinct time a job is due, and each wakeup
    costs a round through the event loop's self-pipe; targets whose polls fall due at
    the same time start together in one wakeup. On the grid, targets with the same
    interval and phase stay due at the same times; the phases still spread the polls
    over the spread window.
    """
    # In whole steps, so that equal sums give the very same float.
    return (math.ceil(now / PHASE_STEP_SECONDS) + round(offset / PHASE_STEP_SECONDS)) * PHASE_STEP_SECONDS


@dataclass(frozen=True, slots=True)
class PollSettings:
    """The config's global settings that shape polling (replaced on reload)."""

    start_spread: float = 0.0
    stale_grace: float = 0.0


@dataclass(slots=True)
class Outcome:
    """What one poll brought: samples (and a discovery's finds), or why it failed."""

    data: Rendered | None = None
    found: list[Target] | None = None
    reason: str = ""
    detail: str = ""
    # The failure also ends what the target last yielded (``UpstreamError.outdated``).
    outdated: bool = False


async def poll_with_deadline(target: Target, now: float) -> Outcome:
    """Poll ``target`` within its interval; every failure becomes a reason, none escapes.

    Requests and their retries end by the poll deadline (a little before the
    interval, so their own reason wins); the timeout is the hard stop behind it (a
    scope, not wait_for: no second task per poll).
    """
    token = POLL_DEADLINE.set(time.monotonic() + target.interval * POLL_BUDGET_FRACTION)
    try:
        async with asyncio.timeout(target.interval):
            if isinstance(target, Discovery):
                data, found = await target.discover(now)
                return Outcome(data, found)
            return Outcome(await target.poll(now))
    except UpstreamError as exc:
        return Outcome(reason=exc.reason, detail=exc.detail, outdated=exc.outdated)
    except TimeoutError:
        return Outcome(reason="timeout", detail=f"poll did not finish within {target.interval:g}s")
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        log.exception("poll failed unexpectedly", extra={"target": target.id})
        return Outcome(reason="internal_error", detail=f"{type(exc).__name__}: {exc}")
    finally:
        POLL_DEADLINE.reset(token)


class Poller:
    """Schedules the target set's targets, polls them and keeps their health and snapshots.

    Only this shard's targets' samples and health reach the store: a discovery runs on
    every shard (see exporter.core.sharding), but what it yields itself is exported by its
    own shard alone.
    """

    def __init__(self, targets: TargetSet, store: Store, shard: Shard) -> None:
        self.targets = targets
        self.store = store
        self.shard = shard
        self.settings = PollSettings()
        self.health: dict[str, TargetHealth] = {}
        self._health_lines: dict[str, HealthLines] = {}
        self._scheduler = AsyncIOScheduler(timezone=UTC)
        # APScheduler cancels the polls in flight when it shuts down, but gives no way
        # to wait for them to end, so they are tracked here for that alone.
        self._running: set[asyncio.Task[None]] = set()
        self._stopping = False
        self._ready_logged = False
        self._refusals = KeyRefusals()

    def start(self) -> None:
        self._scheduler.start()

    async def stop(self) -> int:
        """Stop the schedule and cancel the polls in flight; return how many there were."""
        self._stopping = True
        in_flight = list(self._running)
        self._scheduler.shutdown(wait=False)
        if in_flight:
            await asyncio.wait(in_flight, timeout=STOP_POLLS_SECONDS)
        return len(in_flight)

    async def sync(self, group: str, targets: list[Target]) -> Changes:
        """Make ``group`` own exactly ``targets`` (see TargetSet.sync) and poll accordingly.

        Jobs and health follow the target set at once, before anything is awaited, so
        two syncs never interleave; then the removed targets release what they hold.
        """
        changes = self.targets.sync(group, targets)
        for target in changes.removed:
            with contextlib.suppress(JobLookupError):  # one that could not be scheduled
                self._scheduler.remove_job(target.id)
            self.health.pop(target.id, None)
            self._health_lines.pop(target.id, None)
            self.store.remove(target.id)
            self.store.remove(health_key(target.id))
        for target in changes.added:
            self._start(target)
        for change in changes.reconfigured:
            self._reconfigured(change)
        await asyncio.gather(*(close_target(t) for t in changes.removed))
        return changes

    def _start(self, target: Target) -> None:
        """Schedule a new target on its own: one that cannot be scheduled is left out
        (logged, without health) and never keeps the others from being polled."""
        try:
            self._schedule(target)
        except Exception as exc:
            self.health.pop(target.id, None)
            self._health_lines.pop(target.id, None)
            self.store.remove(health_key(target.id))
            log.error(
                "target cannot be scheduled",
                extra={
                    "target": target.id.encode("utf-8", "backslashreplace").decode(),
                    "error": type(exc).__name__,
                },
            )

    def _schedule(self, target: Target) -> None:
        self.health[target.id] = TargetHealth()
        self._health_lines[target.id] = HealthLines(target.id, target.source, target.scope)
        self._publish_health(target)
        self._scheduler.add_job(
            self._poll_job,
            args=[target],
            id=target.id,
            max_instances=1,
            coalesce=True,
            replace_existing=True,
            **self._timing(target),
        )

    def _timing(self, target: Target, due: float | None = None) -> dict[str, Any]:
        """The job's trigger and first run: at its phase on the grid (see first_poll_at),
        or at ``due`` (a poll already planned) when that comes within the interval."""
        now = time.time()
        if due is None or due > now + target.interval:
            offset = start_offset(target.id, target.interval, self.settings.start_spread)
            due = first_poll_at(now, offset)
        start = datetime.fromtimestamp(due, UTC)
        return {
            "trigger": IntervalTrigger(seconds=target.interval, start_date=start),
            # Explicit: a start_date already past when the trigger is first asked (a
            # phase of 0) would otherwise put the first poll a whole interval away.
            "next_run_time": start,
            "misfire_grace_time": max(1, int(target.interval)),
        }

    def _reconfigured(self, change: Reconfigured) -> None:
        """A kept target took new settings: its series get its new labels and filter at
        once (from what it last yielded, until its next poll yields them afresh), and a
        new interval applies from the poll that was due next, or sooner."""
        target = change.target
        health = self.health.get(target.id)
        if health is None:  # one that could not be scheduled (see _start)
            return
        if target.scope != change.scope:
            snapshot = self.store.snapshot(target.id)
            if snapshot is not None:
                restyled = target.scope.restyle(snapshot, change.scope)
                self.store.put(target.id, restyled)
                health.series = restyled.series
            self._health_lines[target.id] = HealthLines(target.id, target.source, target.scope)
            self._publish_health(target)
        job = self._scheduler.get_job(target.id)
        if target.interval != change.interval and job is not None:  # None: retired
            due = job.next_run_time.timestamp() if job is not None and job.next_run_time else None
            self._scheduler.modify_job(target.id, **self._timing(target, due))

    async def _poll_job(self, target: Target) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._running.add(task)
        try:
            await self.poll_once(target)
        except asyncio.CancelledError:
            if not self._stopping:
                raise
            # Cancelled by stop(): an expected end, not a job failure to report.
            log.debug("poll canceled at shutdown", extra={"target": target.id})
        finally:
            self._running.discard(task)

    async def poll_once(self, target: Target) -> None:
        """Poll ``target`` now and record the outcome."""
        now = time.time()
        t0 = time.perf_counter()
        outcome = await poll_with_deadline(target, now)
        duration = time.perf_counter() - t0
        if not self.targets.is_current(target):
            return  # removed or replaced by a reload while this poll ran
        health = self.health[target.id]
        if outcome.data is not None:
            if health.polled and not health.up:
                log.info("target recovered", extra={"target": target.id})
            health.record_success(now, duration, outcome.data.series, outcome.data.filtered)
            self._refusals.answered(target)
            if self.shard.owns(target.id):
                self.store.put(target.id, outcome.data)
        else:
            # Warn when a target goes down or its reason changes; repeats go to debug so
            # a long outage does not flood the log at every poll.
            changed = health.up or not health.polled or health.last_error_reason != outcome.reason
            health.record_failure(now, duration, outcome.reason, SCRUBBER.scrub(outcome.detail))
            if outcome.reason == REFUSED:
                self._key_refused(target, health.last_error_detail)
                changed = False  # the account's line says it; the target's goes to debug
            log.log(
                logging.WARNING if changed else logging.DEBUG,
                "poll failed",
                extra={"target": target.id, "reason": outcome.reason, "detail": health.last_error_detail},
            )
            self._expire_stale_data(target.id, health, now, outcome.outdated)
        self._publish_health(target)
        if target.expired(now):
            self._retire(target)
        if outcome.found is not None:
            changes = await self.sync(target.id, outcome.found)
            if changes.added or changes.removed:
                log.info(
                    "discovery changed its targets",
                    extra={
                        "discovery": target.id,
                        "added": len(changes.added),
                        "removed": len(changes.removed),
                        "targets": len(self.targets),
                    },
                )
        if not self._ready_logged and all(h.polled for h in self.health.values()):
            self._ready_logged = True
            log.info("ready: every target polled once", extra={"targets": len(self.targets)})

    def _retire(self, target: Target) -> None:
        """A finished target whose retention ran out is polled no more: nothing it could
        yield would change. It stays in the target set (listed as finished) until its
        config entry or its discovery drops it; a reload keeps it retired."""
        with contextlib.suppress(JobLookupError):
            self._scheduler.remove_job(target.id)
        self.store.remove(target.id)
        log.info("target retired: finished, and its retention ran out", extra={"target": target.id})

    def key_changed(self, vendor: str, account: str) -> None:
        """The account's client sends another key, or to another URL (a reload): a
        refusal of it warns again, even if the old one was refused."""
        self._refusals.forget(vendor, account)

    def _key_refused(self, target: Target, detail: str) -> None:
        if self._refusals.refused(target):
            vendor, account = account_of(target)
            affected = sum(1 for t in self.targets if account_of(t) == (vendor, account))
            log.warning(
                "the vendor refuses the account's API key",
                extra={
                    "vendor": vendor,
                    "account": account,
                    "targets": affected,
                    "first_target": target.id,
                    "detail": detail,
                },
            )

    def _expire_stale_data(self, tid: str, health: TargetHealth, now: float, outdated: bool) -> None:
        """A failing target keeps its last values (left in the store) for ``stale_grace``,
        then they go; at once when the target says they are outdated."""
        if outdated or now - health.last_success_timestamp > self.settings.stale_grace:
            self.store.remove(tid)
            health.series = 0

    def _publish_health(self, target: Target) -> None:
        if self.shard.owns(target.id):  # else a discovery run here only for its targets
            self.store.put(
                health_key(target.id), self._health_lines[target.id].render_health(self.health[target.id])
            )


async def close_target(target: Target) -> None:
    """Let a target release what it holds; a failure to do so is logged, not raised."""
    try:
        await target.close()
    except Exception:
        log.exception("closing a target failed", extra={"target": target.id})
