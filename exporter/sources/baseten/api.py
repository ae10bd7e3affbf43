"""Baseten's REST API, as one account's typed methods.

Each method owns its path (ids escaped into it: ``exporter.upstream.api.segment``) and
the labels its requests are counted under in ``inference_exporter_upstream_requests_total``:
``source`` is the kind of target that asks (``baseten`` for a deployment's metrics,
``baseten_discovery`` for the lists, whoever reads them) and ``endpoint`` the path
template. The list methods return validated records (``lists``); the metrics method
returns the document, which its target parses against its own limits and cache.
"""

from __future__ import annotations

from typing import Any

from exporter.sources.baseten import lists
from exporter.sources.baseten.deployment import Query
from exporter.sources.baseten.layout import ENDPOINT as METRICS_ENDPOINT
from exporter.upstream.api import AccountAPI, segment

VENDOR = "baseten"
# The ``source`` label of a deployment target's requests, and of the lists' requests.
SOURCE = "baseten"
DISCOVERY_SOURCE = "baseten_discovery"


class BasetenAPI(AccountAPI):
    """``GET /v1/models``, ``GET /v1/models/{model_id}/deployments`` and a deployment's metrics."""

    vendor = VENDOR
    __slots__ = ()

    async def deployment_metrics(
        self, model_id: str, deployment_id: str, query: Query, *, timeout: float
    ) -> Any:
        """The metrics document (GetDeploymentMetricsResponseV1) of one deployment."""
        reply = await self._get(
            f"/v1/models/{segment(model_id)}/deployments/{segment(deployment_id)}/metrics",
            source=SOURCE,
            endpoint=METRICS_ENDPOINT,
            timeout=timeout,
            params=query.params(),
            # Only a CURRENT read asks the same at every poll: other modes name a window.
            repeated=query.mode == "CURRENT",
        )
        return reply.doc

    async def models(self, *, timeout: float) -> list[lists.Model]:
        reply = await self._get(
            lists.MODELS_ENDPOINT, source=DISCOVERY_SOURCE, endpoint=lists.MODELS_ENDPOINT, timeout=timeout
        )
        return lists.parse_models(reply.doc)

    async def deployments(self, model_id: str, *, timeout: float) -> list[lists.Deployment]:
        reply = await self._get(
            f"/v1/models/{segment(model_id)}/deployments",
            source=DISCOVERY_SOURCE,
            endpoint=lists.DEPLOYMENTS_ENDPOINT,
            timeout=timeout,
        )
        return lists.parse_deployments(reply.doc)
