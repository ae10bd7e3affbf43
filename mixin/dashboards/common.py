"""Shared pieces of every dashboard: variables, selectors and panel constructors.

Every panel reads the ``$datasource`` variable and every query filters on ``$job`` and
``$instance``, as dashboard-linter expects, so one Grafana can watch several exporters;
every query of a target's series filters on ``$account`` too (all of an exporter's
target series carry the vendor account they come from).
Panels always get a description and a unit: the constructors below require both.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from grafana_foundation_sdk.builders import common as cb
from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.builders import prometheus, stat, table, timeseries
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import variants as cogvariants
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as dm
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

DATASOURCE = dm.DataSourceRef(type_val="prometheus", uid="${datasource}")
BASE_SELECTOR = 'job=~"$job", instance=~"$instance"'
ACCOUNT = 'account=~"$account"'
# The matchers of variables chosen before a dashboard's own ones.
SCOPE = ['job=~"$job"', 'instance=~"$instance"', ACCOUNT]
TAGS = ["inference-exporter"]


def selector(*extra: str) -> str:
    """``{job=~"$job", instance=~"$instance", account=~"$account", <extra>}``: the matchers
    of a query of a target's series."""
    return "{" + ", ".join([BASE_SELECTOR, ACCOUNT, *extra]) + "}"


def exporter_selector(*extra: str) -> str:
    """``{job=~"$job", instance=~"$instance", <extra>}``: for the exporter's own series
    that belong to no account (reloads, shards)."""
    return "{" + ", ".join([BASE_SELECTOR, *extra]) + "}"


def datasource_variable() -> db.DatasourceVariable:
    return db.DatasourceVariable("datasource").label("Data source").type("prometheus")


def query_variable(name: str, label: str, metric: str, *, scope: Sequence[str] = ()) -> db.QueryVariable:
    """A multi-value filter fed by ``label_values``, refreshed when the time range changes.

    ``scope`` lists the earlier variables' matchers (e.g. ``job=~"$job"``) so choices cascade;
    ``metric`` may carry matchers of its own (``inference_exporter_target_up{source="x"}``).
    """
    name_part, _, own = metric.partition("{")
    matchers = [*filter(None, [own.rstrip("}").strip()]), *scope]
    series = name_part + ("{" + ", ".join(matchers) + "}" if matchers else "")
    return (
        db.QueryVariable(name)
        .label(label)
        .datasource(DATASOURCE)
        .query(f"label_values({series}, {name})")
        .refresh(dm.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(dm.VariableSort.ALPHABETICAL_ASC)
        .multi(True)
        .include_all(True)
        .all_value(".+")
        .current(dm.VariableOption(selected=True, text="All", value="$__all"))
    )


def standard_variables(
    anchor_metric: str, account_metric: str | None = None
) -> list[cogbuilder.Builder[dm.VariableModel]]:
    """``datasource``, ``job``, ``instance`` and ``account``, taken from ``anchor_metric``
    (the accounts from ``account_metric`` if the anchor has no account label)."""
    return [
        datasource_variable(),
        query_variable("job", "Job", anchor_metric),
        query_variable("instance", "Instance", anchor_metric, scope=['job=~"$job"']),
        query_variable("account", "Account", account_metric or anchor_metric, scope=SCOPE[:2]),
    ]


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str = ""
    instant: bool = False
    table: bool = False


def _targets(queries: Sequence[Query]) -> list[cogbuilder.Builder[cogvariants.Dataquery]]:
    out: list[cogbuilder.Builder[cogvariants.Dataquery]] = []
    for i, q in enumerate(queries):
        t = (
            prometheus.Dataquery()
            .expr(q.expr)
            .ref_id(chr(ord("A") + i))
            .datasource(DATASOURCE)
            .legend_format(q.legend or "__auto")
        )
        if q.table:
            t = t.format(PromQueryFormat.TABLE)
        out.append(t.instant() if q.instant else t.range())
    return out


def timeseries_panel(
    title: str,
    description: str,
    unit: str,
    queries: Sequence[Query],
    *,
    width: int = 12,
    height: int = 8,
    threshold: float | None = None,
    stack: bool = False,
    min_zero: bool = True,
) -> timeseries.Panel:
    p = (
        timeseries.Panel()
        .title(title)
        .description(description)
        .unit(unit)
        .datasource(DATASOURCE)
        .span(width)
        .height(height)
        .fill_opacity(10)
        .line_width(1)
        .legend(
            cb.VizLegendOptions()
            .display_mode(common.LegendDisplayMode.TABLE)
            .placement(common.LegendPlacement.BOTTOM)
            .show_legend(True)
            .calcs(["lastNotNull", "max"])
        )
        .tooltip(
            cb.VizTooltipOptions().mode(common.TooltipDisplayMode.MULTI).sort(common.SortOrder.DESCENDING)
        )
        .targets(_targets(queries))
    )
    if min_zero:
        p = p.min(0)
    if stack:
        p = p.stacking(cb.StackingConfig().mode(common.StackingMode.NORMAL))
    if threshold is not None:
        p = p.thresholds(
            db.ThresholdsConfig()
            .mode(dm.ThresholdsMode.ABSOLUTE)
            .steps([dm.Threshold(value=None, color="green"), dm.Threshold(value=threshold, color="red")])
        ).thresholds_style(cb.GraphThresholdsStyleConfig().mode(common.GraphThresholdsStyleMode.DASHED))
    return p


def stat_panel(
    title: str,
    description: str,
    unit: str,
    query: Query,
    *,
    width: int = 6,
    height: int = 4,
    red_at: float | None = None,
    colors: Sequence[tuple[float | None, str]] = (),
) -> stat.Panel:
    """A single-value panel; ``red_at`` turns it red from that value up, ``colors`` gives
    other steps (``(None, base color), (from value, color), …``)."""
    steps = [dm.Threshold(value=None, color="green")]
    if red_at is not None:
        steps.append(dm.Threshold(value=red_at, color="red"))
    if colors:
        steps = [dm.Threshold(value=v, color=c) for v, c in colors]
    return (
        stat.Panel()
        .title(title)
        .description(description)
        .unit(unit)
        .datasource(DATASOURCE)
        .span(width)
        .height(height)
        .color_mode(
            common.BigValueColorMode.BACKGROUND
            if red_at is not None or colors
            else common.BigValueColorMode.VALUE
        )
        .graph_mode(common.BigValueGraphMode.AREA)
        .reduce_options(cb.ReduceDataOptions().calcs(["lastNotNull"]))
        .thresholds(db.ThresholdsConfig().mode(dm.ThresholdsMode.ABSOLUTE).steps(steps))
        .targets(_targets([query]))
    )


def table_panel(
    title: str,
    description: str,
    unit: str,
    expr: str,
    *,
    hide: Sequence[str] = ("Time", "Value", "__name__", "job", "instance"),
    width: int = 24,
    height: int = 8,
) -> table.Panel:
    """One row per series of an instant query, its labels as columns (for ``_info`` metadata)."""
    return (
        table.Panel()
        .title(title)
        .description(description)
        .unit(unit)
        .datasource(DATASOURCE)
        .span(width)
        .height(height)
        .with_transformation(
            dm.DataTransformerConfig(id_val="organize", options={"excludeByName": dict.fromkeys(hide, True)})
        )
        .targets(_targets([Query(expr, instant=True, table=True)]))
    )


def dashboard(
    uid: str,
    title: str,
    description: str,
    variables: Sequence[cogbuilder.Builder[dm.VariableModel]],
    rows: Sequence[tuple[str, Sequence[cogbuilder.Builder[dm.Panel]]]],
) -> db.Dashboard:
    """A read-only dashboard whose panels get stable ids in layout order."""
    d = (
        db.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags(TAGS)
        .readonly()
        .refresh("30s")
        .time("now-6h", "now")
        .timezone("browser")
        .tooltip(dm.DashboardCursorSync.CROSSHAIR)
        .variables(list(variables))
        .link(
            db.DashboardLink("Inference exporter")
            .type(dm.DashboardLinkType.DASHBOARDS)
            .tags(TAGS)
            .as_dropdown(True)
            .include_vars(True)
            .keep_time(True)
        )
    )
    next_id = 1
    for row_title, panels in rows:
        d = d.with_row(db.Row(row_title).id(next_id))
        next_id += 1
        for panel in panels:
            # Every panel builder has id(); the SDK's generic Builder type does not declare it.
            d = d.with_panel(panel.id(next_id))  # type: ignore[attr-defined]
            next_id += 1
    return d
