"""Rate limits: how fast requests may *start* (concurrency, how many run at once, is separate).

(Over 500 lines with reason: one algorithm, its value type and its protocol, most of it
docstrings; split, the GCRA and the window log would each need the other's invariants.)

:class:`RateLimit` is the value a user writes; :class:`RateLimiter` is the protocol the
dispatcher talks to; :class:`TokenBucket` is the in-memory default, on anyio so that it runs
under asyncio and trio alike, with an injectable clock and sleep so tests need no real time.

The guarantee (``RateLimit(rate, per=per, burst=burst)``): in **any** half-open window of
``per`` seconds at most ``rate + burst - 1`` units start, and with ``burst=1`` starts are
evenly spaced ``per / rate`` apart (smooth pacing). A unit is a request by default, or a
recipient or an SMS part (``unit="recipients"`` / ``"parts"``: operators bill and throttle
parts). Two mechanisms give it:

* a GCRA pacer (the "virtual scheduling" form of a token bucket: one theoretical arrival
  time instead of a token count). A take of ``n`` units moves that time ``n`` intervals on,
  so after a 100-recipient batch at 100 recipients/s the next request waits a second;
* a log of the starts of the last ``per`` seconds, so that a large take after small ones
  (a 50-recipient batch after 60 singles) still waits for the window to make room. The log
  holds at most ``rate + burst - 1`` entries.

Adaptive slow-down (AIMD, the general form of Jasmin's "smart QoS"): :meth:`~TokenBucket.penalize`
is called when the provider says "too many requests". It pauses every caller for
``retry_after`` (capped by :data:`~smsgate._constants.MAX_RETRY_AFTER`), halves the pace
(at most once per window, so 32 requests refused together halve it once, not 32 times;
never below :attr:`TokenBucket.min_factor` of the configured rate) and then lets it creep
back up by ``recovery`` (10 %) of the configured rate per window of time.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Literal, Protocol, runtime_checkable

import anyio
import attrs

from .._constants import MAX_RETRY_AFTER
from ..exceptions import ConfigurationError

__all__ = ["LimiterStatistics", "RateLimit", "RateLimiter", "RateUnit", "TokenBucket"]

#: What a rate limit counts.
RateUnit = Literal["requests", "recipients", "parts"]
_UNITS: tuple[str, ...] = ("requests", "recipients", "parts")

# Clocks are floats; a wait shorter than this is float rounding, not a wait. Without it a
# computed start time that lands one ulp after "now" would loop on sleeps that cannot move
# the clock.
_EPSILON = 1e-9
#: The longest window, and the longest interval between two units: a day.
MAX_WINDOW = 86_400.0
#: The shortest window (a millisecond).
MIN_WINDOW = 1e-3
#: The most units per window: the window log holds up to ``rate + burst - 1`` starts.
MAX_RATE = 1_000_000


def _positive(_inst: object, attr: attrs.Attribute[float], value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigurationError(f"{attr.name} must be a number, not {type(value).__name__}")
    if not (math.isfinite(value) and value > 0):
        raise ConfigurationError(f"{attr.name} must be a positive finite number, not {value!r}")


def _is_int(value: object, minimum: int) -> bool:
    """Whether ``value`` is a true int (not a bool) of at least ``minimum``."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def _burst(_inst: object, _attr: attrs.Attribute[int], value: int) -> None:
    if not _is_int(value, 1):
        raise ConfigurationError(f"burst must be an int >= 1, not {value!r}")


def _unit(_inst: object, _attr: attrs.Attribute[str], value: str) -> None:
    if value not in _UNITS:
        raise ConfigurationError(f"unit must be one of {_UNITS}, not {value!r}")


@attrs.frozen
class RateLimit:
    """How fast a job may start requests (or recipients, or SMS parts).

    At most ``rate`` units start in any window of ``per`` seconds, plus at most
    ``burst - 1`` more back to back; ``burst=1`` is smooth pacing (one unit every
    ``per / rate`` seconds).

    >>> RateLimit(50)                      # 50 requests per second, evenly spaced
    RateLimit(rate=50, per=1.0, burst=1, unit='requests')
    >>> RateLimit(3000, per=60, unit="parts").interval
    0.02

    Args:
        rate: Units per window.
        per: The window, in seconds.
        burst: How many units may start back to back after an idle spell.
        unit: ``"requests"`` (the default), ``"recipients"`` or ``"parts"`` (SMS parts,
            what operators bill and throttle).

    Raises:
        ConfigurationError: For a non-positive or non-finite rate or window, a burst
            below 1, a window longer than a day or shorter than a millisecond, less than
            one unit a day, or more than a million units per window.
    """

    rate: float = attrs.field(validator=_positive)
    per: float = attrs.field(default=1.0, kw_only=True, validator=_positive)
    burst: int = attrs.field(default=1, kw_only=True, validator=_burst)
    unit: RateUnit = attrs.field(default="requests", kw_only=True, validator=_unit)

    def __attrs_post_init__(self) -> None:
        # Finite and positive is not enough: RateLimit(1e-300) is one request per 1e292
        # years (a job that hangs), RateLimit(1e300) a window log no memory holds.
        if self.per > MAX_WINDOW:
            raise ConfigurationError(
                f"per={self.per!r} s is longer than a day ({MAX_WINDOW:g} s); "
                "express the limit over a shorter window"
            )
        if self.per < MIN_WINDOW:
            raise ConfigurationError(
                f"per={self.per!r} s is shorter than {MIN_WINDOW:g} s; no clock paces that finely"
            )
        if self.interval > MAX_WINDOW:
            raise ConfigurationError(
                f"RateLimit({self.rate!r}, per={self.per!r}) starts one unit every "
                f"{self.interval:.3g} s, more than a day: a job would hang; raise the rate"
            )
        if self.rate > MAX_RATE or self.burst > MAX_RATE:
            raise ConfigurationError(
                f"rate and burst must be at most {MAX_RATE:,} per window "
                f"(rate={self.rate!r}, burst={self.burst!r}); use rate_limit=None for no limit"
            )

    @property
    def interval(self) -> float:
        """Seconds between two units at full speed (``per / rate``)."""
        return self.per / self.rate

    @property
    def capacity(self) -> int:
        """The most units that may start in one window: ``rate + burst - 1``.

        A single :meth:`RateLimiter.acquire` may take at most this many (a request of
        more recipients than that would break the limit by itself).
        """
        return max(1, math.floor(self.rate + _EPSILON)) + self.burst - 1


@runtime_checkable
class RateLimiter(Protocol):
    """What the dispatcher needs from a rate limiter.

    The in-memory default is :class:`TokenBucket`; a limiter shared by several processes
    (Redis, a database) implements the same four members.

    Attributes:
        unit: What one unit of :meth:`acquire` is: ``"requests"``, ``"recipients"`` or
            ``"parts"``. The dispatcher passes the matching amount for each request.
        max_amount: The largest amount one :meth:`acquire` accepts, or ``None`` for no
            bound; the dispatcher keeps its batches within it.
    """

    @property
    def unit(self) -> RateUnit:
        """What one unit is."""
        ...

    @property
    def max_amount(self) -> int | None:
        """The largest amount one :meth:`acquire` accepts (``None``: any)."""
        ...

    async def acquire(self, amount: int = 1) -> None:
        """Wait until ``amount`` units may start, then take them.

        Raises:
            ValueError: If ``amount`` is below 1 or above :attr:`max_amount`.
        """
        ...

    def penalize(self, retry_after: float | None = None) -> None:
        """The provider said "too many requests": pause everyone and slow down."""
        ...


@attrs.frozen(kw_only=True)
class LimiterStatistics:
    """A snapshot of a :class:`TokenBucket`.

    Attributes:
        rate: The configured rate (units per window).
        effective_rate: The rate in force now, after adaptive slow-down.
        per: The window, in seconds.
        waiting: Tasks waiting in :meth:`TokenBucket.acquire` now.
        acquisitions: Successful :meth:`~TokenBucket.acquire` calls so far.
        units: Units taken so far.
        penalties: :meth:`~TokenBucket.penalize` calls so far.
        paused_for: Seconds until a pause (from ``retry_after``) ends; 0 when not paused.
    """

    rate: float
    effective_rate: float
    per: float
    waiting: int
    acquisitions: int
    units: int
    penalties: int
    paused_for: float


class TokenBucket:
    """The default :class:`RateLimiter`: in memory, for one process, on anyio.

    Its surface follows aiolimiter's ``AsyncLimiter`` (``max_rate``, ``time_period``,
    :meth:`has_capacity`, ``await acquire(amount)``, ``async with limiter:``), but it
    runs on anyio (asyncio and trio), keeps the window guarantee of :class:`RateLimit`
    exactly, and slows down on :meth:`penalize`. Waiters are served first come, first
    served (one ``anyio.Lock``); a cancelled waiter takes nothing.

    >>> limiter = TokenBucket(50, 1.0)                 # or TokenBucket.from_limit(RateLimit(50))
    >>> async def send():                              # doctest: +SKIP
    ...     async with limiter:
    ...         ...

    Args:
        max_rate: Units per window.
        time_period: The window, in seconds.
        burst: Units that may start back to back after an idle spell.
        unit: ``"requests"``, ``"recipients"`` or ``"parts"``.
        clock: Returns the time in seconds (default :func:`anyio.current_time`, which a
            trio ``MockClock`` controls).
        sleep: Sleeps that many seconds (default :func:`anyio.sleep`); tests pass a fake
            that advances their clock.
        min_factor: The slowest adaptive pace, as a fraction of ``max_rate``.
        recovery: How much of ``max_rate`` the pace regains per window after a slow-down.

    Raises:
        ConfigurationError: For settings that cannot work.
    """

    __slots__ = (
        "_acquisitions",
        "_base_factor",
        "_clock",
        "_decreased_at",
        "_lock",
        "_log",
        "_log_units",
        "_paused_until",
        "_penalties",
        "_recover_from",
        "_sleep",
        "_tat",
        "_units",
        "_waiting",
        "limit",
        "min_factor",
        "recovery",
    )

    def __init__(
        self,
        max_rate: float,
        time_period: float = 1.0,
        *,
        burst: int = 1,
        unit: RateUnit = "requests",
        clock: Callable[[], float] | None = None,
        sleep: Callable[[float], Awaitable[object]] | None = None,
        min_factor: float = 1 / 32,
        recovery: float = 0.1,
    ) -> None:
        #: The :class:`RateLimit` this limiter enforces.
        self.limit = RateLimit(max_rate, per=time_period, burst=burst, unit=unit)
        if not 0 < min_factor <= 1:
            raise ConfigurationError(f"min_factor must be in (0, 1], not {min_factor!r}")
        if not 0 < recovery <= 1:
            raise ConfigurationError(f"recovery must be in (0, 1], not {recovery!r}")
        #: The slowest adaptive pace, as a fraction of the configured rate.
        self.min_factor = min_factor
        #: Fraction of the configured rate regained per window after a slow-down.
        self.recovery = recovery
        self._clock: Callable[[], float] = clock or anyio.current_time
        self._sleep: Callable[[float], Awaitable[object]] = sleep or anyio.sleep
        self._lock = anyio.Lock()
        self._tat: float | None = None  # GCRA theoretical arrival time
        self._log: deque[tuple[float, int]] = deque()  # (start, units) of the last window
        self._log_units = 0
        self._paused_until = -math.inf
        self._base_factor = 1.0  # the pace right after the last decrease
        self._decreased_at = -math.inf  # when the pace was last halved
        self._recover_from = -math.inf  # when it started to creep back up
        self._waiting = 0
        self._acquisitions = 0
        self._units = 0
        self._penalties = 0

    @classmethod
    def from_limit(
        cls,
        limit: RateLimit,
        *,
        clock: Callable[[], float] | None = None,
        sleep: Callable[[float], Awaitable[object]] | None = None,
    ) -> TokenBucket:
        """Build the limiter for a :class:`RateLimit` value."""
        return cls(
            limit.rate,
            limit.per,
            burst=limit.burst,
            unit=limit.unit,
            clock=clock,
            sleep=sleep,
        )

    # -- aiolimiter's surface ---------------------------------------------------------------

    @property
    def max_rate(self) -> float:
        """Units per window (``RateLimit.rate``)."""
        return self.limit.rate

    @property
    def time_period(self) -> float:
        """The window, in seconds (``RateLimit.per``)."""
        return self.limit.per

    @property
    def unit(self) -> RateUnit:
        """What one unit is."""
        return self.limit.unit

    @property
    def max_amount(self) -> int:
        """The largest amount one :meth:`acquire` takes: ``rate + burst - 1``."""
        return self.limit.capacity

    def has_capacity(self, amount: int = 1) -> bool:
        """Whether ``amount`` units could start now without waiting."""
        self._check(amount)
        if self._lock.locked():
            return False
        return self._delay(amount, self._clock()) <= _EPSILON

    async def acquire(self, amount: int = 1) -> None:
        """Wait until ``amount`` units may start, then take them.

        Args:
            amount: Units to take (one request, its recipients, or its SMS parts).

        Raises:
            ValueError: If ``amount`` is below 1 or above :attr:`max_amount`.
        """
        self._check(amount)
        self._waiting += 1
        try:
            async with self._lock:
                target: float | None = None
                while True:
                    now = self._clock()
                    delay = self._delay(amount, now)
                    if delay <= _EPSILON:
                        break
                    # Holding the lock while asleep keeps waiters in arrival order and
                    # leaves one sleeper at a time; a penalty that lands meanwhile is
                    # seen when the loop looks again.
                    target = now + delay
                    await self._sleep(delay)
                self._take(amount, now, target)
        finally:
            self._waiting -= 1

    async def __aenter__(self) -> None:
        await self.acquire()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None

    # -- adaptive slow-down -----------------------------------------------------------------

    def penalize(self, retry_after: float | None = None) -> None:
        """The provider said "too many requests": pause everyone, then go slower.

        Args:
            retry_after: Seconds the provider asked us to wait; ``None`` waits one window.
                Capped by ``MAX_RETRY_AFTER``.
        """
        now = self._clock()
        delay = self.limit.per if retry_after is None else retry_after
        delay = min(max(float(delay), 0.0), MAX_RETRY_AFTER)
        self._penalties += 1
        self._paused_until = max(self._paused_until, now + delay)
        if now - self._decreased_at >= self.limit.per:
            # One halving per window: requests refused together count as one signal.
            self._base_factor = max(self.min_factor, self._factor(now) / 2)
            self._decreased_at = now
        self._recover_from = self._paused_until
        # No burst straight after a pause: the first request goes at the pause's end,
        # the next ones at the (slower) pace.
        interval = self._interval(self._paused_until)
        resume = self._paused_until + (self.limit.burst - 1) * interval
        self._tat = resume if self._tat is None else max(self._tat, resume)

    # -- introspection ------------------------------------------------------------------------

    def statistics(self) -> LimiterStatistics:
        """A frozen snapshot of the limiter's state (outside an event loop too)."""
        try:
            now = self._clock()
        except RuntimeError:  # anyio's clock outside an event loop (a repr in a REPL)
            now = self._recover_from
        return LimiterStatistics(
            rate=self.limit.rate,
            effective_rate=self.limit.rate * self._factor(now),
            per=self.limit.per,
            waiting=self._waiting,
            acquisitions=self._acquisitions,
            units=self._units,
            penalties=self._penalties,
            paused_for=max(0.0, self._paused_until - now),
        )

    def __repr__(self) -> str:
        stats = self.statistics()
        slow = "" if stats.effective_rate == stats.rate else f" now={stats.effective_rate:g}"
        pause = f" paused_for={stats.paused_for:.3g}s" if stats.paused_for else ""
        return (
            f"<TokenBucket {self.limit.rate:g}/{self.limit.per:g}s burst={self.limit.burst}"
            f" unit={self.limit.unit}{slow}{pause} waiting={stats.waiting}>"
        )

    # -- internals ----------------------------------------------------------------------------

    def _check(self, amount: int) -> None:
        if not _is_int(amount, 1):
            raise ValueError(f"amount must be an int >= 1, not {amount!r}")
        if amount > self.limit.capacity:
            raise ValueError(
                f"cannot take {amount} {self.limit.unit} at once: the limit allows at most "
                f"{self.limit.capacity} per {self.limit.per:g}s window"
            )

    def _factor(self, now: float) -> float:
        if self._base_factor >= 1.0:
            return 1.0
        regained = self.recovery * max(0.0, now - self._recover_from) / self.limit.per
        return min(1.0, self._base_factor + regained)

    def _interval(self, now: float) -> float:
        return self.limit.interval / self._factor(now)

    def _delay(self, amount: int, now: float) -> float:
        start = max(now, self._paused_until)
        if self._tat is not None:
            start = max(start, self._tat - (self.limit.burst - 1) * self._interval(now))
        # Forget starts that left the window.
        per = self.limit.per
        log = self._log
        while log and log[0][0] + per <= now + _EPSILON:
            self._log_units -= log.popleft()[1]
        excess = self._log_units + amount - self.limit.capacity
        if excess > 0:
            # Wait until the oldest starts have left the window and made room.
            freed = 0
            for started, units in log:
                freed += units
                if freed >= excess:
                    start = max(start, started + per)
                    break
        return start - now

    def _take(self, amount: int, now: float, target: float | None = None) -> None:
        interval = self._interval(now)
        # A sleeper wakes a little after the moment it asked for (the event loop is busy).
        # Pacing from the moment it woke would lose that lateness on every start: about
        # 12 % of 200 req/s measured on a loaded 2-core machine. Pacing from the moment it
        # was due keeps the average rate; the window log in _delay still caps every window.
        due = now if target is None else min(now, target)
        base = due if self._tat is None else max(self._tat, due)
        self._tat = base + amount * interval
        self._log.append((now, amount))
        self._log_units += amount
        self._acquisitions += 1
        self._units += amount


class _PauseOnly:
    """The limiter used when no rate limit is given: no pacing, but it still honours
    ``retry_after`` so that a job never hammers a provider that asked it to slow down."""

    __slots__ = ("_clock", "_paused_until", "_sleep")

    unit: RateUnit = "requests"
    max_amount: int | None = None

    def __init__(
        self,
        *,
        clock: Callable[[], float] | None = None,
        sleep: Callable[[float], Awaitable[object]] | None = None,
    ) -> None:
        self._clock: Callable[[], float] = clock or anyio.current_time
        self._sleep: Callable[[float], Awaitable[object]] = sleep or anyio.sleep
        self._paused_until = -math.inf

    def __repr__(self) -> str:
        return "<no rate limit (pauses on retry_after)>"

    async def acquire(self, amount: int = 1) -> None:
        """Wait out a pause, if one is in force."""
        if self._paused_until == -math.inf:
            return  # never paused: no need to read the clock
        while (delay := self._paused_until - self._clock()) > _EPSILON:
            await self._sleep(delay)

    def penalize(self, retry_after: float | None = None) -> None:
        """Pause every caller for ``retry_after`` (default one second, capped)."""
        delay = min(max(1.0 if retry_after is None else float(retry_after), 0.0), MAX_RETRY_AFTER)
        self._paused_until = max(self._paused_until, self._clock() + delay)
