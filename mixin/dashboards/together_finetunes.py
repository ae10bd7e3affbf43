"""Together fine-tunes: which jobs run, how far they got, and whether they still make progress."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as db

from mixin.config import MixinConfig
from mixin.dashboards.common import (
    SCOPE,
    Query,
    dashboard,
    query_variable,
    selector,
    standard_variables,
    stat_panel,
    table_panel,
    timeseries_panel,
)

UID = "inference-exporter-together-finetunes"
FILENAME = "together-finetunes.json"

INFO = "together_finetune_job_info"
STATUS = "together_finetune_job_status"
STEP_SEEN = "together_finetune_global_step_first_seen_timestamp_seconds"


def build(cfg: MixinConfig) -> db.Dashboard:
    sel = selector('job_id=~"$job_id"')
    info = f"{INFO}{sel}"
    variables = [
        *standard_variables(INFO),
        query_variable("job_id", "Fine-tune job", INFO, scope=SCOPE),
    ]
    stalled = cfg.finetune_stalled_seconds
    running = STATUS + selector('job_id=~"$job_id"', 'status="running"') + " == 1"
    current_status = f"{STATUS}{sel} == 1"
    loss = f"{cfg.finetune_loss_metric}{sel}"
    window = cfg.finetune_loss_divergence_window
    factor = cfg.finetune_loss_divergence_factor
    overview = [
        stat_panel(
            "Jobs running",
            "Selected fine-tune jobs whose Together status is running.",
            "short",
            Query(f"count({running}) or vector(0)"),
        ),
        stat_panel(
            "Jobs watched",
            "Fine-tune jobs the exporter follows (configured and discovered).",
            "short",
            Query(f"count({info})"),
        ),
        stat_panel(
            "Running jobs without a new step",
            f"Running jobs that logged no new step for {stalled}s: the TogetherFinetuneStalled condition.",
            "short",
            Query(
                f"count(time() - {STEP_SEEN}{sel} > {stalled} and ignoring (status) {running}) or vector(0)"
            ),
            red_at=1,
        ),
        stat_panel(
            "Jobs listed by Together",
            "Fine-tune jobs in the account's list (GET /fine-tunes), all statuses.",
            "short",
            Query(f"sum(together_finetune_listed_jobs{selector()})"),
        ),
    ]
    jobs = [
        table_panel(
            "Jobs",
            "Each watched job with its base model, output model name and Together status.",
            "none",
            f"{info} * on (job, instance, account, job_id) group_left (status) ({current_status})",
        ),
        timeseries_panel(
            "Jobs listed by status",
            "Fine-tune jobs in Together's list by status.",
            "short",
            [
                Query(
                    f"sum by (account, status) (together_finetune_listed_jobs{selector()})",
                    "{{account}} {{status}}",
                )
            ],
            stack=True,
        ),
        timeseries_panel(
            "Epoch progress",
            "Epochs completed as a share of the epochs the job was configured for.",
            "percentunit",
            [
                Query(
                    f"together_finetune_epochs_completed{sel} / together_finetune_epochs_configured{sel}",
                    "{{account}} {{job_id}}",
                )
            ],
        ),
    ]
    training = [
        timeseries_panel(
            "Global step",
            "Highest train/global_step the job has logged.",
            "short",
            [Query(f"together_finetune_global_step{sel}", "{{account}} {{job_id}}")],
        ),
        timeseries_panel(
            "Time since the last new step",
            f"How long ago the exporter first saw each job's current global step. The dashed line is the "
            f"TogetherFinetuneStalled threshold ({stalled}s); only running jobs alert.",
            "s",
            [Query(f"time() - {STEP_SEEN}{sel}", "{{account}} {{job_id}}")],
            threshold=stalled,
        ),
        timeseries_panel(
            "Loss",
            "Latest logged train/loss and eval/loss of each job.",
            "short",
            [
                Query(f"together_finetune_train_loss{sel}", "{{account}} {{job_id}} train"),
                Query(f"together_finetune_eval_loss{sel}", "{{account}} {{job_id}} eval"),
            ],
        ),
        timeseries_panel(
            "Loss against its recent minimum",
            f"Each job's latest {cfg.finetune_loss_metric} divided by its lowest value over the last {window}. "
            f"The dashed line is the TogetherFinetuneLossDiverged threshold ({factor:g}x); only running jobs "
            "alert. A loss that is not a finite number shows as a gap here and fires "
            "TogetherFinetuneLossNotFinite.",
            "short",
            [Query(f"{loss} / min_over_time({loss}[{window}])", "{{account}} {{job_id}}")],
            threshold=factor,
        ),
        timeseries_panel(
            "Learning rate",
            "Latest logged train/learning_rate of each job.",
            "sci",
            [Query(f"together_finetune_train_learning_rate{sel}", "{{account}} {{job_id}}")],
        ),
    ]
    return dashboard(
        UID,
        "Inference exporter / Together fine-tunes",
        "Together AI fine-tune jobs: status, progress and training curves, from inference-exporter.",
        variables,
        [("Overview", overview), ("Jobs", jobs), ("Training", training)],
    )
