"""The running exporter: config → targets → scheduled polls → snapshots in the store.

Owns the scheduler, the vendor clients and every target's health. A reload builds
the new set of targets next to the old one and swaps it in only when the new config
is valid, so a bad file never leaves a half-configured daemon.
"""

from __future__ import annotations

import asyncio
import logging
import time
import zlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from exporter.budget import shard_rate
from exporter.config import ConfigError, LoadedConfig, load_config
from exporter.config.model import Config
from exporter.errors import UpstreamError
from exporter.exposition import Rendered, merge
from exporter.health import ReloadState, TargetHealth, render_global, render_health
from exporter.logs import SCRUBBER
from exporter.retry import POLL_DEADLINE
from exporter.sharding import Shard
from exporter.sources.base import Discovery, Target
from exporter.store import Store
from exporter.targets import build_targets
from exporter.upstream import Clients, UpstreamStats, VendorClient

log = logging.getLogger("exporter.daemon")

STATIC = ""
# Share of the poll interval that requests and retries may use.
POLL_BUDGET_FRACTION = 0.9
# Longest wait for targets to close at shutdown.
STOP_CLOSE_SECONDS = 0.8


def health_key(target_id: str) -> str:
    """The store key of a target's health series; its data is filed under its id.

    Target ids begin with their source's name, so this prefix never makes another id.
    """
    return "health:" + target_id


def start_offset(target_id: str, interval: float, spread: float) -> float:
    """A stable phase in [0, min(spread, interval)) so targets do not all fire together."""
    frac = (zlib.crc32(target_id.encode()) % 10_000) / 10_000
    return frac * min(spread, interval)


def make_client(
    loaded: LoadedConfig, vendor: str, stats: UpstreamStats, total_shards: int = 1
) -> VendorClient:
    section = getattr(loaded.config, vendor)
    rps = section.requests_per_second
    return VendorClient(
        vendor,
        section.base_url,
        loaded.secrets[vendor],
        max_connections=section.max_connections,
        stats=stats,
        requests_per_second=shard_rate(rps, total_shards) if rps is not None else None,
        max_body_bytes=section.max_response_bytes,
    )


class Exporter:
    def __init__(self, config_path: Path, shard: Shard | None = None) -> None:
        self.config_path = config_path
        # Which targets this replica polls; the default shard owns them all.
        # Per-vendor request budgets are for the whole account: each shard's client gets
        # its share (the budget's rate divided by the number of shards).
        self.shard = shard or Shard()
        self.store = Store()
        self.stats = UpstreamStats()
        self.reload_state = ReloadState()
        self.clients = Clients()
        self.targets: dict[str, Target] = {}
        # Which targets each group owns: STATIC for the config's, a discovery's id for
        # the targets it found.
        self.groups: dict[str, set[str]] = {STATIC: set()}
        self.health: dict[str, TargetHealth] = {}
        self._client_keys: dict[str, tuple[object, ...]] = {}
        self.config: Config | None = None
        self.scheduler: AsyncIOScheduler | None = None
        self._reload_lock = asyncio.Lock()
        self._running: set[asyncio.Task[None]] = set()
        self._background: set[asyncio.Task[None]] = set()
        self._stopping = False
        # Other files reloaded together with the config (the web config): each reads
        # its file and raises ValueError if it is unusable, or returns how to apply it.
        # Nothing is applied unless every file is valid.
        self.companions: list[Callable[[], Callable[[], None]]] = []

    @property
    def total_shards(self) -> int:
        """How many replicas share the targets; each vendor budget is divided by it."""
        return self.shard.total

    # --- lifecycle -------------------------------------------------------------------

    async def start(self, loaded: LoadedConfig) -> None:
        self.scheduler = AsyncIOScheduler(timezone=UTC)
        self.scheduler.start()
        await self._apply(loaded)

    async def stop(self) -> None:
        """Stop polling: cancel in-flight polls (and their requests), close targets and clients."""
        if self.scheduler is not None:
            self.scheduler.shutdown(wait=False)
        self._stopping = True
        polls = len(self._running)
        in_flight = list(self._running | self._background)
        for task in in_flight:
            task.cancel()
        if in_flight:
            await asyncio.wait(in_flight, timeout=0.5)
        log.info("polling stopped", extra={"cancelled_polls": polls})
        # Targets release what they hold (a probe cancels its job) while the clients are
        # still open; bounded, so that shutdown stays within two seconds.
        closing = asyncio.gather(*(t.close() for t in self.targets.values()), return_exceptions=True)
        try:
            await asyncio.wait_for(closing, timeout=STOP_CLOSE_SECONDS)
        except TimeoutError:
            log.warning("targets did not close in time", extra={"seconds": STOP_CLOSE_SECONDS})
        await asyncio.gather(*(c.aclose() for c in self.clients.all()), return_exceptions=True)

    async def reload(self) -> tuple[bool, str]:
        """Load the config file again; keep the running config if the new one is invalid."""
        async with self._reload_lock:
            try:
                loaded = await asyncio.to_thread(load_config, self.config_path)
            except ConfigError as exc:
                self.reload_state.successful = False
                for p in exc.problems:
                    log.error("config reload failed, keeping the running config", extra={"problem": str(p)})
                # Values in a problem can be a key pasted in the wrong place: scrub them.
                return False, SCRUBBER.scrub(str(exc))
            applies = []
            for prepare in self.companions:
                try:
                    applies.append(await asyncio.to_thread(prepare))
                except ValueError as exc:
                    self.reload_state.successful = False
                    log.error("config reload failed, keeping the running config", extra={"problem": str(exc)})
                    return False, SCRUBBER.scrub(str(exc))
            try:
                await self._apply(loaded)
                for apply in applies:
                    apply()
            except Exception as exc:
                # Building targets from a valid file should not fail; if it does, say so
                # and keep serving whatever is running.
                self.reload_state.successful = False
                log.exception("config reload failed while applying it")
                return False, f"applying the config failed: {type(exc).__name__}"
            log.info("config reloaded", extra={"targets": len(self.targets)})
            return True, "config reloaded"

    # --- applying a config -----------------------------------------------------------

    def _client_key(self, loaded: LoadedConfig, vendor: str) -> tuple[object, ...]:
        section = getattr(loaded.config, vendor)
        return (
            section.base_url,
            section.max_connections,
            section.requests_per_second,
            section.max_response_bytes,
            self.total_shards,
            loaded.secrets.get(vendor),
        )

    async def _apply(self, loaded: LoadedConfig) -> None:
        SCRUBBER.set_secrets(set(loaded.secrets.values()))
        # Keep the clients whose URL, pool size and key are unchanged; build the rest.
        clients: dict[str, VendorClient] = {}
        new_keys = {v: self._client_key(loaded, v) for v in loaded.secrets}
        for vendor, key in new_keys.items():
            existing = self.clients.find(vendor)
            if existing is not None and self._client_keys.get(vendor) == key:
                clients[vendor] = existing
            else:
                clients[vendor] = make_client(loaded, vendor, self.stats, self.total_shards)
        old_clients = self.clients.replace(clients)
        self._client_keys = new_keys

        self.config = loaded.config
        await self._sync_group(STATIC, build_targets(loaded.config, self.clients))
        if old_clients:
            # Polls still running on a replaced client finish first; then it closes.
            grace = max((t.timeout for t in self.targets.values()), default=0.0)
            task = asyncio.create_task(self._close_later(old_clients, grace))
            self._background.add(task)
            task.add_done_callback(self._background.discard)
        self.reload_state.successful = True
        self.reload_state.last_success_timestamp = time.time()

    @staticmethod
    async def _close_later(clients: list[VendorClient], delay: float) -> None:
        await asyncio.sleep(delay)
        await asyncio.gather(*(c.aclose() for c in clients), return_exceptions=True)

    async def _sync_group(self, group: str, targets: list[Target]) -> None:
        """Make ``group`` own exactly ``targets``: add new ones, drop gone or changed ones.

        A target whose id and settings are unchanged is kept as it is, state and all.
        An id already owned by another group stays with that group (the config's own
        targets win over discovered duplicates). When sharded, only this shard's
        targets are kept; discoveries run on every shard, each keeping its share of
        what they find (see exporter.sharding).
        """
        owned = self.groups.setdefault(group, set())
        wanted: dict[str, Target] = {}
        for t in targets:
            if not isinstance(t, Discovery) and not self.shard.owns(t.id):
                continue
            if any(t.id in ids for g, ids in self.groups.items() if g != group):
                continue
            wanted.setdefault(t.id, t)
        for tid in list(owned):
            if tid not in wanted or wanted[tid].settings != self.targets[tid].settings:
                await self._remove_target(tid)
        for tid, target in wanted.items():
            if tid not in self.targets:
                self._add_target(target, group)
            elif self.targets[tid] is not target:
                self.targets[tid].update_from(target)

    def _add_target(self, target: Target, group: str) -> None:
        assert self.scheduler is not None and self.config is not None
        self.targets[target.id] = target
        self.groups[group].add(target.id)
        self.health[target.id] = TargetHealth()
        self._publish_health(target)
        offset = start_offset(target.id, target.interval, self.config.global_.start_spread)
        start = datetime.now(UTC) + timedelta(seconds=offset)
        self.scheduler.add_job(
            self._poll_job,
            IntervalTrigger(seconds=target.interval, start_date=start),
            args=[target],
            id=target.id,
            # Explicit: a start_date already past when the trigger is first asked (a
            # phase of 0) would otherwise put the first poll a whole interval away.
            next_run_time=start,
            max_instances=1,
            coalesce=True,
            misfire_grace_time=max(1, int(target.interval)),
            replace_existing=True,
        )

    async def _remove_target(self, tid: str) -> None:
        assert self.scheduler is not None
        target = self.targets.pop(tid)
        for ids in self.groups.values():
            ids.discard(tid)
        # A discovery takes the targets it found with it.
        for child in list(self.groups.pop(tid, ())):
            await self._remove_target(child)
        self.health.pop(tid, None)
        if self.scheduler.get_job(tid) is not None:
            self.scheduler.remove_job(tid)
        self.store.remove(tid)
        self.store.remove(health_key(tid))
        try:
            await target.close()
        except Exception:
            log.exception("closing a removed target failed", extra={"target": tid})

    # --- polling ---------------------------------------------------------------------

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
        now = time.time()
        t0 = time.perf_counter()
        data: Rendered | None = None
        reason = detail = ""
        # Requests and their retries end by the poll deadline (a little before the
        # interval, so their own reason wins); the timeout is the hard stop behind it
        # (a scope, not wait_for: no second task per poll).
        token = POLL_DEADLINE.set(time.monotonic() + target.interval * POLL_BUDGET_FRACTION)
        try:
            async with asyncio.timeout(target.interval):
                data = await target.poll(now)
        except UpstreamError as exc:
            reason, detail = exc.reason, exc.detail
        except TimeoutError:
            reason, detail = "timeout", f"poll did not finish within {target.interval:g}s"
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            reason, detail = "internal_error", f"{type(exc).__name__}: {exc}"
            log.exception("poll failed unexpectedly", extra={"target": target.id})
        finally:
            POLL_DEADLINE.reset(token)
        duration = time.perf_counter() - t0
        if self.targets.get(target.id) is not target:
            return  # removed or replaced by a reload while this poll ran
        health = self.health[target.id]
        if data is not None:
            if health.polled and not health.up:
                log.info("target recovered", extra={"target": target.id})
            health.record_success(now, duration, data.series)
            if self.shard.owns(target.id):
                self.store.put(target.id, data)
            if isinstance(target, Discovery):
                await self._sync_group(target.id, target.found)
        else:
            # Warn when a target goes down or its reason changes; repeats go to debug so
            # a long outage does not flood the log at every poll.
            changed = health.up or not health.polled or health.last_error_reason != reason
            health.record_failure(now, duration, reason, SCRUBBER.scrub(detail))
            log.log(
                logging.WARNING if changed else logging.DEBUG,
                "poll failed",
                extra={"target": target.id, "reason": reason, "detail": health.last_error_detail},
            )
            self._expire_stale_data(target.id, now)
        self._publish_health(target)

    def _expire_stale_data(self, tid: str, now: float) -> None:
        """A failing target keeps its last values (left in the store) for ``stale_grace``, then they go."""
        assert self.config is not None
        health = self.health[tid]
        if now - health.last_success_timestamp > self.config.global_.stale_grace:
            self.store.remove(tid)
            health.series = 0

    def _publish_health(self, target: Target) -> None:
        if self.shard.owns(target.id):  # else a discovery run here only for its targets
            self.store.put(
                health_key(target.id), render_health(target.id, target.source, self.health[target.id])
            )

    # --- what the HTTP server asks ---------------------------------------------------

    def ready(self) -> bool:
        return all(h.polled for h in self.health.values())

    def global_metrics(self) -> Rendered:
        return merge(
            [
                render_global(self.stats, self.reload_state, len(asyncio.all_tasks())),
                self.shard.render(len(self.targets)),
            ]
        )
