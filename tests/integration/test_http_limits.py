"""The daemon's HTTP server against clients that never finish, never speak, or speak nonsense."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.helpers import Proc, parse, wait_until
from tests.integration.hostile import connect_from, idle_daemon, rss_mb

LIMIT_ARGS = ["--web.read-timeout", "1s", "--web.max-connections", "40"]


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Proc]:
    with idle_daemon(tmp_path, *LIMIT_ARGS) as proc:
        yield proc


def connect(proc: Proc, source: str = "127.0.0.1") -> socket.socket:
    return connect_from(proc.url, source)


def closed_by_server(sock: socket.socket, within: float) -> bool:
    """True if the server closes ``sock`` within ``within`` seconds (any bytes it sends first are read)."""
    sock.settimeout(within)
    end = time.monotonic() + within
    try:
        while time.monotonic() < end:
            if not sock.recv(65536):
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except TimeoutError:
        return False
    return False


def test_unfinished_requests_are_closed_and_hold_little_memory(daemon: Proc) -> None:
    before = rss_mb(daemon)
    socks = []
    for _ in range(120):
        try:
            sock = connect(daemon)
            # A request that keeps sending headers and never the blank line.
            sock.sendall(
                b"GET /metrics HTTP/1.1\r\nHost: x\r\n"
                + b"".join(b"X-%d: %s\r\n" % (i, b"a" * 8000) for i in range(30))
            )
            socks.append(sock)
        except OSError:
            pass  # refused past the connection cap: what it is for
    grown = rss_mb(daemon) - before
    assert grown < 80, f"{grown:.0f} MB held by unfinished requests"
    # Every one of them is closed once the read timeout has passed.
    deadline = time.monotonic() + 4
    assert all(closed_by_server(s, max(0.1, deadline - time.monotonic())) for s in socks)
    for s in socks:
        s.close()
    assert httpx.get(daemon.url + "/-/healthy", timeout=5).status_code == 200
    assert "Traceback" not in daemon.log()


def test_silent_and_idle_connections_are_closed(daemon: Proc) -> None:
    silent = [connect(daemon) for _ in range(5)]
    assert all(closed_by_server(s, 3) for s in silent)
    # A connection that sent half a request, then stopped.
    half = connect(daemon)
    half.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
    assert closed_by_server(half, 3)
    for s in [*silent, half]:
        s.close()


def test_connections_past_a_peers_share_are_closed_at_once(daemon: Proc) -> None:
    """One client address may hold half of --web.max-connections (40 here)."""
    held = [connect(daemon, "127.0.0.2") for _ in range(20)]
    time.sleep(0.2)
    extra = connect(daemon, "127.0.0.2")
    t0 = time.monotonic()
    assert closed_by_server(extra, 0.8)
    assert time.monotonic() - t0 < 0.8
    assert not closed_by_server(held[0], 0.1)
    # Another address still gets in, and is served.
    other = connect(daemon, "127.0.0.3")
    other.sendall(b"GET /-/healthy HTTP/1.1\r\nHost: x\r\n\r\n")
    assert other.recv(100).startswith(b"HTTP/1.1 200")
    for s in [*held, extra, other]:
        s.close()
    # Once they are gone, scrapes are served again.
    wait_until(
        lambda: httpx.get(daemon.url + "/metrics", timeout=2).status_code == 200, timeout=5, what="scrape"
    )


def test_too_many_or_too_long_headers_get_400(daemon: Proc) -> None:
    many = {f"X-{i}": "1" for i in range(40)}
    assert httpx.get(daemon.url + "/-/healthy", headers=many, timeout=5).status_code == 400
    long = {"X-Long": "a" * 9000}
    assert httpx.get(daemon.url + "/-/healthy", headers=long, timeout=5).status_code == 400


def test_malformed_requests_do_not_flood_the_log(daemon: Proc) -> None:
    size = len(daemon.log())
    for _ in range(200):
        sock = connect(daemon)
        sock.sendall(b"GARBAGE / HTTP/1.1\r\n\r\n")
        assert sock.recv(100).startswith(b"HTTP/1.")  # a 400, at once
        sock.close()
    new = daemon.log()[size:]
    assert "Traceback" not in new
    assert "level=error" not in new
    # One rate-limited debug line at most (the daemon runs at debug level here).
    notes = [line for line in new.splitlines() if "connection closed" in line]
    assert 1 <= len(notes) <= 2 and "reason=malformed" in notes[0]
    assert (
        parse(httpx.get(daemon.url + "/metrics", timeout=5).text).value(
            "inference_exporter_http_connections_closed_total", reason="malformed"
        )
        == 200
    )
