"""Reload and discovery churn: memory, descriptors and live objects over a long run.

The exporter runs in this process against the simulator (its own process) with two
Together accounts (queues, a probe, fine-tune discovery) and one Baseten account
(discovery, target labels, a deny rule), polled every second. For ``--minutes``:

- every ``--reload-every`` seconds the config is reloaded with one label of the first
  account changed; every fourth reload also rotates that account's key (its clients
  are replaced, and the old ones closed after their grace);
- every ``--churn-every`` seconds one Baseten deployment is replaced by one with a new
  id, and a short fine-tune job is added (found, followed to completion, kept for its
  retention, dropped) while an old one is removed from the vendor;
- the exposition is rendered every second, plain and gzip, as scrapes would.

Every ``--sample-every`` seconds: RSS, open descriptors (and how many are sockets:
each client keeps up to ``max_connections`` idle connections), and what is alive in this
process: target objects (against those the target set holds), vendor clients
(against those the exporter has open), aiohttp sessions not closed, asyncio tasks.
A leak in reloads, replaced clients or discovery churn grows one of these for good.

Baseline: the first sample after ``--warmup`` seconds. Last line: ``churn: minutes=…
reloads=… rotations=… deployments=… jobs=… rss_mb_start=… rss_mb_end=…
rss_mb_per_hour=… rss_mb_trimmed=… fds_start=… fds_end=… fds_max=… fds_per_hour=…
sockets_end=… targets=… target_objects=… clients_open=… client_objects=…
sessions_open=… gc_objects_start=… gc_objects_end=… blocks_start=… blocks_end=…
arenas_start=… arenas_end=… tasks=…``; the per-hour slopes are fitted over the second
half of the samples. ``--trace N`` traces allocations from the first sample on and
prints (to stderr) the N source lines whose memory grew most by the end, and the N
types with the most objects more.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import gc
import os
import re
import sys
import tempfile
import time
import tracemalloc
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import fleet
import httpx

from exporter.config import load_config
from exporter.core import logs
from exporter.engine import gcpolicy
from exporter.engine.daemon import Exporter
from exporter.sources.base import Target
from exporter.upstream.client import VendorClient

KEYS = ("churn-key-a-51f0", "churn-key-b-93c2")
STAGING_KEY = "churn-staging-77d4"
LIVE_DEPLOYMENTS = 4


def config(sim_url: str, key_file: Path, team: str) -> str:
    return f"""\
global: {{poll_interval: 1s, timeout: 1s, start_spread: 1s}}
together:
  accounts:
    - name: prod
      base_url: {sim_url}/v1
      api_key_file: {key_file}
      labels: {{team: {team}}}
      queues: [{{model: org/q1}}, {{model: org/q2}}]
      probes:
        - {{model: org/probed, payload: {{prompt: ping}}, interval: 5s, timeout: 2s, status_poll_interval: 200ms}}
      fine_tunes:
        retention: 5s
        logged_at_overlap: 1s
        discovery: {{enabled: true, refresh_interval: 2s}}
    - name: staging
      base_url: {sim_url}/v1
      api_key_env: CHURN_STAGING_KEY
      queues: [{{model: org/q1}}]
baseten:
  accounts:
    - name: prod
      base_url: {sim_url}
      api_key_file: {key_file}
      labels: {{team: {team}}}
      delay: 1s
      counter_window: 65s
      metric_filter: {{deny: ["baseten_request_size_.*"]}}
      discovery: [{{refresh_interval: 2s}}]
"""


def catalog(first: int) -> list[dict[str, Any]]:
    deployments = [
        {"id": f"d-{i}", "environment": "production"} for i in range(first, first + LIVE_DEPLOYMENTS)
    ]
    return [{"id": "m-llm", "name": "llama-chat", "llm": True, "deployments": deployments}]


def open_fds() -> tuple[int, int]:
    """Open descriptors of this process, and how many of them are sockets."""
    fds = sockets = 0
    for fd in os.listdir("/proc/self/fd"):
        fds += 1
        with contextlib.suppress(OSError):
            sockets += os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")
    return fds, sockets


def alive(types: Counter[str] | None = None) -> dict[str, int]:
    """Objects of interest alive in this process (after a full collection), the objects
    the collector tracks and the memory blocks Python has allocated; ``types`` is
    filled with the tracked objects by type."""
    gc.collect()
    objects = gc.get_objects()
    counts = {
        "target_objects": 0,
        "client_objects": 0,
        "sessions_open": 0,
        "gc_objects": len(objects),
        "blocks": sys.getallocatedblocks(),
        "arenas": pymalloc_arenas(),
    }
    if types is not None:
        types.update(type(o).__qualname__ for o in objects)
    for o in objects:
        if Target in type(o).__mro__:
            counts["target_objects"] += 1
        elif isinstance(o, VendorClient):
            counts["client_objects"] += 1
        elif isinstance(o, aiohttp.ClientSession) and not o.closed:
            counts["sessions_open"] += 1
    return counts


def pymalloc_arenas() -> int:
    """Arenas Python's small-object allocator holds now (``sys._debugmallocstats``, which
    writes to the C stderr): with allocated blocks flat, more arenas mean the same objects
    spread over more memory, not more objects."""
    with tempfile.TemporaryFile() as out:
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(out.fileno(), 2)
        try:
            sys._debugmallocstats()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        out.seek(0)
        found = re.search(rb"# arenas allocated current\s*=\s*([\d,]+)", out.read())
    return int(found[1].replace(b",", b"")) if found else -1


def rss_after_trim() -> float:
    """RSS once the C allocator has handed its free memory back to the system
    (``malloc_trim``): what RSS holds beyond that is memory in use, not freed memory
    kept for reuse. The plain RSS where there is no glibc."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    return fleet.rss_mb()


def slope_per_hour(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, value) points, per hour."""
    n = len(points)
    if n < 2:
        return 0.0
    mx = sum(t for t, _ in points) / n
    my = sum(v for _, v in points) / n
    var = sum((t - mx) ** 2 for t, _ in points)
    return 0.0 if var == 0 else sum((t - mx) * (v - my) for t, v in points) / var * 3600


def rewrite(path: Path, text: str, key_file: Path, key: str) -> None:
    """The config and key files, as an operator (or a config map update) would write them."""
    key_file.write_text(key)
    path.write_text(text)


class Churn:
    def __init__(self, sim: httpx.AsyncClient) -> None:
        self.sim = sim
        self.deployments = 0
        self.jobs = 0

    async def setup(self) -> None:
        await self.post("/_sim/baseten", {"min_step": 1, "lag": 0})
        await self.post("/_sim/baseten", {"catalog": catalog(0)})
        await self.post("/_sim/fine-tunes", {"action": "reset"})
        await self.post("/_sim/jobs", {"model": "org/probed", "claim_delay": 0.05, "run_seconds": 0.1})

    async def step(self) -> None:
        self.deployments += 1
        await self.post("/_sim/baseten", {"catalog": catalog(self.deployments)})
        self.jobs += 1
        job = {"action": "add", "id": f"ft-churn-{self.jobs}", "steps": 6, "step_seconds": 0.5}
        await self.post("/_sim/fine-tunes", {**job, "post_seconds": 0.5})
        if self.jobs > 10:
            await self.post("/_sim/fine-tunes", {"action": "remove", "id": f"ft-churn-{self.jobs - 10}"})

    async def post(self, path: str, doc: dict[str, Any]) -> None:
        (await self.sim.post(path, json=doc)).raise_for_status()


async def run(args: argparse.Namespace) -> str:
    os.environ["CHURN_STAGING_KEY"] = STAGING_KEY
    sim_args = ["--api-key", KEYS[1], "--org", f"staging={STAGING_KEY}"]
    with fleet.simulator(KEYS[0], *sim_args) as sim_url, tempfile.TemporaryDirectory() as tmp:
        key_file, path = Path(tmp) / "key", Path(tmp) / "config.yaml"
        key_file.write_text(KEYS[0])
        path.write_text(config(sim_url, key_file, "t0"))
        async with httpx.AsyncClient(base_url=sim_url, timeout=10) as sim:
            churn = Churn(sim)
            await churn.setup()
            logs.setup("warning")
            gcpolicy.tune()  # as the daemon process does before it starts
            exporter = Exporter(path)
            await exporter.start(load_config(path))
            try:
                return await measure(args, exporter, churn, sim_url, key_file, path)
            finally:
                await exporter.stop()


async def measure(
    args: argparse.Namespace, exporter: Exporter, churn: Churn, sim_url: str, key_file: Path, path: Path
) -> str:
    start = time.monotonic()
    end = start + args.minutes * 60
    reloads = rotations = 0
    next_reload = start + args.reload_every
    next_churn = start + args.churn_every
    next_sample = start + args.warmup
    samples: list[dict[str, float]] = []
    traced: tracemalloc.Snapshot | None = None
    first_types: Counter[str] = Counter()
    while (now := time.monotonic()) < end:
        if now >= next_churn:
            await churn.step()
            next_churn += args.churn_every
        if now >= next_reload:
            reloads += 1
            rotate = reloads % 4 == 0
            rotations += rotate
            rewrite(path, config(sim_url, key_file, f"t{reloads % 2}"), key_file, KEYS[rotations % 2])
            ok, message = await exporter.reload()
            if not ok:
                raise RuntimeError(message)
            next_reload += args.reload_every
        exporter.exposition_parts()
        exporter.exposition_gzip_parts()
        if now >= next_sample:
            if args.trace and traced is None:
                tracemalloc.start()
                traced = tracemalloc.take_snapshot()
                alive(first_types)
            samples.append(
                {
                    "t": now - start,
                    "rss_mb": fleet.rss_mb(),
                    **dict(zip(("fds", "sockets"), open_fds(), strict=True)),
                    "targets": len(exporter.targets),
                    "clients_open": exporter.clients.open_clients(),
                    "tasks": len(asyncio.all_tasks()),
                    **alive(),
                }
            )
            print(" ".join(f"{k}={v:.1f}" for k, v in samples[-1].items()), file=sys.stderr)
            next_sample += args.sample_every
        await asyncio.sleep(1.0)
    if not samples:
        raise RuntimeError("no sample taken: --minutes must be longer than --warmup")
    if traced is not None:
        growth = tracemalloc.take_snapshot().compare_to(traced, "lineno")
        for stat in growth[: args.trace]:
            print(f"grew: {stat}", file=sys.stderr)
        last_types: Counter[str] = Counter()
        alive(last_types)
        last_types.subtract(first_types)
        for name, more in last_types.most_common(args.trace):
            print(f"more objects: {name} {more:+d}", file=sys.stderr)
    first, last = samples[0], samples[-1]
    trimmed = rss_after_trim()
    half = samples[len(samples) // 2 :]
    return fleet.line(
        "churn",
        minutes=args.minutes,
        reloads=reloads,
        rotations=rotations,
        deployments=churn.deployments,
        jobs=churn.jobs,
        rss_mb_start=first["rss_mb"],
        rss_mb_end=last["rss_mb"],
        rss_mb_per_hour=slope_per_hour([(s["t"], s["rss_mb"]) for s in half]),
        rss_mb_trimmed=trimmed,
        fds_start=int(first["fds"]),
        fds_end=int(last["fds"]),
        fds_max=int(max(s["fds"] for s in samples)),
        fds_per_hour=slope_per_hour([(s["t"], s["fds"]) for s in half]),
        sockets_end=int(last["sockets"]),
        targets=int(last["targets"]),
        target_objects=int(last["target_objects"]),
        clients_open=int(last["clients_open"]),
        client_objects=int(last["client_objects"]),
        sessions_open=int(last["sessions_open"]),
        gc_objects_start=int(first["gc_objects"]),
        gc_objects_end=int(last["gc_objects"]),
        blocks_start=int(first["blocks"]),
        blocks_end=int(last["blocks"]),
        arenas_start=int(first["arenas"]),
        arenas_end=int(last["arenas"]),
        tasks=int(last["tasks"]),
    )


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=float, default=10.0)
    p.add_argument("--warmup", type=float, default=60.0, help="seconds before the first sample")
    p.add_argument("--reload-every", type=float, default=20.0)
    p.add_argument("--churn-every", type=float, default=4.0)
    p.add_argument("--sample-every", type=float, default=15.0)
    p.add_argument(
        "--trace",
        type=int,
        default=0,
        help="trace allocations from the first sample; print the N that grew most",
    )
    return fleet.report(run, p.parse_args())


if __name__ == "__main__":
    sys.exit(main())
