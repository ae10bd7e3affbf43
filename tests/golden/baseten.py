"""Golden builder of the Baseten source: deployment metrics in each mode, counters, ``_info``.

Fixtures:

- ``models.json`` and ``deployments/<model_id>.json``: the two list endpoints, whose
  entries give each deployment its ``baseten_deployment_info``;
- ``metrics/<model_id>/<deployment_id>/poll-<n>.json``: poll ``n`` of that deployment,
  ``INTERVAL`` seconds after the one before, in the mode the answer names; in CURRENT and
  SUMMARY mode a deployment with COUNTER metrics also reads ``poll-<n>-counters.json``,
  the SERIES window its counters come from.
"""

from __future__ import annotations

import math

from exporter.core.exposition import Labels, Rendered, Sample
from exporter.sources.baseten import lists
from exporter.sources.baseten import translate as tr
from exporter.sources.baseten.counters import CounterState
from tests.golden.replay import NOW, SCOPE, Fixtures
from tests.helpers import exposition

DELAY = 180.0
INTERVAL = 60.0


def _metadata(fx: Fixtures) -> dict[tuple[str, str], lists.Meta]:
    out: dict[tuple[str, str], lists.Meta] = {}
    for model in lists.parse_models(fx.json("models.json")):
        name = f"deployments/{model.id}.json"
        if fx.exists(name):
            for dep in lists.parse_deployments(fx.json(name)):
                out[(model.id, dep.id)] = lists.meta_for(model, dep)
    return out


def _deployment(fx: Fixtures, folder: str, ids: Labels) -> list[Sample]:
    """What the deployment's last poll leaves: its gauges, and counters summed over all polls."""
    counters = CounterState()
    percent: frozenset[str] = frozenset()
    samples: list[Sample] = []
    for n, name in enumerate(fx.names(f"{folder}/poll-*[0-9].json"), start=1):
        now = NOW + (n - 1) * INTERVAL
        cutoff = math.floor((now - DELAY) * 1000)
        doc = fx.json(name)
        main = tr.parse(doc, str(doc.get("mode")))
        samples, percent = tr.gauge_samples(main, ids, cutoff, percent)
        series = main if main.mode == "SERIES" else None
        if series is None and tr.counter_names(main):
            series = tr.parse(fx.json(f"{folder}/poll-{n}-counters.json"), "SERIES")
        if series is not None:
            counters.update(series, cutoff)
    return samples + counters.samples(ids)


def build_baseten(fx: Fixtures) -> bytes:
    meta = _metadata(fx)
    parts: list[Rendered] = []
    for model_id in fx.folders("metrics"):
        for deployment_id in fx.folders(f"metrics/{model_id}"):
            ids: Labels = (("model_id", model_id), ("deployment_id", deployment_id))
            samples = _deployment(fx, f"metrics/{model_id}/{deployment_id}", ids)
            known = meta.get((model_id, deployment_id))
            if known is not None:
                samples += lists.meta_samples(ids, known)
            parts.append(SCOPE.render(samples))
    return exposition(parts)
