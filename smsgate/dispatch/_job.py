"""One run of a job: read the input, hand batches to workers, stop cleanly.

How a job flows (see docs/dispatch.md for the user-facing story)::

    input (Iterable | AsyncIterable of Message, read lazily)
      -> Admission (``_intake``): bad rows fail, repeats are skipped, the rest are keyed
      -> Batcher: rows with the same text and line, up to the batch size (a partial batch
         of an async input leaves after ``linger`` seconds)
      -> a handoff (``_handoff``) with no buffer beyond one row's batches (back-pressure:
         the input is read only as fast as workers take batches); workers are started as
         batches need them, up to ``concurrency``
      -> each worker, holding a concurrency token: claim, pace, send, record, report
         (``_sending``).

Reading and handing batches over is ``_reading``; this module runs the job, its workers,
its stop and its send window.

Stopping (``stop`` set, or an account-wide error): no more rows are read, batches not yet
claimed fail with ``JobStoppedError``, requests in flight finish and are recorded. After
``drain_timeout`` seconds the workers still busy are cancelled: rows whose request was in
flight become ``unknown``, the others ``failed`` with ``JobStoppedError``.

Memory is flat in the number of rows: at most ``concurrency`` batches in flight plus at
most ``MAX_OPEN_GROUPS`` partial batches, and the duplicate filter, which keeps an 8-byte
fingerprint per distinct row.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import anyio
import anyio.lowlevel

from ..exceptions import JournalError, OutcomeUnknownError, SendWindowError
from ._context import JobContext, check_job_id
from ._intake import Admission, Item, Messages
from ._progress import Meter
from ._reading import Reader
from ._sending import Sink
from ._values import REASON_MAYBE_SENT

if TYPE_CHECKING:
    from anyio.abc import TaskGroup

    from ._window import SendWindow

__all__ = ["Job", "unwrap"]

#: After a SendWindowError, the route waits at least this long (seconds) before trying.
_REFUSED_HOLD = 60.0


def unwrap(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The one plain exception a task-group error stands for, or the group itself.

    A :class:`JournalError` wins (several workers fail on one broken journal at once);
    otherwise a single leaf. Cancellation stays a group.
    """
    leaves: list[BaseException] = []

    def walk(exc: BaseException) -> None:
        if isinstance(exc, BaseExceptionGroup):
            for inner in exc.exceptions:
                walk(inner)
        else:
            leaves.append(exc)

    walk(group)
    for leaf in leaves:
        if isinstance(leaf, JournalError):
            return leaf
    if len(leaves) == 1 and isinstance(leaves[0], Exception):
        return leaves[0]
    return group


class Job(Reader):
    """One run of a job: its counters, its task groups, its outcomes."""

    def __init__(
        self,
        ctx: JobContext,
        job_id: str,
        total: int | None,
        stop: anyio.Event | None = None,
    ) -> None:
        check_job_id(job_id)
        settings = ctx.settings
        meter = Meter(job_id, total, ctx.clock, settings.on_progress, settings.progress_interval)
        super().__init__(ctx, job_id, meter)
        self.stop_event = stop
        self.outer: TaskGroup | None = None
        self.worker_scopes: set[anyio.CancelScope] = set()
        self.windows: list[SendWindow | None] = list(ctx.windows)
        self.window_hold = [0.0] * len(self.windows)
        self.window_open_until = [0.0] * len(self.windows)
        self.window_gate: anyio.Event | None = None

    @property
    def in_flight(self) -> int:
        return self.meter.in_flight

    # -- the job ---------------------------------------------------------------------------

    async def execute(self, messages: Messages, sink: Sink) -> None:
        """Run the job to its end (or its stop), handing each outcome to ``sink``."""
        ctx = self.ctx
        self.sink = sink
        self.meter.start()
        ctx.jobs.add(self)
        journal, owned, where = await ctx.open_journal()
        self.journal_where = where
        shared = None
        try:
            if journal is not None:
                await self.journal_call(journal.open(self.job_id))
                self.journal = journal
            else:
                shared = ctx.share(self.job_id)
            self.admission = Admission(
                ctx.policy.routes[0], keyed=journal is not None, legacy=True, shared=shared
            )
            try:
                async with anyio.create_task_group() as outer:
                    self.outer = outer
                    if self.stop_event is not None:
                        outer.start_soon(self._watch, self.stop_event)
                    async with anyio.create_task_group() as workers:
                        self.workers = workers
                        await self._read(messages)
                    # Batches no worker took: the job stopped, or its workers were cancelled.
                    for batch in self.leftovers():
                        await self.fail_stopped(batch)
                    outer.cancel_scope.cancel()
            except BaseExceptionGroup as group:
                leaf = unwrap(group)
                if leaf is group:
                    raise
                raise leaf from leaf.__cause__
            self.meter.ended = ctx.clock()
            if self.journal_error is not None:
                raise self.journal_error
            self.meter.progress(final=True)
        finally:
            ctx.jobs.discard(self)
            if shared is not None:
                ctx.unshare(self.job_id)
            if owned and journal is not None:
                with anyio.CancelScope(shield=True):
                    await journal.aclose()

    # -- stopping --------------------------------------------------------------------------

    async def _watch(self, event: anyio.Event) -> None:
        await event.wait()
        self.request_stop("stop was requested")

    def is_stopping(self) -> bool:
        return self.stopping is not None

    def request_stop(self, reason: str) -> None:
        """Stop admitting rows; in-flight requests get ``drain_timeout`` to finish."""
        if self.stopping is not None:
            return
        self.stopping = reason
        self.meter.stopped = reason
        if self.source_scope is not None:
            self.source_scope.cancel()
        self.handoff.wake()  # idle workers look again: they read no more rows
        # A batch being handed over is left to the workers: they fail it without sending.
        if self.outer is not None:
            self.outer.start_soon(self._drain)
        self.meter.progress(force=True)

    def journal_broken(self, error: JournalError) -> None:
        """The journal failed: stop now; every worker reports its rows and ends."""
        if self.journal_error is None:
            self.journal_error = error
        self.request_stop(f"the journal failed ({error.__cause__!r})")
        self._cancel_workers()

    async def _drain(self) -> None:
        await anyio.sleep(self.ctx.settings.drain_timeout)
        self._cancel_workers()

    def _cancel_workers(self) -> None:
        for scope in list(self.worker_scopes):
            scope.cancel()
        # No worker takes batches any more: the reader stops waiting for one; the batches
        # left over fail when the workers have ended.
        if self.handoff_scope is not None:
            self.handoff_scope.cancel()

    async def _cancelled(self, items: list[Item]) -> None:
        """A worker was cancelled by the drain timeout while it held ``items``."""
        route = self.policy.routes[0]
        # Outcomes already decided and recorded (a sent batch whose outcomes were being
        # handed over) are delivered as they are, never rewritten as a guess.
        await self.redeliver(items)
        in_doubt = [i for i in items if not i.done and i.outcome is None and i.sending]
        unsent = [i for i in items if not i.done and i.outcome is None and not i.sending]
        if in_doubt:
            error = OutcomeUnknownError(
                f"job {self.job_id!r} stopped ({self.stopping}) while this row's request was "
                "in flight; it may have gone out: reconcile it, it is not sent again"
            )
            await self.finish(in_doubt, "unknown", error, route, REASON_MAYBE_SENT)
        if unsent:
            await self.fail_stopped(unsent, route)

    # -- the send window (see _window) -----------------------------------------------------

    async def wait_window(self, index: int, item: Item) -> None:
        """Pause (no request starts) while route ``index``'s send window is closed.

        One worker sleeps until it opens; the others wait for it, so an injected sleep
        that moves a fake clock moves it once.
        """
        window = self.windows[index]
        if window is None:
            return
        ctx = self.ctx
        while self.stopping is None:
            now = ctx.wall()
            if now < self.window_open_until[index]:
                return  # known open until then: one clock read per request
            until = max(window.opens_at(now), self.window_hold[index])
            if until <= now:
                self.window_open_until[index] = window.closes_at(now)
                return
            gate = self.window_gate
            if gate is not None:
                await gate.wait()
                continue
            gate = self.window_gate = anyio.Event()
            try:
                self.meter.paused_until = until
                self.meter.progress(force=True)
                while not self.is_stopping() and (now := ctx.wall()) < until:
                    await ctx.sleep(until - now)
            finally:
                self.meter.paused_until = None
                self.window_gate = None
                gate.set()
            self.meter.progress(force=True)

    def window_open(self, index: int) -> bool:
        """Whether a request may start on route ``index`` now (no wait, no clock read
        without a window)."""
        if self.windows[index] is None:
            return True
        return self.ctx.wall() < self.window_open_until[index]

    def window_refused(self, index: int, error: SendWindowError) -> None:
        """The provider refused for the hour: hold the route until its window opens
        again, at least a minute from now (our clock may disagree with the provider's)."""
        window = self.windows[index]
        if window is None:
            from ._window import SendWindow

            window = self.windows[index] = SendWindow()
        now = self.ctx.wall()
        self.window_open_until[index] = 0.0
        self.window_hold[index] = max(self.window_hold[index], window.opens_at(now + _REFUSED_HOLD))

    # -- workers ---------------------------------------------------------------------------

    async def _worker(self, first: list[Item]) -> None:
        current: list[Item] | None = first
        slots = self.ctx.slots
        with anyio.CancelScope() as scope:
            self.worker_scopes.add(scope)
            while current is not None:
                try:
                    # Only wait (and yield) when another job of this dispatcher holds
                    # every token.
                    slots.acquire_nowait()
                except anyio.WouldBlock:
                    await slots.acquire()
                try:
                    await self.process(current)
                except anyio.get_cancelled_exc_class():
                    if not scope.cancel_called:
                        # Cancelled from outside the job (its caller, a timeout, a
                        # stream left): claims no request carried go back, so the
                        # rerun sends those rows instead of calling them in doubt.
                        with anyio.CancelScope(shield=True):
                            await self.release(current)
                    raise
                except JournalError:
                    if self.journal_error is None:
                        raise
                    break  # reported below, like a cancelled batch
                finally:
                    slots.release()
                current = None
                current = await self._next_batch()
        self.worker_scopes.discard(scope)
        if current is not None and (scope.cancelled_caught or self.journal_error is not None):
            with anyio.CancelScope(shield=True):
                await self._cancelled(current)
