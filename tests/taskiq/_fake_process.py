"""The fake provider in a process of its own, for the end-to-end test and the workers benchmark.

The provider's side is measured where a provider would measure it, away from the workers and
the test: every POST's arrival is stamped with the machine's wall clock (``time.time()``,
the clock Redis's ``TIME`` reads) when uvicorn hands the request to the app, before its body
is read. ``GET /_e2e/ledger`` answers the stamps and the ledger (recipient, message id).

Run: ``python -m tests.taskiq._fake_process``; it prints ``port <n>`` once it listens.
"""

from __future__ import annotations

import json
import socket
import time
from typing import Any

LEDGER_PATH = "/_e2e/ledger"


def build() -> Any:
    """The ASGI app: the fake provider (both protocols) behind an arrival stamp."""
    from smsgate.testing import FakeProvider

    provider = FakeProvider()
    arrivals: list[float] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] == LEDGER_PATH:
            body = json.dumps(
                {
                    "arrivals": arrivals,
                    "ledger": [[e.recipient, e.message_id] for e in provider.ledger],
                }
            ).encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(b"content-type", b"application/json")],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return
        if scope["type"] == "http" and scope["method"] == "POST":
            arrivals.append(time.time())
        await provider(scope, receive, send)

    return app


def main() -> None:
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)  # TCP_NODELAY
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(
        build(), log_level="warning", access_log=False, lifespan="off", timeout_keep_alive=30
    )
    print(f"port {sock.getsockname()[1]}", flush=True)
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    main()
