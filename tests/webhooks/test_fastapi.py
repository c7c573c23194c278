"""smsgate.fastapi in-process: every answer of delivery_router, and gateway_lifespan."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, MutableMapping, Sequence
from contextlib import asynccontextmanager
from types import TracebackType
from typing import Annotated, Any, Self

import anyio
import httpx
import pytest
from fastapi import Depends, FastAPI

from smsgate import ConfigurationError, DeliveryReport, DeliveryState, SendReceipt, SmsGateway
from smsgate.fastapi import delivery_router, gateway_lifespan, get_gateway, receiver_router
from smsgate.webhooks import WebhookReceiver

pytestmark = pytest.mark.anyio

SECRET = "Zk2v9Qp0-webhook_secret.token~"
PROVIDER_IP = "203.0.113.7"
REPORT = {
    "message_id": 562892393,
    "from": "+983000505",
    "to": "+989121234567",
    "status": "delivered",
    "date": "2024-05-01T08:30:00Z",
}
BODY = json.dumps(REPORT).encode()
JSON = {"content-type": "application/json"}


class Recorder:
    """An on_report that keeps what it gets."""

    def __init__(self) -> None:
        self.reports: list[DeliveryReport] = []

    async def __call__(self, report: DeliveryReport) -> None:
        self.reports.append(report)


def _app(on_report: Any, **options: Any) -> FastAPI:
    app = FastAPI()
    app.include_router(delivery_router(on_report, **options))
    return app


@asynccontextmanager
async def _client(app: FastAPI, source: str = PROVIDER_IP) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, client=(source, 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://hooks.test") as client:
        yield client


# -- 200 and idempotency -------------------------------------------------------------------


async def test_accepts_and_calls_on_report() -> None:
    """A good push answers 200 with the count, and on_report gets the parsed report."""
    seen = Recorder()
    async with _client(_app(seen)) as client:
        answer = await client.post("/sms/delivery", content=BODY, headers=JSON)
    assert answer.status_code == 200
    assert answer.json() == {"ok": True, "accepted": 1, "duplicates": 0}
    assert [(r.message_id, r.recipient, r.state) for r in seen.reports] == [
        ("562892393", "+989121234567", DeliveryState.DELIVERED)
    ]


async def test_repeated_report_counts_once() -> None:
    """The same report pushed twice is acknowledged twice but handed on once."""
    seen = Recorder()
    async with _client(_app(seen)) as client:
        first = await client.post("/sms/delivery", content=BODY, headers=JSON)
        again = await client.post("/sms/delivery", content=BODY, headers=JSON)
        batch = await client.post(
            "/sms/delivery",
            json=[REPORT, {**REPORT, "status": "failed", "to": "09351234567"}],
        )
    assert (first.status_code, again.status_code, batch.status_code) == (200, 200, 200)
    assert again.json() == {"ok": True, "accepted": 0, "duplicates": 1}
    assert batch.json() == {"ok": True, "accepted": 1, "duplicates": 1}
    assert [r.recipient for r in seen.reports] == ["+989121234567", "+989351234567"]


async def test_shared_dedupe_store_across_routers() -> None:
    """Two routers given one store (two workers behind a shared store) dedupe together."""
    from smsgate.webhooks import MemoryDedupeStore

    store = MemoryDedupeStore()
    seen = Recorder()
    app = FastAPI()
    app.include_router(delivery_router(seen, path="/a", dedupe=store))
    app.include_router(delivery_router(seen, path="/b", dedupe=store))
    async with _client(app) as client:
        await client.post("/a", content=BODY)
        answer = await client.post("/b", content=BODY)
    assert answer.json()["duplicates"] == 1
    assert len(seen.reports) == 1


async def test_empty_batch() -> None:
    """An empty array is a valid push of nothing."""
    seen = Recorder()
    async with _client(_app(seen)) as client:
        answer = await client.post("/sms/delivery", content=b"[]")
    assert answer.json() == {"ok": True, "accepted": 0, "duplicates": 0}
    assert seen.reports == []


# -- rejections ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "headers", "status"),
    [
        (b"{not json", JSON, 400),
        (b"", JSON, 400),
        (b"\xff\xfe\xfa", JSON, 400),
        (BODY, {"content-type": "application/json; charset=rot13"}, 400),
        (b'{"message_id": 1}', JSON, 422),
        (b"[1, 2]", JSON, 422),
        (b'"delivered"', JSON, 422),
        (json.dumps({**REPORT, "to": "12345"}).encode(), JSON, 422),
        (json.dumps({**REPORT, "date": "yesterday"}).encode(), JSON, 422),
    ],
)
async def test_bad_bodies(body: bytes, headers: dict[str, str], status: int) -> None:
    """Not JSON -> 400; JSON but not a report -> 422; on_report is never called."""
    seen = Recorder()
    async with _client(_app(seen)) as client:
        answer = await client.post("/sms/delivery", content=body, headers=headers)
    assert answer.status_code == status
    assert answer.json()["ok"] is False
    assert answer.json()["error"]
    assert seen.reports == []


async def test_bad_content_length_header() -> None:
    """A Content-Length that is not a number is 400 (raw ASGI: httpx would not send one)."""
    seen = Recorder()
    messages = await _raw(_app(seen), [BODY], headers=[(b"content-length", b"12x")])
    assert _status(messages) == 400
    assert seen.reports == []


async def test_declared_length_over_cap() -> None:
    """A declared Content-Length over max_body is 413 before the body is read."""
    seen = Recorder()
    reads: list[int] = []
    messages = await _raw(
        _app(seen, max_body=100),
        [b"x" * 50] * 3,
        headers=[(b"content-length", b"150")],
        reads=reads,
    )
    assert _status(messages) == 413
    assert reads == []  # not one chunk was read
    assert seen.reports == []


async def test_streamed_body_over_cap() -> None:
    """A body with no Content-Length (chunked) is cut off at the cap with 413."""

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(100):
            yield b" " * 1000

    seen = Recorder()
    async with _client(_app(seen, max_body=4096)) as client:
        answer = await client.post("/sms/delivery", content=chunks(), headers=JSON)
    assert answer.status_code == 413
    assert seen.reports == []


async def test_lying_content_length_is_capped() -> None:
    """A Content-Length under the cap followed by a larger body is still 413."""
    seen = Recorder()
    reads: list[int] = []
    messages = await _raw(
        _app(seen, max_body=1000),
        [b" " * 600] * 10,
        headers=[(b"content-length", b"20")],
        reads=reads,
    )
    assert _status(messages) == 413
    assert len(reads) == 2  # it stopped reading as soon as the cap was passed
    assert seen.reports == []


async def test_body_at_cap_passes() -> None:
    """A body of exactly max_body bytes is accepted."""
    seen = Recorder()
    async with _client(_app(seen, max_body=len(BODY))) as client:
        answer = await client.post("/sms/delivery", content=BODY)
    assert answer.status_code == 200


async def test_slow_body_is_408() -> None:
    """A body that does not arrive within body_timeout is 408, and nothing is handed on."""
    seen = Recorder()
    with anyio.fail_after(5):
        messages = await _raw(_app(seen, body_timeout=0.05), [b"{"], stall=True)
    assert _status(messages) == 408
    assert seen.reports == []


@pytest.mark.parametrize(
    ("allowed", "source", "status"),
    [
        ([PROVIDER_IP], PROVIDER_IP, 200),
        ([PROVIDER_IP], "198.51.100.9", 403),
        (["203.0.113.0/24"], "203.0.113.250", 200),
        (["203.0.113.0/24"], "203.0.114.1", 403),
        (["2001:db8::/48"], "2001:db8::5", 200),
        (None, "198.51.100.9", 200),
    ],
)
async def test_source_allow_list(allowed: Any, source: str, status: int) -> None:
    """Pushes from outside allowed_sources are 403 and never parsed."""
    seen = Recorder()
    async with _client(_app(seen, allowed_sources=allowed), source=source) as client:
        answer = await client.post("/sms/delivery", content=BODY)
    assert answer.status_code == status
    assert len(seen.reports) == (1 if status == 200 else 0)


async def test_source_refused_before_body_is_read() -> None:
    """A refused source is answered without reading its body."""
    reads: list[int] = []
    messages = await _raw(
        _app(Recorder(), allowed_sources=["10.0.0.0/8"]),
        [BODY],
        client=("192.0.2.1", 1),
        reads=reads,
    )
    assert _status(messages) == 403
    assert reads == []


@pytest.mark.parametrize(
    ("url", "headers", "status"),
    [
        (f"/sms/delivery/{SECRET}", {}, 200),
        ("/sms/delivery", {"X-Smsgate-Token": SECRET}, 200),
        ("/sms/delivery", {"x-smsgate-token": SECRET}, 200),
        ("/sms/delivery", {}, 403),
        ("/sms/delivery/wrong-token-of-some-length", {}, 403),
        (f"/sms/delivery/{SECRET[:-1]}", {}, 403),
        ("/sms/delivery", {"X-Smsgate-Token": "nope"}, 403),
        # The path token wins over the header: a wrong path is refused even with a good header.
        ("/sms/delivery/wrong", {"X-Smsgate-Token": SECRET}, 403),
        (f"/sms/delivery/{SECRET}/extra", {}, 404),
    ],
)
async def test_secret(url: str, headers: dict[str, str], status: int) -> None:
    """The secret works as the last path segment or the token header; anything else is 403."""
    seen = Recorder()
    async with _client(_app(seen, secret=SECRET)) as client:
        answer = await client.post(url, content=BODY, headers=headers)
    assert answer.status_code == status
    assert len(seen.reports) == (1 if status == 200 else 0)
    assert SECRET not in answer.text


async def test_secret_never_logged(caplog: pytest.LogCaptureFixture) -> None:
    """Refusals are logged with the reason and source, never with the secret."""
    with caplog.at_level(logging.DEBUG, logger="smsgate"):
        async with _client(_app(Recorder(), secret=SECRET)) as client:
            await client.post(f"/sms/delivery/{SECRET}x", content=BODY)
            await client.post("/sms/delivery", content=b"{", headers={"X-Smsgate-Token": SECRET})
    assert "refused a delivery push from 203.0.113.7 (HTTP 403)" in caplog.text
    assert "HTTP 400" in caplog.text
    assert SECRET not in caplog.text


async def test_no_token_route_without_secret() -> None:
    """Without a secret there is no ``{path}/{token}`` route; other methods are 405."""
    async with _client(_app(Recorder())) as client:
        assert (await client.post("/sms/delivery/anything", content=BODY)).status_code == 404
        assert (await client.get("/sms/delivery")).status_code == 405


async def test_custom_path_and_header() -> None:
    """path and token_header are honoured."""
    seen = Recorder()
    app = _app(seen, path="/hooks/kapanel", secret=SECRET, token_header="X-Hook-Key")
    async with _client(app) as client:
        answer = await client.post("/hooks/kapanel", content=BODY, headers={"X-Hook-Key": SECRET})
    assert answer.status_code == 200
    assert len(seen.reports) == 1


@pytest.mark.parametrize(
    "options",
    [
        {"path": "sms"},
        {"path": "/sms/"},
        {"body_timeout": 0},
        {"secret": "short"},
        {"allowed_sources": []},
        {"max_body": 0},
    ],
)
def test_bad_router_options(options: dict[str, Any]) -> None:
    """Router settings that cannot work are refused when the router is built."""
    with pytest.raises(ConfigurationError):
        delivery_router(Recorder(), **options)


async def test_receiver_router_with_own_receiver() -> None:
    """receiver_router mounts a receiver built by hand."""
    seen = Recorder()
    app = FastAPI()
    app.include_router(receiver_router(WebhookReceiver(seen), path="/x"))
    async with _client(app) as client:
        assert (await client.post("/x", content=BODY)).status_code == 200
    assert len(seen.reports) == 1


# -- answers before the callback runs --------------------------------------------------------


async def test_answer_is_sent_before_on_report_runs() -> None:
    """The response is complete before on_report starts, so a slow callback cannot delay it."""
    answered = anyio.Event()
    state: dict[str, Any] = {}

    async def slow_on_report(report: DeliveryReport) -> None:
        state["answered_first"] = answered.is_set()
        await anyio.sleep(0.05)  # stands for a slow database write
        state["done"] = True

    def on_message(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.body" and not message.get("more_body"):
            answered.set()

    with anyio.fail_after(5):
        messages = await _raw(_app(slow_on_report), [BODY], on_message=on_message)
    assert _status(messages) == 200
    assert state == {"answered_first": True, "done": True}


async def test_failing_on_report_still_answers_200(caplog: pytest.LogCaptureFixture) -> None:
    """A raising callback does not change the provider's answer; it is logged."""

    async def broken(report: DeliveryReport) -> None:
        raise RuntimeError("db down")

    with caplog.at_level(logging.ERROR, logger="smsgate.webhooks"):
        async with _client(_app(broken)) as client:
            answer = await client.post("/sms/delivery", content=BODY)
    assert answer.status_code == 200
    assert "db down" in caplog.text


# -- gateway_lifespan ----------------------------------------------------------------------


class FakeGateway:
    """A minimal SmsGateway that records its lifecycle."""

    name = "fake"
    max_recipients = 100

    def __init__(self) -> None:
        self.events: list[str] = []

    async def send(
        self, to: str | Sequence[str], text: str, *, sender: str | None = None
    ) -> SendReceipt:
        numbers = (to,) if isinstance(to, str) else tuple(to)
        return SendReceipt(
            message_id="1",
            message_ids=dict.fromkeys(numbers, "1"),
            provider="fake",
            recipients=numbers,
        )

    async def delivery(self, ref: SendReceipt | str, /) -> list[DeliveryReport]:
        return []

    async def aclose(self) -> None:
        self.events.append("closed")

    async def __aenter__(self) -> Self:
        self.events.append("opened")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


async def test_lifespan_opens_shares_and_closes() -> None:
    """One gateway is opened at start-up, shared through Depends, and closed at shutdown."""
    made: list[FakeGateway] = []

    def factory() -> FakeGateway:
        made.append(FakeGateway())
        return made[-1]

    sms = gateway_lifespan(factory)
    app = FastAPI(lifespan=sms)

    # A default, not Annotated: with postponed annotations FastAPI resolves annotation
    # strings in module globals, where this function's local ``sms`` is not.
    @app.post("/send")
    async def send(to: str, gateway: FakeGateway = Depends(sms.gateway)) -> dict[str, Any]:  # noqa: B008
        receipt = await gateway.send(to, "hi")
        return {"id": receipt.message_id, "same": gateway is made[0]}

    @app.get("/default")
    async def default(gateway: Annotated[SmsGateway, Depends(get_gateway)]) -> str:
        return gateway.name

    async with sms(app):
        assert made[0].events == ["opened"]
        async with _client(app) as client:
            first = await client.post("/send", params={"to": "09121234567"})
            second = await client.post("/send", params={"to": "09351234567"})
            named = await client.get("/default")
    assert first.json() == second.json() == {"id": "1", "same": True}
    assert named.json() == "fake"
    assert len(made) == 1
    assert made[0].events == ["opened", "closed"]
    # After shutdown the dependency says so instead of handing out a closed gateway.
    async with _client(app) as client:
        with pytest.raises(RuntimeError, match=r"no gateway on app\.state\.sms_gateway"):
            await client.post("/send", params={"to": "09121234567"})
    assert "sms_gateway" in repr(sms)


async def test_lifespan_async_factory_custom_key_and_inner_lifespan() -> None:
    """An async factory, a custom key, and the user's own lifespan running inside."""
    gateway = FakeGateway()
    inner_saw: list[bool] = []

    async def factory() -> FakeGateway:
        return gateway

    @asynccontextmanager
    async def mine(app: FastAPI) -> AsyncIterator[None]:
        inner_saw.append(app.state.backup is gateway and gateway.events == ["opened"])
        yield
        inner_saw.append(gateway.events == ["opened"])  # the gateway outlives the inner lifespan

    sms = gateway_lifespan(factory, key="backup", lifespan=mine)
    app = FastAPI(lifespan=sms)
    async with sms(app):
        pass
    assert inner_saw == [True, True]
    assert gateway.events == ["opened", "closed"]


async def test_lifespan_closes_on_failed_startup() -> None:
    """If the app's own start-up fails, the gateway is still closed."""
    gateway = FakeGateway()

    @asynccontextmanager
    async def broken(app: FastAPI) -> AsyncIterator[None]:
        raise RuntimeError("migration failed")
        yield  # pragma: no cover

    sms = gateway_lifespan(lambda: gateway, lifespan=broken)
    with pytest.raises(RuntimeError, match="migration failed"):
        async with sms(FastAPI()):
            pass  # pragma: no cover
    assert gateway.events == ["opened", "closed"]


def test_lifespan_key_must_be_identifier() -> None:
    """A key that cannot be an attribute name is refused."""
    with pytest.raises(ConfigurationError):
        gateway_lifespan(FakeGateway, key="not a name")


# -- raw ASGI driver -------------------------------------------------------------------------


async def _raw(
    app: FastAPI,
    chunks: list[bytes],
    *,
    headers: Sequence[tuple[bytes, bytes]] = (),
    client: tuple[str, int] = (PROVIDER_IP, 40000),
    reads: list[int] | None = None,
    stall: bool = False,
    on_message: Any = None,
) -> list[dict[str, Any]]:
    """Call the app directly, to send what an HTTP client would not (lies, stalls)."""
    pending = list(chunks)
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        if pending:
            chunk = pending.pop(0)
            if reads is not None:
                reads.append(len(chunk))
            return {"type": "http.request", "body": chunk, "more_body": bool(pending) or stall}
        if stall:
            await anyio.sleep_forever()
        await anyio.sleep_forever()  # the request is over: wait like a server for a disconnect
        raise AssertionError("unreachable")

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(dict(message))
        if on_message is not None:
            on_message(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/sms/delivery",
        "raw_path": b"/sms/delivery",
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"hooks.test"), *headers],
        "client": client,
        "server": ("127.0.0.1", 8000),
    }
    await app(scope, receive, send)
    return sent


def _status(messages: list[dict[str, Any]]) -> int:
    starts = [m for m in messages if m["type"] == "http.response.start"]
    assert len(starts) == 1
    return int(starts[0]["status"])


class FailingStore:
    """A dedupe store that works for ``works`` keys, then fails (a Redis outage)."""

    def __init__(self, works: int) -> None:
        self.works = works
        self.keys: set[str] = set()

    async def seen(self, key: str) -> bool:
        if self.works <= 0:
            raise ConnectionError("store down")
        self.works -= 1
        if key in self.keys:
            return True
        self.keys.add(key)
        return False


async def test_failing_dedupe_store_loses_nothing(caplog: pytest.LogCaptureFixture) -> None:
    """A store failing mid-push: the checked reports are delivered, the rest get a 503
    so the provider pushes them again, and the retry delivers each report exactly once."""
    seen = Recorder()
    store = FailingStore(works=1)
    reports = [dict(REPORT, to=f"+98912123456{i}") for i in range(3)]
    body = json.dumps(reports).encode()
    with caplog.at_level(logging.ERROR):
        async with _client(_app(seen, dedupe=store)) as client:
            first = await client.post("/sms/delivery", content=body, headers=JSON)
            store.works = 10  # the store is back
            retry = await client.post("/sms/delivery", content=body, headers=JSON)
    assert first.status_code == 503
    assert retry.status_code == 200
    assert retry.json() == {"ok": True, "accepted": 2, "duplicates": 1}
    assert sorted(r.recipient or "" for r in seen.reports) == [f"+98912123456{i}" for i in range(3)]
    assert "dedupe store failed" in caplog.text


async def test_plain_function_on_report_runs_off_the_event_loop() -> None:
    """A synchronous on_report runs in a worker thread, not on the event loop."""
    import threading

    threads: list[int] = []

    def on_report(report: DeliveryReport) -> None:
        threads.append(threading.get_ident())

    async with _client(_app(on_report)) as client:
        answer = await client.post("/sms/delivery", content=BODY, headers=JSON)
    assert answer.status_code == 200
    assert len(threads) == 1
    assert threads[0] != threading.get_ident()


def test_open_router_is_warned_about(caplog: pytest.LogCaptureFixture) -> None:
    """A router with neither a secret nor an allow-list logs a warning once, at build time."""
    with caplog.at_level(logging.WARNING, logger="smsgate.webhooks"):
        delivery_router(Recorder())
        delivery_router(Recorder(), secret=SECRET)
    warnings = [r for r in caplog.records if "neither a secret" in r.getMessage()]
    assert len(warnings) == 1


@pytest.mark.parametrize(("interval", "lines"), [(0, 5), (1e9, 1)])
async def test_refusals_logged_per_interval(
    caplog: pytest.LogCaptureFixture, interval: float, lines: int
) -> None:
    """log_interval=0 logs each refused push; a long interval logs the first one only."""
    app = _app(Recorder(), allowed_sources=[PROVIDER_IP], log_interval=interval)
    with caplog.at_level(logging.WARNING, logger="smsgate.webhooks"):
        async with _client(app, source="198.51.100.9") as client:
            for _ in range(5):
                assert (await client.post("/sms/delivery", content=BODY)).status_code == 403
    refused = [r for r in caplog.records if "refused a delivery push" in r.getMessage()]
    assert len(refused) == lines


@pytest.mark.parametrize(
    ("trusted", "status"), [(None, 403), (["10.0.0.5"], 200), (["10.0.0.0/24"], 200)]
)
async def test_trusted_proxies_in_process(trusted: Any, status: int) -> None:
    """X-Forwarded-For is read only when the peer (here 10.0.0.5) is a trusted proxy."""
    seen = Recorder()
    app = _app(seen, allowed_sources=[PROVIDER_IP], trusted_proxies=trusted)
    async with _client(app, source="10.0.0.5") as client:
        answer = await client.post(
            "/sms/delivery", content=BODY, headers={"X-Forwarded-For": f"1.1.1.1, {PROVIDER_IP}"}
        )
    assert answer.status_code == status
    assert len(seen.reports) == (1 if status == 200 else 0)
