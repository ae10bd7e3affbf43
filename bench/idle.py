"""Resident memory of an idle exporter against the libraries it is built on.

Starts, one at a time and alternating, the daemon polling one Together queue every
second (as its own process, from a config file) and ``stack.py`` (the same libraries,
no module of the exporter's, doing the least of the same job), lets each idle for
``--seconds``, and reads its VmRSS. The figures are medians of ``--rounds`` runs of each.

Last line: ``idle: daemon_rss_mb=… stack_rss_mb=… own_mb=… ratio=…`` where
``own_mb`` is what the exporter's own modules and config add to its libraries.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import fleet

MODEL = "idle/alpha"
KEY_ENV = "BENCH_TOGETHER_KEY"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def vm_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def write_config(tmp: Path, sim_url: str) -> Path:
    path = tmp / "idle.yaml"
    path.write_text(
        "global:\n  poll_interval: 1s\n  timeout: 500ms\n"
        f"together:\n  base_url: {sim_url}/v1\n  api_key_env: {KEY_ENV}\n"
        f"  queues:\n    - model: {MODEL}\n"
    )
    return path


def idle_rss(args: list[str], seconds: float, ready: str) -> float:
    """VmRSS of the process ``args`` starts, ``seconds`` after it printed ``ready``."""
    env = {**os.environ, "PYTHONPATH": str(fleet.REPO), KEY_ENV: fleet.SIM_KEY}
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if ready in line:
                break
        else:
            raise RuntimeError(f"{args[1]} exited before it was ready")
        time.sleep(seconds)
        return vm_rss_mb(proc.pid)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


async def run(args: argparse.Namespace) -> str:
    daemon, stack = [], []
    with fleet.simulator() as sim_url, tempfile.TemporaryDirectory() as tmp:
        config = write_config(Path(tmp), sim_url)
        for _ in range(args.rounds):
            daemon_args = [sys.executable, "-m", "exporter", "--config.file", str(config)]
            daemon_args += ["--web.listen-address", f"127.0.0.1:{free_port()}"]
            daemon.append(idle_rss(daemon_args, args.seconds, "ready: every target polled once"))
            stack_args = [
                sys.executable,
                str(fleet.REPO / "bench" / "stack.py"),
                f"{sim_url}/v1",
                fleet.SIM_KEY,
            ]
            stack.append(idle_rss(stack_args, args.seconds, "ready"))
            print(f"daemon {daemon[-1]:.1f} MiB, stack {stack[-1]:.1f} MiB", file=sys.stderr)
    d, s = statistics.median(daemon), statistics.median(stack)
    return fleet.line("idle", daemon_rss_mb=d, stack_rss_mb=s, own_mb=d - s, ratio=d / s, rounds=args.rounds)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=10.0, help="how long each process idles")
    parser.add_argument("--rounds", type=int, default=3, help="runs of each process")
    return fleet.report(run, parser.parse_args())


if __name__ == "__main__":
    sys.exit(main())
