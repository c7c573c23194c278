"""What a running job needs from its dispatcher: one small, explicit context.

A :class:`~smsgate.dispatch.BulkDispatcher` builds one :class:`JobContext` at construction
and hands it to each job; a job reads only this, never the dispatcher's attributes.
"""

from __future__ import annotations

import os
import random
from collections import deque
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import anyio
import anyio.lowlevel

from ..exceptions import ConfigurationError
from ._dedupe import SeenSet
from ._fallback import FallbackPolicy
from ._journal import Journal
from ._limiter import RateLimiter
from ._retry import RetryPolicy
from ._values import Progress

if TYPE_CHECKING:
    from ._window import SendWindow

__all__ = ["JobContext", "Settings", "Slots"]


class Slots:
    """The concurrency tokens every job of a dispatcher shares, first come first served.

    What the workers need of :class:`anyio.CapacityLimiter`, without its record of which
    task holds which token (two task lookups and two set operations per request). A
    worker takes a token for each batch and gives it back after.
    """

    __slots__ = ("_waiters", "borrowed", "total")

    def __init__(self, total: int) -> None:
        self.total = total
        self.borrowed = 0
        self._waiters: deque[anyio.Event] = deque()

    @property
    def waiting(self) -> int:
        """Tasks waiting for a token."""
        return len(self._waiters)

    def acquire_nowait(self) -> None:
        """Take a token, or raise :class:`anyio.WouldBlock` (none free, or others wait)."""
        if self._waiters or self.borrowed >= self.total:
            raise anyio.WouldBlock
        self.borrowed += 1

    async def acquire(self) -> None:
        """Take a token, waiting for one (in turn) if none is free."""
        try:
            self.acquire_nowait()
        except anyio.WouldBlock:
            pass
        else:
            try:
                await anyio.lowlevel.checkpoint()
            except BaseException:
                self.release()
                raise
            return
        event = anyio.Event()
        self._waiters.append(event)
        try:
            await event.wait()
        except BaseException:
            if event.is_set():
                self.release()  # handed a token as it was cancelled: it goes on
            else:
                self._waiters.remove(event)
            raise

    def release(self) -> None:
        """Give a token back: to the task that has waited longest, if one waits."""
        if self._waiters:
            self._waiters.popleft().set()  # the token passes on; ``borrowed`` stays
        else:
            self.borrowed -= 1


class Settings:
    """The knobs of a dispatcher a job obeys (set once, read by every job)."""

    __slots__ = (
        "concurrency",
        "drain_timeout",
        "linger",
        "max_batch",
        "on_progress",
        "progress_interval",
        "recent_window",
    )

    def __init__(
        self,
        *,
        concurrency: int,
        max_batch: int | None,
        linger: float,
        on_progress: Callable[[Progress], object] | None,
        progress_interval: float,
        recent_window: float | None,
        drain_timeout: float,
    ) -> None:
        self.concurrency = concurrency
        self.max_batch = max_batch
        self.linger = linger
        self.on_progress = on_progress
        self.progress_interval = progress_interval
        self.recent_window = recent_window
        self.drain_timeout = drain_timeout


class JobContext:
    """The dispatcher's shared parts, as a job sees them.

    Attributes:
        policy: The routes.
        limiter: The rate limiter shared by every job.
        retry: What is retried and how long to wait.
        settings: The knobs (:class:`Settings`).
        clock: Monotonic seconds (``anyio.current_time`` unless injected).
        sleep: Sleeps (``anyio.sleep`` unless injected): retry back-off, window pauses.
        wall: Seconds since the epoch (``time.time`` unless injected): journal times, the
            send window and ``recent_window``.
        slots: The concurrency tokens shared by every job.
        jobs: The jobs running now (for statistics).
        rng: Jitter for retry back-off.
    """

    def __init__(
        self,
        *,
        policy: FallbackPolicy,
        limiter: RateLimiter,
        retry: RetryPolicy,
        settings: Settings,
        journal: Journal | str | os.PathLike[str] | None,
        clock: Callable[[], float],
        sleep: Callable[[float], Awaitable[object]],
        wall: Callable[[], float],
        windows: tuple[SendWindow | None, ...],
    ) -> None:
        self.policy = policy
        self.limiter = limiter
        self.retry = retry
        self.settings = settings
        self.journal = journal
        self.clock = clock
        self.sleep = sleep
        self.wall = wall
        self.windows = windows
        self.slots = Slots(settings.concurrency)
        self.jobs: set[object] = set()
        self.rng = random.Random()
        # Without a journal, concurrent runs of one job id on this dispatcher share one
        # fingerprint set, so that they split the rows instead of both sending them.
        self._shared: dict[str, tuple[SeenSet, list[int]]] = {}

    def batch_size(self, index: int) -> int:
        """Numbers per request on route ``index`` (before the rate limiter's clamp)."""
        cap = self.policy.routes[index].gateway.max_recipients
        max_batch = self.settings.max_batch
        return cap if max_batch is None else max(1, min(cap, max_batch))

    async def open_journal(self) -> tuple[Journal | None, bool, str | None]:
        """The journal for one job, whether the job owns (and must close) it, and where
        it is (for error messages)."""
        spec = self.journal
        if spec is None:
            return None, False, None
        if isinstance(spec, str) and spec.lower().startswith(("postgres://", "postgresql://")):
            # Not a file name; and the DSN (its password) must not end up in an error.
            raise ConfigurationError(
                "journal= is a PostgreSQL DSN: pass smsgate.postgres.PostgresJournal(dsn) "
                "(a string is the path of an SQLite journal file)"
            )
        if isinstance(spec, str | os.PathLike):
            # Imported here: sqlite3 and the journal module load only when a path is used.
            from ._sqlite_journal import SqliteJournal

            return SqliteJournal(spec), True, os.fspath(spec)
        where = getattr(spec, "path", None)
        return spec, False, None if where is None else str(where)

    def share(self, job_id: str) -> SeenSet:
        """The fingerprint set of ``job_id`` shared by its concurrent runs (no journal)."""
        entry = self._shared.get(job_id)
        if entry is None:
            entry = self._shared[job_id] = (SeenSet(), [0])
        entry[1][0] += 1
        return entry[0]

    def unshare(self, job_id: str) -> None:
        """One run of ``job_id`` ended; the set goes with the last one."""
        entry = self._shared.get(job_id)
        if entry is not None:
            entry[1][0] -= 1
            if entry[1][0] <= 0:
                del self._shared[job_id]


def check_job_id(job_id: object) -> str:
    """A job id must be a non-empty str."""
    if not job_id or not isinstance(job_id, str):
        raise ConfigurationError(f"job_id must be a non-empty str, not {job_id!r}")
    return job_id
