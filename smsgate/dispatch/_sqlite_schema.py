"""The SQLite journal file: opening it, its schema and migrations, and its error messages.

Schema (version 2)::

    jobs(job_id TEXT PRIMARY KEY, created REAL)
    entries(job_id, key, recipient, status, route, provider, message_id, error, detail,
            updated, parts, delivery, delivery_status, delivery_updated,
            PRIMARY KEY (job_id, key))    -- one row per (job, recipient/text/sender)
    INDEX entries_message_id (message_id) -- record_delivery() finds rows by provider id
    INDEX entries_key (key)               -- recent_sends() finds a key in other jobs

Version 1 had no ``parts`` / ``delivery*`` columns and no indexes; a version 1 file is
migrated in place (``ALTER TABLE ... ADD COLUMN`` and ``CREATE INDEX`` in one
``BEGIN IMMEDIATE`` transaction, so two processes opening it at once migrate it once).
A file of another application, or one written by a newer smsgate, is refused with
:class:`~smsgate.ConfigurationError` before anything in it changes.
"""

from __future__ import annotations

import os
import sqlite3
import time
import urllib.parse

from ..exceptions import ConfigurationError, JournalError

__all__ = [
    "APPLICATION_ID",
    "SCHEMA_VERSION",
    "check_header",
    "connect",
    "journal_error",
    "open_for_reading",
]

#: The schema version this code writes (``PRAGMA user_version``).
SCHEMA_VERSION = 2
#: ``PRAGMA application_id`` of an smsgate journal: ASCII "smsg".
APPLICATION_ID = 0x736D7367

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

#: Version 1 -> 2: the delivery fields of JournalEntry, and the two lookups across jobs.
_V1_TO_V2 = (
    "ALTER TABLE entries ADD COLUMN parts INTEGER",
    "ALTER TABLE entries ADD COLUMN delivery TEXT",
    "ALTER TABLE entries ADD COLUMN delivery_status TEXT",
    "ALTER TABLE entries ADD COLUMN delivery_updated REAL",
    "CREATE INDEX IF NOT EXISTS entries_message_id ON entries (message_id)",
    "CREATE INDEX IF NOT EXISTS entries_key ON entries (key)",
)

# SQLite's primary result codes (the low byte of an extended code).
_BUSY, _LOCKED, _READONLY, _IOERR, _CORRUPT, _FULL, _CANTOPEN, _NOTADB = 5, 6, 8, 10, 11, 13, 14, 26


def journal_error(
    path: str, exc: sqlite3.Error, *, busy_timeout: float | None = None
) -> JournalError:
    """A :class:`~smsgate.JournalError` for a storage error: which file, and what to do.

    The caller raises it ``from exc``, so the sqlite3 error stays the ``__cause__``.
    """
    code = (getattr(exc, "sqlite_errorcode", 0) or 0) & 0xFF
    if code == _FULL:
        hint = (
            "the disk (or the file's size limit) is full: free disk space, then run the job again"
        )
    elif code == _READONLY:
        hint = (
            "the file is read-only: check the permissions of the file and of its directory "
            "(SQLite writes FILE-wal and FILE-shm beside it) and that the disk is mounted "
            "read-write"
        )
    elif code in (_BUSY, _LOCKED):
        waited = "" if busy_timeout is None else f" for more than {busy_timeout:g} s"
        hint = (
            f"another process held the file locked{waited}: find what holds it (another "
            "job, a backup, an editor), or raise busy_timeout"
        )
    elif code == _CANTOPEN:
        hint = "the file cannot be opened: check that its directory exists and is writable"
    elif code == _IOERR:
        hint = "the disk reported an I/O error: check the disk and free space"
    elif code in (_CORRUPT, _NOTADB):
        hint = "the file is damaged: keep a copy for inspection and start a new journal"
    else:
        hint = "see the cause below"
    name = getattr(exc, "sqlite_errorname", None) or type(exc).__name__
    return JournalError(
        f"the journal {path!r} could not be read or written ({name}: {exc}): {hint}. "
        "Rows whose outcome was not recorded are in doubt until the journal works again",
        path=path,
    )


def connect(path: str, *, synchronous: str, busy_timeout: float) -> sqlite3.Connection:
    """Open (creating or migrating) the journal file; WAL mode, the given ``synchronous``.

    Several processes may open one new file at the same moment. Switching a file to WAL
    mode needs an exclusive lock, and where waiting for it could deadlock SQLite answers
    ``SQLITE_BUSY`` at once instead of calling its busy handler; so the whole opening is
    tried again (with a growing pause) until ``busy_timeout`` has passed.

    Raises:
        ConfigurationError: The file is not an smsgate journal, or a newer one.
        sqlite3.Error: The file cannot be opened, created or migrated.
    """
    deadline = time.monotonic() + busy_timeout
    pause = 0.001
    while True:
        try:
            return _connect_once(path, synchronous=synchronous, busy_timeout=busy_timeout)
        except sqlite3.OperationalError as exc:
            code = (getattr(exc, "sqlite_errorcode", 0) or 0) & 0xFF
            if code not in (_BUSY, _LOCKED) or time.monotonic() + pause > deadline:
                raise
        time.sleep(pause)  # a worker thread, never the event loop
        pause = min(pause * 2, 0.05)


def _connect_once(path: str, *, synchronous: str, busy_timeout: float) -> sqlite3.Connection:
    # isolation_level=None: no implicit transactions; the journal says BEGIN and COMMIT.
    # check_same_thread=False: anyio's worker threads take turns; the journal's queue makes
    # sure only one of them uses the connection at a time.
    # timeout: SQLite's busy handler waits this long for another process's lock.
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
            if (getattr(exc, "sqlite_errorcode", 0) or 0) & 0xFF != _NOTADB:
                raise
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
    # One read transaction, so the three reads see one state of the file: another process
    # may be creating the schema right now, and its tables and its header change together.
    conn.execute("BEGIN")
    try:
        app_id = conn.execute("PRAGMA application_id").fetchone()[0]
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        tables = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
    finally:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
    if app_id == 0 and version == 0:
        if tables:
            raise ConfigurationError(
                f"{path!r} is an SQLite database of another application, not an smsgate journal"
            )
        return  # a new, empty file: ours to set up
    check_header(app_id, version, path)


def _migrate(conn: sqlite3.Connection, path: str) -> None:
    # BEGIN IMMEDIATE: two processes opening a new (or old) file at once must not both
    # create (or migrate) it; the second one waits, then finds the work done.
    conn.execute("BEGIN IMMEDIATE")
    try:
        app_id = conn.execute("PRAGMA application_id").fetchone()[0]
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if app_id == 0 and version == 0:
            if conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]:
                raise ConfigurationError(
                    f"{path!r} is an SQLite database of another application, not an smsgate journal"
                )
            for statement in (*_SCHEMA_V1, *_V1_TO_V2):
                conn.execute(statement)
            conn.execute(f"PRAGMA application_id={APPLICATION_ID}")
        else:
            check_header(app_id, version, path)
            if version < 2:
                for statement in _V1_TO_V2:
                    conn.execute(statement)
            # Later versions migrate here, one step at a time: "if version < 3: ...".
        if version != SCHEMA_VERSION:
            conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def check_header(app_id: int, version: int, path: str) -> None:
    """Raise ConfigurationError unless the header says: an smsgate journal we can read."""
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


def open_for_reading(path: str) -> sqlite3.Connection:
    """A connection that changes nothing and never creates the file."""
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
