"""The gateway contract: one suite every SmsGateway backend must pass.

Each backend contributes ``tests/contract/subject_<name>.py`` with
``make_gateway(fake, *, base_url, http_client)``. Every test runs for every backend, against
every profile of the fake that concerns it (``"lenient"`` and one per provider document, see
``smsgate.testing.PROFILES``), with the fake provider mounted in-process
(``httpx.ASGITransport``) and served by a real uvicorn server on 127.0.0.1 (through the
gateway's own transport and through an httpx client), under asyncio and under trio.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

import smsgate
from smsgate.testing import FakeClock, FakeProvider, LoopbackServer

pytestmark = pytest.mark.anyio

BACKENDS = ["ippanel", "negin"]
#: The fake's profiles each backend must pass: the lenient default and one per document.
PROFILES: dict[str, tuple[str, ...]] = {
    "ippanel": ("lenient", "ippanel-pdf", "kapanel"),
    "negin": ("lenient", "negin-guide"),
}
OPTED_OUT = "09350000001"
NUMBERS = ["09121111111", "+989122222222", "۰۹۱۲۳۳۳۳۳۳۳"]
FINAL = {
    smsgate.DeliveryState.DELIVERED,
    smsgate.DeliveryState.UNDELIVERED,
    smsgate.DeliveryState.REJECTED,
    smsgate.DeliveryState.BLOCKED,
}

Factory = Callable[..., Any]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Every test that needs a backend runs for each (backend, profile) pair that applies."""
    if "backend" in metafunc.fixturenames:
        pairs = [(backend, profile) for backend in BACKENDS for profile in PROFILES[backend]]
        metafunc.parametrize(("backend", "profile"), pairs, ids=[f"{b}-{p}" for b, p in pairs])


@pytest.fixture(params=["asgi", "loopback", "loopback-httpx"])
def mode(request: pytest.FixtureRequest) -> str:
    """In-process ASGI transport, or a real server on 127.0.0.1 reached through the
    gateway's own transport (aiohttp under asyncio) or through an httpx client."""
    return str(request.param)


@pytest.fixture
def clock() -> FakeClock:
    """Fake time for the provider's delivery timelines."""
    return FakeClock()


@pytest.fixture
def provider(clock: FakeClock, profile: str) -> FakeProvider:
    """The fake provider in the test's profile, with one number on the opt-out list."""
    return FakeProvider(clock=clock, opted_out=[OPTED_OUT], profile=profile)


@pytest.fixture
def server_url(
    mode: str, provider: FakeProvider, serve_shared: Callable[[Any], LoopbackServer]
) -> str | None:
    """The loopback server's URL (serving this test's provider), or None for in-process."""
    if mode.startswith("loopback"):
        return serve_shared(provider).url
    return None


@pytest.fixture
def make(
    backend: str, provider: FakeProvider, server_url: str | None, mode: str
) -> Callable[..., Any]:
    """An async context manager factory: ``async with make() as gw``."""
    factory: Factory = importlib.import_module(f"tests.contract.subject_{backend}").make_gateway

    @contextlib.asynccontextmanager
    async def build(fake: FakeProvider = provider) -> AsyncIterator[Any]:
        client: httpx.AsyncClient | None = None
        if server_url is None:
            client = httpx.AsyncClient(transport=httpx.ASGITransport(app=fake))
            gw = factory(fake, base_url="http://127.0.0.1", http_client=client)
        else:
            if mode == "loopback-httpx":
                # A borrowed httpx client selects the httpx transport on every event loop.
                client = httpx.AsyncClient()
            gw = factory(fake, base_url=server_url, http_client=client)
        try:
            async with gw:
                yield gw
        finally:
            if client is not None:
                await client.aclose()

    return build


async def test_is_a_gateway(make: Callable[..., Any], backend: str) -> None:
    """The backend satisfies the SmsGateway protocol and names itself."""
    async with make() as gw:
        assert isinstance(gw, smsgate.SmsGateway)
        assert gw.name == backend
        assert gw.max_recipients >= 1


async def test_runs_on_the_transport_it_names(
    make: Callable[..., Any], mode: str, anyio_backend: str
) -> None:
    """The parametrisation really covers both transports: aiohttp's own pool under asyncio
    on loopback (h11 under trio), httpx through a borrowed client."""
    async with make() as gw:
        await gw.send("09121111111", "hello")
        own = {"asyncio": "aiohttp", "trio": "h11"}[anyio_backend]
        assert gw.transport_name == (own if mode == "loopback" else "httpx")


async def test_send_one(make: Callable[..., Any], provider: FakeProvider) -> None:
    """One number: an E.164 receipt whose id the fake's ledger holds, sent exactly once."""
    async with make() as gw:
        receipt = await gw.send("0912 111 1111", "hello")
    assert receipt.provider == gw.name
    assert receipt.recipients == ("+989121111111",)
    assert set(receipt.message_ids) == {"+989121111111"}
    assert receipt.message_id and isinstance(receipt.message_id, str)
    assert [e.recipient for e in provider.ledger] == ["+989121111111"]
    assert provider.ledger[0].message_id in receipt.message_ids.values()


async def test_send_many(make: Callable[..., Any], provider: FakeProvider) -> None:
    """Several numbers in any form: each normalised, each in message_ids, each sent once."""
    async with make() as gw:
        receipt = await gw.send(NUMBERS, "سلام دنیا")
    expected = ("+989121111111", "+989122222222", "+989123333333")
    assert receipt.recipients == expected
    assert set(receipt.message_ids) == set(expected)
    assert sorted(provider.core.recipients()) == sorted(expected)
    assert all(e.text == "سلام دنیا" for e in provider.ledger)


async def test_delivery_by_receipt_becomes_final(
    make: Callable[..., Any], clock: FakeClock
) -> None:
    """Delivery by receipt names every recipient; an hour later every state is final."""
    async with make() as gw:
        receipt = await gw.send(NUMBERS, "hello")
        early = await gw.delivery(receipt)
        assert {r.recipient for r in early} == set(receipt.recipients)
        clock.advance(3600)
        reports = await gw.delivery(receipt)
    assert {r.recipient for r in reports} == set(receipt.recipients)
    for report in reports:
        assert report.is_final and report.state in FINAL
        assert report.provider_status
        assert report.message_id == receipt.message_ids[report.recipient]


async def test_delivery_by_bare_id(make: Callable[..., Any], clock: FakeClock) -> None:
    """Delivery accepts the bare message_id of a receipt."""
    async with make() as gw:
        receipt = await gw.send(NUMBERS[0], "hello")
        clock.advance(3600)
        reports = await gw.delivery(receipt.message_id)
    assert len(reports) == 1
    assert reports[0].message_id == receipt.message_id
    assert reports[0].recipient in (None, "+989121111111")
    assert reports[0].is_final


async def test_unknown_id(make: Callable[..., Any]) -> None:
    """An id the provider never issued raises UnknownMessageError (a ProviderError)."""
    async with make() as gw:
        with pytest.raises(smsgate.UnknownMessageError) as info:
            await gw.delivery("999999999999")
    assert isinstance(info.value, smsgate.ProviderError)


async def test_invalid_recipient_before_io(
    make: Callable[..., Any], provider: FakeProvider
) -> None:
    """A bad number is refused before any request is made."""
    async with make() as gw:
        before = provider.core.requests
        with pytest.raises(smsgate.InvalidRecipientError):
            await gw.send(["09121111111", "12345"], "hello")
        with pytest.raises(smsgate.InvalidMessageError):
            await gw.send("09121111111", "")
        assert provider.core.requests == before
    assert provider.ledger == []


async def test_wrong_password(make: Callable[..., Any], provider: FakeProvider) -> None:
    """A refused login is AuthenticationError, and the password is not in its text."""
    old_password = provider.core.password
    provider.core.password = "another-secret-value"  # the gateway still sends the old one
    async with make() as gw:
        with pytest.raises(smsgate.AuthenticationError) as info:
            await gw.send("09121111111", "hello")
    assert old_password not in str(info.value) and old_password not in repr(info.value)
    assert provider.ledger == []


async def test_opted_out(make: Callable[..., Any], clock: FakeClock) -> None:
    """An opted-out number is refused at send time or ends BLOCKED/REJECTED in delivery."""
    async with make() as gw:
        try:
            receipt = await gw.send(OPTED_OUT, "ad")
        except smsgate.RecipientOptedOutError as exc:
            assert exc.fallback_ok
            return
        clock.advance(3600)
        reports = await gw.delivery(receipt)
    assert [r.state for r in reports] in (
        [smsgate.DeliveryState.BLOCKED],
        [smsgate.DeliveryState.REJECTED],
    )


async def test_lifecycle(make: Callable[..., Any]) -> None:
    """aclose is idempotent; a closed gateway refuses work with RuntimeError."""
    async with make() as gw:
        pass
    await gw.aclose()
    with pytest.raises(RuntimeError):
        await gw.send("09121111111", "hello")


async def test_password_not_in_repr(make: Callable[..., Any], provider: FakeProvider) -> None:
    """The gateway's repr never shows the password."""
    async with make() as gw:
        assert provider.core.password not in repr(gw)
