"""``BulkDispatcher.stream()``: outcomes as they come, and a job that cannot outlive its reader.

The job of a stream runs in a task of its own (not in the caller's task), started on the
first ``__anext__``. Nothing of it lives in the caller's task, so leaving the loop early
(``break``, an exception) cannot leave a cancel scope behind that would later cancel the
caller's own awaits. Leaving is noticed without ``aclose``: when the last reference to the
stream goes (CPython frees it as the loop ends), no further request starts, and the job's
task is cancelled on the event loop's next turn. ``aclose()`` (or ``async with``) stops it
and waits until it has stopped.
"""

from __future__ import annotations

import contextlib
import contextvars
import weakref
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any

import anyio

from .._asynclib import running_library
from ._values import Outcome

if TYPE_CHECKING:
    from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

    from ._job import Job

__all__ = ["OutcomeStream"]

Runner = Callable[["Job", "MemoryObjectSendStream[Outcome]"], Awaitable[None]]
_TASKS: set[Any] = set()  # asyncio keeps only weak references to tasks


class _State:
    """What the stream and its job's task share (never the stream itself)."""

    __slots__ = ("cancel_soon", "done", "error", "job", "receive", "scope")

    def __init__(self, job: Job, receive: MemoryObjectReceiveStream[Outcome]) -> None:
        self.job = job
        self.receive = receive
        self.scope: anyio.CancelScope | None = None
        self.done: anyio.Event | None = None
        self.error: BaseException | None = None
        self.cancel_soon: Callable[[Callable[[], object]], object] | None = None

    def abandon(self) -> None:
        """The consumer is gone: no request starts from now; cancel on the loop's turn.

        Called from garbage collection, so it only sets a flag and schedules.
        """
        self.job.abandoned = True
        self.receive.close()
        scope, soon = self.scope, self.cancel_soon
        if scope is not None and soon is not None:
            with contextlib.suppress(RuntimeError):  # a closed loop: nothing runs any more
                soon(scope.cancel)

    def stop_now(self) -> None:
        self.job.abandoned = True
        if self.scope is not None:
            self.scope.cancel()


def _library() -> str:
    """The running event loop's library: "asyncio" or "trio"."""
    return running_library() or "asyncio"


class OutcomeStream:
    """An async iterator of :class:`Outcome` (one per row), also an async context manager.

    ``async for outcome in dispatcher.stream(rows)`` runs the job while you iterate;
    leaving the loop early stops it. ``async with dispatcher.stream(rows) as outcomes``
    (or ``contextlib.aclosing``) also waits for it to stop before going on.
    """

    def __init__(self, job: Job, messages: object, runner: Runner, buffer: int) -> None:
        send, receive = anyio.create_memory_object_stream[Outcome](buffer)
        self._send: MemoryObjectSendStream[Outcome] | None = send
        self._state = _State(job, receive)
        self._runner = runner
        self._started = False
        self._finalizer = weakref.finalize(self, self._state.abandon)

    def __aiter__(self) -> OutcomeStream:
        return self

    async def __anext__(self) -> Outcome:
        state = self._state
        if not self._started:
            self._start()
        try:
            return await state.receive.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            pass
        if state.done is not None:
            with anyio.CancelScope(shield=True):
                await state.done.wait()
        if state.error is not None:
            error, state.error = state.error, None
            raise error
        raise StopAsyncIteration

    def _start(self) -> None:
        self._started = True
        state = self._state
        send = self._send
        assert send is not None
        self._send = None
        state.done = anyio.Event()
        runner = self._runner
        library = _library()

        async def run() -> None:
            try:
                with anyio.CancelScope() as scope:
                    state.scope = scope
                    if state.job.abandoned:
                        scope.cancel()
                    async with send:
                        await runner(state.job, send)
            except Exception as exc:
                state.error = exc
            finally:
                if library != "asyncio":
                    assert state.done is not None
                    state.done.set()

        if library == "asyncio":
            # anyio has no task outside a task group; this one must outlive no one but
            # the stream, and its end is awaited by aclose() (see the module docstring).
            import asyncio  # noqa: TID251

            loop = asyncio.get_running_loop()
            task = loop.create_task(run())
            _TASKS.add(task)

            def finished(task: Any) -> None:
                _TASKS.discard(task)
                assert state.done is not None
                state.done.set()  # after the task ended: nothing of it is left running

            task.add_done_callback(finished)
            state.cancel_soon = loop.call_soon_threadsafe
        else:
            import trio

            token = trio.lowlevel.current_trio_token()
            state.cancel_soon = token.run_sync_soon
            trio.lowlevel.spawn_system_task(run, context=contextvars.copy_context())

    async def aclose(self) -> None:
        """Stop the job (no new request; those in flight are cancelled) and wait for it.

        An error the job ended with is raised by the iteration, not here.
        """
        state = self._state
        self._finalizer.detach()
        if self._send is not None:
            self._send.close()
            self._send = None
        state.stop_now()
        state.receive.close()
        if state.done is not None:
            with anyio.CancelScope(shield=True):
                await state.done.wait()

    async def __aenter__(self) -> OutcomeStream:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
