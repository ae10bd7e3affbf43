"""Golden builders of the Together sources: queue depth, the synthetic probe, fine-tunes.

Each replays recorded responses in the order the target would have received them and
renders what the last poll leaves on ``/metrics``, one ``Rendered`` per target, joined
as the store joins them.
"""

from __future__ import annotations

from exporter.core.exposition import Rendered
from exporter.sources.together.finetune import translate as ft
from exporter.sources.together.probe_translate import (
    TERMINAL,
    JobStatus,
    Outcome,
    ProbeState,
    judge,
    read_status,
    samples,
    submitted_id,
    unfinished,
)
from exporter.sources.together.queue_translate import translate
from tests.golden.relay import build_together_relay
from tests.golden.replay import NOW, SCOPE, Fixtures
from tests.helpers import exposition

# Fixture name → the model the config names (model names hold a ``/``, file names cannot).
MODELS = {
    "video-generator": "my-org/video-generator",
    "image-upscaler": "my-org/image-upscaler",
    "batch-embedder": "my-org/batch-embedder",
}


def build_queue(fx: Fixtures) -> bytes:
    """``<model>.json``: one ``GET /queue/metrics?model=`` answer per queue target."""
    parts = [
        SCOPE.render(translate(MODELS[name.removesuffix(".json")], fx.json(name)))
        for name in fx.names("*.json")
    ]
    return exposition(parts)


# A probe that timed out last saw its job unfinished this long after the submit answer
# (the replay has no clock; the default timeout is 60s, status read every 2s).
UNFINISHED_SEEN_FOR = 58.0


def _probe(fx: Fixtures, prefix: str, state: ProbeState) -> Outcome:
    """One probe: submit, status answers until a terminal one, and a cancel if it timed out."""
    submitted_id(fx.json(f"{prefix}-submit.json"))
    last: JobStatus | None = None
    for name in fx.names(f"{prefix}-status-*.json"):
        last = read_status(fx.json(name))
        if last.terminal:
            break
    if last is not None and last.terminal:
        state.count_job(last.status)
        return judge(last)
    if fx.exists(f"{prefix}-cancel.json"):
        # A 200 or 409 answer carries the job's status after the attempt; a terminal one settles it.
        doc = fx.json(f"{prefix}-cancel.json")
        status = doc.get("status") if isinstance(doc, dict) else None
        if isinstance(status, str) and status in TERMINAL:
            state.count_job(status)
    return unfinished(last, None, UNFINISHED_SEEN_FOR)


def build_probe(fx: Fixtures) -> bytes:
    """``<model>/<n>-submit.json``, ``<n>-status-<m>-<status>.json`` and ``<n>-cancel.json``:
    the answers probe ``n`` of that model read, in order."""
    parts: list[Rendered] = []
    for folder in fx.folders():
        state = ProbeState()
        for submit in fx.names(f"{folder}/*-submit.json"):
            state.record(_probe(fx, submit.removesuffix("-submit.json"), state))
        parts.append(SCOPE.render(samples(MODELS[folder], state)))
    return exposition(parts)


# Job settings of the replay. max_keys is small so that one job shows the limit.
MAX_KEYS = 8
OVERLAP = 60.0
INTERVAL = 60.0


def build_finetune(fx: Fixtures) -> bytes:
    """``<job id>/poll-<n>-job.json`` and ``poll-<n>-metrics.json``: poll ``n`` of a job,
    ``INTERVAL`` seconds after the one before; ``list.json``: the discovery's job list."""
    parts: list[Rendered] = []
    for job_id in fx.folders():
        state = ft.MetricsState()
        info: ft.JobInfo | None = None
        for n, name in enumerate(fx.names(f"{job_id}/poll-*-job.json"), start=1):
            if info is not None and info.terminal:
                raise AssertionError(f"{name}: a finished job is not polled again")
            now = NOW + (n - 1) * INTERVAL
            info = ft.parse_job(fx.json(name))
            rows = ft.metric_rows(fx.json(f"{job_id}/poll-{n}-metrics.json"))
            state = ft.apply_rows(state, rows, now, MAX_KEYS, read_at=now, overlap=OVERLAP)
        parts.append(SCOPE.render(ft.job_samples(job_id, info, state)))
    parts.append(SCOPE.render(ft.list_samples(ft.parse_list(fx.json("list.json")))))
    return exposition(parts)


# This vendor's golden expositions, by source (``tests/golden/<source>.prom``).
GOLDENS = {
    "together_queue": build_queue,
    "together_probe": build_probe,
    "together_finetune": build_finetune,
    "together_relay": build_together_relay,
}
