"""One text to many numbers, one request per number: the fan-out such backends share.

Some providers carry one recipient per request (Negin's ``wsSend.ashx``, the ippanel
pattern endpoints). A send to several numbers is then several requests, and the rules for
them are the same whatever the provider:

* **bounded**: at most ``workers`` requests of one call run at once; workers pull numbers
  from one iterator, so a call to 10,000 numbers makes ``workers`` tasks, not 10,000;
* **every number is accounted for**: each ends in ``sent`` (with what the provider
  returned) or in ``errors`` (its own error); numbers never tried, because an account-wide
  refusal stopped the call, get a :class:`~smsgate.NotSentError`;
* **one error to raise**: when some numbers failed, :func:`settle` raises the most relevant
  error (an outcome in doubt first, so nothing is resent blindly; then an account-wide
  refusal; else the first number's) carrying ``.receipt`` (the numbers that went out, or
  ``None``) and ``.errors`` (each failed number's error), as docs/backends/negin.md
  ("Several numbers") describes;
* **interrupted**: a cancelled call re-raises, after logging the ids already accepted, so
  that an operator can reconcile them (there is no receipt to return).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Generic, TypeVar

import anyio
import attrs

from .._models import SendReceipt
from ..exceptions import (
    AccountRestrictedError,
    AuthenticationError,
    InsufficientCreditError,
    InvalidSenderError,
    NotSentError,
    RateLimitedError,
    SmsGateError,
)

__all__ = ["ACCOUNT_WIDE", "FanOut", "fan_out", "most_relevant", "settle"]

T = TypeVar("T")

#: Errors that say every further request of this call would fail the same way: the
#: fan-out starts no new request after one (requests in flight are never cancelled).
ACCOUNT_WIDE: tuple[type[SmsGateError], ...] = (
    AuthenticationError,
    AccountRestrictedError,
    InsufficientCreditError,
    InvalidSenderError,
    RateLimitedError,
)


@attrs.frozen
class FanOut(Generic[T]):
    """What one fan-out did: each number in exactly one of the two maps.

    Attributes:
        recipients: The numbers asked for, in order.
        sent: Number -> what ``send_one`` returned, for the numbers accepted.
        errors: Number -> its error, for every other number.
    """

    recipients: tuple[str, ...]
    sent: dict[str, T]
    errors: dict[str, SmsGateError]


async def fan_out(
    recipients: Sequence[str],
    send_one: Callable[[str], Awaitable[T]],
    *,
    workers: int,
    stop_on: tuple[type[SmsGateError], ...] = ACCOUNT_WIDE,
    describe: Callable[[T], str] = str,
    logger: logging.Logger | None = None,
    provider: str = "",
) -> FanOut[T]:
    """Call ``send_one`` once per number, at most ``workers`` at a time.

    Args:
        recipients: The numbers, already normalised and without repeats.
        send_one: Sends to one number; raises a :class:`~smsgate.SmsGateError` to fail it.
        workers: The most requests of this call in flight at once (at least 1).
        stop_on: After one of these errors no further number is started.
        describe: How a sent result is named in the interruption log line (its id).
        logger: Where an interruption after some numbers went out is logged.
        provider: The provider's name, for that log line.

    Returns:
        A :class:`FanOut`; every number is in ``sent`` or ``errors``.

    Raises:
        BaseException: Cancellation or a bug (anything not a ``SmsGateError``) is re-raised
            as is, after the ids already accepted are logged.
    """
    order = tuple(recipients)
    sent: dict[str, T] = {}
    errors: dict[str, SmsGateError] = {}
    pending = iter(order)
    stop = False

    async def worker() -> None:
        nonlocal stop
        for recipient in pending:
            if stop:
                return
            try:
                sent[recipient] = await send_one(recipient)
            except SmsGateError as exc:
                errors[recipient] = exc
                if isinstance(exc, stop_on):
                    stop = True

    count = max(1, min(len(order), workers))
    try:
        if count == 1:
            await worker()  # one number (the dispatcher's way): no task group needed
        else:
            async with anyio.create_task_group() as tg:
                for _ in range(count):
                    tg.start_soon(worker)
    except BaseException:
        if sent:
            (logger or logging.getLogger("smsgate")).warning(
                "%s send interrupted after %d of %d numbers were accepted; message ids: %s",
                provider or "a",
                len(sent),
                len(order),
                ",".join(describe(s) for s in sent.values()),
            )
        raise
    for recipient in order:
        if recipient not in sent and recipient not in errors:
            errors[recipient] = NotSentError(
                "not sent: the send stopped after an account-wide refusal"
            )
    return FanOut(order, sent, errors)


def most_relevant(errors: Sequence[SmsGateError]) -> SmsGateError:
    """The error to raise for a fan-out: doubt first (do not resend), then account-wide."""
    for exc in errors:
        if exc.maybe_sent:
            return exc
    for exc in errors:
        if isinstance(exc, ACCOUNT_WIDE):
            return exc
    return errors[0]


def settle(result: FanOut[T], receipt: Callable[[Mapping[str, T]], SendReceipt]) -> SendReceipt:
    """The receipt of a fan-out with no failure; else raise its most relevant error.

    Args:
        result: What :func:`fan_out` returned.
        receipt: Builds the receipt from the numbers sent (in recipient order).

    Returns:
        The receipt, when every number was sent.

    Raises:
        SmsGateError: The most relevant error, with ``.receipt`` (the numbers that went
            out, or ``None``) and ``.errors`` (a plain dict, so the error still pickles).
    """
    done = {r: result.sent[r] for r in result.recipients if r in result.sent}
    built = receipt(done) if done else None
    if not result.errors:
        assert built is not None
        return built
    failed = {r: result.errors[r] for r in result.recipients if r in result.errors}
    exc = most_relevant(list(failed.values()))
    exc.receipt = built
    exc.errors = failed
    raise exc
