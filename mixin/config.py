"""Every threshold and name the dashboards and alerts depend on, with its default.

Change a default here and run ``python -m mixin`` to regenerate the committed files, or
edit the number in ``prometheus/alerts.yaml`` directly if you only consume the rules.
The README's "Dashboards and alerts" section lists each field with its meaning.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MixinConfig:
    """Thresholds (``…_for`` fields are Prometheus durations an alert must hold before firing)."""

    # The Prometheus scrape job of the exporter: what the "exporter down/absent" alerts watch.
    exporter_job: str = "inference-exporter"
    # Where `runbook_url` annotations point; each alert appends `#<alertname lowercased>`.
    runbook_url: str = "https://github.com/inference-exporter/inference-exporter/blob/main/docs/runbook.md"

    # TogetherQueueDepthHigh: jobs waiting in one model's queue.
    queue_depth_high: int = 100
    queue_depth_high_for: str = "10m"
    # TogetherQueueBacklogGrowing: the trend over `backlog_window`, extrapolated
    # `backlog_horizon_seconds` ahead, crosses `queue_depth_high`.
    backlog_window: str = "30m"
    backlog_horizon_seconds: int = 3600
    backlog_growing_for: str = "15m"
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

    # BasetenReplicasZeroWithDemand: no active replica while requests are in flight or queued.
    baseten_zero_replicas_for: str = "5m"
    # BasetenLatencyHigh: a quantile of end-to-end response time.
    baseten_latency_quantile: str = "0.95"
    baseten_latency_high_seconds: float = 5.0
    baseten_latency_high_for: str = "15m"

    # InferenceExporterTargetDown: a vendor target's polls keep failing.
    target_down_for: str = "10m"
    # InferenceExporterDown / InferenceExporterAbsent: Prometheus cannot scrape the exporter / has no such job.
    exporter_down_for: str = "5m"
    exporter_absent_for: str = "15m"
    # InferenceExporterConfigReloadFailed: the running config is not the file on disk.
    config_reload_failed_for: str = "10m"


DEFAULT = MixinConfig()
