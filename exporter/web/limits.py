"""Limits on the exporter's own HTTP connections (see ``httpguard``), kept apart so that
the command line can name their defaults without loading the HTTP stack."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ConnectionLimits:
    # Open connections at most; past this a new one evicts a silent, unfinished or idle
    # connection of the peer holding the most, or is closed at once if none is.
    max_connections: int = 512
    # Time to send a whole request, from connecting or from a request's first byte.
    header_timeout: float = 10.0
    # An idle keep-alive connection is closed after this long, and so is one whose
    # client reads nothing of its answer for this long.
    idle_timeout: float = 60.0
    # Request headers: how many, and how long one header or the request line may be.
    max_headers: int = 32
    max_field_size: int = 8190
    max_line_size: int = 8190
    # A request head in all (request line, headers, blank line): what an unfinished
    # head may hold. Scrapes send a few hundred bytes; a browser with cookies, a few KiB.
    max_head_bytes: int = 64 * 1024
    tls_handshake_timeout: float = 10.0

    @property
    def max_per_peer(self) -> int:
        """Connections one client address may hold: half the cap, so that no one client
        can take every slot, while a Prometheus, a proxy or a NAT in front of many
        clients still has far more than it opens."""
        return max(1, self.max_connections // 2)


DEFAULT_LIMITS = ConnectionLimits()
