"""Starting the real daemon and simulator as processes, scraping and parsing.

Everything binds to 127.0.0.1; nothing here reaches any other host.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import Counter
from prometheus_client.parser import text_string_to_metric_families

from exporter.config import ConfigError, load_config
from exporter.core.exposition import Rendered
from exporter.core.logs import SCRUBBER
from exporter.engine.store import Store
from exporter.upstream.api import Clients
from exporter.upstream.client import UpstreamStats, VendorClient
from exporter.web.pages.targets import TargetsQuery
from exporter.web.pages.targets import stream as stream_targets_page

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
REPO = Path(__file__).resolve().parents[1]


def need_binary(name: str) -> str:
    """Path of a binary the test needs: skipped on a laptop without it, a failure in CI."""
    path = shutil.which(name)
    if path is None:
        if IN_CI:
            pytest.fail(f"{name} is required in CI but not installed")
        pytest.skip(f"{name} not installed")
    return path


@contextlib.contextmanager
def scrubbing(*keys: str) -> Iterator[None]:
    """The process's scrubber knows ``keys``, as once the daemon has loaded them; none after."""
    SCRUBBER.set_secrets(set(keys))
    try:
        yield
    finally:
        SCRUBBER.set_secrets(set())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Proc:
    popen: subprocess.Popen[str]
    url: str
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 5.0) -> int:
        if self.popen.poll() is None:
            self.popen.send_signal(sig)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)
        return self.popen.returncode


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "exporter", *args]


def run_cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """``python -m exporter ARGS`` from the repository root, run to its exit."""
    return subprocess.run(
        _cli(*args),
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def start_simulator(
    tmp_path: Path,
    keys: list[str],
    extra_env: dict[str, str] | None = None,
    clock_offset: float = 0.0,
    orgs: dict[str, str] | None = None,
    extra_args: list[str] | None = None,
) -> Proc:
    """The simulator; ``keys`` see its default organisation, ``orgs`` maps each further
    organisation's name to its key."""
    log_path = tmp_path / f"simulator-{time.monotonic_ns()}.log"
    args = _cli("simulate", "--web.listen-address", "127.0.0.1:0", "--clock-offset", str(clock_offset))
    args += extra_args or []
    for k in keys:
        args += ["--api-key", k]
    for name, k in (orgs or {}).items():
        args += ["--org", f"{name}={k}"]
    with log_path.open("w") as logf:
        popen = subprocess.Popen(
            args,
            stdout=subprocess.PIPE,
            stderr=logf,
            text=True,
            cwd=REPO,
            env={**os.environ, **(extra_env or {})},
        )
    assert popen.stdout is not None
    line = popen.stdout.readline().strip()
    if not line.startswith("http://"):
        popen.kill()
        raise RuntimeError(f"simulator did not start: {line!r}\n{log_path.read_text()}")
    return Proc(popen, line, log_path)


def start_daemon(
    tmp_path: Path,
    config_path: Path,
    env: dict[str, str] | None = None,
    extra_args: list[str] | None = None,
    wait_ready: bool = True,
    client: httpx.Client | None = None,
    scheme: str = "http",
    lifecycle: bool = True,
) -> Proc:
    """Start the daemon; ``client`` (with its TLS and auth settings) checks health, else plain HTTP."""
    port = free_port()
    log_path = tmp_path / f"daemon-{port}.log"
    args = _cli(
        "--config.file",
        str(config_path),
        "--web.listen-address",
        f"127.0.0.1:{port}",
        "--log.level",
        "debug",
        *(["--web.enable-lifecycle"] if lifecycle else []),
    )
    args += extra_args or []
    with log_path.open("w") as logf:
        popen = subprocess.Popen(
            args,
            stdout=logf,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=REPO,
            env={**os.environ, **(env or {})},
        )
    proc = Proc(popen, f"{scheme}://127.0.0.1:{port}", log_path)
    wait_until(lambda: _ok(proc.url + "/-/healthy", client), timeout=15, what="daemon healthy", proc=proc)
    if wait_ready:
        wait_until(lambda: _ok(proc.url + "/-/ready", client), timeout=20, what="daemon ready", proc=proc)
    return proc


def _ok(url: str, client: httpx.Client | None = None) -> bool:
    try:
        if client is not None:
            return client.get(url, timeout=2).status_code == 200
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def wait_until(
    cond: object, timeout: float, what: str, proc: Proc | None = None, interval: float = 0.1
) -> None:
    assert callable(cond)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.popen.poll() is not None:
            raise AssertionError(
                f"process exited ({proc.popen.returncode}) while waiting for {what}:\n{proc.log()}"
            )
        if cond():
            return
        time.sleep(interval)
    raise AssertionError(
        f"timed out after {timeout}s waiting for {what}" + (f"\n{proc.log()}" if proc else "")
    )


def mock_clients(
    vendor: str, handler: Callable[[httpx.Request], httpx.Response], stats: UpstreamStats
) -> Clients:
    """The default account of ``vendor``, its requests answered in process by ``handler``."""
    clients = Clients()
    client = VendorClient(
        vendor,
        f"http://{vendor}.test",
        "secret-key",
        max_connections=2,
        stats=stats,
        transport=httpx.MockTransport(handler),
    )
    clients.replace({(vendor, "default"): client})
    return clients


def wait_for_reason(url: str, target: str, source: str, reason: str, timeout: float = 20) -> None:
    """Wait until the daemon at ``url`` shows ``target`` down for ``reason``."""
    wait_until(
        lambda: (
            scrape(url).value(
                "inference_exporter_target_error_info", target=target, source=source, reason=reason
            )
            == 1
        ),
        timeout=timeout,
        what=f"{target} to fail with {reason}",
    )


@dataclass
class Scrape:
    text: str
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float] = field(default_factory=dict)
    types: dict[str, str] = field(default_factory=dict)

    def value(self, name: str, **labels: str) -> float | None:
        """The sample with exactly these labels; a series of a target also carries its
        account, which is the default account's unless the test names one."""
        found = self.samples.get((name, frozenset(labels.items())))
        if found is None and "account" not in labels:
            found = self.samples.get((name, frozenset({**labels, "account": "default"}.items())))
        return found

    def series(self, name: str) -> list[tuple[dict[str, str], float]]:
        return [(dict(lbls), v) for (n, lbls), v in self.samples.items() if n == name]


def parse(text: str) -> Scrape:
    out = Scrape(text)
    for fam in text_string_to_metric_families(text):
        out.types[fam.name] = fam.type
        for s in fam.samples:
            out.samples[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def exposition(parts: Iterable[Rendered]) -> bytes:
    """What ``/metrics`` shows of these targets' rendered polls: each filed in a store, as
    the daemon files a poll's result, and joined as a scrape joins them."""
    store = Store()
    for i, part in enumerate(parts):
        store.put(f"target-{i}", part)
    return scraped(store)


def scraped(store: Store) -> bytes:
    """The store's exposition in one piece (a scrape sends it in parts)."""
    return b"".join(store.exposition_parts())


def scraped_gzip(store: Store, suffix: bytes) -> bytes:
    """The store's exposition followed by ``suffix``, gzipped, in one piece."""
    return b"".join(store.exposition_gzip_parts(suffix))


def targets_page(
    data: list[dict[str, Any]],
    now: float,
    query: TargetsQuery | None = None,
    telemetry_path: str = "/metrics",
) -> str:
    """The targets page for these rows (as ``exporter.web.status.rows`` builds them), in one piece."""
    return "".join(stream_targets_page(data, now, query, telemetry_path))


def counts(counter: Counter) -> dict[tuple[str, ...], float]:
    """Every series a prometheus_client counter holds, by its label values in order, with its total."""
    return {
        tuple(s.labels.values()): s.value
        for metric in counter.collect()
        for s in metric.samples
        if s.name.endswith("_total")
    }


def counted(counter: Counter, **labels: str) -> float:
    """What a prometheus_client counter has counted in the series with these labels, 0 if it
    has none; a series counted for a vendor account carries it, the default account's
    unless the test names one."""
    totals = {
        frozenset(s.labels.items()): s.value
        for metric in counter.collect()
        for s in metric.samples
        if s.name.endswith("_total")
    }
    found = totals.get(frozenset(labels.items()))
    if found is None and "account" not in labels:
        found = totals.get(frozenset({**labels, "account": "default"}.items()))
    return found or 0.0


def scrape(url: str, path: str = "/metrics") -> Scrape:
    resp = httpx.get(url + path, timeout=5)
    resp.raise_for_status()
    return parse(resp.text)


def promtool_check_metrics(text: str) -> str:
    """Output of ``promtool check metrics`` on ``text`` (empty when clean)."""
    promtool = need_binary("promtool")
    res = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=60
    )
    return (res.stdout + res.stderr).strip()


@contextlib.contextmanager
def running(*procs: Proc) -> Iterator[None]:
    try:
        yield
    finally:
        for p in procs:
            p.stop()


# --- the simulator's fault injection and request log ---------------------------------


def add_fault(sim: Proc, **rule: object) -> int:
    """Add a fault rule (see exporter/simulator/faults.py); return its id."""
    resp = httpx.post(sim.url + "/_sim/faults", json=rule, timeout=5)
    resp.raise_for_status()
    return int(resp.json()["ids"][0])


def clear_faults(sim: Proc) -> None:
    httpx.delete(sim.url + "/_sim/faults", timeout=5).raise_for_status()


def request_log(sim: Proc, since: float = 0.0, route: str | None = None) -> list[dict[str, object]]:
    """The simulator's requests with their arrival times (``t``), oldest first."""
    params: dict[str, str] = {"since": str(since)}
    if route is not None:
        params["route"] = route
    resp = httpx.get(sim.url + "/_sim/requests/log", params=params, timeout=10)
    resp.raise_for_status()
    return list(resp.json())


def write_yaml(tmp_path: Path, text: str, name: str = "config.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def problems(path: Path, *, read_secrets: bool = False) -> list[str]:
    """The problems ``load_config`` reports for ``path``, as check-config prints them
    (``file:line: key: message``); fails the test if the file loads."""
    with pytest.raises(ConfigError) as exc:
        load_config(path, read_secrets=read_secrets)
    return [str(p) for p in exc.value.problems]
