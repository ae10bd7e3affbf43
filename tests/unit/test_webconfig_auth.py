"""Basic auth (bcrypt, the success cache, the two lanes of checks) and the rate limit, without a server."""

from __future__ import annotations

import asyncio
import base64
import threading
import time
from collections.abc import Iterator

import bcrypt
import pytest

from exporter.web.webconfig import auth, bcryptlane
from exporter.web.webconfig.auth import BasicAuth, RateLimiter, Verdict
from exporter.web.webconfig.model import bcrypt_cost

HASH4 = bcrypt.hashpw(b"pw", bcrypt.gensalt(rounds=4)).decode()


def basic(user: str | bytes, password: str | bytes) -> str:
    u = user.encode() if isinstance(user, str) else user
    p = password.encode() if isinstance(password, str) else password
    return "Basic " + base64.b64encode(u + b":" + p).decode()


class FakeBcrypt:
    """``checkpw`` stand-in: "pw" matches at once; "held…" never matches, after ``release``;
    "slow" matches after ``release_slow``; anything else never matches, at once."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.release_slow = threading.Event()
        self.calls: list[bytes] = []

    def __call__(self, password: bytes, hashed: bytes) -> bool:
        self.calls.append(password)
        if password.startswith(b"held"):
            self.release.wait(10)
        if password == b"slow":
            self.release_slow.wait(10)
        return password in (b"pw", b"slow")


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeBcrypt]:
    checker = FakeBcrypt()
    monkeypatch.setattr(bcryptlane, "checkpw", checker)
    yield checker
    checker.release.set()
    checker.release_slow.set()


def test_basic_auth_verdicts_and_success_cache(fake: FakeBcrypt) -> None:
    basic_auth = BasicAuth({"u": HASH4})

    async def go() -> list[Verdict]:
        verdicts = [await basic_auth.check(basic("u", "pw"))]
        await asyncio.sleep(0.1)  # the other lane's check of it, if it had started, is over
        fake.calls.clear()
        verdicts += [
            await basic_auth.check(basic("u", "pw")),
            await basic_auth.check(basic("u", "wrong")),
            await basic_auth.check(basic("u", "wrong")),
            await basic_auth.check(basic("nobody", "pw")),
            await basic_auth.check("Bearer abc"),
            await basic_auth.check("Basic !!!notbase64"),
            await basic_auth.check("Basic " + base64.b64encode(b"nocolon").decode()),
            await basic_auth.check(basic(b"u\xff", b"\xfe")),
        ]
        return verdicts

    ok, denied = Verdict.OK, Verdict.DENIED
    assert asyncio.run(go()) == [ok, ok, denied, denied, denied, denied, denied, denied, denied]
    # Only the success is cached: each wrong password costs a check, the right one none (the one
    # check of "pw" is the made-up name's, against the dummy hash).
    assert fake.calls.count(b"pw") == 1 and fake.calls.count(b"wrong") >= 2 and b"\xfe" in fake.calls
    basic_auth.close()


def test_passwords_over_72_bytes_compare_their_first_72_bytes() -> None:
    password = "p" * 72 + "-the-rest-is-ignored-as-in-go"
    hashed = bcrypt.hashpw(password.encode()[:72], bcrypt.gensalt(rounds=4)).decode()
    basic_auth = BasicAuth({"long": hashed})

    async def go() -> list[Verdict]:
        return [
            await basic_auth.check(basic("long", password)),
            await basic_auth.check(basic("long", "p" * 72 + "-anything")),
            await basic_auth.check(basic("long", "p" * 71)),
            await basic_auth.check(basic("nobody", "x" * 200)),
        ]

    assert asyncio.run(go()) == [Verdict.OK, Verdict.OK, Verdict.DENIED, Verdict.DENIED]
    basic_auth.close()


def test_cache_poisoning_through_the_user_name_fails() -> None:
    # A user name that embeds a hash must not let a later check of the real user reuse its verdict.
    basic_auth = BasicAuth({"alice": HASH4})

    async def go() -> list[Verdict]:
        return [
            await basic_auth.check(basic("alice" + HASH4, "pw")),
            await basic_auth.check(basic("alice", HASH4 + "pw")),
            await basic_auth.check(basic("alice", "pw")),
        ]

    assert asyncio.run(go()) == [Verdict.DENIED, Verdict.DENIED, Verdict.OK]
    basic_auth.close()


def test_wrong_credentials_never_evict_a_cached_success(fake: FakeBcrypt) -> None:
    basic_auth = BasicAuth({"u": HASH4})

    async def go() -> None:
        assert await basic_auth.check(basic("u", "pw")) is Verdict.OK
        for i in range(3 * auth.CACHE_ENTRIES):
            assert await basic_auth.check(basic("u", f"guess{i}")) is Verdict.DENIED
            assert await basic_auth.check(basic(f"user{i}", "pw")) is Verdict.DENIED
        fake.calls.clear()
        assert await basic_auth.check(basic("u", "pw")) is Verdict.OK

    asyncio.run(go())
    assert fake.calls == []  # still cached
    basic_auth.close()


async def fill_public_lane(basic_auth: BasicAuth) -> list[asyncio.Task[Verdict]]:
    """Checks of made-up names held by the fake until it is released: one running, the queue full."""
    held = [asyncio.ensure_future(basic_auth.check(basic("nobody", "held")))]
    await asyncio.sleep(0.05)  # the first one has started
    held += [
        asyncio.ensure_future(basic_auth.check(basic(f"nobody{i}", f"held{i}")))
        for i in range(auth.PUBLIC_QUEUE)
    ]
    await asyncio.sleep(0.05)
    return held


def test_a_full_public_lane_refuses_everyone_alike_but_lets_a_right_password_in(fake: FakeBcrypt) -> None:
    basic_auth = BasicAuth({"u": HASH4, "v": HASH4})

    async def go() -> None:
        held = await fill_public_lane(basic_auth)
        unknown = asyncio.ensure_future(basic_auth.check(basic("nobody", "x")))
        wrong = asyncio.ensure_future(basic_auth.check(basic("u", "wrong")))
        # The right password gets in without waiting for the public lane.
        started = time.monotonic()
        assert await basic_auth.check(basic("v", "pw")) is Verdict.OK
        assert time.monotonic() - started < 0.5
        # A made-up name and a configured one with a wrong password (which the user lane has
        # already turned down): no answer until the public lane has moved on, then the same 503.
        await asyncio.sleep(0.2)
        assert not unknown.done() and not wrong.done()
        fake.release.set()
        done, _ = await asyncio.wait([unknown, wrong], return_when=asyncio.FIRST_COMPLETED)
        assert len(done) == 2  # released by the same finished check
        assert unknown.result() is wrong.result() is Verdict.BUSY
        assert set(await asyncio.gather(*held)) == {Verdict.DENIED}
        assert await basic_auth.check(basic("u", "after")) is Verdict.DENIED  # the lane drained

    asyncio.run(go())
    basic_auth.close()


def test_a_wrong_password_of_a_configured_user_waits_for_its_public_turn(fake: FakeBcrypt) -> None:
    basic_auth = BasicAuth({"u": HASH4})

    async def go() -> None:
        held = asyncio.ensure_future(basic_auth.check(basic("nobody", "held")))
        await asyncio.sleep(0.05)
        wrong = asyncio.ensure_future(basic_auth.check(basic("u", "wrong")))
        unknown = asyncio.ensure_future(basic_auth.check(basic("other", "wrong")))
        await asyncio.sleep(0.3)
        # The user lane has said no to "u" already; the answer still waits, as the unknown user's does.
        assert not wrong.done() and not unknown.done()
        fake.release.set()
        assert list(await asyncio.gather(held, wrong, unknown)) == [Verdict.DENIED] * 3

    asyncio.run(go())
    basic_auth.close()


def test_a_success_that_comes_after_the_503_is_remembered_for_the_retry(fake: FakeBcrypt) -> None:
    basic_auth = BasicAuth({"u": HASH4})

    async def go() -> None:
        held = await fill_public_lane(basic_auth)
        # Two scrapers with the same credentials share one check in the user lane.
        both = asyncio.gather(basic_auth.check(basic("u", "slow")), basic_auth.check(basic("u", "slow")))
        await asyncio.sleep(0.05)
        fake.release.set()  # the public lane moves on: 503 for both while their check still runs
        assert list(await both) == [Verdict.BUSY, Verdict.BUSY]
        await asyncio.gather(*held)
        fake.release_slow.set()
        await asyncio.sleep(0.2)  # the user lane's answer reaches the loop
        assert fake.calls.count(b"slow") == 1
        fake.calls.clear()
        assert await basic_auth.check(basic("u", "slow")) is Verdict.OK
        assert fake.calls == []

    asyncio.run(go())
    basic_auth.close()


def test_close_does_not_wait_for_a_check_in_progress(fake: FakeBcrypt) -> None:
    basic_auth = BasicAuth({"u": HASH4})

    async def go() -> None:
        check = asyncio.ensure_future(basic_auth.check(basic("nobody", "held")))
        await asyncio.sleep(0.05)
        started = time.monotonic()
        basic_auth.close()
        assert time.monotonic() - started < 0.1
        check.cancel()

    asyncio.run(go())
    lanes = [t for t in threading.enumerate() if t.name.startswith("bcrypt-")]
    # Daemon threads: the interpreter's exit does not wait for them either.
    assert lanes and all(t.daemon for t in lanes)


def test_close_after_the_event_loop_is_gone_drops_the_waiting_checks_quietly(fake: FakeBcrypt) -> None:
    lane = bcryptlane.CheckLane("test", room=4)

    async def go() -> None:
        # One check held by the fake, two waiting behind it, each with a waiter's callback.
        for password in (b"held", b"held1", b"held2"):
            future = lane.submit(password, HASH4.encode())
            assert future is not None
            future.add_done_callback(lambda _: None)
        await asyncio.sleep(0.05)

    asyncio.run(go())  # leaves with checks still queued on a loop that is now closed
    lane.close()  # used to raise "Event loop is closed"
    fake.release.set()


def test_unknown_users_cost_as_much_as_the_most_expensive_user(monkeypatch: pytest.MonkeyPatch) -> None:
    hash5 = bcrypt.hashpw(b"x", bcrypt.gensalt(rounds=5)).decode()
    hash6 = bcrypt.hashpw(b"x", bcrypt.gensalt(rounds=6)).decode()
    basic_auth = BasicAuth({"five": hash5, "six": hash6})
    seen: list[bytes] = []

    def fake(password: bytes, hashed: bytes) -> bool:
        seen.append(hashed)
        return False

    monkeypatch.setattr(bcryptlane, "checkpw", fake)

    async def go() -> None:
        await basic_auth.check(basic("nobody", "x"))
        await basic_auth.check(basic("else", "y"))

    asyncio.run(go())
    assert [bcrypt_cost(h.decode()) for h in seen] == [6, 6]
    assert seen[0] not in (hash5.encode(), hash6.encode())
    assert not bcrypt.checkpw(b"x", seen[0])
    basic_auth.close()


def test_rate_limiter_is_a_token_bucket(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [100.0]
    monkeypatch.setattr(time, "monotonic", lambda: now[0])
    limiter = RateLimiter(interval=1.0, burst=3)
    assert [limiter.allow() for _ in range(4)] == [True, True, True, False]
    now[0] += 1.0
    assert [limiter.allow(), limiter.allow()] == [True, False]
    now[0] += 100.0
    assert sum(limiter.allow() for _ in range(10)) == 3  # never more than the burst
    assert not RateLimiter(interval=1.0, burst=0).allow()
