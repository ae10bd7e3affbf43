"""Basic auth against bcrypt hashes, and the request rate limit, as exporter-toolkit does them.

bcrypt is slow on purpose (tens of milliseconds at cost 10, seconds at cost 18), which
makes it a lever for anyone who can reach the port. So:

- only successful checks are cached (a bounded LRU keyed by a keyed digest of user,
  hash and password, never the password itself): a flood of wrong guesses cannot
  evict the scraper's entry, and an authorised scrape stays a dictionary lookup;
- uncached checks run on one worker thread with a short queue; when the queue is
  full a request is refused at once (503) instead of waiting behind the guesses;
- an unknown user is checked against a dummy hash of the highest cost configured, so
  the time of an answer does not tell which user names exist (users of different
  costs can still be told apart by cost: give them all the same one).
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
from concurrent.futures import ThreadPoolExecutor

import bcrypt

from exporter.webconfig.model import bcrypt_cost

# bcrypt (as Go's, which exporter-toolkit uses) only reads the first 72 bytes of a password.
BCRYPT_MAX_PASSWORD = 72
# Successful checks remembered; far more than the users and passwords of a real setup.
CACHE_ENTRIES = 256
# Uncached checks at once: one thread, like exporter-toolkit's lock, leaves the other
# cores to scrapes; and how many may wait for it before new ones are refused.
BCRYPT_WORKERS = 1
BCRYPT_QUEUE = 8
_B64 = "./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


class Verdict(enum.Enum):
    OK = "ok"
    DENIED = "denied"
    BUSY = "busy"


def dummy_hash(cost: int) -> bytes:
    """A well-formed bcrypt hash of the given cost that no password matches (random digest)."""
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


def _checkpw(password: bytes, hashed: bytes) -> bool:
    try:
        return bcrypt.checkpw(password[:BCRYPT_MAX_PASSWORD], hashed)
    except ValueError:  # e.g. a NUL byte some bcrypt builds refuse: not a match
        return False


class BasicAuth:
    """Checks ``Authorization: Basic`` headers against the configured users."""

    def __init__(self, users: dict[str, str]) -> None:
        self._key = secrets.token_bytes(32)
        self._ok: OrderedDict[bytes, None] = OrderedDict()
        self._pool = ThreadPoolExecutor(max_workers=BCRYPT_WORKERS, thread_name_prefix="bcrypt")
        self._admitted = 0
        self.users: dict[bytes, bytes] = {}
        self._dummy = b""
        self.set_users(users)

    def set_users(self, users: dict[str, str]) -> None:
        """Replace the users (hashes already validated); cached verdicts of the old ones are dropped."""
        self.users = {u.encode(): h.encode() for u, h in users.items()}
        cost = max((bcrypt_cost(h) for h in users.values()), default=4)
        self._dummy = dummy_hash(cost)
        self._ok.clear()

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

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
        if self._admitted >= BCRYPT_WORKERS + BCRYPT_QUEUE:
            return Verdict.BUSY
        self._admitted += 1
        try:
            loop = asyncio.get_running_loop()
            ok = await loop.run_in_executor(self._pool, _checkpw, password, hashed or self._dummy)
        finally:
            self._admitted -= 1
        if not ok or hashed is None or self.users.get(user) != hashed:
            return Verdict.DENIED
        self._ok[digest] = None
        while len(self._ok) > CACHE_ENTRIES:
            self._ok.popitem(last=False)
        return Verdict.OK


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
