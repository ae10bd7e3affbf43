"""From a validated config to the list of static targets, source by source."""

from __future__ import annotations

from collections.abc import Callable

from exporter.config import Config
from exporter.config.common import Schedule
from exporter.sources import together_probe, together_queue
from exporter.sources.base import Target
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
        out.append(together_queue.QueueTarget(clients, q.model, interval=interval, timeout=timeout))
    return out


def _together_probes(cfg: Config, clients: Clients) -> list[Target]:
    """Opt-in probes: each poll submits one real job, so only what the config lists."""
    if cfg.together is None:
        return []
    return [
        together_probe.ProbeTarget(
            clients,
            together_probe.ProbeSpec.build(
                p.model,
                p.payload,
                p.priority,
                p.info,
                interval=p.interval,
                timeout=p.timeout,
                status_poll_interval=p.status_poll_interval,
                request_timeout=cfg.global_.timeout,
            ),
        )
        for p in cfg.together.probes
    ]


BUILDERS: list[TargetBuilder] = [_together_queues]
BUILDERS.append(_together_probes)


def build_targets(cfg: Config, clients: Clients) -> list[Target]:
    return [t for build in BUILDERS for t in build(cfg, clients)]
