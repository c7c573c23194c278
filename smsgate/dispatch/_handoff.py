"""Batches between whoever reads a job's input and the workers that send them.

A :class:`Handoff` holds the workers waiting for a batch and the batches waiting for a
worker (at most those one row completed, plus one per worker started: the job reads only
as fast as workers take batches). Handing a batch to a waiting worker costs one event;
a worker that finds a batch waiting takes it without yielding (``_job`` explains who
reads).

It replaces a zero-buffer memory stream, whose every send and receive is a checkpoint
(a turn of the event loop) and builds a waiter: a few microseconds per request at
concurrency 64 (benchmarks/README.md).
"""

from __future__ import annotations

import contextlib
from collections import deque

import anyio

from ._intake import Item

__all__ = ["Handoff"]


class _Waiter:
    """A worker waiting for a batch (``batch`` stays ``None`` when it is only woken)."""

    __slots__ = ("batch", "event")

    def __init__(self) -> None:
        self.batch: list[Item] | None = None
        self.event = anyio.Event()


class Handoff:
    """Batches waiting for a worker (``ready``) and workers waiting for a batch."""

    __slots__ = ("_idle", "_room", "ready")

    def __init__(self) -> None:
        self.ready: deque[list[Item]] = deque()
        self._idle: deque[_Waiter] = deque()
        self._room: anyio.Event | None = None

    @property
    def idle(self) -> int:
        """Workers waiting for a batch."""
        return len(self._idle)

    def give(self, batch: list[Item]) -> bool:
        """Hand ``batch`` to the worker that has waited longest; ``False`` if none waits."""
        if not self._idle:
            return False
        waiter = self._idle.popleft()
        waiter.batch = batch
        waiter.event.set()
        return True

    def take(self) -> list[Item] | None:
        """The oldest batch waiting for a worker, if any (no checkpoint)."""
        if not self.ready:
            return None
        batch = self.ready.popleft()
        room = self._room
        if room is not None and not self.ready:
            self._room = None
            room.set()
        return batch

    async def wait(self) -> list[Item] | None:
        """Wait until a batch is handed over (returned) or the worker is woken (``None``).

        Cancelled after a batch was handed over, the batch goes back to ``ready``: it is
        never lost with the worker.
        """
        waiter = _Waiter()
        self._idle.append(waiter)
        try:
            await waiter.event.wait()
        except BaseException:
            with contextlib.suppress(ValueError):
                self._idle.remove(waiter)
            if waiter.batch is not None:
                self.ready.appendleft(waiter.batch)
            raise
        return waiter.batch

    def wake(self, count: int | None = None) -> None:
        """Wake ``count`` waiting workers (default all) without a batch: they look again."""
        idle = self._idle
        for _ in range(len(idle) if count is None else min(count, len(idle))):
            idle.popleft().event.set()

    async def wait_room(self) -> None:
        """Wait until no batch waits for a worker (the reader's back-pressure)."""
        while self.ready:
            room = self._room
            if room is None:
                room = self._room = anyio.Event()
            await room.wait()
