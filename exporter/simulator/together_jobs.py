"""Together queue jobs: ``POST /v1/queue/submit``, ``GET /v1/queue/status``, ``POST /v1/queue/cancel``.

The lifecycle follows the vendor's documentation: a job is ``pending`` until a worker
claims it (strict priority, then FIFO), then ``running``, then ``done`` or
``failed``. A worker that claims a job and never reports back loses it after the
claim timeout: the job returns to the queue with ``retries`` + 1, and after 3 retries
it is failed for good. A job the model fails is not retried. Only a pending job can
be canceled; otherwise cancel answers 409 with the current status.

Time is simulated lazily: each request first replays what the workers did since the
last request (an event-ordered replay on the shared clock), so the timestamps are
exact and consistent without a background task.

Unscripted, each job's queue wait and run time are drawn from the default scenario
(``scenario.job_timing``: seeded with the model and the job's sequence number, so they
differ from job to job yet the same clock replays the same story).

Scripting (``POST /_sim/jobs``, per model; only the keys given change):
``workers`` (how many jobs run at once), ``claim_delay`` (seconds before a free
worker takes an available job), ``run_seconds`` (both fixed for every job once set;
``null`` draws them again), ``mode`` (``ok``: jobs end done;
``fail``: the model fails them; ``stopped``: no worker claims anything),
``stalls`` (how many claims of each job time out before it runs), ``claim_timeout``,
and faults: ``submit_delay`` (the job is created, its answer comes late), ``submit_status`` / ``status_status`` / ``cancel_status`` (answer that
endpoint with this HTTP status), ``status_override`` (report this status value),
``omit`` (fields left out of status answers), or ``{"clear": true}``.
``GET /_sim/jobs?model=&status=`` lists jobs, so tests can prove none is left behind.
"""

from __future__ import annotations

import asyncio
import math
import uuid
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import Any, ClassVar

from aiohttp import web

from exporter.simulator import scenario
from exporter.simulator.errors import queue_error
from exporter.simulator.state import SimState

MAX_RETRIES = 3
# Finished jobs kept per model for status queries; older ones are dropped.
KEEP_FINISHED = 1000
TERMINAL = ("done", "failed", "canceled")


@dataclass
class Behaviour:
    """How one model's workers and API behave; everything here is scriptable."""

    workers: int = 1
    # None: drawn per job (see Job.drawn_wait, drawn_run); a number: the same for every job.
    claim_delay: float | None = None
    run_seconds: float | None = None
    mode: str = "ok"  # ok | fail | stopped
    stalls: int = 0
    claim_timeout: float = 1.0
    submit_status: int | None = None
    # Seconds the submit answer is held back after the job is created (a slow API).
    submit_delay: float = 0.0
    status_status: int | None = None
    cancel_status: int | None = None
    status_override: str | None = None
    omit: list[str] = field(default_factory=list)


@dataclass
class Job:
    request_id: str
    model: str
    payload: dict[str, Any]
    info: dict[str, Any]
    priority: int
    seq: int
    created_at: float
    available_at: float
    status: str = "pending"
    claimed_at: float | None = None
    done_at: float | None = None
    retries: int = 0
    claims: int = 0
    stalling: bool = False
    event_at: float = math.inf
    # This job's own claim delay and run time, used while the behaviour leaves them unset.
    drawn_wait: float = 0.3
    drawn_run: float = 0.7


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class ModelQueue:
    """One model's queue and workers, replayed up to the clock on demand."""

    def __init__(self, now: float, model: str = "", story: scenario.StoryClock | None = None) -> None:
        self.behaviour = Behaviour()
        self.jobs: dict[str, Job] = {}
        self.clock = now
        self.seq = 0
        self.model = model
        # Where the default scenario is (its time zero: the simulator's start).
        self.story = scenario.StoryClock(now) if story is None else story

    def add(
        self, request_id: str, payload: dict[str, Any], info: dict[str, Any], priority: int, now: float
    ) -> Job:
        """A new pending job, with its timings drawn from the default scenario."""
        self.seq += 1
        wait, run = (
            round(self.story.clock_seconds(d), 3)
            for d in scenario.job_timing(self.model, self.seq, self.story.at(now))
        )
        job = Job(
            request_id,
            self.model,
            payload,
            info,
            priority,
            self.seq,
            now,
            now,
            drawn_wait=wait,
            drawn_run=run,
        )
        self.jobs[request_id] = job
        return job

    def claim_delay(self, job: Job) -> float:
        delay = self.behaviour.claim_delay
        return job.drawn_wait if delay is None else delay

    def run_seconds(self, job: Job) -> float:
        run = self.behaviour.run_seconds
        return job.drawn_run if run is None else run

    def pending(self) -> list[Job]:
        return [j for j in self.jobs.values() if j.status == "pending"]

    def running(self) -> list[Job]:
        return [j for j in self.jobs.values() if j.status == "running"]

    def advance(self, now: float) -> None:
        b = self.behaviour
        while True:
            running = self.running()
            nxt = min(running, key=lambda j: j.event_at, default=None)
            t_run = nxt.event_at if nxt is not None else math.inf
            pending = self.pending()
            t_claim = math.inf
            if b.mode != "stopped" and len(running) < b.workers and pending:
                t_claim = max(self.clock, min(j.available_at + self.claim_delay(j) for j in pending))
            t = min(t_run, t_claim)
            if t > now:
                break
            self.clock = t
            if nxt is not None and t_run <= t_claim:
                self._finish(nxt, t)
            else:
                ready = [j for j in pending if j.available_at + self.claim_delay(j) <= t]
                self._claim(min(ready, key=lambda j: (-j.priority, j.seq)), t)
        self.clock = max(self.clock, now)
        self._prune()

    def _claim(self, job: Job, t: float) -> None:
        b = self.behaviour
        job.status = "running"
        job.claimed_at = t
        job.claims += 1
        job.stalling = job.claims <= b.stalls
        job.event_at = t + (b.claim_timeout if job.stalling else self.run_seconds(job))

    def _finish(self, job: Job, t: float) -> None:
        job.event_at = math.inf
        if job.stalling:
            # The worker never reported back: the claim timed out.
            if job.retries >= MAX_RETRIES:
                job.status, job.done_at = "failed", t
            else:
                job.retries += 1
                job.status, job.claimed_at, job.available_at = "pending", None, t
            return
        job.status = "failed" if self.behaviour.mode == "fail" else "done"
        job.done_at = t

    def _prune(self) -> None:
        finished = [j for j in self.jobs.values() if j.status in TERMINAL]
        if len(finished) > KEEP_FINISHED:
            finished.sort(key=lambda j: j.done_at or j.created_at)
            for j in finished[: len(finished) - KEEP_FINISHED]:
                del self.jobs[j.request_id]


def status_doc(job: Job, behaviour: Behaviour) -> dict[str, Any]:
    """A QueueJobStatusResponse for ``job``."""
    doc: dict[str, Any] = {
        "request_id": job.request_id,
        "model": job.model,
        "status": behaviour.status_override or job.status,
        "priority": job.priority,
        "created_at": iso(job.created_at),
        "info": {**job.info, "progress": 1 if job.status == "done" else 0},
        "inputs": job.payload,
        "retries": job.retries,
    }
    if job.claimed_at is not None:
        doc["claimed_at"] = iso(job.claimed_at)
    if job.done_at is not None:
        doc["done_at"] = iso(job.done_at)
    if job.status == "done":
        doc["outputs"] = {"result": "ok"}
    for name in behaviour.omit:
        doc.pop(name, None)
    return doc


def _bad_request(message: str, param: str) -> web.Response:
    return queue_error(400, "invalid_request", message, type_="invalid_request_error", param=param)


def _fault(status: int) -> web.Response:
    if status == 401:
        return queue_error(401, "invalid_api_key", "Invalid API key provided.", type_="authentication_error")
    if status == 429:
        return queue_error(429, "rate_limit_exceeded", "Rate limit reached.", type_="rate_limit_error")
    if status == 404:
        return queue_error(404, "not_found", "Request not found.", type_="not_found_error")
    if status < 500:
        return queue_error(
            status, "invalid_request", "Simulated invalid request.", type_="invalid_request_error"
        )
    return queue_error(status, "simulated_error", "Simulated failure.", type_="server_error")


_INT_KEYS = {"workers", "stalls"}
_FLOAT_KEYS = {"claim_delay", "run_seconds", "claim_timeout", "submit_delay"}
_STATUS_KEYS = {"submit_status", "status_status", "cancel_status"}
# Keys whose null means "drawn per job by the default scenario".
_DRAWN_KEYS = {"claim_delay", "run_seconds"}


def _coerce(key: str, value: Any) -> Any:
    """Check one scripted value, so a typo fails the script call, not a later request."""
    if key in _DRAWN_KEYS and value is None:
        return None
    if key in _INT_KEYS | _FLOAT_KEYS:
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise ValueError(f"{key} must be a non-negative number")
        return int(value) if key in _INT_KEYS else float(value)
    if key in _STATUS_KEYS:
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or not 400 <= value <= 599
        ):
            raise ValueError(f"{key} must be an HTTP error status or null")
        return value
    if key == "mode":
        if value not in ("ok", "fail", "stopped"):
            raise ValueError("mode must be ok, fail or stopped")
        return value
    if key == "status_override":
        if value is not None and not isinstance(value, str):
            raise ValueError("status_override must be a string or null")
        return value
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{key} must be a list of field names")
    return value


class JobsSim:
    ROUTES: ClassVar[list[tuple[str, str, str]]] = [
        ("POST", "/v1/queue/submit", "submit"),
        ("GET", "/v1/queue/status", "status"),
        ("POST", "/v1/queue/cancel", "cancel"),
        ("POST", "/_sim/jobs", "script"),
        ("GET", "/_sim/jobs", "list_jobs"),
    ]

    def __init__(self, state: SimState) -> None:
        self.state = state
        self.queues: dict[str, ModelQueue] = {}

    def queue(self, model: str) -> ModelQueue:
        q = self.queues.get(model)
        if q is None:
            q = self.queues[model] = ModelQueue(self.state.clock(), model, self.state.story)
        q.advance(self.state.clock())
        return q

    async def _json(self, request: web.Request) -> Any:
        try:
            return await request.json()
        except ValueError:
            return None

    async def submit(self, request: web.Request) -> web.Response:
        doc = await self._json(request)
        if not isinstance(doc, dict):
            return _bad_request("request body must be a JSON object", "body")
        model, payload = doc.get("model"), doc.get("payload")
        priority, info = doc.get("priority", 0), doc.get("info", {})
        if not isinstance(model, str) or not model:
            return _bad_request("model is required", "model")
        if not isinstance(payload, dict):
            return _bad_request("payload is required and must be an object", "payload")
        if isinstance(priority, bool) or not isinstance(priority, int):
            return _bad_request("priority must be an integer", "priority")
        if not isinstance(info, dict):
            return _bad_request("info must be an object", "info")
        q = self.queue(model)
        if q.behaviour.submit_status is not None:
            return _fault(q.behaviour.submit_status)
        now = self.state.clock()
        job = q.add(str(uuid.uuid4()), payload, info, priority, now)
        q.advance(now)
        if q.behaviour.submit_delay > 0:
            await asyncio.sleep(q.behaviour.submit_delay)
        return web.json_response({"requestId": job.request_id})

    def _find(self, model: str, request_id: str) -> tuple[ModelQueue, Job | None]:
        q = self.queue(model)
        return q, q.jobs.get(request_id)

    async def status(self, request: web.Request) -> web.Response:
        request_id, model = request.query.get("request_id", ""), request.query.get("model", "")
        if not request_id:
            return _bad_request("request_id is required", "request_id")
        if not model:
            return _bad_request("model is required", "model")
        q, job = self._find(model, request_id)
        if q.behaviour.status_status is not None:
            return _fault(q.behaviour.status_status)
        if job is None:
            return _fault(404)
        return web.json_response(status_doc(job, q.behaviour))

    async def cancel(self, request: web.Request) -> web.Response:
        doc = await self._json(request)
        if not isinstance(doc, dict):
            return _bad_request("request body must be a JSON object", "body")
        model, request_id = doc.get("model"), doc.get("request_id")
        if not isinstance(model, str) or not model:
            return _bad_request("model is required", "model")
        if not isinstance(request_id, str) or not request_id:
            return _bad_request("request_id is required", "request_id")
        q, job = self._find(model, request_id)
        if q.behaviour.cancel_status is not None:
            return _fault(q.behaviour.cancel_status)
        if job is None:
            return _fault(404)
        if job.status != "pending":
            return web.json_response({"status": job.status}, status=409)
        job.status, job.event_at = "canceled", math.inf
        return web.json_response({"status": "canceled"})

    # --- scripting -------------------------------------------------------------------

    async def script(self, request: web.Request) -> web.Response:
        doc = await self._json(request)
        if not isinstance(doc, dict) or not isinstance(doc.get("model"), str):
            return web.json_response({"error": "expected {model, ...}"}, status=400)
        q = self.queue(doc["model"])
        if doc.get("clear"):
            q.behaviour = Behaviour()
        known = {f.name for f in fields(Behaviour)}
        unknown = set(doc) - known - {"model", "clear"}
        if unknown:
            return web.json_response({"error": f"unknown keys {sorted(unknown)}"}, status=400)
        try:
            for key in sorted(known & set(doc)):
                setattr(q.behaviour, key, _coerce(key, doc[key]))
        except (TypeError, ValueError) as exc:
            return web.json_response({"error": f"bad value: {exc}"}, status=400)
        return web.json_response({"ok": True})

    async def list_jobs(self, request: web.Request) -> web.Response:
        model, status = request.query.get("model"), request.query.get("status")
        out = []
        for name in sorted(self.queues):
            if model and name != model:
                continue
            for job in self.queue(name).jobs.values():
                if status and job.status != status:
                    continue
                out.append(
                    {
                        "request_id": job.request_id,
                        "model": job.model,
                        "status": job.status,
                        "priority": job.priority,
                        "retries": job.retries,
                        "info": job.info,
                    }
                )
        return web.json_response({"jobs": out})
