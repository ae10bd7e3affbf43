"""A local Prometheus for the demo, so its alerts can be watched without Docker.

``inference-exporter demo --prometheus`` runs the ``prometheus`` found on PATH with a
configuration written to a temporary directory, which also holds its data and its
log: one scrape job, named as the bundled alerts expect, that scrapes the demo's
exporter every 15 s and evaluates the demo's alert and SLO rules (installed with the
package next to the demo config) as often, as the compose stack does, so the times
in docs/demo.md hold for both. It listens on a free loopback port and is stopped,
its directory removed, when the demo stops.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import tempfile
from importlib import resources
from pathlib import Path

import httpx
import yaml

BINARY = "prometheus"
# The scrape job the bundled alerts watch (mixin/config.py: exporter_job).
JOB = "inference-exporter"
# As the compose stack's Prometheus (deploy/compose/prometheus.yml).
INTERVAL = "15s"
RULE_FILES = ("alerts.yaml", "slos.yaml")
# The pages that show the alerts' states, by Prometheus build: the web UI, the classic
# UI of builds without it (Debian's), and the API every build answers.
ALERT_PAGES = ("/alerts", "/classic/alerts", "/api/v1/alerts")
# All of the demo's environment Prometheus gets: never the API keys (the demo's, or real
# ones a user has exported in the same shell).
ENVIRONMENT = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR")
READY_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
LOG_TAIL_LINES = 5


def find_binary() -> str | None:
    return shutil.which(BINARY)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def config(target: str, rule_files: list[Path]) -> dict[str, object]:
    """Prometheus's configuration: scrape ``target`` (host:port), evaluate ``rule_files``."""
    return {
        "global": {"scrape_interval": INTERVAL, "evaluation_interval": INTERVAL},
        "rule_files": [str(p) for p in rule_files],
        "scrape_configs": [{"job_name": JOB, "static_configs": [{"targets": [target]}]}],
    }


class LocalPrometheus:
    """One Prometheus process and its temporary directory."""

    def __init__(self, binary: str) -> None:
        self.binary = binary
        self.workdir = Path(tempfile.mkdtemp(prefix="inference-exporter-demo-prometheus-"))
        self.log_path = self.workdir / "prometheus.log"
        self.url = f"http://127.0.0.1:{_free_port()}"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self, target: str) -> None:
        """Start scraping ``target``; ``ready`` says when it answers."""
        rules = []
        for name in RULE_FILES:
            path = self.workdir / name
            path.write_text(
                resources.files("exporter.demo").joinpath(name).read_text(encoding="utf-8"), encoding="utf-8"
            )
            rules.append(path)
        config_path = self.workdir / "prometheus.yml"
        config_path.write_text(yaml.safe_dump(config(target, rules), sort_keys=False), encoding="utf-8")
        with self.log_path.open("wb") as log:
            self._process = subprocess.Popen(
                [
                    self.binary,
                    f"--config.file={config_path}",
                    f"--storage.tsdb.path={self.workdir / 'data'}",
                    f"--web.listen-address={self.url.removeprefix('http://')}",
                    "--log.level=warn",
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
                env={k: os.environ[k] for k in ENVIRONMENT if k in os.environ},
            )

    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    async def ready(self) -> str | None:
        """Once Prometheus answers: the URL of the page that shows the alerts' states.
        None if it exited or did not answer within ``READY_TIMEOUT``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + READY_TIMEOUT
        async with httpx.AsyncClient(timeout=2.0) as client:
            while self.running() and loop.time() < deadline:
                try:
                    if (await client.get(self.url + "/-/ready")).status_code == 200:
                        for page in ALERT_PAGES:
                            if (await client.get(self.url + page)).status_code == 200:
                                return self.url + page
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.25)
        return None

    def log_tail(self) -> str:
        try:
            lines = self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(lines[-LOG_TAIL_LINES:])

    def stop(self) -> None:
        """Stop the process (killed if it outlasts ``STOP_TIMEOUT``) and remove its directory."""
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        shutil.rmtree(self.workdir, ignore_errors=True)
