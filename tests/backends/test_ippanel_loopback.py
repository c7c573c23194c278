"""The integration twin of test_ippanel.py: IppanelGateway against the FakeProvider served
by uvicorn on 127.0.0.1 (one server for the session; a fresh fake per test), against every
profile of the fake that concerns ippanel, under asyncio and trio."""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest

import smsgate
from smsgate.backends.ippanel import ERROR_CODES, IppanelGateway, SubAccountRejectedError
from smsgate.testing import FakeClock, FakeProvider, LoopbackServer

pytestmark = pytest.mark.loopback

USERNAME = "user"
PASSWORD = "secret-pass"
SENDER = "+983000505"


@pytest.fixture
def clock() -> FakeClock:
    """Fake time for the delivery timelines."""
    return FakeClock()


#: The fake's profiles that concern ippanel: every test here runs against each.
PROFILES = ("lenient", "ippanel-pdf", "kapanel")


@pytest.fixture(params=PROFILES)
def profile(request: pytest.FixtureRequest) -> str:
    """How strictly the fake follows one document (see smsgate.testing.PROFILES)."""
    return str(request.param)


@pytest.fixture
def fake(clock: FakeClock, profile: str) -> FakeProvider:
    """A fresh fake provider with one opted-out number."""
    return FakeProvider(clock=clock, opted_out=["09350000001"], profile=profile)


@pytest.fixture
def url(serve_shared: Callable[[Any], LoopbackServer], fake: FakeProvider) -> str:
    """The origin of the session's shared server, serving this test's fake."""
    return serve_shared(fake).url


@contextlib.asynccontextmanager
async def gateway(url: str, **options: Any) -> AsyncIterator[IppanelGateway]:
    """A gateway with its own httpx client, talking to the loopback server."""
    settings: dict[str, Any] = {
        "username": USERNAME,
        "password": PASSWORD,
        "sender": SENDER,
        "base_url": url,
    }
    settings.update(options)
    async with IppanelGateway(**settings) as gw:
        yield gw


# -- send, delivery, status, credit ------------------------------------------------------------


@pytest.mark.anyio
async def test_send_delivery_timeline(url: str, fake: FakeProvider, clock: FakeClock) -> None:
    """One request for three numbers; states move notsync -> … -> final; opt-out is BLOCKED."""
    numbers = ["0912 111 1111", "۰۹۱۲۲۲۲۲۲۲۲", "09350000001"]
    async with gateway(url) as gw:
        receipt = await gw.send(numbers, "سلام دنیا")
        first = await gw.delivery(receipt)
        clock.advance(2)
        second = await gw.delivery(receipt.message_id)
        clock.advance(60)
        final = await gw.delivery(receipt)
        assert gw.requests_made == 4
    expected = ("+989121111111", "+989122222222", "+989350000001")
    assert receipt.recipients == expected
    assert [e.recipient for e in fake.ledger] == list(expected)
    assert {e.message_id for e in fake.ledger} == {receipt.message_id}
    assert all(r.state is smsgate.DeliveryState.QUEUED for r in first)
    assert all(r.state is smsgate.DeliveryState.SENT for r in second)
    assert [(r.recipient, r.state) for r in final] == [
        ("+989121111111", smsgate.DeliveryState.DELIVERED),
        ("+989122222222", smsgate.DeliveryState.DELIVERED),
        ("+989350000001", smsgate.DeliveryState.BLOCKED),
    ]
    assert fake.ippanel.bulk_states(receipt.message_id) == [
        ("+989121111111", "delivered"),
        ("+989122222222", "delivered"),
        ("+989350000001", "discarded"),
    ]
    assert fake.ippanel.bulks() == [receipt.message_id]


@pytest.mark.anyio
async def test_failed_and_pending(url: str, fake: FakeProvider, clock: FakeClock) -> None:
    """An undeliverable number ends UNDELIVERED; between send and final it is AT_OPERATOR."""
    fake.ippanel.undeliverable.add("+989121111111")
    async with gateway(url) as gw:
        receipt = await gw.send("09121111111", "hi")
        clock.advance(5)
        middle = await gw.delivery(receipt)
        clock.advance(60)
        final = await gw.delivery(receipt)
        status = await gw.message_status(receipt)
    assert middle[0].state is smsgate.DeliveryState.AT_OPERATOR
    assert final[0].state is smsgate.DeliveryState.UNDELIVERED and final[0].is_final
    assert (status.status, status.validation, status.finished) == ("Finish", "approve", True)


@pytest.mark.anyio
async def test_credit_charged_per_part_and_recipient(url: str, fake: FakeProvider) -> None:
    """Credit falls by parts × recipients × price; `/` as decimal mark reads the same."""
    async with gateway(url) as gw:
        before = await gw.credit()
        await gw.send(["09121111111", "09122222222"], "س" * 71)  # two UCS-2 parts
        after = await gw.credit()
        fake.ippanel.credit_mark = "/"
        fake.core.credit += Decimal("0.5")
        slashed = await gw.credit()
    assert before - after == 2 * 2 * fake.core.price_per_part
    assert slashed == after + Decimal("0.5")
    assert all(e.parts == 2 for e in fake.ledger)


@pytest.mark.anyio
async def test_status_before_final(url: str, fake: FakeProvider) -> None:
    """checkmessage before the numbers are final says Interacting."""
    fake.ippanel.validation = "notconfirm"
    async with gateway(url) as gw:
        receipt = await gw.send("09121111111", "hi")
        status = await gw.message_status(receipt.message_id)
    assert (status.status, status.validation, status.approved) == (
        "Interacting",
        "notconfirm",
        False,
    )


@pytest.mark.anyio
async def test_unknown_bulk(url: str, fake: FakeProvider) -> None:
    """An unknown bulk id: `null` from delivery, 456 from checkmessage, both UnknownMessageError."""
    async with gateway(url) as gw:
        with pytest.raises(smsgate.UnknownMessageError):
            await gw.delivery("999999999")
        with pytest.raises(smsgate.UnknownMessageError) as info:
            await gw.message_status("999999999")
    assert info.value.code == "456"


@pytest.mark.anyio
async def test_scheduled_send(url: str, fake: FakeProvider) -> None:
    """A future `time` is accepted; a past one is refused with 1006."""
    fake.ippanel.wall_clock = lambda: datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
    async with gateway(url) as gw:
        await gw.send("09121111111", "later", send_at=datetime(2030, 1, 2, 9, 0))
        with pytest.raises(smsgate.MessageRejectedError) as info:
            await gw.send("09121111111", "too late", send_at=datetime(2029, 12, 31, 9, 0))
    assert info.value.code == "1006"
    assert len(fake.ledger) == 1


# -- patterns ---------------------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize("endpoint", ["patterns/pattern", "sendPattern", "api/select"])
async def test_pattern_endpoints(url: str, fake: FakeProvider, endpoint: Any) -> None:
    """Each pattern variant sends the rendered pattern to one number and is charged."""
    fake.ippanel.add_pattern("otp1", "کد شما %code% است")
    async with gateway(url, pattern_endpoint=endpoint) as gw:
        receipt = await gw.send_pattern("09121234567", pattern_code="otp1", values={"code": 4321})
        reports = await gw.delivery(receipt)
    assert receipt.recipients == ("+989121234567",)
    assert [(e.recipient, e.text, e.route) for e in fake.ledger] == [
        ("+989121234567", "کد شما 4321 است", "pattern")
    ]
    assert fake.ledger[0].message_id == receipt.message_id
    assert [r.recipient for r in reports] == ["+989121234567"]


@pytest.mark.anyio
@pytest.mark.parametrize("endpoint", ["patterns/pattern", "sendPattern", "api/select"])
async def test_pattern_refusals(url: str, fake: FakeProvider, endpoint: Any) -> None:
    """Unknown (971), inactive (996), foreign (997) patterns and missing values (970)."""
    fake.ippanel.add_pattern("off", "x %a%", active=False)
    fake.ippanel.add_pattern("theirs", "x %a%", allowed=False)
    fake.ippanel.add_pattern("mine", "x %a% %b%")
    cases = [("nope", {"a": "1"}, "971"), ("off", {"a": "1"}, "996"), ("theirs", {"a": "1"}, "997")]
    cases.append(("mine", {"a": "1"}, "970"))
    async with gateway(url, pattern_endpoint=endpoint) as gw:
        for code, values, expected in cases:
            with pytest.raises(smsgate.PatternError) as info:
                await gw.send_pattern("09121234567", pattern_code=code, values=values)
            assert info.value.code == expected
    assert fake.ledger == []


@pytest.mark.anyio
async def test_pattern_url_log_has_no_credentials(
    url: str, fake: FakeProvider, caplog: pytest.LogCaptureFixture, anyio_backend: str
) -> None:
    """Over a real socket, no log record (httpx INFO included, any logger at DEBUG) shows
    the credentials of the /patterns/pattern query string. The httpx transport is chosen
    so that httpx logs the request (the default transports make no httpx record)."""
    with caplog.at_level(logging.DEBUG):
        async with gateway(url, pattern_endpoint="patterns/pattern", transport="httpx") as gw:
            await gw.send_pattern("09121234567", pattern_code="ybnldnpo73", values={"code": "1"})
    lines = [r.getMessage() for r in caplog.records if r.name == "httpx"]
    assert len(lines) == 1 and "/patterns/pattern?" in lines[0]
    for line in lines:
        assert "password=***" in line and "username=***" in line
    assert len(fake.ledger) == 1
    assert PASSWORD not in caplog.text and f"username={USERNAME}" not in caplog.text


# -- the other ops ----------------------------------------------------------------------------


@pytest.mark.anyio
async def test_phonebooks_and_inbox(url: str, fake: FakeProvider) -> None:
    """booklist/booksend reach the phonebook's numbers; inboxlist returns unread messages once."""
    book = fake.ippanel.add_phonebook("friends", ["09121111111", "09352222222"])
    fake.ippanel.add_inbound("09121112222", "سلام")
    async with gateway(url) as gw:
        books = await gw.phonebooks.list()
        receipt = await gw.phonebooks.send([book], "hello friends")
        reports = await gw.delivery(receipt)
        inbox = await gw.inbox.list()
        again = await gw.inbox.list()
        with pytest.raises(smsgate.RecipientRejectedError) as info:
            await gw.phonebooks.send(["424242"], "nobody there")
    assert [(b.id, b.title) for b in books] == [(book, "friends")]
    assert sorted(r.recipient or "" for r in reports) == ["+989121111111", "+989352222222"]
    assert len(fake.ledger) == 2
    assert [(m.sender, m.text, m.line) for m in inbox] == [("+989121112222", "سلام", SENDER)]
    assert again == []
    assert info.value.code == "4"


@pytest.mark.anyio
async def test_packages_and_accounts(url: str, fake: FakeProvider) -> None:
    """accesslist lists packages; newuser creates once, then 304; weak passwords 1002; 964."""
    async with gateway(url) as gw:
        packages = await gw.packages.list()
        account = await gw.accounts.create(
            username="subuser1", password="Long-enough-9", mobile="09121234567", access_id=1
        )
        with pytest.raises(SubAccountRejectedError) as taken:
            await gw.accounts.create(
                username="subuser1", password="Long-enough-9", mobile="09121234567"
            )
        with pytest.raises(SubAccountRejectedError) as weak:
            await gw.accounts.create(username="subuser2", password="short", mobile="09121234567")
        fake.ippanel.reseller = False
        with pytest.raises(smsgate.AccountRestrictedError):
            await gw.accounts.create(username="subuser3", password="Long-enough-9")
    assert [p.code for p in packages] == ["1", "2"]
    assert packages[0].price == Decimal(1500000)
    assert account.username == "subuser1" and account.id
    assert fake.ippanel.users == {"subuser1": account.id}
    assert (taken.value.code, weak.value.code) == ("304", "1002")
    assert "Long-enough-9" not in str(taken.value) and "short" not in str(weak.value.message)


@pytest.mark.anyio
async def test_postal_targeting(url: str, fake: FakeProvider) -> None:
    """postalcodecount matches what postalcodesend reaches; areas list Tehran codes."""
    async with gateway(url) as gw:
        count = await gw.postal.count("1415566778", operator="mtn", gender=1)
        total = await gw.postal.count("1415566778", operator="mtn")
        areas = await gw.postal.areas()
        receipt = await gw.postal.send("1415566778", "promo", operator="mtn", gender=1)
        reports = await gw.delivery(receipt)
    assert 3 <= count < total
    assert len(fake.ledger) == count == len(reports)
    assert all(r.recipient and r.recipient.startswith("+98935") for r in reports)
    assert areas and all(a.code.isdigit() and a.title for a in areas)


@pytest.mark.anyio
async def test_job_targeting(url: str, fake: FakeProvider) -> None:
    """jobslist -> jobstrenlist -> jobscount -> jobssend reach the counted numbers."""
    async with gateway(url) as gw:
        jobs = await gw.jobs.list()
        trends = await gw.jobs.trends(jobs[0].id)
        count = await gw.jobs.count([t.id for t in trends])
        receipt = await gw.jobs.send(jobs[0].id, [t.id for t in trends], "for doctors")
        assert await gw.jobs.trends("999") == []
    assert [j.id for j in jobs] == ["1", "2"]
    assert len(trends) == 2
    assert count == len(fake.ledger) > 0
    assert {e.message_id for e in fake.ledger} == {receipt.message_id}


# -- errors -----------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_error_classes_over_http(url: str, fake: FakeProvider) -> None:
    """One code per error class, answered by the fake over HTTP, becomes that class with its
    code and text (test_ippanel.py covers every code; this proves the wire path)."""
    # The lowest code of each class, and 4242 (not in the table: a plain ProviderError).
    lowest = {cls: code for code, (cls, _text) in sorted(ERROR_CODES.items(), reverse=True)}
    codes = [*sorted(lowest.values()), 4242]
    seen: dict[int, tuple[type[Exception], str | None, str | None]] = {}
    async with gateway(url) as gw:  # one gateway, one connection
        for code in codes:
            fake.ippanel.fail_next(code, f"text {code}", op="send")
            with pytest.raises(smsgate.ProviderError) as info:
                await gw.send("09121234567", "hi")
            seen[code] = (type(info.value), info.value.code, info.value.detail)
    expected_cls = {code: ERROR_CODES.get(code, (smsgate.ProviderError, ""))[0] for code in seen}
    assert seen == {code: (expected_cls[code], str(code), f"text {code}") for code in seen}
    assert len(seen) >= 12
    assert fake.ledger == []


@pytest.mark.anyio
async def test_natural_refusals(url: str, fake: FakeProvider) -> None:
    """Wrong password (962), foreign line (3), no credit (5), too many (98), window (992)."""
    fake.ippanel.max_recipients = 2
    async with gateway(url, password="wrong-pass") as gw:
        with pytest.raises(smsgate.AuthenticationError):
            await gw.send("09121234567", "hi")
    async with gateway(url) as gw:
        with pytest.raises(smsgate.InvalidSenderError) as line:
            await gw.send("09121234567", "hi", sender="+98999888777")
        with pytest.raises(smsgate.TooManyRecipientsError) as many:
            await gw.send(["09121111111", "09122222222", "09123333333"], "hi")
        fake.ippanel.send_window = True
        fake.ippanel.wall_clock = lambda: datetime(2030, 1, 1, 21, 0, tzinfo=UTC)  # 00:30 Tehran
        with pytest.raises(smsgate.SendWindowError):
            await gw.send("09121234567", "night")
        pattern = await gw.send_pattern(
            "09121234567", pattern_code="ybnldnpo73", values={"code": "1"}
        )
        fake.ippanel.send_window = False
        fake.core.credit = Decimal(500)
        with pytest.raises(smsgate.InsufficientCreditError):
            await gw.send("09121234567", "hi")
    assert (line.value.code, many.value.code) == ("3", "98")
    assert [e.message_id for e in fake.ledger] == [pattern.message_id]


@pytest.mark.anyio
async def test_faults(url: str, fake: FakeProvider) -> None:
    """HTML page -> ProtocolError; HTTP 500 -> ProviderUnavailableError; a dropped answer
    -> OutcomeUnknownError while the fake's ledger shows the send happened."""
    async with gateway(url) as gw:
        fake.faults.html_rate = 1.0
        with pytest.raises(smsgate.ProtocolError):
            await gw.credit()
        fake.faults.html_rate = 0.0
        fake.faults.error_rate = 1.0
        with pytest.raises(smsgate.ProviderUnavailableError) as err:
            await gw.send("09121234567", "hi")
        fake.faults.error_rate = 0.0
        fake.faults.drop_rate = 1.0
        with pytest.raises(smsgate.OutcomeUnknownError) as dropped:
            await gw.send("09121234567", "dropped")
        fake.faults.drop_rate = 0.0
    assert err.value.maybe_sent
    assert dropped.value.maybe_sent
    assert [e.text for e in fake.ledger] == ["dropped"]


# -- the fake's own wire leniency (clients other than ours) ------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize("profile", ["lenient"])  # the leniency of the default profile
async def test_fake_accepts_other_encodings(url: str, fake: FakeProvider, clock: FakeClock) -> None:
    """Multipart with PHP arrays, a JSON body, S0's `Uniqid`, capitalised ops, GET patterns."""
    async with httpx.AsyncClient(base_url=url) as client:
        multipart = await client.post(
            "/services.jspd",
            data={
                "uname": USERNAME,
                "pass": PASSWORD,
                "op": "Send",
                "from": "3000505",
                "message": "hi",
                "to[]": ["9121111111", "+989122222222"],
            },
            files={"dummy": ("a.txt", b"x")},
        )
        as_json = await client.post(
            "/services.jspd",
            json={
                "uname": USERNAME,
                "pass": PASSWORD,
                "op": "send",
                "from": SENDER,
                "message": "json",
                "to": ["09123333333"],
            },
        )
        clock.advance(60)
        bulk = multipart.json()[1]
        delivery = await client.post(
            "/services.jspd",
            data={"uname": USERNAME, "pass": PASSWORD, "op": "Delivery", "Uniqid": bulk},
        )
        pattern = await client.get(
            "/patterns/pattern",
            params={
                "username": USERNAME,
                "password": PASSWORD,
                "from": SENDER,
                "to": '["09124444444"]',
                "input_data": '{"code":"9"}',
                "pattern_code": "ybnldnpo73",
            },
        )
        select = await client.post(
            "/api/select",
            json={
                "op": "pattern",
                "user": USERNAME,
                "pass": PASSWORD,
                "fromNum": "3000505",
                "toNum": "09125555555",
                "patternCode": "ybnldnpo73",
                "inputData": [{"code": 7}],
            },
        )
        area = await client.post(
            "/services.jspd", data={"uname": USERNAME, "pass": PASSWORD, "op": "Postalcoderarea"}
        )
        jobs = await client.post(
            "/services.jspd", data={"uname": USERNAME, "pass": PASSWORD, "op": "joblist"}
        )
        unknown = await client.post(
            "/services.jspd", data={"uname": USERNAME, "pass": PASSWORD, "op": "teleport"}
        )
    assert multipart.json()[0] == 0 and isinstance(bulk, str)
    assert as_json.json()[0] == 0
    assert json.loads(delivery.json()[1]) == ["+989121111111:delivered", "+989122222222:delivered"]
    assert delivery.headers["content-type"].startswith("application/json")
    assert isinstance(pattern.json(), int) and isinstance(select.json(), int)
    assert area.json()[0] == 0 and jobs.json()[0] == 0
    assert unknown.json()[0] != 0
    assert [e.recipient for e in fake.ledger] == [
        "+989121111111",
        "+989122222222",
        "+989123333333",
        "+989124444444",
        "+989125555555",
    ]
    assert fake.ledger[-1].text == "کد تایید شما: 7"


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("profile", "field", "other_field", "jobs_op", "other_jobs_op", "first_number"),
    [
        ("ippanel-pdf", "uinqid", "Uniqid", "joblist", "Jobslist", "+989121111111"),
        ("kapanel", "Uniqid", "uinqid", "Jobslist", "joblist", "+۹۸۹۱۲۱۱۱۱۱۱۱"),
    ],
)
async def test_strict_profiles_on_the_wire(
    url: str,
    fake: FakeProvider,
    clock: FakeClock,
    field: str,
    other_field: str,
    jobs_op: str,
    other_jobs_op: str,
    first_number: str,
) -> None:
    """Each strict profile reads one spelling of the bulk-id field and of the jobs-list op,
    answers delivery with the document's bare array, and a bad login there with bare text."""
    login = {"uname": USERNAME, "pass": PASSWORD}
    async with httpx.AsyncClient(base_url=url) as client:
        sent = await client.post(
            "/services.jspd",
            data={**login, "op": "send", "from": SENDER, "message": "hi",
                  "to": '["09121111111","09122222222"]'},
        )  # fmt: skip
        bulk = sent.json()[1]
        clock.advance(60)
        right = await client.post("/services.jspd", data={**login, "op": "delivery", field: bulk})
        wrong = await client.post(
            "/services.jspd", data={**login, "op": "delivery", other_field: bulk}
        )
        bad_login = await client.post(
            "/services.jspd",
            data={"uname": USERNAME, "pass": "wrong", "op": "delivery", field: bulk},
        )
        known = await client.post("/services.jspd", data={**login, "op": jobs_op})
        unknown = await client.post("/services.jspd", data={**login, "op": other_jobs_op})
    assert right.json() == [f"{first_number}:delivered", "+989122222222:delivered"]
    assert wrong.json() is None
    assert bad_login.text == "The username or password is incorrect"
    assert bad_login.headers["content-type"].startswith("text/plain")
    assert known.json()[0] == 0
    assert unknown.json()[0] not in ERROR_CODES and unknown.json()[0] != 0


@pytest.mark.anyio
async def test_delivery_wrong_password(url: str, fake: FakeProvider) -> None:
    """A refused login on delivery is AuthenticationError in every profile ([962, text] from
    the lenient fake, the English text alone from the strict ones)."""
    async with gateway(url) as gw:
        receipt = await gw.send("09121111111", "hi")
    async with gateway(url, password="not-the-password") as gw:
        with pytest.raises(smsgate.AuthenticationError) as info:
            await gw.delivery(receipt)
    assert "not-the-password" not in str(info.value)


@pytest.mark.anyio
async def test_gateway_remembers_the_jobs_op(url: str, fake: FakeProvider) -> None:
    """Against a panel knowing one jobs-list spelling, the gateway finds it once and keeps it."""
    async with gateway(url) as gw:
        first = await gw.jobs.list()
        before = gw.requests_made
        second = await gw.jobs.list()
        after = gw.requests_made
    assert first == second and first
    # Only the first call may have needed a second try; the next goes straight through.
    assert after - before == 1
    expected = {"lenient": "jobslist", "kapanel": "jobslist", "ippanel-pdf": "joblist"}
    assert gw._jobs_op == expected[fake.profile]


@pytest.mark.anyio
async def test_all_final_within_a_minute(url: str, fake: FakeProvider, clock: FakeClock) -> None:
    """With failures switched on, every recipient is final 60 s after the send."""
    fake.ippanel.failure_rate = 0.5
    numbers = [f"0912000{i:04d}" for i in range(40)]
    async with gateway(url) as gw:
        receipt = await gw.send(numbers, "bulk")
        clock.advance(60)
        reports = await gw.delivery(receipt)
    states = {r.state for r in reports}
    assert len(reports) == 40 and all(r.is_final for r in reports)
    assert states == {smsgate.DeliveryState.DELIVERED, smsgate.DeliveryState.UNDELIVERED}


@pytest.mark.parametrize("profile", ["lenient"])
def test_profile_names_are_checked(profile: str) -> None:
    """FakeProvider validates the profile name and puts it where both halves read it."""
    from smsgate.testing import PROFILES

    assert PROFILES == ("lenient", "ippanel-pdf", "kapanel", "negin-guide")
    for name in PROFILES:
        fake = FakeProvider(profile=name)
        assert fake.profile == fake.core.profile == name
        assert fake.ippanel.core is fake.core and fake.negin.core is fake.core
    assert FakeProvider().profile == "lenient"
    for bad in ("strict", "Kapanel", "", None):
        with pytest.raises(ValueError, match="profile"):
            FakeProvider(profile=bad)  # type: ignore[arg-type]
