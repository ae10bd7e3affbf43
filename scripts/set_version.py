"""The version is written once, in exporter/__init__.py; this writes its copies.

pyproject.toml reads the version from ``exporter.__version__``, and so does everything
that can import it (``--version``, the User-Agent, ``inference_exporter_build_info``,
the alert rules' runbook links through mixin/config.py). Files that cannot import it
carry copies: the image tag in the compose file, the kustomize base and the docs, the
Helm chart's version and appVersion, and links to the documentation released with the
version (its tag, ``vX.Y.Z``) in hand-written rules and promtool tests.

Usage: python scripts/set_version.py [--check] [NEW_VERSION]
With NEW_VERSION, exporter/__init__.py and every copy take it, and the generated rules
and the chart's copies are regenerated. With --check nothing is written; the exit
status is 1 if a copy differs from exporter/__init__.py (a test runs it).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
INIT = REPO / "exporter" / "__init__.py"
VERSION = re.compile(r'^__version__ = "([^"]+)"$', re.M)
SEMVER = re.compile(r"\d+\.\d+\.\d+(?:[-+][0-9A-Za-z.-]+)?")
# Where a copy of the version stands, and what it reads for a version: (the files it is
# looked for in, None for every file of SCANNED; the pattern; the text it should be).
COPIES: tuple[tuple[str | None, re.Pattern[str], str], ...] = (
    (None, re.compile(r"\binference-exporter:\d[\w.+-]*"), "inference-exporter:{v}"),  # an image tag
    (
        None,
        re.compile(r"/inference-exporter/blob/[^/\s]+/"),
        "/inference-exporter/blob/v{v}/",
    ),  # the docs of the version
    ("Chart.yaml", re.compile(r"^version: .*$", re.M), "version: {v}"),
    ("Chart.yaml", re.compile(r"^appVersion: .*$", re.M), 'appVersion: "{v}"'),
)
SCANNED = ("README.md", "docs", "deploy", "prometheus", "exporter/demo", "grafana")
SUFFIXES = {".md", ".yaml", ".yml", ".json", ".txt", ".tpl"}


def current() -> str:
    found = VERSION.search(INIT.read_text(encoding="utf-8"))
    if found is None:
        raise SystemExit(f"{INIT}: no __version__ line")
    return found.group(1)


def files() -> Iterator[Path]:
    for name in SCANNED:
        path = REPO / name
        if path.is_file():
            yield path
        elif path.is_dir():
            yield from sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in SUFFIXES)


def _copies(path: Path) -> Iterator[tuple[re.Pattern[str], str]]:
    for name, pattern, template in COPIES:
        if name is None or path.name == name:
            yield pattern, template


def stale(version: str) -> list[str]:
    """Every copy that does not read ``version``, as ``path:line: text``."""
    out = []
    for path in files():
        text = path.read_text(encoding="utf-8")
        for pattern, template in _copies(path):
            for m in pattern.finditer(text):
                if m.group(0) != template.format(v=version):
                    line = text.count("\n", 0, m.start()) + 1
                    out.append(f"{path.relative_to(REPO)}:{line}: {m.group(0).strip()}")
    return out


def write(version: str) -> None:
    text = INIT.read_text(encoding="utf-8")
    INIT.write_text(VERSION.sub(f'__version__ = "{version}"', text), encoding="utf-8")
    for path in files():
        text = path.read_text(encoding="utf-8")
        new = text
        for pattern, template in _copies(path):
            new = pattern.sub(template.format(v=version), new)
        if new != text:
            path.write_text(new, encoding="utf-8")
            print(f"wrote {path.relative_to(REPO)}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only check that every copy is current")
    parser.add_argument("version", nargs="?", help="the new version, X.Y.Z")
    args = parser.parse_args(argv)
    if args.check:
        problems = stale(current())
        for p in problems:
            print(f"{p}: not {current()}: run python scripts/set_version.py", file=sys.stderr)
        return 1 if problems else 0
    if args.version is not None:
        if not SEMVER.fullmatch(args.version):
            parser.error(f"{args.version!r} is not a version X.Y.Z")
        write(args.version)
    else:
        write(current())
    for generator in (["-m", "mixin"], ["scripts/gen_deploy.py"]):
        subprocess.run([sys.executable, *generator], cwd=REPO, check=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
