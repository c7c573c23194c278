"""The transports: chosen per event loop (or explicitly), failures classified, timeouts honoured.

Under asyncio a gateway's own transport is aiohttp (``smsgate.backends._aiohttp``); under
trio, or with a borrowed client, or with ``transport="httpx"``, it is httpx. Whatever the
transport, a failure must say what happened to the request: never sent (safe to retry) or
maybe sent (never resent). Each failure is produced
for real by a tiny socket server on 127.0.0.1 in a thread, so asyncio and trio tests share it.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import socket
import ssl
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import anyio
import httpx
import pytest

import smsgate
from smsgate._constants import MAX_RESPONSE_BYTES
from smsgate.backends._aiohttp import AiohttpTransport
from smsgate.backends._h11_transport import H11Transport
from smsgate.backends._http import HttpAnswer, HttpGateway, TransportName
from smsgate.backends._httpx_transport import HttpxTransport
from smsgate.testing import serve_loopback

Behaviour = Callable[[socket.socket, threading.Event], None]
SHORT = httpx.Timeout(5.0, read=0.3, pool=0.3)
HOLD = httpx.Timeout(5.0, read=9.0, pool=0.2)  # a long read, a short wait for a slot


@pytest.fixture(autouse=True)
def no_proxy_in_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """A proxy set on the machine would (rightly) switch the transport; these tests need none."""
    for scheme in ("http", "https", "all"):
        for name in (f"{scheme}_proxy", f"{scheme.upper()}_PROXY"):
            monkeypatch.delenv(name, raising=False)


# -- a raw socket server ---------------------------------------------------------------


def _read_request(conn: socket.socket) -> bytes:
    """Read one HTTP/1.1 request (headers and a Content-Length body)."""
    conn.settimeout(5)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            break
        body += chunk
    return data


@contextlib.contextmanager
def raw_server(behaviour: Behaviour) -> Iterator[str]:
    """Serve ``behaviour(connection, stop)`` for each connection; yields the origin URL."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    listener.settimeout(0.1)
    port = listener.getsockname()[1]
    stop = threading.Event()
    workers: list[threading.Thread] = []
    connections: list[socket.socket] = []

    def accept_loop() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            connections.append(conn)
            worker = threading.Thread(target=behaviour, args=(conn, stop), daemon=True)
            workers.append(worker)
            worker.start()

    acceptor = threading.Thread(target=accept_loop, daemon=True)
    acceptor.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop.set()
        acceptor.join(5)
        listener.close()
        for worker in workers:
            worker.join(5)
        for conn in connections:
            conn.close()


def never_answer(conn: socket.socket, stop: threading.Event) -> None:
    """Read the request, then stay silent until the test ends."""
    _read_request(conn)
    stop.wait(10)


def close_at_once(conn: socket.socket, stop: threading.Event) -> None:
    """Read the request, then hang up without a byte of answer."""
    _read_request(conn)
    conn.close()


def drop_mid_body(conn: socket.socket, stop: threading.Event) -> None:
    """Read the request, promise 100 bytes, send 4, hang up."""
    _read_request(conn)
    conn.sendall(
        b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n[0,"'
    )
    conn.close()


def huge_answer(conn: socket.socket, stop: threading.Event) -> None:
    """Announce a body larger than smsgate accepts."""
    _read_request(conn)
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n[0," % (MAX_RESPONSE_BYTES + 1))
    stop.wait(10)


def gzipped(conn: socket.socket, stop: threading.Event) -> None:
    """Answer with a gzip body although nobody asked for one."""
    _read_request(conn)
    body = gzip.compress(b'[0,"562892393"]')
    conn.sendall(
        b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n"
        b"Connection: close\r\n\r\n" % len(body) + body
    )
    conn.close()


def gzip_bomb(conn: socket.socket, stop: threading.Event) -> None:
    """A small gzip answer with a declared length that inflates past the size cap."""
    _read_request(conn)
    body = gzip.compress(b"0" * (MAX_RESPONSE_BYTES + 1024))
    conn.sendall(
        b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n"
        b"Connection: close\r\n\r\n" % len(body) + body
    )
    conn.close()


def refused_url() -> str:
    """An origin on 127.0.0.1 where nothing listens (bound, then closed)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return f"http://127.0.0.1:{port}"


class Probe(HttpGateway):
    """The HTTP base with nothing on top."""

    name = "probe"

    async def post(self, **kwargs: Any) -> smsgate.SmsGateError | bytes:
        try:
            answer = await self._request("POST", "/services.jspd", data={"op": "send"}, **kwargs)
        except smsgate.SmsGateError as exc:
            return exc
        return answer.content


# -- which transport -------------------------------------------------------------------


@pytest.mark.anyio
async def test_transport_follows_the_running_loop(anyio_backend: str) -> None:
    """auto: asyncio gets aiohttp; trio gets h11; a borrowed client is always httpx."""
    with serve_loopback(_status_app()) as server:
        own = Probe(base_url=server.url)
        assert own.transport_name == "auto"  # chosen on first use, in the running loop
        async with own:
            assert await own.post() == b"[0]"
            assert own.transport_name == ("aiohttp" if anyio_backend == "asyncio" else "h11")
        async with httpx.AsyncClient() as client:
            borrowed = Probe(base_url=server.url, http_client=client)
            assert await borrowed.post() == b"[0]"
            assert borrowed.transport_name == "httpx"
            assert isinstance(borrowed._transport, HttpxTransport)
            assert borrowed._transport.client is client
            await borrowed.aclose()
            assert not client.is_closed  # borrowed: never closed by the gateway


@pytest.mark.anyio
async def test_explicit_transport_choice(anyio_backend: str) -> None:
    """httpx and h11 everywhere; aiohttp under asyncio, refused under trio."""
    names: tuple[TransportName, ...] = ("httpx", "h11")
    with serve_loopback(_status_app()) as server:
        for name in names:
            async with Probe(base_url=server.url, transport=name) as gateway:
                assert await gateway.post() == b"[0]"
                assert gateway.transport_name == name
        gateway = Probe(base_url=server.url, transport="aiohttp")
        if anyio_backend == "asyncio":
            async with gateway:
                assert await gateway.post() == b"[0]"
                assert gateway.transport_name == "aiohttp"
        else:
            error = await gateway.post()
            assert isinstance(error, smsgate.ConfigurationError)
            assert "asyncio" in str(error)


def test_transport_choice_is_checked_at_construction() -> None:
    """An unknown name, or aiohttp with a borrowed httpx client, is refused up front."""
    with pytest.raises(smsgate.ConfigurationError, match="transport"):
        Probe(base_url="https://x.example", transport="curl")  # type: ignore[arg-type]
    with pytest.raises(smsgate.ConfigurationError, match="http_client"):
        Probe(base_url="https://x.example", transport="aiohttp", http_client=httpx.AsyncClient())


@pytest.mark.asyncio
@pytest.mark.parametrize("variable", ["HTTPS_PROXY", "http_proxy", "ALL_PROXY"])
async def test_proxy_in_environment_keeps_httpx_transport(
    variable: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A proxy configured in the environment is honoured by httpx's own transport."""
    monkeypatch.setenv(variable, "http://127.0.0.1:3128")
    gateway = Probe(base_url="https://x.example")
    async with gateway:
        assert isinstance(gateway._transport, HttpxTransport)
    monkeypatch.delenv(variable)
    gateway = Probe(base_url="https://x.example")
    async with gateway:
        assert isinstance(gateway._transport, AiohttpTransport)


@pytest.mark.asyncio
async def test_respx_global_mock_sees_the_httpx_transport() -> None:
    """``respx.mock`` sees a gateway's requests with transport="httpx" (documented in
    docs/testing.md); smsgate never reads respx's state to decide."""
    import respx

    with respx.mock(assert_all_called=False) as router:
        route = router.post("https://provider.example/services.jspd").respond(200, text='[0,"7"]')
        async with Probe(base_url="https://provider.example", transport="httpx") as gateway:
            assert await gateway.post() == b'[0,"7"]'
    assert route.call_count == 1


# -- the aiohttp transport classifies failures by phase ---------------------------------


async def _send(
    transport: AiohttpTransport, url: str, *, timeouts: httpx.Timeout = SHORT
) -> HttpAnswer:
    return await transport.send(
        "POST",
        url,
        body=b"a=1",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        timeouts=timeouts,
        max_bytes=MAX_RESPONSE_BYTES,
    )


@contextlib.asynccontextmanager
async def aiohttp_transport(max_connections: int = 4) -> AsyncIterator[AiohttpTransport]:
    transport = AiohttpTransport(max_connections=max_connections)
    try:
        yield transport
    finally:
        await transport.aclose()


@pytest.mark.asyncio
async def test_transport_connect_refused_is_connect_error() -> None:
    """Nothing listening: ``httpx.ConnectError`` (the request never left)."""
    async with aiohttp_transport() as transport:
        with pytest.raises(httpx.ConnectError):
            await _send(transport, refused_url() + "/x")


@pytest.mark.asyncio
async def test_transport_read_timeout_is_honoured() -> None:
    """A silent server: ``httpx.ReadTimeout`` after the read timeout, not before."""
    with raw_server(never_answer) as url:
        async with aiohttp_transport() as transport:
            started = time.monotonic()
            with pytest.raises(httpx.ReadTimeout):
                await _send(transport, url + "/x")
            elapsed = time.monotonic() - started
    assert elapsed >= 0.25


@pytest.mark.asyncio
async def test_transport_drop_mid_body_is_not_a_connect_error() -> None:
    """A body cut short: a protocol error, never one of the 'not sent' connect errors."""
    with raw_server(drop_mid_body) as url:
        async with aiohttp_transport() as transport:
            with pytest.raises(httpx.TransportError) as caught:
                await _send(transport, url + "/x")
    assert isinstance(caught.value, httpx.RemoteProtocolError)
    assert not isinstance(caught.value, httpx.ConnectError | httpx.ConnectTimeout)


@pytest.mark.asyncio
async def test_transport_hang_up_before_answer_is_remote_protocol_error() -> None:
    """A server that reads the request and hangs up: maybe processed, so a protocol error."""
    with raw_server(close_at_once) as url:
        async with aiohttp_transport() as transport:
            with pytest.raises(httpx.TransportError) as caught:
                await _send(transport, url + "/x")
    assert isinstance(caught.value, httpx.RemoteProtocolError | httpx.ReadError)


@pytest.mark.asyncio
async def test_transport_pool_timeout_is_connect_timeout() -> None:
    """Waiting too long for a pooled connection ends as a connect timeout (never sent)."""
    arrived = threading.Event()

    def hold(conn: socket.socket, stop: threading.Event) -> None:
        _read_request(conn)
        arrived.set()
        stop.wait(10)

    with raw_server(hold) as url:
        async with (
            aiohttp_transport(max_connections=1) as transport,
            anyio.create_task_group() as group,
        ):
            # The first request holds the only connection (its read timeout is long).
            group.start_soon(lambda: _send(transport, url + "/a", timeouts=httpx.Timeout(9.0)))
            for _ in range(500):  # bounded polling: until the server holds the request
                if arrived.is_set():
                    break
                await anyio.sleep(0.01)
            assert arrived.is_set()
            with pytest.raises(httpx.ConnectTimeout):
                await _send(transport, url + "/b", timeouts=httpx.Timeout(5.0, pool=0.1))
            group.cancel_scope.cancel()


@pytest.mark.asyncio
async def test_transport_errors_carry_no_request() -> None:
    """What the transport raises holds no request object (its URL and body)."""
    async with aiohttp_transport() as transport:
        with pytest.raises(httpx.ConnectError) as caught:
            await _send(transport, refused_url() + "/x?password=secret")
    with pytest.raises(RuntimeError):
        caught.value.request  # noqa: B018 - httpx raises when no request is attached
    assert caught.value.__cause__ is None


# -- the h11 transport (trio's default): its pool --------------------------------------


def keep_alive(
    counter: list[int], closed: threading.Event | None = None
) -> Callable[[socket.socket, threading.Event], None]:
    """Answer every request on the connection (keep-alive); with ``closed``, hang up after
    the first answer without saying so, as a server closing an idle connection does."""

    def behaviour(conn: socket.socket, stop: threading.Event) -> None:
        counter.append(1)
        while not stop.is_set():
            if not _read_request(conn):
                return
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n[0]")
            if closed is not None:
                conn.close()
                closed.set()
                return

    return behaviour


async def _h11_send(transport: H11Transport, url: str, timeouts: httpx.Timeout = SHORT) -> bytes:
    answer = await transport.send(
        "POST", url, body=b"a=1", headers={}, timeouts=timeouts, max_bytes=MAX_RESPONSE_BYTES
    )
    return answer.content


@pytest.mark.anyio
async def test_h11_reuses_one_connection() -> None:
    """Sequential requests share one keep-alive connection."""
    connections: list[int] = []
    with raw_server(keep_alive(connections)) as url:
        transport = H11Transport(max_connections=4)
        try:
            for _ in range(5):
                assert await _h11_send(transport, url + "/x") == b"[0]"
        finally:
            await transport.aclose()
    assert len(connections) == 1


@pytest.mark.anyio
async def test_h11_never_reuses_a_connection_with_bytes_past_the_answer() -> None:
    """A server that writes more than its answer (a stray CRLF after the body) leaves bytes
    that would be read as the next answer's start: that connection is closed, not reused,
    so the next send is answered instead of failing as "maybe sent"."""
    connections: list[int] = []

    def sloppy(conn: socket.socket, stop: threading.Event) -> None:
        connections.append(1)
        while not stop.is_set():
            if not _read_request(conn):
                return
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n[0]\r\n")

    with raw_server(sloppy) as url:
        transport = H11Transport(max_connections=4)
        try:
            for _ in range(3):
                assert await _h11_send(transport, url + "/x") == b"[0]"
        finally:
            await transport.aclose()
    assert len(connections) == 3


@pytest.mark.anyio
async def test_h11_drops_a_connection_the_server_closed_while_idle() -> None:
    """A keep-alive connection closed by the server is not reused: no spurious failure."""
    connections: list[int] = []
    closed = threading.Event()
    with raw_server(keep_alive(connections, closed)) as url:
        transport = H11Transport(max_connections=4)
        try:
            assert await _h11_send(transport, url + "/x") == b"[0]"
            for _ in range(500):  # bounded polling: until the server has hung up
                if closed.is_set():
                    break
                await anyio.sleep(0.01)
            assert await _h11_send(transport, url + "/x") == b"[0]"
        finally:
            await transport.aclose()
    assert len(connections) == 2


@pytest.mark.anyio
async def test_h11_cancelled_request_leaves_no_connection_behind() -> None:
    """A cancelled exchange closes its connection (never pooled half-read); the slot frees."""
    arrived = threading.Event()

    def hold(conn: socket.socket, stop: threading.Event) -> None:
        _read_request(conn)
        arrived.set()
        stop.wait(10)

    with raw_server(hold) as url:
        transport = H11Transport(max_connections=1)
        try:
            async with anyio.create_task_group() as group:
                group.start_soon(_h11_send, transport, url + "/a", httpx.Timeout(9.0))
                for _ in range(500):
                    if arrived.is_set():
                        break
                    await anyio.sleep(0.01)
                group.cancel_scope.cancel()
            assert transport._idle == {} or all(not v for v in transport._idle.values())
            assert transport._slots.borrowed_tokens == 0
        finally:
            await transport.aclose()


@pytest.mark.anyio
async def test_h11_pool_timeout_is_not_sent() -> None:
    """All slots busy past the pool timeout: PoolTimeout, i.e. NotSentError at the gateway."""
    arrived = threading.Event()

    def hold(conn: socket.socket, stop: threading.Event) -> None:
        _read_request(conn)
        arrived.set()
        stop.wait(10)

    with raw_server(hold) as url:
        async with (
            Probe(base_url=url, transport="h11", max_connections=1, timeout=HOLD) as gateway,
            anyio.create_task_group() as group,
        ):
            group.start_soon(gateway.post)
            for _ in range(500):
                if arrived.is_set():
                    break
                await anyio.sleep(0.01)
            error = await gateway.post()
            group.cancel_scope.cancel()
    assert isinstance(error, smsgate.NotSentError)
    assert "PoolTimeout" in str(error)


@contextlib.contextmanager
def tls_server(certificate: Any) -> Iterator[str]:
    """A keep-alive answering server on 127.0.0.1 behind TLS (``certificate``: trustme's)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    certificate.configure_cert(context)
    connections: list[int] = []
    plain = keep_alive(connections)

    def behaviour(conn: socket.socket, stop: threading.Event) -> None:
        try:
            wrapped = context.wrap_socket(conn, server_side=True)
        except (ssl.SSLError, OSError):
            return  # the client refused our certificate
        try:
            plain(wrapped, stop)
        finally:
            wrapped.close()

    with raw_server(behaviour) as url:
        yield url.replace("http://", "https://")


@pytest.mark.anyio
async def test_h11_over_tls_verifies_the_certificate() -> None:
    """https: a certificate from a trusted CA for the host works; the default CA bundle
    refuses a private CA's certificate (ConnectError: nothing was sent)."""
    trustme = pytest.importorskip("trustme")
    authority = trustme.CA()
    certificate = authority.issue_cert("127.0.0.1")
    trusting = ssl.create_default_context()
    authority.configure_trust(trusting)
    with tls_server(certificate) as url:
        transport = H11Transport(max_connections=2, verify=trusting)
        try:
            assert await _h11_send(transport, url + "/x") == b"[0]"
            assert await _h11_send(transport, url + "/x") == b"[0]"
        finally:
            await transport.aclose()
        async with Probe(base_url=url, transport="h11") as gateway:
            error = await gateway.post()
    assert isinstance(error, smsgate.NotSentError)
    assert "certificate" in str(error).lower()


# -- through the gateway: smsgate errors, on both event loops, on every transport ------


@pytest.fixture(params=["auto", "httpx", "h11"])
def choice(request: pytest.FixtureRequest) -> TransportName:
    """The gateway's transport= setting (auto: aiohttp under asyncio, h11 under trio)."""
    name: TransportName = request.param
    return name


@pytest.mark.anyio
async def test_gateway_connect_refused_is_not_sent(choice: TransportName) -> None:
    """Connection refused -> NotSentError (safe to retry), whatever the transport."""
    async with Probe(base_url=refused_url(), transport=choice) as gateway:
        error = await gateway.post()
    assert isinstance(error, smsgate.NotSentError)
    assert error.maybe_sent is False


@pytest.mark.anyio
async def test_gateway_read_timeout_is_outcome_unknown(choice: TransportName) -> None:
    """No answer in time -> OutcomeUnknownError, maybe sent; the timeout is honoured."""
    with raw_server(never_answer) as url:
        async with Probe(base_url=url, transport=choice, timeout=SHORT) as gateway:
            started = time.monotonic()
            error = await gateway.post()
            elapsed = time.monotonic() - started
    assert isinstance(error, smsgate.OutcomeUnknownError)
    assert error.maybe_sent is True
    assert 0.25 <= elapsed < 3.0


@pytest.mark.anyio
async def test_gateway_drop_mid_body_is_outcome_unknown(choice: TransportName) -> None:
    """The server hangs up mid-answer -> OutcomeUnknownError, never NotSentError."""
    with raw_server(drop_mid_body) as url:
        async with Probe(base_url=url, transport=choice) as gateway:
            error = await gateway.post()
    assert isinstance(error, smsgate.OutcomeUnknownError)
    assert error.maybe_sent is True


@pytest.mark.anyio
async def test_gateway_hang_up_before_answer_is_outcome_unknown(choice: TransportName) -> None:
    """The server reads the request and hangs up -> OutcomeUnknownError (it may have acted)."""
    with raw_server(close_at_once) as url:
        async with Probe(base_url=url, transport=choice) as gateway:
            error = await gateway.post()
    assert isinstance(error, smsgate.OutcomeUnknownError)
    assert error.maybe_sent is True


@pytest.mark.anyio
async def test_gateway_idempotent_timeout_is_retryable(choice: TransportName) -> None:
    """A query that timed out changed nothing: retryable, not maybe sent."""
    with raw_server(never_answer) as url:
        async with Probe(base_url=url, transport=choice, timeout=SHORT) as gateway:
            error = await gateway.post(idempotent=True)
    assert isinstance(error, smsgate.OutcomeUnknownError)
    assert error.retryable is True
    assert error.maybe_sent is False


@pytest.mark.anyio
async def test_gateway_huge_answer_is_protocol_error(choice: TransportName) -> None:
    """An answer announced larger than the cap is refused before it is read."""
    with raw_server(huge_answer) as url:
        async with Probe(base_url=url, transport=choice) as gateway:
            error = await gateway.post()
    assert isinstance(error, smsgate.ProtocolError)


@pytest.mark.anyio
# Under trio (httpx's own pool), stopping a body read early leaves httpx's nested body
# generators (aiter_bytes -> aiter_raw -> the transport stream) for the garbage collector,
# and trio warns when it closes them. smsgate closes the outer one (contextlib.aclosing);
# the inner ones are httpx's. The refusal itself is what this test checks.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
async def test_gzip_bomb_is_refused(choice: TransportName) -> None:
    """An answer that inflates past the cap is refused, counted after decoding."""
    with raw_server(gzip_bomb) as url:
        async with Probe(base_url=url, transport=choice) as gateway:
            error = await gateway.post()
    assert isinstance(error, smsgate.ProtocolError)
    assert "larger than" in str(error)


@pytest.mark.anyio
async def test_gateway_decodes_unasked_gzip(choice: TransportName) -> None:
    """A server that compresses anyway is still read correctly."""
    with raw_server(gzipped) as url:
        async with Probe(base_url=url, transport=choice) as gateway:
            body = await gateway.post()
    assert body == b'[0,"562892393"]'


@pytest.mark.anyio
async def test_gateway_sends_the_same_request_on_every_transport(choice: TransportName) -> None:
    """Form, JSON and query go out byte for byte as httpx would send them; headers read back."""
    seen: list[dict[str, Any]] = []
    with serve_loopback(_echo_app(seen)) as server:
        async with Probe(base_url=server.url, transport=choice) as gateway:
            form = await gateway._request("POST", "/f", data={"message": "سلام & hi", "to": "+98"})
            sent_json = await gateway._request(
                "POST", "/j", json_body={"op": "pattern", "v": "é"}, params={"q": "a b"}
            )
    assert seen[0]["body"] == b"message=%D8%B3%D9%84%D8%A7%D9%85+%26+hi&to=%2B98"
    assert seen[0]["headers"]["content-type"] == "application/x-www-form-urlencoded"
    assert seen[0]["headers"]["user-agent"].startswith("smsgate/")
    assert seen[0]["headers"]["accept"] == "application/json"
    assert (
        seen[1]["body"]
        == json.dumps(
            {"op": "pattern", "v": "é"}, ensure_ascii=False, separators=(",", ":")
        ).encode()
    )
    assert seen[1]["headers"]["content-type"] == "application/json"
    assert seen[1]["query"] == b"q=a+b"
    assert form.status_code == 201
    assert form.headers["x-echo"] == "yes"
    assert sent_json.headers["content-type"] == "application/json"


@pytest.mark.anyio
async def test_gateway_reads_status_headers_for_errors(choice: TransportName) -> None:
    """HTTP 429 with Retry-After and HTTP 503 are read the same on every transport."""
    with serve_loopback(_status_app()) as server:
        async with Probe(base_url=server.url, transport=choice) as gateway:
            limited = await gateway.post(params={"status": "429"})
            down = await gateway.post(params={"status": "503"})
    assert isinstance(limited, smsgate.RateLimitedError)
    assert limited.retry_after == 7.0
    assert isinstance(down, smsgate.ProviderUnavailableError)


@pytest.mark.anyio
async def test_gateway_after_aclose_raises_runtime_error(choice: TransportName) -> None:
    """Closing the gateway closes the transport; a later request is a programming error."""
    with serve_loopback(_status_app()) as server:
        gateway = Probe(base_url=server.url, transport=choice)
        assert await gateway.post() == b"[0]"
        await gateway.aclose()
        with pytest.raises(RuntimeError):
            await gateway.post()


# -- small ASGI apps ------------------------------------------------------------------


def _echo_app(seen: list[dict[str, Any]]) -> Any:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        seen.append({"body": body, "query": scope["query_string"], "headers": headers})
        payload = json.dumps({"ok": True}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 201,
                "headers": [(b"content-type", b"application/json"), (b"x-echo", b"yes")],
            }
        )
        await send({"type": "http.response.body", "body": payload})

    return app


def _status_app() -> Any:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        query = scope["query_string"].decode()
        status = int(query.split("=")[1]) if query.startswith("status=") else 200
        headers = [(b"retry-after", b"7")] if status == 429 else []
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": b"[0]"})

    return app
