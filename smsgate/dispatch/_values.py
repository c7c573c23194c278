"""The values a bulk job produces: one :class:`Outcome` per row, a :class:`BulkReport`, the
:class:`Progress` events, and the dry run's :class:`Estimate`."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from types import MappingProxyType
from typing import Literal

import attrs

from .._models import Message, SendReceipt
from ..exceptions import InsufficientCreditError, SmsGateError

__all__ = ["BulkReport", "Estimate", "Outcome", "OutcomeStatus", "Progress"]

#: What happened to one row of a bulk job.
OutcomeStatus = Literal["sent", "failed", "unknown", "skipped"]

#: ``Outcome.reason``: a repeat of an earlier row of the job (same recipient, text, line).
REASON_DUPLICATE = "duplicate"
#: ``Outcome.reason``: the number is not a valid mobile number.
REASON_INVALID_RECIPIENT = "invalid recipient"
#: ``Outcome.reason``: the text cannot be sent (empty, a lone surrogate, too long).
REASON_INVALID_MESSAGE = "invalid message"
#: ``Outcome.reason``: the journal says this row was sent (an earlier or concurrent run).
REASON_ALREADY_SENT = "already sent (journal)"
#: ``Outcome.reason``: another run holds the row pending or in doubt: not sent again.
REASON_IN_DOUBT = "in doubt from an earlier run (journal)"
#: ``Outcome.reason``: the request may have gone out (a timeout after sending...).
REASON_MAYBE_SENT = "may have been sent"
#: ``Outcome.reason``: no route was left to try.
REASON_ROUTES_EXHAUSTED = "no route left"
#: ``Outcome.reason``: a concurrent run of this job on this dispatcher took the row (no
#: journal).
REASON_CLAIMED_BY_RUN = "taken by another run of this job"
#: ``Outcome.reason``: the same message reached this recipient in another job of the
#: journal within ``recent_window`` seconds.
REASON_SENT_RECENTLY = "sent recently (another job)"
#: ``Outcome.reason``: the job stopped before this row was sent (``JobStoppedError``).
REASON_JOB_STOPPED = "the job stopped before it was sent"


@attrs.frozen(kw_only=True)
class Outcome:
    """What happened to one row (one recipient) of a bulk job.

    Attributes:
        message: The row as given.
        status: ``"sent"`` (the provider accepted it), ``"failed"`` (refused, or never
            sent: safe to send again later), ``"unknown"`` (it may have gone out:
            reconcile, do not resend) or ``"skipped"`` (a duplicate within the job, or
            already sent by an earlier run of the same job).
        recipient: The number in E.164 form, or ``None`` if it was not a valid number.
        receipt: The provider's receipt for the request that carried it (shared by every
            recipient of a batch), when sent.
        error: The error that decided a ``failed`` or ``unknown`` status.
        route: The name of the route that sent it (or, if it failed, the last route tried).
        reason: A short explanation for outcomes that are not plain sends or refusals:
            ``"duplicate"``, ``"invalid recipient"``, ``"already sent (journal)"``,
            ``"in doubt from an earlier run (journal)"``, ``"may have been sent"``...
    """

    message: Message
    status: OutcomeStatus
    recipient: str | None = None
    receipt: SendReceipt | None = None
    error: SmsGateError | None = None
    route: str | None = None
    reason: str | None = None

    @property
    def message_id(self) -> str | None:
        """The provider's id for this recipient (for ``delivery()``), when sent."""
        if self.receipt is None:
            return None
        if self.recipient is not None:
            found = self.receipt.message_ids.get(self.recipient)
            if found is not None:
                return found
        return self.receipt.message_id


def _frozen_counts(value: Mapping[str, int]) -> Mapping[str, int]:
    return MappingProxyType(dict(value))


@attrs.frozen(kw_only=True)
class BulkReport:
    """The end of a bulk job: every row accounted for.

    ``sent + failed + unknown + skipped == total`` always holds.

    Attributes:
        total: Rows read.
        sent: Rows the provider accepted.
        failed: Rows refused or never sent (invalid numbers included).
        unknown: Rows that may have been sent (reconcile them; never resend blindly).
        skipped: Duplicates within the job and rows an earlier run already sent.
        requests: Provider requests made (``send`` calls, retries included).
        elapsed: Seconds from start to end.
        errors: Error class name to the number of ``failed``/``unknown`` rows it decided.
        failures: The ``failed`` and ``unknown`` outcomes, in the order they finished.
        job_id: The job's id.
        duplicates: How many of ``skipped`` were duplicates within this run.
        invalid: How many of ``failed`` were invalid numbers or texts (no request made).
        retries: Requests that were retries of an earlier one.
        stopped: Why the job stopped before reading all its input (``stop`` was set, or an
            account-wide error such as a wrong password), or ``None`` if it ran to the end.
            Rows admitted but not sent are ``failed`` with ``JobStoppedError``; rows never
            read are not counted.
    """

    total: int
    sent: int
    failed: int
    unknown: int
    skipped: int
    requests: int
    elapsed: float
    errors: Mapping[str, int] = attrs.field(factory=dict, converter=_frozen_counts)
    failures: tuple[Outcome, ...] = ()
    job_id: str = "default"
    duplicates: int = 0
    invalid: int = 0
    retries: int = 0
    stopped: str | None = None

    @property
    def ok(self) -> bool:
        """Whether nothing failed and nothing is in doubt."""
        return self.failed == 0 and self.unknown == 0

    def summary(self) -> str:
        """One line for logs and the command line."""
        rate = self.total / self.elapsed if self.elapsed > 0 else 0.0
        errors = ", ".join(f"{k}={v}" for k, v in sorted(self.errors.items()))
        return (
            f"job {self.job_id!r}: {self.total} rows: {self.sent} sent, {self.failed} failed, "
            f"{self.unknown} unknown, {self.skipped} skipped ({self.duplicates} duplicates); "
            f"{self.requests} requests in {self.elapsed:.2f}s ({rate:.0f} rows/s)"
            + (f"; errors: {errors}" if errors else "")
            + (f"; stopped: {self.stopped}" if self.stopped else "")
        )


@attrs.frozen(kw_only=True)
class Progress:
    """A progress event, handed to ``BulkDispatcher(on_progress=...)`` a few times a second.

    Attributes:
        job_id: The job's id.
        total: Rows expected (``len()`` of the input, or ``total=`` given to ``run``),
            or ``None`` when unknown (a generator).
        read: Rows read from the input so far.
        done: Rows with an outcome so far.
        sent: ``sent`` outcomes so far (likewise the next three).
        failed: ``failed`` outcomes so far.
        unknown: ``unknown`` outcomes so far.
        skipped: ``skipped`` outcomes so far.
        requests: Provider requests so far.
        in_flight: Requests being sent now.
        elapsed: Seconds since the job started.
        rate: Recent outcomes per second (smoothed).
        eta: Seconds left at that rate, when ``total`` is known.
        final: Whether this is the last event of the job.
        paused_until: While the job waits for its send window to open: when it opens
            (seconds since the epoch); ``None`` when not paused.
        stopped: Why the job is stopping early, once it is; else ``None``.
    """

    job_id: str
    total: int | None
    read: int
    done: int
    sent: int
    failed: int
    unknown: int
    skipped: int
    requests: int
    in_flight: int
    elapsed: float
    rate: float
    eta: float | None
    final: bool = False
    paused_until: float | None = None
    stopped: str | None = None

    @property
    def fraction(self) -> float | None:
        """``done / total`` in [0, 1], when the total is known."""
        if not self.total:
            return None
        return min(1.0, self.done / self.total)


@attrs.frozen(kw_only=True)
class Estimate:
    """A dry run: what a job would send and cost, computed before anything is sent.

    Attributes:
        rows: Rows read.
        recipients: Rows that would be sent (valid, not duplicates, not already done).
        duplicates: Rows that repeat an earlier (recipient, text, sender).
        invalid: Rows with an invalid number or an empty text.
        already_done: Rows an earlier run of the job (the journal) sent or left in doubt.
        requests: Provider requests needed on the first route with full batches (a
            lower bound: the dispatcher closes partial batches after ``linger`` and when
            more than a window of texts are open at once).
        parts: SMS parts billed (parts of the text times recipients).
        price_per_part: Rial per part, when given.
        cost: ``parts * price_per_part``, when the price is given.
        credit: The account's credit on the first route, where the gateway can tell it.
        provider: That gateway's name.
    """

    rows: int
    recipients: int
    duplicates: int
    invalid: int
    already_done: int
    requests: int
    parts: int
    price_per_part: Decimal | None = None
    cost: Decimal | None = None
    credit: Decimal | None = None
    provider: str | None = None

    @property
    def sufficient(self) -> bool | None:
        """Whether the credit covers the cost; ``None`` when either is unknown."""
        if self.cost is None or self.credit is None:
            return None
        return self.cost <= self.credit

    def check(self) -> None:
        """Raise if the account's credit is known not to cover the job.

        Raises:
            InsufficientCreditError: With the cost, the credit and the shortfall.
        """
        if self.sufficient is False:
            assert self.cost is not None and self.credit is not None
            raise InsufficientCreditError(
                f"the job needs {self.cost} Rial ({self.parts} SMS parts for "
                f"{self.recipients} recipients) but the account has {self.credit} Rial "
                f"({self.cost - self.credit} short); nothing was sent",
                provider=self.provider or "unknown",
            )
