"""Together's targets from a validated account: queues, probes, fine-tune jobs and their
discovery, and the Prometheus endpoints it relays.

Each target is built from its identity (the account and the vendor ids its id is made
of) and one frozen settings object made here from the config: a reload that builds an
equal one keeps the running target, state and all; a different one replaces it.
"""

from __future__ import annotations

from exporter.configkit.common import GlobalConfig, Schedule
from exporter.sources.base import Target
from exporter.sources.contract import AccountScope, schedule
from exporter.sources.relay.build import relay_target
from exporter.sources.relay.config import AUTH_SCHEMES
from exporter.sources.together import probe as together_probe
from exporter.sources.together import queue as together_queue
from exporter.sources.together.api import TogetherAPI
from exporter.sources.together.config import NAME, TogetherAccount
from exporter.sources.together.finetune import target as together_finetune
from exporter.upstream.api import Clients


def queues(g: GlobalConfig, acc: TogetherAccount, scope: AccountScope, clients: Clients) -> list[Target]:
    api = TogetherAPI(clients, acc.name)
    out: list[Target] = []
    for q in acc.queues:
        interval, timeout = schedule(g, q)
        settings = together_queue.QueueSettings(interval, timeout, scope.of(q.labels))
        out.append(together_queue.QueueTarget(api, q.model, settings))
    return out


def probes(g: GlobalConfig, acc: TogetherAccount, scope: AccountScope, clients: Clients) -> list[Target]:
    """Opt-in probes: each poll submits one real job, so only what the config lists."""
    api = TogetherAPI(clients, acc.name)
    return [
        together_probe.ProbeTarget(
            api,
            p.model,
            together_probe.ProbeSettings.build(
                p.payload,
                p.priority,
                p.info,
                interval=p.interval,
                timeout=p.timeout,
                status_poll_interval=p.status_poll_interval,
                request_timeout=g.timeout,
                buckets=p.buckets,
                scope=scope.of(p.labels),
            ),
        )
        for p in acc.probes
    ]


def fine_tunes(g: GlobalConfig, acc: TogetherAccount, scope: AccountScope, clients: Clients) -> list[Target]:
    """Explicit fine-tune jobs, and the discovery of jobs in the watched statuses."""
    ft = acc.fine_tunes
    api = TogetherAPI(clients, acc.name)

    def job_settings(override: Schedule, labels: dict[str, str]) -> together_finetune.JobSettings:
        shared = Schedule(
            poll_interval=override.poll_interval or ft.poll_interval, timeout=override.timeout or ft.timeout
        )
        interval, timeout = schedule(g, shared)
        return together_finetune.JobSettings(
            interval,
            timeout,
            ft.resolution,
            ft.retention,
            ft.max_keys,
            ft.logged_at_overlap,
            scope=scope.of(labels),
            max_key_length=ft.max_key_length,
        )

    out: list[Target] = [
        together_finetune.JobTarget(api, job.id, job_settings(job, job.labels)) for job in ft.jobs
    ]
    if ft.discovery.enabled:
        interval, timeout = schedule(
            g, Schedule(poll_interval=ft.discovery.refresh_interval, timeout=ft.discovery.timeout)
        )
        settings = together_finetune.FineTuneDiscoverySettings(
            frozenset(ft.discovery.statuses),
            interval,
            timeout,
            jobs=job_settings(Schedule(), ft.discovery.labels),
            scope=scope.of(ft.discovery.labels),
            max_targets=ft.discovery.max_targets,
        )
        out.append(together_finetune.FineTuneDiscovery(api, settings))
    return out


def relays(g: GlobalConfig, acc: TogetherAccount, scope: AccountScope, clients: Clients) -> list[Target]:
    """The account's ``prometheus_endpoints``, each fetched with its key."""
    return [
        relay_target(NAME, g, e, e.name, AUTH_SCHEMES[e.auth], scope, clients)
        for e in acc.prometheus_endpoints
    ]
