"""The ``baseten:`` config section: defaults, inheritance and problems with file:line:key."""

from __future__ import annotations

from pathlib import Path

from exporter.config import load_config
from exporter.engine.targets import build_targets
from exporter.sources.baseten.config import effective
from exporter.upstream.api import Clients
from tests.helpers import REPO, problems, run_cli, write_yaml


def write(tmp_path: Path, body: str) -> Path:
    return write_yaml(tmp_path, body, "c.yaml")


def located(tmp_path: Path, body: str) -> list[str]:
    """The problems of ``body`` as ``line: key: message`` (the file is always the same)."""
    path = write(tmp_path, body)
    return [p.removeprefix(f"{path}:") for p in problems(path)]


def test_defaults_inheritance_and_targets(tmp_path: Path) -> None:
    body = """\
baseten:
  api_key_env: BASETEN_API_KEY
  mode: SERIES
  window: 20m
  metrics: [baseten_replicas_active]
  deployments:
    - model_id: m1
      deployment_id: d1
    - model_id: m1
      deployment_id: d2
      mode: CURRENT
      metrics: []
      delay: 1m
      poll_interval: 15s
  discovery:
    - model_names: [llama]
      environments: [production]
      production_only: true
      refresh_interval: 10m
"""
    cfg = load_config(write(tmp_path, body), read_secrets=False).config
    assert cfg.baseten is not None
    assert cfg.baseten.base_url == "https://api.baseten.co"
    d1, d2 = (effective(cfg.baseten, d) for d in cfg.baseten.deployments)
    assert (d1.mode, d1.window, d1.metrics, d1.delay) == (
        "SERIES",
        1200.0,
        ("baseten_replicas_active",),
        180.0,
    )
    assert (d2.mode, d2.metrics, d2.delay, d2.counter_window) == ("CURRENT", (), 60.0, 900.0)
    targets = build_targets(cfg, Clients())
    assert [t.id for t in targets] == ["baseten/m1/d1", "baseten/m1/d2", "baseten_discovery/0"]
    assert targets[1].interval == 15.0
    assert targets[2].interval == 600.0
    # Unchanged config → equal settings, so a reload keeps targets and their state.
    again = build_targets(load_config(write(tmp_path, body), read_secrets=False).config, Clients())
    assert [t.settings for t in again] == [t.settings for t in targets]


def test_window_and_mode_rules_are_rejected_with_lines(tmp_path: Path) -> None:
    body = """\
baseten:
  api_key_env: K
  window: 5m
  deployments:
    - model_id: m1
      deployment_id: d1
      mode: SUMMARY
      window: 8d
    - model_id: m1
      deployment_id: d2
      window: 10m
    - model_id: m1
      deployment_id: d1
      mode: SERIES
      window: 30s
      metrics: [a, b, a]
  discovery:
    - skip_statuses: [INACTIVE, ASLEEP]
      counter_window: 30s
      mode: BATCH
"""
    got = located(tmp_path, body)
    assert (
        "8: baseten.deployments[0].window: the window must not exceed 7 days (the vendor rejects longer windows)"
        in got
    )
    assert any(
        g.startswith("18: baseten.discovery[0].skip_statuses: unknown deployment status 'ASLEEP'")
        for g in got
    )
    assert (
        "20: baseten.discovery[0].mode: expected one of 'CURRENT', 'SUMMARY' or 'SERIES', got 'BATCH'" in got
    )


def test_semantic_rules(tmp_path: Path) -> None:
    body = """\
global:
  poll_interval: 30s
baseten:
  api_key_env: K
  window: 5m
  deployments:
    - model_id: m1
      deployment_id: d2
      window: 10m
    - model_id: m1
      deployment_id: d2
      mode: SERIES
      window: 1m
      metrics: [a, b, a]
  discovery:
    - counter_window: 45s
"""
    got = located(tmp_path, body)
    current = "a window (start) is only valid with mode SUMMARY or SERIES"
    assert any(g.startswith(f"5: baseten.window: {current}") for g in got)
    assert any(g.startswith(f"9: baseten.deployments[0].window: {current}") for g in got)
    assert "14: baseten.deployments[1].metrics[2]: duplicate metric 'a' (first at metrics[0])" in got
    assert any(
        g.startswith("11: baseten.deployments[1].deployment_id: duplicate deployment m1/d2") for g in got
    )
    assert any(
        g.startswith("13: baseten.deployments[1].window: window (1m) must be at least the poll") for g in got
    )
    assert any(g.startswith("16: baseten.discovery[0].counter_window: counter_window (45s)") for g in got)
    assert len(got) == 6, got


def test_check_config_cli_prints_file_line_key(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "baseten:\n  api_key_env: K\n  deployments:\n    - model_id: m\n      deployment_id: d\n      window: 9d\n",
    )
    res = run_cli("check-config", str(path), "--no-secrets")
    assert res.returncode == 1
    assert f"{path}:6: baseten.deployments[0].window: the window must not exceed 7 days" in res.stderr


def test_example_and_demo_configs_are_valid_and_show_baseten(tmp_path: Path) -> None:
    example = load_config(REPO / "config.example.yaml", read_secrets=False).config
    assert example.baseten is not None and example.baseten.deployments and example.baseten.discovery
    demo = (REPO / "exporter/demo/demo.yaml").read_text().replace("__SIMULATOR_URL__", "http://127.0.0.1:1")
    cfg = load_config(write(tmp_path, demo), read_secrets=False).config
    assert cfg.baseten is not None
    ids = [t.id for t in build_targets(cfg, Clients())]
    assert "baseten@prod/m2whisper/d2prod" in ids and "baseten_discovery@prod/0" in ids
    assert "baseten_discovery@staging/0" in ids
