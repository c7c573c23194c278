"""The work queue under ``SqliteJournal``: one connection, one thread hop per group of calls.

sqlite3 is blocking, so every statement runs in a worker thread
(:func:`anyio.to_thread.run_sync`). Calls are queued; whichever task finds the queue idle
becomes the *leader*, takes everything queued so far and runs it in one thread hop: every
queued write in **one transaction** (``BEGIN IMMEDIATE``; each call inside its own
savepoint, so a bad call fails alone), then the reads. Calls that arrive meanwhile wait
and are led by the next leader. sqlite3 errors come back as
:class:`~smsgate.JournalError` naming the file and what to do.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Callable
from typing import Any

import anyio
import anyio.lowlevel
import anyio.to_thread

from ._sqlite_schema import connect, journal_error

__all__ = ["CLOSE", "READ", "WRITE", "SqliteQueue"]

WRITE, READ, CLOSE = 0, 1, 2
_WRITE, _READ, _CLOSE = WRITE, READ, CLOSE


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


class SqliteQueue:
    """Owns the connection to one SQLite journal file and runs calls on it in groups."""

    def __init__(self, path: str, *, synchronous: str, busy_timeout: float) -> None:
        self._path = path
        self._synchronous = synchronous
        self._busy_timeout = busy_timeout
        self._conn: sqlite3.Connection | None = None
        self._queue: list[_Op] = []
        self._busy = False
        self._closed = False
        # Serialises use of the connection even if, against advice, two event loops in two
        # threads share this object; uncontended in the normal case.
        self._thread_lock = threading.Lock()
        self._commits = 0

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
            if isinstance(op.error, sqlite3.Error):
                # Every caller gets its own JournalError; the sqlite3 error is the cause.
                raise journal_error(
                    self._path, op.error, busy_timeout=self._busy_timeout
                ) from op.error
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
                    if not conn.in_transaction:
                        # SQLite rolled the whole transaction back itself (a full disk, an
                        # I/O error): every call of the group failed, with this error.
                        raise
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
            self._conn = connect(
                self._path, synchronous=self._synchronous, busy_timeout=self._busy_timeout
            )
        return self._conn

    def _close_connection(self, _conn: sqlite3.Connection | None) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            # Closing the last connection checkpoints the WAL into the main file and
            # removes FILE-wal and FILE-shm.
            conn.close()
