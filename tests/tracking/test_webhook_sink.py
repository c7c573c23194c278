"""Pushed delivery reports land in the job's journal through journal_sink and the router."""

from __future__ import annotations

import time

import anyio
import pytest
from fastapi import FastAPI

import smsgate
from smsgate import DeliveryState
from smsgate.dispatch import MemoryJournal
from smsgate.fastapi import delivery_router
from smsgate.testing import FakeClock, FakeProvider, WebhookPusher, serve_loopback
from smsgate.tracking import count_deliveries, journal_sink
from smsgate.webhooks import DEFAULT_TOKEN_HEADER

pytestmark = pytest.mark.loopback

SECRET = "a-long-random-webhook-secret"
NUMBERS = ["09121110001", "09121110002", "09121110003", "09350000001"]


@pytest.mark.anyio
async def test_pushed_reports_fill_the_journal() -> None:
    clock = FakeClock()
    fake = FakeProvider(clock=clock, opted_out=[NUMBERS[-1]])
    fake.ippanel.undeliverable = {smsgate.normalize_msisdn(NUMBERS[0])}
    journal = MemoryJournal()
    app = FastAPI()
    app.include_router(delivery_router(journal_sink(journal), secret=SECRET))
    with serve_loopback(fake) as provider, serve_loopback(app) as hooks:
        async with smsgate.IppanelGateway(
            username="user", password="secret-pass", sender="+983000505", base_url=provider.url
        ) as gw:
            report = await smsgate.BulkDispatcher(gw, journal=journal).run(
                [smsgate.Message(to=n, text="hi") for n in NUMBERS], job_id="push"
            )
        assert report.sent == len(NUMBERS)
        clock.advance(3600)
        pusher = WebhookPusher(
            fake, hooks.url + "/sms/delivery", headers={DEFAULT_TOKEN_HEADER: SECRET}
        )
        try:
            pushed = await anyio.to_thread.run_sync(pusher.push_pending)
        finally:
            pusher.stop()
        assert pushed == len(NUMBERS) and not pusher.failed
        # The router hands each report to the sink after answering: wait, bounded.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            rows = await journal.entries("push")
            if all(r.delivery is not None for r in rows):
                break
            await anyio.sleep(0.01)
    counts, _routes = count_deliveries(await journal.entries("push"))
    assert counts.as_dict() == {
        "sent": 4, "delivered": 2, "undelivered": 1, "blocked": 1, "rejected": 0, "pending": 0,
    }  # fmt: skip
    by_number = {r.recipient: r for r in await journal.entries("push")}
    blocked = by_number[smsgate.normalize_msisdn(NUMBERS[-1])]
    assert blocked.delivery is DeliveryState.BLOCKED and blocked.delivery_status == "discarded"
