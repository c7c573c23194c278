"""Serve an ASGI app (the fake provider, a webhook app) on 127.0.0.1 with uvicorn in a thread.

A thread, not a task: the server then works the same for asyncio and trio tests (httpx's
own test suite does this), and a test's event loop never blocks it.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

__all__ = ["LoopbackServer", "serve_loopback"]


class LoopbackServer:
    """A running server: ``url`` is its origin, e.g. ``http://127.0.0.1:53211``."""

    def __init__(self, server: Any, thread: threading.Thread, port: int) -> None:
        self._server = server
        self._thread = thread
        self.port = port
        self.url = f"http://127.0.0.1:{port}"

    def stop(self, timeout: float = 10.0) -> None:
        """Ask the server to stop and wait for its thread."""
        self._server.should_exit = True
        self._thread.join(timeout)


@contextlib.contextmanager
def serve_loopback(
    app: Any,
    *,
    port: int = 0,
    startup_timeout: float = 10.0,
    **uvicorn_options: Any,
) -> Iterator[LoopbackServer]:
    """Run ``app`` under uvicorn on 127.0.0.1 in a background thread.

    Args:
        app: Any ASGI application.
        port: The port; 0 picks a free one.
        startup_timeout: Seconds to wait for the server to accept connections.
        uvicorn_options: Passed to ``uvicorn.Config`` (e.g. ``timeout_keep_alive``).

    Yields:
        The running :class:`LoopbackServer`.
    """
    import uvicorn

    # IPPROTO_TCP, not 0: asyncio turns Nagle off (TCP_NODELAY) only on sockets whose proto
    # says TCP; with 0 every answer waited ~40 ms for the client's delayed ACK.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    bound_port = sock.getsockname()[1]
    options: dict[str, Any] = {
        "log_level": "warning",
        "access_log": False,
        "lifespan": "off",
        "timeout_keep_alive": 30,
    }
    options.update(uvicorn_options)
    config = uvicorn.Config(app, **options)
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="smsgate-loopback", daemon=True
    )
    thread.start()
    deadline = time.monotonic() + startup_timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            sock.close()
            raise RuntimeError("the loopback server did not start")
        time.sleep(0.01)
    running = LoopbackServer(server, thread, bound_port)
    try:
        yield running
    finally:
        running.stop()
        sock.close()
