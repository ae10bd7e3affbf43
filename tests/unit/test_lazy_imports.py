"""A daemon loads only what it uses: what each command's code path imports, in a fresh interpreter.

The simulator is for ``demo`` and ``simulate``, Jinja for the first page, the web config's
parts for a daemon given one, cryptography and bcrypt for a web config that needs them,
and httpx's command-line client (with click, rich and pygments) for nobody.
tests/integration/test_idle_memory.py checks the running process.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import bcrypt

ROOT = Path(__file__).resolve().parents[2]
LAZY = (
    "exporter.simulator",
    "exporter.demo.prometheus",
    "exporter.web.webconfig",
    "jinja2",
    "cryptography",
    "bcrypt",
    "httpx._main",
    "rich",
    "click",
    "pygments",
)


def loaded_after(code: str) -> list[str]:
    """Which of ``LAZY`` (or their submodules) are imported once ``code`` has run."""
    report = (
        f"names = {LAZY!r}\n"
        "found = {n for n in names for m, mod in sys.modules.items() if mod and (m == n or m.startswith(n + '.'))}\n"
        "print(json.dumps(sorted(found)))"
    )
    probe = f"import sys, json\n{code}\n{report}"
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=False, cwd=ROOT, timeout=60
    )
    assert out.returncode == 0, out.stderr[-3000:]
    found: list[str] = json.loads(out.stdout.splitlines()[-1])
    return found


def test_the_daemons_code_path_loads_none_of_the_optional_parts() -> None:
    code = (
        "from exporter import cli, runner\n"
        "from exporter.engine.daemon import Exporter\n"
        "from exporter.web.server import make_app\n"
        "cli.parse_args(['--config.file', 'c.yaml'])"
    )
    assert loaded_after(code) == []


def test_each_part_loads_when_it_is_needed() -> None:
    page = (
        "from exporter.web.pages import landing\n"
        "from exporter.engine.reloadstate import ReloadState\n"
        "landing.render(landing.Overview('1', 0.0, 'c.yaml', ReloadState(True), {}), 1.0)"
    )
    assert loaded_after(page) == ["jinja2"]
    assert "exporter.simulator" in loaded_after("from exporter import cli\ncli._simulated_models()")
    hashed = bcrypt.hashpw(b"pw", bcrypt.gensalt(rounds=4)).decode()
    users = f"from exporter.web.webconfig.auth import BasicAuth\nBasicAuth({{'u': {hashed!r}}})"
    assert "bcrypt" in loaded_after(users)
    assert "bcrypt" not in loaded_after("from exporter.web.webconfig.auth import BasicAuth\nBasicAuth({})")
