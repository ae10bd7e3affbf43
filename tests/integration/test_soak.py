"""A bounded soak: about a minute of 1 s polls with rotating faults, reloads and scrapes.

Resident memory, open file descriptors and the number of asyncio tasks are sampled
from the daemon's own /metrics every second. After a warm-up they must stay flat:
a leak of sockets, tasks or per-poll objects grows with every poll and shows here.
"""

from __future__ import annotations

import itertools
import signal
import statistics
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import SIM_KEY
from tests.helpers import Proc, add_fault, clear_faults, scrape, start_daemon
from tests.integration.queue_config import KEY_ENV, queue_config

PATH = "/v1/queue/metrics"
DURATION = 60.0
WARMUP = 15.0
FAULTS: list[dict[str, object]] = [
    {"kind": "reset"},
    {"kind": "status", "status": 500},
    {"kind": "delay", "delay": 2},
    {"kind": "truncate"},
    {"kind": "oversized", "size": 256 * 1024},
    {"kind": "status", "status": 429, "headers": {"Retry-After": "1"}},
    {"kind": "body", "body": "{not json"},
    {"kind": "status", "status": 401},
]
MIB = 1024 * 1024


@pytest.mark.integration
def test_soak_resources_stay_flat(
    tmp_path: Path, simulator: Proc, capsys: pytest.CaptureFixture[str]
) -> None:
    base = [f"soak/m{i}" for i in range(8)]
    extra = ["soak/churn-a", "soak/churn-b"]

    def write(models: list[str]) -> Path:
        return queue_config(
            tmp_path, simulator.url, models, stale_grace="2s", together_extra=["max_response_bytes: 65536"]
        )

    config = write(base + extra[:1])
    daemon = start_daemon(tmp_path, config, env={KEY_ENV: SIM_KEY})
    samples: list[tuple[float, float, float, float]] = []
    faults = itertools.cycle(FAULTS)
    start = time.monotonic()
    last_fault = last_reload = -100.0
    reloads = 0
    client = httpx.Client(timeout=5)
    try:
        while (now := time.monotonic() - start) < DURATION:
            if now - last_fault >= 4:
                # Three models misbehave at a time, each in its own way, changing every 4 s.
                clear_faults(simulator)
                for model in base[:3]:
                    add_fault(simulator, path=PATH, match={"model": model}, **next(faults))
                last_fault = now
            if now - last_reload >= 10:
                # Targets come and go: a reload swaps one model for another.
                write([*base, extra[reloads % 2]])
                daemon.popen.send_signal(signal.SIGHUP)
                reloads += 1
                last_reload = now
            client.get(daemon.url + "/metrics", headers={"Accept-Encoding": "gzip"})
            client.get(daemon.url + "/targets?format=json")
            s = scrape(daemon.url)
            rss = s.value("process_resident_memory_bytes")
            fds = s.value("process_open_fds")
            tasks = s.value("inference_exporter_asyncio_tasks")
            assert rss is not None and fds is not None and tasks is not None
            samples.append((now, rss, fds, tasks))
            time.sleep(1.0)
        assert daemon.popen.poll() is None, daemon.log()
        final = scrape(daemon.url)
    finally:
        client.close()
        clear_faults(simulator)
        rc = daemon.stop()
    assert rc == 0

    warm = [x for x in samples if WARMUP <= x[0] < WARMUP + 15]
    late = [x for x in samples if x[0] >= DURATION - 15]
    assert len(warm) >= 8 and len(late) >= 8
    rss_warm = statistics.median(x[1] for x in warm)
    rss_late = statistics.median(x[1] for x in late)
    fds_warm, fds_late = max(x[2] for x in warm), max(x[2] for x in late)
    tasks_warm, tasks_late = max(x[3] for x in warm), max(x[3] for x in late)
    polls = sum(v for _, v in final.series("inference_exporter_target_polls_total"))
    with capsys.disabled():
        print(
            f"\nsoak: {len(samples)} samples, {polls:.0f} polls, {reloads} reloads; "
            f"rss {rss_warm / MIB:.1f} -> {rss_late / MIB:.1f} MiB, "
            f"fds {fds_warm:.0f} -> {fds_late:.0f}, tasks {tasks_warm:.0f} -> {tasks_late:.0f}"
        )
    assert polls > 300
    assert rss_late - rss_warm <= max(4 * MIB, 0.05 * rss_warm), (rss_warm, rss_late)
    assert fds_late <= fds_warm + 3, samples
    assert tasks_late <= tasks_warm + 3, samples
    assert "Traceback" not in daemon.log()
