"""The connection guard's policy: per-peer shares, eviction, deadlines and their counters.

Connections here are the guard's own, around a stand-in for aiohttp's handler and a
transport that only records what is done to it; the clock is a number the test moves.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import replace
from typing import Any, cast

import pytest
from aiohttp.web_protocol import RequestHandler
from prometheus_client import CollectorRegistry

from exporter.web.httpconn import Connection, State
from exporter.web.httpguard import REFUSED_GRACE, ConnectionGuard, peer_of
from exporter.web.limits import DEFAULT_LIMITS
from tests.helpers import counted, counts

LIMITS = replace(DEFAULT_LIMITS, max_connections=6, header_timeout=10.0, idle_timeout=60.0)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FakeTransport(asyncio.Transport):
    def __init__(self, host: str) -> None:
        super().__init__()
        self.host = host
        self.aborted = False
        self.closed = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return (self.host, 40000) if name == "peername" else default

    def abort(self) -> None:
        self.aborted = True

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.aborted or self.closed


class FakeHandler:
    """What a connection asks of aiohttp's handler."""

    def __init__(self) -> None:
        self._messages: deque[Any] = deque()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        pass

    def connection_lost(self, exc: BaseException | None) -> None:
        pass

    def data_received(self, data: bytes) -> None:
        pass

    def pause_writing(self) -> None:
        pass

    def resume_writing(self) -> None:
        pass


def connect(guard: ConnectionGuard, host: str, clock: Clock) -> tuple[Connection, FakeTransport]:
    conn = Connection(cast(RequestHandler, FakeHandler()), guard, clock)
    transport = FakeTransport(host)
    conn.connection_made(transport)
    return conn, transport


def test_a_peer_holds_at_most_half_the_cap() -> None:
    clock = Clock()
    guard = ConnectionGuard(LIMITS, clock=clock)
    held = [connect(guard, "10.0.0.1", clock) for _ in range(4)]
    assert [t.aborted for _, t in held] == [False, False, False, True]
    assert counts(guard.stats.refusals) == {("peer_share",): 1, ("capacity",): 0}
    assert not connect(guard, "10.0.0.2", clock)[1].aborted  # another peer has its own share
    held[0][0].connection_lost(None)  # one goes away: its slot is the peer's again
    assert not connect(guard, "10.0.0.1", clock)[1].aborted
    assert connect(guard, "10.0.0.1", clock)[1].aborted


def test_a_full_server_evicts_the_oldest_idle_or_unfinished_connection_of_the_heaviest_peer() -> None:
    clock = Clock()
    guard = ConnectionGuard(LIMITS, clock=clock)
    a = [connect(guard, "10.0.0.1", clock) for _ in range(3)]
    clock.now += 1
    b = [connect(guard, "10.0.0.2", clock) for _ in range(2)]
    c = connect(guard, "10.0.0.3", clock)
    a[0][0].state = State.BUSY  # answering a request: never evicted
    clock.now += 1
    _, transport = connect(guard, "10.0.0.4", clock)
    assert not transport.aborted
    # The heaviest peer is 10.0.0.1; its oldest connection not busy is the second one.
    assert [t.aborted for _, t in a] == [False, True, False]
    assert not any(t.aborted for _, t in [*b, c])
    assert counted(guard.stats.closes, reason="evicted") == 1
    # The evicted connection's slot went back to its peer: with room made, it may open one more.
    b[0][0].connection_lost(None)
    assert not connect(guard, "10.0.0.1", clock)[1].aborted
    assert counts(guard.stats.refusals) == {("peer_share",): 0, ("capacity",): 0}


def test_a_full_server_of_busy_connections_refuses_the_next() -> None:
    clock = Clock()
    guard = ConnectionGuard(LIMITS, clock=clock)
    for host in ("10.0.0.1", "10.0.0.2"):
        for _ in range(3):
            connect(guard, host, clock)[0].state = State.BUSY
    assert connect(guard, "10.0.0.3", clock)[1].aborted
    assert not guard.has_room()
    assert counts(guard.stats.refusals) == {("peer_share",): 0, ("capacity",): 2}


def test_overdue_connections_are_closed_with_their_reason() -> None:
    clock = Clock()
    registry = CollectorRegistry()
    guard = ConnectionGuard(LIMITS, registry, clock=clock)
    _, silent_t = connect(guard, "10.0.0.1", clock)
    idle, idle_t = connect(guard, "10.0.0.2", clock)
    idle.state = State.IDLE
    stalled, stalled_t = connect(guard, "10.0.0.3", clock)
    stalled.state = State.BUSY
    stalled.pause_writing()
    refused, refused_t = connect(guard, "10.0.0.4", clock)
    refused.state = State.REFUSED

    clock.now += REFUSED_GRACE + 0.1
    guard.close_overdue(clock.now)
    assert refused_t.aborted and not silent_t.aborted
    clock.now += LIMITS.header_timeout
    guard.close_overdue(clock.now)
    assert silent_t.aborted and not idle_t.closed
    clock.now += LIMITS.idle_timeout
    guard.close_overdue(clock.now)
    assert idle_t.closed and not idle_t.aborted  # an idle connection is closed gracefully
    assert stalled_t.aborted
    for reason in ("header_timeout", "idle_timeout", "send_timeout"):
        value = registry.get_sample_value(
            "inference_exporter_http_connections_closed_total", {"reason": reason}
        )
        assert value == 1, reason
    assert registry.get_sample_value("inference_exporter_http_connections_open") == 0
    assert (
        registry.get_sample_value("inference_exporter_http_connections_closed_total", {"reason": "evicted"})
        == 0
    )


def test_a_client_reading_its_answer_slowly_is_not_cut_off() -> None:
    clock = Clock()
    guard = ConnectionGuard(LIMITS, clock=clock)
    conn, transport = connect(guard, "10.0.0.1", clock)
    conn.state = State.BUSY
    for _ in range(5):
        conn.pause_writing()
        clock.now += LIMITS.idle_timeout * 0.9
        conn.resume_writing()  # it read a little: progress
        guard.close_overdue(clock.now)
    assert not transport.aborted


@pytest.mark.parametrize(
    ("host", "peer"),
    [
        ("192.0.2.7", "192.0.2.7"),
        ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:bbbb::9", "2001:db8:1:2::/64"),
        ("::ffff:192.0.2.7", "192.0.2.7"),
        ("fe80::1%eth0", "fe80::/64"),
    ],
)
def test_peers_are_addresses_and_ipv6_networks(host: str, peer: str) -> None:
    assert peer_of(FakeTransport(host)) == peer
