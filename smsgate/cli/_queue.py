"""Bulk jobs on taskiq workers (API.md §9): ``smsgate worker``, ``smsgate job status|cancel``,
and the ``--queue`` path of ``smsgate bulk``.

The broker is a Redis stream (``redis://`` URL, :class:`~smsgate.taskiq.ReclaimingRedisBroker`)
or RabbitMQ (``amqp://`` URL, taskiq-aio-pika); the shared limiter and the jobs' progress
live in Redis. Every process of one setup must agree on ``--name`` (the queue
``smsgate.<name>`` and the Redis key prefix), on the broker and on Redis. Needs the
``taskiq`` extra.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
import click

from .._models import Message
from ._app import cli
from ._bulk import _send_window
from ._context import EXIT_ERROR, EXIT_PARTIAL, handled, settings, state
from ._render import print_report, progress_bar

if TYPE_CHECKING:
    from ..dispatch import BulkReport
    from ..taskiq import BulkQueue, JobHandle

__all__ = ["default_redis", "job", "submit_to_queue", "worker"]

FC = TypeVar("FC", bound=Callable[..., Any])

ENV_QUEUE = "SMSGATE_QUEUE"
ENV_REDIS = "SMSGATE_REDIS"
DEFAULT_REDIS = "redis://127.0.0.1:6379/0"
_REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


def default_redis(queue_url: str) -> str:
    """The Redis for the limiter and progress when none is named: the queue's own Redis
    if the queue is a Redis stream, else the local default."""
    return queue_url if queue_url.startswith(_REDIS_SCHEMES) else DEFAULT_REDIS


def _redis_option(*, from_queue: bool = False) -> Callable[[FC], FC]:
    if from_queue:
        return click.option(
            "--redis",
            envvar=ENV_REDIS,
            help=f"Redis URL: the shared rate limit and the jobs' progress (or ${ENV_REDIS}; "
            f"default: the queue's own Redis, else {DEFAULT_REDIS}).",
        )
    return click.option(
        "--redis",
        envvar=ENV_REDIS,
        default=DEFAULT_REDIS,
        show_default=True,
        help=f"Redis URL: the shared rate limit and the jobs' progress (or ${ENV_REDIS}).",
    )


def _name_option() -> Callable[[FC], FC]:
    return click.option(
        "--name",
        default="smsgate",
        show_default=True,
        help="The queue's name; the submitter, the workers and 'job status' must agree.",
    )


def build_queue(
    *,
    broker_url: str,
    redis: str,
    journal: str,
    name: str,
    rate: float | None,
    chunk_size: int = 500,
    concurrency: int = 32,
    worker: bool = False,
    send_window: str = "auto",
    reclaim_after: float = 30.0,
) -> tuple[Any, BulkQueue]:
    """The taskiq broker for ``broker_url`` and the :class:`BulkQueue` on it. The gateway
    comes from this command's settings (environment or config file), built once per worker
    process."""
    import smsgate
    from smsgate.taskiq import BulkQueue

    broker = _broker(broker_url, name, reclaim_after)
    account = settings() if worker else None
    limit = smsgate.RateLimit(rate if rate else 1_000_000)

    def make_gateway() -> Any:
        if account is None:  # pragma: no cover - the submitter never runs a chunk
            raise RuntimeError("the submitter has no gateway")
        return account.gateway()

    queue = BulkQueue(
        broker,
        gateway=make_gateway,
        journal=journal,
        rate_limit=limit,
        redis=redis,
        chunk_size=chunk_size,
        concurrency=concurrency,
        name=name,
        dispatcher_options={"send_window": _send_window(send_window)},
    )
    return broker, queue


def _broker(url: str, name: str, reclaim_after: float) -> Any:
    queue_name = f"smsgate.{name}"
    try:
        if url.startswith(_REDIS_SCHEMES):
            from smsgate.taskiq import ReclaimingRedisBroker

            return ReclaimingRedisBroker(url, queue_name, idle_timeout=reclaim_after)
        if url.startswith(("amqp://", "amqps://")):
            from taskiq_aio_pika import AioPikaBroker
            from taskiq_aio_pika.queue import Queue

            return AioPikaBroker(url, qos=1).with_queue(Queue(name=queue_name))
    except ImportError:
        raise click.UsageError(
            "this needs the taskiq extra: pip install '.[taskiq]' (in a checkout of smsgate)"
        ) from None
    raise click.BadParameter(
        "the queue must be a Redis URL (redis://host:6379/0) or a RabbitMQ URL "
        "(amqp://user:password@host:5672/)",
        param_hint="--queue",
    )


def _progress_dict(progress: Any) -> dict[str, Any]:
    fields = ("job_id", "total", "read", "done", "sent", "failed", "unknown", "skipped")
    out = {field: getattr(progress, field) for field in fields}
    out.update(
        requests=progress.requests,
        in_flight=progress.in_flight,
        elapsed=round(progress.elapsed, 3),
        rate=round(progress.rate, 1),
        finished=progress.final,
    )
    return out


# -- smsgate bulk FILE --queue URL -------------------------------------------------------------


def submit_to_queue(
    rows: Iterator[Message],
    *,
    total: int,
    job_id: str,
    queue_url: str,
    redis: str,
    journal: str,
    name: str,
    chunk_size: int,
    show_progress: bool | None,
    wait: bool,
) -> None:
    """``smsgate bulk FILE --queue URL``: enqueue the rows, then follow the job in Redis
    (progress bar) until every chunk has settled, unless ``wait`` is false."""
    current = state()
    broker, queue = build_queue(
        broker_url=queue_url,
        redis=redis,
        journal=journal,
        name=name,
        rate=None,
        chunk_size=chunk_size,
    )

    async def run() -> BulkReport | None:
        await broker.startup()
        try:
            handle = await queue.submit(rows, job_id=job_id)
        finally:
            await broker.shutdown()
        try:
            current.err.print(
                f"job {job_id!r} (run {handle.run}) queued: {total:,} rows in chunks of "
                f"{chunk_size}; follow it with: smsgate job status {job_id}"
            )
            if not wait:
                return None
            with progress_bar(current.err, total, show=show_progress) as on_progress:
                while True:
                    progress = await handle.progress()
                    on_progress(progress)
                    if progress.final:
                        break
                    await anyio.sleep(0.5)
            return await handle.report()
        finally:
            await queue.aclose()

    report = anyio.run(run)
    if report is None:
        return
    print_report(current.out, report)
    if report.failed or report.unknown:
        raise SystemExit(EXIT_PARTIAL)


# -- smsgate worker ----------------------------------------------------------------------------


@cli.command()
@click.option(
    "--queue",
    "queue_url",
    envvar=ENV_QUEUE,
    required=True,
    help="The broker: a Redis URL (redis://host:6379/0, a stream) or a RabbitMQ URL "
    f"(amqp://user:password@host:5672/) (or ${ENV_QUEUE}).",
)
@_redis_option(from_queue=True)
@click.option(
    "--journal",
    envvar="SMSGATE_JOURNAL",
    required=True,
    help="The journal every worker shares: postgresql://... (several machines) or an "
    "SQLite file (workers on this machine).",
)
@click.option(
    "--rate",
    type=click.FloatRange(min=0, min_open=True),
    required=True,
    help="Requests per second for the account, all workers together.",
)
@click.option("--concurrency", type=click.IntRange(min=1), default=32, show_default=True)
@click.option(
    "--send-window",
    default="auto",
    show_default=True,
    help="Hours requests may start, e.g. 08:00-23:00 (Tehran time); 'auto' applies the "
    "advertising hours on ippanel lines, 'off' none. Outside it the worker's chunk waits.",
)
@click.option(
    "--reclaim-after",
    type=click.FloatRange(min=2, max=86_400),
    default=30.0,
    show_default=True,
    help="Redis queue only: seconds of silence after which a worker's chunk is handed to "
    "another (a killed worker's chunk comes back after this long).",
)
@_name_option()
@handled
def worker(
    queue_url: str,
    redis: str | None,
    journal: str,
    rate: float,
    concurrency: int,
    send_window: str,
    reclaim_after: float,
    name: str,
) -> None:
    """Run one worker for bulk jobs submitted with 'smsgate bulk FILE --queue URL'.

    Start as many as you like, on any machine that reaches the broker, Redis, the journal
    and the provider; they share the account's rate. Stop with Ctrl-C (SIGINT) or SIGTERM:
    the chunk being sent is finished first. A worker killed outright loses nothing: its
    chunk goes to another worker, which never sends a row twice.
    """
    current = state()
    broker, queue = build_queue(
        broker_url=queue_url,
        redis=redis or default_redis(queue_url),
        journal=journal,
        name=name,
        rate=rate,
        concurrency=concurrency,
        worker=True,
        send_window=send_window,
        reclaim_after=reclaim_after,
    )
    current.err.print(
        f"worker {os.getpid()}: queue smsgate.{name}, {rate:g} requests/s for all workers, "
        f"{concurrency} in flight"
    )

    async def run() -> None:
        from taskiq.api import run_receiver_task

        broker.is_worker_process = True  # startup() opens the consuming side only then
        await broker.startup()
        try:
            await run_receiver_task(broker, run_startup=False, max_async_tasks=4)
        finally:
            with anyio.CancelScope(shield=True):
                await queue._on_shutdown(None)
                await broker.shutdown()

    import signal

    async def main() -> None:
        async with anyio.create_task_group() as tg:

            async def on_signals() -> None:
                with anyio.open_signal_receiver(signal.SIGTERM) as signals:
                    async for _ in signals:
                        tg.cancel_scope.cancel()

            tg.start_soon(on_signals)
            await run()
            tg.cancel_scope.cancel()

    anyio.run(main)


# -- smsgate job status|cancel -----------------------------------------------------------------


@cli.group()
def job() -> None:
    """Jobs submitted to workers: read their progress from Redis, from any machine."""


async def _open(redis: str, job_id: str, name: str) -> JobHandle:
    from ..taskiq import open_job

    return await open_job(redis, job_id, name=name)


@job.command("status")
@click.argument("job_id")
@_redis_option()
@_name_option()
@click.option("--json", "as_json", is_flag=True, help="One JSON object instead of a table.")
@click.option("--wait", is_flag=True, help="Follow the job with a progress bar until it ends.")
@handled
def status(job_id: str, redis: str, name: str, as_json: bool, wait: bool) -> None:
    """Progress of JOB_ID (and its report once every chunk has settled)."""
    current = state()

    async def read() -> tuple[Any, BulkReport | None]:
        async with await _open(redis, job_id, name) as handle:
            progress = await handle.progress()
            if wait and not progress.final:
                total = progress.total or progress.read
                with progress_bar(current.err, total, show=None) as on_progress:
                    while not progress.final:
                        on_progress(progress)
                        await anyio.sleep(0.5)
                        progress = await handle.progress()
            report = await handle.report() if progress.final else None
            return progress, report

    progress, report = anyio.run(read)
    if as_json:
        current.out.print_json(json.dumps(_progress_dict(progress)))
    elif report is not None:
        print_report(current.out, report)
    else:
        p = progress
        total = f"{p.total:,}" if p.total is not None else f"{p.read:,} read so far"
        current.out.print(
            f"job {job_id!r}: {p.done:,} of {total} done: sent {p.sent:,}, failed "
            f"{p.failed:,}, unknown {p.unknown:,}, skipped {p.skipped:,}; {p.requests:,} "
            f"requests, {p.in_flight} in flight, {p.rate:,.0f} rows/s"
        )
    if report is not None and (report.failed or report.unknown):
        raise SystemExit(EXIT_PARTIAL)


@job.command("cancel")
@click.argument("job_id")
@_redis_option()
@_name_option()
@handled
def cancel(job_id: str, redis: str, name: str) -> None:
    """Stop JOB_ID: chunks not started are settled without sending (a rerun sends them)."""

    async def run() -> bool:
        async with await _open(redis, job_id, name) as handle:
            if await handle.finished():
                return False
            await handle.cancel()
            return True

    if not anyio.run(run):
        state().fail(f"job {job_id!r} has already finished", code=EXIT_ERROR)
    state().out.print(f"job {job_id!r}: cancelled")
