"""Together fine-tune jobs: training metrics read incrementally, and job discovery.

``JobTarget`` polls one job: ``GET /fine-tunes/{id}`` (status, model, progress), then
``GET /fine-tunes/{id}/metrics``. The first metrics read takes the history once
(sampled down to ``resolution`` train rows when set); every later read asks only for
rows logged since the previous read, by the vendor's log time
(``logged_at_from=<previous read's vendor time - overlap>``), so the bytes moved per
poll follow the new rows, not the length of the run, and a row logged late for an
older step (an evaluation that outlasts a poll) is still read. Rows the overlap
returns twice are recognised and applied once. Only the newest value per key is kept
(``together_finetune_translate.MetricsState``).

When the job reaches a terminal status its metrics are read one last time; its
series then stay for ``retention`` and go, and the job is not asked about again: the
target is retired (``expired``), is polled no more, and shows as finished on /targets.

A 404 marks the target down with reason ``not_found`` and backs off: the next
requests wait 2, 4, 8 … poll intervals (at most ``MAX_BACKOFF``), so a mistyped id
does not cost a request every poll. Skipped polls report the same reason. A 404
from the metrics of a job that is still ``pending`` or ``queued`` means no rows yet.

``FineTuneDiscovery`` lists ``GET /fine-tunes`` and yields a ``JobTarget`` for each job
in the configured statuses. A job it found keeps its target after it leaves those
statuses by finishing, until the target's retention has run out.

Bounds: a logged key longer than ``max_key_length`` is left out (its values counted);
a list that would make more than ``max_targets`` job targets fails the discovery with
``too_many_targets``, which keeps the jobs it found before. Both count in
``inference_exporter_limit_hits_total``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from exporter.core.errors import UpstreamError
from exporter.core.exposition import Rendered
from exporter.core.scope import DEFAULT_SCOPE, Scope, target_id
from exporter.sources.base import DEFAULT_MAX_TARGETS, Discovery, Target, counted_limits, too_many_targets
from exporter.sources.together.api import FINETUNE_DISCOVERY_SOURCE as DISCOVERY_SOURCE
from exporter.sources.together.api import FINETUNE_SOURCE as SOURCE
from exporter.sources.together.api import TogetherAPI
from exporter.sources.together.finetune import names
from exporter.sources.together.finetune import translate as tr

MAX_BACKOFF = 3600.0


@dataclass(frozen=True)
class JobSettings:
    """Everything from the config that shapes a job's polls (its target's ``settings``)."""

    interval: float
    timeout: float
    resolution: int | None
    retention: float
    max_keys: int
    # Seconds of vendor log time each read asks for again (see ``apply_rows``).
    overlap: float = 60.0
    scope: Scope = DEFAULT_SCOPE
    max_key_length: int = tr.DEFAULT_MAX_KEY_LENGTH


@dataclass(frozen=True)
class FineTuneDiscoverySettings:
    """What the config says about job discovery (its target's ``settings``): the
    statuses watched, its own schedule, and the settings each job found is polled with."""

    statuses: frozenset[str]
    interval: float
    timeout: float
    jobs: JobSettings
    scope: Scope = DEFAULT_SCOPE
    max_targets: int = DEFAULT_MAX_TARGETS


class JobTarget(Target):
    source = SOURCE

    def __init__(self, api: TogetherAPI, job_id: str, settings: JobSettings) -> None:
        self._init_from_settings(target_id(SOURCE, settings.scope.account, job_id), settings)
        self.api = api
        self.job_id = job_id
        self.opts = settings
        self.state = tr.MetricsState()
        self.info: tr.JobInfo | None = None
        self.finished_at: float | None = None
        self._not_found = 0
        self._retry_at = 0.0
        # What a finished job keeps exporting until its retention runs out, and whether a
        # reload since asks for it to be rendered again.
        self._last: Rendered = Rendered()
        self._rerender = False

    def reconfigure(self, new: Target) -> bool:
        if not isinstance(new, JobTarget) or not super().reconfigure(new):
            return False
        self.opts = new.opts
        # What it holds was kept under the old bounds and filter: held to the new ones at once.
        self.state = tr.rebound(
            self.state, self.opts.max_keys, keep_key=self._keep_key(), max_key_length=self.opts.max_key_length
        )
        # A finished job's last series take the new labels and limits at its next poll,
        # which fails (``too_many_series``) if they no longer fit, as any poll would:
        # rendered here, a lowered ``max_series_per_target`` would fail the reload.
        self._rerender = self.finished_at is not None and bool(self._last.lines)
        return True

    def kept_until(self) -> float | None:
        return None if self.finished_at is None else self.finished_at + self.opts.retention

    async def poll(self, now: float) -> Rendered:
        if self.finished_at is not None:
            if self.expired(now):
                self._last = Rendered()
            elif self._rerender:
                with counted_limits(self.api.stats, SOURCE):
                    self._last = self._render(self.info)
                self._rerender = False
            return self._last
        if now < self._retry_at:
            raise UpstreamError(
                "not_found", f"job {self.job_id} answered 404; next try in {self._retry_at - now:.0f}s"
            )
        try:
            with counted_limits(self.api.stats, SOURCE):
                rendered = await self._poll(now)
        except UpstreamError as exc:
            if exc.reason == "not_found":
                self._not_found += 1
                backoff = min(self.interval * 2 ** min(self._not_found, 30), max(MAX_BACKOFF, self.interval))
                self._retry_at = now + backoff - self.interval / 2
            raise
        self._not_found = 0
        self._retry_at = 0.0
        return rendered

    async def _poll(self, now: float) -> Rendered:
        info = await self.api.fine_tune(self.job_id, timeout=self.timeout)
        try:
            rows, read_at = await self.api.fine_tune_metrics(
                self.job_id,
                timeout=self.timeout,
                logged_at_from=self.state.cursor,
                resolution=self.opts.resolution,
            )
        except UpstreamError as exc:
            # The job exists (its object just answered): a 404 for the metrics of a job
            # that has not started training means "nothing logged yet", not a bad id.
            if exc.reason != "not_found" or info.status not in tr.NOT_STARTED:
                raise
            rows, read_at = [], None
        # The vendor's clock when it can tell (its Date header), so that a skewed clock
        # here cannot move the cursor past rows the vendor has not shown us yet.
        if read_at is None:
            read_at = now
        # Commit only after both requests succeeded, so a failed poll re-reads the same rows.
        state = tr.apply_rows(
            self.state,
            rows,
            now,
            self.opts.max_keys,
            read_at=read_at,
            overlap=self.opts.overlap,
            keep_key=self._keep_key(),
            max_key_length=self.opts.max_key_length,
        )
        if state.long_keys > self.state.long_keys:
            self.api.stats.limit_hit(SOURCE, tr.MAX_KEY_LENGTH_KEY, state.long_keys - self.state.long_keys)
        self.state = state
        self.info = info
        rendered = self._render(info)
        if info.terminal:
            self.finished_at = now
            self._last = rendered
        return rendered

    def _keep_key(self) -> Callable[[str], bool] | None:
        """Whether the metric filter keeps a logged key's family (None: no filter)."""
        keep = self.scope.filter
        return (lambda key: keep.keeps(names.metric_name(key))) if keep.active else None

    def _render(self, info: tr.JobInfo | None) -> Rendered:
        if info is None:
            return Rendered()
        rendered = self.scope.render(tr.job_samples(self.job_id, info, self.state))
        rendered.filtered += len(self.state.filtered_keys)
        return rendered


class FineTuneDiscovery(Discovery):
    """The account's fine-tune list, read for the jobs in the watched statuses. What it
    watches is read from ``settings`` at each poll, so a reload applies in place."""

    source = DISCOVERY_SOURCE
    settings: FineTuneDiscoverySettings

    def __init__(self, api: TogetherAPI, settings: FineTuneDiscoverySettings) -> None:
        self._init_from_settings(target_id(DISCOVERY_SOURCE, settings.scope.account, "fine-tunes"), settings)
        self.api = api
        self.jobs: dict[str, JobTarget] = {}
        # Jobs whose retention ran out while still listed in a watched status (when
        # terminal statuses are watched): not picked up again.
        self.done: set[str] = set()

    @property
    def statuses(self) -> frozenset[str]:
        return self.settings.statuses

    @property
    def max_targets(self) -> int:
        return self.settings.max_targets

    @property
    def job_settings(self) -> JobSettings:
        return self.settings.jobs

    def rebuild(self, found: Target) -> Target:
        if not isinstance(found, JobTarget):
            return found
        return JobTarget(self.api, found.job_id, self.job_settings)

    async def discover(self, now: float) -> tuple[Rendered, list[Target]]:
        with counted_limits(self.api.stats, DISCOVERY_SOURCE):
            return await self._discover(now)

    async def _discover(self, now: float) -> tuple[Rendered, list[Target]]:
        listed = await self.api.fine_tunes(timeout=self.timeout)
        rendered = self.scope.render(tr.list_samples(listed))
        status_of = dict(listed)
        done = self.done & status_of.keys()
        wanted: list[tuple[str, JobTarget | None]] = []
        for job_id, status in status_of.items():
            known = self.jobs.get(job_id)
            if known is not None and known.expired(now):
                done.add(job_id)
                continue
            if job_id in done:
                continue
            if status in self.statuses:
                wanted.append((job_id, known))
            elif known is not None and status in tr.TERMINAL:
                # Finished since we found it: keep it for its final read and retention.
                wanted.append((job_id, known))
        if len(wanted) > self.max_targets:
            raise too_many_targets(len(wanted), "jobs to watch", self.max_targets, "watch fewer statuses")
        self.done = done
        settings = self.job_settings
        # A job it holds with other settings than its own is one the target set left out
        # (the config named the job, or another shard polls it), which a reload that changed
        # the discovery's settings did not reach (its own finds take them in place): it is
        # found afresh, so that it comes with the current settings once the set takes it.
        self.jobs = {
            job_id: known
            if known is not None and known.settings == settings
            else JobTarget(self.api, job_id, settings)
            for job_id, known in wanted
        }
        return rendered, list(self.jobs.values())
