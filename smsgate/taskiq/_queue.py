"""BulkQueue: one bulk job split into chunks, run by taskiq workers (API.md §9)."""

from __future__ import annotations

import inspect
import os
from collections.abc import AsyncIterable, Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

import anyio
import attrs

from .._models import Message
from ..dispatch import (
    BulkDispatcher,
    BulkReport,
    FallbackPolicy,
    Journal,
    Outcome,
    Progress,
    RateLimit,
)
from ..exceptions import ConfigurationError, JobStoppedError
from ._job import (
    FINISH_SCRIPT,
    JOB_TTL,
    JobHandle,
    JobKeys,
    chunk_counts,
    decode_rows,
    encode_failure,
    encode_rows,
    import_redis,
    live_value,
)

if TYPE_CHECKING:
    from .._gateway import SmsGateway

__all__ = ["BulkQueue"]

GatewayFactory = Callable[[], "SmsGateway | FallbackPolicy"]
_POSTGRES_SCHEMES = ("postgres://", "postgresql://")


def _supports_stop() -> bool:
    return "stop" in inspect.signature(BulkDispatcher.run).parameters


class _WorkerState:
    """What one worker process builds once: the gateway, the Redis client, the shared
    limiter, the journal."""

    def __init__(self, policy: Any, redis: Any, limiter: Any, journal: Journal, owns: bool) -> None:
        self.policy = policy
        self.redis = redis
        self.limiter = limiter
        self.journal = journal
        self.owns_journal = owns
        self.finish = redis.register_script(FINISH_SCRIPT)


class BulkQueue:
    """Run bulk jobs on taskiq workers: one account-wide rate, one journal, many processes.

    The submitter calls :meth:`submit`; every worker process imports the module that builds
    this object (so the chunk task is registered on ``broker``) and runs
    ``taskiq worker module:broker``.

    Args:
        broker: A taskiq broker that acknowledges a task after it ends and delivers an
            unacknowledged task again when its worker dies: the tested ones are
            :class:`~smsgate.taskiq.ReclaimingRedisBroker` (a Redis stream) and
            ``taskiq_aio_pika.AioPikaBroker`` on RabbitMQ with ``qos=1`` (see the "Scaling
            out" page).
        gateway: A zero-argument callable returning the gateway (or a
            :class:`~smsgate.FallbackPolicy`); called once per worker process.
        journal: A PostgreSQL DSN (``postgresql://...``: ``smsgate.postgres.PostgresJournal``),
            an SQLite file path (workers on one machine), or any :class:`~smsgate.Journal`
            whose ``claim()`` is atomic across processes.
        rate_limit: The account-wide :class:`~smsgate.RateLimit`, for all workers together
            (a :class:`~smsgate.redis.RedisRateLimiter` on ``rate_key``).
        redis: The Redis URL for the shared limiter and the jobs' progress.
        chunk_size: Rows per task.
        concurrency: Requests in flight per chunk (with a broker prefetch of one task,
            per worker process).
        name: The queue's name: the task's name and the Redis keys' prefix. Two queues on
            one broker need two names.
        rate_key: The limiter's key (default: ``name``); every queue sending for one
            provider account must share it.
        max_failures: Failed and unknown rows kept for :meth:`JobHandle.wait`'s report (the
            counts always cover every row).
        max_attempts: Times a chunk is run when its run raises (the journal or Redis
            unreachable, a bug) before its rows are reported ``unknown``.
        retry_delay: Seconds before such a chunk is enqueued again (doubling each time).
        progress_interval: Seconds between two writes of a running chunk's counts to Redis.
        dispatcher_options: More keyword arguments for each chunk's
            :class:`~smsgate.BulkDispatcher` (``max_batch``, ``retries``, ``send_window``,
            ``recent_window``...).
    """

    def __init__(
        self,
        broker: Any,
        *,
        gateway: GatewayFactory,
        journal: str | os.PathLike[str] | Journal,
        rate_limit: RateLimit,
        redis: str,
        chunk_size: int = 500,
        concurrency: int = 32,
        name: str = "smsgate",
        rate_key: str | None = None,
        max_failures: int = 1000,
        max_attempts: int = 5,
        retry_delay: float = 1.0,
        progress_interval: float = 0.5,
        dispatcher_options: Mapping[str, Any] | None = None,
    ) -> None:
        if not callable(gateway):
            raise ConfigurationError("gateway must be a zero-argument callable (a factory)")
        if not isinstance(rate_limit, RateLimit):
            raise ConfigurationError("rate_limit must be a smsgate.RateLimit")
        if not isinstance(journal, str | os.PathLike | Journal):
            raise ConfigurationError(f"journal must be a DSN, a path or a Journal, not {journal!r}")
        if not redis:
            raise ConfigurationError("redis must be a Redis URL")
        checks: tuple[tuple[str, object], ...] = (
            ("chunk_size", chunk_size),
            ("concurrency", concurrency),
            ("max_attempts", max_attempts),
        )
        for label, value in checks:
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigurationError(f"{label} must be an int >= 1, not {value!r}")
        if not name or ":" in name:
            raise ConfigurationError("name must be a non-empty str without ':'")
        self.broker = broker
        self.gateway_factory = gateway
        self.journal = journal
        self.rate_limit = rate_limit
        self.redis_url = redis
        self.chunk_size = chunk_size
        self.concurrency = concurrency
        self.name = name
        self.rate_key = rate_key or name
        self.max_failures = max_failures
        self.max_attempts = max_attempts
        self.retry_delay = retry_delay
        self.progress_interval = progress_interval
        self.dispatcher_options = dict(dispatcher_options or {})
        reserved = {"rate_limit", "concurrency", "journal", "on_progress", "progress_interval"}
        if reserved & set(self.dispatcher_options):
            raise ConfigurationError(
                f"dispatcher_options may not set {sorted(reserved & set(self.dispatcher_options))}"
                ": the queue sets them"
            )
        self._client: Any = None
        self._state: _WorkerState | None = None
        self._building: anyio.Lock | None = None
        try:
            from taskiq import TaskiqEvents
        except ImportError as exc:
            raise ImportError(
                "BulkQueue needs taskiq: pip install '.[taskiq]' (in a checkout of smsgate)"
            ) from exc

        async def bulk_chunk(
            job_id: str, run: int, index: int, rows: dict[str, Any], attempt: int = 0
        ) -> None:
            await self._run_chunk(job_id, run, index, rows, attempt)

        # taskiq wants a plain function with a name of its own (it re-registers it under
        # that name in this module); one per queue name.
        bulk_chunk.__name__ = bulk_chunk.__qualname__ = f"bulk_chunk_{name}"
        self.task = broker.register_task(bulk_chunk, task_name=f"smsgate.bulk_chunk:{name}")

        broker.add_event_handler(TaskiqEvents.WORKER_SHUTDOWN, self._on_shutdown)

    def __repr__(self) -> str:
        return f"<BulkQueue {self.name!r} chunk_size={self.chunk_size} {self.rate_limit!r}>"

    # -- the submitter ------------------------------------------------------------------------

    def _redis(self) -> Any:
        if self._client is None:
            self._client = import_redis().from_url(self.redis_url)
        return self._client

    async def submit(
        self, messages: Iterable[Message] | AsyncIterable[Message], job_id: str = "default"
    ) -> JobHandle:
        """Enqueue ``messages`` as tasks of ``chunk_size`` rows; return once all are enqueued.

        The input is read lazily (a generator of a million rows holds one chunk in memory at
        a time). Submitting a job id again starts a new run of it: the journal skips the
        rows an earlier run sent.

        Raises:
            TypeError: A row is not a :class:`~smsgate.Message` (nothing more is enqueued;
                the chunks already enqueued run).
        """
        if not job_id or not isinstance(job_id, str):
            raise ConfigurationError(f"job_id must be a non-empty str, not {job_id!r}")
        redis = self._redis()
        run = int(await redis.incr(JobKeys.run_key(self.name, job_id)))
        await redis.expire(JobKeys.run_key(self.name, job_id), JOB_TTL)
        keys = JobKeys(self.name, job_id, run)
        seconds, micros = await redis.time()
        await redis.hset(
            keys.meta,
            mapping={"started": f"{seconds}.{int(micros):06d}", "submitted": "0", "read": "0"},
        )
        await redis.expire(keys.meta, JOB_TTL)
        chunk: list[Message] = []
        index = 0
        read = 0

        async def flush() -> None:
            nonlocal chunk, index
            await self.task.kiq(job_id, run, index, encode_rows(chunk))
            index += 1
            chunk = []
            await redis.hset(keys.meta, "read", str(read))

        async def add(message: object) -> None:
            nonlocal read
            if not isinstance(message, Message):
                raise TypeError(f"row {read + 1}: expected smsgate.Message, not {message!r}")
            chunk.append(message)
            read += 1
            if len(chunk) >= self.chunk_size:
                await flush()

        if isinstance(messages, AsyncIterable):
            async for message in messages:
                await add(message)
        else:
            for message in messages:
                await add(message)
        if chunk:
            await flush()
        await redis.hset(
            keys.meta,
            mapping={"chunks": str(index), "total": str(read), "read": str(read), "submitted": "1"},
        )
        return JobHandle(redis, keys)

    async def job(self, job_id: str, *, run: int | None = None) -> JobHandle:
        """A handle on the latest run (or run ``run``) of a job submitted earlier."""
        from ._job import open_job

        return await open_job(self._redis(), job_id, name=self.name, run=run)

    async def aclose(self) -> None:
        """Close this process's Redis client (the submitter's side)."""
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    # -- the worker ---------------------------------------------------------------------------

    async def _worker_state(self) -> _WorkerState:
        if self._state is not None:
            return self._state
        if self._building is None:
            self._building = anyio.Lock()
        async with self._building:
            if self._state is None:
                from ..redis import RedisRateLimiter

                policy = self.gateway_factory()
                redis = import_redis().from_url(self.redis_url)
                limiter = RedisRateLimiter(redis, self.rate_limit, key=self.rate_key)
                journal, owns = _open_journal(self.journal, self.concurrency)
                self._state = _WorkerState(policy, redis, limiter, journal, owns)
        return self._state

    async def _on_shutdown(self, _state: object) -> None:
        state, self._state = self._state, None
        if state is None:
            return
        with anyio.CancelScope(shield=True):
            gateway = state.policy
            gateways = (
                [r.gateway for r in gateway.routes]
                if isinstance(gateway, FallbackPolicy)
                else [gateway]
            )
            for gw in gateways:
                close = getattr(gw, "aclose", None)
                if close is not None:
                    await close()
            if state.owns_journal:
                await state.journal.aclose()
            await state.redis.aclose()
        await self.aclose()

    async def _run_chunk(
        self, job_id: str, run: int, index: int, rows: dict[str, Any], attempt: int = 0
    ) -> None:
        """The task: settle one chunk's rows, then return (the broker acknowledges after)."""
        state = await self._worker_state()
        keys = JobKeys(self.name, job_id, run)
        redis = state.redis
        if await redis.sismember(keys.done, str(index)):
            return  # delivered again after it settled: nothing to do
        messages = decode_rows(rows)
        if await redis.hget(keys.meta, "cancelled"):
            await self._settle(state, keys, index, _cancelled_report(job_id, messages))
            return
        try:
            report = await self._dispatch(state, keys, index, messages)
        except Exception as exc:
            if attempt + 1 < self.max_attempts:
                await anyio.sleep(self.retry_delay * 2**attempt)
                await self.task.kiq(job_id, run, index, rows, attempt + 1)
                return
            report = _broken_report(job_id, messages, exc)
        await self._settle(state, keys, index, report)

    async def _dispatch(
        self, state: _WorkerState, keys: JobKeys, index: int, messages: list[Message]
    ) -> BulkReport:
        latest: list[Progress] = []
        stop = anyio.Event()
        dispatcher = BulkDispatcher(
            state.policy,
            rate_limit=state.limiter,
            concurrency=self.concurrency,
            journal=state.journal,
            on_progress=latest.append,
            progress_interval=self.progress_interval,
            **self.dispatcher_options,
        )
        extra: dict[str, Any] = {"stop": stop} if _supports_stop() else {}

        async def publish() -> None:
            first = True
            while True:
                await anyio.sleep(self.progress_interval)
                if latest:
                    progress = latest[-1]
                    latest.clear()
                    await state.redis.hset(keys.live, str(index), live_value(progress))
                    if first:  # a job that never ends must not leave this key forever
                        await state.redis.expire(keys.live, JOB_TTL)
                        first = False
                if extra and await state.redis.hget(keys.meta, "cancelled"):
                    stop.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(publish)
            report = await dispatcher.run(messages, keys.job_id, total=len(messages), **extra)
            tg.cancel_scope.cancel()
        if report.total < len(messages):
            # Stopped before reading the whole chunk: the rows never read were not sent
            # either; the job's report must still count them.
            report = _add_unread(report, messages[report.total :])
        return report

    async def _settle(
        self, state: _WorkerState, keys: JobKeys, index: int, report: BulkReport
    ) -> None:
        pairs = chunk_counts(report)
        args: list[Any] = [index, JOB_TTL, self.max_failures, len(pairs)]
        for field, value in pairs:
            args += [field, value]
        args += [encode_failure(o) for o in report.failures[: self.max_failures]]
        # The rows are settled in the journal already; only the job's counts are left to
        # write. A Redis hiccup must not lose them (the task is acknowledged after this).
        for attempt in range(self.max_attempts):
            try:
                await state.finish(keys=keys.finish_keys(), args=args)
                return
            except Exception:
                if attempt + 1 >= self.max_attempts:
                    raise
                await anyio.sleep(self.retry_delay * 2**attempt)


def _open_journal(
    journal: str | os.PathLike[str] | Journal, concurrency: int
) -> tuple[Journal, bool]:
    if isinstance(journal, Journal):
        return journal, False
    path = os.fspath(journal)
    if path.startswith(_POSTGRES_SCHEMES):
        try:
            from ..postgres import PostgresJournal  # type: ignore[import-not-found,unused-ignore]
        except ImportError as exc:
            raise ConfigurationError(
                "a PostgreSQL journal needs smsgate.postgres: "
                "pip install '.[postgres]' (in a checkout of smsgate)"
            ) from exc
        # Each chunk claims and records from up to `concurrency` tasks: a pool much smaller
        # than that makes them queue for a connection between the limiter's grant and the
        # request, which bunches requests at the provider.
        built: Journal = PostgresJournal(path, pool_size=max(4, min(concurrency, 32)))
        return built, True
    from ..dispatch import SqliteJournal

    return SqliteJournal(path.removeprefix("sqlite:///")), True


def _all_failed(
    job_id: str, messages: list[Message], status: Any, error: Exception, reason: str | None
) -> BulkReport:
    outcomes = tuple(
        Outcome(message=m, status=status, error=error, reason=reason)  # type: ignore[arg-type]
        for m in messages
    )
    counts = {"sent": 0, "failed": 0, "unknown": 0, "skipped": 0}
    counts[status] = len(messages)
    return BulkReport(
        total=len(messages),
        requests=0,
        elapsed=0.0,
        errors={type(error).__name__: len(messages)},
        failures=outcomes,
        job_id=job_id,
        sent=counts["sent"],
        failed=counts["failed"],
        unknown=counts["unknown"],
        skipped=counts["skipped"],
    )


def _add_unread(report: BulkReport, unread: list[Message]) -> BulkReport:
    error = JobStoppedError("the job was cancelled before this row was read")
    errors = dict(report.errors)
    errors[type(error).__name__] = errors.get(type(error).__name__, 0) + len(unread)
    extra = tuple(
        Outcome(message=m, status="failed", error=error, reason="cancelled") for m in unread
    )
    return attrs.evolve(
        report,
        total=report.total + len(unread),
        failed=report.failed + len(unread),
        errors=errors,
        failures=report.failures + extra,
    )


def _cancelled_report(job_id: str, messages: list[Message]) -> BulkReport:
    error = JobStoppedError("the job was cancelled before this chunk started")
    return _all_failed(job_id, messages, "failed", error, "cancelled")


def _broken_report(job_id: str, messages: list[Message], exc: Exception) -> BulkReport:
    from ..exceptions import OutcomeUnknownError

    error = OutcomeUnknownError(
        f"the chunk's run kept failing ({type(exc).__name__}: {str(exc)[:200]}); "
        "its rows may be partly sent: reconcile them from the journal"
    )
    return _all_failed(job_id, messages, "unknown", error, "chunk failed")
