"""The ippanel backend as a subject of the gateway contract suite."""

from __future__ import annotations

import httpx

from smsgate.backends.ippanel import IppanelGateway
from smsgate.testing import FakeProvider

# FakeProvider's default account. Not read from ``fake.core`` at build time: the contract's
# wrong-password test changes the fake's password before building the gateway, and must see
# the gateway send the old one.
USERNAME = "user"
PASSWORD = "secret-pass"
# A line the fake's ippanel half owns by default (``fake.ippanel.lines``).
SENDER = "+983000505"


def make_gateway(
    fake: FakeProvider, *, base_url: str, http_client: httpx.AsyncClient | None
) -> IppanelGateway:
    """A gateway for the fake's account, on a line the fake owns."""
    assert SENDER in fake.ippanel.lines
    return IppanelGateway(
        username=USERNAME,
        password=PASSWORD,
        sender=SENDER,
        base_url=base_url,
        http_client=http_client,
        # The in-process mode passes a plain-http placeholder origin; nothing crosses a network.
        allow_insecure_http=True,
    )
