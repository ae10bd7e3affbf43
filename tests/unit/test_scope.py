"""The metric filter and target labels: which families stay, and how labels are added."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from exporter.core.errors import LimitExceeded
from exporter.core.exposition import Family, Labels, Rendered, Renderer, Sample, render
from exporter.core.scope import FilterRule, MetricFilter, Scope, merged_labels, target_id
from exporter.engine.health import (
    ERROR_INFO,
    LAST_SUCCESS,
    POLL_DURATION,
    POLLS,
    SERIES,
    TARGET_UP,
    HealthLines,
    TargetHealth,
)
from exporter.sources.together.finetune import translate as ft
from exporter.sources.together.finetune.names import metric_name

G = Family("together_queue_jobs_waiting", "gauge", "Waiting.")
R = Family("together_queue_jobs_running", "gauge", "Running.")
S = Family("baseten_status_total", "counter", "By status.")


def keeps(allow: list[str], deny: list[str], name: str) -> bool:
    return MetricFilter((FilterRule(tuple(allow), tuple(deny)),)).keeps(name)


@pytest.mark.parametrize(
    ("allow", "deny", "name", "kept"),
    [
        ([], [], "together_queue_jobs_waiting", True),  # empty allow: everything
        (["together_queue_.*"], [], "together_queue_jobs_waiting", True),
        (["together_queue_.*"], [], "baseten_replicas_active", False),
        (["together_queue"], [], "together_queue_jobs_waiting", False),  # anchored: whole name
        (["queue_jobs_waiting"], [], "together_queue_jobs_waiting", False),  # anchored at the start too
        (["together_.*"], ["together_queue_jobs_running"], "together_queue_jobs_running", False),  # deny wins
        ([], ["together_queue_jobs_running"], "together_queue_jobs_waiting", True),
        (["a", "together_queue_jobs_(waiting|running)"], [], "together_queue_jobs_running", True),
    ],
)
def test_allow_and_deny(allow: list[str], deny: list[str], name: str, kept: bool) -> None:
    assert keeps(allow, deny, name) is kept


def test_global_and_account_rules_must_both_pass() -> None:
    both = MetricFilter((FilterRule(allow=("together_.*",)), FilterRule(deny=(".*_running",))))
    assert both.keeps("together_queue_jobs_waiting")
    assert not both.keeps("together_queue_jobs_running")
    assert not both.keeps("baseten_replicas_active")
    assert not MetricFilter().active and MetricFilter((FilterRule(),)).active is False


def test_labels_follow_the_sample_labels_and_clashes_are_renamed() -> None:
    scope = Scope("prod", (("team", "ml"),))
    out = scope.render(
        [
            Sample(G, (("model", "a/b"),), 3),
            Sample(S, (("team", "vendor's"), ("status", "2xx")), 5),
            Sample(R, (), 1),
        ]
    )
    assert out.lines[G.name] == b'together_queue_jobs_waiting{model="a/b",account="prod",team="ml"} 3\n'
    # A vendor label with a configured label's name becomes exported_<name>, as in Prometheus.
    assert out.lines[S.name] == (
        b'baseten_status_total{exported_team="vendor\'s",status="2xx",account="prod",team="ml"} 5\n'
    )
    assert out.lines[R.name] == b'together_queue_jobs_running{account="prod",team="ml"} 1\n'
    assert out.filtered == 0


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        # exported_exported_<name> when exported_<name> is taken too, and so on.
        (
            (("team", "a"), ("exported_team", "b")),
            b'exported_exported_team="a",exported_team="b",account="prod",team="ml"',
        ),
        (
            (("exported_exported_team", "c"), ("team", "a"), ("exported_team", "b")),
            b'exported_exported_team="c",exported_exported_exported_team="a",exported_team="b",'
            b'account="prod",team="ml"',
        ),
        # An empty label is no label to Prometheus: one that clashes gives way, and so
        # does one whose name a renamed label takes.
        ((("team", ""), ("model", "m")), b'model="m",account="prod",team="ml"'),
        ((("exported_team", ""), ("team", "a")), b'exported_team="a",account="prod",team="ml"'),
    ],
)
def test_clashing_labels_are_renamed_as_prometheus_renames_them(labels: Labels, expected: bytes) -> None:
    out = Scope("prod", (("team", "ml"),)).render([Sample(R, labels, 1)])
    assert out.lines[R.name] == b"together_queue_jobs_running{" + expected + b"} 1\n"


def test_label_values_are_escaped() -> None:
    out = Scope("a", (("note", 'say "hi"\\\n'),)).render([Sample(R, (), 1)])
    assert out.lines[R.name] == b'together_queue_jobs_running{account="a",note="say \\"hi\\"\\\\\\n"} 1\n'


def test_a_target_with_more_series_than_its_account_allows_fails_whatever_its_source() -> None:
    samples = [Sample(R, (("model", str(i)),), 1) for i in range(4)]
    assert Scope("a", max_series=4).render(samples).series == 4
    with pytest.raises(LimitExceeded) as err:
        Scope("a", max_series=3).render(samples)
    assert (err.value.reason, err.value.limit) == ("too_many_series", "max_series_per_target")
    assert "4 series, more than max_series_per_target (3) of account 'a'" in err.value.detail


def test_filtered_families_are_left_out_and_counted() -> None:
    scope = Scope("a", (), MetricFilter((FilterRule(deny=("together_queue_jobs_running",)),)))
    out = scope.render([Sample(G, (("model", "x"),), 1), Sample(R, (("model", "x"),), 2), Sample(R, (), 3)])
    assert list(out.lines) == [G.name] and out.filtered == 2 and out.series == 1


def test_health_families_go_only_when_a_deny_names_the_exporter_prefix() -> None:
    h = TargetHealth()
    h.record_success(100.0, 0.5, 3)
    broad = Scope("a", (), MetricFilter((FilterRule(allow=("together_.*",), deny=(".*_seconds", ".*")),)))
    assert set(HealthLines("t/x", "t", broad).render_health(h).lines) == {
        "inference_exporter_target_up",
        "inference_exporter_target_poll_duration_seconds",
        "inference_exporter_target_last_success_timestamp_seconds",
        "inference_exporter_target_series",
        "inference_exporter_target_polls_total",
    }
    named = Scope(
        "a",
        (),
        MetricFilter((FilterRule(deny=("inference_exporter_target_(up|series|poll_duration_seconds)",)),)),
    )
    lines = HealthLines("t/x", "t", named).render_health(h).lines
    # target_up is never filtered away.
    assert set(lines) == {
        "inference_exporter_target_up",
        "inference_exporter_target_last_success_timestamp_seconds",
        "inference_exporter_target_polls_total",
    }
    assert lines["inference_exporter_target_up"] == (
        b'inference_exporter_target_up{target="t/x",source="t",account="a"} 1\n'
    )


def test_target_ids_keep_the_default_account_out() -> None:
    assert target_id("together_queue", "default", "org/m") == "together_queue/org/m"
    assert target_id("together_queue", "prod", "org/m") == "together_queue@prod/org/m"
    assert target_id("baseten", "eu.1", "m", "d") == "baseten@eu.1/m/d"


def test_inner_labels_override_outer_ones() -> None:
    assert merged_labels({"team": "a", "env": "x"}, {"team": "b"}, {}) == (("env", "x"), ("team", "b"))


def test_filtered_fine_tune_keys_take_no_room_under_max_keys() -> None:
    rows = [{"train/global_step": 1, "train/loss": 0.5, "train/grad_norm": 2.0, "eval/loss": 0.7}]
    filt = MetricFilter((FilterRule(deny=("together_finetune_train_.*",)),))

    state = ft.apply_rows(
        ft.MetricsState(),
        rows,
        10.0,
        1,
        read_at=10.0,
        overlap=1.0,
        keep_key=lambda k: filt.keeps(metric_name(k)),
    )
    # max_keys is 1 and two keys come first, but they are filtered: eval/loss is kept.
    assert dict(state.values) == {"eval/loss": 0.7}
    assert state.dropped_values == 0 and not state.key_limit_reached
    # Remembered for the status page's count, at most max_keys of them.
    assert len(state.filtered_keys) == 1 and state.filtered_keys < {"train/loss", "train/grad_norm"}
    unfiltered = ft.apply_rows(ft.MetricsState(), rows, 10.0, 1, read_at=10.0, overlap=1.0)
    assert len(unfiltered.values) == 1 and unfiltered.dropped_values == 2


def test_health_lines_are_what_render_makes_of_the_same_samples() -> None:
    """Each target keeps its renderer, which remembers label sets and filter verdicts from
    poll to poll; the bytes are those of a renderer made afresh, through successes,
    failures, reasons (more of them than it remembers) and filters."""

    def reference(tid: str, source: str, h: TargetHealth, scope: Scope) -> Rendered:
        labels = (("target", tid), ("source", source))
        samples = [
            Sample(TARGET_UP, labels, 1.0 if h.up else 0.0),
            Sample(POLL_DURATION, labels, h.last_duration),
            Sample(LAST_SUCCESS, labels, h.last_success_timestamp),
            Sample(SERIES, labels, float(h.series)),
            Sample(POLLS, (*labels, ("result", "success")), float(h.polls["success"])),
            *(
                Sample(POLLS, (*labels, ("result", r)), float(n))
                for r, n in sorted(h.polls.items())
                if r != "success"
            ),
        ]
        if not h.up and h.last_error_reason:
            samples.append(Sample(ERROR_INFO, (*labels, ("reason", h.last_error_reason)), 1.0))
        keep = scope.filter.keeps_health if scope.filter.active else None
        return render(samples, extra=scope.extra, keep=keep)

    scopes = [
        Scope(),
        Scope("prod", (("team", 'a "b"\\'), ("tier", "gold"))),
        Scope(
            "a", (), MetricFilter((FilterRule(deny=("inference_exporter_target_(up|series|polls_total)",)),))
        ),
        Scope("b", (), MetricFilter((FilterRule(deny=("inference_exporter_.*",)),))),
    ]
    # Each poll's time, duration, and the reason it failed ("" for a success).
    outcomes = [
        (100.5, 0.123456, ""),
        (120.0, 1.5, "timeout"),
        (140.0, 2e-7, "server_error"),
        (160.0, 30.0, ""),
        *((200.0 + i, 0.5, f"reason_{i}") for i in range(Renderer.REMEMBERED)),
        (300.0, 0.5, "timeout"),
    ]
    for scope in scopes:
        lines = HealthLines('src/x"y', "src", scope)
        h = TargetHealth()
        for i, (now, duration, reason) in enumerate([(0.0, 0.0, "not polled"), *outcomes]):
            if reason == "":
                h.record_success(now, duration, series=i % 4, filtered=i % 2)
            elif i > 0:
                h.record_failure(now, duration, reason, "d")
            got, want = lines.render_health(h), reference('src/x"y', "src", h, scope)
            assert got.lines == want.lines and got.meta == want.meta and got.filtered == want.filtered
    failing = HealthLines("t/x", "t", Scope("prod")).render_health(h)
    assert failing.lines["inference_exporter_target_error_info"] == (
        b'inference_exporter_target_error_info{target="t/x",source="t",reason="timeout",account="prod"} 1\n'
    )


def test_restyle_gives_the_new_labels_and_drops_what_the_new_filter_removes() -> None:
    samples = [Sample(G, (("model", "m"),), 1), Sample(R, (("model", "m"),), 2)]
    old = Scope("acc", (("team", "a"),))
    new = Scope("acc", (("team", "b"), ("zone", "z")), MetricFilter((FilterRule(deny=(R.name,)),)))
    restyled = new.restyle(old.render(samples), old)
    expected = new.render(samples)
    assert restyled.lines == expected.lines and restyled.meta == expected.meta


# Vendor label names that clash with target labels, at one level or several, and values
# that are empty or need escaping; target labels as a config may give them.
_OWN_NAMES = st.sampled_from(
    ["model", "team", "zone", "account", "exported_team", "exported_exported_team", "exported_account"]
)
_VALUES = st.sampled_from(["", "a", "b", 'q"\\\n'])
_SCOPES = st.builds(
    Scope,
    st.sampled_from(["acc", "other"]),
    st.dictionaries(st.sampled_from(["team", "zone", "region"]), _VALUES.filter(bool), max_size=3).map(
        lambda d: tuple(sorted(d.items()))
    ),
)
_DENIED = st.sampled_from([None, G.name])


def _samples(own: list[tuple[Family, dict[str, str]]]) -> list[Sample]:
    return [Sample(fam, tuple(labels.items()), i % 3) for i, (fam, labels) in enumerate(own)]


def _assert_restyled_as_rendered(samples: list[Sample], old: Scope, new: Scope, denied: str | None) -> None:
    if denied is not None:
        new = Scope(new.account, new.labels, MetricFilter((FilterRule(deny=(denied,)),)))
    restyled = new.restyle(old.render(samples), old)
    expected = new.render(samples)
    assert restyled.lines == expected.lines and restyled.meta == expected.meta
    assert restyled.plain == expected.plain
    # A second reload restyles what the first one gave.
    assert old.restyle(restyled, new).lines == {
        name: chunk for name, chunk in old.render(samples).lines.items() if name in restyled.lines
    }


@given(
    st.lists(
        st.tuples(st.sampled_from([G, R]), st.dictionaries(_OWN_NAMES, _VALUES, max_size=4)), max_size=6
    ),
    _SCOPES,
    _SCOPES,
    _DENIED,
)
def test_a_restyled_rendering_is_byte_for_byte_a_fresh_one(
    own: list[tuple[Family, dict[str, str]]], old: Scope, new: Scope, denied: str | None
) -> None:
    _assert_restyled_as_rendered(_samples(own), old, new, denied)


@given(
    st.lists(
        st.tuples(
            st.sampled_from([G, R]),
            st.dictionaries(
                st.sampled_from(["model", "team", "zone", "account"]), _VALUES.filter(bool), max_size=3
            ),
        ),
        max_size=6,
    ),
    _SCOPES,
    _SCOPES,
    _DENIED,
)
def test_labels_renamed_one_level_are_restyled_from_the_text_alone(
    own: list[tuple[Family, dict[str, str]]], old: Scope, new: Scope, denied: str | None
) -> None:
    # No vendor exported_* label, no empty value: each renamed label reads back as it was.
    samples = _samples(own)
    assert not old.render(samples).plain and not new.render(samples).plain
    _assert_restyled_as_rendered(samples, old, new, denied)
