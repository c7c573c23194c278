"""The transport over an ``httpx.AsyncClient``: the caller's (borrowed) or our own.

This is the transport respx, ``httpx.MockTransport`` and ``httpx.ASGITransport`` see: pass
a gateway an ``http_client`` (or ``transport="httpx"``) to route its requests through it.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import AsyncIterator, Iterator, Mapping

import anyio
import httpx

from ._transport import HEAD_BYTES, HttpAnswer, ResponseTooLarge

__all__ = ["HttpxTransport"]


class HttpxTransport:
    """Sends through ``client``; closes it on :meth:`aclose` only when ``owned``."""

    def __init__(self, client: httpx.AsyncClient, *, owned: bool) -> None:
        self.client = client
        self._owned = owned

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
        client = self.client
        request = client.build_request(method, url, content=body, headers=headers, timeout=timeouts)
        request.stream = _Body(body or b"")
        try:
            response = await client.send(request, stream=True, follow_redirects=False)
            try:
                content = await _read_capped(response, max_bytes)
            finally:
                await response.aclose()
        except httpx.RequestError as exc:
            # httpx's errors hold the request (its URL and body: the password). Keep the
            # class and text only; the base adds neither the request nor this chain.
            raise _without_request(exc) from None
        finally:
            if "?" in url:
                # httpx's cookie handling runs the URL through urllib's urlsplit, whose
                # lru_cache would keep a query that holds credentials (the pattern
                # endpoint) for the life of the process.
                _clear_url_cache()
        return HttpAnswer(
            status_code=response.status_code, content=content, headers=dict(response.headers)
        )

    async def aclose(self) -> None:
        """Close our own client (shielded: a cancelled caller leaves no socket open)."""
        if self._owned:
            with anyio.CancelScope(shield=True):
                await self.client.aclose()


def _without_request(exc: httpx.RequestError) -> httpx.RequestError:
    """The same kind of error, with the same text, and no request attached."""
    for kind in type(exc).__mro__:
        # A user's transport may raise its own subclass with another constructor: fall
        # back to the nearest httpx class, which keeps the phase the base classifies by.
        if issubclass(kind, httpx.RequestError) and kind.__module__.startswith("httpx"):
            try:
                return kind(str(exc))
            except TypeError:  # pragma: no cover - httpx's own classes take a message
                continue
    return httpx.RequestError(str(exc))  # pragma: no cover - RequestError is in every MRO


def _clear_url_cache() -> None:
    clear = getattr(urllib.parse, "clear_cache", None)
    if clear is not None:
        clear()


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


async def _read_capped(response: httpx.Response, max_bytes: int) -> bytes:
    declared = response.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise ResponseTooLarge(b"")
    chunks: list[bytes] = []
    size = 0
    # Stopping early must close httpx's body generator now, not when the garbage collector
    # finds it (trio warns then).
    body = response.aiter_bytes()
    try:
        async for chunk in body:
            size += len(chunk)
            chunks.append(chunk)
            if size > max_bytes:
                raise ResponseTooLarge(b"".join(chunks)[:HEAD_BYTES])
    finally:
        close = getattr(body, "aclose", None)
        if close is not None:
            await close()
    return b"".join(chunks)
