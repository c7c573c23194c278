"""A Redis streams broker for bulk chunks: one task at a time, a dead worker's task reclaimed.

taskiq-redis's :class:`~taskiq_redis.RedisStreamBroker` acknowledges a task after it ends
(``XACK``), which is what a chunk needs, but as shipped it reclaims a dead consumer's tasks
only right after it has read *new* ones (so the last chunks of a job whose worker died wait
for the next job), it fetches up to 100 tasks at a time (a killed worker takes them all
down with it), and a task that runs longer than ``idle_timeout`` is handed to a second
worker while the first still runs it. :class:`ReclaimingRedisBroker` keeps its wire format
and its consumer groups and changes how it reads:

* a worker process holds ``max_tasks`` tasks at a time (default one, like RabbitMQ's
  ``qos=1``; taskiq's own ``--max-async-tasks`` defaults to 100), read one at a time;
* before each read it claims a task idle for longer than ``idle_timeout`` (``XAUTOCLAIM``),
  whether or not new tasks arrive, and at least every ``block`` seconds;
* while a task runs, its worker keeps it fresh (a heartbeat re-claims it every third of
  ``idle_timeout``, only while this consumer still owns it): only a silent worker (killed,
  frozen, cut off) loses its task;
* an acknowledged task is deleted from the stream (``XACK`` and ``XDEL`` in one
  transaction), so the stream holds only what is queued or running.
"""

from __future__ import annotations

import asyncio  # noqa: TID251 - taskiq's workers are asyncio; the heartbeat is a detached task
import contextlib
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from taskiq import AckableMessage
from taskiq_redis import RedisStreamBroker

from ..exceptions import ConfigurationError

_log = logging.getLogger("smsgate.taskiq")

__all__ = ["ReclaimingRedisBroker"]

# Re-claim a task only while this consumer owns it: a worker that stalled past idle_timeout
# and lost its task to another must not take it back.
_TOUCH = """
local entry = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1)
if entry[1] == nil or entry[1][2] ~= ARGV[2] then
    return 0
end
redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[3], 'JUSTID')
return 1
"""


class ReclaimingRedisBroker(RedisStreamBroker):
    """A taskiq broker on a Redis stream that hands a dead worker's task to another.

    Args:
        url: The Redis URL (``redis://host:6379/0``).
        queue_name: The stream's key; the submitter and every worker must agree.
        consumer_group_name: The consumer group (default: ``queue_name``).
        idle_timeout: Seconds without a heartbeat after which a running task is taken
            from its worker and delivered to another (a killed worker's chunk comes back
            after this long). A live worker's heartbeat keeps its task however long it runs.
        block: Seconds one read waits for a new task before it looks for an idle one again.
        max_tasks: Tasks one worker process holds at a time, running or waiting to run.
        **kwargs: More arguments for :class:`~taskiq_redis.RedisStreamBroker` (connection
            settings); ``xread_count``, ``maxlen`` and ``idle_timeout`` are this class's.
    """

    def __init__(
        self,
        url: str,
        queue_name: str = "smsgate",
        *,
        consumer_group_name: str | None = None,
        idle_timeout: float = 30.0,
        block: float = 1.0,
        max_tasks: int = 1,
        **kwargs: Any,
    ) -> None:
        if not idle_timeout > 0 or not block > 0:
            raise ConfigurationError("idle_timeout and block must be > 0 seconds")
        tasks: object = max_tasks
        if not isinstance(tasks, int) or isinstance(tasks, bool) or tasks < 1:
            raise ConfigurationError(f"max_tasks must be an int >= 1, not {max_tasks!r}")
        if block >= idle_timeout:
            raise ConfigurationError("block must be shorter than idle_timeout")
        taken = {"xread_count", "maxlen", "xread_block"} & set(kwargs)
        if taken:
            # maxlen trims by count, acknowledged or not: it would drop queued chunks.
            raise ConfigurationError(f"ReclaimingRedisBroker sets {sorted(taken)} itself")
        super().__init__(
            url,
            queue_name=queue_name,
            consumer_group_name=consumer_group_name or queue_name,
            xread_block=max(1, round(block * 1000)),
            idle_timeout=max(1, round(idle_timeout * 1000)),
            xread_count=1,
            # The stream holds only what is queued or running (acknowledged tasks are
            # deleted), so a group created after the first tasks were queued reads them all.
            consumer_id=kwargs.pop("consumer_id", "0"),
            **kwargs,
        )
        self.reclaim_after = idle_timeout
        self.max_tasks = max_tasks
        self._held: set[tuple[str, str]] = set()
        self._room = asyncio.Event()
        self._heartbeat: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        return (
            f"<ReclaimingRedisBroker queue={self.queue_name!r} "
            f"group={self.consumer_group_name!r} idle_timeout={self.reclaim_after}s>"
        )

    async def listen(self) -> AsyncGenerator[AckableMessage, None]:
        """Yield one task at a time: an idle (abandoned) one first, else a new one."""
        if self._heartbeat is None or self._heartbeat.done():
            self._heartbeat = asyncio.create_task(self._beat())
        async with Redis(connection_pool=self.connection_pool) as conn:
            while True:
                while len(self._held) >= self.max_tasks:
                    self._room.clear()
                    await self._room.wait()
                try:
                    found = await self._reclaim(conn)
                    if found is None:
                        found = await self._read(conn)
                except (RedisConnectionError, RedisTimeoutError) as exc:
                    # Redis restarting: keep trying (redis-py reconnects on the next call).
                    _log.warning("reading the queue %r failed: %r", self.queue_name, exc)
                    await asyncio.sleep(self.block)
                    continue
                if found is not None:
                    stream, msg_id, data = found
                    self._held.add((stream, msg_id))
                    yield AckableMessage(data=data, ack=self._acker(stream, msg_id))

    async def _reclaim(self, conn: Any) -> tuple[str, str, bytes] | None:
        _next, claimed, *_deleted = await conn.xautoclaim(
            self.queue_name,
            self.consumer_group_name,
            self.consumer_name,
            min_idle_time=self.idle_timeout,
            count=1,
        )
        for msg_id, fields in claimed:
            if fields and b"data" in fields:
                return self.queue_name, _text(msg_id), fields[b"data"]
            # Its entry was deleted from the stream (trimmed by hand): nothing to run.
            await conn.xack(self.queue_name, self.consumer_group_name, msg_id)
        return None

    async def _read(self, conn: Any) -> tuple[str, str, bytes] | None:
        fetched = await conn.xreadgroup(
            self.consumer_group_name,
            self.consumer_name,
            {self.queue_name: ">"},
            count=1,
            block=self.block,
        )
        for stream, entries in fetched or ():
            for msg_id, fields in entries:
                return _text(stream), _text(msg_id), fields[b"data"]
        return None

    def _acker(self, stream: str, msg_id: str) -> Callable[[], Awaitable[None]]:
        async def ack() -> None:
            async with (
                Redis(connection_pool=self.connection_pool) as conn,
                conn.pipeline(transaction=True) as pipe,
            ):
                pipe.xack(stream, self.consumer_group_name, msg_id)
                pipe.xdel(stream, msg_id)
                await pipe.execute()
            self._release(stream, msg_id)

        return ack

    async def _beat(self) -> None:
        """Every third of ``idle_timeout``, reset the idle time of the tasks this worker
        runs (those another consumer took meanwhile are left to it)."""
        async with Redis(connection_pool=self.connection_pool) as conn:
            while True:
                await asyncio.sleep(self.reclaim_after / 3)
                try:
                    await self._touch_held(conn)
                except Exception as exc:  # Redis away: try again at the next beat
                    _log.warning("the heartbeat of this worker's tasks failed: %r", exc)

    async def _touch_held(self, conn: Any) -> None:
        touch = conn.register_script(_TOUCH)
        for stream, msg_id in list(self._held):
            owned = await touch(
                keys=[stream], args=[self.consumer_group_name, self.consumer_name, msg_id]
            )
            if not owned:  # another worker took it while this one was silent
                self._release(stream, msg_id)

    def _release(self, stream: str, msg_id: str) -> None:
        self._held.discard((stream, msg_id))
        self._room.set()

    async def shutdown(self) -> None:
        """Stop the heartbeat, then close the connection pool."""
        beat, self._heartbeat = self._heartbeat, None
        if beat is not None:
            beat.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await beat
        await super().shutdown()


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
