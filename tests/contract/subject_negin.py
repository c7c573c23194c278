"""The Negin backend as a subject of the gateway contract suite."""

from __future__ import annotations

import httpx

from smsgate.backends.negin import NeginGateway
from smsgate.testing import FakeProvider

# FakeProvider's default account. Not read from ``fake.core`` at build time: the contract's
# wrong-password test changes the fake's password before building the gateway.
USERNAME = "user"
PASSWORD = "secret-pass"


def make_gateway(
    fake: FakeProvider, *, base_url: str, http_client: httpx.AsyncClient | None
) -> NeginGateway:
    """A gateway for the fake's account, on a line the fake owns, with no opt-out fallback."""
    line = sorted(fake.negin.lines)[0]
    return NeginGateway(
        username=USERNAME,
        password=PASSWORD,
        line=line,
        opt_out_fallback=None,
        base_url=base_url,
        http_client=http_client,
    )
