"""Delivery tracking: a journaled job against the fake on loopback, tracked to final states."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio.lowlevel
import pytest

import smsgate
from smsgate import DeliveryState
from smsgate.dispatch import MemoryJournal, SqliteJournal
from smsgate.report import build_report
from smsgate.testing import FakeClock, FakeProvider, serve_loopback
from smsgate.tracking import count_deliveries, journal_sink, track

pytestmark = pytest.mark.anyio

DELIVERED = [f"0912000{i:04d}" for i in range(1, 8)]
FAILED = ["09121110001", "09121110002"]
BLOCKED = ["09350000001", "09350000002"]
REJECTED = ["09121110009"]
LINE = "+983000505"
PASSWORD = "secret-pass"

IPPANEL_STATE = {
    "delivered": DeliveryState.DELIVERED,
    "failed": DeliveryState.UNDELIVERED,
    "discarded": DeliveryState.BLOCKED,
}
NEGIN_STATE = {
    1: DeliveryState.DELIVERED,
    2: DeliveryState.UNDELIVERED,
    16: DeliveryState.REJECTED,
    18: DeliveryState.REJECTED,
    -1: DeliveryState.REJECTED,
}
BUCKETS = {
    DeliveryState.DELIVERED: "delivered",
    DeliveryState.UNDELIVERED: "undelivered",
    DeliveryState.BLOCKED: "blocked",
    DeliveryState.REJECTED: "rejected",
}


class Sleeper:
    """A sleep that moves the fake provider's clock (no real waiting)."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.sleeps: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.clock.advance(seconds)
        await anyio.lowlevel.checkpoint()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def fake(clock: FakeClock) -> FakeProvider:
    fake = FakeProvider(clock=clock, opted_out=BLOCKED)
    fake.ippanel.undeliverable = {smsgate.normalize_msisdn(n) for n in FAILED}
    # Negin: scripted per-number timelines (the states of protocols/negin.md §3.3).
    for number in FAILED:
        fake.negin.set_timeline(number, [(0, 0), (4, 8), (40, 2)])
    for number in [*BLOCKED, *REJECTED]:
        fake.negin.set_timeline(number, [(0, 0), (3, 16)])
    for number in DELIVERED:
        fake.negin.set_timeline(number, [(0, 0), (2, 8), (25, 1)])
    return fake


@pytest.fixture
def server(fake: FakeProvider) -> Iterator[str]:
    with serve_loopback(fake) as running:
        yield running.url


def make_gateway(backend: str, url: str) -> Any:
    if backend == "ippanel":
        return smsgate.IppanelGateway(username="user", password=PASSWORD, sender=LINE, base_url=url)
    return smsgate.NeginGateway(username="user", password=PASSWORD, line="9830003300", base_url=url)


def expected_from_ledger(fake: FakeProvider, backend: str) -> Counter[str]:
    """Final-state counts as the fake itself sees them now (its ledger and timelines)."""
    counts: Counter[str] = Counter()
    for entry in fake.ledger:
        if backend == "ippanel":
            states = dict(fake.ippanel.bulk_states(entry.message_id))
            state = IPPANEL_STATE.get(states[entry.recipient])
        else:
            state = NEGIN_STATE.get(fake.negin.message_state(entry.message_id))
        counts[BUCKETS[state] if state else "pending"] += 1
    return counts


@pytest.mark.loopback
@pytest.mark.parametrize("kind", ["memory", "sqlite"])
@pytest.mark.parametrize("backend", ["ippanel", "negin"])
async def test_job_tracked_to_final_states(
    backend: str, kind: str, fake: FakeProvider, clock: FakeClock, server: str, tmp_path: Path
) -> None:
    """A journaled job is tracked to final states; the counts match the fake's ledger."""
    journal: Any = MemoryJournal() if kind == "memory" else SqliteJournal(tmp_path / "j.sqlite")
    await tracked_job(backend, journal, fake, clock, server)


@pytest.mark.loopback
@pytest.mark.parametrize("anyio_backend", ["asyncio"])  # asyncpg is asyncio-only
@pytest.mark.parametrize("backend", ["ippanel", "negin"])
async def test_job_tracked_on_postgres(
    backend: str, fake: FakeProvider, clock: FakeClock, server: str
) -> None:
    """The same on PostgresJournal (asyncio only: asyncpg), in a schema of its own."""
    import uuid

    import asyncpg

    from smsgate.postgres import PostgresJournal

    from .._services import postgres_dsn

    dsn = postgres_dsn()
    schema = f"t_{uuid.uuid4().hex[:12]}"
    try:
        await tracked_job(backend, PostgresJournal(dsn, schema=schema), fake, clock, server)
    finally:
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            await conn.close()


async def tracked_job(
    backend: str, journal: Any, fake: FakeProvider, clock: FakeClock, server: str
) -> None:
    """Send a journaled job, track it, compare with the fake's ledger; closes the journal."""
    numbers = [*DELIVERED, *FAILED, *BLOCKED, *REJECTED]
    if backend == "ippanel":
        numbers.remove(REJECTED[0])  # ippanel has no "rejected" state
    else:
        # Negin refuses an opted-out number at send time; its blocked-like final is 16.
        numbers = [n for n in numbers if n not in BLOCKED]
    async with make_gateway(backend, server) as gw:
        report = await smsgate.BulkDispatcher(gw, journal=journal).run(
            [smsgate.Message(to=n, text="hello") for n in numbers], job_id="job-1"
        )
        assert report.sent == len(numbers)
        sleeper = Sleeper(clock)
        summary = await track(
            journal,
            gw,
            job_id="job-1",
            deadline=600,
            interval=10,
            rate_limit=smsgate.RateLimit(5),
            clock=clock,
            sleep=sleeper,
        )
    expected = expected_from_ledger(fake, backend)
    assert expected["pending"] == 0
    assert summary.complete
    assert summary.counts.sent == len(fake.ledger) == len(numbers)
    for bucket in ("delivered", "undelivered", "blocked", "rejected"):
        assert getattr(summary.counts, bucket) == expected[bucket], bucket
    assert summary.counts.pending == 0
    assert summary.rounds >= 2  # not all final at once: the timelines take time
    assert max(sleeper.sleeps) <= 10
    # Stored in the journal: every row final, with the provider's raw value.
    rows = await journal.entries("job-1")
    assert all(r.delivery is not None and r.delivery.is_final for r in rows)
    assert all(r.delivery_status and r.delivery_updated for r in rows)
    assert set(summary.routes) == {r.route for r in rows}
    assert sum(c.sent for c in summary.routes.values()) == len(rows)
    # The report page's data counts the same.
    data = await build_report(journal, "job-1")
    assert data["delivery"] == summary.counts.as_dict()
    await journal.aclose()
    if backend == "ippanel":
        # One delivery() per bulk per round: one bulk here (max_recipients 100).
        assert summary.requests <= summary.rounds
    else:
        # states() takes up to 100 ids per call: one call per round.
        assert fake.negin.states_calls[0] == len(numbers)


@pytest.mark.loopback
async def test_deadline_leaves_rows_pending(
    fake: FakeProvider, clock: FakeClock, server: str
) -> None:
    """Rows not final when the deadline passes stay pending; the summary says incomplete."""
    fake.negin.set_timeline(DELIVERED[0], [(0, 0), (2, 8), (10_000, 1)])
    journal = MemoryJournal()
    async with make_gateway("negin", server) as gw:
        await smsgate.BulkDispatcher(gw, journal=journal).run(
            [smsgate.Message(to=n, text="hi") for n in DELIVERED[:3]], job_id="j"
        )
        sleeper = Sleeper(clock)
        summary = await track(
            journal, gw, job_id="j", deadline=100, interval=30, clock=clock, sleep=sleeper
        )
    assert not summary.complete
    assert summary.counts.pending == 1 and summary.counts.delivered == 2
    assert sum(sleeper.sleeps) == pytest.approx(100)
    late = [r for r in await journal.entries("j") if r.delivery is DeliveryState.AT_OPERATOR]
    assert [r.recipient for r in late] == [smsgate.normalize_msisdn(DELIVERED[0])]


@pytest.mark.loopback
async def test_unknown_negin_id_is_isolated(
    fake: FakeProvider, clock: FakeClock, server: str
) -> None:
    """An id the provider does not know fails a states() call; the others are still tracked."""
    journal = MemoryJournal()
    async with make_gateway("negin", server) as gw:
        await smsgate.BulkDispatcher(gw, journal=journal).run(
            [smsgate.Message(to=n, text="hi") for n in DELIVERED[:4]], job_id="j"
        )
        rows = await journal.entries("j")
        import attrs

        await journal.record("j", [attrs.evolve(rows[0], message_id="999999999")])
        summary = await track(
            journal, gw, job_id="j", deadline=300, interval=30, clock=clock, sleep=Sleeper(clock)
        )
    assert summary.counts.delivered == 3
    assert summary.untracked == 1
    assert summary.errors == {"UnknownMessageError": 1}
    assert not summary.complete


async def test_journal_sink_and_counts() -> None:
    """journal_sink stores a pushed report on the row of its id and recipient."""
    journal = MemoryJournal()
    from smsgate.dispatch import JournalEntry

    await journal.record(
        "j",
        [
            JournalEntry(
                key="a", recipient="+989120000001", status="sent", message_id="7", route="r1"
            ),
            JournalEntry(
                key="b", recipient="+989120000002", status="sent", message_id="7", route="r1"
            ),
            JournalEntry(key="c", recipient="+989120000003", status="failed", route="r2"),
        ],
    )
    sink = journal_sink(journal)
    await sink(
        smsgate.DeliveryReport(
            message_id="7",
            recipient="+989120000002",
            state=DeliveryState.BLOCKED,
            provider_status="discarded",
        )
    )
    counts, routes = count_deliveries(await journal.entries("j"))
    assert counts.as_dict() == {
        "sent": 2,
        "delivered": 0,
        "undelivered": 0,
        "blocked": 1,
        "rejected": 0,
        "pending": 1,
    }
    assert set(routes) == {"r1"}


async def test_refuses_journal_without_delivery() -> None:
    """A journal that cannot store delivery states is refused up front."""

    class Plain:
        async def entries(self, job_id: str) -> list[Any]:
            return []

    with pytest.raises(smsgate.ConfigurationError):
        journal_sink(Plain())
    with pytest.raises(smsgate.ConfigurationError):
        await track(Plain(), object(), job_id="j")  # type: ignore[arg-type]
