"""Resident memory of the exporter holding ~100k series.

This process is a fresh interpreter: it measures its RSS with the exporter running
and no targets (the baseline, in the same run), then with the mixed bench fleet
(see fleet.py) polled once against the simulator and both exposition caches (plain
and gzip) built, as after the first scrape.

Last line: ``memory: series=… rss_mb=… baseline_rss_mb=… growth_mb=… bytes_per_series=…``.
"""

from __future__ import annotations

import argparse
import gc
import sys
import tempfile
from pathlib import Path

import fleet


async def run(args: argparse.Namespace) -> str:
    size = fleet.FLEET_100K.scaled(args.scale)
    with fleet.simulator() as sim_url, tempfile.TemporaryDirectory() as tmp:
        cfg = fleet.write_config(Path(tmp), sim_url, interval=600, spread=5, timeout=60, max_connections=10)
        baseline = await fleet.idle_rss_mb(cfg)
        async with fleet.exporter_with_fleet(
            Path(tmp), sim_url, size, interval=600, spread=args.spread
        ) as exporter:
            await fleet.wait_for_polls(exporter, size.targets, timeout=args.spread + 120)
            exporter.store.exposition_gzip_parts(b"")
            gc.collect()
            rss = fleet.rss_mb()
            series = fleet.series(exporter)
            targets = len(exporter.targets)
    growth = rss - baseline
    return fleet.line(
        "memory",
        series=series,
        targets=targets,
        rss_mb=rss,
        baseline_rss_mb=baseline,
        growth_mb=growth,
        bytes_per_series=round(growth * 1024 * 1024 / max(series, 1)),
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--scale", type=float, default=1.0, help="fleet size relative to ~100k series")
    p.add_argument("--spread", type=float, default=10.0, help="first polls spread over this many seconds")
    args = p.parse_args(argv)
    return fleet.report(run, args)


if __name__ == "__main__":
    sys.exit(main())
