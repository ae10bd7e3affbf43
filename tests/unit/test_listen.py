"""Listen addresses: parsing, naming what was bound, and why a bind failed."""

from __future__ import annotations

import errno
import socket

import pytest

from exporter.web.listen import bind_failure, bound_addresses, browser_url, parse_listen_address


@pytest.mark.parametrize(
    ("text", "parsed"),
    [(":10230", ("0.0.0.0", 10230)), ("127.0.0.1:0", ("127.0.0.1", 0)), ("[::1]:9", ("::1", 9))],
)
def test_listen_addresses(text: str, parsed: tuple[str, int]) -> None:
    assert parse_listen_address(text) == parsed


@pytest.mark.parametrize("bad", ["localhost", "h:port", "h:70000", ""])
def test_bad_listen_addresses(bad: str) -> None:
    with pytest.raises(ValueError, match="expected HOST:PORT"):
        parse_listen_address(bad)


def test_bound_addresses_and_the_url_to_open() -> None:
    assert bound_addresses([("127.0.0.1", 10230), ("::1", 10230, 0, 0)]) == ["127.0.0.1:10230", "[::1]:10230"]
    assert browser_url("http", ("127.0.0.1", 5)) == "http://127.0.0.1:5"
    assert browser_url("https", ("::1", 5, 0, 0)) == "https://[::1]:5"
    # A server on every interface is opened through this machine's own name.
    assert browser_url("http", ("0.0.0.0", 5)) == "http://localhost:5"
    assert browser_url("http", ("::", 5, 0, 0)) == "http://localhost:5"


def test_bind_failures_in_words() -> None:
    in_use = OSError(errno.EADDRINUSE, "error while attempting to bind on address: address already in use")
    assert bind_failure(in_use) == "the address is already in use (another process listens on this port)"
    assert bind_failure(OSError(errno.EADDRNOTAVAIL, "x")) == "this machine has no such address"
    assert bind_failure(OSError(errno.EACCES, "x")).startswith("permission denied")
    assert bind_failure(socket.gaierror(socket.EAI_NONAME, "x")).startswith("the host name does not resolve")
    assert bind_failure(OSError(errno.EMFILE, "x")) == "too many open files"
