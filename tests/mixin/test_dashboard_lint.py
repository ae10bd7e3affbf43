"""The dashboard linter's rules, on the committed dashboards and on seeded violations."""

from __future__ import annotations

import copy
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from mixin import lint, relayed, slo
from mixin.config import DEFAULT
from mixin.generate import DASHBOARDS, repo_root
from tests.helpers import need_binary

ROOT = repo_root()
DASHBOARD_FILES = sorted((ROOT / "grafana/dashboards").glob("*.json"))


def exposed() -> lint.ExposedMetrics:
    """What the exporter exposes, and what the mixin's SLO rules record from it."""
    ex = relayed.documented_metrics(
        (ROOT / lint.CATALOG).read_text(encoding="utf-8"), DEFAULT.baseten_relay_prefix
    )
    ex.names |= slo.recorded_names(DEFAULT)
    return ex


def load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def test_every_generated_dashboard_is_committed() -> None:
    assert {p.name for p in DASHBOARD_FILES} == {m.FILENAME for m in DASHBOARDS}


@pytest.mark.parametrize("path", DASHBOARD_FILES, ids=lambda p: p.name)
def test_committed_dashboard_is_lint_clean(path: Path) -> None:
    problems = lint.lint_dashboard(load(path), exposed())
    assert not problems, "\n".join(map(str, problems))


@pytest.mark.parametrize("path", DASHBOARD_FILES, ids=lambda p: p.name)
def test_every_query_is_valid_promql_for_promtool(path: Path, tmp_path: Path) -> None:
    """Prometheus's own parser: each query (variables substituted) as a recording rule."""
    promtool = need_binary("promtool")
    d = load(path)
    exprs = [lint.substitute(e) for _, e in lint.panel_queries(d)]
    exprs += [lint.substitute(sel) for _, sel, _ in lint.variable_queries(d) if sel]
    assert exprs
    rules = {
        "groups": [
            {"name": "lint", "rules": [{"record": f"lint:q{i}", "expr": e} for i, e in enumerate(exprs)]}
        ]
    }
    rule_file = tmp_path / "queries.yaml"
    rule_file.write_text(yaml.safe_dump(rules), encoding="utf-8")
    res = subprocess.run(
        [promtool, "check", "rules", str(rule_file)], capture_output=True, text=True, timeout=60
    )
    assert res.returncode == 0, res.stdout + res.stderr
    assert f"SUCCESS: {len(exprs)} rules found" in res.stdout


def test_catalog_metrics_table_is_parsed() -> None:
    ex = exposed()
    assert "together_queue_jobs_waiting" in ex
    assert "inference_exporter_upstream_requests_total" in ex
    assert "process_cpu_seconds_total" in ex  # the `process_*` row
    assert "up" in ex  # Prometheus's own series
    assert "together_queue_jobs_total" not in ex
    assert "baseten_gpu_memory_used_bytes" in ex  # from the Baseten mapping table
    assert "baseten_gpu_memory_used" not in ex  # the vendor's name, not ours


CATALOG_TABLES = """
| name | type | labels | source |
| --- | --- | --- | --- |
| `a_seconds` | histogram | `x` | … |
| `b_x`, `c_info` | gauge | | … |
| `ft_<namespace>_<name>` (e.g. `ft_train_loss`) | gauge | `job_id` | a logged key |
| `vendor_*` (one per descriptor) | per `kind` | | … |
| `process_*` | | | client library |

Some prose with `not_a_table_metric` | gauge |.

| vendor name | kind | Prometheus name | type |
| --- | --- | --- | --- |
| `v_lat` | HISTOGRAM | `vendor_lat_seconds` / `vendor_lat_avg_seconds` | summary / gauge |
| `v_req` | COUNTER | `vendor_requests_total` | counter |
| any other `x` | GAUGE | `x` with a suffix | gauge |
"""


def test_catalog_tables_are_parsed() -> None:
    ex = lint.exposed_metrics_from_catalog(CATALOG_TABLES)
    assert {"a_seconds_bucket", "a_seconds_sum", "a_seconds_count", "b_x", "c_info"} <= ex.names
    assert {"vendor_lat_seconds", "vendor_lat_avg_seconds", "vendor_requests_total"} <= ex.names
    # Baseten-style summaries have quantile series only.
    assert "vendor_lat_seconds_count" not in ex
    assert "ft_train_loss" in ex and "ft_eval_accuracy" in ex
    assert "ft_" not in ex and "xft_train_loss" not in ex
    assert "process_cpu_seconds_total" in ex
    # A "one family per descriptor" wildcard does not vouch for arbitrary names.
    assert "vendor_typo_gauge" not in ex
    assert "not_a_table_metric" not in ex
    assert "x" not in ex.names and "name" not in ex.names


# --- each rule catches its violation --------------------------------------------------------

BASE = load(ROOT / "grafana/dashboards/together-queues.json")


def first_panel(d: dict[str, Any]) -> dict[str, Any]:
    return next(p for p in d["panels"] if p["type"] != "row")


def set_expr(expr: str) -> Any:
    def mutate(d: dict[str, Any]) -> None:
        first_panel(d)["targets"][0]["expr"] = expr

    return mutate


SEL = '{job=~"$job", instance=~"$instance"}'


def _drop_var(name: str) -> Any:
    def mutate(d: dict[str, Any]) -> None:
        d["templating"]["list"] = [v for v in d["templating"]["list"] if v["name"] != name]

    return mutate


def _var(name: str, key: str, value: Any) -> Any:
    def mutate(d: dict[str, Any]) -> None:
        next(v for v in d["templating"]["list"] if v["name"] == name)[key] = value

    return mutate


def _panel(key: str, value: Any) -> Any:
    def mutate(d: dict[str, Any]) -> None:
        first_panel(d)[key] = value

    return mutate


def _unit(value: Any) -> Any:
    def mutate(d: dict[str, Any]) -> None:
        first_panel(d)["fieldConfig"]["defaults"]["unit"] = value

    return mutate


def _editable(d: dict[str, Any]) -> None:
    d["editable"] = True


VIOLATIONS = {
    "template-datasource-rule": _drop_var("datasource"),
    "template-job-rule": _drop_var("job"),
    "template-instance-rule": _drop_var("instance"),
    "template-account-rule": _drop_var("account"),
    "template-on-time-change-reload-rule": _var("model", "refresh", 1),
    "template-label-promql-rule": _var("model", "query", "query_result(up)"),
    "template-uneditable-rule": _editable,
    "panel-title-description-rule": _panel("description", ""),
    "panel-units-rule": _unit("furlongs"),
    "panel-datasource-rule": _panel("datasource", {"type": "prometheus", "uid": "prod-prometheus"}),
    "panel-no-targets-rule": _panel("targets", []),
    "target-promql-rule": set_expr(f"sum(together_queue_jobs_waiting{SEL}"),
    "target-rate-interval-rule": set_expr(f"rate(inference_exporter_target_polls_total{SEL}[5m])"),
    "target-counter-agg-rule": set_expr(f"inference_exporter_target_polls_total{SEL}"),
    "target-job-rule": set_expr('together_queue_jobs_waiting{instance=~"$instance"}'),
    "target-instance-rule": set_expr('together_queue_jobs_waiting{job=~"$job"}'),
    "target-account-rule": set_expr('together_queue_jobs_waiting{job=~"$job", instance=~"$instance"}'),
    "target-metric-rule": set_expr(f"together_queue_jobs_total{SEL}"),
}


@pytest.mark.parametrize("rule", sorted(VIOLATIONS))
def test_rule_catches_its_violation(rule: str) -> None:
    d = copy.deepcopy(BASE)
    VIOLATIONS[rule](d)
    problems = lint.lint_dashboard(d, exposed())
    assert rule in {p.rule for p in problems}, [str(p) for p in problems]


@pytest.mark.parametrize(
    "expr",
    [
        f"max_over_time(inference_exporter_target_polls_total{SEL}[$__rate_interval])",
        f"sum(inference_exporter_target_polls_total{SEL}) > 0",
        f"rate(inference_exporter_target_polls_total{SEL}[$__rate_interval:])",
    ],
)
def test_counter_outside_rate_is_caught_in_any_position(expr: str) -> None:
    problems = lint.lint_expr(expr, "x", exposed(), filters=("job", "instance"))
    assert "target-counter-agg-rule" in {p.rule for p in problems}, problems


def test_well_formed_queries_pass() -> None:
    for expr in [
        f"sum by (source) (rate(inference_exporter_target_polls_total{SEL}[$__rate_interval]))",
        f"increase(inference_exporter_upstream_requests_total{SEL}[$__rate_interval]) / 2",
        f"time() - (inference_exporter_target_last_success_timestamp_seconds{SEL} > 0)",
        f"count(together_queue_jobs_waiting{SEL} > 100) or vector(0)",
    ]:
        assert lint.lint_expr(expr, "x", exposed(), filters=("job", "instance")) == []
