"""Builders for literal Baseten metrics responses used by several test modules."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from exporter.core.exposition import Rendered, Sample, render
from tests.helpers import Scrape, parse

IDS = (("model_id", "m1"), ("deployment_id", "d1"))
HIST_SETS = [{"quantile": "0.5"}, {"quantile": "0.9"}, {"quantile": "0.99"}, {"stat": "avg"}]
STATUS_SETS = [{"status": "2xx"}, {"status": "4xx"}, {"status": "5xx"}]


def desc(
    name: str, kind: str = "GAUGE", unit: str = "COUNT", sets: list[dict[str, str]] | None = None
) -> Any:
    return {
        "name": name,
        "unit_hint": unit,
        "kind": kind,
        "label_sets": [{}] if sets is None else [dict(s) for s in sets],
    }


def response(
    mode: str,
    descriptors: list[Any],
    value_sets: Sequence[tuple[int, Sequence[Sequence[float | None]]]],
    *,
    start: int = 0,
    end: int = 0,
    step: int | None = None,
) -> dict[str, Any]:
    return {
        "start_epoch_millis": start,
        "end_epoch_millis": end,
        "mode": mode,
        "step_seconds": step,
        "metric_descriptors": descriptors,
        "metric_values": [{"start_epoch_millis": t, "values": v} for t, v in value_sets],
    }


def exposition(samples: list[Sample]) -> Scrape:
    rendered: Rendered = render(samples)
    text = "".join((rendered.meta[n].header() + rendered.lines[n]).decode() for n in sorted(rendered.lines))
    return parse(text)
