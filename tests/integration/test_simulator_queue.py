"""The simulator speaks Together's documented contract for GET /v1/queue/metrics."""

from __future__ import annotations

import httpx
import jsonschema
import pytest

from tests.conftest import SIM_KEY
from tests.helpers import Proc
from tests.schemas import validate

AUTH = {"Authorization": f"Bearer {SIM_KEY}"}


def test_metrics_answer_matches_schema_and_moves(simulator: Proc) -> None:
    seen = set()
    for model in ["a/b", "org/model-x", "x"]:
        r = httpx.get(simulator.url + "/v1/queue/metrics", params={"model": model}, headers=AUTH)
        assert r.status_code == 200
        doc = r.json()
        validate("together_queue.yaml", "QueueMetricsResponse", doc)
        assert doc["total_jobs"] == doc["messages_waiting"] + doc["messages_running"]
        seen.add((doc["messages_waiting"], doc["messages_running"]))
    assert len(seen) > 1  # different models, different depths


def test_schema_check_would_catch_drift() -> None:
    with pytest.raises(jsonschema.ValidationError):
        validate(
            "together_queue.yaml", "QueueMetricsResponse", {"messages_running": 1, "messages_waiting": "2"}
        )


def test_missing_model_is_400_queue_error(simulator: Proc) -> None:
    r = httpx.get(simulator.url + "/v1/queue/metrics", headers=AUTH)
    assert r.status_code == 400
    validate("together_queue.yaml", "QueueError", r.json())
    assert r.json()["param"] == "model"


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"Authorization": SIM_KEY}, {"Authorization": "Basic x"}],
)
def test_bad_auth_is_401_queue_error(simulator: Proc, headers: dict[str, str]) -> None:
    r = httpx.get(simulator.url + "/v1/queue/metrics", params={"model": "a"}, headers=headers)
    assert r.status_code == 401
    validate("together_queue.yaml", "QueueError", r.json())


def test_backlog_scenario_grows(simulator: Proc) -> None:
    httpx.post(
        simulator.url + "/_sim/queue", json={"model": "m", "kind": "backlog", "waiting": 10, "rate": 50}
    )
    first = httpx.get(simulator.url + "/v1/queue/metrics", params={"model": "m"}, headers=AUTH).json()
    import time

    time.sleep(0.3)
    second = httpx.get(simulator.url + "/v1/queue/metrics", params={"model": "m"}, headers=AUTH).json()
    assert first["messages_waiting"] >= 10
    assert second["messages_waiting"] > first["messages_waiting"]
