"""The daemon against a vendor (or anything answering for ``base_url``) that attacks it:
compression bombs, JSON nested 100,000 deep, a body trickling in, a lone surrogate in a
discovered deployment, relayed Prometheus bodies crafted to cost far more than their
size. Each fails its own target with its own reason, within the timeout, with bounded
memory, while the other targets and every page carry on."""

from __future__ import annotations

import contextlib
import gzip
import json
import time
import zlib
from pathlib import Path

import httpx
import pytest

from tests.helpers import (
    Proc,
    Scrape,
    parse,
    promtool_check_metrics,
    scrape,
    start_daemon,
    wait_until,
    write_yaml,
)
from tests.integration.hostile_vendor import Canned, HostileVendor, Trickle

QUEUE = "/v1/queue/metrics"
GOOD = Canned(b'{"messages_running": 1, "messages_waiting": 2, "total_jobs": 3}')
MIB = 1 << 20
# Peak memory any hostile answer may add to the daemon.
PEAK_BOUND_MB = 50

BAD = {
    # 1 GiB of zeros gzipped twice: about 5 KB on the wire.
    "bomb/stacked": (
        Canned(gzip.compress(gzip.compress(bytes(1 << 30), 9), 9), {"Content-Encoding": "gzip, gzip"}),
        "unsupported_encoding",
    ),
    "bomb/gzip": (Canned(gzip.compress(bytes(256 * MIB), 9), {"Content-Encoding": "gzip"}), "body_too_large"),
    "bomb/deflate": (
        Canned(zlib.compress(bytes(256 * MIB), 9), {"Content-Encoding": "deflate"}),
        "body_too_large",
    ),
    "bomb/unknown": (Canned(GOOD.body, {"Content-Encoding": "compress"}), "unsupported_encoding"),
    "deep/nesting": (Canned(b"[" * 100_000 + b"]" * 100_000), "invalid_response"),
}
TRICKLE = "slow/trickle"
HEALTHY = "healthy/one"


def queue_config(tmp_path: Path, url: str) -> Path:
    models = "".join(f"    - model: {m}\n" for m in [HEALTHY, *BAD])
    return write_yaml(
        tmp_path,
        f"""\
global:
  poll_interval: 1s
  timeout: 1s
  start_spread: 200ms
together:
  base_url: {url}/v1
  api_key_env: HOSTILE_KEY
  queues:
{models}    - model: {TRICKLE}
      poll_interval: 15s
      timeout: 3s
""",
    )


def status_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} for {pid}")


def reset_peak(pid: int) -> None:
    """Make the process's peak RSS (VmHWM) its current RSS, where the kernel allows it."""
    with contextlib.suppress(OSError):
        Path(f"/proc/{pid}/clear_refs").write_text("5")


def reason(s: Scrape, model: str) -> str | None:
    for labels, value in s.series("inference_exporter_target_error_info"):
        if labels["target"] == f"together_queue/{model}" and value == 1:
            return labels["reason"]
    return None


def timed_scrape(daemon: Proc) -> tuple[Scrape, float]:
    t0 = time.monotonic()
    s = scrape(daemon.url)
    return s, time.monotonic() - t0


@pytest.mark.integration
def test_hostile_answers_fail_alone_within_memory_and_time(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with HostileVendor() as vendor:
        for model in [HEALTHY, *BAD]:
            vendor.answers[f"{QUEUE}?model={model}"] = GOOD
        # One byte a second, 60 bytes: it would hold a request for a minute.
        vendor.answers[f"{QUEUE}?model={TRICKLE}"] = Trickle(
            b'{"messages_waiting": 1, "x": "' + b"x" * 40 + b'"}'
        )
        daemon = start_daemon(
            tmp_path,
            queue_config(tmp_path, vendor.url),
            env={"HOSTILE_KEY": "hostile-key-0b7d"},
            wait_ready=False,
        )
        try:
            wait_until(
                lambda: all(scrape(daemon.url).value("inference_exporter_target_up", target=f"together_queue/{m}",
                                                     source="together_queue") == 1 for m in [HEALTHY, *BAD]),
                timeout=20, what="every queue up before the attack", proc=daemon,
            )  # fmt: skip
            pid = daemon.popen.pid
            idle_rss = status_kb(pid, "VmRSS")
            reset_peak(pid)
            before = scrape(daemon.url)
            for model, (answer, _) in BAD.items():
                vendor.answers[f"{QUEUE}?model={model}"] = answer
            # Every bad answer is met several times; scrapes go on all the while.
            slowest = 0.0
            deadline = time.monotonic() + 25
            while time.monotonic() < deadline:
                s, took = timed_scrape(daemon)
                slowest = max(slowest, took)
                wanted = {**{m: r for m, (_, r) in BAD.items()}, TRICKLE: "timeout"}
                if all(reason(s, m) == r for m, r in wanted.items()):
                    break
                time.sleep(0.2)
            for _ in range(10):  # a few more polls of each bomb
                slowest = max(slowest, timed_scrape(daemon)[1])
                time.sleep(0.3)
            peak_mb = (status_kb(pid, "VmHWM") - idle_rss) / 1024
            after, _ = timed_scrape(daemon)
            pages = {
                p: httpx.get(daemon.url + p, timeout=10).status_code
                for p in ("/targets", "/targets?format=json", "/")
            }
        finally:
            assert daemon.stop() == 0
        held = vendor.durations(f"{QUEUE}?model={TRICKLE}")
    log = daemon.log()
    with capsys.disabled():
        print(f"\nhostile answers: peak RSS +{peak_mb:.1f} MB over idle, slowest scrape {slowest * 1000:.0f} ms, "
              f"trickle requests held {', '.join(f'{d:.2f}s' for d in held)}")  # fmt: skip
    for model, (_, expected) in BAD.items():
        assert reason(after, model) == expected, (model, reason(after, model))
    assert reason(after, TRICKLE) == "timeout"
    assert peak_mb < PEAK_BOUND_MB, peak_mb
    # timeout: 3s bounds each request as a whole, not each wait for the next byte.
    assert held and max(held) < 4.5, held
    # The healthy target kept polling through it all; the scrapes were never held up.
    healthy = {"target": f"together_queue/{HEALTHY}", "source": "together_queue"}
    assert after.value("inference_exporter_target_up", **healthy) == 1
    success = "inference_exporter_target_last_success_timestamp_seconds"
    assert (after.value(success, **healthy) or 0) > (before.value(success, **healthy) or 0) + 3
    assert slowest < 2.0, slowest
    assert set(pages.values()) == {200}, pages
    assert "Traceback" not in log and "internal_error" not in log


DEPLOYMENT = {"name": "v1", "status": "ACTIVE", "is_production": True, "environment": "production"}


def deployments(*ids: str) -> Canned:
    """The deployments list; ids are JSON text (``d\\udfff`` stays an escape)."""
    items = ",".join(f'{{"id": "{i}", {json.dumps(DEPLOYMENT)[1:]}' for i in ids)
    return Canned(b'{"deployments": [' + items.encode() + b"]}")


@pytest.mark.integration
def test_a_lone_surrogate_in_a_discovered_deployment_fails_its_discovery_alone(tmp_path: Path) -> None:
    with HostileVendor() as vendor:
        vendor.answers["/v1/models"] = Canned(b'{"models": [{"id": "m1", "name": "llama"}]}')
        vendor.answers["/v1/models/m1/deployments"] = deployments("d\\udfff", "dgood")
        config = write_yaml(
            tmp_path,
            f"""\
global:
  poll_interval: 1s
  timeout: 1s
  start_spread: 100ms
baseten:
  base_url: {vendor.url}
  api_key_env: HOSTILE_KEY
  discovery:
    - refresh_interval: 1s
""",
        )
        daemon = start_daemon(tmp_path, config, env={"HOSTILE_KEY": "hostile-key-0b7d"}, wait_ready=False)
        try:
            wait_until(lambda: httpx.get(daemon.url + "/-/ready", timeout=5).status_code == 200, timeout=15,
                       what="ready", proc=daemon)  # fmt: skip
            statuses = [httpx.get(daemon.url + p, timeout=5).status_code
                        for p in ("/targets", "/targets?format=json", "/", "/metrics") for _ in range(3)]  # fmt: skip
            targets = httpx.get(daemon.url + "/targets?format=json", timeout=5).json()["targets"]
            # Once the vendor answers text again, what it lists is polled.
            vendor.answers["/v1/models/m1/deployments"] = deployments("dgood")
            wait_until(
                lambda: "baseten/m1/dgood" in httpx.get(daemon.url + "/targets?format=json", timeout=5).text,
                timeout=15, what="the deployment scheduled", proc=daemon,
            )  # fmt: skip
        finally:
            assert daemon.stop() == 0
    assert set(statuses) == {200}, statuses
    (discovery,) = targets
    assert discovery["id"] == "baseten_discovery/0" and discovery["last_error"] == "invalid_response"
    assert discovery["last_error_detail"] == (
        "GET /v1/models/{model_id}/deployments: the string at deployments[0].id is not valid Unicode "
        "(a lone surrogate escape)"
    )
    assert "Traceback" not in daemon.log()


# Relayed Prometheus bodies crafted to hurt, by relay name: the body, and the reason its
# target fails with (None: it stays up, what cannot be relayed left out and counted).
HOSTILE_BODIES: dict[str, tuple[Canned, str | None]] = {
    # A run of digits that is no number: read split at every digit, minutes of CPU.
    "digits": (Canned(b"g 1\ng " + b"1" * 50_000 + b"x\n"), "invalid_response"),
    # Prometheus refuses the value and fails the whole scrape with it.
    "overflow": (Canned(b'# TYPE g gauge\ng{a="1"} 1\ng{a="2"} 1e309\n'), "invalid_response"),
    # h_sum would come after histogram h in the exposition, read as a second h.
    "collision": (Canned(b'h_sum 1\n# TYPE h histogram\nh_bucket{le="+Inf"} 1\n'), "invalid_response"),
    # A frame per escape: read, 16 MiB of them took more than a GiB.
    "escapes": (Canned(b'esc_ok 1\nesc{a="' + b"\\\\" * (8 * MIB) + b'"} 1\n'), None),
    # Lines the slowest to read: seconds of CPU, which must not hold up a scrape.
    "newlines": (Canned(b"nl_ok 1\n" + b"\n" * (8 * MIB)), None),
    # Names without series: each costs memory whether kept or not.
    "names": (Canned(b"".join(b"# TYPE m%d gauge\n" % i for i in range(1001))), "too_many_families"),
    "bomb": (Canned(gzip.compress(bytes(256 * MIB), 9), {"Content-Encoding": "gzip"}), "body_too_large"),
    # Rate-limited for decades: the last body is served up to stale_after (10s here), then
    # the target is down for at most an hour, saying so.
    "retry_after": (Canned(b"", {"Retry-After": "999999999"}, status=429), "rate_limited"),
}
HEALTHY_BODY = Canned(b"# HELP fine_total Fine.\n# TYPE fine_total counter\nfine_total 3\n")


def relay_config(tmp_path: Path, url: str) -> Path:
    names = ["healthy", *HOSTILE_BODIES]
    endpoints = "".join(
        f"    - {{name: {n}, url: /relay/{n}, interval: 10s, stale_after: 10s, max_series: 1000, "
        "max_response_bytes: 33554432}\n"
        for n in names
    )
    return write_yaml(
        tmp_path,
        f"""\
global:
  start_spread: 200ms
together:
  base_url: {url}/v1
  api_key_env: HOSTILE_KEY
  prometheus_endpoints:
{endpoints}""",
    )


def relay_reason(s: Scrape, name: str) -> str | None:
    for labels, value in s.series("inference_exporter_target_error_info"):
        if labels["target"] == f"together_relay/{name}" and value == 1:
            return labels["reason"]
    return None


@pytest.mark.integration
def test_hostile_relayed_bodies_fail_alone_and_leave_the_exposition_readable(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with HostileVendor() as vendor:
        vendor.answers["/v1/relay/healthy"] = HEALTHY_BODY
        for name in HOSTILE_BODIES:
            vendor.answers[f"/v1/relay/{name}"] = Canned(b"ok 1\n")
        daemon = start_daemon(
            tmp_path,
            relay_config(tmp_path, vendor.url),
            env={"HOSTILE_KEY": "hostile-key-0b7d"},
            wait_ready=False,
        )
        try:
            relays = ["healthy", *HOSTILE_BODIES]
            wait_until(
                lambda: all(scrape(daemon.url).value("inference_exporter_target_up", target=f"together_relay/{n}",
                                                     source="together_relay") == 1 for n in relays),
                timeout=20, what="every relay up before the attack", proc=daemon,
            )  # fmt: skip
            pid = daemon.popen.pid
            idle_rss = status_kb(pid, "VmRSS")
            reset_peak(pid)
            for name, (answer, _) in HOSTILE_BODIES.items():
                vendor.answers[f"/v1/relay/{name}"] = answer
            # Each hostile body is fetched at the next interval; scrapes go on all the while.
            slowest = 0.0
            deadline = time.monotonic() + 40
            while time.monotonic() < deadline:
                s, took = timed_scrape(daemon)
                slowest = max(slowest, took)
                wanted = {n: r for n, (_, r) in HOSTILE_BODIES.items() if r is not None}
                relayed = s.value("esc_ok") is not None and s.value("nl_ok") is not None
                if all(relay_reason(s, n) == r for n, r in wanted.items()) and relayed:
                    break
                time.sleep(0.2)
            peak_mb = (status_kb(pid, "VmHWM") - idle_rss) / 1024
            text = httpx.get(daemon.url + "/metrics", timeout=10).text
            details = {
                row["id"]: row["last_error_detail"]
                for row in httpx.get(daemon.url + "/targets?format=json", timeout=10).json()["targets"]
            }
        finally:
            assert daemon.stop() == 0
    after = parse(text)
    with capsys.disabled():
        print(
            f"\nhostile relayed bodies: peak RSS +{peak_mb:.1f} MB over idle, slowest scrape {slowest * 1000:.0f} ms"
        )
    for name, (_, expected) in HOSTILE_BODIES.items():
        assert relay_reason(after, name) == expected, (
            name,
            relay_reason(after, name),
            details.get(f"together_relay/{name}"),
        )
    assert details["together_relay/overflow"].startswith("line 3: value '1e309' of g is past the range")
    assert "it asked to wait 999999999s: held back 3600s" in details["together_relay/retry_after"]
    # What could be relayed of the others is; the healthy relay never stopped.
    assert after.value("fine_total", account="default") == 3
    assert after.value("esc_ok", account="default") == 1 and after.value("nl_ok", account="default") == 1
    assert (
        after.value("inference_exporter_target_up", target="together_relay/healthy", source="together_relay")
        == 1
    )
    # Every reader of the text format reads the exposition whole.
    assert [line for line in promtool_check_metrics(text).splitlines() if "error" in line] == []
    assert slowest < 2.0, slowest
    assert peak_mb < 4 * 32 + PEAK_BOUND_MB, peak_mb
