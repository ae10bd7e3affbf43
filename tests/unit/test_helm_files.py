"""The Helm chart ships the generated rules and dashboards themselves, and still does once packaged
(scripts/gen_deploy.py --check, in test_kubernetes.py, catches a stale copy)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from tests.chart import CHART, OPERATOR_APIS, render, sdk
from tests.helpers import REPO

# The chart's copy of each rule file, and the PrometheusRule it becomes.
RULES = {
    "alerts": REPO / "prometheus" / "alerts.yaml",
    "slos": REPO / "prometheus" / "slos.yaml",
    "sharding": REPO / "deploy" / "kubernetes" / "rules" / "sharding.yaml",
}
DASHBOARDS = REPO / "grafana" / "dashboards"


def test_chart_rules_are_the_rule_files() -> None:
    assert {p.stem for p in (CHART / "files" / "rules").iterdir()} == RULES.keys()
    rules = {o["metadata"]["name"]: o for o in render(api_versions=OPERATOR_APIS).of_kind("PrometheusRule")}
    assert rules.keys() == {f"inference-exporter-{name}" for name in RULES}
    for name, source in RULES.items():
        groups = yaml.safe_load(source.read_text())["groups"]
        assert yaml.safe_load((CHART / "files" / "rules" / f"{name}.yaml").read_text())["groups"] == groups
        assert rules[f"inference-exporter-{name}"]["spec"]["groups"] == groups, name


def test_chart_dashboards_are_grafanas() -> None:
    sources = {p.name: p.read_bytes() for p in DASHBOARDS.glob("*.json")}
    copies = {p.name: p.read_bytes() for p in (CHART / "files" / "dashboards").iterdir()}
    assert sources and copies == sources
    configmaps = [o for o in render().of_kind("ConfigMap") if "-dashboard-" in o["metadata"]["name"]]
    shipped = {}
    for cm in configmaps:
        assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"  # what Grafana's sidecar looks for
        ((name, text),) = cm["data"].items()
        # Well under what a client-side `kubectl apply` can annotate (256 KiB), let alone a ConfigMap.
        assert len(text.encode()) < 256 * 1024
        shipped[name] = json.loads(text)
    assert shipped == {name: json.loads(data) for name, data in sources.items()}
    off = render({"dashboards": {"enabled": False}}).of_kind("ConfigMap")
    assert [cm["metadata"]["name"] for cm in off] == ["inference-exporter-config"]


def test_packaged_chart_renders_the_same(tmp_path: Path) -> None:
    archive = sdk().package(CHART, destination=tmp_path)
    packaged = render(api_versions=OPERATOR_APIS, chart=Path(archive))
    assert packaged.objects == render(api_versions=OPERATOR_APIS).objects


def test_every_value_is_in_the_readme_table() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    table = (CHART / "README.md").read_text().split("## Values", 1)[1]
    free_form = {"resources", "podSecurityContext", "securityContext", "affinity", "nodeSelector"}
    for key, value in values.items():
        assert f"`{key}" in table, key
        if isinstance(value, dict) and key not in free_form:
            for sub in value:
                assert re.search(rf"`({key}\.)?{sub}`", table), f"{key}.{sub}"
