"""``SqliteJournal``: the embedded, durable :class:`~smsgate.dispatch.Journal` on one SQLite file.

Why SQLite, and how it is used:

* **One file, no server**, in the standard library. ``BulkDispatcher(journal="bulk.sqlite")``
  builds this class for a path.
* **WAL mode** (``PRAGMA journal_mode=WAL``): a commit appends to ``FILE-wal``; readers (the
  ``smsgate journal FILE`` report, a second process) never block the writer, and a process
  killed mid-write leaves a WAL that the next opener replays or discards atomically. A
  journal file is never half-written.
* **Durability** (``PRAGMA synchronous``), the setting that decides whether the promise
  "a ``pending`` row survives a crash once :meth:`SqliteJournal.record` returned" holds:

  - ``NORMAL`` in WAL mode writes each commit to the WAL with ``write(2)`` but only
    ``fsync``\\ s at checkpoints. Once ``write(2)`` returned the bytes belong to the kernel,
    so the commit survives SIGKILL of our process, but **not** a power cut or kernel crash.
  - ``FULL`` (the default here) also ``fsync``\\ s the WAL on every commit, so a returned
    :meth:`~SqliteJournal.record` survives a power cut too. A lost ``pending`` row means a
    recipient whose request may have gone out would be sent again after the restart, which
    costs money and annoys a person: worth one ``fsync``. The cost is paid once per *group*
    of writes, not per recipient (see below), so it does not limit a bulk job in practice
    (``docs/reliability.md`` has the measured figures).

  Pass ``synchronous="NORMAL"`` if power-loss durability is not needed.
* **One connection, one writer at a time, group commit.** sqlite3 is blocking, so every
  statement runs in a worker thread (:func:`anyio.to_thread.run_sync`). Calls are queued;
  whichever task finds the journal idle becomes the *leader*, takes everything queued so
  far and runs it in one thread hop: every queued :meth:`~SqliteJournal.record` in **one
  transaction** (each call inside its own savepoint, so a bad call fails alone), then the
  reads. Calls that arrive meanwhile wait and are led by the next leader. With 32 requests
  in flight this turns ~64 commits into a handful, and never runs two statements on the
  connection at once.
* **Cancellation.** A call cancelled before it is queued writes nothing and raises the
  cancellation. Once queued it runs to the end (shielded) and the cancellation is delivered
  at the caller's next checkpoint, so a :meth:`~SqliteJournal.record` that returned is
  always on disk, and one that was cancelled either wrote nothing or, if it had already
  started, wrote everything.
* **Several processes on one file.** :meth:`SqliteJournal.claim` reads and writes in one
  ``BEGIN IMMEDIATE`` transaction, which takes SQLite's write lock first: two processes
  claiming the same key never both win it, so dispatchers in several processes can share
  one job on one file. A process that finds the file locked waits up to ``busy_timeout``
  (30 s by default; a claim holds the lock for milliseconds), and only then fails with
  :class:`~smsgate.JournalError`.
* **A failing journal says so.** Every sqlite3 error (a full disk, a read-only file, a lock
  held past ``busy_timeout``) is raised as :class:`~smsgate.JournalError` naming the file
  and what to do, with the sqlite3 error as its ``__cause__``.
* **Schema versioned** with ``PRAGMA user_version`` (now 2) and marked as ours with
  ``PRAGMA application_id``; an older file is migrated in place, and a file of another
  application, or one written by a newer smsgate, is refused with
  :class:`~smsgate.ConfigurationError` instead of being modified. The schema and its
  migrations are in ``smsgate.dispatch._sqlite_schema``.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Sequence
from types import TracebackType
from typing import Any, Literal, Self

import anyio
import anyio.lowlevel
import anyio.to_thread

from ..exceptions import ConfigurationError
from ._journal import (
    DeliveryUpdate,
    JournalEntry,
    check_job_id,
    claimable_state,
    stored_delivery,
)
from ._sqlite_queue import CLOSE as _CLOSE
from ._sqlite_queue import READ as _READ
from ._sqlite_queue import WRITE as _WRITE
from ._sqlite_queue import SqliteQueue
from ._sqlite_schema import (
    APPLICATION_ID,
    SCHEMA_VERSION,
)
from ._sqlite_summary import summaries, summarize
from ._summary import JobSummary

__all__ = ["APPLICATION_ID", "SCHEMA_VERSION", "JobSummary", "SqliteJournal", "summarize"]

Synchronous = Literal["NORMAL", "FULL", "EXTRA"]
_SYNCHRONOUS: frozenset[str] = frozenset({"NORMAL", "FULL", "EXTRA"})

# SQLite allows 32766 bound parameters per statement (3.32+); stay far below it.
_KEYS_PER_QUERY = 500

_UPSERT = """
    INSERT INTO entries
        (job_id, key, recipient, status, route, provider, message_id, error, detail, updated,
         parts, delivery, delivery_status, delivery_updated)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (job_id, key) DO UPDATE SET
        recipient = excluded.recipient,
        status = excluded.status,
        route = excluded.route,
        provider = excluded.provider,
        message_id = excluded.message_id,
        error = excluded.error,
        detail = excluded.detail,
        updated = excluded.updated,
        parts = excluded.parts,
        delivery = excluded.delivery,
        delivery_status = excluded.delivery_status,
        delivery_updated = excluded.delivery_updated
"""

_COLUMNS = (
    "key, recipient, status, route, provider, message_id, error, detail, updated, "
    "parts, delivery, delivery_status, delivery_updated"
)


class SqliteJournal(SqliteQueue):
    """A :class:`~smsgate.dispatch.Journal` kept in one SQLite file (WAL mode).

    Durable: when :meth:`record` returns, its rows survive SIGKILL of the process (and, with
    the default ``synchronous="FULL"``, a power cut). Safe to share between the tasks of one
    event loop; concurrent calls are grouped into one transaction. See the module docstring
    for the reasoning behind each setting.

    Args:
        path: The journal file; created (with its directory entry) on first use.
        synchronous: SQLite's ``PRAGMA synchronous``: ``"FULL"`` (default; survives a power
            cut), ``"NORMAL"`` (survives a process crash only; fewer ``fsync`` calls) or
            ``"EXTRA"``.
        busy_timeout: Seconds to wait for another process's write lock on the same file.

    Raises:
        ConfigurationError: ``path`` is empty or ``":memory:"`` (use ``MemoryJournal``), or
            ``synchronous`` is not one of the three values. A file that is not an smsgate
            journal raises it on first use.

    Example::

        async with SqliteJournal("bulk.sqlite") as journal:
            report = await BulkDispatcher(gateway, journal=journal).run(messages, job_id="c42")
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        synchronous: Synchronous = "FULL",
        busy_timeout: float = 30.0,
    ) -> None:
        fspath = os.fspath(path)
        if fspath in ("", ":memory:") or fspath.startswith("file:"):
            raise ConfigurationError(
                "SqliteJournal needs a file path (for an in-memory journal use MemoryJournal)"
            )
        mode = str(synchronous).upper()
        if mode not in _SYNCHRONOUS:
            raise ConfigurationError(
                f"synchronous must be one of {sorted(_SYNCHRONOUS)}, not {synchronous!r}"
            )
        if busy_timeout < 0:
            raise ConfigurationError("busy_timeout must not be negative")
        super().__init__(fspath, synchronous=mode, busy_timeout=float(busy_timeout))

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open" if self._conn is not None else "unopened"
        return f"<SqliteJournal {self._path!r} {state}>"

    @property
    def path(self) -> str:
        """The journal file."""
        return self._path

    @property
    def synchronous(self) -> str:
        """The ``PRAGMA synchronous`` level in use."""
        return self._synchronous

    @property
    def commits(self) -> int:
        """How many write transactions were committed (each may hold many ``record`` calls)."""
        return self._commits

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # -- the Journal protocol ----------------------------------------------------------

    async def open(self, job_id: str) -> None:
        """Create the file and tables if needed and register ``job_id``. Idempotent.

        Raises:
            ConfigurationError: The file is not an smsgate journal, or a newer one.
            sqlite3.Error: The file cannot be created or written.
        """
        job = check_job_id(job_id)

        def register(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT OR IGNORE INTO jobs (job_id, created) VALUES (?, ?)", (job, time.time())
            )

        await self._submit(register, _WRITE)

    async def get(self, job_id: str, keys: Sequence[str]) -> dict[str, JournalEntry]:
        """The rows known for ``keys`` in ``job_id``; keys without a row are absent."""
        job = check_job_id(job_id)
        wanted = list(dict.fromkeys(keys))
        if not wanted:
            await anyio.lowlevel.checkpoint()
            return {}

        def read(conn: sqlite3.Connection) -> dict[str, JournalEntry]:
            found: dict[str, JournalEntry] = {}
            for start in range(0, len(wanted), _KEYS_PER_QUERY):
                chunk = wanted[start : start + _KEYS_PER_QUERY]
                marks = ",".join("?" * len(chunk))
                rows = conn.execute(
                    f"SELECT {_COLUMNS} FROM entries WHERE job_id = ? AND key IN ({marks})",  # noqa: S608 - only "?" marks are interpolated
                    (job, *chunk),
                )
                for row in rows:
                    entry = _entry(row)
                    found[entry.key] = entry
            return found

        result: dict[str, JournalEntry] = await self._submit(read, _READ)
        return result

    async def record(self, job_id: str, entries: Sequence[JournalEntry]) -> None:
        """Upsert ``entries`` by ``(job_id, key)`` in one transaction; durable when it returns.

        Raises:
            TypeError: An item is not a :class:`JournalEntry` (nothing is written).
            sqlite3.Error: The write failed (nothing of this call is written).
        """
        job = check_job_id(job_id)
        rows = [_row(job, entry) for entry in entries]
        if not rows:
            await anyio.lowlevel.checkpoint()
            return

        def write(conn: sqlite3.Connection) -> None:
            # A job written to without open() still gets its jobs row (jobs() lists it).
            conn.execute(
                "INSERT OR IGNORE INTO jobs (job_id, created) VALUES (?, ?)", (job, time.time())
            )
            conn.executemany(_UPSERT, rows)

        await self._submit(write, _WRITE)

    async def claim(self, job_id: str, entries: Sequence[JournalEntry]) -> set[str]:
        """Write ``entries`` where absent or :func:`claimable`; return the keys won.

        The read and the write run in one ``BEGIN IMMEDIATE`` transaction, which holds
        SQLite's write lock from its start: two processes on one file never both win a
        key. Durable when it returns.
        """
        job = check_job_id(job_id)
        wanted: dict[str, JournalEntry] = {}
        for entry in entries:
            wanted.setdefault(entry.key, entry)
        if not wanted:
            await anyio.lowlevel.checkpoint()
            return set()

        def write(conn: sqlite3.Connection) -> set[str]:
            conn.execute(
                "INSERT OR IGNORE INTO jobs (job_id, created) VALUES (?, ?)", (job, time.time())
            )
            keys = list(dict.fromkeys([*wanted, *(a for e in wanted.values() for a in e.aliases)]))
            taken: set[str] = set()
            for start in range(0, len(keys), _KEYS_PER_QUERY):
                chunk = keys[start : start + _KEYS_PER_QUERY]
                marks = ",".join("?" * len(chunk))
                rows = conn.execute(
                    f"SELECT key, status, error FROM entries WHERE job_id = ? AND key IN ({marks})",  # noqa: S608 - only "?" marks are interpolated
                    (job, *chunk),
                )
                taken.update(
                    key for key, status, error in rows if not claimable_state(status, error)
                )
            won = [
                entry
                for key, entry in wanted.items()
                if key not in taken and taken.isdisjoint(entry.aliases)
            ]
            conn.executemany(_UPSERT, [_row(job, entry) for entry in won])
            return {entry.key for entry in won}

        result: set[str] = await self._submit(write, _WRITE)
        return result

    async def entries(self, job_id: str) -> list[JournalEntry]:
        """Every row of ``job_id``, in first-written order."""
        job = check_job_id(job_id)

        def read(conn: sqlite3.Connection) -> list[JournalEntry]:
            rows = conn.execute(
                f"SELECT {_COLUMNS} FROM entries WHERE job_id = ? ORDER BY rowid",  # noqa: S608 - constant column list
                (job,),
            )
            return [_entry(row) for row in rows]

        result: list[JournalEntry] = await self._submit(read, _READ)
        return result

    async def jobs(self) -> list[str]:
        """The ids of every job in the file, sorted."""

        def read(conn: sqlite3.Connection) -> list[str]:
            return [str(row[0]) for row in conn.execute("SELECT job_id FROM jobs ORDER BY job_id")]

        result: list[str] = await self._submit(read, _READ)
        return result

    async def summary(self, job_id: str | None = None) -> dict[str, JobSummary]:
        """Counts per status for each job (or one job): the async twin of :func:`summarize`."""
        job = None if job_id is None else check_job_id(job_id)
        result: dict[str, JobSummary] = await self._submit(lambda conn: summaries(conn, job), _READ)
        return result

    async def record_delivery(self, updates: Sequence[DeliveryUpdate]) -> int:
        """Store delivery states on the rows they name, in any job; return the rows changed.

        A row matches an update by ``message_id`` and, when the update names one, by
        ``recipient`` (an ippanel bulk id is shared by all its recipients). One
        transaction for all ``updates``; durable when it returns.
        """
        rows = [
            (
                u.state.value,
                u.provider_status,
                float(u.at),
                u.message_id,
                u.recipient,
                u.recipient,
            )
            for u in _check_updates(updates)
        ]
        if not rows:
            await anyio.lowlevel.checkpoint()
            return 0

        def write(conn: sqlite3.Connection) -> int:
            changed = 0
            for row in rows:
                changed += conn.execute(
                    "UPDATE entries SET delivery = ?, delivery_status = ?, delivery_updated = ? "
                    "WHERE message_id = ? AND (? IS NULL OR recipient = ?)",
                    row,
                ).rowcount
            return changed

        result: int = await self._submit(write, _WRITE)
        return result

    async def recent_sends(
        self, keys: Sequence[str], *, since: float, exclude_job: str
    ) -> dict[str, str]:
        """Keys ``sent`` in another job at or after ``since``: key -> that job's id.

        Where a key was sent by several other jobs, the one written last is named.
        """
        wanted = list(dict.fromkeys(keys))
        if not wanted:
            await anyio.lowlevel.checkpoint()
            return {}
        since = float(since)

        def read(conn: sqlite3.Connection) -> dict[str, str]:
            found: dict[str, str] = {}
            for start in range(0, len(wanted), _KEYS_PER_QUERY):
                chunk = wanted[start : start + _KEYS_PER_QUERY]
                marks = ",".join("?" * len(chunk))
                rows = conn.execute(
                    f"SELECT key, job_id FROM entries WHERE key IN ({marks}) "  # noqa: S608 - only "?" marks are interpolated
                    "AND status = 'sent' AND updated >= ? AND job_id != ? ORDER BY updated",
                    (*chunk, since, exclude_job),
                )
                found.update(rows)
            return found

        result: dict[str, str] = await self._submit(read, _READ)
        return result

    async def aclose(self) -> None:
        """Finish queued calls, then close the file. Idempotent.

        Later calls of the other methods raise ``RuntimeError``.
        """
        if self._closed:
            await anyio.lowlevel.checkpoint()
            return
        self._closed = True
        if self._conn is None and not self._busy and not self._queue:
            await anyio.lowlevel.checkpoint()
            return
        await self._submit(self._close_connection, _CLOSE, check_open=False)


# -- rows ----------------------------------------------------------------------------------


def _check_updates(updates: Sequence[DeliveryUpdate]) -> list[DeliveryUpdate]:
    checked = list(updates)
    for update in checked:
        if not isinstance(update, DeliveryUpdate):
            raise TypeError(
                f"record_delivery takes DeliveryUpdate values, not {type(update).__name__}"
            )
    return checked


def _row(job_id: str, entry: JournalEntry) -> tuple[Any, ...]:
    if not isinstance(entry, JournalEntry):
        raise TypeError(f"a journal records JournalEntry values, not {type(entry).__name__}")
    return (
        job_id,
        entry.key,
        entry.recipient,
        entry.status,
        entry.route,
        entry.provider,
        entry.message_id,
        entry.error,
        entry.detail,
        float(entry.updated),
        entry.parts,
        None if entry.delivery is None else entry.delivery.value,
        entry.delivery_status,
        entry.delivery_updated,
    )


def _entry(row: Sequence[Any]) -> JournalEntry:
    (
        key,
        recipient,
        status,
        route,
        provider,
        message_id,
        error,
        detail,
        updated,
        parts,
        delivery,
        delivery_status,
        delivery_updated,
    ) = row
    return JournalEntry(
        key=key,
        recipient=recipient,
        status=status,
        route=route,
        provider=provider,
        message_id=message_id,
        error=error,
        detail=detail,
        updated=float(updated),
        parts=parts,
        delivery=stored_delivery(delivery),
        delivery_status=delivery_status,
        delivery_updated=None if delivery_updated is None else float(delivery_updated),
    )
