"""The servers the benchmarks talk to, each run by granian in its own process.

* :func:`minimal_app`: the smallest ASGI app that answers an ippanel ``op=send`` the way
  the provider does (``[0,"<bulk id>"]``, protocols/ippanel.md §2.4). It measures the
  HTTP clients, not a fake.
* :func:`fake_app`: smsgate's own :class:`~smsgate.testing.FakeProvider` (both wire
  protocols, server-side ledger), wrapped with a ``/_bench/stats`` route.

Both count on the server side: ``GET /_bench/stats`` answers the requests and recipients
seen so far, so that no client bug can inflate a rate; the fake also answers
``GET /_bench/arrivals`` (the server-clock arrival times since the last call). Fixed
latency comes from the ``SMSGATE_BENCH_LATENCY`` environment variable (seconds), read
when the app is built.
"""

from __future__ import annotations

import collections
import json
import os
import time
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

STATS_PATH = "/_bench/stats"
ARRIVALS_PATH = "/_bench/arrivals"


def _latency() -> float:
    return float(os.environ.get("SMSGATE_BENCH_LATENCY", "0") or 0)


async def _answer(send: Send, body: bytes, status: int = 200) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


def minimal_app() -> App:
    """An ASGI app answering every POST with ``[0,"<id>"]`` after reading the body.

    Returns:
        The app; ``/_bench/stats`` reports ``{"requests": n, "recipients": n}`` where a
        recipient is one comma in the ``to`` field plus one (no JSON parsing: it is cheap
        on purpose, so that the server is not what is measured).
    """
    import asyncio  # this app runs under granian's asyncio loop, never inside smsgate

    latency = _latency()
    counts = {"requests": 0, "recipients": 0}

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        if scope["path"] == STATS_PATH:
            await _answer(send, json.dumps(counts).encode())
            return
        body = await _read_body(receive)
        counts["requests"] += 1
        counts["recipients"] += body.count(b"%2C") + 1
        if latency:
            await asyncio.sleep(latency)
        await _answer(send, b'[0,"%d"]' % (562892393 + counts["requests"]))

    return app


def fake_app() -> App:
    """smsgate's FakeProvider with a stats route (requests, ledger recipients).

    Credentials are the fake's defaults (``user`` / ``secret-pass``); the credit covers
    any benchmark; latency applies to every provider request, not to the stats route.

    Returns:
        The app.
    """
    from smsgate.testing import FakeProvider, Faults

    fake = FakeProvider(
        credit=Decimal(10) ** 15,
        price_per_part=Decimal(1),
        faults=Faults(latency=_latency()),
    )
    core = fake.core
    # Arrival times (server clock) of the latest provider requests, for the limiter row.
    arrivals: collections.deque[float] = collections.deque(maxlen=200_000)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == STATS_PATH:
            stats = {"requests": core.requests, "recipients": len(core.ledger)}
            await _answer(send, json.dumps(stats).encode())
            return
        if scope["type"] == "http" and scope["path"] == ARRIVALS_PATH:
            times = list(arrivals)
            arrivals.clear()
            await _answer(send, json.dumps(times).encode())
            return
        arrivals.append(time.monotonic())
        await fake(scope, receive, send)  # type: ignore[arg-type]  # ASGI callables

    return app
