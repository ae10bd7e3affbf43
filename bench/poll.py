"""Poll cost: CPU per target poll (HTTP + parse + render + store) and a cycle's wall time.

The exporter runs in this process; the simulator runs in its own process. Two fleets
of ``--targets`` targets are measured, each over a steady-state cycle (the second):

1. Together queue targets from a real config file (the real daemon path, one
   request per poll) → ``cpu_ms_per_target``, ``cycle_s``;
2. the mixed bench fleet in the same proportions (see fleet.py: queues, Baseten
   deployments and fine-tune jobs) over ``--mixed-cycles`` cycles →
   ``mixed_cpu_ms_per_target``, ``mixed_cpu_ms_per_request``, ``mixed_cycle_s``.
   A fine-tune poll makes two requests; a Baseten poll makes two when its counters'
   one-minute window has moved, else one. All targets poll within a few seconds of
   each other, so a single 20 s cycle would have every deployment read its counters
   or none: three cycles cover the minute.

Baseline: the same number of bare GETs of the queue endpoint through a plain
``httpx.AsyncClient`` (its default transport) with the same pool size, in the same
run — ``ratio_vs_httpx`` is a whole poll's CPU against one bare request's.
``cycle_s`` is the time from the first poll start to the last poll end of one full
cycle, with every target due within ``--spread`` seconds and at most
``--max-connections`` requests in flight per vendor.

Last line: ``poll: targets=… cpu_ms_per_target=… httpx_request_cpu_ms=… ratio_vs_httpx=…
cycle_s=… interval_s=… cycle_ratio=… mixed_cpu_ms_per_target=… …``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path

import fleet
import httpx

from exporter.config import load_config
from exporter.engine import gcpolicy
from exporter.engine.daemon import Exporter


def sim_requests(sim_url: str) -> int:
    """Vendor requests the simulator has answered so far."""
    counts: dict[str, int] = httpx.get(sim_url + "/_sim/requests", timeout=10).json()
    return sum(counts.values())


def cycle_seconds(exporter: Exporter) -> float:
    """From the first poll start to the last poll end of the latest cycle."""
    starts = [h.last_poll_timestamp for h in exporter.poller.health.values()]
    ends = [h.last_poll_timestamp + h.last_duration for h in exporter.poller.health.values()]
    return max(ends) - min(starts)


async def mixed_fleet(sim_url: str, workdir: Path, args: argparse.Namespace) -> dict[str, object]:
    """The mixed fleet of about ``--targets`` targets over its second cycle."""
    size = fleet.FLEET_100K.scaled(args.targets / fleet.FLEET_100K.targets)
    async with fleet.exporter_with_fleet(
        workdir,
        sim_url,
        size,
        interval=args.interval,
        spread=args.spread,
        max_connections=args.max_connections,
    ) as exporter:
        n = size.targets
        await fleet.wait_for_polls(exporter, n, timeout=args.interval + args.spread + 60)
        cpu0, polls0, req0 = fleet.cpu_seconds(), fleet.polls_done(exporter), sim_requests(sim_url)
        cycles = args.mixed_cycles
        await fleet.wait_for_polls(exporter, (1 + cycles) * n, timeout=(1 + cycles) * args.interval + 60)
        cpu = fleet.cpu_seconds() - cpu0
        polls = fleet.polls_done(exporter) - polls0
        requests = sim_requests(sim_url) - req0
        return {
            "mixed_targets": n,
            "mixed_series": fleet.series(exporter),
            "mixed_cpu_ms_per_target": cpu / polls * 1000,
            "mixed_requests_per_poll": requests / polls,
            "mixed_cpu_ms_per_request": cpu / max(requests, 1) * 1000,
            "mixed_cycle_s": cycle_seconds(exporter),
            "mixed_cycle_ratio": cycle_seconds(exporter) / args.interval,
            "mixed_failed": fleet.failed_polls(exporter),
        }


async def bare_http_cpu_ms(sim_url: str, requests: int, max_connections: int) -> float:
    """CPU per request of plain httpx GETs to the same endpoint, ``max_connections`` at a time."""
    limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
    headers = {"Authorization": f"Bearer {fleet.SIM_KEY}"}
    async with httpx.AsyncClient(base_url=sim_url + "/v1", limits=limits, headers=headers) as client:
        sem = asyncio.Semaphore(max_connections)

        async def one(i: int) -> None:
            async with sem:
                r = await client.get("/queue/metrics", params={"model": f"org/queue-{i}"}, timeout=30)
                r.raise_for_status()
                r.json()

        await one(0)
        cpu0 = fleet.cpu_seconds()
        await asyncio.gather(*(one(i) for i in range(requests)))
        return (fleet.cpu_seconds() - cpu0) / requests * 1000


async def run(args: argparse.Namespace) -> str:
    with fleet.simulator() as sim_url, tempfile.TemporaryDirectory() as tmp:
        baseline = await bare_http_cpu_ms(sim_url, args.targets, args.max_connections)
        models = [f"org/queue-{i}" for i in range(args.targets)]
        cfg = fleet.write_config(
            Path(tmp),
            sim_url,
            interval=args.interval,
            spread=args.spread,
            timeout=args.interval,
            max_connections=args.max_connections,
            queues=models,
        )
        gcpolicy.tune()  # as the daemon process does before it starts
        exporter = Exporter(cfg)
        await exporter.start(load_config(cfg))
        try:
            n = len(exporter.targets)
            await fleet.wait_for_polls(exporter, n, timeout=args.interval + args.spread + 60)
            # The second cycle is the steady state: measure it.
            cpu0, polls0 = fleet.cpu_seconds(), fleet.polls_done(exporter)
            await fleet.wait_for_polls(exporter, 2 * n, timeout=2 * args.interval + 60)
            cpu = fleet.cpu_seconds() - cpu0
            polls = fleet.polls_done(exporter) - polls0
            cycle = cycle_seconds(exporter)
            failed = fleet.failed_polls(exporter)
            series = fleet.series(exporter)
        finally:
            await exporter.stop()
        mixed = await mixed_fleet(sim_url, Path(tmp), args)
    per_target = cpu / polls * 1000
    return fleet.line(
        "poll",
        targets=n,
        series=series,
        cpu_ms_per_target=per_target,
        httpx_request_cpu_ms=baseline,
        ratio_vs_httpx=f"{per_target / baseline:.2f}x",
        cycle_s=cycle,
        interval_s=args.interval,
        cycle_ratio=cycle / args.interval,
        max_connections=args.max_connections,
        failed=failed,
        **mixed,
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--targets", type=int, default=3000)
    p.add_argument("--interval", type=float, default=20.0, help="poll interval, seconds")
    p.add_argument("--spread", type=float, default=3.0, help="every target is due within this window")
    p.add_argument("--max-connections", type=int, default=10)
    p.add_argument(
        "--mixed-cycles",
        type=int,
        default=3,
        help="steady-state cycles measured on the mixed fleet (3 x 20 s: one minute, over which "
        "each Baseten deployment reads its counters' window once)",
    )
    args = p.parse_args(argv)
    return fleet.report(run, args)


if __name__ == "__main__":
    sys.exit(main())
