"""Together AI's REST API, as one account's typed methods.

Each method owns its path (ids escaped into it: ``exporter.upstream.api.segment``) and
the labels its requests are counted under in ``inference_exporter_upstream_requests_total``:
``source`` is the kind of target that asks, ``endpoint`` the path template. Methods
whose answer needs nothing of the caller to be read return it read (a job, a status,
the list of jobs); the others return the document for their target to translate.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from exporter.sources.together.finetune import translate as ft
from exporter.sources.together.probe_translate import JobStatus, read_status, submitted_id
from exporter.sources.together.queue_translate import ENDPOINT as QUEUE_METRICS
from exporter.upstream.api import AccountAPI, segment

VENDOR = "together"
# The ``source`` label of each kind of target's requests.
QUEUE_SOURCE = "together_queue"
PROBE_SOURCE = "together_queue_probe"
FINETUNE_SOURCE = "together_finetune"
FINETUNE_DISCOVERY_SOURCE = "together_finetune_discovery"

SUBMIT = "/queue/submit"
STATUS = "/queue/status"
CANCEL = "/queue/cancel"


class MetricRows(NamedTuple):
    """One read of a job's metrics: its rows, and the vendor's clock when it answered
    (its ``Date`` header; None without one)."""

    rows: list[Any]
    read_at: float | None


class TogetherAPI(AccountAPI):
    """Queue depth, the queue jobs a probe submits, and fine-tune jobs."""

    vendor = VENDOR
    __slots__ = ()

    # --- queues ---------------------------------------------------------------------

    async def queue_metrics(self, model: str, *, timeout: float) -> Any:
        """The QueueMetricsResponse of ``model``'s queue."""
        reply = await self._get(
            QUEUE_METRICS,
            source=QUEUE_SOURCE,
            endpoint=QUEUE_METRICS,
            timeout=timeout,
            params={"model": model},
            repeated=True,
        )
        return reply.doc

    async def submit(self, body: Mapping[str, Any], *, timeout: float) -> str:
        """Submit a queue job; its request id (``invalid_response`` when the answer has none)."""
        reply = await self._post(SUBMIT, body, source=PROBE_SOURCE, endpoint=SUBMIT, timeout=timeout)
        return submitted_id(reply.doc)

    async def status(self, request_id: str, model: str, *, timeout: float) -> JobStatus:
        reply = await self._get(
            STATUS,
            source=PROBE_SOURCE,
            endpoint=STATUS,
            timeout=timeout,
            params={"request_id": request_id, "model": model},
        )
        return read_status(reply.doc)

    async def cancel(self, request_id: str, model: str, *, timeout: float) -> str | None:
        """Cancel a queue job; its status after the attempt, None when the answer does not say.

        200 means canceled. 409 means the job was no longer pending, and the answer
        carries its current status.
        """
        code, doc, _ = await self._post(
            CANCEL,
            {"model": model, "request_id": request_id},
            source=PROBE_SOURCE,
            endpoint=CANCEL,
            timeout=timeout,
            ok_statuses=(200, 409),
        )
        if code == 200:
            return "canceled"
        status = doc.get("status") if isinstance(doc, dict) else None
        return status if isinstance(status, str) else None

    # --- fine-tunes -----------------------------------------------------------------

    async def fine_tune(self, job_id: str, *, timeout: float) -> ft.JobInfo:
        """``GET /fine-tunes/{id}``: the job's status, model and progress."""
        reply = await self._get(
            f"/fine-tunes/{segment(job_id)}",
            source=FINETUNE_SOURCE,
            endpoint=ft.JOB_ENDPOINT,
            timeout=timeout,
            # Read the same way at every poll.
            repeated=True,
        )
        return ft.parse_job(reply.doc)

    async def fine_tune_metrics(
        self,
        job_id: str,
        *,
        timeout: float,
        logged_at_from: float | None = None,
        resolution: int | None = None,
    ) -> MetricRows:
        """``GET /fine-tunes/{id}/metrics``: the rows logged since ``logged_at_from`` (vendor
        time, Unix seconds), else the whole history sampled down to ``resolution`` rows."""
        params: dict[str, str | int] = {}
        if logged_at_from is not None:
            params["logged_at_from"] = ft.iso_time(logged_at_from)
        elif resolution is not None:
            params["resolution"] = resolution
        reply = await self._get(
            f"/fine-tunes/{segment(job_id)}/metrics",
            source=FINETUNE_SOURCE,
            endpoint=ft.METRICS_ENDPOINT,
            timeout=timeout,
            params=params,
        )
        return MetricRows(ft.metric_rows(reply.doc), reply.date)

    async def fine_tunes(self, *, timeout: float) -> list[tuple[str, str]]:
        """``(id, status)`` of every listed job."""
        reply = await self._get(
            ft.LIST_ENDPOINT, source=FINETUNE_DISCOVERY_SOURCE, endpoint=ft.LIST_ENDPOINT, timeout=timeout
        )
        return ft.parse_list(reply.doc)
