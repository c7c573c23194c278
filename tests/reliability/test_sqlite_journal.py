"""SqliteJournal: upserts, durability (reopen and SIGKILL), WAL, schema, concurrency, isolation."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import anyio
import anyio.lowlevel
import pytest

import smsgate
from smsgate.dispatch import Journal, JournalEntry, journal_key
from smsgate.dispatch._sqlite_journal import (
    APPLICATION_ID,
    SCHEMA_VERSION,
    JobSummary,
    SqliteJournal,
    summarize,
)

pytestmark = pytest.mark.anyio


def entry(n: int, status: str = "pending", **fields: object) -> JournalEntry:
    recipient = f"+98912{n:07d}"
    return JournalEntry(
        key=journal_key(recipient, "hello", None),
        recipient=recipient,
        status=status,  # type: ignore[arg-type]
        **fields,  # type: ignore[arg-type]
    )


async def wait_until(predicate: object, *, limit: int = 10_000) -> None:
    """Yield to the event loop until ``predicate()`` holds (bounded)."""
    for _ in range(limit):
        if predicate():  # type: ignore[operator]
            return
        await anyio.sleep(0.001)
    raise AssertionError("condition never became true")


async def test_satisfies_the_journal_protocol(tmp_path: Path) -> None:
    """SqliteJournal is a Journal (runtime-checkable protocol)."""
    journal = SqliteJournal(tmp_path / "j.sqlite")
    assert isinstance(journal, Journal)
    await journal.aclose()


async def test_upsert_keeps_one_row_per_key(tmp_path: Path) -> None:
    """pending then sent for the same (job, key) leaves one row with the latest fields."""
    async with SqliteJournal(tmp_path / "j.sqlite") as journal:
        await journal.open("job")
        await journal.record("job", [entry(1), entry(2)])
        sent = entry(1, "sent", message_id="562892393", route="r", provider="ippanel", updated=5.0)
        await journal.record("job", [sent])
        rows = await journal.entries("job")
        assert [r.recipient for r in rows] == ["+989120000001", "+989120000002"]  # first-written
        assert rows[0] == sent
        assert rows[1].status == "pending"
        got = await journal.get("job", [sent.key, "absent-key"])
        assert got == {sent.key: sent}


async def test_get_handles_many_keys(tmp_path: Path) -> None:
    """get() with more keys than one SQL statement binds still finds every row."""
    async with SqliteJournal(tmp_path / "j.sqlite") as journal:
        rows = [entry(n) for n in range(1_234)]
        await journal.record("job", rows)
        keys = [r.key for r in rows] + [f"missing-{n}" for n in range(300)]
        got = await journal.get("job", keys)
        assert len(got) == 1_234
        assert got[rows[777].key] == rows[777]
        assert await journal.get("job", []) == {}


async def test_rows_survive_reopen(tmp_path: Path) -> None:
    """What one journal object recorded, a new one on the same file reads back."""
    path = tmp_path / "j.sqlite"
    written = [entry(n, "sent", message_id=str(n), updated=float(n)) for n in range(10)]
    async with SqliteJournal(path) as journal:
        await journal.open("job")
        await journal.record("job", written)
    assert not (tmp_path / "j.sqlite-wal").exists()  # a clean close folds the WAL back
    async with SqliteJournal(path) as again:
        assert await again.entries("job") == written
        assert await again.jobs() == ["job"]


_KILLED_CHILD = textwrap.dedent(
    """
    import os, signal, sys
    import anyio
    from smsgate.dispatch import JournalEntry
    from smsgate.dispatch import SqliteJournal

    async def main() -> None:
        journal = SqliteJournal(sys.argv[1], synchronous=sys.argv[2])
        await journal.open("job")
        rows = [
            JournalEntry(key=f"k{n}", recipient=f"+98912{n:07d}", status="pending")
            for n in range(int(sys.argv[3]))
        ]
        await journal.record("job", rows)
        # record() returned: the rows must now survive the process dying without warning.
        os.kill(os.getpid(), signal.SIGKILL)

    anyio.run(main)
    """
)


@pytest.mark.parametrize("synchronous", ["FULL", "NORMAL"])
async def test_pending_rows_survive_sigkill(tmp_path: Path, synchronous: str) -> None:
    """Rows whose record() returned are on disk even if the process is SIGKILLed next."""
    path = tmp_path / "j.sqlite"
    child = subprocess.run(  # noqa: ASYNC221 - a short child process is the point of the test
        [sys.executable, "-c", _KILLED_CHILD, str(path), synchronous, "250"],
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert child.returncode == -signal.SIGKILL, child.stderr.decode()
    assert (tmp_path / "j.sqlite-wal").exists()  # it died with the WAL not folded back
    async with SqliteJournal(path) as journal:
        rows = await journal.entries("job")
    assert len(rows) == 250
    assert {r.status for r in rows} == {"pending"}


async def test_wal_mode_durability_and_schema_version(tmp_path: Path) -> None:
    """The file is in WAL mode, FULL by default, and carries our id and schema version."""
    path = tmp_path / "j.sqlite"
    journal = SqliteJournal(path)
    await journal.open("job")
    level = await journal._submit(  # the journal's own connection
        lambda conn: conn.execute("PRAGMA synchronous").fetchone()[0], 1
    )
    assert level == 2  # FULL
    other = sqlite3.connect(path)
    try:
        assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert other.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 2
        assert other.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    finally:
        other.close()
    await journal.aclose()
    normal = SqliteJournal(path, synchronous="NORMAL")
    level = await normal._submit(lambda conn: conn.execute("PRAGMA synchronous").fetchone()[0], 1)
    assert level == 1
    await normal.aclose()


async def test_refuses_files_that_are_not_our_journal(tmp_path: Path) -> None:
    """A foreign SQLite file, a non-SQLite file and a newer schema are refused, untouched."""
    foreign = tmp_path / "foreign.sqlite"
    conn = sqlite3.connect(foreign)
    conn.execute("CREATE TABLE users (name TEXT)")
    conn.commit()
    conn.close()
    with pytest.raises(smsgate.ConfigurationError, match="another application"):
        await SqliteJournal(foreign).open("job")

    conn = sqlite3.connect(foreign)
    assert conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] == 1  # untouched
    conn.close()

    garbage = tmp_path / "garbage.sqlite"
    garbage.write_bytes(b"this is not a database at all " * 200)
    with pytest.raises(smsgate.ConfigurationError, match="not an SQLite database"):
        await SqliteJournal(garbage).open("job")
    with pytest.raises(smsgate.ConfigurationError, match="not an SQLite database"):
        summarize(garbage)
    assert garbage.read_bytes() == b"this is not a database at all " * 200

    newer = tmp_path / "newer.sqlite"
    async with SqliteJournal(newer) as journal:
        await journal.open("job")
    conn = sqlite3.connect(newer)
    conn.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    conn.commit()
    conn.close()
    with pytest.raises(smsgate.ConfigurationError, match="newer smsgate"):
        await SqliteJournal(newer).open("job")
    with pytest.raises(smsgate.ConfigurationError, match="newer smsgate"):
        summarize(newer)


def test_bad_settings_are_refused_before_io(tmp_path: Path) -> None:
    """Memory paths, unknown synchronous levels and negative timeouts raise at construction."""
    for bad in ("", ":memory:", "file:x?mode=memory"):
        with pytest.raises(smsgate.ConfigurationError):
            SqliteJournal(bad)
    with pytest.raises(smsgate.ConfigurationError, match="synchronous"):
        SqliteJournal(tmp_path / "j.sqlite", synchronous="OFF")  # type: ignore[arg-type]
    with pytest.raises(smsgate.ConfigurationError, match="busy_timeout"):
        SqliteJournal(tmp_path / "j.sqlite", busy_timeout=-1)
    assert not (tmp_path / "j.sqlite").exists()


async def test_concurrent_writers_from_many_tasks(tmp_path: Path) -> None:
    """60 tasks writing pending/sent pairs and reading at once: every row right, commits grouped."""
    tasks, per_task = 60, 25
    async with SqliteJournal(tmp_path / "j.sqlite") as journal:
        await journal.open("job")

        async def worker(t: int) -> None:
            for i in range(per_task):
                n = t * per_task + i
                await journal.record("job", [entry(n)])
                await journal.record("job", [entry(n, "sent", message_id=str(n))])
                got = await journal.get("job", [entry(n).key])
                assert got[entry(n).key].status == "sent"

        async with anyio.create_task_group() as tg:
            for t in range(tasks):
                tg.start_soon(worker, t)
        rows = await journal.entries("job")
        assert len(rows) == tasks * per_task
        assert all(r.status == "sent" and r.message_id is not None for r in rows)
        # Group commit: far fewer transactions than record() calls (3,000 here).
        assert journal.commits < tasks * per_task * 2 // 2


async def test_job_isolation(tmp_path: Path) -> None:
    """The same key in two jobs is two rows; each job sees only its own."""
    async with SqliteJournal(tmp_path / "j.sqlite") as journal:
        await journal.open("b-job")
        await journal.open("a-job")
        await journal.record("a-job", [entry(1, "sent"), entry(2, "failed", error="NotSentError")])
        await journal.record("b-job", [entry(1, "unknown", error="OutcomeUnknownError")])
        assert await journal.jobs() == ["a-job", "b-job"]
        assert [r.status for r in await journal.entries("a-job")] == ["sent", "failed"]
        assert [r.status for r in await journal.entries("b-job")] == ["unknown"]
        assert (await journal.get("b-job", [entry(1).key]))[entry(1).key].status == "unknown"
        assert await journal.entries("never-opened") == []
        assert (await journal.summary("b-job"))["b-job"].unknown == 1


async def test_summarize_counts_per_status_per_job(tmp_path: Path) -> None:
    """summarize() counts statuses and errors per job, read-only, even while a job writes."""
    path = tmp_path / "j.sqlite"
    journal = SqliteJournal(path)
    await journal.open("empty")
    await journal.record(
        "c42",
        [
            entry(1, "sent", updated=10.0),
            entry(2, "sent", updated=11.0),
            entry(3, "failed", error="RecipientOptedOutError", updated=12.0),
            entry(4, "unknown", error="OutcomeUnknownError", updated=13.0),
            entry(5, "pending", updated=14.0),
        ],
    )
    summary = summarize(path)  # the journal is still open and writing: WAL readers are fine
    assert list(summary) == ["c42", "empty"]
    c42 = summary["c42"]
    assert (c42.total, c42.sent, c42.failed, c42.unknown, c42.pending) == (5, 2, 1, 1, 1)
    assert c42.in_doubt == 2
    assert dict(c42.errors) == {"OutcomeUnknownError": 1, "RecipientOptedOutError": 1}
    assert c42.updated == 14.0
    assert c42.created is not None
    assert summary["empty"] == JobSummary(
        job_id="empty", created=summary["empty"].created, updated=None
    )
    assert summarize(path, "c42") == {"c42": c42}
    assert summarize(path, "nope") == {}
    empty = tmp_path / "empty.sqlite"
    empty.write_bytes(b"")
    with pytest.raises(smsgate.ConfigurationError, match="no smsgate journal"):
        summarize(empty)
    assert await journal.summary() == summary
    await journal.aclose()
    with pytest.raises(FileNotFoundError):
        summarize(tmp_path / "missing.sqlite")
    assert not (tmp_path / "missing.sqlite").exists()


async def test_closed_journal_refuses_calls(tmp_path: Path) -> None:
    """After aclose() every call raises RuntimeError; aclose() is idempotent."""
    journal = SqliteJournal(tmp_path / "j.sqlite")
    await journal.record("job", [entry(1)])
    await journal.aclose()
    await journal.aclose()
    assert "closed" in repr(journal)
    with pytest.raises(RuntimeError, match="closed"):
        await journal.record("job", [entry(2)])
    with pytest.raises(RuntimeError, match="closed"):
        await journal.entries("job")
    never_used = SqliteJournal(tmp_path / "unused.sqlite")
    await never_used.aclose()
    assert not (tmp_path / "unused.sqlite").exists()


async def test_record_rejects_non_entries_without_writing(tmp_path: Path) -> None:
    """A record() call with a wrong item writes none of its items."""
    async with SqliteJournal(tmp_path / "j.sqlite") as journal:
        with pytest.raises(TypeError, match="JournalEntry"):
            await journal.record("job", [entry(1), {"key": "k"}])  # type: ignore[list-item]
        assert await journal.entries("job") == []
        with pytest.raises(ValueError, match="empty"):
            await journal.record("", [entry(1)])


async def test_cancelled_before_queueing_writes_nothing(tmp_path: Path) -> None:
    """A record() whose task is already cancelled raises the cancellation and writes nothing."""
    async with SqliteJournal(tmp_path / "j.sqlite") as journal:
        with anyio.CancelScope() as scope:
            scope.cancel()
            await journal.record("job", [entry(1)])
        assert scope.cancelled_caught
        assert await journal.entries("job") == []


async def test_cancel_while_queued_still_writes_then_cancels(tmp_path: Path) -> None:
    """A record() cancelled while queued behind a write completes it; the cancel comes after."""
    async with SqliteJournal(tmp_path / "j.sqlite") as journal:
        big = [entry(n) for n in range(30_000)]
        late = entry(99_999_999, "sent")
        done_after_cancel: list[bool] = []

        async def late_writer(scope: anyio.CancelScope) -> None:
            with scope:
                await journal.record("job", [late])
                done_after_cancel.append(scope.cancel_called)
                await anyio.lowlevel.checkpoint()
                done_after_cancel.append(False)  # never reached: the cancel lands here

        async with anyio.create_task_group() as tg:
            tg.start_soon(journal.record, "job", big)
            await wait_until(lambda: journal._busy)
            scope = anyio.CancelScope()
            tg.start_soon(late_writer, scope)
            await wait_until(lambda: len(journal._queue) == 1)
            scope.cancel()
        assert done_after_cancel == [True]
        assert scope.cancelled_caught
        rows = await journal.get("job", [late.key, big[-1].key])
        assert rows[late.key].status == "sent"
        assert rows[big[-1].key].status == "pending"


async def test_one_failing_call_does_not_sink_its_group(tmp_path: Path) -> None:
    """Two record() calls committed together: the one SQLite refuses fails alone."""
    async with SqliteJournal(tmp_path / "j.sqlite") as journal:
        bad = entry(1)
        object.__setattr__(bad, "status", "bogus")  # past the validator: SQLite's CHECK refuses
        good = entry(2, "sent")
        errors: list[BaseException] = []

        async def write(e: JournalEntry) -> None:
            try:
                await journal.record("job", [e])
            except smsgate.JournalError as exc:
                assert isinstance(exc.__cause__, sqlite3.IntegrityError)
                errors.append(exc)

        async with anyio.create_task_group() as tg:
            tg.start_soon(journal.record, "job", [entry(n + 10) for n in range(30_000)])
            await wait_until(lambda: journal._busy)
            tg.start_soon(write, bad)
            tg.start_soon(write, good)
            await wait_until(lambda: len(journal._queue) == 2)
        assert len(errors) == 1
        assert journal.commits == 2  # the big call, then bad+good together
        got = await journal.get("job", [bad.key, good.key])
        assert list(got) == [good.key]


async def test_repr_and_properties(tmp_path: Path) -> None:
    """repr names the file and state; properties report the settings."""
    journal = SqliteJournal(tmp_path / "j.sqlite", synchronous="normal")  # type: ignore[arg-type]
    assert "unopened" in repr(journal)
    assert journal.synchronous == "NORMAL"
    assert journal.path == os.fspath(tmp_path / "j.sqlite")
    await journal.open("job")
    assert "open" in repr(journal)
    await journal.aclose()


async def test_foreign_database_is_left_untouched(tmp_path: Path) -> None:
    """A database of another application is refused before anything in it changes."""
    path = tmp_path / "app.db"
    conn = sqlite3.connect(path)
    conn.execute("create table t(x)")
    conn.commit()
    conn.close()
    before = path.read_bytes()
    with pytest.raises(smsgate.ConfigurationError, match="another application"):
        async with SqliteJournal(path) as journal:
            await journal.open("job")
    assert path.read_bytes() == before
    check = sqlite3.connect(path)
    assert check.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    check.close()
