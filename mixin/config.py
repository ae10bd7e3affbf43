"""Every threshold and name the dashboards and alerts depend on, with its default.

Change a default here and run ``python -m mixin`` to regenerate the committed files, or
edit the number in ``prometheus/alerts.yaml`` directly if you only consume the rules.
docs/dashboards-and-alerts.md lists each field with its meaning.
"""

from __future__ import annotations

from dataclasses import dataclass

from exporter import __version__

# The documentation of this version: the tag it is released under (docs/development.md, "Releases").
DOCS_URL = f"https://github.com/inference-exporter/inference-exporter/blob/v{__version__}/docs"


@dataclass(frozen=True)
class MixinConfig:
    """Thresholds (``…_for`` fields are Prometheus durations an alert must hold before firing)."""

    # The Prometheus scrape job of the exporter: what the "exporter down/absent" alerts watch.
    exporter_job: str = "inference-exporter"
    # Where `runbook_url` annotations point; each alert appends `#<alertname lowercased>`.
    # By default the runbook released with this version; point it at your own copy
    # (`python -m mixin --set runbook_url=https://wiki.example/runbook`) to serve it yourself.
    runbook_url: str = f"{DOCS_URL}/runbook.md"

    # TogetherQueueDepthHigh: jobs waiting in one model's queue.
    queue_depth_high: int = 100
    queue_depth_high_for: str = "10m"
    # TogetherQueueBacklogGrowing: the trend over `backlog_window`, extrapolated
    # `backlog_horizon_seconds` ahead, crosses `queue_depth_high`.
    backlog_window: str = "30m"
    backlog_horizon_seconds: int = 3600
    backlog_growing_for: str = "15m"
    # ... for queues already holding at least this many waiting jobs: extrapolated an
    # hour ahead, a calm queue's every uptick crosses the threshold whenever the trend
    # is read from a short history (a new series, a restarted Prometheus).
    backlog_growing_min_waiting: int = 50
    # TogetherQueueStalled: jobs waiting while none runs.
    queue_stalled_for: str = "15m"

    # TogetherQueueProbeFailing: the synthetic probe's last job did not complete.
    probe_failing_for: str = "10m"
    # TogetherQueueProbeSlow: a probe job's end-to-end time (created → done).
    probe_slow_seconds: int = 300
    probe_slow_for: str = "15m"

    # TogetherFinetuneStalled: a running job logged no new step for this long.
    finetune_stalled_seconds: int = 1800
    finetune_stalled_for: str = "5m"
    # TogetherFinetuneLossNotFinite / TogetherFinetuneLossDiverged watch this logged key's gauge.
    finetune_loss_metric: str = "together_finetune_train_loss"
    # TogetherFinetuneLossNotFinite: a running job's latest loss is NaN or infinite (a skipped
    # mixed-precision step logs one now and then; this long is no longer a blip).
    finetune_loss_not_finite_for: str = "10m"
    # TogetherFinetuneLossDiverged: a running job's loss is more than `factor` times its
    # lowest value over `window`.
    finetune_loss_divergence_factor: float = 3.0
    finetune_loss_divergence_window: str = "1h"
    finetune_loss_diverged_for: str = "15m"
    # TogetherFinetuneFailed: a job's status is error.
    finetune_failed_for: str = "1m"

    # BasetenReplicasZeroWithDemand: no active replica while requests are in flight or queued.
    baseten_zero_replicas_for: str = "5m"
    # BasetenLatencyHigh: a quantile of end-to-end response time.
    baseten_latency_quantile: str = "0.95"
    baseten_latency_high_seconds: float = 5.0
    baseten_latency_high_for: str = "15m"

    # What the relay of Baseten's organisation endpoint prefixes to the vendor's names (its
    # `metric_prefix`): the Baseten platform dashboard and the availability objective read
    # `<prefix>baseten_inference_requests_total` and the other relayed families.
    baseten_relay_prefix: str = "relay_"

    # Service level objectives (mixin/slo.py): each objective is a ratio of good events, and
    # its error budget (1 - objective) is spent over `slo_period`. Burn-rate alerts page
    # after holding `slo_page_for` and open tickets after `slo_ticket_for`.
    slo_period: str = "30d"
    slo_page_for: str = "2m"
    slo_ticket_for: str = "15m"
    # Share of probe jobs that succeed.
    probe_success_objective: float = 0.99
    # Share of probe jobs claimed by a worker within `probe_wait_threshold_seconds` of
    # submission. The threshold must be one of the probes' bucket bounds and below
    # their timeout (a job that outwaits the probe counts as waiting about the timeout).
    probe_wait_objective: float = 0.95
    probe_wait_threshold_seconds: float = 30.0
    # Share of a Baseten deployment's requests not answered with a 5xx.
    baseten_availability_objective: float = 0.99
    # Share of time a Baseten deployment's `baseten_latency_slo_quantile` of end-to-end
    # response time stays at or below `baseten_latency_slo_seconds`.
    baseten_latency_objective: float = 0.99
    baseten_latency_slo_quantile: str = "0.95"
    baseten_latency_slo_seconds: float = 5.0

    # InferenceExporterTargetDown: a vendor target's polls keep failing.
    target_down_for: str = "10m"
    # InferenceExporterDown / InferenceExporterAbsent: Prometheus cannot scrape the exporter / has no such job.
    exporter_down_for: str = "5m"
    exporter_absent_for: str = "15m"
    # InferenceExporterConfigReloadFailed: the running config is not the file on disk.
    config_reload_failed_for: str = "10m"

    def __post_init__(self) -> None:
        for name in ("probe_success", "probe_wait", "baseten_availability", "baseten_latency"):
            objective = getattr(self, f"{name}_objective")
            if not 0 < objective < 1:
                raise ValueError(f"{name}_objective must be between 0 and 1 (exclusive), got {objective}")


DEFAULT = MixinConfig()
