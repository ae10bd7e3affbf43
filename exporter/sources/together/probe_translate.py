"""Pure parts of the synthetic queue probe: status documents → outcome → samples.

No I/O and no clock reads here, so every odd shape the vendor may answer with is a
unit test with a JSON literal. The probe target (``probe.py``) does the
requests and feeds the documents it gets through these functions.

A probe's exposition, per model::

    # TYPE together_queue_probe_success gauge
    together_queue_probe_success{model="my-org/video-generator"} 1
    # TYPE together_queue_probe_duration_seconds gauge
    together_queue_probe_duration_seconds{model="my-org/video-generator",phase="queue_wait"} 2
    together_queue_probe_duration_seconds{model="my-org/video-generator",phase="run"} 103
    together_queue_probe_duration_seconds{model="my-org/video-generator",phase="end_to_end"} 105
    # TYPE together_queue_probe_retries gauge
    together_queue_probe_retries{model="my-org/video-generator"} 0
    # TYPE together_queue_probe_jobs_total counter
    together_queue_probe_jobs_total{model="my-org/video-generator",status="done"} 7
    # TYPE together_queue_probes_total counter
    together_queue_probes_total{model="my-org/video-generator",result="success"} 7
    # TYPE together_queue_probe_last_completed_timestamp_seconds gauge
    together_queue_probe_last_completed_timestamp_seconds{model="my-org/video-generator"} 1.7704602e+09
    # TYPE together_queue_probe_phase_seconds histogram
    together_queue_probe_phase_seconds_bucket{model="my-org/video-generator",phase="queue_wait",le="0.5"} 0
    …
    together_queue_probe_phase_seconds_bucket{model="my-org/video-generator",phase="queue_wait",le="+Inf"} 7
    together_queue_probe_phase_seconds_sum{model="my-org/video-generator",phase="queue_wait"} 15.5
    together_queue_probe_phase_seconds_count{model="my-org/video-generator",phase="queue_wait"} 7

The histograms count every probe job, not only the last one; which phases of a failed
or timed-out job they count is ``Outcome.observed`` (see ``judge`` and ``unfinished``).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from exporter.core.errors import InvalidResponse
from exporter.core.exposition import Family, Sample
from exporter.core.histogram import CumulativeHistogram
from exporter.sources.jsonshape import json_object, required_str, whole

# The vendor's documented job statuses; the last three are terminal.
TERMINAL = ("done", "failed", "canceled")
KNOWN = frozenset({"pending", "running", *TERMINAL})
PHASES = ("queue_wait", "run", "end_to_end")
TIMESTAMP_FIELDS = ("created_at", "claimed_at", "done_at")
# Results every probed model shows from the start, at 0: the outcomes of a probe whose job
# was submitted. A counter series that first appears at 1 loses that first increase to
# rate(), which would hide the first failure from a success-ratio objective. (Submit and
# status failures are many and rare; their series appear when they first happen.)
INITIAL_RESULTS = ("success", "timeout", "job_failed", "job_canceled")
# Upper bounds (seconds) of the phase histograms' buckets unless the probe sets its own:
# from a job a worker takes at once to one that waits an hour. 30 is one of them, the
# queue-wait objective's default threshold (a threshold must be a bound to be measured).
DEFAULT_BUCKETS: tuple[float, ...] = (0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0)
DEFAULT_BUCKETS += (1200.0, 1800.0, 3600.0)

SUCCESS = Family(
    "together_queue_probe_success",
    "gauge",
    "1 if the last probe job reached status done within the probe timeout with all its timestamps"
    " (Together GET /queue/status), else 0.",
    labels=("model",),
)
DURATION = Family(
    "together_queue_probe_duration_seconds",
    "gauge",
    "Phases of the last probe job from the vendor's timestamps (GET /queue/status): queue_wait is"
    " created_at to claimed_at, run is claimed_at to done_at, end_to_end is created_at to done_at.",
    labels=("model", "phase"),
)
RETRIES = Family(
    "together_queue_probe_retries",
    "gauge",
    "Times the last probe job was returned to the queue after a claim timeout (GET /queue/status field retries).",
    labels=("model",),
)
JOBS = Family(
    "together_queue_probe_jobs_total",
    "counter",
    "Probe jobs by the terminal status they reached (GET /queue/status or POST /queue/cancel field status).",
    labels=("model", "status"),
)
PROBES = Family(
    "together_queue_probes_total",
    "counter",
    "Probes run, by result: success, or the reason the probe failed.",
    labels=("model", "result"),
)
LAST_COMPLETED = Family(
    "together_queue_probe_last_completed_timestamp_seconds",
    "gauge",
    "Vendor done_at of the last probe job that completed successfully, as Unix time (GET /queue/status).",
    labels=("model",),
)
PHASE_SECONDS = Family(
    "together_queue_probe_phase_seconds",
    "histogram",
    "Phases of every probe job from the vendor's timestamps (GET /queue/status): queue_wait is created_at"
    " to claimed_at, run claimed_at to done_at, end_to_end created_at to done_at. A job still unfinished"
    " at the probe timeout counts in queue_wait (if still pending) and end_to_end with the time the"
    " probe saw it unfinished, a lower bound.",
    labels=("model", "phase"),
)
FAMILIES = (SUCCESS, DURATION, RETRIES, JOBS, PROBES, LAST_COMPLETED, PHASE_SECONDS)


def parse_datetime(value: Any) -> datetime | None:
    """An RFC 3339 ``date-time``; ``None`` for a missing (null) field.

    A string without an offset is read as UTC. Anything else that is not a date-time
    string raises ValueError: it is vendor drift, not "no data".
    """
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"not a date-time string: {type(value).__name__}")
    dt = datetime.fromisoformat(value.strip())
    return dt if dt.tzinfo is not None else dt.replace(tzinfo=UTC)


@dataclass(frozen=True)
class JobStatus:
    """What the probe needs from one ``GET /queue/status`` answer."""

    status: str
    # Kept as datetimes so phases are exact differences (a float Unix time has
    # only ~0.2 µs resolution today, which shows as 0.2999999 for 300 ms).
    created_at: datetime | None = None
    claimed_at: datetime | None = None
    done_at: datetime | None = None
    retries: int | None = None
    # Timestamp fields present but not parseable as date-times.
    invalid: tuple[str, ...] = ()

    @property
    def known(self) -> bool:
        return self.status in KNOWN

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL


def read_status(doc: Any) -> JobStatus:
    """Read a QueueJobStatusResponse. Only ``status`` is needed to follow the job.

    A body that is not an object, or has no string ``status``, raises InvalidResponse.
    Unknown extra fields are ignored; an unknown status value is kept as it is (the
    caller treats it as not terminal). Bad timestamps are recorded, not raised, so a
    terminal status is still seen and the probe ends with a clear reason.
    """
    doc = json_object(doc, "/queue/status")
    status = required_str(doc, "status", "/queue/status", empty=False)
    stamps: dict[str, datetime | None] = {}
    invalid: list[str] = []
    for name in TIMESTAMP_FIELDS:
        try:
            stamps[name] = parse_datetime(doc.get(name))
        except ValueError:
            stamps[name] = None
            invalid.append(name)
    return JobStatus(
        status=status,
        created_at=stamps["created_at"],
        claimed_at=stamps["claimed_at"],
        done_at=stamps["done_at"],
        retries=whole(doc.get("retries")),
        invalid=tuple(invalid),
    )


def submitted_id(doc: Any) -> str:
    """The ``requestId`` of a QueueJobResponse; InvalidResponse when there is none."""
    rid = json_object(doc, "/queue/submit").get("requestId")
    if isinstance(rid, str) and rid.strip():
        return rid
    err = doc.get("error")
    msg = err.get("message") if isinstance(err, dict) else None
    suffix = f": {msg[:200]}" if isinstance(msg, str) and msg else ""
    raise InvalidResponse("/queue/submit: no requestId in the answer" + suffix)


def phase_durations(job: JobStatus) -> dict[str, float]:
    """Each phase whose two ends are known and in order; a phase with a gap is absent."""
    spans = {
        "queue_wait": (job.created_at, job.claimed_at),
        "run": (job.claimed_at, job.done_at),
        "end_to_end": (job.created_at, job.done_at),
    }
    out: dict[str, float] = {}
    for phase, (start, end) in spans.items():
        if start is not None and end is not None and end >= start:
            out[phase] = (end - start).total_seconds()
    return out


@dataclass(frozen=True)
class Outcome:
    """The result of one probe: success or a reason, and what was measured."""

    reason: str  # "success" or why the probe failed; bounded, used as a label value
    detail: str = ""
    # The phases measured from the job's timestamps (the last-value gauges).
    durations: dict[str, float] = field(default_factory=dict)
    retries: int | None = None
    completed_at: float | None = None
    # What the phase histograms count: measured phases, and lower bounds for a job
    # still unfinished at the timeout (see ``judge`` and ``unfinished``).
    observed: dict[str, float] = field(default_factory=dict)

    @property
    def success(self) -> bool:
        return self.reason == "success"


def failure(reason: str, detail: str = "") -> Outcome:
    return Outcome(reason=reason, detail=detail)


def judge(job: JobStatus) -> Outcome:
    """The outcome of a probe whose job reached a terminal status.

    ``done`` is a success only with all three timestamps, parseable and in order:
    a probe that cannot measure the phases is a failed probe, not a zero. A job the
    model failed, or that someone else canceled, is a failure; the phases it did go
    through are still reported.

    The histograms count a phase only when it says how long that phase took a job that
    completed it: every measured phase of a ``done`` job; only the queue wait of a
    ``failed`` one (its run and end to end would be the time to a failure, fast
    precisely when things are broken); nothing of a job canceled by someone else
    (the time until that cancel is no wait of ours).
    """
    durations = phase_durations(job)
    if job.status == "done":
        missing = [n for n in TIMESTAMP_FIELDS if getattr(job, n) is None and n not in job.invalid]
        seen = dict(durations)
        if job.invalid:
            return Outcome(
                "invalid_timestamps",
                f"unparseable {', '.join(job.invalid)}",
                durations,
                job.retries,
                None,
                seen,
            )
        if missing:
            return Outcome(
                "missing_timestamps", f"done without {', '.join(missing)}", durations, job.retries, None, seen
            )
        if len(durations) != len(PHASES):
            return Outcome(
                "invalid_timestamps",
                "timestamps out of order (created_at <= claimed_at <= done_at)",
                durations,
                job.retries,
                None,
                seen,
            )
        assert job.done_at is not None
        return Outcome("success", "", durations, job.retries, job.done_at.timestamp(), seen)
    if job.status == "failed":
        waited = {p: v for p, v in durations.items() if p == "queue_wait"}
        return Outcome(
            "job_failed", f"job failed after {job.retries or 0} retries", durations, job.retries, None, waited
        )
    if job.status == "canceled":
        return Outcome("job_canceled", "job was canceled before a worker claimed it", durations, job.retries)
    raise ValueError(f"judge() needs a terminal status, got {job.status!r}")


def unfinished(last: JobStatus | None, last_error_reason: str | None, waited: float | None = None) -> Outcome:
    """The outcome of a probe whose job did not reach a terminal status in time.

    ``waited`` is the time from the submit's answer to the last status request that
    found the job unfinished: the job existed before that answer and was unfinished
    when that request was sent, so it had waited at least this long (about the probe
    timeout). The histograms count it as such a lower bound: in ``end_to_end``, and in
    ``queue_wait`` while the job was still pending, else its measured queue wait. So a
    queue-wait objective whose threshold is below the probe timeout counts a job that
    outwaited the probe as too slow instead of leaving it out.
    """
    if last is None:
        reason = f"status_{last_error_reason or 'unavailable'}"
        return failure(reason, "no status answer for the probe job before the timeout")
    observed: dict[str, float] = {}
    if waited is not None and waited >= 0:
        observed["end_to_end"] = waited
        if last.status == "pending":
            observed["queue_wait"] = waited
    if last.status != "pending" and "queue_wait" in (measured := phase_durations(last)):
        observed["queue_wait"] = measured["queue_wait"]
    if not last.known:
        return Outcome(
            "unknown_status",
            f"last status {last.status[:40]!r} is not a documented value",
            observed=observed,
        )
    return Outcome("timeout", f"job still {last.status} at the probe timeout", observed=observed)


@dataclass
class ProbeState:
    """What one probed model has accumulated: the last outcome, counters and histograms."""

    buckets: tuple[float, ...] = DEFAULT_BUCKETS
    last: Outcome | None = None
    probes: Counter[str] = field(default_factory=Counter)
    jobs: Counter[str] = field(default_factory=Counter)
    last_completed: float | None = None
    phases: dict[str, CumulativeHistogram] = field(init=False)

    def __post_init__(self) -> None:
        self.phases = {p: CumulativeHistogram(self.buckets) for p in PHASES}

    def record(self, outcome: Outcome) -> None:
        self.last = outcome
        self.probes[outcome.reason] += 1
        if outcome.completed_at is not None:
            self.last_completed = outcome.completed_at
        for phase, seconds in outcome.observed.items():
            self.phases[phase].observe(seconds)

    def count_job(self, status: str) -> None:
        if status in TERMINAL:
            self.jobs[status] += 1


def samples(model: str, state: ProbeState) -> list[Sample]:
    """The probe's samples. Counters start at 0 for every known label value."""
    labels = (("model", model),)
    out: list[Sample] = []
    last = state.last
    if last is not None:
        out.append(Sample(SUCCESS, labels, 1.0 if last.success else 0.0))
        out.extend(
            Sample(DURATION, (*labels, ("phase", p)), last.durations[p])
            for p in PHASES
            if p in last.durations
        )
        if last.retries is not None:
            out.append(Sample(RETRIES, labels, float(last.retries)))
    out.extend(Sample(JOBS, (*labels, ("status", s)), float(state.jobs[s])) for s in TERMINAL)
    out.extend(Sample(PROBES, (*labels, ("result", r)), float(state.probes[r])) for r in INITIAL_RESULTS)
    out.extend(
        Sample(PROBES, (*labels, ("result", r)), float(n))
        for r, n in sorted(state.probes.items())
        if r not in INITIAL_RESULTS
    )
    if state.last_completed is not None:
        out.append(Sample(LAST_COMPLETED, labels, state.last_completed))
    for phase in PHASES:
        out.extend(state.phases[phase].samples(PHASE_SECONDS, (*labels, ("phase", phase))))
    return out
