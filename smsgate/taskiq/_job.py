"""A bulk job's state in Redis, shared by the submitter, every worker and ``job status``.

One job run keeps five keys under ``smsgate:job:<queue name>:<job id>:<run>:``:

* ``meta`` (hash): ``started`` (server time), ``read`` (rows enqueued so far), ``chunks``
  and ``total`` (set once the submitter has enqueued everything, with ``submitted=1``),
  ``last`` (server time the last chunk settled), ``cancelled``.
* ``counts`` (hash): the settled chunks' outcome counts, ``requests``, ``retries``,
  ``duplicates``, ``invalid`` and ``err:<ErrorClass>`` fields.
* ``done`` (set): the indexes of the settled chunks. A chunk's counts are added in the
  same script that adds its index, so a chunk delivered twice is counted once.
* ``live`` (hash): chunk index -> the counts of a chunk still running and the worker
  running it, ``host:pid`` (overwritten by whichever worker runs it now; removed when it
  settles).
* ``failures`` (list): the failed and unknown rows, compact JSON, at most ``max_failures``.

``smsgate:job:<queue name>:<job id>:run`` holds the latest run number: submitting the same
job id again starts a new run (the journal still skips what the earlier run sent).
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Mapping, Sequence
from typing import Any

import anyio
import attrs

from .._models import Message
from ..dispatch import BulkReport, Outcome, OutcomeStatus, Progress
from ..exceptions import ConfigurationError, SmsGateError

__all__ = ["JobHandle", "JobKeys", "decode_rows", "encode_rows", "open_job"]

#: Seconds the job's keys live after their last change (a week).
JOB_TTL = 7 * 24 * 3600

_COUNTS = ("sent", "failed", "unknown", "skipped", "requests", "retries", "duplicates", "invalid")

# KEYS: done, counts, live, failures, meta. ARGV: chunk index, ttl, failures cap, n, then n
# (field, increment) pairs, then the failure items. Adds the chunk once.
FINISH_SCRIPT = """
if redis.call('SADD', KEYS[1], ARGV[1]) == 0 then return 0 end
local n = tonumber(ARGV[4])
for i = 0, n - 1 do
  redis.call('HINCRBY', KEYS[2], ARGV[5 + 2 * i], ARGV[6 + 2 * i])
end
local room = tonumber(ARGV[3]) - redis.call('LLEN', KEYS[4])
for i = 5 + 2 * n, #ARGV do
  if room <= 0 then break end
  redis.call('RPUSH', KEYS[4], ARGV[i])
  room = room - 1
end
redis.call('HDEL', KEYS[3], ARGV[1])
local t = redis.call('TIME')
redis.call('HSET', KEYS[5], 'last', t[1] .. '.' .. string.format('%06d', tonumber(t[2])))
for i = 1, 5 do redis.call('EXPIRE', KEYS[i], ARGV[2]) end
return 1
"""


def import_redis() -> Any:
    """``redis.asyncio``, or a clear error naming the extra."""
    try:
        import redis.asyncio as redis_asyncio
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "smsgate.taskiq needs redis-py: pip install '.[taskiq]' (in a checkout of smsgate)"
        ) from exc
    return redis_asyncio


@attrs.frozen
class JobKeys:
    """The Redis keys of one run of one job."""

    name: str
    job_id: str
    run: int

    @staticmethod
    def run_key(name: str, job_id: str) -> str:
        return f"smsgate:job:{name}:{job_id}:run"

    def _key(self, part: str) -> str:
        return f"smsgate:job:{self.name}:{self.job_id}:{self.run}:{part}"

    @property
    def meta(self) -> str:
        return self._key("meta")

    @property
    def counts(self) -> str:
        return self._key("counts")

    @property
    def done(self) -> str:
        return self._key("done")

    @property
    def live(self) -> str:
        return self._key("live")

    @property
    def failures(self) -> str:
        return self._key("failures")

    def finish_keys(self) -> list[str]:
        return [self.done, self.counts, self.live, self.failures, self.meta]


# -- rows in a task ---------------------------------------------------------------------------


def encode_rows(rows: Sequence[Message]) -> dict[str, Any]:
    """A chunk as it travels in the task: each distinct text and sender once, then one
    ``[to, text index, sender index]`` per row (a batch of one text costs its text once)."""
    texts: dict[str, int] = {}
    senders: dict[str | None, int] = {}
    packed = [
        [m.to, texts.setdefault(m.text, len(texts)), senders.setdefault(m.sender, len(senders))]
        for m in rows
    ]
    return {"t": list(texts), "s": list(senders), "r": packed}


def decode_rows(payload: Mapping[str, Any]) -> list[Message]:
    """The messages of an :func:`encode_rows` payload, in order."""
    texts = payload["t"]
    senders = payload["s"]
    return [Message(to=to, text=texts[ti], sender=senders[si]) for to, ti, si in payload["r"]]


def encode_failure(outcome: Outcome) -> str:
    error = outcome.error
    return json.dumps(
        {
            "to": outcome.message.to,
            "text": outcome.message.text,
            "sender": outcome.message.sender,
            "status": outcome.status,
            "recipient": outcome.recipient,
            "route": outcome.route,
            "reason": outcome.reason,
            "error": None if error is None else type(error).__name__,
            "detail": None if error is None else str(error)[:300],
            "state": None if error is None else _error_state(error),
        },
        ensure_ascii=False,
        separators=(",", ":"),
    )


def _error_state(error: SmsGateError) -> dict[str, Any]:
    """The plain attributes of an error (its message, provider, code...), for Redis."""
    return {
        k: v for k, v in vars(error).items() if isinstance(v, str | int | float | bool) or v is None
    }


def _rebuild_error(
    name: str | None, detail: str | None, state: dict[str, Any] | None
) -> SmsGateError | None:
    """The error of a failure read back from Redis: smsgate's class of that name with the
    attributes it had (as pickling rebuilds them), else a plain SmsGateError."""
    if name is None:
        return None
    from .. import exceptions

    cls = getattr(exceptions, name, None)
    text = detail or name
    if not (isinstance(cls, type) and issubclass(cls, SmsGateError)):
        return SmsGateError(f"{name}: {text}")
    state = dict(state or {})
    error = cls.__new__(cls)
    Exception.__init__(error, state.get("message", text))
    state.setdefault("message", text)
    error.__dict__.update(state)
    return error


def decode_failure(raw: str | bytes) -> Outcome:
    data = json.loads(raw)
    status: OutcomeStatus = data["status"]
    return Outcome(
        message=Message(to=data["to"], text=data["text"], sender=data["sender"]),
        status=status,
        recipient=data["recipient"],
        error=_rebuild_error(data["error"], data["detail"], data.get("state")),
        route=data["route"],
        reason=data["reason"],
    )


def chunk_counts(report: BulkReport) -> list[tuple[str, int]]:
    """The (field, increment) pairs a settled chunk adds to the job's counts."""
    pairs = [(name, int(getattr(report, name))) for name in _COUNTS]
    pairs += [(f"err:{name}", count) for name, count in report.errors.items()]
    return [(field, value) for field, value in pairs if value]


def live_value(progress: Progress) -> str:
    """A running chunk's counts, and the worker running it (host and process id)."""
    return (
        f"{progress.sent} {progress.failed} {progress.unknown} {progress.skipped} "
        f"{progress.requests} {progress.in_flight} {socket.gethostname()}:{os.getpid()}"
    )


def live_workers(live: Mapping[Any, Any]) -> dict[int, tuple[str, int, int]]:
    """Chunk index -> (host, process id, rows done) of the chunks running now, from the
    job's ``live`` hash."""
    running: dict[int, tuple[str, int, int]] = {}
    for index, value in live.items():
        fields = _text(value).split()
        host, _, pid = fields[6].rpartition(":")
        running[int(_text(index))] = (host, int(pid), sum(int(v) for v in fields[:4]))
    return running


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _decode_hash(raw: Mapping[Any, Any]) -> dict[str, str]:
    return {_text(k): _text(v) for k, v in raw.items()}


class JobHandle:
    """One submitted job, read from Redis: from the submitter, a worker or any machine.

    Get one from :meth:`BulkQueue.submit` or :meth:`BulkQueue.job`, or with
    :func:`open_job` where only Redis is at hand (``smsgate job status``).
    """

    def __init__(self, redis: Any, keys: JobKeys, *, owns_client: bool = False) -> None:
        self._redis = redis
        self.keys = keys
        self._owns_client = owns_client

    def __repr__(self) -> str:
        return f"<JobHandle {self.job_id!r} run {self.run}>"

    @property
    def job_id(self) -> str:
        return self.keys.job_id

    @property
    def run(self) -> int:
        return self.keys.run

    async def _now(self) -> float:
        seconds, micros = await self._redis.time()
        return float(seconds) + float(micros) / 1_000_000

    async def _read(self) -> tuple[dict[str, str], dict[str, str], dict[str, str], int]:
        pipe = self._redis.pipeline(transaction=True)
        pipe.hgetall(self.keys.meta)
        pipe.hgetall(self.keys.counts)
        pipe.hgetall(self.keys.live)
        pipe.scard(self.keys.done)
        meta, counts, live, done = await pipe.execute()
        if not meta:
            raise ConfigurationError(
                f"no job {self.job_id!r} (run {self.run}) in Redis: never submitted, "
                "or its keys expired"
            )
        return _decode_hash(meta), _decode_hash(counts), _decode_hash(live), int(done)

    async def finished(self) -> bool:
        """Whether every chunk has been enqueued and settled."""
        meta, _, _, done = await self._read()
        return meta.get("submitted") == "1" and done >= int(meta.get("chunks", "0"))

    async def progress(self) -> Progress:
        """The job's :class:`~smsgate.Progress`, summed over every worker (settled chunks
        plus the latest counts of the chunks running now)."""
        meta, counts, live, done = await self._read()
        now = await self._now()
        totals = {name: int(counts.get(name, "0")) for name in _COUNTS}
        in_flight = 0
        for value in live.values():
            sent, failed, unknown, skipped, requests, flying = (int(v) for v in value.split()[:6])
            totals["sent"] += sent
            totals["failed"] += failed
            totals["unknown"] += unknown
            totals["skipped"] += skipped
            totals["requests"] += requests
            in_flight += flying
        submitted = meta.get("submitted") == "1"
        final = submitted and done >= int(meta.get("chunks", "0"))
        started = float(meta.get("started", now))
        end = float(meta["last"]) if final and "last" in meta else now
        elapsed = max(0.0, end - started)
        finished = totals["sent"] + totals["failed"] + totals["unknown"] + totals["skipped"]
        total = int(meta["total"]) if submitted else None
        rate = finished / elapsed if elapsed > 0 else 0.0
        eta: float | None = None
        if final:
            eta = 0.0
        elif total is not None and rate > 0:
            eta = max(0, total - finished) / rate
        return Progress(
            job_id=self.job_id,
            total=total,
            read=int(meta.get("read", "0")),
            done=finished,
            sent=totals["sent"],
            failed=totals["failed"],
            unknown=totals["unknown"],
            skipped=totals["skipped"],
            requests=totals["requests"],
            in_flight=in_flight,
            elapsed=elapsed,
            rate=rate,
            eta=eta,
            final=final,
        )

    async def report(self) -> BulkReport:
        """The :class:`~smsgate.BulkReport` of the chunks settled so far (the whole job once
        :meth:`finished`). ``failures`` holds at most the queue's ``max_failures`` rows;
        the counts always cover every row."""
        meta, counts, _, _ = await self._read()
        raw = await self._redis.lrange(self.keys.failures, 0, -1)
        started = float(meta.get("started", "0"))
        last = float(meta.get("last", started))
        values = {name: int(counts.get(name, "0")) for name in _COUNTS}
        errors = {k[4:]: int(v) for k, v in counts.items() if k.startswith("err:")}
        settled = values["sent"] + values["failed"] + values["unknown"] + values["skipped"]
        return BulkReport(
            total=int(meta["total"]) if meta.get("submitted") == "1" else settled,
            errors=errors,
            failures=tuple(decode_failure(item) for item in raw),
            job_id=self.job_id,
            elapsed=max(0.0, last - started),
            stopped="cancelled" if meta.get("cancelled") else None,
            sent=values["sent"],
            failed=values["failed"],
            unknown=values["unknown"],
            skipped=values["skipped"],
            requests=values["requests"],
            retries=values["retries"],
            duplicates=values["duplicates"],
            invalid=values["invalid"],
        )

    async def wait(self, *, poll: float = 0.5) -> BulkReport:
        """Wait until every chunk has settled, then return the job's report.

        Put a deadline around it with ``anyio.fail_after(seconds)`` if you need one.

        Args:
            poll: Seconds between two looks at Redis (the state is in another process).
        """
        while not await self.finished():  # noqa: ASYNC110 - polling a remote store
            await anyio.sleep(poll)
        return await self.report()

    async def cancel(self) -> None:
        """Stop the job: chunks not started yet are settled without sending (their rows
        ``failed`` with :class:`~smsgate.JobStoppedError`, so a new run sends them); chunks
        running now stop admitting rows where the dispatcher supports a stop event."""
        await self._redis.hset(self.keys.meta, "cancelled", "1")

    async def cancelled(self) -> bool:
        """Whether :meth:`cancel` was called for this run."""
        return bool(await self._redis.hget(self.keys.meta, "cancelled"))

    async def aclose(self) -> None:
        """Close the Redis client if this handle opened it (:func:`open_job`)."""
        if self._owns_client:
            await self._redis.aclose()

    async def __aenter__(self) -> JobHandle:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


async def open_job(
    redis: str | Any, job_id: str, *, name: str = "smsgate", run: int | None = None
) -> JobHandle:
    """A :class:`JobHandle` for the latest run (or run ``run``) of ``job_id`` of the queue
    called ``name``, from a Redis URL or client. Close it (``async with``) when given a URL.

    Raises:
        ConfigurationError: No such job in Redis.
    """
    owns = isinstance(redis, str)
    client = import_redis().from_url(redis) if isinstance(redis, str) else redis
    try:
        if run is None:
            value = await client.get(JobKeys.run_key(name, job_id))
            if value is None:
                raise ConfigurationError(f"no job {job_id!r} in Redis (queue {name!r})")
            run = int(value)
    except BaseException:
        if owns:
            await client.aclose()
        raise
    return JobHandle(client, JobKeys(name, job_id, run), owns_client=owns)
