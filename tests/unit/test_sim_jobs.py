"""The simulated queue jobs: the documented lifecycle, and answers that match the vendor schemas."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import httpx
import jsonschema
import yaml
from aiohttp.test_utils import TestClient, TestServer

from exporter.simulator.app import make_app
from exporter.simulator.state import SimState
from exporter.simulator.together_jobs import Job, ModelQueue, iso
from tests.conftest import SIM_KEY
from tests.helpers import REPO, Proc

SCHEMAS: dict[str, Any] = yaml.safe_load(
    (REPO / "tests" / "fixtures" / "schemas" / "together_queue_jobs.yaml").read_text()
)
FORMATS = jsonschema.FormatChecker(formats=())


@FORMATS.checks("date-time", raises=ValueError)
def _rfc3339(value: object) -> bool:
    if not isinstance(value, str):
        return True
    if not (value.endswith("Z") or value[-6:-5] in ("+", "-")):
        raise ValueError("no offset")
    datetime.fromisoformat(value)
    return True


def check(schema: str, doc: Any) -> None:
    """Validate ``doc`` against one fixture schema (its ``#/QueueError`` ref resolves at the root)."""
    root = {**SCHEMAS[schema], "QueueError": SCHEMAS["QueueError"]}
    jsonschema.Draft202012Validator(root, format_checker=FORMATS).validate(doc)


class Clock:
    def __init__(self) -> None:
        self.t = 1_800_000_000.0

    def __call__(self) -> float:
        return self.t


def run(body: Callable[[TestClient[Any, Any], Clock], Awaitable[None]]) -> None:
    async def main() -> None:
        clock = Clock()
        app = make_app(SimState(api_keys=frozenset({"k"}), clock=clock))
        async with TestClient(TestServer(app)) as client:
            await body(client, clock)

    asyncio.run(main())


AUTH = {"Authorization": "Bearer k"}


async def submit(c: TestClient[Any, Any], model: str, priority: int = 0) -> str:
    resp = await c.post(
        "/v1/queue/submit", json={"model": model, "payload": {"p": 1}, "priority": priority}, headers=AUTH
    )
    assert resp.status == 200
    doc = await resp.json()
    check("QueueJobResponse", doc)
    return str(doc["requestId"])


async def status(c: TestClient[Any, Any], model: str, rid: str) -> dict[str, Any]:
    resp = await c.get("/v1/queue/status", params={"model": model, "request_id": rid}, headers=AUTH)
    assert resp.status == 200
    doc: dict[str, Any] = await resp.json()
    check("QueueJobStatusResponse", doc)
    return doc


async def script(c: TestClient[Any, Any], **doc: Any) -> None:
    assert (await c.post("/_sim/jobs", json=doc)).status == 200


def test_lifecycle_pending_running_done_with_timestamps() -> None:
    async def body(c: TestClient[Any, Any], clock: Clock) -> None:
        await script(c, model="m", claim_delay=1.0, run_seconds=3.0)
        rid = await submit(c, "m")
        t0 = clock.t
        assert (await status(c, "m", rid))["status"] == "pending"
        clock.t += 2
        doc = await status(c, "m", rid)
        assert doc["status"] == "running"
        assert doc["claimed_at"] == iso(t0 + 1) and "done_at" not in doc
        clock.t += 5
        doc = await status(c, "m", rid)
        assert doc["status"] == "done"
        assert (doc["created_at"], doc["claimed_at"], doc["done_at"]) == (iso(t0), iso(t0 + 1), iso(t0 + 4))
        assert doc["retries"] == 0 and doc["outputs"] and doc["inputs"] == {"p": 1}

    run(body)


def test_strict_priority_then_fifo() -> None:
    async def body(c: TestClient[Any, Any], clock: Clock) -> None:
        await script(c, model="m", mode="stopped", claim_delay=0.0, run_seconds=1.0)
        low1 = await submit(c, "m", 0)
        high = await submit(c, "m", 5)
        low2 = await submit(c, "m", 0)
        mid = await submit(c, "m", 2)
        clock.t += 5.0  # nothing is claimed while the workers are stopped
        for rid in (low1, high, low2, mid):
            assert (await status(c, "m", rid))["status"] == "pending"
        await script(c, model="m", mode="ok")
        t_start = clock.t
        clock.t += 10.0
        claimed = {rid: (await status(c, "m", rid))["claimed_at"] for rid in (low1, high, low2, mid)}
        # One worker, one second per job: highest priority first, then submission order.
        assert [claimed[r] for r in (high, mid, low1, low2)] == [iso(t_start + i) for i in range(4)]

    run(body)


def test_claim_timeouts_retry_then_fail_after_three_retries() -> None:
    async def body(c: TestClient[Any, Any], clock: Clock) -> None:
        await script(c, model="m", claim_delay=0.0, stalls=1, claim_timeout=2.0, run_seconds=1.0)
        rid = await submit(c, "m")
        clock.t += 2.5
        doc = await status(c, "m", rid)
        assert (doc["status"], doc["retries"]) == ("running", 1)
        clock.t += 1.0
        assert (await status(c, "m", rid))["status"] == "done"

        await script(c, model="m", stalls=99)
        rid = await submit(c, "m")
        clock.t += 2.0 * 3 + 1.0
        doc = await status(c, "m", rid)
        assert (doc["status"], doc["retries"]) == ("running", 3)
        clock.t += 1.5
        doc = await status(c, "m", rid)
        assert (doc["status"], doc["retries"]) == ("failed", 3)
        assert "done_at" in doc

    run(body)


def test_jobs_the_model_fails_are_not_retried() -> None:
    async def body(c: TestClient[Any, Any], clock: Clock) -> None:
        await script(c, model="m", mode="fail", claim_delay=0.0, run_seconds=1.0)
        rid = await submit(c, "m")
        clock.t += 1.5
        doc = await status(c, "m", rid)
        assert (doc["status"], doc["retries"]) == ("failed", 0)
        assert "outputs" not in doc

    run(body)


def test_cancel_only_while_pending() -> None:
    async def body(c: TestClient[Any, Any], clock: Clock) -> None:
        await script(c, model="m", claim_delay=1.0, run_seconds=10.0)
        a = await submit(c, "m")
        b = await submit(c, "m")
        clock.t += 1.5  # a runs, b waits for the one worker
        resp = await c.post("/v1/queue/cancel", json={"model": "m", "request_id": b}, headers=AUTH)
        assert resp.status == 200
        check("QueueCancelResponse", await resp.json())
        assert (await status(c, "m", b))["status"] == "canceled"
        resp = await c.post("/v1/queue/cancel", json={"model": "m", "request_id": a}, headers=AUTH)
        assert resp.status == 409
        doc = await resp.json()
        check("QueueCancelResponse", doc)
        assert doc == {"status": "running"}
        resp = await c.post("/v1/queue/cancel", json={"model": "m", "request_id": "nope"}, headers=AUTH)
        assert resp.status == 404
        check("QueueError", await resp.json())
        listed = await (await c.get("/_sim/jobs", params={"status": "pending"})).json()
        assert listed == {"jobs": []}

    run(body)


def test_bad_requests_and_faults_answer_queue_errors() -> None:
    async def body(c: TestClient[Any, Any], clock: Clock) -> None:
        bad: dict[str, Any]
        for bad in ({"model": "m"}, {"payload": {}}, {"model": "m", "payload": {}, "priority": "high"}):
            resp = await c.post("/v1/queue/submit", json=bad, headers=AUTH)
            assert resp.status == 400
            check("QueueError", await resp.json())
        resp = await c.get("/v1/queue/status", params={"model": "m"}, headers=AUTH)
        assert resp.status == 400
        resp = await c.post("/v1/queue/submit", json={"model": "m", "payload": {}})
        assert resp.status == 401
        for code in (400, 401, 429, 500, 503):
            await script(c, model="f", submit_status=code)
            resp = await c.post("/v1/queue/submit", json={"model": "f", "payload": {}}, headers=AUTH)
            assert resp.status == code
            check("QueueError", await resp.json())
        await script(c, model="f", clear=True)
        rid = await submit(c, "f")
        await script(c, model="f", omit=["created_at"], status_override="paused")
        resp = await c.get("/v1/queue/status", params={"model": "f", "request_id": rid}, headers=AUTH)
        doc = await resp.json()
        assert doc["status"] == "paused" and "created_at" not in doc
        assert (await c.post("/_sim/jobs", json={"model": "f", "bogus": 1})).status == 400
        for bad in ({"workers": "two"}, {"mode": "slow"}, {"submit_status": 200}, {"omit": "x"}):
            assert (await c.post("/_sim/jobs", json={"model": "f", **bad})).status == 400, bad

    run(body)


def test_model_queue_replay_is_exact() -> None:
    q = ModelQueue(100.0)
    q.behaviour.claim_delay = 0.5
    q.behaviour.run_seconds = 2.0
    q.behaviour.workers = 2
    for i in range(3):
        q.seq += 1
        q.jobs[str(i)] = Job(str(i), "m", {}, {}, 0, q.seq, 100.0, 100.0)
    q.advance(110.0)
    claimed = sorted((j.claimed_at, j.done_at) for j in q.jobs.values())
    # Two workers take jobs 0 and 1 once the claim delay has passed; job 2, ready since
    # 100.5, is taken as soon as a worker frees up at 102.5.
    assert claimed == [(100.5, 102.5), (100.5, 102.5), (102.5, 104.5)]


def test_real_simulator_answers_match_schemas(simulator: Proc) -> None:
    """Through the real process too, so the installed routes are the documented ones."""
    headers = {"Authorization": f"Bearer {SIM_KEY}"}
    with httpx.Client(base_url=simulator.url, headers=headers, timeout=5) as c:
        body = {"model": "s/m", "payload": {"x": 1}, "priority": 3, "info": {"k": "v"}}
        check("QueueJobRequest", body)
        sub = c.post("/v1/queue/submit", json=body)
        assert sub.status_code == 200
        check("QueueJobResponse", sub.json())
        rid = sub.json()["requestId"]
        st = c.get("/v1/queue/status", params={"model": "s/m", "request_id": rid})
        check("QueueJobStatusResponse", st.json())
        assert st.json()["info"]["k"] == "v" and st.json()["priority"] == 3
        cancel_body = {"model": "s/m", "request_id": rid}
        check("QueueCancelRequest", cancel_body)
        cancel = c.post("/v1/queue/cancel", json=cancel_body)
        assert cancel.status_code in (200, 409)
        check("QueueCancelResponse", cancel.json())


def test_schema_fixture_is_loaded() -> None:
    # Guard against a silently empty fixture making every check() vacuous.
    assert {"QueueJobStatusResponse", "QueueCancelResponse", "QueueJobResponse"} <= SCHEMAS.keys()
    bad = {"request_id": "r", "model": "m", "status": "paused"}
    try:
        check("QueueJobStatusResponse", bad)
    except jsonschema.ValidationError:
        pass
    else:
        raise AssertionError("an undocumented status passed the schema")
    try:
        check(
            "QueueJobStatusResponse", {"request_id": "r", "model": "m", "status": "done", "done_at": "noon"}
        )
    except jsonschema.ValidationError:
        pass
    else:
        raise AssertionError("a non-date-time passed the schema")
