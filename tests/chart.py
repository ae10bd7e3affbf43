"""Rendering and linting the Helm chart offline, with Helm's own Go SDK and no helm binary.

helm-python-sdk binds Helm's SDK through a C library. Its ``Chart.render`` takes no
API versions, which a chart's ``.Capabilities.APIVersions`` checks need (``helm
template --api-versions``); the library's render call does take them, so ``render``
here calls it directly. The package is pinned to the exact version this was read from.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from tests.helpers import IN_CI, REPO

CHART = REPO / "deploy" / "helm" / "inference-exporter"
SERVICE_MONITOR_API = "monitoring.coreos.com/v1/ServiceMonitor"
PROMETHEUS_RULE_API = "monitoring.coreos.com/v1/PrometheusRule"
OPERATOR_APIS = (SERVICE_MONITOR_API, PROMETHEUS_RULE_API)
RELEASE = "inference-exporter"
NAMESPACE = "monitoring"


def sdk() -> ModuleType:
    """helm_python: skipped on a laptop without it, a failure in CI (it is a test dependency)."""
    try:
        import helm_python
    except ImportError:
        if IN_CI:
            pytest.fail("helm-python-sdk is required in CI but not installed (pip install -e '.[test]')")
        pytest.skip("helm-python-sdk not installed")
    return helm_python


@dataclass(frozen=True)
class Rendered:
    """The objects one render produced, and its NOTES.txt."""

    objects: list[dict[str, Any]]
    notes: str

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [o for o in self.objects if o["kind"] == kind]

    def one(self, kind: str, name: str | None = None) -> dict[str, Any]:
        found = [o for o in self.of_kind(kind) if name is None or o["metadata"]["name"] == name]
        assert len(found) == 1, f"{len(found)} objects of kind {kind} named {name}"
        return found[0]

    def kinds(self) -> set[str]:
        return {o["kind"] for o in self.objects}


def render(
    values: dict[str, Any] | None = None,
    *,
    api_versions: Iterable[str] = (),
    release: str = RELEASE,
    chart: Path = CHART,
) -> Rendered:
    """``helm template`` of the chart: the objects of every manifest, with these API versions served."""
    helm = sdk()
    opts = {"name": release, "namespace": NAMESPACE, "is_install": True, "api_versions": list(api_versions)}
    with helm.Chart.load(chart) as loaded:
        out = helm._native.call_string(
            "helm_render", loaded._raw(), json.dumps(values or {}), json.dumps(opts)
        )
    manifests: dict[str, str] = json.loads(out)
    objects: list[dict[str, Any]] = []
    notes = ""
    for path, text in sorted(manifests.items()):
        if path.endswith("NOTES.txt"):
            notes = text
            continue
        objects += [doc for doc in yaml.safe_load_all(text) if doc]
    return Rendered(objects, notes)


def lint(values: dict[str, Any] | None = None, chart: Path = CHART) -> list[str]:
    """``helm lint --strict``'s findings worse than information (a missing icon)."""
    report: dict[str, Any] = sdk().lint(chart, values, strict=True, kube_version="v1.30.0")
    return [f"{m['path']}: {m['error']}" for m in report["messages"] if m["severity"] >= 2]


def schema_error(values: dict[str, Any]) -> str:
    """What values.schema.json says of ``values`` ('' when they are accepted)."""
    helm = sdk()
    with helm.Chart.load(CHART) as loaded:
        try:
            loaded.validate_schema(values)
        except helm.HelmValuesError as exc:
            return str(exc)
    return ""


def pod_spec(workload: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = workload["spec"]["template"]["spec"]
    return spec


def container(workload: dict[str, Any]) -> dict[str, Any]:
    c: dict[str, Any]
    (c,) = pod_spec(workload)["containers"]
    return c
