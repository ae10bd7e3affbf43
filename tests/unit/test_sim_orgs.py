"""The simulator serves several organisations: each key sees its own, an unknown key none."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import httpx

from exporter.simulator import app as sim_app
from exporter.simulator.state import SimState

A, B = "key-of-default-org", "key-of-staging-org"


def run(body: Callable[[str], Awaitable[None]]) -> None:
    async def main() -> None:
        state = SimState(api_keys=frozenset({A}), org_keys={B: "staging"})
        runner, url = await sim_app.start(state, "127.0.0.1", 0)
        try:
            await body(url)
        finally:
            await runner.cleanup()

    asyncio.run(main())


def test_each_key_sees_only_its_organisation() -> None:
    async def body(url: str) -> None:
        async with httpx.AsyncClient(base_url=url, timeout=5) as http:
            a, b = {"Authorization": f"Bearer {A}"}, {"Authorization": f"Bearer {B}"}
            # Scripting picks the organisation with ?org=.
            await http.post("/_sim/queue?org=staging", json={"model": "m/x", "kind": "fixed", "waiting": 7})
            await http.post("/_sim/queue", json={"model": "m/x", "kind": "fixed", "waiting": 3})
            got_a = (await http.get("/v1/queue/metrics", params={"model": "m/x"}, headers=a)).json()
            got_b = (await http.get("/v1/queue/metrics", params={"model": "m/x"}, headers=b)).json()
            assert (got_a["messages_waiting"], got_b["messages_waiting"]) == (3, 7)
            # Fine-tunes: each organisation lists its own jobs, and cannot read the other's.
            ids_a = {j["id"] for j in (await http.get("/v1/fine-tunes", headers=a)).json()["data"]}
            ids_b = {j["id"] for j in (await http.get("/v1/fine-tunes", headers=b)).json()["data"]}
            assert ids_a and ids_b and not ids_a & ids_b
            other = next(iter(ids_b))
            assert (await http.get(f"/v1/fine-tunes/{other}", headers=a)).status_code == 404
            # Jobs submitted by one organisation are not in the other's queue.
            body = {"model": "m/x", "payload": {}}
            rid = (await http.post("/v1/queue/submit", json=body, headers=b)).json()["requestId"]
            st = await http.get("/v1/queue/status", params={"model": "m/x", "request_id": rid}, headers=a)
            assert st.status_code == 404
            assert [j["request_id"] for j in (await http.get("/_sim/jobs?org=staging")).json()["jobs"]] == [
                rid
            ]
            assert (await http.get("/_sim/jobs")).json()["jobs"] == []
            # Baseten: the same ids in both workspaces, each with its own values.
            await http.post("/_sim/baseten?org=staging", json={"catalog": [{"id": "mz", "deployments": []}]})
            models_a = [m["id"] for m in (await http.get("/v1/models", headers=a)).json()["models"]]
            models_b = [m["id"] for m in (await http.get("/v1/models", headers=b)).json()["models"]]
            assert models_b == ["mz"] and "mz" not in models_a
            # The request log says which organisation each request was for.
            log = (await http.get("/_sim/requests/log", params={"org": "staging"})).json()
            assert log and all(e["org"] == "staging" for e in log)
            assert (await http.get("/_sim/jobs?org=nobody")).status_code == 404

    run(body)


def test_a_key_of_no_organisation_gets_401() -> None:
    async def body(url: str) -> None:
        async with httpx.AsyncClient(base_url=url, timeout=5) as http:
            for headers in ({"Authorization": "Bearer someone-else"}, {}):
                resp = await http.get("/v1/models", headers=headers)
                assert resp.status_code == 401 and resp.json()["code"] == "invalid_api_key"
            log = (await http.get("/_sim/requests/log")).json()
            assert [(e["status"], e["org"]) for e in log] == [(401, None), (401, None)]

    run(body)
