"""A lane of bcrypt checks: one daemon thread working through a bounded queue.

The thread is a daemon and nothing joins it: a check of a cost-18 hash takes seconds,
and neither a shutdown nor the interpreter's exit may wait for it. Results reach the
event loop through ``call_soon_threadsafe``; a result for a loop already closed is
dropped. A lane is used from one event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import deque
from dataclasses import dataclass

# bcrypt (as Go's, which exporter-toolkit uses) only reads the first 72 bytes of a password.
BCRYPT_MAX_PASSWORD = 72


def checkpw(password: bytes, hashed: bytes) -> bool:
    import bcrypt  # loaded by the first check: a daemon without basic auth never needs it

    try:
        return bcrypt.checkpw(password[:BCRYPT_MAX_PASSWORD], hashed)
    except ValueError:  # e.g. a NUL byte some bcrypt builds refuse: not a match
        return False


@dataclass
class _Job:
    password: bytes
    hashed: bytes
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[bool]


class CheckLane:
    """Checks passwords one at a time, in order; at most ``room`` wait, more are refused."""

    def __init__(self, name: str, room: int) -> None:
        self.name = name
        self.room = room
        self._jobs: deque[_Job] = deque()
        self._running = False
        self._cond = threading.Condition()
        self._closed = False
        self._thread: threading.Thread | None = None
        # On the event loop: checks finished so far, and who waits for a number of them.
        self._finished = 0
        self._watchers: list[tuple[int, asyncio.Future[None]]] = []

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

    def after(self, checks: int) -> asyncio.Future[None]:
        """Done once ``checks`` more checks have finished here, or once the lane has nothing to do.

        A measure of time that runs at the lane's own pace, however loaded the machine is.
        """
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._watchers.append((self._finished + checks, future))
        self._wake()
        return future

    def withdraw(self, future: asyncio.Future[bool]) -> None:
        """Drop the check of ``future`` if it has not started (its answer is no longer needed)."""
        with self._cond:
            for job in self._jobs:
                if job.future is future:
                    self._jobs.remove(job)
                    break
        future.cancel()
        self._wake()

    def close(self) -> None:
        """Refuse new checks, drop the waiting ones; a check in progress is abandoned, not awaited."""
        with self._cond:
            self._closed = True
            dropped = list(self._jobs)
            self._jobs.clear()
            self._cond.notify()
        for job in dropped:
            if not job.future.get_loop().is_closed():  # a loop already gone has nobody waiting
                job.future.cancel()
        self._wake()

    def _idle(self) -> bool:
        with self._cond:
            return self._closed or not (self._jobs or self._running)

    def _wake(self) -> None:
        idle = self._idle()
        waiting = []
        for target, future in self._watchers:
            if future.done() or future.get_loop().is_closed():
                continue
            if idle or self._finished >= target:
                future.set_result(None)
            else:
                waiting.append((target, future))
        self._watchers = waiting

    def _work(self) -> None:
        while True:
            with self._cond:
                while not self._jobs and not self._closed:
                    self._cond.wait()
                if self._closed:
                    return
                job = self._jobs.popleft()
                self._running = True
            ok = checkpw(job.password, job.hashed)
            with self._cond:
                self._running = False

            def settle(job: _Job = job, ok: bool = ok) -> None:
                if not job.future.done():
                    job.future.set_result(ok)
                self._finished += 1
                self._wake()

            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits for this answer
                job.loop.call_soon_threadsafe(settle)
