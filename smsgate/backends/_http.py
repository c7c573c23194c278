"""The private HTTP base every provider backend builds on.

It chooses (or borrows) one transport (``_transport.Transport``), has a one-way lifecycle
(unopened -> opened -> closed), closes idempotently under a shielded cancel scope, and is
**the one place where transport errors become smsgate errors**:

* the request certainly never left: connect refused or timed out, no pooled connection
  -> :class:`~smsgate.NotSentError` (safe to retry, safe to fall back);
* it may have left: a timeout or a dropped connection after the body was written
  -> :class:`~smsgate.OutcomeUnknownError` (an SMS send is not idempotent: never resent);
* the answer could not be read -> :class:`~smsgate.ProtocolError` with the HTTP status and
  a short excerpt from which every credential has been removed.

No ``httpx`` or ``aiohttp`` exception reaches a caller, none is chained to what does (no
``__cause__``, no ``__context__``: they hold the request, its body and URL), and no
credential reaches a message: every text built here goes through the gateway's
:class:`~smsgate._redact.Redactor`, scrubbed before it is cut.

Which transport (``transport=``):

* ``"auto"`` (default): the ``http_client`` when one is given; else, with a proxy set in
  the environment, an httpx client (httpx honours ``HTTP(S)_PROXY``/``NO_PROXY``); else
  aiohttp's pool under asyncio (httpx's when aiohttp is not installed) and the small h11
  client (``_h11_transport``) under trio (``benchmarks/README.md`` has the measurements).
* ``"httpx"``: an ``httpx.AsyncClient`` of our own (what ``respx.mock`` patches).
* ``"aiohttp"``: aiohttp's pool; asyncio only.
* ``"h11"``: the h11 client, on any event loop.

(Over 500 lines with reason: the error mapping, the lifecycle and the request path share
one state (the transport, the redactor, the telemetry context) and one invariant, "no
transport error and no secret leaves this module"; the transports themselves already live
in their own modules.)
"""

from __future__ import annotations

import email.utils
import enum
import json
import math
import re
import time
import urllib.request
from collections.abc import Iterable, Mapping
from contextlib import AbstractContextManager
from types import MappingProxyType, TracebackType
from typing import Any, Self

import anyio
import httpx

from .. import _telemetry
from .._asynclib import running_library
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
from .._redact import LOG_FILTER, Redactor, install_log_filter
from .._segments import segments
from .._version import __version__
from ..exceptions import (
    ConfigurationError,
    NotSentError,
    OutcomeUnknownError,
    ProtocolError,
    ProviderUnavailableError,
    RateLimitedError,
    SmsGateError,
)
from ._form import encode_form
from ._h11_transport import H11Transport
from ._httpx_transport import HttpxTransport
from ._transport import HttpAnswer, ResponseTooLarge, Transport, TransportName

__all__ = [
    "DEFAULT_TIMEOUT",
    "HttpAnswer",
    "HttpGateway",
    "Scrubber",
    "Transport",
    "TransportName",
]

DEFAULT_TIMEOUT = httpx.Timeout(
    connect=DEFAULT_CONNECT_TIMEOUT,
    read=DEFAULT_READ_TIMEOUT,
    write=DEFAULT_WRITE_TIMEOUT,
    pool=DEFAULT_POOL_TIMEOUT,
)
USER_AGENT = f"smsgate/{__version__}"
#: The most connections a gateway may be asked to keep (far beyond any provider's limit).
MAX_CONNECTIONS = 10_000
#: The longest timeout accepted, seconds (a day: anything longer is a mistake).
MAX_TIMEOUT = 86_400.0
_TRANSPORTS: tuple[TransportName, ...] = ("auto", "aiohttp", "httpx", "h11")

#: The old name of :class:`~smsgate._redact.Redactor` (``Scrubber.of(secrets)``).
Scrubber = Redactor

_HEADERS = {"User-Agent": USER_AGENT, "Accept": "application/json"}
# The headers of every request, by body (read-only: one mapping for all requests).
_PLAIN_HEADERS = MappingProxyType(_HEADERS)
_FORM_HEADERS = MappingProxyType({**_HEADERS, "Content-Type": "application/x-www-form-urlencoded"})
_JSON_HEADERS = MappingProxyType({**_HEADERS, "Content-Type": "application/json"})


class _State(enum.Enum):
    # No transport yet: the constructor does no I/O and may run outside an event loop.
    UNOPENED = 1
    # A transport exists (ours, created on first use, or over the caller's client).
    OPENED = 2
    # aclose() ran: every further request raises RuntimeError; there is no reopening.
    CLOSED = 3


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


def check_seconds(value: object, name: str) -> float:
    """A finite, positive number of seconds (at most a day), else ``ConfigurationError``.

    ``0`` is refused: aiohttp reads it as "no timeout", and a send would wait forever.
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigurationError(f"{name} must be a number of seconds, not {value!r}")
    seconds = float(value)
    if not math.isfinite(seconds) or seconds <= 0 or seconds > MAX_TIMEOUT:
        raise ConfigurationError(
            f"{name} must be more than 0 and at most {MAX_TIMEOUT:g} seconds, not {value!r}"
        )
    return seconds


def check_count(value: object, name: str, *, minimum: int = 1, maximum: int) -> int:
    """An ``int`` in ``[minimum, maximum]``, else ``ConfigurationError``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigurationError(f"{name} must be an int, not {value!r}")
    if not minimum <= value <= maximum:
        raise ConfigurationError(f"{name} must be between {minimum} and {maximum}, not {value}")
    return value


def _check_timeout(timeout: object) -> httpx.Timeout:
    if timeout is None:
        return DEFAULT_TIMEOUT
    if isinstance(timeout, httpx.Timeout):
        # Every I/O has a timeout: a None part (httpx's "wait forever") is refused too.
        return httpx.Timeout(
            connect=check_seconds(timeout.connect, "timeout.connect"),
            read=check_seconds(timeout.read, "timeout.read"),
            write=check_seconds(timeout.write, "timeout.write"),
            pool=check_seconds(timeout.pool, "timeout.pool"),
        )
    return httpx.Timeout(check_seconds(timeout, "timeout"))


class HttpGateway:
    """Shared plumbing for HTTP backends: transport choice, lifecycle, error mapping.

    Subclasses set ``name`` and call :meth:`_request`; they parse the answer themselves.

    Args:
        base_url: The provider's origin, e.g. ``https://ippanel.com``.
        http_client: An ``httpx.AsyncClient`` to use instead of our own. It is borrowed:
            never closed here, and its own transport, proxies and limits apply. respx and
            ``httpx.MockTransport`` see requests through it.
        timeout: Per-request timeouts (seconds, or an ``httpx.Timeout`` with every part
            set): finite and more than 0.
        max_connections: Connections our own transport keeps (1 to 10,000); ignored with
            ``http_client``.
        secrets: Strings that must never appear in an error or log (the password).
        allow_insecure_http: Permit an ``http://`` base URL, which sends the password in
            clear text over the network; loopback addresses are always permitted.
        transport: ``"auto"``, ``"aiohttp"``, ``"httpx"`` or ``"h11"`` (module docstring).

    Raises:
        ConfigurationError: A bad URL, timeout, limit or transport choice.
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
        transport: TransportName = "auto",
    ) -> None:
        self._base_url = _check_base_url(base_url, allow_insecure_http=allow_insecure_http)
        if http_client is not None and not isinstance(http_client, httpx.AsyncClient):
            raise ConfigurationError("http_client must be an httpx.AsyncClient")
        if transport not in _TRANSPORTS:
            raise ConfigurationError(f"transport must be one of {', '.join(_TRANSPORTS)}")
        if http_client is not None and transport not in ("auto", "httpx"):
            raise ConfigurationError(f'transport="{transport}" cannot use a given http_client')
        self._max_connections = check_count(
            max_connections, "max_connections", maximum=MAX_CONNECTIONS
        )
        self._timeout = _check_timeout(timeout)
        self._transport_choice: TransportName = transport
        self._transport: Transport | None = (
            None if http_client is None else HttpxTransport(http_client, owned=False)
        )
        self._state = _State.UNOPENED
        #: The one redactor of this gateway's secrets (errors, excerpts, log records).
        self._scrub = Redactor(secrets)
        self._requests = 0
        # Encoded form values of this gateway (see _encode_form); emptied by aclose().
        self._quoted: dict[str, str] = {}

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

    @property
    def transport_name(self) -> str:
        """The transport in use: ``"aiohttp"``, ``"httpx"`` or ``"h11"`` (the setting, such as
        ``"auto"``, before the first request)."""
        transport = self._transport
        if transport is None:
            return self._transport_choice
        if isinstance(transport, HttpxTransport):
            return "httpx"
        return "h11" if isinstance(transport, H11Transport) else "aiohttp"

    async def __aenter__(self) -> Self:
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
        self._quoted.clear()
        transport, self._transport = self._transport, None
        if transport is not None:
            # Shielded: a cancelled caller must still leave no open sockets behind.
            with anyio.CancelScope(shield=True):
                await transport.aclose()

    def _ensure_client(self) -> Transport:
        """The transport, opened on first use (inside the running event loop)."""
        if self._state is _State.CLOSED:
            raise RuntimeError(f"this {type(self).__name__} is closed; create a new one")
        transport = self._transport
        if transport is None:
            transport = self._transport = self._make_transport()
        if self._state is _State.UNOPENED:
            self._state = _State.OPENED
            LOG_FILTER.register(self._scrub)
            install_log_filter()
        return transport

    def _make_transport(self) -> Transport:
        """Our own transport, as ``transport=`` and the running event loop choose."""
        choice = self._transport_choice
        library = running_library()
        if choice == "aiohttp" and library != "asyncio":
            raise ConfigurationError(f'transport="aiohttp" needs asyncio, not {library}')
        if choice == "aiohttp" or (
            choice == "auto" and library == "asyncio" and not _proxy_in_environment()
        ):
            try:
                from ._aiohttp import AiohttpTransport
            except ImportError:  # aiohttp missing (a trimmed install)
                if choice == "aiohttp":
                    raise ConfigurationError('transport="aiohttp" needs aiohttp') from None
            else:
                return AiohttpTransport(max_connections=self._max_connections)
        if choice == "h11" or (
            choice == "auto" and library != "asyncio" and not _proxy_in_environment()
        ):
            return H11Transport(max_connections=self._max_connections)
        limits = httpx.Limits(
            max_connections=self._max_connections,
            max_keepalive_connections=self._max_connections,
        )
        client = httpx.AsyncClient(timeout=self._timeout, limits=limits, follow_redirects=False)
        return HttpxTransport(client, owned=True)

    # -- requests ----------------------------------------------------------------------

    def _observe(
        self,
        operation: str,
        *,
        recipients: int = 0,
        parts: int = 0,
        attempt: int = 1,
        text: str | None = None,
    ) -> AbstractContextManager[object]:
        """The telemetry context of one provider request, opened by a backend around the
        request *and* the reading of its answer, so that a refusal the backend decodes
        (an error code in a 200 answer) is the request's outcome. :meth:`_request` opens
        one itself when the backend did not.

        ``text``: the message sent; ``parts`` is then its SMS parts, counted only when an
        observer is installed (counting costs more than the rest of this call)."""
        if text is not None and _telemetry.current() is not None:
            parts = segments(text).parts
        return _telemetry.request(
            self.name, operation, recipients=recipients, parts=parts, attempt=attempt
        )

    async def _request(
        self,
        method: str,
        path: str,
        *,
        data: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
        json_body: Any = None,
        idempotent: bool = False,
        operation: str | None = None,
        recipients: int = 0,
        parts: int = 0,
        attempt: int = 1,
    ) -> HttpAnswer:
        """Make one request and read the whole answer, mapping every failure.

        Args:
            idempotent: The request changes nothing at the provider (a query). Its
                timeouts are then ``retryable`` and not ``maybe_sent``.
            operation, recipients, parts, attempt: What :func:`smsgate._telemetry.request`
                reports about this request (``operation`` defaults to the path).

        Raises:
            NotSentError, OutcomeUnknownError, ProtocolError, ProviderUnavailableError,
            RateLimitedError.
        """
        transport = self._transport
        if transport is None or self._state is not _State.OPENED:
            transport = self._ensure_client()
        url = self._base_url + path
        if params:
            url = str(httpx.URL(url, params=params))
        headers: Mapping[str, str] = _PLAIN_HEADERS
        body: bytes | None = None
        if data is not None:
            body = self._encode_form(data)
            headers = _FORM_HEADERS
        elif json_body is not None:
            # The bytes httpx sends for ``json=``.
            body = json.dumps(
                json_body, ensure_ascii=False, separators=(",", ":"), allow_nan=False
            ).encode("utf-8")
            headers = _JSON_HEADERS
        self._requests += 1
        error: SmsGateError | None = None
        with _telemetry.request(
            self.name,
            operation or path,
            recipients=recipients,
            parts=parts,
            attempt=attempt,
        ):
            try:
                answer = await transport.send(
                    method,
                    url,
                    body=body,
                    headers=headers,
                    timeouts=self._timeout,
                    max_bytes=MAX_RESPONSE_BYTES,
                )
            except (httpx.HTTPError, ResponseTooLarge, OSError) as exc:
                error = self._map_error(exc, idempotent=idempotent)
            if error is not None:
                # Raised outside the ``except`` block: the transport's error (which may
                # hold the request, its body and URL) is neither __cause__ nor __context__.
                raise error from None
            self._check_status(answer, idempotent=idempotent)
        return answer

    def _encode_form(self, data: Mapping[str, object]) -> bytes:
        """``urlencode(data)``, the bytes httpx sends for ``data=``, with this gateway's
        cache of encoded values (``_form``; emptied by :meth:`aclose`)."""
        return encode_form(data, self._quoted)

    def _map_error(self, exc: BaseException, *, idempotent: bool) -> SmsGateError:
        """THE classification of a transport failure (see the module docstring)."""
        name = self.name
        if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout):
            return NotSentError(f"could not reach {name}: {self._describe(exc)}")
        if isinstance(exc, httpx.UnsupportedProtocol | httpx.LocalProtocolError | httpx.ProxyError):
            return NotSentError(f"the request to {name} could not be made: {self._describe(exc)}")
        if isinstance(exc, httpx.DecodingError):
            return ProtocolError(
                f"the answer from {name} could not be decoded", maybe_sent=not idempotent
            )
        if isinstance(exc, ResponseTooLarge):
            return ProtocolError(
                f"the answer from {name} is larger than {MAX_RESPONSE_BYTES} bytes",
                excerpt=self._scrub.excerpt(exc.head.decode("utf-8", "replace"), EXCERPT_CHARS),
                maybe_sent=not idempotent,
            )
        if isinstance(exc, ConnectionRefusedError):  # transports that let OSError through
            return NotSentError(f"could not reach {name}: connection refused")
        if isinstance(exc, OSError):
            return OutcomeUnknownError(
                f"the connection to {name} failed: {type(exc).__name__}",
                maybe_sent=not idempotent,
                retryable=idempotent,
            )
        # Read/write timeouts, dropped connections, a server that closed mid-answer: the
        # request may have been processed.
        return OutcomeUnknownError(
            f"no answer from {name} after the request went out: {self._describe(exc)}",
            maybe_sent=not idempotent,
            retryable=idempotent,
        )

    def _describe(self, exc: BaseException) -> str:
        """A transport error's class and text, with every URL and known secret removed."""
        text = self._scrub.excerpt(_URL.sub("<url>", str(exc)), EXCERPT_CHARS)
        return f"{type(exc).__name__}: {text}" if text else type(exc).__name__

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
        # Scrub first, cut after: a password straddling the cut must not leave its prefix.
        return self._scrub.excerpt(answer.text(), EXCERPT_CHARS)

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


_URL = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"<>]+")


def _proxy_in_environment() -> bool:
    # HTTP(S)_PROXY / ALL_PROXY (and NO_PROXY's exceptions) are honoured by httpx's own
    # transport, exactly as users expect from httpx; keep it rather than re-implement that.
    proxies = urllib.request.getproxies()
    return any(proxies.get(scheme) for scheme in ("http", "https", "all"))
