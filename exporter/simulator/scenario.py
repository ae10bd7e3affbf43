"""The default scenario: what the simulator serves when nothing scripts it.

A story told on the simulator's clock, in seconds since it started (``SimState.story``:
from its start, or ``delay`` seconds later, ``speed`` times as fast): a Together
queue's backlog builds past the queue-depth alert's threshold and drains again, the
probe's jobs wait longer while it is deep, a Baseten staging deployment scales up with
its traffic, down, to zero and back, and fine-tunes start, finish and fail. The queue
and the deployment repeat every ``CYCLE`` seconds; the fine-tunes happen once.
``ALERTS`` lists every alert the story sets off. docs/demo.md tells it minute by
minute; tests/unit/test_sim_scenario.py holds the simulator to it, and
tests/e2e/test_demo_story.py holds a real Prometheus to ``ALERTS``, playing the story
faster.

Every function here is pure: the same time (and model) always gives the same values,
and random draws come from generators seeded with the job they are for, so a test with
a hand-driven clock can assert on any moment of the story.
"""

from __future__ import annotations

import itertools
import math
import random
import zlib
from dataclasses import dataclass
from typing import Any

# Seconds after which the queue's and the deployment's stories start over.
CYCLE = 600.0


@dataclass(frozen=True)
class StoryClock:
    """Where the story is at a time of the simulator's clock.

    ``speed`` plays it faster: at 10 the ten-minute cycle takes one minute of the clock,
    and every time the story gives (a wait, a step, a delay) takes a tenth as long.
    The vendors' timestamps stay on the clock; only the story's timetable moves faster.
    """

    origin: float
    speed: float = 1.0

    def __post_init__(self) -> None:
        if not self.speed > 0:
            raise ValueError(f"the story's speed must be positive, got {self.speed}")

    def at(self, t: float) -> float:
        """Seconds of the story at ``t`` on the clock."""
        return (t - self.origin) * self.speed

    def clock_seconds(self, story_seconds: float) -> float:
        """How long ``story_seconds`` of the story last on the clock."""
        return story_seconds / self.speed


# --- Together queue: one model's backlog builds and drains ---------------------------

BACKLOG_MODEL = "demo-org/video-generator"
# (seconds into the cycle, jobs waiting), linear in between: calm, a backlog that passes
# 100 waiting jobs (the TogetherQueueDepthHigh threshold) at about 0:46, peaks near 165
# and falls back under 100 at 4:45, then calm again until the cycle ends.
BACKLOG_KNOTS: tuple[tuple[float, float], ...] = (
    (0, 12),
    (15, 14),
    (50, 110),
    (150, 160),
    (240, 165),
    (285, 100),
    (360, 14),
    (CYCLE, 12),
)
# A small ripple on top (a whole number of periods per cycle), slower than the knots'
# slopes so that the threshold is crossed only once each way.
RIPPLE_JOBS = 2.0
RIPPLE_PERIOD = 40.0
# Jobs running in the backlog model's queue: one per 15 waiting, up to this many workers.
BACKLOG_WORKERS = 4


def _interpolate(knots: tuple[tuple[float, float], ...], u: float) -> float:
    for (u0, v0), (u1, v1) in itertools.pairwise(knots):
        if u0 <= u <= u1:
            return v0 + (v1 - v0) * (u - u0) / (u1 - u0)
    return knots[-1][1]


def _seed(text: str) -> int:
    return zlib.crc32(text.encode())


def queue_depths(model: str, t: float) -> tuple[int, int]:
    """Jobs waiting and running in ``model``'s queue ``t`` seconds after the start.

    The backlog model follows ``BACKLOG_KNOTS``; any other model a slow wave plus a faster
    ripple around a level of its own, well below any alert threshold, with at least one
    job running while any waits (a queue with waiting jobs and none running is stalled).
    """
    if model == BACKLOG_MODEL:
        u = t % CYCLE
        waiting = _interpolate(BACKLOG_KNOTS, u) + RIPPLE_JOBS * math.sin(2 * math.pi * u / RIPPLE_PERIOD)
        w = max(0, round(waiting))
        return w, min(BACKLOG_WORKERS, 1 + w // 15)
    seed = _seed(model)
    base = 5 + seed % 20
    phase = (seed % 628) / 100
    waiting = base + 8 * math.sin(t / 60 + phase) + 3 * math.sin(t / 7 + phase)
    running = 1 + seed % 4 + 2 * math.sin(t / 45 + phase)
    return max(0, round(waiting)), max(1, round(running))


# --- Together queue jobs: how long each job waits and runs ---------------------------

# Median seconds a job waits for a worker in a calm queue, and how the wait grows with
# the backlog (one more median per this many waiting jobs).
WAIT_MEDIAN = 0.8
WAIT_JOBS_PER_MEDIAN = 80.0
WAIT_SIGMA = 0.5
# Median seconds a job runs.
RUN_MEDIAN = 1.5
RUN_SIGMA = 0.35
# Draws are capped so that a job always ends within the demo probe's 10 s timeout.
WAIT_CAP = 5.0
RUN_CAP = 3.0


def job_timing(model: str, seq: int, t: float) -> tuple[float, float]:
    """Queue wait (``created_at`` → ``claimed_at``) and run time (→ ``done_at``), in
    seconds, of the ``seq``-th job submitted to ``model`` ``t`` seconds after the start.

    Log-normal draws from a generator seeded with the model and ``seq``: reproducible, and
    different from job to job. The wait's median grows with the queue's depth at ``t``.
    """
    rng = random.Random(f"{model}/{seq}")
    waiting, _ = queue_depths(model, t)
    median = WAIT_MEDIAN * (1 + waiting / WAIT_JOBS_PER_MEDIAN)
    wait = min(WAIT_CAP, median * rng.lognormvariate(0.0, WAIT_SIGMA))
    run = min(RUN_CAP, RUN_MEDIAN * rng.lognormvariate(0.0, RUN_SIGMA))
    # The vendor's timestamps have millisecond resolution.
    return round(wait, 3), round(run, 3)


# --- Together fine-tunes: jobs that train, finish, start and fail -------------------

# Specs for ``FineTuneSim.add_job``; times are seconds after the start, and happen once.
FINE_TUNES: tuple[dict[str, Any], ...] = (
    # Train for as long as the simulator runs.
    {"id": "ft-sim-llama-0001", "model": "meta-llama/Llama-3-8b", "step_seconds": 2, "eval_every": 10},
    {"id": "ft-sim-qwen-0002", "model": "Qwen/Qwen2-7B", "step_seconds": 3, "eval_every": 5},
    # Trains until 1:00, compresses and uploads, completed at 1:20.
    {
        "id": "ft-sim-mistral-0003",
        "model": "mistralai/Mistral-7B",
        "steps": 30,
        "step_seconds": 2,
        "eval_every": 10,
        "post_seconds": 10,
    },
    # Queued for the first minute, trains until 2:20, completed at 2:40.
    {
        "id": "ft-sim-gemma-0004",
        "model": "google/gemma-2-9b",
        "delay": 60,
        "steps": 40,
        "step_seconds": 2,
        "post_seconds": 10,
    },
    # Finished two hours before the start (the demo config names it explicitly).
    {
        "id": "ft-sim-old-0005",
        "model": "meta-llama/Llama-2-7b-hf",
        "steps": 50,
        "step_seconds": 1,
        "delay": -7200,
    },
    # Planned for 300 steps; its loss climbs from 2:30 and it fails at step 90, at 3:00.
    {
        "id": "ft-sim-phi-0006",
        "model": "microsoft/Phi-3-mini-4k-instruct",
        "steps": 300,
        "step_seconds": 2,
        "eval_every": 10,
        "fail_at_step": 90,
    },
)


# The fields of a spec that are times of the story.
_SPEC_TIMES = ("delay", "step_seconds", "post_seconds", "eval_seconds")


def fine_tunes(speed: float = 1.0, lead: float = 0.0) -> list[dict[str, Any]]:
    """``FINE_TUNES`` with their times on a clock ``speed`` times as fast as the story's,
    for a story that begins ``lead`` seconds of that clock from now."""
    return [
        {
            **{k: v / speed if k in _SPEC_TIMES else v for k, v in spec.items()},
            "delay": lead + spec.get("delay", 0) / speed,
        }
        for spec in FINE_TUNES
    ]


# --- Baseten: a staging deployment that scales with its traffic ----------------------

SCALING_DEPLOYMENT = ("m1llama", "d1stage")


@dataclass(frozen=True)
class Phase:
    """A stretch of the cycle: requests per second go linearly from ``rps_from`` to
    ``rps_to``; replicas and status hold."""

    start: float
    end: float
    rps_from: float
    rps_to: float
    active: int
    starting: int
    status: str
    # The requests served here waited through a cold start: their latency includes it.
    after_cold_start: bool = False

    def rps(self, u: float) -> float:
        return self.rps_from + (self.rps_to - self.rps_from) * (u - self.start) / (self.end - self.start)

    def requests_until(self, u: float) -> float:
        """Requests served from the phase's start to ``u`` (the area under ``rps``)."""
        d = u - self.start
        return self.rps_from * d + (self.rps_to - self.rps_from) * d * d / (2 * (self.end - self.start))

    def replica_seconds_until(self, u: float) -> float:
        return self.active * (u - self.start)


SCALING: tuple[Phase, ...] = (
    Phase(0, 90, 4, 4, 1, 0, "ACTIVE"),  # steady test traffic on one replica
    Phase(90, 120, 4, 9, 1, 1, "ACTIVE"),  # traffic rises: a second replica starts
    Phase(120, 150, 9, 14, 2, 1, "ACTIVE"),  # and a third
    Phase(150, 210, 14, 14, 3, 0, "ACTIVE"),  # the peak, served by three
    Phase(210, 240, 14, 6, 3, 0, "ACTIVE"),  # traffic falls
    Phase(240, 270, 6, 0, 2, 0, "ACTIVE"),  # one replica goes
    Phase(270, 330, 0, 0, 1, 0, "ACTIVE"),  # idle until the scale-down delay passes
    Phase(330, 420, 0, 0, 0, 0, "SCALED_TO_ZERO"),  # no replica, no requests
    Phase(420, 465, 0, 0, 0, 1, "WAKING_UP"),  # requests arrive and wait for a cold start
    Phase(465, 495, 8, 4, 1, 0, "ACTIVE", after_cold_start=True),  # those requests are served
    Phase(495, CYCLE, 4, 4, 1, 0, "ACTIVE"),  # steady again
)
# Requests per second that queue up while the deployment wakes (none is served).
WAKING_ARRIVALS = 2.0
# Latency grows with the requests each active replica serves (at most about 1.9 times
# the usual, so the 0.95 quantile stays under the latency alert's and objective's 5 s);
# after a cold start the first requests also carry the time they waited, mostly in the
# async queue.
LATENCY_PER_RPS_PER_REPLICA = 0.1
COLD_START_LATENCY_FACTOR = 1.15
COLD_START_QUEUE_FACTOR = 10.0


def _locate(t: float) -> tuple[int, int, float]:
    """Which cycle ``t`` falls in, the index of its phase, and the seconds into the cycle."""
    n = math.floor(t / CYCLE)
    u = t - n * CYCLE
    i = next((i for i, p in enumerate(SCALING) if p.start <= u < p.end), len(SCALING) - 1)
    return n, i, u


@dataclass(frozen=True)
class DeploymentMoment:
    """The scaling deployment at one moment."""

    status: str
    active: int
    starting: int
    rps: float
    # Requests waiting in the async queue (while it wakes up).
    queued: int
    # Multipliers on the deployment's usual response times and time in the async queue.
    latency_factor: float
    queue_time_factor: float = 1.0


def deployment_at(t: float) -> DeploymentMoment:
    """The scaling deployment ``t`` seconds after the start."""
    _, i, u = _locate(t)
    p = SCALING[i]
    rps = p.rps(u)
    queued = round(WAKING_ARRIVALS * (u - p.start)) if p.status == "WAKING_UP" else 0
    factor = 1 + LATENCY_PER_RPS_PER_REPLICA * rps / max(1, p.active)
    if p.after_cold_start:
        return DeploymentMoment(
            p.status,
            p.active,
            p.starting,
            rps,
            queued,
            factor * COLD_START_LATENCY_FACTOR,
            COLD_START_QUEUE_FACTOR,
        )
    return DeploymentMoment(p.status, p.active, p.starting, rps, queued, factor)


def latency_over(t0: float, t1: float, samples: int = 12) -> tuple[float, float]:
    """The latency and async-queue-time factors of the requests served in [t0, t1):
    the moments' factors weighted by how many requests each served (1, 1 if none)."""
    moments = [deployment_at(t0 + (t1 - t0) * (i + 0.5) / samples) for i in range(samples)]
    served = sum(m.rps for m in moments)
    if served == 0:
        return 1.0, 1.0
    latency = sum(m.rps * m.latency_factor for m in moments) / served
    queue_time = sum(m.rps * m.queue_time_factor for m in moments) / served
    return latency, queue_time


_CYCLE_REQUESTS = tuple(p.requests_until(p.end) for p in SCALING)
_CYCLE_REPLICA_SECONDS = tuple(p.replica_seconds_until(p.end) for p in SCALING)


def requests_until(t: float) -> float:
    """Requests the scaling deployment served from the start to ``t`` (negative before
    it): a running total that never decreases, continuous across cycles."""
    n, i, u = _locate(t)
    return n * sum(_CYCLE_REQUESTS) + sum(_CYCLE_REQUESTS[:i]) + SCALING[i].requests_until(u)


def replica_seconds_until(t: float) -> float:
    """Active-replica seconds of the scaling deployment from the start to ``t``."""
    n, i, u = _locate(t)
    return (
        n * sum(_CYCLE_REPLICA_SECONDS)
        + sum(_CYCLE_REPLICA_SECONDS[:i])
        + SCALING[i].replica_seconds_until(u)
    )


# --- The alerts the story sets off ----------------------------------------------------


@dataclass(frozen=True)
class StoryAlert:
    """An alert of the demo's rules (exporter/demo/alerts.yaml and slos.yaml) that the
    story sets off: its condition holds from ``start`` to ``end``, in seconds of the
    story as the vendor's data has them (Prometheus sees each a poll, a scrape and an
    evaluation later), and it fires when that outlasts the rule's hold. ``labels`` pick
    out its one series. A ``startup`` alert belongs to Prometheus's first moments, not to
    the story, and may not show at all."""

    name: str
    labels: tuple[tuple[str, str], ...]
    start: float
    end: float
    fires: bool
    startup: bool = False


_BACKLOG = (("account", "prod"), ("model", BACKLOG_MODEL))
_PHI = (("account", "prod"), ("job_id", "ft-sim-phi-0006"))

# Every alert that goes pending in the first cycle; none other does.
ALERTS: tuple[StoryAlert, ...] = (
    # Before Prometheus's first scrape of the exporter there is no `up` series at all.
    StoryAlert("InferenceExporterAbsent", (), 0, 0, fires=False, startup=True),
    # The backlog holds 50 jobs or more (0:29-5:30) and its trend points past 100 within
    # the hour; held for 15 minutes, the warning never fires.
    StoryAlert("TogetherQueueBacklogGrowing", _BACKLOG, 29, 331, fires=False),
    # More than 100 waiting (0:46-4:46): held for 2 minutes by the demo's rules, it fires.
    StoryAlert("TogetherQueueDepthHigh", _BACKLOG, 46, 286, fires=True),
    # phi's loss passes three times its lowest at step 81 (2:42); the job fails at 3:00
    # and is no longer running, which ends the condition.
    StoryAlert("TogetherFinetuneLossDiverged", _PHI, 162, 180, fires=False),
    # phi's status is error from 3:00 until its series go with the demo's two-minute
    # fine-tune retention after its final read; held for a minute, it fires.
    StoryAlert("TogetherFinetuneFailed", _PHI, 180, 305, fires=True),
    # d1stage has requests queued and no replica while it wakes up (7:00-7:45); held for
    # 5 minutes, it resolves without firing.
    StoryAlert(
        "BasetenReplicasZeroWithDemand",
        (("account", "prod"), ("model_id", SCALING_DEPLOYMENT[0]), ("deployment_id", SCALING_DEPLOYMENT[1])),
        420,
        465,
        fires=False,
    ),
)
