"""What an idle daemon costs: its memory with one queue target, and the parts it loads.

Most of an idle daemon's memory is its libraries': ``bench/stack.py`` runs them alone,
doing the least of the same job, and the daemon's own share above that is bounded.
A part the daemon may never use is loaded when something first needs it: Jinja when a
page is asked for, cryptography for a web config with TLS, bcrypt for one with users.
The compiled libraries of those packages show in ``/proc/<pid>/maps`` once loaded (Jinja's
through MarkupSafe's), so these tests read the real process rather than trust the imports.
"""

from __future__ import annotations

import os
import ssl
import subprocess
import sys
import time
from pathlib import Path

import bcrypt
import httpx
import pytest

from tests.conftest import SIM_KEY
from tests.helpers import REPO, Proc, parse, start_daemon, wait_until
from tests.integration.hostile import proc_status_mb, rss_mb
from tests.integration.queue_config import KEY_ENV, queue_config, target
from tests.pki import issue, make_ca

pytestmark = pytest.mark.integration

MODEL = "idle/alpha"
# The bound on an idle daemon polling one queue (VmRSS, MiB), and on what the exporter's
# own modules and config add to the libraries it is built on (bench/stack.py, measured
# in the same test); figures in bench/README.md, "Idle memory".
IDLE_RSS_MB = 60.0
OWN_RSS_MB = 8.0
# How long each process idles, polling every second, before it is measured.
IDLE_SECONDS = 3.0


def loaded(pid: int, *packages: str) -> set[str]:
    """Which of ``packages`` have a compiled library of theirs mapped into process ``pid``."""
    paths = {line.split()[-1] for line in Path(f"/proc/{pid}/maps").read_text().splitlines() if "/" in line}
    return {p for p in packages if any(f"/{p}/" in path and ".so" in path for path in paths)}


def polled(daemon: Proc, client: httpx.Client, times: int = 3) -> None:
    """Wait until the queue target has been polled successfully ``times`` times."""

    def enough() -> bool:
        s = parse(client.get(daemon.url + "/metrics").raise_for_status().text)
        return (
            s.value("inference_exporter_target_polls_total", **target(MODEL), result="success") or 0
        ) >= times

    wait_until(enough, timeout=15, what=f"{times} polls")


def stack_rss_mb(sim_url: str) -> float:
    """VmRSS of ``bench/stack.py`` (the daemon's libraries alone, polling the same queue)
    once it has idled as long as the daemon does here."""
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "bench" / "stack.py"), f"{sim_url}/v1", SIM_KEY],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        assert proc.stdout is not None
        # (Anything it may warn of before comes first, on the same pipe.)
        assert any(line.strip() == "ready" for line in proc.stdout), (
            "bench/stack.py exited before it was ready"
        )
        time.sleep(IDLE_SECONDS)
        return proc_status_mb(proc.pid, "VmRSS")
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_an_idle_daemon_with_one_queue_stays_small_and_loads_only_what_it_uses(
    tmp_path: Path, simulator: Proc
) -> None:
    config = queue_config(tmp_path, simulator.url, [MODEL])
    daemon = start_daemon(tmp_path, config, env={KEY_ENV: SIM_KEY})
    try:
        polled(daemon, httpx.Client(timeout=5))
        time.sleep(IDLE_SECONDS)
        pid = daemon.popen.pid
        rss = rss_mb(daemon)
        assert loaded(pid, "bcrypt", "cryptography", "markupsafe") == set()
        assert rss <= IDLE_RSS_MB, f"idle RSS {rss:.1f} MiB"
        libraries = stack_rss_mb(simulator.url)
        assert rss - libraries <= OWN_RSS_MB, f"idle RSS {rss:.1f} MiB, its libraries alone {libraries:.1f}"
        # The first page loads Jinja (and MarkupSafe with it); nothing else follows.
        assert httpx.get(daemon.url + "/", timeout=5).status_code == 200
        assert loaded(pid, "bcrypt", "cryptography", "markupsafe") == {"markupsafe"}
    finally:
        assert daemon.stop() == 0


def test_a_web_config_with_users_loads_bcrypt_and_not_cryptography(tmp_path: Path, simulator: Proc) -> None:
    hashed = bcrypt.hashpw(b"pw", bcrypt.gensalt(rounds=4)).decode()
    web = tmp_path / "web.yml"
    web.write_text(f"basic_auth_users:\n  prom: {hashed}\n")
    client = httpx.Client(auth=("prom", "pw"), timeout=5)
    daemon = start_daemon(
        tmp_path,
        queue_config(tmp_path, simulator.url, [MODEL]),
        env={KEY_ENV: SIM_KEY},
        extra_args=["--web.config.file", str(web)],
        client=client,
    )
    try:
        polled(daemon, client)
        assert loaded(daemon.popen.pid, "bcrypt", "cryptography") == {"bcrypt"}
    finally:
        assert daemon.stop() == 0


def test_a_web_config_with_tls_loads_cryptography(tmp_path: Path, simulator: Proc) -> None:
    ca = make_ca("idle-ca")
    cert, key = issue(ca, "server", ips=["127.0.0.1"]).write(tmp_path, "server")
    (tmp_path / "ca.crt").write_text(ca.cert_pem)
    web = tmp_path / "web.yml"
    web.write_text(f"tls_server_config:\n  cert_file: {cert}\n  key_file: {key}\n")
    client = httpx.Client(verify=ssl.create_default_context(cafile=tmp_path / "ca.crt"), timeout=5)
    daemon = start_daemon(
        tmp_path,
        queue_config(tmp_path, simulator.url, [MODEL]),
        env={KEY_ENV: SIM_KEY},
        extra_args=["--web.config.file", str(web)],
        client=client,
        scheme="https",
    )
    try:
        polled(daemon, client, times=1)
        # (cryptography brings bcrypt along, for its SSH key formats.)
        assert "cryptography" in loaded(daemon.popen.pid, "bcrypt", "cryptography")
    finally:
        assert daemon.stop() == 0
