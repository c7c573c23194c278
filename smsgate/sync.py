"""Sync twins of the gateways and the dispatcher, for Django views, Celery tasks and scripts.

::

    from smsgate.sync import IppanelGateway

    with IppanelGateway(username="...", password="...", sender="+983000505") as gw:
        receipt = gw.send("09121234567", "text")
        reports = gw.delivery(receipt)

Same arguments, same return values, same errors as the async classes; no event loop
needed. How: each sync object owns a :class:`Runner`, one background thread running an
event loop (anyio's blocking portal, asyncio), and every call is handed to that loop and
waited for. Calls are thread-safe: any number of threads may share one sync gateway, and
their requests run concurrently on its loop, over one connection pool. Close it
(``close()`` or ``with``) to stop the thread.

A sync :class:`BulkDispatcher` must run on the loop of its gateways (their connections
belong to it): give it a sync gateway, or a :class:`~smsgate.FallbackPolicy` of routes whose
gateways are sync twins sharing one runner (``IppanelGateway(..., runner=first.runner)``).

Every attribute not wrapped by name (``gw.phonebooks.list()``, ``gw.postal.count(...)``,
``gw.states(...)``) is reached through the same loop: coroutine methods become blocking
calls, groups of them become sync groups.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import inspect
import os
import threading
import weakref
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self, TypeVar

from .exceptions import ConfigurationError

if TYPE_CHECKING:
    from anyio.from_thread import BlockingPortal

    from ._models import DeliveryReport, SendReceipt
    from .dispatch import BulkReport, Estimate, Outcome
    from .tracking import TrackSummary

__all__ = ["BulkDispatcher", "IppanelGateway", "NeginGateway", "Runner", "track"]

T = TypeVar("T")


class Runner:
    """One background event-loop thread that runs the calls of sync objects.

    Created by each sync object unless one is passed (``runner=``), so that several sync
    objects (the routes of a fallback policy and its dispatcher) share one loop. Closed
    by the object that created it; thread-safe.

    Args:
        backend: The anyio backend of the loop (``"asyncio"``; ``"trio"`` works with the
            httpx transport).
    """

    def __init__(self, backend: str = "asyncio") -> None:
        import queue

        ready: queue.SimpleQueue[BlockingPortal | BaseException] = queue.SimpleQueue()

        def run() -> None:
            import anyio
            from anyio.from_thread import BlockingPortal

            async def main() -> None:
                async with BlockingPortal() as portal:
                    ready.put(portal)
                    await portal.sleep_until_stopped()

            try:
                anyio.run(main, backend=backend)
            except BaseException as exc:  # reported to the constructor if it never started
                ready.put(exc)

        # A daemon thread: a sync object the program forgot to close never keeps the
        # interpreter from exiting (an executor's worker thread would: it is joined at exit).
        self._thread = threading.Thread(target=run, name="smsgate-sync", daemon=True)
        self._thread.start()
        started = ready.get()
        if isinstance(started, BaseException):
            raise started
        self._portal: BlockingPortal | None = started
        self._pid = os.getpid()  # a forked child has no loop thread: see _get()
        self._lock = threading.Lock()
        self._users = 1
        # Async closers of the objects on this loop, run if the program exits unclosed.
        self._closers: dict[int, Callable[[], Any]] = {}
        _OPEN.add(self)

    def __repr__(self) -> str:
        return f"<smsgate.sync.Runner {'open' if self._portal is not None else 'closed'}>"

    @property
    def closed(self) -> bool:
        """Whether the loop thread has stopped."""
        return self._portal is None

    @property
    def forked(self) -> bool:
        """Whether this is a forked child's copy (its loop thread stayed in the parent)."""
        return os.getpid() != self._pid

    def _get(self) -> BlockingPortal:
        portal = self._portal
        if portal is None:
            raise RuntimeError("this smsgate sync object is closed")
        if self.forked:
            # fork() copies the object but not its loop thread: a call would wait forever
            # (Celery's prefork pool, gunicorn --preload).
            raise RuntimeError(
                "this smsgate sync object was created before the process forked; create it "
                "in the worker process (e.g. in Celery's worker_process_init signal, or "
                "lazily on first use)"
            )
        return portal

    def call(self, func: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        """Run ``func(*args, **kwargs)`` on the loop (awaited if it is a coroutine function)."""
        portal = self._get()
        return portal.call(functools.partial(func, *args, **kwargs))

    def _acquire(self) -> None:
        with self._lock:
            self._get()
            self._users += 1

    def close(self) -> None:
        """Stop the loop thread once every sync object sharing it has closed."""
        with self._lock:
            self._users -= 1
            if self._users > 0 or self._portal is None:
                return
            portal, self._portal = self._portal, None
        _OPEN.discard(self)
        if self.forked:
            return  # a forked child: the loop thread is the parent's, nothing to stop here
        with contextlib.suppress(RuntimeError):  # the loop already ended (interpreter exit)
            portal.call(portal.stop, True)
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout=10)

    def iterate(self, agen_factory: Callable[[], AsyncIterator[T]]) -> Iterator[T]:
        """A blocking iterator over an async iterator run on the loop."""
        import anyio

        portal = self._get()
        send, receive = anyio.create_memory_object_stream[tuple[bool, Any]](0)

        async def pump() -> None:
            async with send:
                try:
                    async for item in agen_factory():
                        await send.send((True, item))
                except anyio.get_cancelled_exc_class():
                    raise
                except BaseException as exc:
                    await send.send((False, exc))

        future = portal.start_task_soon(pump)
        try:
            while True:
                try:
                    ok, value = portal.call(receive.receive)
                except anyio.EndOfStream:
                    break
                if not ok:
                    raise value
                yield value
        finally:
            future.cancel()
            with contextlib.suppress(Exception):
                portal.call(receive.aclose)


#: Runners not closed yet: closed at interpreter exit, so their connections close cleanly.
_OPEN: weakref.WeakSet[Runner] = weakref.WeakSet()


@atexit.register
def _close_forgotten() -> None:
    for runner in list(_OPEN):
        for closer in list(runner._closers.values()):
            with contextlib.suppress(Exception):
                runner.call(closer)
        runner._users = 1
        with contextlib.suppress(Exception):
            runner.close()


def _wrap(runner: Runner, value: Any) -> Any:
    """A blocking form of ``value`` (a coroutine method, a group of them) or ``value``."""
    if inspect.iscoroutinefunction(value):

        @functools.wraps(value)
        def blocking(*args: Any, **kwargs: Any) -> Any:
            return runner.call(value, *args, **kwargs)

        return blocking
    if _has_coroutine_methods(value):
        return _SyncGroup(runner, value)
    return value


def _has_coroutine_methods(value: Any) -> bool:
    if isinstance(value, type) or inspect.isroutine(value) or value is None:
        return False
    if isinstance(value, str | bytes | int | float | tuple | list | dict):
        return False
    return any(
        inspect.iscoroutinefunction(getattr(type(value), name, None))
        for name in dir(type(value))
        if not name.startswith("_")
    )


class _SyncGroup:
    """A group of coroutine methods (``gw.phonebooks``), callable without a loop."""

    def __init__(self, runner: Runner, target: Any) -> None:
        self._runner = runner
        self._target = target

    def __repr__(self) -> str:
        return f"<sync {self._target!r}>"

    def __getattr__(self, name: str) -> Any:
        return _wrap(self._runner, getattr(self._target, name))


class _Closing:
    """``with obj:`` closes ``obj`` on the way out (the sync objects' one context manager)."""

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class _SyncGateway(_Closing):
    _async_class: str = ""

    def __init__(self, *, runner: Runner | None = None, **kwargs: Any) -> None:
        import importlib

        module, _, name = self._async_class.rpartition(".")
        cls = getattr(importlib.import_module(module), name)
        self._closed = False
        if runner is None:
            runner = Runner()
        else:
            runner._acquire()
        self.runner = runner
        try:
            # Built on the loop's thread: its client (and pool) belongs to that loop.
            self.aio = runner.call(lambda: cls(**kwargs))
        except BaseException:
            runner.close()
            raise
        runner._closers[id(self)] = self.aio.aclose

    def __repr__(self) -> str:
        return f"<sync {self.aio!r}>"

    @property
    def name(self) -> str:
        """The backend's name (``"ippanel"``, ``"negin"``)."""
        return str(self.aio.name)

    @property
    def max_recipients(self) -> int:
        """Recipients per request."""
        return int(self.aio.max_recipients)

    def send(self, to: str | Iterable[str], text: str, *, sender: str | None = None) -> SendReceipt:
        """Send one text to one or more numbers (see the async ``send``)."""
        return self.runner.call(self.aio.send, to, text, sender=sender)  # type: ignore[no-any-return]

    def delivery(self, ref: SendReceipt | str, /) -> list[DeliveryReport]:
        """Each recipient's delivery state (see the async ``delivery``)."""
        return self.runner.call(self.aio.delivery, ref)  # type: ignore[no-any-return]

    def close(self) -> None:
        """Close the gateway and, if no other object shares it, the loop thread; idempotent."""
        if self._closed:
            return
        self._closed = True
        self.runner._closers.pop(id(self), None)
        try:
            if not self.runner.forked:  # a forked child's copy has nothing of its own to close
                self.runner.call(self.aio.aclose)
        finally:
            self.runner.close()

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_") or name in ("aio", "runner"):  # not built yet
            raise AttributeError(name)
        return _wrap(self.runner, getattr(self.aio, name))


class IppanelGateway(_SyncGateway):
    """The sync twin of :class:`smsgate.IppanelGateway`: same arguments, same errors.

    Every async method is here as a blocking one (``send``, ``delivery``, ``credit``,
    ``send_pattern``, ``message_status``, ``phonebooks.list()``...). ``runner=`` shares
    another sync object's loop thread. ``aio`` is the async gateway underneath.
    """

    _async_class = "smsgate.backends.ippanel.IppanelGateway"


class NeginGateway(_SyncGateway):
    """The sync twin of :class:`smsgate.NeginGateway`: same arguments, same errors.

    Blocking ``send``, ``send_service``, ``delivery``, ``states``. ``runner=`` shares
    another sync object's loop thread. ``aio`` is the async gateway underneath.
    """

    _async_class = "smsgate.backends.negin.NeginGateway"


def _unwrap_gateways(gateway: Any) -> tuple[Any, Runner | None]:
    """The async gateway or policy for a sync one, and the runner they share."""
    from .dispatch import FallbackPolicy, Route

    if isinstance(gateway, _SyncGateway):
        return gateway.aio, gateway.runner
    if isinstance(gateway, FallbackPolicy):
        # A route's gateway may be a sync twin here (typed as an async one).
        gateways: list[Any] = [r.gateway for r in gateway.routes]
        runners = {id(g.runner): g.runner for g in gateways if isinstance(g, _SyncGateway)}
        if len(runners) > 1:
            raise ConfigurationError(
                "the routes' sync gateways run on different loops: create them with "
                "runner=first_gateway.runner so that they share one"
            )
        if not runners:
            return gateway, None
        routes = [
            Route(g.aio if isinstance(g, _SyncGateway) else g, sender=r.sender, name=r.name)
            for g, r in zip(gateways, gateway.routes, strict=True)
        ]
        policy = FallbackPolicy(routes, on=gateway.on, breaker=gateway.breaker)
        return policy, next(iter(runners.values()))
    return gateway, None


class BulkDispatcher(_Closing):
    """The sync twin of :class:`smsgate.BulkDispatcher`: same arguments, same errors.

    ``gateway`` is a sync gateway (or a policy of sync gateways sharing one runner); the
    job runs on that gateway's loop. A plain async gateway works too, on a loop of the
    dispatcher's own (create it there with care: its connections then belong to it).
    ``on_progress`` is called on the loop's thread: keep it quick and thread-safe.

    Args:
        gateway: A sync gateway, or a :class:`~smsgate.FallbackPolicy` of them.
        **kwargs: As for :class:`smsgate.BulkDispatcher`.
    """

    def __init__(self, gateway: Any, **kwargs: Any) -> None:
        from .dispatch import BulkDispatcher as AsyncDispatcher

        inner, runner = _unwrap_gateways(gateway)
        self._closed = False
        if runner is None:
            runner = Runner()
        else:
            runner._acquire()
        self.runner = runner
        try:
            self.aio = runner.call(lambda: AsyncDispatcher(inner, **kwargs))
        except BaseException:
            runner.close()
            raise

    def __repr__(self) -> str:
        return f"<sync {self.aio!r}>"

    def run(self, messages: Any, job_id: str = "default", **kwargs: Any) -> BulkReport:
        """Send every message and return the :class:`~smsgate.BulkReport` (blocking)."""
        return self.runner.call(self.aio.run, messages, job_id, **kwargs)  # type: ignore[no-any-return]

    def stream(self, messages: Any, job_id: str = "default", **kwargs: Any) -> Iterator[Outcome]:
        """Send every message, yielding one :class:`~smsgate.Outcome` per row as it ends.

        Stopping the iteration early (``break``) cancels the job like cancelling the
        async stream does: rows in flight are recorded, the rest are not sent.
        """
        return self.runner.iterate(lambda: self.aio.stream(messages, job_id, **kwargs))

    def estimate(self, messages: Any, **kwargs: Any) -> Estimate:
        """A dry run: what the job would send and cost (see the async ``estimate``)."""
        return self.runner.call(self.aio.estimate, messages, **kwargs)  # type: ignore[no-any-return]

    def close(self) -> None:
        """Release the loop thread (stopped once no gateway shares it); idempotent."""
        if not self._closed:
            self._closed = True
            self.runner.close()


def track(journal: Any, gateway: Any, **kwargs: Any) -> TrackSummary:
    """The blocking form of :func:`smsgate.tracking.track`, on the gateway's loop.

    Args:
        journal: A journal object, or the path of an SQLite journal (opened and closed here).
        gateway: A sync gateway, or a :class:`~smsgate.FallbackPolicy` of sync gateways
            sharing one runner.
        **kwargs: As for :func:`smsgate.tracking.track` (``job_id``, ``deadline``...).

    Raises:
        ConfigurationError: ``gateway`` is not a sync gateway (or a policy of them).
    """
    from .tracking import track as track_async

    inner, runner = _unwrap_gateways(gateway)
    if runner is None:
        raise ConfigurationError("smsgate.sync.track needs a sync gateway or a policy of them")

    async def main() -> TrackSummary:
        if isinstance(journal, str | os.PathLike):
            from .dispatch import SqliteJournal

            async with SqliteJournal(journal) as opened:
                return await track_async(opened, inner, **kwargs)
        return await track_async(journal, inner, **kwargs)

    return runner.call(main)  # type: ignore[no-any-return]
