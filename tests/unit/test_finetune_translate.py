"""Fine-tune translation: key names, folding rows, job and list documents."""

from __future__ import annotations

import math
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.core.errors import InvalidResponse
from exporter.core.exposition import Family, render
from exporter.sources.jsonshape import whole
from exporter.sources.together.finetune import names as ftnames
from exporter.sources.together.finetune import translate as tr
from exporter.sources.together.finetune.vendor import KNOWN_STATUSES
from tests.helpers import exposition, parse, promtool_check_metrics

NAME_RE = re.compile(r"^[a-z_][a-z0-9_]*$")


# --- key → metric name --------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "name"),
    [
        ("train/loss", "together_finetune_train_loss"),
        ("eval/loss", "together_finetune_eval_loss"),
        ("train/learning_rate", "together_finetune_train_learning_rate"),
        ("eval/accuracy2", "together_finetune_eval_accuracy2"),
        ("loss", "together_finetune_loss"),
        ("train_loss", "together_finetune_train__5f_loss"),
        ("Train/Loss", "together_finetune___54_rain__2f___4c_oss"),
        ("eval/rouge-l", "together_finetune_eval__2f_rouge__2d_l"),
        # Would end in a reserved suffix or take a fixed family's name: escaped.
        ("train/tokens_total", "together_finetune_train__2f_tokens__5f_total__"),
        ("job/info", "together_finetune_job__2f_info__"),
        ("global/step", "together_finetune_global__2f_step"),
        ("total", "together_finetune_total__"),
    ],
)
def test_metric_names(key: str, name: str) -> None:
    assert ftnames.metric_name(key) == name
    Family(name, "gauge", "x")  # a valid, non-counter name


def test_look_alike_keys_get_different_names() -> None:
    keys = ["train/loss", "train_loss", "train.loss", "Train/Loss", "train//loss", "train/loss_", "trainloss"]
    names = [ftnames.metric_name(k) for k in keys]
    assert len(set(names)) == len(keys), names


def test_no_key_takes_a_fixed_family_name() -> None:
    for fixed in ftnames.FIXED_NAMES:
        core = fixed.removeprefix(ftnames.PREFIX)
        ns, _, rest = core.partition("_")
        for key in (f"{ns}/{rest}", core, core.replace("_", "/")):
            assert ftnames.metric_name(key) not in ftnames.FIXED_NAMES, key


@settings(deadline=None)  # timing varies on a loaded machine; the property is what counts
@given(st.lists(st.text(alphabet="ab_/.-A9é", min_size=1, max_size=8), unique=True, min_size=2, max_size=12))
def test_names_are_collision_free_and_valid(keys: list[str]) -> None:
    names = [ftnames.metric_name(k) for k in keys]
    assert len(set(names)) == len(names)
    for n in names:
        assert NAME_RE.match(n), n
        assert n not in ftnames.FIXED_NAMES
        assert not n.endswith(("_total", "_count", "_sum", "_bucket", "_info", "_created"))


# --- metric rows -----------------------------------------------------------------------

SEED_DOC = {
    "metrics": [
        {"train/loss": 0.5, "train/learning_rate": 0.0001, "train/global_step": 7},
        {"train/loss": 0.45, "train/learning_rate": 0.00009, "train/global_step": 14},
    ]
}


def fold(
    rows: list[Any],
    state: tr.MetricsState | None = None,
    now: float = 100.0,
    max_keys: int = 50,
    read_at: float | None = None,
    overlap: float = 60.0,
) -> tr.MetricsState:
    return tr.apply_rows(
        state or tr.MetricsState(),
        rows,
        now,
        max_keys,
        read_at=now if read_at is None else read_at,
        overlap=overlap,
    )


def test_seed_example_keeps_latest_values_and_step() -> None:
    s = fold(tr.metric_rows(SEED_DOC))
    assert s.values == {"train/loss": 0.45, "train/learning_rate": 0.00009}
    assert s.last_step == 14
    assert s.step_seen_at == 100.0
    assert not s.skipped


def test_train_and_eval_rows_at_the_same_step_are_both_kept() -> None:
    s = fold(
        [
            {"train/loss": 0.4, "train/global_step": 20},
            {"eval/loss": 0.6, "eval/accuracy": 0.8, "train/global_step": 20},
        ]
    )
    assert s.values == {"train/loss": 0.4, "eval/loss": 0.6, "eval/accuracy": 0.8}
    assert s.last_step == 20


def test_later_polls_update_values_and_keep_older_keys() -> None:
    s1 = fold(
        [{"train/loss": 0.9, "train/global_step": 1}, {"eval/loss": 1.0, "train/global_step": 1}], now=10
    )
    s2 = fold([{"train/loss": 0.7, "train/global_step": 2}], s1, now=20)
    assert s2.values == {"train/loss": 0.7, "eval/loss": 1.0}
    assert (s2.last_step, s2.step_seen_at) == (2, 20)
    # No new rows: the step and its time stay.
    s3 = fold([], s2, now=30)
    assert (s3.last_step, s3.step_seen_at, s3.values) == (2, 20, s2.values)


def test_bad_rows_are_skipped_and_counted() -> None:
    s = fold(
        [
            {"train/loss": 0.5, "train/global_step": 1},
            "not a row",
            None,
            {"train/loss": 0.1},  # no step
            {"train/loss": 0.2, "train/global_step": None},
            {"train/loss": 0.2, "train/global_step": 2.5},
            {"train/loss": 0.2, "train/global_step": -1},
            {"train/loss": 0.2, "train/global_step": True},
            {"train/loss": "0.3", "train/global_step": 3},  # non-numeric: skipped, step counts
            {"train/loss": True, "train/global_step": 4},
            {"train/loss": {"x": 1}, "train/global_step": 4},
        ]
    )
    assert s.values == {"train/loss": 0.5}
    assert s.skipped == {"not_an_object": 2, "missing_global_step": 5, "non_numeric_value": 3}
    assert s.last_step == 4


def test_null_is_no_data_and_nan_is_kept_and_steps_may_be_integral_floats() -> None:
    s = fold([{"train/loss": 0.5, "eval/loss": 0.7, "train/global_step": 1}])
    s = fold([{"train/loss": None, "eval/loss": float("nan"), "extra": 3, "train/global_step": 2.0}], s)
    assert s.values["train/loss"] == 0.5
    assert math.isnan(s.values["eval/loss"])
    assert s.values["extra"] == 3.0
    assert s.last_step == 2


def test_huge_numbers_do_not_crash() -> None:
    s = fold([{"train/loss": 10**400, "train/global_step": 1}])
    assert s.skipped == {"non_numeric_value": 1}


def test_distinct_keys_are_capped_and_counted() -> None:
    rows = [{f"train/k{i}": float(i) for i in range(5)} | {"train/global_step": 1}]
    s = fold(rows, max_keys=3)
    assert len(s.values) == 3
    assert s.dropped_values == 2 and s.key_limit_reached
    # Known keys keep updating; new ones keep being dropped.
    s = fold([{"train/k0": 9.0, "train/new": 1.0, "train/global_step": 2}], s, max_keys=3)
    assert s.values["train/k0"] == 9.0 and "train/new" not in s.values
    assert s.dropped_values == 3


def test_new_bounds_apply_to_the_keys_already_kept() -> None:
    """A reload that lowers max_keys or max_key_length, or filters keys out, holds what a
    job kept before to them at once, as rows read under them would have been."""
    rows = [
        {"train/k0": 0.0, "eval/k1": 1.0, "train/" + "x" * 30: 2.0, "train/k3": 3.0, "train/global_step": 1}
    ]
    s = fold(rows)
    assert tr.rebound(s, 50) is s  # nothing changes: the same object
    shorter = tr.rebound(s, 50, max_key_length=20)
    assert list(shorter.values) == ["train/k0", "eval/k1", "train/k3"] and not shorter.key_limit_reached
    fewer = tr.rebound(s, 2)
    assert list(fewer.values) == ["train/k0", "eval/k1"] and set(fewer.value_steps) == set(fewer.values)
    assert fewer.key_limit_reached
    # Filtered keys leave the kept ones (and take no room); a filter lifted forgets them.
    no_eval = tr.rebound(s, 2, keep_key=lambda key: not key.startswith("eval/"))
    assert list(no_eval.values) == ["train/k0", "train/" + "x" * 30] and no_eval.filtered_keys == {"eval/k1"}
    assert tr.rebound(no_eval, 2).filtered_keys == frozenset()


def test_metric_rows_shapes() -> None:
    assert tr.metric_rows({"metrics": []}) == []
    assert tr.metric_rows({"metrics": None}) == []
    assert tr.metric_rows({"other": 1}) == []
    with pytest.raises(InvalidResponse):
        tr.metric_rows([1, 2])
    with pytest.raises(InvalidResponse):
        tr.metric_rows({"metrics": {"train/loss": 1}})


# --- job object ------------------------------------------------------------------------


def test_parse_job_reads_info_and_progress() -> None:
    info = tr.parse_job(
        {
            "id": "ft-1",
            "status": "running",
            "model": "meta-llama/Llama-3-8b",
            "model_output_name": "me/out",
            "progress": {"estimate_available": True, "seconds_remaining": 120},
            "epochs_completed": 1,
            "n_epochs": 3,
            "queue_depth": 0,
            "unknown_field": {"x": 1},
        }
    )
    assert info == tr.JobInfo("running", "meta-llama/Llama-3-8b", "me/out", 120.0, 1.0, 3.0, 0.0)
    assert not info.terminal


def test_parse_job_odd_shapes() -> None:
    info = tr.parse_job(
        {
            "status": "paused_by_vendor",  # unknown enum value: kept, not terminal
            "model": None,
            "progress": {"estimate_available": False, "seconds_remaining": 50},
            "epochs_completed": -1,
            "n_epochs": "3",
            "queue_depth": None,
        }
    )
    assert info == tr.JobInfo("paused_by_vendor")
    assert not info.terminal
    for status in ("completed", "cancelled", "error"):
        assert tr.parse_job({"status": status}).terminal
    bad: object
    for bad in ({}, {"status": None}, {"status": ""}, [], "x"):
        with pytest.raises(InvalidResponse):
            tr.parse_job(bad)


def test_job_samples_render_and_pass_promtool() -> None:
    state = fold(
        [
            {"train/loss": 0.5, "train/learning_rate": 1e-4, "train/global_step": 7},
            {"eval/loss": 0.6, "eval/rouge-l": 0.3, "train/global_step": 7},
            {"train/loss": "x", "train/global_step": 8},
        ]
    )
    info = tr.JobInfo("running", "base", "out", 60.0, None, 3.0, None)
    text = exposition(
        [render(tr.job_samples("ft-a", info, state)), render(tr.job_samples("ft-b", None, tr.MetricsState()))]
    ).decode()
    s = parse(text)
    assert s.value("together_finetune_train_loss", job_id="ft-a") == 0.5
    assert s.value("together_finetune_eval_loss", job_id="ft-a") == 0.6
    assert s.value("together_finetune_eval__2f_rouge__2d_l", job_id="ft-a") == 0.3
    assert s.value("together_finetune_global_step", job_id="ft-a") == 8
    assert s.value("together_finetune_global_step_first_seen_timestamp_seconds", job_id="ft-a") == 100.0
    assert s.value("together_finetune_remaining_seconds", job_id="ft-a") == 60
    assert s.value("together_finetune_epochs_configured", job_id="ft-a") == 3
    assert s.value("together_finetune_epochs_completed", job_id="ft-a") is None
    # Identity only in _info; the status is a series per documented value.
    assert s.value("together_finetune_job_info", job_id="ft-a", base_model="base", output_name="out") == 1
    statuses = {lbl["status"]: v for lbl, v in s.series("together_finetune_job_status")}
    assert set(statuses) == set(KNOWN_STATUSES)
    assert {st for st, v in statuses.items() if v == 1} == {"running"}
    assert all(lbl["job_id"] == "ft-a" for lbl, _ in s.series("together_finetune_job_status"))
    assert s.value("together_finetune_skipped_rows_total", job_id="ft-a", reason="non_numeric_value") == 1
    assert s.value("together_finetune_skipped_rows_total", job_id="ft-b", reason="non_numeric_value") == 0
    # A job with nothing logged yet has no step or time, rather than a made-up 0.
    assert s.value("together_finetune_global_step", job_id="ft-b") is None
    assert s.value("together_finetune_global_step_first_seen_timestamp_seconds", job_id="ft-b") is None
    assert s.types["together_finetune_skipped_rows"] == "counter"
    assert promtool_check_metrics(text) == ""


def test_an_undocumented_status_is_a_series_of_its_own_with_1() -> None:
    info = tr.JobInfo("paused_for_review", "base", "out")
    s = parse(exposition([render(tr.job_samples("ft-a", info, tr.MetricsState()))]).decode())
    statuses = {lbl["status"]: v for lbl, v in s.series("together_finetune_job_status")}
    assert statuses["paused_for_review"] == 1
    assert len(statuses) == len(KNOWN_STATUSES) + 1
    assert sum(statuses.values()) == 1


def test_a_job_status_change_moves_the_1_and_keeps_the_series() -> None:
    def ones(status: str) -> list[str]:
        samples = tr.job_samples("ft-a", tr.JobInfo(status), tr.MetricsState())
        return [
            dict(x.labels)["status"] for x in samples if x.family.name.endswith("_job_status") and x.value
        ]

    assert ones("running") == ["running"]
    assert ones("error") == ["error"]


# --- job list --------------------------------------------------------------------------


def test_parse_list_and_counts() -> None:
    doc = {
        "data": [
            {"id": "ft-1", "status": "running", "created_at": "x", "updated_at": "y"},
            {"id": "ft-2", "status": "completed"},
            {"id": "ft-3", "status": "new_status"},
            {"id": "ft-4"},
            {"status": "running"},
            {"id": "not-a-fine-tune", "status": "running"},
            {"id": "ft-a/../../x", "status": "running"},
            {"id": "ft-a?b", "status": "running"},
            "junk",
        ]
    }
    listed = tr.parse_list(doc)
    assert listed == [("ft-1", "running"), ("ft-2", "completed"), ("ft-3", "new_status")]
    counts = {dict(s.labels)["status"]: s.value for s in tr.list_samples(listed)}
    assert counts["running"] == 1 and counts["completed"] == 1 and counts["new_status"] == 1
    assert counts["queued"] == 0 and set(KNOWN_STATUSES) <= counts.keys()
    assert tr.parse_list({"data": []}) == []
    bad: object
    for bad in ({}, {"data": None}, {"data": {}}, []):
        with pytest.raises(InvalidResponse):
            tr.parse_list(bad)


ROW_VALUES = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.none(),
    st.booleans(),
    st.text(max_size=3),
)
ROWS = st.lists(
    st.one_of(
        st.dictionaries(st.sampled_from([f"train/k{i}" for i in range(12)] + [tr.STEP_KEY]), ROW_VALUES),
        st.integers(),
        st.none(),
    ),
    max_size=30,
)


@settings(deadline=None)
@given(st.lists(ROWS, min_size=1, max_size=4), st.integers(min_value=1, max_value=8))
def test_folding_any_rows_stays_bounded_and_never_raises(batches: list[list[object]], max_keys: int) -> None:
    state = tr.MetricsState()
    total = 0
    for i, rows in enumerate(batches):
        prev = state
        state = tr.apply_rows(state, rows, float(i), max_keys, read_at=float(i), overlap=60.0)
        total += len(rows)
        assert len(state.values) <= max_keys
        assert sum(state.skipped.values()) <= total
        if prev.last_step is not None:
            assert state.last_step is not None and state.last_step >= prev.last_step
        # The step never comes from a row without a valid one.
        steps = [whole(r.get(tr.STEP_KEY)) for b in batches[: i + 1] for r in b if isinstance(r, dict)]
        valid = [s for s in steps if s is not None]
        assert state.last_step == (max(valid) if valid else None)
    render(tr.job_samples("ft-x", None, state))


def test_the_cursor_trails_the_vendor_time_by_the_overlap_and_never_goes_back() -> None:
    s = fold([{"train/loss": 1.0, "train/global_step": 1}], now=500.0, read_at=1000.0, overlap=30.0)
    assert s.cursor == 970.0
    s = fold([], s, now=510.0, read_at=1010.0, overlap=30.0)
    assert s.cursor == 980.0
    # A vendor clock that steps back does not widen the next read's window.
    s = fold([], s, now=520.0, read_at=900.0, overlap=30.0)
    assert s.cursor == 980.0
    assert tr.iso_time(1_700_000_000.9) == "2023-11-14T22:13:20Z"


def test_rows_an_overlapping_read_returns_again_are_applied_and_counted_once() -> None:
    first = [
        {"train/loss": 0.5, "train/global_step": 1},
        {"train/loss": "bad", "train/global_step": 2},
        "junk",
    ]
    s = fold(first, now=10.0, read_at=10.0)
    again = fold([*first, {"train/loss": 0.4, "train/global_step": 3}], s, now=20.0, read_at=20.0)
    assert again.skipped == {"non_numeric_value": 1, "not_an_object": 1}
    assert again.values == {"train/loss": 0.4} and again.last_step == 3
    # Identical rows within one read are distinct rows: both count.
    twice = fold(["junk", "junk"], now=10.0)
    assert twice.skipped == {"not_an_object": 2}
    # ...and a later read returning the same two is not a third and fourth.
    assert fold(["junk", "junk"], twice, now=11.0).skipped == {"not_an_object": 2}


def test_fingerprints_are_forgotten_once_no_read_can_return_their_rows() -> None:
    row = {"train/loss": 0.5, "train/global_step": 1}
    s = fold([row], now=0.0, read_at=100.0, overlap=10.0)
    assert len(s.seen) == 1
    s = fold([], s, now=0.0, read_at=115.0, overlap=10.0)  # cursor 105: row read at 100 kept
    assert len(s.seen) == 1
    s = fold([], s, now=0.0, read_at=125.0, overlap=10.0)  # cursor 115: read at 100 < 105
    assert s.seen == {}


def test_a_late_row_for_an_older_step_sets_only_keys_without_a_newer_value() -> None:
    s = fold(
        [
            {"train/loss": 0.9, "train/global_step": 10},
            {"eval/loss": 1.2, "train/global_step": 10},
            {"train/loss": 0.8, "train/global_step": 20},
            {"train/loss": 0.7, "train/global_step": 30},
        ],
        now=10.0,
    )
    # The evaluation of step 20 finishes after train step 30 was logged (asynchronous eval).
    s = fold([{"eval/loss": 1.1, "eval/accuracy": 0.6, "train/global_step": 20}], s, now=20.0)
    assert s.values == {"train/loss": 0.7, "eval/loss": 1.1, "eval/accuracy": 0.6}
    assert s.value_steps == {"train/loss": 30, "eval/loss": 20, "eval/accuracy": 20}
    # An even older row, logged later still, changes no key that has a newer value,
    # and a step that is not new does not move the last-logged time.
    s = fold([{"eval/loss": 9.9, "train/loss": 9.9, "train/global_step": 5}], s, now=30.0)
    assert s.values["eval/loss"] == 1.1 and s.values["train/loss"] == 0.7
    assert (s.last_step, s.step_seen_at) == (30, 10.0)
    # At the same step, the row logged last wins.
    s = fold([{"eval/loss": 1.05, "train/global_step": 20}], s, now=40.0)
    assert s.values["eval/loss"] == 1.05


def test_a_rows_fingerprint_is_its_content_whatever_the_key_order() -> None:
    row = {"train/loss": 0.5, "train/global_step": 3, "note": None}
    same = {"note": None, "train/global_step": 3, "train/loss": 0.5}
    assert tr.fingerprint(row) == tr.fingerprint(same)
    assert tr.fingerprint(row) != tr.fingerprint({**row, "train/loss": 0.25})
    assert tr.fingerprint(row) != tr.fingerprint({**row, "train/global_step": 4})
    # Rows holding lists or objects (not hashable as they are) are fingerprinted too.
    nested = {"train/global_step": 3, "extra": {"b": [1, 2], "a": 1}}
    assert tr.fingerprint(nested) == tr.fingerprint({"extra": {"a": 1, "b": [1, 2]}, "train/global_step": 3})
    assert tr.fingerprint(nested) != tr.fingerprint({"train/global_step": 3, "extra": {"b": [2, 1], "a": 1}})
    assert tr.fingerprint([1, 2]) != tr.fingerprint([2, 1])


def test_rows_that_differ_only_in_values_python_hashes_alike_are_different_rows() -> None:
    """-1 and -2 hash alike in Python, true == 1 == 1.0: each such row is new, and the
    later one's value is shown."""
    for first, second in [(-1, -2), (-1.0, -2.0), (True, 1), (1, 1.0), (2**61, 1)]:
        assert tr.fingerprint({"x": first}) != tr.fingerprint({"x": second})
        rows = [{"train/global_step": 5, "train/loss": first}]
        state = tr.apply_rows(tr.MetricsState(), rows, 100.0, 200, read_at=100.0, overlap=60)
        later = [*rows, {"train/global_step": 5, "train/loss": second}]
        state = tr.apply_rows(state, later, 120.0, 200, read_at=120.0, overlap=60)
        if not isinstance(second, bool):
            assert state.values["train/loss"] == float(second), (first, second)
