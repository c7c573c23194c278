"""SqliteJournal.claim across processes, the journal contract, schema migration, storage errors."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import smsgate
from smsgate.dispatch import MemoryJournal
from smsgate.dispatch._sqlite_journal import (
    APPLICATION_ID,
    SCHEMA_VERSION,
    SqliteJournal,
    summarize,
)

from .._journal_contract import (
    check_claim_aliases,
    check_claim_semantics,
    check_delivery_and_recent,
    check_fields_round_trip,
    check_reconcile,
    check_summary,
    entry,
    race_claimers,
)

pytestmark = pytest.mark.anyio

# -- the contract, on both in-process journals --------------------------------------------


@pytest.mark.parametrize(
    "check",
    [
        check_claim_semantics,
        check_claim_aliases,
        check_delivery_and_recent,
        check_fields_round_trip,
        check_reconcile,
    ],
)
async def test_memory_journal_contract(check: object) -> None:
    """MemoryJournal keeps every rule of the shared journal contract."""
    journal = MemoryJournal()
    await check(journal)  # type: ignore[operator]


@pytest.mark.parametrize(
    "check",
    [
        check_claim_semantics,
        check_claim_aliases,
        check_delivery_and_recent,
        check_fields_round_trip,
        check_reconcile,
        check_summary,
    ],
)
async def test_sqlite_journal_contract(tmp_path: Path, check: object) -> None:
    """SqliteJournal keeps every rule of the shared journal contract, and after a reopen."""
    async with SqliteJournal(tmp_path / "j.sqlite") as journal:
        await check(journal)  # type: ignore[operator]


# -- several processes claiming one job --------------------------------------------------------

_CLAIMER = textwrap.dedent(
    """
    import json, random, sys
    import anyio
    from smsgate.dispatch import JournalEntry
    from smsgate.dispatch import SqliteJournal

    async def main() -> None:
        path, first, count, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
        keys = [f"k{n:05d}" for n in range(first, first + count)]
        random.Random(seed).shuffle(keys)
        journal = SqliteJournal(path)  # nothing opened yet: the file is created after the barrier
        print("ready", flush=True)
        assert sys.stdin.readline().strip() == "go"
        won: list[str] = []
        for start in range(0, len(keys), 7):  # many small claims interleave with the others'
            rows = [
                JournalEntry(key=k, recipient="+98912" + k[1:].rjust(7, "0"), status="pending")
                for k in keys[start : start + 7]
            ]
            won.extend(await journal.claim("job", rows))
        await journal.aclose()
        print(json.dumps(won), flush=True)

    anyio.run(main)
    """
)


@pytest.mark.parametrize("start", ["new file", "version 1 file"])
def test_processes_claiming_one_job_win_disjoint_sets(tmp_path: Path, start: str) -> None:
    """4 processes claim overlapping key ranges of one job on one file, released at once.

    The winners are disjoint (nobody sends a recipient another process won) and their union
    is every key (nothing is lost), with SQLite's locking as the only coordination; the
    file is even created (or migrated from version 1) by whichever process gets there
    first.
    """
    path = tmp_path / "shared.sqlite"
    if start == "version 1 file":
        make_v1(path)
    procs = 4
    race_claimers(
        [
            [sys.executable, "-c", _CLAIMER, str(path), str(i * 50), "250", str(i)]
            for i in range(procs)
        ],
        keys=400,
    )
    conn = sqlite3.connect(path)
    try:
        assert conn.execute(
            "SELECT count(*), min(status), max(status) FROM entries WHERE job_id = 'job'"
        ).fetchone() == (
            400,
            "pending",
            "pending",
        )
    finally:
        conn.close()


# -- schema version 1 files -----------------------------------------------------------------

_V1_SCHEMA = """
    CREATE TABLE jobs (job_id TEXT PRIMARY KEY NOT NULL, created REAL NOT NULL);
    CREATE TABLE entries (
        job_id TEXT NOT NULL, key TEXT NOT NULL, recipient TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('pending', 'sent', 'failed', 'unknown')),
        route TEXT, provider TEXT, message_id TEXT, error TEXT, detail TEXT,
        updated REAL NOT NULL, PRIMARY KEY (job_id, key));
"""


def make_v1(path: Path) -> None:
    """A journal file as smsgate 0.1 wrote it (schema 1), with two rows."""
    conn = sqlite3.connect(path)
    conn.executescript(_V1_SCHEMA)
    conn.execute("INSERT INTO jobs VALUES ('old', 1.0)")
    for n, status in ((1, "sent"), (2, "failed")):
        e = entry(n, status)
        conn.execute(
            "INSERT INTO entries VALUES ('old', ?, ?, ?, 'r', 'ippanel', ?, ?, NULL, 5.0)",
            (e.key, e.recipient, status, f"m{n}", None if n == 1 else "NotSentError"),
        )
    conn.execute(f"PRAGMA application_id={APPLICATION_ID}")
    conn.execute("PRAGMA user_version=1")
    conn.commit()
    conn.close()


async def test_version_1_file_is_migrated_in_place(tmp_path: Path) -> None:
    """A schema-1 file is read by summarize() as is, then migrated by the journal, rows kept."""
    path = tmp_path / "v1.sqlite"
    make_v1(path)
    before = summarize(path)["old"]  # read-only: reads a v1 file without migrating it
    assert (before.sent, before.failed, before.parts, before.pending_delivery) == (1, 1, 0, 1)
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 1
    conn.close()
    async with SqliteJournal(path) as journal:
        rows = await journal.entries("old")
        assert [(r.status, r.message_id, r.parts, r.delivery) for r in rows] == [
            ("sent", "m1", None, None),
            ("failed", "m2", None, None),
        ]
        assert await journal.claim("old", [entry(1), entry(2)]) == {entry(2).key}
        assert (
            await journal.record_delivery(
                [
                    smsgate.dispatch._journal.DeliveryUpdate(
                        message_id="m1",
                        recipient=None,
                        state=smsgate.DeliveryState.DELIVERED,
                        provider_status="delivered",
                        at=9.0,
                    )
                ]
            )
            == 1
        )
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 2
        indexes = {row[1] for row in conn.execute("PRAGMA index_list(entries)")}
        assert {"entries_message_id", "entries_key"} <= indexes
    finally:
        conn.close()
    assert summarize(path)["old"].delivered == 1


# -- a failing journal says so --------------------------------------------------------------


async def test_full_disk_is_a_journal_error_naming_the_file(tmp_path: Path) -> None:
    """SQLITE_FULL (the file capped with max_page_count) raises JournalError: file, advice, cause.

    What was committed before stays readable.
    """
    path = tmp_path / "full.sqlite"
    async with SqliteJournal(path) as journal:
        await journal.record("job", [entry(1, "sent")])
        pages = await journal._submit(lambda c: c.execute("PRAGMA page_count").fetchone()[0], 1)
        await journal._submit(lambda c: c.execute(f"PRAGMA max_page_count={pages + 2}"), 1)
        big = [entry(n, detail="x" * 2000) for n in range(2, 200)]
        with pytest.raises(smsgate.JournalError) as caught:
            await journal.record("job", big)
        error = caught.value
        assert str(path) in str(error) and error.path == str(path)
        assert "free disk space" in str(error)
        assert isinstance(error.__cause__, sqlite3.OperationalError)
        assert error.__cause__.sqlite_errorname == "SQLITE_FULL"
        with pytest.raises(smsgate.JournalError, match="full"):
            await journal.claim("job", big)
        assert [r.recipient for r in await journal.entries("job")] == [entry(1).recipient]


async def test_write_refused_by_sqlite_is_a_journal_error(tmp_path: Path) -> None:
    """SQLITE_READONLY (a connection SQLite will not let write) becomes JournalError."""
    path = tmp_path / "ro.sqlite"
    async with SqliteJournal(path) as journal:
        await journal.record("job", [entry(1)])
        await journal._submit(lambda c: c.execute("PRAGMA query_only=1"), 1)
        with pytest.raises(
            smsgate.JournalError, match="read-only: check the permissions"
        ) as caught:
            await journal.claim("job", [entry(2)])
        assert isinstance(caught.value.__cause__, sqlite3.OperationalError)


def _make_read_only(path: Path) -> bool:
    """Make ``path`` unwritable for this process: chmod, or (as root) the immutable flag."""
    if os.geteuid() != 0:
        path.chmod(0o444)
        path.parent.chmod(0o555)
        return True
    chattr = shutil.which("chattr")
    if chattr is None:
        return False
    done = subprocess.run([chattr, "+i", str(path)], capture_output=True, check=False)
    return done.returncode == 0


def _undo_read_only(path: Path) -> None:
    if os.geteuid() != 0:
        path.parent.chmod(0o755)
        path.chmod(0o644)
    else:
        chattr = shutil.which("chattr")
        if chattr is not None:
            subprocess.run([chattr, "-i", str(path)], capture_output=True, check=False)


async def test_read_only_file_is_a_journal_error(tmp_path: Path) -> None:
    """A journal file the process may not write raises JournalError naming it, not a crash."""
    folder = tmp_path / "ro"
    folder.mkdir()
    path = folder / "j.sqlite"
    async with SqliteJournal(path) as journal:
        await journal.record("job", [entry(1)])
    if not _make_read_only(path):
        pytest.skip("cannot make a file read-only here (root without chattr)")
    try:
        journal = SqliteJournal(path)
        with pytest.raises(smsgate.JournalError) as caught:
            await journal.claim("job", [entry(2)])
        await journal.aclose()
        message = str(caught.value)
        assert repr(str(path)) in message
        assert "read-only" in message or "cannot be opened" in message
        assert isinstance(caught.value.__cause__, sqlite3.Error)
    finally:
        _undo_read_only(path)


async def test_lock_held_past_busy_timeout_is_a_journal_error(tmp_path: Path) -> None:
    """Another process holding the write lock past busy_timeout: JournalError, says which."""
    path = tmp_path / "locked.sqlite"
    async with SqliteJournal(path) as journal:
        await journal.open("job")
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # the write lock, held like a stuck process would
    try:
        journal = SqliteJournal(path, busy_timeout=0.05)
        with pytest.raises(smsgate.JournalError, match=r"locked for more than 0\.05 s") as caught:
            await journal.claim("job", [entry(1)])
        assert isinstance(caught.value.__cause__, sqlite3.OperationalError)
        await journal.aclose()
    finally:
        holder.execute("ROLLBACK")
        holder.close()


async def test_missing_directory_is_a_journal_error(tmp_path: Path) -> None:
    """A journal path in a directory that does not exist: JournalError saying so."""
    path = tmp_path / "no-such-dir" / "j.sqlite"
    journal = SqliteJournal(path)
    with pytest.raises(smsgate.JournalError, match="directory exists") as caught:
        await journal.open("job")
    assert caught.value.path == str(path)
    assert isinstance(caught.value.__cause__, sqlite3.OperationalError)
    await journal.aclose()
    assert not path.parent.exists()
