"""Synthetic queue probe: submit a tiny job, follow it, report what a caller sees.

One poll of a probe target is one probe: ``POST /queue/submit``, then
``GET /queue/status`` every ``status_poll_interval`` until the job reaches a terminal
status (``done``, ``failed``, ``canceled``) or the probe timeout passes. Translation
of what comes back is in ``together_probe_translate``.

The probe must never leave a job behind, and never run two jobs of one model at once:

- on timeout, a job still pending is canceled (``POST /queue/cancel``; a 409 means
  it is no longer pending and its current status is read from the answer);
- a job that cannot be canceled (running) or whose cancel failed stays recorded as
  in flight; the next probe of that model first settles it and does not submit a
  new job while it is unsettled (a ``previous_job_in_flight`` failure);
- when a poll is interrupted (the daemon's per-poll deadline, shutdown, or the
  target being removed on reload) a cleanup task cancels the job, including a job
  whose submit was still in flight: the submit is shielded so its answer, and the
  job id in it, is not lost; ``close()`` waits for that cleanup, bounded.

Every probe failure (submit errors, no status, unknown status, missing timestamps)
is an outcome with a reason: the poll itself succeeds, so ``success`` drops to 0
at once instead of the previous result being kept as stale data.

The target's ``state`` (counters, phase histograms) lives as long as the target: a
reload keeps it, unless it changes the probe's buckets. For a
job still unfinished at the timeout the probe notes when it last saw it unfinished,
the lower bound its histograms record (``probe_translate.unfinished``).
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from typing import Any

from exporter.core.errors import UpstreamError
from exporter.core.exposition import Rendered
from exporter.core.scope import DEFAULT_SCOPE, Scope, target_id
from exporter.sources.base import Target
from exporter.sources.together.api import PROBE_SOURCE as SOURCE
from exporter.sources.together.api import TogetherAPI
from exporter.sources.together.probe_translate import (
    DEFAULT_BUCKETS,
    TERMINAL,
    JobStatus,
    Outcome,
    ProbeState,
    failure,
    judge,
    samples,
    unfinished,
)

log = logging.getLogger("exporter.probe")

# Bound on the cancel sent while closing (shutdown, removal), so shutdown stays quick.
CLOSE_TIMEOUT = 1.5
# A leftover job still unsettled after this long is forgotten (logged), so a vendor
# that never finishes a job cannot stop the probe for ever.
LEFTOVER_MAX_AGE = 3600.0
# The least time given to one request near a deadline.
MIN_REQUEST_TIMEOUT = 0.5


@dataclass(frozen=True)
class ProbeSettings:
    """Everything from the config that shapes a model's probes (its target's ``settings``).

    The payload and info objects are kept as canonical JSON text, so the settings stay
    hashable and compare equal when the config's objects do.
    """

    payload_json: str
    priority: int
    info_json: str
    interval: float
    timeout: float
    status_poll_interval: float
    request_timeout: float
    buckets: tuple[float, ...] = DEFAULT_BUCKETS
    scope: Scope = DEFAULT_SCOPE

    @classmethod
    def build(
        cls,
        payload: dict[str, Any],
        priority: int,
        info: dict[str, Any],
        *,
        interval: float,
        timeout: float,
        status_poll_interval: float,
        request_timeout: float,
        buckets: tuple[float, ...] = DEFAULT_BUCKETS,
        scope: Scope = DEFAULT_SCOPE,
    ) -> ProbeSettings:
        return cls(
            json.dumps(payload, sort_keys=True),
            priority,
            json.dumps(info, sort_keys=True),
            interval,
            timeout,
            status_poll_interval,
            min(request_timeout, timeout),
            tuple(buckets),
            scope,
        )

    def submit_body(self, model: str) -> dict[str, Any]:
        return {
            "model": model,
            "payload": json.loads(self.payload_json),
            "priority": self.priority,
            "info": json.loads(self.info_json),
        }


@dataclass(frozen=True)
class InFlight:
    request_id: str
    submitted_at: float  # event-loop (monotonic) time


# A probed queue: (account, model). Two accounts probing one model are two queues.
ProbeKey = tuple[str, str]


class InFlightJobs:
    """Probe jobs submitted and not yet settled, by account and model.

    Shared by successive targets of one model, so a target rebuilt by a reload still
    sees (and settles) the job its predecessor left running.
    """

    def __init__(self) -> None:
        self._jobs: dict[ProbeKey, InFlight] = {}

    def get(self, model: ProbeKey) -> InFlight | None:
        return self._jobs.get(model)

    def set(self, model: ProbeKey, job: InFlight) -> None:
        self._jobs[model] = job

    def pop(self, model: ProbeKey, request_id: str) -> bool:
        """Forget the job; True if it was the one recorded (so it is counted once)."""
        job = self._jobs.get(model)
        if job is None or job.request_id != request_id:
            return False
        del self._jobs[model]
        return True


IN_FLIGHT = InFlightJobs()


class ProbeTarget(Target):
    source = SOURCE

    def __init__(
        self, api: TogetherAPI, model: str, settings: ProbeSettings, *, registry: InFlightJobs = IN_FLIGHT
    ) -> None:
        self._init_from_settings(
            target_id(SOURCE, settings.scope.account, model), settings, timeout=settings.request_timeout
        )
        self.api = api
        self.opts = settings
        self.model = model
        self.key: ProbeKey = (settings.scope.account, model)
        self.registry = registry
        self.state = ProbeState(settings.buckets)
        self._task: asyncio.Task[Any] | None = None
        self._submit: asyncio.Task[str] | None = None
        self._closed = False
        self._cleanups: set[asyncio.Task[None]] = set()

    def reconfigure(self, new: Target) -> bool:
        """New settings apply from the next probe; new buckets need new histograms, so
        they replace the target (its counts start again)."""
        if not isinstance(new, ProbeTarget) or new.opts.buckets != self.opts.buckets:
            return False
        if not super().reconfigure(new):
            return False
        self.opts = new.opts
        return True

    # --- one probe -------------------------------------------------------------------

    async def poll(self, now: float) -> Rendered:
        if self._closed:
            raise UpstreamError("closed", "the probe target was removed")
        self._task = asyncio.current_task()
        try:
            outcome = await self._probe()
        except asyncio.CancelledError:
            self._start_cleanup()
            task = asyncio.current_task()
            if self._closed and task is not None and task.uncancel() == 0:
                raise UpstreamError("closed", "the probe target was removed during a probe") from None
            raise
        finally:
            self._task = None
        self.state.record(outcome)
        if not outcome.success:
            log.warning(
                "probe failed",
                extra={"model": self.model, "reason": outcome.reason, "detail": outcome.detail},
            )
        return self.scope.render(samples(self.model, self.state))

    async def _probe(self) -> Outcome:
        loop = asyncio.get_running_loop()
        started = loop.time()
        # The daemon cancels a poll that outlives the interval (its data would then be
        # the previous probe's, kept as stale): end the wait early enough to cancel.
        margin = min(MIN_REQUEST_TIMEOUT, self.interval / 10)
        hard_end = started + self.interval - margin
        blocker = await self._settle_leftover()
        if blocker:
            return failure("previous_job_in_flight", blocker)

        deadline = min(loop.time() + self.opts.timeout, hard_end - margin)
        submit = asyncio.ensure_future(
            self.api.submit(self.opts.submit_body(self.model), timeout=self.timeout)
        )
        # Until its answer is taken here: a poll interrupted meanwhile leaves it to the cleanup.
        self._submit = submit
        try:
            request_id = await asyncio.shield(submit)
        except UpstreamError as exc:
            # An answer without a job id fails as submit_invalid_response.
            self._submit = None
            return failure(f"submit_{exc.reason}", exc.detail)
        self._submit = None
        accepted = loop.time()
        self.registry.set(self.key, InFlight(request_id, accepted))

        last: JobStatus | None = None
        last_error: UpstreamError | None = None
        # When the last status request that found the job unfinished was sent.
        unfinished_at: float | None = None
        while True:
            asked = loop.time()
            budget = min(self.timeout, max(MIN_REQUEST_TIMEOUT, deadline - asked))
            try:
                last = await self.api.status(request_id, self.model, timeout=budget)
                last_error = None
                if last.terminal:
                    break
                unfinished_at = asked
            except UpstreamError as exc:
                last_error = exc
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            await asyncio.sleep(min(self.opts.status_poll_interval, remaining))

        if last is not None and last.terminal:
            self._settled(request_id, last.status)
            return judge(last)
        waited = None if unfinished_at is None else unfinished_at - accepted
        outcome = unfinished(last, last_error.reason if last_error else None, waited)
        budget = min(self.timeout, max(MIN_REQUEST_TIMEOUT, hard_end - loop.time()))
        await self._cancel(request_id, budget)
        return outcome

    # --- requests --------------------------------------------------------------------

    async def _cancel(self, request_id: str, timeout: float) -> str | None:
        """Cancel a job; return its status after the attempt (None if unknown).

        A terminal status settles the job. A job that is running stays recorded as in
        flight until a later probe sees it finish.
        """
        try:
            status = await self.api.cancel(request_id, self.model, timeout=timeout)
        except UpstreamError as exc:
            if exc.reason == "not_found":
                # The vendor does not know the job: nothing is left to cancel.
                self.registry.pop(self.key, request_id)
                return None
            log.warning(
                "could not cancel probe job",
                extra={"model": self.model, "request_id": request_id, "reason": exc.reason},
            )
            return None
        if status in TERMINAL:
            self._settled(request_id, status)
            log.info(
                "probe job settled by cancel",
                extra={"model": self.model, "request_id": request_id, "status": status},
            )
        return status

    def _settled(self, request_id: str, status: str) -> None:
        """The job reached ``status`` (terminal): forget it and count it, once."""
        if self.registry.pop(self.key, request_id):
            self.state.count_job(status)

    async def _settle_leftover(self) -> str:
        """Settle a job an earlier probe left unfinished; return why it blocks, or ''."""
        job = self.registry.get(self.key)
        if job is None:
            return ""
        loop = asyncio.get_running_loop()
        if loop.time() - job.submitted_at > LEFTOVER_MAX_AGE:
            log.warning(
                "forgetting a probe job that never settled",
                extra={"model": self.model, "request_id": job.request_id},
            )
            self.registry.pop(self.key, job.request_id)
            return ""
        try:
            status = await self.api.status(job.request_id, self.model, timeout=self.timeout)
        except UpstreamError as exc:
            if exc.reason == "not_found":
                self.registry.pop(self.key, job.request_id)
                return ""
            return f"status of previous job {job.request_id} unavailable: {exc.reason}"
        if status.terminal:
            self._settled(job.request_id, status.status)
            return ""
        if status.status == "pending" and await self._cancel(job.request_id, self.timeout) in TERMINAL:
            return ""
        return f"previous job {job.request_id} is still {status.status[:40]}"

    # --- interruption and removal ----------------------------------------------------

    def _start_cleanup(self) -> None:
        """Cancel this model's in-flight job in the background (poll interrupted, or close)."""
        submit, self._submit = self._submit, None
        if submit is None and (self.registry.get(self.key) is None or self._cleanups):
            return  # nothing recorded, or a running cleanup already handles the recorded job
        task = asyncio.get_running_loop().create_task(self._cleanup(submit))
        self._cleanups.add(task)
        task.add_done_callback(self._cleanups.discard)

    async def _cleanup(self, submit: asyncio.Task[str] | None) -> None:
        if submit is not None:
            try:
                rid: str | None = await asyncio.wait_for(submit, CLOSE_TIMEOUT)
            except (UpstreamError, TimeoutError, asyncio.CancelledError):
                rid = None
            if rid is not None:
                self.registry.set(self.key, InFlight(rid, asyncio.get_running_loop().time()))
        job = self.registry.get(self.key)
        if job is not None and self.api.configured():
            await self._cancel(job.request_id, CLOSE_TIMEOUT)

    async def close(self) -> None:
        """Stop probing: interrupt a running probe and cancel its job if still pending.

        Bounded by about twice CLOSE_TIMEOUT, so shutdown is not held up by a slow vendor.
        """
        self._closed = True
        task = self._task
        if task is not None and not task.done() and task is not asyncio.current_task():
            task.cancel()
            await asyncio.wait({task}, timeout=CLOSE_TIMEOUT)
        else:
            self._start_cleanup()
        if self._cleanups:
            await asyncio.wait(set(self._cleanups), timeout=CLOSE_TIMEOUT + 0.5)
