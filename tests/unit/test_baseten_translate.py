"""Baseten metrics responses (literal JSON) → gauge, summary and untyped samples."""

from __future__ import annotations

import json
from typing import Any

import pytest

from exporter.core.errors import InvalidResponse
from exporter.core.exposition import Sample
from exporter.sources.baseten.descriptors import DescriptorCache
from exporter.sources.baseten.layout import metric_name
from exporter.sources.baseten.translate import gauge_samples, parse, settled_steps
from tests.helpers import Scrape, promtool_check_metrics
from tests.unit.baseten_docs import HIST_SETS, IDS, STATUS_SETS, desc, exposition, response

ID = {"model_id": "m1", "deployment_id": "d1"}
MIB = 1024 * 1024


def gauges(
    doc: Any, mode: str = "CURRENT", cutoff: int = 10**15, percent: frozenset[str] = frozenset()
) -> tuple[Scrape, list[Sample], frozenset[str]]:
    samples, seen = gauge_samples(parse(doc, mode), IDS, cutoff, percent)
    return exposition(samples), samples, seen


def test_current_default_set_maps_to_gauge_summary_and_avg_families() -> None:
    doc = response(
        "CURRENT",
        [
            desc("baseten_replicas_active"),
            desc("baseten_inference_requests_total", "COUNTER", "COUNT", STATUS_SETS),
            desc("baseten_end_to_end_response_time_seconds", "HISTOGRAM", "SECONDS", HIST_SETS),
        ],
        [(1_700_000_000_000, [[2], [10, 1, 0], [0.2, 0.5, 1.5, 0.3]])],
        start=1_700_000_000_000,
        end=1_700_000_000_000,
    )
    s, samples, _ = gauges(doc)
    assert s.types == {
        "baseten_replicas_active": "gauge",
        "baseten_end_to_end_response_time_seconds": "summary",
        "baseten_end_to_end_response_time_avg_seconds": "gauge",
    }
    assert s.value("baseten_replicas_active", **ID) == 2
    name = "baseten_end_to_end_response_time_seconds"
    assert s.value(name, **ID, quantile="0.5") == 0.2
    assert s.value(name, **ID, quantile="0.9") == 0.5
    assert s.value(name, **ID, quantile="0.99") == 1.5
    assert s.value("baseten_end_to_end_response_time_avg_seconds", **ID) == 0.3
    # The COUNTER is a per-step total: never a gauge, never a sample from this path.
    assert not any("requests" in smp.family.name for smp in samples)
    assert len(samples) == 5


def test_null_nan_and_infinity_give_no_sample_never_zero() -> None:
    text = json.dumps(
        response(
            "CURRENT",
            [desc("baseten_end_to_end_response_time_seconds", "HISTOGRAM", "SECONDS", HIST_SETS)],
            [(0, [[None, 0.5, None, 0.0]])],
        )
    )
    s, samples, _ = gauges(json.loads(text))
    assert [smp.value for smp in samples] == [0.5, 0.0]  # a real 0 stays
    assert s.value("baseten_end_to_end_response_time_seconds", **ID, quantile="0.5") is None
    # Python's json reads NaN / Infinity literals; neither becomes a sample.
    odd = text.replace("0.5", "NaN").replace("0.0", "Infinity")
    _, samples, _ = gauges(json.loads(odd))
    assert samples == []


def test_units_convert_to_base_units_and_suffixes() -> None:
    doc = response(
        "CURRENT",
        [
            desc("baseten_gpu_memory_used", unit="MEBIBYTES"),
            desc("baseten_container_cpu_memory_working_set_bytes", unit="BYTES"),
            desc("baseten_queue_wait", unit="SECONDS"),
            desc("baseten_requests_rate", unit="PER_SECOND"),
            desc("baseten_weird", unit="FURLONGS"),
            desc("baseten_share", unit="PERCENT"),
        ],
        [(0, [[1024], [2048], [1.5], [3.0], [7], [42]])],
    )
    s, _, _ = gauges(doc)
    assert s.value("baseten_gpu_memory_used_bytes", **ID) == 1024 * MIB
    assert s.value("baseten_container_cpu_memory_working_set_bytes", **ID) == 2048
    assert s.value("baseten_queue_wait_seconds", **ID) == 1.5
    assert s.value("baseten_requests_rate", **ID) == 3.0
    # Unknown unit_hint: passed through unconverted under the vendor's name.
    assert s.value("baseten_weird", **ID) == 7
    assert s.value("baseten_share", **ID) == 0.42


@pytest.mark.parametrize(
    ("vendor", "kind", "unit", "expected"),
    [
        ("baseten_gpu_memory_used", "GAUGE", "MEBIBYTES", "baseten_gpu_memory_used_bytes"),
        ("baseten_gpu_memory_used_mib", "GAUGE", "MEBIBYTES", "baseten_gpu_memory_used_bytes"),
        ("baseten_inference_requests_total", "COUNTER", "COUNT", "baseten_inference_requests_total"),
        (
            "baseten_container_cpu_usage_seconds_total",
            "COUNTER",
            "SECONDS",
            "baseten_container_cpu_usage_seconds_total",
        ),
        ("baseten_tokens", "COUNTER", "COUNT", "baseten_tokens_total"),
        ("baseten_swap_mib_total", "COUNTER", "MEBIBYTES", "baseten_swap_bytes_total"),
        ("baseten_gauge_total", "GAUGE", "COUNT", "baseten_gauge"),
        ("baseten_thing_total", "NEWKIND", "COUNT", "baseten_thing"),
        ("gpu.temp-c", "GAUGE", "COUNT", "baseten_gpu_temp_c"),
    ],
)
def test_metric_names(vendor: str, kind: str, unit: str, expected: str) -> None:
    assert metric_name(vendor, kind, unit) == expected


def test_gpu_utilisation_sent_as_percent_is_divided_and_remembered() -> None:
    def doc(v: float) -> Any:
        return response(
            "CURRENT",
            [desc("baseten_gpu_utilization", unit="RATIO"), desc("baseten_cpu_cores", unit="RATIO")],
            [(0, [[v], [2.5]])],
        )

    s, _, seen = gauges(doc(0.73))
    assert s.value("baseten_gpu_utilization", **ID) == 0.73 and seen == frozenset()
    s, _, seen = gauges(doc(73.0))
    assert s.value("baseten_gpu_utilization", **ID) == pytest.approx(0.73)
    assert seen == {"baseten_gpu_utilization"}
    # Once seen as 0-100, a near-idle 0.5 (%) is not read as 50 %.
    s, _, seen = gauges(doc(0.5), percent=seen)
    assert s.value("baseten_gpu_utilization", **ID) == pytest.approx(0.005)
    # RATIO metrics that may exceed 1 by meaning (CPU cores) are never rescaled.
    assert s.value("baseten_cpu_cores", **ID) == 2.5


def test_unknown_kind_is_passed_through_untyped_and_gauge_total_loses_total() -> None:
    doc = response(
        "CURRENT",
        [desc("baseten_future_total", "DELTA"), desc("baseten_odd_total", "GAUGE")],
        [(0, [[4], [5]])],
    )
    s, _, _ = gauges(doc)
    assert s.types == {"baseten_future": "unknown", "baseten_odd": "gauge"}
    assert s.value("baseten_future", **ID) == 4
    assert s.value("baseten_odd", **ID) == 5
    assert promtool_check_metrics(s.text) == ""


def test_label_sets_get_one_consistent_label_name_set_and_safe_names() -> None:
    doc = response(
        "CURRENT",
        [
            desc("baseten_by_status", sets=[{}, {"status": "2xx"}, {"http-code": "200", "status": "2xx"}]),
            desc("baseten_clash", sets=[{"model_id": "other", "quantile": "0.5", "__x": "y"}]),
        ],
        [(0, [[1, 2, 3], [4]])],
    )
    s, samples, _ = gauges(doc)
    by_status = [smp for smp in samples if smp.family.name == "baseten_by_status"]
    assert {tuple(k for k, _ in smp.labels) for smp in by_status} == {
        ("model_id", "deployment_id", "http_code", "status")
    }
    assert s.value("baseten_by_status", **ID, http_code="", status="") == 1
    assert s.value("baseten_by_status", **ID, http_code="200", status="2xx") == 3
    assert (
        s.value("baseten_clash", **ID, exported_model_id="other", exported_quantile="0.5", vendor__x="y") == 4
    )
    assert promtool_check_metrics(s.text) == ""


def test_series_mode_reads_gauges_from_the_latest_settled_step_only() -> None:
    descriptors = [
        desc("baseten_replicas_active"),
        desc("baseten_lat_seconds", "HISTOGRAM", "SECONDS", HIST_SETS),
    ]
    doc = response(
        "SERIES",
        descriptors,
        [
            (0, [[1], [0.1, 0.2, 0.3, 0.15]]),
            (60_000, [[2], [None, None, None, None]]),  # settled, no requests: no latency
            (120_000, [[3], [None, None, None, None]]),  # ends after the cutoff: still lagging
            (180_000, [[4], [0.9, 0.9, 0.9, 0.9]]),  # partial step (30 s of 60)
        ],
        start=0,
        end=210_000,
        step=60,
    )
    s, samples, _ = gauges(doc, "SERIES", cutoff=150_000)
    assert s.value("baseten_replicas_active", **ID) == 2
    # The latest settled step had null latency: no sample, not an older value.
    assert [smp.family.name for smp in samples] == ["baseten_replicas_active"]
    resp = parse(doc, "SERIES")
    assert [st.start_ms for st in settled_steps(resp, 10**15)] == [0, 60_000, 120_000]


def test_summary_mode_reads_its_single_value_set() -> None:
    doc = response("SUMMARY", [desc("baseten_concurrent_requests")], [(0, [[6.5]])], start=0, end=600_000)
    s, _, _ = gauges(doc, "SUMMARY")
    assert s.value("baseten_concurrent_requests", **ID) == 6.5


def test_empty_lists_unknown_fields_and_no_value_sets() -> None:
    assert gauges(response("CURRENT", [], []))[1] == []
    assert gauges(response("CURRENT", [desc("baseten_x")], []))[1] == []
    doc = response("CURRENT", [{**desc("baseten_x"), "new_field": {"a": 1}}], [(0, [[1]])])
    doc["extra"] = [1, 2]
    doc["metric_values"][0]["also_new"] = True
    assert gauges(doc)[0].value("baseten_x", **ID) == 1
    assert gauges(response("CURRENT", [desc("baseten_none", sets=[])], [(0, [[]])]))[1] == []


def bad(mutate: Any) -> dict[str, Any]:
    doc = response(
        "CURRENT",
        [desc("baseten_a"), desc("baseten_h", "HISTOGRAM", "SECONDS", HIST_SETS)],
        [(0, [[1], [0.1, 0.2, 0.3, 0.4]])],
    )
    mutate(doc)
    return doc


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda d: d["metric_values"][0]["values"].pop(), "values for 2 descriptors"),
        (lambda d: d["metric_values"][0]["values"][1].pop(), "does not match its 4 label sets"),
        (lambda d: d["metric_values"][0]["values"][0].__setitem__(0, "1"), "not a number"),
        (lambda d: d["metric_values"][0]["values"][0].__setitem__(0, True), "not a number"),
        (lambda d: d["metric_descriptors"][0].__setitem__("label_sets", ["x"]), "not an object"),
        (lambda d: d["metric_descriptors"][0].__setitem__("label_sets", [{"a": 1}]), "not a string"),
        (lambda d: d["metric_descriptors"][1]["label_sets"].__setitem__(1, {"quantile": "0.5"}), "same"),
        (lambda d: d["metric_descriptors"][1]["label_sets"].__setitem__(3, {"le": "1"}), "neither quantile"),
        (
            lambda d: d["metric_descriptors"][1]["label_sets"].__setitem__(0, {"quantile": "p50"}),
            "not a number",
        ),
        (lambda d: d["metric_descriptors"][0].__setitem__("name", "baseten_h_avg_seconds"), "both map to"),
        (lambda d: d["metric_descriptors"][1].__setitem__("name", "baseten_a"), "described twice"),
        (lambda d: d["metric_descriptors"][0].pop("kind"), "kind is missing"),
        (lambda d: d.__setitem__("mode", "SERIES"), "asked for mode CURRENT"),
        (lambda d: d.__setitem__("mode", "HOURLY"), "unknown mode"),
        (lambda d: d.pop("end_epoch_millis"), "end_epoch_millis is missing"),
        (lambda d: d["metric_values"].append(d["metric_values"][0] | {"start_epoch_millis": 5}), "not one"),
        (lambda d: d.__setitem__("metric_values", {"a": 1}), "must be lists"),
    ],
)
def test_malformed_responses_fail_with_a_clear_reason(mutate: Any, reason: str) -> None:
    with pytest.raises(InvalidResponse) as err:
        gauges(bad(mutate))
    assert err.value.reason == "invalid_response"
    assert reason in err.value.detail


def test_series_out_of_order_steps_are_rejected() -> None:
    doc = response("SERIES", [desc("baseten_a")], [(60_000, [[1]]), (0, [[2]])], end=120_000, step=60)
    with pytest.raises(InvalidResponse, match="increasing time order"):
        parse(doc, "SERIES")


def test_not_an_object() -> None:
    with pytest.raises(InvalidResponse):
        parse([], "CURRENT")


def test_samples_carry_ids_first() -> None:
    doc = response("CURRENT", [desc("baseten_a", sets=[{"status": "5xx"}])], [(0, [[1]])])
    _, samples, _ = gauges(doc)
    assert samples[0] == Sample(samples[0].family, (*IDS, ("status", "5xx")), 1.0)


def test_a_ratio_a_hair_above_one_is_rounding_not_percent() -> None:
    doc = response("CURRENT", [desc("baseten_gpu_utilization", unit="RATIO")], [(0, [[1.02]])])
    s, _, seen = gauges(doc)
    assert s.value("baseten_gpu_utilization", **ID) == 1.02
    assert seen == frozenset()


def test_descriptors_are_built_once_and_a_changed_one_is_checked_again() -> None:
    """Every poll of every deployment describes the same metrics: parsed once, the same
    objects come back, to this deployment's cache and to another's. What differs only
    in what makes it invalid is never taken from what was parsed before."""
    cache, other = DescriptorCache(), DescriptorCache()
    first = parse(bad(lambda d: None), "CURRENT", cache=cache)
    again = parse(json.loads(json.dumps(bad(lambda d: None))), "CURRENT", cache=cache)
    shared = parse(json.loads(json.dumps(bad(lambda d: None))), "CURRENT", cache=other)
    for resp in (again, shared):
        assert all(a is b for a, b in zip(first.descriptors, resp.descriptors, strict=True))
        assert all(a is b for a, b in zip(first.layouts, resp.layouts, strict=True))
    assert first.descriptors[1].label_sets[0] == (("quantile", "0.5"),)
    for mutate, reason in [
        (
            lambda d: d["metric_descriptors"][1]["label_sets"].__setitem__(0, {"quantile": 0.5}),
            "not a string",
        ),
        (lambda d: d["metric_descriptors"][0].__setitem__("kind", ""), "kind is empty"),
        (lambda d: d["metric_descriptors"][0].__setitem__("name", 5), "name is not a string"),
        (lambda d: d["metric_descriptors"][0].__setitem__("label_sets", "{}"), "not a list"),
    ]:
        with pytest.raises(InvalidResponse, match=reason):
            parse(bad(mutate), "CURRENT")
