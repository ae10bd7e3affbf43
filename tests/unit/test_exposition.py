from __future__ import annotations

import gzip
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from exporter.core.exposition import Family, Labels, Rendered, Sample, format_value, render
from exporter.core.relabel import relabel
from exporter.engine.store import Store
from tests.helpers import exposition, scraped, scraped_gzip

G = Family("x_depth", "gauge", "A gauge.")
C = Family("x_events_total", "counter", "A counter.")


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (1.0, "1"),
        (0.0, "0"),
        (-3.0, "-3"),
        (0.25, "0.25"),
        (1e20, "1e+20"),
        (math.nan, "NaN"),
        (math.inf, "+Inf"),
        (-math.inf, "-Inf"),
        (1795444166.5195746, "1795444166.5195746"),
    ],
)
def test_format_value(value: float, text: str) -> None:
    assert format_value(value) == text


def test_family_names_follow_counter_rules() -> None:
    with pytest.raises(ValueError, match="must end in _total"):
        Family("x_events", "counter", "h")
    with pytest.raises(ValueError, match="only counters"):
        Family("x_events_total", "gauge", "h")
    with pytest.raises(ValueError, match="invalid metric name"):
        Family("x-y", "gauge", "h")


def test_label_values_are_escaped_and_parse_back() -> None:
    nasty = 'a"b\\c\nd'
    out = render([Sample(G, (("model", nasty),), 2.0)])
    text = exposition([out]).decode()
    fams = list(text_string_to_metric_families(text))
    assert fams[0].samples[0].labels == {"model": nasty}


def test_duplicate_series_keep_first_and_conflicting_metadata_raises() -> None:
    out = render([Sample(G, (("a", "1"),), 1.0), Sample(G, (("a", "1"),), 2.0)])
    assert out.series == 1
    assert out.lines["x_depth"] == b'x_depth{a="1"} 1\n'
    with pytest.raises(ValueError, match="declared twice"):
        render([Sample(G, (), 1.0), Sample(Family("x_depth", "gauge", "other help"), (("b", "1"),), 1.0)])


def test_one_header_per_family_across_targets() -> None:
    parts = [
        render([Sample(G, (("t", str(i)),), float(i)), Sample(C, (("t", str(i)),), 1.0)]) for i in range(3)
    ]
    text = exposition(parts).decode()
    assert text.count("# TYPE x_depth gauge") == 1
    assert text.count("# HELP x_events_total A counter.") == 1
    fams = {f.name: f for f in text_string_to_metric_families(text)}
    assert len(fams["x_depth"].samples) == 3
    assert fams["x_events"].type == "counter"


def test_store_caches_until_a_snapshot_changes_and_gzip_is_one_stream() -> None:
    store = Store()
    store.put("a", render([Sample(G, (("t", "a"),), 1.0)]))
    first = store.exposition_parts()
    assert store.exposition_parts() is first  # cached blobs, no re-join
    store.put("b", render([Sample(G, (("t", "b"),), 2.0)]))
    second = scraped(store)
    assert second != b"".join(first) and b'{t="b"} 2' in second
    body = scraped_gzip(store, b"# TYPE tail gauge\ntail 1\n")
    import zlib

    d = zlib.decompressobj(31)
    plain = d.decompress(body)
    assert d.eof and d.unused_data == b""  # one gzip member, fully consumed
    assert plain == second + b"# TYPE tail gauge\ntail 1\n"
    assert gzip.decompress(body) == plain
    store.remove("a")
    assert b'{t="a"}' not in scraped(store)


def test_rendered_series_count() -> None:
    assert Rendered().series == 0
    assert render([Sample(G, (("t", "a"),), 1.0), Sample(C, (), 1.0)]).series == 2


# --- relabel: a reload's new target labels applied to rendered lines ----------------------

_NAMES = st.sampled_from(["a", "team", "region", "exported_zone", "le"])
_VALUES = st.text(alphabet='ab"\\\n}{ ,=', max_size=6)
_EXTRA = st.dictionaries(st.sampled_from(["team", "region", "zone"]), _VALUES, max_size=2).map(
    lambda d: (("account", "acc"), *sorted(d.items()))
)


@given(
    samples=st.lists(st.dictionaries(_NAMES, _VALUES, max_size=3), max_size=4),
    old=_EXTRA,
    new=_EXTRA,
)
def test_relabel_gives_what_render_gives_with_the_new_labels(
    samples: list[dict[str, str]], old: Labels, new: Labels
) -> None:
    fam = Family("x", "gauge", "h")
    own = [Sample(fam, tuple(labels.items()), i) for i, labels in enumerate(samples)]
    assert relabel(render(own, extra=old), old, new).lines == render(own, extra=new).lines


def test_relabel_replaces_values_in_one_pass_and_leaves_other_text_alone() -> None:
    fam = Family("x", "gauge", "h")
    old = (("account", "p"), ("team", "a"))
    tricky = Sample(fam, (("note", 'account="p",team="a"} '),), 1)
    rendered = render([tricky], extra=old)
    new = relabel(rendered, old, (("account", "p"), ("team", "b")))
    assert new.lines["x"] == b'x{note="account=\\"p\\",team=\\"a\\"} ",account="p",team="b"} 1\n'
    assert relabel(rendered, old, old) is rendered
