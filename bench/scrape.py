"""Scrape cost at ~100k series, while a poll cycle runs, against prometheus_client.

The exporter runs in this process with the mixed bench fleet (see fleet.py) polling
the simulator (its own process), its polls spread over the whole interval so that
snapshots change all through the measurement. A client process scrapes over HTTP:

1. ``/metrics`` again and again, plain and gzip, for ``--duration`` seconds → p99;
2. then, alternately, ``/metrics`` and ``/baseline`` — prometheus_client's
   ``generate_latest`` over a registry holding the very same samples (pre-built
   metric families, the cheapest a client_python exporter can do; gzip the way its
   own handler does it) → medians and ``speedup``. The baseline's families are
   built only after step 1, so that its hundreds of thousands of objects do not
   weigh on this process's garbage collections while the p99 is measured.

Last line: ``scrape: series=… exporter_ms=… client_python_ms=… speedup=…x
exporter_gzip_ms=… client_python_gzip_ms=… gzip_speedup=…x p99_ms=… p99_gzip_ms=… …
full_gcs=… full_gc_max_ms=…`` (the exporter process's full garbage collections
while the p99 was measured, and the longest: each one pauses every scrape in flight).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import gzip
import http.client
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import urlsplit

import fleet
from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from exporter.web.server import make_app


def client(url: str, duration: float, baseline_rounds: int) -> None:
    """Runs in its own process: times whole responses, prints one JSON document."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=120)

    def get(path: str, gz: bool, phase: str = "b") -> float:
        t0 = time.perf_counter()
        conn.request("GET", path, headers={"Accept-Encoding": "gzip" if gz else "identity", "X-Phase": phase})
        resp = conn.getresponse()
        body = resp.read()
        elapsed = (time.perf_counter() - t0) * 1000
        if resp.status != 200 or not body or (gz and resp.getheader("Content-Encoding") != "gzip"):
            raise RuntimeError(f"{path}: bad response {resp.status}")
        return elapsed

    out: dict[str, list[float]] = {
        "plain": [],
        "gzip": [],
        "ours": [],
        "ours_gzip": [],
        "base": [],
        "base_gzip": [],
    }
    end = time.monotonic() + duration
    while time.monotonic() < end:
        out["plain"].append(get("/metrics", False, "a"))
        out["gzip"].append(get("/metrics", True, "a"))
        time.sleep(0.05)
    for _ in range(baseline_rounds):
        out["ours"].append(get("/metrics", False))
        out["base"].append(get("/baseline", False))
        out["ours_gzip"].append(get("/metrics", True))
        out["base_gzip"].append(get("/baseline", True))
    print(json.dumps(out))


class FrozenCollector:
    """Hands prometheus_client the same families on every scrape, already built."""

    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> Iterable[Metric]:
        return self.families


async def run(args: argparse.Namespace) -> str:
    size = fleet.FLEET_100K.scaled(args.scale)
    with fleet.simulator() as sim_url, tempfile.TemporaryDirectory() as tmp:
        async with fleet.exporter_with_fleet(
            Path(tmp), sim_url, size, interval=args.interval, spread=args.interval
        ) as exporter:
            registry = CollectorRegistry(auto_describe=False)
            collector = FrozenCollector([])
            registry.register(collector)

            # Server-side time of each response (building the body, not moving it):
            # the work a scrape costs the exporter, apart from the network and client.
            handled: dict[tuple[str, str, bool], list[float]] = {}

            @web.middleware
            async def timing(request: web.Request, handler: fleet.Handler) -> web.StreamResponse:
                t0 = time.perf_counter()
                resp = await handler(request)
                key = (
                    request.headers.get("X-Phase", ""),
                    request.path,
                    "gzip" in request.headers.get("Accept-Encoding", ""),
                )
                handled.setdefault(key, []).append((time.perf_counter() - t0) * 1000)
                return resp

            app = make_app(exporter)
            app.middlewares.append(timing)

            async def baseline(request: web.Request) -> web.Response:
                body = generate_latest(registry)
                headers = {"Content-Type": "text/plain; version=0.0.4; charset=utf-8"}
                if "gzip" in request.headers.get("Accept-Encoding", ""):
                    body = gzip.compress(body)
                    headers["Content-Encoding"] = "gzip"
                return web.Response(body=body, headers=headers)

            app.router.add_get("/baseline", baseline)
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            port = runner.addresses[0][1]

            await fleet.wait_for_polls(exporter, size.targets, timeout=args.interval + 90)
            series = fleet.series(exporter)
            polls0 = fleet.polls_done(exporter)

            async def client_run(duration: float, rounds: int) -> dict[str, list[float]]:
                proc = await asyncio.create_subprocess_exec(
                    sys.executable,
                    __file__,
                    "--client",
                    f"http://127.0.0.1:{port}",
                    "--duration",
                    str(duration),
                    "--rounds",
                    str(rounds),
                    stdout=subprocess.PIPE,
                )
                stdout, _ = await proc.communicate()
                if proc.returncode != 0:
                    raise RuntimeError("scrape client failed")
                out: dict[str, list[float]] = json.loads(stdout)
                return out

            # Full garbage collections stop the event loop, scrapes included: count them
            # and their pauses while the p99 is measured.
            full_gc_ms: list[float] = []
            gc_started = [0.0]

            def on_gc(phase: str, info: dict[str, int]) -> None:
                if info["generation"] != 2:
                    return
                if phase == "start":
                    gc_started[0] = time.perf_counter()
                else:
                    full_gc_ms.append((time.perf_counter() - gc_started[0]) * 1000)

            gc.callbacks.append(on_gc)
            try:
                r = await client_run(args.duration, 0)
            finally:
                gc.callbacks.remove(on_gc)
            # The same samples for prometheus_client: the exporter's own exposition, parsed.
            collector.families = list(
                text_string_to_metric_families(b"".join(exporter.store.exposition_parts()).decode())
            )
            r2 = await client_run(0, args.rounds)
            r.update({k: v for k, v in r2.items() if k not in ("plain", "gzip")})
            polls_during = fleet.polls_done(exporter) - polls0
            await runner.cleanup()
    med = {k: statistics.median(v) for k, v in r.items()}
    srv = {k: statistics.median(v) for k, v in handled.items()}
    ours, base = srv[("b", "/metrics", False)], srv[("b", "/baseline", False)]
    ours_gz, base_gz = srv[("b", "/metrics", True)], srv[("b", "/baseline", True)]
    return fleet.line(
        "scrape",
        series=series,
        exporter_ms=ours,
        client_python_ms=base,
        speedup=f"{base / ours:.1f}x",
        exporter_gzip_ms=ours_gz,
        client_python_gzip_ms=base_gz,
        gzip_speedup=f"{base_gz / ours_gz:.1f}x",
        e2e_speedup=f"{med['base'] / med['ours']:.1f}x",
        e2e_gzip_speedup=f"{med['base_gzip'] / med['ours_gzip']:.1f}x",
        p99_ms=fleet.percentile(r["plain"], 99),
        p99_gzip_ms=fleet.percentile(r["gzip"], 99),
        server_p99_ms=fleet.percentile(handled[("a", "/metrics", False)], 99),
        server_p99_gzip_ms=fleet.percentile(handled[("a", "/metrics", True)], 99),
        full_gcs=len(full_gc_ms),
        full_gc_max_ms=max(full_gc_ms, default=0.0),
        scrapes=len(r["plain"]) + len(r["gzip"]),
        polls_during=polls_during,
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--scale", type=float, default=1.0, help="fleet size relative to ~100k series")
    p.add_argument("--interval", type=float, default=20.0, help="poll interval (polls spread over all of it)")
    p.add_argument("--duration", type=float, default=25.0, help="seconds of scraping for the p99")
    p.add_argument("--rounds", type=int, default=3, help="alternating exporter/baseline scrapes")
    p.add_argument("--client", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.client:
        client(args.client, args.duration, args.rounds)
        return 0
    return fleet.report(run, args)


if __name__ == "__main__":
    sys.exit(main())
