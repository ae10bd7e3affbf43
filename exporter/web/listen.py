"""Listen addresses: reading ``--web.listen-address``, naming what was bound, and saying
in one line why an address could not be bound.

Kept free of the HTTP stack, so that the command line can check an address before
anything starts.
"""

from __future__ import annotations

import errno
import os
import socket
from collections.abc import Iterable, Sequence
from typing import Any

WILDCARDS = ("0.0.0.0", "::", "")


def parse_listen_address(value: str) -> tuple[str, int]:
    """``host:port``, ``:port`` or ``[v6]:port`` → (host, port); an empty host is every IPv4 address."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"invalid listen address {value!r}: expected HOST:PORT")
    host = host.strip("[]") or "0.0.0.0"
    return host, int(port)


def format_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def bound_addresses(socknames: Iterable[Sequence[Any]]) -> list[str]:
    """The addresses a server really listens on (port 0 resolved), from its sockets' names."""
    return [format_address(str(name[0]), int(name[1])) for name in socknames]


def browser_url(scheme: str, sockname: Sequence[Any]) -> str:
    """A URL a person on this machine can open for a server bound to ``sockname``."""
    host, port = str(sockname[0]), int(sockname[1])
    return f"{scheme}://{format_address('localhost' if host in WILDCARDS else host, port)}"


def bind_failure(exc: OSError) -> str:
    """Why an address could not be bound, in words a person can act on."""
    if isinstance(exc, socket.gaierror):
        return "the host name does not resolve to an address of this machine"
    reasons = {
        errno.EADDRINUSE: "the address is already in use (another process listens on this port)",
        errno.EADDRNOTAVAIL: "this machine has no such address",
        errno.EACCES: "permission denied (ports below 1024 need privileges)",
    }
    if exc.errno in reasons:
        return reasons[exc.errno]
    return os.strerror(exc.errno).lower() if exc.errno else str(exc)
