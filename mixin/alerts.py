"""Prometheus alert rules, in the style of the node and kubernetes mixins.

Every alert has a CamelCase name, a ``severity`` label, a fixed ``summary`` (the same
text every time, so notifications group; an alert on an account's series names the
account there, and only that), a ``description`` templated with the labels and value
that explain *this* firing, and a ``runbook_url`` into ``docs/runbook.md``. Every
expression keeps the ``account`` label, and joins match on it, so two accounts
watching the same model or deployment never mix.
Descriptions use ``%(name)s`` placeholders for thresholds; ``{{ }}`` is Prometheus's.
"""

from __future__ import annotations

from dataclasses import dataclass

import yaml

from mixin.config import MixinConfig

# The end of the summary of an alert on an account's series.
ACCOUNT = " (account {{ $labels.account }})."


@dataclass(frozen=True)
class Alert:
    name: str
    expr: str
    for_: str
    severity: str
    summary: str
    description: str


@dataclass(frozen=True)
class Group:
    name: str
    alerts: list[Alert]


def together_queue(cfg: MixinConfig) -> Group:
    waiting = "together_queue_jobs_waiting"
    high = cfg.queue_depth_high
    return Group(
        "inference-exporter-together-queue",
        [
            Alert(
                "TogetherQueueDepthHigh",
                f"{waiting} > {high}",
                cfg.queue_depth_high_for,
                "critical",
                "Jobs are piling up in a Together queue" + ACCOUNT,
                "{{ $value }} jobs are waiting in the queue of model {{ $labels.model }} "
                f"(threshold {high}, for {cfg.queue_depth_high_for}).",
            ),
            Alert(
                "TogetherQueueBacklogGrowing",
                f"predict_linear({waiting}[{cfg.backlog_window}], {cfg.backlog_horizon_seconds}) > {high}"
                f" and deriv({waiting}[{cfg.backlog_window}]) > 0"
                f" and {waiting} >= {cfg.backlog_growing_min_waiting}",
                cfg.backlog_growing_for,
                "warning",
                "A Together queue's backlog is growing towards the depth threshold" + ACCOUNT,
                "At the trend of the last "
                f"{cfg.backlog_window}, the queue of model {{{{ $labels.model }}}}, already holding "
                f"{cfg.backlog_growing_min_waiting} or more waiting jobs, will hold more than {high} "
                f"within {cfg.backlog_horizon_seconds}s "
                "(predicted {{ $value | humanize }}).",
            ),
            Alert(
                "TogetherQueueStalled",
                f"{waiting} > 0 and together_queue_jobs_running == 0",
                cfg.queue_stalled_for,
                "warning",
                "A Together queue has waiting jobs but none running" + ACCOUNT,
                "{{ $value }} jobs are waiting in the queue of model {{ $labels.model }} and none has "
                f"been running for {cfg.queue_stalled_for}.",
            ),
        ],
    )


def together_probe(cfg: MixinConfig) -> Group:
    return Group(
        "inference-exporter-together-probe",
        [
            Alert(
                "TogetherQueueProbeFailing",
                "together_queue_probe_success == 0",
                cfg.probe_failing_for,
                "critical",
                "The synthetic probe of a Together queue is failing" + ACCOUNT,
                "Probe jobs submitted to model {{ $labels.model }} have not completed for "
                f"{cfg.probe_failing_for}; see together_queue_probes_total for the reason.",
            ),
            Alert(
                "TogetherQueueProbeSlow",
                f'together_queue_probe_duration_seconds{{phase="end_to_end"}} > {cfg.probe_slow_seconds}',
                cfg.probe_slow_for,
                "warning",
                "Synthetic probe jobs take long to complete on a Together queue" + ACCOUNT,
                "The last probe job on model {{ $labels.model }} took {{ $value | humanizeDuration }} from "
                f"submission to completion (threshold {cfg.probe_slow_seconds}s, for {cfg.probe_slow_for}).",
            ),
        ],
    )


# A fine-tune job whose Together status is running right now; ``and ignoring (status)`` with
# it keeps the series of running jobs whatever other labels they carry.
RUNNING_JOB = 'together_finetune_job_status{status="running"} == 1'


def together_finetune(cfg: MixinConfig) -> Group:
    loss = cfg.finetune_loss_metric
    factor = f"{cfg.finetune_loss_divergence_factor:g}"
    window = cfg.finetune_loss_divergence_window
    return Group(
        "inference-exporter-together-finetune",
        [
            Alert(
                "TogetherFinetuneStalled",
                "time() - together_finetune_global_step_first_seen_timestamp_seconds"
                f" > {cfg.finetune_stalled_seconds}"
                f" and ignoring (status) {RUNNING_JOB}",
                cfg.finetune_stalled_for,
                "warning",
                "A running Together fine-tune has stopped logging training steps" + ACCOUNT,
                "Fine-tune {{ $labels.job_id }} is running but logged no new step for "
                "{{ $value | humanizeDuration }} "
                f"(threshold {cfg.finetune_stalled_seconds}s).",
            ),
            Alert(
                "TogetherFinetuneLossNotFinite",
                f"({loss} != {loss} or abs({loss}) == Inf) and ignoring (status) {RUNNING_JOB}",
                cfg.finetune_loss_not_finite_for,
                "warning",
                "A running Together fine-tune logs a loss that is not a finite number" + ACCOUNT,
                f"The latest {loss} of running fine-tune {{{{ $labels.job_id }}}} has been {{{{ $value }}}} "
                f"for {cfg.finetune_loss_not_finite_for}: training has most likely diverged.",
            ),
            Alert(
                "TogetherFinetuneLossDiverged",
                f"{loss} > {factor} * (min_over_time({loss}[{window}]) > 0)"
                f" and ignoring (status) {RUNNING_JOB}",
                cfg.finetune_loss_diverged_for,
                "warning",
                "A running Together fine-tune's loss has risen far above its recent minimum" + ACCOUNT,
                f"The latest {loss} of running fine-tune {{{{ $labels.job_id }}}} is {{{{ $value }}}}, more "
                f"than {factor} times its lowest value over the last {window}, for "
                f"{cfg.finetune_loss_diverged_for}.",
            ),
            Alert(
                "TogetherFinetuneFailed",
                'together_finetune_job_status{status="error"} == 1',
                cfg.finetune_failed_for,
                "warning",
                "A Together fine-tune job failed" + ACCOUNT,
                "Fine-tune {{ $labels.job_id }} ended with status error; its series stay for the "
                "exporter's fine-tune retention.",
            ),
        ],
    )


def baseten(cfg: MixinConfig) -> Group:
    q = cfg.baseten_latency_quantile
    return Group(
        "inference-exporter-baseten",
        [
            Alert(
                "BasetenReplicasZeroWithDemand",
                "baseten_replicas_active == 0"
                " and on (job, instance, account, model_id, deployment_id)"
                " (baseten_concurrent_requests > 0 or baseten_async_queue_size > 0)",
                cfg.baseten_zero_replicas_for,
                "critical",
                "A Baseten deployment has requests but no active replica" + ACCOUNT,
                "Deployment {{ $labels.deployment_id }} of model {{ $labels.model_id }} has had no active "
                f"replica for {cfg.baseten_zero_replicas_for} while requests are in flight or queued.",
            ),
            Alert(
                "BasetenLatencyHigh",
                f'baseten_end_to_end_response_time_seconds{{quantile="{q}"}} > {cfg.baseten_latency_high_seconds:g}',
                cfg.baseten_latency_high_for,
                "warning",
                "A Baseten deployment responds slowly" + ACCOUNT,
                f"The p{float(q) * 100:g} end-to-end response time of deployment {{{{ $labels.deployment_id }}}} "
                "of model {{ $labels.model_id }} is {{ $value | humanizeDuration }} "
                f"(threshold {cfg.baseten_latency_high_seconds:g}s, for {cfg.baseten_latency_high_for}).",
            ),
        ],
    )


def exporter(cfg: MixinConfig) -> Group:
    job = cfg.exporter_job
    return Group(
        "inference-exporter",
        [
            Alert(
                "InferenceExporterTargetDown",
                "inference_exporter_target_up == 0",
                cfg.target_down_for,
                "warning",
                "The exporter cannot poll a vendor target" + ACCOUNT,
                "Polls of {{ $labels.target }} on {{ $labels.instance }} have failed for "
                f"{cfg.target_down_for}; the reason is in inference_exporter_target_error_info.",
            ),
            Alert(
                "InferenceExporterDown",
                f'up{{job="{job}"}} == 0',
                cfg.exporter_down_for,
                "critical",
                "Prometheus cannot scrape the inference exporter.",
                "The scrape of {{ $labels.instance }} (job {{ $labels.job }}) has failed for "
                f"{cfg.exporter_down_for}.",
            ),
            Alert(
                "InferenceExporterAbsent",
                f'absent(up{{job="{job}"}})',
                cfg.exporter_absent_for,
                "critical",
                "The inference exporter has disappeared from Prometheus's targets.",
                'No target of job "{{ $labels.job }}" has been scraped for '
                f"{cfg.exporter_absent_for}: check service discovery and the scrape config.",
            ),
            Alert(
                "InferenceExporterConfigReloadFailed",
                "inference_exporter_config_last_reload_successful == 0",
                cfg.config_reload_failed_for,
                "warning",
                "The inference exporter failed to reload its configuration.",
                "The last config reload of {{ $labels.instance }} failed "
                f"{cfg.config_reload_failed_for} ago or more; it still runs the previous config.",
            ),
        ],
    )


GROUPS = [together_queue, together_probe, together_finetune, baseten, exporter]


def groups(cfg: MixinConfig) -> list[Group]:
    return [make(cfg) for make in GROUPS]


def alert_rule(cfg: MixinConfig, a: Alert) -> dict[str, object]:
    """One alerting rule as Prometheus reads it."""
    return {
        "alert": a.name,
        "expr": a.expr,
        "for": a.for_,
        "labels": {"severity": a.severity},
        "annotations": {
            "summary": a.summary,
            "description": a.description,
            "runbook_url": f"{cfg.runbook_url}#{a.name.lower()}",
        },
    }


def rule_file(cfg: MixinConfig) -> dict[str, object]:
    """The rule file as data: what ``promtool`` and Prometheus read."""
    return {
        "groups": [{"name": g.name, "rules": [alert_rule(cfg, a) for a in g.alerts]} for g in groups(cfg)]
    }


HEADER = """\
# Alert rules for inference-exporter. Generated by `python -m mixin` from mixin/alerts.py;
# thresholds come from mixin/config.py (listed in docs/dashboards-and-alerts.md).
# Editing a number here works too, but the next regeneration overwrites it.
"""


def render(cfg: MixinConfig) -> str:
    body = yaml.safe_dump(rule_file(cfg), sort_keys=False, width=1000, allow_unicode=True)
    return HEADER + body
