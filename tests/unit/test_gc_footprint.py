"""What the exporter keeps between polls stays out of the garbage collector's way.

Full collections pause the event loop for as long as they take to walk every tracked
object; at 100k series the per-poll snapshots used to be most of those objects.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from exporter.core.exposition import Family, Sample, render
from exporter.engine import gcpolicy
from exporter.engine.store import Store
from exporter.sources.baseten.descriptors import DEFAULT_LIMITS, DescriptorCache
from exporter.sources.baseten.translate import parse
from tests.unit.baseten_docs import desc, response

G = Family("x_depth", "gauge", "Depth.")
C = Family("x_events_total", "counter", "Events.")


def test_a_stored_snapshot_is_not_tracked_by_the_collector() -> None:
    rendered = render([Sample(G, (("t", "a"),), 1.0), Sample(C, (("t", "a"),), 2.0)])
    assert not gc.is_tracked(rendered.lines)
    store = Store()
    store.put("a", rendered)
    store.put("a", render([Sample(G, (("t", "a"),), 3.0)]))
    store.exposition_gzip_parts(b"")
    # Everything the store holds per snapshot is bytes under str keys.
    assert not any(gc.is_tracked(lines) for lines in store._snapshots.values())
    assert not any(gc.is_tracked(entry.chunks) for entry in store._families.values())


def test_baseten_families_are_shared_between_polls() -> None:
    """Even a descriptor whose label values change at every poll, and so is laid out
    again, keeps its family objects: its target's cache hands them out."""
    cache = DescriptorCache()
    families = []
    for replica in ("r1", "r2", "r3"):
        cache.next_poll()
        doc = response(
            "CURRENT", [desc("baseten_replicas_active", sets=[{"replica": replica}])], [(0, [[1]])]
        )
        families.append(parse(doc, "CURRENT", DEFAULT_LIMITS, cache).layouts[0][0][0])
    assert families[0] is families[1] is families[2]


def test_a_deployments_families_are_bounded_by_its_family_limit() -> None:
    cache = DescriptorCache(max_families=3)
    made = [cache.family(f"baseten_m{i}", "gauge", "Help.") for i in range(20)]
    assert len(cache._families) <= 6
    assert cache.family("baseten_m19", "gauge", "Help.") is made[19]


@pytest.fixture
def restore_gc() -> Iterator[None]:
    before = gc.get_threshold()
    yield
    gc.set_threshold(*before)
    gc.unfreeze()


@pytest.mark.usefixtures("restore_gc")
def test_tune_freezes_what_exists_and_raises_the_young_threshold() -> None:
    kept: list[int] = []
    assert any(o is kept for o in gc.get_objects())
    gcpolicy.tune()
    # Frozen: no collection walks it any more.
    assert not any(o is kept for o in gc.get_objects())
    assert gc.get_threshold()[0] == gcpolicy.YOUNG_THRESHOLD
