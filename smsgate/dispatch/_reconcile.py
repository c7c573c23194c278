"""Reconciliation: ask the provider what became of sends whose outcome is in doubt.

A recipient is *in doubt* when its request may have reached the provider but no answer was
read: an ``"unknown"`` :class:`~smsgate.dispatch.Outcome` (a read timeout, a dropped
connection, an unreadable answer), or a journal row left ``"pending"`` / ``"unknown"`` by a
job that died while the request was in flight. smsgate never resends those blindly: an SMS
costs money and cannot be taken back. :func:`reconcile` settles each one that can be
settled:

* **A provider id is known** (the answer was read but the job died before it was used, a
  Negin partial send's ``error.receipt``, or an id the caller found): it calls
  ``gateway.delivery(id)`` (ippanel ``op=delivery`` by bulk id; Negin ``wsStates`` by message
  id) and reads this recipient's report. Any report means the provider holds the message:
  ``"delivered"``, or ``"sent"`` (with the state, e.g. still queued, or undelivered). Either
  way it must **not** be sent again.
* **No id is known.** This is the common case, and the honest answer is that smsgate cannot
  tell: when the answer to a send is lost, so is the id it carried, and neither ippanel's
  op-style API nor Negin's ``wsStates`` can search sent messages by recipient. The result is
  ``"unknown"`` and the user decides, for example by checking the panel's outbox. Whoever
  can search the outbox (a panel export, a support ticket, a test's fake provider) may pass
  ``lookup``: given a recipient it returns the provider's id for this job's send to it, or
  ``None`` when the provider certainly has no such send, which is the only way a recipient
  becomes ``"not_sent"``.

:func:`record_reconciled` writes the settled results back to the journal, so that a rerun
of the job skips the confirmed ones (``"sent"`` rows) and sends the ``"not_sent"`` ones
(``"failed"`` rows with ``NotSentError``, a definite "nothing went out").
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Literal, Protocol

import anyio
import attrs

from .._models import DeliveryReport, DeliveryState, Message, SendReceipt
from ..exceptions import ConfigurationError, InvalidRecipientError, SmsGateError
from ._journal import Journal, JournalEntry, journal_key

__all__ = [
    "OutcomeLike",
    "Reconciled",
    "SupportsDelivery",
    "Verdict",
    "reconcile",
    "record_reconciled",
]

#: What reconciliation concluded about one recipient.
Verdict = Literal["delivered", "sent", "not_sent", "unknown"]

#: ``lookup(recipient)``: the provider's id for this job's send to ``recipient`` (E.164),
#: or ``None`` if the provider certainly has no such send.
Lookup = Callable[[str], Awaitable[str | None]]


class SupportsDelivery(Protocol):
    """All reconciliation needs of a gateway: its ``delivery`` call (every SmsGateway has it)."""

    async def delivery(self, ref: SendReceipt | str, /) -> list[DeliveryReport]:
        """The delivery state of every recipient of a send."""
        ...


class OutcomeLike(Protocol):
    """What :func:`reconcile` reads from a dispatcher :class:`~smsgate.dispatch.Outcome`."""

    @property
    def message(self) -> Message: ...

    @property
    def status(self) -> str: ...

    @property
    def receipt(self) -> SendReceipt | None: ...

    @property
    def error(self) -> SmsGateError | None: ...

    @property
    def route(self) -> str | None: ...


_IN_DOUBT_ROWS = frozenset({"pending", "unknown"})


@attrs.frozen(kw_only=True)
class Reconciled:
    """What reconciliation found out about one recipient whose send was in doubt.

    Attributes:
        recipient: The recipient, E.164.
        verdict: ``"delivered"`` (the provider reports it delivered), ``"sent"`` (the
            provider holds the message: do not resend; ``state`` says how far it got),
            ``"not_sent"`` (the ``lookup`` proved the provider has no such send: safe to
            send), or ``"unknown"`` (still in doubt: see ``reason``).
        reason: One English sentence saying why.
        message_id: The provider's id used for the query, if any.
        state: The delivery state the provider reported, if it did.
        report: The provider's report, if any.
        error: The error the status query raised, if it failed.
        key: The journal key of this recipient (for :func:`record_reconciled`).
        route: The route that handled the send, when known.
        provider: The provider's name, when known.
        source: The outcome or journal row given.
    """

    recipient: str
    verdict: Verdict
    reason: str
    message_id: str | None = None
    state: DeliveryState | None = None
    report: DeliveryReport | None = None
    error: SmsGateError | None = None
    key: str | None = None
    route: str | None = None
    provider: str | None = None
    source: object = attrs.field(default=None, repr=False, eq=False)

    @property
    def settled(self) -> bool:
        """Whether the verdict is definite (anything but ``"unknown"``)."""
        return self.verdict != "unknown"

    @property
    def may_resend(self) -> bool:
        """Whether sending this recipient again cannot make a duplicate (``"not_sent"``)."""
        return self.verdict == "not_sent"


@attrs.frozen
class _Doubt:
    recipient: str
    message_id: str | None
    key: str | None
    route: str | None
    provider: str | None
    source: object


async def reconcile(
    items: Iterable[OutcomeLike | JournalEntry],
    gateway: SupportsDelivery | Mapping[str, SupportsDelivery],
    *,
    lookup: Lookup | None = None,
    concurrency: int = 8,
) -> list[Reconciled]:
    """Ask the provider what happened to every in-doubt send among ``items``.

    Items that are not in doubt (``Outcome.status`` other than ``"unknown"``; journal rows
    other than ``"pending"``/``"unknown"``) are left out of the result. Delivery queries run
    concurrently (at most ``concurrency`` at a time), once per provider id: an ippanel bulk
    id shared by 100 recipients is asked once.

    Args:
        items: Outcomes (``report.failures``, or a stream's outcomes) and/or journal rows
            (``await journal.entries(job_id)``).
        gateway: The gateway to ask, or a mapping from route name or provider name
            (``gateway.name``) to gateway, for jobs that ran through a fallback policy.
        lookup: For items with no provider id: returns the id of this job's send to the
            recipient, or ``None`` when the provider certainly has none (only pass a lookup
            that can know, such as a complete export of the panel's outbox).
        concurrency: Delivery queries (and lookups) in flight at once.

    Returns:
        One :class:`Reconciled` per in-doubt item, in the order given.

    Raises:
        ConfigurationError: ``concurrency < 1``.
    """
    if concurrency < 1:
        raise ConfigurationError("concurrency must be at least 1")
    doubts = [d for d in (_doubt(item) for item in items) if d is not None]
    results: list[Reconciled | None] = [None] * len(doubts)
    limiter = anyio.CapacityLimiter(concurrency)

    # Step 1: find ids by lookup where none is known.
    ids: list[str | None] = [d.message_id for d in doubts]
    lookup_errors: dict[int, Exception] = {}
    if lookup is not None:

        async def find(index: int, recipient: str) -> None:
            async with limiter:
                try:
                    found = await lookup(recipient)
                except Exception as exc:
                    # The caller's own code: one failed lookup must not lose the others.
                    lookup_errors[index] = exc
                    return
            if found is None:
                results[index] = _result(
                    doubts[index],
                    "not_sent",
                    "the lookup says the provider has no send to this recipient",
                )
            else:
                ids[index] = str(found)

        async with anyio.create_task_group() as tg:
            for index, doubt in enumerate(doubts):
                if doubt.message_id is None:
                    tg.start_soon(find, index, doubt.recipient)

    # Step 2: one delivery query per (gateway, id).
    groups: dict[tuple[int, str], list[int]] = {}
    gateways: dict[int, SupportsDelivery] = {}
    for index, doubt in enumerate(doubts):
        if results[index] is not None:
            continue
        message_id = ids[index]
        if message_id is None:
            if index in lookup_errors:
                exc = lookup_errors[index]
                results[index] = _result(
                    doubt,
                    "unknown",
                    f"the lookup failed ({type(exc).__name__}); try again later",
                    error=exc if isinstance(exc, SmsGateError) else None,
                )
            else:
                results[index] = _result(
                    doubt,
                    "unknown",
                    "no provider id is known (the answer to the send was lost): check the "
                    "provider's outbox and decide whether to send again",
                )
            continue
        gw = _gateway_for(gateway, doubt)
        if gw is None:
            results[index] = _result(
                doubt,
                "unknown",
                f"no gateway given for route {doubt.route!r} / provider {doubt.provider!r}",
                message_id=message_id,
            )
            continue
        gateways[id(gw)] = gw
        groups.setdefault((id(gw), message_id), []).append(index)

    async def ask(gw: SupportsDelivery, message_id: str, members: list[int]) -> None:
        async with limiter:
            try:
                reports = await gw.delivery(message_id)
            except SmsGateError as exc:
                for index in members:
                    results[index] = _result(
                        doubts[index],
                        "unknown",
                        f"the provider's status query failed ({type(exc).__name__}); "
                        "try again later",
                        message_id=message_id,
                        error=exc,
                    )
                return
        for index in members:
            results[index] = _judge(doubts[index], message_id, reports)

    async with anyio.create_task_group() as tg:
        for (gw_id, message_id), members in groups.items():
            tg.start_soon(ask, gateways[gw_id], message_id, members)

    return [r for r in results if r is not None]


async def record_reconciled(journal: Journal, job_id: str, results: Iterable[Reconciled]) -> int:
    """Write settled results back to a job's journal, in one :meth:`Journal.record` call.

    ``"delivered"`` and ``"sent"`` become ``"sent"`` rows (a rerun skips them), with the
    delivery state the provider reported stored on the row (``delivery``,
    ``delivery_status``, ``delivery_updated``: what ``JobSummary`` counts);
    ``"not_sent"`` becomes a ``"failed"`` row with ``error="NotSentError"`` (a rerun sends it);
    ``"unknown"`` results, and results without a journal key, are not written. Where a
    result came from a journal row, the row's other fields (``parts``, ``route``...) are
    kept. Works on any :class:`~smsgate.dispatch.Journal` (memory, SQLite, PostgreSQL).

    Args:
        journal: The job's journal.
        job_id: The job.
        results: What :func:`reconcile` returned.

    Returns:
        The number of rows written.
    """
    now = time.time()
    entries: list[JournalEntry] = []
    for result in results:
        if result.key is None or not result.settled:
            continue
        source = result.source if isinstance(result.source, JournalEntry) else None
        base = source or JournalEntry(key=result.key, recipient=result.recipient, status="pending")
        if result.verdict == "not_sent":
            entries.append(
                attrs.evolve(
                    base,
                    key=result.key,
                    status="failed",
                    route=result.route,
                    provider=result.provider,
                    message_id=None,
                    error="NotSentError",
                    detail="reconciled: the provider has no record of this send",
                    updated=now,
                )
            )
        else:
            state = result.state.value if result.state is not None else "accepted"
            report = result.report
            entries.append(
                attrs.evolve(
                    base,
                    key=result.key,
                    status="sent",
                    route=result.route,
                    provider=result.provider,
                    message_id=result.message_id,
                    error=None,
                    detail=f"reconciled: {state}",
                    updated=now,
                    delivery=result.state if result.state is not None else base.delivery,
                    delivery_status=(
                        report.provider_status if report is not None else base.delivery_status
                    ),
                    delivery_updated=now if result.state is not None else base.delivery_updated,
                )
            )
    if entries:
        await journal.record(job_id, entries)
    return len(entries)


# -- helpers -------------------------------------------------------------------------------


def _doubt(item: OutcomeLike | JournalEntry) -> _Doubt | None:
    if isinstance(item, JournalEntry):
        if item.status not in _IN_DOUBT_ROWS:
            return None
        return _Doubt(
            recipient=item.recipient,
            message_id=item.message_id,
            key=item.key,
            route=item.route,
            provider=item.provider,
            source=item,
        )
    if item.status != "unknown":
        return None
    message = item.message
    recipient = getattr(item, "recipient", None)  # Outcome.recipient: E.164, when valid
    if not isinstance(recipient, str):
        try:
            recipient = message.msisdn
        except InvalidRecipientError:
            return None  # never sent anywhere: it cannot be in doubt
    ids: Mapping[str, str] = {}
    receipt = item.receipt or getattr(item.error, "receipt", None)
    provider = getattr(item.error, "provider", None)
    if isinstance(receipt, SendReceipt):
        ids = receipt.message_ids
        provider = receipt.provider
    return _Doubt(
        recipient=recipient,
        message_id=ids.get(recipient),
        key=journal_key(recipient, message.text, message.sender),
        route=item.route,
        provider=provider if isinstance(provider, str) else None,
        source=item,
    )


def _gateway_for(
    gateway: SupportsDelivery | Mapping[str, SupportsDelivery], doubt: _Doubt
) -> SupportsDelivery | None:
    if not isinstance(gateway, Mapping):
        return gateway
    for name in (doubt.route, doubt.provider):
        if name is not None and name in gateway:
            return gateway[name]
    return None


def _judge(doubt: _Doubt, message_id: str, reports: Sequence[DeliveryReport]) -> Reconciled:
    mine = [r for r in reports if r.recipient == doubt.recipient]
    if not mine and len(reports) == 1 and reports[0].recipient is None:
        mine = list(reports)  # a bare id names one message (Negin): its report is ours
    if not mine:
        return _result(
            doubt,
            "unknown",
            "the provider's report for this id does not mention this recipient",
            message_id=message_id,
        )
    report = mine[0]
    if report.state is DeliveryState.DELIVERED:
        verdict: Verdict = "delivered"
        reason = "the provider reports it delivered"
    else:
        verdict = "sent"
        reason = (
            f"the provider holds the message (state {report.state.value}, "
            f"provider status {report.provider_status!r}); do not send it again"
        )
    return _result(doubt, verdict, reason, message_id=message_id, state=report.state, report=report)


def _result(
    doubt: _Doubt,
    verdict: Verdict,
    reason: str,
    *,
    message_id: str | None = None,
    state: DeliveryState | None = None,
    report: DeliveryReport | None = None,
    error: SmsGateError | None = None,
) -> Reconciled:
    return Reconciled(
        recipient=doubt.recipient,
        verdict=verdict,
        reason=reason,
        message_id=message_id,
        state=state,
        report=report,
        error=error,
        key=doubt.key,
        route=doubt.route,
        provider=doubt.provider or (report.provider if report and report.provider else None),
        source=doubt.source,
    )
