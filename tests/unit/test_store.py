"""The store's incremental assembly gives exactly what a full join of all snapshots gives."""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Iterable

from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.core.exposition import Family, Rendered, Sample, render
from exporter.core.scope import Scope
from exporter.engine.store import Store
from tests.helpers import scraped, scraped_gzip

FAMILIES = [
    Family("a_gauge", "gauge", "A gauge."),
    Family("b_total", "counter", "A counter."),
    Family("c_info", "gauge", "Metadata."),
    Family("d_seconds", "gauge", "A duration."),
]


def snapshot(target: str, values: dict[int, float]) -> Rendered:
    return render([Sample(FAMILIES[i], (("target", target),), v) for i, v in sorted(values.items())])


def full_join(parts: Iterable[Rendered]) -> bytes:
    """Every snapshot joined from nothing: per family in name order its header, then each
    snapshot's lines; a family a later snapshot gives another type is left out there."""
    by_family: dict[str, tuple[Family, list[bytes]]] = {}
    for part in parts:
        for name, chunk in part.lines.items():
            family = part.meta[name]
            entry = by_family.setdefault(name, (family, []))
            if entry[0].type == family.type:
                entry[1].append(chunk)
    return b"".join(by_family[n][0].header() + b"".join(by_family[n][1]) for n in sorted(by_family))


def canonical(text: bytes) -> list[tuple[bytes, list[bytes]]]:
    """Families in order with their headers, each family's lines sorted.

    The order of series inside a family carries no meaning in the text format.
    """
    out: list[tuple[bytes, list[bytes]]] = []
    for line in text.splitlines(keepends=True):
        if line.startswith(b"# HELP"):
            out.append((line, []))
        elif line.startswith(b"# TYPE"):
            out[-1] = (out[-1][0] + line, out[-1][1])
        else:
            out[-1][1].append(line)
    return [(h, sorted(lines)) for h, lines in out]


def decode_single_member(data: bytes) -> bytes:
    d = zlib.decompressobj(31)
    out = d.decompress(data)
    assert d.eof and d.unused_data == b"", "expected exactly one gzip member"
    return out


ops = st.lists(
    st.tuples(
        st.sampled_from(["t1", "t2", "t3", "t4"]),
        st.one_of(
            st.none(),
            st.dictionaries(st.integers(0, 3), st.sampled_from([0.0, 1.0, 2.5, float("nan")]), max_size=4),
        ),
        st.booleans(),
    ),
    max_size=30,
)


@settings(max_examples=150, deadline=None)
@given(ops)
def test_incremental_assembly_matches_full_join(
    steps: list[tuple[str, dict[int, float] | None, bool]],
) -> None:
    store = Store()
    reference: dict[str, Rendered] = {}
    for target, values, scrape_now in steps:
        if values is None:
            store.remove(target)
            reference.pop(target, None)
        else:
            snap = snapshot(target, values)
            store.put(target, snap)
            reference[target] = snap
        if scrape_now:
            expected = canonical(full_join(reference.values()))
            assert canonical(scraped(store)) == expected
            unzipped = decode_single_member(scraped_gzip(store, b"# tail\n"))
            assert unzipped == scraped(store) + b"# tail\n"
    assert canonical(scraped(store)) == canonical(full_join(reference.values()))
    assert gzip.decompress(scraped_gzip(store, b"")) == scraped(store)


def test_one_header_per_family_in_name_order() -> None:
    store = Store()
    store.put("t2", snapshot("t2", {0: 1.0, 1: 2.0}))
    store.put("t1", snapshot("t1", {0: 3.0}))
    text = scraped(store).decode()
    assert text.count("# TYPE a_gauge gauge") == 1
    assert text.index("# TYPE a_gauge") < text.index("# TYPE b_total")
    assert 'a_gauge{target="t2"} 1\n' in text and 'a_gauge{target="t1"} 3\n' in text


def test_unchanged_snapshot_keeps_cached_bytes() -> None:
    store = Store()
    store.put("t1", snapshot("t1", {0: 1.0, 2: 1.0}))
    first = store.exposition_parts()
    gz = scraped_gzip(store, b"")
    store.put("t1", snapshot("t1", {0: 1.0, 2: 1.0}))  # equal bytes: nothing to rebuild
    assert store.exposition_parts() is first
    assert scraped_gzip(store, b"") == gz
    store.put("t1", snapshot("t1", {0: 2.0, 2: 1.0}))
    assert b'a_gauge{target="t1"} 2\n' in scraped(store)


def test_removed_target_and_empty_family_disappear() -> None:
    store = Store()
    store.put("t1", snapshot("t1", {0: 1.0, 3: 0.5}))
    store.put("t2", snapshot("t2", {0: 1.0}))
    store.put("t1", snapshot("t1", {0: 1.0}))  # d_seconds gone from t1, so from everywhere
    assert b"d_seconds" not in scraped(store)
    store.remove("t1")
    assert b't1"' not in scraped(store)
    store.remove("t2")
    assert scraped(store) == b""
    assert decode_single_member(scraped_gzip(store, b"x\n")) == b"x\n"


def test_family_with_conflicting_type_is_left_out() -> None:
    store = Store()
    store.put("t1", render([Sample(Family("x", "gauge", "h"), (), 1.0)]))
    store.put("t2", render([Sample(Family("x", "untyped", "h"), (("a", "b"),), 2.0)]))
    text = scraped(store).decode()
    assert text.count("# TYPE x") == 1 and 'x{a="b"}' not in text


def test_a_snapshot_is_what_the_exposition_shows_of_a_key() -> None:
    store = Store()
    first = snapshot("t1", {0: 1.0, 3: 0.5})
    store.put("t1", first)
    store.put("t2", render([Sample(Family("d_seconds", "untyped", "h"), (), 2.0)]))  # left out
    got = store.snapshot("t1")
    assert got is not None and got.lines == first.lines and got.meta == first.meta
    other = store.snapshot("t2")
    assert other is not None and other.lines == {}
    assert store.snapshot("t3") is None


def test_a_snapshot_keeps_the_plain_lines_a_reload_restyles_from() -> None:
    store = Store()
    samples = [
        Sample(FAMILIES[0], (("team", "vendor"),), 1.0),
        Sample(FAMILIES[1], (("exported_team", "v"),), 2.0),
    ]
    old, new = Scope("a", (("team", "t"),)), Scope("a")
    store.put("t1", old.render(samples))
    got = store.snapshot("t1")
    # A vendor's own exported_team cannot be told from a renamed team in the text; the
    # renamed team alone can.
    assert got is not None and got.plain == {FAMILIES[1].name: b'b_total{exported_team="v"} 2\n'}
    assert new.restyle(got, old).lines == new.render(samples).lines
    store.put("t1", new.render(samples))
    got = store.snapshot("t1")
    assert got is not None and not got.plain
