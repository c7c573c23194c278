"""The journal: what the dispatcher wrote down about every recipient of a job.

A journal row is keyed by ``(job_id, key)`` where ``key = journal_key(recipient, text,
sender)``. The dispatcher writes ``pending`` for every recipient of a request *before* the
request goes out (one :meth:`Journal.record` call per request) and ``sent`` / ``failed`` /
``unknown`` after it. Because :meth:`Journal.record` is durable when it returns, a job that
dies at any point (SIGKILL included) leaves each recipient either absent (never attempted),
``pending`` (in flight: in doubt), or with its final state. A rerun of the same ``job_id``
reads the rows back (:meth:`Journal.get`) and:

* ``sent``: skips the recipient (``Outcome.status == "skipped"``), no request;
* ``pending`` / ``unknown``: reports it ``unknown`` and never sends it again
  (reconciliation may resolve it through the provider's status call);
* ``failed``: sends it again only if the stored error was a definite refusal (an error
  class whose ``maybe_sent`` is false, e.g. ``NotSentError``, ``RecipientOptedOutError``);
* absent: sends it normally.

This module holds the contract (:class:`Journal`, :class:`JournalEntry`,
:func:`journal_key`) and :class:`MemoryJournal`, the in-memory implementation for tests and
for one-process jobs that need no restart. The embedded durable default is
``SqliteJournal`` (``smsgate.dispatch._sqlite_journal``), built when a path is given.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Literal, Protocol, runtime_checkable

import attrs

__all__ = ["Journal", "JournalEntry", "JournalStatus", "MemoryJournal", "journal_key"]

#: The states a journal row can be in.
JournalStatus = Literal["pending", "sent", "failed", "unknown"]

_STATUSES: frozenset[str] = frozenset({"pending", "sent", "failed", "unknown"})


def _check_status(_inst: object, _attr: attrs.Attribute[str], value: str) -> None:
    if value not in _STATUSES:
        raise ValueError(f"journal status must be one of {sorted(_STATUSES)}, not {value!r}")


@attrs.frozen(kw_only=True)
class JournalEntry:
    """One recipient of one job, as the journal knows it.

    Attributes:
        key: :func:`journal_key` of (recipient, text, sender): stable within a job.
        recipient: The recipient, E.164.
        status: ``"pending"`` (a request is or was in flight), ``"sent"``, ``"failed"``
            (a definite refusal, or an error that says nothing went out) or ``"unknown"``
            (the send may have gone out).
        route: The name of the route that handled it, when known.
        provider: The gateway's ``name``, when known.
        message_id: The provider's id for *this* recipient (for reconciliation).
        error: The error class name, e.g. ``"OutcomeUnknownError"``.
        detail: A short, credential-free text about the error.
        updated: ``time.time()`` of the write.
    """

    key: str
    recipient: str
    status: JournalStatus = attrs.field(validator=_check_status)
    route: str | None = None
    provider: str | None = None
    message_id: str | None = None
    error: str | None = None
    detail: str | None = None
    updated: float = 0.0


def journal_key(recipient: str, text: str, sender: str | None) -> str:
    """The stable key of one recipient of one text from one sender.

    The three fields are joined with separators that cannot occur in a normalised
    number and length-prefixed, so ``("a", "bc")`` and ``("ab", "c")`` never collide and
    ``sender=None`` differs from ``sender=""``.

    Args:
        recipient: The recipient, E.164 (normalise first: the key is of the exact string).
        text: The message text.
        sender: The sender line, or ``None`` for the gateway's default.

    Returns:
        The SHA-256 hex digest (64 characters).
    """
    sender_part = "\x00" if sender is None else f"{len(sender)}:{sender}"
    payload = f"{len(recipient)}:{recipient}\x1f{len(text)}:{text}\x1f{sender_part}"
    return hashlib.sha256(payload.encode("utf-8", "surrogatepass")).hexdigest()


@runtime_checkable
class Journal(Protocol):
    """Where a bulk job writes each recipient's state, so that a rerun never double-sends.

    Implementations: :class:`MemoryJournal` (in memory) and ``SqliteJournal`` (a file; the
    default when ``BulkDispatcher(journal="bulk.sqlite")`` is given a path). A shared
    database for several processes would implement the same six methods.
    """

    async def open(self, job_id: str) -> None:
        """Prepare storage for ``job_id`` (create tables, register the job). Idempotent."""
        ...

    async def get(self, job_id: str, keys: Sequence[str]) -> dict[str, JournalEntry]:
        """The rows known for ``keys`` in ``job_id`` (missing keys are simply absent)."""
        ...

    async def record(self, job_id: str, entries: Sequence[JournalEntry]) -> None:
        """Upsert ``entries`` by ``(job_id, key)``. Durable when it returns."""
        ...

    async def entries(self, job_id: str) -> list[JournalEntry]:
        """Every row of ``job_id``."""
        ...

    async def jobs(self) -> list[str]:
        """The ids of every job this journal holds."""
        ...

    async def aclose(self) -> None:
        """Release the storage; safe to call twice."""
        ...


class MemoryJournal:
    """A :class:`Journal` kept in a dict: for tests, and for jobs that need no restart.

    It survives a cancelled or failed :meth:`BulkDispatcher.run` within the same process
    (run the job again with the same ``job_id`` and the same journal object), but not the
    process itself; use ``SqliteJournal`` (a path) for that. Memory: one
    :class:`JournalEntry` (~0.5 KiB) per recipient.
    """

    __slots__ = ("_closed", "_jobs")

    def __init__(self) -> None:
        self._jobs: dict[str, dict[str, JournalEntry]] = {}
        self._closed = False

    def __repr__(self) -> str:
        rows = sum(len(job) for job in self._jobs.values())
        state = "closed" if self._closed else "open"
        return f"<MemoryJournal {state} jobs={len(self._jobs)} rows={rows}>"

    def _job(self, job_id: str) -> dict[str, JournalEntry]:
        if self._closed:
            raise RuntimeError("this journal is closed")
        return self._jobs.setdefault(job_id, {})

    async def open(self, job_id: str) -> None:
        """Register ``job_id`` (idempotent)."""
        self._job(job_id)

    async def get(self, job_id: str, keys: Sequence[str]) -> dict[str, JournalEntry]:
        """The rows known for ``keys`` in ``job_id``."""
        job = self._job(job_id)
        return {key: job[key] for key in keys if key in job}

    async def record(self, job_id: str, entries: Sequence[JournalEntry]) -> None:
        """Upsert ``entries`` by key (immediately visible; not durable across processes)."""
        job = self._job(job_id)
        for entry in entries:
            job[entry.key] = entry

    async def entries(self, job_id: str) -> list[JournalEntry]:
        """Every row of ``job_id``, in first-written order."""
        if self._closed:
            raise RuntimeError("this journal is closed")
        return list(self._jobs.get(job_id, {}).values())

    async def jobs(self) -> list[str]:
        """The ids of every job this journal holds, sorted."""
        if self._closed:
            raise RuntimeError("this journal is closed")
        return sorted(self._jobs)

    async def aclose(self) -> None:
        """Mark the journal closed (later calls raise ``RuntimeError``); idempotent."""
        self._closed = True
