"""Relaying a vendor's Prometheus text: what is kept, relabelled and rendered, from text literals."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from exporter.core.errors import InvalidResponse, LimitExceeded
from exporter.core.exposition import Family, Sample
from exporter.core.scope import FilterRule, MetricFilter, Scope
from exporter.sources.relay import body as relay_body
from exporter.sources.relay.names import RelayedFamily
from exporter.sources.relay.rules import Relayed, RelayRules
from exporter.sources.relay.translate import NO_HELP, relay
from tests import helpers

SCOPE = Scope("prod", (("team", "ml"),))


def exposition(result: Relayed) -> str:
    return helpers.exposition([result.rendered]).decode()


def relayed(body: str, scope: Scope = SCOPE, rules: RelayRules | None = None) -> str:
    return exposition(relay(body.encode(), scope, rules or RelayRules()))


def test_families_keep_their_help_and_type_and_get_the_target_labels() -> None:
    body = """\
# HELP baseten_inference_requests_total Requests by status code.
# TYPE baseten_inference_requests_total counter
baseten_inference_requests_total{model_id="m1",status_code="200"} 1027
baseten_inference_requests_total{model_id="m1",status_code="500"} 3
# HELP baseten_replicas_active Active replicas.
# TYPE baseten_replicas_active gauge
baseten_replicas_active{model_id="m1"} 2
baseten_replicas_active 1.5e3
"""
    assert relayed(body) == (
        "# HELP baseten_inference_requests_total Requests by status code.\n"
        "# TYPE baseten_inference_requests_total counter\n"
        'baseten_inference_requests_total{model_id="m1",status_code="200",account="prod",team="ml"} 1027\n'
        'baseten_inference_requests_total{model_id="m1",status_code="500",account="prod",team="ml"} 3\n'
        "# HELP baseten_replicas_active Active replicas.\n"
        "# TYPE baseten_replicas_active gauge\n"
        'baseten_replicas_active{model_id="m1",account="prod",team="ml"} 2\n'
        'baseten_replicas_active{account="prod",team="ml"} 1.5e3\n'
    )


def test_escapes_in_label_values_and_help_pass_through_as_prometheus_reads_them() -> None:
    body = r"""# HELP x_info A \\ backslash, a\nnewline and a \t kept as written.
# TYPE x_info gauge
x_info{name="say \"hi\"\n",path="C:\\tmp",odd="\t"} 1
"""
    out = relayed(body)
    assert out == (
        r"# HELP x_info A \\ backslash, a\nnewline and a \\t kept as written." + "\n"
        "# TYPE x_info gauge\n"
        r'x_info{name="say \"hi\"\n",path="C:\\tmp",odd="\t",account="prod",team="ml"} 1' + "\n"
    )
    # The HELP text as Prometheus stores it: \\ and \n undone, \t a backslash and a t.
    fam = relay(body.encode(), SCOPE).rendered.meta["x_info"]
    assert fam.help == "A \\ backslash, a\nnewline and a \\t kept as written."


def test_a_histogram_and_its_created_series_stay_one_family_a_declared_created_gauge_its_own() -> None:
    body = """\
# HELP latency_seconds Latency.
# TYPE latency_seconds histogram
latency_seconds_bucket{code="200",le="0.5"} 3
latency_seconds_bucket{code="200",le="+Inf"} 4
latency_seconds_sum{code="200"} 1.25
latency_seconds_count{code="200"} 4
latency_seconds_created{code="200"} 1.7e9
# HELP requests_created Requests.
# TYPE requests_created gauge
requests_created 1.7e9
# HELP rpc_seconds RPCs.
# TYPE rpc_seconds summary
rpc_seconds{quantile="0.99"} 0.3
rpc_seconds_sum 7
rpc_seconds_count 20
"""
    tail = 'account="prod",team="ml"'
    assert relayed(body) == (
        "# HELP latency_seconds Latency.\n"
        "# TYPE latency_seconds histogram\n"
        f'latency_seconds_bucket{{code="200",le="0.5",{tail}}} 3\n'
        f'latency_seconds_bucket{{code="200",le="+Inf",{tail}}} 4\n'
        f'latency_seconds_sum{{code="200",{tail}}} 1.25\n'
        f'latency_seconds_count{{code="200",{tail}}} 4\n'
        f'latency_seconds_created{{code="200",{tail}}} 1.7e9\n'
        "# HELP requests_created Requests.\n"
        "# TYPE requests_created gauge\n"
        f"requests_created{{{tail}}} 1.7e9\n"
        "# HELP rpc_seconds RPCs.\n"
        "# TYPE rpc_seconds summary\n"
        f'rpc_seconds{{quantile="0.99",{tail}}} 0.3\n'
        f"rpc_seconds_sum{{{tail}}} 7\n"
        f"rpc_seconds_count{{{tail}}} 20\n"
    )


def test_a_counters_created_series_belongs_to_the_counter() -> None:
    body = "# TYPE jobs_total counter\njobs_total 5\njobs_created 1.7e9\n"
    out = relay(body.encode(), SCOPE).rendered
    assert list(out.lines) == ["jobs_total"]
    assert out.lines["jobs_total"].count(b"\n") == 2


def test_samples_of_no_declared_family_are_untyped_and_a_family_without_help_says_so() -> None:
    body = '# TYPE up gauge\nup 1\nstray_thing{a="b"} 2\nup_sum 3\n'
    result = relay(body.encode(), SCOPE).rendered
    assert {n: (f.type, f.help) for n, f in result.meta.items()} == {
        "up": ("gauge", NO_HELP),
        "stray_thing": ("untyped", NO_HELP),
        # A gauge owns no _sum: its own untyped family, as Prometheus' parser reads it.
        "up_sum": ("untyped", NO_HELP),
    }


def test_samples_spread_over_the_body_make_one_block() -> None:
    body = '# TYPE a gauge\na{x="1"} 1\n# TYPE b gauge\nb 2\na{x="2"} 3\n'
    out = relayed(body)
    assert out.count("# TYPE a gauge") == 1
    assert 'a{x="1",account="prod",team="ml"} 1\na{x="2",account="prod",team="ml"} 3\n' in out


def test_timestamps_are_dropped_and_counted_values_kept_as_written() -> None:
    body = '# TYPE g gauge\ng{a="1"} 1e-3 1700000000000\ng{a="2"} NaN\ng{a="3"} -Inf -5\n'
    result = relay(body.encode(), SCOPE)
    assert result.timestamps == 2
    assert exposition(result).splitlines()[2:] == [
        'g{a="1",account="prod",team="ml"} 1e-3',
        'g{a="2",account="prod",team="ml"} NaN',
        'g{a="3",account="prod",team="ml"} -Inf',
    ]


def test_lines_written_loosely_come_out_canonical() -> None:
    body = '# TYPE g gauge\n  g { a = "1" , b="2", }\t7 \r\ng{}  8\r\ng{c="3",} 9\n'
    assert relayed(body).splitlines()[2:] == [
        'g{a="1",b="2",account="prod",team="ml"} 7',
        'g{account="prod",team="ml"} 8',
        'g{c="3",account="prod",team="ml"} 9',
    ]


# --- relabelling with honor_labels: false -----------------------------------------------


@pytest.mark.parametrize(
    ("scope", "labels", "expected"),
    [
        # A vendor label with the name of a target label is kept as exported_<name>.
        (SCOPE, 'account="acme",a="1"', 'exported_account="acme",a="1",account="prod",team="ml"'),
        (SCOPE, 'team="x",account="y"', 'exported_team="x",exported_account="y",account="prod",team="ml"'),
        # ... and exported_exported_<name> when exported_<name> is taken.
        (
            SCOPE,
            'account="a",exported_account="b"',
            'exported_exported_account="a",exported_account="b",account="prod",team="ml"',
        ),
        # An empty vendor label is no label to Prometheus: it gives way.
        (SCOPE, 'account="",a="1"', 'a="1",account="prod",team="ml"'),
        # An empty exported_<name> is free, and taken by the renamed label.
        (SCOPE, 'exported_account="",account="a"', 'exported_account="a",account="prod",team="ml"'),
        # Clashes are resolved shortest name first, as Prometheus resolves them.
        (
            Scope("prod", (("exported_x", "t2"), ("x", "t1"))),
            'x="1",exported_x="2"',
            'exported_exported_x="1",exported_exported_exported_x="2",account="prod",exported_x="t2",x="t1"',
        ),
    ],
)
def test_clashing_labels_are_renamed_as_prometheus_renames_them(
    scope: Scope, labels: str, expected: str
) -> None:
    body = f"# TYPE g gauge\ng{{{labels}}} 1\n"
    assert relayed(body, scope).splitlines()[-1] == f"g{{{expected}}} 1"


def test_a_scope_restyled_after_a_reload_matches_a_relay_through_the_new_scope() -> None:
    body = '# TYPE g gauge\ng{account="v",a="1"} 1\ng 2\n'
    old, new = SCOPE, Scope("prod", (("team", "infra"),))
    restyled = new.restyle(relay(body.encode(), old).rendered, old)
    assert restyled.lines == relay(body.encode(), new).rendered.lines


def test_a_vendor_label_renamed_one_level_keeps_no_second_copy() -> None:
    # A target label environment beside the vendor's environment on every series: each
    # is written exported_environment, which reads back as environment from the text.
    old, new = Scope("prod", (("environment", "staging"),)), Scope("prod", (("team", "ml"),))
    body = (
        "# TYPE g gauge\n"
        'g{environment="production",model_id="m"} 1\n'
        'g{environment="development",model_id="m"} 2\n'
        "g 3\n"
    )
    g = Family("g", "gauge", "Relayed.")
    samples = [
        Sample(g, (("environment", "production"), ("model_id", "m")), 1),
        Sample(g, (("environment", "development"), ("model_id", "m")), 2),
        Sample(g, (), 3),
    ]
    relayed, rendered = relay(body.encode(), old).rendered, old.render(samples)
    assert (
        relayed.lines
        == rendered.lines
        == {
            "g": b'g{exported_environment="production",model_id="m",account="prod",environment="staging"} 1\n'
            b'g{exported_environment="development",model_id="m",account="prod",environment="staging"} 2\n'
            b'g{account="prod",environment="staging"} 3\n'
        }
    )
    assert not relayed.plain and not rendered.plain
    for restyled in (new.restyle(relayed, old), new.restyle(rendered, old)):
        assert restyled.lines == relay(body.encode(), new).rendered.lines == new.render(samples).lines
        assert not restyled.plain
        assert old.restyle(restyled, new).lines == relayed.lines


_SCOPES = st.builds(
    Scope,
    st.sampled_from(["prod", "other"]),
    st.dictionaries(st.sampled_from(["team", "zone"]), st.sampled_from(["t", "u"]), max_size=2).map(
        lambda d: tuple(sorted(d.items()))
    ),
)


# Target labels as a Scope may have them, exported_<name> included: renamings then go
# more than one level.
_ANY_SCOPES = st.builds(
    Scope,
    st.sampled_from(["prod", "other"]),
    st.dictionaries(
        st.sampled_from(["team", "zone", "exported_team"]), st.sampled_from(["t", "u"]), max_size=2
    ).map(lambda d: tuple(sorted(d.items()))),
)


def _body(samples: list[tuple[str, dict[str, str]]]) -> bytes:
    lines = [
        f"{name}{{{','.join(f'{k}={v}' for k, v in labels.items())}}} {i % 3}"
        for i, (name, labels) in enumerate(samples)
    ]
    return "\n".join(["# TYPE g gauge", "# TYPE h gauge", *lines, ""]).encode()


def _assert_restyled_as_relayed(body: bytes, old: Scope, new: Scope) -> None:
    restyled = new.restyle(relay(body, old).rendered, old)
    expected = relay(body, new).rendered
    assert restyled.lines == expected.lines and restyled.plain.keys() == expected.plain.keys()
    assert old.restyle(restyled, new).lines == relay(body, old).rendered.lines


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["g", "h"]),
            st.dictionaries(
                st.sampled_from(["a", "team", "zone", "account", "exported_team", "exported_exported_team"]),
                st.sampled_from(['""', '"x"', '"y\\""']),
                max_size=4,
            ),
        ),
        max_size=8,
    ),
    _ANY_SCOPES,
    _ANY_SCOPES,
)
def test_a_restyled_relay_is_byte_for_byte_a_relay_through_the_new_scope(
    samples: list[tuple[str, dict[str, str]]], old: Scope, new: Scope
) -> None:
    # Labels renamed, or left out (empty), at one level or several, under either scope.
    _assert_restyled_as_relayed(_body(samples), old, new)


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["g", "h"]),
            st.dictionaries(
                st.sampled_from(["a", "team", "zone", "account"]), st.sampled_from(['"x"', '"y\\""'])
            ),
        ),
        max_size=8,
    ),
    _SCOPES,
    _SCOPES,
)
def test_a_relay_renamed_one_level_is_restyled_from_the_text_alone(
    samples: list[tuple[str, dict[str, str]]], old: Scope, new: Scope
) -> None:
    # No vendor exported_* label, no empty value: each renamed label reads back as it was.
    body = _body(samples)
    assert not relay(body, old).rendered.plain and not relay(body, new).rendered.plain
    _assert_restyled_as_relayed(body, old, new)


# --- filter, prefix, reserved names ---------------------------------------------------------


def test_the_metric_filter_drops_denied_families_before_anything_is_kept() -> None:
    body = """\
# TYPE keep_me gauge
keep_me 1
# TYPE latency_seconds histogram
latency_seconds_bucket{le="1"} 1
latency_seconds_bucket{le="+Inf"} 2
latency_seconds_sum 3
latency_seconds_count 2
stray 1
"""
    scope = Scope("prod", filter=MetricFilter((FilterRule(deny=("latency_.*", "stray")),)))
    result = relay(body.encode(), scope).rendered
    assert list(result.lines) == ["keep_me"]
    assert result.filtered == 5


def test_the_prefix_names_every_relayed_family_and_series_and_the_filter_sees_it() -> None:
    body = '# TYPE h histogram\nh_bucket{le="+Inf"} 1\nh_sum 1\nh_count 1\n# TYPE g gauge\ng 1\n'
    scope = Scope("prod", filter=MetricFilter((FilterRule(allow=("relay_h",)),)))
    out = relayed(body, scope, RelayRules(prefix="relay_"))
    assert out == (
        f"# HELP relay_h {NO_HELP}\n# TYPE relay_h histogram\n"
        'relay_h_bucket{le="+Inf",account="prod"} 1\n'
        'relay_h_sum{account="prod"} 1\nrelay_h_count{account="prod"} 1\n'
    )


def test_families_in_a_reserved_namespace_are_left_out_and_named() -> None:
    body = "inference_exporter_target_up 1\n# TYPE together_queue_depth gauge\ntogether_queue_depth 5\nok 1\n"
    rules = RelayRules(reserved=("together_queue_",))
    result = relay(body.encode(), SCOPE, rules)
    assert list(result.rendered.lines) == ["ok"]
    assert result.reserved == ("inference_exporter_target_up", "together_queue_depth")
    assert result.reserved_series == 2
    assert result.rendered.filtered == 0
    # A prefix outside the namespace keeps them apart: nothing is reserved any more.
    prefixed = relay(body.encode(), SCOPE, RelayRules(prefix="relay_", reserved=("together_queue_",)))
    assert sorted(prefixed.rendered.lines) == [
        "relay_inference_exporter_target_up",
        "relay_ok",
        "relay_together_queue_depth",
    ]


def test_counters_without_total_and_gauges_with_it_are_relayed_as_declared() -> None:
    body = "# TYPE hits counter\nhits 3\n# TYPE temp_total gauge\ntemp_total 4\n"
    meta = relay(body.encode(), SCOPE).rendered.meta
    assert (meta["hits"].type, meta["temp_total"].type) == ("counter", "gauge")
    assert all(isinstance(f, RelayedFamily) for f in meta.values())


def test_families_of_the_last_body_are_reused() -> None:
    body = b"# HELP g G.\n# TYPE g gauge\ng 1\n"
    first = relay(body, SCOPE).rendered.meta
    known = {(f.name, f.type, f.help): f for f in first.values()}
    assert relay(body.replace(b"g 1", b"g 2"), SCOPE, known=known).rendered.meta["g"] is first["g"]
    changed = relay(body.replace(b"G.", b"Other."), SCOPE, known=known).rendered.meta["g"]
    assert changed is not first["g"] and changed.help == "Other."


# --- duplicates and limits --------------------------------------------------------------------


def test_a_series_written_twice_keeps_its_first_sample_and_is_counted() -> None:
    body = '# TYPE g gauge\ng{a="1"} 1\ng{a="1"} 2\ng{account="",a="1"} 3\ng{a="2"} 4\ng 5\ng 6\n'
    result = relay(body.encode(), SCOPE)
    assert result.duplicates == 3
    assert exposition(result).splitlines()[2:] == [
        'g{a="1",account="prod",team="ml"} 1',
        'g{a="2",account="prod",team="ml"} 4',
        'g{account="prod",team="ml"} 5',
    ]


def test_more_series_than_the_account_allows_fail_with_too_many_series() -> None:
    body = "".join(f'g{{i="{i}"}} {i}\n' for i in range(11)).encode()
    with pytest.raises(LimitExceeded) as caught:
        relay(body, Scope("prod", max_series=10))
    assert caught.value.reason == "too_many_series"
    assert caught.value.limit == "max_series_per_target"
    assert "more than 10 series" in caught.value.detail
    # What the filter denies does not count.
    scope = Scope("prod", max_series=10, filter=MetricFilter((FilterRule(deny=("g",)),)))
    assert relay(body + b"h 1\n", scope).series == 1


def test_samples_with_a_too_long_label_or_name_are_dropped_and_counted() -> None:
    rules = RelayRules(max_label_length=16)
    v15, v16, v17 = "v" * 15, "v" * 16, "v" * 17
    body = (
        "# TYPE g gauge\n"
        f'g{{a="{v16}"}} 1\n'  # at the limit: kept
        f'g{{a="{v17}"}} 2\n'  # past it: dropped
        f'g{{a="{v15}\\\\"}} 3\n'  # 17 characters as written, 16 once undone: kept
        f'g{{a="{v16}\\n"}} 4\n'  # 17 once undone: dropped
        f'g{{{"n" * 17}="x"}} 5\n'  # label name past the limit
        f"{'m' * 17} 6\n"  # metric name past the limit
    )
    result = relay(body.encode(), SCOPE, rules)
    assert result.too_long == 4
    assert [line.split("{")[1].split(",")[0] for line in exposition(result).splitlines()[2:]] == [
        f'a="{v16}"',
        f'a="{v15}\\\\"',
    ]


# --- malformed bodies -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("g 1\n9bad 2\n", "line 2: a sample line must start with a metric name"),
        ("g-x 1\n", "line 1: character '-' is not allowed in a metric name"),
        ('g{a="1} 2\n', "line 1: the value of label a is not closed"),
        ("g{a=1} 2\n", "line 1: the value of label a must be a double-quoted string"),
        ('g{a="1" b="2"} 2\n', "line 1: ',' or '}' expected after the value of label a"),
        ('g{a="1"\n', "line 1: ',' or '}' expected after the value of label a"),
        ('g{"a"="1"} 2\n', "line 1: label name expected"),
        ("g\n", "line 1: sample g has no value"),
        ("g one\n", "line 1: value 'one' of g is not a number"),
        ("g 1 12.5\n", "line 1: timestamp '12.5' of g is not an integer (milliseconds)"),
        ("g 1 12 13\n", "line 1: text after the timestamp of g"),
        ('g_total 1 # {trace_id="a"} 1\n', "line 1: an exemplar"),
        ("# TYPE g gauge\n# TYPE g counter\n", "line 2: a second # TYPE line for g"),
        ("# HELP g a\n# HELP g b\n", "line 2: a second # HELP line for g"),
        ("g 1\n# TYPE g gauge\n", "line 2: # TYPE for g comes after samples named g"),
        ("# TYPE g gaug\n", "line 1: # TYPE of g must be counter, gauge, histogram, summary or untyped"),
        ("# TYPE g stateset\n", "line 1: type 'stateset' of g is OpenMetrics"),
        ("# TYPE\n", "line 1: # TYPE must be followed by a valid metric name"),
        ("g 1\n# EOF\n", "line 2: '# EOF' ends an OpenMetrics body"),
        ('g{a="1",a="2"} 1\n', "line 1: label a appears twice in one sample"),
        ('g{__name__="x"} 1\n', "line 1: label name __name__ is reserved"),
        ('# TYPE h histogram\nh_bucket{a="1"} 1\n', "line 2: no le label"),
        ("# TYPE h histogram\nh_bucket 1\n", "line 2: h_bucket has no le label"),
        ('# TYPE h histogram\nh_bucket{le="x"} 1\n', "line 2: le='x' is not a number"),
        ("# TYPE h histogram\nh 1\n", "line 2: h is a histogram: its samples are h_bucket, _sum and _count"),
        ('# TYPE s summary\ns{a="1"} 1\n', "line 2: no quantile label"),
    ],
)
def test_a_malformed_body_is_refused_with_its_line_and_what_is_wrong(body: str, message: str) -> None:
    with pytest.raises(InvalidResponse) as caught:
        relay(body.encode(), SCOPE)
    assert caught.value.reason == "invalid_response"
    assert message in caught.value.detail, caught.value.detail


def test_a_malformed_line_after_many_good_ones_is_found_on_the_fast_path_too() -> None:
    good = "".join(
        "# TYPE h histogram\n" if i == 0 else f'h_bucket{{a="{i}",le="{i}"}} {i}\n' for i in range(50)
    )
    with pytest.raises(InvalidResponse) as caught:
        relay((good + 'h_bucket{a="x",le="oops"} 1\n').encode(), SCOPE)
    assert "line 51: le='oops' is not a number" in caught.value.detail


def test_a_body_that_is_not_utf8_is_refused_with_its_line() -> None:
    with pytest.raises(InvalidResponse) as caught:
        relay(b'g 1\ng{a="\xff"} 2\n', SCOPE)
    assert caught.value.detail.startswith("line 2: not valid UTF-8")


def test_an_empty_body_relays_nothing() -> None:
    result = relay(b"", SCOPE)
    assert result.rendered.lines == {} and result.series == 0


def test_a_body_read_in_many_pieces_relays_the_same_and_counts_lines_across_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    body = "# TYPE g gauge\n" + "".join(f'g{{i="{i}",name="é{i}"}} {i}\n' for i in range(40))
    whole = relay(body.encode(), SCOPE).rendered.lines
    monkeypatch.setattr(relay_body, "PIECE_BYTES", 16)
    assert relay(body.encode(), SCOPE).rendered.lines == whole
    with pytest.raises(InvalidResponse) as caught:
        relay((body + "g{i=x} 1\n").encode(), SCOPE)
    assert caught.value.detail.startswith("line 42: ")
    with pytest.raises(InvalidResponse) as caught:
        relay(body.encode() + b'g{i="\xc3"} 1\n', SCOPE)
    assert caught.value.detail.startswith("line 42: not valid UTF-8")
