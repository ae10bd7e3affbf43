"""Baseten deployments: replicas against demand, traffic, latency and resources per deployment."""

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

UID = "inference-exporter-baseten"
FILENAME = "baseten-deployments.json"

INFO = "baseten_deployment_info"
STATUS = "baseten_deployment_status"
BY = "account, model_id, deployment_id"
LEGEND = "{{account}} {{model_id}}/{{deployment_id}}"


def build(cfg: MixinConfig) -> db.Dashboard:
    sel = selector('model_id=~"$model_id"', 'deployment_id=~"$deployment_id"')
    scope = SCOPE
    variables = [
        *standard_variables(INFO),
        query_variable("model_id", "Model", INFO, scope=scope),
        query_variable("deployment_id", "Deployment", INFO, scope=[*scope, 'model_id=~"$model_id"']),
    ]
    q = cfg.baseten_latency_quantile
    ids = ('model_id=~"$model_id"', 'deployment_id=~"$deployment_id"')
    five_xx = selector(*ids, 'status="5xx"')
    at_quantile = selector(*ids, f'quantile="{q}"')
    requests = f"rate(baseten_inference_requests_total{sel}[$__rate_interval])"
    overview = [
        stat_panel(
            "Deployments",
            "Deployments the exporter watches (configured and discovered).",
            "short",
            Query(f"count({INFO}{sel})"),
        ),
        stat_panel(
            "Active replicas",
            "Replicas serving across the selected deployments (baseten_replicas_active).",
            "short",
            Query(f"sum(baseten_replicas_active{sel})"),
        ),
        stat_panel(
            "Requests per second",
            "Inference requests per second across the selected deployments, all status classes.",
            "reqps",
            Query(f"sum({requests})"),
        ),
        stat_panel(
            "Deployments at zero with demand",
            "Deployments with no active replica while requests are in flight or queued: the "
            "BasetenReplicasZeroWithDemand condition.",
            "short",
            Query(
                f"count(baseten_replicas_active{sel} == 0 and on (job, instance, {BY})"
                f" (baseten_concurrent_requests{sel} > 0 or baseten_async_queue_size{sel} > 0)) or vector(0)"
            ),
            red_at=1,
        ),
    ]
    deployments = [
        table_panel(
            "Deployments",
            "Each watched deployment with its model and deployment names, environment and status.",
            "none",
            f"{INFO}{sel} * on (job, instance, {BY}) group_left (status) ({STATUS}{sel} == 1)",
        ),
    ]
    capacity = [
        timeseries_panel(
            "Active replicas",
            "Replicas serving requests, per deployment.",
            "short",
            [Query(f"sum by ({BY}) (baseten_replicas_active{sel})", LEGEND)],
        ),
        timeseries_panel(
            "Starting replicas",
            "Replicas being started (scale-up or cold start), per deployment.",
            "short",
            [Query(f"sum by ({BY}) (baseten_replicas_starting{sel})", LEGEND)],
        ),
        timeseries_panel(
            "Concurrent requests",
            "Requests in flight, per deployment: demand the active replicas must serve.",
            "short",
            [Query(f"sum by ({BY}) (baseten_concurrent_requests{sel})", LEGEND)],
        ),
        timeseries_panel(
            "Async queue size",
            "Asynchronous requests waiting, per deployment.",
            "short",
            [Query(f"sum by ({BY}) (baseten_async_queue_size{sel})", LEGEND)],
        ),
    ]
    traffic = [
        timeseries_panel(
            "Requests by status",
            "Inference requests per second by deployment and status class. Baseten reports with a "
            "1-3 minute delay; the exporter adds each settled step once.",
            "reqps",
            [Query(f"sum by ({BY}, status) ({requests})", LEGEND + " {{status}}")],
            stack=True,
        ),
        timeseries_panel(
            "Error ratio (5xx)",
            "Share of requests answered with a 5xx status, per deployment.",
            "percentunit",
            [
                Query(
                    f"sum by ({BY}) (rate(baseten_inference_requests_total"
                    f"{five_xx}"
                    f"[$__rate_interval])) / sum by ({BY}) ({requests})",
                    LEGEND,
                )
            ],
        ),
        timeseries_panel(
            f"End-to-end response time (p{float(q) * 100:g})",
            f"The {q} quantile of end-to-end response time per deployment. The dashed line is the "
            f"BasetenLatencyHigh threshold ({cfg.baseten_latency_high_seconds:g}s).",
            "s",
            [
                Query(
                    f"max by ({BY}) (baseten_end_to_end_response_time_seconds{at_quantile})",
                    LEGEND,
                )
            ],
            threshold=cfg.baseten_latency_high_seconds,
        ),
        timeseries_panel(
            "Response time quantiles",
            "Quantiles of end-to-end response time and of time to first byte, per deployment.",
            "s",
            [
                Query(f"baseten_end_to_end_response_time_seconds{sel}", LEGEND + " end-to-end p{{quantile}}"),
                Query(f"baseten_time_to_first_byte_seconds{sel}", LEGEND + " first byte p{{quantile}}"),
            ],
        ),
        timeseries_panel(
            "Time in async queue",
            "Quantiles of the time asynchronous requests wait before a replica takes them.",
            "s",
            [Query(f"baseten_time_in_async_queue_seconds{sel}", LEGEND + " p{{quantile}}")],
        ),
    ]
    resources = [
        timeseries_panel(
            "GPU utilization",
            "GPU utilization per deployment, 0-1 (values the vendor sends as 0-100 are rescaled).",
            "percentunit",
            [Query(f"avg by ({BY}) (baseten_gpu_utilization{sel})", LEGEND)],
        ),
        timeseries_panel(
            "GPU memory used",
            "GPU memory in use per deployment (the vendor's MiB converted to bytes).",
            "bytes",
            [Query(f"sum by ({BY}) (baseten_gpu_memory_used_bytes{sel})", LEGEND)],
        ),
        timeseries_panel(
            "Container CPU",
            "CPU seconds per second used by the deployment's containers.",
            "short",
            [
                Query(
                    f"sum by ({BY}) (rate(baseten_container_cpu_usage_seconds_total{sel}[$__rate_interval]))",
                    LEGEND,
                )
            ],
        ),
        timeseries_panel(
            "Container memory (working set)",
            "Working-set memory of the deployment's containers.",
            "bytes",
            [Query(f"sum by ({BY}) (baseten_container_cpu_memory_working_set_bytes{sel})", LEGEND)],
        ),
    ]
    llm = [
        timeseries_panel(
            "LLM tokens per second",
            "Input and output tokens per second of LLM deployments (absent for other models).",
            "short",
            [
                Query(
                    f"sum by ({BY}) (rate(baseten_llm_input_tokens_total{sel}[$__rate_interval]))",
                    LEGEND + " input",
                ),
                Query(
                    f"sum by ({BY}) (rate(baseten_llm_output_tokens_total{sel}[$__rate_interval]))",
                    LEGEND + " output",
                ),
            ],
        ),
        timeseries_panel(
            "LLM KV cache hit rate",
            "Share of KV-cache lookups that hit, 0-1, for LLM deployments.",
            "percentunit",
            [Query(f"avg by ({BY}) (baseten_llm_kv_cache_hit_rate{sel})", LEGEND)],
        ),
    ]
    return dashboard(
        UID,
        "Inference exporter / Baseten deployments",
        "Baseten deployments: replicas, demand, traffic, latency and resources, from inference-exporter.",
        variables,
        [
            ("Overview", overview),
            ("Deployments", deployments),
            ("Capacity and demand", capacity),
            ("Traffic and latency", traffic),
            ("Resources", resources),
            ("LLM", llm),
        ],
    )
