"""One bulk job across worker processes and machines, on taskiq (extra ``taskiq``).

:class:`BulkQueue` splits a job into chunks, one taskiq task each; every worker process runs
its chunks through a :class:`~smsgate.BulkDispatcher` with the account-wide
:class:`~smsgate.redis.RedisRateLimiter` and a journal shared by all workers (PostgreSQL, or
SQLite on one machine), so a chunk delivered again after its worker died is finished without
a double send. :class:`JobHandle` reads a job's progress and report from Redis, from
anywhere. See API.md §9 and the "Scaling out" page.

Importing this module needs neither taskiq nor Redis; building a :class:`BulkQueue` does.
asyncio only (the drivers are).
"""

from __future__ import annotations

from ._job import JobHandle, open_job
from ._queue import BulkQueue

__all__ = ["BulkQueue", "JobHandle", "open_job"]
