"""The collision rule between relayed families and the exporter's own sources."""

from __future__ import annotations

import pytest

from exporter.core.exposition import Family
from exporter.core.scope import DEFAULT_SCOPE
from exporter.sources.relay.lines import unescape_help, unescaped_length
from exporter.sources.relay.names import (
    BASETEN_ORG_PREFIX,
    EXPORTER_NAMESPACE,
    RelayedFamily,
    collisions,
    namespace_overlaps,
)
from exporter.sources.relay.rules import RelayRules
from exporter.sources.relay.translate import relay
from tests.catalog import exposition_types
from tests.golden import golden_path
from tests.golden.replay import FIXTURES
from tests.helpers import exposition, promtool_check_metrics

# Families the management-API Baseten source emits (tests/golden/baseten.prom).
MANAGEMENT = [
    ("baseten_inference_requests_total", "counter"),
    ("baseten_end_to_end_response_time_seconds", "summary"),
    ("baseten_end_to_end_response_time_avg_seconds", "gauge"),
    ("baseten_replicas_active", "gauge"),
]
# Families of Baseten's organisation endpoint (vendor-prometheus-endpoints.md).
ORG_ENDPOINT = [
    ("baseten_inference_requests_total", "counter"),
    ("baseten_end_to_end_response_time_seconds", "histogram"),
    ("baseten_replicas_active", "gauge"),
]


def test_the_organisation_endpoint_collides_with_the_management_api_without_a_prefix() -> None:
    found = collisions(ORG_ENDPOINT, MANAGEMENT)
    assert [c.name for c in found] == [
        "baseten_end_to_end_response_time_seconds",
        "baseten_end_to_end_response_time_seconds_count",
        "baseten_end_to_end_response_time_seconds_created",
        "baseten_end_to_end_response_time_seconds_sum",
        "baseten_inference_requests_total",
        "baseten_replicas_active",
    ]
    assert str(found[-1]) == "family baseten_replicas_active would be emitted by both sources"
    assert str(found[1]) == (
        "series baseten_end_to_end_response_time_seconds_count would be emitted by relayed "
        "baseten_end_to_end_response_time_seconds and by baseten_end_to_end_response_time_seconds"
    )


def test_the_default_prefix_keeps_them_apart() -> None:
    prefixed = [(BASETEN_ORG_PREFIX + name, mtype) for name, mtype in ORG_ENDPOINT]
    assert collisions(prefixed, MANAGEMENT) == []


def test_a_histograms_series_collide_with_a_family_of_their_name() -> None:
    found = collisions([("x", "histogram")], [("x_count", "gauge")])
    assert [(c.name, c.relayed, c.other) for c in found] == [("x_count", "x", "x_count")]


@pytest.mark.parametrize(
    ("prefix", "expected"),
    [
        ("", ["baseten_", "inference_exporter_", "together_queue_"]),
        ("relay_", []),
        ("baseten_org_", ["baseten_"]),
        ("bas", ["baseten_"]),
        ("together_", ["together_queue_"]),
    ],
)
def test_namespace_overlaps_say_where_relayed_names_could_land(prefix: str, expected: list[str]) -> None:
    namespaces = ["baseten_", "together_queue_", EXPORTER_NAMESPACE]
    assert namespace_overlaps(prefix, namespaces) == expected


def test_rules_always_reserve_the_exporters_namespace_and_check_the_prefix() -> None:
    assert RelayRules(reserved=("baseten_",)).reserved == ("baseten_", EXPORTER_NAMESPACE)
    with pytest.raises(ValueError, match="not the start of a valid metric name"):
        RelayRules(prefix="9relay_")


def test_a_relayed_family_takes_the_vendors_naming_an_own_family_does_not() -> None:
    assert RelayedFamily("hits", "counter", "").header() == b"# HELP hits \n# TYPE hits counter\n"
    with pytest.raises(ValueError, match="must end in _total"):
        Family("hits", "counter", "")
    with pytest.raises(ValueError, match="invalid metric name"):
        RelayedFamily("a-b", "gauge", "")


def test_help_and_label_escapes_read_as_prometheus_reads_them() -> None:
    assert unescape_help(r"a\\b\nc\td\\") == "a\\b\nc\\td\\"
    assert unescape_help("trailing \\") == "trailing \\"
    assert unescaped_length(r'"a\"b\\c\nd"') == 7


def test_both_baseten_sources_on_together_make_one_valid_exposition_with_the_prefix_only() -> None:
    """The management-API source's golden exposition and the organisation endpoint relayed
    for the same account: with the default prefix no family is defined twice (promtool
    agrees), without it the collisions are found before anything is emitted."""
    native = golden_path("baseten").read_text(encoding="utf-8")
    prefixed = golden_path("baseten_relay").read_text(encoding="utf-8")
    relayed = exposition_types(prefixed)
    assert any(name.startswith(BASETEN_ORG_PREFIX + "baseten_") for name in relayed)
    assert collisions(relayed.items(), exposition_types(native).items()) == []
    assert promtool_check_metrics(native + prefixed) == ""
    body = (FIXTURES / "baseten_relay" / "org_metrics.txt").read_bytes()
    bare = exposition([relay(body, DEFAULT_SCOPE).rendered]).decode()
    found = collisions(exposition_types(bare).items(), exposition_types(native).items())
    assert {c.name for c in found} >= {
        "baseten_inference_requests_total",
        "baseten_end_to_end_response_time_seconds",
    }
    assert "second HELP line for metric name" in promtool_check_metrics(native + bare)
