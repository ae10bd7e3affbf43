"""Baseten deployments: one target per deployment (discovery rules find them: ``discovery``).

A deployment target reads ``GET /v1/models/{model_id}/deployments/{deployment_id}/metrics``
in its configured mode for gauges and histograms. Counters always come from a SERIES
window that trails ``now - delay`` (in SERIES mode, the same response; otherwise a
second request for just the COUNTER metrics), because only steps with known
boundaries can be added to a running total exactly once.

An answer past the target's limits fails its poll alone (``too_many_series``,
``too_many_families``); series dropped for too long a label are counted. Both show in
``inference_exporter_limit_hits_total``.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

from exporter.core.errors import UpstreamError
from exporter.core.exposition import Labels, Rendered
from exporter.core.scope import DEFAULT_SCOPE, Scope, target_id
from exporter.sources.base import Target, counted_limits
from exporter.sources.baseten import lists
from exporter.sources.baseten import translate as tr
from exporter.sources.baseten.config import Effective
from exporter.sources.baseten.counters import CounterState
from exporter.sources.baseten.descriptors import (
    DEFAULT_MAX_FAMILIES,
    DEFAULT_MAX_LABEL_LENGTH,
    MAX_LABEL_KEY,
    DescriptorCache,
    Limits,
)
from exporter.sources.baseten.layout import ENDPOINT, possible_families
from exporter.sources.baseten.vendor import DEFAULT_METRICS, MAX_WINDOW_SECONDS
from exporter.upstream.client import Clients, VendorClient

log = logging.getLogger("exporter.sources.baseten.target")

SOURCE = "baseten"
DISCOVERY_SOURCE = "baseten_discovery"
VENDOR = "baseten"
# The step assumed before the vendor has told us its step for a window.
DEFAULT_STEP_SECONDS = 60.0


def window_bounds(now: float, window: float, delay: float, step: float) -> tuple[int, int]:
    """(start, end) in epoch millis: the window ends at ``now - delay`` floored to a
    multiple of ``step``, and spans ``window`` rounded to whole steps (never past 7
    days). On a fixed grid, consecutive polls ask for the same step boundaries."""
    step_ms = max(1000, int(step * 1000))
    end = math.floor((now - delay) * 1000 / step_ms) * step_ms
    length = math.ceil(window * 1000 / step_ms) * step_ms
    if length > MAX_WINDOW_SECONDS * 1000:
        length = math.floor(MAX_WINDOW_SECONDS * 1000 / step_ms) * step_ms
    return end - length, end


def request_params(
    mode: str, metrics: tuple[str, ...] | list[str], now: float, window: float, delay: float, step: float
) -> dict[str, Any]:
    params: dict[str, Any] = {"mode": mode}
    if mode != "CURRENT":
        start, end = window_bounds(now, window, delay, step if mode == "SERIES" else 1.0)
        params["start_epoch_millis"] = start
        params["end_epoch_millis"] = end
    if metrics:
        params["metrics"] = list(metrics)
    return params


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

    request: Effective
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
    """One deployment. Its counter totals and learned step survive reloads (the daemon
    keeps the object and hands it any new settings)."""

    source = SOURCE

    def __init__(
        self,
        clients: Clients,
        model_id: str,
        deployment_id: str,
        settings: DeploymentSettings,
        *,
        meta: lists.Meta | None = None,
    ) -> None:
        self._init_from_settings(deployment_id_of(settings.scope.account, model_id, deployment_id), settings)
        self.clients = clients
        self.model_id = model_id
        self.deployment_id = deployment_id
        self.req = settings.request
        self.ids: Labels = (("model_id", model_id), ("deployment_id", deployment_id))
        self.meta = meta
        self.meta_refresh = settings.meta_refresh
        self._meta_checked = -math.inf
        self.counters = CounterState()
        self.percent: frozenset[str] = frozenset()
        self.step = DEFAULT_STEP_SECONDS
        self.counter_step = DEFAULT_STEP_SECONDS
        # The parameters of the last counters' SERIES read that succeeded (CURRENT and
        # SUMMARY modes): the window is step-aligned, so while it has not moved no new
        # step can have settled, and the read is skipped.
        self._counters_read: dict[str, Any] | None = None
        # The families each configured vendor metric was seen to land in, for the metric filter.
        self._families: dict[str, frozenset[str]] = {}
        self.limits = settings.limits
        self.descriptors = DescriptorCache()

    def update_from(self, other: Target) -> None:
        if isinstance(other, DeploymentTarget) and other.meta is not None:
            self.meta = other.meta

    def reconfigure(self, new: Target) -> bool:
        if not isinstance(new, DeploymentTarget) or not super().reconfigure(new):
            return False
        self.req = new.req
        self.meta_refresh = new.meta_refresh
        return True

    async def _metrics(self, client: VendorClient, params: dict[str, Any]) -> Any:
        reply = await client.request_json(
            "GET",
            f"/v1/models/{self.model_id}/deployments/{self.deployment_id}/metrics",
            params=params,
            source=SOURCE,
            endpoint=ENDPOINT,
            timeout=self.timeout,
            # Only a CURRENT read asks the same at every poll: other modes name a window.
            repeated=params["mode"] == "CURRENT",
        )
        return reply.doc

    def _wanted(self, name: str, known: dict[str, frozenset[str]] | None = None) -> bool:
        """False if the metric filter removes every family of vendor metric ``name``
        (those it is ``known`` to land in or was seen to in earlier answers, else every
        family the name could land in)."""
        keep = self.scope.filter
        if not keep.active:
            return True
        families = (known or {}).get(name) or self._families.get(name) or possible_families(name)
        return any(keep.keeps(f) for f in families)

    def _learn_families(self, resp: tr.Response) -> dict[str, frozenset[str]]:
        """The families each metric of ``resp`` lands in (under a metric filter only);
        those of the configured metrics are remembered for the next request."""
        if not self.scope.filter.active:
            return {}
        known = {
            d.name: frozenset(fam.name for fam, _ in series)
            for d, series in zip(resp.descriptors, resp.layouts, strict=True)
        }
        asked = self.req.metrics or DEFAULT_METRICS
        self._families.update((n, known[n]) for n in asked if n in known)
        return known

    def _parse(self, doc: Any, mode: str, client: VendorClient) -> tr.Response:
        resp = tr.parse(doc, mode, self.limits, self.descriptors)
        if resp.dropped:
            client.stats.limit_hit(SOURCE, MAX_LABEL_KEY, resp.dropped)
        return resp

    def requested(self) -> tuple[str, ...] | None:
        """The vendor metrics to ask for: the configured ones (or, under a metric filter,
        the vendor's default set named explicitly) less those the filter removes
        entirely; None when that leaves nothing to ask for."""
        if not self.scope.filter.active:
            return self.req.metrics
        return tuple(n for n in self.req.metrics or DEFAULT_METRICS if self._wanted(n)) or None

    async def poll(self, now: float) -> Rendered:
        client = self.clients.get(VENDOR, self.account)
        with counted_limits(client.stats, SOURCE):
            return await self._poll(client, now)

    async def _poll(self, client: VendorClient, now: float) -> Rendered:
        req = self.req
        self.descriptors.next_poll()
        cutoff = math.floor((now - req.delay) * 1000)
        metrics = self.requested()
        if metrics is None:
            main = tr.Response(req.mode, 0, 0, None, (), ())  # every metric filtered: nothing to ask
        else:
            main = self._parse(
                await self._metrics(
                    client, request_params(req.mode, metrics, now, req.window, req.delay, self.step)
                ),
                req.mode,
                client,
            )
        known = self._learn_families(main)
        samples, percent = tr.gauge_samples(main, self.ids, cutoff, self.percent)
        series: tr.Response | None = main if req.mode == "SERIES" else None
        names = [n for n in tr.counter_names(main) if self._wanted(n, known)]
        counters_read: dict[str, Any] | None = None
        if series is None and names:
            params = request_params("SERIES", names, now, req.counter_window, req.delay, self.counter_step)
            if params != self._counters_read:
                series = self._parse(await self._metrics(client, params), "SERIES", client)
                counters_read = params
        if self.meta_refresh is not None and now - self._meta_checked >= self.meta_refresh:
            await self._refresh_meta(client, now)
        # Every request succeeded and translated: only now is state changed.
        self.percent = percent
        if counters_read is not None:
            self._counters_read = counters_read
        if series is not None:
            step_ms = tr.step_length_ms(series)
            if step_ms:
                if req.mode == "SERIES":
                    self.step = step_ms / 1000
                else:
                    self.counter_step = step_ms / 1000
            self.counters.update(series, cutoff)
        samples += self.counters.samples(self.ids)
        if self.meta is not None:
            samples += lists.meta_samples(self.ids, self.meta)
        return self.scope.render(samples)

    async def _refresh_meta(self, client: VendorClient, now: float) -> None:
        """Metadata is a nicety: failing to read it keeps the last known and never
        fails the metrics poll; nor does a name too long to be a label value, which is
        counted and not shown."""
        self._meta_checked = now
        try:
            models = await list_models(client, self.timeout)
            model = next((m for m in models if m.id == self.model_id), None)
            if model is None:
                return
            deps = await list_deployments(client, self.model_id, self.timeout)
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
            client.stats.limit_hit(SOURCE, MAX_LABEL_KEY)


async def list_models(client: VendorClient, timeout: float) -> list[lists.Model]:
    doc = (
        await client.request_json(
            "GET",
            lists.MODELS_ENDPOINT,
            source=DISCOVERY_SOURCE,
            endpoint=lists.MODELS_ENDPOINT,
            timeout=timeout,
        )
    ).doc
    return lists.parse_models(doc)


async def list_deployments(client: VendorClient, model_id: str, timeout: float) -> list[lists.Deployment]:
    doc = (
        await client.request_json(
            "GET",
            f"/v1/models/{model_id}/deployments",
            source=DISCOVERY_SOURCE,
            endpoint=lists.DEPLOYMENTS_ENDPOINT,
            timeout=timeout,
        )
    ).doc
    return lists.parse_deployments(doc)
