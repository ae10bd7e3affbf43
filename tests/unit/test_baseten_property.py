"""Property: for any valid response, every non-null gauge/histogram value appears
exactly once in the exposition, with the right labels, and the exposition parses."""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.sources.baseten.layout import UNITS, metric_name
from exporter.sources.baseten.translate import gauge_samples, parse
from tests.unit.baseten_docs import IDS, exposition

UNIT_HINTS = ["PER_SECOND", "SECONDS", "BYTES", "MEBIBYTES", "COUNT", "RATIO"]
LABEL_KEYS = ["status", "region", "replica"]
label_value = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=1, max_size=8
)
# NaN and ±Inf included: like null, they must give no sample.
value = st.one_of(st.none(), st.floats(width=32))


@st.composite
def descriptor(draw: st.DrawFn, name: str) -> dict[str, Any]:
    kind = draw(st.sampled_from(["GAUGE", "HISTOGRAM", "COUNTER"]))
    unit = draw(st.sampled_from(UNIT_HINTS))
    if kind == "HISTOGRAM":
        qs = draw(st.lists(st.sampled_from(["0.5", "0.75", "0.9", "0.95", "0.99"]), unique=True, max_size=5))
        stats = draw(st.lists(st.sampled_from(["avg", "max"]), unique=True, max_size=2))
        sets = [{"quantile": q} for q in qs] + [{"stat": s} for s in stats]
    else:
        sets = draw(
            st.lists(
                st.dictionaries(st.sampled_from(LABEL_KEYS), label_value, max_size=2),
                unique_by=lambda d: tuple(sorted(d.items())),
                min_size=0,
                max_size=4,
            )
        )
    return {"name": name, "unit_hint": unit, "kind": kind, "label_sets": sets}


@st.composite
def responses(draw: st.DrawFn) -> tuple[dict[str, Any], str]:
    n = draw(st.integers(min_value=0, max_value=5))
    descriptors = [draw(descriptor(f"baseten_metric{i}")) for i in range(n)]
    mode = draw(st.sampled_from(["CURRENT", "SUMMARY", "SERIES"]))
    n_steps = (
        draw(st.integers(min_value=0, max_value=4)) if mode == "SERIES" else draw(st.sampled_from([0, 1]))
    )
    value_sets = [
        {
            "start_epoch_millis": k * 60_000,
            "values": [[draw(value) for _ in d["label_sets"]] for d in descriptors],
        }
        for k in range(n_steps)
    ]
    doc = {
        "start_epoch_millis": 0,
        "end_epoch_millis": n_steps * 60_000,
        "mode": mode,
        "step_seconds": 60 if mode == "SERIES" else None,
        "metric_descriptors": descriptors,
        "metric_values": value_sets,
        "unknown_field": draw(st.sampled_from([None, 1, "x"])),
    }
    return doc, mode


def expected_series(d: dict[str, Any], j: int) -> tuple[str, frozenset[tuple[str, str]]]:
    name = metric_name(d["name"], d["kind"], d["unit_hint"])
    labels = dict(d["label_sets"][j])
    if d["kind"] == "HISTOGRAM" and "stat" in labels:
        stat = labels.pop("stat")
        for suffix in ("_seconds", "_bytes"):
            if name.endswith(suffix):
                name = f"{name.removesuffix(suffix)}_{stat}{suffix}"
                break
        else:
            name = f"{name}_{stat}"
        keys = {k for s in d["label_sets"] if "stat" in s for k in s} - {"stat"}
    elif d["kind"] == "HISTOGRAM":
        keys = {k for s in d["label_sets"] if "quantile" in s for k in s}
    else:
        keys = {k for s in d["label_sets"] for k in s}
    full = {**dict(IDS), **{k: labels.get(k, "") for k in keys}}
    return name, frozenset(full.items())


@settings(max_examples=200, deadline=None)
@given(responses())
def test_every_non_null_value_appears_exactly_once_with_its_labels(case: tuple[dict[str, Any], str]) -> None:
    doc, mode = case
    samples, _ = gauge_samples(parse(doc, mode), IDS, cutoff_ms=10**15)
    scrape = exposition(samples)  # parsed by prometheus_client's parser
    got = Counter((n, lbls) for (n, lbls) in scrape.samples)
    assert len(scrape.samples) == len(samples)
    latest = doc["metric_values"][-1]["values"] if doc["metric_values"] else None
    expected = 0
    for i, d in enumerate(doc["metric_descriptors"]):
        if d["kind"] == "COUNTER" or latest is None:
            continue
        for j, v in enumerate(latest[i]):
            key = expected_series(d, j)
            if v is None or not math.isfinite(v):
                assert key not in got
                continue
            expected += 1
            assert got[key] == 1, key
            assert scrape.samples[key] == v * UNITS[d["unit_hint"]][0]
    assert expected == len(samples)
