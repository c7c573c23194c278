"""Helpers shared by the reliability tests."""

from __future__ import annotations

from typing import Any

import httpx

from smsgate.testing import FakeProvider


def asgi_client(fake: FakeProvider, **kwargs: Any) -> httpx.AsyncClient:
    """An httpx client talking to ``fake`` in-process."""
    app: Any = fake  # FakeProvider is an ASGI app; its __call__ annotations are looser
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), **kwargs)
