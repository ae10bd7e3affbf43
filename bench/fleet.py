"""What the benchmarks share: the simulator process, an in-process exporter, a mixed fleet.

The fleet is made of the real sources, all polling the simulator over real HTTP:

- Together queue targets (``QueueTarget``: one request, 2 series each);
- Baseten deployment targets (``DeploymentTarget``, as the discovery finds them: a
  CURRENT read of 7 gauges and 3 latency histograms, plus the SERIES read of the
  request counter by status class once its window has moved — one or two requests,
  25 series and an ``_info`` each);
- Together fine-tune job targets (``JobTarget``, as the discovery finds them: the job
  object and its new metric rows — two requests, 14 series each).

The simulator is given exactly the fleet's deployments and jobs through its control
endpoints, and the two discoveries are run once to build the targets. Each target
adds 5 health series of its own.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import logging
import os
import resource
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from aiohttp import web

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from exporter.config import load_config  # noqa: E402
from exporter.core.scope import Scope  # noqa: E402
from exporter.engine import gcpolicy  # noqa: E402
from exporter.engine.daemon import Exporter  # noqa: E402
from exporter.sources.base import Target  # noqa: E402
from exporter.sources.baseten.api import BasetenAPI  # noqa: E402
from exporter.sources.baseten.config import (  # noqa: E402
    DEFAULT_COUNTER_WINDOW,
    DEFAULT_DELAY,
    DEFAULT_SKIP_STATUSES,
    DEFAULT_WINDOW,
    Effective,
)
from exporter.sources.baseten.discovery import DeploymentDiscovery, DeploymentDiscoverySettings  # noqa: E402
from exporter.sources.baseten.target import DeploymentSettings  # noqa: E402
from exporter.sources.together.api import TogetherAPI  # noqa: E402
from exporter.sources.together.finetune.target import (  # noqa: E402
    FineTuneDiscovery,
    FineTuneDiscoverySettings,
    JobSettings,
)
from exporter.sources.together.finetune.vendor import UNFINISHED_STATUSES  # noqa: E402
from exporter.sources.together.queue import QueueSettings, QueueTarget  # noqa: E402
from exporter.upstream.api import Clients  # noqa: E402

# Polls cancelled at shutdown and skipped runs are expected here, not news.
logging.getLogger("apscheduler").setLevel(logging.CRITICAL)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
SIM_KEY = "bench-key"
# The fleet's vendor accounts and the labels on every series of their targets.
ACCOUNTS = ("prod", "staging")
LABELS = (("team", "inference-platform"), ("tier", "gold"))
HEALTH_SERIES = 5
# Deployments per simulated Baseten model.
DEPLOYMENTS_PER_MODEL = 4

# What each deployment is asked for: 7 gauges (1 series each), 3 histograms (4
# quantiles and an average each) and a counter with 3 status classes.
DEPLOYMENT_METRICS = (
    "baseten_replicas_active",
    "baseten_replicas_starting",
    "baseten_concurrent_requests",
    "baseten_async_queue_size",
    "baseten_gpu_memory_used",
    "baseten_gpu_utilization",
    "baseten_container_cpu_memory_working_set_bytes",
    "baseten_end_to_end_response_time_seconds",
    "baseten_time_to_first_byte_seconds",
    "baseten_time_in_async_queue_seconds",
    "baseten_inference_requests_total",
)
DEPLOYMENT_REQUEST = Effective(
    mode="CURRENT",
    metrics=DEPLOYMENT_METRICS,
    window=DEFAULT_WINDOW,
    counter_window=DEFAULT_COUNTER_WINDOW,
    delay=DEFAULT_DELAY,
)

# Series per target of each kind, own health included (an estimate for sizing the
# fleet; the benchmarks report the series the store actually holds).
SERIES = {
    "queue": 2 + HEALTH_SERIES,
    # 7 gauges + 3 x 5 histogram series + 3 counter series + the _info gauge.
    "deployment": 7 + 15 + 3 + 1 + HEALTH_SERIES,
    # info, remaining, epochs completed/configured, step, last logged, 3 skipped
    # reasons, dropped, key limit, and 3 logged keys (train loss and lr, eval loss).
    "finetune": 14 + HEALTH_SERIES,
}


@dataclass(frozen=True)
class FleetSize:
    queue: int
    deployment: int
    finetune: int

    @property
    def targets(self) -> int:
        return self.queue + self.deployment + self.finetune

    @property
    def series(self) -> int:
        return (
            self.queue * SERIES["queue"]
            + self.deployment * SERIES["deployment"]
            + self.finetune * SERIES["finetune"]
        )

    def scaled(self, factor: float) -> FleetSize:
        return FleetSize(
            round(self.queue * factor), round(self.deployment * factor), round(self.finetune * factor)
        )


# About 100k series: the fleet of a large tenant.
FLEET_100K = FleetSize(queue=1500, deployment=2200, finetune=1100)


def baseten_catalog(deployments: int) -> list[dict[str, Any]]:
    """Models of DEPLOYMENTS_PER_MODEL active deployments each, ``deployments`` in all."""
    models: list[dict[str, Any]] = []
    for i in range(deployments):
        if i % DEPLOYMENTS_PER_MODEL == 0:
            n = len(models)
            models.append({"id": f"bm{n}", "name": f"bench-model-{n}", "deployments": []})
        models[-1]["deployments"].append({"id": f"bd{i}", "name": f"v{i % DEPLOYMENTS_PER_MODEL}"})
    return models


def finetune_jobs(jobs: int) -> list[dict[str, Any]]:
    """Running jobs that started a minute ago and log a train row every 5 s (an eval row every 4th)."""
    return [
        {
            "id": f"ft-bench-{i}",
            "model": "bench-org/base-model",
            "steps": 1_000_000,
            "step_seconds": 5,
            "eval_every": 4,
            "delay": -60,
        }
        for i in range(jobs)
    ]


def populate(sim_url: str, size: FleetSize) -> None:
    """Make the simulator's Baseten account and fine-tune jobs exactly the fleet's."""
    with httpx.Client(base_url=sim_url, timeout=60) as http:
        http.post("/_sim/baseten", json={"catalog": baseten_catalog(size.deployment)}).raise_for_status()
        http.post("/_sim/fine-tunes", json={"action": "reset"}).raise_for_status()
        http.post(
            "/_sim/fine-tunes", json={"action": "add_many", "jobs": finetune_jobs(size.finetune)}
        ).raise_for_status()


async def build_fleet(clients: Clients, size: FleetSize, *, interval: float, timeout: float) -> list[Target]:
    """The queue targets (split between the two accounts), and the deployment and job
    targets the two discoveries (one per account) find."""
    first, second = (Scope(a, LABELS) for a in ACCOUNTS)
    together = [TogetherAPI(clients, a) for a in ACCOUNTS]
    out: list[Target] = [
        QueueTarget(
            together[i % 2], f"org/queue-{i}", QueueSettings(interval, timeout, (first, second)[i % 2])
        )
        for i in range(size.queue)
    ]
    deployments = DeploymentDiscovery(
        BasetenAPI(clients, first.account),
        0,
        DeploymentDiscoverySettings(
            model_names=frozenset(),
            environments=frozenset(),
            production_only=False,
            skip_statuses=frozenset(DEFAULT_SKIP_STATUSES),
            interval=3600,
            timeout=60,
            deployments=DeploymentSettings(DEPLOYMENT_REQUEST, interval, timeout, scope=first),
            scope=first,
        ),
    )
    jobs = FineTuneDiscovery(
        together[1],
        FineTuneDiscoverySettings(
            frozenset(UNFINISHED_STATUSES),
            interval=3600,
            timeout=60,
            jobs=JobSettings(interval, timeout, resolution=None, retention=3600, max_keys=200, scope=second),
            scope=second,
        ),
    )
    now = time.time()
    for discovery in (deployments, jobs):
        _, found = await discovery.discover(now)
        out += found
    kinds = (size.queue, size.deployment, size.finetune)
    if len(out) != sum(kinds):
        raise RuntimeError(f"fleet of {len(out)} targets, expected {kinds}")
    return out


@contextlib.contextmanager
def simulator(key: str = SIM_KEY, *more: str) -> Iterator[str]:
    """The simulator as its own process (its CPU is not the exporter's), accepting
    ``key`` (``more``: further simulator arguments); yields its URL."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "exporter",
            "simulate",
            "--web.listen-address",
            "127.0.0.1:0",
            "--api-key",
            key,
            *more,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert proc.stdout is not None
    url = proc.stdout.readline().strip()
    if not url.startswith("http://"):
        proc.kill()
        raise RuntimeError("simulator did not start")
    try:
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


def write_config(
    workdir: Path,
    sim_url: str,
    *,
    interval: float,
    spread: float,
    timeout: float,
    max_connections: int,
    queues: list[str] | None = None,
) -> Path:
    # Two accounts per vendor (one key for both: the simulator's one organisation), each
    # with two target labels, so that every series carries account and labels as in a
    # multi-account deployment.
    lines = [
        "global:",
        f"  poll_interval: {interval}",
        f"  timeout: {timeout}",
        f"  start_spread: {spread}",
    ]
    for vendor, url in (("together", f"{sim_url}/v1"), ("baseten", sim_url)):
        lines += [f"{vendor}:", "  accounts:"]
        for account in ACCOUNTS:
            lines += [
                f"    - name: {account}",
                f"      base_url: {url}",
                f"      api_key_env: BENCH_{vendor.upper()}_KEY",
                f"      max_connections: {max_connections}",
                f"      labels: {{{', '.join(f'{k}: {v}' for k, v in LABELS)}}}",
            ]
            if queues and vendor == "together" and account == ACCOUNTS[0]:
                lines.append("      queues:")
                lines += [f"        - model: {q}" for q in queues]
    path = workdir / "bench.yaml"
    path.write_text("\n".join(lines) + "\n")
    os.environ["BENCH_TOGETHER_KEY"] = SIM_KEY
    os.environ["BENCH_BASETEN_KEY"] = SIM_KEY
    return path


@contextlib.asynccontextmanager
async def exporter_with_fleet(
    workdir: Path,
    sim_url: str,
    size: FleetSize,
    *,
    interval: float,
    spread: float,
    max_connections: int = 10,
) -> AsyncIterator[Exporter]:
    """A running exporter whose targets are the fleet (added as one group, like a discovery's)."""
    cfg = write_config(
        workdir, sim_url, interval=interval, spread=spread, timeout=interval, max_connections=max_connections
    )
    populate(sim_url, size)
    gcpolicy.tune()  # as the daemon process does before it starts
    exporter = Exporter(cfg)
    await exporter.start(load_config(cfg))
    try:
        fleet = await build_fleet(exporter.clients.current, size, interval=interval, timeout=interval)
        await exporter.poller.sync("bench", fleet)
        yield exporter
    finally:
        await exporter.stop()


def series(exporter: Exporter) -> int:
    """Series in the exporter's cached exposition, its targets' health included: each
    family's blob is its two header lines and one line per series."""
    return sum(blob.count(b"\n") - 2 for blob in exporter.store.exposition_parts())


def polls_done(exporter: Exporter) -> int:
    return sum(h.polls.total() for h in exporter.poller.health.values())


def failed_polls(exporter: Exporter) -> int:
    return sum(h.polls.total() - h.polls["success"] for h in exporter.poller.health.values())


async def wait_for_polls(exporter: Exporter, count: int, timeout: float) -> None:
    """Wait until ``count`` polls are done. Each check walks every target's health in
    this process, whose CPU the benchmarks count as the exporter's: once a second
    keeps that to a small fraction of what the polls cost."""
    deadline = time.monotonic() + timeout
    while polls_done(exporter) < count:
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {polls_done(exporter)} of {count} polls done after {timeout:g}s")
        await asyncio.sleep(1.0)


def cpu_seconds() -> float:
    """CPU time (user + system) of this process so far."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


async def idle_rss_mb(config: Path) -> float:
    """RSS of an exporter started on ``config`` before it holds anything (its first
    exposition built, garbage collected), then stopped: the baseline a benchmark's
    growth is measured from."""
    idle = Exporter(config)
    await idle.start(load_config(config))
    idle.store.exposition_gzip_parts(b"")
    gc.collect()
    baseline = rss_mb()
    await idle.stop()
    return baseline


def percentile(values: list[float], p: float) -> float:
    s = sorted(values)
    if not s:
        return float("nan")
    k = min(len(s) - 1, max(0, round(p / 100 * (len(s) - 1))))
    return s[k]


def machine() -> str:
    model = ""
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return f"{os.cpu_count()} cpus, {model or 'unknown cpu'}, load {os.getloadavg()[0]:.1f}"


def line(name: str, **figures: object) -> str:
    def fmt(v: object) -> str:
        return f"{v:.3g}" if isinstance(v, float) else str(v)

    return f"{name}: " + " ".join(f"{k}={fmt(v)}" for k, v in figures.items())


def report(run: Callable[[argparse.Namespace], Coroutine[Any, Any, str]], args: argparse.Namespace) -> int:
    """Run one benchmark: the machine and the time taken on stderr, its figures line last."""
    t0 = time.monotonic()
    print(f"machine: {machine()}", file=sys.stderr)
    result = asyncio.run(run(args))
    print(f"took {time.monotonic() - t0:.0f}s", file=sys.stderr)
    print(result)
    return 0
