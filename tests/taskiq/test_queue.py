"""BulkQueue and JobHandle in one process: taskiq's in-memory broker, the real Redis, an
SQLite journal and the in-memory FakeGateway."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from taskiq import InMemoryBroker
from taskiq.abc.broker import AsyncBroker

import smsgate
from smsgate.dispatch import JournalEntry, SqliteJournal
from smsgate.taskiq import BulkQueue, open_job
from smsgate.taskiq._job import decode_rows, encode_rows
from smsgate.testing import FakeGateway
from tests._services import redis_url


def _rows(count: int, *, texts: int = 3) -> list[smsgate.Message]:
    return [
        smsgate.Message(to=f"0912{i:07d}", text=f"hello {i % texts}", sender="3000505")
        for i in range(count)
    ]


@pytest.fixture
def name() -> Iterator[str]:
    """A queue name of this test's own (its Redis keys carry it); keys deleted after."""
    url = redis_url()
    queue = f"t{uuid.uuid4().hex[:10]}"
    yield queue
    import redis

    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=f"*{queue}*"))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


def _queue(broker: Any, gateway: FakeGateway, journal: Any, name: str, **kwargs: Any) -> BulkQueue:
    return BulkQueue(
        broker,
        gateway=lambda: gateway,
        journal=journal,
        rate_limit=smsgate.RateLimit(100_000),
        redis=redis_url(),
        name=name,
        progress_interval=0.05,
        **kwargs,
    )


def test_rows_travel_compactly() -> None:
    """A chunk's texts and senders travel once each; the rows come back equal, in order."""
    rows = [*_rows(10, texts=2), smsgate.Message(to="09120000099", text="x")]
    payload = encode_rows(rows)
    assert payload["t"] == ["hello 0", "hello 1", "x"]
    assert payload["s"] == ["3000505", None]
    assert decode_rows(payload) == rows


def test_import_without_the_extra() -> None:
    """``import smsgate.taskiq`` works without taskiq and Redis; building a queue says what
    is missing."""
    code = (
        "import sys\n"
        "for name in ('taskiq', 'redis', 'redis.asyncio'): sys.modules[name] = None\n"
        "import smsgate, smsgate.taskiq\n"
        "try:\n"
        "    smsgate.taskiq.BulkQueue(object(), gateway=lambda: None, journal='j.sqlite',\n"
        "        rate_limit=smsgate.RateLimit(1), redis='redis://127.0.0.1')\n"
        "except ImportError as exc:\n"
        "    print('ImportError', exc)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert "ImportError" in out.stdout and "'.[taskiq]'" in out.stdout


@pytest.mark.asyncio
async def test_a_job_runs_through_the_queue(name: str, tmp_path: Path) -> None:
    """Every row is sent once; the report and the progress add up to the input."""
    broker = InMemoryBroker(await_inplace=True)
    gateway = FakeGateway(max_recipients=100)
    queue = _queue(broker, gateway, tmp_path / "j.sqlite", name, chunk_size=100)
    try:
        job = await queue.submit(iter(_rows(1234)), job_id="c1")
        report = await job.wait(poll=0.01)
        progress = await job.progress()
    finally:
        await queue._on_shutdown(None)
    assert (report.total, report.sent, report.failed, report.unknown, report.skipped) == (
        1234,
        1234,
        0,
        0,
        0,
    )
    assert report.requests == len(gateway.requests)
    assert Counter(s.recipient for s in gateway.accepted).most_common(1)[0][1] == 1
    assert len(gateway.accepted) == 1234
    assert progress.final and progress.done == progress.total == 1234
    assert progress.sent == 1234


@pytest.mark.asyncio
async def test_async_input_and_a_second_handle(name: str, tmp_path: Path) -> None:
    """An async iterable is read too; ``open_job`` finds the job from its id alone."""
    broker = InMemoryBroker(await_inplace=True)
    gateway = FakeGateway()

    async def rows() -> AsyncIterator[smsgate.Message]:
        for message in _rows(250):
            yield message

    queue = _queue(broker, gateway, tmp_path / "j.sqlite", name, chunk_size=64)
    try:
        job = await queue.submit(rows(), job_id="c2")
        await job.wait(poll=0.01)
        async with await open_job(redis_url(), "c2", name=name) as other:
            assert other.run == job.run
            report = await other.report()
    finally:
        await queue._on_shutdown(None)
    assert report.sent == 250 and report.total == 250


class _SinkBroker(AsyncBroker):
    """Keeps the kicked messages (bytes) and reports how far the input had been read."""

    def __init__(self, reads: list[int]) -> None:
        super().__init__()
        self.kicked: list[bytes] = []
        self.read_at_kick: list[int] = []
        self._reads = reads

    async def kick(self, message: Any) -> None:
        self.kicked.append(message.message)
        self.read_at_kick.append(self._reads[0])

    def listen(self) -> Any:  # pragma: no cover - never listened to
        raise NotImplementedError


@pytest.mark.asyncio
async def test_submit_reads_lazily(name: str, tmp_path: Path) -> None:
    """Each chunk is enqueued before the next row is read: one chunk in memory at a time."""
    reads = [0]

    def rows() -> Iterator[smsgate.Message]:
        for message in _rows(1050):
            reads[0] += 1
            yield message

    broker = _SinkBroker(reads)
    queue = _queue(broker, FakeGateway(), tmp_path / "j.sqlite", name, chunk_size=100)
    try:
        job = await queue.submit(rows(), job_id="lazy")
        progress = await job.progress()
    finally:
        await queue.aclose()
    assert broker.read_at_kick == [*range(100, 1001, 100), 1050]
    assert progress.total == 1050 and progress.read == 1050 and not progress.final


@pytest.mark.asyncio
async def test_a_chunk_delivered_again_never_sends_twice(name: str, tmp_path: Path) -> None:
    """A chunk whose worker died is delivered again: rows the journal has as sent are
    skipped, rows left pending become unknown; neither is sent. A chunk delivered after it
    settled changes nothing."""
    path = tmp_path / "j.sqlite"
    rows = _rows(10, texts=10)
    journal = SqliteJournal(path)
    await journal.open("c3")
    now = 0.0
    # As the killed worker left it: rows 0-2 sent, rows 3-4 in flight.
    from smsgate.dispatch import journal_key

    def entry(i: int, status: str) -> JournalEntry:
        m = rows[i]
        return JournalEntry(
            key=journal_key(m.msisdn, m.text, m.sender),
            recipient=m.msisdn,
            status=status,  # type: ignore[arg-type]
            route="fake:3000505",
            provider="fake",
            updated=now,
        )

    await journal.record("c3", [entry(i, "sent") for i in range(3)])
    await journal.record("c3", [entry(i, "pending") for i in (3, 4)])
    await journal.aclose()
    broker = InMemoryBroker(await_inplace=True)
    gateway = FakeGateway()
    queue = _queue(broker, gateway, path, name, chunk_size=100)
    try:
        job = await queue.submit(rows, job_id="c3")
        report = await job.wait(poll=0.01)
        await queue.task.kiq("c3", job.run, 0, encode_rows(rows))  # a late duplicate
        again = await job.report()
    finally:
        await queue._on_shutdown(None)
    assert sorted(s.recipient for s in gateway.accepted) == sorted(m.msisdn for m in rows[5:])
    assert (report.sent, report.skipped, report.unknown) == (5, 3, 2)
    assert {o.message.to for o in report.failures} == {rows[3].to, rows[4].to}
    assert again.total == report.total == 10 and again.sent == report.sent
    assert [o.message for o in again.failures] == [o.message for o in report.failures]


@pytest.mark.asyncio
async def test_cancel_skips_chunks_not_started(name: str, tmp_path: Path) -> None:
    """After cancel(), chunks not started settle without sending: failed, JobStoppedError."""
    reads = [0]
    sink = _SinkBroker(reads)
    gateway = FakeGateway()
    queue = _queue(sink, gateway, tmp_path / "j.sqlite", name, chunk_size=40)
    try:
        job = await queue.submit(_rows(100), job_id="c4")
        await job.cancel()
        assert await job.cancelled()
        # Now a worker takes the chunks (the same queue object stands in for it).
        from taskiq.kicker import AsyncKicker  # noqa: F401 - the task's own module loads

        for raw in sink.kicked:
            message = sink.formatter.loads(raw)
            await queue._run_chunk(*message.args)
        report = await job.wait(poll=0.01)
    finally:
        await queue._on_shutdown(None)
    assert gateway.accepted == []
    assert (report.total, report.failed) == (100, 100)
    assert report.errors == {"JobStoppedError": 100}
    assert all(isinstance(o.error, smsgate.JobStoppedError) for o in report.failures)


@pytest.mark.asyncio
async def test_failures_are_capped_counts_are_not(name: str, tmp_path: Path) -> None:
    """The report keeps at most max_failures rows; its counts cover every row."""
    broker = InMemoryBroker(await_inplace=True)
    gateway = FakeGateway(opted_out=[m.to for m in _rows(30)])
    queue = _queue(broker, gateway, tmp_path / "j.sqlite", name, chunk_size=10, max_failures=7)
    try:
        job = await queue.submit(_rows(30), job_id="c5")
        report = await job.wait(poll=0.01)
    finally:
        await queue._on_shutdown(None)
    assert report.failed == 30 and len(report.failures) == 7
    assert report.errors == {"RecipientOptedOutError": 30}
    assert all(isinstance(o.error, smsgate.RecipientOptedOutError) for o in report.failures)


def test_settings_are_checked() -> None:
    broker = InMemoryBroker()
    base: dict[str, Any] = {
        "gateway": FakeGateway,
        "journal": "j.sqlite",
        "rate_limit": smsgate.RateLimit(1),
        "redis": "redis://127.0.0.1",
    }
    for bad in (
        {"chunk_size": 0},
        {"concurrency": True},
        {"name": "a:b"},
        {"gateway": 3},
        {"rate_limit": 5},
        {"journal": 5},
        {"redis": ""},
        {"dispatcher_options": {"concurrency": 3}},
    ):
        with pytest.raises(smsgate.ConfigurationError):
            BulkQueue(broker, **{**base, **bad})


@pytest.mark.asyncio
async def test_cancel_stops_a_running_chunk(name: str, tmp_path: Path) -> None:
    """cancel() while a chunk runs: the worker sets the dispatcher's stop event; the rows not
    sent yet are failed with JobStoppedError and the report still adds up."""
    broker = InMemoryBroker()  # tasks run in the background, as on a worker
    gateway = FakeGateway(latency=0.02)
    queue = _queue(broker, gateway, tmp_path / "j.sqlite", name, chunk_size=400, concurrency=1)
    try:
        job = await queue.submit(_rows(400, texts=400), job_id="c6")
        with anyio.fail_after(60):
            while len(gateway.accepted) < 5:  # noqa: ASYNC110 - another task sends
                await anyio.sleep(0.01)
        await job.cancel()
        with anyio.fail_after(60):
            report = await job.wait(poll=0.02)
    finally:
        await broker.wait_all()
        await queue._on_shutdown(None)
    assert report.total == 400
    assert report.sent + report.failed + report.unknown + report.skipped == 400
    assert report.sent == len(gateway.accepted) < 400
    assert report.errors.get("JobStoppedError", 0) == report.failed > 0
    assert report.stopped == "cancelled"
