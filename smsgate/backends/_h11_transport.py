"""A small HTTP/1.1 client over anyio sockets and h11: smsgate's default under trio.

Why it exists (``benchmarks/transports.py``, table in ``benchmarks/README.md``): under trio
the only other choice is httpx's own pool (httpcore), which at the concurrency a bulk send
runs at reaches about a tenth of the asyncio rate (encode/httpx#3215). A provider request
is one small POST and one small answer on a keep-alive connection, which is little enough
to do directly: ``h11`` (already installed with httpx) parses, ``anyio`` moves the bytes,
on any event loop.

What it does: HTTP/1.1 over TCP (TLS verified with httpx's CA bundle for ``https``), a
keep-alive pool of at most ``max_connections`` per transport, a body-size cap counted
after ``gzip``/``deflate`` decoding, no redirects, no cookies, no proxies (the HTTP base
picks httpx when a proxy is set in the environment). A connection that became readable
while idle (closed by the server) is dropped before reuse; a connection whose exchange was
interrupted (cancelled, timed out, failed) is closed, never reused.

Failures are classified by phase, in httpx's vocabulary (``_transport``): waiting for a
free slot -> ``PoolTimeout``; opening the connection -> ``ConnectTimeout`` /
``ConnectError`` (nothing was written); anything after the first byte was handed to the
socket -> ``WriteTimeout`` / ``WriteError`` / ``ReadTimeout`` / ``ReadError`` /
``RemoteProtocolError`` (the request may have been processed).
"""

from __future__ import annotations

import contextlib
import select
import ssl
import time
import urllib.parse
import zlib
from collections.abc import Mapping

import anyio
import anyio.abc
import h11
import httpx

from ._transport import HEAD_BYTES, HttpAnswer, ResponseTooLarge, verified_context

__all__ = ["H11Transport"]

_CHUNK = 65536
_Key = tuple[str, str, int]


class _Connection:
    __slots__ = ("expires", "h11", "stream")

    def __init__(self, stream: anyio.abc.ByteStream) -> None:
        self.stream = stream
        self.h11 = h11.Connection(h11.CLIENT)
        self.expires = 0.0

    def reusable(self, now: float) -> bool:
        """Not expired, and nothing to read while idle (a server that closed it, or sent
        bytes nobody asked for)."""
        if now >= self.expires or self.h11.our_state is not h11.IDLE:
            return False
        raw = self.stream.extra(anyio.abc.SocketAttribute.raw_socket, None)  # noqa: S610
        if raw is None:
            return True
        # poll(), not select(): select() refuses descriptors numbered 1024 and above.
        poller = select.poll()
        try:
            poller.register(raw, select.POLLIN | select.POLLPRI)
            ready = poller.poll(0)
        except (OSError, ValueError):
            return False
        return not ready

    async def aclose(self) -> None:
        with anyio.CancelScope(shield=True):
            with contextlib.suppress(OSError, anyio.BrokenResourceError):
                await self.stream.aclose()


class H11Transport:
    """A :class:`~smsgate.backends._transport.Transport` over anyio sockets and h11.

    Args:
        max_connections: Requests (and so connections) at once; more wait for a slot.
        keepalive_expiry: How long an idle connection is kept, seconds.
        verify: ``True`` (httpx's CA bundle), ``False``, or an ``ssl.SSLContext``.
    """

    def __init__(
        self,
        *,
        max_connections: int,
        keepalive_expiry: float = 5.0,
        verify: ssl.SSLContext | bool = True,
    ) -> None:
        self._slots = anyio.CapacityLimiter(max_connections)
        self._keepalive = keepalive_expiry
        self._verify = verify
        self._ssl: ssl.SSLContext | None = None
        self._idle: dict[_Key, list[_Connection]] = {}
        self._closed = False

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
        """Send one request and read the whole answer (see ``_transport.Transport``)."""
        if self._closed:
            raise RuntimeError("this transport is closed")
        # urlsplit caches what it parses for the life of the process (lru_cache): give it
        # the origin and path only, never a query that may hold credentials.
        base, mark, query = url.partition("?")
        parts = urllib.parse.urlsplit(base)
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https") or not parts.hostname:
            raise httpx.UnsupportedProtocol(f"cannot send to a {scheme or 'relative'} URL")
        host = parts.hostname
        port = parts.port or (443 if scheme == "https" else 80)
        target = (parts.path or "/") + mark + query
        key = (scheme, host, port)
        with anyio.move_on_after(_seconds(timeouts.pool)) as waiting:
            await self._slots.acquire()
        if waiting.cancelled_caught:
            raise httpx.PoolTimeout("no connection became free in time")
        try:
            connection = await self._take_idle(key) or await self._connect(key, timeouts)
            try:
                answer = await self._exchange(
                    connection, method, target, parts.netloc, body, headers, timeouts, max_bytes
                )
            except BaseException:
                await connection.aclose()
                raise
            await self._put_idle(key, connection)
            return answer
        finally:
            self._slots.release()

    async def aclose(self) -> None:
        """Close every idle connection. Idempotent."""
        self._closed = True
        idle, self._idle = self._idle, {}
        for connections in idle.values():
            for connection in connections:
                await connection.aclose()

    # -- the pool --------------------------------------------------------------------

    async def _take_idle(self, key: _Key) -> _Connection | None:
        connections = self._idle.get(key)
        now = time.monotonic()
        while connections:
            connection = connections.pop()
            if connection.reusable(now):
                return connection
            await connection.aclose()  # stale: closed by the server, or expired
        return None

    async def _put_idle(self, key: _Key, connection: _Connection) -> None:
        state = connection.h11
        # Bytes h11 read past the answer (a stray CRLF, a Content-Length shorter than the
        # body) would be read as the next answer's start: such a connection is closed.
        leftover = bool(state.trailing_data[0])
        if (
            state.our_state is h11.DONE
            and state.their_state is h11.DONE
            and not leftover
            and not self._closed
        ):
            state.start_next_cycle()
            connection.expires = time.monotonic() + self._keepalive
            self._idle.setdefault(key, []).append(connection)
        else:
            await connection.aclose()

    async def _connect(self, key: _Key, timeouts: httpx.Timeout) -> _Connection:
        scheme, host, port = key
        context = self._ssl_context() if scheme == "https" else None
        try:
            with anyio.fail_after(_seconds(timeouts.connect)):
                stream: anyio.abc.ByteStream
                if context is None:
                    stream = await anyio.connect_tcp(host, port)
                else:
                    stream = await anyio.connect_tcp(
                        host,
                        port,
                        ssl_context=context,
                        tls_hostname=host,
                        tls_standard_compatible=False,
                    )
        except TimeoutError:
            raise httpx.ConnectTimeout(f"could not connect to {host}:{port} in time") from None
        except (OSError, ssl.SSLError) as exc:
            raise httpx.ConnectError(f"{type(exc).__name__}: {exc}") from None
        return _Connection(stream)

    def _ssl_context(self) -> ssl.SSLContext:
        if self._ssl is None:
            if isinstance(self._verify, ssl.SSLContext):
                self._ssl = self._verify
            elif self._verify:
                # httpx's context (certifi's bundle): checks do not change with the transport.
                self._ssl = verified_context()
            else:
                self._ssl = httpx.create_ssl_context(verify=False)
        return self._ssl

    # -- one exchange ----------------------------------------------------------------

    async def _exchange(
        self,
        connection: _Connection,
        method: str,
        target: str,
        netloc: str,
        body: bytes | None,
        headers: Mapping[str, str],
        timeouts: httpx.Timeout,
        max_bytes: int,
    ) -> HttpAnswer:
        state = connection.h11
        fields = [("Host", netloc), *headers.items()]
        if body is not None or method in ("POST", "PUT", "PATCH"):
            fields.append(("Content-Length", str(len(body or b""))))
        try:
            out = state.send(h11.Request(method=method, target=target, headers=fields))
            if body:
                out += state.send(h11.Data(data=body))
            out += state.send(h11.EndOfMessage())
        except h11.LocalProtocolError as exc:
            raise httpx.LocalProtocolError(str(exc)) from None
        try:
            with anyio.fail_after(_seconds(timeouts.write)):
                await connection.stream.send(out)
        except TimeoutError:
            raise httpx.WriteTimeout("the request could not be written in time") from None
        except (OSError, anyio.BrokenResourceError, anyio.ClosedResourceError) as exc:
            raise httpx.WriteError(f"{type(exc).__name__}: {exc}") from None
        return await self._read_answer(connection, timeouts, max_bytes)

    async def _read_answer(
        self, connection: _Connection, timeouts: httpx.Timeout, max_bytes: int
    ) -> HttpAnswer:
        state = connection.h11
        read_timeout = _seconds(timeouts.read)
        status = 0
        answer_headers: dict[str, str] = {}
        decoder: _Decoder | None = None
        chunks: list[bytes] = []
        size = 0
        while True:
            try:
                event = state.next_event()
            except h11.RemoteProtocolError as exc:
                raise httpx.RemoteProtocolError(str(exc)) from None
            if event is h11.NEED_DATA:
                try:
                    with anyio.fail_after(read_timeout):
                        data = await connection.stream.receive(_CHUNK)
                except TimeoutError:
                    raise httpx.ReadTimeout("no answer in time") from None
                except anyio.EndOfStream:
                    data = b""
                except (OSError, anyio.BrokenResourceError, anyio.ClosedResourceError) as exc:
                    raise httpx.ReadError(f"{type(exc).__name__}: {exc}") from None
                state.receive_data(data)
            elif isinstance(event, h11.Response):
                status = event.status_code
                for raw_name, raw_value in event.headers:
                    name = raw_name.decode("latin-1")  # h11 lower-cases names
                    value = raw_value.decode("latin-1")
                    previous = answer_headers.get(name)
                    answer_headers[name] = value if previous is None else f"{previous}, {value}"
                declared = answer_headers.get("content-length", "")
                if declared.isdigit() and int(declared) > max_bytes:
                    raise ResponseTooLarge(b"")
                decoder = _Decoder.of(answer_headers.get("content-encoding"))
            elif isinstance(event, h11.Data):
                chunk = bytes(event.data)
                if decoder is not None:
                    chunk = decoder.feed(chunk, max_bytes - size + 1)
                size += len(chunk)
                chunks.append(chunk)
                if size > max_bytes:
                    raise ResponseTooLarge(b"".join(chunks)[:HEAD_BYTES])
            elif isinstance(event, h11.EndOfMessage):
                if decoder is not None:
                    tail = decoder.flush()
                    size += len(tail)
                    chunks.append(tail)
                    if size > max_bytes:
                        raise ResponseTooLarge(b"".join(chunks)[:HEAD_BYTES])
                return HttpAnswer(
                    status_code=status, content=b"".join(chunks), headers=answer_headers
                )
            elif isinstance(event, h11.ConnectionClosed):
                raise httpx.RemoteProtocolError("the server closed the connection mid-answer")
            # h11.InformationalResponse (100 Continue...): nothing to do.


class _Decoder:
    """gzip / deflate decoding with an output bound (a small body may inflate hugely)."""

    __slots__ = ("_zlib",)

    def __init__(self, wbits: int) -> None:
        self._zlib = zlib.decompressobj(wbits)

    @classmethod
    def of(cls, encoding: str | None) -> _Decoder | None:
        name = (encoding or "").strip().lower()
        if name in ("", "identity"):
            return None
        if name in ("gzip", "x-gzip"):
            return cls(16 + zlib.MAX_WBITS)
        if name == "deflate":
            return cls(32 + zlib.MAX_WBITS)  # zlib or gzip header, detected
        raise httpx.DecodingError(f"unsupported content encoding {name!r}")

    def feed(self, data: bytes, limit: int) -> bytes:
        try:
            return self._zlib.decompress(data, max(limit, 1))
        except zlib.error as exc:
            raise httpx.DecodingError(f"bad compressed body: {exc}") from None

    def flush(self) -> bytes:
        try:
            return self._zlib.flush()
        except zlib.error as exc:
            raise httpx.DecodingError(f"bad compressed body: {exc}") from None


def _seconds(value: float | None) -> float:
    # The HTTP base refuses a missing timeout; a borrowed value of None still gets a bound.
    return 30.0 if value is None else value
