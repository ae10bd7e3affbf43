"""The metrics catalog (docs/metrics.md) against the families the code defines, both ways.

A family the code defines that the catalog lacks (or types differently) fails here, and
so does a catalog entry no code defines. The exporter's self-metrics that only a running
daemon shows are checked against a live ``/metrics`` in
``tests/integration/test_metric_catalog.py``.
"""

from __future__ import annotations

import pytest

from exporter.simulator.baseten_data import METRICS as DOCUMENTED_BASETEN_METRICS
from exporter.sources.registry import REGISTRY
from exporter.sources.together.finetune.names import key_family, metric_name
from mixin import lint
from tests.catalog import (
    VENDOR_NAMED_PREFIX,
    baseten_mapping,
    catalog_labels,
    catalog_metrics,
    catalog_text,
    code_families,
    defined_by_code,
    exposition_types,
    mapped_families,
    type_problems,
)
from tests.golden import BUILDERS, golden_path

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
