"""Cancellation leaves nothing behind (httpcore's tests/test_cancellations.py, for smsgate).

A single send, and a whole bulk run, are cancelled mid-flight with ``anyio.move_on_after``
against the loopback fake (which answers slowly). Afterwards: no connection left open (the
server's own count), no task left running, no concurrency token or limiter waiter held,
and the journal consistent (each row in doubt or final, none lost, nothing sent twice when
the job is run again).
"""

from __future__ import annotations

import collections
import gc
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest

import smsgate
from smsgate.dispatch import BulkDispatcher, RateLimit, SqliteJournal
from smsgate.testing import FakeProvider, Faults, LoopbackServer, serve_loopback

from ._support import duplicates, gateway, ledger_counts, numbers

# httpx's own request body stream is an async generator: a send cancelled while the body
# is being written used to leave it for trio to close in a task of its own after the
# cancellation (encode/httpx#3686). smsgate's HTTP base sends a plain iterator instead, so
# these tests run with warnings as errors and count tasks right after the cancel.
pytestmark = [pytest.mark.anyio, pytest.mark.loopback]

SLOW = 0.3  # seconds the fake waits before processing each request
BULK_SLOW = 1.0  # the same for the bulk run (cancelled once requests are in flight)


def open_connections(server: LoopbackServer) -> int:
    """Connections the server holds open right now (uvicorn's own bookkeeping)."""
    return len(server._server.server_state.connections)


async def eventually(predicate: Callable[[], bool], *, within: float = 5.0) -> bool:
    """Whether ``predicate()`` becomes true within ``within`` seconds (polled)."""
    for _ in range(int(within / 0.005)):
        if predicate():
            return True
        await anyio.sleep(0.005)
    return predicate()


def task_count() -> int:
    return len(anyio.get_running_tasks())


@pytest.mark.parametrize("backend", ["ippanel", "negin"])
@pytest.mark.parametrize("delay", [0.0, 0.001, 0.01, 0.1])
async def test_cancelled_send_leaves_no_connection(
    backend: str, delay: float, anyio_backend: str
) -> None:
    """A send cancelled at any point closes its connection; the gateway stays usable."""
    fake = FakeProvider(faults=Faults(latency=SLOW))
    with serve_loopback(fake, log_level="critical") as server:
        async with gateway(backend, server.url) as gw:
            tasks = task_count()
            with anyio.move_on_after(delay) as scope:
                await gw.send(["09121234567", "09351234567"], "cancel me")
            assert scope.cancelled_caught
            assert task_count() == tasks
            assert await eventually(lambda: open_connections(server) == 0)
            fake.core.faults = Faults()
            receipt = await gw.send("09121234567", "after the cancel")
            assert receipt.recipients == ("+989121234567",)
        assert await eventually(lambda: open_connections(server) == 0)
        assert gw.is_closed
    gc.collect()


async def test_cancelled_bulk_run_leaves_nothing_held(tmp_path: Path, anyio_backend: str) -> None:
    """A run cancelled mid-flight: no token, waiter, task or connection left; journal consistent."""
    fake = FakeProvider(faults=Faults(latency=BULK_SLOW))
    rows = [smsgate.Message(to=n, text="cancelled job") for n in numbers(40)]
    journal_path = tmp_path / "bulk.sqlite"
    with serve_loopback(fake, log_level="critical") as server:
        async with gateway("negin", server.url) as gw, SqliteJournal(journal_path) as journal:
            dispatcher = BulkDispatcher(
                gw, concurrency=4, journal=journal, rate_limit=RateLimit(50, burst=4)
            )
            tasks = task_count()
            # Cancel as soon as requests are in flight (none can finish: the fake holds
            # each for BULK_SLOW seconds).
            with anyio.CancelScope() as scope:
                async with anyio.create_task_group() as tg:
                    tg.start_soon(dispatcher.run, rows, "job")
                    assert await eventually(lambda: dispatcher.statistics().in_flight > 0)
                    scope.cancel()
            assert scope.cancelled_caught
            stats = dispatcher.statistics()
            assert (stats.borrowed, stats.waiting, stats.in_flight, stats.jobs) == (0, 0, 0, 0)
            limiter = dispatcher.limiter.statistics()  # type: ignore[attr-defined]
            assert limiter.waiting == 0
            assert task_count() == tasks
            assert await eventually(lambda: open_connections(server) == 0)

            # The journal: the requests that were in flight are pending (in doubt), nothing
            # else was written, and every row names one of the job's recipients.
            entries = await journal.entries("job")
            assert 0 < len(entries) <= 4
            assert {e.status for e in entries} == {"pending"}
            expected = {smsgate.normalize_msisdn(r.to) for r in rows}
            assert {e.recipient for e in entries} <= expected
            in_doubt = {e.recipient for e in entries}

            # Run the job again to the end: the in-doubt rows are not resent.
            fake.core.faults = Faults()
            await anyio.sleep(BULK_SLOW)  # let the fake finish what it had already accepted
            report = await BulkDispatcher(gw, concurrency=4, journal=journal).run(
                rows, job_id="job"
            )
        assert (report.unknown, report.sent) == (len(in_doubt), len(rows) - len(in_doubt))
        counts = ledger_counts(fake)
        assert duplicates(counts.values()) == 0
        assert await eventually(lambda: open_connections(server) == 0)
    gc.collect()


async def test_cancel_while_waiting_for_the_rate_limiter(anyio_backend: str) -> None:
    """A run cancelled while its requests wait for the limiter takes no token and leaves none."""
    fake = FakeProvider()
    rows = [smsgate.Message(to=n, text="slowly") for n in numbers(6)]
    with serve_loopback(fake, log_level="critical") as server:
        async with gateway("negin", server.url) as gw:
            dispatcher = BulkDispatcher(gw, concurrency=6, rate_limit=RateLimit(1, per=60))
            with anyio.move_on_after(1.0) as scope:
                await dispatcher.run(rows, job_id="job")
            assert scope.cancelled_caught
            limiter = dispatcher.limiter.statistics()  # type: ignore[attr-defined]
            assert limiter.waiting == 0
            assert limiter.acquisitions == 1  # only the first request ever started
            assert dispatcher.statistics().borrowed == 0
    # The one request that started may or may not have reached the fake; no other did.
    assert collections.Counter(e.recipient for e in fake.ledger).total() <= 1
    gc.collect()
