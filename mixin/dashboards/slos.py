"""Service level objectives: per objective, what it promises, how much of its error budget is
left over the period, and how fast the budget burns now. Reads the recording rules of
``prometheus/slos.yaml`` (mixin/slo.py), which must be loaded in Prometheus."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.models import dashboard as dm

from mixin import slo
from mixin.config import MixinConfig
from mixin.dashboards.common import (
    Query,
    dashboard,
    selector,
    standard_variables,
    stat_panel,
    timeseries_panel,
)

UID = "inference-exporter-slos"
FILENAME = "slos.json"

ANCHOR = "inference_exporter_build_info"
# The build info has no account: the accounts come from the series the objectives read.
ACCOUNTS = "inference_exporter_target_up"
# Long windows whose burn rate the panel shows (each alert's long window).
BURN_WINDOWS = tuple(w.long for w in (*slo.PAGE, *slo.TICKET))


def ratio(o: slo.Objective, window: str) -> str:
    return f"{slo.RATIO}{window}" + selector(f'slo="{o.name}"')


def objective_row(cfg: MixinConfig, o: slo.Objective) -> list[cogbuilder.Builder[dm.Panel]]:
    period = cfg.slo_period
    budget = o.budget
    return [
        stat_panel(
            "Objective",
            f"The objective: {o.what}. Its error budget is {float(budget) * 100:g}% of events over {period}; "
            "change it in mixin/config.py and regenerate.",
            "percentunit",
            Query(f"vector({o.objective:g})"),
            width=4,
            height=8,
        ),
        stat_panel(
            f"Good over {period}",
            f"Share of good events over the last {period}, per series: red below the objective.",
            "percentunit",
            Query(f"1 - {ratio(o, period)}", o.legend),
            width=4,
            height=8,
            colors=((None, "red"), (o.objective, "green")),
        ),
        stat_panel(
            f"Error budget left ({period})",
            f"Share of the {period} error budget not yet spent, per series: 1 - error ratio / {budget}. "
            "Below 0 the objective is missed for the period.",
            "percentunit",
            Query(f"1 - {ratio(o, period)} / {budget}", o.legend),
            width=4,
            height=8,
            colors=((None, "red"), (0, "orange"), (0.25, "green")),
        ),
        timeseries_panel(
            "Error ratio",
            f"Share of bad events over the last 5m and 1h. The dashed line is the budget ({budget}): "
            "a ratio held above it spends the budget before the period ends.",
            "percentunit",
            [
                Query(ratio(o, "5m"), o.legend + " 5m"),
                Query(ratio(o, "1h"), o.legend + " 1h"),
            ],
            threshold=float(budget),
        ),
        timeseries_panel(
            "Burn rate",
            "Error ratio divided by the budget, over each alert's long window: 1 spends exactly the budget "
            f"over {period}. The page fires above 14.4 (1h) or 6 (6h), the ticket above 3 (1d) or 1 (3d), "
            "each while its short window agrees.",
            "short",
            [Query(f"{ratio(o, w)} / {budget}", f"{o.legend} {w}") for w in BURN_WINDOWS],
            width=24,
            threshold=1,
        ),
    ]


def build(cfg: MixinConfig) -> db.Dashboard:
    rows = [(o.title, objective_row(cfg, o)) for o in slo.objectives(cfg)]
    return dashboard(
        UID,
        "Inference exporter / SLOs",
        "Service level objectives on the Together probe and Baseten deployments: objective, error "
        "budget left and burn rates, from the recording rules in prometheus/slos.yaml.",
        standard_variables(ANCHOR, ACCOUNTS),
        rows,
    )
