"""A circuit breaker per route, so that a dead line or provider is skipped, not hammered.

Each route (a name, e.g. ``"negin:9830003300"``) has a circuit:

* **closed**: requests go through. ``failure_threshold`` *consecutive* failures that say
  the route is down (:class:`~smsgate.ProviderUnavailableError`: HTTP 5xx or "the line's
  operator is down"; :class:`~smsgate.NotSentError`: the provider cannot be reached) open it.
  Any answer from the provider, even a refusal such as "opted out", shows the route is
  alive and resets the count.
* **open**: requests are refused at once (:meth:`CircuitBreaker.acquire` says ``None``,
  :meth:`CircuitBreaker.guard` raises :class:`CircuitOpenError`, a ``NotSentError``), so
  the fallback policy moves the recipient to its next route without a round trip.
* **half-open**, once ``cooldown`` seconds have passed on the injected clock: exactly **one**
  probe request is let through at a time. Its success closes the circuit; a failure, or a
  timeout that proves nothing (:class:`~smsgate.OutcomeUnknownError`,
  :class:`~smsgate.ProtocolError`), opens it again for another cool-down. A probe that never
  reached the provider (cancelled, or refused by local validation) frees the slot; a probe
  whose result is never reported frees it after ``probe_timeout`` seconds, so a route can
  never stay stuck half-open.

Each request runs under a :class:`Permit`, which carries the circuit's *generation*: the
result of a request let out under an older state (a slow request started while closed
that ends after the circuit opened, or a stale one arriving during a probe) changes nothing.

It implements the :class:`~smsgate.dispatch.RouteBreaker` protocol, so it plugs straight
into a policy: ``FallbackPolicy(routes, breaker=CircuitBreaker())``; one breaker serves
every route of a policy. The dispatcher, for each request on a route::

    permit = breaker.acquire(route.name)
    if permit is None:
        ...                                    # open: skip the route, try the next one
    else:
        try:
            receipt = await route.gateway.send(to, text, sender=route.sender)
        except BaseException as exc:
            breaker.record(permit, exc)        # classified: see CircuitBreaker.record
            raise                              # (or fall back, as before)
        breaker.record(permit)

or the same in one line, ``with breaker.guard(route.name): receipt = await ...`` (raises
:class:`CircuitOpenError`, a ``NotSentError``, when the route is skipped). The breaker
never sleeps and never does I/O. It is not thread-safe: use one per event loop (a
dispatcher runs in one).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from typing import Literal

import attrs

from .. import _telemetry
from ..exceptions import (
    CircuitOpenError,
    ConfigurationError,
    InvalidMessageError,
    InvalidRecipientError,
    NotSentError,
    ProviderError,
    ProviderUnavailableError,
)

__all__ = ["BreakerState", "BreakerStatus", "CircuitBreaker", "CircuitOpenError", "Permit"]

logger = logging.getLogger("smsgate.breaker")

#: The three states of a circuit.
BreakerState = Literal["closed", "open", "half_open"]

#: What a request's result says about the route.
_Verdict = Literal["failure", "success", "inconclusive", "no_attempt"]


@attrs.frozen(kw_only=True)
class Permit:
    """Leave to make one request on a route; hand it back to :meth:`CircuitBreaker.record`.

    Attributes:
        route: The route's name.
        generation: The circuit's generation when the permit was given.
        probe: Whether this is the half-open probe.
    """

    route: str
    generation: int
    probe: bool = False


@attrs.frozen(kw_only=True)
class BreakerStatus:
    """A snapshot of one route's circuit, for reports and logs.

    Attributes:
        route: The route's name.
        state: ``"closed"``, ``"open"`` or ``"half_open"``.
        failures: Consecutive failures counted while closed.
        trips: How many times the circuit has opened.
        retry_at: While open, the clock time at which a probe will be allowed.
        probing: Whether a half-open probe is in flight.
    """

    route: str
    state: BreakerState
    failures: int
    trips: int
    retry_at: float | None
    probing: bool


@attrs.define
class _Circuit:
    state: BreakerState = "closed"
    failures: int = 0
    trips: int = 0
    opened_at: float = 0.0
    generation: int = 0  # bumped on every transition; permits carry it
    probe_since: float | None = None  # half-open: when the probe was let out


_NO_ATTEMPT: tuple[type[BaseException], ...] = (
    # Raised by local validation before any I/O: nothing was learnt about the route.
    InvalidRecipientError,
    InvalidMessageError,
    CircuitOpenError,
)


class CircuitBreaker:
    """Circuit breakers for the routes of a fallback chain, keyed by route name.

    Args:
        failure_threshold: Consecutive failures that open a closed circuit.
        cooldown: Seconds a circuit stays open before one probe is allowed.
        clock: Returns the current time in seconds (``time.monotonic`` by default; tests
            pass a :class:`~smsgate.testing.FakeClock`).
        probe_timeout: Seconds after which a half-open probe whose result was never
            reported is forgotten and another probe allowed (default: ``cooldown``, at
            least 1 s).
        trip_on: The error classes that count as "the route is down".
        on_change: Called as ``on_change(route, old_state, new_state)`` on every
            transition (e.g. to count them). It must not raise.

    Raises:
        ConfigurationError: ``failure_threshold < 1`` or a negative duration.
    """

    def __init__(
        self,
        *,
        failure_threshold: int = 5,
        cooldown: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        probe_timeout: float | None = None,
        trip_on: tuple[type[BaseException], ...] = (ProviderUnavailableError, NotSentError),
        on_change: Callable[[str, BreakerState, BreakerState], None] | None = None,
    ) -> None:
        if failure_threshold < 1:
            raise ConfigurationError("failure_threshold must be at least 1")
        if cooldown < 0:
            raise ConfigurationError("cooldown must not be negative")
        if probe_timeout is not None and probe_timeout <= 0:
            raise ConfigurationError("probe_timeout must be positive")
        self._threshold = failure_threshold
        self._cooldown = float(cooldown)
        self._probe_timeout = (
            float(probe_timeout) if probe_timeout is not None else max(self._cooldown, 1.0)
        )
        self._clock = clock
        self._trip_on = tuple(trip_on)
        self._on_change = on_change
        self._circuits: dict[str, _Circuit] = {}

    def __repr__(self) -> str:
        not_closed = sorted(r for r in self._circuits if self.state(r) != "closed")
        return (
            f"<CircuitBreaker threshold={self._threshold} cooldown={self._cooldown:g}s "
            f"not_closed={not_closed}>"
        )

    @property
    def failure_threshold(self) -> int:
        """Consecutive failures that open a circuit."""
        return self._threshold

    @property
    def cooldown(self) -> float:
        """Seconds a circuit stays open before a probe."""
        return self._cooldown

    # -- reading -----------------------------------------------------------------------

    def state(self, route: str) -> BreakerState:
        """The route's state now (an open circuit past its cool-down reads ``"half_open"``)."""
        circuit = self._circuits.get(route)
        if circuit is None:
            return "closed"
        self._tick(route, circuit)
        return circuit.state

    def status(self, route: str) -> BreakerStatus:
        """A snapshot of the route's circuit."""
        circuit = self._circuits.get(route)
        if circuit is None:
            circuit = _Circuit()
        else:
            self._tick(route, circuit)
        return BreakerStatus(
            route=route,
            state=circuit.state,
            failures=circuit.failures,
            trips=circuit.trips,
            retry_at=circuit.opened_at + self._cooldown if circuit.state == "open" else None,
            probing=circuit.probe_since is not None,
        )

    def statuses(self) -> dict[str, BreakerStatus]:
        """A snapshot of every route seen so far, by name."""
        return {route: self.status(route) for route in sorted(self._circuits)}

    # -- the RouteBreaker protocol -----------------------------------------------------

    def acquire(self, route: str) -> Permit | None:
        """Ask to make one request on ``route`` now.

        Returns:
            A :class:`Permit` to hand to :meth:`record` when the request ends; or ``None``
            if the circuit is open, or half-open with its one probe already out: skip the
            route (nothing is sent).
        """
        circuit = self._circuits.setdefault(route, _Circuit())
        self._tick(route, circuit)
        if circuit.state == "closed":
            return Permit(route=route, generation=circuit.generation)
        if circuit.state == "half_open" and circuit.probe_since is None:
            circuit.probe_since = self._clock()
            return Permit(route=route, generation=circuit.generation, probe=True)
        return None

    def record(self, permit: Permit, error: BaseException | None = None) -> None:
        """Report how the request made under ``permit`` ended.

        ``error`` is ``None`` for a success, else what the request raised:

        * ``trip_on`` errors (``ProviderUnavailableError``, ``NotSentError``): a failure;
        * any other :class:`~smsgate.ProviderError` (opted out, bad sender...): the provider
          answered, so the route is alive, as for a success;
        * ``OutcomeUnknownError``, ``ProtocolError``, anything unexpected: proves nothing;
          a failed probe when half-open, no change when closed;
        * local validation errors, :class:`CircuitOpenError` and cancellation (any
          ``BaseException`` that is not an ``Exception``): no request was made; a probe's
          slot is freed.
        """
        circuit = self._circuits.get(permit.route)
        if circuit is None:
            return
        self._tick(permit.route, circuit)
        if permit.generation != circuit.generation:
            return  # let out under an older state: it says nothing about this one
        verdict = "success" if error is None else self._verdict(error)
        if permit.probe:
            if verdict == "no_attempt":
                circuit.probe_since = None
                circuit.generation += 1  # the next probe's permit must not match this one
            elif verdict == "success":
                self._move(permit.route, circuit, "closed")
            else:
                self._move(permit.route, circuit, "open")
        elif verdict == "success":
            circuit.failures = 0
        elif verdict == "failure":
            circuit.failures += 1
            if circuit.failures >= self._threshold:
                self._move(permit.route, circuit, "open")

    @contextlib.contextmanager
    def guard(self, route: str) -> Iterator[Permit]:
        """Run one request on ``route`` under the breaker: ``with breaker.guard(name): ...``.

        Raises:
            CircuitOpenError: The route is skipped now; the block does not run.
        """
        permit = self.acquire(route)
        if permit is None:
            raise CircuitOpenError(route, retry_at=self.status(route).retry_at)
        try:
            yield permit
        except BaseException as exc:
            self.record(permit, exc)
            raise
        self.record(permit)

    def reset(self, route: str | None = None) -> None:
        """Close one route's circuit (or every circuit) by hand."""
        for name in [route] if route is not None else list(self._circuits):
            circuit = self._circuits.get(name)
            if circuit is not None and circuit.state != "closed":
                self._move(name, circuit, "closed")

    # -- internals ---------------------------------------------------------------------

    def _verdict(self, error: BaseException) -> _Verdict:
        if not isinstance(error, Exception) or isinstance(error, _NO_ATTEMPT):
            return "no_attempt"  # cancelled (a BaseException), or stopped before any I/O
        if isinstance(error, self._trip_on):
            return "failure"
        if isinstance(error, ProviderError):
            return "success"  # the provider answered: the route is alive
        return "inconclusive"

    def _tick(self, route: str, circuit: _Circuit) -> None:
        now = self._clock()
        if circuit.state == "open" and now - circuit.opened_at >= self._cooldown:
            self._move(route, circuit, "half_open")
        elif (
            circuit.state == "half_open"
            and circuit.probe_since is not None
            and now - circuit.probe_since >= self._probe_timeout
        ):
            circuit.probe_since = None  # the probe's result was never reported
            circuit.generation += 1  # ...and if it comes now, it is ignored

    def _move(self, route: str, circuit: _Circuit, new: BreakerState) -> None:
        old = circuit.state
        circuit.state = new
        circuit.generation += 1
        circuit.failures = 0
        circuit.probe_since = None
        if new == "open":
            circuit.trips += 1
            circuit.opened_at = self._clock()
            logger.warning(
                "route %s: circuit opened; skipping it for %.1f s", route, self._cooldown
            )
        elif new == "closed":
            logger.info("route %s: circuit closed", route)
        _telemetry.breaker_state(route, new)
        if self._on_change is not None:
            self._on_change(route, old, new)
