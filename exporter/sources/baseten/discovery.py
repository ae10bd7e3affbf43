"""Baseten discovery rules: list models (optionally by name), list their deployments,
keep those that match, and return a ``DeploymentTarget`` for each.

A rule that would list the deployments of more than ``max_targets`` models, or keep
more than ``max_targets`` deployments, fails with ``too_many_targets`` and keeps the
deployments it found before (a failed discovery never drops its targets). A model or
deployment whose id, name, environment or status is longer than the account's
``max_label_value_length`` is left out and counted."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from exporter.core.errors import UpstreamError
from exporter.core.exposition import Rendered
from exporter.core.scope import DEFAULT_SCOPE, Scope, target_id
from exporter.sources.base import DEFAULT_MAX_TARGETS, Discovery, Target, counted_limits, too_many_targets
from exporter.sources.baseten import lists
from exporter.sources.baseten.api import DISCOVERY_SOURCE, BasetenAPI
from exporter.sources.baseten.descriptors import MAX_LABEL_KEY
from exporter.sources.baseten.target import DeploymentSettings, DeploymentTarget


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
    max_targets: int = DEFAULT_MAX_TARGETS


class DeploymentDiscovery(Discovery):
    """One discovery rule: list models (optionally by name), list their deployments,
    keep those that match, and yield a DeploymentTarget for each."""

    source = DISCOVERY_SOURCE

    def __init__(self, api: BasetenAPI, index: int, settings: DeploymentDiscoverySettings) -> None:
        self._init_from_settings(target_id(DISCOVERY_SOURCE, settings.scope.account, str(index)), settings)
        self.api = api
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
            self.api, found.model_id, found.deployment_id, self.opts.deployments, meta=found.meta
        )

    async def discover(self, now: float) -> tuple[Rendered, list[Target]]:
        with counted_limits(self.api.stats, DISCOVERY_SOURCE):
            return Rendered(), await self._discover()

    async def _discover(self) -> list[Target]:
        models = [
            m
            for m in await self.api.models(timeout=self.timeout)
            if not self.opts.model_names or m.name in self.opts.model_names
        ]
        self._check_count(len(models), "models to list the deployments of")
        per_model = await asyncio.gather(*(self._deployments(m.id) for m in models))
        found: list[tuple[lists.Model, lists.Deployment]] = []
        for model, deps in zip(models, per_model, strict=True):
            chosen = lists.select(
                deps,
                environments=self.opts.environments,
                production_only=self.opts.production_only,
                skip_statuses=self.opts.skip_statuses,
            )
            found += ((model, dep) for dep in chosen)
        self._check_count(len(found), "deployments")
        settings = self.opts.deployments
        fitting = [(m, d) for m, d in found if lists.fits(m, d, settings.max_label_length)]
        if len(fitting) < len(found):
            self.api.stats.limit_hit(DISCOVERY_SOURCE, MAX_LABEL_KEY, len(found) - len(fitting))
        return [
            DeploymentTarget(self.api, m.id, d.id, settings, meta=lists.meta_for(m, d)) for m, d in fitting
        ]

    def _check_count(self, count: int, what: str) -> None:
        if count > self.opts.max_targets:
            narrow = "narrow the rule (model_names, environments, production_only)"
            raise too_many_targets(count, what, self.opts.max_targets, narrow)

    async def _deployments(self, model_id: str) -> list[lists.Deployment]:
        try:
            return await self.api.deployments(model_id, timeout=self.timeout)
        except UpstreamError as exc:
            if exc.reason == "not_found":  # deleted between the two list calls
                return []
            raise
