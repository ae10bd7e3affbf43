"""A lane of bcrypt checks: one daemon thread working through a bounded queue.

The thread is a daemon and nothing joins it: a check of a cost-18 hash takes seconds,
and neither a shutdown nor the interpreter's exit may wait for it. Results reach the
event loop through ``call_soon_threadsafe``; a result for a loop already closed is
dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import deque
from dataclasses import dataclass

import bcrypt

from exporter.webconfig.model import bcrypt_cost

# bcrypt (as Go's, which exporter-toolkit uses) only reads the first 72 bytes of a password.
BCRYPT_MAX_PASSWORD = 72
# Weight of the latest check in the running estimate of a check's duration.
_SMOOTHING = 0.3


def checkpw(password: bytes, hashed: bytes) -> bool:
    try:
        return bcrypt.checkpw(password[:BCRYPT_MAX_PASSWORD], hashed)
    except ValueError:  # e.g. a NUL byte some bcrypt builds refuse: not a match
        return False


def seconds_per_round(hashed: bytes) -> float:
    """How long one of the 2**cost rounds of a check takes here, timed on ``hashed`` (use a cheap one)."""
    started = time.perf_counter()
    checkpw(b"", hashed)
    return (time.perf_counter() - started) / (1 << bcrypt_cost(hashed.decode()))


@dataclass
class _Job:
    password: bytes
    hashed: bytes
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[bool]


class CheckLane:
    """Checks passwords one at a time, in order; at most ``room`` wait, more are refused."""

    def __init__(self, name: str, room: int, per_round: float) -> None:
        self.name = name
        self.room = room
        # Seconds per bcrypt round on this machine, as the checks measure it.
        self.per_round = per_round
        self._jobs: deque[_Job] = deque()
        self._cond = threading.Condition()
        self._closed = False
        self._thread: threading.Thread | None = None

    def submit(self, password: bytes, hashed: bytes) -> asyncio.Future[bool] | None:
        """A future of the check's result, or None if ``room`` checks are already waiting."""
        loop = asyncio.get_running_loop()
        with self._cond:
            if self._closed or len(self._jobs) >= self.room:
                return None
            job = _Job(password, hashed, loop, loop.create_future())
            self._jobs.append(job)
            if self._thread is None:
                self._thread = threading.Thread(target=self._work, name=f"bcrypt-{self.name}", daemon=True)
                self._thread.start()
            self._cond.notify()
        return job.future

    def withdraw(self, future: asyncio.Future[bool]) -> None:
        """Drop the check of ``future`` if it has not started (its answer is no longer needed)."""
        with self._cond:
            for job in self._jobs:
                if job.future is future:
                    self._jobs.remove(job)
                    break
        future.cancel()

    def close(self) -> None:
        """Refuse new checks, drop the waiting ones; a check in progress is abandoned, not awaited."""
        with self._cond:
            self._closed = True
            dropped = list(self._jobs)
            self._jobs.clear()
            self._cond.notify()
        for job in dropped:
            _deliver(job, None)

    def _work(self) -> None:
        while True:
            with self._cond:
                while not self._jobs and not self._closed:
                    self._cond.wait()
                if self._closed:
                    return
                job = self._jobs.popleft()
            started = time.perf_counter()
            ok = checkpw(job.password, job.hashed)
            took = (time.perf_counter() - started) / (1 << bcrypt_cost(job.hashed.decode()))
            self.per_round += _SMOOTHING * (took - self.per_round)
            _deliver(job, ok)


def _deliver(job: _Job, ok: bool | None) -> None:
    def settle() -> None:
        if job.future.done():
            return
        if ok is None:
            job.future.cancel()
        else:
            job.future.set_result(ok)

    with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits for this answer
        job.loop.call_soon_threadsafe(settle)
