"""Golden expositions: recorded vendor responses and the exact exposition they render.

For each source, ``tests/fixtures/<source>/`` holds vendor answers (written from the
vendors' documentation, odd shapes included) and ``tests/golden/<source>.prom`` the
exposition they must render, byte for byte. A builder replays the answers through the
source's pure translation functions with a fixed clock and renders them as ``/metrics``
does, so a change to the metric surface shows up as a diff of a ``.prom`` file.

Each vendor of the registry has its builders in ``tests/golden/<vendor>.py``, as
``GOLDENS`` (source → builder).

After a deliberate change, regenerate and review the diff::

    python -m tests.golden --update
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path

from exporter.sources.registry import REGISTRY
from tests.golden.replay import GOLDEN, Fixtures

Builder = Callable[[Fixtures], bytes]


def vendor_goldens(vendor: str) -> dict[str, Builder]:
    """The golden builders of one vendor, by source."""
    goldens: dict[str, Builder] = importlib.import_module(f"tests.golden.{vendor}").GOLDENS
    return goldens


BUILDERS: dict[str, Builder] = {
    source: build for vendor in REGISTRY.names for source, build in vendor_goldens(vendor).items()
}


def golden_path(source: str) -> Path:
    return GOLDEN / f"{source}.prom"


def build(source: str) -> tuple[bytes, Fixtures]:
    """The exposition of ``source``'s fixtures, and the fixtures (with what was read)."""
    fx = Fixtures(source)
    return BUILDERS[source](fx), fx
