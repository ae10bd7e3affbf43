"""Together queues: how many jobs wait and run per model, where the backlog is heading, and
what the synthetic probe (a real job sent through the queue) experiences."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.models import dashboard as dm

from mixin.config import MixinConfig
from mixin.dashboards.common import (
    SCOPE,
    Query,
    dashboard,
    query_variable,
    selector,
    standard_variables,
    stat_panel,
    timeseries_panel,
)

UID = "inference-exporter-together-queues"
FILENAME = "together-queues.json"

WAITING = "together_queue_jobs_waiting"
RUNNING = "together_queue_jobs_running"


def probe_row(cfg: MixinConfig) -> list[cogbuilder.Builder[dm.Panel]]:
    """The synthetic probe (blackbox style): does a real job go through the queue, and how fast."""
    sel = selector('model=~"$model"')
    slow = cfg.probe_slow_seconds
    return [
        timeseries_panel(
            "Probe success",
            "1 if the last probe job completed within the probe timeout, else 0. "
            f"TogetherQueueProbeFailing fires after {cfg.probe_failing_for} at 0.",
            "short",
            [Query(f"together_queue_probe_success{sel}", "{{account}} {{model}}")],
        ),
        timeseries_panel(
            "Probe duration by phase",
            "Phases of the last probe job from Together's timestamps: queue_wait (created to claimed), "
            f"run (claimed to done), end_to_end. The dashed line is the TogetherQueueProbeSlow threshold ({slow}s).",
            "s",
            [Query(f"together_queue_probe_duration_seconds{sel}", "{{account}} {{model}} {{phase}}")],
            threshold=slow,
        ),
        timeseries_panel(
            "Probes by result",
            "Probes finished per interval by result: success, or the reason the probe failed.",
            "short",
            [
                Query(
                    f"sum by (account, model, result) (increase(together_queue_probes_total{sel}[$__rate_interval]))",
                    "{{account}} {{model}}: {{result}}",
                )
            ],
            stack=True,
        ),
        timeseries_panel(
            "Time since the last successful probe",
            "Age of the last probe job that completed successfully (its vendor done_at).",
            "s",
            [
                Query(
                    f"time() - together_queue_probe_last_completed_timestamp_seconds{sel}",
                    "{{account}} {{model}}",
                )
            ],
        ),
    ]


def build(cfg: MixinConfig) -> db.Dashboard:
    sel = selector('model=~"$model"')
    waiting = f"{WAITING}{sel}"
    running = f"{RUNNING}{sel}"
    high = cfg.queue_depth_high
    window = cfg.backlog_window
    horizon = cfg.backlog_horizon_seconds
    queue_target = selector('source="together_queue"', 'target=~"together_queue(@[^/]+)?/($model)"')
    variables = [
        *standard_variables(WAITING),
        query_variable("model", "Model", WAITING, scope=SCOPE),
    ]
    overview = [
        stat_panel(
            "Jobs waiting",
            "Jobs waiting across the selected models' queues (Together messages_waiting, summed).",
            "short",
            Query(f"sum({waiting})"),
        ),
        stat_panel(
            "Jobs running",
            "Jobs running across the selected models (Together messages_running, summed).",
            "short",
            Query(f"sum({running})"),
        ),
        stat_panel(
            "Queues above threshold",
            f"Models with more than {high} jobs waiting: the TogetherQueueDepthHigh alert's condition "
            "(before its `for` duration).",
            "short",
            Query(f"count({waiting} > {high}) or vector(0)"),
            red_at=1,
        ),
        stat_panel(
            "Queue targets down",
            "Selected models whose last queue poll failed; their depths are missing or stale.",
            "short",
            Query(f"sum(1 - inference_exporter_target_up{queue_target})"),
            red_at=1,
        ),
    ]
    depth = [
        timeseries_panel(
            "Jobs waiting by model",
            f"Jobs waiting per model. The dashed line is the TogetherQueueDepthHigh threshold ({high}).",
            "short",
            [Query(f"sum by (account, model) ({waiting})", "{{account}} {{model}}")],
            threshold=high,
        ),
        timeseries_panel(
            "Jobs running by model",
            "Jobs being processed per model. Waiting jobs with nothing running is a stalled queue.",
            "short",
            [Query(f"sum by (account, model) ({running})", "{{account}} {{model}}")],
        ),
        timeseries_panel(
            "Queue depth (waiting + running) by model",
            "All jobs in each model's queue, stacked, so the total is the height of the stack.",
            "short",
            [
                Query(
                    f"sum by (account, model) ({waiting}) + sum by (account, model) ({running})",
                    "{{account}} {{model}}",
                )
            ],
            stack=True,
        ),
        timeseries_panel(
            "Waiting per running job",
            "Jobs waiting for each job running: roughly how many service rounds a new job waits.",
            "short",
            [
                Query(
                    f"sum by (account, model) ({waiting}) / sum by (account, model) ({running})",
                    "{{account}} {{model}}",
                )
            ],
        ),
    ]
    trend = [
        timeseries_panel(
            "Backlog growth",
            f"Change of jobs waiting per second, fitted over {window} (PromQL deriv). "
            "Positive means the backlog grows.",
            "short",
            [Query(f"sum by (account, model) (deriv({waiting}[{window}]))", "{{account}} {{model}}")],
            min_zero=False,
        ),
        timeseries_panel(
            "Predicted jobs waiting",
            f"Jobs waiting {horizon}s from now if the trend of the last {window} holds "
            f"(predict_linear). The TogetherQueueBacklogGrowing alert fires above {high}.",
            "short",
            [
                Query(
                    f"clamp_min(sum by (account, model) (predict_linear({waiting}[{window}], {horizon})), 0)",
                    "{{account}} {{model}}",
                )
            ],
            threshold=high,
        ),
    ]
    return dashboard(
        UID,
        "Inference exporter / Together queues",
        "Together AI queue depths per model, from inference-exporter.",
        variables,
        [("Overview", overview), ("Depth", depth), ("Trend", trend), ("Synthetic probe", probe_row(cfg))],
    )
