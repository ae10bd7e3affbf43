"""What the benchmarks share: the simulator process, an in-process exporter, a mixed fleet.

The fleet mixes three shapes of target, all polling the simulator over real HTTP:

- Together queue targets (the real source: 2 series each);
- deployment-shaped targets (25 series each: gauges, per-quantile latency series and
  counters labelled by model and deployment, the shape of a Baseten deployment);
- fine-tune-shaped targets (8 series each: latest logged values of a training job).

The last two fetch ``GET /queue/metrics`` for their HTTP round trip and derive their
values from its answer, so every poll pays for a request, a JSON parse and a render,
as a real source does; their families are named ``bench_…`` to make plain that they
are stand-ins. Each target adds 5 health series of its own.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import resource
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from exporter.config import load_config  # noqa: E402
from exporter.daemon import Exporter  # noqa: E402
from exporter.exposition import Family, Rendered, Sample, render  # noqa: E402
from exporter.sources.base import Target  # noqa: E402
from exporter.sources.together_queue import ENDPOINT, QueueTarget, translate  # noqa: E402
from exporter.upstream import Clients  # noqa: E402

# Polls cancelled at shutdown and skipped runs are expected here, not news.
logging.getLogger("apscheduler").setLevel(logging.CRITICAL)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
SIM_KEY = "bench-key"
HEALTH_SERIES = 5

_DEPLOY_GAUGES = [
    Family(f"bench_deployment_{n}", "gauge", f"Deployment-shaped stand-in: {n}.")
    for n in (
        "replicas_active",
        "replicas_starting",
        "cpu_usage_cores",
        "memory_usage_bytes",
        "gpu_utilization_ratio",
        "gpu_memory_used_bytes",
        "concurrent_requests",
        "queue_depth",
    )
]
_DEPLOY_QUANTILES = [
    Family(f"bench_deployment_{n}_seconds", "gauge", f"Deployment-shaped stand-in: {n} by quantile.")
    for n in ("end_to_end_latency", "time_to_first_byte", "inference_latency")
]
_DEPLOY_COUNTERS = [
    Family(f"bench_deployment_{n}_total", "counter", f"Deployment-shaped stand-in: {n}.")
    for n in ("requests", "responses_failed")
]
_QUANTILES = ("0.5", "0.9", "0.95", "0.99", "avg")
_FINETUNE = [
    Family(f"bench_finetune_{n}", "gauge", f"Fine-tune-shaped stand-in: {n}.")
    for n in (
        "train_loss",
        "eval_loss",
        "learning_rate",
        "grad_norm",
        "epoch",
        "global_step",
        "tokens",
        "lr_scale",
    )
]

# Series per target of each shape, own health included.
SERIES = {
    "queue": 2 + HEALTH_SERIES,
    "deployment": len(_DEPLOY_GAUGES) + len(_DEPLOY_QUANTILES) * len(_QUANTILES) + 2 + HEALTH_SERIES,
    "finetune": len(_FINETUNE) + HEALTH_SERIES,
}


def deployment_samples(name: str, waiting: float, running: float) -> list[Sample]:
    ids = (("model_id", name.split("-")[-1]), ("deployment_id", name))
    out = [Sample(f, ids, waiting * (i + 1) + running * 0.25) for i, f in enumerate(_DEPLOY_GAUGES)]
    for i, f in enumerate(_DEPLOY_QUANTILES):
        out.extend(
            Sample(f, (*ids, ("quantile", q)), (waiting + 1) * (i + 1) * (j + 1) / 97.0)
            for j, q in enumerate(_QUANTILES)
        )
    out.append(Sample(_DEPLOY_COUNTERS[0], ids, 1000.0 + waiting))
    out.append(Sample(_DEPLOY_COUNTERS[1], ids, running))
    return out


def finetune_samples(name: str, waiting: float, running: float) -> list[Sample]:
    ids = (("job_id", name),)
    return [Sample(f, ids, (waiting + 3) / (i + 2) + running / 7.0) for i, f in enumerate(_FINETUNE)]


class ShapedTarget(Target):
    """A stand-in target: one real request to the simulator, then a shaped set of samples."""

    def __init__(self, clients: Clients, shape: str, name: str, *, interval: float, timeout: float) -> None:
        super().__init__(f"bench_{shape}/{name}", interval=interval, timeout=timeout, settings=(shape, name))
        self.source = f"bench_{shape}"
        self.clients = clients
        self.name = name
        self.shape = shape

    async def poll(self, now: float) -> Rendered:
        _, doc = await self.clients.get("together").request_json(
            "GET",
            ENDPOINT,
            params={"model": self.name},
            source=self.source,
            endpoint=ENDPOINT,
            timeout=self.timeout,
        )
        base = translate(self.name, doc)  # the same validation as the real source
        waiting, running = base[0].value, base[1].value
        build = deployment_samples if self.shape == "deployment" else finetune_samples
        return render(build(self.name, waiting, running))


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
FLEET_100K = FleetSize(queue=1500, deployment=2400, finetune=1300)


def build_fleet(clients: Clients, size: FleetSize, *, interval: float, timeout: float) -> list[Target]:
    out: list[Target] = [
        QueueTarget(clients, f"org/queue-{i}", interval=interval, timeout=timeout) for i in range(size.queue)
    ]
    out += [
        ShapedTarget(clients, "deployment", f"dep-{i}", interval=interval, timeout=timeout)
        for i in range(size.deployment)
    ]
    out += [
        ShapedTarget(clients, "finetune", f"ft-{i}", interval=interval, timeout=timeout)
        for i in range(size.finetune)
    ]
    return out


@contextlib.contextmanager
def simulator() -> Iterator[str]:
    """The simulator as its own process (its CPU is not the exporter's); yields its URL."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "exporter",
            "simulate",
            "--web.listen-address",
            "127.0.0.1:0",
            "--api-key",
            SIM_KEY,
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
    lines = [
        "global:",
        f"  poll_interval: {interval}",
        f"  timeout: {timeout}",
        f"  start_spread: {spread}",
        "together:",
        f"  base_url: {sim_url}/v1",
        "  api_key_env: BENCH_TOGETHER_KEY",
        f"  max_connections: {max_connections}",
    ]
    if queues:
        lines.append("  queues:")
        lines += [f"    - model: {q}" for q in queues]
    path = workdir / "bench.yaml"
    path.write_text("\n".join(lines) + "\n")
    os.environ["BENCH_TOGETHER_KEY"] = SIM_KEY
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
    exporter = Exporter(cfg)
    await exporter.start(load_config(cfg))
    try:
        await exporter._sync_group(
            "bench", build_fleet(exporter.clients, size, interval=interval, timeout=interval)
        )
        yield exporter
    finally:
        await exporter.stop()


def polls_done(exporter: Exporter) -> int:
    return sum(h.polls.total() for h in exporter.health.values())


def failed_polls(exporter: Exporter) -> int:
    return sum(h.polls.total() - h.polls["success"] for h in exporter.health.values())


async def wait_for_polls(exporter: Exporter, count: int, timeout: float) -> None:
    import asyncio

    deadline = time.monotonic() + timeout
    while polls_done(exporter) < count:
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {polls_done(exporter)} of {count} polls done after {timeout:g}s")
        await asyncio.sleep(0.25)


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


def report(run: Callable[[argparse.Namespace], Awaitable[str]], args: argparse.Namespace) -> int:
    """Run one benchmark: the machine and the time taken on stderr, its figures line last."""
    t0 = time.monotonic()
    print(f"machine: {machine()}", file=sys.stderr)
    result = asyncio.run(run(args))
    print(f"took {time.monotonic() - t0:.0f}s", file=sys.stderr)
    print(result)
    return 0
