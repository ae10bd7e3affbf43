"""The running exporter: config → targets → scheduled polls → snapshots in the store.

``Exporter`` wires the parts, each with one job: the vendor clients
(``exporter.engine.clients``), the set of targets and their groups (``exporter.engine.targetset``),
polling with health and staleness (``exporter.engine.poller``), the exposition cache
(``exporter.engine.store``) and the exporter's own metrics (``exporter.core.selfmetrics``). It
handles reload: the new config is loaded and checked next to the running one and
applied only when it is valid, so a bad file never leaves a half-configured daemon;
applying it changes only what it changed (targets whose ids stay are kept, with their
state, and take their new settings in place; see docs/configuration.md#reload).
The HTTP server sees it through the read-only view in ``exporter.web.server``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from exporter.config import ConfigBase, ConfigError, LoadedConfig, load_config
from exporter.config.model import Config
from exporter.core.logs import SCRUBBER
from exporter.core.selfmetrics import SelfMetrics
from exporter.core.sharding import Shard
from exporter.engine.clients import VendorClients
from exporter.engine.health import TargetHealth
from exporter.engine.poller import Poller, PollSettings, close_target
from exporter.engine.reloadstate import ReloadState, shown_problems
from exporter.engine.store import Store
from exporter.engine.targets import build_targets
from exporter.engine.targetset import STATIC, TargetSet
from exporter.sources.base import Target
from exporter.sources.relay.stats import RelayCollector

log = logging.getLogger("exporter.engine.daemon")

T = TypeVar("T")

# Longest wait for targets to close at shutdown.
STOP_CLOSE_SECONDS = 0.8
# How much longer than the longest poll interval a replaced client stays open: the
# cleanup of an interrupted probe may still use it for a few seconds after its poll.
CLIENT_GRACE_MARGIN = 5.0


class Exporter:
    def __init__(self, config_path: Path, shard: Shard | None = None) -> None:
        self.config_path = config_path
        self.started_at = time.time()
        self._reload_state = ReloadState(ok=False)
        # Which targets this replica polls; the default shard owns them all.
        self.shard = shard or Shard()
        self.store = Store()
        self.targets = TargetSet(self.shard)
        self.metrics = SelfMetrics(self.shard, self.target_count)
        # The relays' own metrics, read from the relay targets when scraped.
        self.metrics.registry.register(RelayCollector(lambda: self.targets))
        # Per-vendor request budgets are for the whole account: each shard's clients get
        # their share (the budget's rate divided by the number of shards).
        self.clients = VendorClients(self.metrics.upstream, self.shard.total)
        self.poller = Poller(self.targets, self.store, self.shard)
        self._reload_lock = asyncio.Lock()
        # What the reload under way found wrong (for the landing page; scrubbed there).
        self._problems: list[str] = []
        self._config: ConfigBase | None = None
        # The model a reload reads the file with: the running config's (a test may run
        # a vendor of its own).
        self._model: type[ConfigBase] = Config
        # Other files reloaded together with the config (the web config): each reads
        # its file and raises ValueError if it is unusable, or returns how to apply it.
        # Nothing is applied unless every file is valid.
        self.companions: list[Callable[[], Callable[[], None]]] = []

    @property
    def total_shards(self) -> int:
        """How many replicas share the targets; each vendor budget is divided by it."""
        return self.shard.total

    # --- lifecycle -------------------------------------------------------------------

    async def start(self, loaded: LoadedConfig[ConfigBase]) -> None:
        self.poller.start()
        await self._apply(loaded)
        now = time.time()
        self._reload_state = ReloadState(ok=True, attempted_at=now, loaded_at=now)

    async def stop(self) -> None:
        """Stop polling: cancel in-flight polls (and their requests), close targets and clients."""
        polls = await self.poller.stop()
        log.info("polling stopped", extra={"cancelled_polls": polls})
        # Targets release what they hold (a probe cancels its job) while the clients are
        # still open; bounded, so that shutdown stays within two seconds.
        closing = asyncio.gather(*(close_target(t) for t in self.targets))
        try:
            await asyncio.wait_for(closing, timeout=STOP_CLOSE_SECONDS)
        except TimeoutError:
            log.warning("targets did not close in time", extra={"seconds": STOP_CLOSE_SECONDS})
        await self.clients.aclose()

    async def reload(self) -> tuple[bool, str]:
        """Load the config file again; keep the running config if the new one is invalid.

        The answer says what went wrong in general terms only (it goes to whoever asked
        over HTTP); the problems, with their lines, go to the log and to the landing page.
        """
        self._problems = []
        ok, message = await self._reload()
        now = time.time()
        loaded_at = now if ok else self._reload_state.loaded_at
        self._reload_state = ReloadState(
            ok,
            now,
            loaded_at,
            reloaded=True,
            message="" if ok else message,
            problems=shown_problems(self._problems),
            problem_count=len(self._problems),
        )
        return ok, message

    async def _reload(self) -> tuple[bool, str]:
        async with self._reload_lock:
            try:
                loaded = await off_loop(lambda: load_config(self.config_path, model=self._model))
            except ConfigError as exc:
                self.metrics.reload_failed()
                self._problems = [str(p) for p in exc.problems]
                for p in exc.problems:
                    log.error("config reload failed, keeping the running config", extra={"problem": str(p)})
                return False, (
                    f"config reload failed: {len(exc.problems)} problem(s) in the config file "
                    "(listed on the landing page and in the exporter's log); "
                    "keeping the running config"
                )
            if (
                loaded.config.watches_nothing()
                and self._config is not None
                and not self._config.watches_nothing()
            ):
                self.metrics.reload_failed()
                log.warning(
                    "config reload refused, keeping the running config: the new file watches nothing "
                    "(no target, no discovery), as an empty or half-written file would; to stop "
                    "everything on purpose, restart with it",
                    extra={"file": str(self.config_path)},
                )
                return False, (
                    "config reload refused: the new config watches nothing (an empty or half-written "
                    "file?); keeping the running config"
                )
            applies = []
            for prepare in self.companions:
                try:
                    applies.append(await off_loop(prepare))
                except ValueError as exc:
                    self._problems = [str(exc)]
                    self.metrics.reload_failed()
                    log.error(
                        "config reload failed, keeping the running config",
                        extra={"problem": SCRUBBER.scrub(str(exc))},
                    )
                    return False, (
                        "config reload failed: the web config is invalid (see the landing page or the "
                        "exporter's log); "
                        "keeping the running config"
                    )
            try:
                await self._apply(loaded)
                for apply in applies:
                    apply()
            except Exception as exc:
                # Building targets from a valid file should not fail; if it does, say so
                # and keep serving whatever is running.
                self.metrics.reload_failed()
                log.exception("config reload failed while applying it")
                return False, f"applying the config failed: {type(exc).__name__}"
            log.info("config reloaded", extra={"targets": len(self.targets)})
            return True, "config reloaded"

    async def _apply(self, loaded: LoadedConfig[ConfigBase]) -> None:
        # First, so that the scrubber knows the new keys before anything is logged. A
        # replaced client closes once the polls that may still use it have ended: a poll
        # (its retries included) ends within its interval.
        grace = max((t.interval for t in self.targets), default=0.0) + CLIENT_GRACE_MARGIN
        for vendor, account in self.clients.update(loaded, grace):
            # A refusal of the old key says nothing of the new one's.
            self.poller.key_changed(vendor, account)
        for warning in loaded.warnings:
            log.warning("config warning", extra={"problem": str(warning)})
        self._config = loaded.config
        self._model = type(loaded.config)
        glob = loaded.config.global_
        self.poller.settings = PollSettings(start_spread=glob.start_spread, stale_grace=glob.stale_grace)
        await self.poller.sync(STATIC, build_targets(loaded.config, self.clients.current))
        self.metrics.reload_succeeded(time.time())

    # --- what the HTTP server reads (exporter.web.server.ExporterView) -------------------

    def target_count(self) -> int:
        return len(self.targets)

    def reload_state(self) -> ReloadState:
        return self._reload_state

    def targets_with_health(self) -> list[tuple[Target, TargetHealth]]:
        """Every target that has health yet, by id."""
        health = self.poller.health
        return sorted(
            ((t, health[t.id]) for t in self.targets if t.id in health), key=lambda pair: pair[0].id
        )

    def unpolled_targets(self) -> int:
        """Targets whose first poll has not finished: the exporter is ready at 0."""
        return sum(1 for h in self.poller.health.values() if not h.polled)

    def ready(self) -> bool:
        return self.unpolled_targets() == 0

    def exposition_parts(self) -> list[bytes]:
        """The exposition as parts to send one after the other: the targets' cached
        families, then the exporter's own metrics rendered now."""
        return [*self.store.exposition_parts(), self.metrics.render()]

    def exposition_gzip_parts(self) -> list[bytes]:
        """The same exposition as one gzip member (only what changed is compressed again),
        in parts to send one after the other: the cached ones are shared between scrapes."""
        return self.store.exposition_gzip_parts(self.metrics.render())


async def off_loop(fn: Callable[..., T], *args: object) -> T:
    """Run ``fn`` on a thread of its own, marked daemon, and wait for it.

    Reading and parsing a config file can take seconds; on the event loop it would
    stall scrapes. ``asyncio.to_thread`` would do, except that the process then waits
    for the thread at exit, and a shutdown must not wait for a reload it abandons.
    """
    loop = asyncio.get_running_loop()
    done: asyncio.Future[T] = loop.create_future()

    def hand_over(settle: Callable[[], None]) -> None:
        with contextlib.suppress(RuntimeError):  # the loop has closed: nobody is waiting
            loop.call_soon_threadsafe(lambda: None if done.cancelled() else settle())

    def work() -> None:
        try:
            result = fn(*args)
        except BaseException as exc:  # handed to the awaiting task, which decides
            error = exc
            hand_over(lambda: done.set_exception(error))
        else:
            hand_over(lambda: done.set_result(result))

    threading.Thread(target=work, name="config-reload", daemon=True).start()
    return await done
