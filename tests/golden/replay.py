"""What every golden builder shares: the fixed clock and reading recorded responses."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from exporter.core.scope import DEFAULT_SCOPE

TESTS = Path(__file__).resolve().parents[1]
FIXTURES = TESTS / "fixtures"
GOLDEN = TESTS / "golden"

# How the daemon renders a single-account config's targets: every series ends with
# account="default".
SCOPE = DEFAULT_SCOPE

# 2026-02-07T10:30:00Z, a whole minute: the clock of the first poll of every source.
NOW = 1_770_460_200.0


def _natural(name: str) -> list[int | str]:
    """Sort key that puts ``poll-10`` after ``poll-9``."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


class Fixtures:
    """The recorded vendor responses of one source, under ``tests/fixtures/<source>/``.

    Remembers which files were read, so a test can tell that no fixture lies unused
    (a response nobody replays would look covered and be not).
    """

    def __init__(self, source: str, root: Path = FIXTURES) -> None:
        self.root = root / source
        self.read: set[Path] = set()

    def json(self, name: str) -> Any:
        path = self.root / name
        self.read.add(path)
        return json.loads(path.read_text(encoding="utf-8"))

    def raw(self, name: str) -> bytes:
        path = self.root / name
        self.read.add(path)
        return path.read_bytes()

    def exists(self, name: str) -> bool:
        return (self.root / name).is_file()

    def names(self, pattern: str) -> list[str]:
        """Files matching ``pattern`` (relative to the source's folder), in natural order."""
        found = [p.relative_to(self.root).as_posix() for p in self.root.glob(pattern) if p.is_file()]
        return sorted(found, key=_natural)

    def folders(self, under: str = "") -> list[str]:
        base = self.root / under
        return sorted((p.name for p in base.iterdir() if p.is_dir()), key=_natural)

    def all_files(self) -> set[Path]:
        return {p for p in self.root.rglob("*") if p.is_file()}
