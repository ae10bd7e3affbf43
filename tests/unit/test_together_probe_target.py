"""The probe target against an in-process simulator: interruption, close and leftovers.

These drive ``ProbeTarget`` directly (no daemon) so the awkward moments — a close
while the submit is still in flight, a poll cut short by a deadline — can be hit
on purpose. The daemon-level behaviour is in tests/integration/test_probe_daemon.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest

from exporter.core.errors import UpstreamError
from exporter.simulator import app as sim_app
from exporter.simulator.state import SimState
from exporter.sources.together.api import TogetherAPI
from exporter.sources.together.probe import InFlightJobs, ProbeSettings, ProbeTarget
from exporter.upstream.api import Clients
from exporter.upstream.client import UpstreamStats, VendorClient
from tests.helpers import exposition, parse

KEY = "unit-probe-key"


class Sim:
    def __init__(self, url: str) -> None:
        self.url = url
        self.http = httpx.AsyncClient(base_url=url, timeout=5)

    async def script(self, **doc: Any) -> None:
        (await self.http.post("/_sim/jobs", json=doc)).raise_for_status()

    async def jobs(self, model: str, status: str | None = None) -> list[dict[str, Any]]:
        params = {"model": model, **({"status": status} if status else {})}
        resp = await self.http.get("/_sim/jobs", params=params)
        jobs: list[dict[str, Any]] = resp.json()["jobs"]
        return jobs


@asynccontextmanager
async def environment() -> AsyncIterator[tuple[Sim, Clients]]:
    runner, url = await sim_app.start(SimState(api_keys=frozenset({KEY})), "127.0.0.1", 0)
    clients = Clients()
    clients.replace(
        {
            ("together", "default"): VendorClient(
                "together", url + "/v1", KEY, max_connections=4, stats=UpstreamStats()
            )
        }
    )
    sim = Sim(url)
    try:
        yield sim, clients
    finally:
        await sim.http.aclose()
        for c in clients.all():
            await c.aclose()
        await runner.cleanup()


def make(
    clients: Clients, model: str, registry: InFlightJobs, buckets: tuple[float, ...] = (1.0,), **kw: float
) -> ProbeTarget:
    settings = ProbeSettings.build(
        {"prompt": "ping"},
        0,
        {"submitted_by": "test"},
        interval=kw.get("interval", 10.0),
        timeout=kw.get("timeout", 1.0),
        status_poll_interval=kw.get("status_poll_interval", 0.05),
        request_timeout=kw.get("request_timeout", 2.0),
        buckets=buckets,
    )
    return ProbeTarget(TogetherAPI(clients), model, settings, registry=registry)


def run(body: Callable[[Sim, Clients], Awaitable[None]]) -> None:
    async def main() -> None:
        async with environment() as (sim, clients):
            await body(sim, clients)

    asyncio.run(main())


async def wait_for_jobs(sim: Sim, model: str, status: str, n: int = 1) -> list[dict[str, Any]]:
    for _ in range(200):
        jobs = await sim.jobs(model, status)
        if len(jobs) >= n:
            return jobs
        await asyncio.sleep(0.02)
    raise AssertionError(f"no {status} job for {model}")


def text(rendered: Any) -> str:
    return exposition([rendered]).decode()


def test_close_during_submit_cancels_the_job_it_did_not_know_yet() -> None:
    async def body(sim: Sim, clients: Clients) -> None:
        await sim.script(model="m", mode="stopped", submit_delay=0.5)
        target = make(clients, "m", InFlightJobs())
        poll = asyncio.create_task(target.poll(0))
        # The job exists on the vendor's side while its submit answer is still on the way.
        await wait_for_jobs(sim, "m", "pending")
        await target.close()
        with pytest.raises(UpstreamError) as err:
            await poll
        assert err.value.reason == "closed"
        assert await sim.jobs("m", "pending") == []
        assert [j["status"] for j in await sim.jobs("m")] == ["canceled"]

    run(body)


def test_close_while_following_cancels_the_pending_job() -> None:
    async def body(sim: Sim, clients: Clients) -> None:
        await sim.script(model="m", mode="stopped")
        target = make(clients, "m", InFlightJobs(), timeout=30.0, interval=60.0)
        poll = asyncio.create_task(target.poll(0))
        await wait_for_jobs(sim, "m", "pending")
        await asyncio.sleep(0.1)
        await target.close()
        with pytest.raises(UpstreamError):
            await poll
        assert [j["status"] for j in await sim.jobs("m")] == ["canceled"]
        # A closed target does not probe again.
        with pytest.raises(UpstreamError):
            await target.poll(0)
        assert len(await sim.jobs("m")) == 1

    run(body)


def test_poll_cut_short_by_a_deadline_still_cancels() -> None:
    async def body(sim: Sim, clients: Clients) -> None:
        await sim.script(model="m", mode="stopped")
        target = make(clients, "m", InFlightJobs(), timeout=30.0, interval=60.0)
        # What the daemon does when a poll outlives its interval.
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(target.poll(0), timeout=0.5)
        await asyncio.wait_for(target.close(), timeout=5)
        assert [j["status"] for j in await sim.jobs("m")] == ["canceled"]

    run(body)


def test_timeout_cancels_pending_and_counts_it() -> None:
    async def body(sim: Sim, clients: Clients) -> None:
        await sim.script(model="m", mode="stopped")
        target = make(clients, "m", InFlightJobs(), timeout=0.3)
        s = parse(text(await target.poll(0)))
        assert s.value("together_queue_probe_success", model="m") == 0
        assert s.value("together_queue_probes_total", model="m", result="timeout") == 1
        assert s.value("together_queue_probe_jobs_total", model="m", status="canceled") == 1
        assert s.series("together_queue_probe_duration_seconds") == []
        assert await sim.jobs("m", "pending") == []

    run(body)


def test_timed_out_job_counts_in_the_histograms_as_at_least_its_wait() -> None:
    async def body(sim: Sim, clients: Clients) -> None:
        await sim.script(model="m", mode="stopped")
        target = make(clients, "m", InFlightJobs(), buckets=(0.1, 0.4, 5.0), timeout=0.6)
        s = parse(text(await target.poll(0)))

        def bucket(phase: str, le: str) -> float | None:
            return s.value("together_queue_probe_phase_seconds_bucket", model="m", phase=phase, le=le)

        # Seen pending until about the 0.6s timeout: above 0.4s, not left out (the
        # exact figure depends on when the last status check ran, so only its bucket is fixed).
        for phase in ("queue_wait", "end_to_end"):
            assert (bucket(phase, "0.4"), bucket(phase, "5.0"), bucket(phase, "+Inf")) == (0, 1, 1)
            total = s.value("together_queue_probe_phase_seconds_sum", model="m", phase=phase)
            assert total is not None and 0.4 < total <= 5.0
        assert s.value("together_queue_probe_phase_seconds_count", model="m", phase="run") == 0

    run(body)


def test_histograms_accumulate_over_probes_of_one_target() -> None:
    async def body(sim: Sim, clients: Clients) -> None:
        await sim.script(model="m", claim_delay=0.0, run_seconds=0.05)
        target = make(clients, "m", InFlightJobs(), timeout=2.0)
        for n in (1, 2, 3):
            s = parse(text(await target.poll(0)))
            assert s.value("together_queue_probe_success", model="m") == 1
            for phase in ("queue_wait", "run", "end_to_end"):
                assert s.value("together_queue_probe_phase_seconds_count", model="m", phase=phase) == n

    run(body)


def test_running_job_at_timeout_blocks_the_next_probe_until_it_ends() -> None:
    async def body(sim: Sim, clients: Clients) -> None:
        await sim.script(model="m", claim_delay=0.0, run_seconds=2.0)
        registry = InFlightJobs()
        target = make(clients, "m", registry, timeout=0.3)
        s = parse(text(await target.poll(0)))
        assert s.value("together_queue_probes_total", model="m", result="timeout") == 1
        # Running jobs cannot be canceled (409): it stays recorded as in flight.
        assert registry.get(("default", "m")) is not None
        s = parse(text(await target.poll(0)))
        assert s.value("together_queue_probes_total", model="m", result="previous_job_in_flight") == 1
        assert len(await sim.jobs("m")) == 1  # no second job while the first runs
        await wait_for_jobs(sim, "m", "done")
        await sim.script(model="m", run_seconds=0.1)
        s = parse(text(await target.poll(0)))
        assert s.value("together_queue_probe_success", model="m") == 1
        # The first job, seen done, is counted too.
        assert s.value("together_queue_probe_jobs_total", model="m", status="done") == 2
        assert registry.get(("default", "m")) is None

    run(body)


def test_a_rebuilt_target_settles_its_predecessors_job() -> None:
    async def body(sim: Sim, clients: Clients) -> None:
        await sim.script(model="m", claim_delay=0.0, run_seconds=2.0)
        registry = InFlightJobs()
        first = make(clients, "m", registry, timeout=0.2)
        await first.poll(0)
        await first.close()  # its job runs: it cannot be canceled, and is not forgotten
        second = make(clients, "m", registry, timeout=2.0)
        s = parse(text(await second.poll(0)))
        assert s.value("together_queue_probes_total", model="m", result="previous_job_in_flight") == 1
        assert len(await sim.jobs("m")) == 1
        await wait_for_jobs(sim, "m", "done")
        await sim.script(model="m", run_seconds=0.1)
        s = parse(text(await second.poll(0)))
        assert s.value("together_queue_probe_success", model="m") == 1
        assert s.value("together_queue_probe_jobs_total", model="m", status="done") == 2

    run(body)


@pytest.mark.parametrize(
    ("script", "reason"),
    [
        ({"submit_status": 400}, "submit_client_error"),
        ({"submit_status": 401}, "submit_unauthorized"),
        ({"submit_status": 429}, "submit_rate_limited"),
        ({"submit_status": 503}, "submit_server_error"),
        ({"status_status": 500, "mode": "stopped"}, "status_server_error"),
        ({"status_status": 404, "mode": "stopped"}, "status_not_found"),
        ({"status_override": "paused"}, "unknown_status"),
        ({"omit": ["claimed_at"]}, "missing_timestamps"),
        ({"mode": "fail"}, "job_failed"),
    ],
)
def test_failures_have_reasons_and_leave_nothing_pending(script: dict[str, Any], reason: str) -> None:
    async def body(sim: Sim, clients: Clients) -> None:
        await sim.script(model="m", claim_delay=0.0, run_seconds=0.05, **script)
        target = make(clients, "m", InFlightJobs(), timeout=0.4)
        s = parse(text(await target.poll(0)))
        assert s.value("together_queue_probe_success", model="m") == 0
        assert s.value("together_queue_probes_total", model="m", result=reason) == 1, s.text
        await sim.script(model="m", clear=True)
        assert await sim.jobs("m", "pending") == []

    run(body)
