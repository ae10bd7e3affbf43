"""Together AI queue depth per model, pure translation of ``GET /queue/metrics?model=``.

Yields, per model::

    # TYPE together_queue_jobs_waiting gauge
    together_queue_jobs_waiting{model="my-org/video-generator"} 12
    # TYPE together_queue_jobs_running gauge
    together_queue_jobs_running{model="my-org/video-generator"} 3

``total_jobs`` is not exported: it is waiting + running, and a total next to its own
breakdown double-counts in any ``sum()``; add the two in PromQL instead.
"""

from __future__ import annotations

import math
from typing import Any

from exporter.errors import InvalidResponse
from exporter.exposition import Family, Sample

ENDPOINT = "/queue/metrics"

JOBS_WAITING = Family(
    "together_queue_jobs_waiting",
    "gauge",
    "Jobs waiting to be claimed by a worker (Together GET /queue/metrics field messages_waiting).",
)
JOBS_RUNNING = Family(
    "together_queue_jobs_running",
    "gauge",
    "Jobs currently being processed (Together GET /queue/metrics field messages_running).",
)

_FIELDS = (("messages_waiting", JOBS_WAITING), ("messages_running", JOBS_RUNNING))


def translate(model: str, doc: Any) -> list[Sample]:
    """Turn one QueueMetricsResponse into samples.

    Both counts are required by the vendor's schema; a missing or non-integer count
    is schema drift and fails the poll rather than exporting a made-up number.
    Unknown extra fields are ignored.
    """
    if not isinstance(doc, dict):
        raise InvalidResponse(f"{ENDPOINT}: expected a JSON object, got {type(doc).__name__}")
    labels = (("model", model),)
    samples = []
    for field, family in _FIELDS:
        value = doc.get(field)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InvalidResponse(
                f"{ENDPOINT}: field {field} is {'missing' if value is None else 'not a number'}"
            )
        if not math.isfinite(value) or value < 0:
            raise InvalidResponse(f"{ENDPOINT}: field {field} is not a finite non-negative count")
        samples.append(Sample(family, labels, float(value)))
    return samples
