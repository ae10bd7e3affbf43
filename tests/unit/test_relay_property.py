"""Property: whatever prometheus_client writes, the relay passes on every sample with its value,
its labels as Prometheus would relabel them, and nothing else.

The expected side is computed independently: prometheus_client's own parser reads the
vendor body, and the ``honor_labels: false`` rule is applied to plain dicts here.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client.core import (
    CollectorRegistry,
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
    SummaryMetricFamily,
)
from prometheus_client.exposition import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from exporter.core.scope import Scope
from exporter.sources.relay.rules import RelayRules
from exporter.sources.relay.translate import relay
from tests.helpers import exposition

TARGET = {"account": "prop", "team": "t"}
SCOPE = Scope("prop", (("team", "t"),), max_series=100_000)

label_names = st.sampled_from(["account", "exported_account", "team", "model_id", "code", "x"])
label_values = st.text(st.characters(codec="utf-8"), max_size=12)
values = st.floats(allow_nan=False, width=64) | st.integers(-(10**15), 10**15).map(float)


@st.composite
def families(draw: st.DrawFn) -> list[Metric]:
    out: list[Metric] = []
    for i in range(draw(st.integers(1, 4))):
        names = draw(st.lists(label_names, max_size=3, unique=True))
        sets = draw(st.lists(st.tuples(*[label_values] * len(names)), min_size=1, max_size=4, unique=True))
        kind = draw(st.sampled_from(["gauge", "counter", "histogram", "summary"]))
        name = f"fam{i}_{kind}"
        fam: Metric
        if kind == "gauge":
            fam = GaugeMetricFamily(name, f"Gauge {i} with a \\ and a\nnewline.", labels=names)
            for vals in sets:
                fam.add_metric(list(vals), draw(values))
        elif kind == "counter":
            fam = CounterMetricFamily(name, "Counter.", labels=names)
            for vals in sets:
                fam.add_metric(list(vals), abs(draw(values)))
        elif kind == "histogram":
            fam = HistogramMetricFamily(name, "Histogram.", labels=names)
            for vals in sets:
                fam.add_metric(list(vals), [("0.5", 1.0), ("1.0", 3.0), ("+Inf", 4.0)], draw(values))
        else:
            fam = SummaryMetricFamily(name, "Summary.", labels=names)
            for vals in sets:
                fam.add_metric(list(vals), 4, draw(values))
        out.append(fam)
    return out


class _Fixed(Collector):
    def __init__(self, metrics: list[Metric]) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        yield from self.metrics


def prometheus_relabel(labels: dict[str, str]) -> dict[str, str]:
    """What Prometheus stores for a scraped sample with ``honor_labels: false``."""
    present = {k: v for k, v in labels.items() if v}
    conflicts = sorted((k for k in TARGET if k in present), key=lambda k: (len(k), k))
    out = {k: v for k, v in present.items() if k not in TARGET} | TARGET
    for key in conflicts:
        new = key
        while True:
            new = "exported_" + new
            if not out.get(new):
                out[new] = present[key]
                break
    return out


def samples(text: str) -> set[tuple[str, frozenset[tuple[str, str]], float]]:
    found = set()
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            labels = {k: v for k, v in s.labels.items() if v}
            assert not math.isnan(s.value)
            found.add((s.name, frozenset(labels.items()), s.value))
    return found


@settings(max_examples=150, deadline=None)
@given(families(), st.sampled_from(["", "relay_"]))
def test_every_sample_is_relayed_with_its_value_and_prometheus_labels(
    metrics: list[Metric], prefix: str
) -> None:
    registry = CollectorRegistry()
    registry.register(_Fixed(metrics))
    body = generate_latest(registry)
    expected = {
        (prefix + name, frozenset(prometheus_relabel(dict(labels)).items()), value)
        for name, labels, value in samples(body.decode())
    }
    result = relay(body, SCOPE, RelayRules(prefix=prefix))
    out = exposition([result.rendered]).decode()
    assert samples(out) == expected
    assert result.duplicates == 0 and result.too_long == 0
    # One block per family: every TYPE line names a distinct family.
    types = [line.split()[2] for line in out.splitlines() if line.startswith("# TYPE ")]
    assert len(types) == len(set(types))
