"""Retries: which failed requests go out again, and how long to wait first.

An SMS send is not idempotent, so the default retries only what certainly never reached
the provider (:class:`~smsgate.NotSentError`) and what the provider refused *because* we
were too fast (:class:`~smsgate.RateLimitedError`). Whatever ``on`` says, an error with
``maybe_sent=True`` (:class:`~smsgate.OutcomeUnknownError`, an unreadable answer, an HTTP
500 to a send) is **never** retried: the recipient is reported ``unknown`` and can be
reconciled through the provider's status call instead.

The shape follows stamina (``attempts``, ``wait_initial``, ``wait_max``, ``wait_jitter``,
``wait_exp_base``, an ``on`` that takes classes or a predicate) without depending on it:
the waits go through the dispatcher's injectable ``sleep`` (anyio's by default), so trio's
``MockClock`` and fake clocks control them.
"""

from __future__ import annotations

import random

import attrs

from ..exceptions import ConfigurationError, NotSentError, RateLimitedError, SmsGateError
from ._fallback import ErrorFilter, _error_filter
from ._limiter import _is_int

__all__ = ["RetryPolicy"]


def _attempts(_inst: object, _attr: attrs.Attribute[int], value: int) -> None:
    if not _is_int(value, 1):
        raise ConfigurationError(f"attempts must be an int >= 1, not {value!r}")


def _non_negative(_inst: object, attr: attrs.Attribute[float], value: float) -> None:
    if not value >= 0:
        raise ConfigurationError(f"{attr.name} must be >= 0, not {value!r}")


@attrs.frozen(kw_only=True)
class RetryPolicy:
    """Which failed requests are tried again, how often, and how long to wait between.

    Args:
        attempts: Tries per request in all (1 = never retry).
        on: Error classes (or a predicate ``f(error) -> bool``) that may be retried.
            Default: ``NotSentError`` and ``RateLimitedError``. Errors that may have been
            sent are never retried.
        wait_initial: Seconds before the first retry of a ``NotSentError``.
        wait_max: The longest wait between two tries.
        wait_exp_base: Each wait is this many times the previous one.
        wait_jitter: Up to this many seconds added at random to each wait, so that many
            requests failing together do not come back together.

    A ``RateLimitedError`` waits for the rate limiter instead: the dispatcher reports it
    to the limiter (which pauses the whole job for ``retry_after`` and slows down) and the
    retry queues for the limiter like any request.
    """

    attempts: int = attrs.field(default=4, validator=_attempts)
    on: ErrorFilter = attrs.field(default=(NotSentError, RateLimitedError), converter=_error_filter)
    wait_initial: float = attrs.field(default=0.2, validator=_non_negative)
    wait_max: float = attrs.field(default=5.0, validator=_non_negative)
    wait_exp_base: float = attrs.field(default=2.0, validator=_non_negative)
    wait_jitter: float = attrs.field(default=0.1, validator=_non_negative)

    @classmethod
    def never(cls) -> RetryPolicy:
        """A policy that never retries."""
        return cls(attempts=1)

    def should_retry(self, error: SmsGateError, attempt: int) -> bool:
        """Whether a request that failed with ``error`` on try number ``attempt`` goes again.

        Args:
            error: What the try raised.
            attempt: Which try that was (1 for the first).
        """
        if attempt >= self.attempts or error.maybe_sent:
            return False
        if isinstance(self.on, tuple):
            return isinstance(error, self.on)
        return bool(self.on(error))

    def wait(self, attempt: int, *, rng: random.Random | None = None) -> float:
        """Seconds to wait after try number ``attempt`` failed (exponential, capped, jittered)."""
        base = self.wait_initial * self.wait_exp_base ** max(0, attempt - 1)
        jitter = (rng or random).uniform(0, self.wait_jitter) if self.wait_jitter else 0.0
        return min(self.wait_max, base + jitter)


def as_retry_policy(value: RetryPolicy | int | None) -> RetryPolicy:
    """``retries=`` accepts a policy, a number of *retries* (0 = none), or ``None`` (none)."""
    if value is None:
        return RetryPolicy.never()
    if isinstance(value, RetryPolicy):
        return value
    if not _is_int(value, 0):
        raise ConfigurationError(f"retries must be a RetryPolicy or an int >= 0, not {value!r}")
    return RetryPolicy(attempts=value + 1)
