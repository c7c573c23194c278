"""RedisRateLimiter against the real Redis server: one budget shared by several processes.

Starts are counted where they land: after each ``acquire()`` the caller runs a tiny Lua
script that appends the Redis server's own ``TIME`` to a list, so every window is measured
on one clock, at the receiving end, whatever the processes' clocks say.
"""

from __future__ import annotations

import asyncio
import bisect
import multiprocessing
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis.asyncio as redis_asyncio

import smsgate
from smsgate.dispatch import RateLimiter
from smsgate.redis import RedisRateLimiter
from smsgate.testing import FakeGateway
from tests._services import redis_url

# Append the server's clock (seconds, as a string with microseconds) to KEYS[1].
_STAMP = """
local t = redis.call('TIME')
redis.call('RPUSH', KEYS[1], t[1] .. '.' .. string.format('%06d', tonumber(t[2])))
return 1
"""


def _worst_window(times: list[float], per: float) -> int:
    """The most starts in any half-open window ``[t, t + per)`` that begins at a start."""
    times = sorted(times)
    return max(bisect.bisect_left(times, t + per) - i for i, t in enumerate(times))


@pytest.fixture
def url() -> str:
    return redis_url()


@pytest.fixture
def prefix(url: str) -> Iterator[str]:
    """A key prefix of this test's own; its keys are deleted afterwards."""
    name = f"test-{uuid.uuid4().hex[:12]}"
    yield name

    async def clean() -> None:
        client = redis_asyncio.from_url(url)
        try:
            keys = [k async for k in client.scan_iter(match=f"*{name}*")]
            if keys:
                await client.delete(*keys)
        finally:
            await client.aclose()

    asyncio.run(clean())


async def _number(client: Any, key: str) -> float:
    value = await client.get(key)
    assert value is not None, key
    return float(value)


async def _stamps(client: Any, key: str) -> list[float]:
    return [float(v) for v in await client.lrange(key, 0, -1)]


# -- several processes --------------------------------------------------------------------------


def _acquire_in_process(url: str, prefix: str, rate: int, burst: int, count: int) -> None:
    """One process: wait for the start signal, then take ``count`` units, stamping each."""

    async def main() -> None:
        # BLPOP below waits up to 30 s: longer than redis-py's default socket timeout.
        client = redis_asyncio.from_url(url, socket_timeout=90)
        try:
            limiter = RedisRateLimiter(
                client, smsgate.RateLimit(rate, per=1.0, burst=burst), key=prefix
            )
            stamp = client.register_script(_STAMP)
            await client.rpush(f"{prefix}:ready", 1)
            if await client.blpop([f"{prefix}:go"], timeout=30) is None:
                raise RuntimeError("no start signal")
            for _ in range(count):
                await limiter.acquire()
                await stamp(keys=[f"{prefix}:stamps"])
        finally:
            await client.aclose()

    asyncio.run(main())


def _run_processes(
    url: str, prefix: str, *, workers: int, rate: int, burst: int, count: int
) -> None:
    ctx = multiprocessing.get_context("spawn")
    procs = [
        ctx.Process(target=_acquire_in_process, args=(url, prefix, rate, burst, count))
        for _ in range(workers)
    ]
    for proc in procs:
        proc.start()

    async def start_together() -> None:
        client = redis_asyncio.from_url(url, socket_timeout=90)
        try:
            for _ in range(workers):
                assert await client.blpop([f"{prefix}:ready"], timeout=60) is not None
            await client.rpush(f"{prefix}:go", *([1] * workers))
        finally:
            await client.aclose()

    try:
        asyncio.run(start_together())
        for proc in procs:
            proc.join(timeout=60)
            assert proc.exitcode == 0, f"a limiter process ended with {proc.exitcode}"
    finally:
        for proc in procs:
            if proc.is_alive():
                proc.kill()
                proc.join(5)


@pytest.mark.parametrize(("rate", "burst"), [(150, 1), (120, 20)])
def test_processes_share_one_budget(url: str, prefix: str, rate: int, burst: int) -> None:
    """Three processes on one key: at the server, no 1 s window holds more than rate + burst
    starts, although each process alone would have started all of its units at once."""
    workers, count = 3, 100
    _run_processes(url, prefix, workers=workers, rate=rate, burst=burst, count=count)

    async def read() -> list[float]:
        client = redis_asyncio.from_url(url)
        try:
            return await _stamps(client, f"{prefix}:stamps")
        finally:
            await client.aclose()

    stamps = asyncio.run(read())
    assert len(stamps) == workers * count
    assert _worst_window(stamps, 1.0) <= rate + burst


# -- one process, several clients (connections) ---------------------------------------------------


@pytest.mark.asyncio
async def test_penalize_pauses_every_process(url: str, prefix: str) -> None:
    """A 429 seen by one client pauses another one that never saw it: the other's next
    start lands, on the server's clock, at or after the pause's end."""
    a_client = redis_asyncio.from_url(url)
    b_client = redis_asyncio.from_url(url)
    try:
        limit = smsgate.RateLimit(1000, per=1.0, burst=10)
        a = RedisRateLimiter(a_client, limit, key=prefix)
        b = RedisRateLimiter(b_client, limit, key=prefix)
        stamp = b_client.register_script(_STAMP)
        await a.acquire()
        a.penalize(0.4)
        await a.acquire()  # writes the pause to Redis, then waits it out
        until = await _number(a_client, f"smsgate:rate:{prefix}:pause")
        await b.acquire()  # another process: it never saw the 429, yet it waits
        await stamp(keys=[f"{prefix}:stamps"])
        (landed,) = await _stamps(b_client, f"{prefix}:stamps")
        assert landed >= until
    finally:
        await a_client.aclose()
        await b_client.aclose()


@pytest.mark.asyncio
async def test_penalize_never_shortens_a_longer_pause(url: str, prefix: str) -> None:
    """A shorter retry_after written later leaves a longer pause in place."""
    client = redis_asyncio.from_url(url)
    try:
        limit = smsgate.RateLimit(1000, per=1.0, burst=10)
        slept: list[float] = []

        async def record(seconds: float) -> None:
            slept.append(seconds)
            await asyncio.sleep(seconds)

        a = RedisRateLimiter(client, limit, key=prefix, sleep=record)
        b = RedisRateLimiter(client, limit, key=prefix, sleep=record)
        a.penalize(0.3)
        b.penalize(0.01)
        await a._flush_pause()  # what a's next acquire() does first
        long_until = await _number(client, f"smsgate:rate:{prefix}:pause")
        await b._flush_pause()  # b saw a 429 with a short retry_after just after
        assert await _number(client, f"smsgate:rate:{prefix}:pause") == long_until
        await b.acquire()  # and b still waits for the long pause
        assert slept and sum(slept) > 0.2
    finally:
        await client.aclose()


@pytest.mark.asyncio
async def test_keys_are_separate_budgets(url: str, prefix: str) -> None:
    """Different keys (accounts) do not slow each other down: both bursts start without
    a single wait."""
    client = redis_asyncio.from_url(url)
    try:
        slept: list[float] = []

        async def record(seconds: float) -> None:
            slept.append(seconds)

        limit = smsgate.RateLimit(5, per=1.0, burst=5)
        a = RedisRateLimiter(client, limit, key=f"{prefix}:one", sleep=record)
        b = RedisRateLimiter(client, limit, key=f"{prefix}:two", sleep=record)
        for _ in range(5):
            await a.acquire()
            await b.acquire()
        assert slept == []
        await a.acquire()  # the sixth on one key must wait
        assert slept
    finally:
        await client.aclose()


@pytest.mark.asyncio
async def test_bounds_and_protocol(url: str, prefix: str) -> None:
    """It is a RateLimiter; amounts outside 1..capacity and empty keys are refused."""
    client = redis_asyncio.from_url(url)
    try:
        limiter = RedisRateLimiter(client, smsgate.RateLimit(10, unit="recipients"), key=prefix)
        assert isinstance(limiter, RateLimiter)
        assert limiter.unit == "recipients"
        assert limiter.max_amount == 10
        assert "RedisRateLimiter 10 recipients/1s" in repr(limiter)
        with pytest.raises(ValueError, match="amount"):
            await limiter.acquire(11)
        with pytest.raises(ValueError, match="amount"):
            await limiter.acquire(0)
        with pytest.raises(smsgate.ConfigurationError):
            RedisRateLimiter(client, smsgate.RateLimit(1), key="")
        with pytest.raises(smsgate.ConfigurationError):
            RedisRateLimiter(client, 10, key=prefix)  # type: ignore[arg-type]
    finally:
        await client.aclose()


@pytest.mark.asyncio
async def test_dispatcher_uses_it(url: str, prefix: str) -> None:
    """BulkDispatcher takes a RedisRateLimiter as its rate_limit and is paced by it: the
    30 requests land within the budget on the server's clock."""
    client = redis_asyncio.from_url(url)
    try:
        gateway = FakeGateway(max_recipients=1)
        limiter = RedisRateLimiter(client, smsgate.RateLimit(50, per=1.0), key=prefix)
        stamp = client.register_script(_STAMP)
        real_acquire = limiter.acquire

        async def acquire_and_stamp(amount: int = 1) -> None:
            await real_acquire(amount)
            await stamp(keys=[f"{prefix}:stamps"])

        limiter.acquire = acquire_and_stamp  # type: ignore[method-assign]
        dispatcher = smsgate.BulkDispatcher(gateway, rate_limit=limiter, concurrency=8)
        report = await dispatcher.run(
            smsgate.Message(to=f"0912000{i:04d}", text="hi") for i in range(80)
        )
        assert report.sent == 80
        stamps = await _stamps(client, f"{prefix}:stamps")
        assert len(stamps) == 80
        assert _worst_window(stamps, 1.0) <= 50 + 1
    finally:
        await client.aclose()
