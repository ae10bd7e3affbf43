"""The fault matrix: every kind of vendor misbehaviour against the real daemon at once.

Each fault hits its own model's queue (one target each) while two healthy targets
poll beside them. For every row: the affected target goes down with the expected
reason (or, for harmless drift, stays up), the healthy ones keep polling and serving,
the daemon does not crash, and every target recovers on its own once faults clear.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.conftest import SIM_KEY
from tests.helpers import (
    Proc,
    Scrape,
    add_fault,
    clear_faults,
    promtool_check_metrics,
    request_log,
    scrape,
    start_daemon,
    wait_until,
)
from tests.integration.queue_config import KEY_ENV, queue_config, target

PATH = "/v1/queue/metrics"
GOOD = '{"messages_running": 1, "messages_waiting": 2, "total_jobs": 3}'


@dataclass
class Row:
    name: str
    rule: dict[str, object]
    reason: str | None  # None: the fault is harmless and the target stays up
    retried: bool = False

    @property
    def model(self) -> str:
        return "fault/" + self.name


MATRIX = [
    Row("timeout", {"kind": "delay", "delay": 5}, "timeout", retried=True),
    Row("connection-reset", {"kind": "reset"}, "connection_error", retried=True),
    Row("http-500", {"kind": "status", "status": 500}, "server_error", retried=True),
    Row("http-503", {"kind": "status", "status": 503}, "server_error", retried=True),
    Row(
        "429-retry-after", {"kind": "status", "status": 429, "headers": {"Retry-After": "1"}}, "rate_limited"
    ),
    Row(
        "429-ratelimit-reset",
        {
            "kind": "status",
            "status": 429,
            "headers": {"x-ratelimit-limit": "60", "x-ratelimit-remaining": "0", "x-ratelimit-reset": "1"},
        },
        "rate_limited",
    ),
    Row("malformed-json", {"kind": "body", "body": '{"messages_waiting": 3,'}, "invalid_response"),
    Row("truncated-json", {"kind": "truncate", "body": GOOD}, "connection_error", retried=True),
    Row("oversized-body", {"kind": "oversized", "size": 1024 * 1024}, "body_too_large"),
    Row("missing-field", {"kind": "json", "json": {"messages_running": 1}}, "invalid_response"),
    Row(
        "extra-fields",
        {"kind": "json", "json": {"messages_running": 1, "messages_waiting": 2, "new": {"x": [1]}}},
        None,
    ),
    Row(
        "wrong-types",
        {"kind": "json", "json": {"messages_running": "1", "messages_waiting": [2]}},
        "invalid_response",
    ),
    Row("not-an-object", {"kind": "json", "json": [1, 2]}, "invalid_response"),
    Row(
        "nan",
        {"kind": "body", "body": '{"messages_running": NaN, "messages_waiting": 1}'},
        "invalid_response",
    ),
    Row(
        "infinity",
        {"kind": "body", "body": '{"messages_running": 1, "messages_waiting": Infinity}'},
        "invalid_response",
    ),
    # Stacked codings are refused before any byte of the body is decoded.
    Row(
        "stacked-encoding",
        {"kind": "body", "body": GOOD, "headers": {"Content-Encoding": "gzip, gzip"}},
        "unsupported_encoding",
    ),
    Row("deep-nesting", {"kind": "body", "body": "[" * 30_000 + "]" * 30_000}, "invalid_response"),
    Row(
        "lone-surrogate",
        {"kind": "body", "body": '{"messages_running": 1, "messages_waiting": 2, "note": "\\udfff"}'},
        "invalid_response",
    ),
    Row("http-401", {"kind": "status", "status": 401}, "unauthorized"),
    Row("http-404", {"kind": "status", "status": 404}, "not_found"),
]
HEALTHY = ["healthy/one", "healthy/two"]


def down_reason(s: Scrape, model: str) -> str | None:
    for labels, value in s.series("inference_exporter_target_error_info"):
        if labels["target"] == target(model)["target"] and value == 1:
            return labels["reason"]
    return None


def last_success(s: Scrape, model: str) -> float:
    return s.value("inference_exporter_target_last_success_timestamp_seconds", **target(model)) or 0.0


def requests_for(sim: Proc, model: str, since: float, status: int | None = None) -> int:
    """Requests for ``model``'s queue since ``since`` (answered with ``status``, if given)."""
    return sum(
        1
        for e in request_log(sim, since, PATH)
        if parse_qs(urlsplit(str(e["path"])).query).get("model") == [model]
        and (status is None or e["status"] == status)
    )


@pytest.mark.integration
def test_fault_matrix(tmp_path: Path, simulator: Proc, capsys: pytest.CaptureFixture[str]) -> None:
    models = [r.model for r in MATRIX] + HEALTHY
    config = queue_config(
        tmp_path,
        simulator.url,
        models,
        stale_grace="1s",
        together_extra=["max_response_bytes: 65536"],
    )
    daemon = start_daemon(tmp_path, config, env={KEY_ENV: SIM_KEY}, wait_ready=True)
    try:
        wait_until(
            lambda: all(
                scrape(daemon.url).value("inference_exporter_target_up", **target(m)) == 1 for m in models
            ),
            timeout=15,
            what="every target up before faults",
        )
        before = scrape(daemon.url)
        for row in MATRIX:
            add_fault(simulator, path=PATH, match={"model": row.model}, **row.rule)
        # Requests from here on all met their fault (one may still be in flight at the scrape).
        fault_start = time.time()

        faulty = [r for r in MATRIX if r.reason is not None]

        def all_down() -> bool:
            s = scrape(daemon.url)
            return all(down_reason(s, r.model) == r.reason for r in faulty)

        wait_until(all_down, timeout=20, what="every faulty target down with its reason", proc=daemon)
        # Let a few more polls run under the faults: the healthy targets must keep going.
        time.sleep(2.5)
        # Answers that will not change, counted as answered (a request that timed out on
        # a busy machine before its 401 arrived is rightly retried). Counted before the
        # scrape, so that polls answered in between cannot outnumber the polls seen.
        final = {
            name: requests_for(simulator, "fault/" + name, fault_start, status)
            for name, status in (("http-401", 401), ("http-404", 404))
        }
        during = scrape(daemon.url)
        polls = {
            r.name: sum(
                v
                for labels, v in during.series("inference_exporter_target_polls_total")
                if labels["target"] == target(r.model)["target"] and labels["result"] != "success"
            )
            for r in faulty
        }
        sent = {r.name: requests_for(simulator, r.model, fault_start) for r in MATRIX}
        clear_faults(simulator)
        assert daemon.popen.poll() is None, daemon.log()

        def all_up() -> bool:
            s = scrape(daemon.url)
            return all(s.value("inference_exporter_target_up", **target(m)) == 1 for m in models)

        wait_until(all_up, timeout=20, what="every target recovered", proc=daemon)
        after = scrape(daemon.url)
    finally:
        assert daemon.stop() == 0

    table = [
        "",
        f"{'fault':<22} {'expected':<20} {'observed':<20} {'value kept':<10} {'req/poll':>8}  recovered",
    ]
    for row in MATRIX:
        observed = down_reason(during, row.model) or "up"
        kept = during.value("together_queue_jobs_waiting", model=row.model) is not None
        ratio = sent[row.name] / polls[row.name] if polls.get(row.name) else float("nan")
        recovered = after.value("inference_exporter_target_up", **target(row.model)) == 1
        table.append(
            f"{row.name:<22} {row.reason or 'up':<20} {observed:<20} {kept!s:<10} {ratio:>8.2f}  {recovered}"
        )
    with capsys.disabled():
        print("\n".join(table))

    for row in MATRIX:
        if row.reason is None:
            assert down_reason(during, row.model) is None, row.name
            assert during.value("together_queue_jobs_waiting", model=row.model) == 2
        else:
            # stale_grace is 1s: the faulty target's vendor series are gone, its health is not.
            assert during.value("together_queue_jobs_waiting", model=row.model) is None, row.name
            assert during.value("inference_exporter_target_up", **target(row.model)) == 0
    # 401 and 404 are answers, not accidents: one request per poll, never retried.
    for name, answered in final.items():
        assert 0 < answered <= polls[name] + 1, (name, answered, polls[name])
    # Transient failures are retried within the poll.
    for name in ("http-500", "http-503", "connection-reset"):
        assert sent[name] > polls[name], (name, sent[name], polls[name])
    # Healthy targets kept polling successfully the whole time.
    for m in HEALTHY:
        assert during.value("inference_exporter_target_up", **target(m)) == 1
        assert last_success(during, m) > last_success(before, m) + 2
        assert during.value("together_queue_jobs_waiting", model=m) is not None
    assert "Traceback" not in daemon.log()
    # The exposition stays valid with every failure reason and retry counter in it.
    assert promtool_check_metrics(during.text) == ""
    assert not any(
        labels.get("result") == "internal_error"
        for labels, _ in after.series("inference_exporter_target_polls_total")
    )
    retries = after.series("inference_exporter_upstream_retries_total")
    assert retries and retries[0][1] > 0
