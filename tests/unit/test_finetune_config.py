"""The together.fine_tunes config section: defaults, validation and duplicates."""

from __future__ import annotations

from pathlib import Path

from exporter.config import load_config
from exporter.engine.targets import build_targets
from exporter.sources.together.finetune.target import FineTuneDiscovery, JobTarget
from exporter.upstream.api import Clients
from tests.helpers import problems, run_cli, write_yaml

HEAD = """together:
  base_url: http://127.0.0.1:1/v1
  api_key_env: FT_TEST_KEY
"""


def write(tmp_path: Path, body: str) -> Path:
    return write_yaml(tmp_path, HEAD + body, "c.yaml")


def test_defaults_and_targets(tmp_path: Path) -> None:
    cfg = load_config(
        write(
            tmp_path,
            """  fine_tunes:
    resolution: 100
    retention: 10m
    jobs:
      - id: ft-abc-123
      - id: ft-def
        poll_interval: 7s
    discovery:
      enabled: true
      refresh_interval: 2m
""",
        ),
        read_secrets=False,
    ).config
    assert cfg.together is not None
    ft = cfg.together.fine_tunes
    assert ft.max_keys == 200 and ft.retention == 600 and ft.resolution == 100
    assert "completed" not in ft.discovery.statuses and "running" in ft.discovery.statuses
    targets = build_targets(cfg, Clients())
    jobs = [t for t in targets if isinstance(t, JobTarget)]
    disc = [t for t in targets if isinstance(t, FineTuneDiscovery)]
    assert [t.id for t in jobs] == ["together_finetune/ft-abc-123", "together_finetune/ft-def"]
    assert [t.interval for t in jobs] == [30.0, 7.0]
    assert len(disc) == 1 and disc[0].interval == 120.0
    assert disc[0].statuses == frozenset(ft.discovery.statuses)
    # Same config → same settings, so a reload keeps the targets and their state.
    again = build_targets(cfg, Clients())
    assert [t.settings for t in again] == [t.settings for t in targets]


def test_no_discovery_by_default(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, ""), read_secrets=False).config
    assert build_targets(cfg, Clients()) == []


def test_bad_job_ids_are_errors_with_lines(tmp_path: Path) -> None:
    out = problems(
        write(
            tmp_path,
            """  fine_tunes:
    jobs:
      - id: job-123
      - id: ft-
      - id: ft-a/b
      - id: ft-ok
""",
        )
    )
    assert any(":6: together.fine_tunes.jobs[0].id:" in p and "ft-" in p for p in out), out
    assert any(":7: together.fine_tunes.jobs[1].id:" in p for p in out), out
    assert any(":8: together.fine_tunes.jobs[2].id:" in p for p in out), out
    assert len(out) == 3


def test_duplicates_and_bad_values(tmp_path: Path) -> None:
    out = problems(
        write(
            tmp_path,
            """  fine_tunes:
    resolution: 0
    max_keys: 0
    jobs:
      - id: ft-a
      - id: ft-a
    discovery:
      enabled: true
      statuses: [running, running, finished]
""",
        )
    )
    text = "\n".join(out)
    assert "together.fine_tunes.resolution" in text
    assert "together.fine_tunes.max_keys" in text
    assert "together.fine_tunes.discovery.statuses[2]" in text  # not a vendor status


def test_duplicate_ids_and_statuses_reported_with_lines(tmp_path: Path) -> None:
    out = problems(
        write(
            tmp_path,
            """  fine_tunes:
    jobs:
      - id: ft-a
      - id: ft-a
    discovery:
      statuses: [running, queued, running]
""",
        )
    )
    assert any(":7: together.fine_tunes.jobs[1].id: duplicate fine-tune job id 'ft-a'" in p for p in out), out
    assert any("together.fine_tunes.discovery.statuses[2]: duplicate discovery status" in p for p in out), out


def test_check_config_cli_reports_a_bad_id(tmp_path: Path) -> None:
    path = write(tmp_path, "  fine_tunes:\n    jobs:\n      - id: 12345\n")
    res = run_cli("check-config", str(path), "--no-secrets")
    assert res.returncode == 1
    assert "together.fine_tunes.jobs[0].id" in res.stdout + res.stderr
