"""Service level objectives: error-ratio recording rules and multiwindow, multi-burn-rate alerts.

Each objective says which share of events must be good (a probe job that succeeds, a
request not answered with a 5xx, …); ``1 - objective`` is the error budget. For every
objective the rules record its error ratio over the standard windows as
``slo:sli_error:ratio_rate<window>{slo="<name>"}`` (and over ``slo_period``, for the
dashboard's budget), keeping every label of the source series but the one the ratio
sums away, so an objective holds per model or per deployment, per vendor account
(``account``), and for any target label the config or a relabelling adds.

The alerts follow the alerting chapter of Google's SRE workbook: the *burn rate* is
the error ratio divided by the budget (1 spends exactly the budget over the period),
and an alert needs a long window (is it significant?) and a short one (is it still
happening?) above the same burn rate:

==========  ============  ============  ==========================  ==========
severity    long window   short window  burn rate                   budget spent
==========  ============  ============  ==========================  ==========
page        1h            5m            14.4                        2% in 1h
page        6h            30m           6                           5% in 6h
ticket      1d            2h            3                           10% in 1d
ticket      3d            6h            1                           10% in 3d
==========  ============  ============  ==========================  ==========

One departure from the workbook: a short window that holds no events at all counts as
still burning, as long as its series is reported. A probe every five minutes often
leaves a 5m window empty; requiring the short window's burn rate would make the page
flap off whenever it does. A window without events records 0/0, NaN, which
``ratio != ratio`` picks out. A long window without events is NaN too and fires
nothing, and a series that is no longer reported has no short-window ratio at all,
so missing data never pages.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import yaml

from exporter.core.histogram import le_label
from mixin.alerts import ACCOUNT, Alert, alert_rule
from mixin.config import MixinConfig

# Every window an error ratio is recorded over (the alerts' long and short windows).
WINDOWS = ("5m", "30m", "1h", "2h", "6h", "1d", "3d")
RATIO = "slo:sli_error:ratio_rate"
# The Baseten latency objective's per-evaluation indicator: 1 while the quantile is too high.
INDICATOR = "slo:sli_error:bool"


@dataclass(frozen=True)
class BurnWindow:
    long: str
    short: str
    burn_rate: float


PAGE = (BurnWindow("1h", "5m", 14.4), BurnWindow("6h", "30m", 6.0))
TICKET = (BurnWindow("1d", "2h", 3.0), BurnWindow("3d", "6h", 1.0))


@dataclass(frozen=True)
class Objective:
    """One SLO: how its error ratio over a window is computed, and how it is named."""

    name: str  # the `slo` label of its recorded series
    alert: str  # alert-name stem: <alert>BudgetBurnFast, <alert>BudgetBurnSlow
    objective: float
    title: str  # dashboard row
    what: str  # the objective in words, for descriptions
    subject: str  # whose budget burns, templated with the series' labels
    legend: str  # Grafana legend of one series
    error_ratio: Callable[[str], str]  # window → PromQL
    # Recording rules the error ratio reads (recorded first, in the same group).
    prerequisites: tuple[dict[str, object], ...] = ()

    @property
    def budget(self) -> str:
        """``1 - objective`` as PromQL reads it (no float noise such as 0.010000000000000009)."""
        return f"{1 - self.objective:.10g}"

    def ratio(self, window: str) -> str:
        return f'{RATIO}{window}{{slo="{self.name}"}}'


def ratio_of(errors: str, total: str, without: str) -> str:
    """``errors / total`` per series; no error series at all (none counted yet) is 0, not absent."""
    return (
        f"(sum without ({without}) ({errors}) or 0 * sum without ({without}) ({total}))"
        f" / sum without ({without}) ({total})"
    )


def probe_success(cfg: MixinConfig) -> Objective:
    def error_ratio(w: str) -> str:
        return ratio_of(
            f'rate(together_queue_probes_total{{result!="success"}}[{w}])',
            f"rate(together_queue_probes_total[{w}])",
            "result",
        )

    pct = f"{cfg.probe_success_objective * 100:g}%"
    return Objective(
        "together-probe-success",
        "TogetherQueueProbeSuccess",
        cfg.probe_success_objective,
        "Probe success",
        f"{pct} of probe jobs succeed",
        "Probe jobs of model {{ $labels.model }}",
        "{{account}} {{model}}",
        error_ratio,
    )


def probe_wait(cfg: MixinConfig) -> Objective:
    le = le_label(cfg.probe_wait_threshold_seconds)
    count = 'together_queue_probe_phase_seconds_count{phase="queue_wait"}'
    within = f'together_queue_probe_phase_seconds_bucket{{phase="queue_wait", le="{le}"}}'

    def error_ratio(w: str) -> str:
        return (
            f"(sum without (phase) (rate({count}[{w}])) - sum without (le, phase) (rate({within}[{w}])))"
            f" / sum without (phase) (rate({count}[{w}]))"
        )

    pct = f"{cfg.probe_wait_objective * 100:g}%"
    return Objective(
        "together-probe-queue-wait",
        "TogetherQueueProbeWait",
        cfg.probe_wait_objective,
        f"Probe queue wait under {cfg.probe_wait_threshold_seconds:g}s",
        f"{pct} of probe jobs are claimed within {cfg.probe_wait_threshold_seconds:g}s",
        "Probe jobs of model {{ $labels.model }}",
        "{{account}} {{model}}",
        error_ratio,
    )


# What identifies a Baseten deployment in both sources' series (with the scrape's labels).
DEPLOYMENT = "account, model_id, deployment_id"
# Labels of the relayed request counter an availability ratio sums away: the status, and
# what splits one deployment's requests (sync or async, the phase of a rollout).
RELAYED_SPLITS = "status_code, is_async, rollout_phase"


def baseten_availability(cfg: MixinConfig) -> Objective:
    """From Baseten's organisation endpoint where it is relayed (cumulative counters per
    status code, no ingestion lag), else from the management API's per-step totals; never
    both for one deployment over one window, so turning the relay on neither doubles a
    deployment's objective nor its alerts."""
    relayed = f"{cfg.baseten_relay_prefix}baseten_inference_requests_total"

    def error_ratio(w: str) -> str:
        real = ratio_of(
            f'rate({relayed}{{status_code=~"5.."}}[{w}])', f"rate({relayed}[{w}])", RELAYED_SPLITS
        )
        managed = ratio_of(
            f'rate(baseten_inference_requests_total{{status="5xx"}}[{w}])',
            f"rate(baseten_inference_requests_total[{w}])",
            "status",
        )
        return f"{real} or ({managed} unless on ({DEPLOYMENT}) rate({relayed}[{w}]))"

    pct = f"{cfg.baseten_availability_objective * 100:g}%"
    return Objective(
        "baseten-availability",
        "BasetenAvailability",
        cfg.baseten_availability_objective,
        "Baseten requests without a 5xx",
        f"{pct} of requests are not answered with a 5xx",
        "Requests to deployment {{ $labels.deployment_id }} of model {{ $labels.model_id }}",
        "{{account}} {{model_id}}/{{deployment_id}}",
        error_ratio,
    )


def baseten_latency(cfg: MixinConfig) -> Objective:
    name = "baseten-latency"
    q = cfg.baseten_latency_slo_quantile
    seconds = f"{cfg.baseten_latency_slo_seconds:g}"
    indicator: dict[str, object] = {
        "record": INDICATOR,
        "expr": f'max without (quantile) (baseten_end_to_end_response_time_seconds{{quantile="{q}"}}'
        f" > bool {seconds})",
        "labels": {"slo": name},
    }

    def error_ratio(w: str) -> str:
        return f'avg_over_time({INDICATOR}{{slo="{name}"}}[{w}])'

    pct = f"{cfg.baseten_latency_objective * 100:g}%"
    return Objective(
        name,
        "BasetenLatency",
        cfg.baseten_latency_objective,
        f"Baseten p{float(q) * 100:g} latency under {seconds}s",
        f"the p{float(q) * 100:g} end-to-end response time is at most {seconds}s {pct} of the time",
        "Deployment {{ $labels.deployment_id }} of model {{ $labels.model_id }}",
        "{{account}} {{model_id}}/{{deployment_id}}",
        error_ratio,
        (indicator,),
    )


OBJECTIVES = [probe_success, probe_wait, baseten_availability, baseten_latency]


def objectives(cfg: MixinConfig) -> list[Objective]:
    return [make(cfg) for make in OBJECTIVES]


def burn_expr(o: Objective, windows: tuple[BurnWindow, ...]) -> str:
    """The long window's burn rate where it is above the threshold and the short window's
    is too, or the short window had no events (NaN)."""
    parts = []
    for w in windows:
        short = o.ratio(w.short)
        parts.append(
            f"({o.ratio(w.long)} / {o.budget} > {w.burn_rate:g}"
            f" and ({short} / {o.budget} > {w.burn_rate:g} or {short} != {short}))"
        )
    return " or ".join(parts)


def _pairs(windows: tuple[BurnWindow, ...]) -> str:
    return " or ".join(f"{w.burn_rate:g}x over {w.long} and {w.short}" for w in windows)


def alerts(cfg: MixinConfig, o: Objective) -> list[Alert]:
    def description(windows: tuple[BurnWindow, ...]) -> str:
        return (
            f'{o.subject}: the error budget of the objective "{o.what}" is being spent'
            f" {{{{ $value | humanize }}}} times as fast as would use it up in {cfg.slo_period}"
            f" ({_pairs(windows)})."
        )

    return [
        Alert(
            f"{o.alert}BudgetBurnFast",
            burn_expr(o, PAGE),
            cfg.slo_page_for,
            "critical",
            f"Error budget of the {o.name} objective burning fast" + ACCOUNT,
            description(PAGE),
        ),
        Alert(
            f"{o.alert}BudgetBurnSlow",
            burn_expr(o, TICKET),
            cfg.slo_ticket_for,
            "warning",
            f"Error budget of the {o.name} objective burning" + ACCOUNT,
            description(TICKET),
        ),
    ]


def recording_rules(cfg: MixinConfig, o: Objective) -> list[dict[str, object]]:
    rules: list[dict[str, object]] = list(o.prerequisites)
    for window in (*WINDOWS, cfg.slo_period):
        rules.append({"record": f"{RATIO}{window}", "expr": o.error_ratio(window), "labels": {"slo": o.name}})
    return rules


def recorded_names(cfg: MixinConfig) -> set[str]:
    """Every series name the SLO rules record (dashboards may read them)."""
    return {str(r["record"]) for o in objectives(cfg) for r in recording_rules(cfg, o)}


def rule_file(cfg: MixinConfig) -> dict[str, object]:
    """One group per objective: its recording rules, then its alerts (which read them)."""
    return {
        "groups": [
            {
                "name": f"inference-exporter-slo-{o.name}",
                "rules": [*recording_rules(cfg, o), *(alert_rule(cfg, a) for a in alerts(cfg, o))],
            }
            for o in objectives(cfg)
        ]
    }


def all_alerts(cfg: MixinConfig) -> list[Alert]:
    return [a for o in objectives(cfg) for a in alerts(cfg, o)]


HEADER = """\
# Service level objectives of inference-exporter: error-ratio recording rules and burn-rate
# alerts. Generated by `python -m mixin` from mixin/slo.py; objectives come from
# mixin/config.py (listed in docs/dashboards-and-alerts.md, "Service level objectives").
# Load it next to alerts.yaml; the next regeneration overwrites edits made here.
"""


def render(cfg: MixinConfig) -> str:
    body = yaml.safe_dump(rule_file(cfg), sort_keys=False, width=1000, allow_unicode=True)
    return HEADER + body
