"""NeginGateway against the fake provider served by uvicorn on 127.0.0.1, and the fake itself.

Every backend test runs against both profiles of the fake: ``"lenient"`` (what clients in
the wild send and read) and ``"negin-guide"`` (exactly what Negin's REST guide prints).
Tests of a lenient-only switch pin ``profile`` to ``"lenient"``.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from typing import Any

import httpx
import pytest

import smsgate
from smsgate import DeliveryState
from smsgate.backends.negin import NeginGateway
from smsgate.testing import FakeClock, FakeProvider, LoopbackServer

pytestmark = [pytest.mark.anyio, pytest.mark.loopback]

PASSWORD = "secret-pass"
LINE = "9830003300"
LINE2 = "9830007485"
OPTED = "09350000001"
OPTED_E164 = "+989350000001"
FREE = "09121111111"


@pytest.fixture
def clock() -> FakeClock:
    """Fake time for the fake's delivery timelines."""
    return FakeClock()


PROFILES = ["lenient", "negin-guide"]


@pytest.fixture(params=PROFILES)
def profile(request: pytest.FixtureRequest) -> str:
    """The fake's profile (see the module docstring)."""
    value: str = request.param
    return value


@pytest.fixture
def fake(clock: FakeClock, profile: str) -> FakeProvider:
    """A fake provider with one opted-out number and a hand-moved clock."""
    return FakeProvider(password=PASSWORD, clock=clock, opted_out=[OPTED], profile=profile)


LENIENT = pytest.mark.parametrize("profile", ["lenient"])
GUIDE = pytest.mark.parametrize("profile", ["negin-guide"])


@pytest.fixture
def url(serve_shared: Callable[[Any], LoopbackServer], fake: FakeProvider) -> str:
    """The origin that reaches this test's fake (the session's shared server)."""
    return serve_shared(fake).url


@pytest.fixture
def gateway(url: str) -> Any:
    """``async with gateway(**options) as gw``: a gateway with its own client on the server."""

    @contextlib.asynccontextmanager
    async def build(**options: Any) -> AsyncIterator[NeginGateway]:
        settings: dict[str, Any] = {"username": "user", "password": PASSWORD, "line": LINE}
        settings.update(options)
        async with NeginGateway(base_url=url, **settings) as gw:
            yield gw

    return build


# -- the five scenarios, and the line each reports -------------------------------------------


@pytest.mark.parametrize(
    ("options", "route", "sender", "fields"),
    [
        pytest.param({"line2": LINE2}, "line2", LINE2, {"line2": LINE2}, id="line2"),
        pytest.param(
            {"opt_out_fallback": "chelcheleh"},
            "chelcheleh",
            "9810003300",
            {"type": "1"},
            id="chelcheleh",
        ),
        pytest.param(
            {"opt_out_fallback": "service_line", "template": 2},
            "service_line",
            "9820003300",
            {"type": "2", "template": "2"},
            id="service-line",
        ),
    ],
)
async def test_opt_out_fallbacks_report_the_line_used(
    gateway: Any,
    fake: FakeProvider,
    options: dict[str, Any],
    route: str,
    sender: str,
    fields: dict[str, str],
) -> None:
    """An opted-out number goes out by the fallback; a free one by the line; receipts say which."""
    async with gateway(**options) as gw:
        blocked = await gw.send(OPTED, "سلام")
        free = await gw.send(FREE, "سلام")
    assert blocked.sender == sender and free.sender == LINE
    assert [(e.recipient, e.route, e.sender) for e in fake.ledger] == [
        (OPTED_E164, route, sender),
        ("+989121111111", "line", LINE),
    ]
    received = fake.negin.received[0]
    assert {k: received[k] for k in fields} == fields
    assert received["line"] == LINE and received["_method"] == "POST"
    assert fake.ledger[0].message_id == blocked.message_id


async def test_plain_line_and_opt_out_without_fallback(gateway: Any, fake: FakeProvider) -> None:
    """Scenario 1: sent from the line; an opted-out number is refused (27) and not charged."""
    async with gateway() as gw:
        receipt = await gw.send(FREE, "hello")
        credit = fake.core.credit
        with pytest.raises(smsgate.RecipientOptedOutError) as info:
            await gw.send(OPTED, "hello")
    assert receipt.sender == LINE
    assert info.value.code == "27" and info.value.fallback_ok
    assert fake.core.credit == credit
    assert [e.route for e in fake.ledger] == ["line"]


async def test_service_line_send(gateway: Any, fake: FakeProvider) -> None:
    """Scenario 2: type=2 with no line reaches even an opted-out number from the service line."""
    async with gateway(line=None) as gw:
        receipt = await gw.send_service(OPTED, "1234")
    assert receipt.sender == fake.negin.service_line
    assert [(e.route, e.text) for e in fake.ledger] == [("service_line", "1234")]
    received = fake.negin.received[0]
    assert "line" not in received and received["type"] == "2" and received["template"] == "0"


async def test_per_call_override_against_the_fake(gateway: Any, fake: FakeProvider) -> None:
    """A per-call fallback reaches an opted-out number the gateway's default would not."""
    async with gateway() as gw:
        receipt = await gw.send(OPTED, "hi", opt_out_fallback="chelcheleh")
        with pytest.raises(smsgate.RecipientOptedOutError):
            await gw.send(OPTED, "hi")
    assert receipt.sender == fake.negin.chelcheleh_line
    assert [e.route for e in fake.ledger] == ["chelcheleh"]


# -- fan-out ---------------------------------------------------------------------------------


async def test_fan_out_partial_failure_matches_the_ledger(gateway: Any, fake: FakeProvider) -> None:
    """20 numbers, one opted out: 19 sent once each, all in .receipt; the 20th in .errors."""
    numbers = [f"0912000{i:04d}" for i in range(19)]
    async with gateway(max_concurrency=5) as gw:
        with pytest.raises(smsgate.RecipientOptedOutError) as info:
            await gw.send([*numbers[:7], OPTED, *numbers[7:]], "hi")
    exc: Any = info.value
    assert set(exc.errors) == {OPTED_E164}
    assert sorted(fake.core.recipients()) == sorted(exc.receipt.recipients)
    assert len(exc.receipt.recipients) == 19
    assert {e.message_id for e in fake.ledger} == set(exc.receipt.message_ids.values())


async def test_credit_runs_out_mid_fan_out(gateway: Any, fake: FakeProvider) -> None:
    """Credit for three parts: three numbers sent and kept in the receipt, the rest refused."""
    fake.core.credit = fake.core.price_per_part * 3
    numbers = [f"0912000{i:04d}" for i in range(6)]
    async with gateway(max_concurrency=1) as gw:
        with pytest.raises(smsgate.InsufficientCreditError) as info:
            await gw.send(numbers, "hi")
    exc: Any = info.value
    assert len(exc.receipt.recipients) == 3 == len(fake.ledger)
    assert fake.core.credit == Decimal(0)
    # The fan-out stopped at the account-wide refusal; the numbers never tried are
    # accounted for as NotSentError.
    assert len(exc.errors) == 3
    assert [type(e).__name__ for e in exc.errors.values()].count("InsufficientCreditError") == 1
    assert set(exc.errors) | set(exc.receipt.recipients) == {
        smsgate.normalize_msisdn(n) for n in numbers
    }


async def test_dropped_answer_is_in_doubt_but_in_the_ledger(
    gateway: Any, fake: FakeProvider
) -> None:
    """A connection dropped after the fake sent: OutcomeUnknownError, and the ledger has it."""
    fake.faults.drop_rate = 1.0
    async with gateway() as gw:
        with pytest.raises(smsgate.OutcomeUnknownError) as info:
            await gw.send(FREE, "hi")
    assert info.value.maybe_sent
    assert fake.core.sent_to(FREE) == 1


async def test_unavailable_is_not_sent(gateway: Any, fake: FakeProvider) -> None:
    """HTTP 503 before processing: ProviderUnavailableError, not maybe_sent, nothing sent."""
    fake.faults.unavailable_rate = 1.0
    async with gateway() as gw:
        with pytest.raises(smsgate.ProviderUnavailableError) as info:
            await gw.send(FREE, "hi")
    assert not info.value.maybe_sent and fake.ledger == []


# -- delivery --------------------------------------------------------------------------------


async def test_state_timeline(
    gateway: Any, fake: FakeProvider, clock: FakeClock, profile: str
) -> None:
    """Default timeline 0 -> 8 -> 1; a scripted one 0 -> 16 (18 in the guide); both final."""
    fake.negin.set_timeline("09122222222", [(0, 0), (3, 16)])
    async with gateway() as gw:
        receipt = await gw.send([FREE, "09122222222"], "hi")
        seen = []
        for step in (0, 2, 3, 55):
            clock.advance(step)
            seen.append([r.state for r in await gw.delivery(receipt)])
    assert seen == [
        [DeliveryState.QUEUED, DeliveryState.QUEUED],
        [DeliveryState.AT_OPERATOR, DeliveryState.QUEUED],
        [DeliveryState.DELIVERED, DeliveryState.REJECTED],
        [DeliveryState.DELIVERED, DeliveryState.REJECTED],
    ]
    assert fake.negin.message_state(receipt.message_ids["+989121111111"]) == 1
    _, refused = await _delivery(gateway, receipt)
    assert refused.provider_status == ("18" if profile == "negin-guide" else "16")
    assert refused.is_final


async def _delivery(gateway: Any, receipt: Any) -> list[Any]:
    async with gateway() as gw:
        reports: list[Any] = await gw.delivery(receipt)
    return reports


async def test_states_chunked_over_the_wire(
    gateway: Any, fake: FakeProvider, clock: FakeClock
) -> None:
    """250 ids are asked in requests of 100, 100 and 50; every report comes back."""
    numbers = [f"0912{i:07d}" for i in range(250)]
    async with gateway(max_concurrency=16) as gw:
        receipt = await gw.send(numbers, "hi")
        clock.advance(60)
        reports = await gw.states(receipt.message_ids.values())
    assert sorted(fake.negin.states_calls) == [50, 100, 100]
    assert len(reports) == 250
    assert {r.state for r in reports.values()} == {DeliveryState.DELIVERED}


async def test_unknown_id_modes(gateway: Any, fake: FakeProvider) -> None:
    """Never-issued ids: status 24 or left out -> UnknownMessageError; -1 -> REJECTED."""
    async with gateway() as gw:
        receipt = await gw.send(FREE, "hi")
        with pytest.raises(smsgate.UnknownMessageError) as info:
            await gw.states([receipt.message_id, "123"])
        assert info.value.code == "24"
        fake.negin.unknown_ids = "omit"
        with pytest.raises(smsgate.UnknownMessageError) as info:
            await gw.states([receipt.message_id, "123"])
        assert info.value.code is None
        fake.negin.unknown_ids = "minus_one"
        reports = await gw.states([receipt.message_id, "123"])
    assert reports["123"].state is DeliveryState.REJECTED
    assert reports["123"].provider_status == "-1"
    assert reports[receipt.message_id].state is DeliveryState.QUEUED


async def test_expired_ids_read_minus_one(
    gateway: Any, fake: FakeProvider, clock: FakeClock
) -> None:
    """With expire_after set, old messages read -1 (Magfa's "sent more than a day ago")."""
    fake.negin.expire_after = 86400
    async with gateway() as gw:
        receipt = await gw.send(FREE, "hi")
        clock.advance(86400)
        [report] = await gw.delivery(receipt)
    assert (report.state, report.provider_status) == (DeliveryState.REJECTED, "-1")


# -- leniency: the fake's variant answers ----------------------------------------------------


@LENIENT
@pytest.mark.parametrize(
    "variant",
    [
        {"mobile_as_number": True},
        {"data_as_strings": True},
        {"states_as_lists": True},
        {"messages": {-1: "OK", 27: "انصراف مخاطب از دریافت"}},
    ],
)
async def test_variants(
    gateway: Any, fake: FakeProvider, clock: FakeClock, variant: dict[str, Any]
) -> None:
    """The gateway reads every variant shape docs/protocols/negin.md §3.3 lists."""
    for key, value in variant.items():
        setattr(fake.negin, key, value)
    async with gateway() as gw:
        receipt = await gw.send([FREE, "09122222222"], "hi")
        clock.advance(60)
        reports = await gw.delivery(receipt)
        with pytest.raises(smsgate.RecipientOptedOutError):
            await gw.send(OPTED, "hi")
    assert receipt.sender == LINE
    assert {e.recipient: e.message_id for e in fake.ledger} == dict(receipt.message_ids)
    assert [r.state for r in reports] == [DeliveryState.DELIVERED] * 2


@pytest.mark.parametrize("error_data", ["null", "empty", "absent"])
async def test_error_data_shapes(gateway: Any, fake: FakeProvider, error_data: str) -> None:
    """Whatever data an error carries, the status decides (docs/protocols/negin.md §4)."""
    fake.negin.error_data = error_data  # type: ignore[assignment]
    async with gateway(password="wrong-password") as gw:
        with pytest.raises(smsgate.AuthenticationError):
            await gw.send(FREE, "hi")
    assert fake.ledger == []


async def test_account_and_rate_refusals(
    gateway: Any, fake: FakeProvider, clock: FakeClock
) -> None:
    """An inactive account (16) and sends closer than min_interval (409) are typed errors."""
    async with gateway() as gw:
        fake.negin.account_status = 16
        with pytest.raises(smsgate.AccountRestrictedError):
            await gw.send(FREE, "hi")
        fake.negin.account_status = None
        fake.negin.min_interval = 5.0
        await gw.send(FREE, "hi")
        with pytest.raises(smsgate.RateLimitedError) as info:
            await gw.send(FREE, "hi")
        clock.advance(5)
        await gw.send(FREE, "hi")
    assert info.value.retry_after == 5.0
    assert len(fake.ledger) == 2


async def test_line_not_owned(gateway: Any, fake: FakeProvider) -> None:
    """A line the account does not own is refused with 2 (InvalidSenderError)."""
    async with gateway(line="983000999") as gw:
        with pytest.raises(smsgate.InvalidSenderError):
            await gw.send(FREE, "hi")
    assert fake.ledger == []


# -- the fake's own protocol handling (raw HTTP) ---------------------------------------------


@LENIENT
async def test_fake_accepts_get_case_insensitive_paths_and_keys(
    url: str, fake: FakeProvider
) -> None:
    """Like ASP.NET: any path case, GET query or form, keys in any case, query first."""
    async with httpx.AsyncClient(base_url=url) as client:
        got = await client.get(
            "/API/WSSEND.ASHX",
            params={
                "USERNAME": "user",
                "Password": PASSWORD,
                "mobile": FREE,
                "message": "x",
                "line": LINE,
            },
        )
        mixed = await client.post(
            "/services/wssend.ashx?line=" + LINE2,
            data={
                "username": "user",
                "password": PASSWORD,
                "mobile": "9121111111",
                "message": "y",
                "line": LINE,
            },
        )
        as_json = await client.post(
            "/api/wsSend.ashx",
            json={
                "username": "user",
                "password": PASSWORD,
                "mobile": FREE,
                "message": "z",
                "line": LINE,
            },
        )
    assert got.status_code == 200 and got.json()["status"] == -1
    assert got.headers["content-type"] == "application/json; charset=utf-8"
    assert mixed.json()["data"]["line"] == int(LINE2)  # the query string wins
    assert as_json.json() == {"status": 18, "msg": "INVALID_USERNAME_PASSWORD", "data": None}
    assert [e.sender for e in fake.ledger] == [LINE, LINE2]
    assert fake.negin.received[0]["password"] == "***"
    assert not any(PASSWORD in value for r in fake.negin.received for value in r.values())


@pytest.mark.parametrize(
    ("fields", "status"),
    [
        ({"type": "3"}, 20),
        ({"type": "x"}, 20),
        ({"line": ""}, 2),
        ({"line2": "98111"}, 2),
        ({"mobile": "09121111111,09122222222"}, 1),
        ({"mobile": "12345"}, 1),
        ({"message": ""}, 13),
    ],
)
async def test_fake_send_checks(
    url: str, fake: FakeProvider, fields: dict[str, str], status: int
) -> None:
    """The fake's wsSend refusals follow the fake's check order (smsgate/testing/_fake_negin.py)."""
    form = {"username": "user", "password": PASSWORD, "mobile": FREE, "message": "m", "line": LINE}
    form.update(fields)
    async with httpx.AsyncClient(base_url=url) as client:
        answer = await client.post("/api/wsSend.ashx", data=form)
    assert answer.json()["status"] == status
    assert fake.ledger == []


@LENIENT
async def test_fake_states_parsing(url: str, fake: FakeProvider) -> None:
    """wsStates splits on , ، ٫ and strips spaces and quotes; no ids is 24."""
    fake.negin.unknown_ids = "minus_one"
    form = {"username": "user", "password": PASSWORD}
    async with httpx.AsyncClient(base_url=url) as client:
        sent = await client.post(
            "/api/wsSend.ashx", data={**form, "mobile": FREE, "message": "m", "line": LINE}
        )
        known = str(sent.json()["data"]["message_id"])
        states = await client.post(
            "/api/WSStates.ashx", data={**form, "message_ids": f' "{known}" ، 77٫78'}
        )
        empty = await client.post("/api/wsStates.ashx", data={**form, "message_ids": " , "})
    assert states.json()["data"] == {"msgIds": f"{known},77,78", "states": "0,-1,-1"}
    assert empty.json()["status"] == 24


async def test_fake_html_without_user_agent(url: str, fake: FakeProvider, gateway: Any) -> None:
    """With the switch on, a request without User-Agent gets HTML; the gateway sends one."""
    fake.negin.html_without_user_agent = True
    async with httpx.AsyncClient(base_url=url) as client:
        client.headers.pop("user-agent")
        answer = await client.post("/api/wsSend.ashx", data={"username": "user"})
    async with gateway() as gw:
        await gw.send(FREE, "hi")
    assert answer.headers["content-type"].startswith("text/html")
    assert len(fake.ledger) == 1


# -- the guide profile: exactly what the guide prints ----------------------------------------


@GUIDE
async def test_guide_profile_answers_as_the_guide_prints(url: str, fake: FakeProvider) -> None:
    """The send answer has the sample's shape; states are comma strings; 16 reads 18."""
    fake.negin.set_timeline(FREE, [(0, 16)])
    form = {"username": "user", "password": PASSWORD}
    async with httpx.AsyncClient(base_url=url) as client:
        sent = await client.post(
            "/api/wsSend.ashx", data={**form, "mobile": FREE, "message": "m", "line": LINE}
        )
        body = sent.json()
        states = await client.post(
            "/api/wsStates.ashx",
            data={**form, "message_ids": f"{body['data']['message_id']},1"},
        )
    # The sample: {"data":{"message_id":3403,"line":9830003300,"mobile":"989395213300"},
    # "status":-1,"msg":"success"}: numbers for the id and line, a string for the mobile.
    assert set(body) == {"data", "status", "msg"}
    assert (body["status"], body["msg"]) == (-1, "success")
    assert set(body["data"]) == {"message_id", "line", "mobile"}
    assert isinstance(body["data"]["message_id"], int)
    assert body["data"]["line"] == int(LINE) and body["data"]["mobile"] == "989121111111"
    # An id never issued: the fake's status 24 (the guide prints no error code).
    assert states.json()["status"] == 24
    fake.negin.unknown_ids = "minus_one"
    async with httpx.AsyncClient(base_url=url) as client:
        states = await client.post(
            "/api/wsStates.ashx",
            data={**form, "message_ids": f"{body['data']['message_id']},1"},
        )
    assert states.json()["data"] == {
        "msgIds": f"{body['data']['message_id']},1",
        "states": "18,-1",
    }


@GUIDE
async def test_guide_profile_refuses_what_the_guide_does_not_describe(
    url: str, fake: FakeProvider
) -> None:
    """No GET, no query string, no legacy path, field names exactly as printed."""
    form = {"username": "user", "password": PASSWORD, "mobile": FREE, "message": "m", "line": LINE}
    async with httpx.AsyncClient(base_url=url) as client:
        got = await client.get("/api/wsSend.ashx", params=form)
        legacy = await client.post("/services/wsSend.ashx", data=form)
        query = await client.post("/api/wsSend.ashx", params=form)
        upper = await client.post("/api/wsSend.ashx", data={k.upper(): v for k, v in form.items()})
        arabic_comma = await client.post(
            "/api/wsStates.ashx",
            data={"username": "user", "password": PASSWORD, "message_ids": "1،2"},
        )
    assert (got.status_code, legacy.status_code) == (405, 404)
    assert query.json()["status"] == 18 and upper.json()["status"] == 18
    assert arabic_comma.json()["status"] == 24  # "1،2" is one (unknown) id here
    assert fake.ledger == []


@pytest.mark.parametrize(
    ("given", "guide"),
    [("negin-guide", True), ("lenient", False), ("kapanel", False), ("ippanel-pdf", False)],
)
async def test_profile_comes_from_the_core(given: str, guide: bool) -> None:
    """The Negin half follows FakeProvider(profile=...); the ippanel profiles leave it lenient."""
    fake = FakeProvider(profile=given)
    assert fake.negin.profile == given
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=fake)) as client:
        answer = await client.get("http://fake/api/wsSend.ashx", params={"username": "user"})
    assert answer.status_code == (405 if guide else 200)


async def test_bad_rows_cannot_stop_a_job(gateway: Any, fake: FakeProvider) -> None:
    """A 100-row job with a lone-surrogate text, a None and a repeated number: each bad
    row fails alone (typed, before any request); the other rows go out once each."""
    numbers = [f"0912000{i:04d}" for i in range(100)]
    messages = [smsgate.Message(to=n, text="سلام") for n in numbers]
    messages[40] = smsgate.Message(to=numbers[40], text="bad \ud800 text")
    async with gateway(max_concurrency=8) as gw:
        report = await smsgate.BulkDispatcher(gw).run(messages)
        with pytest.raises(smsgate.InvalidRecipientError):
            await gw.send([numbers[0], "+98" + numbers[0][1:]], "hi")  # twice, two spellings
        with pytest.raises(smsgate.InvalidRecipientError):
            await gw.send(None, "hi")
    assert (report.sent, report.failed, report.unknown) == (99, 1, 0)
    [bad] = report.failures
    assert isinstance(bad.error, smsgate.InvalidMessageError)
    assert bad.message is messages[40]
    ledger = fake.core.recipients()
    assert len(ledger) == len(set(ledger)) == 99
    assert smsgate.normalize_msisdn(numbers[40]) not in ledger
