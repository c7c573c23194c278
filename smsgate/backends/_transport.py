"""The transport seam: what the HTTP base asks of the library that moves the bytes.

A :class:`Transport` sends one request whose body is already encoded and returns the whole
answer (:class:`HttpAnswer`), refusing more than ``max_bytes``. It classifies a failure by
*phase*, in httpx's vocabulary, which the HTTP base (``_http``) then maps to smsgate's
errors in one place:

* ``httpx.ConnectError`` / ``ConnectTimeout`` / ``PoolTimeout``: nothing was written;
* ``httpx.UnsupportedProtocol`` / ``LocalProtocolError``: the request could not be made;
* any other ``httpx.TransportError`` (``ReadTimeout``, ``RemoteProtocolError``,
  ``ReadError``...): the request may have gone out;
* ``httpx.DecodingError``: the answer's encoding could not be undone;
* :class:`ResponseTooLarge`: the answer is bigger than ``max_bytes``.

A transport attaches no request object to what it raises, so no body and no URL
(which may carry credentials) hangs off an error.

Implementations: ``_httpx_transport.HttpxTransport`` (an ``httpx.AsyncClient``, the
caller's or our own; what respx and ``httpx.MockTransport`` see) and
``_aiohttp.AiohttpTransport`` (asyncio only). Neither imports the HTTP base; the base
imports them.
"""

from __future__ import annotations

import codecs
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Literal, Protocol

import attrs
import httpx

if TYPE_CHECKING:
    import ssl

__all__ = ["HttpAnswer", "ResponseTooLarge", "Transport", "TransportName", "verified_context"]

#: The ``transport=`` setting of the gateways (see ``docs/writing-a-backend.md``).
TransportName = Literal["auto", "aiohttp", "httpx", "h11"]


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


class ResponseTooLarge(Exception):
    """The answer is larger than the cap; ``head`` holds its first bytes (for an excerpt)."""

    def __init__(self, head: bytes) -> None:
        super().__init__("response too large")
        self.head = head


#: How many leading bytes of a too-large answer a transport keeps for the excerpt (the base
#: scrubs them, then cuts to ``EXCERPT_CHARS``).
HEAD_BYTES: int = 4096


class Transport(Protocol):
    """Sends one request and reads the whole answer (see the module docstring)."""

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
        """Send ``body`` (already encoded) to ``url`` and read the answer, at most ``max_bytes``.

        Raises:
            httpx.TransportError: Classified by phase, as in the module docstring.
            ResponseTooLarge: More than ``max_bytes`` in the answer.
        """
        ...

    async def aclose(self) -> None:
        """Close what this transport opened (a borrowed client stays open). Idempotent."""
        ...


_CONTEXTS: dict[tuple[str | None, str | None], ssl.SSLContext] = {}


def verified_context() -> ssl.SSLContext:
    """httpx's default verifying TLS context (certifi's CA bundle, or the
    ``SSL_CERT_FILE`` / ``SSL_CERT_DIR`` it names), built once per process for each
    of those settings.

    Loading a CA bundle takes tens of milliseconds of CPU: per gateway, that was more than
    a short job's requests cost. The context is only read once built (aiohttp and the h11
    client wrap sockets with it; nothing sets options on it), so one serves every transport,
    as aiohttp's own default context does.
    """
    key = (os.environ.get("SSL_CERT_FILE") or None, os.environ.get("SSL_CERT_DIR") or None)
    context = _CONTEXTS.get(key)
    if context is None:
        context = _CONTEXTS[key] = httpx.create_ssl_context()
    return context
