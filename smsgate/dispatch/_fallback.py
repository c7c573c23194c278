"""Fallback: which route to try next for a recipient the current route could not reach.

A :class:`Route` is a gateway plus the line to send from; a :class:`FallbackPolicy` is an
ordered list of routes and the errors that move a recipient to the next one. The classic
Iranian chain is *advertising line -> second line -> Chelcheleh -> another provider*: an
advertising line cannot reach numbers on the operators' opt-out list
(:class:`~smsgate.RecipientOptedOutError`), a service line or another provider still can.

The policy is a frozen value and knows nothing of the dispatcher (STYLE.md R10). Two rules
hold whatever ``on`` says:

* an error with ``maybe_sent=True`` (a timeout after the request went out, an unreadable
  answer, an HTTP 500 to a send) **never** falls back: the first route may have sent it,
  and a second route would make the recipient pay attention twice;
* a route whose circuit breaker is open (see :class:`RouteBreaker`) is skipped, whatever
  ``on`` says: nothing was sent on it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol, runtime_checkable

import attrs

from .._gateway import SmsGateway
from ..exceptions import ConfigurationError, RecipientOptedOutError, SmsGateError
from ._window import WindowSetting, check_setting

__all__ = ["ErrorFilter", "FallbackPolicy", "Route", "RouteBreaker"]

#: Which errors trigger something: exception classes, or a predicate over the error.
ErrorFilter = tuple[type[SmsGateError], ...] | Callable[[SmsGateError], bool]


def _route_name(name: str | None, self_: Any) -> str:
    if name is None:
        return f"{self_.gateway.name}:{self_.sender or 'default'}"
    if not name or not isinstance(name, str):
        raise ConfigurationError(f"a route name must be a non-empty str, not {name!r}")
    return name


def _check_gateway(value: SmsGateway) -> SmsGateway:
    # A converter, not a validator: it must run before the name's converter reads
    # gateway.name. Structural, and only what the dispatcher uses (doubles need no delivery).
    missing = [a for a in ("name", "max_recipients", "send") if not hasattr(value, a)]
    if missing:
        raise ConfigurationError(
            f"{type(value).__name__} is not an SmsGateway (missing {', '.join(missing)})"
        )
    max_recipients = value.max_recipients
    if isinstance(max_recipients, bool) or not isinstance(max_recipients, int):
        raise ConfigurationError(f"{type(value).__name__}.max_recipients must be an int")
    if max_recipients < 1:
        raise ConfigurationError(f"{type(value).__name__}.max_recipients must be >= 1")
    return value


def _optional_sender(value: object) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise ConfigurationError(f"a route's sender must be a str or None, not {value!r}")


@attrs.frozen
class Route:
    """One way to reach a recipient: a gateway and the line to send from.

    Args:
        gateway: Any :class:`~smsgate.SmsGateway`.
        sender: The line to send from on this route; ``None`` uses the message's own
            sender, or else the gateway's default line. A route's sender, when set, wins
            over the message's: that is what makes ``Route(gw, sender=LINE2)`` a second
            line.
        name: The name outcomes and journals use; defaults to
            ``"<gateway.name>:<sender or 'default'>"``.
        send_window: This route's :class:`~smsgate.SendWindow`, ``None`` for none, or
            ``"auto"`` (the default): whatever the dispatcher's ``send_window`` says.

    Raises:
        ConfigurationError: If ``gateway`` lacks ``name``/``max_recipients``/``send``.
    """

    gateway: SmsGateway = attrs.field(converter=_check_gateway, eq=False)
    sender: str | None = attrs.field(default=None, kw_only=True, converter=_optional_sender)
    name: str = attrs.field(
        default=None,
        kw_only=True,
        # mypy's attrs plugin cannot read Converter objects yet; the field is a str.
        converter=attrs.Converter(_route_name, takes_self=True),  # type: ignore[misc]
    )
    send_window: WindowSetting = attrs.field(
        default="auto", kw_only=True, converter=check_setting, eq=False
    )

    def sender_for(self, message_sender: str | None) -> str | None:
        """The line a message with ``message_sender`` goes out from on this route."""
        return self.sender if self.sender is not None else message_sender


@runtime_checkable
class RouteBreaker(Protocol):
    """A circuit breaker per route (``CircuitBreaker`` in ``smsgate.dispatch`` is one).

    Before each request on a route the dispatcher calls :meth:`acquire`; ``None`` means
    "skip this route now" (the recipients move to the next route whatever ``on`` says,
    because nothing was sent). Otherwise the request is made and the permit handed back
    to :meth:`record` with ``None`` (success) or the exception it ended with (a provider
    refusal, a transport error, or a cancellation).
    """

    def acquire(self, route: str) -> Any:
        """A permit for one request on ``route``, or ``None`` to skip the route."""
        ...

    def record(self, permit: Any, error: BaseException | None = None) -> None:
        """Report how the request made under ``permit`` ended."""
        ...


def _routes(value: Iterable[Route | SmsGateway]) -> tuple[Route, ...]:
    if isinstance(value, Route) or hasattr(value, "send"):
        raise ConfigurationError("FallbackPolicy takes a list of routes, not a single one")
    routes = tuple(r if isinstance(r, Route) else Route(r) for r in value)
    if not routes:
        raise ConfigurationError("a FallbackPolicy needs at least one route")
    seen: set[str] = set()
    for route in routes:
        if route.name in seen:
            raise ConfigurationError(
                f"route names must be unique within a policy; {route.name!r} appears twice "
                "(pass name=... to tell them apart)"
            )
        seen.add(route.name)
    return routes


def _error_filter(value: object) -> ErrorFilter:
    if isinstance(value, type):
        value = (value,)
    if isinstance(value, list | tuple | set | frozenset):
        classes = tuple(value)
        for cls in classes:
            if not (isinstance(cls, type) and issubclass(cls, SmsGateError)):
                raise ConfigurationError(f"on= takes SmsGateError subclasses, not {cls!r}")
        return classes
    if callable(value):
        return value
    raise ConfigurationError(f"on= takes error classes or a predicate, not {value!r}")


@attrs.frozen
class FallbackPolicy:
    """An ordered list of routes and the errors that move a recipient to the next one.

    >>> policy = FallbackPolicy(                                  # doctest: +SKIP
    ...     [Route(gw, sender="3000505"), Route(gw, sender="9830001"), Route(other_gw)],
    ...     on=(RecipientOptedOutError, ProviderUnavailableError, NotSentError),
    ... )

    Args:
        routes: The routes, first choice first (plain gateways are wrapped in a
            :class:`Route`). Names must be unique.
        on: The errors that send a recipient to the next route: error classes, or a
            predicate ``f(error) -> bool``. Default: only ``RecipientOptedOutError``; add
            ``ProviderUnavailableError`` and/or ``NotSentError`` to also route around a
            line or provider that is down. An error with ``maybe_sent=True`` never falls
            back, whatever ``on`` says.
        breaker: Optional :class:`RouteBreaker` (e.g. ``CircuitBreaker()``), shared by
            every route of the policy; routes whose circuit is open are skipped.

    Raises:
        ConfigurationError: For no routes, duplicate names or a bad ``on``.
    """

    routes: tuple[Route, ...] = attrs.field(converter=_routes)
    on: ErrorFilter = attrs.field(
        default=(RecipientOptedOutError,), kw_only=True, converter=_error_filter
    )
    breaker: RouteBreaker | None = attrs.field(default=None, kw_only=True, eq=False)

    @classmethod
    def single(cls, gateway: SmsGateway, *, sender: str | None = None) -> FallbackPolicy:
        """A policy of one route: what ``BulkDispatcher(gateway)`` uses."""
        return cls([Route(gateway, sender=sender)])

    def __len__(self) -> int:
        return len(self.routes)

    def should_fall_back(self, error: SmsGateError) -> bool:
        """Whether ``error`` moves a recipient to the next route.

        Never for an error that may have been sent (``maybe_sent``).
        """
        if error.maybe_sent:
            return False
        if isinstance(self.on, tuple):
            return isinstance(error, self.on)
        return bool(self.on(error))

    def names(self) -> Sequence[str]:
        """The route names, in order."""
        return [r.name for r in self.routes]
