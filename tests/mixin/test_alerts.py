"""Alert and SLO rules: promtool-clean, unit-tested in both directions, and in mixin style."""

from __future__ import annotations

import re
import subprocess
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest
import yaml

from mixin import alerts as alert_rules
from mixin import slo
from mixin.config import DEFAULT, MixinConfig
from mixin.generate import repo_root
from tests.helpers import need_binary

ROOT = repo_root()
ALERTS = ROOT / "prometheus/alerts.yaml"
SLOS = ROOT / "prometheus/slos.yaml"
RULE_FILES = [ALERTS, SLOS]
RULE_TESTS = sorted((ROOT / "prometheus/tests").glob("*.yaml"))


def all_rules(path: Path) -> list[dict[str, Any]]:
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    return [r for g in doc["groups"] for r in g["rules"]]


def rules() -> list[dict[str, Any]]:
    """Every alerting rule of both files."""
    return [r for path in RULE_FILES for r in all_rules(path) if "alert" in r]


@pytest.mark.parametrize("path", RULE_FILES, ids=lambda p: p.name)
def test_promtool_check_rules_lint_all_is_clean(path: Path) -> None:
    promtool = need_binary("promtool")
    res = subprocess.run(
        [promtool, "check", "rules", "--lint=all", "--lint-fatal", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    out = res.stdout + res.stderr
    assert res.returncode == 0, out
    assert f"SUCCESS: {len(all_rules(path))} rules found" in out
    assert "duplicate" not in out.lower()


def test_promtool_unit_tests_pass() -> None:
    promtool = need_binary("promtool")
    assert RULE_TESTS
    res = subprocess.run(
        [promtool, "test", "rules", *map(str, RULE_TESTS)], capture_output=True, text=True, timeout=120
    )
    assert res.returncode == 0, res.stdout + res.stderr
    assert "SUCCESS" in res.stdout


def test_every_alert_has_a_firing_and_a_silent_case() -> None:
    fires: set[str] = set()
    silent: set[str] = set()
    for path in RULE_TESTS:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        for case in doc["tests"]:
            for check in case.get("alert_rule_test", []):
                expected = check.get("exp_alerts") or []
                (fires if expected else silent).add(check["alertname"])
    names = {r["alert"] for r in rules()}
    assert names - fires == set(), "alerts never shown to fire"
    assert names - silent == set(), "alerts never shown to stay silent"


def test_alerts_follow_mixin_style() -> None:
    runbook = (ROOT / "docs/runbook.md").read_text(encoding="utf-8")
    anchors = {h.strip().lower() for h in re.findall(r"^## (.+)$", runbook, re.M)}
    seen = set()
    for r in rules():
        name = r["alert"]
        assert re.fullmatch(r"(Together|Baseten|InferenceExporter)[A-Z][A-Za-z0-9]+", name), name
        assert name not in seen, f"duplicate alert {name}"
        seen.add(name)
        assert r["labels"]["severity"] in ("info", "warning", "critical"), name
        assert re.fullmatch(r"\d+[smh]", r["for"]), name
        ann = r["annotations"]
        assert set(ann) == {"summary", "description", "runbook_url"}, name
        fixed = ann["summary"].replace(alert_rules.ACCOUNT, ".")
        assert "{{" not in fixed and ann["summary"].endswith("."), f"{name}: summary must be fixed text"
        assert "{{" in ann["description"], f"{name}: description must be templated"
        url = ann["runbook_url"]
        assert url.startswith(DEFAULT.runbook_url + "#"), name
        assert url.endswith("/docs/runbook.md#" + name.lower()), name
        assert name.lower() in anchors, f"docs/runbook.md has no section for {name}"


def test_descriptions_only_use_labels_the_expression_keeps() -> None:
    # Aggregations drop labels; a description naming a dropped label renders empty.
    for r in rules():
        used = set(re.findall(r"\$labels\.([a-zA-Z_]+)", r["annotations"]["description"]))
        if "by (" in r["expr"] or r["expr"].startswith("absent("):
            kept = set(re.findall(r"by \(([^)]*)\)", r["expr"])) | {"job"}
            assert used <= kept, r["alert"]


def test_every_threshold_is_documented() -> None:
    page = (ROOT / "docs/dashboards-and-alerts.md").read_text(encoding="utf-8")
    for f in fields(MixinConfig):
        if f.name in ("runbook_url",):
            continue
        row = re.search(rf"^\| `{f.name}` \| `([^`]*)` \|", page, re.M)
        assert row is not None, f"docs/dashboards-and-alerts.md lacks a row for {f.name}"
        assert row.group(1) == str(getattr(DEFAULT, f.name)), f"the documented default of {f.name} is stale"


def test_rule_expressions_only_use_exposed_or_recorded_metrics() -> None:
    from mixin import lint, relayed

    exposed = relayed.documented_metrics(
        (ROOT / lint.CATALOG).read_text(encoding="utf-8"), DEFAULT.baseten_relay_prefix
    )
    recorded = slo.recorded_names(DEFAULT)
    for path in RULE_FILES:
        for r in all_rules(path):
            for sel, _, _ in lint.selectors(lint.parse(r["expr"])):
                name = lint.metric_name(sel)
                assert name in exposed or name in recorded, (r.get("alert") or r["record"], name)


def test_every_objective_records_every_window_and_alerts_from_them() -> None:
    records: dict[str, set[str]] = {}
    for r in all_rules(SLOS):
        if "record" in r and r["record"].startswith(slo.RATIO):
            records.setdefault(r["labels"]["slo"], set()).add(r["record"].removeprefix(slo.RATIO))
    expected = {*slo.WINDOWS, DEFAULT.slo_period}
    assert records == {o.name: expected for o in slo.objectives(DEFAULT)}
    pairs = [(w.long, w.short) for w in (*slo.PAGE, *slo.TICKET)]
    assert pairs == [("1h", "5m"), ("6h", "30m"), ("1d", "2h"), ("3d", "6h")]
    assert [w.burn_rate for w in (*slo.PAGE, *slo.TICKET)] == [14.4, 6, 3, 1]
    severities = {r["alert"]: r["labels"]["severity"] for r in all_rules(SLOS) if "alert" in r}
    assert len(severities) == 2 * len(slo.objectives(DEFAULT))
    assert {n for n, sev in severities.items() if sev == "critical"} == {
        n for n in severities if n.endswith("Fast")
    }


def test_objectives_flow_into_the_rules() -> None:
    custom = MixinConfig(probe_success_objective=0.995, probe_wait_threshold_seconds=60, slo_period="28d")
    text = slo.render(custom)
    assert 'slo:sli_error:ratio_rate1h{slo="together-probe-success"} / 0.005 > 14.4' in text
    assert 'le="60.0"' in text and 'le="30.0"' not in text
    assert "record: slo:sli_error:ratio_rate28d" in text
    with pytest.raises(ValueError, match="between 0 and 1"):
        MixinConfig(baseten_latency_objective=1.0)
