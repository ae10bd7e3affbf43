"""The probe's pure parts: status documents → outcome → samples, with odd vendor shapes."""

from __future__ import annotations

import pytest

from exporter.core.errors import InvalidResponse
from exporter.core.exposition import render
from exporter.sources.together.probe_translate import (
    JobStatus,
    Outcome,
    ProbeState,
    judge,
    parse_datetime,
    phase_durations,
    read_status,
    samples,
    submitted_id,
    unfinished,
)
from tests.helpers import exposition, parse, promtool_check_metrics

T0 = 1770460200.0  # 2026-02-07T10:30:00Z

DONE = {
    "request_id": "019ba379-92da-71e4-ac40-d98059fd67c7",
    "model": "my-org/video-generator",
    "status": "done",
    "outputs": {"video_url": "https://example.invalid/out.mp4"},
    "info": {"user_id": "user_123", "progress": 1},
    "priority": 1,
    "created_at": "2026-02-07T10:30:00Z",
    "claimed_at": "2026-02-07T10:30:02Z",
    "done_at": "2026-02-07T10:31:45Z",
}


def parse_timestamp(value: object) -> float | None:
    dt = parse_datetime(value)
    return dt.timestamp() if dt is not None else None


def test_parse_timestamp_forms() -> None:
    assert parse_timestamp("2026-02-07T10:30:00Z") == T0
    assert parse_timestamp("2026-02-07T10:30:00.250Z") == T0 + 0.25
    assert parse_timestamp("2026-02-07T11:30:00+01:00") == T0
    # No offset: read as UTC rather than as the exporter's local time.
    assert parse_timestamp("2026-02-07T10:30:00") == T0
    assert parse_timestamp(None) is None


@pytest.mark.parametrize("bad", ["", "yesterday", "2026-13-01T00:00:00Z", 1770460200, True, {}, []])
def test_parse_timestamp_rejects_non_datetimes(bad: object) -> None:
    with pytest.raises(ValueError):
        parse_timestamp(bad)


def test_read_status_of_the_documented_example() -> None:
    job = read_status(DONE)
    assert job.status == "done" and job.terminal and job.known
    assert job.created_at is not None and job.claimed_at is not None and job.done_at is not None
    assert (job.created_at.timestamp(), job.claimed_at.timestamp(), job.done_at.timestamp()) == (
        T0,
        T0 + 2,
        T0 + 105,
    )
    # No retries field: no data, not zero.
    assert job.retries is None
    assert job.invalid == ()


def test_read_status_ignores_unknown_fields_and_keeps_unknown_status() -> None:
    job = read_status({"status": "paused", "request_id": "r", "model": "m", "shiny_new_field": [1, 2]})
    assert job.status == "paused"
    assert not job.known and not job.terminal


@pytest.mark.parametrize("doc", [[], "done", None, 3, {}, {"status": None}, {"status": ""}, {"status": 7}])
def test_read_status_rejects_bodies_without_a_status(doc: object) -> None:
    with pytest.raises(InvalidResponse):
        read_status(doc)


def test_read_status_records_bad_timestamps_instead_of_raising() -> None:
    job = read_status({**DONE, "claimed_at": "soon", "done_at": None})
    assert job.invalid == ("claimed_at",)
    assert job.claimed_at is None and job.done_at is None
    assert job.created_at is not None and job.created_at.timestamp() == T0


@pytest.mark.parametrize(
    ("raw", "expected"), [(2, 2), (0, 0), (None, None), (-1, None), (True, None), ("2", None)]
)
def test_read_status_retries(raw: object, expected: int | None) -> None:
    assert read_status({"status": "running", "retries": raw}).retries == expected


def test_submitted_id() -> None:
    assert submitted_id({"requestId": "abc", "extra": 1}) == "abc"
    with pytest.raises(InvalidResponse, match="quota exhausted"):
        submitted_id({"error": {"code": "x", "message": "quota exhausted"}})
    bad: object
    for bad in ({}, {"requestId": ""}, {"requestId": 5}, [], None):
        with pytest.raises(InvalidResponse):
            submitted_id(bad)


def test_judge_done_measures_each_phase() -> None:
    out = judge(read_status({**DONE, "retries": 1}))
    assert out.success and out.reason == "success"
    assert out.durations == {"queue_wait": 2.0, "run": 103.0, "end_to_end": 105.0}
    assert out.retries == 1
    assert out.completed_at == T0 + 105


@pytest.mark.parametrize("field", ["created_at", "claimed_at", "done_at"])
def test_judge_done_without_a_timestamp_fails_the_probe(field: str) -> None:
    doc = {k: v for k, v in DONE.items() if k != field}
    out = judge(read_status(doc))
    assert not out.success
    assert out.reason == "missing_timestamps"
    assert field in out.detail
    assert out.completed_at is None
    # The phases that can still be measured are, the others are absent (never 0).
    assert len(out.durations) == 1


def test_judge_done_with_null_timestamp_is_missing() -> None:
    assert judge(read_status({**DONE, "claimed_at": None})).reason == "missing_timestamps"


def test_judge_done_with_unparseable_or_disordered_timestamps() -> None:
    assert judge(read_status({**DONE, "done_at": "later"})).reason == "invalid_timestamps"
    out = judge(read_status({**DONE, "claimed_at": "2026-02-07T10:29:00Z"}))
    assert out.reason == "invalid_timestamps"
    assert "queue_wait" not in out.durations
    assert out.completed_at is None


def test_judge_failed_and_canceled_jobs() -> None:
    failed = judge(read_status({**DONE, "status": "failed", "retries": 3}))
    assert failed.reason == "job_failed" and not failed.success
    # What the job went through is still measured.
    assert failed.durations["run"] == 103.0
    assert failed.retries == 3
    canceled = judge(read_status({"status": "canceled", "created_at": DONE["created_at"]}))
    assert canceled.reason == "job_canceled" and canceled.durations == {}


def test_judge_refuses_non_terminal() -> None:
    with pytest.raises(ValueError):
        judge(JobStatus("running"))


def test_phase_durations_skip_gaps_and_are_exact() -> None:
    running = read_status(
        {"status": "running", "created_at": "2026-02-07T10:30:00Z", "claimed_at": "2026-02-07T10:30:01Z"}
    )
    assert phase_durations(running) == {"queue_wait": 1.0}
    # Exact to the millisecond even at today's Unix times, where float seconds are not.
    ms = read_status(
        {
            "status": "done",
            "created_at": "2026-11-23T14:31:38.100Z",
            "claimed_at": "2026-11-23T14:31:38.400Z",
            "done_at": "2026-11-23T14:31:38.800Z",
        }
    )
    assert phase_durations(ms) == {"queue_wait": 0.3, "run": 0.4, "end_to_end": 0.7}
    assert phase_durations(JobStatus("done", done_at=ms.done_at)) == {}


def test_unfinished_reasons() -> None:
    assert unfinished(None, "server_error").reason == "status_server_error"
    assert unfinished(None, None).reason == "status_unavailable"
    assert unfinished(JobStatus("pending"), None).reason == "timeout"
    assert unfinished(JobStatus("running"), "timeout").reason == "timeout"
    weird = unfinished(JobStatus("x" * 500), None)
    assert weird.reason == "unknown_status"
    assert len(weird.detail) < 120


def test_samples_before_any_probe_start_counters_at_zero() -> None:
    s = parse(exposition([render(samples("m", ProbeState()))]).decode())
    assert s.value("together_queue_probe_jobs_total", model="m", status="done") == 0
    assert s.value("together_queue_probe_jobs_total", model="m", status="canceled") == 0
    assert s.value("together_queue_probes_total", model="m", result="success") == 0
    assert s.value("together_queue_probe_success", model="m") is None
    assert s.series("together_queue_probe_last_completed_timestamp_seconds") == []


def test_samples_after_success_then_failure() -> None:
    state = ProbeState()
    state.count_job("done")
    state.record(judge(read_status({**DONE, "retries": 0})))
    state.count_job("canceled")
    state.count_job("paused")  # not a terminal status: not counted, no new label value
    state.record(Outcome("timeout", "job still pending"))
    text = exposition([render(samples("my-org/video-generator", state))]).decode()
    s = parse(text)
    m = {"model": "my-org/video-generator"}
    assert s.value("together_queue_probe_success", **m) == 0
    # The failed probe measured nothing: no duration or retries series from the earlier success.
    assert s.series("together_queue_probe_duration_seconds") == []
    assert s.series("together_queue_probe_retries") == []
    assert s.value("together_queue_probes_total", **m, result="success") == 1
    assert s.value("together_queue_probes_total", **m, result="timeout") == 1
    assert s.value("together_queue_probe_jobs_total", **m, status="done") == 1
    assert s.value("together_queue_probe_jobs_total", **m, status="canceled") == 1
    assert len(s.series("together_queue_probe_jobs_total")) == 3
    # The last completed probe is remembered across failures.
    assert s.value("together_queue_probe_last_completed_timestamp_seconds", **m) == T0 + 105
    assert s.types["together_queue_probe_jobs"] == "counter"
    assert promtool_check_metrics(text) == ""


def test_samples_of_a_success() -> None:
    state = ProbeState()
    state.record(judge(read_status({**DONE, "retries": 2})))
    s = parse(exposition([render(samples("m", state))]).decode())
    assert s.value("together_queue_probe_success", model="m") == 1
    assert s.value("together_queue_probe_duration_seconds", model="m", phase="queue_wait") == 2
    assert s.value("together_queue_probe_duration_seconds", model="m", phase="run") == 103
    assert s.value("together_queue_probe_duration_seconds", model="m", phase="end_to_end") == 105
    assert s.value("together_queue_probe_retries", model="m") == 2


# --- the phase histograms ---------------------------------------------------------------


def observed_after(*outcomes: Outcome, buckets: tuple[float, ...] = (5.0, 30.0, 120.0)) -> dict[str, float]:
    """``{"<phase> <le>": cumulative count, "<phase> count": …}`` of the rendered histograms."""
    state = ProbeState(buckets)
    for o in outcomes:
        state.record(o)
    s = parse(exposition([render(samples("m", state))]).decode())
    out: dict[str, float] = {}
    for labels, v in s.series("together_queue_probe_phase_seconds_bucket"):
        out[f"{labels['phase']} {labels['le']}"] = v
    for labels, v in s.series("together_queue_probe_phase_seconds_count"):
        out[f"{labels['phase']} count"] = v
    for labels, v in s.series("together_queue_probe_phase_seconds_sum"):
        out[f"{labels['phase']} sum"] = v
    return out


def test_histograms_start_at_zero_for_every_phase() -> None:
    h = observed_after()
    assert h["queue_wait count"] == h["run count"] == h["end_to_end count"] == 0
    assert h["queue_wait +Inf"] == 0 and h["queue_wait 30.0"] == 0


def test_histograms_count_every_probe_not_only_the_last() -> None:
    fast = judge(read_status(DONE))  # waits 2s, runs 103s
    slow = judge(read_status({**DONE, "claimed_at": "2026-02-07T10:31:00Z"}))  # waits 60s
    h = observed_after(fast, slow, fast)
    assert h["queue_wait count"] == 3
    assert (h["queue_wait 5.0"], h["queue_wait 30.0"], h["queue_wait 120.0"]) == (2, 2, 3)
    assert h["queue_wait sum"] == 64
    assert h["run count"] == 3 and h["end_to_end count"] == 3


def test_failed_job_counts_its_queue_wait_only() -> None:
    failed = judge(read_status({**DONE, "status": "failed"}))
    assert failed.observed == {"queue_wait": 2.0}
    h = observed_after(failed)
    assert (h["queue_wait count"], h["run count"], h["end_to_end count"]) == (1, 0, 0)


def test_job_canceled_by_someone_else_counts_nowhere() -> None:
    canceled = judge(
        read_status({"status": "canceled", "created_at": DONE["created_at"], "done_at": DONE["done_at"]})
    )
    assert canceled.observed == {}


def test_done_job_with_a_missing_timestamp_counts_what_it_measured() -> None:
    out = judge(read_status({k: v for k, v in DONE.items() if k != "created_at"}))
    assert out.reason == "missing_timestamps"
    assert out.observed == {"run": 103.0}


def test_timed_out_pending_job_counts_as_at_least_the_time_it_was_seen_waiting() -> None:
    """A queue-wait objective under the probe timeout is not flattered by timeouts:
    the job lands above the threshold, not outside the histogram."""
    out = unfinished(JobStatus("pending", created_at=parse_datetime(DONE["created_at"])), None, 58.5)
    assert out.reason == "timeout"
    assert out.observed == {"queue_wait": 58.5, "end_to_end": 58.5}
    assert out.durations == {}  # the last-value gauges still show only measured phases
    h = observed_after(out)
    assert h["queue_wait 30.0"] == 0 and h["queue_wait 120.0"] == 1 and h["queue_wait count"] == 1
    assert h["run count"] == 0


def test_timed_out_running_job_counts_its_measured_queue_wait() -> None:
    running = read_status(
        {"status": "running", "created_at": "2026-02-07T10:30:00Z", "claimed_at": "2026-02-07T10:30:04Z"}
    )
    out = unfinished(running, None, 59.0)
    assert out.observed == {"queue_wait": 4.0, "end_to_end": 59.0}


def test_unfinished_without_status_or_timing_counts_nothing() -> None:
    assert unfinished(None, "server_error", 50.0).observed == {}
    assert unfinished(JobStatus("pending"), None).observed == {}
    weird = unfinished(JobStatus("paused"), None, 40.0)
    assert weird.reason == "unknown_status" and weird.observed == {"end_to_end": 40.0}


def test_known_results_start_at_zero_so_rate_sees_the_first_failure() -> None:
    s = parse(exposition([render(samples("m", ProbeState()))]).decode())
    results = {lbl["result"]: v for lbl, v in s.series("together_queue_probes_total")}
    assert results == {"success": 0, "timeout": 0, "job_failed": 0, "job_canceled": 0}


def test_probe_exposition_with_histograms_passes_promtool() -> None:
    state = ProbeState()
    state.record(judge(read_status(DONE)))
    state.record(unfinished(JobStatus("pending"), None, 59.0))
    text = exposition([render(samples("my-org/video-generator", state))]).decode()
    assert parse(text).types["together_queue_probe_phase_seconds"] == "histogram"
    assert promtool_check_metrics(text) == ""
