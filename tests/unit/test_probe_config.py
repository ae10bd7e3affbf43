"""The ``together.probes`` config: defaults, validation with file:line:key, off unless listed."""

from __future__ import annotations

from pathlib import Path

import pytest

from exporter.config import load_config
from exporter.engine.targets import build_targets
from exporter.sources.together.probe import ProbeTarget
from exporter.sources.together.probe_translate import DEFAULT_BUCKETS
from exporter.upstream.api import Clients
from tests.helpers import REPO, problems, run_cli, write_yaml

HEAD = """\
together:
  api_key_env: PROBE_TEST_KEY
"""


def write(tmp_path: Path, body: str) -> Path:
    return write_yaml(tmp_path, HEAD + body)


def test_no_probes_unless_configured(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, "  queues:\n    - model: a\n"), read_secrets=False).config
    assert cfg.together is not None and cfg.together.probes == []
    assert not any(isinstance(t, ProbeTarget) for t in build_targets(cfg, Clients()))


def test_probe_defaults_and_target(tmp_path: Path) -> None:
    body = """\
  probes:
    - model: my-org/video-generator
      payload: {prompt: ping, steps: 1}
"""
    cfg = load_config(write(tmp_path, body), read_secrets=False).config
    assert cfg.together is not None
    p = cfg.together.probes[0]
    assert (p.priority, p.interval, p.timeout, p.status_poll_interval) == (0, 300.0, 60.0, 2.0)
    assert p.info == {"submitted_by": "inference-exporter-probe"}
    [target] = [t for t in build_targets(cfg, Clients()) if isinstance(t, ProbeTarget)]
    assert target.id == "together_queue_probe/my-org/video-generator"
    assert target.interval == 300.0
    # Each request is bounded by the global timeout (10s by default).
    assert target.timeout == 10.0
    assert target.opts.submit_body(target.model) == {
        "model": "my-org/video-generator",
        "payload": {"prompt": "ping", "steps": 1},
        "priority": 0,
        "info": {"submitted_by": "inference-exporter-probe"},
    }
    # Settings are hashable and equal for an equal config (a reload keeps the target).
    again = load_config(write(tmp_path, body), read_secrets=False).config
    [same] = [t for t in build_targets(again, Clients()) if isinstance(t, ProbeTarget)]
    assert hash(same.settings) == hash(target.settings) and same.settings == target.settings


def test_duplicate_models_and_bad_timings_are_reported_with_lines(tmp_path: Path) -> None:
    body = """\
  probes:
    - model: a
      payload: {}
      interval: 30s
      timeout: 30s
    - model: b
      payload: {}
      timeout: 5s
      status_poll_interval: 10s
    - model: a
      payload: {}
"""
    found = problems(write(tmp_path, body))
    assert any(
        ":7: together.probes[0].timeout: timeout (30s) must be shorter than interval (30s)" in p
        for p in found
    ), found
    assert any(":11: together.probes[1].status_poll_interval:" in p for p in found), found
    assert any(":12: together.probes[2].model: duplicate probe model 'a'" in p for p in found), found
    assert len(found) == 3


@pytest.mark.parametrize(
    ("entry", "key", "message"),
    [
        ("    - model: a\n", "together.probes[0].payload", "required key is missing"),
        (
            "    - model: a\n      payload: [1]\n",
            "together.probes[0].payload",
            "expected a map of keys to values, got a list",
        ),
        ("    - model: a\n      payload: {when: 2024-01-01}\n", "together.probes[0].payload", "plain JSON"),
        ("    - model: a\n      payload: {x: .nan}\n", "together.probes[0].payload", "plain JSON"),
        (
            "    - model: a\n      payload: {}\n      priority: '1'\n",
            "together.probes[0].priority",
            "integer",
        ),
        (
            "    - model: a\n      payload: {}\n      priority: true\n",
            "together.probes[0].priority",
            "integer",
        ),
        ("    - model: ' '\n      payload: {}\n", "together.probes[0].model", "blank"),
        (
            "    - model: a\n      payload: {}\n      intervall: 1m\n",
            "together.probes[0].intervall",
            "unknown key; did you mean 'interval'?",
        ),
        (
            "    - model: a\n      payload: {}\n      timeout: 0s\n",
            "together.probes[0].timeout",
            "greater than zero",
        ),
        (
            "    - model: a\n      payload: {}\n      info: nope\n",
            "together.probes[0].info",
            "expected a map of keys to values, got 'nope'",
        ),
        (
            "    - model: a\n      payload: {}\n      buckets: [1s, 30s, 10s]\n",
            "together.probes[0].buckets",
            "strictly increasing",
        ),
        (
            "    - model: a\n      payload: {}\n      buckets: []\n",
            "together.probes[0].buckets",
            "at least one",
        ),
        (
            "    - model: a\n      payload: {}\n      buckets: [1, soon]\n",
            "together.probes[0].buckets[1]",
            "duration",
        ),
        (
            "    - model: a\n      payload: {}\n      buckets: ["
            + ", ".join(f"{i}s" for i in range(1, 42))
            + "]\n",
            "together.probes[0].buckets",
            "at most 40",
        ),
    ],
)
def test_bad_probe_entries(tmp_path: Path, entry: str, key: str, message: str) -> None:
    found = problems(write(tmp_path, "  probes:\n" + entry))
    assert any(f": {key}: " in p and message in p for p in found), found


def test_buckets_take_durations_and_default_to_queue_scale(tmp_path: Path) -> None:
    body = """\
  probes:
    - model: a
      payload: {}
      buckets: [500ms, 5s, 30s, 2m, 30m]
    - model: b
      payload: {}
"""
    cfg = load_config(write(tmp_path, body), read_secrets=False).config
    assert cfg.together is not None
    custom, default = cfg.together.probes
    assert custom.buckets == (0.5, 5.0, 30.0, 120.0, 1800.0)
    assert default.buckets[0] < 1 and default.buckets[-1] >= 1800 and 30.0 in default.buckets
    targets = {t.model: t for t in build_targets(cfg, Clients()) if isinstance(t, ProbeTarget)}
    assert targets["a"].state.phases["queue_wait"].bounds == custom.buckets
    # Buckets are part of the settings: changing them rebuilds the target (new counts).
    assert targets["a"].settings != targets["b"].settings


def test_check_config_cli_names_file_line_and_key(tmp_path: Path) -> None:
    path = write(
        tmp_path, "  probes:\n    - model: a\n      payload: {}\n    - model: a\n      payload: {}\n"
    )
    res = run_cli("check-config", "--no-secrets", str(path))
    assert res.returncode == 1
    assert f"{path}:6: together.probes[1].model: duplicate probe model 'a'" in res.stderr


def test_config_example_probe_is_off_and_valid_once_uncommented(tmp_path: Path) -> None:
    text = (REPO / "config.example.yaml").read_text()
    example = load_config(REPO / "config.example.yaml", read_secrets=False).config
    assert example.together is not None and example.together.probes == []
    # Uncomment the probe block (lines "  # probes:" and "  #   ...") and it is valid.
    start = text.index("  # probes:")
    lines = text[start:].splitlines()
    end = next(i for i, line in enumerate(lines) if i and not line.startswith("  #  "))
    block = [line.replace("  # ", "  ", 1) for line in lines[:end]]
    path = tmp_path / "example.yaml"
    path.write_text(text[:start] + "\n".join(block + lines[end:]) + "\n")
    cfg = load_config(path, read_secrets=False).config
    assert cfg.together is not None
    [probe] = cfg.together.probes
    assert probe.model == "my-org/video-generator"
    assert (probe.interval, probe.timeout, probe.status_poll_interval) == (300.0, 60.0, 2.0)
    assert probe.buckets == DEFAULT_BUCKETS  # the example shows the defaults


def test_demo_has_a_valid_probe(tmp_path: Path) -> None:
    demo = (REPO / "exporter" / "demo" / "demo.yaml").read_text()
    path = tmp_path / "demo.yaml"
    path.write_text(demo.replace("__SIMULATOR_URL__", "http://127.0.0.1:1"))
    cfg = load_config(path, read_secrets=False).config
    assert cfg.together is not None
    assert [len(a.probes) for _, a in cfg.together.account_list()] == [1, 0]
