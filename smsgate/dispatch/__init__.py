"""Bulk dispatch: many messages through one gateway or a fallback chain of routes.

* :class:`BulkDispatcher` runs a job: ``await run(messages)`` -> :class:`BulkReport`,
  ``stream(messages)`` -> one :class:`Outcome` per row, ``await estimate(messages)`` ->
  :class:`Estimate` (a dry run).
* :class:`RateLimit` / :class:`RateLimiter` / :class:`TokenBucket`: how fast requests
  start (concurrency, how many run at once, is a separate knob).
* :class:`FallbackPolicy` of :class:`Route` objects: where a recipient goes next when a
  route cannot reach it; :class:`RetryPolicy`: what is retried (never a maybe-sent send).
* :class:`Journal` (:class:`MemoryJournal`, :class:`SqliteJournal`): what lets a job resume
  without double sends. ``SqliteJournal`` (and sqlite3) load on first use.
* :class:`CircuitBreaker`: skips a route that is down (``FallbackPolicy(breaker=...)``).
* :class:`SendWindow`: the hours requests may start (advertising lines: 08:00-23:00 Tehran).

See docs/dispatch.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._breaker import CircuitBreaker, CircuitOpenError
from ._dispatcher import MAX_CONCURRENCY, BulkDispatcher, DispatcherStatistics
from ._fallback import FallbackPolicy, Route, RouteBreaker
from ._journal import (
    DeliveryUpdate,
    Journal,
    JournalEntry,
    JournalStatus,
    MemoryJournal,
    journal_key,
)
from ._limiter import LimiterStatistics, RateLimit, RateLimiter, RateUnit, TokenBucket
from ._reconcile import Reconciled, reconcile, record_reconciled
from ._retry import RetryPolicy
from ._stream import OutcomeStream
from ._values import (
    REASON_ALREADY_SENT,
    REASON_CLAIMED_BY_RUN,
    REASON_DUPLICATE,
    REASON_IN_DOUBT,
    REASON_INVALID_MESSAGE,
    REASON_INVALID_RECIPIENT,
    REASON_JOB_STOPPED,
    REASON_MAYBE_SENT,
    REASON_SENT_RECENTLY,
    BulkReport,
    Estimate,
    Outcome,
    OutcomeStatus,
    Progress,
)
from ._window import SendWindow

if TYPE_CHECKING:
    from ._sqlite_journal import JobSummary, SqliteJournal, summarize

_SQLITE = ("JobSummary", "SqliteJournal", "summarize")


def __getattr__(name: str) -> Any:
    # SqliteJournal (and sqlite3) load only when used, like BulkDispatcher(journal="path").
    if name in _SQLITE:
        from . import _sqlite_journal

        return getattr(_sqlite_journal, name)
    raise AttributeError(f"module 'smsgate.dispatch' has no attribute {name!r}")


__all__ = [
    "MAX_CONCURRENCY",
    "REASON_ALREADY_SENT",
    "REASON_CLAIMED_BY_RUN",
    "REASON_DUPLICATE",
    "REASON_INVALID_MESSAGE",
    "REASON_INVALID_RECIPIENT",
    "REASON_IN_DOUBT",
    "REASON_JOB_STOPPED",
    "REASON_MAYBE_SENT",
    "REASON_SENT_RECENTLY",
    "BulkDispatcher",
    "BulkReport",
    "CircuitBreaker",
    "CircuitOpenError",
    "DeliveryUpdate",
    "DispatcherStatistics",
    "Estimate",
    "FallbackPolicy",
    "JobSummary",
    "Journal",
    "JournalEntry",
    "JournalStatus",
    "LimiterStatistics",
    "MemoryJournal",
    "Outcome",
    "OutcomeStatus",
    "OutcomeStream",
    "Progress",
    "RateLimit",
    "RateLimiter",
    "RateUnit",
    "Reconciled",
    "RetryPolicy",
    "Route",
    "RouteBreaker",
    "SendWindow",
    "SqliteJournal",
    "TokenBucket",
    "journal_key",
    "reconcile",
    "record_reconciled",
    "summarize",
]
