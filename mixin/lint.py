"""A port of grafana dashboard-linter's rules to Python, run by the test suite.

Rules (dashboard-linter's names in brackets):

- a ``datasource`` variable of type prometheus [template-datasource-rule], used by every
  panel and every query [panel-datasource-rule];
- ``job`` and ``instance`` variables [template-job-rule, template-instance-rule], and every
  selector filters on them [target-job-rule, target-instance-rule];
- query variables reload on time-range change [template-on-time-change-reload-rule];
- the dashboard is read-only [template-uneditable-rule];
- every panel has a title and a description [panel-title-description-rule], a known unit
  [panel-units-rule] and at least one query [panel-no-targets-rule];
- every query parses as PromQL [target-promql-rule]; ``rate``/``irate``/``increase`` use
  ``$__rate_interval`` [target-rate-interval-rule]; a ``…_total`` counter appears only
  inside ``rate``/``increase`` [target-counter-agg-rule];
- every metric a query reads is one the exporter exposes (or Prometheus's own ``up`` and
  ``scrape_*`` series): a family of the catalog, or a relayed family the catalog lists
  (``mixin.relayed.documented_metrics``).

Grafana's ``$variables`` are substituted before parsing; ``$__rate_interval`` becomes a
sentinel duration so the rate rule can tell it apart from a hard-coded window.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import promql_parser as pp
from grafana_foundation_sdk.models import units

RATE_SENTINEL = timedelta(seconds=4242)
RATE_FUNCTIONS = frozenset({"rate", "irate", "increase"})
COUNTER_FUNCTIONS = frozenset({"rate", "increase"})
PROMETHEUS_SERIES = frozenset(
    {
        "up",
        "scrape_duration_seconds",
        "scrape_samples_scraped",
        "scrape_samples_post_metric_relabeling",
        "scrape_series_added",
    }
)
VALID_UNITS = frozenset(v for k, v in vars(units).items() if isinstance(v, str) and not k.startswith("_"))
LABEL_VALUES = re.compile(
    r"^\s*label_values\(\s*(?:(?P<expr>.*),\s*)?(?P<label>[a-zA-Z_][a-zA-Z0-9_]*)\s*\)\s*$", re.S
)
DATASOURCE_UIDS = frozenset({"${datasource}", "$datasource"})


@dataclass(frozen=True)
class Problem:
    where: str
    rule: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.rule}: {self.message}"


@dataclass
class ExposedMetrics:
    """Metric names the exporter exposes: exact names, plus patterns for documented
    families whose names depend on the vendor (``process_*``, ``together_finetune_<key>``)."""

    names: set[str] = field(default_factory=set)
    patterns: list[re.Pattern[str]] = field(default_factory=list)
    # The type column of each exact name and of each pattern (keyed by its regex).
    types: dict[str, set[str]] = field(default_factory=dict)

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        if name in self.names or name in PROMETHEUS_SERIES:
            return True
        return any(p.fullmatch(name) for p in self.patterns)

    def types_of(self, name: str) -> set[str]:
        """The documented type(s) of a family: its own row's, else those of the patterns it matches."""
        if name in self.names:
            return self.types.get(name, set())
        matched = [self.types.get(p.pattern, set()) for p in self.patterns if p.fullmatch(name)]
        return set().union(*matched)


_METRIC_NAME = re.compile(r"[a-zA-Z_:<][a-zA-Z0-9_:<>]*_[a-zA-Z0-9_:<>]*\*?")
_PLACEHOLDER = re.compile(r"<[a-z_]+>|\*")
TYPES = ("counter", "gauge", "histogram", "summary", "untyped", "")


# The metrics catalog: its tables list every family the exporter exposes (path from the
# repository root).
CATALOG = "docs/metrics.md"


def _pattern(name: str) -> re.Pattern[str]:
    """``a_<key>_b`` or ``a_*`` → a regex where the placeholder is any run of name characters."""
    return re.compile("[a-zA-Z0-9_:]+".join(re.escape(p) for p in _PLACEHOLDER.split(name)))


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def table_rows(text: str) -> Iterator[tuple[list[str], list[str]]]:
    """(the table's header cells in lower case, the row's cells) for every body row of
    every markdown table."""
    lines = text.splitlines()
    header: list[str] | None = None
    for i, line in enumerate(lines):
        if not line.startswith("|"):
            header = None
            continue
        cells = _cells(line)
        if i + 1 < len(lines) and re.fullmatch(r"\|?[\s|:-]+", lines[i + 1].strip()):
            header = [c.lower() for c in cells]
        elif header is not None and not re.fullmatch(r"\|?[\s|:-]+", line.strip()):
            yield header, cells


def exposed_metrics_from_catalog(text: str) -> ExposedMetrics:
    """Metric names in the tables of the metrics catalog (``CATALOG``, markdown) that have
    a ``type`` column.

    The names come from the ``Prometheus name`` column where a table has one (a mapping
    from vendor names), else from the ``name`` column; a cell may list several names,
    paired in order with a ``type`` cell such as ``summary / gauge``. Histogram
    names also expose their ``_bucket``/``_sum``/``_count`` series (a summary's
    ``_sum``/``_count`` only when listed: Baseten's quantile summaries have none). A ``<placeholder>`` name
    (``together_finetune_<key>``) is a pattern, and the names next to it are its examples; so
    is a ``prefix_*`` row of no single type (the client library's ``process_*``). A ``*`` row
    typed "per kind" is not: such vendor-named families count only where a mapping table
    lists them by name. ``types`` keeps each name's and each pattern's type column.
    """
    out = ExposedMetrics()
    for header, cells in table_rows(text):
        name_col = (
            header.index("prometheus name")
            if "prometheus name" in header
            else (header.index("name") if "name" in header else -1)
        )
        type_col = header.index("type") if "type" in header else -1
        if name_col < 0 or type_col < 0 or max(name_col, type_col) >= len(cells):
            continue
        names = [n for n in re.findall(r"`([^`]+)`", cells[name_col]) if _METRIC_NAME.fullmatch(n)]
        types = [t.strip() for t in cells[type_col].split("/")]
        # Next to a `<placeholder>` name, the other names are its examples, not families of their own.
        has_placeholder = any("<" in n for n in names)
        for j, name in enumerate(names):
            type_ = (types[j] if len(types) == len(names) else types[0]).split(" ")[0]
            if type_ not in TYPES:
                continue
            if _PLACEHOLDER.search(name):
                if "<" in name or type_ == "":
                    pattern = _pattern(name)
                    out.patterns.append(pattern)
                    out.types.setdefault(pattern.pattern, set()).add(type_)
                continue
            if has_placeholder:
                continue
            out.names.add(name)
            out.types.setdefault(name, set()).add(type_)
            if type_ == "histogram":
                out.names.update({f"{name}_sum", f"{name}_count", f"{name}_bucket"})
    return out


def substitute(expr: str) -> str:
    """Grafana's variables replaced by values PromQL accepts."""
    expr = expr.replace("$__rate_interval", f"{int(RATE_SENTINEL.total_seconds())}s")
    expr = expr.replace("$__interval", "1m").replace("$__range", "1h")
    return expr


def parse(expr: str) -> pp.Expr:
    return pp.parse(substitute(expr))


def _children(node: Any) -> list[Any]:
    if isinstance(node, pp.AggregateExpr):
        return [node.expr] + ([node.param] if node.param is not None else [])
    if isinstance(node, pp.BinaryExpr):
        return [node.lhs, node.rhs]
    if isinstance(node, pp.Call):
        return list(node.args)
    if isinstance(node, pp.MatrixSelector):
        return [node.vector_selector]
    if isinstance(node, pp.ParenExpr | pp.UnaryExpr | pp.SubqueryExpr):
        return [node.expr]
    return []


def selectors(
    node: Any, calls: tuple[str, ...] = ()
) -> Iterator[tuple[pp.VectorSelector, tuple[str, ...], Any]]:
    """Every vector selector with the names of the enclosing function calls (innermost last)
    and its immediate range (a MatrixSelector's range, or None)."""
    if isinstance(node, pp.VectorSelector):
        yield node, calls, None
        return
    if isinstance(node, pp.MatrixSelector):
        yield node.vector_selector, calls, node.range
        return
    inner = (*calls, node.func.name) if isinstance(node, pp.Call) else calls
    if isinstance(node, pp.AggregateExpr | pp.BinaryExpr | pp.SubqueryExpr):
        inner = (*calls, type(node).__name__)
    for child in _children(node):
        yield from selectors(child, inner)


def metric_name(sel: pp.VectorSelector) -> str | None:
    if sel.name:
        return str(sel.name)
    for m in sel.matchers.matchers:
        if m.name == "__name__":
            return str(m.value)
    return None


# Series of the exporter itself that belong to no vendor account: the only ones a
# dashboard query may read without filtering on $account.
ACCOUNTLESS = re.compile(
    r"up|scrape_.*|process_.*|python_.*|inference_exporter_(config_.*|shard_.*|total_shards|build_info|asyncio_tasks|web_.*)"
)


def lint_expr(expr: str, where: str, exposed: ExposedMetrics, *, filters: tuple[str, ...]) -> list[Problem]:
    """Problems with one query: PromQL, rate windows, counters, filters, metric names."""
    try:
        tree = parse(expr)
    except (ValueError, TypeError) as exc:
        return [Problem(where, "target-promql-rule", f"invalid PromQL {expr!r}: {exc}")]
    problems = []
    for sel, calls, range_ in selectors(tree):
        name = metric_name(sel)
        if name is None:
            problems.append(Problem(where, "target-metric-rule", "a selector without a metric name"))
            continue
        if name not in exposed:
            problems.append(
                Problem(where, "target-metric-rule", f"{name} is not a metric the exporter exposes")
            )
        parent = calls[-1] if calls else ""
        if parent in RATE_FUNCTIONS and range_ != RATE_SENTINEL:
            problems.append(
                Problem(where, "target-rate-interval-rule", f"{parent}({name}[…]) must use $__rate_interval")
            )
        if name.endswith("_total") and not (range_ is not None and parent in COUNTER_FUNCTIONS):
            problems.append(
                Problem(where, "target-counter-agg-rule", f"counter {name} outside rate/increase")
            )
        matchers = {m.name: m for m in sel.matchers.matchers}
        for label in filters:
            if label == "account" and ACCOUNTLESS.fullmatch(name):
                continue
            m = matchers.get(label)
            if m is None or m.value != f"${label}" or "Re" not in str(m.op):
                problems.append(Problem(where, f"target-{label}-rule", f'{name} lacks {label}=~"${label}"'))
    return problems


def _panels(d: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for p in d.get("panels", []):
        if p.get("type") == "row":
            yield from p.get("panels", [])
        else:
            yield p


def _lint_variables(d: dict[str, Any], title: str, exposed: ExposedMetrics) -> list[Problem]:
    problems = []
    variables = {v.get("name"): v for v in d.get("templating", {}).get("list", [])}
    ds = variables.get("datasource")
    if ds is None or ds.get("type") != "datasource" or ds.get("query") != "prometheus":
        problems.append(
            Problem(title, "template-datasource-rule", "needs a prometheus `datasource` variable")
        )
    for required in ("job", "instance", "account"):
        v = variables.get(required)
        if v is None or v.get("type") != "query" or not v.get("multi") or not v.get("includeAll"):
            problems.append(
                Problem(title, f"template-{required}-rule", f"needs a multi-value `{required}` variable")
            )
    for name, v in variables.items():
        if v.get("type") != "query":
            continue
        where = f"{title} / ${name}"
        if v.get("refresh") != 2:
            problems.append(
                Problem(where, "template-on-time-change-reload-rule", "refresh must be 2 (time change)")
            )
        if v.get("datasource", {}).get("uid") not in DATASOURCE_UIDS:
            problems.append(Problem(where, "template-datasource-rule", "must query $datasource"))
        m = LABEL_VALUES.match(str(v.get("query", "")))
        if m is None:
            problems.append(
                Problem(where, "template-label-promql-rule", "query must be label_values(selector, label)")
            )
        elif m["expr"]:
            problems += lint_expr(m["expr"], where, exposed, filters=())
    return problems


def lint_dashboard(d: dict[str, Any], exposed: ExposedMetrics) -> list[Problem]:
    title = str(d.get("title", "?"))
    problems = _lint_variables(d, title, exposed)
    if d.get("editable", True):
        problems.append(Problem(title, "template-uneditable-rule", "dashboard must not be editable"))
    ids: set[int] = set()
    for p in _panels(d):
        where = f"{title} / {p.get('title') or p.get('id')}"

        def check(ok: bool, rule: str, msg: str, where: str = where) -> None:
            if not ok:
                problems.append(Problem(where, rule, msg))

        check(p.get("id") not in ids, "panel-id-rule", "duplicate panel id")
        ids.add(p.get("id", -1))
        check(bool(p.get("title")), "panel-title-description-rule", "missing title")
        check(bool(p.get("description")), "panel-title-description-rule", "missing description")
        unit = p.get("fieldConfig", {}).get("defaults", {}).get("unit")
        check(unit in VALID_UNITS, "panel-units-rule", f"missing or unknown unit {unit!r}")
        check(
            p.get("datasource", {}).get("uid") in DATASOURCE_UIDS,
            "panel-datasource-rule",
            "must use $datasource",
        )
        targets = p.get("targets") or []
        check(bool(targets), "panel-no-targets-rule", "no queries")
        for t in targets:
            if "datasource" in t:
                check(
                    t["datasource"].get("uid") in DATASOURCE_UIDS,
                    "panel-datasource-rule",
                    "query must use $datasource",
                )
            expr = t.get("expr")
            if not expr:
                check(False, "target-promql-rule", f"query {t.get('refId')} has no expression")
                continue
            problems.extend(lint_expr(expr, where, exposed, filters=("job", "instance", "account")))
    return problems


def panel_queries(d: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(panel title, expression) for every query of every panel."""
    for p in _panels(d):
        for t in p.get("targets") or []:
            if t.get("expr"):
                yield str(p.get("title")), str(t["expr"])


def variable_queries(d: dict[str, Any]) -> Iterator[tuple[str, str | None, str]]:
    """(variable name, selector or None, label) of every ``label_values`` variable."""
    for v in d.get("templating", {}).get("list", []):
        m = LABEL_VALUES.match(str(v.get("query", ""))) if v.get("type") == "query" else None
        if m is not None:
            yield str(v["name"]), m["expr"], m["label"]
