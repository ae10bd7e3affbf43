"""The version is written in one place, its copies follow it, and the changelog names it."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from exporter import __version__
from mixin.config import DEFAULT
from scripts import set_version
from tests.helpers import REPO


def test_pyproject_reads_the_version_from_the_package() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    assert "version" not in project["project"]
    assert project["project"]["dynamic"] == ["version"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "exporter.__version__"}
    assert re.fullmatch(r"\d+\.\d+\.\d+", __version__)


def test_every_copy_of_the_version_is_current() -> None:
    res = subprocess.run(
        [sys.executable, "scripts/set_version.py", "--check"], capture_output=True, text=True, cwd=REPO
    )
    assert res.returncode == 0, res.stderr


def test_the_copies_are_found_wherever_they_stand() -> None:
    """Checked against another version, every kind of copy shows up as stale."""
    stale = {line.split(":", 1)[0] for line in set_version.stale("9.9.9")}
    assert {
        "README.md",
        "deploy/compose/compose.yaml",
        "deploy/kubernetes/base/statefulset.yaml",
        "deploy/kubernetes/README.md",
        "deploy/helm/inference-exporter/Chart.yaml",
        "deploy/kubernetes/rules/sharding.yaml",
        "prometheus/alerts.yaml",
        "prometheus/tests/alerts_test.yaml",
        "prometheus/tests/slos_test.yaml",
        "exporter/demo/alerts.yaml",
    } <= stale
    chart = [line.split(": ", 1)[1] for line in set_version.stale("9.9.9") if "Chart.yaml" in line]
    assert chart == [f"version: {__version__}", f'appVersion: "{__version__}"']


def test_setting_a_version_writes_every_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for rel in [*set_version.SCANNED, "exporter/__init__.py"]:
        src, dst = REPO / rel, tmp_path / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(src, dst)
    monkeypatch.setattr(set_version, "REPO", tmp_path)
    monkeypatch.setattr(set_version, "INIT", tmp_path / "exporter/__init__.py")
    # A link to the main branch is stale too: it takes the version's tag.
    readme = tmp_path / "README.md"
    readme.write_text(
        readme.read_text()
        + "\n[x](https://github.com/inference-exporter/inference-exporter/blob/main/docs/x.md)\n"
    )
    lines = len(readme.read_text().splitlines())
    assert set_version.stale(__version__) == [f"README.md:{lines}: /inference-exporter/blob/main/"]
    set_version.write("1.2.3")
    assert set_version.current() == "1.2.3"
    assert set_version.stale("1.2.3") == []
    assert "blob/v1.2.3/docs/x.md" in readme.read_text()
    assert (REPO / "exporter/__init__.py").read_text().count(f'"{__version__}"') == 1  # the tree is untouched


def test_runbook_links_point_at_the_docs_of_this_version() -> None:
    assert DEFAULT.runbook_url == (
        f"https://github.com/inference-exporter/inference-exporter/blob/v{__version__}/docs/runbook.md"
    )


def test_the_changelog_has_a_section_for_this_version() -> None:
    text = (REPO / "CHANGELOG.md").read_text(encoding="utf-8")
    sections = re.findall(r"^## (.+)$", text, re.M)
    assert sections and sections[0].startswith(f"{__version__} ")
    assert f"git tag v{__version__}" in (REPO / "docs/development.md").read_text(encoding="utf-8")
