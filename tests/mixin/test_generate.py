"""The committed dashboards and alert rules are exactly what the generator produces."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mixin import __main__ as cli
from mixin.config import MixinConfig
from mixin.generate import DASHBOARDS, outputs, repo_root


def test_committed_files_match_regeneration() -> None:
    root = repo_root()
    generated = outputs()
    assert set(generated) == {f"grafana/dashboards/{m.FILENAME}" for m in DASHBOARDS} | {
        "prometheus/alerts.yaml",
        "prometheus/slos.yaml",
        "exporter/demo/alerts.yaml",
        "exporter/demo/slos.yaml",
    }
    for rel, text in generated.items():
        committed = (root / rel).read_text(encoding="utf-8")
        assert committed == text, f"{rel} is out of date: run python -m mixin"


def test_generation_is_deterministic() -> None:
    assert outputs() == outputs()


def test_check_mode_flags_a_stale_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A copy of the tree where one dashboard was hand-edited: --check must fail.
    for rel, text in outputs().items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text, encoding="utf-8")
    monkeypatch.setattr(cli, "repo_root", lambda: tmp_path)
    assert cli.main(["--check"]) == 0
    first = tmp_path / "grafana/dashboards" / DASHBOARDS[0].FILENAME
    first.write_text(first.read_text().replace('"refresh": "30s"', '"refresh": "5s"'), encoding="utf-8")
    assert cli.main(["--check"]) == 1
    assert cli.main([]) == 0
    assert cli.main(["--check"]) == 0


def test_dashboard_uids_and_titles_are_unique_and_stable() -> None:
    docs = [json.loads(t) for rel, t in outputs().items() if rel.endswith(".json")]
    uids = [d["uid"] for d in docs]
    assert len(set(uids)) == len(uids)
    assert all(u.startswith("inference-exporter-") and len(u) <= 40 for u in uids)
    assert all(d["title"].startswith("Inference exporter / ") for d in docs)


def test_thresholds_flow_into_dashboards_and_alerts() -> None:
    custom = outputs(MixinConfig(queue_depth_high=777, queue_depth_high_for="3m", exporter_job="ie"))
    assert "together_queue_jobs_waiting > 777" in custom["prometheus/alerts.yaml"]
    assert "for: 3m" in custom["prometheus/alerts.yaml"]
    assert 'up{job="ie"}' in custom["prometheus/alerts.yaml"]
    queues = json.loads(custom["grafana/dashboards/together-queues.json"])
    thresholds = [
        step["value"]
        for p in queues["panels"]
        for step in p.get("fieldConfig", {}).get("defaults", {}).get("thresholds", {}).get("steps", [])
    ]
    assert 777 in thresholds


def test_committed_dashboards_decode_with_the_grafana_11_models() -> None:
    """Each file reads back through the SDK's Grafana 11.6 dashboard model with its panels intact."""
    from grafana_foundation_sdk.cog import plugins
    from grafana_foundation_sdk.cog.encoder import JSONEncoder
    from grafana_foundation_sdk.models.dashboard import Dashboard

    plugins.register_default_plugins()
    for m in DASHBOARDS:
        committed = json.loads((repo_root() / "grafana/dashboards" / m.FILENAME).read_text(encoding="utf-8"))
        back = json.loads(json.dumps(Dashboard.from_json(committed), cls=JSONEncoder))
        assert back["schemaVersion"] == committed["schemaVersion"]
        assert back["templating"] == committed["templating"]
        keys = ("id", "type", "title", "description", "targets", "gridPos", "datasource")
        assert [{k: p.get(k) for k in keys} for p in back["panels"]] == [
            {k: p.get(k) for k in keys} for p in committed["panels"]
        ]


def test_settings_are_overridden_into_another_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Own objectives without editing the code: the repository's files stay as they are."""
    before = (repo_root() / "prometheus/slos.yaml").read_text(encoding="utf-8")
    args = [
        "--output-dir",
        str(tmp_path),
        "--set",
        "probe_success_objective=0.995",
        "--set",
        "slo_period=28d",
    ]
    assert cli.main(args) == 0
    slos = (tmp_path / "prometheus/slos.yaml").read_text(encoding="utf-8")
    assert "/ 0.005 > 14.4" in slos and "ratio_rate28d" in slos
    assert (tmp_path / "grafana/dashboards/slos.json").exists()
    assert (repo_root() / "prometheus/slos.yaml").read_text(encoding="utf-8") == before
    assert cli.main([*args, "--check"]) == 0
    assert cli.main(["--output-dir", str(tmp_path), "--check"]) == 1  # the defaults differ
    capsys.readouterr()


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("no_such_setting=1", "expected NAME=VALUE"),
        ("probe_success_objective", "expected NAME=VALUE"),
        ("queue_depth_high=many", "is not a valid int"),
        ("probe_success_objective=1.5", "between 0 and 1"),
    ],
)
def test_bad_settings_are_refused(
    setting: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.main(["--output-dir", str(tmp_path), "--set", setting])
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err
    assert not any(tmp_path.iterdir())
