"""``fake-server --log-requests``: one line per request the fake receives.

An ASGI wrapper around the fake provider: it reads the request's fields (query string,
form or JSON body), hands the body on unchanged, and logs the method, the path, the
operation and how many recipients the request names, with the answer's status and time.
It never logs a field's value other than the operation: no user name, no password, no
text, no number.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable, MutableMapping
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl

__all__ = ["RequestLog", "describe"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_RECIPIENT_FIELDS = ("to", "tonum", "mobile", "mobiles", "recipients", "receptor")
_OP_FIELDS = ("op", "operation")


def _fields(query: bytes, body: bytes, content_type: str) -> dict[str, object]:
    fields: dict[str, object] = {}
    for raw in (query, body if "json" not in content_type else b""):
        fields.update(parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True))
    if "json" in content_type and body:
        try:
            parsed = json.loads(body)
        except ValueError:
            parsed = None
        if isinstance(parsed, dict):
            fields.update({str(k).lower(): v for k, v in parsed.items()})
    return {key.lower(): value for key, value in fields.items()}


def _count(value: object) -> int:
    if isinstance(value, list):
        return len(value)
    text = str(value).strip()
    if text.startswith("["):
        try:
            parsed = json.loads(text)
        except ValueError:
            parsed = None
        if isinstance(parsed, list):
            return len(parsed)
    return len([part for part in text.strip("[]").split(",") if part.strip()])


def describe(method: str, path: str, query: bytes, body: bytes, content_type: str) -> str:
    """``POST /services.jspd op=send recipients=3`` (no value but the operation's)."""
    fields = _fields(query, body, content_type)
    op = next((str(fields[name]) for name in _OP_FIELDS if name in fields), None)
    if op is None:
        op = path.rstrip("/").rsplit("/", 1)[-1] or "-"
    line = f"{method} {path} op={op[:40]}"
    counted = next((_count(fields[name]) for name in _RECIPIENT_FIELDS if name in fields), None)
    if counted is not None:
        line += f" recipients={counted}"
    return line


class RequestLog:
    """Wraps an ASGI app; calls ``write(line)`` once per HTTP request, after the answer."""

    def __init__(self, app: ASGIApp, write: Callable[[str], None]) -> None:
        self._app = app
        self._write = write

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        started = time.perf_counter()
        chunks: list[bytes] = []
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunks.append(message.get("body", b""))
            more = bool(message.get("more_body"))
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        status: list[int] = []

        async def watch(message: Message) -> None:
            if message["type"] == "http.response.start":
                status.append(int(message["status"]))
            await send(message)

        headers = dict(scope.get("headers") or [])
        content_type = bytes(headers.get(b"content-type", b"")).decode("latin-1").lower()
        line = describe(
            str(scope.get("method", "?")),
            str(scope.get("path", "")),
            bytes(scope.get("query_string", b"")),
            body,
            content_type,
        )
        try:
            await self._app(scope, replay, watch)
        finally:
            elapsed = (time.perf_counter() - started) * 1000
            answer = str(status[0]) if status else "no answer"
            stamp = datetime.now().strftime("%H:%M:%S")
            self._write(f"{stamp} {line} -> {answer} ({elapsed:.0f} ms)")
