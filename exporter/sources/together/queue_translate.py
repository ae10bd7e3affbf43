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

from typing import Any

from exporter.core.exposition import Family, Sample
from exporter.sources.jsonshape import json_object, required_count

ENDPOINT = "/queue/metrics"

JOBS_WAITING = Family(
    "together_queue_jobs_waiting",
    "gauge",
    "Jobs waiting to be claimed by a worker (Together GET /queue/metrics field messages_waiting).",
    labels=("model",),
)
JOBS_RUNNING = Family(
    "together_queue_jobs_running",
    "gauge",
    "Jobs currently being processed (Together GET /queue/metrics field messages_running).",
    labels=("model",),
)

FAMILIES = (JOBS_WAITING, JOBS_RUNNING)
_FIELDS = (("messages_waiting", JOBS_WAITING), ("messages_running", JOBS_RUNNING))


def translate(model: str, doc: Any) -> list[Sample]:
    """Turn one QueueMetricsResponse into samples.

    Both counts are required by the vendor's schema; a missing, negative or non-numeric count
    is schema drift and fails the poll rather than exporting a made-up number.
    Unknown extra fields are ignored.
    """
    doc = json_object(doc, ENDPOINT)
    labels = (("model", model),)
    return [Sample(family, labels, required_count(doc, field, ENDPOINT)) for field, family in _FIELDS]
