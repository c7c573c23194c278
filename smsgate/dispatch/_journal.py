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
``SqliteJournal`` (``smsgate.dispatch._sqlite_journal``), built when a path is given; the
journal shared by many machines is ``smsgate.postgres.PostgresJournal``. The dispatcher
claims rows (:meth:`Journal.claim`) before it sends them, so runs of one job in several places
share the work instead of repeating it (``docs/journals.md``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Literal, Protocol, runtime_checkable

import attrs

from .. import exceptions as _exceptions
from .._models import DeliveryState

__all__ = [
    "DeliveryUpdate",
    "Journal",
    "JournalEntry",
    "JournalStatus",
    "MemoryJournal",
    "check_job_id",
    "claimable",
    "claimable_state",
    "definite_refusals",
    "journal_key",
    "stored_delivery",
]

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
        parts: SMS parts of the text (what one recipient costs), when known.
        delivery: The last delivery state known for this recipient (tracking or a
            webhook), ``None`` until one is known.
        delivery_status: The provider's raw delivery value (``"delivered"``, ``"16"``).
        delivery_updated: ``time.time()`` when the delivery state was stored.
        aliases: Other keys this row may have been written under by an older version
            (before the sender line was normalised in the key). Never stored: for
            :meth:`Journal.claim` only, which treats a row under an alias like one under
            ``key``.
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
    parts: int | None = None
    delivery: DeliveryState | None = None
    delivery_status: str | None = None
    delivery_updated: float | None = None
    aliases: tuple[str, ...] = attrs.field(default=(), eq=False, repr=False)


@attrs.frozen(kw_only=True)
class DeliveryUpdate:
    """A delivery state to store against the journal rows of one provider message.

    Rows are found by ``message_id`` (the per-recipient id in :attr:`JournalEntry.message_id`)
    and, when given, ``recipient`` (E.164): with ippanel every recipient of a bulk shares
    one id, so the recipient tells them apart; a Negin id is unique by itself.
    """

    message_id: str
    recipient: str | None
    state: DeliveryState
    provider_status: str
    at: float


def _error_class(name: str) -> type[_exceptions.SmsGateError] | None:
    """The smsgate error class called ``name`` (a subclass anywhere in the tree)."""
    todo: list[type[_exceptions.SmsGateError]] = [_exceptions.SmsGateError]
    while todo:
        cls = todo.pop()
        if cls.__name__ == name:
            return cls
        todo.extend(cls.__subclasses__())
    return None


def _maybe_sent_name(name: str | None) -> bool:
    """Whether a stored error class name means "may have been sent".

    A name this version does not know (a journal written by a newer one, a user's own
    error) reads as "may have been sent", so such a row is never resent blindly.
    """
    if name is None:
        return False
    cls = _error_class(name)
    return True if cls is None else bool(cls.maybe_sent)


def stored_delivery(value: str | None) -> DeliveryState | None:
    """A delivery state as a journal stored it (its ``value``); one this version does not
    know (written by a newer one) reads as ``UNKNOWN``."""
    if value is None:
        return None
    try:
        return DeliveryState(value)
    except ValueError:
        return DeliveryState.UNKNOWN


def claimable(entry: JournalEntry | None) -> bool:
    """Whether a row may be claimed (and so sent): absent, or a definite refusal.

    A ``failed`` row whose stored error says nothing went out (``maybe_sent`` false for
    its class, e.g. ``NotSentError``, ``RecipientOptedOutError``) may be sent again; every
    other state (``pending``, ``sent``, ``unknown``, or ``failed`` with an error that may
    have gone out) may not.
    """
    if entry is None:
        return True
    return claimable_state(entry.status, entry.error)


def claimable_state(status: str, error: str | None) -> bool:
    """:func:`claimable` for a row's stored ``status`` and ``error`` class name."""
    return status == "failed" and not _maybe_sent_name(error)


def definite_refusals() -> frozenset[str]:
    """The error class names :func:`claimable` treats as "nothing went out".

    Every :class:`~smsgate.SmsGateError` subclass known now (imported anywhere) whose
    ``maybe_sent`` is false. A database journal passes this set to its claim statement,
    so that the database applies exactly the rule :func:`claimable` applies in Python
    (a ``failed`` row with no error class is claimable as well).
    """
    names: set[str] = set()
    todo: list[type[_exceptions.SmsGateError]] = [_exceptions.SmsGateError]
    while todo:
        cls = todo.pop()
        todo.extend(cls.__subclasses__())
        if not _maybe_sent_name(cls.__name__):
            names.add(cls.__name__)
    return frozenset(names)


def check_job_id(job_id: str) -> str:
    """``job_id`` if it is a non-empty str; else ``TypeError`` / ``ValueError``."""
    if not isinstance(job_id, str):
        raise TypeError(f"job_id must be a str, not {type(job_id).__name__}")
    if not job_id:
        raise ValueError("job_id must not be empty")
    return job_id


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

    Implementations: :class:`MemoryJournal` (in memory), ``SqliteJournal`` (a file; the
    default when ``BulkDispatcher(journal="bulk.sqlite")`` is given a path; several
    processes may share it) and ``smsgate.postgres.PostgresJournal`` (PostgreSQL, for
    many workers on many machines). Two optional abilities, ``record_delivery`` and
    ``recent_sends``, are found with ``hasattr``; all three journals have them.
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

    async def claim(self, job_id: str, entries: Sequence[JournalEntry]) -> set[str]:
        """Atomically write ``entries`` (status ``"pending"``) where the caller may send.

        In one atomic step, every entry whose key is absent from ``job_id`` or whose row
        is :func:`claimable` (a definite refusal) is written as given, and its key is
        returned; every other key is left untouched and not returned. A row found under
        one of an entry's :attr:`~JournalEntry.aliases` counts as a row under its key.
        Two callers (two tasks, two processes, two machines) claiming the same key never
        both win it, so a dispatcher that sends only what it claimed never sends one
        recipient twice.
        Durable when it returns.
        """
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

    async def claim(self, job_id: str, entries: Sequence[JournalEntry]) -> set[str]:
        """Write ``entries`` where absent or :func:`claimable`; return the keys won.

        No ``await`` between the read and the write: atomic for every task of the loop.
        """
        job = self._job(job_id)
        won: set[str] = set()
        for entry in entries:
            if entry.key in won:
                continue
            if all(claimable(job.get(k)) for k in (entry.key, *entry.aliases)):
                job[entry.key] = entry
                won.add(entry.key)
        return won

    async def record_delivery(self, updates: Sequence[DeliveryUpdate]) -> int:
        """Store delivery states on the rows they name (any job); return the rows changed."""
        if self._closed:
            raise RuntimeError("this journal is closed")
        changed = 0
        for update in updates:
            for job in self._jobs.values():
                for key, entry in job.items():
                    if entry.message_id != update.message_id:
                        continue
                    if update.recipient is not None and entry.recipient != update.recipient:
                        continue
                    job[key] = attrs.evolve(
                        entry,
                        delivery=update.state,
                        delivery_status=update.provider_status,
                        delivery_updated=update.at,
                    )
                    changed += 1
        return changed

    async def recent_sends(
        self, keys: Sequence[str], *, since: float, exclude_job: str
    ) -> dict[str, str]:
        """Keys ``sent`` in another job at or after ``since``: key -> that job's id."""
        if self._closed:
            raise RuntimeError("this journal is closed")
        wanted = set(keys)
        found: dict[str, str] = {}
        for job_id, job in self._jobs.items():
            if job_id == exclude_job:
                continue
            for key in wanted.intersection(job):
                entry = job[key]
                if entry.status == "sent" and entry.updated >= since:
                    found.setdefault(key, job_id)
        return found

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
