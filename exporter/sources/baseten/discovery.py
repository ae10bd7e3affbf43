"""Baseten discovery rules: list models (optionally by name), list their deployments,
keep those that match, and return a ``DeploymentTarget`` for each."""

from __future__ import annotations

import asyncio

from exporter.config.baseten import Effective
from exporter.errors import UpstreamError
from exporter.exposition import Rendered
from exporter.sources.base import Discovery, Target
from exporter.sources.baseten import lists
from exporter.sources.baseten.target import (
    DISCOVERY_SOURCE,
    VENDOR,
    DeploymentTarget,
    list_deployments,
    list_models,
)
from exporter.upstream import Clients, VendorClient


class DeploymentDiscovery(Discovery):
    """One discovery rule: list models (optionally by name), list their deployments,
    keep those that match, and yield a DeploymentTarget for each."""

    source = DISCOVERY_SOURCE

    def __init__(
        self,
        clients: Clients,
        index: int,
        req: Effective,
        *,
        model_names: tuple[str, ...],
        environments: tuple[str, ...],
        production_only: bool,
        skip_statuses: tuple[str, ...],
        refresh: float,
        timeout: float,
        target_interval: float,
        target_timeout: float,
    ) -> None:
        super().__init__(
            f"{DISCOVERY_SOURCE}/{index}",
            interval=refresh,
            timeout=timeout,
            settings=(
                req,
                model_names,
                environments,
                production_only,
                skip_statuses,
                refresh,
                timeout,
                target_interval,
                target_timeout,
            ),
        )
        self.clients = clients
        self.req = req
        self.model_names = frozenset(model_names)
        self.environments = frozenset(environments)
        self.production_only = production_only
        self.skip_statuses = frozenset(skip_statuses)
        self.target_interval = target_interval
        self.target_timeout = target_timeout

    async def discover(self, now: float) -> tuple[Rendered, list[Target]]:
        client = self.clients.get(VENDOR)
        models = [
            m
            for m in await list_models(client, self.timeout)
            if not self.model_names or m.name in self.model_names
        ]
        per_model = await asyncio.gather(*(self._deployments(client, m.id) for m in models))
        found: list[Target] = []
        for model, deps in zip(models, per_model, strict=True):
            chosen = lists.select(
                deps,
                environments=self.environments,
                production_only=self.production_only,
                skip_statuses=self.skip_statuses,
            )
            for dep in chosen:
                found.append(
                    DeploymentTarget(
                        self.clients,
                        model.id,
                        dep.id,
                        self.req,
                        interval=self.target_interval,
                        timeout=self.target_timeout,
                        meta=lists.meta_for(model, dep),
                    )
                )
        return Rendered(), found

    async def _deployments(self, client: VendorClient, model_id: str) -> list[lists.Deployment]:
        try:
            return await list_deployments(client, model_id, self.timeout)
        except UpstreamError as exc:
            if exc.reason == "not_found":  # deleted between the two list calls
                return []
            raise
