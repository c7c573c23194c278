"""Issue 11, dispatcher side: each finding reproduced, then held (sends counted at the fake).

* two concurrent run()s of one job on one dispatcher (MemoryJournal, an SQLite path, no
  journal) send each recipient once in total;
* one key per message: four spellings of one line (None included) are one SMS, and an
  older journal's rows (keyed by the raw sender) still block a resend;
* a bad row (a lone surrogate) fails alone on each backend, and a non-smsgate exception
  from a gateway puts its request's rows in doubt without ending the job;
* settings that cannot work are refused; workers start lazily;
* a stream abandoned with ``break`` stops sending and leaks no cancellation (asyncio, trio);
* a failing journal ends the job with one JournalError carrying the report.
"""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import anyio
import pytest

import smsgate
from smsgate import (
    ConfigurationError,
    InvalidMessageError,
    JournalError,
    Message,
    OutcomeUnknownError,
)
from smsgate.dispatch import (
    REASON_ALREADY_SENT,
    REASON_DUPLICATE,
    BulkDispatcher,
    JournalEntry,
    JournalStatus,
    MemoryJournal,
    RateLimit,
    journal_key,
)
from smsgate.testing import FakeGateway, FakeProvider

pytestmark = pytest.mark.anyio

LINE = "+983000505"


def rows(n: int, text: str = "hello", sender: str | None = None, start: int = 0) -> list[Message]:
    return [Message(to=f"0912{start + i:07d}", text=text, sender=sender) for i in range(n)]


def sends_per_recipient(gw: FakeGateway) -> dict[str, int]:
    counts: dict[str, int] = {}
    for send in gw.accepted:
        counts[send.recipient] = counts.get(send.recipient, 0) + 1
    return counts


# -- never twice: concurrent runs of one job ------------------------------------------------------


@pytest.mark.parametrize("kind", ["memory", "sqlite", "none"])
async def test_two_concurrent_runs_of_one_job_send_each_recipient_once(
    kind: str, tmp_path: Path
) -> None:
    """The finding: 291 of 300 double-sent. Now: 300 accepted at the fake, none twice."""
    journal: Any = {
        "memory": MemoryJournal(),
        "sqlite": tmp_path / "bulk.sqlite",
        "none": None,
    }[kind]
    gw = FakeGateway(latency=0.002)
    d = BulkDispatcher(gw, journal=journal, concurrency=16)
    reports = []

    async def one() -> None:
        reports.append(await d.run(rows(300), job_id="twice"))

    async with anyio.create_task_group() as tg:
        tg.start_soon(one)
        tg.start_soon(one)
    counts = sends_per_recipient(gw)
    assert len(counts) == 300
    assert max(counts.values()) == 1
    for report in reports:
        assert report.total == 300
        assert report.sent + report.failed + report.unknown + report.skipped == 300
    assert sum(r.sent for r in reports) == 300


async def test_claims_are_written_before_the_request(tmp_path: Path) -> None:
    """When the fake sees a request, each of its rows is already pending in the journal."""
    journal = MemoryJournal()
    gw = FakeGateway(max_recipients=10)
    seen: list[set[str]] = []

    def check(request: Any) -> None:
        entries = {e.recipient: e.status for e in journal._jobs["j"].values()}
        seen.append({entries[r] for r in request.recipients})

    gw.on_request = check
    await BulkDispatcher(gw, journal=journal).run(rows(25), job_id="j")
    assert seen == [{"pending"}] * 3


async def test_rows_claimed_then_waiting_for_the_limiter_are_released_on_cancel() -> None:
    """Rows are claimed before the rate limiter (so the grant is followed by the request
    itself); a job cancelled while they wait leaves none of them in doubt: the rerun sends
    every row not sent, and no recipient twice."""
    journal = MemoryJournal()
    gw = FakeGateway()
    first = anyio.Event()
    gw.on_request = lambda _request: first.set()
    messages = [Message(to=f"0912{i:07d}", text=f"text {i}") for i in range(12)]
    dispatcher = BulkDispatcher(
        gw, journal=journal, rate_limit=RateLimit(1, per=3600), concurrency=8
    )
    async with anyio.create_task_group() as tg:
        tg.start_soon(dispatcher.run, messages, "j")
        await first.wait()
        await anyio.wait_all_tasks_blocked()  # the others are claimed and wait for a grant
        tg.cancel_scope.cancel()
    statuses = [e.status for e in await journal.entries("j")]
    assert "pending" not in statuses and "unknown" not in statuses
    assert statuses.count("sent") == 1 and len(statuses) > 1
    report = await BulkDispatcher(gw, journal=journal).run(messages, job_id="j")
    assert (report.sent, report.skipped, report.unknown) == (11, 1, 0)
    assert sorted(sends_per_recipient(gw).values()) == [1] * 12


# -- one key per message --------------------------------------------------------------------------


def default_line_gateway() -> FakeGateway:
    gw = FakeGateway(name="ippanel", max_recipients=100)
    gw.default_sender = LINE  # type: ignore[attr-defined]  # what the backends expose
    return gw


@pytest.mark.parametrize("journal", [None, "memory"])
async def test_four_spellings_of_one_line_are_one_message(journal: str | None) -> None:
    """ "+983000505", "983000505", "3000505" and None (the default line) -> one SMS."""
    gw = default_line_gateway()
    senders = ["+983000505", "983000505", "3000505", None]
    messages = [Message(to="09121234567", text="one", sender=s) for s in senders]
    d = BulkDispatcher(gw, journal=MemoryJournal() if journal else None)
    report = await d.run(messages, job_id="spell")
    assert len(gw.accepted) == 1
    assert (report.sent, report.skipped, report.duplicates) == (1, 3, 3)


async def test_one_key_across_runs_and_spellings() -> None:
    """Sent with "3000505"; rerun with None (the default line): skipped, not resent."""
    gw = default_line_gateway()
    journal = MemoryJournal()
    d = BulkDispatcher(gw, journal=journal)
    await d.run([Message(to="09121234567", text="one", sender="3000505")], job_id="j")
    again = await d.run([Message(to="+989121234567", text="one")], job_id="j")
    assert (again.skipped, again.sent) == (1, 0)
    assert again.failures == ()
    assert len(gw.accepted) == 1


async def test_a_gateway_without_default_sender_is_keyed_by_its_name() -> None:
    """No default_sender: None is "<name>:default", distinct from any explicit line."""
    gw = FakeGateway(max_recipients=100)
    messages = [Message(to="09121234567", text="x", sender=s) for s in (None, None, LINE)]
    report = await BulkDispatcher(gw).run(messages)
    assert (report.sent, report.duplicates) == (2, 1)


async def test_rows_of_an_older_journal_still_block_a_resend() -> None:
    """A row an older version wrote under journal_key(raw sender) is read as the same row."""
    journal = MemoryJournal()
    recipient = "+989121234567"
    rows_: list[tuple[str | None, JournalStatus]] = [(None, "sent"), ("3000505", "pending")]
    for sender, status in rows_:
        legacy = journal_key(recipient if sender is None else "+989121234568", "hi", sender)
        await journal.record(
            "old",
            [
                JournalEntry(
                    key=legacy,
                    recipient=recipient if sender is None else "+989121234568",
                    status=status,
                )
            ],
        )
    gw = default_line_gateway()
    report = await BulkDispatcher(gw, journal=journal).run(
        [
            Message(to=recipient, text="hi"),
            Message(to="+989121234568", text="hi", sender="3000505"),
            Message(to="+989121234569", text="hi"),
        ],
        job_id="old",
    )
    assert len(gw.accepted) == 1 and gw.accepted[0].recipient == "+989121234569"
    assert (report.sent, report.skipped, report.unknown) == (1, 1, 1)
    assert {o.reason for o in report.failures} == {"in doubt from an earlier run (journal)"}


# -- a bad row is a bad row -----------------------------------------------------------------------


@pytest.fixture
async def loopback() -> AsyncIterator[tuple[FakeProvider, str]]:
    """The fake provider served on 127.0.0.1 (a real HTTP server in a thread)."""
    from smsgate.testing import serve_loopback

    fake = FakeProvider()
    with serve_loopback(fake, log_level="critical") as server:
        yield fake, server.url


def backend_gateway(name: str, url: str) -> smsgate.SmsGateway:
    if name == "ippanel":
        return smsgate.IppanelGateway(
            username="user",
            password="secret-pass",
            sender=LINE,
            base_url=url,
            allow_insecure_http=True,
        )
    return smsgate.NeginGateway(
        username="user",
        password="secret-pass",
        line="9830003300",
        base_url=url,
        allow_insecure_http=True,
    )


@pytest.mark.loopback
@pytest.mark.parametrize("backend", ["ippanel", "negin"])
async def test_a_lone_surrogate_fails_its_row_only(
    backend: str, loopback: tuple[FakeProvider, str]
) -> None:
    """100 rows, one holding "\\ud800": 99 sent, 1 failed InvalidMessageError, 0 in doubt."""
    fake, url = loopback
    messages = [
        Message(to=f"0912{i:07d}", text="bad \ud800" if i == 37 else "good") for i in range(100)
    ]
    async with backend_gateway(backend, url) as gw:
        report = await BulkDispatcher(gw, concurrency=8).run(messages)
    assert (report.sent, report.failed, report.unknown) == (99, 1, 0)
    (failure,) = report.failures
    assert isinstance(failure.error, InvalidMessageError)
    assert failure.message.to == "09120000037"
    assert len({e.recipient for e in fake.ledger}) == 99


async def test_the_surrogate_row_on_the_fake_gateway() -> None:
    """The same rule without HTTP: admission refuses the row, nothing is requested."""
    gw = FakeGateway(max_recipients=100)
    messages = [*rows(99), Message(to="09350000000", text="\ud800")]
    report = await BulkDispatcher(gw).run(messages)
    assert (report.sent, report.failed, report.unknown, report.invalid) == (99, 1, 0, 1)
    assert all("\ud800" not in r.text for r in gw.requests)


@pytest.mark.parametrize("raised", [UnicodeEncodeError("utf-8", "x", 0, 1, "bad"), TypeError("x")])
async def test_a_non_smsgate_exception_in_send_puts_its_rows_in_doubt(raised: Exception) -> None:
    """The job goes on; the request's rows are unknown (it may have left), never resent."""
    gw = FakeGateway()

    def boom(request: Any) -> None:
        if "+989120000005" in request.recipients:
            raise raised

    gw.on_request = boom
    report = await BulkDispatcher(gw, concurrency=4).run(rows(20))
    assert (report.sent, report.unknown, report.failed) == (19, 1, 0)
    (doubt,) = report.failures
    assert isinstance(doubt.error, OutcomeUnknownError)
    assert doubt.error.__cause__ is raised
    assert len(gw.accepted) == 19
    assert report.requests == 20  # not retried


# -- settings refused at construction -------------------------------------------------------------


@pytest.mark.parametrize(
    "make",
    [
        lambda: RateLimit(1e-300),
        lambda: RateLimit(float("nan")),
        lambda: RateLimit(float("inf")),
        lambda: RateLimit(0),
        lambda: RateLimit(-5),
        lambda: RateLimit(1, per=1e-300),
        lambda: RateLimit(1, per=1e9),
        lambda: RateLimit(1, per=float("nan")),
        lambda: RateLimit(1e300),
        lambda: RateLimit(1, per=2 * 86_400),
        lambda: BulkDispatcher(FakeGateway(), concurrency=10**6),
        lambda: BulkDispatcher(FakeGateway(), concurrency=1025),
        lambda: BulkDispatcher(FakeGateway(), concurrency=0),
        lambda: BulkDispatcher(FakeGateway(), drain_timeout=float("nan")),
        lambda: BulkDispatcher(FakeGateway(), recent_window=-1),
        lambda: BulkDispatcher(FakeGateway(), send_window="always"),  # type: ignore[arg-type]
    ],
)
def test_settings_that_cannot_work_are_refused(make: Any) -> None:
    with pytest.raises(ConfigurationError):
        make()


def test_the_concurrency_cap_says_why() -> None:
    with pytest.raises(ConfigurationError, match="1024"):
        BulkDispatcher(FakeGateway(), concurrency=5000)
    assert BulkDispatcher(FakeGateway(), concurrency=1024).concurrency == 1024
    assert RateLimit(1, per=86_400).interval == 86_400


async def test_workers_start_lazily() -> None:
    """10 rows at concurrency=1000 make at most 10 workers (tasks counted mid-job)."""
    gw = FakeGateway(latency=0.01)
    before = len(anyio.get_running_tasks())
    most = 0

    def count(_request: Any) -> None:
        nonlocal most
        most = max(most, len(anyio.get_running_tasks()) - before)

    gw.on_request = count
    report = await BulkDispatcher(gw, concurrency=1000).run(rows(10))
    assert report.sent == 10
    assert 1 <= most <= 10 + 2


# -- stream() abandoned ---------------------------------------------------------------------------


async def test_break_out_of_stream_stops_sending() -> None:
    """`break` without aclosing: no request starts after the caller left, the job ends,
    and no cancellation reaches the caller's next awaits."""
    gw = FakeGateway(latency=0.001)
    d = BulkDispatcher(gw, concurrency=4)
    seen = 0
    async for _ in d.stream(rows(5_000)):
        seen += 1
        if seen == 10:
            break
    started_at_break = len(gw.requests) + gw.in_flight
    gc.collect()
    for _ in range(500):  # bounded polling until the job's task has ended
        if d.statistics().jobs == 0:
            break
        await anyio.sleep(0.005)
    assert d.statistics().jobs == 0
    assert len(gw.requests) + gw.in_flight <= started_at_break
    # The caller's own awaits are not cancelled later (a leaked cancel scope would).
    for _ in range(5):
        await anyio.sleep(0.002)
    with anyio.fail_after(5):
        await anyio.sleep(0.01)
    stats = d.statistics()
    assert (stats.borrowed, stats.in_flight) == (0, 0)
    assert len(gw.requests) < 100


async def test_stream_as_a_context_manager_waits_for_the_job() -> None:
    gw = FakeGateway(latency=0.001)
    d = BulkDispatcher(gw, concurrency=4)
    async with d.stream(rows(1_000)) as outcomes:
        async for outcome in outcomes:
            assert outcome.status == "sent"
            break
    assert d.statistics().jobs == 0
    done = len(gw.requests)
    await anyio.sleep(0.02)
    assert len(gw.requests) == done


async def test_stream_runs_to_the_end_and_raises_the_job_error() -> None:
    gw = FakeGateway()
    d = BulkDispatcher(gw)
    outcomes = [o async for o in d.stream(rows(30))]
    assert len(outcomes) == 30
    with pytest.raises(TypeError, match="row 3"):
        async for _ in d.stream([*rows(2), "nope"]):  # type: ignore[list-item]
            pass


# -- a failing journal ----------------------------------------------------------------------------


class FullDisk(MemoryJournal):
    """record() fails once a few writes went through, as a full disk does."""

    def __init__(self, after: int) -> None:
        super().__init__()
        self.after = after
        self.writes = 0

    async def record(self, job_id: str, entries: Sequence[JournalEntry]) -> None:
        self.writes += 1
        if self.writes > self.after:
            raise OSError(28, "No space left on device")
        await super().record(job_id, entries)


async def test_a_failing_journal_ends_the_job_with_one_journal_error() -> None:
    gw = FakeGateway(latency=0.001)
    journal = FullDisk(after=5)
    d = BulkDispatcher(gw, journal=journal, concurrency=16)
    with pytest.raises(JournalError) as caught:
        await d.run(rows(300), job_id="full")
    error = caught.value
    assert type(error) is JournalError
    assert "No space left on device" in str(error)
    assert isinstance(error.__cause__, OSError)
    report = error.report
    assert isinstance(report, smsgate.BulkReport)
    assert report.sent + report.failed + report.unknown + report.skipped == report.total
    # Sends the fake accepted are reported sent (some after the journal broke), the row
    # whose write failed is in doubt, and the rest were never sent.
    assert report.sent >= 5 and report.unknown >= 1
    assert report.sent <= len(gw.accepted)
    assert report.stopped is not None and "journal" in report.stopped
    assert d.statistics().jobs == 0 and d.statistics().borrowed == 0


async def test_a_failing_journal_in_a_stream() -> None:
    gw = FakeGateway()
    with pytest.raises(JournalError) as caught:
        async for _ in BulkDispatcher(gw, journal=FullDisk(after=0)).stream(rows(10)):
            pass
    assert caught.value.report is not None


# -- reasons are exported -------------------------------------------------------------------------


def test_reasons_are_public() -> None:
    assert REASON_DUPLICATE == "duplicate"
    assert REASON_ALREADY_SENT == "already sent (journal)"


# -- telemetry -------------------------------------------------------------------------------------


class Recorder:
    def __init__(self) -> None:
        self.outcomes: dict[str, int] = {}
        self.waits: list[float] = []

    def request(self, **_kwargs: Any) -> Any:
        import contextlib

        return contextlib.nullcontext()

    def outcome(self, *, provider: str | None, route: str | None, status: str, count: int) -> None:
        self.outcomes[status] = self.outcomes.get(status, 0) + count

    def limiter_wait(self, seconds: float) -> None:
        self.waits.append(seconds)

    def breaker_state(self, route: str, state: str) -> None:
        pass


async def test_telemetry_sees_every_outcome_and_limiter_wait() -> None:
    from smsgate import _telemetry

    recorder = Recorder()
    _telemetry.install(recorder)
    try:
        gw = FakeGateway(max_recipients=10)
        messages = [*rows(25), *rows(2), Message(to="12", text="x"), Message(to="0912", text="")]
        report = await BulkDispatcher(gw, rate_limit=RateLimit(1000)).run(messages)
    finally:
        _telemetry.uninstall()
    assert recorder.outcomes == {"sent": 25, "skipped": 2, "failed": 2}
    assert report.total == 29
    assert len(recorder.waits) == report.requests
