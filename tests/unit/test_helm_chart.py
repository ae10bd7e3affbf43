"""The Helm chart, rendered and linted offline by Helm's own SDK: the objects it makes from
its defaults and from a sharded, multi-account, TLS set of values."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import bcrypt
import pytest
import yaml

from exporter import __version__
from exporter.config import load_config
from exporter.web.webconfig import load_web_config
from tests.chart import (
    OPERATOR_APIS,
    SERVICE_MONITOR_API,
    container,
    lint,
    pod_spec,
    render,
    schema_error,
)
from tests.helpers import REPO

KUSTOMIZE_STS = REPO / "deploy" / "kubernetes" / "base" / "statefulset.yaml"
KUSTOMIZE_CONFIG = REPO / "deploy" / "kubernetes" / "base" / "config.yaml"
KEYS = "/etc/inference-exporter/keys"

SHARDED: dict[str, Any] = {
    "replicas": 3,
    "apiKeysSecret": "vendor-keys",
    "config": yaml.safe_dump(
        {
            "together": {
                "accounts": [
                    {
                        "name": "prod",
                        "api_key_file": f"{KEYS}/together-prod",
                        "queues": [{"model": "my-org/video-generator"}],
                    },
                    {
                        "name": "staging",
                        "api_key_file": f"{KEYS}/together-staging",
                        "queues": [{"model": "my-org/video-generator-canary"}],
                    },
                ],
            },
            "baseten": {"api_key_file": f"{KEYS}/baseten", "discovery": [{"environments": ["production"]}]},
        }
    ),
    "web": {
        "tlsSecret": "exporter-tls",
        "config": {"basic_auth_users": {"prometheus": bcrypt.hashpw(b"s3cret", bcrypt.gensalt(4)).decode()}},
    },
    "serviceMonitor": {
        "labels": {"release": "kube-prometheus-stack"},
        "tlsConfig": {"ca": {"secret": {"name": "exporter-tls", "key": "ca.crt"}}},
        "basicAuth": {
            "username": {"name": "scrape-auth", "key": "username"},
            "password": {"name": "scrape-auth", "key": "password"},
        },
    },
}


def mounts(c: dict[str, Any]) -> dict[str, str]:
    return {m["name"]: m["mountPath"] for m in c["volumeMounts"]}


def volumes(workload: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {v["name"]: v for v in pod_spec(workload)["volumes"]}


def loaded_config(cm: dict[str, Any], tmp_path: Path) -> Any:
    path = tmp_path / "config.yaml"
    path.write_text(cm["data"]["config.yaml"])
    return load_config(path, read_secrets=False).config


def key_files(cfg: Any) -> list[str]:
    return [str(account.api_key_file) for _, _, account in cfg.accounts()]


def test_defaults_lint_clean_and_sharded_values_too() -> None:
    assert lint() == []
    assert lint(SHARDED) == []


def test_defaults_one_replica_deployment_with_keys_from_the_secret(tmp_path: Path) -> None:
    out = render()
    assert "StatefulSet" not in out.kinds()
    deploy = out.one("Deployment", "inference-exporter")
    assert deploy["spec"]["replicas"] == 1
    c = container(deploy)
    assert c["image"] == f"inference-exporter:{__version__}"
    assert not any(a.startswith("--shard") or a.startswith("--total-shards") for a in c["args"])
    assert "env" not in c
    cm = out.one("ConfigMap", "inference-exporter-config")
    assert volumes(deploy)["config"]["configMap"]["name"] == cm["metadata"]["name"]
    assert f"--config.file={mounts(c)['config']}/config.yaml" in c["args"]
    cfg = loaded_config(cm, tmp_path)
    assert volumes(deploy)["keys"]["secret"]["secretName"] == "inference-exporter-api-keys"
    assert mounts(c)["keys"] == KEYS
    assert [Path(f).parent for f in key_files(cfg)] == [Path(KEYS)]
    assert c["livenessProbe"]["httpGet"] == {"path": "/-/healthy", "port": "metrics", "scheme": "HTTP"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/-/ready", "port": "metrics", "scheme": "HTTP"}
    assert not any(a.startswith("--web.config.file") for a in c["args"])
    svc = out.one("Service", "inference-exporter")
    assert svc["spec"]["clusterIP"] == "None"  # the same Service serves the shards later
    assert svc["spec"]["selector"].items() <= deploy["spec"]["template"]["metadata"]["labels"].items()
    assert pod_spec(deploy)["securityContext"]["runAsNonRoot"] is True
    assert c["securityContext"]["readOnlyRootFilesystem"] is True


def test_resources_and_example_config_are_the_kustomize_ones() -> None:
    out = render()
    kustomize = yaml.safe_load(KUSTOMIZE_STS.read_text())["spec"]["template"]["spec"]["containers"][0]
    assert container(out.one("Deployment"))["resources"] == kustomize["resources"]
    example = yaml.safe_load(out.one("ConfigMap", "inference-exporter-config")["data"]["config.yaml"])
    assert example == yaml.safe_load(KUSTOMIZE_CONFIG.read_text())


def test_operator_objects_only_when_their_crds_are_served() -> None:
    assert not {"ServiceMonitor", "PrometheusRule"} & render().kinds()
    assert "No ServiceMonitor or PrometheusRule was created" in render().notes
    only_sm = render(api_versions=[SERVICE_MONITOR_API])
    assert "ServiceMonitor" in only_sm.kinds() and "PrometheusRule" not in only_sm.kinds()
    both = render(api_versions=OPERATOR_APIS)
    assert len(both.of_kind("PrometheusRule")) == 3
    off = render(
        {"serviceMonitor": {"enabled": False}, "prometheusRule": {"enabled": False}},
        api_versions=OPERATOR_APIS,
    )
    assert not {"ServiceMonitor", "PrometheusRule"} & off.kinds()


def test_servicemonitor_scrapes_every_pod_as_job_inference_exporter() -> None:
    # Another release name: the job label the bundled alerts select must not change with it.
    out = render(api_versions=OPERATOR_APIS, release="observability")
    svc = out.one("Service", "observability-inference-exporter")
    sm = out.one("ServiceMonitor", "observability-inference-exporter")
    assert sm["spec"]["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items()
    assert svc["metadata"]["labels"][sm["spec"]["jobLabel"]] == "inference-exporter"
    assert 'job="inference-exporter"' in (REPO / "prometheus" / "alerts.yaml").read_text()
    (ep,) = sm["spec"]["endpoints"]
    assert ep["port"] in {p["name"] for p in svc["spec"]["ports"]} and ep["path"] == "/metrics"
    assert ep["scheme"] == "http"


def test_a_config_change_rolls_the_pods() -> None:
    def checksum(values: dict[str, Any]) -> str:
        annotations = render(values).one("Deployment")["spec"]["template"]["metadata"]["annotations"]
        return str(annotations["checksum/config"])

    base = checksum({})
    assert checksum({}) == base
    edited = (
        render()
        .one("ConfigMap", "inference-exporter-config")["data"]["config.yaml"]
        .replace("poll_interval: 30s", "poll_interval: 1m")
    )
    assert checksum({"config": edited}) != base


def test_existing_configmap_is_used_as_is() -> None:
    out = render({"existingConfigMap": "my-exporter-config"})
    assert not [o for o in out.of_kind("ConfigMap") if o["metadata"]["name"].endswith("-config")]
    assert volumes(out.one("Deployment"))["config"]["configMap"]["name"] == "my-exporter-config"


def test_sharded_multi_account_tls(tmp_path: Path) -> None:
    out = render(SHARDED, api_versions=OPERATOR_APIS)
    assert "Deployment" not in out.kinds()
    sts = out.one("StatefulSet", "inference-exporter")
    spec = sts["spec"]
    assert spec["replicas"] == 3 and spec["podManagementPolicy"] == "Parallel"
    assert spec["serviceName"] == out.one("Service")["metadata"]["name"]
    c = container(sts)
    assert "--shard.from-pod-name" in c["args"] and "--total-shards=3" in c["args"]
    env = {e["name"]: e for e in c["env"]}
    assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    # Several accounts: each key is a file of the one Secret; the pod spec names none of them.
    cfg = loaded_config(out.one("ConfigMap", "inference-exporter-config"), tmp_path)
    assert [(vendor.name, a.name) for vendor, _, a in cfg.accounts()] == [
        ("together", "prod"),
        ("together", "staging"),
        ("baseten", "default"),
    ]
    assert {Path(f).parent for f in key_files(cfg)} == {Path(mounts(c)["keys"])}
    assert volumes(sts)["keys"]["secret"]["secretName"] == "vendor-keys"
    assert all("valueFrom" in e and "secretKeyRef" not in e["valueFrom"] for e in c["env"])
    # TLS and basic auth: the web config is a Secret whose certificate paths are the TLS Secret's mount.
    secret = out.one("Secret", "inference-exporter-web-config")
    (tmp_path / "web-config.yml").write_text(secret["stringData"]["web-config.yml"])
    web = load_web_config(tmp_path / "web-config.yml")  # what the exporter checks at start
    tls_dir = mounts(c)["tls"]
    assert web.tls_server_config.cert_file == f"{tls_dir}/tls.crt"
    assert web.tls_server_config.key_file == f"{tls_dir}/tls.key"
    assert volumes(sts)["tls"]["secret"]["secretName"] == "exporter-tls"
    assert f"--web.config.file={mounts(c)['web-config']}/web-config.yml" in c["args"]
    assert volumes(sts)["web-config"]["secret"]["secretName"] == secret["metadata"]["name"]
    annotations = spec["template"]["metadata"]["annotations"]
    assert {"checksum/config", "checksum/web-config"} <= annotations.keys()
    # The kubelet cannot send credentials: probes that need none.
    assert c["livenessProbe"]["tcpSocket"] == {"port": "metrics"}
    assert c["readinessProbe"]["tcpSocket"] == {"port": "metrics"}
    (ep,) = out.one("ServiceMonitor")["spec"]["endpoints"]
    assert ep["scheme"] == "https"
    assert ep["tlsConfig"] == SHARDED["serviceMonitor"]["tlsConfig"]
    assert ep["basicAuth"] == SHARDED["serviceMonitor"]["basicAuth"]
    assert out.one("ServiceMonitor")["metadata"]["labels"]["release"] == "kube-prometheus-stack"


BCRYPT = "$2b$04$" + "a" * 53


@pytest.mark.parametrize(
    ("web", "probes", "expected"),
    [
        ({}, {}, ("httpGet", "HTTP")),
        ({"tlsSecret": "tls"}, {}, ("httpGet", "HTTPS")),
        ({"config": {"tls_server_config": {"cert_file": "/c", "key_file": "/k"}}}, {}, ("httpGet", "HTTPS")),
        ({"config": {"basic_auth_users": {"p": BCRYPT}}}, {}, ("tcpSocket", None)),
        (
            {
                "tlsSecret": "tls",
                "config": {"tls_server_config": {"client_auth_type": "RequireAndVerifyClientCert"}},
            },
            {},
            ("tcpSocket", None),
        ),
        (
            {
                "tlsSecret": "tls",
                "config": {"tls_server_config": {"client_auth_type": "VerifyClientCertIfGiven"}},
            },
            {},
            ("httpGet", "HTTPS"),
        ),
        ({"existingSecret": "my-web-config"}, {}, ("tcpSocket", None)),
        ({"config": {"basic_auth_users": {"p": BCRYPT}}}, {"mode": "http"}, ("httpGet", "HTTP")),
        ({}, {"mode": "tcp"}, ("tcpSocket", None)),
    ],
)
def test_probes_need_no_credentials(
    web: dict[str, Any], probes: dict[str, Any], expected: tuple[str, str | None]
) -> None:
    c = container(render({"web": web, "probes": probes}).one("Deployment"))
    kind, scheme = expected
    for probe in (c["livenessProbe"], c["readinessProbe"]):
        assert kind in probe and ({"httpGet", "tcpSocket"} - {kind}).isdisjoint(probe)
        if scheme is not None:
            assert probe["httpGet"]["scheme"] == scheme


def test_schema_refuses_typos_and_bad_values() -> None:
    assert schema_error({}) == ""
    assert "replica" in schema_error({"replica": 2})
    assert "/replicas" in schema_error({"replicas": 0})
    assert "/probes/mode" in schema_error({"probes": {"mode": "exec"}})
    assert "basic_auth" in schema_error({"web": {"config": {"basic_auth": {}}}})
    assert "/config" in schema_error({"config": {"global": {}}})  # text, so that it replaces the example
