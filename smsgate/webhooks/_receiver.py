"""The framework-free webhook receiver: authenticate, cap, parse, deduplicate, hand over.

A web framework gives it the request's bytes, headers, client address and token, and gets
back the new reports (or a :class:`~smsgate.WebhookError` saying why not). Handing the
reports to the user's callback is a second step, :meth:`WebhookReceiver.deliver`, so that a
framework can answer the provider first and run the callback afterwards: the provider
gives an endpoint 15 seconds (docs/webhooks.md, "What the provider sends"), and a user's
callback may write to a slow database.
"""

from __future__ import annotations

import hmac
import inspect
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import TypeAlias

import attrs

from .._models import DeliveryReport
from ..exceptions import ConfigurationError, WebhookAuthError
from ._dedupe import DedupeStore, MemoryDedupeStore, dedupe_key
from ._errors import ReportTooLargeError, UnreadableReportError
from ._kapanel import KapanelDeliveryParser
from ._source import Network, SourceSpec, address, client_source, networks
from ._throttle import RefusalLog

__all__ = [
    "DEFAULT_MAX_BODY",
    "DEFAULT_TOKEN_HEADER",
    "OnReport",
    "ReportParser",
    "WebhookReceiver",
    "WebhookResult",
]

logger = logging.getLogger("smsgate.webhooks")

#: The default size cap: a report is about 150 bytes, so this holds some 400 of them.
DEFAULT_MAX_BODY = 65536
#: The header that may carry the shared secret (the other place is the URL path).
DEFAULT_TOKEN_HEADER = "X-Smsgate-Token"  # noqa: S105 (a header name, not a secret)

#: The user's callback: ``async def on_report(report) -> None`` (a plain function works too).
OnReport: TypeAlias = Callable[[DeliveryReport], Awaitable[None] | None]
#: A provider's push parser: ``(body, headers) -> reports``.
ReportParser: TypeAlias = Callable[[bytes, Mapping[str, str]], list[DeliveryReport]]

# Characters a secret may use: those that travel in a URL path segment unescaped (RFC 3986
# "unreserved"), so the token in the panel's callback URL is exactly the configured one.
_TOKEN_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_MIN_SECRET = 16


def _secret_bytes(value: str | None) -> bytes | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ConfigurationError(f"secret must be a str, not {type(value).__name__}")
    if len(value) < _MIN_SECRET or not set(value) <= _TOKEN_CHARS:
        # The message never repeats the secret.
        raise ConfigurationError(
            f"secret must be at least {_MIN_SECRET} characters from A-Z a-z 0-9 - . _ ~ "
            "(secrets.token_urlsafe(32) makes a good one)"
        )
    return value.encode("ascii")


def _allowed(value: Iterable[SourceSpec] | SourceSpec | None) -> tuple[Network, ...] | None:
    return networks(value, field="allowed_sources", empty_ok=False)


def _trusted(value: Iterable[SourceSpec] | SourceSpec | None) -> tuple[Network, ...]:
    return networks(value, field="trusted_proxies", empty_ok=True) or ()


def _refusal_log(value: RefusalLog | None) -> RefusalLog:
    return RefusalLog() if value is None else value


def _max_body(value: int) -> int:
    checked: object = value
    if isinstance(checked, bool) or not isinstance(checked, int) or checked < 1:
        raise ConfigurationError(f"max_body must be a positive number of bytes, not {value!r}")
    return value


def _dedupe(value: DedupeStore | None) -> DedupeStore:
    if value is None:
        return MemoryDedupeStore()
    if not isinstance(value, DedupeStore):
        raise ConfigurationError("dedupe must have an async seen(key) -> bool method")
    return value


@attrs.frozen(kw_only=True)
class WebhookResult:
    """What one push brought.

    Attributes:
        reports: The reports not seen before, in body order: these go to ``on_report``.
        duplicates: How many reports in the push had been seen before (and were dropped).
        unchecked: Reports the dedupe store could not check (it failed): they are neither
            delivered nor marked seen, so the push should be refused for the provider to
            send it again (the web layer answers 503). The ``reports`` checked before the
            failure are marked seen and must still be delivered.
    """

    reports: tuple[DeliveryReport, ...]
    duplicates: int = 0
    unchecked: int = 0


@attrs.frozen(eq=False)
class WebhookReceiver:
    """Framework-free delivery-report endpoint logic (a web layer wraps it).

    Checks run cheapest first: source address, secret, declared size, real size, JSON,
    duplicates. Every refusal is a :class:`~smsgate.WebhookError`.

    Args:
        on_report: Called once for each new report by :meth:`deliver` (async or not).
        secret: A shared token (16+ URL-safe characters). When set, every push must carry
            it (in the URL path or the ``token_header``); compared in constant time. Never
            shown in ``repr`` or any message.
        allowed_sources: IP addresses or networks (CIDR) pushes may come from, e.g. the
            address the panel announces; ``None`` allows any.
        trusted_proxies: IP addresses or networks (CIDR) of your own reverse proxies:
            only a request whose peer is one of them has its ``X-Forwarded-For`` read
            (see :meth:`source_from`). Nothing is trusted by default.
        max_body: The largest body accepted, in bytes.
        dedupe: Where seen reports are remembered; ``None`` for a fresh
            :class:`MemoryDedupeStore`.
        parser: Turns a body into reports; default: the Kapanel parser.
        token_header: The header that may carry the secret.
        refusal_log: Where refused pushes are logged, at most one line per interval and
            kind; default a :class:`~smsgate.webhooks.RefusalLog` of 60 s.

    Raises:
        ConfigurationError: A malformed secret, network or size.
    """

    on_report: OnReport | None = attrs.field(default=None)
    _secret: bytes | None = attrs.field(
        default=None, converter=_secret_bytes, repr=False, alias="secret", kw_only=True
    )
    allowed_sources: tuple[Network, ...] | None = attrs.field(
        default=None, converter=_allowed, kw_only=True
    )
    trusted_proxies: tuple[Network, ...] = attrs.field(
        default=None, converter=_trusted, kw_only=True
    )
    max_body: int = attrs.field(default=DEFAULT_MAX_BODY, converter=_max_body, kw_only=True)
    dedupe: DedupeStore = attrs.field(default=None, converter=_dedupe, kw_only=True)
    parser: ReportParser = attrs.field(factory=KapanelDeliveryParser, kw_only=True, repr=False)
    token_header: str = attrs.field(default=DEFAULT_TOKEN_HEADER, kw_only=True)
    refusal_log: RefusalLog = attrs.field(
        default=None, converter=_refusal_log, kw_only=True, repr=False
    )

    # -- the checks, each usable on its own -------------------------------------------

    def source_from(self, peer: str | None, forwarded_for: Sequence[str] = ()) -> str | None:
        """The address a request comes from, believing ``X-Forwarded-For`` only from a
        trusted proxy.

        1. No ``X-Forwarded-For``: ``peer``.
        2. ``peer`` is one of the header's hops: the server already rewrote the client
           address from the header (uvicorn does for its ``forwarded_allow_ips``), so the
           real peer is unknown: ``None`` (an allow-list refuses it).
        3. ``peer`` is in ``trusted_proxies``: the right-most hop that is not a trusted
           proxy (the left-most if all are); ``None`` if a hop is not an IP address.
        4. Otherwise the header is ignored: ``peer``.

        Args:
            peer: The client address the server reports for the connection.
            forwarded_for: The value of every ``X-Forwarded-For`` header, in order.

        Returns:
            The source address, or ``None`` when it cannot be known.
        """
        return self.locate(peer, forwarded_for)[0]

    def locate(self, peer: str | None, forwarded_for: Sequence[str] = ()) -> tuple[str | None, str]:
        """:meth:`source_from`, with a short reason saying which rule decided (for logs)."""
        return client_source(peer, forwarded_for, self.trusted_proxies)

    def check_source(self, source: str | None) -> None:
        """Refuse a client address outside ``allowed_sources``.

        Args:
            source: The client's IP address (:meth:`source_from` finds it behind your
                trusted proxies).

        Raises:
            WebhookAuthError: The address is missing, unreadable or not allowed.
        """
        if self.allowed_sources is None:
            return
        found = address(source)
        if found is None or not any(found in net for net in self.allowed_sources):
            shown = source or "an unknown address"
            raise WebhookAuthError(f"pushes from {shown} are not allowed")

    def check_token(self, token: str | None) -> None:
        """Refuse a push without the right secret (constant-time comparison).

        Raises:
            WebhookAuthError: A secret is configured and ``token`` is missing or wrong.
        """
        if self._secret is None:
            return
        given = (token or "").encode("utf-8", "surrogatepass")
        # compare_digest runs in time independent of where the first difference is; its
        # run time still depends on the lengths, which reveals nothing useful.
        if not hmac.compare_digest(given, self._secret):
            raise WebhookAuthError("the push did not carry the right secret")

    def check_length(self, content_length: str | None) -> None:
        """Refuse a body whose declared ``Content-Length`` is over the cap, before reading it.

        The real size is checked again while reading: a declared length may lie.

        Raises:
            ReportTooLargeError: The declared length is over ``max_body``.
            UnreadableReportError: The header is not a number.
        """
        if content_length is None:
            return
        text = content_length.strip()
        if not text.isascii() or not text.isdigit():
            raise UnreadableReportError(f"Content-Length {content_length[:20]!r} is not a number")
        if int(text) > self.max_body:
            raise ReportTooLargeError(f"the body is over {self.max_body} bytes")

    @property
    def requires_token(self) -> bool:
        """Whether a secret is configured (the secret itself is never readable back)."""
        return self._secret is not None

    def token_from(self, headers: Mapping[str, str], path_token: str | None = None) -> str | None:
        """The token a request carries: the path segment if given, else the token header."""
        if path_token is not None:
            return path_token
        value = headers.get(self.token_header)
        if value is None:
            wanted = self.token_header.lower()
            value = next((v for k, v in headers.items() if k.lower() == wanted), None)
        return value

    # -- the whole request -----------------------------------------------------------

    async def accept(
        self,
        body: bytes,
        headers: Mapping[str, str],
        *,
        source: str | None = None,
        token: str | None = None,
    ) -> WebhookResult:
        """Check and parse one push; return its new reports (``on_report`` is not called).

        Args:
            body: The request body.
            headers: The request headers.
            source: The client's IP address.
            token: The secret the request carried (path segment or header); see
                :meth:`token_from`.

        Returns:
            The new reports and the count of repeats.

        Raises:
            WebhookAuthError: Wrong source or secret.
            ReportTooLargeError: The body is over ``max_body``.
            UnreadableReportError: The body is not JSON.
            MalformedReportError: The JSON is not a delivery report.
        """
        self.check_source(source)
        self.check_token(token)
        if len(body) > self.max_body:
            raise ReportTooLargeError(f"the body is over {self.max_body} bytes")
        reports = self.parser(body, headers)
        # One at a time, in order: a push that repeats a report within itself counts it once.
        fresh: list[DeliveryReport] = []
        for index, report in enumerate(reports):
            try:
                seen = await self.dedupe.seen(dedupe_key(report))
            except Exception:
                # A store that fails (a Redis outage) must not lose reports: the ones
                # already marked seen are delivered now, the rest come back on the retry.
                logger.exception(
                    "the dedupe store failed; %d reports left for a retry", len(reports) - index
                )
                return WebhookResult(
                    reports=tuple(fresh),
                    duplicates=index - len(fresh),
                    unchecked=len(reports) - index,
                )
            if not seen:
                fresh.append(report)
        return WebhookResult(reports=tuple(fresh), duplicates=len(reports) - len(fresh))

    async def deliver(self, reports: Sequence[DeliveryReport]) -> int:
        """Call ``on_report`` for each report, in order.

        A failing callback is logged (``smsgate.webhooks`` logger, with the traceback) and
        the next report still goes out: the provider was already answered, so raising
        would reach nobody. The report is not offered again (it is already recorded as
        seen); keep ``on_report`` simple, or make it queue the report durably first.

        Returns:
            How many callbacks raised.
        """
        if self.on_report is None:
            return 0
        failures = 0
        callback = self.on_report
        is_async = inspect.iscoroutinefunction(callback) or inspect.iscoroutinefunction(
            getattr(callback, "__call__", None)  # noqa: B004 - async callable objects
        )
        for report in reports:
            try:
                if is_async:
                    await callback(report)  # type: ignore[misc]
                else:
                    # A plain function may block (a database write): run it in a worker
                    # thread so that the event loop keeps answering other pushes.
                    import anyio.to_thread  # the web layer's event loop; not at import time

                    result = await anyio.to_thread.run_sync(callback, report)
                    if inspect.isawaitable(result):
                        await result
            except Exception:
                failures += 1
                logger.exception(
                    "on_report failed for message %s, recipient %s, status %s",
                    report.message_id,
                    report.recipient,
                    report.provider_status,
                )
        return failures

    async def handle(
        self,
        body: bytes,
        headers: Mapping[str, str],
        *,
        source: str | None = None,
        token: str | None = None,
    ) -> WebhookResult:
        """:meth:`accept`, then :meth:`deliver`, in one call (for frameworks without a
        way to run work after the response)."""
        result = await self.accept(body, headers, source=source, token=token)
        await self.deliver(result.reports)
        return result
