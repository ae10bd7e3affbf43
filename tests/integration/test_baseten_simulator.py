"""The simulated Baseten API answers what the vendor's published schemas describe."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from jsonschema import Draft202012Validator

from exporter.simulator.baseten_data import METRICS
from exporter.sources.baseten.translate import parse
from tests.conftest import SIM_KEY
from tests.helpers import Proc

SCHEMAS = yaml.safe_load((Path(__file__).parents[1] / "fixtures/schemas/baseten.yaml").read_text())
METRICS_PATH = "/v1/models/{}/deployments/{}/metrics"


def validate(doc: Any, schema: str) -> None:
    Draft202012Validator({**SCHEMAS, "$ref": f"#/components/schemas/{schema}"}).validate(doc)


def get(
    sim: Proc, path: str, params: Any = None, key: str = SIM_KEY, scheme: str = "Bearer"
) -> httpx.Response:
    return httpx.get(sim.url + path, params=params, headers={"Authorization": f"{scheme} {key}"}, timeout=5)


def test_lists_match_the_schema(simulator: Proc) -> None:
    models = get(simulator, "/v1/models").json()
    validate(models, "ModelsV1")
    assert {m["name"] for m in models["models"]} >= {"llama-chat", "whisper-large"}
    statuses = set()
    for m in models["models"]:
        deps = get(simulator, f"/v1/models/{m['id']}/deployments").json()
        validate(deps, "DeploymentsV1")
        statuses |= {d["status"] for d in deps["deployments"]}
    assert {"ACTIVE", "INACTIVE", "SCALED_TO_ZERO"} <= statuses
    only = get(simulator, "/v1/models", {"name": "whisper-large"}).json()["models"]
    assert [m["name"] for m in only] == ["whisper-large"]
    # The legacy Api-Key scheme is accepted too; a wrong key is not.
    assert get(simulator, "/v1/models", scheme="Api-Key").status_code == 200
    assert get(simulator, "/v1/models", key="wrong").status_code == 401


@pytest.mark.parametrize("mode", ["CURRENT", "SUMMARY", "SERIES"])
def test_metrics_in_every_mode_match_the_schema_and_parse(simulator: Proc, mode: str) -> None:
    now_ms = int(time.time() * 1000)
    params: list[tuple[str, str | int]] = [("mode", mode), *(("metrics", n) for n in METRICS)]
    if mode != "CURRENT":
        params += [("start_epoch_millis", now_ms - 3_600_000), ("end_epoch_millis", now_ms)]
    doc = get(simulator, METRICS_PATH.format("m1llama", "d1prod"), params).json()
    validate(doc, "GetDeploymentMetricsResponseV1")
    resp = parse(doc, mode)
    assert {d.name for d in resp.descriptors} == set(METRICS)
    by_name = {d["name"]: d for d in doc["metric_descriptors"]}
    lat = by_name["baseten_end_to_end_response_time_seconds"]
    assert lat["kind"] == "HISTOGRAM" and {"stat": "avg"} in lat["label_sets"]
    assert {"quantile": "0.99"} in lat["label_sets"]
    assert by_name["baseten_inference_requests_total"]["label_sets"][0] == {"status": "2xx"}
    assert by_name["baseten_gpu_memory_used"]["unit_hint"] == "MEBIBYTES"
    if mode == "SERIES":
        assert doc["step_seconds"] == 60 and len(doc["metric_values"]) == 60
        # The newest steps are still being ingested: histograms null, counters 0.
        i_lat = list(by_name).index("baseten_end_to_end_response_time_seconds")
        i_req = list(by_name).index("baseten_inference_requests_total")
        last = doc["metric_values"][-1]["values"]
        assert last[i_lat] == [None] * 5 and last[i_req] == [0, 0, 0]
        assert all(v is not None for v in doc["metric_values"][0]["values"][i_lat])
        assert sum(doc["metric_values"][0]["values"][i_req]) > 0
    else:
        assert doc["step_seconds"] is None and len(doc["metric_values"]) == 1


def test_default_set_and_metrics_that_do_not_apply(simulator: Proc) -> None:
    doc = get(simulator, METRICS_PATH.format("m2whisper", "d2prod")).json()
    validate(doc, "GetDeploymentMetricsResponseV1")
    assert [d["name"] for d in doc["metric_descriptors"]] == [
        "baseten_replicas_active",
        "baseten_inference_requests_total",
        "baseten_end_to_end_response_time_seconds",
    ]
    # LLM token metrics are valid names that do not apply to a speech model: omitted.
    doc = get(
        simulator, METRICS_PATH.format("m2whisper", "d2prod"), {"metrics": "baseten_llm_input_tokens_total"}
    ).json()
    assert doc["metric_descriptors"] == [] and doc["metric_values"][0]["values"] == []


@pytest.mark.parametrize(
    ("params", "status"),
    [
        ({"metrics": "baseten_bogus"}, 400),
        ({"mode": "SERIES", "start_epoch_millis": 0, "end_epoch_millis": 8 * 86_400_000}, 400),
        ({"mode": "CURRENT", "start_epoch_millis": 0}, 400),
        ({"mode": "HOURLY"}, 400),
    ],
)
def test_bad_requests_are_rejected(simulator: Proc, params: dict[str, Any], status: int) -> None:
    resp = get(simulator, METRICS_PATH.format("m1llama", "d1prod"), params)
    assert resp.status_code == status
    assert resp.json()["message"]


def test_unknown_deployment_is_404(simulator: Proc) -> None:
    assert get(simulator, METRICS_PATH.format("m1llama", "nope")).status_code == 404
    assert get(simulator, "/v1/models/nope/deployments").status_code == 404
