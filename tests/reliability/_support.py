"""Helpers shared by the reliability tests: gateways on loopback, a fault counter, ledgers."""

from __future__ import annotations

import collections
import json
import os
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import httpx

import smsgate
from smsgate.testing import FakeProvider

USER, PASSWORD = "user", "secret-pass"
IPPANEL_LINE, NEGIN_LINE = "+983000505", "9830003300"


def asgi_client(fake: FakeProvider, **kwargs: Any) -> httpx.AsyncClient:
    """An httpx client talking to ``fake`` in-process."""
    app: Any = fake  # FakeProvider is an ASGI app; its __call__ annotations are looser
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), **kwargs)


def gateway(backend: str, base_url: str, *, read_timeout: float = 5.0, **kwargs: Any) -> Any:
    """An ippanel or Negin gateway on the fake at ``base_url`` with a short read timeout."""
    timeout = httpx.Timeout(5.0, read=read_timeout)
    if backend == "ippanel":
        return smsgate.IppanelGateway(
            username=USER,
            password=PASSWORD,
            sender=IPPANEL_LINE,
            base_url=base_url,
            timeout=timeout,
            **kwargs,
        )
    return smsgate.NeginGateway(
        username=USER,
        password=PASSWORD,
        line=NEGIN_LINE,
        base_url=base_url,
        timeout=timeout,
        **kwargs,
    )


def numbers(count: int, *, start: int = 0) -> list[str]:
    """``count`` distinct valid mobile numbers in local form (``0912…``)."""
    return [f"0912{n:07d}" for n in range(start, start + count)]


def e164(local: str) -> str:
    return smsgate.normalize_msisdn(local)


def ledger_counts(fake: FakeProvider) -> collections.Counter[str]:
    """How many times the fake's own ledger shows a send to each recipient (E.164)."""
    return collections.Counter(fake.core.recipients())


def ledger_lookup(fake: FakeProvider) -> Any:
    """A reconciliation lookup that searches the fake's ledger, as a user searches the outbox."""

    async def lookup(recipient: str) -> str | None:
        ids = [e.message_id for e in list(fake.ledger) if e.recipient == recipient]
        return ids[-1] if ids else None

    return lookup


class CountingApp:
    """ASGI middleware around the fake that counts, server-side, the faults it injected.

    * ``error``: an HTTP 500 answer (the fake answers it before processing);
    * ``drop``: the app raised after starting its answer (the fake's dropped connection);
    * ``hang``: the answer started ``hang_after`` seconds or more after the request came.
    """

    def __init__(self, app: Any, *, hang_after: float) -> None:
        self.app = app
        self.hang_after = hang_after
        self.counts: collections.Counter[str] = collections.Counter()
        self._lock = threading.Lock()

    def _count(self, what: str) -> None:
        with self._lock:
            self.counts[what] += 1

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        self._count("requests")
        began = time.monotonic()

        async def watch(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                if message["status"] == 500:
                    self._count("error")
                elif time.monotonic() - began >= self.hang_after:
                    self._count("hang")
            await send(message)

        try:
            await self.app(scope, receive, watch)
        except ConnectionAbortedError:
            self._count("drop")
            raise


def record_figures(name: str, figures: dict[str, Any]) -> None:
    """Append a run's figures to $SMSGATE_RELIABILITY_FIGURES (a JSON-lines file), if set."""
    target = os.environ.get("SMSGATE_RELIABILITY_FIGURES")
    if not target:
        return
    with Path(target).open("a", encoding="utf-8") as fh:
        fh.write(json.dumps({"test": name, **figures}, sort_keys=True) + "\n")


def duplicates(counts: Iterable[int]) -> int:
    """Recipients the ledger shows more than once."""
    return sum(1 for c in counts if c > 1)
