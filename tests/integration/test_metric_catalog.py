"""The catalog against a running exporter: the demo (every source, against the simulator).

``/metrics`` shows every family the daemon renders, however it renders it (pre-rendered
snapshots, or prometheus_client metrics in its registry), so it completes the check of
``tests/unit/test_metric_catalog.py`` for the exporter's self-metrics.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry, generate_latest

from exporter.sources.relay.names import BASETEN_ORG_PREFIX
from exporter.web.webconfig import WebSecurity
from mixin.relayed import relayed_metrics_from_catalog
from tests.catalog import catalog_metrics, catalog_text, defined_by_code, exposition_types, type_problems
from tests.helpers import REPO, Proc, free_port, wait_until


def _ready(url: str) -> bool:
    try:
        return httpx.get(url + "/-/ready", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[Proc]:
    port = free_port()
    log = tmp_path / "demo.log"
    with log.open("w") as logf:
        popen = subprocess.Popen(
            [sys.executable, "-m", "exporter", "demo", "--web.listen-address", f"127.0.0.1:{port}"],
            stdout=logf,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=REPO,
        )
    proc = Proc(popen, f"http://127.0.0.1:{port}", log)
    try:
        wait_until(lambda: _ready(proc.url), timeout=30, what="demo ready", proc=proc)
        yield proc
    finally:
        proc.stop()


def web_config_families(tmp_path: Path) -> dict[str, str]:
    """The families a web config adds (the demo runs without one)."""
    path = tmp_path / "web.yml"
    path.write_text("http_server_config:\n  headers:\n    X-Content-Type-Options: nosniff\n")
    security = WebSecurity.from_file(path)
    try:
        registry = CollectorRegistry()
        registry.register(security.collector())
        return exposition_types(generate_latest(registry).decode())
    finally:
        security.close()


@pytest.mark.integration
def test_demo_metrics_and_the_catalog_match(demo: Proc, tmp_path: Path) -> None:
    resp = httpx.get(demo.url + "/metrics", timeout=10)
    resp.raise_for_status()
    found = exposition_types(resp.text) | web_config_families(tmp_path)
    # Every source, and the exporter's own metrics, are there to be checked.
    for prefix in ("together_queue_", "together_queue_probe", "together_finetune_", "baseten_", "inference_"):
        assert any(name.startswith(prefix) for name in found), prefix

    # Baseten's organisation endpoint, relayed under its default prefix: the vendor's
    # families, held to the catalog's table of relayed families instead of its own rows.
    relayed = {n: t for n, t in found.items() if n.startswith(BASETEN_ORG_PREFIX)}
    assert "relay_baseten_inference_requests_total" in relayed
    problems = type_problems(
        relayed, relayed_metrics_from_catalog(catalog_text(), BASETEN_ORG_PREFIX), "/metrics"
    )
    found = {n: t for n, t in found.items() if n not in relayed}

    catalog = catalog_metrics()
    problems += type_problems(found, catalog, "/metrics")
    undefined = sorted(n for n in catalog.names if not defined_by_code(n, also=found.keys()))
    assert not problems, "\n".join(problems)
    assert not undefined, f"catalogued, but neither defined by the code nor on /metrics: {undefined}"
