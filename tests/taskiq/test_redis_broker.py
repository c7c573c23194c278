"""ReclaimingRedisBroker on the real Redis: one task held at a time, acknowledged tasks gone
from the stream, a silent worker's task handed to another without any new task arriving, and
a live worker's heartbeat keeping its task."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from taskiq import BrokerMessage

from smsgate.exceptions import ConfigurationError
from smsgate.taskiq import ReclaimingRedisBroker
from tests._services import redis_url


@pytest.fixture
def stream() -> Iterator[str]:
    """A stream key of this test's own, deleted afterwards."""
    import redis

    url = redis_url()
    name = f"smsgate.test.{uuid.uuid4().hex[:10]}"
    yield name
    client = redis.Redis.from_url(url)
    try:
        client.delete(name)
    finally:
        client.close()


async def _broker(stream: str, **kwargs: Any) -> ReclaimingRedisBroker:
    broker = ReclaimingRedisBroker(redis_url(), stream, **kwargs)
    broker.is_worker_process = True
    await broker.startup()
    return broker


async def _kick(broker: ReclaimingRedisBroker, *payloads: bytes) -> None:
    for i, payload in enumerate(payloads):
        await broker.kick(BrokerMessage(task_id=str(i), task_name="t", message=payload, labels={}))


async def _redis(broker: ReclaimingRedisBroker) -> Any:
    from redis.asyncio import Redis

    return Redis(connection_pool=broker.connection_pool)


async def _pending(broker: ReclaimingRedisBroker) -> dict[str, int]:
    """Consumer name -> tasks it holds unacknowledged."""
    async with await _redis(broker) as conn:
        summary = await conn.xpending(broker.queue_name, broker.consumer_group_name)
    return {
        (c["name"].decode() if isinstance(c["name"], bytes) else c["name"]): int(c["pending"])
        for c in summary["consumers"]
    }


async def _make_idle(broker: ReclaimingRedisBroker, owner: ReclaimingRedisBroker) -> None:
    """Age every pending task by 100 s (as if its worker had been silent that long)."""
    async with await _redis(broker) as conn:
        for entry in await conn.xpending_range(
            broker.queue_name, broker.consumer_group_name, "-", "+", 100
        ):
            await conn.xclaim(
                broker.queue_name,
                broker.consumer_group_name,
                owner.consumer_name,
                0,
                [entry["message_id"]],
                idle=100_000,
                justid=True,
            )


@pytest.mark.asyncio
async def test_one_task_at_a_time_and_an_acknowledged_task_leaves_the_stream(stream: str) -> None:
    broker = await _broker(stream)
    try:
        await _kick(broker, b"first", b"second")
        listen = broker.listen()
        first = await asyncio.wait_for(listen.__anext__(), 10)
        assert first.data == b"first"
        # The second task waits in the stream until the first is acknowledged.
        nxt = asyncio.ensure_future(listen.__anext__())
        for _ in range(50):
            await asyncio.sleep(0)
        assert not nxt.done()
        assert await _pending(broker) == {broker.consumer_name: 1}
        await first.ack()  # type: ignore[misc]
        second = await asyncio.wait_for(nxt, 10)
        assert second.data == b"second"
        await second.ack()  # type: ignore[misc]
        async with await _redis(broker) as conn:
            assert await conn.xlen(stream) == 0
        assert await _pending(broker) == {}
        await listen.aclose()
    finally:
        await broker.shutdown()


@pytest.mark.asyncio
async def test_a_silent_workers_task_goes_to_another_with_no_new_task(stream: str) -> None:
    dead = await _broker(stream, idle_timeout=2.0, block=0.2)
    alive = await _broker(stream, idle_timeout=2.0, block=0.2)
    try:
        await _kick(dead, b"chunk")
        dead_listen = dead.listen()
        taken = await asyncio.wait_for(dead_listen.__anext__(), 10)
        assert taken.data == b"chunk"
        # The worker dies: no acknowledgement, no heartbeat.
        await dead_listen.aclose()
        await dead.shutdown()
        # Nothing new is queued; the live worker still gets the task once it is idle.
        listen = alive.listen()
        again = await asyncio.wait_for(listen.__anext__(), 30)
        assert again.data == b"chunk"
        assert await _pending(alive) == {alive.consumer_name: 1}
        await again.ack()  # type: ignore[misc]
        assert await _pending(alive) == {}
        await listen.aclose()
    finally:
        await alive.shutdown()


@pytest.mark.asyncio
async def test_the_heartbeat_keeps_a_running_task_and_lets_go_of_a_lost_one(stream: str) -> None:
    runner = await _broker(stream)
    other = await _broker(stream)
    try:
        await _kick(runner, b"long chunk")
        listen = runner.listen()
        task = await asyncio.wait_for(listen.__anext__(), 10)
        assert task.data == b"long chunk"
        async with await _redis(runner) as conn:
            # Long silent: idle for 100 s. A heartbeat resets it, so nobody takes it.
            await _make_idle(runner, runner)
            await runner._touch_held(conn)
            assert await other._reclaim(conn) is None
            # Silent again, past the timeout: the other worker takes it...
            await _make_idle(runner, runner)
            taken = await other._reclaim(conn)
            assert taken is not None and taken[2] == b"long chunk"
            assert await _pending(runner) == {other.consumer_name: 1}
            # ...and the first one's next heartbeat does not take it back: it lets go.
            await runner._touch_held(conn)
            assert await _pending(runner) == {other.consumer_name: 1}
            assert runner._held == set()
        await listen.aclose()
    finally:
        await runner.shutdown()
        await other.shutdown()


def test_settings_are_checked() -> None:
    with pytest.raises(ConfigurationError, match="max_tasks"):
        ReclaimingRedisBroker("redis://127.0.0.1:6379/0", max_tasks=0)
    with pytest.raises(ConfigurationError, match="shorter"):
        ReclaimingRedisBroker("redis://127.0.0.1:6379/0", idle_timeout=1, block=2)
    with pytest.raises(ConfigurationError, match="maxlen"):
        ReclaimingRedisBroker("redis://127.0.0.1:6379/0", maxlen=10)
    assert "idle_timeout=30.0s" in repr(ReclaimingRedisBroker("redis://127.0.0.1:6379/0"))


@pytest.mark.asyncio
async def test_listening_survives_redis_being_away(caplog: pytest.LogCaptureFixture) -> None:
    """A worker whose Redis is restarting keeps trying instead of dying (nothing listens on
    port 1: every read is refused at once)."""
    broker = ReclaimingRedisBroker("redis://127.0.0.1:1/0", "q", block=0.05)
    listen = broker.listen()
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(listen.__anext__(), 0.5)
    assert "reading the queue 'q' failed" in caplog.text
    await broker.shutdown()
