"""Test kit for smsgate and for users' own tests.

* :class:`FakeProvider`: an ASGI app speaking both wire protocols (ippanel op-style and
  Negin 3300 REST), stateful, with a server-side ledger and scriptable faults. Mount it
  in-process with ``httpx.ASGITransport(app=fake)`` or serve it with :func:`serve_loopback`.
* :class:`FakeGateway`: an in-memory, scriptable ``SmsGateway`` (no HTTP) for testing code
  that takes a gateway, such as the bulk dispatcher.
* respx routers for unit tests (``ippanel_router()``, ``negin_router()``), plugged in with
  ``httpx.MockTransport(router.async_handler)`` on a client given to the gateway
  (``http_client=``): no global patching. With respx's global mock instead, build the
  gateway with ``transport="httpx"`` (by default it sends through aiohttp under asyncio,
  which respx does not see).

Needs the ``testing`` extra (starlette, uvicorn, respx); ``import smsgate`` never imports it.
"""

from __future__ import annotations

from ._core import PROFILES, FakeClock, FakeCore, Faults, LedgerEntry
from ._fake import FakeProvider
from ._fake_gateway import FakeGateway, FakeRequest, FakeSend
from ._routes_ippanel import ippanel_router
from ._routes_negin import negin_router
from ._server import LoopbackServer, serve_loopback
from ._webhook_pusher import PushRecord, WebhookPusher

__all__ = [
    "PROFILES",
    "FakeClock",
    "FakeCore",
    "FakeGateway",
    "FakeProvider",
    "FakeRequest",
    "FakeSend",
    "Faults",
    "LedgerEntry",
    "LoopbackServer",
    "PushRecord",
    "WebhookPusher",
    "ippanel_router",
    "negin_router",
    "serve_loopback",
]
