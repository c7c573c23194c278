"""Fallback policy and routes: the value rules, and the dispatcher walking the chain."""

from __future__ import annotations

import pytest

from smsgate import (
    ConfigurationError,
    Message,
    NotSentError,
    OutcomeUnknownError,
    ProviderUnavailableError,
    RecipientOptedOutError,
    SmsGateError,
)
from smsgate.dispatch import (
    BulkDispatcher,
    CircuitBreaker,
    CircuitOpenError,
    FallbackPolicy,
    Route,
    RouteBreaker,
)
from smsgate.testing import FakeGateway

pytestmark = pytest.mark.anyio

OPTED = "09350000001"


def rows(n: int, text: str = "hello", start: int = 0) -> list[Message]:
    return [Message(to=f"0912{start + i:07d}", text=text) for i in range(n)]


# -- the values -------------------------------------------------------------------------------


def test_route_default_name_and_sender() -> None:
    """A route is named after its gateway and line; its sender wins over the message's."""
    gw = FakeGateway(name="negin")
    assert Route(gw).name == "negin:default"
    assert Route(gw, sender="9830001").name == "negin:9830001"
    assert Route(gw, sender="9830001", name="line2").name == "line2"
    assert Route(gw, sender="L").sender_for("M") == "L"
    assert Route(gw).sender_for("M") == "M"
    assert Route(gw).sender_for(None) is None


@pytest.mark.parametrize("bad", [object(), "not a gateway", 42])
def test_route_refuses_non_gateways(bad: object) -> None:
    """Anything without name/max_recipients/send is refused at construction."""
    with pytest.raises(ConfigurationError, match="not an SmsGateway"):
        Route(bad)  # type: ignore[arg-type]


def test_route_refuses_bad_names_and_senders() -> None:
    """Empty names, non-str senders and a max_recipients below 1 are configuration errors."""
    gw = FakeGateway()
    with pytest.raises(ConfigurationError):
        Route(gw, name="")
    with pytest.raises(ConfigurationError):
        Route(gw, sender=123)
    gw.max_recipients = 0
    with pytest.raises(ConfigurationError):
        Route(gw)


def test_policy_names_must_be_unique() -> None:
    """Two routes with the same name: ConfigurationError naming it."""
    gw = FakeGateway(name="ippanel")
    with pytest.raises(ConfigurationError, match="ippanel:default"):
        FallbackPolicy([Route(gw), Route(gw)])
    policy = FallbackPolicy([Route(gw), Route(gw, name="again")])
    assert policy.names() == ["ippanel:default", "again"]
    assert len(policy) == 2


def test_policy_needs_a_list_of_routes() -> None:
    """No routes, or a single route instead of a list, is refused; gateways become routes."""
    gw = FakeGateway()
    with pytest.raises(ConfigurationError, match="at least one"):
        FallbackPolicy([])
    with pytest.raises(ConfigurationError, match="list of routes"):
        FallbackPolicy(Route(gw))  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="list of routes"):
        FallbackPolicy(gw)  # type: ignore[arg-type]
    wrapped = FallbackPolicy([gw, FakeGateway(name="other")])
    assert [r.name for r in wrapped.routes] == ["fake:default", "other:default"]


def test_should_fall_back_rules() -> None:
    """Default: only opt-out; `on` adds classes or a predicate; maybe_sent never falls back."""
    gw = FakeGateway()
    default = FallbackPolicy([gw])
    opted = RecipientOptedOutError(provider="x")
    down = ProviderUnavailableError(provider="x")
    assert default.should_fall_back(opted)
    assert not default.should_fall_back(down)
    assert not default.should_fall_back(NotSentError("x"))

    wide = FallbackPolicy([gw], on=(RecipientOptedOutError, ProviderUnavailableError, NotSentError))
    assert wide.should_fall_back(down)
    assert wide.should_fall_back(NotSentError("x"))
    # An HTTP 500 to a send may have gone out: never on another route.
    assert not wide.should_fall_back(ProviderUnavailableError(provider="x", maybe_sent=True))
    assert not wide.should_fall_back(OutcomeUnknownError("timeout"))

    single = FallbackPolicy([gw], on=ProviderUnavailableError)
    assert single.on == (ProviderUnavailableError,)
    predicate = FallbackPolicy([gw], on=lambda e: "line" in str(e))
    assert predicate.should_fall_back(NotSentError("line busy"))
    assert not predicate.should_fall_back(NotSentError("dns"))
    assert not predicate.should_fall_back(OutcomeUnknownError("line maybe"))


@pytest.mark.parametrize("bad", [(ValueError,), ("x",), 3])
def test_on_refuses_non_errors(bad: object) -> None:
    """`on` takes SmsGateError subclasses or a callable."""
    with pytest.raises(ConfigurationError):
        FallbackPolicy([FakeGateway()], on=bad)


def test_circuit_breaker_is_a_route_breaker() -> None:
    """The reliability CircuitBreaker fits the RouteBreaker protocol the policy takes."""
    assert isinstance(CircuitBreaker(), RouteBreaker)


# -- the dispatcher walking the chain ---------------------------------------------------------


async def test_opted_out_go_to_the_next_route() -> None:
    """Opted-out recipients are sent on route 2, and their outcome names it."""
    primary = FakeGateway(name="ippanel", max_recipients=1, opted_out=[OPTED])
    service = FakeGateway(name="negin")
    policy = FallbackPolicy([Route(primary, sender="3000505"), Route(service, sender="98300")])
    report = await BulkDispatcher(policy).run([*rows(5), Message(to=OPTED, text="hello")])
    assert (report.sent, report.failed) == (6, 0)
    assert service.accepted_recipients() == ["+989350000001"]
    assert [r.sender for r in service.requests] == ["98300"]
    assert primary.sent_to(OPTED) == 0
    outcomes = [o async for o in BulkDispatcher(policy).stream([Message(to=OPTED, text="again")])]
    assert [(o.status, o.route) for o in outcomes] == [("sent", "negin:98300")]


async def test_same_gateway_second_line() -> None:
    """line -> line2 on one gateway: the second route's sender is used for the opted-out."""
    gw = FakeGateway(name="negin")

    def refuse_line1(request):
        if request.sender == "line1" and request.recipients[0].endswith("1"):
            return RecipientOptedOutError(provider="negin")
        return None

    gw.on_request = refuse_line1
    policy = FallbackPolicy([Route(gw, sender="line1"), Route(gw, sender="line2")])
    outcomes = [o async for o in BulkDispatcher(policy).stream(rows(4))]
    by_number = {o.recipient: o.route for o in outcomes}
    assert by_number == {
        "+989120000000": "negin:line1",
        "+989120000001": "negin:line2",
        "+989120000002": "negin:line1",
        "+989120000003": "negin:line1",
    }


async def test_batch_with_one_opted_out_is_split_then_falls_back() -> None:
    """A batch refused for one opted-out number: the others go in sub-batches, it falls back."""
    primary = FakeGateway(name="ippanel", max_recipients=100, opted_out=["09120000013"])
    other = FakeGateway(name="other")
    report = await BulkDispatcher(FallbackPolicy([primary, other])).run(rows(40))
    assert report.sent == 40
    assert other.accepted_recipients() == ["+989120000013"]
    assert primary.sent_to("09120000013") == 0
    assert len(primary.accepted) == 39
    # One refused batch of 40, then bisection: at most 2 requests per level of a 40 split.
    assert len(primary.requests) <= 1 + 2 * 6


async def test_down_route_falls_back_only_when_configured() -> None:
    """ProviderUnavailableError moves recipients on only if `on` lists it."""
    error = ProviderUnavailableError(provider="ippanel", code=99)
    down = FakeGateway(name="ippanel")
    down.on_request = lambda request: error
    other = FakeGateway(name="other")
    strict = await BulkDispatcher(FallbackPolicy([down, other])).run(rows(3))
    assert (strict.failed, len(other.requests)) == (3, 0)
    assert dict(strict.errors) == {"ProviderUnavailableError": 3}

    wide = FallbackPolicy([down, other], on=(RecipientOptedOutError, ProviderUnavailableError))
    report = await BulkDispatcher(wide).run(rows(3))
    assert (report.sent, len(other.accepted)) == (3, 3)


async def test_maybe_sent_never_falls_back() -> None:
    """A timeout after the request went out is `unknown` and never tried on another route."""
    first = FakeGateway(name="first")
    first.fail_next(OutcomeUnknownError("read timeout"))
    other = FakeGateway(name="other")
    policy = FallbackPolicy([first, other], on=lambda e: True)
    outcomes = [o async for o in BulkDispatcher(policy).stream(rows(1))]
    assert [(o.status, o.route, o.reason) for o in outcomes] == [
        ("unknown", "first:default", "may have been sent")
    ]
    assert other.requests == []
    assert len(first.requests) == 1  # and never retried either


async def test_last_route_failure_is_reported_with_its_route() -> None:
    """When every route refuses, the outcome is failed and names the last route tried."""
    a = FakeGateway(name="a", opted_out=[OPTED])
    b = FakeGateway(name="b", opted_out=[OPTED])
    outcomes = [
        o
        async for o in BulkDispatcher(FallbackPolicy([a, b])).stream([Message(to=OPTED, text="x")])
    ]
    assert [(o.status, o.route, type(o.error)) for o in outcomes] == [
        ("failed", "b:default", RecipientOptedOutError)
    ]


async def test_open_circuit_skips_the_route() -> None:
    """After the breaker opens on a dead route, later rows go straight to the next route."""
    t = [0.0]
    breaker = CircuitBreaker(failure_threshold=2, cooldown=60, clock=lambda: t[0])
    dead = FakeGateway(name="dead")
    dead.on_request = lambda request: NotSentError("connection refused")
    alive = FakeGateway(name="alive")
    policy = FallbackPolicy([dead, alive], on=(NotSentError,), breaker=breaker)
    report = await BulkDispatcher(policy, retries=0, concurrency=1).run(rows(10))
    assert report.sent == 10
    assert len(alive.accepted) == 10
    assert len(dead.requests) == 2  # the two failures that opened it, then skipped
    assert breaker.state("dead:default") == "open"


async def test_open_circuit_on_the_last_route_fails_fast() -> None:
    """A single route whose circuit is open: rows fail with CircuitOpenError, no request."""
    t = [0.0]
    breaker = CircuitBreaker(failure_threshold=1, cooldown=60, clock=lambda: t[0])
    gw = FakeGateway(name="only")
    gw.fail_next(ProviderUnavailableError(provider="only"))
    policy = FallbackPolicy([gw], breaker=breaker)
    report = await BulkDispatcher(policy, concurrency=1).run(rows(4))
    assert report.failed == 4
    assert dict(report.errors) == {"ProviderUnavailableError": 1, "CircuitOpenError": 3}
    assert len(gw.requests) == 1
    assert isinstance(report.failures[-1].error, CircuitOpenError)
    assert isinstance(report.failures[-1].error, SmsGateError)
