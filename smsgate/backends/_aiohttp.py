"""The transport over aiohttp's connection pool: smsgate's default under asyncio.

Why it exists (measured in ``benchmarks/transports.py``, table in ``benchmarks/README.md``):
httpx's own pool (httpcore) gets slower as concurrency grows (encode/httpx#3215), and a
bulk sender runs at high concurrency by design. Users keep httpx as the API (their own
``AsyncClient``, ``MockTransport``, respx: pass ``http_client=``), while a gateway's own
sockets are aiohttp's. It implements ``_transport.Transport`` directly, without httpx's
client layer (which costs about as much CPU per request as aiohttp itself).

Why not the ``httpx-aiohttp`` package (0.2.0): its exception table maps
``aiohttp.ClientConnectionError`` to ``httpx.ConnectTimeout``, so a server that read the
request and hung up before answering (``ServerDisconnectedError``) comes out as a connect
timeout. smsgate reads that as "never sent, safe to retry", which would turn a possibly
delivered SMS into a resend (checked against a real socket server). This module maps by
*phase*: only failures that happen before a byte of the request can have left become
connect errors.

Timeouts (``httpx.Timeout``, per request) map onto aiohttp's:

* ``pool`` + ``connect`` -> ``ClientTimeout.connect`` (waiting for a pooled connection and
  opening a new one; both end in :class:`httpx.ConnectTimeout` / ``PoolTimeout`` terms:
  the request never left);
* ``connect`` -> ``sock_connect`` (the TCP and TLS handshake of a new connection);
* ``read`` -> ``sock_read`` (the longest silence while waiting for or reading the answer);
* ``write`` has no aiohttp counterpart; the bodies smsgate sends are a few KiB and are
  handed to the kernel at once, after which the read timeout runs.

The HTTP base chooses it (``transport="auto"`` under asyncio, or ``"aiohttp"``); it never
imports the base.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from urllib.parse import parse_qsl

import aiohttp
import httpx

from ._transport import HEAD_BYTES, HttpAnswer, ResponseTooLarge, verified_context

__all__ = ["AiohttpTransport"]

_CHUNK = 64 * 1024
_TimeoutKey = tuple[float | None, float | None, float | None, float | None]


def _translate(exc: aiohttp.ClientError, *, reading: bool) -> httpx.TransportError:
    """The httpx error that says what happened to the request (see the module docstring).

    A function called from ``except`` clauses rather than a context manager: it is on the
    path of every failed request only, and costs nothing on the others.

    Args:
        exc: What aiohttp raised (its text may quote the URL; the base scrubs it).
        reading: The request is known to have gone out (the answer is being read).
    """
    message = str(exc) or type(exc).__name__
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        # aiohttp's ``connect`` budget: waiting for a pooled connection or opening one.
        return httpx.ConnectTimeout(message)
    if isinstance(exc, aiohttp.ClientConnectorError | aiohttp.ServerFingerprintMismatch):
        # Refused, unreachable, DNS, TLS handshake or certificate: nothing was written.
        return httpx.ConnectError(message)
    if isinstance(exc, aiohttp.ServerTimeoutError):
        # ``SocketTimeoutError`` (and any other timeout but the connect one): the request
        # went out and the answer did not come in time.
        return httpx.ReadTimeout(message)
    if isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientPayloadError):
        # The server closed the connection before a complete answer. It may have acted on
        # the request first, even on a reused keep-alive connection: never "not sent".
        return httpx.RemoteProtocolError(message)
    if isinstance(exc, aiohttp.NonHttpUrlClientError | aiohttp.InvalidURL):
        return httpx.UnsupportedProtocol(message)
    if isinstance(exc, aiohttp.ClientOSError | aiohttp.ClientConnectionError):
        # A reset or another socket error after the connection was made.
        error = httpx.ReadError if reading else httpx.WriteError
        return error(message)
    # ClientResponseError (a status line or headers aiohttp could not parse: the server
    # did answer) and anything newer: the request may have been acted on.
    return httpx.RemoteProtocolError(message)


class AiohttpTransport:
    """A :class:`~smsgate.backends._transport.Transport` over one ``aiohttp.ClientSession``.

    The session is created on the first request, inside the running asyncio loop, and is
    bound to that loop. HTTP/1.1 only. No cookies, no redirects, no ``Accept-Encoding``
    (provider answers are tiny; a compressed answer is still decoded, and counted against
    the cap after decoding).

    Args:
        max_connections: Caps the pool (``None``: unlimited).
        keepalive_expiry: How long an idle connection is kept, seconds.
        verify: ``True`` (httpx's default CA bundle), ``False``, or an ``ssl.SSLContext``.
    """

    def __init__(
        self,
        *,
        max_connections: int | None,
        keepalive_expiry: float | None = 5.0,
        verify: ssl.SSLContext | bool = True,
    ) -> None:
        self._max_connections = max_connections
        self._keepalive = keepalive_expiry
        self._verify = verify
        self._session: aiohttp.ClientSession | None = None
        self._timeouts: dict[_TimeoutKey, aiohttp.ClientTimeout] = {}
        # The last httpx.Timeout seen and its aiohttp one (a gateway passes the same object
        # on every request: no key to build).
        self._last: tuple[httpx.Timeout, aiohttp.ClientTimeout] | None = None
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
            ssl_context = verified_context()
        else:
            ssl_context = False
        connector = aiohttp.TCPConnector(
            limit=self._max_connections or 0,
            limit_per_host=0,
            keepalive_timeout=self._keepalive or 0.0,
            ssl=ssl_context,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            cookie_jar=aiohttp.DummyCookieJar(),
            skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"),
            timeout=aiohttp.ClientTimeout(total=None),
        )
        return self._session

    def _client_timeout(self, timeout: httpx.Timeout) -> aiohttp.ClientTimeout:
        last = self._last
        if last is not None and last[0] is timeout:
            return last[1]
        key: _TimeoutKey = (timeout.connect, timeout.read, timeout.write, timeout.pool)
        cached = self._timeouts.get(key)
        if cached is None:
            connect, read, _write, pool = key
            acquire = None if connect is None or pool is None else connect + pool
            cached = aiohttp.ClientTimeout(
                total=None, connect=acquire, sock_connect=connect, sock_read=read
            )
            if len(self._timeouts) < 64:  # a handful of distinct timeouts in practice
                self._timeouts[key] = cached
        self._last = (timeout, cached)
        return cached

    async def send(
        self,
        method: str,
        url: str,
        *,
        body: bytes | None,
        headers: Mapping[str, str],
        timeouts: httpx.Timeout,
        max_bytes: int,
    ) -> HttpAnswer:
        """Send one request and read the whole answer (see ``_transport.Transport``).

        Raises:
            httpx.TransportError: Mapped by phase, as in the module docstring.
            ResponseTooLarge: More than ``max_bytes`` in the answer.
            RuntimeError: After :meth:`aclose`.
        """
        session = self._session or self._open()
        # yarl caches parsed URL strings for the life of the process (lru_cache): a query
        # that holds credentials (the pattern endpoint) must not be one. The origin and
        # path are parsed (and cached) alone; the query goes in as pairs, which yarl joins
        # without its cache.
        base, _, query = url.partition("?")
        params = parse_qsl(query, keep_blank_values=True) if query else None
        try:
            response = await session.request(
                method,
                base,
                params=params,
                headers=headers,
                data=body,
                allow_redirects=False,
                timeout=self._client_timeout(timeouts),
            )
        except aiohttp.ClientError as exc:
            raise _translate(exc, reading=False) from None
        try:
            content = await _read_capped(response, max_bytes)
        except aiohttp.ClientError as exc:
            raise _translate(exc, reading=True) from None
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


async def _read_capped(response: aiohttp.ClientResponse, max_bytes: int) -> bytes:
    """The whole body, refusing more than ``max_bytes``."""
    declared = response.content_length
    if declared is not None and declared > max_bytes:
        raise ResponseTooLarge(b"")
    if declared is not None and "Content-Encoding" not in response.headers:
        # The declared length bounds the read. A compressed answer is counted after
        # decoding below: a 40 KB gzip body may inflate to gigabytes.
        return await response.read()
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_chunked(_CHUNK):
        size += len(chunk)
        chunks.append(chunk)
        if size > max_bytes:
            raise ResponseTooLarge(b"".join(chunks)[:HEAD_BYTES])
    return b"".join(chunks)
