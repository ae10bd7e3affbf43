"""Everything the mixin generates, as ``{repo-relative path: file text}``."""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType
from typing import Any

from grafana_foundation_sdk.cog.encoder import JSONEncoder

from mixin import alerts, slo
from mixin.config import DEFAULT, MixinConfig
from mixin.dashboards import baseten, exporter_health, slos, together_finetunes, together_queues

DASHBOARDS: list[ModuleType] = [together_queues, together_finetunes, baseten, exporter_health, slos]
DASHBOARD_DIR = "grafana/dashboards"
ALERTS_PATH = "prometheus/alerts.yaml"
SLOS_PATH = "prometheus/slos.yaml"


def repo_root() -> Path:
    return Path(__file__).resolve().parents[1]


def dashboard_json(module: ModuleType, cfg: MixinConfig = DEFAULT) -> dict[str, Any]:
    """A dashboard as plain JSON data (what Grafana imports)."""
    data: dict[str, Any] = json.loads(json.dumps(module.build(cfg).build(), cls=JSONEncoder))
    return data


def outputs(cfg: MixinConfig = DEFAULT) -> dict[str, str]:
    out = {
        f"{DASHBOARD_DIR}/{m.FILENAME}": json.dumps(dashboard_json(m, cfg), indent=2, sort_keys=True) + "\n"
        for m in DASHBOARDS
    }
    out[ALERTS_PATH] = alerts.render(cfg)
    out[SLOS_PATH] = slo.render(cfg)
    return out
