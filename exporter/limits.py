"""Limits on the exporter's own HTTP connections (see ``httpguard``), kept apart so that
the command line can name their defaults without loading the HTTP stack."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ConnectionLimits:
    # Open connections at most; a new one past this is closed at once.
    max_connections: int = 512
    # Time to send a whole request, from connecting or from a request's first byte.
    header_timeout: float = 10.0
    # An idle keep-alive connection is closed after this long.
    idle_timeout: float = 60.0
    # Request headers: how many, and how long one header or the request line may be.
    max_headers: int = 32
    max_field_size: int = 8190
    max_line_size: int = 8190
    tls_handshake_timeout: float = 10.0


DEFAULT_LIMITS = ConnectionLimits()
