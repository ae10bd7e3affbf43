"""Baseten discovery rules: list models (optionally by name), list their deployments,
keep those that match, and return a ``DeploymentTarget`` for each."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from exporter.errors import UpstreamError
from exporter.exposition import Rendered
from exporter.scope import DEFAULT_SCOPE, Scope, target_id
from exporter.sources.base import Discovery, Target
from exporter.sources.baseten import lists
from exporter.sources.baseten.target import (
    DISCOVERY_SOURCE,
    VENDOR,
    DeploymentSettings,
    DeploymentTarget,
    list_deployments,
    list_models,
)
from exporter.upstream import Clients, VendorClient


@dataclass(frozen=True)
class DeploymentDiscoverySettings:
    """One discovery rule from the config (its target's ``settings``): what to keep,
    how often to list, and the settings each deployment found is polled with."""

    model_names: frozenset[str]
    environments: frozenset[str]
    production_only: bool
    skip_statuses: frozenset[str]
    interval: float
    timeout: float
    deployments: DeploymentSettings
    scope: Scope = DEFAULT_SCOPE


class DeploymentDiscovery(Discovery):
    """One discovery rule: list models (optionally by name), list their deployments,
    keep those that match, and yield a DeploymentTarget for each."""

    source = DISCOVERY_SOURCE

    def __init__(self, clients: Clients, index: int, settings: DeploymentDiscoverySettings) -> None:
        self._init_from_settings(target_id(DISCOVERY_SOURCE, settings.scope.account, str(index)), settings)
        self.clients = clients
        self.opts = settings

    def reconfigure(self, new: Target) -> bool:
        if not isinstance(new, DeploymentDiscovery) or not super().reconfigure(new):
            return False
        self.opts = new.opts
        return True

    def rebuild(self, found: Target) -> Target:
        if not isinstance(found, DeploymentTarget):
            return found
        return DeploymentTarget(
            self.clients, found.model_id, found.deployment_id, self.opts.deployments, meta=found.meta
        )

    async def discover(self, now: float) -> tuple[Rendered, list[Target]]:
        client = self.clients.get(VENDOR, self.account)
        models = [
            m
            for m in await list_models(client, self.timeout)
            if not self.opts.model_names or m.name in self.opts.model_names
        ]
        per_model = await asyncio.gather(*(self._deployments(client, m.id) for m in models))
        found: list[Target] = []
        for model, deps in zip(models, per_model, strict=True):
            chosen = lists.select(
                deps,
                environments=self.opts.environments,
                production_only=self.opts.production_only,
                skip_statuses=self.opts.skip_statuses,
            )
            for dep in chosen:
                found.append(
                    DeploymentTarget(
                        self.clients, model.id, dep.id, self.opts.deployments, meta=lists.meta_for(model, dep)
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
