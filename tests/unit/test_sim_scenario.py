"""The simulator's default scenario on a hand-driven clock: the story docs/demo.md tells.

Each test drives the real simulator application (its HTTP answers, checked against the
vendor schemas) through the moments that matter, and checks the scenario against what
the demo really runs: the queues and probe of exporter/demo/demo.yaml and the alert
rules the compose stack's Prometheus loads.
"""

from __future__ import annotations

import asyncio
import re
import statistics
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple

import pytest
import yaml
from aiohttp.test_utils import TestClient, TestServer
from jsonschema import Draft202012Validator

from exporter.configkit.common import parse_duration
from exporter.simulator import baseten_data, scenario
from exporter.simulator.app import make_app
from exporter.simulator.state import SimState
from mixin.config import DEFAULT
from mixin.generate import DEMO_ALERTS_PATH, DEMO_SLOS_PATH
from tests import schemas

ROOT = Path(__file__).resolve().parents[2]
START = 1_800_000_000.0
AUTH = {"Authorization": "Bearer k"}
DEMO = yaml.safe_load((ROOT / "exporter/demo/demo.yaml").read_text(encoding="utf-8"))
BASETEN_SCHEMAS = yaml.safe_load((ROOT / "tests/fixtures/schemas/baseten.yaml").read_text(encoding="utf-8"))
# Between the queue's depth and the alert's state in the compose stack: the demo's poll
# interval, then Prometheus's scrape and rule evaluation intervals.
PIPELINE = parse_duration(DEMO["global"]["poll_interval"]) + 2 * parse_duration(
    yaml.safe_load((ROOT / "deploy/compose/prometheus.yml").read_text())["global"]["scrape_interval"]
)


def depth_alert() -> tuple[float, float]:
    """TogetherQueueDepthHigh's threshold and hold as the demo's Prometheus loads them."""
    rules = yaml.safe_load((ROOT / DEMO_ALERTS_PATH).read_text(encoding="utf-8"))
    (rule,) = [r for g in rules["groups"] for r in g["rules"] if r.get("alert") == "TogetherQueueDepthHigh"]
    metric, _, threshold = rule["expr"].partition(" > ")
    assert metric == "together_queue_jobs_waiting"
    return float(threshold), parse_duration(rule["for"])


class Clock:
    def __init__(self) -> None:
        self.t = START

    def __call__(self) -> float:
        return self.t

    def at(self, seconds: float) -> None:
        """Set the clock ``seconds`` after the simulator's start."""
        self.t = START + seconds


def run(body: Callable[[TestClient[Any, Any], Clock], Awaitable[None]]) -> None:
    async def main() -> None:
        clock = Clock()
        state = SimState(api_keys=frozenset({"k"}), clock=clock)
        assert state.started_at == START  # the story's time zero is the simulator's clock at start
        async with TestClient(TestServer(make_app(state))) as client:
            await body(client, clock)

    asyncio.run(main())


async def get(c: TestClient[Any, Any], path: str, **params: Any) -> Any:
    resp = await c.get(path, params=params, headers=AUTH)
    assert resp.status == 200, await resp.text()
    return await resp.json()


def ts(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


# --- Together queue ------------------------------------------------------------------


def test_backlog_fires_the_queue_depth_alert_within_five_minutes_then_drains() -> None:
    threshold, hold = depth_alert()
    queues = [q["model"] for q in DEMO["together"]["accounts"][0]["queues"]]
    assert scenario.BACKLOG_MODEL in queues

    async def body(c: TestClient[Any, Any], clock: Clock) -> None:
        depths: dict[str, dict[int, tuple[int, int]]] = {m: {} for m in queues}
        for t in range(0, 2 * int(scenario.CYCLE), 5):
            clock.at(t)
            for model in queues:
                doc = await get(c, "/v1/queue/metrics", model=model)
                schemas.validate("together_queue.yaml", "QueueMetricsResponse", doc)
                depths[model][t] = (doc["messages_waiting"], doc["messages_running"])
        backlog = {t: w for t, (w, _) in depths[scenario.BACKLOG_MODEL].items()}
        above = [t for t, w in backlog.items() if w > threshold and t < scenario.CYCLE]
        first, last = min(above), max(above)
        # One stretch above the threshold: pending within the first minute, held longer
        # than the alert's hold (plus polling, scraping and evaluation), so it fires
        # before five minutes are out.
        assert above == list(range(first, last + 5, 5))
        assert first <= 60
        assert last - first > hold + PIPELINE
        assert first + hold + PIPELINE <= 300
        # Then it drains: under the threshold from five minutes on, calm again by 6:30.
        assert all(w <= threshold for t, w in backlog.items() if 300 <= t < scenario.CYCLE)
        assert all(w < 20 for t, w in backlog.items() if 390 <= t < scenario.CYCLE)
        assert max(backlog.values()) > 1.5 * threshold
        # And it all happens again in the next cycle.
        assert all(backlog[t] == backlog[t + int(scenario.CYCLE)] for t in range(0, int(scenario.CYCLE), 5))
        # Workers keep running (the stalled-queue alert stays quiet), more of them while deep.
        running = {t: r for t, (_, r) in depths[scenario.BACKLOG_MODEL].items()}
        assert min(running.values()) >= 1
        assert running[150] > running[0]
        # The other queues move, but stay below where a growing backlog is worth a warning.
        for model in queues:
            if model != scenario.BACKLOG_MODEL:
                waiting = [w for w, _ in depths[model].values()]
                assert max(waiting) < DEFAULT.backlog_growing_min_waiting and len(set(waiting)) > 5, model

    run(body)


def test_no_queue_of_the_demo_stalls() -> None:
    """Jobs wait only while one runs, in every queue of both accounts (TogetherQueueStalled)."""
    models = [(a["name"], q["model"]) for a in DEMO["together"]["accounts"] for q in a["queues"]]
    assert ("staging", "demo-org/embedder-canary") in models
    salts = {"prod": "", "staging": "staging"}
    for account, model in models:
        for t in range(0, 2 * int(scenario.CYCLE)):
            waiting, running = scenario.queue_depths(salts[account] + model, t)
            assert running >= 1 or waiting == 0, (account, model, t)


def test_a_scripted_queue_overrides_the_story() -> None:
    async def body(c: TestClient[Any, Any], clock: Clock) -> None:
        doc = {"model": scenario.BACKLOG_MODEL, "kind": "fixed", "waiting": 3, "running": 1}
        assert (await c.post("/_sim/queue", json=doc)).status == 200
        clock.at(150)
        doc = await get(c, "/v1/queue/metrics", model=scenario.BACKLOG_MODEL)
        assert (doc["messages_waiting"], doc["messages_running"]) == (3, 1)

    run(body)


# --- Probe jobs ------------------------------------------------------------------------


async def probe_jobs(
    c: TestClient[Any, Any], clock: Clock, model: str, every: float, start: float = 0.0
) -> list[tuple[float, float]]:
    """One job submitted every ``every`` seconds over a cycle from ``start``, each followed
    to its end: (queue wait, run time) from its timestamps."""
    out = []
    for i in range(int(scenario.CYCLE / every)):
        clock.at(start + i * every)
        resp = await c.post("/v1/queue/submit", json={"model": model, "payload": {"p": 1}}, headers=AUTH)
        rid = (await resp.json())["requestId"]
        clock.at(start + i * every + every - 0.1)
        doc = await get(c, "/v1/queue/status", model=model, request_id=rid)
        assert doc["status"] == "done", doc
        created, claimed, done = (ts(doc[k]) for k in ("created_at", "claimed_at", "done_at"))
        out.append((round(claimed - created, 3), round(done - claimed, 3)))
    return out


def test_probe_jobs_wait_and_run_for_times_of_their_own() -> None:
    (probe,) = DEMO["together"]["accounts"][0]["probes"]
    model, every, timeout = (
        probe["model"],
        parse_duration(probe["interval"]),
        parse_duration(probe["timeout"]),
    )
    threshold, _ = depth_alert()
    runs: list[list[tuple[float, float]]] = []

    async def body(c: TestClient[Any, Any], clock: Clock) -> None:
        runs.append(await probe_jobs(c, clock, model, every))

    run(body)
    run(body)
    timings = runs[0]
    # Reproducible: the same clock replays the same timings.
    assert runs[1] == timings
    waits, durations = [w for w, _ in timings], [r for _, r in timings]
    # Every job its own draw, and every one within the demo probe's timeout.
    assert len(set(waits)) > 0.9 * len(waits) and len(set(durations)) > 0.9 * len(durations)
    assert max(waits) - min(waits) > 1 and max(durations) - min(durations) > 0.5
    assert all(w + r < timeout for w, r in timings)
    # Jobs wait longer while the backlog is deep.
    deep = [w for i, w in enumerate(waits) if scenario.queue_depths(model, i * every)[0] > threshold]
    calm = [w for i, w in enumerate(waits) if scenario.queue_depths(model, i * every)[0] < 20]
    assert len(deep) >= 10 and len(calm) >= 10
    assert statistics.median(deep) > 1.5 * statistics.median(calm)


def test_scripted_timings_hold_for_every_job_until_cleared() -> None:
    async def body(c: TestClient[Any, Any], clock: Clock) -> None:
        script = {"model": "m", "claim_delay": 0.25, "run_seconds": 0.5}
        assert (await c.post("/_sim/jobs", json=script)).status == 200
        assert set(await probe_jobs(c, clock, "m", 60)) == {(0.25, 0.5)}
        assert (await c.post("/_sim/jobs", json={"model": "m", "claim_delay": None})).status == 200
        waits = {w for w, _ in await probe_jobs(c, clock, "m", 60, start=scenario.CYCLE)}
        assert len(waits) > 5  # drawn again

    run(body)


# --- Baseten ---------------------------------------------------------------------------


def validate_baseten(doc: Any, schema: str) -> None:
    Draft202012Validator({**BASETEN_SCHEMAS, "$ref": f"#/components/schemas/{schema}"}).validate(doc)


async def deployments(c: TestClient[Any, Any], model_id: str) -> dict[str, dict[str, Any]]:
    doc = await get(c, f"/v1/models/{model_id}/deployments")
    validate_baseten(doc, "DeploymentsV1")
    return {d["id"]: d for d in doc["deployments"]}


async def current(c: TestClient[Any, Any], model_id: str, dep_id: str, *names: str) -> dict[str, Any]:
    params = [("mode", "CURRENT"), *(("metrics", n) for n in names)]
    resp = await c.get(f"/v1/models/{model_id}/deployments/{dep_id}/metrics", params=params, headers=AUTH)
    doc = await resp.json()
    validate_baseten(doc, "GetDeploymentMetricsResponseV1")
    values = doc["metric_values"][0]["values"]
    return {d["name"]: values[i][0] for i, d in enumerate(doc["metric_descriptors"])}


class Seen(NamedTuple):
    """The scaling deployment at one moment, as the API reports it."""

    status: str
    listed: int  # active_replica_count in the deployment list
    active: int  # the replicas_active gauge
    starting: int
    queued: int  # the async_queue_size gauge


def collapse(seq: list[Any]) -> list[Any]:
    return [v for i, v in enumerate(seq) if i == 0 or seq[i - 1] != v]


def test_staging_deployment_scales_up_down_to_zero_and_back() -> None:
    model_id, dep_id = scenario.SCALING_DEPLOYMENT
    gauges = ("baseten_replicas_active", "baseten_replicas_starting", "baseten_async_queue_size")

    async def body(c: TestClient[Any, Any], clock: Clock) -> None:
        by_t: dict[int, Seen] = {}
        for t in range(0, int(scenario.CYCLE) + 1, 15):
            clock.at(t)
            dep = (await deployments(c, model_id))[dep_id]
            g = await current(c, model_id, dep_id, *gauges)
            by_t[t] = Seen(dep["status"], dep["active_replica_count"], *(int(g[n]) for n in gauges))
            assert by_t[t].active == by_t[t].listed  # the list and the gauge agree
            # The steady deployments around it do not move.
            assert (await deployments(c, model_id))["d1prod"]["active_replica_count"] == 2
        # Up to three replicas, each new one starting first; down again; to zero; back.
        assert by_t[0][:4] == ("ACTIVE", 1, 1, 0)
        assert by_t[105][:4] == ("ACTIVE", 1, 1, 1)
        assert max(s.active for s in by_t.values()) == 3 and by_t[180].active == 3
        assert collapse([s.active for s in by_t.values()]) == [1, 2, 3, 2, 1, 0, 1]
        statuses = collapse([s.status for s in by_t.values()])
        assert statuses == ["ACTIVE", "SCALED_TO_ZERO", "WAKING_UP", "ACTIVE"]
        zero = [t for t, s in by_t.items() if s.status == "SCALED_TO_ZERO"]
        assert zero[0] <= 360 and len(zero) * 15 >= 60
        # No replica, none starting, nothing queued.
        assert all(by_t[t][1:] == (0, 0, 0, 0) for t in zero)
        waking = [by_t[t] for t, s in by_t.items() if s.status == "WAKING_UP"]
        assert waking and all(s[1:4] == (0, 0, 1) and s.queued > 0 for s in waking[1:])
        assert by_t[int(scenario.CYCLE)][:4] == by_t[0][:4]  # and it starts over

        # Requests follow the load: none while at zero, most at the peak. Latency is null
        # where no request finished, and the requests that waited through the cold start
        # took longest, most of it in the async queue.
        clock.at(scenario.CYCLE + 300)
        params: list[tuple[str, str | int]] = [
            ("mode", "SERIES"),
            ("metrics", "baseten_inference_requests_total"),
            ("metrics", "baseten_end_to_end_response_time_seconds"),
            ("metrics", "baseten_time_in_async_queue_seconds"),
            ("start_epoch_millis", int(START * 1000)),
            ("end_epoch_millis", int((START + scenario.CYCLE) * 1000)),
        ]
        path = f"/v1/models/{model_id}/deployments/{dep_id}/metrics"
        doc = await (await c.get(path, params=params, headers=AUTH)).json()
        validate_baseten(doc, "GetDeploymentMetricsResponseV1")
        steps = {
            round(v["start_epoch_millis"] / 1000 - START): (
                sum(v["values"][0]),
                v["values"][1][0],
                v["values"][2][0],
            )
            for v in doc["metric_values"]
        }
        assert steps[360] == (0, None, None)  # 6:00-7:00, scaled to zero
        assert max(steps, key=lambda t: steps[t][0]) in (120, 180)  # 2:00-4:00
        assert max(steps, key=lambda t: steps[t][1] or 0) == 420
        assert steps[420][2] > 5 * steps[0][2]

    run(body)


def test_a_scripted_deployment_leaves_the_load_curve() -> None:
    model_id, dep_id = scenario.SCALING_DEPLOYMENT

    async def body(c: TestClient[Any, Any], clock: Clock) -> None:
        doc = {"model_id": model_id, "deployment_id": dep_id, "status": "UPDATING"}
        assert (await c.post("/_sim/baseten", json=doc)).status == 200
        clock.at(360)  # the story would have it at zero
        dep = (await deployments(c, model_id))[dep_id]
        assert (dep["status"], dep["active_replica_count"]) == ("UPDATING", 1)

    run(body)


# --- Fine-tunes --------------------------------------------------------------------------


def test_a_fine_tune_fails_and_the_others_keep_their_story() -> None:
    async def status(c: TestClient[Any, Any], job: str) -> str:
        doc = await get(c, f"/v1/fine-tunes/{job}")
        schemas.validate("together_finetune.yaml", "FinetuneResponse", doc)
        return str(doc["status"])

    async def body(c: TestClient[Any, Any], clock: Clock) -> None:
        timeline = {
            59: {
                "ft-sim-mistral-0003": "running",
                "ft-sim-gemma-0004": "queued",
                "ft-sim-phi-0006": "running",
            },
            61: {"ft-sim-mistral-0003": "compressing", "ft-sim-gemma-0004": "running"},
            81: {"ft-sim-mistral-0003": "completed"},
            179: {"ft-sim-phi-0006": "running", "ft-sim-gemma-0004": "completed"},
            181: {"ft-sim-phi-0006": "error", "ft-sim-old-0005": "completed"},
            1800: {"ft-sim-phi-0006": "error", "ft-sim-llama-0001": "running", "ft-sim-qwen-0002": "running"},
        }
        for t, expected in timeline.items():
            clock.at(t)
            assert {job: await status(c, job) for job in expected} == expected, t
        # The failed job logged 90 steps, its loss climbing over the last ones.
        rows = (await get(c, "/v1/fine-tunes/ft-sim-phi-0006/metrics"))["metrics"]
        schemas.validate("together_finetune.yaml", "FinetuneMetricsResponse", {"metrics": rows})
        loss = {r["train/global_step"]: r["train/loss"] for r in rows if "train/loss" in r}
        assert max(loss) == 90
        assert loss[90] > 5 * loss[75] and loss[75] < loss[60] * 1.1

    run(body)


# --- The alerts the story sets off ------------------------------------------------------


def demo_rules() -> dict[str, dict[str, Any]]:
    return {
        str(r["alert"]): r
        for rel in (DEMO_ALERTS_PATH, DEMO_SLOS_PATH)
        for g in yaml.safe_load((ROOT / rel).read_text(encoding="utf-8"))["groups"]
        for r in g["rules"]
        if "alert" in r
    }


def test_the_story_s_alerts_are_the_demo_s_and_fire_when_they_outlast_their_hold() -> None:
    rules = demo_rules()
    for a in scenario.ALERTS:
        assert a.name in rules, a.name
        if not a.startup:
            assert a.fires == (a.end - a.start > parse_duration(rules[a.name]["for"])), a.name


def spans(values: dict[int, bool]) -> list[tuple[int, int]]:
    """The stretches of seconds where ``values`` is true, as (first, one past the last)."""
    out: list[tuple[int, int]] = []
    for t, v in sorted(values.items()):
        if v and (not out or out[-1][1] != t):
            out.append((t, t + 1))
        elif v:
            out[-1] = (out[-1][0], t + 1)
    return out


def test_the_story_s_alert_times_follow_its_timetable() -> None:
    """Each alert's stretch, as ``scenario.ALERTS`` gives it, from the scenario's own values."""
    by = {a.name: a for a in scenario.ALERTS}
    backlog = {t: scenario.queue_depths(scenario.BACKLOG_MODEL, t)[0] for t in range(int(scenario.CYCLE))}
    threshold, _ = depth_alert()
    (above,) = spans({t: w > threshold for t, w in backlog.items()})
    assert (by["TogetherQueueDepthHigh"].start, by["TogetherQueueDepthHigh"].end) == above
    (deep,) = spans({t: w >= DEFAULT.backlog_growing_min_waiting for t, w in backlog.items()})
    assert (by["TogetherQueueBacklogGrowing"].start, by["TogetherQueueBacklogGrowing"].end) == deep
    waking = {t: scenario.deployment_at(t).status == "WAKING_UP" for t in range(int(scenario.CYCLE))}
    (zero,) = spans(waking)
    assert (by["BasetenReplicasZeroWithDemand"].start, by["BasetenReplicasZeroWithDemand"].end) == zero
    (phi,) = [j for j in scenario.FINE_TUNES if j["id"] == "ft-sim-phi-0006"]
    failed = phi["fail_at_step"] * phi["step_seconds"]
    assert by["TogetherFinetuneLossDiverged"].end == by["TogetherFinetuneFailed"].start == failed
    retention = parse_duration(DEMO["together"]["accounts"][0]["fine_tunes"]["retention"])
    poll = parse_duration(DEMO["together"]["accounts"][0]["fine_tunes"]["poll_interval"])
    assert by["TogetherFinetuneFailed"].end == failed + poll + retention


def test_the_loss_diverges_when_the_story_says() -> None:
    """phi's train loss first passes three times its lowest so far at LossDiverged's start."""
    factor = DEFAULT.finetune_loss_divergence_factor
    start = next(a.start for a in scenario.ALERTS if a.name == "TogetherFinetuneLossDiverged")

    async def body(c: TestClient[Any, Any], clock: Clock) -> None:
        clock.at(179)
        rows = (await get(c, "/v1/fine-tunes/ft-sim-phi-0006/metrics"))["metrics"]
        loss = sorted((r["train/global_step"], r["train/loss"]) for r in rows if "train/loss" in r)
        lowest = [min(v for _, v in loss[: i + 1]) for i in range(len(loss))]
        (phi,) = [j for j in scenario.FINE_TUNES if j["id"] == "ft-sim-phi-0006"]
        crossed = next(step for (step, v), low in zip(loss, lowest, strict=True) if v > factor * low)
        assert crossed * phi["step_seconds"] == start

    run(body)


def test_the_demo_s_docs_list_exactly_the_story_s_alerts() -> None:
    page = (ROOT / "docs/demo.md").read_text(encoding="utf-8")
    section = page.split("## The alerts", 1)[1].split("\n## ", 1)[0]
    listed = re.findall(r"^\| (\w+) \|", section, re.M)
    assert listed[1:] == [a.name for a in scenario.ALERTS]  # the first row is the header


def test_baseten_errors_spend_a_small_share_of_the_availability_budget() -> None:
    budget = 1 - DEFAULT.baseten_availability_objective
    assert baseten_data.STATUS_SHARE["5xx"] <= budget / 5
    assert sum(baseten_data.STATUS_SHARE.values()) == pytest.approx(1.0)
