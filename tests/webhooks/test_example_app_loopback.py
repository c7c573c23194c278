"""The whole loop on real sockets: example app -> fake provider -> webhook push -> on_report.

Two uvicorn servers on 127.0.0.1 (the fake provider and docs/examples/webhook_app.py), the
fake's WebhookPusher between them, and the fake's clock moved by hand so that delivery
states turn final at once.
"""

from __future__ import annotations

import contextlib
import importlib.util
import queue
import threading
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import anyio.to_thread
import httpx
import pytest

from smsgate import DeliveryReport, DeliveryState
from smsgate.testing import FakeClock, FakeProvider, WebhookPusher, serve_loopback

pytestmark = pytest.mark.loopback

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "examples" / "webhook_app.py"
SECRET = "loopback-test-secret-0123456789"
DEADLINE = 10.0  # seconds: every wait below is bounded by this


def _example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("webhook_app_under_test", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@contextlib.contextmanager
def _running_app(
    fake: FakeProvider, on_report: Any, **options: Any
) -> Iterator[tuple[str, httpx.Client]]:
    """The fake and the example app, each served on 127.0.0.1; yields the app's URL and a
    client for it."""
    with serve_loopback(fake) as provider:
        app = _example().create_app(
            username="user",
            password="secret-pass",
            sender="+983000505",
            base_url=provider.url,
            secret=SECRET,
            on_report=on_report,
            **options,
        )
        with (
            serve_loopback(app, lifespan="on") as web,
            httpx.Client(base_url=web.url, timeout=DEADLINE) as client,
        ):
            yield web.url, client


def _drain(q: queue.Queue[DeliveryReport], count: int) -> list[DeliveryReport]:
    return [q.get(timeout=DEADLINE) for _ in range(count)]


def test_send_push_receive() -> None:
    """A send through the app reaches the fake; final states are pushed back to on_report."""
    clock = FakeClock()
    fake = FakeProvider(clock=clock)
    fake.opt_out("09191234567")  # ends "discarded": the operator's black list
    received: queue.Queue[DeliveryReport] = queue.Queue()

    async def on_report(report: DeliveryReport) -> None:
        received.put(report)

    with _running_app(fake, on_report, allowed_sources=["127.0.0.0/8"]) as (web_url, client):
        pusher = WebhookPusher(fake, f"{web_url}/sms/delivery/{SECRET}", interval=0.02)
        with pusher:
            answer = client.post(
                "/send",
                json={"to": ["09121234567", "0935 123 4567", "09191234567"], "text": "سلام"},
            )
            assert answer.status_code == 200, answer.text
            bulk_id = answer.json()["message_id"]
            assert answer.json()["recipients"] == [
                "+989121234567",
                "+989351234567",
                "+989191234567",
            ]
            # The send is in the provider's own ledger; nothing is final yet.
            assert [e.message_id for e in fake.ledger] == [bulk_id] * 3
            assert pusher.push_pending() == 0
            assert received.empty()

            clock.advance(3600)  # every timeline is final (the fake's default: <= 15 s)
            assert pusher.wait_for(3, timeout=DEADLINE), (pusher.pushed, pusher.failed)
            reports = _drain(received, 3)

            # The app's own view of what it received.
            shown = client.get("/reports").json()

        assert pusher.failed == [] and pusher.errors == []
        assert all(p.status_code == 200 and p.attempts == 1 for p in pusher.pushed)

    assert sorted((r.message_id, r.recipient, r.state) for r in reports) == [
        (bulk_id, "+989121234567", DeliveryState.DELIVERED),
        (bulk_id, "+989191234567", DeliveryState.BLOCKED),
        (bulk_id, "+989351234567", DeliveryState.DELIVERED),
    ]
    assert all(r.is_final and r.at is not None and r.provider == "ippanel" for r in reports)
    assert sorted(r["recipient"] for r in shown) == [
        "+989121234567",
        "+989191234567",
        "+989351234567",
    ]
    # The pushed payload is the one protocols/ippanel.md §8 proposes.
    payload = dict(pusher.pushed[0].payload)
    assert set(payload) == {"message_id", "from", "to", "status", "date"}
    assert payload["from"] == "+983000505"
    assert payload["date"].endswith("Z")


def test_answers_before_on_report_finishes() -> None:
    """On a real server the push is answered while on_report is still blocked."""
    clock = FakeClock()
    fake = FakeProvider(clock=clock)
    release = threading.Event()
    started: queue.Queue[str] = queue.Queue()
    received: queue.Queue[DeliveryReport] = queue.Queue()

    async def slow_on_report(report: DeliveryReport) -> None:
        started.put(report.recipient or "")
        # Stands for a slow database: blocks until the test lets it go (bounded).
        await anyio.to_thread.run_sync(release.wait, DEADLINE)
        received.put(report)

    with _running_app(fake, slow_on_report) as (web_url, client):
        answer = client.post("/send", json={"to": ["09121234567", "09351234567"], "text": "hi"})
        assert answer.status_code == 200, answer.text
        clock.advance(3600)
        with WebhookPusher(
            fake, f"{web_url}/sms/delivery", headers={"X-Smsgate-Token": SECRET}
        ) as pusher:
            # Both pushes get their 200 while every callback is still waiting.
            assert pusher.wait_for(2, timeout=DEADLINE), (pusher.pushed, pusher.failed)
            assert started.get(timeout=DEADLINE)
            assert received.empty()
            release.set()
            assert len(_drain(received, 2)) == 2


def test_refused_push_is_not_retried() -> None:
    """A wrong secret is answered 403 and the pusher gives up on it at once (4xx)."""
    clock = FakeClock()
    fake = FakeProvider(clock=clock)
    received: list[Any] = []

    async def on_report(report: DeliveryReport) -> None:
        received.append(report)

    with _running_app(fake, on_report) as (web_url, client):
        assert client.post("/send", json={"to": ["09121234567"], "text": "x"}).status_code == 200
        clock.advance(3600)
        pusher = WebhookPusher(fake, f"{web_url}/sms/delivery/not-the-secret")
        try:
            assert pusher.push_pending() == 0  # one scan by hand, no thread
        finally:
            pusher.stop()
    assert [(f.status_code, f.attempts, f.error) for f in pusher.failed] == [(403, 1, "HTTP 403")]
    assert received == []
