"""Cost against fleet size: the same figures at 1x, 2x and 4x the fleet.

For each size, a fresh exporter in this process polls the mixed bench fleet (see
fleet.py) once against the simulator, then rebuilds its exposition, plain and gzip,
after a poll of one target of each source has changed its families (the cost a
scrape pays while polls run). Costs are divided by
targets or series; linear cost shows as ratios near 1 against the 1x run.

Last line: ``scaling: targets_1x=… cpu_ms_per_target_1x=… … cpu_ratio_4x=…
scrape_us_per_kseries_1x=… … scrape_ratio_4x=…``.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import tempfile
import time
from pathlib import Path

import fleet

FACTORS = (1, 2, 4)


async def measure(sim_url: str, size: fleet.FleetSize, spread: float) -> tuple[float, float, int]:
    """(CPU ms per target poll, scrape rebuild µs per 1,000 series, series)."""
    with tempfile.TemporaryDirectory() as tmp:
        async with fleet.exporter_with_fleet(
            Path(tmp), sim_url, size, interval=600, spread=spread
        ) as exporter:
            cpu0 = fleet.cpu_seconds()
            await fleet.wait_for_polls(exporter, size.targets, timeout=spread + 120)
            cpu = fleet.cpu_seconds() - cpu0
            # One target of each source: its families change, as while a cycle runs.
            one_per_source = list({t.source: t for t in exporter.targets}.values())
            costs = []
            for _ in range(5):
                for target in one_per_source:
                    await exporter.poller.poll_once(target)
                t0 = time.perf_counter()
                b"".join(exporter.store.exposition_parts())
                exporter.store.exposition_gzip_parts(b"")
                costs.append(time.perf_counter() - t0)
            series = fleet.series(exporter)
    gc.collect()
    return cpu / size.targets * 1000, statistics.median(costs) * 1e6 / (series / 1000), series


async def run(args: argparse.Namespace) -> str:
    base = fleet.FLEET_100K.scaled(args.scale)
    figures: dict[str, object] = {}
    with fleet.simulator() as sim_url:
        results = {}
        for f in FACTORS:
            size = base.scaled(f)
            results[f] = await measure(sim_url, size, spread=args.spread * f)
            figures[f"targets_{f}x"] = size.targets
    for f in FACTORS:
        figures[f"cpu_ms_per_target_{f}x"] = results[f][0]
    for f in FACTORS[1:]:
        figures[f"cpu_ratio_{f}x"] = results[f][0] / results[1][0]
    for f in FACTORS:
        figures[f"scrape_us_per_kseries_{f}x"] = results[f][1]
    for f in FACTORS[1:]:
        figures[f"scrape_ratio_{f}x"] = results[f][1] / results[1][1]
    return fleet.line("scaling", **figures)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--scale", type=float, default=0.25, help="1x fleet size relative to ~100k series")
    p.add_argument("--spread", type=float, default=1.5, help="first polls of the 1x fleet spread over this")
    args = p.parse_args(argv)
    return fleet.report(run, args)


if __name__ == "__main__":
    sys.exit(main())
