"""The relayed families the mixin reads (docs/metrics.md, "Relayed families the dashboards
read"): each row is what Baseten's organisation endpoint serves (the simulator's, and the
recorded answer written from Baseten's documentation), every row is read and every
relayed read has a row, and the lint knows relayed names by those rows only."""

from __future__ import annotations

import json
import re

import pytest

from exporter.simulator.prom_endpoints import BasetenWithOrgMetrics
from exporter.simulator.state import SimState
from mixin import alerts as alert_rules
from mixin import lint, relayed, slo
from mixin.config import DEFAULT, MixinConfig
from mixin.generate import DASHBOARDS, dashboard_json, outputs
from tests.helpers import REPO

CATALOG_TEXT = (REPO / lint.CATALOG).read_text(encoding="utf-8")
ROWS = {row.name: row for row in relayed.relayed_families(CATALOG_TEXT)}
# A time of the simulator's clock on a whole minute, long after its deployments started.
T = 1_770_460_200.0
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="(?:[^"\\]|\\.)*"')
SERIES_SUFFIXES = {"histogram": ("_bucket", "_sum", "_count"), "summary": ("_sum", "_count")}


def families(text: str) -> dict[str, tuple[str, tuple[str, ...]]]:
    """Family → (type, label names of its first series in order, ``le``/``quantile`` left
    out), from a text exposition."""
    types: dict[str, str] = {}
    labels: dict[str, tuple[str, ...]] = {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, type_ = line.split(" ", 3)
            types[name] = type_
        elif line and not line.startswith("#"):
            series = line.split("{", 1)[0].split(" ", 1)[0]
            own = {f + s: f for f, t in types.items() for s in ("", *SERIES_SUFFIXES.get(t, ()))}
            family = own.get(series, series)
            names = tuple(n for n in LABEL.findall(line) if n not in ("le", "quantile"))
            labels.setdefault(family, names)
    return {name: (type_, labels.get(name, ())) for name, type_ in types.items()}


def simulated() -> dict[str, tuple[str, tuple[str, ...]]]:
    sim = BasetenWithOrgMetrics(SimState(api_keys=frozenset({"k"}), clock=lambda: T))
    return families("".join(sim.org_lines(T)))


def read_relayed(cfg: MixinConfig) -> set[str]:
    """The relayed families (by the vendor's name) every dashboard query, variable and rule reads."""
    exprs = []
    for module in DASHBOARDS:
        d = dashboard_json(module, cfg)
        exprs += [e for _, e in lint.panel_queries(d)]
        exprs += [sel for _, sel, _ in lint.variable_queries(d) if sel]
    exprs += [a.expr for g in alert_rules.groups(cfg) for a in g.alerts]
    exprs += [str(r["expr"]) for o in slo.objectives(cfg) for r in slo.recording_rules(cfg, o)]
    names = {str(lint.metric_name(s)) for e in exprs for s, _, _ in lint.selectors(lint.parse(e))}
    out = set()
    for name in names:
        if not name.startswith(cfg.baseten_relay_prefix):
            continue
        bare = name.removeprefix(cfg.baseten_relay_prefix)
        out.add(
            next(
                (b for b in (bare.removesuffix(s) for s in ("_bucket", "_sum", "_count")) if b in ROWS), bare
            )
        )
    return out


def test_the_table_lists_the_families_the_platform_dashboard_needs() -> None:
    assert {"baseten_inference_requests_total", "baseten_end_to_end_response_time_seconds"} <= set(ROWS)
    assert ROWS["baseten_end_to_end_response_time_seconds"].type == "histogram"
    assert "status_code" in ROWS["baseten_inference_requests_total"].labels


def test_every_row_is_what_the_simulators_organisation_endpoint_serves() -> None:
    served = simulated()
    for name, row in ROWS.items():
        assert name in served, f"{name}: the simulator's organisation endpoint does not serve it"
        assert served[name] == (row.type, row.labels), name


def test_every_family_the_simulator_serves_has_a_row() -> None:
    """What the demo relays is what the platform dashboard shows: a family added to the
    simulator's endpoint wants a row here and a panel."""
    assert set(simulated()) == set(ROWS)


def test_rows_agree_with_the_recorded_vendor_answer() -> None:
    """The recorded answer (tests/fixtures/baseten_relay, from Baseten's documentation) has
    fewer families; those it has carry the row's type and at least its labels."""
    recorded = families((REPO / "tests/fixtures/baseten_relay/org_metrics.txt").read_text(encoding="utf-8"))
    common = set(recorded) & set(ROWS)
    assert {"baseten_inference_requests_total", "baseten_end_to_end_response_time_seconds"} <= common
    for name in common:
        type_, labels = recorded[name]
        assert type_ == ROWS[name].type, name
        assert set(ROWS[name].labels) <= set(labels), name


@pytest.mark.parametrize("prefix", [DEFAULT.baseten_relay_prefix, "org_"])
def test_every_row_is_read_and_every_relayed_read_has_a_row(prefix: str) -> None:
    assert read_relayed(MixinConfig(baseten_relay_prefix=prefix)) == set(ROWS)


def test_the_lint_knows_relayed_names_by_their_rows_only() -> None:
    known = relayed.documented_metrics(CATALOG_TEXT, "relay_")
    for name in (
        "relay_baseten_inference_requests_total",
        "relay_baseten_end_to_end_response_time_seconds_bucket",
        "relay_baseten_end_to_end_response_time_seconds_count",
        "relay_baseten_replicas_active",
        "together_queue_jobs_waiting",  # the catalog's own rows still count
    ):
        assert name in known, name
    assert known.types_of("relay_baseten_time_to_first_byte_seconds_bucket") == {"histogram"}
    for name in (
        "relay_baseten_inference_request_total",  # a typo
        "relay_baseten_llm_input_tokens_total",  # a family no row vouches for
        "relay_together_queue_jobs_waiting",  # the prefix on a native name
        "relay_baseten_replicas_active_bucket",  # a gauge has no buckets
        "baseten_end_to_end_response_time_seconds_bucket",  # the vendor's bare name
        "relay_",
    ):
        assert name not in known, name
    other = relayed.documented_metrics(CATALOG_TEXT, "org_")
    assert "org_baseten_inference_requests_total" in other
    assert "relay_baseten_inference_requests_total" not in other


def test_relayed_rows_stay_out_of_the_catalogs_own_families() -> None:
    """The catalog proper is held to the code (tests/unit/test_metric_catalog.py); relayed
    families are the vendor's."""
    own = lint.exposed_metrics_from_catalog(CATALOG_TEXT)
    assert not {n for n in own.names if n.startswith("relay_")}
    assert "baseten_end_to_end_response_time_seconds_bucket" not in own


def test_a_query_of_an_unlisted_relayed_family_fails_the_lint() -> None:
    sel = '{job=~"$job", instance=~"$instance", account=~"$account"}'
    known = relayed.documented_metrics(CATALOG_TEXT, DEFAULT.baseten_relay_prefix)
    good = f"sum(rate(relay_baseten_inference_requests_total{sel}[$__rate_interval]))"
    assert lint.lint_expr(good, "x", known, filters=("job", "instance", "account")) == []
    for bad in (
        f"sum(rate(relay_baseten_llm_input_tokens_total{sel}[$__rate_interval]))",
        f"histogram_quantile(0.9, sum by (le) (rate(baseten_end_to_end_response_time_seconds_bucket{sel}"
        "[$__rate_interval])))",
    ):
        rules = {p.rule for p in lint.lint_expr(bad, "x", known, filters=("job", "instance", "account"))}
        assert rules == {"target-metric-rule"}, bad


def test_a_custom_relay_prefix_flows_into_the_dashboard_and_the_objective() -> None:
    custom = outputs(MixinConfig(baseten_relay_prefix="org_"))
    platform = custom["grafana/dashboards/baseten-platform.json"]
    assert "org_baseten_end_to_end_response_time_seconds_bucket" in platform
    assert "relay_baseten" not in platform
    assert "rate(org_baseten_inference_requests_total[1h])" in custom["prometheus/slos.yaml"]
    assert "relay_baseten" not in custom["prometheus/slos.yaml"]
    problems = lint.lint_dashboard(json.loads(platform), relayed.documented_metrics(CATALOG_TEXT, "org_"))
    assert problems == [], problems
