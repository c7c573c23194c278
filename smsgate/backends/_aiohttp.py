"""An httpx transport over aiohttp's connection pool: smsgate's default under asyncio.

Why it exists (measured in ``benchmarks/transports.py``, table in ``benchmarks/README.md``):
httpx's own pool (httpcore) gets slower as concurrency grows (encode/httpx#3215), and a
bulk sender runs at high concurrency by design. Keeping httpx as the API and swapping only
the transport keeps what users rely on (their own ``AsyncClient``, ``MockTransport``,
respx) while smsgate's own sockets are aiohttp's.

Why not the ``httpx-aiohttp`` package (0.2.0): its exception table maps
``aiohttp.ClientConnectionError`` to ``httpx.ConnectTimeout``, so a server that read the
request and hung up before answering (``ServerDisconnectedError``) comes out as a connect
timeout. smsgate reads that as "never sent, safe to retry", which would turn a possibly
delivered SMS into a resend (checked against a real socket server). This module maps by
*phase*: only failures that happen before a byte of the request can have left become
connect errors. It also offers :meth:`AiohttpTransport.send_direct`, the path smsgate's
own client takes, which skips httpx's client layer (about as much CPU per request as
aiohttp itself).

Timeouts (``httpx.Timeout``, per request) map onto aiohttp's:

* ``pool`` + ``connect`` -> ``ClientTimeout.connect`` (waiting for a pooled connection and
  opening a new one; both end in :class:`httpx.ConnectTimeout` / ``PoolTimeout`` terms:
  the request never left);
* ``connect`` -> ``sock_connect`` (the TCP and TLS handshake of a new connection);
* ``read`` -> ``sock_read`` (the longest silence while waiting for or reading the answer);
* ``write`` has no aiohttp counterpart; the bodies smsgate sends are a few KiB and are
  handed to the kernel at once, after which the read timeout runs.

Only used when an asyncio loop is running, aiohttp is installed, and no proxy is set in
the environment (``HTTP(S)_PROXY``/``ALL_PROXY``: httpx's own transport honours those, with
``NO_PROXY``, as httpx users expect).
"""

from __future__ import annotations

import functools
import json
import ssl
from collections.abc import AsyncIterator, Mapping
from typing import Any
from urllib.parse import quote_plus

import aiohttp
import httpx

from .._constants import EXCERPT_CHARS, MAX_RESPONSE_BYTES
from ._http import HttpAnswer, _ResponseTooLarge

__all__ = ["AiohttpTransport"]

_CHUNK = 64 * 1024
_TimeoutKey = tuple[float | None, float | None, float | None, float | None]


def _translate(
    exc: aiohttp.ClientError, request: httpx.Request | None, *, reading: bool
) -> httpx.TransportError:
    """The httpx error that says what happened to the request (see the module docstring).

    A function called from ``except`` clauses rather than a context manager: it is on the
    path of every failed request only, and costs nothing on the others.

    Args:
        exc: What aiohttp raised.
        request: Attached to the httpx error, as httpx's own transports do (``None`` on
            the direct path, which has no ``httpx.Request``).
        reading: The request is known to have gone out (the answer is being read).
    """
    message = str(exc) or type(exc).__name__
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        # aiohttp's ``connect`` budget: waiting for a pooled connection or opening one.
        return httpx.ConnectTimeout(message, request=request)
    if isinstance(exc, aiohttp.ClientConnectorError | aiohttp.ServerFingerprintMismatch):
        # Refused, unreachable, DNS, TLS handshake or certificate: nothing was written.
        return httpx.ConnectError(message, request=request)
    if isinstance(exc, aiohttp.ServerTimeoutError):
        # ``SocketTimeoutError`` (and any other timeout but the connect one): the request
        # went out and the answer did not come in time.
        return httpx.ReadTimeout(message, request=request)
    if isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientPayloadError):
        # The server closed the connection before a complete answer. It may have acted on
        # the request first, even on a reused keep-alive connection: never "not sent".
        return httpx.RemoteProtocolError(message, request=request)
    if isinstance(exc, aiohttp.NonHttpUrlClientError | aiohttp.InvalidURL):
        return httpx.UnsupportedProtocol(message, request=request)
    if isinstance(exc, aiohttp.ClientOSError | aiohttp.ClientConnectionError):
        # A reset or another socket error after the connection was made.
        error = httpx.ReadError if reading else httpx.WriteError
        return error(message, request=request)
    # ClientResponseError (a status line or headers aiohttp could not parse: the server
    # did answer) and anything newer: the request may have been acted on.
    return httpx.RemoteProtocolError(message, request=request)


class _Body(httpx.AsyncByteStream):
    """The answer's body, read from aiohttp as it arrives."""

    def __init__(self, response: aiohttp.ClientResponse, request: httpx.Request) -> None:
        self._response = response
        self._request = request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._response.content.iter_chunked(_CHUNK):
                yield chunk
        except aiohttp.ClientError as exc:
            raise _translate(exc, self._request, reading=True) from exc

    async def aclose(self) -> None:
        # A fully read body returns the connection to the pool; a partly read one closes it.
        self._response.release()


class AiohttpTransport(httpx.AsyncBaseTransport):
    """An ``httpx.AsyncBaseTransport`` that sends through one ``aiohttp.ClientSession``.

    The session is created on the first request, inside the running asyncio loop, and is
    bound to that loop. HTTP/1.1 only.

    Args:
        limits: ``max_connections`` caps the pool (``None``: unlimited);
            ``keepalive_expiry`` is how long an idle connection is kept.
        verify: ``True`` (httpx's default CA bundle), ``False``, or an ``ssl.SSLContext``.
    """

    def __init__(self, *, limits: httpx.Limits, verify: ssl.SSLContext | bool = True) -> None:
        self._limits = limits
        self._verify = verify
        self._session: aiohttp.ClientSession | None = None
        self._timeouts: dict[_TimeoutKey, aiohttp.ClientTimeout] = {}
        self._closed = False

    def _open(self) -> aiohttp.ClientSession:
        if self._closed:
            raise RuntimeError("this transport is closed")
        ssl_context: ssl.SSLContext | bool
        if isinstance(self._verify, ssl.SSLContext):
            ssl_context = self._verify
        elif self._verify:
            # httpx's context (certifi's bundle), so that certificate checks do not change
            # with the transport.
            ssl_context = httpx.create_ssl_context()
        else:
            ssl_context = False
        connector = aiohttp.TCPConnector(
            limit=self._limits.max_connections or 0,
            limit_per_host=0,
            keepalive_timeout=self._limits.keepalive_expiry or 0.0,
            ssl=ssl_context,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            # httpx decodes Content-Encoding itself (and reports DecodingError); cookies,
            # redirects and headers are the httpx client's business, not the transport's.
            auto_decompress=False,
            cookie_jar=aiohttp.DummyCookieJar(),
            skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"),
            timeout=aiohttp.ClientTimeout(total=None),
        )
        return self._session

    def _client_timeout(self, timeout: Any) -> aiohttp.ClientTimeout:
        if isinstance(timeout, httpx.Timeout):
            key: _TimeoutKey = (timeout.connect, timeout.read, timeout.write, timeout.pool)
        else:
            get = timeout.get if isinstance(timeout, dict) else {}.get
            key = (get("connect"), get("read"), get("write"), get("pool"))
        cached = self._timeouts.get(key)
        if cached is None:
            connect, read, _write, pool = key
            acquire = None if connect is None or pool is None else connect + pool
            cached = aiohttp.ClientTimeout(
                total=None, connect=acquire, sock_connect=connect, sock_read=read
            )
            if len(self._timeouts) < 64:  # a handful of distinct timeouts in practice
                self._timeouts[key] = cached
        return cached

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send one request and return the answer with its body still to be read."""
        session = self._session or self._open()
        try:
            body: bytes | None = request.content
        except httpx.RequestNotRead:
            body = await request.aread()
        headers = [
            (name.decode("latin-1"), value.decode("latin-1"))
            for name, value in request.headers.raw
            # aiohttp frames the body itself.
            if name.lower() != b"transfer-encoding"
        ]
        try:
            response = await session.request(
                request.method,
                str(request.url),
                headers=headers,
                data=body or None,
                allow_redirects=False,
                timeout=self._client_timeout(request.extensions.get("timeout")),
            )
        except aiohttp.ClientError as exc:
            raise _translate(exc, request, reading=False) from exc
        extensions: dict[str, Any] = {
            "http_version": f"HTTP/{response.version.major}.{response.version.minor}".encode()
            if response.version
            else b"HTTP/1.1",
        }
        if response.reason:
            extensions["reason_phrase"] = response.reason.encode("latin-1", "replace")
        return httpx.Response(
            status_code=response.status,
            headers=list(response.raw_headers),
            stream=_Body(response, request),
            request=request,
            extensions=extensions,
        )

    async def send_direct(
        self,
        method: str,
        url: str,
        *,
        data: Mapping[str, str] | None,
        params: Mapping[str, str] | None,
        json_body: Any,
        headers: Mapping[str, str],
        timeouts: httpx.Timeout,
    ) -> HttpAnswer:
        """Make one request without httpx's client layer and read the whole answer.

        The request is the one ``httpx.AsyncClient.build_request`` would make from the
        same arguments (a urlencoded form or compact UTF-8 JSON, the query merged into the
        URL). No cookies, no redirects, no Accept-Encoding (provider answers are tiny).
        Errors are the same httpx exceptions :meth:`handle_async_request` raises.

        Raises:
            httpx.TransportError: Mapped as in the module docstring.
            RuntimeError: After :meth:`aclose`.
        """
        session = self._session or self._open()
        request_headers = dict(headers)
        body: bytes | None = None
        if data is not None:
            body = _encode_form(data)
            request_headers["Content-Type"] = "application/x-www-form-urlencoded"
        elif json_body is not None:
            # The same bytes httpx sends for json=...
            body = json.dumps(
                json_body, ensure_ascii=False, separators=(",", ":"), allow_nan=False
            ).encode("utf-8")
            request_headers["Content-Type"] = "application/json"
        if params:
            url = str(httpx.URL(url, params=params))
        try:
            response = await session.request(
                method,
                url,
                headers=request_headers,
                data=body,
                allow_redirects=False,
                # We ask for no encoding; should a server compress anyway, decode it here
                # (httpx's layer, which would do it, is not in this path).
                auto_decompress=True,
                timeout=self._client_timeout(timeouts),
            )
        except aiohttp.ClientError as exc:
            raise _translate(exc, None, reading=False) from exc
        try:
            content = await _read_capped(response)
        except aiohttp.ClientError as exc:
            raise _translate(exc, None, reading=True) from exc
        finally:
            response.release()
        # Lower-case names, as ``dict(httpx.Headers)`` gives; repeated headers joined.
        answer_headers = {name.lower(): value for name, value in response.headers.items()}
        if len(answer_headers) != len(response.headers):
            answer_headers = {}
            for name, value in response.headers.items():
                key = name.lower()
                previous = answer_headers.get(key)
                answer_headers[key] = value if previous is None else f"{previous}, {value}"
        return HttpAnswer(status_code=response.status, content=content, headers=answer_headers)

    async def aclose(self) -> None:
        """Close every pooled connection. Idempotent."""
        self._closed = True
        session, self._session = self._session, None
        if session is not None:
            await session.close()


@functools.lru_cache(maxsize=512)
def _quote(value: str) -> str:
    # Field names, the user name, the password, the op and the sender line repeat on
    # every request, and so does the text of a campaign: encode each once.
    return quote_plus(value)


def _encode_form(data: Mapping[str, Any]) -> bytes:
    """``urlencode(data)``, the bytes httpx sends for ``data=``, with repeated values cached."""
    pairs = []
    for key, value in data.items():
        text = value if isinstance(value, str) else str(value)
        pairs.append(f"{_quote(key)}={_quote(text) if len(text) <= 512 else quote_plus(text)}")
    return "&".join(pairs).encode("ascii")


async def _read_capped(response: aiohttp.ClientResponse) -> bytes:
    """The whole body, refusing more than ``MAX_RESPONSE_BYTES`` (as ``_http`` does)."""
    declared = response.content_length
    if declared is not None and declared > MAX_RESPONSE_BYTES:
        raise _ResponseTooLarge(b"")
    if declared is not None and "Content-Encoding" not in response.headers:
        # The declared length bounds the read. A compressed answer is counted after
        # decoding below: a 40 KB gzip body may inflate to gigabytes.
        return await response.read()
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_chunked(_CHUNK):
        size += len(chunk)
        chunks.append(chunk)
        if size > MAX_RESPONSE_BYTES:
            raise _ResponseTooLarge(b"".join(chunks)[:EXCERPT_CHARS])
    return b"".join(chunks)
