"""The rate limiter: the window guarantee, pacing, bursts, adaptive slow-down, cancellation.

Time is never real: either a FakeTime (clock + sleep injected) on both backends, or trio's
MockClock, which jumps as soon as every task sleeps.
"""

from __future__ import annotations

import itertools
import random

import anyio
import pytest

from smsgate import ConfigurationError
from smsgate._constants import MAX_RETRY_AFTER
from smsgate.dispatch import RateLimit, RateLimiter, TokenBucket
from smsgate.dispatch._limiter import _PauseOnly

from ._helpers import FakeTime, max_in_window, mock_clock_backend

pytestmark = pytest.mark.anyio


def bucket(rate: float, per: float = 1.0, **kw: object) -> tuple[TokenBucket, FakeTime]:
    t = FakeTime()
    return TokenBucket(rate, per, clock=t, sleep=t.sleep, **kw), t  # type: ignore[arg-type]


# -- the value ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"rate": 0},
        {"rate": -1},
        {"rate": float("inf")},
        {"rate": True},
        {"rate": 1, "per": 0},
        {"rate": 1, "burst": 0},
        {"rate": 1, "burst": 1.5},
        {"rate": 1, "unit": "sms"},
    ],
)
def test_rate_limit_refuses_bad_settings(kwargs: dict[str, object]) -> None:
    """Settings that cannot work raise ConfigurationError (a ValueError) at construction."""
    rate = kwargs.pop("rate")
    with pytest.raises(ConfigurationError):
        RateLimit(rate, **kwargs)  # type: ignore[arg-type]


def test_rate_limit_derived_values() -> None:
    """interval is per/rate; capacity is rate + burst - 1; the value is frozen, equal by value."""
    limit = RateLimit(50, per=2.0, burst=5, unit="parts")
    assert limit.interval == pytest.approx(0.04)
    assert limit.capacity == 54
    assert limit == RateLimit(50, per=2.0, burst=5, unit="parts")
    with pytest.raises(AttributeError):
        limit.rate = 3  # type: ignore[misc]


def test_token_bucket_is_a_rate_limiter() -> None:
    """TokenBucket and the no-limit default satisfy the RateLimiter protocol."""
    assert isinstance(TokenBucket(10), RateLimiter)
    assert isinstance(_PauseOnly(), RateLimiter)
    assert TokenBucket.from_limit(RateLimit(7, per=3, burst=2)).limit == RateLimit(
        7, per=3, burst=2
    )


# -- pacing and windows ----------------------------------------------------------------------


async def test_smooth_pacing_with_burst_one() -> None:
    """burst=1: starts are exactly per/rate apart, and no 1 s window holds more than rate."""
    limiter, t = bucket(10)
    starts = []
    for _ in range(50):
        await limiter.acquire()
        starts.append(t())
    gaps = {round(b - a, 9) for a, b in itertools.pairwise(starts)}
    assert gaps == {0.1}
    assert max_in_window(starts, 1.0) == 10


async def test_burst_then_pace() -> None:
    """burst=5: five start at once after an idle spell, then the pace is per/rate."""
    limiter, t = bucket(10, burst=5)
    starts = []
    for _ in range(30):
        await limiter.acquire()
        starts.append(t())
    assert starts[:5] == [starts[0]] * 5
    assert starts[5] - starts[0] == pytest.approx(0.1)
    assert max_in_window(starts, 1.0) <= 10 + 5 - 1


async def test_amounts_respect_the_window() -> None:
    """Mixed amounts (a big batch after small ones) never put more than capacity in a window."""
    limiter, t = bucket(100, unit="recipients")
    rng = random.Random(7)
    starts, amounts = [], []
    for _ in range(300):
        amount = rng.choice([1, 1, 1, 7, 40, 100])
        await limiter.acquire(amount)
        starts.append(t())
        amounts.append(amount)
    assert max_in_window(starts, 1.0, amounts) <= 100
    # ...and it is not needlessly slow. A take of a full window's worth must wait for an
    # empty window, so a random mix of 1s and 100s cannot reach the full rate; 60 % is the
    # floor this mix reaches (uniform batches reach the full rate, see the dispatcher tests).
    assert sum(amounts) / (starts[-1] - starts[0] + 1.0) > 60


async def test_amount_bounds() -> None:
    """acquire() refuses amounts below 1, bools, and more than rate + burst - 1 at once."""
    limiter, _ = bucket(10, burst=3)
    assert limiter.max_amount == 12
    for bad in (0, -1, True, 13, 2.0):
        with pytest.raises(ValueError, match=r"amount|cannot take"):
            await limiter.acquire(bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="cannot take"):
        limiter.has_capacity(13)
    await limiter.acquire(12)
    assert limiter.statistics().units == 12


async def test_has_capacity() -> None:
    """has_capacity says whether an acquire would start now, without taking anything."""
    limiter, t = bucket(2)
    assert limiter.has_capacity()
    await limiter.acquire()
    assert not limiter.has_capacity()
    t.now += 0.5
    assert limiter.has_capacity()
    assert limiter.statistics().acquisitions == 1


async def test_async_with_takes_one() -> None:
    """``async with limiter:`` takes one unit, like aiolimiter."""
    limiter, _ = bucket(5)
    async with limiter:
        pass
    async with limiter:
        pass
    assert limiter.statistics().acquisitions == 2


class TestUnderMockClock:
    """Many concurrent tasks against anyio's own clock (trio MockClock)."""

    @pytest.fixture
    def anyio_backend(self) -> tuple[str, dict[str, object]]:
        """trio with a MockClock."""
        return mock_clock_backend()

    async def test_concurrent_takers_never_exceed_any_window(self) -> None:
        """40 tasks with random amounts and jitter: every 2 s window holds <= capacity."""
        limiter = TokenBucket(30, 2.0, burst=4, unit="parts")
        rng = random.Random(3)
        starts: list[float] = []
        amounts: list[int] = []

        async def taker(n: int) -> None:
            for _ in range(10):
                await anyio.sleep(rng.random() * 0.3)
                amount = rng.choice([1, 2, 3, 9])
                await limiter.acquire(amount)
                starts.append(anyio.current_time())
                amounts.append(amount)

        async with anyio.create_task_group() as tg:
            for n in range(40):
                tg.start_soon(taker, n)
        assert len(starts) == 400
        assert max_in_window(starts, 2.0, amounts) <= 30 + 4 - 1
        assert limiter.statistics().waiting == 0

    async def test_accuracy_at_200_per_second(self) -> None:
        """200 req/s for 10 s: within 1 % of the target, no 1 s window above 200."""
        limiter = TokenBucket(200, 1.0)
        starts: list[float] = []

        async def taker() -> None:
            while anyio.current_time() - t0 < 10.0:
                await limiter.acquire()
                starts.append(anyio.current_time())

        t0 = anyio.current_time()
        async with anyio.create_task_group() as tg:
            for _ in range(16):
                tg.start_soon(taker)
        inside = [s for s in starts if s - t0 < 10.0]
        assert abs(len(inside) / 10.0 - 200) <= 2
        assert max_in_window(starts, 1.0) <= 200

    async def test_waiters_are_served_in_arrival_order(self) -> None:
        """First come, first served: waiters start in the order they asked."""
        limiter = TokenBucket(1, 1.0)
        order: list[int] = []

        async def taker(n: int) -> None:
            await anyio.sleep(n * 0.001)
            await limiter.acquire()
            order.append(n)

        async with anyio.create_task_group() as tg:
            for n in range(8):
                tg.start_soon(taker, n)
        assert order == list(range(8))

    async def test_cancelled_waiter_takes_nothing(self) -> None:
        """A waiter cancelled while it waits leaves no units taken and no waiter counted."""
        limiter = TokenBucket(1, 10.0)
        await limiter.acquire()
        with anyio.move_on_after(1.0) as scope:
            await limiter.acquire()
        assert scope.cancelled_caught
        stats = limiter.statistics()
        assert (stats.acquisitions, stats.units, stats.waiting) == (1, 1, 0)
        assert not limiter._lock.locked()
        # ...and the next taker is paced from the first take, not from the cancelled one.
        before = anyio.current_time()
        await limiter.acquire()
        assert anyio.current_time() - before == pytest.approx(9.0)


# -- adaptive slow-down ----------------------------------------------------------------------


async def test_penalize_pauses_for_retry_after() -> None:
    """After penalize(retry_after=3) nothing starts for 3 s, and then the pace is halved."""
    limiter, t = bucket(10)
    await limiter.acquire()
    start = t()
    limiter.penalize(3.0)
    assert limiter.statistics().paused_for == pytest.approx(3.0)
    await limiter.acquire()
    assert t() - start == pytest.approx(3.0)
    await limiter.acquire()
    assert t() - start == pytest.approx(3.2)  # 0.2 s: half of 10/s
    # Halved to 5/s, and 0.2 s into the recovery it has regained 10 % x 10/s x 0.2.
    assert limiter.statistics().effective_rate == pytest.approx(5.2)
    assert "now=" in repr(limiter)


async def test_penalize_halves_at_most_once_per_window() -> None:
    """Thirty refusals in the same instant halve the pace once, not thirty times."""
    limiter, _ = bucket(64)
    for _ in range(30):
        limiter.penalize(0)
    stats = limiter.statistics()
    assert stats.effective_rate == pytest.approx(32)
    assert stats.penalties == 30


async def test_pace_creeps_back_up() -> None:
    """After a halving the pace regains 10 % of the rate per window, up to the configured rate."""
    limiter, t = bucket(100)
    limiter.penalize(0)
    assert limiter.statistics().effective_rate == pytest.approx(50)
    t.now += 1.0
    assert limiter.statistics().effective_rate == pytest.approx(60)
    t.now += 2.0
    assert limiter.statistics().effective_rate == pytest.approx(80)
    t.now += 100.0
    assert limiter.statistics().effective_rate == pytest.approx(100)


async def test_repeated_penalties_floor_and_cap() -> None:
    """The pace never drops below min_factor; a huge retry_after is capped."""
    limiter, t = bucket(64, min_factor=1 / 8)
    for _ in range(10):
        limiter.penalize(10**9)
        t.now += 1.0
    assert limiter.statistics().effective_rate >= 8
    assert limiter.statistics().paused_for <= MAX_RETRY_AFTER


async def test_no_burst_right_after_a_pause() -> None:
    """With burst=5, the first requests after a pause are paced, not sent back to back."""
    limiter, t = bucket(10, burst=5)
    limiter.penalize(2.0)
    starts = []
    for _ in range(3):
        await limiter.acquire()
        starts.append(t())
    assert starts[0] == pytest.approx(1002.0)  # the pause's end
    # Then about the halved pace (0.2 s; a little more while the pace recovers): no burst.
    assert 0.19 < starts[1] - starts[0] < 0.3
    assert 0.15 < starts[2] - starts[1] < 0.3


async def test_pause_only_limiter() -> None:
    """With no rate limit, acquire never waits, except after penalize (retry_after)."""
    t = FakeTime()
    limiter = _PauseOnly(clock=t, sleep=t.sleep)
    for _ in range(100):
        await limiter.acquire()
    assert t.sleeps == []
    limiter.penalize(4)
    await limiter.acquire()
    assert sum(t.sleeps) == pytest.approx(4)
    assert "no rate limit" in repr(limiter)


def test_repr_shows_state() -> None:
    """The repr names rate, window, burst, unit and waiters."""
    text = repr(TokenBucket(50, 2.0, burst=3, unit="recipients"))
    assert text == "<TokenBucket 50/2s burst=3 unit=recipients waiting=0>"


def test_bad_adaptive_settings() -> None:
    """min_factor and recovery must be fractions in (0, 1]."""
    with pytest.raises(ConfigurationError):
        TokenBucket(1, min_factor=0)
    with pytest.raises(ConfigurationError):
        TokenBucket(1, recovery=2)
