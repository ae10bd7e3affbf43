"""Together fine-tunes: ``GET /v1/fine-tunes``, ``/v1/fine-tunes/{id}`` and ``…/metrics``.

Each simulated job trains on the simulator's clock: it waits ``delay`` seconds
(``queued``), then logs one train row every ``step_seconds``, and an eval row at the
same step every ``eval_every`` steps (a separate object), then, if it has a step
limit, passes through ``compressing`` and ``uploading`` to ``completed``. A job given
``fail_at_step`` stops there and ends in ``error``, its loss climbing over the steps
before. A job with no step limit keeps logging for as long as the simulator runs.

Evaluation takes ``eval_seconds``: its row is logged that long after its step's train
row. By default training waits for it (the next train row comes ``step_seconds`` after
the eval row); with ``async_eval`` training goes on meanwhile, so an eval row for step
N can arrive after the train rows of N+1, N+2, …. Scripted ``extra_rows`` can be
logged ``delay`` seconds after their step: a late row for an old step.

Every row is logged at a time of its own, and rows are served in that order. The
metrics endpoint honours every filter of the vendor's contract as query parameters:
``global_step_from``/``global_step_to`` (inclusive), ``logged_at_from``/``logged_at_to``
(ISO-8601, inclusive, against each row's logged time) and ``resolution`` (that many
uniformly sampled train rows; eval rows always in full). Rows served are counted per
job, so tests can see how many rows a client moves. Each answer's ``Date`` header is
the simulator's clock (see ``app``), as a vendor's would be its own.

``/_sim/fine-tunes``: ``GET`` reports per job rows logged and served and the status;
``POST`` scripts jobs: ``{"action": "reset"}`` removes all, ``{"action": "add", "id":
"ft-…", "steps": 20, "step_seconds": 0.5, …}`` adds one (see ``add_job``), ``{"action":
"add_many", "jobs": [spec, …]}`` adds many in one request (a benchmark's thousands),
``{"action": "remove", "id": …}`` removes one (it then answers 404).
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar

from aiohttp import web

from exporter.simulator import scenario
from exporter.simulator.state import SimState

TRAIN_POST_SECONDS = 2.0
# A failing job's loss climbs over this many steps before its last.
DIVERGING_STEPS = 15


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_iso(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


@dataclass(frozen=True)
class LoggedRow:
    t: float  # when it was logged, on the simulator's clock
    step: int
    is_eval: bool
    row: dict[str, Any]


@dataclass
class SimJob:
    id: str
    model: str
    created: float
    start: float  # time of step 0; see step_time for when step s is logged
    step_seconds: float
    steps: int | None  # None: keeps logging
    eval_every: int = 0
    eval_seconds: float = 0.0
    async_eval: bool = False
    post_seconds: float = TRAIN_POST_SECONDS
    fixed_status: str | None = None
    # Stops after this step with status error (its loss diverging before).
    fail_at_step: int | None = None
    n_epochs: int = 3
    # Scripted rows, logged ``delay`` seconds after their step's train row (after the
    # step's own rows when the delays tie): (step, row, delay).
    extra_rows: list[tuple[int, dict[str, Any], float]] = field(default_factory=list)
    # The model_output_name the vendor reports; by default one made from model and id.
    fixed_output_name: str | None = None
    served: int = 0

    @property
    def output_name(self) -> str:
        if self.fixed_output_name is not None:
            return self.fixed_output_name
        return f"sim-org/{self.model.rsplit('/', 1)[-1]}-{self.id}"

    def _is_eval_step(self, step: int) -> bool:
        return bool(self.eval_every) and step % self.eval_every == 0

    def step_time(self, step: int) -> float:
        """When the train row of ``step`` is logged: every evaluation before it delays
        it by ``eval_seconds`` unless evaluation runs asynchronously."""
        t = self.start + step * self.step_seconds
        if self.eval_every and not self.async_eval and step >= 1:
            t += self.eval_seconds * ((step - 1) // self.eval_every)
        return t

    def _steps_by(self, t: float) -> int:
        """How many train steps have been logged by ``t`` (uncapped by ``steps``)."""
        if t < self.start:
            return 0
        hi = int((t - self.start) / self.step_seconds + 1e-9)
        lo = 0
        # step_time is increasing, so the last step logged by t is found by bisection.
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if self.step_time(mid) <= t + 1e-9:
                lo = mid
            else:
                hi = mid - 1
        return lo

    def logged_steps(self, now: float) -> int:
        """How many train steps have been logged by ``now``."""
        n = self._steps_by(now)
        return n if self.last_step is None else min(n, self.last_step)

    @property
    def last_step(self) -> int | None:
        """The step after which the job logs nothing more (None: it keeps logging)."""
        return self.fail_at_step if self.fail_at_step is not None else self.steps

    def _max_delay(self) -> float:
        return max([self.eval_seconds if self.eval_every else 0.0, *(d for _, _, d in self.extra_rows)])

    def end_time(self) -> float:
        """When the last row of a job with a step limit is logged."""
        end = self.last_step
        assert end is not None
        last = [self.step_time(end)]
        if self._is_eval_step(end):
            last.append(self.step_time(end) + self.eval_seconds)
        last.extend(self.step_time(s) + d for s, _, d in self.extra_rows if 1 <= s <= end)
        return max(last)

    def status(self, now: float) -> str:
        if self.fixed_status is not None:
            return self.fixed_status
        if now < self.start:
            return "queued"
        if self.last_step is None or now < self.end_time():
            return "running"
        if self.fail_at_step is not None:
            return "error"
        done = now - self.end_time()
        if done < self.post_seconds:
            return "compressing"
        if done < 2 * self.post_seconds:
            return "uploading"
        return "completed"

    def train_row(self, step: int) -> dict[str, Any]:
        phase = (zlib.crc32(self.id.encode()) % 628) / 100
        loss = 0.35 + 2.2 * math.exp(-step / 80) + 0.04 * math.sin(step / 3 + phase)
        total = self.steps or 10_000
        if self.fail_at_step is not None and step > self.fail_at_step - DIVERGING_STEPS:
            # The run diverges before it fails: the loss grows e-fold every 5 steps.
            loss *= math.exp((step - (self.fail_at_step - DIVERGING_STEPS)) / 5)
        lr = 1e-4 * max(0.0, 1 - step / total)
        return {"train/loss": round(loss, 6), "train/learning_rate": lr, "train/global_step": step}

    def eval_row(self, step: int) -> dict[str, Any]:
        loss = 0.45 + 2.0 * math.exp(-step / 90)
        return {"eval/loss": round(loss, 6), "train/global_step": step}

    def rows(
        self,
        now: float,
        t_from: float | None = None,
        t_to: float | None = None,
        step_from: int = 0,
        step_to: int | None = None,
    ) -> list[LoggedRow]:
        """Every row logged by ``now`` within ``[t_from, t_to]`` and the step range, in logged order."""
        until = now if t_to is None else min(now, t_to)
        hi = self.logged_steps(until)
        if step_to is not None:
            hi = min(hi, step_to)
        # A step's rows are logged at most _max_delay after its train row.
        lo = max(1, step_from)
        if t_from is not None:
            lo = max(lo, self._steps_by(t_from - self._max_delay()))
        extra: dict[int, list[tuple[dict[str, Any], float]]] = {}
        for step, row, delay in self.extra_rows:
            extra.setdefault(step, []).append((row, delay))
        out: list[LoggedRow] = []
        for s in range(lo, hi + 1):
            t = self.step_time(s)
            out.append(LoggedRow(t, s, False, self.train_row(s)))
            if self._is_eval_step(s):
                out.append(LoggedRow(t + self.eval_seconds, s, True, self.eval_row(s)))
            for row, delay in extra.get(s, []):
                out.append(LoggedRow(t + delay, s, any(str(k).startswith("eval/") for k in row), row))
        lo_t = -math.inf if t_from is None else t_from - 1e-9
        # Python's sort is stable: rows logged at the same time keep their order above.
        return sorted((r for r in out if lo_t <= r.t <= until + 1e-9), key=lambda r: r.t)

    def rows_logged(self, now: float) -> int:
        n = self.logged_steps(now)
        evals = self.logged_steps(now - self.eval_seconds) // self.eval_every if self.eval_every else 0
        extras = sum(1 for s, _, d in self.extra_rows if 1 <= s <= n and self.step_time(s) + d <= now)
        return n + evals + extras

    def truncated(self, now: float) -> dict[str, Any]:
        return {
            "id": self.id,
            "status": self.status(now),
            "created_at": iso(self.created),
            "updated_at": iso(min(now, max(self.created, self.step_time(self.logged_steps(now))))),
            "model": self.model,
            "model_output_name": self.output_name,
            "n_epochs": self.n_epochs,
            "training_file": f"file-{self.id[3:]}",
            "events": [],
        }

    def full(self, now: float) -> dict[str, Any]:
        doc = self.truncated(now)
        status = doc["status"]
        n = self.logged_steps(now)
        if status == "queued":
            doc["queue_depth"] = 1
            doc["progress"] = {"estimate_available": True, "seconds_remaining": int(self.start - now) + 1}
        elif status == "running" and self.steps is not None:
            remaining = (self.steps - n) * self.step_seconds + 2 * self.post_seconds
            doc["progress"] = {"estimate_available": True, "seconds_remaining": int(remaining)}
        elif status == "running":
            doc["progress"] = {"estimate_available": False, "seconds_remaining": 0}
        if n:
            doc["started_at"] = iso(self.start)
            per_epoch = (self.steps or 10_000) / self.n_epochs
            doc["epochs_completed"] = min(self.n_epochs, int(n / per_epoch))
        return doc


def _bad_request(message: str) -> web.Response:
    return web.json_response({"error": {"message": message, "type": "invalid_request_error"}}, status=400)


def _not_found(job_id: str) -> web.Response:
    return web.json_response(
        {"error": {"message": f"fine-tune job {job_id} not found", "type": "invalid_request_error"}},
        status=404,
    )


class FineTuneSim:
    ROUTES: ClassVar[list[tuple[str, str, str]]] = [
        ("GET", "/v1/fine-tunes", "list_jobs"),
        ("GET", "/v1/fine-tunes/{id}", "get_job"),
        ("GET", "/v1/fine-tunes/{id}/metrics", "metrics"),
        ("GET", "/_sim/fine-tunes", "report"),
        ("POST", "/_sim/fine-tunes", "control"),
    ]

    def __init__(self, state: SimState, org: str = "") -> None:
        self.state = state
        self.jobs: dict[str, SimJob] = {}
        # The default scenario (exporter.simulator.scenario, docs/demo.md). Another
        # organisation has two jobs that keep logging, under ids of its own.
        if org:
            self.add_job(
                {
                    "id": f"ft-{org}-llama-0001",
                    "model": "meta-llama/Llama-3-8b",
                    "step_seconds": 3 / state.speed,
                    "eval_every": 5,
                }
            )
            self.add_job(
                {"id": f"ft-{org}-qwen-0002", "model": "Qwen/Qwen2-7B", "step_seconds": 2 / state.speed}
            )
            return
        for spec in scenario.fine_tunes(state.speed, state.story.origin - state.clock()):
            self.add_job(spec)

    def add_job(self, spec: dict[str, Any]) -> SimJob:
        """Add a job from a spec: id, model, steps (null: endless), step_seconds,
        eval_every, delay (seconds until it starts training; negative: in the past),
        eval_seconds (how long an evaluation takes), async_eval (training goes on
        meanwhile), post_seconds, status (fixed), fail_at_step (the job stops
        there with status error), n_epochs, output_name (the
        model_output_name reported), extra_rows
        [{"step": s, "row": {…}, "delay": seconds after the step's train row}]."""
        now = self.state.clock()
        steps = spec.get("steps")
        job = SimJob(
            id=str(spec["id"]),
            model=str(spec.get("model", "sim-org/base-model")),
            created=now + min(0.0, float(spec.get("delay", 0))) - 1,
            start=now + float(spec.get("delay", 0)),
            step_seconds=float(spec.get("step_seconds", 1)),
            steps=None if steps is None else int(steps),
            eval_every=int(spec.get("eval_every", 0)),
            eval_seconds=float(spec.get("eval_seconds", 0)),
            async_eval=bool(spec.get("async_eval", False)),
            post_seconds=float(spec.get("post_seconds", TRAIN_POST_SECONDS)),
            fixed_status=spec.get("status"),
            fail_at_step=None if spec.get("fail_at_step") is None else int(spec["fail_at_step"]),
            n_epochs=int(spec.get("n_epochs", 3)),
            fixed_output_name=None if spec.get("output_name") is None else str(spec["output_name"]),
            extra_rows=[
                (int(r["step"]), dict(r["row"]), float(r.get("delay", 0))) for r in spec.get("extra_rows", [])
            ],
        )
        self.jobs[job.id] = job
        return job

    # --- vendor endpoints ----------------------------------------------------------

    async def list_jobs(self, request: web.Request) -> web.Response:
        now = self.state.clock()
        return web.json_response({"data": [j.truncated(now) for j in self.jobs.values()]})

    async def get_job(self, request: web.Request) -> web.Response:
        job = self.jobs.get(request.match_info["id"])
        if job is None:
            return _not_found(request.match_info["id"])
        return web.json_response(job.full(self.state.clock()))

    async def metrics(self, request: web.Request) -> web.Response:
        job_id = request.match_info["id"]
        job = self.jobs.get(job_id)
        if job is None:
            return _not_found(job_id)
        q = request.query
        try:
            step_from = int(q["global_step_from"]) if "global_step_from" in q else 0
            step_to = int(q["global_step_to"]) if "global_step_to" in q else None
            resolution = int(q["resolution"]) if "resolution" in q else None
            t_from = parse_iso(q["logged_at_from"]) if "logged_at_from" in q else None
            t_to = parse_iso(q["logged_at_to"]) if "logged_at_to" in q else None
        except ValueError as exc:
            return _bad_request(f"invalid query parameter: {exc}")
        if resolution is not None and resolution < 1:
            return _bad_request("resolution must be a positive integer")
        now = self.state.clock()
        rows = job.rows(now, t_from, t_to, step_from, step_to)
        if resolution is not None:
            rows = _sample_train(rows, resolution)
        job.served += len(rows)
        return web.json_response({"metrics": [r.row for r in rows]})

    # --- control -------------------------------------------------------------------

    async def report(self, request: web.Request) -> web.Response:
        now = self.state.clock()
        return web.json_response(
            {
                j.id: {"status": j.status(now), "rows_logged": j.rows_logged(now), "rows_served": j.served}
                for j in self.jobs.values()
            }
        )

    async def control(self, request: web.Request) -> web.Response:
        doc = await request.json()
        action = doc.get("action")
        if action == "reset":
            self.jobs.clear()
        elif action == "add":
            self.add_job(doc)
        elif action == "add_many" and isinstance(doc.get("jobs"), list):
            for spec in doc["jobs"]:
                self.add_job(spec)
        elif action == "remove":
            self.jobs.pop(str(doc.get("id")), None)
        else:
            return web.json_response({"error": f"unknown action {action!r}"}, status=400)
        return web.json_response({"ok": True})


def _sample_train(rows: list[LoggedRow], resolution: int) -> list[LoggedRow]:
    """Keep ``resolution`` uniformly spaced train rows (first and last included) and every eval row."""
    train = [i for i, r in enumerate(rows) if not r.is_eval]
    if len(train) <= resolution:
        return rows
    if resolution == 1:
        keep = {train[-1]}
    else:
        keep = {train[round(k * (len(train) - 1) / (resolution - 1))] for k in range(resolution)}
    return [r for i, r in enumerate(rows) if r.is_eval or i in keep]
