"""The compose stack's structure: every file it mounts exists, and the pieces point at each other.

Docker is not needed: the files are read as data, and promtool checks Prometheus's config.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import yaml

from mixin import alerts
from mixin.config import DEFAULT
from mixin.generate import DEMO_ALERTS_PATH, demo_config, repo_root
from tests.helpers import need_binary

ROOT = repo_root()
COMPOSE_DIR = ROOT / "deploy/compose"


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def compose() -> dict[str, Any]:
    doc: dict[str, Any] = load(COMPOSE_DIR / "compose.yaml")
    return doc


def mounts(service: str) -> dict[str, Path]:
    """Container path → host path of a service's bind mounts (named volumes skipped)."""
    out = {}
    for spec in compose()["services"][service].get("volumes", []):
        src, dst = spec.split(":")[:2]
        if src.startswith("."):
            out[dst] = (COMPOSE_DIR / src).resolve()
    return out


def host_path(service: str, container_path: str) -> Path:
    """Where a path inside a service's container comes from on the host."""
    for dst, src in sorted(mounts(service).items(), key=lambda kv: -len(kv[0])):
        if container_path == dst or container_path.startswith(dst.rstrip("/") + "/"):
            return src / container_path[len(dst) :].lstrip("/")
    raise AssertionError(f"{container_path} is not mounted into {service}")


def test_services_and_pinned_images() -> None:
    services = compose()["services"]
    assert set(services) == {"exporter", "prometheus", "grafana"}
    assert (COMPOSE_DIR / services["exporter"]["build"]["context"] / "Dockerfile").resolve().is_file()
    for name in ("prometheus", "grafana"):
        image = services[name]["image"]
        assert re.fullmatch(r"[a-z/]+:v?\d+\.\d+\.\d+", image), f"{name} image must be pinned: {image}"
    # The dashboards are generated for Grafana 11 (see the pinned SDK build).
    assert services["grafana"]["image"].startswith("grafana/grafana:11.")
    assert services["prometheus"]["depends_on"] == ["exporter"]
    assert services["grafana"]["depends_on"] == ["prometheus"]


def test_every_bind_mount_exists() -> None:
    for service in compose()["services"]:
        for dst, src in mounts(service).items():
            assert src.exists(), f"{service}: {src} (mounted at {dst}) does not exist"


def test_prometheus_scrapes_the_exporter_and_loads_the_alerts() -> None:
    services = compose()["services"]
    prom_config_path = host_path("prometheus", "/etc/prometheus/prometheus.yml")
    prom = load(prom_config_path)
    jobs = {j["job_name"]: j for j in prom["scrape_configs"]}
    assert DEFAULT.exporter_job in jobs, "the exporter's job name must match the alerts' exporter_job"
    targets = [t for sc in jobs[DEFAULT.exporter_job]["static_configs"] for t in sc["targets"]]
    exporter_port = services["exporter"]["ports"][0].split(":")[-1]
    assert targets == [f"exporter:{exporter_port}"]
    assert f":{exporter_port}" in " ".join(services["exporter"]["command"])
    # The demo's alert rules, and the bundled objectives.
    assert [host_path("prometheus", p) for p in prom["rule_files"]] == [
        (ROOT / DEMO_ALERTS_PATH).resolve(),
        (ROOT / "prometheus/slos.yaml").resolve(),
    ]
    # The commented swap for the real APIs names the bundled rules at the same place.
    text = (COMPOSE_DIR / "compose.yaml").read_text(encoding="utf-8")
    assert "# - ../../prometheus/alerts.yaml:/etc/prometheus/rules/alerts.yaml:ro" in text


def test_demo_rules_differ_from_the_bundled_ones_only_in_the_queue_depth_hold() -> None:
    demo = load(ROOT / DEMO_ALERTS_PATH)
    bundled = load(ROOT / "prometheus/alerts.yaml")
    assert demo == yaml.safe_load(alerts.render(demo_config()))
    changed = [
        (d["alert"], d["for"], b["for"])
        for gd, gb in zip(demo["groups"], bundled["groups"], strict=True)
        for d, b in zip(gd["rules"], gb["rules"], strict=True)
        if d != b
    ]
    assert changed == [
        ("TogetherQueueDepthHigh", demo_config().queue_depth_high_for, DEFAULT.queue_depth_high_for)
    ]


def test_prometheus_config_passes_promtool(tmp_path: Path) -> None:
    promtool = need_binary("promtool")
    prom = load(host_path("prometheus", "/etc/prometheus/prometheus.yml"))
    prom["rule_files"] = [str(host_path("prometheus", p)) for p in prom["rule_files"]]
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(prom), encoding="utf-8")
    res = subprocess.run([promtool, "check", "config", str(path)], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stdout + res.stderr


def test_grafana_is_provisioned_with_the_datasource_and_dashboards() -> None:
    services = compose()["services"]
    provisioning = host_path("grafana", "/etc/grafana/provisioning")
    assert provisioning == (ROOT / "grafana/provisioning").resolve()
    (datasource,) = load(provisioning / "datasources/prometheus.yaml")["datasources"]
    assert datasource["type"] == "prometheus"
    prom_port = services["prometheus"]["ports"][0].split(":")[-1]
    assert datasource["url"] == f"http://prometheus:{prom_port}"
    prom = load(host_path("prometheus", "/etc/prometheus/prometheus.yml"))
    assert datasource["jsonData"]["timeInterval"] == prom["global"]["scrape_interval"]
    (provider,) = load(provisioning / "dashboards/inference-exporter.yaml")["providers"]
    assert provider["type"] == "file"
    dashboards = host_path("grafana", provider["options"]["path"])
    assert dashboards == (ROOT / "grafana/dashboards").resolve()
    assert sorted(p.name for p in dashboards.glob("*.json"))
    home = services["grafana"]["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert host_path("grafana", home).is_file()
