"""The worker module of the end-to-end test and the workers benchmark.

Each worker process runs ``taskiq worker tests.taskiq._worker_app:broker``; the module builds
the broker and the :class:`~smsgate.taskiq.BulkQueue` from environment variables (set by
:func:`tests.taskiq._e2e.settings`), the way an application's module would from its config.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping

from taskiq_aio_pika import AioPikaBroker
from taskiq_aio_pika.queue import Queue

import smsgate
from smsgate.dispatch import SqliteJournal
from smsgate.taskiq import BulkQueue, ReclaimingRedisBroker

_env = os.environ


def make_gateway() -> smsgate.IppanelGateway:
    """Called once per worker process: the ippanel gateway, pointed at the loopback fake."""
    return smsgate.IppanelGateway(
        username="user",
        password="secret-pass",
        sender="3000505",
        base_url=_env["SMSGATE_E2E_FAKE"],
        allow_insecure_http=True,
    )


def make_broker(env: Mapping[str, str] = _env) -> AioPikaBroker | ReclaimingRedisBroker:
    """The broker of this run: a queue of its own (RabbitMQ, or a Redis stream when
    ``SMSGATE_E2E_BROKER=redis``), one task at a time per worker."""
    if env.get("SMSGATE_E2E_BROKER") == "redis":
        return ReclaimingRedisBroker(
            env["SMSGATE_E2E_REDIS"],
            env["SMSGATE_E2E_QUEUE"],
            idle_timeout=float(env.get("SMSGATE_E2E_RECLAIM", "30")),
        )
    return AioPikaBroker(env["SMSGATE_E2E_AMQP"], qos=1).with_queue(
        Queue(name=env["SMSGATE_E2E_QUEUE"])
    )


def build() -> tuple[AioPikaBroker | ReclaimingRedisBroker, BulkQueue]:
    """The broker and the queue, from the environment."""
    broker = make_broker()
    path = _env["SMSGATE_E2E_JOURNAL"]
    journal: str | SqliteJournal = path
    if _env.get("SMSGATE_E2E_SYNC") and not path.startswith("postgres"):
        journal = SqliteJournal(path, synchronous=_env["SMSGATE_E2E_SYNC"])  # type: ignore[arg-type]
    queue = BulkQueue(
        broker,
        gateway=make_gateway,
        journal=journal,
        rate_limit=smsgate.RateLimit(float(_env["SMSGATE_E2E_RATE"])),
        redis=_env["SMSGATE_E2E_REDIS"],
        chunk_size=int(_env.get("SMSGATE_E2E_CHUNK", "500")),
        concurrency=int(_env.get("SMSGATE_E2E_CONCURRENCY", "16")),
        name=_env["SMSGATE_E2E_NAME"],
        max_failures=100_000,
    )
    return broker, queue


if "SMSGATE_E2E_QUEUE" in _env:
    broker, queue = build()

    if _env.get("SMSGATE_E2E_STAMPS"):
        # Diagnostics: each limiter grant's server time is appended to a list, so the
        # grants' windows can be compared with the arrivals' windows at the fake.
        _build_state = queue._worker_state

        async def _stamped_state() -> object:
            state = await _build_state()
            limiter = state.limiter
            if not getattr(limiter, "_stamped", False):
                acquire = limiter.acquire

                async def stamped(amount: int = 1) -> None:
                    await acquire(amount)
                    # The grant's own time on the Redis server's clock (no round trip),
                    # and when this process went on with it (the same machine's clock).
                    grant = limiter.last_grant
                    went_on = time.time()
                    await state.redis.rpush(_env["SMSGATE_E2E_STAMPS"], f"{grant:.6f}")
                    await state.redis.rpush(_env["SMSGATE_E2E_STAMPS"] + ":local", f"{went_on:.6f}")

                limiter.acquire = stamped
                limiter._stamped = True
            return state

        queue._worker_state = _stamped_state  # type: ignore[method-assign,assignment]
