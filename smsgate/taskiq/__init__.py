"""One bulk job across worker processes and machines, on taskiq (extra ``taskiq``).

:class:`BulkQueue` splits a job into chunks, one taskiq task each; every worker process runs
its chunks through a :class:`~smsgate.BulkDispatcher` with the account-wide
:class:`~smsgate.redis.RedisRateLimiter` and a journal shared by all workers (PostgreSQL, or
SQLite on one machine), so a chunk delivered again after its worker died is finished without
a double send. :class:`JobHandle` reads a job's progress and report from Redis, from
anywhere. :class:`ReclaimingRedisBroker` is a taskiq broker on a Redis stream made for
chunks (one at a time per worker, a dead worker's chunk handed to another); RabbitMQ through
taskiq-aio-pika works too. See API.md §9 and the "Scaling out" page.

Importing this module needs neither taskiq nor Redis; building a :class:`BulkQueue` does.
asyncio only (the drivers are).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._job import JobHandle, open_job
from ._queue import BulkQueue

if TYPE_CHECKING:
    from ._redis_broker import ReclaimingRedisBroker

__all__ = ["BulkQueue", "JobHandle", "ReclaimingRedisBroker", "open_job"]


def __getattr__(name: str) -> Any:
    # Imported on first use: it subclasses taskiq-redis's broker.
    if name == "ReclaimingRedisBroker":
        from ._redis_broker import ReclaimingRedisBroker

        return ReclaimingRedisBroker
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
