"""Together fine-tunes: ``GET /v1/fine-tunes``, ``/v1/fine-tunes/{id}`` and ``…/metrics``.

Each simulated job trains on the simulator's clock: it waits ``delay`` seconds
(``queued``), then logs one train row every ``step_seconds`` (and an eval row at the
same step every ``eval_every`` steps, as a separate object), then, if it has a step
limit, passes through ``compressing`` and ``uploading`` to ``completed``. A job with
no step limit keeps logging for as long as the simulator runs.

The metrics endpoint honours every filter of the vendor's contract as query
parameters: ``global_step_from``/``global_step_to`` (inclusive), ``logged_at_from``/
``logged_at_to`` (ISO-8601, inclusive) and ``resolution`` (that many uniformly
sampled train rows; eval rows always in full). Rows served are counted per job, so
tests can prove that a client reads each row once.

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
from typing import Any

from aiohttp import web

from exporter.simulator.state import SimState

TRAIN_POST_SECONDS = 2.0


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_iso(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


@dataclass
class SimJob:
    id: str
    model: str
    created: float
    start: float  # time of step 0; step s is logged at start + s * step_seconds
    step_seconds: float
    steps: int | None  # None: keeps logging
    eval_every: int = 0
    post_seconds: float = TRAIN_POST_SECONDS
    fixed_status: str | None = None
    n_epochs: int = 3
    # Scripted rows, logged together with a step (after its own rows): (step, row).
    extra_rows: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    served: int = 0

    @property
    def output_name(self) -> str:
        return f"sim-org/{self.model.rsplit('/', 1)[-1]}-{self.id}"

    def logged_steps(self, now: float) -> int:
        """How many train steps have been logged by ``now``."""
        if now < self.start:
            return 0
        n = int((now - self.start) / self.step_seconds + 1e-9)
        return n if self.steps is None else min(n, self.steps)

    def step_time(self, step: int) -> float:
        return self.start + step * self.step_seconds

    def status(self, now: float) -> str:
        if self.fixed_status is not None:
            return self.fixed_status
        if now < self.start:
            return "queued"
        if self.steps is None or now < self.step_time(self.steps):
            return "running"
        done = now - self.step_time(self.steps)
        if done < self.post_seconds:
            return "compressing"
        if done < 2 * self.post_seconds:
            return "uploading"
        return "completed"

    def train_row(self, step: int) -> dict[str, Any]:
        phase = (zlib.crc32(self.id.encode()) % 628) / 100
        loss = 0.35 + 2.2 * math.exp(-step / 80) + 0.04 * math.sin(step / 3 + phase)
        total = self.steps or 10_000
        lr = 1e-4 * max(0.0, 1 - step / total)
        return {"train/loss": round(loss, 6), "train/learning_rate": lr, "train/global_step": step}

    def eval_row(self, step: int) -> dict[str, Any]:
        loss = 0.45 + 2.0 * math.exp(-step / 90)
        return {"eval/loss": round(loss, 6), "train/global_step": step}

    def rows(self, lo: int, hi: int) -> list[tuple[int, bool, dict[str, Any]]]:
        """(step, is_eval, row) for steps lo..hi in logged order."""
        extra: dict[int, list[dict[str, Any]]] = {}
        for step, row in self.extra_rows:
            extra.setdefault(step, []).append(row)
        out: list[tuple[int, bool, dict[str, Any]]] = []
        for s in range(max(lo, 1), hi + 1):
            out.append((s, False, self.train_row(s)))
            if self.eval_every and s % self.eval_every == 0:
                out.append((s, True, self.eval_row(s)))
            out.extend((s, any(str(k).startswith("eval/") for k in r), r) for r in extra.get(s, []))
        return out

    def rows_logged(self, now: float) -> int:
        n = self.logged_steps(now)
        evals = n // self.eval_every if self.eval_every else 0
        return n + evals + sum(1 for s, _ in self.extra_rows if 1 <= s <= n)

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
    def __init__(self, state: SimState) -> None:
        self.state = state
        self.jobs: dict[str, SimJob] = {}
        # The default scenario: two jobs that keep logging, one that finishes about a
        # minute in, one still queued and one that finished long ago.
        self.add_job(
            {"id": "ft-sim-llama-0001", "model": "meta-llama/Llama-3-8b", "step_seconds": 2, "eval_every": 10}
        )
        self.add_job({"id": "ft-sim-qwen-0002", "model": "Qwen/Qwen2-7B", "step_seconds": 3, "eval_every": 5})
        self.add_job(
            {
                "id": "ft-sim-mistral-0003",
                "model": "mistralai/Mistral-7B",
                "steps": 30,
                "step_seconds": 2,
                "eval_every": 10,
                "post_seconds": 10,
            }
        )
        self.add_job(
            {
                "id": "ft-sim-gemma-0004",
                "model": "google/gemma-2-9b",
                "delay": 45,
                "steps": 40,
                "step_seconds": 2,
            }
        )
        self.add_job(
            {
                "id": "ft-sim-old-0005",
                "model": "meta-llama/Llama-2-7b-hf",
                "steps": 50,
                "step_seconds": 1,
                "delay": -7200,
            }
        )

    def add_job(self, spec: dict[str, Any]) -> SimJob:
        """Add a job from a spec: id, model, steps (null: endless), step_seconds,
        eval_every, delay (seconds until it starts training; negative: in the past),
        post_seconds, status (fixed), n_epochs, extra_rows [{"step": s, "row": {…}}]."""
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
            post_seconds=float(spec.get("post_seconds", TRAIN_POST_SECONDS)),
            fixed_status=spec.get("status"),
            n_epochs=int(spec.get("n_epochs", 3)),
            extra_rows=[(int(r["step"]), dict(r["row"])) for r in spec.get("extra_rows", [])],
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
        hi = job.logged_steps(now)
        if step_to is not None:
            hi = min(hi, step_to)
        lo = step_from
        # Logged times are monotonic in the step, so the time window is a step range.
        if t_from is not None:
            lo = max(lo, math.ceil((t_from - job.start) / job.step_seconds - 1e-9))
        if t_to is not None:
            hi = min(hi, math.floor((t_to - job.start) / job.step_seconds + 1e-9))
        rows = job.rows(lo, hi) if hi >= max(lo, 1) else []
        if resolution is not None:
            rows = _sample_train(rows, resolution)
        job.served += len(rows)
        return web.json_response({"metrics": [r for _, _, r in rows]})

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

    def install(self, app: web.Application) -> None:
        app.router.add_get("/v1/fine-tunes", self.list_jobs)
        app.router.add_get("/v1/fine-tunes/{id}", self.get_job)
        app.router.add_get("/v1/fine-tunes/{id}/metrics", self.metrics)
        app.router.add_get("/_sim/fine-tunes", self.report)
        app.router.add_post("/_sim/fine-tunes", self.control)


def _sample_train(
    rows: list[tuple[int, bool, dict[str, Any]]], resolution: int
) -> list[tuple[int, bool, dict[str, Any]]]:
    """Keep ``resolution`` uniformly spaced train rows (first and last included) and every eval row."""
    train = [i for i, (_, is_eval, _) in enumerate(rows) if not is_eval]
    if len(train) <= resolution:
        return rows
    if resolution == 1:
        keep = {train[-1]}
    else:
        keep = {train[round(k * (len(train) - 1) / (resolution - 1))] for k in range(resolution)}
    return [r for i, r in enumerate(rows) if r[1] or i in keep]
