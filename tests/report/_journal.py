"""A journal holding one finished job with every kind of row, for the report tests."""

from __future__ import annotations

from smsgate import DeliveryState
from smsgate.dispatch import JournalEntry, MemoryJournal

T0 = 1_760_000_000.0
EVIL = "<script>alert('x')</script> & <b>bold</b>"


async def sample_journal() -> MemoryJournal:
    """40 rows of job "camp-7" over two routes, with delivery states arriving over time."""
    journal = MemoryJournal()
    rows: list[JournalEntry] = []
    finals = [
        *[DeliveryState.DELIVERED] * 24,
        *[DeliveryState.UNDELIVERED] * 3,
        *[DeliveryState.BLOCKED] * 2,
        DeliveryState.REJECTED,
        *[None] * 3,  # still pending at the operator
    ]
    for i, final in enumerate(finals):
        route = "ippanel:+983000505" if i % 3 else "negin:9830003300"
        rows.append(
            JournalEntry(
                key=f"k{i}",
                recipient=f"+98912{1000000 + i:07d}",
                status="sent",
                route=route,
                provider=route.split(":")[0],
                message_id=str(500 + i // 10),
                updated=T0 + i * 2.0,
                parts=2,
                delivery=final,
                delivery_status=None if final is None else final.value,
                delivery_updated=None if final is None else T0 + 60 + i * 7.5,
            )
        )
    rows += [
        JournalEntry(
            key=f"f{i}",
            recipient=f"+98935{2000000 + i:07d}",
            status="failed",
            route="ippanel:+983000505",
            provider="ippanel",
            error="RecipientOptedOutError",
            detail="the number opted out of advertising SMS",
            updated=T0 + 5 + i,
        )
        for i in range(4)
    ]
    rows.append(
        JournalEntry(
            key="u0",
            recipient="+989129999999",
            status="unknown",
            route="negin:9830003300",
            provider="negin",
            error="OutcomeUnknownError",
            detail=EVIL,
            updated=T0 + 30,
        )
    )
    rows += [
        JournalEntry(
            key=f"p{i}", recipient=f"+98912888000{i}", status="pending", updated=T0 + 31 + i
        )
        for i in range(2)
    ]
    await journal.record("camp-7", rows)
    return journal
