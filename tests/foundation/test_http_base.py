"""HttpGateway: the one place httpx errors become smsgate errors, and the client lifecycle."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from typing import Any

import anyio
import httpx
import pytest

import smsgate
from smsgate import _telemetry
from smsgate.backends._http import HttpGateway, Scrubber, parse_retry_after
from smsgate.backends._httpx_transport import HttpxTransport

PASSWORD = "p@ss w/rd+ÿ"

pytestmark = pytest.mark.anyio


class Probe(HttpGateway):
    name = "probe"

    async def call(self, *, idempotent: bool = False) -> Any:
        answer = await self._request("POST", "/x", data={"pass": PASSWORD}, idempotent=idempotent)
        return self._json(answer, idempotent=idempotent)


def probe(handler: Callable[[httpx.Request], httpx.Response], **kwargs: Any) -> Probe:
    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return Probe(
        base_url="https://provider.example", http_client=client, secrets=[PASSWORD], **kwargs
    )


def _answer(text: str) -> Callable[[httpx.Request], httpx.Response]:
    return lambda request: httpx.Response(200, text=text)


def raising(exc: Exception) -> Callable[[httpx.Request], httpx.Response]:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc

    return handler


@pytest.mark.parametrize(
    ("exc", "expected", "maybe_sent"),
    [
        (httpx.ConnectError("refused"), smsgate.NotSentError, False),
        (httpx.ConnectTimeout("slow"), smsgate.NotSentError, False),
        (httpx.PoolTimeout("pool"), smsgate.NotSentError, False),
        (httpx.ReadTimeout("read"), smsgate.OutcomeUnknownError, True),
        (httpx.WriteTimeout("write"), smsgate.OutcomeUnknownError, True),
        (httpx.ReadError("reset"), smsgate.OutcomeUnknownError, True),
        (httpx.RemoteProtocolError("closed"), smsgate.OutcomeUnknownError, True),
        (httpx.DecodingError("gzip"), smsgate.ProtocolError, True),
        (ConnectionRefusedError(), smsgate.NotSentError, False),
        (ConnectionResetError(), smsgate.OutcomeUnknownError, True),
    ],
)
async def test_transport_errors_are_mapped(
    exc: Exception, expected: type[smsgate.SmsGateError], maybe_sent: bool
) -> None:
    """Before the body left: NotSentError; after: OutcomeUnknownError; never an httpx error."""
    gw = probe(raising(exc))
    with pytest.raises(expected) as info:
        await gw.call()
    assert info.value.maybe_sent is maybe_sent
    assert not isinstance(info.value, httpx.HTTPError)


async def test_idempotent_timeouts_are_retryable() -> None:
    """A timed-out query (credit, delivery) is retryable and was not 'maybe sent'."""
    gw = probe(raising(httpx.ReadTimeout("read")))
    with pytest.raises(smsgate.OutcomeUnknownError) as info:
        await gw.call(idempotent=True)
    assert info.value.retryable and not info.value.maybe_sent


@pytest.mark.parametrize(
    ("status", "maybe_sent"), [(500, True), (502, True), (503, False), (504, True)]
)
async def test_5xx(status: int, maybe_sent: bool) -> None:
    """HTTP 5xx is ProviderUnavailableError; only 503 says the send was surely not processed."""
    gw = probe(lambda r: httpx.Response(status, text="down"))
    with pytest.raises(smsgate.ProviderUnavailableError) as info:
        await gw.call()
    assert info.value.maybe_sent is maybe_sent
    assert info.value.fallback_ok is not maybe_sent
    assert info.value.retryable is not maybe_sent  # never "retry" what may have been sent
    assert info.value.code == f"HTTP {status}"


async def test_429_retry_after() -> None:
    """HTTP 429 is RateLimitedError carrying Retry-After in seconds."""
    gw = probe(lambda r: httpx.Response(429, headers={"Retry-After": "7"}))
    with pytest.raises(smsgate.RateLimitedError) as info:
        await gw.call()
    assert info.value.retry_after == 7.0


async def test_404_is_protocol_error_not_sent() -> None:
    """A wrong path answers 404: ProtocolError, and nothing was sent."""
    gw = probe(lambda r: httpx.Response(404, text="Not Found"))
    with pytest.raises(smsgate.ProtocolError) as info:
        await gw.call()
    assert info.value.status_code == 404 and not info.value.maybe_sent


async def test_redirect_not_followed() -> None:
    """Credentialed requests never follow redirects."""
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return httpx.Response(302, headers={"Location": "https://evil.example/steal"})

    gw = probe(handler)
    with pytest.raises(smsgate.ProtocolError):
        await gw.call()
    assert seen == ["https://provider.example/x"]


async def test_json_with_bom_and_html() -> None:
    """JSON is read whatever the content type, BOM included; HTML is a ProtocolError."""
    gw = probe(
        lambda r: httpx.Response(
            200, content=b'\xef\xbb\xbf[0, "1"]', headers={"content-type": "text/html"}
        )
    )
    assert await gw.call() == [0, "1"]
    html = probe(lambda r: httpx.Response(200, text="<html>busy</html>"))
    with pytest.raises(smsgate.ProtocolError) as info:
        await html.call()
    assert info.value.excerpt == "<html>busy</html>"


async def test_excerpt_is_scrubbed() -> None:
    """An answer that echoes the password never shows it in the error."""
    encoded = httpx.URL("https://x", params={"p": PASSWORD}).query.decode()
    for echoed in (PASSWORD, encoded, json.dumps(PASSWORD)):
        gw = probe(_answer(f"error for pass={echoed}"))
        with pytest.raises(smsgate.ProtocolError) as info:
            await gw.call()
        assert PASSWORD not in str(info.value) and PASSWORD not in repr(info.value)
        assert "***" in info.value.excerpt


async def test_huge_answer_refused() -> None:
    """An answer over the size cap is a ProtocolError, not a memory problem."""
    body = b"[" + b"0," * (3 * 1024 * 1024) + b"0]"
    gw = probe(lambda r: httpx.Response(200, content=body))
    with pytest.raises(smsgate.ProtocolError, match="larger than"):
        await gw.call()


async def test_user_agent_and_form() -> None:
    """Requests carry our User-Agent and a form body."""
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=[0, "ok"])

    await probe(handler).call()
    assert seen[0].headers["user-agent"] == f"smsgate/{smsgate.__version__}"
    assert seen[0].headers["content-type"] == "application/x-www-form-urlencoded"


async def test_lifecycle_borrowed_client() -> None:
    """A borrowed client is never closed; the gateway refuses use after aclose."""
    client = httpx.AsyncClient(
        transport=httpx.MockTransport(lambda r: httpx.Response(200, json=[0, 1]))
    )
    gw = Probe(base_url="https://provider.example", http_client=client)
    async with gw:
        assert await gw.call() == [0, 1]
    assert gw.is_closed and not client.is_closed
    await gw.aclose()  # idempotent
    with pytest.raises(RuntimeError, match="closed"):
        await gw.call()
    with pytest.raises(RuntimeError, match="closed"):
        async with gw:
            pass
    await client.aclose()


async def test_own_client_is_closed_even_when_cancelled() -> None:
    """Our own client is created lazily and closed under a shielded scope."""
    gw = Probe(base_url="https://provider.example", transport="httpx")
    async with gw:
        assert isinstance(gw._transport, HttpxTransport)
        client = gw._transport.client
    assert client.is_closed
    gw2 = Probe(base_url="https://provider.example", transport="httpx")
    await gw2.__aenter__()
    assert isinstance(gw2._transport, HttpxTransport)
    client2 = gw2._transport.client
    with anyio.CancelScope() as scope:
        scope.cancel()
        await gw2.aclose()
    assert client2.is_closed


@pytest.mark.parametrize(
    "url",
    [
        "ftp://x",
        "not a url",
        "https://user:pw@host",
        "https://host/?pass=1",
        "http://provider.example",
    ],
)
def test_bad_base_urls(url: str) -> None:
    """Unusable or unsafe base URLs are refused at construction."""
    with pytest.raises(smsgate.ConfigurationError):
        Probe(base_url=url)


def test_http_allowed_on_loopback_or_explicitly() -> None:
    """Plain http is fine on loopback, and elsewhere only when asked for."""
    assert Probe(base_url="http://127.0.0.1:8000/").base_url == "http://127.0.0.1:8000"
    assert Probe(base_url="http://localhost:1").base_url == "http://localhost:1"
    assert (
        Probe(base_url="http://panel.example", allow_insecure_http=True).base_url
        == "http://panel.example"
    )


def test_scrubber_encodings() -> None:
    """The scrubber removes raw, URL-encoded and JSON-escaped forms."""
    scrub = Scrubber.of([PASSWORD, None, ""])
    text = f"a={PASSWORD}&b={httpx.URL('https://x', params={'p': PASSWORD}).query.decode()}"
    assert PASSWORD not in scrub(text)
    assert "p@ss" not in scrub(json.dumps({"p": PASSWORD}))


def test_retry_after_parsing() -> None:
    """Retry-After as seconds or an HTTP date, capped, junk ignored."""
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after("100000") == 300.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == 10.0


async def test_transport_error_text_has_no_url() -> None:
    """A transport error that quotes the URL (aiohttp does) is reported without it."""
    url_error = httpx.ConnectTimeout(
        "Connection timeout to host https://provider.example/x?username=u&password=p@ss+w!rd"
    )
    gw = probe(raising(url_error))
    with pytest.raises(smsgate.NotSentError) as info:
        await gw.call()
    assert "password" not in str(info.value)
    assert "<url>" in str(info.value)


def test_scrubber_query_form() -> None:
    """A query-string password in any encoding is masked."""
    scrub = Scrubber.of(["p@ss w!rd"])
    assert (
        scrub("GET /x?username=u&password=p@ss+w!rd&to=1") == "GET /x?username=u&password=***&to=1"
    )
    assert scrub("pass=abc def") == "pass=*** def"


async def test_redirect_may_follow_a_processed_send() -> None:
    """A redirect answer to a send is maybe_sent (post-redirect-get); a 4xx is not."""
    gw = probe(lambda r: httpx.Response(303, headers={"Location": "/done"}))
    with pytest.raises(smsgate.ProtocolError) as info:
        await gw.call()
    assert info.value.maybe_sent
    with pytest.raises(smsgate.ProtocolError) as info:
        await gw.call(idempotent=True)
    assert not info.value.maybe_sent


async def test_cause_quoting_the_body_is_dropped() -> None:
    """A transport error whose text quotes the password is not kept as the cause."""

    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout(f"timed out sending {request.content!r}")

    gw = probe(handler)
    with pytest.raises(smsgate.OutcomeUnknownError) as info:
        await gw.call()
    assert info.value.__cause__ is None
    assert info.value.__suppress_context__


async def test_not_json_keeps_no_decoder_context() -> None:
    """The JSON decoder's error (which holds the whole body) is not kept on a ProtocolError."""
    gw = probe(_answer("not json " + PASSWORD))
    with pytest.raises(smsgate.ProtocolError) as info:
        await gw.call()
    assert info.value.__context__ is None


# -- settings that cannot work are refused at construction (issue 11) ----------------------

BAD_TIMEOUTS: list[Any] = [
    0,
    0.0,
    -1,
    float("nan"),
    float("inf"),
    -float("inf"),
    10**9,
    "5",
    True,
    [5],
    httpx.Timeout(0),
    httpx.Timeout(None),
    httpx.Timeout(5.0, read=None),
    httpx.Timeout(5.0, connect=0),
    httpx.Timeout(5.0, pool=float("nan")),
    httpx.Timeout(5.0, write=-1),
]
BAD_COUNTS: list[Any] = [0, -1, 10**6, True, 1.5, "8", None]


def _gateways(**settings: Any) -> list[Callable[[], Any]]:
    return [
        lambda: Probe(base_url="https://provider.example", **settings),
        lambda: smsgate.IppanelGateway(username="u", password="p", **settings),
        lambda: smsgate.NeginGateway(username="u", password="p", line="30003300", **settings),
    ]


@pytest.mark.parametrize("timeout", BAD_TIMEOUTS, ids=repr)
def test_bad_timeout_is_refused_at_construction(timeout: Any) -> None:
    """0 (aiohttp's "no timeout": a send waited forever), NaN, inf, negative, a non-number,
    a None part: ConfigurationError from every gateway, before any I/O."""
    for make in _gateways(timeout=timeout):
        with pytest.raises(smsgate.ConfigurationError, match="timeout"):
            make()


@pytest.mark.parametrize("count", BAD_COUNTS, ids=repr)
def test_bad_connection_limit_is_refused_at_construction(count: Any) -> None:
    """max_connections must be an int from 1 to 10,000, in every gateway."""
    for index, make in enumerate(_gateways(max_connections=count)):
        if index == 2 and count in (None, 0):
            continue  # NeginGateway reads a falsy value as "as many as max_concurrency"
        with pytest.raises(smsgate.ConfigurationError, match="max_connections"):
            make()


@pytest.mark.parametrize(
    "timeout", [0.001, 1, 30.0, 86_400, httpx.Timeout(5.0, read=60.0)], ids=repr
)
def test_good_timeouts_are_kept(timeout: Any) -> None:
    """A finite positive number (or a complete httpx.Timeout) is accepted as given."""
    gw = Probe(base_url="https://provider.example", timeout=timeout)
    expected = timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(float(timeout))
    assert gw._timeout == expected


@pytest.mark.anyio
async def test_telemetry_request_context_around_each_request(anyio_backend: str) -> None:
    """Each provider request runs inside _telemetry.request(...) with what the backend knows."""
    seen: list[dict[str, Any]] = []
    outcomes: list[str] = []

    class Observer:
        @contextlib.contextmanager
        def request(self, **fields: Any) -> Iterator[None]:
            seen.append(fields)
            try:
                yield
            except BaseException as exc:
                outcomes.append(type(exc).__name__)
                raise
            outcomes.append("ok")

    statuses = iter([200, 503])

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(next(statuses), text="[0]")

    _telemetry.install(Observer())  # type: ignore[arg-type]
    try:
        gw = probe(handler)
        await gw._request("POST", "/x", operation="send", recipients=3, parts=2, attempt=1)
        with pytest.raises(smsgate.ProviderUnavailableError):
            await gw._request("POST", "/y", idempotent=True)
    finally:
        _telemetry.uninstall()
    assert seen == [
        {"provider": "probe", "operation": "send", "recipients": 3, "parts": 2, "attempt": 1},
        {"provider": "probe", "operation": "/y", "recipients": 0, "parts": 0, "attempt": 1},
    ]
    assert outcomes == ["ok", "ProviderUnavailableError"]


async def test_a_custom_transport_error_keeps_its_phase() -> None:
    """A borrowed client's transport raising its own ConnectError subclass (another
    constructor) is still 'not sent', and nothing of it is chained."""

    class Refused(httpx.ConnectError):
        def __init__(self, host: str, port: int, request: httpx.Request) -> None:
            super().__init__(f"refused by {host}:{port}", request=request)

    def handler(request: httpx.Request) -> httpx.Response:
        raise Refused("10.0.0.1", 443, request)

    gw = probe(handler)
    with pytest.raises(smsgate.NotSentError) as info:
        await gw.call()
    assert "refused by 10.0.0.1:443" in str(info.value)
    assert info.value.__cause__ is None and info.value.__context__ is None


def test_form_quote_is_quote_plus() -> None:
    """The one-translate form encoding writes what urllib's quote_plus writes."""
    from urllib.parse import quote_plus

    from hypothesis import given
    from hypothesis import strategies as st

    from smsgate.backends._form import form_quote

    @given(st.text(alphabet=st.characters(exclude_categories=["Cs"])))
    def same(text: str) -> None:
        assert form_quote(text) == quote_plus(text)

    same()
    for text in ("", " ", "a b+c&d=e%f~g_h.i-j", "سلام ۱۲۳", '["09121234567"]', "\U0001f600"):
        assert form_quote(text) == quote_plus(text)
    with pytest.raises(UnicodeEncodeError):
        form_quote("\ud800")
