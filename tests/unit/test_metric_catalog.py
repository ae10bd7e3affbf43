"""The metrics catalog (docs/metrics.md) against the families the code defines, both ways.

A family the code defines that the catalog lacks (or types differently) fails here, and
so does a catalog entry no code defines, or a labels cell that is not the family's label
names. The exporter's self-metrics that only a running
daemon shows are checked against a live ``/metrics`` in
``tests/integration/test_metric_catalog.py``.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from prometheus_client import generate_latest

from exporter.core.exposition import CONTENT_TYPE
from exporter.core.scope import DEFAULT_SCOPE
from exporter.core.selfmetrics import SelfMetrics, UpstreamStats
from exporter.core.sharding import Shard
from exporter.engine.health import HealthLines, TargetHealth
from exporter.simulator.baseten_data import METRICS as DOCUMENTED_BASETEN_METRICS
from exporter.sources.registry import REGISTRY
from exporter.sources.relay.stats import RelayCollector
from exporter.sources.relay.target import RelaySettings, RelayTarget
from exporter.sources.together.finetune.names import key_family, metric_name
from exporter.web.httpguard import ConnectionGuard
from exporter.web.limits import DEFAULT_LIMITS
from exporter.web.webconfig import WebSecurity
from mixin import lint
from tests.catalog import (
    VENDOR_NAMED_PREFIX,
    DocumentedLabels,
    baseten_mapping,
    catalog_labels,
    catalog_metrics,
    catalog_text,
    code_families,
    defined_by_code,
    documented_labels,
    exposition_labels,
    exposition_types,
    label_rows,
    mapped_families,
    type_problems,
)
from tests.golden import BUILDERS, golden_path
from tests.helpers import exposition, mock_clients
from tests.pki import issue, make_ca

SELF_METRICS_PREFIX = "inference_exporter_"


def test_families_of_every_source_are_collected_from_the_code() -> None:
    names = code_families().keys()
    for expected in (
        "together_queue_jobs_waiting",
        "together_queue_probe_success",
        "together_finetune_job_info",
        "baseten_deployment_info",
        "inference_exporter_target_up",
    ):
        assert expected in names


def test_every_family_in_the_code_is_in_the_catalog_with_its_type() -> None:
    found = {name: fam.type for name, fam in code_families().items()}
    problems = type_problems(found, catalog_metrics(), "the code")
    assert not problems, "\n".join(problems)


def test_every_catalog_entry_is_defined_by_the_code() -> None:
    """Self-metrics not defined as Family objects are left to the live check."""
    catalog = catalog_metrics()
    undefined = [
        name
        for name in sorted(catalog.names)
        if not defined_by_code(name)
        and not (name.startswith(SELF_METRICS_PREFIX) and name not in code_families())
    ]
    assert not undefined, f"catalogued but defined by no code: {undefined}"


def test_the_catalogs_labels_are_those_each_vendor_family_declares() -> None:
    """The labels column of every family a vendor declares (``Vendor.families``), in the
    order its series carry them; and of the fine-tune key families' pattern."""
    documented = catalog_labels(catalog_text())
    families = [f for vendor in REGISTRY for f in vendor.families]
    assert families
    for family in families:
        assert documented.get(family.name) == family.labels, family.name
    assert documented["together_finetune_<key>"] == key_family("train/loss").labels == ("job_id",)


def test_baseten_mapping_table_is_what_the_code_does() -> None:
    rows = baseten_mapping(catalog_text())
    assert len(rows) >= 10
    for row in rows:
        assert mapped_families(row.vendor_name, row.kind, row.unit_hint) == row.families, row.vendor_name


def test_every_documented_baseten_metric_has_a_mapping_row() -> None:
    rows = {r.vendor_name: r for r in baseten_mapping(catalog_text())}
    for name, metric in DOCUMENTED_BASETEN_METRICS.items():
        assert name in rows, f"{name} has no row in the catalog's Baseten mapping table"
        assert (rows[name].kind, rows[name].unit_hint) == (metric.kind, metric.unit_hint), name


@pytest.mark.parametrize(
    "key",
    ["train/loss", "eval/accuracy", "train/grad-norm", "epoch", "train/tokens_total", "Custom Metric"],
)
def test_every_fine_tune_key_name_is_a_catalogued_gauge(key: str) -> None:
    name = metric_name(key)
    catalog = catalog_metrics()
    assert name in catalog
    assert catalog.types_of(name) == {key_family(key).type} == {"gauge"}


# A relay passes on families a vendor names and defines: they are the vendor's to
# document, not the catalog's (tests/golden/relay.py).
RELAYED_SOURCES = {"baseten_relay", "together_relay"}


@pytest.mark.parametrize("source", sorted(set(BUILDERS) - RELAYED_SOURCES))
def test_every_family_of_a_golden_exposition_is_catalogued(source: str) -> None:
    found = exposition_types(golden_path(source).read_text(encoding="utf-8"))
    assert found
    documented_vendor_names = {name for row in baseten_mapping(catalog_text()) for name in row.families} | {
        "baseten_deployment_info",
        "baseten_deployment_status",
    }
    # Undocumented vendor metrics are named by the mapping's rules (the `baseten_*` row).
    checked = {
        name: t
        for name, t in found.items()
        if not name.startswith(VENDOR_NAMED_PREFIX) or name in documented_vendor_names
    }
    problems = type_problems(checked, catalog_metrics(), golden_path(source).name)
    assert not problems, "\n".join(problems)


def test_catalog_records_types_of_names_and_patterns() -> None:
    catalog = lint.exposed_metrics_from_catalog(
        "| name | type |\n| --- | --- |\n| `a_total` | counter |\n| `b_<key>` | gauge |\n| `p_*` | |\n"
    )
    assert catalog.types_of("a_total") == {"counter"}
    assert catalog.types_of("b_x_y") == {"gauge"}
    assert catalog.types_of("p_anything") == {""}
    assert catalog.types_of("unknown_name") == set()


def relay_that_fetched(stats: UpstreamStats) -> RelayTarget:
    """A relay target that has relayed a body (its self-metrics have a series each)."""

    def vendor(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200, text="# TYPE x_things gauge\nx_things 1\n", headers={"Content-Type": CONTENT_TYPE}
        )

    target = RelayTarget(
        mock_clients("baseten", vendor, stats),
        RelaySettings("baseten", "org", "https://app.baseten.co/metrics", 30, 5, 120, "Api-Key"),
    )
    asyncio.run(target.poll(1.7e9))
    return target


def self_metrics_labels(tmp_path: Path) -> dict[str, set[str]]:
    """The label names of every self-metric family: an exporter's registry with its HTTP
    server's counters, a TLS web config's and a relay's, after one count of each event; and
    a target's health through a success and a failure, less the target's own labels."""
    metrics = SelfMetrics(Shard(0, 1), lambda: 0)
    ConnectionGuard(DEFAULT_LIMITS, metrics.registry)
    ca = make_ca("catalog-ca")
    cert, key = issue(ca, "server", ips=["127.0.0.1"]).write(tmp_path, "server")
    web = tmp_path / "web.yml"
    web.write_text(f"tls_server_config:\n  cert_file: {cert}\n  key_file: {key}\n")
    security = WebSecurity.from_file(web)
    metrics.registry.register(security.collector())
    stats = metrics.upstream
    stats.count("together_queue", "/queue/metrics", "200")
    stats.retries.labels("together_queue", "/queue/metrics", stats.account).inc()
    stats.budget_wait_seconds.labels("together", stats.account).inc(0.5)
    stats.budget_refusals.labels("together", stats.account).inc()
    stats.limit_hit("baseten", "max_series_per_target")
    stats.rate_limit("together", "together_queue", "/queue/metrics", 600.0, 599.0, 1.7e9)
    relay = relay_that_fetched(stats)
    metrics.registry.register(RelayCollector(lambda: [relay]))
    health = HealthLines("together_queue/m", "together_queue")
    h = TargetHealth()
    h.record_success(100.0, 0.5, 2)
    h.record_failure(120.0, 0.5, "timeout", "no answer")
    try:
        registry = exposition_labels(generate_latest(metrics.registry).decode())
    finally:
        security.close()
    target_labels = [k for k, _ in DEFAULT_SCOPE.extra]
    return registry | exposition_labels(exposition([health.render_health(h)]).decode(), dropped=target_labels)


def test_the_labels_of_every_self_metric_are_the_catalogs(tmp_path: Path) -> None:
    """The catalog's labels column against the label names the registry and the health
    lines give each family (a target's health less the target's own labels)."""
    rows = label_rows(catalog_text())
    ours = {
        n: labels for n, labels in self_metrics_labels(tmp_path).items() if n.startswith(SELF_METRICS_PREFIX)
    }
    problems = [
        f"{name} {problem}"
        for name, labels in sorted(ours.items())
        for documented in documented_labels(name, rows) or [DocumentedLabels(("(no row)",))]
        if (problem := documented.problem(labels))
    ]
    assert not problems, "\n".join(problems)
    unchecked = {r.name for r in rows if r.name.startswith(SELF_METRICS_PREFIX)} - ours.keys()
    assert not unchecked, f"catalogued self-metrics this test gave no series: {sorted(unchecked)}"


@pytest.mark.parametrize("source", sorted(set(BUILDERS) - RELAYED_SOURCES))
def test_the_labels_of_every_vendor_family_are_the_catalogs(source: str) -> None:
    """The catalog's labels columns (the families' table and the Baseten mapping) against
    the label names of each family in the golden exposition, less the target's labels."""
    rows = label_rows(catalog_text())
    text = golden_path(source).read_text(encoding="utf-8")
    found = exposition_labels(text, dropped=[k for k, _ in DEFAULT_SCOPE.extra])
    assert found
    problems = [
        f"{name} {problem}"
        for name, labels in sorted(found.items())
        for documented in documented_labels(name, rows) or [DocumentedLabels(("(no row)",))]
        if (problem := documented.problem(labels))
    ]
    assert not problems, "\n".join(problems)


def test_a_labels_cell_is_read_as_exact_or_as_a_floor() -> None:
    rows = label_rows(
        "| name | type | labels | source |\n| --- | --- | --- | --- |\n"
        "| `a_total` | counter | `x`, `y` | s |\n| `b_gauge` | gauge | — | s |\n"
        "| `c_<key>` | gauge | `job_id` | s |\n| `d_*` (one per thing) | per kind | `m` + the thing's labels | s |\n"
        "| `p_*` | | | s |\n\n"
        "| vendor name | Prometheus name | type | labels (besides `m`) |\n| --- | --- | --- | --- |\n"
        "| `v` | `e_seconds` / `e_avg_seconds` | summary / gauge | `quantile` / — |\n"
        "| `w` | `f_total` | counter | `status` (`2xx`, `5xx`) |\n"
    )
    said = {r.name: r.labels for r in rows}
    assert said == {
        "a_total": DocumentedLabels(("x", "y")),
        "b_gauge": DocumentedLabels(()),
        "c_<key>": DocumentedLabels(("job_id",)),
        "d_*": DocumentedLabels(("m",), exact=False),
        "e_seconds": DocumentedLabels(("m", "quantile")),
        "e_avg_seconds": DocumentedLabels(("m",)),
        "f_total": DocumentedLabels(("m", "status")),
    }
    assert documented_labels("c_train_loss", rows) == [DocumentedLabels(("job_id",))]
    assert documented_labels("d_anything", rows)[0].problem({"m", "gpu"}) is None
    assert documented_labels("a_total", rows)[0].problem({"x"}) == "has labels ['x'], the catalog lists x, y"
    assert documented_labels("b_gauge", rows)[0].problem(set()) is None
