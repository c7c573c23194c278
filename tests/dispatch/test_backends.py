"""The dispatcher over the real backends (IppanelGateway, NeginGateway) against the fake
provider mounted in-process (httpx.ASGITransport); counts come from the fake's own ledger."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator

import httpx
import pytest

import smsgate
from smsgate.dispatch import BulkDispatcher, FallbackPolicy, MemoryJournal, RateLimit
from smsgate.testing import FakeProvider

pytestmark = pytest.mark.anyio

OPTED = "09350000001"


@pytest.fixture
def provider() -> FakeProvider:
    """The fake provider, with one number on the opt-out list."""
    return FakeProvider(opted_out=[OPTED])


@pytest.fixture
async def client(provider: FakeProvider) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client whose transport is the fake provider, in process."""
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=provider)) as c:
        yield c


def ippanel(client: httpx.AsyncClient) -> smsgate.IppanelGateway:
    return smsgate.IppanelGateway(
        username="user",
        password="secret-pass",
        sender="+983000505",
        base_url="http://127.0.0.1",
        http_client=client,
        allow_insecure_http=True,
    )


def negin(client: httpx.AsyncClient) -> smsgate.NeginGateway:
    return smsgate.NeginGateway(
        username="user",
        password="secret-pass",
        line="9830003300",
        opt_out_fallback=None,  # no server-side fallback: the client-side chain does it
        base_url="http://127.0.0.1",
        http_client=client,
        allow_insecure_http=True,
    )


async def test_ippanel_batches_from_the_ledger(
    provider: FakeProvider, client: httpx.AsyncClient
) -> None:
    """250 recipients of one text through ippanel: ceil(250/100) bulk ids on the fake's side,
    every recipient in its ledger exactly once, every outcome sent with its bulk id."""
    messages = [smsgate.Message(to=f"0912{i:07d}", text="سلام") for i in range(250)]
    async with ippanel(client) as gw:
        outcomes = [o async for o in BulkDispatcher(gw, rate_limit=RateLimit(50)).stream(messages)]
    assert [o.status for o in outcomes] == ["sent"] * 250
    assert len({e.message_id for e in provider.ledger}) == math.ceil(250 / 100)
    ledger = provider.core.recipients()
    assert sorted(ledger) == sorted(f"+98912{i:07d}" for i in range(250))
    assert {o.message_id for o in outcomes} == {e.message_id for e in provider.ledger}


async def test_negin_opt_out_falls_back_to_ippanel(
    provider: FakeProvider, client: httpx.AsyncClient
) -> None:
    """Negin (one number per request) refuses the opted-out number; the chain sends it on
    ippanel; the journal and the fake's ledger agree on who sent what."""
    messages = [smsgate.Message(to=f"0912{i:07d}", text="hello") for i in range(12)]
    messages.append(smsgate.Message(to=OPTED, text="hello"))
    journal = MemoryJournal()
    async with negin(client) as n, ippanel(client) as i:
        dispatcher = BulkDispatcher(FallbackPolicy([n, i]), journal=journal, concurrency=4)
        report = await dispatcher.run(messages, job_id="chain")
        again = await dispatcher.run(messages, job_id="chain")
    assert (report.sent, report.failed, report.unknown) == (13, 0, 0)
    providers = {e.recipient: e.provider for e in provider.ledger}
    assert providers.pop("+989350000001") == "ippanel"
    assert set(providers.values()) == {"negin"} and len(providers) == 12
    entries = {e.recipient: e for e in await journal.entries("chain")}
    assert (entries["+989350000001"].route, entries["+989350000001"].provider) == (
        "ippanel:default",
        "ippanel",
    )
    assert entries["+989120000003"].message_id == next(
        e.message_id for e in provider.ledger if e.recipient == "+989120000003"
    )
    # The rerun of the same job skipped everyone: the ledger did not grow.
    assert (again.skipped, again.requests) == (13, 0)
    assert len(provider.ledger) == 13
