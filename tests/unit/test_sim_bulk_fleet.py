"""The simulator hosts a whole fleet on request: a Baseten account of any size and
fine-tune jobs added in bulk (what the benchmarks use), answering like its defaults."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from exporter.simulator.app import start
from exporter.simulator.state import SimState
from exporter.sources.baseten.lists import parse_deployments, parse_models
from exporter.sources.baseten.translate import gauge_samples, parse
from exporter.sources.together.finetune.translate import metric_rows, parse_job, parse_list

KEY = "bulk-key"
AUTH = {"Authorization": f"Bearer {KEY}"}


async def _with_sim(body: Any) -> None:
    runner, url = await start(SimState(api_keys=frozenset({KEY})), "127.0.0.1", 0)
    try:
        async with httpx.AsyncClient(base_url=url, headers=AUTH, timeout=5) as http:
            await body(http)
    finally:
        await runner.cleanup()


def test_a_baseten_catalog_replaces_the_account() -> None:
    catalog: list[dict[str, Any]] = [
        {"id": f"bm{m}", "name": f"model-{m}", "deployments": [{"id": f"bd{m}-{d}"} for d in range(3)]}
        for m in range(50)
    ]
    catalog[0]["deployments"].append({"id": "bdoff", "status": "INACTIVE", "is_production": True})

    async def body(http: httpx.AsyncClient) -> None:
        resp = await http.post("/_sim/baseten", json={"catalog": catalog})
        assert resp.status_code == 200
        models = parse_models((await http.get("/v1/models")).json())
        assert sorted(m.id for m in models) == sorted(f"bm{m}" for m in range(50))  # defaults gone
        deps = parse_deployments((await http.get("/v1/models/bm0/deployments")).json())
        assert {(d.id, d.status) for d in deps} == {
            ("bd0-0", "ACTIVE"),
            ("bd0-1", "ACTIVE"),
            ("bd0-2", "ACTIVE"),
            ("bdoff", "INACTIVE"),
        }
        metrics = await http.get(
            "/v1/models/bm49/deployments/bd49-2/metrics",
            params={"mode": "CURRENT", "metrics": "baseten_replicas_active"},
        )
        samples, _ = gauge_samples(parse(metrics.json(), "CURRENT"), (), 0)
        assert [s.value for s in samples] == [1.0]  # one active replica, the default
        gone = await http.get("/v1/models/m1llama/deployments/d1prod/metrics")
        assert gone.status_code == 404
        bad = await http.post("/_sim/baseten", json={"catalog": [{"name": "no id"}]})
        assert bad.status_code == 400
        still = parse_models((await http.get("/v1/models")).json())
        assert len(still) == 50  # a bad catalog changes nothing

    asyncio.run(_with_sim(body))


def test_fine_tune_jobs_are_added_in_bulk() -> None:
    jobs = [{"id": f"ft-bulk-{i}", "steps": 1000, "step_seconds": 5, "delay": -60} for i in range(200)]

    async def body(http: httpx.AsyncClient) -> None:
        await http.post("/_sim/fine-tunes", json={"action": "reset"})
        resp = await http.post("/_sim/fine-tunes", json={"action": "add_many", "jobs": jobs})
        assert resp.status_code == 200
        listed = parse_list((await http.get("/v1/fine-tunes")).json())
        assert sorted(listed) == sorted((f"ft-bulk-{i}", "running") for i in range(200))
        assert parse_job((await http.get("/v1/fine-tunes/ft-bulk-7")).json()).status == "running"
        rows = metric_rows((await http.get("/v1/fine-tunes/ft-bulk-7/metrics")).json())
        assert [r["train/global_step"] for r in rows] == list(range(1, 13))  # a minute at 5 s a step
        bad = await http.post("/_sim/fine-tunes", json={"action": "add_many", "jobs": "nope"})
        assert bad.status_code == 400

    asyncio.run(_with_sim(body))
