"""The private HTTP base every provider backend builds on.

It owns (or borrows) one ``httpx.AsyncClient``, has a one-way lifecycle (unopened ->
opened -> closed), closes idempotently under a shielded cancel scope, and is **the one
place where httpx errors become smsgate errors**:

* the request certainly never left: connect refused or timed out, no pooled connection
  -> :class:`~smsgate.NotSentError` (safe to retry, safe to fall back);
* it may have left: a timeout or a dropped connection after the body was written
  -> :class:`~smsgate.OutcomeUnknownError` (an SMS send is not idempotent: never resent);
* the answer could not be read -> :class:`~smsgate.ProtocolError` with the HTTP status and
  a short excerpt from which every credential has been removed.

No ``httpx`` exception reaches a caller, and no credential reaches a message: backends
register their secrets and every text built here is scrubbed.
"""

from __future__ import annotations

import codecs
import contextlib
import email.utils
import enum
import json
import re
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Iterable, Iterator, Mapping
from types import TracebackType
from typing import Any, Protocol, Self
from urllib.parse import quote, quote_plus

import anyio
import attrs
import httpx

from .._constants import (
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_POOL_TIMEOUT,
    DEFAULT_READ_TIMEOUT,
    DEFAULT_WRITE_TIMEOUT,
    EXCERPT_CHARS,
    MAX_RESPONSE_BYTES,
    MAX_RETRY_AFTER,
)
from .._version import __version__
from ..exceptions import (
    ConfigurationError,
    NotSentError,
    OutcomeUnknownError,
    ProtocolError,
    ProviderUnavailableError,
    RateLimitedError,
)

__all__ = ["DEFAULT_TIMEOUT", "HttpAnswer", "HttpGateway", "Scrubber"]

DEFAULT_TIMEOUT = httpx.Timeout(
    connect=DEFAULT_CONNECT_TIMEOUT,
    read=DEFAULT_READ_TIMEOUT,
    write=DEFAULT_WRITE_TIMEOUT,
    pool=DEFAULT_POOL_TIMEOUT,
)
USER_AGENT = f"smsgate/{__version__}"


class _State(enum.Enum):
    # No client yet: the constructor does no I/O and may run outside an event loop.
    UNOPENED = 1
    # A client exists (ours, created on first use, or the caller's).
    OPENED = 2
    # aclose() ran: every further request raises RuntimeError; there is no reopening.
    CLOSED = 3


@attrs.frozen
class Scrubber:
    """Removes known secrets, in every encoding they may travel in, from a text."""

    secrets: tuple[str, ...]

    @classmethod
    def of(cls, secrets: Iterable[str | None]) -> Scrubber:
        forms: set[str] = set()
        for secret in secrets:
            if not secret:
                continue
            forms.update({secret, quote(secret, safe=""), quote(secret), quote_plus(secret)})
            forms.add(json.dumps(secret)[1:-1])
        # Longest first, so that an encoded form is not half-replaced by a shorter one.
        return cls(tuple(sorted(forms, key=len, reverse=True)))

    def __call__(self, text: str) -> str:
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, "***")
        # Any other spelling a client library may re-encode a query-string password into.
        return _QUERY_SECRET.sub(r"\1=***", text)


_QUERY_SECRET = re.compile(r"(?i)\b(pass(?:word)?|pwd)=[^&\s\"']*")
_URL = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"<>]+")


def _safe_cause(exc: BaseException, scrub: Scrubber) -> BaseException | None:
    """``exc`` to chain as the cause, or ``None`` when its text (or its own cause's) would
    show a secret in a printed traceback."""
    chain: BaseException | None = exc
    for _ in range(16):  # a chain is short; the bound guards against a cycle
        if chain is None:
            break
        text = str(chain)
        if scrub(text) != text:
            return None
        chain = chain.__cause__ or chain.__context__
    return exc


def _describe(exc: BaseException, scrub: Scrubber) -> str:
    """A transport error's class and text, with every URL and known secret removed."""
    text = _URL.sub("<url>", str(exc))
    return f"{type(exc).__name__}: {scrub(text)}" if text else type(exc).__name__


@attrs.frozen(kw_only=True)
class HttpAnswer:
    """A provider's HTTP answer, fully read."""

    status_code: int
    content: bytes = attrs.field(repr=False)
    headers: Mapping[str, str] = attrs.field(repr=False, factory=dict)

    def text(self) -> str:
        """The body as text: UTF-8, with a byte-order mark removed."""
        body = self.content
        if body.startswith(codecs.BOM_UTF8):
            body = body[len(codecs.BOM_UTF8) :]
        return body.decode("utf-8", errors="replace").strip()


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header (seconds or an HTTP date), capped."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    if seconds != seconds:  # NaN
        return None
    return max(0.0, min(seconds, MAX_RETRY_AFTER))


class HttpGateway:
    """Shared plumbing for HTTP backends: client ownership, lifecycle, error mapping.

    Subclasses set ``name`` and call :meth:`_request`; they parse the answer themselves.

    Args:
        base_url: The provider's origin, e.g. ``https://ippanel.com``.
        http_client: An ``httpx.AsyncClient`` to use instead of our own. It is borrowed:
            never closed here, and its own transport, proxies and limits apply.
        timeout: Per-request timeouts (seconds, or an ``httpx.Timeout``).
        max_connections: Connections our own client keeps; ignored with ``http_client``.
        secrets: Strings that must never appear in an error or log (the password).
        allow_insecure_http: Permit an ``http://`` base URL, which sends the password in
            clear text over the network; loopback addresses are always permitted.
    """

    name: str = "http"

    def __init__(
        self,
        *,
        base_url: str,
        http_client: httpx.AsyncClient | None = None,
        timeout: float | httpx.Timeout | None = None,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        secrets: Iterable[str | None] = (),
        allow_insecure_http: bool = False,
    ) -> None:
        self._base_url = _check_base_url(base_url, allow_insecure_http=allow_insecure_http)
        if http_client is not None and not isinstance(http_client, httpx.AsyncClient):
            raise ConfigurationError("http_client must be an httpx.AsyncClient")
        if max_connections < 1:
            raise ConfigurationError("max_connections must be at least 1")
        self._timeout = (
            DEFAULT_TIMEOUT
            if timeout is None
            else timeout
            if isinstance(timeout, httpx.Timeout)
            else httpx.Timeout(timeout)
        )
        self._max_connections = max_connections
        self._client = http_client
        self._owns_client = http_client is None
        self._state = _State.UNOPENED if http_client is None else _State.OPENED
        self._scrub = Scrubber.of(secrets)
        self._requests = 0
        # Set when our own client's transport can also take a request directly (see
        # _default_transport); a borrowed client always goes through httpx.
        self._direct: _DirectSend | None = None

    # -- lifecycle ---------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """The provider's origin this gateway talks to."""
        return self._base_url

    @property
    def requests_made(self) -> int:
        """How many HTTP requests this gateway has started (sent or not)."""
        return self._requests

    @property
    def is_closed(self) -> bool:
        """Whether :meth:`aclose` has run."""
        return self._state is _State.CLOSED

    async def __aenter__(self) -> Self:
        if self._state is _State.CLOSED:
            raise RuntimeError(f"this {type(self).__name__} is closed; create a new one")
        self._ensure_client()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connections this gateway opened. Idempotent; never closes a borrowed client."""
        if self._state is _State.CLOSED:
            return
        self._state = _State.CLOSED
        client, self._client = self._client, None
        if client is not None and self._owns_client:
            # Shielded: a cancelled caller must still leave no open sockets behind.
            with anyio.CancelScope(shield=True):
                await client.aclose()

    def _ensure_client(self) -> httpx.AsyncClient:
        if self._state is _State.CLOSED:
            raise RuntimeError(f"this {type(self).__name__} is closed; create a new one")
        if self._client is None:
            self._client = self._make_client()
            self._state = _State.OPENED
        return self._client

    def _make_client(self) -> httpx.AsyncClient:
        limits = httpx.Limits(
            max_connections=self._max_connections,
            max_keepalive_connections=self._max_connections,
        )
        transport = _default_transport(limits)
        self._direct = getattr(transport, "send_direct", None)
        return httpx.AsyncClient(
            timeout=self._timeout,
            limits=limits,
            follow_redirects=False,
            transport=transport,
        )

    # -- requests ----------------------------------------------------------------------

    async def _request(
        self,
        method: str,
        path: str,
        *,
        data: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
        json_body: Any = None,
        idempotent: bool = False,
    ) -> HttpAnswer:
        """Make one request and read the whole answer, mapping every failure.

        Args:
            idempotent: The request changes nothing at the provider (a query). Its
                timeouts are then ``retryable`` and not ``maybe_sent``.

        Raises:
            NotSentError, OutcomeUnknownError, ProtocolError, ProviderUnavailableError,
            RateLimitedError.
        """
        client = self._ensure_client()
        url = self._base_url + path
        headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
        self._requests += 1
        if self._direct is not None:
            # Our own aiohttp transport without httpx's client layer, which costs about as
            # much CPU per request as the transport itself (benchmarks/README.md). It
            # raises the same httpx errors, mapped below like any other.
            async with self._mapped_errors(idempotent=idempotent):
                answer = await self._direct(
                    method,
                    url,
                    data=data,
                    params=params,
                    json_body=json_body,
                    headers=headers,
                    timeouts=self._timeout,
                )
            self._check_status(answer, idempotent=idempotent)
            return answer
        async with self._mapped_errors(idempotent=idempotent):
            request = client.build_request(
                method,
                url,
                data=data,
                params=params,
                json=json_body,
                headers=headers,
                timeout=self._timeout,
            )
            request.stream = _Body(request.content)
            response = await client.send(request, stream=True, follow_redirects=False)
            try:
                body = await _read_capped(response)
            finally:
                await response.aclose()
        answer = HttpAnswer(
            status_code=response.status_code, content=body, headers=dict(response.headers)
        )
        self._check_status(answer, idempotent=idempotent)
        return answer

    def _check_status(self, answer: HttpAnswer, *, idempotent: bool) -> None:
        status = answer.status_code
        if 200 <= status < 300:
            return
        if status == 429:
            raise RateLimitedError(
                provider=self.name,
                code="HTTP 429",
                retry_after=parse_retry_after(answer.headers.get("retry-after")),
            )
        if status >= 500:
            # 503 says the request was not processed; 500/502/504 may come after the
            # provider accepted a send (a proxy timing out in front of it).
            maybe = not idempotent and status != 503
            raise ProviderUnavailableError(
                f"the provider answered HTTP {status}",
                provider=self.name,
                code=f"HTTP {status}",
                detail=self._excerpt(answer) or None,
                maybe_sent=maybe,
                fallback_ok=not maybe,
                retryable=not maybe,
            )
        # 4xx: a wrong base URL or path; the request was refused before any business
        # logic ran. A redirect, though, may follow a processed POST (post-redirect-get).
        raise ProtocolError(
            "the provider answered with an unexpected HTTP status",
            status_code=status,
            excerpt=self._excerpt(answer),
            maybe_sent=status < 400 and not idempotent,
        )

    def _excerpt(self, answer: HttpAnswer) -> str:
        return self._scrub(answer.text()[:EXCERPT_CHARS])

    def _protocol_error(
        self, message: str, answer: HttpAnswer, *, idempotent: bool = False
    ) -> ProtocolError:
        """A ``ProtocolError`` for an answer this backend could not read."""
        return ProtocolError(
            self._scrub(message),
            status_code=answer.status_code,
            excerpt=self._excerpt(answer),
            maybe_sent=not idempotent,
        )

    def _json(self, answer: HttpAnswer, *, idempotent: bool = False) -> Any:
        """Decode the answer as JSON whatever its content type says."""
        text = answer.text()
        try:
            return json.loads(text)
        except (ValueError, RecursionError):
            pass
        # Raised outside the except block: the decoder's error would otherwise stay
        # reachable as __context__, holding the whole body in its .doc.
        raise self._protocol_error(
            f"{self.name} answered with something that is not JSON", answer, idempotent=idempotent
        )

    @contextlib.asynccontextmanager
    async def _mapped_errors(self, *, idempotent: bool) -> AsyncIterator[None]:
        try:
            yield
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            raise NotSentError(
                f"could not reach {self.name}: {_describe(exc, self._scrub)}"
            ) from _safe_cause(exc, self._scrub)
        except (httpx.UnsupportedProtocol, httpx.LocalProtocolError, httpx.ProxyError) as exc:
            raise NotSentError(
                f"the request to {self.name} could not be made: {type(exc).__name__}"
            ) from _safe_cause(exc, self._scrub)
        except httpx.DecodingError as exc:
            raise ProtocolError(
                f"the answer from {self.name} could not be decoded", maybe_sent=not idempotent
            ) from _safe_cause(exc, self._scrub)
        except httpx.HTTPError as exc:
            # Read/write timeouts, dropped connections, a server that closed mid-answer:
            # the request may have been processed.
            raise OutcomeUnknownError(
                f"no answer from {self.name} after the request went out: "
                f"{_describe(exc, self._scrub)}",
                maybe_sent=not idempotent,
                retryable=idempotent,
            ) from _safe_cause(exc, self._scrub)
        except _ResponseTooLarge as exc:
            raise ProtocolError(
                f"the answer from {self.name} is larger than {MAX_RESPONSE_BYTES} bytes",
                excerpt=self._scrub(exc.head.decode("utf-8", "replace")[:EXCERPT_CHARS]),
                maybe_sent=not idempotent,
            ) from None
        except ConnectionRefusedError as exc:  # transports that let OSError through
            raise NotSentError(f"could not reach {self.name}: connection refused") from _safe_cause(
                exc, self._scrub
            )
        except OSError as exc:
            raise OutcomeUnknownError(
                f"the connection to {self.name} failed: {type(exc).__name__}",
                maybe_sent=not idempotent,
                retryable=idempotent,
            ) from _safe_cause(exc, self._scrub)


class _Body(httpx.AsyncByteStream, httpx.SyncByteStream):
    """A request body that is not an async generator.

    httpx's own ``ByteStream.__aiter__`` is one: a send cancelled while the body is being
    written leaves it unfinished, and trio then spawns a task to close it after the
    cancellation (encode/httpx#3686). A plain iterator leaves nothing behind.
    """

    def __init__(self, content: bytes) -> None:
        self._content = content

    def __iter__(self) -> Iterator[bytes]:
        return iter((self._content,))

    def __aiter__(self) -> AsyncIterator[bytes]:
        return _OneChunk(self._content)


class _OneChunk:
    """An async iterator over one chunk (a class, not a generator: nothing to finalise)."""

    __slots__ = ("_chunk",)

    def __init__(self, chunk: bytes) -> None:
        self._chunk: bytes | None = chunk

    def __aiter__(self) -> _OneChunk:
        return self

    async def __anext__(self) -> bytes:
        chunk, self._chunk = self._chunk, None
        if chunk is None:
            raise StopAsyncIteration
        return chunk


class _ResponseTooLarge(Exception):
    def __init__(self, head: bytes) -> None:
        super().__init__("response too large")
        self.head = head


async def _read_capped(response: httpx.Response) -> bytes:
    declared = response.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_RESPONSE_BYTES:
        raise _ResponseTooLarge(b"")
    chunks: list[bytes] = []
    size = 0
    # Stopping early must close httpx's body generator now, not when the
    # garbage collector finds them (trio warns then).
    body = response.aiter_bytes()
    try:
        async for chunk in body:
            size += len(chunk)
            chunks.append(chunk)
            if size > MAX_RESPONSE_BYTES:
                raise _ResponseTooLarge(b"".join(chunks)[:EXCERPT_CHARS])
    finally:
        close = getattr(body, "aclose", None)
        if close is not None:
            await close()
    return b"".join(chunks)


_LOOPBACK_HOSTS = ("127.", "localhost", "[::1]")


def _check_base_url(base_url: str, *, allow_insecure_http: bool) -> str:
    try:
        url = httpx.URL(base_url)
    except (httpx.InvalidURL, TypeError) as exc:
        raise ConfigurationError(f"base_url is not a URL: {base_url!r}") from exc
    if url.scheme not in ("http", "https") or not url.host:
        raise ConfigurationError(f"base_url must be an http(s) URL with a host: {base_url!r}")
    if url.userinfo or url.query:
        raise ConfigurationError("base_url must not carry credentials or a query string")
    host = url.host
    loopback = host.startswith(_LOOPBACK_HOSTS) or host in ("::1", "localhost")
    if url.scheme == "http" and not (allow_insecure_http or loopback):
        raise ConfigurationError(
            f"base_url {base_url!r} is plain http: the password would cross the network in "
            "clear text. Use https, or pass allow_insecure_http=True if you must."
        )
    return base_url.rstrip("/")


class _DirectSend(Protocol):
    """A transport's shortcut around httpx's client layer (``AiohttpTransport.send_direct``)."""

    def __call__(
        self,
        method: str,
        url: str,
        *,
        data: Mapping[str, str] | None,
        params: Mapping[str, str] | None,
        json_body: Any,
        headers: Mapping[str, str],
        timeouts: httpx.Timeout,
    ) -> Awaitable[HttpAnswer]: ...


def _default_transport(limits: httpx.Limits) -> httpx.AsyncBaseTransport | None:
    """The transport our own client uses; ``None`` means httpx's default pool.

    Chosen by measurement (``benchmarks/README.md``): under asyncio, an aiohttp pool behind
    httpx's API is several times faster than httpcore's at the concurrency a bulk send
    runs at. aiohttp is asyncio-only, so under trio (or anything else) httpx's own pool
    stays; so it does while a proxy is configured in the environment or respx's global
    mock is active. Called lazily, inside the running event loop, when the client is first
    needed.
    """
    if _running_async_library() != "asyncio" or _respx_is_mocking() or _proxy_in_environment():
        return None
    try:
        from ._aiohttp import AiohttpTransport
    except ImportError:  # aiohttp missing (a trimmed install): httpx's pool still works
        return None
    return AiohttpTransport(limits=limits)


def _running_async_library() -> str | None:
    try:
        import sniffio
    except ImportError:
        # trio depends on sniffio, so without it only asyncio can be running.
        return "asyncio"
    try:
        return sniffio.current_async_library()
    except sniffio.AsyncLibraryNotFoundError:
        return None


def _proxy_in_environment() -> bool:
    # HTTP(S)_PROXY / ALL_PROXY (and NO_PROXY's exceptions) are honoured by httpx's own
    # transport, exactly as users expect from httpx; keep it rather than re-implement that.
    proxies = urllib.request.getproxies()
    return any(proxies.get(scheme) for scheme in ("http", "https", "all"))


def _respx_is_mocking() -> bool:
    # respx's global mock (``with respx.mock:``) patches httpx's own transports. A user's
    # test that relies on it must not see its requests escape through aiohttp: while any
    # respx router is active, keep the transport respx intercepts.
    respx_mocks = sys.modules.get("respx.mocks")
    mocker = getattr(respx_mocks, "Mocker", None)
    registry = getattr(mocker, "registry", None)
    if not registry:
        return False
    return any(getattr(kind, "routers", None) for kind in registry.values())
