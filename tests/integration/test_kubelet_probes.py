"""What a kubelet's probes get from the exporter with a web config: an httpGet probe sends no
credentials and presents no client certificate (its headers are literal text in the pod
spec), and does not verify the server's certificate; a tcpSocket probe only connects.

Basic auth applies to every path, /-/healthy and /-/ready included, as in
exporter-toolkit, so the chart and the kustomize docs switch to tcpSocket probes when it
is on (deploy/kubernetes/README.md, "Probes").
"""

from __future__ import annotations

import socket
import time
from pathlib import Path

import bcrypt
import httpx

from tests.integration.live_web import client_context, get, live
from tests.pki import issue, make_ca

AUTH = ("prometheus", "scrape-pass")
USERS = f"basic_auth_users:\n  {AUTH[0]}: {bcrypt.hashpw(AUTH[1].encode(), bcrypt.gensalt(4)).decode()}\n"


def tcp_probe(port: int) -> bool:
    """What the kubelet's tcpSocket probe does: connect, then close without a byte."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            return True
    except OSError:
        return False


def refusals(base: str, reason: str) -> float:
    """inference_exporter_web_refusals_total{reason}, read with the scraper's credentials."""
    text = get(f"{base}/metrics", client_context(), auth=AUTH).text
    line = f'inference_exporter_web_refusals_total{{reason="{reason}"}} '
    return next(float(row.removeprefix(line)) for row in text.splitlines() if row.startswith(line))


def settled(base: str, reason: str, expected: float) -> float:
    """The counter once the server has seen the probe's connection end (bounded wait)."""
    deadline = time.monotonic() + 5
    value = refusals(base, reason)
    while value < expected and time.monotonic() < deadline:
        time.sleep(0.05)
        value = refusals(base, reason)
    return value


def test_basic_auth_refuses_httpget_probes_and_tcp_probes_pass(tmp_path: Path) -> None:
    web = tmp_path / "web.yml"
    web.write_text(USERS)
    with live(tmp_path, web) as s:
        # The shipped httpGet probes, as the kubelet sends them: 401, the pod never ready.
        assert get(f"{s.http}/-/healthy").status_code == 401
        assert get(f"{s.http}/-/ready").status_code == 401
        assert get(f"{s.http}/-/ready", auth=AUTH).status_code == 200
        before = refusals(s.http, "unauthorized")
        assert tcp_probe(s.port)
        # A connection that sends nothing is no request: nothing refused, nothing counted.
        time.sleep(0.2)
        assert refusals(s.http, "unauthorized") == before


def test_tls_without_client_auth_serves_httpget_probes(tmp_path: Path) -> None:
    ca = make_ca("probe-ca")
    issue(ca, "server", ips=["127.0.0.1"]).write(tmp_path, "server")
    web = tmp_path / "web.yml"
    web.write_text("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n")
    # The kubelet's HTTPS probe does not verify the certificate.
    with live(tmp_path, web) as s, httpx.Client(verify=False, timeout=5) as kubelet:
        assert kubelet.get(f"{s.https}/-/healthy").status_code == 200
        assert kubelet.get(f"{s.https}/-/ready").status_code == 200


def test_tcp_probe_on_the_tls_port_counts_as_a_failed_handshake(tmp_path: Path) -> None:
    ca = make_ca("probe-ca")
    issue(ca, "server", ips=["127.0.0.1"]).write(tmp_path, "server")
    web = tmp_path / "web.yml"
    web.write_text("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n" + USERS)
    with live(tmp_path, web) as s:
        with httpx.Client(verify=False, timeout=5) as kubelet:
            assert kubelet.get(f"{s.https}/-/healthy").status_code == 401
        before = refusals(s.https, "tls_handshake")
        assert tcp_probe(s.port)
        # Documented: one tls_handshake refusal per tcpSocket probe on a TLS port.
        assert settled(s.https, "tls_handshake", before + 1) == before + 1
