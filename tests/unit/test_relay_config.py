"""A relay's keys in the vendors' accounts: defaults, the targets they build, and the
problems they are refused with (file, line, key)."""

from __future__ import annotations

from pathlib import Path

from exporter.config import load_config
from exporter.engine.targets import build_targets
from exporter.sources.relay.target import RelayTarget
from exporter.upstream.api import Clients
from tests.helpers import REPO, problems, write_yaml

MIB = 1024 * 1024


def relays(tmp_path: Path, body: str) -> dict[str, RelayTarget]:
    cfg = load_config(write_yaml(tmp_path, body), read_secrets=False).config
    return {t.id: t for t in build_targets(cfg, Clients()) if isinstance(t, RelayTarget)}


def located(tmp_path: Path, body: str) -> list[str]:
    """The problems of ``body`` as ``line: key: message``."""
    path = write_yaml(tmp_path, body)
    return [p.removeprefix(f"{path}:") for p in problems(path)]


def test_an_empty_organisation_metrics_takes_every_default(tmp_path: Path) -> None:
    body = """\
global: {timeout: 12s}
baseten:
  api_key_env: K
  labels: {team: ml}
  organisation_metrics: {}
"""
    cfg = load_config(write_yaml(tmp_path, body), read_secrets=False).config
    assert not cfg.watches_nothing()
    [(target_id, org)] = relays(tmp_path, body).items()
    s = org.settings
    assert (target_id, org.source, org.account) == ("baseten_relay/organisation", "baseten_relay", "default")
    assert (s.url, s.auth_scheme, s.endpoint) == ("https://app.baseten.co/metrics", "Api-Key", "/metrics")
    assert (s.interval, s.timeout, s.stale_after) == (30.0, 12.0, 300.0)
    assert (s.rules.prefix, s.rules.series_key, s.rules.max_label_length) == ("relay_", "max_series", 1024)
    assert s.rules.reserved == ("inference_exporter_",)
    assert (s.scope.max_series, s.max_body_bytes) == (200_000, 64 * MIB)
    assert s.scope.labels == (("team", "ml"),)


def test_generic_endpoints_take_each_vendors_usual_auth_and_the_configs_native_namespaces(
    tmp_path: Path,
) -> None:
    body = """\
together:
  name: prod
  api_key_env: K
  queues: [{model: org/m}]
  prometheus_endpoints:
    - name: dedicated
      url: https://api.together.ai/v1/dedicated-endpoints/metrics?window=1m
      labels: {deployment: pool}
    - {name: other, url: /other/metrics, auth: api_key, interval: 2m, timeout: 3m,
       stale_after: 10m, metric_prefix: ext_, max_series: 10, max_response_bytes: 2048}
baseten:
  name: prod
  api_key_env: K
  deployments: [{model_id: m, deployment_id: d}]
  prometheus_endpoints: [{name: sync, url: "https://model-x.api.baseten.co/sync/metrics", auth: bearer}]
  organisation_metrics: {interval: 1m, max_label_value_length: 64}
"""
    # A key of the account's written in the relay is placed where it belongs.
    assert located(tmp_path, body) == [
        "16: baseten.organisation_metrics.max_label_value_length: unknown key here; "
        "'max_label_value_length' belongs under baseten: indent it less"
    ]
    body = body.replace(", max_label_value_length: 64", "")
    found = relays(tmp_path, body)
    assert sorted(found) == [
        "baseten_relay@prod/organisation",
        "baseten_relay@prod/sync",
        "together_relay@prod/dedicated",
        "together_relay@prod/other",
    ]
    dedicated = found["together_relay@prod/dedicated"].settings
    assert (dedicated.auth_scheme, dedicated.interval, dedicated.rules.prefix) == ("Bearer", 60.0, "")
    assert dedicated.endpoint == "/v1/dedicated-endpoints/metrics"
    assert dedicated.scope.labels == (("deployment", "pool"),)
    # What a relay may not emit into: the namespaces of the sources this config runs.
    assert dedicated.rules.reserved == ("baseten_", "together_queue_", "inference_exporter_")
    other = found["together_relay@prod/other"].settings
    assert (other.auth_scheme, other.url, other.endpoint) == ("Api-Key", "/other/metrics", "/other/metrics")
    assert (other.interval, other.timeout, other.stale_after) == (120.0, 120.0, 600.0)
    assert (other.rules.prefix, other.scope.max_series, other.max_body_bytes) == ("ext_", 10, 2048)
    assert found["baseten_relay@prod/sync"].settings.auth_scheme == "Bearer"
    assert found["baseten_relay@prod/organisation"].settings.interval == 60.0


def test_intervals_under_10s_are_refused_with_the_reason(tmp_path: Path) -> None:
    body = """\
together:
  api_key_env: K
  prometheus_endpoints: [{name: d, url: "https://x.test/metrics", interval: 9s}]
baseten:
  api_key_env: K
  organisation_metrics:
    interval: 5s
"""
    assert located(tmp_path, body) == [
        "3: together.prometheus_endpoints[0].interval: an interval under 10s is refused (9s given): it is "
        "fetched once per interval whatever the number of scrapers, and vendors' metrics endpoints allow "
        "a few requests a minute (Baseten's, Fireworks' and Cerebras': 6 per organisation)",
        "7: baseten.organisation_metrics.interval: an interval under 10s is refused (5s given): the "
        "organisation endpoint refreshes every 30 s and allows 6 requests per minute per organisation "
        "(429 beyond)",
    ]


def test_names_urls_prefixes_and_bounds_are_checked_with_their_lines(tmp_path: Path) -> None:
    body = """\
together:
  api_key_env: K
  prometheus_endpoints:
    - {name: a/b, url: "ftp://x", metric_prefix: 1x}
"""
    assert sorted(located(tmp_path, body)) == [
        "4: together.prometheus_endpoints[0].metric_prefix: metric prefix '1x' is not the start of a "
        "valid metric name",
        "4: together.prometheus_endpoints[0].name: 'a/b' is not a relay name: 1 to 63 letters, digits, "
        "'_', '.' or '-', starting with a letter or digit (it is a part of the target's id)",
        "4: together.prometheus_endpoints[0].url: 'ftp://x' is neither an http(s) URL nor a path under "
        "the account's base_url (starting with /)",
    ]
    body = """\
together:
  api_key_env: K
  prometheus_endpoints:
    - {name: d, url: "https://x.test/a"}
    - name: d
      url: https://x.test/b
      interval: 2m
      stale_after: 1m
baseten:
  api_key_env: K
  organisation_metrics: {}
  prometheus_endpoints: [{name: organisation, url: /m}]
"""
    assert located(tmp_path, body) == [
        "5: together.prometheus_endpoints[1].name: duplicate relay name 'd' (first at prometheus_endpoints[0])",
        "8: together.prometheus_endpoints[1].stale_after: stale_after (1m) is shorter than the interval (2m): "
        "the last body would be dropped before the next fetch, so a rate-limited fetch would always leave "
        "a gap; make it at least the interval (default 5m)",
        "12: baseten.prometheus_endpoints[0].name: 'organisation' is the name of the account's organisation "
        "relay",
    ]


def test_an_organisation_prefix_inside_baseten_is_refused_with_management_targets_anywhere(
    tmp_path: Path,
) -> None:
    body = """\
baseten:
  accounts:
    - name: mgmt
      api_key_env: K
      discovery: [{model_names: [llama-chat]}]
      metrics: [baseten_gpu_memory_used]
    - name: org
      api_key_env: K
      organisation_metrics:
        metric_prefix: baseten_org_
"""
    [problem] = located(tmp_path, body)
    assert problem == (
        "10: baseten.accounts[1].organisation_metrics.metric_prefix: metric_prefix 'baseten_org_' leaves "
        "the organisation endpoint's relayed families (organisation_metrics) in baseten_, where the "
        "management-API source (baseten.accounts[0].discovery) names its own, with other types and "
        "labels: any family both send would be defined twice in one exposition. Keep the default "
        "metric_prefix 'relay_' (or any prefix outside baseten_), or remove the deployments and "
        "discovery rules"
    )
    # Without management-API targets the vendor's own names are the user's to keep.
    alone = "baseten:\n  api_key_env: K\n  organisation_metrics: {metric_prefix: ''}\n"
    [org] = relays(tmp_path, alone).values()
    assert org.settings.rules.prefix == ""


def test_filter_warnings_know_relayed_families_are_the_vendors_to_name(tmp_path: Path) -> None:
    body = """\
together:
  api_key_env: K
  metric_filter: {allow: ["together_endpoint_.*"]}
  prometheus_endpoints: [{name: d, url: "https://x.test/metrics"}]
baseten:
  api_key_env: K
  metric_filter: {deny: ["relay_baseten_gpu_.*", "baseten_nothing_.*"]}
  organisation_metrics: {}
"""
    loaded = load_config(write_yaml(tmp_path, body), read_secrets=False)
    assert [w.key for w in loaded.warnings] == ["baseten.metric_filter.deny[1]"]
    body = body.replace('deny: ["relay_baseten_gpu_.*", "baseten_nothing_.*"]', 'allow: ["nothing"]')
    [warning] = load_config(write_yaml(tmp_path, body), read_secrets=False).warnings
    assert "removes every family of its organisation_metrics (relay_baseten_inference_requests_total" in (
        warning.message
    )


def test_the_examples_relay_blocks_are_off_and_valid_once_uncommented(tmp_path: Path) -> None:
    text = (REPO / "config.example.yaml").read_text()
    example = load_config(REPO / "config.example.yaml", read_secrets=False).config
    assert example.baseten is not None and example.baseten.organisation_metrics is None
    lines = text.splitlines()
    for key in ("  # prometheus_endpoints:", "  # organisation_metrics:"):
        for start in [i for i, line in enumerate(lines) if line == key]:
            lines[start] = lines[start].replace("  # ", "  ", 1)
            i = start + 1
            while i < len(lines) and lines[i].startswith("  #  "):
                lines[i] = lines[i].replace("  # ", "  ", 1)
                i += 1
    found = relays(tmp_path, "\n".join(lines) + "\n")
    assert sorted(found) == [
        "baseten_relay/llama-sync",
        "baseten_relay/organisation",
        "together_relay/dedicated",
    ]
    # The example shows the defaults.
    org = found["baseten_relay/organisation"].settings
    assert (org.interval, org.stale_after, org.rules.prefix, org.scope.max_series) == (
        30,
        300,
        "relay_",
        200_000,
    )
    dedicated = found["together_relay/dedicated"].settings
    assert (dedicated.interval, dedicated.auth_scheme, dedicated.max_body_bytes) == (60, "Bearer", 64 * MIB)
