"""Where smsgate reports what it does, for an observer such as ``smsgate.otel``.

The code calls these functions at the places worth observing: each provider request
(:func:`request`), each recipient's outcome in a bulk job (:func:`outcome`), each wait for
the rate limiter (:func:`limiter_wait`) and each circuit breaker change
(:func:`breaker_state`). They do nothing until an observer is installed
(:func:`install`), and cost one global read each then.

An observer never sees a password, a message text or a full phone number: the calls carry
counts, names and error classes only.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from contextvars import ContextVar, Token
from types import TracebackType
from typing import Protocol

__all__ = [
    "Observer",
    "breaker_state",
    "current",
    "install",
    "limiter_wait",
    "outcome",
    "request",
    "uninstall",
]


class Observer(Protocol):
    """What an observer implements (``smsgate.otel`` is one)."""

    def request(
        self, *, provider: str, operation: str, recipients: int, parts: int, attempt: int
    ) -> AbstractContextManager[object]:
        """A context around one provider request; an exception leaving it is the outcome."""
        ...

    def outcome(self, *, provider: str | None, route: str | None, status: str, count: int) -> None:
        """``count`` recipients of a bulk job ended with ``status`` (sent, failed, ...)."""
        ...

    def limiter_wait(self, seconds: float) -> None:
        """A request waited ``seconds`` for the rate limiter."""
        ...

    def breaker_state(self, route: str, state: str) -> None:
        """A route's circuit breaker is now ``state`` (closed, open, half_open)."""
        ...


_observer: Observer | None = None
_NOTHING: AbstractContextManager[None] = nullcontext()
# Set while a request's context is open in this task: a backend opens it around the
# request *and* the reading of the answer (so a refusal it decodes is the outcome), and the
# HTTP base's own call inside it then adds no second span.
_inside: ContextVar[bool] = ContextVar("smsgate_telemetry_inside", default=False)


class _Scope:
    """The observer's context, marked as open for the task while it runs."""

    __slots__ = ("_inner", "_token")

    def __init__(self, inner: AbstractContextManager[object]) -> None:
        self._inner = inner
        self._token: Token[bool] | None = None

    def __enter__(self) -> object:
        self._token = _inside.set(True)
        return self._inner.__enter__()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        try:
            return self._inner.__exit__(exc_type, exc, tb)
        finally:
            if self._token is not None:
                _inside.reset(self._token)


def install(observer: Observer) -> None:
    """Send every later event to ``observer`` (replacing any other)."""
    global _observer
    _observer = observer


def uninstall() -> None:
    """Stop reporting (the calls are no-ops again)."""
    global _observer
    _observer = None


def current() -> Observer | None:
    """The installed observer, if any."""
    return _observer


def request(
    provider: str, operation: str, *, recipients: int = 0, parts: int = 0, attempt: int = 1
) -> AbstractContextManager[object]:
    """A context manager around one provider request (a no-op without an observer).

    Opened inside another request's context (a backend's, around request and answer), it
    does nothing: one span per request.
    """
    observer = _observer
    if observer is None or _inside.get():
        return _NOTHING
    return _Scope(
        observer.request(
            provider=provider,
            operation=operation,
            recipients=recipients,
            parts=parts,
            attempt=attempt,
        )
    )


def outcome(provider: str | None, route: str | None, status: str, count: int = 1) -> None:
    """Report ``count`` recipients ending with ``status``."""
    observer = _observer
    if observer is not None:
        observer.outcome(provider=provider, route=route, status=status, count=count)


def limiter_wait(seconds: float) -> None:
    """Report a wait for the rate limiter."""
    observer = _observer
    if observer is not None:
        observer.limiter_wait(seconds)


def breaker_state(route: str, state: str) -> None:
    """Report a circuit breaker's new state."""
    observer = _observer
    if observer is not None:
        observer.breaker_state(route, state)
