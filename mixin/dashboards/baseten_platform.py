"""Baseten platform: what Baseten's own organisation endpoint says about every deployment,
relayed by the exporter (``organisation_metrics`` of a Baseten account).

Unlike the management API's per-step quantiles, the endpoint serves cumulative counters
per status code and real latency histograms, so latency quantiles here come from
``histogram_quantile`` over buckets and can be aggregated across deployments and
windows. The relayed names are the vendor's with the relay's prefix
(``baseten_relay_prefix``); the families read are listed in docs/metrics.md ("Relayed
families the dashboards read"). The last row is the relay itself: a relay that stops
fetching leaves the rows above flat, not empty, until its body goes stale.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.models import dashboard as dm

from mixin.config import MixinConfig
from mixin.dashboards.common import (
    SCOPE,
    Query,
    dashboard,
    datasource_variable,
    query_variable,
    selector,
    stat_panel,
    timeseries_panel,
)

UID = "inference-exporter-baseten-platform"
FILENAME = "baseten-platform.json"

# The relay's target health series (source of Baseten's organisation endpoint relay).
SOURCE = "baseten_relay"
RELAY_UP = f'inference_exporter_target_up{{source="{SOURCE}"}}'
BY = "account, model_id, model_name, deployment_id"
LEGEND = "{{account}} {{model_name}}/{{deployment_id}}"
QUANTILES = ("0.5", "0.95", "0.99")
FIVE_XX = 'status_code=~"5.."'


def _pct(q: str) -> str:
    return f"p{float(q) * 100:g}"


class Relayed:
    """The relayed families' names (prefix + Baseten's name) and the dashboard's selectors."""

    def __init__(self, cfg: MixinConfig) -> None:
        p = cfg.baseten_relay_prefix
        self.requests = f"{p}baseten_inference_requests_total"
        self.e2e = f"{p}baseten_end_to_end_response_time_seconds"
        self.ttfb = f"{p}baseten_time_to_first_byte_seconds"
        self.active = f"{p}baseten_replicas_active"
        self.starting = f"{p}baseten_replicas_starting"
        self.cpu = f"{p}baseten_container_cpu_usage_seconds_total"
        self.memory = f"{p}baseten_container_cpu_memory_working_set_bytes"
        self.gpu = f"{p}baseten_gpu_utilization"
        self.ids = ('model_name=~"$model_name"', 'deployment_id=~"$deployment_id"')
        self.sel = selector(*self.ids)

    def rate(self, name: str, *extra: str) -> str:
        return f"rate({name}{selector(*self.ids, *extra)}[$__rate_interval])"

    def quantile(self, q: str, histogram: str, by: str) -> str:
        return f"histogram_quantile({q}, sum by ({by}, le) ({self.rate(histogram + '_bucket')}))"

    def error_ratio(self, by: str) -> str:
        """Share of requests answered with a 5xx; 0, not absent, where none was."""
        errors = f"sum by ({by}) ({self.rate(self.requests, FIVE_XX)})"
        total = f"sum by ({by}) ({self.rate(self.requests)})"
        return f"({errors} or 0 * {total}) / {total}"


def variables(r: Relayed) -> list[cogbuilder.Builder[dm.VariableModel]]:
    """Job, instance and account from the relay's health series, which stay while the relay
    fails; models and deployments from a relayed gauge with a series per deployment (a
    variable may not read a counter outside ``rate``)."""
    return [
        datasource_variable(),
        query_variable("job", "Job", RELAY_UP),
        query_variable("instance", "Instance", RELAY_UP, scope=['job=~"$job"']),
        query_variable("account", "Account", RELAY_UP, scope=SCOPE[:2]),
        query_variable("model_name", "Model", r.active, scope=SCOPE),
        query_variable("deployment_id", "Deployment", r.active, scope=[*SCOPE, 'model_name=~"$model_name"']),
    ]


def overview(cfg: MixinConfig, r: Relayed) -> list[cogbuilder.Builder[dm.Panel]]:
    q = cfg.baseten_latency_quantile
    budget = 1 - cfg.baseten_availability_objective
    return [
        stat_panel(
            "Requests per second",
            "Inference requests per second across the selected deployments, every status code.",
            "reqps",
            Query(f"sum({r.rate(r.requests)})"),
        ),
        stat_panel(
            "5xx ratio",
            "Share of the selected deployments' requests answered with a 5xx. Red above the "
            f"availability objective's budget ({budget:.10g}).",
            "percentunit",
            Query(f"(sum({r.rate(r.requests, FIVE_XX)}) or vector(0)) / sum({r.rate(r.requests)})"),
            red_at=budget,
        ),
        stat_panel(
            f"End-to-end {_pct(q)}",
            f"The {q} quantile of end-to-end response time over all the selected deployments' "
            "requests (from the histogram's buckets: a quantile of the whole, not an average of "
            f"quantiles). Red above the BasetenLatencyHigh threshold ({cfg.baseten_latency_high_seconds:g}s).",
            "s",
            Query(f"histogram_quantile({q}, sum by (le) ({r.rate(r.e2e + '_bucket')}))"),
            red_at=cfg.baseten_latency_high_seconds,
        ),
        stat_panel(
            "Active replicas",
            "Replicas serving across the selected deployments.",
            "short",
            Query(f"sum({r.active}{r.sel})"),
        ),
    ]


def traffic(cfg: MixinConfig, r: Relayed) -> list[cogbuilder.Builder[dm.Panel]]:
    budget = 1 - cfg.baseten_availability_objective
    return [
        timeseries_panel(
            "Requests by status code",
            "Inference requests per second by the HTTP status code Baseten answered, across the "
            "selected deployments (cumulative counters from Baseten's organisation endpoint).",
            "reqps",
            [Query(f"sum by (account, status_code) ({r.rate(r.requests)})", "{{account}} {{status_code}}")],
            stack=True,
        ),
        timeseries_panel(
            "Requests by deployment",
            "Inference requests per second per deployment, every status code.",
            "reqps",
            [Query(f"sum by ({BY}) ({r.rate(r.requests)})", LEGEND)],
            stack=True,
        ),
        timeseries_panel(
            "5xx ratio by deployment",
            "Share of each deployment's requests answered with a 5xx (4xx are the callers' errors). "
            f"The dashed line is the availability objective's budget ({budget:.10g}): a ratio held "
            "above it spends the budget before the period ends.",
            "percentunit",
            [Query(r.error_ratio(BY), LEGEND)],
            threshold=budget,
        ),
        timeseries_panel(
            "Requests by sync and async",
            "Inference requests per second by whether they were asynchronous (is_async).",
            "reqps",
            [Query(f"sum by (account, is_async) ({r.rate(r.requests)})", "{{account}} async={{is_async}}")],
            stack=True,
        ),
    ]


def latency(cfg: MixinConfig, r: Relayed) -> list[cogbuilder.Builder[dm.Panel]]:
    q = cfg.baseten_latency_quantile
    pcts = "/".join(_pct(x) for x in QUANTILES)
    return [
        timeseries_panel(
            f"End-to-end response time {pcts}",
            "Quantiles of end-to-end response time per deployment, from Baseten's histogram buckets "
            "(interpolated within a bucket). The dashed line is the BasetenLatencyHigh threshold "
            f"({cfg.baseten_latency_high_seconds:g}s).",
            "s",
            [Query(r.quantile(x, r.e2e, BY), f"{LEGEND} {_pct(x)}") for x in QUANTILES],
            threshold=cfg.baseten_latency_high_seconds,
        ),
        timeseries_panel(
            f"Time to first byte {pcts}",
            "Quantiles of the time to the response's first byte per deployment, from Baseten's "
            "histogram buckets; for streamed responses, what a caller waits before output starts.",
            "s",
            [Query(r.quantile(x, r.ttfb, BY), f"{LEGEND} {_pct(x)}") for x in QUANTILES],
        ),
        timeseries_panel(
            "Mean end-to-end response time",
            "Average end-to-end response time per deployment: the histogram's sum over its count.",
            "s",
            [
                Query(
                    f"sum by ({BY}) ({r.rate(r.e2e + '_sum')}) / sum by ({BY}) ({r.rate(r.e2e + '_count')})",
                    LEGEND,
                )
            ],
        ),
        timeseries_panel(
            f"End-to-end {_pct(q)} by status code",
            f"The {q} quantile of end-to-end response time by status code across the selected "
            "deployments: whether errors come fast (refused) or slow (timeouts).",
            "s",
            [Query(r.quantile(q, r.e2e, "account, status_code"), "{{account}} {{status_code}}")],
        ),
    ]


def capacity(r: Relayed) -> list[cogbuilder.Builder[dm.Panel]]:
    return [
        timeseries_panel(
            "Active replicas",
            "Replicas serving requests, per deployment.",
            "short",
            [Query(f"sum by ({BY}) ({r.active}{r.sel})", LEGEND)],
        ),
        timeseries_panel(
            "Starting replicas",
            "Replicas being started (scale-up or cold start), per deployment.",
            "short",
            [Query(f"sum by ({BY}) ({r.starting}{r.sel})", LEGEND)],
        ),
        timeseries_panel(
            "Container CPU",
            "CPU seconds per second used by each deployment's containers.",
            "short",
            [Query(f"sum by ({BY}) ({r.rate(r.cpu)})", LEGEND)],
        ),
        timeseries_panel(
            "Container memory (working set)",
            "Working-set memory of each deployment's containers.",
            "bytes",
            [Query(f"sum by ({BY}) ({r.memory}{r.sel})", LEGEND)],
        ),
        timeseries_panel(
            "GPU utilization",
            "GPU utilization per deployment, 0-1, averaged over its GPUs.",
            "percentunit",
            [Query(f"avg by ({BY}) ({r.gpu}{r.sel})", LEGEND)],
            width=24,
        ),
    ]


def relay_health(cfg: MixinConfig) -> list[cogbuilder.Builder[dm.Panel]]:
    """The relay's own health: its target's series, and its requests to the endpoint."""
    sel = selector(f'source="{SOURCE}"')
    return [
        stat_panel(
            "Relays down",
            "Organisation endpoint relays whose last poll failed; InferenceExporterTargetDown fires "
            f"after {cfg.target_down_for}. While Baseten rate-limits, a relay keeps serving its last "
            "body and stays up until the body is older than its stale_after.",
            "short",
            Query(f"sum(1 - inference_exporter_target_up{sel})"),
            red_at=1,
        ),
        stat_panel(
            "Relayed series",
            "Series the selected relays pass on from Baseten's organisation endpoint.",
            "short",
            Query(f"sum(inference_exporter_target_series{sel})"),
        ),
        timeseries_panel(
            "Relay up",
            "1 while a relay's last poll succeeded (or served its last body through a rate limit), "
            "0 while it fails.",
            "short",
            [Query(f"inference_exporter_target_up{sel}", "{{account}} {{target}}")],
        ),
        timeseries_panel(
            "Time since last successful poll",
            "Age of each relay's last successful poll. It grows while polls fail; relayed series "
            "vanish once the body is older than its stale_after.",
            "s",
            [
                Query(
                    f"time() - (inference_exporter_target_last_success_timestamp_seconds{sel} > 0)",
                    "{{account}} {{target}}",
                )
            ],
        ),
        timeseries_panel(
            "Relayed body age",
            "How old the body each relay serves is (time since Baseten answered it), against its "
            "stale_after: while Baseten rate-limits, the last body is served until it is that old, "
            "then dropped. It stays under the interval (30 s) while fetches succeed.",
            "s",
            [
                Query(
                    f"time() - inference_exporter_relay_body_fetch_timestamp_seconds{sel}", "{{account}} age"
                ),
                Query(f"inference_exporter_relay_stale_after_seconds{sel}", "{{account}} stale_after"),
            ],
        ),
        timeseries_panel(
            "Polls served from a held body",
            "Relay polls per second that served the last good body because Baseten answered 429 or "
            "the account's request budget had no slot: scrapers saw no gap.",
            "ops",
            [
                Query(
                    f"sum by (account) (rate(inference_exporter_relay_held_polls_total{sel}[$__rate_interval]))",
                    "{{account}}",
                )
            ],
        ),
        timeseries_panel(
            "Relay polls by result",
            "Relay polls per second by result: success, or the failure reason.",
            "ops",
            [
                Query(
                    "sum by (account, result) "
                    f"(rate(inference_exporter_target_polls_total{sel}[$__rate_interval]))",
                    "{{account}} {{result}}",
                )
            ],
            stack=True,
        ),
        timeseries_panel(
            "Requests to the organisation endpoint",
            "Requests per second the relays sent to Baseten's organisation endpoint, by HTTP status. "
            "Baseten allows 6 a minute per organisation (0.1/s) and answers 429 beyond; every "
            "scraper of the exporter shares these.",
            "reqps",
            [
                Query(
                    "sum by (account, code) "
                    f"(rate(inference_exporter_upstream_requests_total{sel}[$__rate_interval]))",
                    "{{account}} {{code}}",
                )
            ],
            threshold=0.1,
        ),
    ]


def build(cfg: MixinConfig) -> db.Dashboard:
    r = Relayed(cfg)
    return dashboard(
        UID,
        "Inference exporter / Baseten platform",
        "Every Baseten deployment as Baseten's organisation metrics endpoint reports it, relayed by "
        "inference-exporter: requests by status code, 5xx ratio, latency quantiles from real "
        "histograms, replicas, CPU, memory and GPU, and the relay's own health.",
        variables(r),
        [
            ("Overview", overview(cfg, r)),
            ("Traffic", traffic(cfg, r)),
            ("Latency", latency(cfg, r)),
            ("Capacity and resources", capacity(r)),
            ("Relay", relay_health(cfg)),
        ],
    )
