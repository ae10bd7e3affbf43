from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import Proc, start_simulator

SIM_KEY = "sim-test-key-5f1c2a"


@pytest.fixture
def simulator(tmp_path: Path) -> Iterator[Proc]:
    """A simulator process accepting SIM_KEY."""
    proc = start_simulator(tmp_path, [SIM_KEY])
    yield proc
    proc.stop()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test under tests/integration/ or tests/e2e/ carries that folder's marker, so that
    ``-m "not integration and not e2e"`` selects the fast subset (unit and mixin tests)."""
    for item in items:
        folder = item.path.parent.name
        if folder in ("integration", "e2e"):
            item.add_marker(folder)
