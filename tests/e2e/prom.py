"""A real Prometheus process for end-to-end tests: temporary data dir, free loopback port."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.helpers import Proc, free_port, need_binary, wait_until


def start_prometheus(
    tmp_path: Path, targets: list[str], job: str, rule_files: list[Path], interval: str = "1s"
) -> Proc:
    """Prometheus scraping ``targets`` (host:port) and evaluating rules every ``interval``."""
    binary = need_binary("prometheus")
    config = {
        "global": {"scrape_interval": interval, "scrape_timeout": interval, "evaluation_interval": interval},
        "rule_files": [str(p) for p in rule_files],
        "scrape_configs": [{"job_name": job, "static_configs": [{"targets": targets}]}],
    }
    config_path = tmp_path / "prometheus.yml"
    config_path.write_text(yaml.safe_dump(config), encoding="utf-8")
    port = free_port()
    log_path = tmp_path / f"prometheus-{port}.log"
    with log_path.open("w") as logf:
        popen = subprocess.Popen(
            [
                binary,
                f"--config.file={config_path}",
                f"--storage.tsdb.path={tmp_path / 'prometheus-data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--storage.tsdb.retention.time=1h",
                "--log.level=warn",
            ],
            stdout=logf,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=tmp_path,
        )
    proc = Proc(popen, f"http://127.0.0.1:{port}", log_path)

    def ready() -> bool:
        try:
            return httpx.get(proc.url + "/-/ready", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    wait_until(ready, timeout=30, what="prometheus ready", proc=proc, interval=0.2)
    return proc


def api(prom: Proc, path: str, **params: Any) -> Any:
    resp = httpx.get(prom.url + "/api/v1/" + path, params=params, timeout=10)
    body = resp.json()
    if body.get("status") != "success":
        raise AssertionError(f"{path} {params}: {body}")
    return body["data"]


def query(prom: Proc, expr: str) -> list[dict[str, Any]]:
    """Instant query at now; the result vector (or a scalar as one pseudo-series)."""
    data = api(prom, "query", query=expr, time=f"{time.time():.3f}")
    if data["resultType"] in ("scalar", "string"):
        return [{"metric": {}, "value": data["result"]}]
    result: list[dict[str, Any]] = data["result"]
    return result


def alerts(prom: Proc) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = api(prom, "alerts")["alerts"]
    return result
