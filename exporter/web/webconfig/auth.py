"""Basic auth against bcrypt hashes, and the request rate limit, as exporter-toolkit does them.

bcrypt is slow on purpose (tens of milliseconds at cost 10, seconds at cost 18), which
makes it a lever for anyone who can reach the port. So:

- only successful checks are cached (a bounded LRU keyed by a keyed digest of user,
  hash and password, never the password itself): a flood of wrong guesses cannot
  evict the scraper's entry, and an authorised scrape stays a dictionary lookup;
- every uncached check takes a place in the *public lane*: one thread, ``PUBLIC_QUEUE``
  places to wait; an unknown user is checked there against a dummy hash of the highest cost
  configured, so the time of an answer does not tell which user names exist;
- a configured user's check also runs at once in the *user lane* (one thread, at most
  one check per user waiting or running). If it succeeds the request is let in without
  waiting for its public turn; if it fails the answer waits for the public lane as an
  unknown user's would. So guesses under made-up names, however many, never keep a
  configured user out, and nothing an attacker can see depends on a name existing
  unless the password is right;
- when the public lane is full a request is refused with 503 once three more of its
  checks have finished (every request alike: a configured user's own check may let it
  in meanwhile), never at once;
- the threads are daemons: a shutdown does not wait for a check in progress.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import enum
import hashlib
import hmac
import secrets
import time
from collections import OrderedDict
from typing import Any

from exporter.web.webconfig.bcryptlane import CheckLane
from exporter.web.webconfig.model import bcrypt_cost

# Successful checks remembered; far more than the users and passwords of a real setup.
CACHE_ENTRIES = 256
# Checks that may wait in the public lane (besides the one in progress); past it, 503.
PUBLIC_QUEUE = 8
# A request that finds the public lane full gets its 503 once this many of the lane's
# checks have finished: time for a configured user's own check, which runs beside them.
BUSY_TURNS = 3
_B64 = "./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


class Verdict(enum.Enum):
    OK = "ok"
    DENIED = "denied"
    BUSY = "busy"


def dummy_hash(cost: int) -> bytes:
    """A well-formed bcrypt hash of the given cost that no password matches (random digest)."""
    import bcrypt  # only a web config with users needs it: loaded then, never at start without one

    digest = "".join(secrets.choice(_B64) for _ in range(30)) + secrets.choice(".CGKOSWaeimquy26")
    return bcrypt.gensalt(rounds=cost) + digest.encode()


def _parse(header: str) -> tuple[bytes, bytes] | None:
    """User and password of an ``Authorization: Basic`` header, as bytes (any encoding)."""
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    user, sep, password = decoded.partition(b":")
    return (user, password) if sep else None


class BasicAuth:
    """Checks ``Authorization: Basic`` headers against the configured users."""

    def __init__(self, users: dict[str, str]) -> None:
        self._key = secrets.token_bytes(32)
        self._ok: OrderedDict[bytes, None] = OrderedDict()
        self._public = CheckLane("public", PUBLIC_QUEUE)
        self._users = CheckLane("users", 0)
        # Per user, the credentials (digest) and result of the check in the user lane.
        self._checking: dict[bytes, tuple[bytes, asyncio.Future[bool]]] = {}
        self.users: dict[bytes, bytes] = {}
        self._dummy = b""
        self._install(users)

    def set_users(self, users: dict[str, str]) -> None:
        """Replace the users (hashes already validated); cached verdicts of the old ones are
        dropped. The same users keep theirs: a reload that leaves them as they were does
        not make every scraper's next request pay a bcrypt check."""
        if {u.encode(): h.encode() for u, h in users.items()} != self.users:
            self._install(users)

    def _install(self, users: dict[str, str]) -> None:
        self.users = {u.encode(): h.encode() for u, h in users.items()}
        # Without users every request is let in unchecked, and no dummy hash is needed.
        self._dummy = dummy_hash(max(bcrypt_cost(h) for h in users.values())) if users else b""
        self._users.room = max(len(users), 1)
        self._ok.clear()

    def close(self) -> None:
        self._public.close()
        self._users.close()

    def _digest(self, user: bytes, hashed: bytes, password: bytes) -> bytes:
        material = b":".join(part.hex().encode() for part in (user, hashed, password))
        return hmac.new(self._key, material, hashlib.sha256).digest()

    async def check(self, header: str) -> Verdict:
        creds = _parse(header)
        if creds is None:
            return Verdict.DENIED
        user, password = creds
        hashed = self.users.get(user)
        digest = self._digest(user, hashed or b"", password)
        if hashed is not None and digest in self._ok:
            self._ok.move_to_end(digest)
            return Verdict.OK
        public = self._public.submit(password, hashed or self._dummy)
        own = self._own_check(user, hashed, password, digest) if hashed is not None else None
        turn = public if public is not None else self._public.after(BUSY_TURNS)
        try:
            if await _first_success(own, turn) and hashed is not None:
                self._remember(user, hashed, digest)
                return Verdict.OK if self.users.get(user) == hashed else Verdict.DENIED
            return Verdict.DENIED if public is not None else Verdict.BUSY
        finally:
            if public is not None:
                self._public.withdraw(public)  # a check not started is not needed any more
            else:
                turn.cancel()

    def _own_check(
        self, user: bytes, hashed: bytes, password: bytes, digest: bytes
    ) -> asyncio.Future[bool] | None:
        """The user's check in the user lane: the one already under way for these credentials,
        a new one, or none while another password of this user is being checked there."""
        if user in self._checking:
            same, future = self._checking[user]
            return future if same == digest else None
        new = self._users.submit(password, hashed)
        if new is None:
            return None
        self._checking[user] = (digest, new)

        def done(f: asyncio.Future[bool]) -> None:
            if self._checking.get(user, (b"", None))[1] is f:
                del self._checking[user]
            # Remembered even if the request gave up meanwhile: its retry is let in at once.
            if not f.cancelled() and f.result():
                self._remember(user, hashed, digest)

        new.add_done_callback(done)
        return new

    def _remember(self, user: bytes, hashed: bytes, digest: bytes) -> None:
        if self.users.get(user) != hashed:  # the users changed meanwhile
            return
        self._ok[digest] = None
        self._ok.move_to_end(digest)
        while len(self._ok) > CACHE_ENTRIES:
            self._ok.popitem(last=False)


async def _first_success(own: asyncio.Future[bool] | None, turn: asyncio.Future[Any]) -> bool:
    """True as soon as ``own`` succeeds; else, once ``turn`` is over, whether it was a success
    (a public check's result; the end of a wait is not one)."""
    while True:
        if own is not None and own.done() and not own.cancelled() and own.result():
            return True
        if turn.done():
            return not turn.cancelled() and turn.result() is True
        waiting = [f for f in (own, turn) if f is not None and not f.done()]
        await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)


class RateLimiter:
    """A token bucket like Go's ``rate.Limiter``: ``burst`` tokens, one more every ``interval`` seconds.

    It starts full; with a burst of 0 nothing passes (as in Go). One bucket for the whole
    server, as in exporter-toolkit.
    """

    def __init__(self, interval: float, burst: int) -> None:
        self.interval = interval
        self.burst = burst
        self._tokens = float(burst)
        self._last = time.monotonic()

    def allow(self) -> bool:
        now = time.monotonic()
        self._tokens = min(float(self.burst), self._tokens + (now - self._last) / self.interval)
        self._last = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False
