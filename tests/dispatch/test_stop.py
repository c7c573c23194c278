"""Issue 14, Python API side: a job that stops (asked to, or on an account-wide error)
drains and reports every row; recent sends in other jobs are skipped.

Timed tests run under trio's MockClock (instant and exact); the account-wide tests use the
fake provider on loopback and count the requests it received.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator
from typing import Any

import anyio
import anyio.lowlevel
import pytest

import smsgate
from smsgate import JobStoppedError, Message, OutcomeUnknownError
from smsgate.dispatch import (
    REASON_JOB_STOPPED,
    REASON_SENT_RECENTLY,
    BulkDispatcher,
    MemoryJournal,
    RetryPolicy,
)
from smsgate.testing import FakeGateway, FakeProvider, serve_loopback

from ._helpers import mock_clock_backend

pytestmark = pytest.mark.anyio


def rows(n: int, text: str = "hello", start: int = 0) -> list[Message]:
    return [Message(to=f"0912{start + i:07d}", text=text) for i in range(n)]


def adds_up(report: smsgate.BulkReport) -> bool:
    return report.sent + report.failed + report.unknown + report.skipped == report.total


async def no_wait(_seconds: float) -> None:
    await anyio.lowlevel.checkpoint()


class TestStop:
    """stop=anyio.Event(): drain, record, report (trio MockClock)."""

    @pytest.fixture
    def anyio_backend(self) -> tuple[str, dict[str, object]]:
        """trio with a MockClock."""
        return mock_clock_backend()

    async def test_stop_drains_in_flight_and_fails_the_rest(self) -> None:
        """Set at 2.5 s: the 4 requests in flight finish and are recorded sent; every row
        read but not sent is failed with JobStoppedError; a rerun sends exactly those."""
        journal = MemoryJournal()
        gw = FakeGateway(latency=1.0)
        d = BulkDispatcher(gw, journal=journal, concurrency=4)
        stop = anyio.Event()

        async def press() -> None:
            await anyio.sleep(2.5)
            stop.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(press)
            report = await d.run(rows(100), job_id="j", stop=stop)
        assert report.stopped == "stop was requested"
        assert adds_up(report)
        assert report.unknown == 0
        assert report.sent == len(gw.accepted) == 1 + 4 + 4  # probe, a wave, the drained wave
        stopped = [o for o in report.failures if isinstance(o.error, JobStoppedError)]
        assert len(stopped) == report.failed == report.total - report.sent
        assert {o.reason for o in stopped} == {REASON_JOB_STOPPED}
        assert report.total < 100 or report.failed > 0
        assert {e.status for e in await journal.entries("j")} <= {"sent", "failed"}

        again = await d.run(rows(100), job_id="j")
        assert again.stopped is None
        assert (again.skipped, again.sent) == (report.sent, 100 - report.sent)
        counts: dict[str, int] = {}
        for send in gw.accepted:
            counts[send.recipient] = counts.get(send.recipient, 0) + 1
        assert len(counts) == 100 and set(counts.values()) == {1}

    async def test_drain_timeout_cancels_what_is_still_in_flight(self) -> None:
        """Requests that outlive drain_timeout are cancelled: their rows are in doubt."""
        gw = FakeGateway(latency=100.0)
        d = BulkDispatcher(gw, concurrency=4, drain_timeout=5.0)
        stop = anyio.Event()

        async def press() -> None:
            await anyio.sleep(150.0)  # the probe answered at 100 s; 4 in flight now
            stop.set()

        started = anyio.current_time()
        async with anyio.create_task_group() as tg:
            tg.start_soon(press)
            report = await d.run(rows(20), stop=stop)
        assert anyio.current_time() - started == pytest.approx(155.0)
        assert adds_up(report)
        assert (report.sent, report.unknown) == (1, 4)
        assert all(
            isinstance(o.error, OutcomeUnknownError)
            for o in report.failures
            if o.status == "unknown"
        )
        assert report.failed == report.total - 5
        assert d.statistics().jobs == 0 and d.statistics().borrowed == 0

    async def test_stop_in_a_stream_and_an_async_input(self) -> None:
        async def source() -> Any:
            for message in rows(50):
                yield message

        gw = FakeGateway(latency=1.0)
        d = BulkDispatcher(gw, concurrency=2)
        stop = anyio.Event()
        seen = []
        async with contextlib.aclosing(source()) as rows_in, d.stream(rows_in, stop=stop) as outs:
            async for outcome in outs:
                seen.append(outcome)
                if len(seen) == 3:
                    stop.set()
        statuses = [o.status for o in seen]
        assert statuses.count("sent") == len(gw.accepted)
        assert all(o.status in ("sent", "failed") for o in seen)
        assert len(gw.accepted) < 10


# -- account-wide errors --------------------------------------------------------------------------


@pytest.fixture
def fake_server() -> Iterator[tuple[FakeProvider, str]]:
    fake = FakeProvider()
    with serve_loopback(fake, log_level="critical") as server:
        yield fake, server.url


def ippanel(url: str, **kwargs: Any) -> smsgate.IppanelGateway:
    settings: dict[str, Any] = {
        "username": "user",
        "password": "secret-pass",
        "sender": "+983000505",
        "base_url": url,
        "allow_insecure_http": True,
    }
    settings.update(kwargs)
    return smsgate.IppanelGateway(**settings)


def negin(url: str, **kwargs: Any) -> smsgate.NeginGateway:
    settings: dict[str, Any] = {
        "username": "user",
        "password": "secret-pass",
        "line": "9830003300",
        "base_url": url,
        "allow_insecure_http": True,
    }
    settings.update(kwargs)
    return smsgate.NeginGateway(**settings)


def distinct_rows(n: int) -> list[Message]:
    """Distinct texts: one recipient per request (the worst case for request counts)."""
    return [Message(to=f"0912{i:07d}", text=f"hello {i}") for i in range(n)]


@pytest.mark.loopback
@pytest.mark.parametrize("make", [ippanel, negin])
async def test_a_wrong_password_stops_a_200_row_job(
    make: Any, fake_server: tuple[FakeProvider, str]
) -> None:
    fake, url = fake_server
    async with make(url, password="wrong") as gw:
        report = await BulkDispatcher(gw, concurrency=32).run(distinct_rows(200))
    assert report.requests <= 3
    assert report.stopped is not None and "AuthenticationError" in report.stopped
    assert "wrong" not in report.stopped and "secret-pass" not in report.stopped
    assert adds_up(report) and report.total <= 200  # rows never read are not counted
    assert report.sent == 0 and len(fake.ledger) == 0
    stopped = sum(isinstance(o.error, JobStoppedError) for o in report.failures)
    assert stopped == report.failed - report.errors.get("AuthenticationError", 0)


@pytest.mark.loopback
async def test_empty_credit_stops_a_200_row_job() -> None:
    fake = FakeProvider(credit=0)
    with serve_loopback(fake, log_level="critical") as server:
        async with ippanel(server.url) as gw:
            report = await BulkDispatcher(gw, concurrency=32).run(distinct_rows(200))
    assert report.requests <= 3
    assert report.stopped is not None and "InsufficientCreditError" in report.stopped
    assert adds_up(report) and report.sent == 0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port  # nothing listens there once the socket is closed


@pytest.mark.loopback
async def test_an_unreachable_host_stops_a_200_row_job() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    async with ippanel(url) as gw:
        d = BulkDispatcher(gw, concurrency=32, sleep=no_wait, retries=RetryPolicy(attempts=2))
        report = await d.run(distinct_rows(200))
    assert report.requests <= 3 * 2  # three requests in a row, each tried twice
    assert report.stopped is not None and "never reached" in report.stopped
    assert adds_up(report) and report.total <= 200 and report.unknown == 0
    assert report.failed == report.total


async def test_a_success_resets_the_connection_streak() -> None:
    """Connection failures that are not in a row do not stop the job."""
    gw = FakeGateway()
    calls = 0

    def flaky(_request: Any) -> smsgate.SmsGateError | None:
        nonlocal calls
        calls += 1
        return smsgate.NotSentError("refused") if calls % 2 == 0 else None

    gw.on_request = flaky
    report = await BulkDispatcher(gw, concurrency=1, retries=0).run(rows(40))
    assert report.stopped is None
    assert (report.sent, report.failed) == (20, 20)


# -- recent sends in other jobs -------------------------------------------------------------------


async def test_recent_sends_in_another_job_are_skipped() -> None:
    journal = MemoryJournal()
    gw = FakeGateway(max_recipients=100)
    now = [1_000_000.0]

    def make(window: float | None) -> BulkDispatcher:
        return BulkDispatcher(gw, journal=journal, recent_window=window, wall_clock=lambda: now[0])

    first = await make(3600).run(rows(10), job_id="monday")
    assert first.sent == 10
    events: list[smsgate.dispatch.Progress] = []
    d = make(3600)
    d.on_progress = events.append
    second = await d.run([*rows(10), *rows(5, start=100)], job_id="monday-again")
    assert (second.skipped, second.sent) == (10, 5)
    assert events[-1].skipped == 10
    assert len(gw.accepted) == 15

    now[0] += 7200  # outside the window now
    third = await make(3600).run(rows(10), job_id="tuesday")
    assert third.sent == 10
    fourth = await make(None).run(rows(10), job_id="wednesday")  # no window: sent again
    assert fourth.sent == 10


async def test_recent_sends_carry_the_reason() -> None:
    journal = MemoryJournal()
    gw = FakeGateway()
    await BulkDispatcher(gw, journal=journal).run(rows(3), job_id="a")
    d = BulkDispatcher(gw, journal=journal, recent_window=60)
    reasons = [o.reason async for o in d.stream(rows(3), job_id="b")]
    assert reasons == [REASON_SENT_RECENTLY] * 3
