"""Exporter health: is every vendor target polled, how long polls take, why they fail."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as db

from mixin.config import MixinConfig
from mixin.dashboards.common import (
    SCOPE,
    Query,
    dashboard,
    exporter_selector,
    query_variable,
    selector,
    standard_variables,
    stat_panel,
    timeseries_panel,
)

UID = "inference-exporter-health"
FILENAME = "exporter-health.json"

ANCHOR = "inference_exporter_build_info"


def build(cfg: MixinConfig) -> db.Dashboard:
    base = exporter_selector()
    accounts = selector()
    tsel = selector('source=~"$source"')
    variables = [
        *standard_variables(ANCHOR, "inference_exporter_target_up"),
        query_variable("source", "Source", "inference_exporter_target_up", scope=SCOPE),
    ]
    failed = selector('source=~"$source"', 'result!="success"')
    non_2xx = selector('source=~"$source"', 'code!~"2.."')
    rate_polls = f"rate(inference_exporter_target_polls_total{tsel}[$__rate_interval])"
    requests = f"inference_exporter_upstream_requests_total{tsel}"
    overview = [
        stat_panel(
            "Targets up",
            "Targets whose last poll succeeded.",
            "short",
            Query(f"sum(inference_exporter_target_up{tsel})"),
        ),
        stat_panel(
            "Targets down",
            f"Targets whose last poll failed; InferenceExporterTargetDown fires after {cfg.target_down_for}.",
            "short",
            Query(f"sum(1 - inference_exporter_target_up{tsel})"),
            red_at=1,
        ),
        stat_panel(
            "Config reload",
            "1 if the last config (re)load succeeded; 0 means the exporter still runs an older config.",
            "bool_yes_no",
            Query(f"min(inference_exporter_config_last_reload_successful{base})"),
        ),
        stat_panel(
            "Series exported",
            "Series contributed by the selected targets, excluding their health series.",
            "short",
            Query(f"sum(inference_exporter_target_series{tsel})"),
        ),
    ]
    targets = [
        timeseries_panel(
            "Target up",
            "1 while a target's last poll succeeded, 0 while it fails.",
            "short",
            [Query(f"inference_exporter_target_up{tsel}", "{{target}}")],
        ),
        timeseries_panel(
            "Targets failing by reason",
            "Targets currently down, by the reason of their last failed poll.",
            "short",
            [
                Query(
                    f"count by (account, source, reason) (inference_exporter_target_error_info{tsel})",
                    "{{account}} {{source}}: {{reason}}",
                )
            ],
            stack=True,
        ),
        timeseries_panel(
            "Poll duration",
            "Wall time of each target's last poll, vendor round trips included.",
            "s",
            [Query(f"inference_exporter_target_poll_duration_seconds{tsel}", "{{target}}")],
        ),
        timeseries_panel(
            "Time since last successful poll",
            "Age of each target's data. It grows while polls fail; series vanish after the stale grace.",
            "s",
            [
                Query(
                    f"time() - (inference_exporter_target_last_success_timestamp_seconds{tsel} > 0)",
                    "{{target}}",
                )
            ],
        ),
    ]
    targets.append(
        timeseries_panel(
            "Targets per replica",
            "Targets each exporter process polls. With --total-shards, each replica polls only its "
            "share, and the replicas' counts add up to all targets.",
            "short",
            [Query(f"inference_exporter_shard_targets{base}", "{{instance}}")],
            stack=True,
            width=24,
        )
    )
    polls = [
        timeseries_panel(
            "Polls by result",
            "Polls per second by source and result (success, or the failure reason).",
            "ops",
            [Query(f"sum by (account, source, result) ({rate_polls})", "{{account}} {{source}}: {{result}}")],
            stack=True,
        ),
        timeseries_panel(
            "Errors by reason",
            "Failed polls per second by source and reason.",
            "ops",
            [
                Query(
                    "sum by (account, source, result) (rate(inference_exporter_target_polls_total"
                    f"{failed}[$__rate_interval]))",
                    "{{account}} {{source}}: {{result}}",
                )
            ],
            stack=True,
        ),
        timeseries_panel(
            "Upstream requests by status",
            "Vendor API requests per second by source, endpoint template and HTTP status "
            "(timeout or error when there was no response).",
            "reqps",
            [
                Query(
                    f"sum by (account, source, endpoint, code) (rate({requests}[$__rate_interval]))",
                    "{{account}} {{source}} {{endpoint}} {{code}}",
                )
            ],
            stack=True,
        ),
        timeseries_panel(
            "Upstream error ratio",
            "Share of vendor API requests per source that did not return 2xx.",
            "percentunit",
            [
                Query(
                    "sum by (account, source) (rate(inference_exporter_upstream_requests_total"
                    f"{non_2xx}[$__rate_interval]))"
                    f" / sum by (account, source) (rate({requests}[$__rate_interval]))",
                    "{{account}} {{source}}",
                )
            ],
        ),
    ]
    polls += [
        timeseries_panel(
            "Upstream retries",
            "Vendor requests retried per second (after a timeout, connection error, 5xx or 429), "
            "by source and endpoint.",
            "ops",
            [
                Query(
                    "sum by (account, source, endpoint) "
                    f"(rate(inference_exporter_upstream_retries_total{tsel}[$__rate_interval]))",
                    "{{account}} {{source}} {{endpoint}}",
                )
            ],
            stack=True,
        ),
        timeseries_panel(
            "Request budget: waiting",
            "Seconds per second that requests spent waiting for a slot in each vendor's request "
            "budget. Sustained waiting means the budget, not the vendor, limits polling.",
            "s",
            [
                Query(
                    "sum by (vendor, account) "
                    f"(rate(inference_exporter_upstream_budget_wait_seconds_total{accounts}[$__rate_interval]))",
                    "{{vendor}} {{account}}",
                )
            ],
        ),
        timeseries_panel(
            "Request budget: refusals",
            "Requests per second not sent because no budget slot freed up before the poll's deadline.",
            "ops",
            [
                Query(
                    "sum by (vendor, account) "
                    f"(rate(inference_exporter_upstream_budget_refusals_total{accounts}[$__rate_interval]))",
                    "{{vendor}} {{account}}",
                )
            ],
        ),
        timeseries_panel(
            "Vendor rate-limit headroom",
            "Share of the vendor's rate-limit window still free, as the vendor last answered "
            "(x-ratelimit-remaining / x-ratelimit-limit), by account and endpoint. Near 0, the next "
            "requests get 429: lower requests_per_second or lengthen poll intervals. Only vendors "
            "that send these headers (Together) appear.",
            "percentunit",
            [
                Query(
                    "min by (account, source, endpoint) "
                    f"(inference_exporter_upstream_ratelimit_remaining{tsel}"
                    f" / inference_exporter_upstream_ratelimit_limit{tsel})",
                    "{{account}} {{source}} {{endpoint}}",
                )
            ],
        ),
    ]
    process = [
        timeseries_panel(
            "Scrape duration",
            "How long Prometheus takes to scrape the exporter; /metrics serves cached bytes, so this stays low.",
            "s",
            [Query(f"scrape_duration_seconds{base}", "{{instance}}")],
        ),
        timeseries_panel(
            "CPU",
            "CPU seconds the exporter process uses per second.",
            "percentunit",
            [Query(f"rate(process_cpu_seconds_total{base}[$__rate_interval])", "{{instance}}")],
        ),
        timeseries_panel(
            "Resident memory",
            "Resident memory of the exporter process.",
            "bytes",
            [Query(f"process_resident_memory_bytes{base}", "{{instance}}")],
        ),
        timeseries_panel(
            "Asyncio tasks",
            "Asyncio tasks alive in the exporter process; flat in a healthy daemon, a steady climb is a leak.",
            "short",
            [Query(f"inference_exporter_asyncio_tasks{base}", "{{instance}}")],
        ),
        timeseries_panel(
            "Build",
            "Version of each running exporter (value is always 1; the legend carries the version).",
            "short",
            [
                Query(
                    f"inference_exporter_build_info{base}",
                    "{{instance}} {{version}} (Python {{python_version}})",
                )
            ],
        ),
    ]
    return dashboard(
        UID,
        "Inference exporter / Exporter health",
        "The exporter's own health: targets up, poll durations, errors by reason, upstream request rates.",
        variables,
        [("Overview", overview), ("Targets", targets), ("Polls and requests", polls), ("Process", process)],
    )
