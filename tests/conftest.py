"""Shared fixtures.

Async tests are either ``@pytest.mark.asyncio`` (pytest-asyncio, strict mode: how users run
smsgate inside asyncio services) or ``@pytest.mark.anyio`` (anyio's plugin, parametrized
over asyncio and trio by the ``anyio_backend`` fixture below). The gateway contract suite
uses the latter so it runs under trio too.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest

# The dispatcher's automatic send window (ippanel: 08:00-23:00 Tehran) would make any test
# that sends through IppanelGateway depend on the hour it runs at. Tests of the window set
# it explicitly (send_window=SendWindow(...)), which this does not affect. Children
# started by tests (the CLI, kill-and-resume) inherit it.
os.environ.setdefault("SMSGATE_SEND_WINDOW", "off")

from smsgate.testing import FakeProvider, LoopbackServer, serve_loopback


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Slow tests first (a stable sort; the rest keep their order). In parallel
    (pytest-xdist's worksteal) they open the first worker's share, so a long test never
    starts last and keeps the run going alone; the end-to-end runs of several worker
    processes (tests/taskiq/test_workers.py) run there one after the other."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    """Run ``@pytest.mark.anyio`` tests under asyncio and under trio."""
    return str(request.param)


@pytest.fixture
def fake() -> FakeProvider:
    """A fresh fake provider (both protocols) with default credentials."""
    return FakeProvider()


class _Forward:
    """An ASGI app that forwards to whichever app the current test installed."""

    def __init__(self) -> None:
        self.app: Any = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)


@pytest.fixture(scope="session")
def _shared_server() -> Iterator[tuple[_Forward, LoopbackServer]]:
    forward = _Forward()
    with serve_loopback(forward) as server:
        yield forward, server


@pytest.fixture
def serve_shared(
    _shared_server: tuple[_Forward, LoopbackServer],
) -> Iterator[Callable[[Any], LoopbackServer]]:
    """``server = serve_shared(app)``: ``app`` served on 127.0.0.1 by uvicorn, one server per
    test process (stopping a server costs ~0.2 s: uvicorn polls its exit flag). The app is
    this test's alone: it is removed afterwards. Not for a test that stops the server or
    needs uvicorn options of its own."""
    forward, server = _shared_server

    def install(app: Any) -> LoopbackServer:
        forward.app = app
        return server

    yield install
    forward.app = None


@pytest.fixture
def loopback_fake(fake: FakeProvider) -> Iterator[tuple[FakeProvider, LoopbackServer]]:
    """The ``fake`` fixture served by uvicorn on 127.0.0.1 (a real HTTP server)."""
    with serve_loopback(fake) as server:
        yield fake, server
