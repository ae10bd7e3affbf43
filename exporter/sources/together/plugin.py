"""Together AI as a vendor of the exporter: its contract (``exporter.sources.contract``).

One ``together:`` section (``config``), whose accounts have queues, probes, fine-tune
jobs and relayed Prometheus endpoints (``build``); the families of each (declared in
``queue_translate``, ``probe_translate`` and ``finetune.names``; a relay's are the
vendor's).
"""

from __future__ import annotations

from collections.abc import Iterator

from exporter.sources.contract import Builder, FilterKind, Vendor
from exporter.sources.together import config, probe_translate, queue_translate
from exporter.sources.together.config import TogetherAccount, TogetherConfig
from exporter.sources.together.finetune import names as finetune_names

_QUEUE = tuple(f.name for f in queue_translate.FAMILIES)
_PROBE = tuple(f.name for f in probe_translate.FAMILIES)
# A logged key nearly every fine-tune job has: stands for the keys, unknown in advance.
_TYPICAL_KEY_FAMILY = finetune_names.metric_name("train/loss")
_JOB = (*sorted(finetune_names.FIXED_NAMES - {finetune_names.LISTED_JOBS.name}), _TYPICAL_KEY_FAMILY)
_JOB_LIST = (finetune_names.LISTED_JOBS.name,)


def filter_kinds(account: TogetherAccount) -> Iterator[FilterKind]:
    ft = account.fine_tunes
    if account.queues:
        yield FilterKind("queues", _QUEUE, _QUEUE)
    if account.probes:
        yield FilterKind("probes", _PROBE, _PROBE)
    if ft.jobs or ft.discovery.enabled:
        yield FilterKind("fine-tune jobs", _JOB, _JOB, open_prefix=finetune_names.PREFIX)
    if ft.discovery.enabled:
        yield FilterKind("fine-tune job list", _JOB_LIST, _JOB_LIST)
    for e in account.prometheus_endpoints:
        # A relay's families are the vendor's to name: any, after its prefix.
        yield FilterKind(f"relay {e.name}", (), (), open_prefix=e.metric_prefix)


def builders() -> tuple[Builder[TogetherAccount], ...]:
    from exporter.sources.together import build  # with the targets, and the network stack

    return (build.queues, build.probes, build.fine_tunes, build.relays)


def watches(account: TogetherAccount) -> bool:
    ft = account.fine_tunes
    return bool(
        account.queues or account.probes or ft.jobs or ft.discovery.enabled or account.prometheus_endpoints
    )


def namespaces(account: TogetherAccount) -> Iterator[str]:
    """Queues and probes write ``together_queue_*``, fine-tune jobs ``together_finetune_*``."""
    ft = account.fine_tunes
    if account.queues or account.probes:
        yield "together_queue_"
    if ft.jobs or ft.discovery.enabled:
        yield finetune_names.PREFIX


VENDOR = Vendor[TogetherAccount](
    name=config.NAME,
    section=TogetherConfig,
    watches=watches,
    builders=builders,
    families=(*queue_translate.FAMILIES, *probe_translate.FAMILIES, *finetune_names.FAMILIES),
    filter_kinds=filter_kinds,
    checks=(config.queue_duplicates, config.probe_problems, config.fine_tune_problems, config.relay_problems),
    # A logged key's family carries the job's id, as the fixed ones do.
    also_reserved=frozenset(finetune_names.key_family("train/loss").labels),
    pure_modules=(
        "exporter.sources.together.config",
        "exporter.sources.together.probe_config",
        "exporter.sources.together.queue_translate",
        "exporter.sources.together.probe_translate",
        "exporter.sources.together.finetune.config",
        "exporter.sources.together.finetune.names",
        "exporter.sources.together.finetune.translate",
        "exporter.sources.together.finetune.vendor",
    ),
    namespaces=namespaces,
)
