"""The journal contract (key, entry, MemoryJournal) and the dispatcher's use of it: pending
before each request, the result after, and the resume rules on a rerun of the same job."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from smsgate import (
    Message,
    NotSentError,
    OutcomeUnknownError,
    RecipientOptedOutError,
)
from smsgate.dispatch import (
    BulkDispatcher,
    FallbackPolicy,
    Journal,
    JournalEntry,
    MemoryJournal,
    journal_key,
)
from smsgate.testing import FakeGateway

from ._helpers import mock_clock_backend

pytestmark = pytest.mark.anyio


def rows(n: int, text: str = "hello") -> list[Message]:
    return [Message(to=f"0912{i:07d}", text=text) for i in range(n)]


def e164(i: int) -> str:
    return f"+98912{i:07d}"


# -- the contract -----------------------------------------------------------------------------


def test_journal_key() -> None:
    """sha256 hex, stable, and distinct whenever any of the three fields differs."""
    key = journal_key("+989121234567", "hi", None)
    assert len(key) == 64 and int(key, 16) >= 0
    assert key == journal_key("+989121234567", "hi", None)
    others = {
        journal_key("+989121234568", "hi", None),
        journal_key("+989121234567", "hi ", None),
        journal_key("+989121234567", "hi", ""),
        journal_key("+989121234567", "hi", "3000"),
        # Field boundaries cannot be shifted to forge a collision.
        journal_key("+989121234567h", "i", None),
    }
    assert key not in others and len(others) == 5


def test_journal_entry_status_is_checked() -> None:
    """Only the four statuses are accepted; the entry is frozen."""
    with pytest.raises(ValueError, match="status"):
        JournalEntry(key="k", recipient="+989121234567", status="done")  # type: ignore[arg-type]
    entry = JournalEntry(key="k", recipient="+989121234567", status="sent", message_id="9")
    with pytest.raises(AttributeError):
        entry.status = "failed"  # type: ignore[misc]


async def test_memory_journal_contract() -> None:
    """open/record/get/entries/jobs behave as the Journal protocol says; upserts by key."""
    journal = MemoryJournal()
    assert isinstance(journal, Journal)
    await journal.open("a")
    await journal.open("a")
    first = JournalEntry(key="k1", recipient="+989120000001", status="pending")
    await journal.record(
        "a", [first, JournalEntry(key="k2", recipient="+9891200002", status="sent")]
    )
    await journal.record("a", [JournalEntry(key="k1", recipient="+989120000001", status="sent")])
    got = await journal.get("a", ["k1", "k3"])
    assert list(got) == ["k1"] and got["k1"].status == "sent"
    assert [e.key for e in await journal.entries("a")] == ["k1", "k2"]
    assert await journal.get("b", ["k1"]) == {}
    await journal.open("b")
    assert await journal.jobs() == ["a", "b"]
    assert repr(journal) == "<MemoryJournal open jobs=2 rows=2>"
    await journal.aclose()
    await journal.aclose()
    with pytest.raises(RuntimeError, match="closed"):
        await journal.get("a", ["k1"])
    with pytest.raises(RuntimeError, match="closed"):
        await journal.entries("a")


# -- the dispatcher writing it -------------------------------------------------------------------


async def test_pending_is_written_before_the_request_and_sent_after() -> None:
    """When the gateway sees a request, its recipients are already `pending` in the journal."""
    journal = MemoryJournal()
    gw = FakeGateway(name="ippanel", max_recipients=10)
    seen_pending: list[set[str]] = []

    def check(request):
        job = journal._jobs["j"]
        # The key holds the line the route sends from (here the gateway's default).
        keys = {journal_key(r, request.text, "ippanel:default") for r in request.recipients}
        seen_pending.append({job[k].status for k in keys})
        return None

    gw.on_request = check
    report = await BulkDispatcher(gw, journal=journal).run(rows(25), job_id="j")
    assert report.sent == 25 and len(gw.requests) == 3
    assert seen_pending == [{"pending"}] * 3
    entries = await journal.entries("j")
    assert len(entries) == 25
    assert {e.status for e in entries} == {"sent"}
    receipt_ids = {r.message_id for r in gw.requests}
    for entry in entries:
        assert entry.message_id in receipt_ids
        assert (entry.route, entry.provider, entry.error) == ("ippanel:default", "ippanel", None)
        assert entry.updated > 0


async def test_failed_and_unknown_are_written_with_the_error() -> None:
    """Refusals are `failed`, maybe-sent errors `unknown`, each with the error's class name."""
    journal = MemoryJournal()
    gw = FakeGateway(opted_out=["09120000001"])
    gw.script("09120000002", OutcomeUnknownError("read timeout"))
    await BulkDispatcher(gw, journal=journal).run(rows(3), job_id="j")
    by_recipient = {e.recipient: e for e in await journal.entries("j")}
    assert by_recipient[e164(0)].status == "sent"
    assert (by_recipient[e164(1)].status, by_recipient[e164(1)].error) == (
        "failed",
        "RecipientOptedOutError",
    )
    assert (by_recipient[e164(2)].status, by_recipient[e164(2)].error) == (
        "unknown",
        "OutcomeUnknownError",
    )
    assert "read timeout" in (by_recipient[e164(2)].detail or "")


# -- resume -------------------------------------------------------------------------------------


async def test_rerun_skips_sent_and_never_resends_in_doubt() -> None:
    """Rerun: sent -> skipped, unknown -> unknown (no request), failed (definite) -> sent again."""
    journal = MemoryJournal()
    gw = FakeGateway()
    gw.script("09120000001", OutcomeUnknownError("dropped"))
    gw.script("09120000002", NotSentError("refused"), NotSentError("refused"))
    dispatcher = BulkDispatcher(gw, journal=journal, retries=1)
    first = await dispatcher.run(rows(4), job_id="c42")
    assert (first.sent, first.unknown, first.failed) == (2, 1, 1)

    second = [o async for o in dispatcher.stream(rows(4), job_id="c42")]
    status = {o.recipient: (o.status, o.reason) for o in second}
    assert status == {
        e164(0): ("skipped", "already sent (journal)"),
        e164(1): ("unknown", "in doubt from an earlier run (journal)"),
        e164(2): ("sent", None),
        e164(3): ("skipped", "already sent (journal)"),
    }
    # The fake's own ledger: #1 was accepted once (by the dropped request) and never again.
    assert gw.sent_to("09120000001") == 1
    assert all(gw.sent_to(f"0912{i:07d}") == 1 for i in range(4))
    assert isinstance(next(o for o in second if o.status == "unknown").error, OutcomeUnknownError)


async def test_rerun_of_a_different_job_sends_again() -> None:
    """Journal rows belong to a job: another job_id sends everyone."""
    journal = MemoryJournal()
    gw = FakeGateway()
    dispatcher = BulkDispatcher(gw, journal=journal)
    await dispatcher.run(rows(3), job_id="monday")
    report = await dispatcher.run(rows(3), job_id="tuesday")
    assert report.sent == 3 and len(gw.accepted) == 6
    assert await journal.jobs() == ["monday", "tuesday"]


async def test_failed_row_with_a_maybe_sent_error_is_not_resent() -> None:
    """A `failed` row whose stored error class may have been sent is treated as in doubt."""
    journal = MemoryJournal()
    await journal.open("j")
    rows3 = rows(3)
    await journal.record(
        "j",
        [
            JournalEntry(
                key=journal_key(e164(0), "hello", None),
                recipient=e164(0),
                status="failed",
                error="ProtocolError",
            ),
            JournalEntry(
                key=journal_key(e164(1), "hello", None),
                recipient=e164(1),
                status="failed",
                error="RecipientOptedOutError",
            ),
            JournalEntry(
                key=journal_key(e164(2), "hello", None), recipient=e164(2), status="pending"
            ),
        ],
    )
    gw = FakeGateway()
    report = await BulkDispatcher(gw, journal=journal).run(rows3, job_id="j")
    assert (report.unknown, report.sent) == (2, 1)
    assert gw.accepted_recipients() == [e164(1)]


async def test_estimate_leaves_out_what_the_journal_settled() -> None:
    """A dry run of a resumed job counts only the rows that would really be sent."""
    journal = MemoryJournal()
    gw = FakeGateway()
    gw.script("09120000001", OutcomeUnknownError("x"))
    dispatcher = BulkDispatcher(gw, journal=journal)
    await dispatcher.run(rows(3), job_id="j")
    estimate = await dispatcher.estimate(rows(5), job_id="j", price_per_part=10)
    assert (estimate.rows, estimate.already_done, estimate.recipients) == (5, 3, 2)
    assert estimate.cost == 20


async def test_fallback_route_is_journaled() -> None:
    """A recipient sent on the second route is journaled with that route and provider."""
    journal = MemoryJournal()
    first = FakeGateway(name="a", opted_out=["09120000000"])
    second = FakeGateway(name="b")
    await BulkDispatcher(FallbackPolicy([first, second]), journal=journal).run(rows(1), job_id="j")
    (entry,) = await journal.entries("j")
    assert (entry.status, entry.route, entry.provider) == ("sent", "b:default", "b")


async def test_sqlite_journal_from_a_path(tmp_path: Path) -> None:
    """journal='file' builds the SQLite journal per job; a second dispatcher resumes from it."""
    path = str(tmp_path / "bulk.sqlite")
    gw = FakeGateway()
    gw.script("09120000002", RecipientOptedOutError(provider="fake"))
    first = await BulkDispatcher(gw, journal=path).run(rows(3), job_id="c")
    assert (first.sent, first.failed) == (2, 1)
    again = await BulkDispatcher(gw, journal=path).run(rows(3), job_id="c")
    assert (again.skipped, again.sent) == (2, 1)
    assert len(gw.accepted) == 3


class TestCancelledRun:
    """A run cancelled mid-flight, then resumed (trio MockClock)."""

    @pytest.fixture
    def anyio_backend(self) -> tuple[str, dict[str, object]]:
        """trio with a MockClock."""
        return mock_clock_backend()

    async def test_cancel_then_resume(self) -> None:
        """Cancelled while requests were in flight: those are in doubt on the rerun, the rest
        go out, and nobody is sent twice."""
        journal = MemoryJournal()
        gw = FakeGateway(latency=1.0)
        dispatcher = BulkDispatcher(gw, journal=journal, concurrency=4)
        with anyio.move_on_after(2.5):
            await dispatcher.run(rows(20), job_id="j")
        # The first request goes alone (a job probes before it fans out): 1 sent at 1 s,
        # 4 more at 2 s, 4 in flight at 2.5 s.
        statuses = [e.status for e in await journal.entries("j")]
        assert statuses.count("sent") == 5
        assert statuses.count("pending") == 4
        assert dispatcher.statistics().borrowed == 0

        report = await dispatcher.run(rows(20), job_id="j")
        assert (report.skipped, report.unknown, report.sent) == (5, 4, 11)
        assert report.total == 20
        # Cancelled requests never reached the fake: 16 distinct recipients, each once.
        assert len(gw.accepted) == 16
        assert len(set(gw.accepted_recipients())) == 16
