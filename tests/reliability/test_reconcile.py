"""reconcile(): in-doubt sends settled through the provider's delivery call, never guessed."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

import smsgate
from smsgate import DeliveryReport, DeliveryState, Message, SendReceipt
from smsgate.dispatch import (
    JournalEntry,
    MemoryJournal,
    Outcome,
    journal_key,
    reconcile,
    record_reconciled,
)
from smsgate.testing import FakeClock, FakeProvider

from ._support import asgi_client

pytestmark = pytest.mark.anyio

A, B, C = "+989121111111", "+989122222222", "+989123333333"


class StubGateway:
    """Answers delivery() from a table; counts the queries."""

    name = "stub"
    max_recipients = 100

    def __init__(self, table: dict[str, list[DeliveryReport]] | None = None) -> None:
        self.table = table or {}
        self.queries: list[str] = []

    async def send(
        self, to: str | Sequence[str], text: str, *, sender: str | None = None
    ) -> SendReceipt:
        raise AssertionError("reconciliation must never send")

    async def delivery(self, ref: SendReceipt | str, /) -> list[DeliveryReport]:
        message_id = ref if isinstance(ref, str) else ref.message_id
        self.queries.append(message_id)
        if message_id not in self.table:
            raise smsgate.UnknownMessageError(provider="stub", code="null")
        return self.table[message_id]


def report(message_id: str, recipient: str | None, state: DeliveryState) -> DeliveryReport:
    return DeliveryReport(
        message_id=message_id, recipient=recipient, state=state, provider_status=state.value
    )


def row(recipient: str, status: str = "pending", **fields: object) -> JournalEntry:
    return JournalEntry(
        key=journal_key(recipient, "hi", None),
        recipient=recipient,
        status=status,  # type: ignore[arg-type]
        **fields,  # type: ignore[arg-type]
    )


async def test_known_ids_are_asked_once_per_bulk() -> None:
    """Rows with a provider id get a verdict from delivery(); a shared bulk id is asked once."""
    gw = StubGateway(
        {
            "900": [
                report("900", A, DeliveryState.DELIVERED),
                report("900", B, DeliveryState.AT_OPERATOR),
            ]
        }
    )
    results = await reconcile([row(A, message_id="900"), row(B, "unknown", message_id="900")], gw)
    assert [(r.recipient, r.verdict, r.state) for r in results] == [
        (A, "delivered", DeliveryState.DELIVERED),
        (B, "sent", DeliveryState.AT_OPERATOR),
    ]
    assert gw.queries == ["900"]
    assert all(r.settled and not r.may_resend for r in results)


async def test_no_id_means_unknown_and_the_user_decides() -> None:
    """Without an id (the answer was lost) the result stays unknown, with a reason saying so."""
    gw = StubGateway()
    [result] = await reconcile([row(A)], gw)
    assert result.verdict == "unknown"
    assert "no provider id" in result.reason
    assert "outbox" in result.reason
    assert not result.settled
    assert gw.queries == []


async def test_lookup_finds_ids_or_proves_absence() -> None:
    """A lookup's id is queried; its None proves not_sent; its failure leaves unknown."""
    gw = StubGateway({"77": [report("77", None, DeliveryState.QUEUED)]})

    async def lookup(recipient: str) -> str | None:
        if recipient == C:
            raise RuntimeError("outbox export unavailable")
        return {A: "77"}.get(recipient)

    results = await reconcile([row(A), row(B), row(C)], gw, lookup=lookup)
    verdicts = {r.recipient: r for r in results}
    assert verdicts[A].verdict == "sent"  # a bare Negin-style id: the single report is ours
    assert verdicts[A].message_id == "77"
    assert verdicts[B].verdict == "not_sent"
    assert verdicts[B].may_resend
    assert verdicts[C].verdict == "unknown"
    assert "RuntimeError" in verdicts[C].reason


async def test_status_query_errors_leave_unknown() -> None:
    """An id the provider does not know, or a report without this recipient, stays unknown."""
    gw = StubGateway({"5": [report("5", B, DeliveryState.DELIVERED)]})
    results = await reconcile([row(A, message_id="404"), row(A, "unknown", message_id="5")], gw)
    assert [r.verdict for r in results] == ["unknown", "unknown"]
    assert isinstance(results[0].error, smsgate.UnknownMessageError)
    assert "does not mention" in results[1].reason


async def test_settled_items_are_left_out() -> None:
    """Sent/failed rows and sent/failed/skipped outcomes are not in doubt: not in the result."""
    gw = StubGateway()
    msg = Message(to="09121111111", text="hi")
    items: list[object] = [
        row(A, "sent"),
        row(A, "failed"),
        Outcome(message=msg, status="sent", recipient=A),
        Outcome(message=msg, status="skipped", recipient=A),
        Outcome(message=Message(to="not a number", text="hi"), status="unknown"),
    ]
    assert await reconcile(items, gw) == []  # type: ignore[arg-type]


async def test_outcomes_with_a_partial_receipt() -> None:
    """An unknown outcome whose error carries a partial receipt is reconciled by its id."""
    gw = StubGateway({"31": [report("31", None, DeliveryState.DELIVERED)]})
    error = smsgate.OutcomeUnknownError("timeout")
    error.receipt = SendReceipt(
        message_id="31", message_ids={A: "31"}, provider="negin", recipients=(A,)
    )
    outcome = Outcome(
        message=Message(to="09121111111", text="hi"),
        status="unknown",
        recipient=A,
        error=error,
        route="negin:line",
    )
    [result] = await reconcile([outcome], gw)
    assert (result.verdict, result.message_id, result.provider) == ("delivered", "31", "negin")
    assert result.key == journal_key(A, "hi", None)
    assert result.source is outcome


async def test_gateways_chosen_by_route_or_provider() -> None:
    """With a mapping, each row's route (or provider) picks the gateway; a missing one: unknown."""
    first = StubGateway({"1": [report("1", A, DeliveryState.SENT)]})
    second = StubGateway({"1": [report("1", B, DeliveryState.DELIVERED)]})
    results = await reconcile(
        [
            row(A, message_id="1", route="ippanel:line"),
            row(B, message_id="1", provider="negin"),
            row(C, message_id="1", route="other"),
        ],
        {"ippanel:line": first, "negin": second},
    )
    assert [r.verdict for r in results] == ["sent", "delivered", "unknown"]
    assert (first.queries, second.queries) == (["1"], ["1"])


async def test_record_reconciled_writes_verdicts_back() -> None:
    """Settled results become sent/failed(NotSentError) rows; unknown ones are untouched."""
    journal = MemoryJournal()
    rows = [row(A), row(B), row(C, "unknown")]
    await journal.record("job", rows)
    gw = StubGateway({"8": [report("8", A, DeliveryState.DELIVERED)]})

    async def lookup(recipient: str) -> str | None:
        return {A: "8", B: None}.get(recipient, "missing")

    results = await reconcile(await journal.entries("job"), gw, lookup=lookup)
    assert await record_reconciled(journal, "job", results) == 2
    after = {e.recipient: e for e in await journal.entries("job")}
    assert (after[A].status, after[A].message_id) == ("sent", "8")
    assert (after[B].status, after[B].error) == ("failed", "NotSentError")
    assert after[C] == rows[2]


async def test_concurrency_must_be_positive() -> None:
    """concurrency < 1 is a ConfigurationError."""
    with pytest.raises(smsgate.ConfigurationError):
        await reconcile([], StubGateway(), concurrency=0)


@pytest.mark.parametrize("backend", ["ippanel", "negin"])
async def test_against_the_fake_provider(backend: str) -> None:
    """Killed-run rows without ids, settled through each backend's real delivery call."""
    clock = FakeClock()
    fake = FakeProvider(clock=clock)
    client = asgi_client(fake)
    gw: smsgate.SmsGateway
    if backend == "ippanel":
        gw = smsgate.IppanelGateway(
            username="user",
            password="secret-pass",
            sender="+983000505",
            base_url="http://127.0.0.1",
            http_client=client,
        )
    else:
        gw = smsgate.NeginGateway(
            username="user",
            password="secret-pass",
            line="9830003300",
            base_url="http://127.0.0.1",
            http_client=client,
        )
    async with client, gw:
        await gw.send(A, "hi")  # the request went out, then the job was killed
        clock.advance(3600)  # long enough for the fake's timeline to deliver it

        async def lookup(recipient: str) -> str | None:
            # Stands in for searching the panel's outbox: the fake's own ledger.
            ids = [e.message_id for e in fake.ledger if e.recipient == recipient]
            return ids[-1] if ids else None

        results = await reconcile([row(A), row(B)], gw, lookup=lookup)
    assert [(r.recipient, r.verdict) for r in results] == [(A, "delivered"), (B, "not_sent")]
    assert results[0].report is not None
    assert results[0].report.provider == backend
    assert [e.recipient for e in fake.ledger] == [A]  # nothing was sent by reconciling
