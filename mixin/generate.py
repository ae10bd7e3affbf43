"""Everything the mixin generates, as ``{repo-relative path: file text}``."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from types import ModuleType
from typing import Any

from grafana_foundation_sdk.cog.encoder import JSONEncoder

from mixin import alerts, slo
from mixin.config import DEFAULT, MixinConfig
from mixin.dashboards import (
    baseten,
    baseten_platform,
    exporter_health,
    slos,
    together_finetunes,
    together_queues,
)

DASHBOARDS: list[ModuleType] = [
    together_queues,
    together_finetunes,
    baseten,
    baseten_platform,
    exporter_health,
    slos,
]
DASHBOARD_DIR = "grafana/dashboards"
ALERTS_PATH = "prometheus/alerts.yaml"
SLOS_PATH = "prometheus/slos.yaml"
# The demo's Prometheus (`inference-exporter demo --prometheus`, and the compose stack)
# loads these rules, installed with the package: the bundled ones but for
# TogetherQueueDepthHigh held for 2m instead of `queue_depth_high_for`, so that the demo's
# backlog (above the threshold for about four minutes of every ten, docs/demo.md) is seen
# pending and then firing within the first five minutes; and the bundled objectives.
DEMO_ALERTS_PATH = "exporter/demo/alerts.yaml"
DEMO_SLOS_PATH = "exporter/demo/slos.yaml"
DEMO_QUEUE_DEPTH_HIGH_FOR = "2m"
DEMO_HEADER = f"""\
# The demo's alert rules (`inference-exporter demo --prometheus`, deploy/compose): prometheus/alerts.yaml
# with TogetherQueueDepthHigh held for {DEMO_QUEUE_DEPTH_HIGH_FOR}, so the demo's backlog fires it within five minutes
# (docs/demo.md). Against the real APIs, load prometheus/alerts.yaml instead.
"""
DEMO_SLOS_HEADER = """\
# The demo's copy of prometheus/slos.yaml, installed with the package for `inference-exporter demo --prometheus`.
"""


def repo_root() -> Path:
    return Path(__file__).resolve().parents[1]


def dashboard_json(module: ModuleType, cfg: MixinConfig = DEFAULT) -> dict[str, Any]:
    """A dashboard as plain JSON data (what Grafana imports)."""
    data: dict[str, Any] = json.loads(json.dumps(module.build(cfg).build(), cls=JSONEncoder))
    return data


def demo_config(cfg: MixinConfig = DEFAULT) -> MixinConfig:
    """``cfg`` as the demo's Prometheus applies it (see ``DEMO_ALERTS_PATH``)."""
    return dataclasses.replace(cfg, queue_depth_high_for=DEMO_QUEUE_DEPTH_HIGH_FOR)


def outputs(cfg: MixinConfig = DEFAULT) -> dict[str, str]:
    out = {
        f"{DASHBOARD_DIR}/{m.FILENAME}": json.dumps(dashboard_json(m, cfg), indent=2, sort_keys=True) + "\n"
        for m in DASHBOARDS
    }
    out[ALERTS_PATH] = alerts.render(cfg)
    out[SLOS_PATH] = slo.render(cfg)
    out[DEMO_ALERTS_PATH] = DEMO_HEADER + alerts.render(demo_config(cfg))
    out[DEMO_SLOS_PATH] = DEMO_SLOS_HEADER + out[SLOS_PATH]
    return out
