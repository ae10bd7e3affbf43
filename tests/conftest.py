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
