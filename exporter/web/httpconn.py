"""One client connection of the exporter's HTTP server, as the connection guard sees it.

aiohttp's request handler is fed one whole request head at a time. Until a head has
arrived whole (its blank line), its bytes wait here, in one buffer of at most
``ConnectionLimits.max_head_bytes``: the parser never holds a partial head (which it
keeps twice over, as bytes and as text), a head that grows past the bound is answered
431 at once, and so a connection costs little more than the bytes it has sent. A head
that follows one still being answered (pipelining) waits here too, so the parser holds
at most one request at a time.

Once a request is refused, nothing more is fed to the parser: further bytes are read
and dropped until the connection closes, and the parser's error loses its traceback
(whose frame would otherwise keep the chunk read alive in a reference cycle until the
next full garbage collection).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from enum import Enum
from typing import Any, Protocol

from aiohttp.streams import EMPTY_PAYLOAD
from aiohttp.web_protocol import RequestHandler

# The end of a request head: an empty line (CRLF, or a bare LF, which parsers accept).
_HEAD_END = re.compile(rb"\r?\n\r?\n")
# Bytes no request head holds (control characters but tab, CR and LF): a TLS handshake
# or other binary sent to the plain-HTTP port. Such a head goes to the parser at once,
# for its 400, rather than waiting for a blank line that may never come.
_NOT_HTTP = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
# Sent when a head grows past the bound: no parser has seen it, so it is answered here.
HEAD_TOO_LARGE = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Length: 41\r\n"
    b"Connection: close\r\n\r\n"
    b"431 Request Header Fields Too Large: sent\n"
)


class State(Enum):
    """Where a connection stands, which decides the deadline it has."""

    HEAD = "head"  # a request head is expected or arriving: the header timeout runs
    BUSY = "busy"  # a request is being answered: no deadline but the send timeout
    IDLE = "idle"  # keep-alive, between requests: the idle timeout runs
    REFUSED = "refused"  # answered with an error, closing: a short grace, then abort


class Watcher(Protocol):
    """What a connection tells the guard that watches it."""

    @property
    def max_head_bytes(self) -> int: ...

    def admit(self, conn: Connection) -> bool: ...

    def release(self, conn: Connection) -> None: ...

    def closing(self, conn: Connection, reason: str) -> None: ...


class Connection(asyncio.Protocol):
    """aiohttp's request handler for one connection, fed whole heads and watched."""

    def __init__(self, inner: RequestHandler, guard: Watcher, clock: Callable[[], float] = time.monotonic):
        self.inner = inner
        self.guard = guard
        self.clock = clock
        self.transport: asyncio.Transport | None = None
        self.peer = ""
        self.state = State.HEAD
        self.since = clock()  # when the current state began
        self.send_stalled_since: float | None = None  # writes paused: the client reads nothing
        self._held = bytearray()  # bytes the parser has not seen yet
        self._scanned = 0  # how far ``_held`` is known to hold no end of a head
        self._body_left = 0  # bytes of the current request's body, fed as they come
        self._body_stream: Any = None  # a chunked body: fed as it comes until its end is parsed
        self._paused = False  # reading paused here (pipelined heads waiting)
        self._in_guard = False  # counted among the guard's open connections

    # --- asyncio.Protocol --------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.since = self.clock()
        self.transport = transport
        if not self.guard.admit(self):
            self.transport = None
            transport.abort()
            return
        self._in_guard = True
        self.inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if self.transport is None or self.state is State.REFUSED:
            return  # refused or closing: read and dropped, never parsed
        if self.state is State.IDLE:
            self._enter(State.HEAD)
        if self._body_left or self._body_stream is not None:
            data = self._feed_body(data)
            if not data:
                return
        self._held += data
        self._advance()

    def eof_received(self) -> bool | None:
        if self.transport is not None and self.state is State.REFUSED:
            self.transport.abort()  # the client has read its answer and is done
        elif self.transport is not None:
            self.inner.eof_received()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self._leave_guard()
        if self.transport is not None:
            self.transport = None
            self.inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self.send_stalled_since = self.clock()
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.send_stalled_since = None
        if self.state is State.IDLE:
            self.since = self.clock()  # a response still being sent is not idleness
        self.inner.resume_writing()

    # --- what the guard calls ------------------------------------------------------------

    def request_started(self) -> None:
        if self.state is not State.REFUSED:
            self._enter(State.BUSY)

    def request_done(self) -> None:
        """The handler has answered: the next head, if one is waiting, goes to the parser."""
        if self.state is not State.BUSY:
            return
        self._enter(State.IDLE)
        if self._held:
            self._enter(State.HEAD)
            # aiohttp may not have written an error answer yet: a head refused now is
            # not answered here, lest the answers cross.
            self._advance(answer_refusal=False)
        if self._paused and self.transport is not None and self.state is not State.BUSY:
            self._paused = False
            self.transport.resume_reading()

    def close(self, reason: str) -> None:
        """Close for a limit: counted once, and its slot is free at once."""
        transport = self.transport
        if transport is None or not self._in_guard:
            return
        self.guard.closing(self, reason)
        self._leave_guard()
        if reason == "idle_timeout":
            transport.close()
        else:
            transport.abort()

    def abort(self) -> None:
        """Drop a refused connection whose client has not gone by itself."""
        self._leave_guard()
        if self.transport is not None:
            self.transport.abort()

    @property
    def evictable(self) -> bool:
        """Holding a slot without a request being answered: silent, unfinished or idle."""
        return self._in_guard and self.state in (State.HEAD, State.IDLE)

    # --- feeding the parser ----------------------------------------------------------------

    def _leave_guard(self) -> None:
        self._held.clear()
        if self._in_guard:
            self._in_guard = False
            self.guard.release(self)

    def _enter(self, state: State) -> None:
        self.state, self.since = state, self.clock()

    def _advance(self, answer_refusal: bool = True) -> None:
        limit = self.guard.max_head_bytes
        while self._held and self.state is State.HEAD:
            if self._held[0] in _BLANK:
                # Blank lines between requests, as parsers allow.
                del self._held[: len(self._held) - len(self._held.lstrip(_BLANK))]
                self._scanned = 0
                continue
            # Only the bytes not scanned yet (and the 3 before them) are searched, so a
            # head sent a byte at a time costs no more to scan than one sent at once.
            end = _HEAD_END.search(self._held, max(0, self._scanned - 3), limit)
            if _NOT_HTTP.search(self._held, self._scanned, end.end() if end else limit):
                self._feed_malformed()
                return
            if end is None:
                self._scanned = len(self._held)
                if len(self._held) >= limit and answer_refusal:
                    self._refuse_head()
                elif len(self._held) >= limit:
                    self.close("header_too_large")
                return
            head = bytes(self._held[: end.end()])
            del self._held[: end.end()]
            self._scanned = 0
            self._feed_head(head)
        if self.state is State.BUSY and len(self._held) > limit and self.transport is not None:
            if len(self._held) > 2 * limit:
                self.close("header_too_large")  # read on regardless: a flood, not pipelining
                return
            # More pipelined requests than a head's worth: read on once this one is answered.
            self._paused = True
            self.transport.pause_reading()

    def _feed_malformed(self) -> None:
        head = bytes(self._held[: self.guard.max_head_bytes])
        self._held.clear()
        self._scanned = 0
        self._feed_head(head)
        if self.state is State.HEAD:
            self.close("malformed")  # the parser took it in without a word: not worth waiting for

    def _feed_head(self, head: bytes) -> None:
        parsed = self._feed(head)
        if parsed is None:
            return  # refused, or nothing parsed (the handler is closing)
        message, payload = parsed
        self._enter(State.BUSY)
        if payload is EMPTY_PAYLOAD or payload.is_eof():
            return
        length = message.headers.get("Content-Length", "")
        if not message.chunked and length.isdigit():
            self._body_left = int(length)
        else:
            self._body_stream = payload
        rest = self._feed_body(bytes(self._held))
        self._held.clear()
        self._held += rest

    def _feed_body(self, data: bytes) -> bytes:
        """Feed what belongs to the current request's body; return what follows it."""
        if self._body_stream is not None:
            # Where a chunked body ends only the parser knows: the bytes after it in
            # this read go to the parser with it.
            self._feed(data)
            if self._body_stream is not None and self._body_stream.is_eof():
                self._body_stream = None
            return b""
        take = min(self._body_left, len(data))
        if take:
            self._feed(data[:take])
            self._body_left -= take
        return data[take:]

    def _feed(self, data: bytes) -> tuple[Any, Any] | None:
        """Give the parser ``data``; the request it completed (with its body's stream),
        if one, and not an error."""
        queue = getattr(self.inner, "_messages", None)
        before = len(queue) if queue is not None else 0
        self.inner.data_received(data)
        if queue is None or len(queue) == before:
            return None
        message, payload = queue[-1]
        error = getattr(message, "exc", None)
        if isinstance(error, BaseException):
            self._refused(error)
            return None
        return message, payload

    def _refused(self, error: BaseException) -> None:
        # The parser's error keeps the frame that fed it (and the bytes fed) alive
        # through its traceback, in a cycle with the queued error: cut it here.
        error.__traceback__ = None
        self._held.clear()
        self._body_left, self._body_stream = 0, None
        self._enter(State.REFUSED)
        self.guard.closing(self, "malformed")

    def _refuse_head(self) -> None:
        self._held.clear()
        self._enter(State.REFUSED)
        self.guard.closing(self, "header_too_large")
        transport = self.transport
        if transport is None:
            return
        transport.write(HEAD_TOO_LARGE)
        if transport.can_write_eof():
            transport.write_eof()  # the client reads the answer, then sees the end
        else:
            transport.close()


_BLANK = b"\r\n"
