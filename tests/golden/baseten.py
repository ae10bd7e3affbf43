"""Golden builder of the Baseten source: deployment metrics in each mode, counters, ``_info``.

Each deployment's polls go through the source's own pure core
(``exporter.sources.baseten.deployment``), as its target runs them: the core says what
to read, the recorded answers stand in for the vendor, and its new state carries over
to the next poll. So the choice of reads (a counters' window that has not moved is not
read again), the counters' steps and the learned steps are those of the daemon.

Fixtures:

- ``models.json`` and ``deployments/<model_id>.json``: the two list endpoints, whose
  entries give each deployment its ``baseten_deployment_info``;
- ``metrics/<model_id>/<deployment_id>/poll-<n>.json``: the answer to poll ``n`` of that
  deployment, ``INTERVAL`` seconds after the one before. The first answer's mode is the
  deployment's configured mode, and its window (SUMMARY, SERIES) the configured window;
- ``poll-<n>-counters.json``: the SERIES window of COUNTER metrics that poll ``n`` reads
  in CURRENT and SUMMARY mode (``COUNTER_WINDOW`` long), when the core asks for it.

Every answer must be for the window the core asked for.
"""

from __future__ import annotations

from typing import Any

from exporter.core.exposition import Labels, Rendered
from exporter.sources.baseten import deployment, lists
from exporter.sources.baseten import translate as tr
from exporter.sources.baseten.config import Effective
from exporter.sources.baseten.descriptors import DEFAULT_LIMITS, DescriptorCache
from tests.golden.relay import build_baseten_relay
from tests.golden.replay import NOW, SCOPE, Fixtures
from tests.helpers import exposition

DELAY = 180.0
COUNTER_WINDOW = 180.0
INTERVAL = 60.0


def _metadata(fx: Fixtures) -> dict[tuple[str, str], lists.Meta]:
    out: dict[tuple[str, str], lists.Meta] = {}
    for model in lists.parse_models(fx.json("models.json")):
        name = f"deployments/{model.id}.json"
        if fx.exists(name):
            for dep in lists.parse_deployments(fx.json(name)):
                out[(model.id, dep.id)] = lists.meta_for(model, dep)
    return out


def _request(first: Any) -> Effective:
    """The request settings a deployment's first recorded answer was asked with."""
    mode = first["mode"]
    window = (first["end_epoch_millis"] - first["start_epoch_millis"]) / 1000 if mode != "CURRENT" else 600.0
    return Effective(mode=mode, metrics=(), window=window, counter_window=COUNTER_WINDOW, delay=DELAY)


class _Replay:
    """One deployment's recorded answers, handed out as its target's reads would get them."""

    def __init__(self, fx: Fixtures, folder: str) -> None:
        self.fx = fx
        self.folder = folder
        self.cache = DescriptorCache()

    def read(self, name: str, query: deployment.Query | None) -> tr.Response | None:
        if query is None:
            return None
        doc = self.fx.json(f"{self.folder}/{name}")
        if query.start_ms is not None:
            asked = (query.mode, query.start_ms, query.end_ms)
            answered = (doc["mode"], doc["start_epoch_millis"], doc["end_epoch_millis"])
            assert answered == asked, f"{self.folder}/{name} answers {answered}, the poll asked for {asked}"
        return tr.parse(doc, query.mode, DEFAULT_LIMITS, self.cache)


def _deployment(fx: Fixtures, folder: str, d: deployment.Deployment) -> Rendered:
    """What the deployment's last poll leaves on ``/metrics``."""
    replay = _Replay(fx, folder)
    state = deployment.State()
    samples: list[Any] = []
    for n, _ in enumerate(fx.names(f"{folder}/poll-*[0-9].json"), start=1):
        now = NOW + (n - 1) * INTERVAL
        replay.cache.next_poll()
        main = replay.read(f"poll-{n}.json", deployment.main_query(state, d, now))
        counters_query = deployment.counters_query(state, d, main, now)
        counters = replay.read(f"poll-{n}-counters.json", counters_query)
        answers = deployment.Answers(main, counters, counters_query)
        state, samples = deployment.advance(state, d, answers, now)
    return SCOPE.render(samples)


def build_baseten(fx: Fixtures) -> bytes:
    meta = _metadata(fx)
    parts: list[Rendered] = []
    for model_id in fx.folders("metrics"):
        for deployment_id in fx.folders(f"metrics/{model_id}"):
            folder = f"metrics/{model_id}/{deployment_id}"
            ids: Labels = (("model_id", model_id), ("deployment_id", deployment_id))
            request = _request(fx.json(f"{folder}/poll-1.json"))
            d = deployment.Deployment(ids, request, meta=meta.get((model_id, deployment_id)))
            parts.append(_deployment(fx, folder, d))
    return exposition(parts)


# This vendor's golden expositions, by source (``tests/golden/<source>.prom``).
GOLDENS = {"baseten": build_baseten, "baseten_relay": build_baseten_relay}
