"""RedisRateLimiter: one budget shared by several processes (fakeredis runs the Lua)."""

from __future__ import annotations

import bisect
import time

import anyio
import fakeredis
import pytest

import smsgate
from smsgate.dispatch import RateLimiter
from smsgate.redis import RedisRateLimiter
from smsgate.testing import FakeGateway


def _client(server: fakeredis.FakeServer) -> fakeredis.FakeAsyncRedis:
    return fakeredis.FakeAsyncRedis(server=server)


def _worst_window(times: list[float], per: float) -> int:
    times = sorted(times)
    return max(bisect.bisect_left(times, t + per) - i for i, t in enumerate(times))


@pytest.mark.asyncio
async def test_two_processes_share_one_budget() -> None:
    """Two limiters on one key (two processes) together never exceed the shared rate."""
    server = fakeredis.FakeServer()
    limit = smsgate.RateLimit(100, per=1.0)
    a = RedisRateLimiter(_client(server), limit, key="acct")
    b = RedisRateLimiter(_client(server), limit, key="acct")
    starts: list[float] = []

    async def worker(limiter: RedisRateLimiter, count: int) -> None:
        for _ in range(count):
            await limiter.acquire()
            starts.append(time.monotonic())

    began = time.monotonic()
    async with anyio.create_task_group() as tg:
        for limiter in (a, b, a, b):
            tg.start_soon(worker, limiter, 30)
    elapsed = time.monotonic() - began
    assert len(starts) == 120
    # 120 starts at 100/s take about 1.19 s; alone, each limiter would have let 120 go at
    # once. Allow one unit of scheduling jitter in the worst window.
    assert elapsed >= 1.1
    assert _worst_window(starts, 1.0) <= 101


@pytest.mark.asyncio
async def test_keys_are_separate_budgets() -> None:
    """Different keys (accounts) do not slow each other down."""
    server = fakeredis.FakeServer()
    limit = smsgate.RateLimit(5, per=1.0, burst=5)
    a = RedisRateLimiter(_client(server), limit, key="one")
    b = RedisRateLimiter(_client(server), limit, key="two")
    began = time.monotonic()
    for _ in range(5):
        await a.acquire()
        await b.acquire()
    assert time.monotonic() - began < 0.5  # both bursts fit at once


@pytest.mark.asyncio
async def test_penalize_pauses_every_process() -> None:
    """A 429 seen by one process pauses the other one too."""
    server = fakeredis.FakeServer()
    limit = smsgate.RateLimit(1000, per=1.0, burst=10)
    a = RedisRateLimiter(_client(server), limit, key="acct")
    b = RedisRateLimiter(_client(server), limit, key="acct")
    await a.acquire()
    a.penalize(0.5)
    async with anyio.create_task_group() as tg:
        tg.start_soon(a.acquire)  # writes the pause to Redis, then waits it out
        await anyio.sleep(0.05)
        began = time.monotonic()
        await b.acquire()  # another process: it never saw the 429, yet it waits
        waited = time.monotonic() - began
    assert waited >= 0.3


@pytest.mark.asyncio
async def test_bounds_and_protocol() -> None:
    """It is a RateLimiter; amounts outside 1..capacity and empty keys are refused."""
    limiter = RedisRateLimiter(
        fakeredis.FakeAsyncRedis(), smsgate.RateLimit(10, unit="recipients"), key="k"
    )
    assert isinstance(limiter, RateLimiter)
    assert limiter.unit == "recipients"
    assert limiter.max_amount == 10
    assert "RedisRateLimiter 10 recipients/1s" in repr(limiter)
    with pytest.raises(ValueError, match="amount"):
        await limiter.acquire(11)
    with pytest.raises(ValueError, match="amount"):
        await limiter.acquire(0)
    with pytest.raises(smsgate.ConfigurationError):
        RedisRateLimiter(fakeredis.FakeAsyncRedis(), smsgate.RateLimit(1), key="")


@pytest.mark.asyncio
async def test_dispatcher_uses_it() -> None:
    """BulkDispatcher takes a RedisRateLimiter as its rate_limit and is paced by it."""
    gateway = FakeGateway(max_recipients=1)
    limiter = RedisRateLimiter(
        fakeredis.FakeAsyncRedis(), smsgate.RateLimit(50, per=1.0), key="dispatch"
    )
    dispatcher = smsgate.BulkDispatcher(gateway, rate_limit=limiter, concurrency=8)
    began = time.monotonic()
    report = await dispatcher.run(
        smsgate.Message(to=f"0912000{i:04d}", text="hi") for i in range(30)
    )
    assert report.sent == 30
    assert time.monotonic() - began >= 0.5  # 30 requests at 50/s
