"""The Kubernetes manifests: structure, consistency with each other, and the generated rules."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from exporter.config import load_config
from exporter.limits import DEFAULT_LIMITS
from tests.helpers import REPO, need_binary

KUBE = REPO / "deploy" / "kubernetes"
ALERTS = REPO / "prometheus" / "alerts.yaml"
NAME_LABEL = {"app.kubernetes.io/name": "inference-exporter"}


def load(name: str) -> Any:
    return yaml.safe_load((KUBE / name).read_text())


def container() -> dict[str, Any]:
    c: dict[str, Any]
    (c,) = load("statefulset.yaml")["spec"]["template"]["spec"]["containers"]
    return c


def env(c: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e for e in c["env"]}


def test_kustomization_lists_every_manifest() -> None:
    resources = load("kustomization.yaml")["resources"]
    for r in resources:
        if r == "prometheusrule.yaml" and not ALERTS.exists():
            continue  # generated from prometheus/alerts.yaml, once that file is present
        assert (KUBE / r).is_file(), r
    assert "secret.example.yaml" not in resources  # applying the directory never overwrites a key
    kinds = {load(r)["kind"] for r in resources if (KUBE / r).exists()}
    assert {"ConfigMap", "Service", "StatefulSet", "ServiceMonitor", "PrometheusRule"} <= kinds


def test_statefulset_is_sharded_by_pod_name() -> None:
    sts = load("statefulset.yaml")
    spec = sts["spec"]
    assert sts["apiVersion"] == "apps/v1" and sts["kind"] == "StatefulSet"
    assert spec["selector"]["matchLabels"] == NAME_LABEL
    assert NAME_LABEL.items() <= spec["template"]["metadata"]["labels"].items()
    assert spec["serviceName"] == load("service.yaml")["metadata"]["name"]
    c = container()
    args = c["args"]
    assert "--shard.from-pod-name" in args
    assert f"--total-shards={spec['replicas']}" in args  # one shard per replica
    assert env(c)["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert c["ports"][0]["containerPort"] == 10230 and c["ports"][0]["name"] == "metrics"
    assert "--web.listen-address=:10230" in args
    assert c["livenessProbe"]["httpGet"]["path"] == "/-/healthy"
    assert c["readinessProbe"]["httpGet"]["path"] == "/-/ready"
    pod = spec["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert c["securityContext"]["capabilities"]["drop"] == ["ALL"]


def test_api_keys_come_from_the_secret() -> None:
    secret = load("secret.example.yaml")
    assert secret["kind"] == "Secret"
    refs = {
        name: e["valueFrom"]["secretKeyRef"]
        for name, e in env(container()).items()
        if "secretKeyRef" in e.get("valueFrom", {})
    }
    assert "TOGETHER_API_KEY" in refs
    for ref in refs.values():
        assert ref["name"] == secret["metadata"]["name"]
        assert ref["key"] in secret["stringData"]
    # No key is written into the pod spec itself.
    assert all("value" not in e for e in container()["env"])


def test_config_in_the_configmap_is_valid_and_uses_the_secret_env(tmp_path: Path) -> None:
    cm = load("configmap.yaml")
    path = tmp_path / "config.yaml"
    path.write_text(cm["data"]["config.yaml"])
    cfg = load_config(path, read_secrets=False).config
    assert cfg.together is not None and cfg.together.api_key_env in env(container())
    volume = load("statefulset.yaml")["spec"]["template"]["spec"]["volumes"][0]
    assert volume["configMap"]["name"] == cm["metadata"]["name"]
    mount = container()["volumeMounts"][0]
    assert f"--config.file={mount['mountPath']}/config.yaml" in container()["args"]


def test_headless_service_and_servicemonitor_select_the_pods() -> None:
    svc = load("service.yaml")
    assert svc["spec"]["clusterIP"] == "None"
    assert svc["spec"]["selector"] == NAME_LABEL
    port_names = {p["name"] for p in svc["spec"]["ports"]}
    sm = load("servicemonitor.yaml")
    assert sm["apiVersion"] == "monitoring.coreos.com/v1" and sm["kind"] == "ServiceMonitor"
    assert sm["spec"]["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items()
    for ep in sm["spec"]["endpoints"]:
        assert ep["port"] in port_names and ep["path"] == "/metrics"


def _spec_groups(generated: str, source: Path) -> None:
    rule = load(generated)
    assert rule["apiVersion"] == "monitoring.coreos.com/v1" and rule["kind"] == "PrometheusRule"
    assert rule["spec"]["groups"] == yaml.safe_load(source.read_text())["groups"]


def test_sharding_prometheusrule_matches_its_rule_file() -> None:
    _spec_groups("prometheusrule-sharding.yaml", KUBE / "rules" / "sharding.yaml")


def test_alerts_prometheusrule_matches_the_alerts_file() -> None:
    if not ALERTS.exists():
        pytest.skip("prometheus/alerts.yaml does not exist in this checkout; nothing to compare with")
    _spec_groups("prometheusrule.yaml", ALERTS)


def test_slos_prometheusrule_matches_the_slo_rule_file() -> None:
    _spec_groups("prometheusrule-slos.yaml", REPO / "prometheus" / "slos.yaml")


def test_generated_files_are_current() -> None:
    res = subprocess.run(
        [sys.executable, "scripts/gen_prometheusrule.py", "--check"], capture_output=True, text=True, cwd=REPO
    )
    assert res.returncode == 0, res.stderr


SHARD_TEST = """
rule_files: [{rules}]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: 'inference_exporter_shard_ordinal{{job="inference-exporter",instance="a"}}'
        values: '0x40'
      - series: 'inference_exporter_shard_ordinal{{job="inference-exporter",instance="b"}}'
        values: '1x40'
      - series: 'inference_exporter_shard_ordinal{{job="inference-exporter",instance="c"}}'
        values: '2x5 stale'
      - series: 'inference_exporter_total_shards{{job="inference-exporter",instance="a"}}'
        values: '3x40'
      - series: 'inference_exporter_total_shards{{job="inference-exporter",instance="b"}}'
        values: '3x40'
      - series: 'inference_exporter_total_shards{{job="inference-exporter",instance="c"}}'
        values: '3x5 stale'
    alert_rule_test:
      - eval_time: 5m
        alertname: InferenceExporterShardsMissing
        exp_alerts: []
      - eval_time: 10m
        alertname: InferenceExporterShardsMissing
        exp_alerts: []
      - eval_time: 20m
        alertname: InferenceExporterShardsMissing
        exp_alerts:
          - exp_labels: {{severity: critical}}
            exp_annotations:
              summary: Some inference-exporter shards are not reporting; their targets are not polled.
              description: Only 2 distinct shard ordinals are being scraped out of the configured total; the targets of the missing shards have no metrics.
              runbook_url: https://github.com/inference-exporter/inference-exporter/blob/main/deploy/kubernetes/README.md#inferenceexportershardsmissing
      - eval_time: 20m
        alertname: InferenceExporterShardingMismatch
        exp_alerts: []
  - interval: 1m
    input_series:
      - series: 'inference_exporter_total_shards{{job="inference-exporter",instance="a"}}'
        values: '3x30'
      - series: 'inference_exporter_total_shards{{job="inference-exporter",instance="b"}}'
        values: '2x30'
      - series: 'inference_exporter_shard_ordinal{{job="inference-exporter",instance="a"}}'
        values: '0x30'
      - series: 'inference_exporter_shard_ordinal{{job="inference-exporter",instance="b"}}'
        values: '1x30'
    alert_rule_test:
      - eval_time: 20m
        alertname: InferenceExporterShardingMismatch
        exp_alerts:
          - exp_labels: {{severity: warning}}
            exp_annotations:
              summary: inference-exporter replicas disagree on the number of shards.
              description: Replicas report 2 different --total-shards values; some targets are polled twice or not at all.
              runbook_url: https://github.com/inference-exporter/inference-exporter/blob/main/deploy/kubernetes/README.md#inferenceexportershardingmismatch
"""


def test_shard_alerts_with_promtool(tmp_path: Path) -> None:
    promtool = need_binary("promtool")
    rules = KUBE / "rules" / "sharding.yaml"
    check = subprocess.run([promtool, "check", "rules", str(rules)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    test_file = tmp_path / "sharding_test.yaml"
    test_file.write_text(SHARD_TEST.format(rules=str(rules)))
    res = subprocess.run([promtool, "test", "rules", str(test_file)], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr


def mebibytes(quantity: str) -> float:
    units = {"Ki": 1 / 1024, "Mi": 1.0, "Gi": 1024.0}
    return float(quantity[:-2]) * units[quantity[-2:]]


def test_the_memory_limit_covers_the_measured_worst_case() -> None:
    """The README's sizing table (measured figures, in MB) and half as much again fit in
    the limit, and the table counts the connections the exporter allows by default."""
    text = (KUBE / "README.md").read_text()
    section = text.split("## Sizing memory", 1)[1].split("\n## ", 1)[0]
    rows = [line.split("|") for line in section.splitlines() if line.startswith("| ") and "---" not in line]
    figures = {cells[1].strip(): cells[2].strip() for cells in rows if cells[2].strip().isdigit()}
    total = next(v for k, v in ((c[1].strip(), c[2].strip()) for c in rows) if k == "**sum**")
    assert sum(int(v) for v in figures.values()) == int(total.strip("*"))
    assert any(k.startswith(f"{DEFAULT_LIMITS.max_connections} connections") for k in figures)
    resources = container()["resources"]
    limit = mebibytes(resources["limits"]["memory"]) * 1.048576  # in MB, as the table
    assert limit >= 1.5 * int(total.strip("*"))
    assert mebibytes(resources["requests"]["memory"]) < mebibytes(resources["limits"]["memory"])
    assert resources["limits"]["memory"] in section and resources["requests"]["memory"] in section
