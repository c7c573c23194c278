"""One bulk job on one, two and three taskiq workers (API.md §9), against the loopback fake.

Each run starts N ``taskiq worker tests.taskiq._worker_app:broker`` processes (a Redis
stream, or RabbitMQ with ``--broker amqp``; the shared Redis limiter, one SQLite journal),
submits a job and times it from the first to the last request at the fake. Two kinds of run:

* ``throughput``: a rate limit far above what the machine can do; recipients/s and
  requests/s as the fake counted them.
* ``limiter``: a rate limit the workers can exceed together; the achieved rate, and the
  worst 1 s window of the limiter's grants (stamped on the Redis server's clock) and of the
  arrivals at the fake (a process of its own, stamping each POST as it comes in).

``--rss`` measures the submitter alone: peak RSS of a fresh process submitting 100,000 and
1,000,000 rows from a generator to a broker that drops the tasks.

    uv run python -m benchmarks.workers                 # ~4 min
    uv run python -m benchmarks.workers --quick
    uv run python -m benchmarks.workers --rss
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import anyio

import smsgate
from tests._services import REDIS_URL
from tests.taskiq import _e2e


async def _submit_and_wait(env: dict[str, str], rows: list[tuple[str, str]]) -> Any:
    from smsgate.taskiq import BulkQueue
    from tests.taskiq._worker_app import make_broker, make_gateway

    broker = make_broker(env)
    queue = BulkQueue(
        broker,
        gateway=make_gateway,
        journal=env["SMSGATE_E2E_JOURNAL"],
        rate_limit=smsgate.RateLimit(float(env["SMSGATE_E2E_RATE"])),
        redis=env["SMSGATE_E2E_REDIS"],
        chunk_size=int(env["SMSGATE_E2E_CHUNK"]),
        name=env["SMSGATE_E2E_NAME"],
    )
    await broker.startup()
    try:
        job = await queue.submit(
            (smsgate.Message(to=to, text=text) for to, text in rows), job_id="bench"
        )
        with anyio.fail_after(600):
            report = await job.wait(poll=0.2)
        raw = await queue._redis().lrange(env["SMSGATE_E2E_STAMPS"], 0, -1)
        return report, sorted(float(g) for g in raw)
    finally:
        await broker.shutdown()
        await queue.aclose()


def run_once(
    workers: int, recipients: int, rate: float, distinct_every: int, broker: str = "redis"
) -> dict[str, Any]:
    with _e2e.fake_process() as url, tempfile.TemporaryDirectory() as tmp:
        env = _e2e.settings(
            fake_url=url,
            redis=REDIS_URL,
            journal=str(Path(tmp) / "journal.sqlite"),
            rate=rate,
            chunk=500,
            concurrency=16,
        )
        env["SMSGATE_E2E_STAMPS"] = f"{env['SMSGATE_E2E_NAME']}:grants"
        env["SMSGATE_E2E_BROKER"] = broker
        procs = [_e2e.start_worker(env, Path(tmp) / f"w{i}.log") for i in range(workers)]
        try:
            rows = _e2e.messages(recipients, distinct_every=distinct_every)
            report, grants = anyio.run(_submit_and_wait, env, rows)
        finally:
            for proc in procs:
                _e2e.stop(proc)
            _cleanup(env)
        times, ledger = _e2e.fake_ledger(url)
    span = times[-1] - times[0] if len(times) > 1 else float("nan")
    if len(ledger) != recipients or report.sent != recipients:
        raise SystemExit(f"run lost rows: ledger {len(ledger)}, report {report.summary()}")
    return {
        "recipients/s": len(ledger) / span,
        "requests/s": len(times) / span,
        "requests": len(times),
        "grants worst 1 s": _e2e.worst_window(grants),
        "arrivals worst 1 s": _e2e.worst_window(times),
        "achieved / rate": (len(times) - 1) / span / rate,
    }


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


_RSS_CHILD = """
import sys, anyio, smsgate
from taskiq.abc.broker import AsyncBroker
from smsgate.taskiq import BulkQueue

class Sink(AsyncBroker):
    kicked = 0
    async def kick(self, message):
        Sink.kicked += 1
    def listen(self):
        raise NotImplementedError

count = int(sys.argv[1])
queue = BulkQueue(Sink(), gateway=lambda: None, journal="unused.sqlite",
                  rate_limit=smsgate.RateLimit(1), redis=sys.argv[2], name="rss" + sys.argv[1])

async def main():
    rows = (smsgate.Message(to=f"0912{i:07d}", text=f"hello {i % 50}") for i in range(count))
    job = await queue.submit(rows, job_id="rss")
    progress = await job.progress()
    assert progress.total == count, progress
    await queue._redis().delete(*[k async for k in queue._redis().scan_iter(match="*rss*")])
    await queue.aclose()

anyio.run(main)
hwm = next(l for l in open("/proc/self/status") if l.startswith("VmHWM")).split()[1]
print(Sink.kicked, int(hwm) // 1024)
"""


def rss() -> None:
    print("| rows submitted | tasks enqueued | peak RSS (VmHWM) |")
    print("| --- | --- | --- |")
    for count in (100_000, 1_000_000):
        out = subprocess.run(
            [sys.executable, "-c", _RSS_CHILD, str(count), REDIS_URL],
            capture_output=True,
            text=True,
            check=True,
            timeout=900,
        ).stdout.split()
        print(f"| {count:,} | {int(out[0]):,} | {out[1]} MB |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller counts, one repetition")
    parser.add_argument("--rss", action="store_true", help="the submitter's peak RSS only")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument(
        "--rows", nargs="+", choices=["throughput", "limiter"], default=["throughput", "limiter"]
    )
    parser.add_argument("--rate", type=float, default=100.0, help="the limiter row's rate")
    parser.add_argument(
        "--broker", choices=["redis", "amqp"], default="redis", help="the queue the workers share"
    )
    args = parser.parse_args()
    if args.rss:
        rss()
        return
    repeat = 1 if args.quick else args.repeat
    plans = [
        ("throughput", 10_000 if not args.quick else 4_000, 100_000.0, 10),
        ("limiter", 3_000 if not args.quick else 1_500, args.rate, 1),
    ]
    plans = [plan for plan in plans if plan[0] in args.rows]
    print(
        "| run | workers | recipients/s | requests/s | achieved / rate | worst 1 s: grants "
        "(Redis clock) | worst 1 s: arrivals (fake) |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for kind, recipients, rate, distinct_every in plans:
        results: dict[int, list[dict[str, Any]]] = {1: [], 2: [], 3: []}
        for _ in range(repeat):
            for workers in (1, 2, 3):  # interleaved
                results[workers].append(
                    run_once(workers, recipients, rate, distinct_every, args.broker)
                )
        for workers, runs in results.items():

            def med(key: str, runs: list[dict[str, Any]] = runs) -> float:
                return statistics.median(r[key] for r in runs)

            limit = "—" if kind == "throughput" else f"{med('achieved / rate'):.3f}"
            worst_g = "—" if kind == "throughput" else f"{max(r['grants worst 1 s'] for r in runs)}"
            worst_a = (
                "—" if kind == "throughput" else f"{max(r['arrivals worst 1 s'] for r in runs)}"
            )
            rate_text = "" if kind == "throughput" else f" at {rate:g} req/s"
            print(
                f"| {kind}{rate_text}, {recipients:,} recipients | {workers} | "
                f"{med('recipients/s'):,.0f} | {med('requests/s'):,.0f} | {limit} | "
                f"{worst_g} | {worst_a} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
