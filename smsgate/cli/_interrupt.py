"""Ctrl+C drains a job instead of abandoning it.

The first SIGINT sets the job's ``stop`` event (no new row is admitted; requests in
flight finish and are recorded) and gives them ``grace`` seconds; a second SIGINT, or
the end of the grace period, cancels at once (rows whose request was in flight are then
in doubt, as after a crash: the journal keeps them from being resent).
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

import anyio
import attrs
from anyio.abc import TaskStatus

__all__ = ["GRACE_SECONDS", "Drained", "run_draining"]

T = TypeVar("T")

#: How long the first Ctrl+C waits for the requests in flight (the dispatcher's
#: ``drain_timeout``; this module cancels only if the job has not ended a little later).
GRACE_SECONDS = 10.0
_MARGIN = 5.0


@attrs.frozen
class Drained(Generic[T]):
    """What :func:`run_draining` ended with."""

    result: T | None  # None when the job was cut short (second Ctrl+C, grace over)
    interrupts: int  # Ctrl+C presses seen


async def run_draining(
    job: Callable[[anyio.Event], Awaitable[T]],
    *,
    grace: float = GRACE_SECONDS,
    on_stop: Callable[[], None] | None = None,
) -> Drained[T]:
    """Run ``job(stop)``; the first Ctrl+C sets ``stop``, a second one cancels the job."""
    stop = anyio.Event()
    scope = anyio.CancelScope()
    interrupts = 0

    async def watch(*, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        nonlocal interrupts
        with contextlib.ExitStack() as stack:
            try:
                signals = stack.enter_context(anyio.open_signal_receiver(signal.SIGINT))
            except (NotImplementedError, RuntimeError, ValueError):
                # No signal handling here (Windows, a thread): Ctrl+C stays KeyboardInterrupt.
                task_status.started()
                return
            task_status.started()
            async for _ in signals:
                interrupts += 1
                if interrupts == 1:
                    stop.set()
                    scope.deadline = anyio.current_time() + grace + _MARGIN
                    if on_stop is not None:
                        on_stop()
                else:
                    scope.cancel()

    result: T | None = None
    async with anyio.create_task_group() as tg:
        await tg.start(watch)
        with scope:
            result = await job(stop)
        tg.cancel_scope.cancel()
    return Drained(result, interrupts)
