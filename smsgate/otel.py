"""OpenTelemetry for smsgate: a span per provider request, and metrics (the ``otel`` extra).

::

    import smsgate.otel

    smsgate.otel.instrument()      # the global tracer and meter providers, or pass your own

Under asyncio smsgate talks HTTP through aiohttp, so an application's httpx (or aiohttp)
instrumentation does not see these requests reliably: smsgate reports them itself, through
the hooks of ``smsgate._telemetry`` that the HTTP base and the dispatcher call. Only
``opentelemetry-api`` is needed; without a configured SDK everything is a no-op.

Spans (one per provider request, kind ``CLIENT``), named ``smsgate.request <operation>``:

=========================  ==========================================================
attribute                  value
=========================  ==========================================================
``smsgate.provider``       ``"ippanel"``, ``"negin"``
``smsgate.operation``      the provider operation (``"send"``, ``"delivery"``...)
``smsgate.recipients``     numbers in the request
``smsgate.parts``          SMS parts of the text (per recipient)
``smsgate.attempt``        1 for the first try, 2 for the first retry...
``smsgate.retry``          whether this request is a retry
``smsgate.outcome``        ``ok``, ``not_sent``, ``maybe_sent``, ``refused``,
                           ``cancelled`` or ``error``
``error.type``             the error class name, when not ``ok``
=========================  ==========================================================

Metrics (meter ``smsgate``):

=================================  ==============  ========================================
name                               kind            attributes
=================================  ==============  ========================================
``smsgate.requests``               counter         provider, operation, outcome
``smsgate.request.duration``       histogram (s)   provider, operation, outcome
``smsgate.parts``                  counter         provider (parts x recipients of the
                                                   ``ok`` requests that carry a text)
``smsgate.recipients``             counter         provider, route, status (bulk outcomes:
                                                   sent, failed, unknown, skipped)
``smsgate.limiter.wait``           histogram (s)   (none)
``smsgate.breaker.state``          gauge           route (0 closed, 1 half open, 2 open)
``smsgate.breaker.transitions``    counter         route, state
=================================  ==============  ========================================

No attribute ever holds a password, a message text or a phone number: the hooks carry
counts, names and error classes only, and an exception's message is never recorded (it
may name a number).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from types import TracebackType
from typing import Any

from opentelemetry import metrics, trace
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.trace import SpanKind, Status, StatusCode

from . import _telemetry
from ._version import __version__
from .exceptions import ProviderError, SmsGateError

__all__ = ["BREAKER_STATES", "OtelObserver", "classify", "instrument", "uninstrument"]

#: The value ``smsgate.breaker.state`` reports for each circuit state.
BREAKER_STATES: dict[str, int] = {"closed": 0, "half_open": 1, "open": 2}

_SCOPE = "smsgate"


def classify(error: BaseException | None) -> str:
    """The outcome class of a request that ended with ``error`` (``None``: success).

    ``maybe_sent`` (the request may have gone out: never retried blindly), ``refused``
    (the provider answered no), ``not_sent`` (certainly never reached the provider),
    ``cancelled`` or ``error`` (anything else, e.g. a bug).
    """
    if error is None:
        return "ok"
    if isinstance(error, SmsGateError):
        if error.maybe_sent:
            return "maybe_sent"
        if isinstance(error, ProviderError):
            return "refused"
        return "not_sent"
    import anyio

    try:
        cancelled = anyio.get_cancelled_exc_class()
    except Exception:  # no async library running (a sync caller)
        cancelled = None
    if cancelled is not None and isinstance(error, cancelled):
        return "cancelled"
    if type(error).__name__ in ("CancelledError", "Cancelled"):
        return "cancelled"
    return "error"


class _RequestScope:
    """The span and measurements of one provider request."""

    __slots__ = ("_attrs", "_cm", "_observer", "_parts", "_recipients", "_span", "_started")

    def __init__(
        self, observer: OtelObserver, attributes: dict[str, Any], recipients: int, parts: int
    ) -> None:
        self._observer = observer
        self._attrs = attributes
        self._recipients = recipients
        self._parts = parts
        self._cm: Any = None
        self._span: Any = None
        self._started = 0.0

    def __enter__(self) -> Any:
        name = f"smsgate.request {self._attrs['smsgate.operation']}"
        self._cm = self._observer.tracer.start_as_current_span(
            name,
            kind=SpanKind.CLIENT,
            attributes=self._attrs,
            record_exception=False,  # messages may name a number: only the class is kept
            set_status_on_exception=False,
        )
        self._span = self._cm.__enter__()
        self._started = time.perf_counter()
        return self._span

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        elapsed = time.perf_counter() - self._started
        outcome = classify(exc)
        span = self._span
        span.set_attribute("smsgate.outcome", outcome)
        if outcome != "ok":
            error_type = type(exc).__name__
            span.set_attribute("error.type", error_type)
            span.set_status(Status(StatusCode.ERROR, error_type))
        self._cm.__exit__(exc_type, exc, tb)
        self._observer._count_request(self._attrs, outcome, elapsed, self._recipients, self._parts)


class OtelObserver:
    """The ``smsgate._telemetry`` observer that reports to OpenTelemetry.

    Args:
        tracer_provider: Where spans go; ``None``: the global tracer provider.
        meter_provider: Where metrics go; ``None``: the global meter provider.
    """

    def __init__(self, tracer_provider: Any = None, meter_provider: Any = None) -> None:
        self.tracer = trace.get_tracer(_SCOPE, __version__, tracer_provider=tracer_provider)
        meter = metrics.get_meter(_SCOPE, __version__, meter_provider=meter_provider)
        self._requests = meter.create_counter(
            "smsgate.requests", unit="{request}", description="Provider requests made"
        )
        self._duration = meter.create_histogram(
            "smsgate.request.duration", unit="s", description="Provider request latency"
        )
        self._parts = meter.create_counter(
            "smsgate.parts", unit="{part}", description="SMS parts accepted by the provider"
        )
        self._recipients = meter.create_counter(
            "smsgate.recipients",
            unit="{recipient}",
            description="Bulk recipients by final status",
        )
        self._limiter_wait = meter.create_histogram(
            "smsgate.limiter.wait", unit="s", description="Waits for the rate limiter"
        )
        self._transitions = meter.create_counter(
            "smsgate.breaker.transitions",
            unit="{transition}",
            description="Circuit breaker state changes",
        )
        self._breakers: dict[str, int] = {}
        self._lock = threading.Lock()
        meter.create_observable_gauge(
            "smsgate.breaker.state",
            callbacks=[self._observe_breakers],
            description="Circuit breaker state per route: 0 closed, 1 half open, 2 open",
        )

    # -- the Observer protocol of smsgate._telemetry ---------------------------------------

    def request(
        self, *, provider: str, operation: str, recipients: int, parts: int, attempt: int
    ) -> _RequestScope:
        """A span (and measurements) around one provider request."""
        attributes: dict[str, Any] = {
            "smsgate.provider": provider,
            "smsgate.operation": operation,
            "smsgate.recipients": recipients,
            "smsgate.parts": parts,
            "smsgate.attempt": attempt,
            "smsgate.retry": attempt > 1,
        }
        return _RequestScope(self, attributes, recipients, parts)

    def outcome(self, *, provider: str | None, route: str | None, status: str, count: int) -> None:
        """Count bulk recipients by final status."""
        self._recipients.add(
            count,
            {
                "smsgate.provider": provider or "",
                "smsgate.route": route or "",
                "smsgate.status": status,
            },
        )

    def limiter_wait(self, seconds: float) -> None:
        """Record a wait for the rate limiter."""
        self._limiter_wait.record(max(0.0, seconds))

    def breaker_state(self, route: str, state: str) -> None:
        """Remember a route's breaker state (reported by the gauge) and count the change."""
        with self._lock:
            self._breakers[route] = BREAKER_STATES.get(state, -1)
        self._transitions.add(1, {"smsgate.route": route, "smsgate.state": state})

    # -- helpers ---------------------------------------------------------------------------

    def _count_request(
        self, attrs: dict[str, Any], outcome: str, elapsed: float, recipients: int, parts: int
    ) -> None:
        labels = {
            "smsgate.provider": attrs["smsgate.provider"],
            "smsgate.operation": attrs["smsgate.operation"],
            "smsgate.outcome": outcome,
        }
        self._requests.add(1, labels)
        self._duration.record(elapsed, labels)
        if outcome == "ok" and parts > 0:  # only requests that carry a text give parts
            provider = {"smsgate.provider": labels["smsgate.provider"]}
            self._parts.add(parts * max(1, recipients), provider)

    def _observe_breakers(self, _options: CallbackOptions) -> Iterable[Observation]:
        with self._lock:
            states = list(self._breakers.items())
        return [Observation(value, {"smsgate.route": route}) for route, value in states]


def instrument(tracer_provider: Any = None, meter_provider: Any = None) -> OtelObserver:
    """Report every later provider request and bulk outcome to OpenTelemetry.

    Args:
        tracer_provider: Where spans go; ``None``: OpenTelemetry's global provider.
        meter_provider: Where metrics go; ``None``: OpenTelemetry's global provider.

    Returns:
        The installed observer (replacing any other smsgate observer).
    """
    observer = OtelObserver(tracer_provider, meter_provider)
    _telemetry.install(observer)
    return observer


def uninstrument() -> None:
    """Stop reporting to OpenTelemetry (smsgate's hooks become no-ops again)."""
    if isinstance(_telemetry.current(), OtelObserver):
        _telemetry.uninstall()
