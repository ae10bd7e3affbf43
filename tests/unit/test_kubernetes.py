"""The kustomize manifests: structure, consistency with each other, the generated rules, and
what `kubectl kustomize` makes of the base and the overlays."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from exporter import __version__
from exporter.config import load_config
from exporter.web.limits import DEFAULT_LIMITS
from tests.helpers import REPO, need_binary

KUBE = REPO / "deploy" / "kubernetes"
BASE = KUBE / "base"
OPERATOR = KUBE / "overlays" / "prometheus-operator"
NAME_LABEL = {"app.kubernetes.io/name": "inference-exporter"}
OPERATOR_KINDS = {"ServiceMonitor", "PrometheusRule"}


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def statefulset() -> dict[str, Any]:
    sts: dict[str, Any] = load(BASE / "statefulset.yaml")
    return sts


def container(sts: dict[str, Any]) -> dict[str, Any]:
    c: dict[str, Any]
    (c,) = sts["spec"]["template"]["spec"]["containers"]
    return c


def env(c: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e for e in c["env"]}


def mounts(c: dict[str, Any]) -> dict[str, str]:
    return {m["name"]: m["mountPath"] for m in c["volumeMounts"]}


def kustomize(path: Path) -> list[dict[str, Any]]:
    """`kubectl kustomize` of a kustomization directory: the objects it would apply."""
    kubectl = need_binary("kubectl")
    res = subprocess.run([kubectl, "kustomize", str(path)], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    return [o for o in yaml.safe_load_all(res.stdout) if o]


def one(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    (found,) = [o for o in objects if o["kind"] == kind]
    return found


def test_kustomizations_list_every_manifest() -> None:
    for folder in (BASE, OPERATOR, KUBE / "overlays" / "sharded"):
        for r in load(folder / "kustomization.yaml").get("resources", []):
            assert (folder / r).exists(), f"{folder}: {r}"
    assert "secret.example.yaml" not in str(list(KUBE.rglob("kustomization.yaml")))  # never overwrites a key


def test_base_applies_without_the_operator_crds() -> None:
    objects = kustomize(BASE)
    assert {o["kind"] for o in objects} == {"ConfigMap", "Service", "StatefulSet"}
    assert all(o["apiVersion"] in ("v1", "apps/v1") for o in objects)
    overlay = kustomize(OPERATOR)
    assert {o["kind"] for o in overlay} == {o["kind"] for o in objects} | OPERATOR_KINDS
    assert len([o for o in overlay if o["kind"] == "PrometheusRule"]) == 3


def test_one_replica_by_default_and_the_sharded_overlay() -> None:
    for folder, shards in ((BASE, "1"), (KUBE / "overlays" / "sharded", "3")):
        sts = one(kustomize(folder), "StatefulSet")
        assert str(sts["spec"]["replicas"]) == shards
        c = container(sts)
        assert env(c)["TOTAL_SHARDS"]["value"] == shards
        assert "--total-shards=$(TOTAL_SHARDS)" in c["args"] and "--shard.from-pod-name" in c["args"]


def test_a_config_edit_rolls_the_pods(tmp_path: Path) -> None:
    def config_names(base: Path) -> tuple[str, str]:
        objects = kustomize(base)
        sts = one(objects, "StatefulSet")
        (volume,) = [v for v in sts["spec"]["template"]["spec"]["volumes"] if "configMap" in v]
        return one(objects, "ConfigMap")["metadata"]["name"], volume["configMap"]["name"]

    cm, referenced = config_names(BASE)
    assert cm == referenced and re.fullmatch(r"inference-exporter-config-[a-z0-9]{10}", cm)
    copy = tmp_path / "base"
    shutil.copytree(BASE, copy)
    config = copy / "config.yaml"
    config.write_text(config.read_text().replace("poll_interval: 30s", "poll_interval: 1m"))
    edited, referenced = config_names(copy)
    assert edited == referenced and edited != cm  # a new pod template: the pods roll


def test_statefulset_is_sharded_by_pod_name() -> None:
    sts = statefulset()
    spec = sts["spec"]
    assert sts["apiVersion"] == "apps/v1" and sts["kind"] == "StatefulSet"
    assert spec["selector"]["matchLabels"] == NAME_LABEL
    assert NAME_LABEL.items() <= spec["template"]["metadata"]["labels"].items()
    assert spec["serviceName"] == load(BASE / "service.yaml")["metadata"]["name"]
    c = container(sts)
    args = c["args"]
    assert "--shard.from-pod-name" in args and "--total-shards=$(TOTAL_SHARDS)" in args
    assert env(c)["TOTAL_SHARDS"]["value"] == str(spec["replicas"])  # one shard per replica
    assert env(c)["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert c["ports"][0]["containerPort"] == 10230 and c["ports"][0]["name"] == "metrics"
    assert "--web.listen-address=:10230" in args
    assert c["livenessProbe"]["httpGet"]["path"] == "/-/healthy"
    assert c["readinessProbe"]["httpGet"]["path"] == "/-/ready"
    pod = spec["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert c["securityContext"]["capabilities"]["drop"] == ["ALL"]


def test_api_keys_are_files_of_the_secret(tmp_path: Path) -> None:
    secret = load(KUBE / "secret.example.yaml")
    assert secret["kind"] == "Secret"
    c = container(statefulset())
    (keys,) = [v for v in statefulset()["spec"]["template"]["spec"]["volumes"] if v["name"] == "keys"]
    assert keys["secret"]["secretName"] == secret["metadata"]["name"]
    # A new account is a new key in the Secret and a new account in config.yaml: the
    # StatefulSet names no key, so it never changes for one.
    assert not [e for e in c["env"] if "secretKeyRef" in e.get("valueFrom", {})]
    assert all("value" not in e or e["name"] == "TOTAL_SHARDS" for e in c["env"])
    path = tmp_path / "config.yaml"
    path.write_text((BASE / "config.yaml").read_text())
    cfg = load_config(path, read_secrets=False).config
    files = [Path(str(a.api_key_file)) for _, _, a in cfg.accounts()]
    assert files and all(f.parent == Path(mounts(c)["keys"]) for f in files)
    assert {f.name for f in files} <= secret["stringData"].keys()


def test_config_is_mounted_where_the_args_say() -> None:
    c = container(statefulset())
    assert f"--config.file={mounts(c)['config']}/config.yaml" in c["args"]
    (generator,) = load(BASE / "kustomization.yaml")["configMapGenerator"]
    assert generator["files"] == ["config.yaml"]
    (volume,) = [v for v in statefulset()["spec"]["template"]["spec"]["volumes"] if v["name"] == "config"]
    assert volume["configMap"]["name"] == generator["name"]
    # Mounts side by side, not nested in one another (a mount inside a ConfigMap volume fails).
    paths = mounts(c).values()
    assert not any(b.startswith(a + "/") for a in paths for b in paths)


def test_one_image_name() -> None:
    image = f"inference-exporter:{__version__}"
    assert container(statefulset())["image"] == image
    compose = load(REPO / "deploy" / "compose" / "compose.yaml")
    assert compose["services"]["exporter"]["image"] == image
    chart = load(REPO / "deploy" / "helm" / "inference-exporter" / "Chart.yaml")
    values = load(REPO / "deploy" / "helm" / "inference-exporter" / "values.yaml")
    assert f"{values['image']['repository']}:{values['image']['tag'] or chart['appVersion']}" == image
    assert chart["version"] == __version__
    readme = (REPO / "README.md").read_text()
    tags = re.findall(r"docker build -t (\S+) ", readme) + re.findall(r"`docker run [^`]* (\S+)`", readme)
    assert tags and set(tags) == {image}


def test_headless_service_and_servicemonitor_select_the_pods() -> None:
    svc = load(BASE / "service.yaml")
    assert svc["spec"]["clusterIP"] == "None"
    assert svc["spec"]["selector"] == NAME_LABEL
    port_names = {p["name"] for p in svc["spec"]["ports"]}
    sm = load(OPERATOR / "servicemonitor.yaml")
    assert sm["apiVersion"] == "monitoring.coreos.com/v1" and sm["kind"] == "ServiceMonitor"
    assert sm["spec"]["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items()
    for ep in sm["spec"]["endpoints"]:
        assert ep["port"] in port_names and ep["path"] == "/metrics"


def _spec_groups(generated: str, source: Path) -> None:
    rule = load(OPERATOR / generated)
    assert rule["apiVersion"] == "monitoring.coreos.com/v1" and rule["kind"] == "PrometheusRule"
    assert rule["spec"]["groups"] == yaml.safe_load(source.read_text())["groups"]


def test_sharding_prometheusrule_matches_its_rule_file() -> None:
    _spec_groups("prometheusrule-sharding.yaml", KUBE / "rules" / "sharding.yaml")


def test_alerts_prometheusrule_matches_the_alerts_file() -> None:
    _spec_groups("prometheusrule.yaml", REPO / "prometheus" / "alerts.yaml")


def test_slos_prometheusrule_matches_the_slo_rule_file() -> None:
    _spec_groups("prometheusrule-slos.yaml", REPO / "prometheus" / "slos.yaml")


def test_generated_files_are_current() -> None:
    res = subprocess.run(
        [sys.executable, "scripts/gen_deploy.py", "--check"], capture_output=True, text=True, cwd=REPO
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
              runbook_url: https://github.com/inference-exporter/inference-exporter/blob/v{version}/deploy/kubernetes/README.md#inferenceexportershardsmissing
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
              runbook_url: https://github.com/inference-exporter/inference-exporter/blob/v{version}/deploy/kubernetes/README.md#inferenceexportershardingmismatch
"""


def test_shard_alerts_with_promtool(tmp_path: Path) -> None:
    promtool = need_binary("promtool")
    rules = KUBE / "rules" / "sharding.yaml"
    check = subprocess.run([promtool, "check", "rules", str(rules)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    test_file = tmp_path / "sharding_test.yaml"
    test_file.write_text(SHARD_TEST.format(rules=str(rules), version=__version__))
    res = subprocess.run([promtool, "test", "rules", str(test_file)], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr


def test_readme_probe_patch_gives_tcp_probes(tmp_path: Path) -> None:
    readme = (KUBE / "README.md").read_text()
    section = readme[readme.index("## Probes") :]
    patch = section[section.index("```yaml\n") + 8 : section.index("```\n", section.index("```yaml\n") + 8)]
    shutil.copytree(BASE, tmp_path / "base")
    overlay = tmp_path / "overlay"
    overlay.mkdir()
    (overlay / "kustomization.yaml").write_text("resources: [../base]\n" + patch)
    c = container(one(kustomize(overlay), "StatefulSet"))
    assert c["livenessProbe"]["tcpSocket"] == c["readinessProbe"]["tcpSocket"] == {"port": "metrics"}
    assert "httpGet" not in c["livenessProbe"] and "httpGet" not in c["readinessProbe"]


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
    resources = container(statefulset())["resources"]
    limit = mebibytes(resources["limits"]["memory"]) * 1.048576  # in MB, as the table
    assert limit >= 1.5 * int(total.strip("*"))
    assert mebibytes(resources["requests"]["memory"]) < mebibytes(resources["limits"]["memory"])
    assert resources["limits"]["memory"] in section and resources["requests"]["memory"] in section
