"""WebhookPusher (smsgate.testing): what it pushes, when, how often, and its retry bounds."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from smsgate import ConfigurationError
from smsgate.testing import FakeClock, FakeProvider, WebhookPusher
from smsgate.testing._webhook_pusher import _line_e164
from smsgate.webhooks import parse_kapanel_delivery

URL = "http://127.0.0.1:9/hook"


def _send(fake: FakeProvider, numbers: list[str], sender: str = "+983000505") -> str:
    """Send through the fake's ippanel half directly (no HTTP), returning the bulk id."""
    answer = fake.ippanel.answer(
        {
            "uname": "user",
            "pass": "secret-pass",
            "op": "send",
            "from": sender,
            "to": json.dumps(numbers),
            "message": "hi",
        }
    )
    assert answer[0] == 0, answer
    return str(answer[1])


class Hook:
    """A scripted webhook: answers from a list of statuses (or raises), records requests."""

    def __init__(self, *answers: int | Exception) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0) if self.answers else 200
        if isinstance(answer, Exception):
            raise answer
        headers = {"location": "http://127.0.0.1:9/elsewhere"} if 300 <= answer < 400 else {}
        return httpx.Response(answer, json={"ok": answer < 300}, headers=headers)

    def bodies(self) -> list[dict[str, Any]]:
        return [json.loads(r.content) for r in self.requests]


def _pusher(
    fake: FakeProvider, hook: Callable[[httpx.Request], httpx.Response], **kw: Any
) -> WebhookPusher:
    return WebhookPusher(fake, URL, transport=httpx.MockTransport(hook), backoff=0, **kw)


@pytest.fixture
def clock() -> FakeClock:
    """The fake's clock."""
    return FakeClock()


@pytest.fixture
def slow_fake(clock: FakeClock) -> FakeProvider:
    """A fake whose time moves only when the test says."""
    return FakeProvider(clock=clock)


def test_pushes_final_states_once(slow_fake: FakeProvider, clock: FakeClock) -> None:
    """Nothing before a state is final; each final (bulk, recipient) exactly once after."""
    hook = Hook()
    bulk = _send(slow_fake, ["09121234567", "09351234567"])
    pusher = _pusher(slow_fake, hook)
    try:
        assert pusher.push_pending() == 0
        clock.advance(5)  # "pending": still not final
        assert pusher.push_pending() == 0
        clock.advance(3600)
        assert pusher.push_pending() == 2
        assert pusher.push_pending() == 0
        second = _send(slow_fake, ["09121234567"])
        clock.advance(3600)
        assert pusher.push_pending() == 1
    finally:
        pusher.stop()
    assert [(b["message_id"], b["to"], b["status"]) for b in hook.bodies()] == [
        (int(bulk), "+989121234567", "delivered"),
        (int(bulk), "+989351234567", "delivered"),
        (int(second), "+989121234567", "delivered"),
    ]
    assert [(p.bulk_id, p.attempts, p.status_code) for p in pusher.pushed] == [
        (bulk, 1, 200),
        (bulk, 1, 200),
        (second, 1, 200),
    ]


def test_payload_is_section_8_and_parses(slow_fake: FakeProvider, clock: FakeClock) -> None:
    """The body is the §8 proposal (JSON, +98 numbers, RFC 3339 UTC) and our parser reads it."""
    hook = Hook()
    slow_fake.opt_out("09191234567")
    slow_fake.ippanel.undeliverable.add("+989351234567")
    _send(slow_fake, ["09121234567", "09351234567", "09191234567"], sender="3000505")
    clock.advance(3600)
    pusher = _pusher(slow_fake, hook)
    try:
        pusher.push_pending()
    finally:
        pusher.stop()
    request = hook.requests[0]
    assert request.method == "POST"
    assert request.headers["content-type"] == "application/json"
    statuses = []
    for r in hook.requests:
        [report] = parse_kapanel_delivery(r.content, r.headers)
        statuses.append((report.recipient, report.provider_status, report.is_final))
    assert statuses == [
        ("+989121234567", "delivered", True),
        ("+989351234567", "failed", True),
        ("+989191234567", "discarded", True),
    ]
    body = hook.bodies()[0]
    assert body["from"] == "+983000505"
    assert body["date"].endswith("Z") and "T" in body["date"]


def test_retries_server_errors_then_succeeds(slow_fake: FakeProvider, clock: FakeClock) -> None:
    """5xx, 429 and connection errors are retried, within the bound."""
    hook = Hook(500, httpx.ConnectError("refused"), 429, 200)
    _send(slow_fake, ["09121234567"])
    clock.advance(3600)
    pusher = _pusher(slow_fake, hook, retries=3)
    try:
        assert pusher.push_pending() == 1
    finally:
        pusher.stop()
    assert [(p.attempts, p.status_code) for p in pusher.pushed] == [(4, 200)]
    assert len(hook.requests) == 4


def test_gives_up_after_bounded_retries(slow_fake: FakeProvider, clock: FakeClock) -> None:
    """After 1 + retries failed attempts the report is given up on, and not tried again."""
    hook = Hook(503, 503, 503, 503)
    _send(slow_fake, ["09121234567"])
    clock.advance(3600)
    pusher = _pusher(slow_fake, hook, retries=2)
    try:
        assert pusher.push_pending() == 0
        assert pusher.push_pending() == 0
    finally:
        pusher.stop()
    assert [(f.attempts, f.status_code, f.error) for f in pusher.failed] == [(3, 503, "HTTP 503")]
    assert len(hook.requests) == 3


def test_timeouts_are_failures(slow_fake: FakeProvider, clock: FakeClock) -> None:
    """A read timeout counts as a failed attempt with no status."""
    hook = Hook(httpx.ReadTimeout("slow"), httpx.ReadTimeout("slow"))
    _send(slow_fake, ["09121234567"])
    clock.advance(3600)
    pusher = _pusher(slow_fake, hook, retries=1)
    try:
        pusher.push_pending()
    finally:
        pusher.stop()
    assert [(f.attempts, f.status_code, f.error) for f in pusher.failed] == [
        (2, None, "ReadTimeout: slow")
    ]


@pytest.mark.parametrize("status", [400, 403, 413, 422, 302])
def test_client_errors_and_redirects_are_not_retried(
    slow_fake: FakeProvider, clock: FakeClock, status: int
) -> None:
    """4xx is the receiver refusing the report; a redirect is not followed (§8)."""
    hook = Hook(status)
    _send(slow_fake, ["09121234567"])
    clock.advance(3600)
    pusher = _pusher(slow_fake, hook, retries=5)
    try:
        pusher.push_pending()
    finally:
        pusher.stop()
    assert [(f.attempts, f.status_code) for f in pusher.failed] == [(1, status)]
    assert [str(r.url) for r in hook.requests] == [URL]


def test_background_thread_and_wait_for(slow_fake: FakeProvider, clock: FakeClock) -> None:
    """As a context manager it scans in a thread; wait_for is bounded either way."""
    hook = Hook()
    _send(slow_fake, ["09121234567"])
    with _pusher(slow_fake, hook, interval=0.01) as pusher:
        assert pusher.wait_for(1, timeout=0.05) is False  # nothing final yet
        clock.advance(3600)
        assert pusher.wait_for(1, timeout=10)
        with pytest.raises(RuntimeError, match="already running"):
            pusher.start()
    assert pusher.errors == []
    assert "pushed=1" in repr(pusher)


def test_background_errors_are_kept(slow_fake: FakeProvider) -> None:
    """An exception in a background scan is recorded and scanning goes on."""
    pusher = _pusher(slow_fake, Hook(), interval=0.01)

    def broken() -> list[str]:
        raise KeyError("gone")

    slow_fake.ippanel.bulks = broken  # type: ignore[method-assign]
    with pusher:
        for _ in range(500):
            if len(pusher.errors) >= 2:
                break
            time.sleep(0.01)
    assert len(pusher.errors) >= 2
    assert all(isinstance(e, KeyError) for e in pusher.errors)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8000/x",
        "http://127.8.9.10/x",
        "http://localhost/x",
        "http://[::1]:80/x",
        "https://127.0.0.1/x",
    ],
)
def test_loopback_urls_allowed(fake: FakeProvider, url: str) -> None:
    """Loopback URLs are accepted."""
    pusher = WebhookPusher(fake, url)
    pusher.stop()
    assert pusher.url == url


@pytest.mark.parametrize(
    ("url", "kwargs"),
    [
        ("http://example.com/hook", {}),
        ("http://10.0.0.1/hook", {}),
        ("ftp://127.0.0.1/hook", {}),
        ("/relative", {}),
        (URL, {"interval": 0}),
        (URL, {"timeout": 0}),
        (URL, {"retries": -1}),
        (URL, {"backoff": -1}),
    ],
)
def test_bad_settings(fake: FakeProvider, url: str, kwargs: dict[str, Any]) -> None:
    """Remote hosts (unless allowed), other schemes and impossible timings are refused."""
    with pytest.raises(ConfigurationError):
        WebhookPusher(fake, url, **kwargs)


def test_remote_allowed_when_asked(fake: FakeProvider) -> None:
    """allow_remote=True lifts the loopback guard (no request is made here)."""
    pusher = WebhookPusher(fake, "https://example.com/hook", allow_remote=True)
    pusher.stop()
    assert pusher.pushed == [] and pusher.failed == []


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("+983000505", "+983000505"),
        ("983000505", "+983000505"),
        ("3000505", "+983000505"),
        ("03000505", "+983000505"),
        ("00983000505", "+983000505"),
        (None, ""),
    ],
)
def test_sender_line_format(line: str | None, expected: str) -> None:
    """Sender lines get the country code and '+' (§8), whatever form the send used."""
    assert _line_e164(line) == expected
