"""A rate limiter shared by several processes through Redis (``pip install ".[redis]"``).

Providers throttle per *account*: two workers sending for one panel account must share
one budget. :class:`RedisRateLimiter` keeps the pacing state in Redis and decides every
start inside one Lua script, on the Redis server's own clock, so the processes need no
clock agreement and no lock::

    import redis.asyncio
    from smsgate.redis import RedisRateLimiter

    limiter = RedisRateLimiter(
        redis.asyncio.Redis(), smsgate.RateLimit(50, per=1.0), key="ippanel:my-account"
    )
    dispatcher = smsgate.BulkDispatcher(gateway, rate_limit=limiter)

The algorithm is GCRA (the "virtual scheduling" form of a token bucket): Redis stores
one number per key, the theoretical arrival time of the next unit. At most ``burst``
units start back to back, then one every ``per / rate`` seconds, across every process
using the same key.

``penalize()`` (the provider said "too many requests") pauses every process sharing the
key until ``retry_after`` has passed. The multiplicative slow-down of the in-memory
:class:`~smsgate.dispatch.TokenBucket` is per process and not done here.

Needs ``redis-py``'s asyncio client, so it runs under asyncio (not trio). Importing
``smsgate`` never imports this module or Redis.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from typing import Any

import anyio

from ._constants import MAX_RETRY_AFTER
from .dispatch._limiter import RateLimit, RateUnit
from .exceptions import ConfigurationError

__all__ = ["RedisRateLimiter"]

# KEYS: the pacing key, the pause key. ARGV: interval, amount, burst allowance (seconds),
# due (the server time this caller was told to come back at, or "" on a first try).
# Returns, as strings (Redis truncates Lua numbers to integers): "ok <server time>" when
# the units were taken, else the server time at which to try again.
#
# A caller that slept until `due` wakes a little late; pacing the next start from `due`
# rather than from the moment it woke keeps the average rate (the same reasoning as
# TokenBucket._take). That credit is capped at one interval: a caller whose process
# stalled for a long while must not start a run of back-to-back units to catch up (with
# many processes waiting, one of them always wakes late). So in any window of `per`
# seconds at most rate + burst units start. The burst allowance still bounds how far
# ahead anyone may start.
_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local interval = tonumber(ARGV[1])
local amount = tonumber(ARGV[2])
local allowance = tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
local pause = tonumber(redis.call('GET', KEYS[2]) or '0')
local start = math.max(now, pause, tat - allowance)
if start > now + 0.000001 then
  return tostring(start)
end
local due = tonumber(ARGV[4])
local base = now
if due ~= nil and due < now then base = math.max(due, now - interval) end
if tat > base then base = tat end
local next_tat = base + amount * interval
local ttl = math.ceil((next_tat - now) * 1000) + 1000
redis.call('SET', KEYS[1], string.format('%.6f', next_tat), 'PX', ttl)
return 'ok ' .. string.format('%.6f', now)
"""

# KEYS: the pause key. ARGV: the pause in seconds. Moves the pause's end to now + delay on
# the server's clock, unless a longer pause is already set: in one step, so two processes
# penalising at once never shorten each other's pause.
_PAUSE = """
local t = redis.call('TIME')
local until_ = tonumber(t[1]) + tonumber(t[2]) / 1000000 + tonumber(ARGV[1])
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if current < until_ then
  redis.call('SET', KEYS[1], string.format('%.6f', until_), 'PX',
    math.ceil(tonumber(ARGV[1]) * 1000) + 1000)
end
return 1
"""


class RedisRateLimiter:
    """A :class:`~smsgate.RateLimiter` whose budget lives in Redis, shared by processes.

    Args:
        redis: A ``redis.asyncio.Redis`` client (any object with ``register_script``,
            ``set`` and ``get`` of that shape).
        limit: The shared limit. ``rate`` units start per ``per`` seconds, plus at most
            ``burst - 1`` back to back.
        key: The Redis key prefix for this budget; every process sending for one provider
            account must use the same key.
        sleep: Sleeps that many seconds (default :func:`anyio.sleep`); for tests.

    Raises:
        ConfigurationError: For a key that is empty.
    """

    def __init__(
        self,
        redis: Any,
        limit: RateLimit,
        *,
        key: str,
        sleep: Callable[[float], Awaitable[object]] | None = None,
    ) -> None:
        if not key:
            raise ConfigurationError("key must be a non-empty str")
        if not isinstance(limit, RateLimit):
            raise ConfigurationError("limit must be a smsgate.RateLimit")
        self.limit = limit
        self._redis = redis
        self._keys = [f"smsgate:rate:{key}:tat", f"smsgate:rate:{key}:pause"]
        self._script = redis.register_script(_SCRIPT)
        self._pause = redis.register_script(_PAUSE)
        self._sleep: Callable[[float], Awaitable[object]] = sleep or anyio.sleep
        self._pending_pause: float | None = None
        #: The Redis server's time (seconds) of this object's latest grant: when the units
        #: of the last :meth:`acquire` that returned were taken. For measurements.
        self.last_grant: float | None = None

    def __repr__(self) -> str:
        limit = self.limit
        return (
            f"<RedisRateLimiter {limit.rate:g} {limit.unit}/{limit.per:g}s "
            f"burst {limit.burst} key={self._keys[0]!r}>"
        )

    @property
    def unit(self) -> RateUnit:
        """What one unit is: requests, recipients or SMS parts."""
        return self.limit.unit

    @property
    def max_amount(self) -> int:
        """The most units one :meth:`acquire` may take (``rate + burst - 1``)."""
        return self.limit.capacity

    async def acquire(self, amount: int = 1) -> None:
        """Wait until ``amount`` units may start under the shared budget, then take them.

        Raises:
            ValueError: If ``amount`` is below 1 or above :attr:`max_amount`.
        """
        if amount < 1 or amount > self.max_amount:
            raise ValueError(f"amount must be from 1 to {self.max_amount}, not {amount!r}")
        await self._flush_pause()
        interval = self.limit.interval
        allowance = (self.limit.burst - 1) * interval
        due = ""
        while True:
            answer = await self._script(
                keys=self._keys, args=[f"{interval:.9f}", amount, f"{allowance:.9f}", due]
            )
            text = answer.decode() if isinstance(answer, bytes) else str(answer)
            if text.startswith("ok "):
                self.last_grant = float(text[3:])
                return
            # The server said when to come back, on its own clock; our sleep only needs
            # the difference, which the next call measures again.
            due = text
            now_answer = await self._redis.time()
            now = float(now_answer[0]) + float(now_answer[1]) / 1_000_000
            await self._sleep(max(float(text) - now, 0.0005))

    def penalize(self, retry_after: float | None = None) -> None:
        """Pause every process sharing the key for ``retry_after`` seconds (default one
        window, capped). Written to Redis by the next :meth:`acquire` of this process."""
        delay = self.limit.per if retry_after is None else retry_after
        if not math.isfinite(delay) or delay < 0:
            delay = self.limit.per
        delay = min(delay, MAX_RETRY_AFTER)
        self._pending_pause = max(self._pending_pause or 0.0, delay)

    async def _flush_pause(self) -> None:
        delay, self._pending_pause = self._pending_pause, None
        if not delay:
            return
        await self._pause(keys=[self._keys[1]], args=[f"{delay:.6f}"])
