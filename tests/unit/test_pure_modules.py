"""Translation and page modules are pure: importing one loads no network stack."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

PURE = [
    "exporter.encoding",
    "exporter.errors",
    "exporter.exposition",
    "exporter.histogram",
    "exporter.sources.jsonshape",
    "exporter.vendorjson",
    "exporter.sources.together.queue_translate",
    "exporter.sources.together.probe_translate",
    "exporter.sources.together.finetune.translate",
    "exporter.sources.together.finetune.names",
    "exporter.sources.together.finetune.vendor",
    "exporter.sources.baseten.translate",
    "exporter.sources.baseten.layout",
    "exporter.sources.baseten.descriptors",
    "exporter.sources.baseten.counters",
    "exporter.sources.baseten.lists",
    "exporter.sources.baseten.vendor",
    "exporter.pages.targets",
    "exporter.pages.landing",
]
NETWORK = ("httpx", "httpcore", "aiohttp", "anyio", "httpx_aiohttp")


@pytest.mark.parametrize("module", PURE)
def test_a_pure_module_imports_no_network_stack(module: str) -> None:
    code = (
        f"import sys, json; import {module}; "
        f"print(json.dumps(sorted(m for m in {NETWORK!r} if m in sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []
