"""No one client can take every connection slot of the daemon's server.

The attackers connect from 127.0.0.2 and 127.0.0.3 and hold every silent connection
they can, reopening each one the server closes; the scraper scrapes from 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.helpers import Proc, parse
from tests.integration.hostile import SilentHolder, background_loop, idle_daemon, outcomes

# Sockets time out fast, so the attackers reopen them all through the test.
ARGS = ["--web.read-timeout", "2s", "--web.max-connections", "200"]


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Proc]:
    with idle_daemon(tmp_path, *ARGS) as proc:
        yield proc


def scrape_from(url: str, source: str) -> str:
    transport = httpx.HTTPTransport(local_address=source, retries=0)
    try:
        with httpx.Client(transport=transport, timeout=2) as client:
            return str(client.get(url + "/metrics").status_code)
    except httpx.HTTPError as exc:
        return type(exc).__name__


@pytest.mark.integration
@pytest.mark.parametrize(
    "attackers",
    [{"127.0.0.2": 220}, {"127.0.0.2": 120, "127.0.0.3": 120}],
    ids=["one-peer-past-the-cap", "two-peers-fill-the-cap"],
)
def test_a_peer_holding_all_it_can_leaves_room_for_scrapes(daemon: Proc, attackers: dict[str, int]) -> None:
    """One attacker is held to its share; two fill the cap between them, and a scrape's
    connection evicts the oldest silent one of the peer holding the most."""
    seconds = 12.0
    holders = [SilentHolder(daemon.url, a, sockets=n) for a, n in attackers.items()]

    async def attack_all() -> None:
        await asyncio.gather(*(h.run(seconds) for h in holders))

    with background_loop() as loop:
        attack = asyncio.run_coroutine_threadsafe(attack_all(), loop.loop)
        time.sleep(2.0)  # the attackers are at their peak
        results: list[str] = []
        while not attack.done():
            results.append(scrape_from(daemon.url, "127.0.0.1"))
            time.sleep(0.2)
        attack.result(10)
    scrapes = results[:-3]  # the last ones may run after the attack
    ok = scrapes.count("200")
    assert len(scrapes) >= 20
    assert ok >= 0.95 * len(scrapes), f"{ok} of {len(scrapes)} scrapes succeeded ({outcomes(scrapes)})"
    assert all(h.connects > h.sockets for h in holders), "the attackers did not reopen their sockets"

    own = parse(httpx.get(daemon.url + "/metrics", timeout=5).text)
    refused = own.value("inference_exporter_http_connections_refused_total", reason="peer_share")
    timed_out = own.value("inference_exporter_http_connections_closed_total", reason="header_timeout")
    assert refused is not None and refused > 0
    assert timed_out is not None and timed_out > 0
    if len(attackers) > 1:
        evicted = own.value("inference_exporter_http_connections_closed_total", reason="evicted")
        assert evicted is not None and evicted > 0
