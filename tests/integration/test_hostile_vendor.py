"""The daemon against a vendor (or anything answering for ``base_url``) that attacks it:
compression bombs, JSON nested 100,000 deep, a body trickling in, a lone surrogate in a
discovered deployment. Each fails its own target with its own reason, within the
timeout, with bounded memory, while the other targets and every page carry on."""

from __future__ import annotations

import contextlib
import gzip
import json
import time
import zlib
from pathlib import Path

import httpx
import pytest

from tests.helpers import Proc, Scrape, scrape, start_daemon, wait_until, write_yaml
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
