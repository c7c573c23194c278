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
* **Schema versioned** with ``PRAGMA user_version`` (now 1) and marked as ours with
  ``PRAGMA application_id``; a file of another application, or one written by a newer
  smsgate, is refused with :class:`~smsgate.ConfigurationError` instead of being modified.

Schema (version 1)::

    jobs(job_id TEXT PRIMARY KEY, created REAL)
    entries(job_id, key, recipient, status, route, provider, message_id, error, detail,
            updated, PRIMARY KEY (job_id, key))     -- one row per (job, recipient/text/sender)

One process per job at a time: two processes running the same ``job_id`` against the same
file at the same moment would both see "absent" for a recipient and both send it.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType, TracebackType
from typing import Any, Literal, Self

import anyio
import anyio.lowlevel
import anyio.to_thread
import attrs

from ..exceptions import ConfigurationError
from ._journal import JournalEntry, claimable

__all__ = ["SCHEMA_VERSION", "JobSummary", "SqliteJournal", "summarize"]

#: The schema version this code writes (``PRAGMA user_version``).
SCHEMA_VERSION = 1
#: ``PRAGMA application_id`` of an smsgate journal: ASCII "smsg".
APPLICATION_ID = 0x736D7367

Synchronous = Literal["NORMAL", "FULL", "EXTRA"]
_SYNCHRONOUS: frozenset[str] = frozenset({"NORMAL", "FULL", "EXTRA"})

# SQLite allows 32766 bound parameters per statement (3.32+); stay far below it.
_KEYS_PER_QUERY = 500

_SCHEMA_V1 = (
    """
    CREATE TABLE jobs (
        job_id  TEXT PRIMARY KEY NOT NULL,
        created REAL NOT NULL
    )
    """,
    # A rowid table (not WITHOUT ROWID): an upsert keeps the rowid, so ORDER BY rowid
    # lists a job's rows in first-written order, as MemoryJournal does.
    """
    CREATE TABLE entries (
        job_id     TEXT NOT NULL,
        key        TEXT NOT NULL,
        recipient  TEXT NOT NULL,
        status     TEXT NOT NULL
                   CHECK (status IN ('pending', 'sent', 'failed', 'unknown')),
        route      TEXT,
        provider   TEXT,
        message_id TEXT,
        error      TEXT,
        detail     TEXT,
        updated    REAL NOT NULL,
        PRIMARY KEY (job_id, key)
    )
    """,
)

_UPSERT = """
    INSERT INTO entries
        (job_id, key, recipient, status, route, provider, message_id, error, detail, updated)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (job_id, key) DO UPDATE SET
        recipient = excluded.recipient,
        status = excluded.status,
        route = excluded.route,
        provider = excluded.provider,
        message_id = excluded.message_id,
        error = excluded.error,
        detail = excluded.detail,
        updated = excluded.updated
"""

_COLUMNS = "key, recipient, status, route, provider, message_id, error, detail, updated"


# -- the work queue ----------------------------------------------------------------------

_WRITE, _READ, _CLOSE = 0, 1, 2


class _Op:
    """One queued call: a function of the connection, run in the worker thread."""

    __slots__ = ("done", "error", "fn", "kind", "result", "wake")

    def __init__(self, fn: Callable[[sqlite3.Connection], Any], kind: int) -> None:
        self.fn = fn
        self.kind = kind
        self.done = False
        self.result: Any = None
        self.error: BaseException | None = None
        # Set when the op is done, or when its task must lead the next batch.
        self.wake = anyio.Event()


class SqliteJournal:
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
        self._path = fspath
        self._synchronous = mode
        self._busy_timeout = float(busy_timeout)
        self._conn: sqlite3.Connection | None = None
        self._queue: list[_Op] = []
        self._busy = False
        self._closed = False
        # Serialises use of the connection even if, against advice, two event loops in two
        # threads share this object; uncontended in the normal case.
        self._thread_lock = threading.Lock()
        self._commits = 0

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
        job = _check_job_id(job_id)

        def register(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT OR IGNORE INTO jobs (job_id, created) VALUES (?, ?)", (job, time.time())
            )

        await self._submit(register, _WRITE)

    async def get(self, job_id: str, keys: Sequence[str]) -> dict[str, JournalEntry]:
        """The rows known for ``keys`` in ``job_id``; keys without a row are absent."""
        job = _check_job_id(job_id)
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
        job = _check_job_id(job_id)
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
        job = _check_job_id(job_id)
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
                    f"SELECT {_COLUMNS} FROM entries WHERE job_id = ? AND key IN ({marks})",  # noqa: S608 - only "?" marks are interpolated
                    (job, *chunk),
                )
                taken.update(e.key for e in map(_entry, rows) if not claimable(e))
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
        job = _check_job_id(job_id)

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
        job = None if job_id is None else _check_job_id(job_id)
        result: dict[str, JobSummary] = await self._submit(
            lambda conn: _summaries(conn, job), _READ
        )
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

    # -- the queue ---------------------------------------------------------------------

    async def _submit(
        self, fn: Callable[[sqlite3.Connection], Any], kind: int, *, check_open: bool = True
    ) -> Any:
        # A task cancelled before it gets here has written nothing: let it go.
        await anyio.lowlevel.checkpoint_if_cancelled()
        if check_open and self._closed:
            raise RuntimeError("this journal is closed")
        op = _Op(fn, kind)
        self._queue.append(op)
        # From here on the op will run (a write may already be in SQLite's hands), so the
        # caller waits for it whatever happens: a record() that returns is on disk, and a
        # cancellation is delivered at the caller's next checkpoint instead.
        with anyio.CancelScope(shield=True):
            if self._busy:
                await op.wake.wait()
            if not op.done:
                await self._lead()
        if op.error is not None:
            raise op.error
        return op.result

    async def _lead(self) -> None:
        self._busy = True
        batch, self._queue = self._queue, []
        try:
            await anyio.to_thread.run_sync(self._run_batch, batch)
        finally:
            for op in batch:
                if not op.done:
                    op.done = True
                    if op.error is None and op.result is None:
                        op.error = RuntimeError("the journal call was interrupted")
                op.wake.set()
            if self._queue:
                # Hand over: the first waiting task leads the next batch (busy stays set,
                # so later arrivals keep queueing behind it).
                self._queue[0].wake.set()
            else:
                self._busy = False

    # -- the worker thread -------------------------------------------------------------

    def _run_batch(self, batch: list[_Op]) -> None:
        with self._thread_lock:
            ordered = sorted(batch, key=lambda op: op.kind)  # writes, reads, then close
            conn: sqlite3.Connection | None = None
            if any(op.kind != _CLOSE for op in ordered):
                try:
                    conn = self._connection()
                except Exception as exc:
                    for op in ordered:
                        if op.kind != _CLOSE:
                            op.error, op.done = exc, True
            writes = [op for op in ordered if op.kind == _WRITE and not op.done]
            if conn is not None and writes:
                self._write_all(conn, writes)
            for op in ordered:
                if op.done:
                    continue
                try:
                    op.result = op.fn(conn)  # type: ignore[arg-type] # close ops take None
                except Exception as exc:
                    op.error = exc
                op.done = True

    def _write_all(self, conn: sqlite3.Connection, writes: list[_Op]) -> None:
        applied: list[_Op] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
            for op in writes:
                conn.execute("SAVEPOINT journal_call")
                try:
                    op.result = op.fn(conn)
                except Exception as exc:
                    # This call alone is undone; the others of the group still commit.
                    conn.execute("ROLLBACK TO journal_call")
                    conn.execute("RELEASE journal_call")
                    op.error, op.done = exc, True
                else:
                    conn.execute("RELEASE journal_call")
                    applied.append(op)
            conn.execute("COMMIT")
            self._commits += 1
        except Exception as exc:
            if conn.in_transaction:
                # Every call of the group is reported failed whether or not this works.
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            for op in writes:
                if not op.done:
                    op.result, op.error, op.done = None, exc, True
            return
        for op in applied:
            op.done = True

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            self._conn = _connect(
                self._path, synchronous=self._synchronous, busy_timeout=self._busy_timeout
            )
        return self._conn

    def _close_connection(self, _conn: sqlite3.Connection | None) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            # Closing the last connection checkpoints the WAL into the main file and
            # removes FILE-wal and FILE-shm.
            conn.close()


# -- opening and the schema ---------------------------------------------------------------


def _connect(path: str, *, synchronous: str, busy_timeout: float) -> sqlite3.Connection:
    # isolation_level=None: no implicit transactions; this module says BEGIN and COMMIT.
    # check_same_thread=False: anyio's worker threads take turns; the queue above makes
    # sure only one of them uses the connection at a time.
    conn = sqlite3.connect(
        path, timeout=busy_timeout, isolation_level=None, check_same_thread=False
    )
    try:
        try:
            # Look before changing anything: WAL mode is written into the file itself, so a
            # foreign database (a mistyped --journal app.db) must be refused first.
            _refuse_foreign(conn, path)
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        except sqlite3.DatabaseError as exc:
            raise ConfigurationError(
                f"{path!r} is not an SQLite database, so not an smsgate journal"
            ) from exc
        if str(mode).lower() != "wal":
            raise ConfigurationError(
                f"the journal {path!r} cannot use WAL mode (journal_mode={mode!r}); "
                "put it on a local file system"
            )
        conn.execute(f"PRAGMA synchronous={synchronous}")
        _migrate(conn, path)
    except BaseException:
        conn.close()
        raise
    return conn


def _refuse_foreign(conn: sqlite3.Connection, path: str) -> None:
    """Raise ConfigurationError for an SQLite file that is not (and cannot become) ours,
    with plain reads only."""
    app_id = conn.execute("PRAGMA application_id").fetchone()[0]
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if app_id == 0 and version == 0:
        if conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]:
            raise ConfigurationError(
                f"{path!r} is an SQLite database of another application, not an smsgate journal"
            )
        return  # a new, empty file: ours to set up
    _check_header(app_id, version, path)


def _migrate(conn: sqlite3.Connection, path: str) -> None:
    # BEGIN IMMEDIATE: two processes opening a new file at once must not both create it.
    conn.execute("BEGIN IMMEDIATE")
    try:
        app_id = conn.execute("PRAGMA application_id").fetchone()[0]
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if app_id == 0 and version == 0:
            tables = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
            if tables:
                raise ConfigurationError(
                    f"{path!r} is an SQLite database of another application, not an smsgate journal"
                )
            for statement in _SCHEMA_V1:
                conn.execute(statement)
            conn.execute(f"PRAGMA application_id={APPLICATION_ID}")
            conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        else:
            _check_header(app_id, version, path)
            # Future versions migrate here, one step at a time: "if version < 2: ...".
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def _check_header(app_id: int, version: int, path: str) -> None:
    if app_id == 0 and version == 0:
        raise ConfigurationError(f"{path!r} holds no smsgate journal (no journal schema in it)")
    if app_id != APPLICATION_ID:
        raise ConfigurationError(
            f"{path!r} is an SQLite database of another application, not an smsgate journal"
        )
    if version > SCHEMA_VERSION:
        raise ConfigurationError(
            f"the journal {path!r} was written by a newer smsgate (schema {version}; "
            f"this one reads up to {SCHEMA_VERSION}); upgrade smsgate"
        )
    if version < 1:
        raise ConfigurationError(f"the journal {path!r} has no schema version; it is damaged")


def _check_job_id(job_id: str) -> str:
    if not isinstance(job_id, str):
        raise TypeError(f"job_id must be a str, not {type(job_id).__name__}")
    if not job_id:
        raise ValueError("job_id must not be empty")
    return job_id


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
    )


def _entry(row: Sequence[Any]) -> JournalEntry:
    key, recipient, status, route, provider, message_id, error, detail, updated = row
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
    )


# -- the report ---------------------------------------------------------------------------


def _frozen_counts(value: Mapping[str, int]) -> Mapping[str, int]:
    return MappingProxyType(dict(value))


@attrs.frozen(kw_only=True)
class JobSummary:
    """How far one job got, counted from its journal rows.

    Attributes:
        job_id: The job.
        total: Rows (recipients the job has touched; never-attempted ones have no row).
        pending: Rows written before a request whose answer was never recorded: the
            process died or was cancelled while the request was in flight. In doubt.
        sent: Confirmed by the provider; a rerun skips them.
        failed: Refused or certainly not sent (see ``errors``).
        unknown: The request may have gone out (timeout, dropped connection). In doubt.
        errors: Error class name to the number of rows that carry it.
        created: When the job was first opened (``time.time()``), if known.
        updated: The latest row write, or ``None`` for a job with no rows.
    """

    job_id: str
    total: int = 0
    pending: int = 0
    sent: int = 0
    failed: int = 0
    unknown: int = 0
    errors: Mapping[str, int] = attrs.field(factory=dict, converter=_frozen_counts)
    created: float | None = None
    updated: float | None = None

    @property
    def in_doubt(self) -> int:
        """``pending + unknown``: recipients to reconcile before anything is resent."""
        return self.pending + self.unknown


def summarize(path: str | os.PathLike[str], job_id: str | None = None) -> dict[str, JobSummary]:
    """Count a journal file's rows per status, per job (what ``smsgate journal FILE`` shows).

    Reads only (``PRAGMA query_only``), so it is safe while a job is writing to the file,
    and never creates one. Blocking (plain sqlite3): call it from synchronous code such as the CLI,
    or use :meth:`SqliteJournal.summary` inside an event loop.

    Args:
        path: The journal file.
        job_id: Only this job; by default every job in the file.

    Returns:
        Job id to its :class:`JobSummary`, sorted by job id. Empty if ``job_id`` is not in
        the file.

    Raises:
        FileNotFoundError: There is no such file.
        ConfigurationError: The file is not an smsgate journal, or a newer one.
    """
    fspath = os.fspath(path)
    if not os.path.isfile(fspath):
        raise FileNotFoundError(f"no journal file at {fspath!r}")
    conn = _open_for_reading(fspath)
    try:
        try:
            app_id = conn.execute("PRAGMA application_id").fetchone()[0]
            version = conn.execute("PRAGMA user_version").fetchone()[0]
        except sqlite3.DatabaseError as exc:
            raise ConfigurationError(
                f"{fspath!r} is not an SQLite database, so not an smsgate journal"
            ) from exc
        _check_header(app_id, version, fspath)
        return _summaries(conn, None if job_id is None else _check_job_id(job_id))
    finally:
        conn.close()


def _open_for_reading(path: str) -> sqlite3.Connection:
    # mode=rw never creates a file, and as the last connection to close it folds the WAL
    # back into the file and removes FILE-wal/FILE-shm; query_only makes sure this
    # connection itself changes nothing. A journal in a read-only place is opened mode=ro.
    base = "file:" + urllib.parse.quote(os.path.abspath(path))
    try:
        conn = sqlite3.connect(base + "?mode=rw", uri=True, isolation_level=None)
        conn.execute("PRAGMA query_only=1")
    except sqlite3.OperationalError:
        conn = sqlite3.connect(base + "?mode=ro", uri=True, isolation_level=None)
    return conn


def _summaries(conn: sqlite3.Connection, job_id: str | None) -> dict[str, JobSummary]:
    where, args = ("WHERE job_id = ?", (job_id,)) if job_id is not None else ("", ())
    created = dict(conn.execute(f"SELECT job_id, created FROM jobs {where}", args).fetchall())  # noqa: S608 - constant clause
    counts: dict[str, dict[str, int]] = {job: {} for job in created}
    updated: dict[str, float] = {}
    for job, status, n, last in conn.execute(
        f"SELECT job_id, status, count(*), max(updated) FROM entries {where} "  # noqa: S608 - constant clause
        "GROUP BY job_id, status",
        args,
    ):
        counts.setdefault(job, {})[status] = n
        updated[job] = max(updated.get(job, last), last)
    errors: dict[str, dict[str, int]] = {}
    for job, error, n in conn.execute(
        f"SELECT job_id, error, count(*) FROM entries {where} "  # noqa: S608 - constant clause
        f"{'AND' if where else 'WHERE'} error IS NOT NULL GROUP BY job_id, error",
        args,
    ):
        errors.setdefault(job, {})[error] = n
    return {
        job: JobSummary(
            job_id=job,
            total=sum(by_status.values()),
            pending=by_status.get("pending", 0),
            sent=by_status.get("sent", 0),
            failed=by_status.get("failed", 0),
            unknown=by_status.get("unknown", 0),
            errors=dict(sorted(errors.get(job, {}).items())),
            created=created.get(job),
            updated=updated.get(job),
        )
        for job, by_status in sorted(counts.items())
    }
