"""The package's layers hold: the import contracts in pyproject.toml, checked by import-linter.

They say that the core, the config building blocks and the pages load no network stack, that no
layer imports one above it (the engine never the web side, sources never the config loader), and
that only the entry points know the simulator. Each vendor's pure modules (its translation and
config) are named in its contract and checked in test_vendor_contract.py.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def lint_imports() -> subprocess.CompletedProcess[str]:
    command = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or "lint-imports"
    return subprocess.run(
        [command, "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )


def test_every_import_contract_is_kept() -> None:
    result = lint_imports()
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout


def test_a_pure_module_really_loads_no_network_stack() -> None:
    """What the contract says statically, checked once at run time on the widest pure package."""
    code = (
        "import sys, exporter.core.exposition, exporter.core.scope, exporter.web.pages.targets; "
        "print(sorted(m for m in ('httpx', 'httpcore', 'aiohttp', 'anyio') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]"
