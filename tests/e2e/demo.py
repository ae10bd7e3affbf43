"""The bundled demo config for end-to-end tests: pointed at a test's simulator, polling fast."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from tests.helpers import REPO

KEY = "e2e-sim-key-0c4f9a"
STAGING_KEY = "e2e-sim-staging-key-81d3"
# The demo's two accounts per vendor: prod in the simulator's default organisation,
# staging in its "staging" one.
DEMO_ENV = {
    "INFERENCE_EXPORTER_DEMO_TOGETHER_KEY": KEY,
    "INFERENCE_EXPORTER_DEMO_BASETEN_KEY": KEY,
    "INFERENCE_EXPORTER_DEMO_TOGETHER_STAGING_KEY": STAGING_KEY,
    "INFERENCE_EXPORTER_DEMO_BASETEN_STAGING_KEY": STAGING_KEY,
}


def demo_doc(sim_url: str) -> dict[str, Any]:
    """exporter/demo/demo.yaml pointed at ``sim_url``, polling every second and probing
    every two (enough events for the probe objectives within a test)."""
    text = (
        (REPO / "exporter/demo/demo.yaml").read_text(encoding="utf-8").replace("__SIMULATOR_URL__", sim_url)
    )
    doc: dict[str, Any] = yaml.safe_load(text)
    doc["global"].update({"poll_interval": "1s", "timeout": "1s", "start_spread": "500ms"})
    for account in doc["together"]["accounts"]:
        for p in account.get("probes", []):
            p.update({"interval": "2s", "timeout": "1500ms", "status_poll_interval": "100ms"})
    return doc


def write_config(tmp_path: Path, doc: dict[str, Any]) -> Path:
    path = tmp_path / "demo.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path
