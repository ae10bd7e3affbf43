"""The relays' self-metrics: how old the body each relay serves is, how often it served a
held body, and what its bodies left out.

They are read from the running relay targets when the exporter's registry is collected
(a prometheus_client collector, like the process collector): a relay's series come and
go with its target, and its running totals live on the target (``RelayCounts``), so a
reload that keeps the target keeps them and one that replaces it starts them again
(a counter reset, which ``rate()`` takes in its stride). Every family is listed, with
no series, while no relay runs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from exporter.sources.base import Target
from exporter.sources.relay.target import RelayTarget

LABELS = ("target", "source", "account")
# What a body's samples were left out for (the ``reason`` label), with the counts' fields.
LEFT_OUT = (
    ("duplicate", "duplicates"),
    ("reserved_namespace", "reserved"),
    ("too_long", "too_long"),
)


class RelayCollector(Collector):
    """The self-metrics of the relays among ``targets()`` (every target of this shard)."""

    def __init__(self, targets: Callable[[], Iterable[Target]]) -> None:
        self._targets = targets

    def collect(self) -> Iterator[Metric]:
        fetched = GaugeMetricFamily(
            "inference_exporter_relay_body_fetch_timestamp_seconds",
            "Unix time at which the body a relay serves was fetched from the vendor "
            "(time() minus it is the body's age); absent while it holds none.",
            labels=LABELS,
        )
        stale_after = GaugeMetricFamily(
            "inference_exporter_relay_stale_after_seconds",
            "A relay's stale_after: how old its body may get while the vendor rate-limits "
            "before it is dropped.",
            labels=LABELS,
        )
        held = CounterMetricFamily(
            "inference_exporter_relay_held_polls",
            "Polls of a relay that served its last good body because the vendor rate-limited "
            "(429) or the account's request budget had no slot.",
            labels=LABELS,
        )
        left_out = CounterMetricFamily(
            "inference_exporter_relay_samples_left_out",
            "Samples of a relayed body left out, by reason: duplicate (a series written twice), "
            "reserved_namespace (a family named in a native source's namespace), too_long "
            "(a name or label past max_label_value_length).",
            labels=(*LABELS, "reason"),
        )
        timestamps = CounterMetricFamily(
            "inference_exporter_relay_timestamps_dropped",
            "Samples of a relayed body whose timestamp was dropped (the sample is kept).",
            labels=LABELS,
        )
        for target in self._targets():
            if not isinstance(target, RelayTarget):
                continue
            ids = [target.id, target.source, target.account]
            counts = target.counts
            if target.body_fetched_at is not None:
                fetched.add_metric(ids, target.body_fetched_at)
            stale_after.add_metric(ids, target.settings.stale_after)
            held.add_metric(ids, counts.held)
            for reason, attr in LEFT_OUT:
                left_out.add_metric([*ids, reason], getattr(counts, attr))
            timestamps.add_metric(ids, counts.timestamps)
        yield from (fetched, stale_after, held, left_out, timestamps)
