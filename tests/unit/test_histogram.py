"""The exporter's own cumulative histograms and how the exposition renders them."""

from __future__ import annotations

import math

import pytest
from prometheus_client.parser import text_string_to_metric_families

from exporter.core.exposition import Family, render
from exporter.core.histogram import CumulativeHistogram, check_bounds, le_label
from tests.helpers import exposition, promtool_check_metrics

H = Family("x_wait_seconds", "histogram", "A histogram.")


def test_buckets_are_cumulative_and_bounds_are_inclusive() -> None:
    h = CumulativeHistogram((1.0, 5.0, 30.0))
    for v in (0.2, 1.0, 4.0, 30.0, 31.0, 600.0):
        h.observe(v)
    by_le = {dict(s.labels)["le"]: s.value for s in h.samples(H, ()) if s.suffix == "_bucket"}
    # A value equal to a bound is in that bound's bucket (le = less than or equal).
    assert by_le == {"1.0": 2, "5.0": 3, "30.0": 4, "+Inf": 6}
    rest = {s.suffix: s.value for s in h.samples(H, ()) if s.suffix != "_bucket"}
    assert rest == {"_sum": pytest.approx(666.2), "_count": 6}


def test_nan_is_not_counted() -> None:
    h = CumulativeHistogram((1.0,))
    h.observe(math.nan)
    assert h.count == 0 and h.sum == 0


def test_rendered_histogram_parses_and_passes_promtool() -> None:
    h = CumulativeHistogram((0.5, 30.0, 1e6))
    h.observe(12.0)
    text = exposition([render(h.samples(H, (("model", "m"), ("phase", "queue_wait"))))]).decode()
    assert "# TYPE x_wait_seconds histogram\n" in text
    assert 'x_wait_seconds_bucket{model="m",phase="queue_wait",le="30.0"} 1\n' in text
    assert 'x_wait_seconds_bucket{model="m",phase="queue_wait",le="1e+06"} 1\n' in text
    assert 'x_wait_seconds_count{model="m",phase="queue_wait"} 1\n' in text
    fam = next(iter(text_string_to_metric_families(text)))
    assert fam.type == "histogram"
    assert [s.name for s in fam.samples][-2:] == ["x_wait_seconds_sum", "x_wait_seconds_count"]
    assert promtool_check_metrics(text) == ""


def test_histogram_samples_of_one_family_are_not_taken_for_duplicates() -> None:
    # _sum and _count have the same labels; only the suffix tells them apart.
    h = CumulativeHistogram((1.0,))
    out = render(h.samples(H, ()))
    assert out.series == 4


@pytest.mark.parametrize(
    ("bound", "text"), [(1, "1.0"), (30, "30.0"), (0.25, "0.25"), (1800, "1800.0"), (1e6, "1e+06")]
)
def test_le_is_spelled_as_the_client_libraries_and_prometheus_3_do(bound: float, text: str) -> None:
    assert le_label(bound) == text


@pytest.mark.parametrize(
    ("bounds", "message"),
    [
        ((), "at least one"),
        ((1.0, 1.0), "strictly increasing"),
        ((5.0, 1.0), "strictly"),
        ((math.inf,), "finite"),
    ],
)
def test_bad_bounds_are_refused(bounds: tuple[float, ...], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        check_bounds(bounds)
