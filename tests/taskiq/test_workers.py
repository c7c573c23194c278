"""End to end (issue 15, "Done when"): the fake provider on 127.0.0.1, taskiq workers on
a Redis stream or RabbitMQ, the shared Redis limiter, one journal; one worker SIGKILLed
mid-chunk and another started. The fake's ledger is the judge: nobody accepted twice, every
row accounted for, the shared rate held in every 1 s window at the server."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

import smsgate
from smsgate.taskiq._job import live_workers
from tests._services import postgres_dsn, redis_url, require

from . import _e2e

pytestmark = [pytest.mark.slow, pytest.mark.loopback]

RECIPIENTS = 20_000
RATE = 100  # requests/s for all workers together
# Requests per 1 s window that grant-to-arrival jitter may bunch: 30 % here, because the
# suite runs other tests on the other core meanwhile (measured alone: 101-103 at rate 100;
# in the parallel suite 106 and 112). It still catches a limiter that is not shared (each of
# three workers at the full rate gives about 3x).
TRANSIT = 30


@pytest.fixture
def fake() -> Iterator[str]:
    """The fake provider in a process of its own; its URL."""
    with _e2e.fake_process() as url:
        yield url


def _cleanup(env: dict[str, str]) -> None:
    import redis

    client = redis.Redis.from_url(env["SMSGATE_E2E_REDIS"])
    try:
        keys = list(client.scan_iter(match=f"*{env['SMSGATE_E2E_NAME']}*"))
        client.delete(*keys, env["SMSGATE_E2E_QUEUE"])
    finally:
        client.close()
    if env.get("SMSGATE_E2E_BROKER") == "redis":
        return

    async def drop_queue() -> None:
        import aio_pika

        connection = await aio_pika.connect(env["SMSGATE_E2E_AMQP"])
        async with connection:
            channel = await connection.channel()
            await channel.queue_delete(env["SMSGATE_E2E_QUEUE"])

    anyio.run(drop_queue)


def _group_of(pid: int) -> int | None:
    """The process group of a worker process (its ``taskiq worker`` command's pid)."""
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None


def _journal(kind: str, tmp_path: Path) -> str:
    if kind == "sqlite":
        return str(tmp_path / "journal.sqlite")
    return postgres_dsn()


async def _submit(env: dict[str, str], rows: list[tuple[str, str]]) -> Any:
    from smsgate.taskiq import BulkQueue

    from ._worker_app import make_broker, make_gateway

    broker = make_broker(env)
    queue = BulkQueue(
        broker,
        gateway=make_gateway,  # called in the workers only
        journal=env["SMSGATE_E2E_JOURNAL"],
        rate_limit=smsgate.RateLimit(float(env["SMSGATE_E2E_RATE"])),
        redis=env["SMSGATE_E2E_REDIS"],
        chunk_size=int(env["SMSGATE_E2E_CHUNK"]),
        name=env["SMSGATE_E2E_NAME"],
    )
    await broker.startup()
    try:
        job = await queue.submit(
            (smsgate.Message(to=to, text=text) for to, text in rows),
            job_id=f"e2e-{env['SMSGATE_E2E_NAME']}",  # unique: a PostgreSQL journal is shared
        )
    finally:
        await broker.shutdown()
    return queue, job


@pytest.mark.parametrize(("journal_kind", "broker"), [("sqlite", "amqp"), ("postgres", "redis")])
def test_three_workers_one_killed_nobody_twice(
    fake: str, tmp_path: Path, journal_kind: str, broker: str
) -> None:
    url = fake
    if broker == "amqp":
        assert require("RabbitMQ", _e2e.AMQP_URL)
    env = _e2e.settings(
        fake_url=url,
        redis=redis_url(),
        journal=_journal(journal_kind, tmp_path),
        rate=RATE,
        chunk=500,
    )
    env["SMSGATE_E2E_STAMPS"] = f"{env['SMSGATE_E2E_NAME']}:grants"
    # On Redis, the killed worker's chunk comes back once it has been silent this long.
    env.update(SMSGATE_E2E_BROKER=broker, SMSGATE_E2E_RECLAIM="3")
    rows = _e2e.messages(RECIPIENTS)
    workers = [_e2e.start_worker(env, tmp_path / f"worker{i}.log") for i in range(3)]
    grants: list[float] = []
    went_on: list[float] = []
    try:

        async def run() -> tuple[smsgate.BulkReport, smsgate.Progress]:
            queue, job = await _submit(env, rows)
            try:
                # Once the job is well under way, kill a worker that is mid-chunk: Redis
                # says which process runs which chunk and how many of its rows are done.
                with anyio.fail_after(120):
                    while (await job.progress()).done < RECIPIENTS // 4:  # noqa: ASYNC110 - another process
                        await anyio.sleep(0.05)
                    victim = None
                    while victim is None:
                        live = await queue._redis().hgetall(job.keys.live)
                        for _host, pid, done in live_workers(live).values():
                            group = _group_of(pid)
                            if 50 <= done <= 400 and group in {w.pid for w in workers}:
                                victim = next(w for w in workers if w.pid == group)
                                break
                        else:
                            await anyio.sleep(0.02)
                _e2e.kill(victim)
                workers.append(_e2e.start_worker(env, tmp_path / "worker3.log"))
                with anyio.fail_after(240):
                    report = await job.wait(poll=0.2)
                raw = await queue._redis().lrange(env["SMSGATE_E2E_STAMPS"], 0, -1)
                grants.extend(sorted(float(g) for g in raw))
                raw = await queue._redis().lrange(env["SMSGATE_E2E_STAMPS"] + ":local", 0, -1)
                went_on.extend(sorted(float(g) for g in raw))
                return report, await job.progress()
            finally:
                await queue.aclose()

        report, progress = anyio.run(run)
    finally:
        for proc in workers:
            _e2e.stop(proc)
        logs = "\n".join(p.read_text(errors="replace")[-2000:] for p in tmp_path.glob("*.log"))
        _cleanup(env)

    times, ledger = _e2e.fake_ledger(url)
    accepted = Counter(recipient for recipient, _ in ledger)
    twice = {number: n for number, n in accepted.items() if n > 1}
    assert twice == {}, f"sent twice: {list(twice.items())[:5]}"
    # The report adds up to the input.
    assert report.total == RECIPIENTS, logs
    assert report.sent + report.failed + report.unknown + report.skipped == RECIPIENTS
    assert progress.final and progress.done == RECIPIENTS
    # The killed worker was mid-chunk: its chunk came back, and the rows it had sent were
    # skipped (or, in flight, reported unknown), not sent again.
    assert report.skipped + report.unknown > 0
    # Every recipient: accepted once, or reported unknown/failed; never silently lost.
    doubtful = {o.recipient or o.message.to for o in report.failures}
    inputs = {smsgate.normalize_msisdn(to) for to, _ in rows}
    assert inputs <= set(accepted) | doubtful
    assert not (set(accepted) - inputs)
    assert len(ledger) >= report.sent + report.skipped
    assert len(ledger) <= report.sent + report.skipped + report.unknown
    # The shared rate, on the Redis server's clock: every grant of the shared limiter is
    # stamped there (one clock, one thread): no 1 s window holds more than rate + burst.
    assert len(grants) >= report.requests
    worst_grants = _e2e.worst_window(grants)
    assert worst_grants <= RATE + 1, f"worst 1 s window of grants: {worst_grants}"
    # ...and at the fake provider (a process of its own, stamping each POST as it comes
    # in), where the contract wants it. Between a grant and its arrival lie the worker's
    # event loop, loopback HTTP and the fake's own loop, a few milliseconds that vary from
    # request to request on this shared 2-core machine: TRANSIT allows for that much
    # bunching (before the dispatcher claimed rows ahead of the grant, and with the fake
    # inside the test's process: 110-127). The contract's rate + burst (101) is not held
    # strictly at the fake: see benchmarks/README.md.
    worst = _e2e.worst_window(times)
    assert worst <= RATE + 1 + TRANSIT, f"worst 1 s window at the fake: {worst} requests"
    print(
        f"\ne2e: {RECIPIENTS} recipients, {len(ledger)} accepted, {len(twice)} twice, "
        f"{report.summary()}; worst 1 s window: grants {worst_grants}, "
        f"acquire() returned {_e2e.worst_window(went_on)}, arrivals {worst} "
        f"(rate {RATE}); per second: {_e2e.per_second(times)}"
    )
