"""Baseten deployments: one target per deployment (discovery rules find them: ``discovery``).

A deployment target does the I/O of its polls; what to ask and what the answers make
is ``deployment``'s, a pure function of the target's state, the answers and the time.
One poll reads ``GET /v1/models/{model_id}/deployments/{deployment_id}/metrics`` once or
twice (``deployment.main_query``, ``deployment.counters_query``), every
``meta_refresh`` the model and deployment lists for an explicit deployment's
``_info``, then commits the state ``deployment.advance`` returns: only a poll whose
every read succeeded changes it.

An answer past the target's limits fails its poll alone (``too_many_series``,
``too_many_families``); series dropped for too long a label are counted. Both show in
``inference_exporter_limit_hits_total``.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, replace

from exporter.core.errors import UpstreamError
from exporter.core.exposition import Labels, Rendered
from exporter.core.scope import DEFAULT_SCOPE, Scope, target_id
from exporter.sources.base import Target, counted_limits
from exporter.sources.baseten import deployment, lists
from exporter.sources.baseten import translate as tr
from exporter.sources.baseten.api import SOURCE, BasetenAPI
from exporter.sources.baseten.descriptors import (
    DEFAULT_MAX_FAMILIES,
    DEFAULT_MAX_LABEL_LENGTH,
    MAX_LABEL_KEY,
    DescriptorCache,
    Limits,
)

log = logging.getLogger("exporter.sources.baseten.target")


def deployment_id_of(account: str, model_id: str, deployment_id: str) -> str:
    return target_id(SOURCE, account, model_id, deployment_id)


@dataclass(frozen=True)
class DeploymentSettings:
    """Everything from the config that shapes a deployment's polls (its target's ``settings``).

    ``meta_refresh``: how often an explicit deployment reads its own names and status
    for the ``_info`` gauge; None for a discovered one, which its discovery hands them.
    The most series it may have is its scope's; ``max_families`` and
    ``max_label_length`` bound the rest of an answer (see ``descriptors.Limits``).
    """

    request: deployment.Request
    interval: float
    timeout: float
    meta_refresh: float | None = None
    scope: Scope = DEFAULT_SCOPE
    max_families: int = DEFAULT_MAX_FAMILIES
    max_label_length: int = DEFAULT_MAX_LABEL_LENGTH

    @property
    def limits(self) -> Limits:
        return Limits(self.scope.max_series, self.max_families, self.max_label_length)


class DeploymentTarget(Target):
    """One deployment. Its ``state`` (counter totals, learned steps) survives reloads
    (the daemon keeps the object and hands it any new settings, read from ``settings``
    at each poll); its descriptor cache is bounded by its limits."""

    source = SOURCE
    settings: DeploymentSettings

    def __init__(
        self,
        api: BasetenAPI,
        model_id: str,
        deployment_id: str,
        settings: DeploymentSettings,
        *,
        meta: lists.Meta | None = None,
    ) -> None:
        self._init_from_settings(deployment_id_of(settings.scope.account, model_id, deployment_id), settings)
        self.api = api
        self.model_id = model_id
        self.deployment_id = deployment_id
        self.ids: Labels = (("model_id", model_id), ("deployment_id", deployment_id))
        self.meta = meta
        self._meta_checked = -math.inf
        self.state = deployment.State()
        self._cached_under = settings.limits
        self.descriptors = DescriptorCache(settings.max_families)

    @property
    def req(self) -> deployment.Request:
        return self.settings.request

    @property
    def meta_refresh(self) -> float | None:
        return self.settings.meta_refresh

    @property
    def limits(self) -> Limits:
        return self.settings.limits

    def update_from(self, other: Target) -> None:
        if isinstance(other, DeploymentTarget) and other.meta is not None:
            self.meta = other.meta

    def reconfigure(self, new: Target) -> bool:
        if not isinstance(new, DeploymentTarget) or not super().reconfigure(new):
            return False
        if self.limits != self._cached_under:
            # The cache holds descriptors checked against the old limits, and is sized by them.
            self._cached_under = self.limits
            self.descriptors = DescriptorCache(self.limits.max_families)
        return True

    async def poll(self, now: float) -> Rendered:
        with counted_limits(self.api.stats, SOURCE):
            return await self._poll(now)

    async def _poll(self, now: float) -> Rendered:
        self.descriptors.next_poll()
        # The request and filter as the poll started: a reload meanwhile applies them from
        # the next poll (its limits, read as each answer is parsed, from the next answer).
        state, d = self.state, deployment.Deployment(self.ids, self.req, self.scope.filter)
        main = await self._read(deployment.main_query(state, d, now))
        counters_query = deployment.counters_query(state, d, main, now)
        counters = await self._read(counters_query)
        if self.meta_refresh is not None and now - self._meta_checked >= self.meta_refresh:
            await self._refresh_meta(now)
        # Every request succeeded and translated: only now is the state changed.
        answers = deployment.Answers(main, counters, counters_query)
        self.state, samples = deployment.advance(state, replace(d, meta=self._shown_meta()), answers, now)
        return self.scope.render(samples)

    def _shown_meta(self) -> lists.Meta | None:
        """The metadata the ``_info`` and status gauges show: none while names read under a
        longer ``max_label_length`` than a reload has set since are too long for it (a
        refresh keeps the last names it could read; the discovery's next refresh drops
        a found deployment they do not fit)."""
        meta = self.meta
        if meta is not None and not lists.meta_fits(meta, self.limits.max_label_length):
            return None
        return meta

    async def _read(self, query: deployment.Query | None) -> tr.Response | None:
        """The answer to ``query`` (None: nothing to ask), parsed against the target's
        limits; series dropped for too long a label are counted."""
        if query is None:
            return None
        doc = await self.api.deployment_metrics(
            self.model_id, self.deployment_id, query, timeout=self.timeout
        )
        resp = tr.parse(doc, query.mode, self.limits, self.descriptors)
        if resp.dropped:
            self.api.stats.limit_hit(SOURCE, MAX_LABEL_KEY, resp.dropped)
        return resp

    async def _refresh_meta(self, now: float) -> None:
        """Metadata is a nicety: failing to read it keeps the last known and never
        fails the metrics poll; nor does a name too long to be a label value, which is
        counted and not shown."""
        self._meta_checked = now
        try:
            models = await self.api.models(timeout=self.timeout)
            model = next((m for m in models if m.id == self.model_id), None)
            if model is None:
                return
            deps = await self.api.deployments(self.model_id, timeout=self.timeout)
        except UpstreamError as exc:
            log.warning(
                "reading deployment metadata failed",
                extra={"target": self.id, "reason": exc.reason, "detail": exc.detail},
            )
            return
        dep = next((d for d in deps if d.id == self.deployment_id), None)
        if dep is None:
            return
        if lists.fits(model, dep, self.limits.max_label_length):
            self.meta = lists.meta_for(model, dep)
        else:
            self.api.stats.limit_hit(SOURCE, MAX_LABEL_KEY)
