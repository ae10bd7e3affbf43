"""Golden expositions: recorded vendor responses and the exact exposition they render.

For each source, ``tests/fixtures/<source>/`` holds vendor answers (written from the
vendors' documentation, odd shapes included) and ``tests/golden/<source>.prom`` the
exposition they must render, byte for byte. A builder replays the answers through the
source's pure translation functions with a fixed clock and renders them as ``/metrics``
does, so a change to the metric surface shows up as a diff of a ``.prom`` file.

After a deliberate change, regenerate and review the diff::

    python -m tests.golden --update
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tests.golden.baseten import build_baseten
from tests.golden.relay import build_relay
from tests.golden.replay import GOLDEN, Fixtures
from tests.golden.together import build_finetune, build_probe, build_queue

BUILDERS: dict[str, Callable[[Fixtures], bytes]] = {
    "together_queue": build_queue,
    "together_probe": build_probe,
    "together_finetune": build_finetune,
    "baseten": build_baseten,
    "relay": build_relay,
}


def golden_path(source: str) -> Path:
    return GOLDEN / f"{source}.prom"


def build(source: str) -> tuple[bytes, Fixtures]:
    """The exposition of ``source``'s fixtures, and the fixtures (with what was read)."""
    fx = Fixtures(source)
    return BUILDERS[source](fx), fx
