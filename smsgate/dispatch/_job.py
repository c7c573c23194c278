"""One run of a job: read the input, hand batches to workers, stop cleanly.

How a job flows (see docs/dispatch.md for the user-facing story)::

    input (Iterable | AsyncIterable of Message, read lazily)
      -> Admission (``_intake``): bad rows fail, repeats are skipped, the rest are keyed
      -> Batcher: rows with the same text and line, up to the batch size (a partial batch
         leaves after ``linger`` seconds)
      -> a handoff (``_handoff``) with no buffer beyond one row's batches (back-pressure:
         the input is read only as fast as workers take batches); workers are started as
         batches need them, up to ``concurrency``
      -> each worker, holding a concurrency token: claim, pace, send, record, report
         (``_sending``).

Who reads: a plain iterable is read by the workers themselves, each when it needs its next
batch (one at a time; the job's task reads only until every worker it may start has a
batch), so a batch reaches a worker without a task switch. An async iterable is read by
the job's task, which hands each batch over and waits while every worker is busy.

Stopping (``stop`` set, or an account-wide error): no more rows are read, batches not yet
claimed fail with ``JobStoppedError``, requests in flight finish and are recorded. After
``drain_timeout`` seconds the workers still busy are cancelled: rows whose request was in
flight become ``unknown``, the others ``failed`` with ``JobStoppedError``.

Memory is flat in the number of rows: at most ``concurrency`` batches in flight plus at
most ``MAX_OPEN_GROUPS`` partial batches, and the duplicate filter, which keeps an 8-byte
fingerprint per distinct row.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterable, Iterator
from typing import TYPE_CHECKING

import anyio
import anyio.lowlevel

from .._asynclib import loop_clock
from .._models import Message
from ..exceptions import JournalError, OutcomeUnknownError, SendWindowError
from ._context import JobContext, check_job_id
from ._handoff import Handoff
from ._intake import END, TICK, YIELD_EVERY, Admission, Batcher, Item, Messages, Signal
from ._pacing import clamp_for_limiter
from ._progress import Meter
from ._sending import Sender, Sink
from ._values import REASON_DUPLICATE, REASON_MAYBE_SENT, Outcome

if TYPE_CHECKING:
    from anyio.abc import ObjectSendStream, TaskGroup

    from ._window import SendWindow

__all__ = ["Job", "unwrap"]

#: After a SendWindowError, the route waits at least this long (seconds) before trying.
_REFUSED_HOLD = 60.0
_NO_ROW = object()  # what next() gives at the end of a plain iterable (a row may be None)


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


class Job(Sender):
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
        self.workers: TaskGroup | None = None
        self.worker_count = 0
        self.worker_scopes: set[anyio.CancelScope] = set()
        self.source_scope: anyio.CancelScope | None = None
        self.handoff_scope: anyio.CancelScope | None = None
        self.handoff = Handoff()
        self.batcher: Batcher | None = None
        self.source: Iterator[Message] | None = None  # a plain iterable: workers read it
        self.reading = False  # a task is reading ``source`` now
        self.input_done = False  # no batch will be made any more (the end, or a stop)
        self.clock = ctx.clock  # the same clock, bound to the loop once the job runs
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
        self.clock = self.meter.clock = loop_clock(ctx.clock)
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
                    leftovers = [*self.handoff.ready]
                    self.handoff.ready.clear()
                    if self.batcher is not None:
                        leftovers += self.batcher.drain()
                    for batch in leftovers:
                        await self.fail_stopped(batch)
                    outer.cancel_scope.cancel()
            except BaseExceptionGroup as group:
                leaf = unwrap(group)
                if leaf is group:
                    raise
                raise leaf from leaf.__cause__
            self.meter.ended = self.clock()
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

    # -- reading ---------------------------------------------------------------------------

    async def _read(self, messages: Messages) -> None:
        size = clamp_for_limiter(self.ctx.batch_size(0), 1, self.limiter) or 1
        timed = isinstance(messages, AsyncIterable)  # lingering is for rows that come slowly
        self.batcher = batcher = Batcher(size, self.ctx.settings.linger, timed=timed)
        if not isinstance(messages, AsyncIterable):
            # The workers read it (_next_batch); this task only until every worker the job
            # may start has a batch and one more batch waits (or the input ended).
            self.source = iter(messages)
            handoff = self.handoff
            while not self.input_done and not self.reading and not handoff.ready:
                await self._produce()
            return
        try:
            if batcher.size > 1:
                await self._read_async(messages, batcher)
            else:  # nothing lingers: no helper tasks needed
                source = messages.__aiter__()
                while self.stopping is None:
                    message: Message | None = None
                    with anyio.CancelScope() as scope:
                        self.source_scope = scope
                        with contextlib.suppress(StopAsyncIteration):
                            message = await source.__anext__()
                    self.source_scope = None
                    if message is None:
                        break
                    ready = self._admit(message, batcher)
                    if isinstance(ready, Outcome):
                        await self.emit(ready)
                        continue
                    for batch in ready:
                        await self._offer(batch, wait=True)
            for batch in batcher.drain():
                await self._offer(batch)
        finally:
            self._end_input()

    async def _produce(self) -> None:
        """Read the plain iterable until a row completes a batch, and hand the batches out.
        At the end of the input, or once the job stops, the partial batches leave too and
        no batch is made any more."""
        source, batcher, meter = self.source, self.batcher, self.meter
        assert source is not None and batcher is not None
        self.reading = True
        try:
            made = False
            while not made:
                message = _NO_ROW if self.stopping is not None else next(source, _NO_ROW)
                if message is _NO_ROW:
                    for batch in batcher.drain():
                        await self._offer(batch)
                    self._end_input()
                    return
                ready = self._admit(message, batcher)  # type: ignore[arg-type]
                if isinstance(ready, Outcome):
                    await self.emit(ready)
                else:
                    for batch in ready:
                        made = True
                        await self._offer(batch)
                if meter.read % YIELD_EVERY == 0:
                    await anyio.lowlevel.checkpoint()
        finally:
            self.reading = False
            if not self.input_done and self.handoff.idle:
                self.handoff.wake(1)  # workers waited for this read: one of them reads on

    def _end_input(self) -> None:
        self.input_done = True
        self.handoff.wake()

    async def _read_async(self, messages: AsyncIterable[Message], batcher: Batcher) -> None:
        # Two helper tasks feed one pipe: `pump` pulls the user's iterator, `tick` says
        # when a partial batch has lingered long enough. Nothing here cancels a pending
        # __anext__ (that would kill an async generator) or a pending receive (an item
        # handed over at that moment could be lost), except a stop: the loop reads the pipe.
        pipe_in, pipe_out = anyio.create_memory_object_stream[Message | Signal](0)
        clock, sleep, linger = self.clock, self.ctx.sleep, self.ctx.settings.linger

        async def pump() -> None:
            async with pipe_in:
                async for message in messages:
                    await pipe_in.send(message)
                await pipe_in.send(END)

        async def tick(ticks: ObjectSendStream[Message | Signal]) -> None:
            async with ticks:
                while True:
                    deadline = batcher.next_deadline()
                    now = clock()
                    if deadline is not None and deadline <= now:
                        await ticks.send(TICK)
                    else:
                        await sleep(max(linger if deadline is None else deadline - now, 1e-3))

        async with anyio.create_task_group() as helpers, pipe_out:
            helpers.start_soon(pump)
            helpers.start_soon(tick, pipe_in.clone())
            while self.stopping is None:
                # A stop cancels this receive: a row handed over at that moment is lost
                # before it was counted, as if never read (it is in no report, not sent).
                got: Message | Signal | None = None
                with anyio.CancelScope() as scope:
                    self.source_scope = scope
                    got = await pipe_out.receive()
                self.source_scope = None
                if got is None or got is END:
                    break
                if got is TICK:
                    ready = batcher.expired(clock())
                else:
                    assert not isinstance(got, Signal)
                    admitted = self._admit(got, batcher)
                    if isinstance(admitted, Outcome):
                        await self.emit(admitted)
                        continue
                    ready = admitted
                for batch in ready:
                    await self._offer(batch, wait=True)
            helpers.cancel_scope.cancel()

    def _admit(self, message: Message, batcher: Batcher) -> list[list[Item]] | Outcome:
        """Check one row: the batches it completes, or its outcome (counted; the caller
        emits it). Not a coroutine: most rows only join a batch."""
        meter = self.meter
        meter.read += 1
        assert self.admission is not None
        result = self.admission.admit(message)
        if isinstance(result, Outcome):
            if result.reason == REASON_DUPLICATE:
                meter.duplicates += 1
            elif result.status == "failed":
                meter.invalid += 1
            return result
        return batcher.add(result, self.clock() if batcher.timed and batcher.size > 1 else 0.0)

    async def _offer(self, batch: list[Item], *, wait: bool = False) -> None:
        """Give a batch to an idle worker, start one (up to ``concurrency``: a 10-row job
        makes at most 10), or leave it for the next worker that is free; ``wait``: then
        wait until a worker took it (the async reader's back-pressure)."""
        if self.stopping is not None:
            await self.fail_stopped(batch)
            return
        handoff = self.handoff
        if handoff.give(batch):
            return
        if self.worker_count < self.ctx.settings.concurrency:
            assert self.workers is not None
            self.worker_count += 1
            self.workers.start_soon(self._worker, batch)
            return
        handoff.ready.append(batch)
        if wait:
            with anyio.CancelScope() as scope:
                self.handoff_scope = scope
                await handoff.wait_room()
            self.handoff_scope = None

    async def _next_batch(self) -> list[Item] | None:
        """A worker's next batch (``None``: none will come): one waiting, else one it reads
        itself (a plain iterable no other task is reading), else one handed to it.

        A worker that reads also reads the batch after its own, which then waits (as a
        reading task would hold it while every worker is busy): stopping fails it."""
        handoff = self.handoff
        while True:
            batch = handoff.take()
            if batch is None:
                if self.input_done:
                    return None
                if self.source is not None and not self.reading:
                    await self._produce()
                    continue
                batch = await handoff.wait()
                if batch is None:
                    continue
            if self.source is not None and not (self.reading or self.input_done or handoff.ready):
                try:
                    await self._produce()
                except BaseException:
                    handoff.ready.appendleft(batch)  # never lost with a cancelled worker
                    raise
            return batch

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
