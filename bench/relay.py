"""CPU and memory of relaying a vendor's Prometheus endpoint of ~100k series.

The simulator (its own process) serves Baseten's organisation endpoint for enough
deployments to make ``--series`` series (each deployment: 3 request counters, two
latency histograms by status code, 5 gauges and counters: 74 series). Its body is read
once, then, in this process, alternately for ``--rounds`` rounds:

- the relay: ``exporter.sources.relay.translate.relay`` reads, checks, relabels (an
  account and two target labels) and renders the body per family (``relay_cpu_ms``);
- prometheus_client's parser alone on the same text,
  ``text_string_to_metric_families``, every sample read (``client_python_parse_cpu_ms``);

→ ``cpu_ratio`` (relay / parser; the target is below 1) and ``speedup``. CPU time is
this process's (``time.process_time``), the median of the rounds.

Memory, each in a fresh interpreter, measured as bench/memory.py measures it (RSS with
the exporter running and no targets, then with its targets polled once and both
exposition caches built): a relay target polling the endpoint through the daemon's
poller and store (``relay_bytes_per_series``), and memory.py's mixed fleet of native
sources scaled to about as many series (``native_bytes_per_series``) →
``memory_ratio``.

Last line: ``relay: series=… relay_cpu_ms=… client_python_parse_cpu_ms=… cpu_ratio=…
speedup=… relay_bytes_per_series=… native_bytes_per_series=… memory_ratio=…``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import fleet
import httpx
from prometheus_client.parser import text_string_to_metric_families

from exporter.config import load_config
from exporter.core.scope import Scope
from exporter.engine.daemon import Exporter
from exporter.sources.relay.names import BASETEN_ORG_PREFIX
from exporter.sources.relay.rules import RelayRules
from exporter.sources.relay.target import RelaySettings, RelayTarget
from exporter.sources.relay.translate import relay

SERIES_PER_DEPLOYMENT = 74
MAX_SERIES = 10_000_000
SCOPE = Scope(fleet.ACCOUNTS[0], fleet.LABELS, max_series=MAX_SERIES)
RULES = RelayRules(prefix=BASETEN_ORG_PREFIX)


def populate(sim_url: str, series: int) -> None:
    """Deployments enough for ``series``, and no rate limit on the endpoint for the bench."""
    deployments = math.ceil(series / SERIES_PER_DEPLOYMENT)
    with httpx.Client(base_url=sim_url, timeout=60) as http:
        http.post("/_sim/baseten", json={"catalog": fleet.baseten_catalog(deployments)}).raise_for_status()
        http.post("/_sim/baseten/org-metrics", json={"limit": 1000}).raise_for_status()


def fetch(sim_url: str) -> bytes:
    with httpx.Client(base_url=sim_url, timeout=120) as http:
        resp = http.get("/metrics", headers={"Authorization": f"Api-Key {fleet.SIM_KEY}"})
        resp.raise_for_status()
        return resp.content


def cpu_ms(work: Callable[[], object]) -> float:
    t0 = time.process_time()
    work()
    return (time.process_time() - t0) * 1000


def parse_with_client_python(text: str) -> int:
    return sum(len(fam.samples) for fam in text_string_to_metric_families(text))


def write_config(workdir: Path, sim_url: str) -> Path:
    path = workdir / "relay.yaml"
    path.write_text(
        "global:\n  poll_interval: 600\n  timeout: 120\n  start_spread: 1\n"
        "baseten:\n  accounts:\n"
        f"    - name: {fleet.ACCOUNTS[0]}\n      base_url: {sim_url}\n"
        f"      api_key_env: BENCH_BASETEN_KEY\n      max_response_bytes: {1 << 30}\n"
        f"      max_series_per_target: {MAX_SERIES}\n"
    )
    os.environ["BENCH_BASETEN_KEY"] = fleet.SIM_KEY
    return path


async def relay_memory(sim_url: str) -> str:
    """In a fresh interpreter: RSS per relayed series, as memory.py measures native ones."""
    with tempfile.TemporaryDirectory() as tmp:
        cfg = write_config(Path(tmp), sim_url)
        baseline = await fleet.idle_rss_mb(cfg)
        exporter = Exporter(cfg)
        await exporter.start(load_config(cfg))
        try:
            settings = RelaySettings(
                "baseten", "org", f"{sim_url}/metrics", 600, 120, 1200, "Api-Key", rules=RULES, scope=SCOPE
            )
            await exporter.poller.sync("bench", [RelayTarget(exporter.clients.current, settings)])
            await fleet.wait_for_polls(exporter, 1, timeout=180)
            if fleet.failed_polls(exporter):
                raise RuntimeError(f"the relay's poll failed: {exporter.poller.health}")
            exporter.store.exposition_gzip_parts(b"")
            gc.collect()
            rss = fleet.rss_mb()
            series = fleet.series(exporter)
        finally:
            await exporter.stop()
    growth = rss - baseline
    return fleet.line("relay_memory", series=series, bytes_per_series=round(growth * 1024 * 1024 / series))


def child(args: list[str]) -> dict[str, str]:
    """Run a benchmark in a fresh interpreter; its figures line as a dict."""
    res = subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=fleet.REPO, check=False)
    if res.returncode != 0:
        raise RuntimeError(f"{args[0]} failed:\n{res.stderr[-3000:]}")
    last = res.stdout.strip().splitlines()[-1]
    return dict(pair.split("=", 1) for pair in last.split(": ", 1)[1].split(" "))


async def run(args: argparse.Namespace) -> str:
    if args.memory_child:
        return await relay_memory(args.memory_child)
    with fleet.simulator() as sim_url:
        populate(sim_url, args.series)
        body = fetch(sim_url)
        text = body.decode()
        series = relay(body, SCOPE, RULES).series
        print(f"body: {len(body) / 1e6:.1f} MB, {series} series", file=sys.stderr)
        ours: list[float] = []
        theirs: list[float] = []
        for _ in range(args.rounds):
            gc.collect()
            ours.append(cpu_ms(lambda: relay(body, SCOPE, RULES)))
            gc.collect()
            theirs.append(cpu_ms(lambda: parse_with_client_python(text)))
        relay_mem = child([str(Path(__file__)), "--memory-child", sim_url])
    scale = series / fleet.FLEET_100K.series
    native = child([str(Path(__file__).with_name("memory.py")), "--scale", f"{scale:.4f}", "--spread", "2"])
    relay_ms, client_ms = statistics.median(ours), statistics.median(theirs)
    relay_bytes, native_bytes = int(relay_mem["bytes_per_series"]), int(native["bytes_per_series"])
    return fleet.line(
        "relay",
        series=series,
        body_mb=len(body) / 1e6,
        relay_cpu_ms=relay_ms,
        client_python_parse_cpu_ms=client_ms,
        cpu_ratio=relay_ms / client_ms,
        speedup=f"{client_ms / relay_ms:.3g}x",
        relay_bytes_per_series=relay_bytes,
        native_bytes_per_series=native_bytes,
        native_series=native["series"],
        memory_ratio=relay_bytes / native_bytes,
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--series", type=int, default=100_000, help="series of the relayed body (about)")
    p.add_argument("--rounds", type=int, default=3, help="rounds of each CPU measurement (median)")
    p.add_argument("--memory-child", metavar="SIM_URL", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.memory_child:
        print(asyncio.run(run(args)))
        return 0
    return fleet.report(run, args)


if __name__ == "__main__":
    sys.exit(main())
