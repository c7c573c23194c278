"""CircuitBreaker: opens on consecutive route failures, one probe when half-open (fake clock)."""

from __future__ import annotations

import logging
import pickle
from collections.abc import Sequence

import anyio
import anyio.lowlevel
import pytest

import smsgate
from smsgate.dispatch import BulkDispatcher, FallbackPolicy, Route, RouteBreaker
from smsgate.dispatch._breaker import CircuitBreaker, CircuitOpenError, Permit
from smsgate.testing import FakeClock

DOWN = smsgate.ProviderUnavailableError("down", provider="negin", code="HTTP 503")
UNREACHABLE = smsgate.NotSentError("connection refused")
OPTED_OUT = smsgate.RecipientOptedOutError(provider="negin", code="27")
TIMEOUT = smsgate.OutcomeUnknownError("read timeout")


def breaker(clock: FakeClock, **kwargs: object) -> CircuitBreaker:
    return CircuitBreaker(failure_threshold=3, cooldown=10.0, clock=clock, **kwargs)  # type: ignore[arg-type]


def fail(b: CircuitBreaker, route: str, error: BaseException, times: int = 1) -> None:
    """Make ``times`` requests on ``route`` that all end with ``error``."""
    for _ in range(times):
        permit = b.acquire(route)
        assert permit is not None
        b.record(permit, error)


def test_is_a_route_breaker() -> None:
    """CircuitBreaker satisfies the RouteBreaker protocol FallbackPolicy consults."""
    assert isinstance(CircuitBreaker(), RouteBreaker)


def test_opens_after_threshold_consecutive_failures() -> None:
    """Two failures keep it closed; the third (mixed 5xx / not-sent) opens it."""
    clock = FakeClock()
    b = breaker(clock)
    fail(b, "line", DOWN)
    fail(b, "line", UNREACHABLE)
    assert b.state("line") == "closed"
    assert b.status("line").failures == 2
    fail(b, "line", DOWN)
    assert b.state("line") == "open"
    assert b.acquire("line") is None
    assert b.status("line").retry_at == clock.now + 10.0
    assert b.status("line").trips == 1


def test_an_answer_from_the_provider_resets_the_count() -> None:
    """A success or a business refusal (opted out) breaks the run of failures."""
    b = breaker(FakeClock())
    for _ in range(5):
        fail(b, "line", DOWN, times=2)
        fail(b, "line", OPTED_OUT)  # the provider answered: alive
    assert b.state("line") == "closed"
    fail(b, "line", DOWN, times=2)
    permit = b.acquire("line")
    assert permit is not None
    b.record(permit)
    fail(b, "line", DOWN)
    assert b.status("line").failures == 1


def test_inconclusive_errors_neither_count_nor_reset_when_closed() -> None:
    """A timeout after the request went out, or an unreadable answer, changes nothing closed."""
    b = breaker(FakeClock())
    fail(b, "line", DOWN)
    fail(b, "line", TIMEOUT)
    fail(b, "line", smsgate.ProtocolError("html page"))
    fail(b, "line", DOWN)
    assert b.status("line").failures == 2
    fail(b, "line", DOWN)
    assert b.state("line") == "open"


def test_half_open_lets_exactly_one_probe_and_success_closes() -> None:
    """After the cool-down one caller probes; others are refused until it reports success."""
    clock = FakeClock()
    b = breaker(clock)
    fail(b, "line", DOWN, times=3)
    clock.advance(9.99)
    assert b.acquire("line") is None
    clock.advance(0.01)
    assert b.state("line") == "half_open"
    probe = b.acquire("line")
    assert probe is not None
    assert probe.probe
    assert b.acquire("line") is None
    assert b.acquire("line") is None
    assert b.status("line").probing
    b.record(probe)
    assert b.state("line") == "closed"
    assert b.acquire("line") is not None
    assert b.acquire("line") is not None


@pytest.mark.parametrize("error", [DOWN, UNREACHABLE, TIMEOUT])
def test_failed_or_inconclusive_probe_reopens_for_another_cooldown(error: Exception) -> None:
    """A probe that fails (or times out) opens the circuit again, for a full cool-down."""
    clock = FakeClock()
    b = breaker(clock)
    fail(b, "line", DOWN, times=3)
    clock.advance(10)
    fail(b, "line", error)
    assert b.state("line") == "open"
    assert b.status("line").trips == 2
    clock.advance(9)
    assert b.acquire("line") is None
    clock.advance(1)
    assert b.acquire("line") is not None


def test_probe_without_a_request_frees_the_slot() -> None:
    """A probe stopped before any I/O frees the slot; an unreported one expires (probe_timeout)."""
    clock = FakeClock()
    b = breaker(clock, probe_timeout=5.0)
    fail(b, "line", DOWN, times=3)
    clock.advance(10)
    fail(b, "line", smsgate.InvalidRecipientError("bad number"))  # local: no request made
    assert b.state("line") == "half_open"
    lost = b.acquire("line")  # a new probe, whose result will never be reported in time
    assert lost is not None
    assert b.acquire("line") is None
    clock.advance(4.9)
    assert b.acquire("line") is None
    clock.advance(0.1)
    probe = b.acquire("line")  # the lost probe was forgotten
    assert probe is not None
    b.record(lost)  # ...and its late success does not count for the new probe
    assert b.state("line") == "half_open"
    b.record(probe, DOWN)
    assert b.state("line") == "open"


def test_stale_permits_are_ignored() -> None:
    """Results of requests let out under an older state change nothing."""
    clock = FakeClock()
    b = breaker(clock)
    early = [p for p in (b.acquire("line") for _ in range(5)) if p is not None]
    assert len(early) == 5
    fail(b, "line", DOWN, times=3)
    assert b.state("line") == "open"
    for permit in early:
        b.record(permit)  # successes that started before the circuit opened
    assert b.state("line") == "open"
    clock.advance(10)
    probe = b.acquire("line")
    assert probe is not None
    b.record(early[0], DOWN)  # a stale failure during the probe
    assert b.state("line") == "half_open"
    assert b.status("line").probing
    b.record(probe)
    assert b.state("line") == "closed"
    b.record(Permit(route="never-seen", generation=0))  # unknown route: ignored
    assert "never-seen" not in b.statuses()


def test_routes_are_independent() -> None:
    """One route's failures never open another's circuit."""
    b = breaker(FakeClock())
    fail(b, "negin:line", DOWN, times=3)
    assert b.state("negin:line") == "open"
    assert b.state("negin:line2") == "closed"
    assert b.acquire("negin:line2") is not None
    assert list(b.statuses()) == ["negin:line", "negin:line2"]


def test_on_change_and_logs(caplog: pytest.LogCaptureFixture) -> None:
    """Every transition is reported to on_change; opening logs a warning naming the route."""
    clock = FakeClock()
    seen: list[tuple[str, str, str]] = []
    b = breaker(clock, on_change=lambda route, old, new: seen.append((route, old, new)))
    with caplog.at_level(logging.INFO, logger="smsgate.breaker"):
        fail(b, "line", DOWN, times=3)
        clock.advance(10)
        probe = b.acquire("line")
        assert probe is not None
        b.record(probe)
    assert seen == [
        ("line", "closed", "open"),
        ("line", "open", "half_open"),
        ("line", "half_open", "closed"),
    ]
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "line" in warnings[0].getMessage()
    assert "closed" in caplog.records[-1].getMessage()


def test_guard_records_and_refuses() -> None:
    """guard() records results, and raises CircuitOpenError (a NotSentError) when open."""
    clock = FakeClock()
    b = breaker(clock)
    for _ in range(3):
        with pytest.raises(smsgate.ProviderUnavailableError), b.guard("line"):
            raise DOWN
    with pytest.raises(CircuitOpenError) as info, b.guard("line"):
        raise AssertionError("the block must not run")  # pragma: no cover
    err = info.value
    assert isinstance(err, smsgate.NotSentError)
    assert err.fallback_ok
    assert not err.maybe_sent
    assert (err.route, err.retry_at) == ("line", clock.now + 10)
    assert "line" in str(err)
    clone = pickle.loads(pickle.dumps(err))
    assert (type(clone), clone.route, str(clone)) == (CircuitOpenError, "line", str(err))
    clock.advance(10)
    with b.guard("line") as permit:
        assert permit.probe
    assert b.state("line") == "closed"


@pytest.mark.anyio
async def test_cancelled_probe_releases_the_slot() -> None:
    """A probe cancelled mid-request leaves the circuit half-open with the slot free."""
    clock = FakeClock()
    b = breaker(clock)
    fail(b, "line", DOWN, times=3)
    clock.advance(10)
    with anyio.move_on_after(0.01) as scope, b.guard("line"):
        await anyio.sleep(5)
    assert scope.cancelled_caught
    assert b.state("line") == "half_open"
    assert not b.status("line").probing
    assert b.acquire("line") is not None


def test_reset_and_settings() -> None:
    """reset() closes circuits by hand; bad settings raise ConfigurationError."""
    b = breaker(FakeClock())
    fail(b, "a", DOWN, times=3)
    fail(b, "b", DOWN, times=3)
    b.reset("a")
    assert (b.state("a"), b.state("b")) == ("closed", "open")
    assert "not_closed=['b']" in repr(b)
    b.reset()
    assert b.state("b") == "closed"
    assert (b.failure_threshold, b.cooldown) == (3, 10.0)
    with pytest.raises(smsgate.ConfigurationError):
        CircuitBreaker(failure_threshold=0)
    with pytest.raises(smsgate.ConfigurationError):
        CircuitBreaker(cooldown=-1)
    with pytest.raises(smsgate.ConfigurationError):
        CircuitBreaker(probe_timeout=0)


def test_custom_trip_on() -> None:
    """trip_on decides what counts as the route being down."""
    b = CircuitBreaker(failure_threshold=1, trip_on=(smsgate.OutcomeUnknownError,))
    fail(b, "line", DOWN)  # a ProviderError not in trip_on: the provider answered
    assert b.state("line") == "closed"
    fail(b, "line", TIMEOUT)
    assert b.state("line") == "open"


class StubGateway:
    """A gateway that either accepts everything or is down (HTTP 503), counting requests."""

    max_recipients = 1

    def __init__(self, name: str, *, down: bool) -> None:
        self.name = name
        self.down = down
        self.requests = 0

    async def send(
        self, to: str | Sequence[str], text: str, *, sender: str | None = None
    ) -> smsgate.SendReceipt:
        self.requests += 1
        await anyio.lowlevel.checkpoint()
        if self.down:
            raise smsgate.ProviderUnavailableError(
                "down", provider=self.name, code="HTTP 503", maybe_sent=False
            )
        number = to if isinstance(to, str) else to[0]
        return smsgate.SendReceipt(
            message_id=str(self.requests),
            message_ids={number: str(self.requests)},
            provider=self.name,
            recipients=(number,),
        )

    async def delivery(self, ref: smsgate.SendReceipt | str, /) -> list[smsgate.DeliveryReport]:
        raise AssertionError("not used")  # pragma: no cover

    async def aclose(self) -> None:
        """Nothing to close."""

    async def __aenter__(self) -> StubGateway:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


@pytest.mark.anyio
async def test_dispatcher_skips_a_dead_route_instead_of_hammering_it() -> None:
    """With the breaker in a FallbackPolicy, a dead first route gets threshold requests only."""
    clock = FakeClock()
    dead, alive = StubGateway("dead", down=True), StubGateway("alive", down=False)
    breaker = CircuitBreaker(failure_threshold=3, cooldown=60, clock=clock)
    policy = FallbackPolicy(
        [Route(dead, name="dead"), Route(alive, name="alive")],
        on=(smsgate.ProviderUnavailableError,),
        breaker=breaker,
    )
    rows = [smsgate.Message(to=f"0912000{n:04d}", text="hi") for n in range(20)]
    report = await BulkDispatcher(policy, concurrency=1).run(rows)
    assert (report.sent, report.failed, report.unknown) == (20, 0, 0)
    assert dead.requests == 3  # then its circuit opened: skipped, not hammered
    assert alive.requests == 20
    assert breaker.state("dead") == "open"

    clock.advance(60)  # cool-down over: exactly one probe goes to the dead route
    report = await BulkDispatcher(policy, concurrency=1).run(rows[:5], job_id="again")
    assert report.sent == 5
    assert dead.requests == 4
    assert breaker.status("dead").trips == 2

    dead.down = False
    clock.advance(60)
    report = await BulkDispatcher(policy, concurrency=1).run(rows[:5], job_id="third")
    assert report.sent == 5
    assert dead.requests == 9  # the probe succeeded, the circuit closed, the route is used
    assert breaker.state("dead") == "closed"
