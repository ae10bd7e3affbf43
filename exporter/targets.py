"""From a validated config to the list of static targets, source by source.

Each target type is built from its identity (the vendor ids its id is made of) and
one frozen settings object made here from the config. That object is the target's
``settings``: a reload that builds an equal one keeps the running target, state and
all; a different one replaces it.
"""

from __future__ import annotations

from collections.abc import Callable

from exporter.config import Config
from exporter.config.baseten import effective
from exporter.config.common import Schedule
from exporter.sources.base import Target
from exporter.sources.baseten import discovery as baseten_discovery
from exporter.sources.baseten import target as baseten
from exporter.sources.together import probe as together_probe
from exporter.sources.together import queue as together_queue
from exporter.sources.together.finetune import target as together_finetune
from exporter.upstream import Clients

TargetBuilder = Callable[[Config, Clients], list[Target]]


def schedule(cfg: Config, override: Schedule) -> tuple[float, float]:
    """A target's (interval, timeout): its own settings, else the global defaults."""
    interval = override.poll_interval or cfg.global_.poll_interval
    timeout = override.timeout or cfg.global_.timeout
    return interval, min(timeout, interval)


def _together_queues(cfg: Config, clients: Clients) -> list[Target]:
    if cfg.together is None:
        return []
    out: list[Target] = []
    for q in cfg.together.queues:
        interval, timeout = schedule(cfg, q)
        out.append(
            together_queue.QueueTarget(clients, q.model, together_queue.QueueSettings(interval, timeout))
        )
    return out


def _together_probes(cfg: Config, clients: Clients) -> list[Target]:
    """Opt-in probes: each poll submits one real job, so only what the config lists."""
    if cfg.together is None:
        return []
    return [
        together_probe.ProbeTarget(
            clients,
            p.model,
            together_probe.ProbeSettings.build(
                p.payload,
                p.priority,
                p.info,
                interval=p.interval,
                timeout=p.timeout,
                status_poll_interval=p.status_poll_interval,
                request_timeout=cfg.global_.timeout,
                buckets=p.buckets,
            ),
        )
        for p in cfg.together.probes
    ]


def _together_fine_tunes(cfg: Config, clients: Clients) -> list[Target]:
    """Explicit fine-tune jobs, and the discovery of jobs in the watched statuses."""
    if cfg.together is None:
        return []
    ft = cfg.together.fine_tunes

    def job_settings(override: Schedule) -> together_finetune.JobSettings:
        shared = Schedule(
            poll_interval=override.poll_interval or ft.poll_interval, timeout=override.timeout or ft.timeout
        )
        interval, timeout = schedule(cfg, shared)
        return together_finetune.JobSettings(
            interval, timeout, ft.resolution, ft.retention, ft.max_keys, ft.logged_at_overlap
        )

    out: list[Target] = [together_finetune.JobTarget(clients, job.id, job_settings(job)) for job in ft.jobs]
    if ft.discovery.enabled:
        interval, timeout = schedule(
            cfg, Schedule(poll_interval=ft.discovery.refresh_interval, timeout=ft.discovery.timeout)
        )
        settings = together_finetune.FineTuneDiscoverySettings(
            frozenset(ft.discovery.statuses), interval, timeout, jobs=job_settings(Schedule())
        )
        out.append(together_finetune.FineTuneDiscovery(clients, settings))
    return out


def _baseten_deployments(cfg: Config, clients: Clients) -> list[Target]:
    section = cfg.baseten
    if section is None:
        return []
    out: list[Target] = []
    for d in section.deployments:
        interval, timeout = schedule(cfg, d)
        settings = baseten.DeploymentSettings(
            effective(section, d), interval, timeout, meta_refresh=section.info_refresh_interval
        )
        out.append(baseten.DeploymentTarget(clients, d.model_id, d.deployment_id, settings))
    return out


def _baseten_discovery(cfg: Config, clients: Clients) -> list[Target]:
    section = cfg.baseten
    if section is None:
        return []
    out: list[Target] = []
    for i, rule in enumerate(section.discovery):
        interval, timeout = schedule(cfg, rule)
        settings = baseten_discovery.DeploymentDiscoverySettings(
            model_names=frozenset(rule.model_names),
            environments=frozenset(rule.environments),
            production_only=rule.production_only,
            skip_statuses=frozenset(rule.skip_statuses),
            interval=rule.refresh_interval,
            timeout=min(cfg.global_.timeout, rule.refresh_interval),
            deployments=baseten.DeploymentSettings(effective(section, rule), interval, timeout),
        )
        out.append(baseten_discovery.DeploymentDiscovery(clients, i, settings))
    return out


BUILDERS: list[TargetBuilder] = [
    _together_queues,
    _together_probes,
    _together_fine_tunes,
    _baseten_deployments,
    _baseten_discovery,
]


def build_targets(cfg: Config, clients: Clients) -> list[Target]:
    return [t for build in BUILDERS for t in build(cfg, clients)]
