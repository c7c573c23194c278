"""Reading a job's input and handing its batches to the workers (``_job`` runs them).

Who reads: a plain iterable is read by the workers themselves, each when it needs its next
batch (one at a time; the job's task reads only until every worker the job may start has
a batch and one more batch waits), so a batch reaches a worker without a task switch. A
worker that reads also reads the batch after its own, which waits for the next free
worker, as a reading task holds one while every worker is busy. An async iterable is
read by the job's task, which hands each batch over and waits while every worker is
busy; its partial batches also leave after ``linger`` seconds.

The batches go through a :class:`~._handoff.Handoff`: to a worker waiting for one, to a
new worker (up to ``concurrency``: a 10-row job makes at most 10), or into the few that
wait for the next free worker.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterable, Iterator
from typing import TYPE_CHECKING

import anyio
import anyio.lowlevel

from .._models import Message
from ._context import JobContext
from ._handoff import Handoff
from ._intake import END, TICK, YIELD_EVERY, Batcher, Item, Messages, Signal
from ._pacing import clamp_for_limiter
from ._progress import Meter
from ._sending import Sender
from ._values import REASON_DUPLICATE, Outcome

if TYPE_CHECKING:
    from anyio.abc import ObjectSendStream, TaskGroup

__all__ = ["Reader"]

_NO_ROW = object()  # what next() gives at the end of a plain iterable (a row may be None)


class Reader(Sender):
    """The reading side of a job (``_job.Job`` adds the workers, the stop, the window)."""

    def __init__(self, ctx: JobContext, job_id: str, meter: Meter) -> None:
        super().__init__(ctx, job_id, meter)
        self.workers: TaskGroup | None = None
        self.worker_count = 0
        self.source_scope: anyio.CancelScope | None = None
        self.handoff_scope: anyio.CancelScope | None = None
        self.handoff = Handoff()
        self.batcher: Batcher | None = None
        self.source: Iterator[Message] | None = None  # a plain iterable: workers read it
        self.reading = False  # a task is reading ``source`` now
        self.input_done = False  # no batch will be made any more (the end, or a stop)

    async def _worker(self, first: list[Item]) -> None:  # pragma: no cover - the job's
        raise NotImplementedError

    def leftovers(self) -> list[list[Item]]:
        """Take the batches no worker took (the job stopped, or its workers were cancelled)."""
        left = [*self.handoff.ready]
        self.handoff.ready.clear()
        if self.batcher is not None:
            left += self.batcher.drain()
        return left

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
                    # Shielded: a worker the drain timeout cancels while it reads still
                    # hands over the outcome of the row it read (as a reading task would).
                    with anyio.CancelScope(shield=True):
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
        clock, sleep, linger = self.ctx.clock, self.ctx.sleep, self.ctx.settings.linger

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
        return batcher.add(result, self.ctx.clock() if batcher.timed and batcher.size > 1 else 0.0)

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
