"""``smsgate worker``, ``smsgate bulk FILE --queue URL`` and ``smsgate job status|cancel``:
the real command as a worker process, a Redis stream or RabbitMQ as the queue, Redis, the
fake provider on loopback."""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from smsgate.testing import FakeProvider, LoopbackServer
from tests._services import redis_url, require

from ._helpers import assert_no_secret, env_for, invoke, write_csv
from ._process import smsgate_process

AMQP = "amqp://guest:guest@127.0.0.1:5672/"

pytestmark = [pytest.mark.loopback]


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[dict[str, str]]:
    """Addresses and a queue name of this test's own; its Redis keys and RabbitMQ queue
    are deleted afterwards."""
    name = f"cli{uuid.uuid4().hex[:10]}"
    values = {
        "amqp": require("RabbitMQ", AMQP),
        "redis": redis_url(),
        "journal": str(tmp_path / "journal.sqlite"),
        "name": name,
    }
    yield values
    import redis

    client = redis.Redis.from_url(values["redis"])
    try:
        keys = list(client.scan_iter(match=f"*{name}*"))
        if keys:
            client.delete(*keys)
    finally:
        client.close()

    async def drop() -> None:
        import aio_pika

        connection = await aio_pika.connect(AMQP)
        async with connection:
            channel = await connection.channel()
            await channel.queue_delete(f"smsgate.{name}")

    anyio.run(drop)


def _status(setup: dict[str, str], job_id: str) -> dict[str, object]:
    result = invoke(
        ["job", "status", job_id, "--redis", setup["redis"], "--name", setup["name"], "--json"]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert isinstance(data, dict)
    return data


@pytest.mark.parametrize("broker", ["redis", "amqp"])
def test_bulk_to_a_worker_and_status(
    served: tuple[FakeProvider, LoopbackServer],
    setup: dict[str, str],
    tmp_path: Path,
    broker: str,
) -> None:
    """API.md §9's form: ``smsgate bulk FILE.csv --queue REDIS_URL --journal DSN`` (and the
    same on RabbitMQ)."""
    fake, server = served
    numbers = [f"0912{i:07d}" for i in range(60)]
    csv = write_csv(tmp_path / "rows.csv", [f"{n},hello {i % 2}" for i, n in enumerate(numbers)])
    # A Redis queue's own Redis is the default for the limiter and progress.
    common = ["--journal", setup["journal"]]
    if broker == "amqp":
        common += ["--redis", setup["redis"]]
    worker = [
        "worker",
        "--queue",
        setup[broker],
        *common,
        "--rate",
        "200",
        "--name",
        setup["name"],
        # The advertising hours (08:00-23:00 Tehran) would hold a run at night.
        "--send-window",
        "off",
    ]
    with smsgate_process(worker, env=env_for(server)) as child:
        submitted = invoke(
            [
                "bulk",
                str(csv),
                "--queue",
                setup[broker],
                *common,
                "--queue-name",
                setup["name"],
                "--job-id",
                "cli-job",
                "--chunk-size",
                "25",
                "--no-wait",
            ],
            env=env_for(server),
        )
        assert submitted.exit_code == 0, submitted.output
        assert "smsgate job status cli-job" in submitted.stderr
        deadline = time.monotonic() + 90
        status = _status(setup, "cli-job")
        while not status["finished"]:
            if time.monotonic() > deadline:
                child.process.terminate()
                child.finish(timeout=30)
                raise AssertionError(f"{status}; the worker said: {child.stderr[-3000:]}")
            time.sleep(0.2)
            status = _status(setup, "cli-job")
    assert status["total"] == status["sent"] == status["done"] == 60
    assert Counter(e.recipient for e in fake.ledger).most_common(1)[0][1] == 1
    assert len(fake.ledger) == 60
    table = invoke(["job", "status", "cli-job", "--redis", setup["redis"], "--name", setup["name"]])
    assert table.exit_code == 0 and "60" in table.stdout
    assert_no_secret(table)
    # A finished job cannot be cancelled; an unknown one is an error with a message.
    done = invoke(["job", "cancel", "cli-job", "--redis", setup["redis"], "--name", setup["name"]])
    assert done.exit_code == 1 and "already finished" in done.stderr
    missing = invoke(["job", "status", "nope", "--redis", setup["redis"], "--name", setup["name"]])
    assert missing.exit_code == 1 and "no job 'nope'" in missing.stderr


def test_bulk_queue_needs_a_journal_and_a_broker_url(
    served: tuple[FakeProvider, LoopbackServer], tmp_path: Path
) -> None:
    _, server = served
    csv = write_csv(tmp_path / "rows.csv", ["09121111111,hi"])
    no_journal = invoke(["bulk", str(csv), "--queue", AMQP], env=env_for(server))
    assert no_journal.exit_code == 2 and "--journal" in no_journal.output
    wrong = invoke(
        ["bulk", str(csv), "--queue", "kafka://127.0.0.1", "--journal", "j.sqlite"],
        env=env_for(server),
    )
    assert wrong.exit_code == 2 and "a Redis URL (redis://" in wrong.output
