"""IppanelGateway against respx routes: every op's request fields and answer parsing,
every mapped error code, the lenient variants, ProtocolError cases, and secret hygiene."""

from __future__ import annotations

import contextlib
import json
import logging
import re
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import httpx
import pytest
import respx

import smsgate
from smsgate.backends.ippanel import (
    DELIVERY_STATES,
    ERROR_CODES,
    Gender,
    IppanelGateway,
    MessageStatus,
    SubAccountRejectedError,
)
from smsgate.backends.ippanel._wire import _LOG_FILTER
from smsgate.testing import ippanel_router
from smsgate.testing._routes_ippanel import FIRST_BULK_ID, form_fields, query_fields

USERNAME = "panel-user"
# Characters that change under every URL and JSON encoding, to test scrubbing for real.
PASSWORD = "s3cr3t p@ss/&=+é"
SENDER = "+983000505"
BASE = "https://ippanel.com"


@contextlib.asynccontextmanager
async def gateway(
    router: respx.Router | None = None,
    *,
    handler: Callable[[httpx.Request], httpx.Response] | None = None,
    **options: Any,
) -> AsyncIterator[IppanelGateway]:
    """A gateway wired to ``router`` (or a bare MockTransport handler) by injection."""
    if handler is not None:
        transport: httpx.AsyncBaseTransport = httpx.MockTransport(handler)
    else:
        assert router is not None
        transport = httpx.MockTransport(router.async_handler)
    client = httpx.AsyncClient(transport=transport)
    settings: dict[str, Any] = {
        "username": USERNAME,
        "password": PASSWORD,
        "sender": SENDER,
        "base_url": BASE,
        "http_client": client,
    }
    settings.update(options)
    gw = IppanelGateway(**settings)
    try:
        async with gw:
            yield gw
    finally:
        await client.aclose()


def answer(payload: Any) -> httpx.Response:
    """A 200 answer with a JSON body."""
    return httpx.Response(200, json=payload)


def raw(body: bytes, content_type: str = "application/json") -> httpx.Response:
    """A 200 answer with exactly these bytes."""
    return httpx.Response(200, content=body, headers={"content-type": content_type})


def no_secret(*texts: str) -> None:
    """Assert that the password appears in none of the texts, in any encoding."""
    # "s3cr3t" starts every encoding of the password (raw, %-encoded, +-encoded, JSON).
    forms = {PASSWORD, "s3cr3t", quote(PASSWORD, safe=""), quote_plus(PASSWORD)}
    for text in texts:
        for form in forms:
            assert form not in text, (form, text)


# -- construction ---------------------------------------------------------------------------


def test_defaults_and_protocols() -> None:
    """API.md §3 defaults; SmsGateway, SupportsCredit and SupportsPattern are satisfied."""
    gw = IppanelGateway(username="u", password="p", sender=SENDER)
    assert gw.name == "ippanel"
    assert gw.max_recipients == 100
    assert gw.base_url == "https://ippanel.com"
    assert gw.pattern_endpoint == "api/select"
    assert isinstance(gw, smsgate.SmsGateway)
    assert isinstance(gw, smsgate.SupportsCredit)
    assert isinstance(gw, smsgate.SupportsPattern)
    assert smsgate.IppanelGateway is IppanelGateway
    assert smsgate.MessageStatus is MessageStatus


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        ({"username": ""}, "username"),
        ({"password": ""}, "password"),
        ({"sender": "not a line"}, "sender"),
        ({"max_recipients": 0}, "max_recipients"),
        ({"max_recipients": True}, "max_recipients"),
        ({"pattern_endpoint": "soap"}, "pattern_endpoint"),
        ({"base_url": "http://ippanel.com"}, "plain http"),
    ],
)
def test_bad_settings(options: dict[str, Any], fragment: str) -> None:
    """Unusable settings raise ConfigurationError at construction, naming the setting."""
    settings: dict[str, Any] = {"username": "u", "password": PASSWORD, "sender": SENDER}
    settings.update(options)
    with pytest.raises(smsgate.ConfigurationError, match=fragment) as info:
        IppanelGateway(**settings)
    no_secret(str(info.value))


def test_repr_hides_password() -> None:
    """The repr names user, sender and host, never the password."""
    gw = IppanelGateway(username="u", password=PASSWORD, sender=SENDER)
    text = repr(gw)
    assert "username='u'" in text and SENDER in text and "ippanel.com" in text
    no_secret(text, repr(gw.phonebooks), repr(gw.jobs))


# -- send ---------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_send_request_fields() -> None:
    """send is one form-encoded POST to /services.jspd; `to` is a compact JSON array field."""
    router = ippanel_router()
    async with gateway(router) as gw:
        receipt = await gw.send(["0912 111 1111", "+989352222222", "۰۹۱۲۳۳۳۳۳۳۳"], "سلام")
    request = router["send"].calls.last.request
    assert request.method == "POST"
    assert request.url == "https://ippanel.com/services.jspd"
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    fields = form_fields(request)
    assert fields == {
        "uname": USERNAME,
        "pass": PASSWORD,
        "op": "send",
        "from": SENDER,
        "message": "سلام",
        "to": '["09121111111","09352222222","09123333333"]',
    }
    assert router["send"].call_count == 1
    expected = ("+989121111111", "+989352222222", "+989123333333")
    assert receipt.recipients == expected
    assert receipt.message_id == str(FIRST_BULK_ID)
    assert dict(receipt.message_ids) == dict.fromkeys(expected, str(FIRST_BULK_ID))
    assert receipt.provider == "ippanel"
    assert receipt.sender == SENDER
    assert receipt.raw == [0, str(FIRST_BULK_ID)]


@pytest.mark.asyncio
async def test_send_one_number_and_sender_override() -> None:
    """A str is one recipient; sender= overrides the default line for that call."""
    router = ippanel_router()
    async with gateway(router) as gw:
        receipt = await gw.send("9121234567", "hi", sender="3000505")
    fields = form_fields(router["send"].calls.last.request)
    assert fields["to"] == '["09121234567"]'
    assert fields["from"] == "3000505"
    assert receipt.sender == "3000505"
    assert receipt.recipients == ("+989121234567",)


@pytest.mark.asyncio
async def test_send_at_schedules_in_tehran_time() -> None:
    """send_at fills `time`: naive datetimes as given, aware ones converted to UTC+03:30."""
    router = ippanel_router()
    async with gateway(router) as gw:
        await gw.send("09121234567", "later", send_at=datetime(2030, 1, 2, 3, 4, 5))
        naive = form_fields(router["send"].calls.last.request)["time"]
        await gw.send("09121234567", "later", send_at=datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC))
        aware = form_fields(router["send"].calls.last.request)["time"]
        with pytest.raises(smsgate.InvalidMessageError):
            await gw.send("09121234567", "later", send_at="tomorrow")  # type: ignore[arg-type]
    assert naive == "2030-01-02 03:04:05"
    assert aware == "2030-01-02 06:34:05"
    assert router["send"].call_count == 2


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("to", "text", "error", "options"),
    [
        (["09121234567", "12345"], "hi", smsgate.InvalidRecipientError, {}),
        ([], "hi", smsgate.InvalidRecipientError, {}),
        (["09121234567", "+989121234567"], "hi", smsgate.InvalidRecipientError, {}),
        ([b"09121234567"], "hi", smsgate.InvalidRecipientError, {}),
        (b"09121234567", "hi", smsgate.InvalidRecipientError, {}),
        ("09121234567", "", smsgate.InvalidMessageError, {}),
        ("09121234567", "   ", smsgate.InvalidMessageError, {}),
        ("09121234567", 42, smsgate.InvalidMessageError, {}),
        (
            ["09121111111", "09122222222", "09123333333"],
            "hi",
            smsgate.TooManyRecipientsError,
            {"max_recipients": 2},
        ),
        ("09121234567", "hi", smsgate.ConfigurationError, {"sender": None}),
    ],
)
async def test_send_refused_before_io(
    to: Any, text: Any, error: type[Exception], options: dict[str, Any]
) -> None:
    """Bad numbers, repeats, empty text, too many numbers or no line: refused, no request made."""
    router = ippanel_router()
    async with gateway(router, **options) as gw:
        with pytest.raises(error):
            await gw.send(to, text)
    assert router["send"].call_count == 0


@pytest.mark.asyncio
async def test_too_many_is_not_maybe_sent() -> None:
    """The local recipient cap raises TooManyRecipientsError that says nothing went out."""
    async with gateway(ippanel_router(), max_recipients=1) as gw:
        with pytest.raises(smsgate.TooManyRecipientsError) as info:
            await gw.send(["09121111111", "09122222222"], "hi")
    assert info.value.maybe_sent is False
    assert info.value.code is None


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "body",
    [
        b'[0,"562892393"]',
        b"[0,562892393]",
        b'["0","562892393"]',
        b'[" 0 ", " 562892393 "]',
        b"[0.0, 562892393.0]",
        b'\xef\xbb\xbf[0,"562892393"]',
        b'  [0, "562892393"]\n',
        b'{"status": {"code": 0, "errorMessage": ""}, "data": 562892393}',
    ],
)
@pytest.mark.parametrize("content_type", ["application/json", "text/html; charset=utf-8"])
async def test_send_lenient_answers(body: bytes, content_type: str) -> None:
    """Code as 0 or "0", id as string or number, a BOM, any content type: all read."""
    router = ippanel_router(responses={"send": raw(body, content_type)})
    async with gateway(router) as gw:
        receipt = await gw.send("09121234567", "hi")
    assert receipt.message_id == "562892393"


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "body",
    [
        b"<html><body>503 Service Unavailable</body></html>",
        b'[0,"5628',
        b"",
        b"[0]",
        b'[0,""]',
        b'[0,"abc"]',
        b'[0,"-5"]',
        b"[0,null]",
        b'[0,"1",2]',
        b'[true,"1"]',
        b'["x","1"]',
        b"{}",
        b"null",
        b'{"status": {"code": "zero"}}',
    ],
)
async def test_send_unreadable_is_protocol_error(body: bytes) -> None:
    """An answer that is not [0, bulk id] is ProtocolError, flagged maybe_sent (never resent)."""
    router = ippanel_router(responses={"send": raw(body)})
    async with gateway(router) as gw:
        with pytest.raises(smsgate.ProtocolError) as info:
            await gw.send("09121234567", "hi")
    assert info.value.maybe_sent is True
    assert info.value.status_code == 200


# -- the error table -----------------------------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.parametrize("code", sorted(ERROR_CODES))
async def test_every_error_code(code: int) -> None:
    """Each code of protocols §6.1 raises its class with .code, .provider and the text."""
    cls, meaning = ERROR_CODES[code]
    text = f"provider text for {code}"
    router = ippanel_router(responses={"send": [code, text]})
    async with gateway(router) as gw:
        with pytest.raises(smsgate.ProviderError) as info:
            await gw.send("09121234567", "hi")
    err = info.value
    assert type(err) is cls
    assert err.code == str(code)
    assert err.provider == "ippanel"
    assert err.detail == text
    assert err.message == meaning
    assert f"code {code}" in str(err) and text in str(err)


EXPECTED_CLASSES: dict[int, type[smsgate.ProviderError]] = {
    1: smsgate.MessageRejectedError,
    2: smsgate.AccountRestrictedError,
    3: smsgate.InvalidSenderError,
    4: smsgate.RecipientRejectedError,
    5: smsgate.InsufficientCreditError,
    7: smsgate.InvalidSenderError,
    9: smsgate.SendWindowError,
    98: smsgate.TooManyRecipientsError,
    99: smsgate.ProviderUnavailableError,
    301: SubAccountRejectedError,
    317: SubAccountRejectedError,
    404: smsgate.PatternError,
    456: smsgate.UnknownMessageError,
    962: smsgate.AuthenticationError,
    963: smsgate.AccountRestrictedError,
    970: smsgate.PatternError,
    971: smsgate.PatternError,
    972: smsgate.PatternError,
    992: smsgate.SendWindowError,
    994: smsgate.AccountRestrictedError,
    995: smsgate.AccountRestrictedError,
    996: smsgate.PatternError,
    997: smsgate.PatternError,
    998: smsgate.AccountRestrictedError,
    1001: SubAccountRejectedError,
    1005: SubAccountRejectedError,
    1006: smsgate.MessageRejectedError,
}


@pytest.mark.parametrize(("code", "cls"), sorted(EXPECTED_CLASSES.items()))
def test_error_table_matches_the_brief(code: int, cls: type[Exception]) -> None:
    """The table maps the codes named in the issue onto the classes it names."""
    assert ERROR_CODES[code][0] is cls


def test_error_table_covers_protocol_page() -> None:
    """Every code listed in protocols/ippanel.md §6.1 has an entry."""
    listed = {1, 2, 3, 4, 5, 7, 9, 98, 99, 21, 22, 23, 100, 101, 102, 111, 131, 132, 266}
    listed |= set(range(301, 318)) | {404, 455, 456, 458, 962, 963, 964, 970, 971, 972}
    listed |= {992, 993, 994, 995, 996, 997, 998, 1001, 1002, 1003, 1004, 1005, 1006, 105}
    assert listed <= set(ERROR_CODES)


def test_docs_error_table_matches_code() -> None:
    """docs/backends/ippanel.md lists every code with the class the code raises."""
    page = Path(__file__).resolve().parents[2] / "docs" / "backends" / "ippanel.md"
    rows = re.findall(r"^\| (\d+) \| `(\w+)` \|", page.read_text(encoding="utf-8"), re.M)
    documented = {int(code): name for code, name in rows}
    assert documented == {code: cls.__name__ for code, (cls, _m) in ERROR_CODES.items()}


@pytest.mark.asyncio
async def test_error_flags() -> None:
    """Code 99 says nothing went out (retry, fall back); 5 and 3 allow another route."""
    router = ippanel_router(responses={"send": [99, "operator down"]})
    async with gateway(router) as gw:
        with pytest.raises(smsgate.ProviderUnavailableError) as info:
            await gw.send("09121234567", "hi")
    assert info.value.maybe_sent is False
    assert info.value.retryable and info.value.fallback_ok
    router = ippanel_router(responses={"send": [5, "credit"]})
    async with gateway(router) as gw:
        with pytest.raises(smsgate.InsufficientCreditError) as credit_info:
            await gw.send("09121234567", "hi")
    assert credit_info.value.fallback_ok and not credit_info.value.maybe_sent


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("payload", "code", "detail"),
    [
        ([12345, "Something new"], "12345", "Something new"),
        (["-3", "negative"], "-3", "negative"),
        ([6], "6", None),
        ([8, "x"], "8", "x"),
        ([7777, {"a": 1}], "7777", '{"a": 1}'),
        ([7777, 42], "7777", "42"),
        ({"status": {"code": 8888, "errorMessage": "v2 says no"}}, "8888", "v2 says no"),
    ],
)
async def test_unknown_code_is_provider_error(payload: Any, code: str, detail: str | None) -> None:
    """An unknown code is a plain ProviderError keeping .code and the provider's text."""
    router = ippanel_router(responses={"send": payload})
    async with gateway(router) as gw:
        with pytest.raises(smsgate.ProviderError) as info:
            await gw.send("09121234567", "hi")
    assert type(info.value) is smsgate.ProviderError
    assert info.value.code == code
    assert info.value.detail == detail


@pytest.mark.asyncio
async def test_string_code_and_v2_envelope_map() -> None:
    """ "962" as a string and a V2 status envelope both become AuthenticationError."""
    for payload in (["962", "bad login"], {"status": {"code": 962, "errorMessage": "bad login"}}):
        router = ippanel_router(responses={"credit": payload})
        async with gateway(router) as gw:
            with pytest.raises(smsgate.AuthenticationError) as info:
                await gw.credit()
        assert info.value.detail == "bad login"


@pytest.mark.asyncio
async def test_error_detail_is_scrubbed() -> None:
    """A provider text that echoes the password loses it before it reaches the error."""
    router = ippanel_router(responses={"send": [962, f"bad password {PASSWORD}"]})
    async with gateway(router) as gw:
        with pytest.raises(smsgate.AuthenticationError) as info:
            await gw.send("09121234567", "hi")
    assert info.value.detail == "bad password ***"
    no_secret(str(info.value), repr(info.value))


# -- patterns ------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_pattern_url_endpoint_fields() -> None:
    """The default endpoint: POST /patterns/pattern with every parameter in the query."""
    router = ippanel_router()
    async with gateway(router, pattern_endpoint="patterns/pattern") as gw:
        receipt = await gw.send_pattern(
            "۰۹۱۲۱۲۳۴۵۶۷", pattern_code="ybnldnpo73", values={"code": "1234", "n": 5}
        )
    request = router["patterns"].calls.last.request
    assert request.method == "POST"
    assert request.url.path == "/patterns/pattern"
    assert request.content == b""
    assert query_fields(request) == {
        "username": USERNAME,
        "password": PASSWORD,
        "from": SENDER,
        "to": '["09121234567"]',
        "input_data": '{"code":"1234","n":"5"}',
        "pattern_code": "ybnldnpo73",
    }
    assert receipt.message_id == str(FIRST_BULK_ID)
    assert receipt.recipients == ("+989121234567",)
    assert dict(receipt.message_ids) == {"+989121234567": str(FIRST_BULK_ID)}


@pytest.mark.asyncio
async def test_pattern_send_pattern_op_fields() -> None:
    """pattern_endpoint="sendPattern": S2's form op on /services.jspd."""
    router = ippanel_router()
    async with gateway(router, pattern_endpoint="sendPattern") as gw:
        receipt = await gw.send_pattern(
            "09121234567", pattern_code="abc", values={"name": "علی"}, sender="3000505"
        )
    assert form_fields(router["sendPattern"].calls.last.request) == {
        "uname": USERNAME,
        "pass": PASSWORD,
        "op": "sendPattern",
        "from": "3000505",
        "pattern_code": "abc",
        "to": '["09121234567"]',
        "input_data": '{"name":"علی"}',
    }
    assert receipt.sender == "3000505"


@pytest.mark.asyncio
async def test_pattern_api_select_fields() -> None:
    """pattern_endpoint="api/select": a JSON body with user/fromNum/toNum/inputData=[{…}]."""
    router = ippanel_router()
    async with gateway(router, pattern_endpoint="api/select") as gw:
        receipt = await gw.send_pattern("09121234567", pattern_code="l4p0", values={"c": "1"})
    request = router["select"].calls.last.request
    assert request.headers["content-type"] == "application/json"
    assert json.loads(request.content) == {
        "op": "pattern",
        "user": USERNAME,
        "pass": PASSWORD,
        "fromNum": SENDER,
        "toNum": "09121234567",
        "patternCode": "l4p0",
        "inputData": [{"c": "1"}],
    }
    assert receipt.message_id == str(FIRST_BULK_ID)


@pytest.mark.asyncio
@pytest.mark.parametrize("endpoint", ["patterns/pattern", "sendPattern", "api/select"])
@pytest.mark.parametrize(
    "body", [b"562892399", b'"562892399"', b'[0,"562892399"]', b"[0,562892399]", b" 562892399 "]
)
async def test_pattern_success_shapes(endpoint: str, body: bytes) -> None:
    """A bare number, a numeric string or [0, id]: each is the bulk id, on every endpoint."""
    name = {"patterns/pattern": "patterns", "sendPattern": "sendPattern", "api/select": "select"}
    router = ippanel_router(responses={name[endpoint]: raw(body)})
    async with gateway(router, pattern_endpoint=endpoint) as gw:
        receipt = await gw.send_pattern("09121234567", pattern_code="c", values={})
    assert receipt.message_id == "562892399"


@pytest.mark.asyncio
@pytest.mark.parametrize("endpoint", ["patterns/pattern", "sendPattern", "api/select"])
@pytest.mark.parametrize("code", [404, 970, 971, 972, 996, 997])
async def test_pattern_errors(endpoint: str, code: int) -> None:
    """Pattern codes are PatternError whichever endpoint answers them."""
    name = {"patterns/pattern": "patterns", "sendPattern": "sendPattern", "api/select": "select"}
    router = ippanel_router(responses={name[endpoint]: [code, "pattern says no"]})
    async with gateway(router, pattern_endpoint=endpoint) as gw:
        with pytest.raises(smsgate.PatternError) as info:
            await gw.send_pattern("09121234567", pattern_code="c", values={"a": "b"})
    assert info.value.code == str(code)
    no_secret(str(info.value), repr(info.value))


@pytest.mark.asyncio
@pytest.mark.parametrize("body", [b'"abc"', b"{}", b"<html>error</html>", b"1.5"])
async def test_pattern_unreadable(body: bytes) -> None:
    """No bulk id in a pattern answer is ProtocolError (maybe_sent), excerpt free of secrets."""
    router = ippanel_router(responses={"patterns": raw(body)})
    async with gateway(router, pattern_endpoint="patterns/pattern") as gw:
        with pytest.raises(smsgate.ProtocolError) as info:
            await gw.send_pattern("09121234567", pattern_code="c", values={})
    assert info.value.maybe_sent
    no_secret(str(info.value))


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("to", "code", "values", "error"),
    [
        (["09121234567"], "c", {}, smsgate.InvalidRecipientError),
        ("12345", "c", {}, smsgate.InvalidRecipientError),
        ("09121234567", "", {}, smsgate.InvalidMessageError),
        ("09121234567", None, {}, smsgate.InvalidMessageError),
        ("09121234567", "c", [("a", "b")], smsgate.InvalidMessageError),
        ("09121234567", "c", {"a": True}, smsgate.InvalidMessageError),
        ("09121234567", "c", {"a": None}, smsgate.InvalidMessageError),
        ("09121234567", "c", {"": "x"}, smsgate.InvalidMessageError),
    ],
)
async def test_pattern_refused_before_io(
    to: Any, code: Any, values: Any, error: type[Exception]
) -> None:
    """A list of numbers, a bad number, no pattern code or bad values: refused, no request."""
    router = ippanel_router()
    async with gateway(router) as gw:
        with pytest.raises(error):
            await gw.send_pattern(to, pattern_code=code, values=values)
    assert router["patterns"].call_count == 0


# -- credit --------------------------------------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ("10929800.0", Decimal("10929800.0")),
        ("1250/5", Decimal("1250.5")),
        ("1250٫5", Decimal("1250.5")),
        (10929800, Decimal(10929800)),
        (1250.5, Decimal("1250.5")),
        ("۱۲۵۰", Decimal(1250)),
        ("1,250,000", Decimal(1250000)),
        (" 77 ", Decimal(77)),
    ],
)
async def test_credit(data: Any, expected: Decimal) -> None:
    """Credit is a Decimal in Rial; `.` `/` `٫` decimal marks, numbers and Persian digits read."""
    router = ippanel_router(responses={"credit": [0, data]})
    async with gateway(router) as gw:
        amount = await gw.credit()
    assert amount == expected
    assert isinstance(amount, Decimal)
    assert form_fields(router["credit"].calls.last.request) == {
        "uname": USERNAME,
        "pass": PASSWORD,
        "op": "credit",
    }


@pytest.mark.asyncio
@pytest.mark.parametrize("data", ["abc", "NaN", "Infinity", "", None, True, [1], "1.2.3"])
async def test_credit_unreadable(data: Any) -> None:
    """A credit that is not a finite number is ProtocolError, not maybe_sent (a query)."""
    router = ippanel_router(responses={"credit": [0, data]})
    async with gateway(router) as gw:
        with pytest.raises(smsgate.ProtocolError) as info:
            await gw.credit()
    assert info.value.maybe_sent is False


# -- delivery ------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_delivery_by_receipt_and_by_id() -> None:
    """delivery sends `uinqid`; every report names its number, from a receipt or a bare id."""
    router = ippanel_router(delivery_status="delivered")
    async with gateway(router) as gw:
        receipt = await gw.send(["09121111111", "09122222222"], "hi")
        by_receipt = await gw.delivery(receipt)
        by_id = await gw.delivery(receipt.message_id)
    assert form_fields(router["delivery"].calls.last.request) == {
        "uname": USERNAME,
        "pass": PASSWORD,
        "op": "delivery",
        "uinqid": receipt.message_id,
        "Uniqid": receipt.message_id,
    }
    assert by_receipt == by_id
    assert [r.recipient for r in by_receipt] == list(receipt.recipients)
    for report in by_receipt:
        assert report.message_id == receipt.message_id
        assert report.state is smsgate.DeliveryState.DELIVERED
        assert report.is_final and report.provider == "ippanel"
        assert report.provider_status == "delivered"


@pytest.mark.parametrize(
    ("status", "state", "final"),
    [
        ("notsync", smsgate.DeliveryState.QUEUED, False),
        ("send", smsgate.DeliveryState.SENT, False),
        ("pending", smsgate.DeliveryState.AT_OPERATOR, False),
        ("delivered", smsgate.DeliveryState.DELIVERED, True),
        ("failed", smsgate.DeliveryState.UNDELIVERED, True),
        ("discarded", smsgate.DeliveryState.BLOCKED, True),
    ],
)
def test_status_table(status: str, state: smsgate.DeliveryState, final: bool) -> None:
    """The delivery table is API.md §2's mapping."""
    assert DELIVERY_STATES[status] is state
    assert state.is_final is final


@pytest.mark.asyncio
async def test_delivery_statuses_parsed() -> None:
    """All six statuses, capitalised ones (S0's legend) and an unknown one (kept raw)."""
    items = [
        "+989121111111:notsync",
        "+989121111112:send",
        "+989121111113:pending",
        "+989121111114:delivered",
        "+989121111115:failed",
        "+989121111116:discarded",
        "+989121111117:Delivered",
        "+989121111118:weird",
        " 09121111119 : pending ",
    ]
    router = ippanel_router(responses={"delivery": [0, json.dumps(items)]})
    async with gateway(router) as gw:
        reports = await gw.delivery("562892393")
    assert [(r.recipient, r.state, r.provider_status, r.is_final) for r in reports] == [
        ("+989121111111", smsgate.DeliveryState.QUEUED, "notsync", False),
        ("+989121111112", smsgate.DeliveryState.SENT, "send", False),
        ("+989121111113", smsgate.DeliveryState.AT_OPERATOR, "pending", False),
        ("+989121111114", smsgate.DeliveryState.DELIVERED, "delivered", True),
        ("+989121111115", smsgate.DeliveryState.UNDELIVERED, "failed", True),
        ("+989121111116", smsgate.DeliveryState.BLOCKED, "discarded", True),
        ("+989121111117", smsgate.DeliveryState.DELIVERED, "Delivered", True),
        ("+989121111118", smsgate.DeliveryState.UNKNOWN, "weird", False),
        ("+989121111119", smsgate.DeliveryState.AT_OPERATOR, "pending", False),
    ]


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "payload",
    [
        [0, ["+989121111111:delivered"]],
        ["0", '\ufeff["+989121111111:delivered"]'],
        [0, '{"0": "+989121111111:delivered"}'],
    ],
)
async def test_delivery_lenient(payload: Any) -> None:
    """A list not encoded twice, a BOM inside the string, a position-keyed object: all read."""
    router = ippanel_router(responses={"delivery": payload})
    async with gateway(router) as gw:
        reports = await gw.delivery("562892393")
    assert [(r.recipient, r.state) for r in reports] == [
        ("+989121111111", smsgate.DeliveryState.DELIVERED)
    ]


@pytest.mark.asyncio
async def test_delivery_odd_number_kept() -> None:
    """A number that is not a mobile (S0's typeset sample) is kept as given, not dropped."""
    router = ippanel_router(responses={"delivery": [0, '["+98910000098:notsync"]']})
    async with gateway(router) as gw:
        reports = await gw.delivery("562892393")
    assert [r.recipient for r in reports] == ["+98910000098"]


@pytest.mark.asyncio
@pytest.mark.parametrize("payload", [[0, ""], [0, "[]"], [], [0, []]])
async def test_delivery_empty(payload: Any) -> None:
    """An empty list (a bulk not yet split into numbers) is no reports, not an error."""
    router = ippanel_router(responses={"delivery": payload})
    async with gateway(router) as gw:
        assert await gw.delivery("562892393") == []


@pytest.mark.asyncio
async def test_delivery_unknown_id() -> None:
    """`null` (and code 456) for an unknown bulk id raise UnknownMessageError."""
    router = ippanel_router()
    async with gateway(router) as gw:
        with pytest.raises(smsgate.UnknownMessageError) as info:
            await gw.delivery("999999999")
    assert info.value.provider == "ippanel"
    assert router["delivery"].call_count == 1
    router = ippanel_router(responses={"delivery": [456, "Invalid bulk code"]})
    async with gateway(router) as gw:
        with pytest.raises(smsgate.UnknownMessageError) as coded:
            await gw.delivery("999999999")
    assert coded.value.code == "456"


@pytest.mark.asyncio
@pytest.mark.parametrize("ref", ["abc", "", "12-3", "0", "-5", "1" * 40])
async def test_delivery_bad_id_before_io(ref: str) -> None:
    """A reference that is no bulk id is UnknownMessageError without a request."""
    router = ippanel_router()
    async with gateway(router) as gw:
        with pytest.raises(smsgate.UnknownMessageError):
            await gw.delivery(ref)
        with pytest.raises(smsgate.UnknownMessageError):
            await gw.message_status(ref)
    assert router["delivery"].call_count == 0
    assert router["checkmessage"].call_count == 0


@pytest.mark.asyncio
async def test_delivery_foreign_receipt() -> None:
    """A receipt from another backend is refused before any request."""
    receipt = smsgate.SendReceipt(
        message_id="123", message_ids={"+989121234567": "123"}, provider="negin", recipients=()
    )
    router = ippanel_router()
    async with gateway(router) as gw:
        with pytest.raises(smsgate.UnknownMessageError, match=r"negin"):
            await gw.delivery(receipt)
    assert router["delivery"].call_count == 0


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "payload",
    [
        [0, '["+989121111111"]'],
        [0, '["+989121111111:"]'],
        [0, "[1, 2]"],
        [0, "not json"],
        [0, 42],
        [0, '"a string"'],
        {"unexpected": True},
    ],
)
async def test_delivery_unreadable(payload: Any) -> None:
    """Entries without `number:status`, or data that is no list, are ProtocolError."""
    router = ippanel_router(responses={"delivery": payload})
    async with gateway(router) as gw:
        with pytest.raises(smsgate.ProtocolError) as info:
            await gw.delivery("562892393")
    assert info.value.maybe_sent is False


# -- checkmessage -----------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_message_status() -> None:
    """checkmessage sends `messageid` and reads the statusMessage/validMessage object."""
    router = ippanel_router()
    async with gateway(router) as gw:
        receipt = await gw.send("09121234567", "hi")
        status = await gw.message_status(receipt)
    assert form_fields(router["checkmessage"].calls.last.request) == {
        "uname": USERNAME,
        "pass": PASSWORD,
        "op": "checkmessage",
        "messageid": receipt.message_id,
    }
    assert status == MessageStatus(
        message_id=receipt.message_id, status="Finish", validation="approve"
    )
    assert status.finished and status.approved
    assert status.raw == {"statusMessage": "Finish", "validMessage": "approve"}


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("payload", "status", "validation"),
    [
        (
            {"statusMessage": "No Sufficient Charge", "validMessage": "Cancel"},
            "No Sufficient Charge",
            "cancel",
        ),
        ({"statusMessage": "Interacting"}, "Interacting", None),
        ([0, {"statusMessage": "Active", "validMessage": "notconfirm"}], "Active", "notconfirm"),
        ([0, '{"statusMessage": "Cancel", "validMessage": "approve"}'], "Cancel", "approve"),
        ("\ufeff", None, None),
    ],
)
async def test_message_status_lenient(
    payload: Any, status: str | None, validation: str | None
) -> None:
    """Capitalised or missing validMessage, enveloped or string objects are read."""
    router = ippanel_router(responses={"checkmessage": payload})
    async with gateway(router) as gw:
        if status is None:
            with pytest.raises(smsgate.ProtocolError):
                await gw.message_status("562892393")
            return
        result = await gw.message_status("562892393")
    assert (result.status, result.validation) == (status, validation)
    assert not result.approved or validation == "approve"


@pytest.mark.asyncio
@pytest.mark.parametrize("payload", [{"validMessage": "approve"}, [0, "[1]"], [0, 5]])
async def test_message_status_unreadable(payload: Any) -> None:
    """An answer without statusMessage is ProtocolError."""
    router = ippanel_router(responses={"checkmessage": payload})
    async with gateway(router) as gw:
        with pytest.raises(smsgate.ProtocolError):
            await gw.message_status("562892393")


@pytest.mark.asyncio
async def test_message_status_unknown() -> None:
    """Code 456 for checkmessage is UnknownMessageError."""
    router = ippanel_router()
    async with gateway(router) as gw:
        with pytest.raises(smsgate.UnknownMessageError):
            await gw.message_status("123456789")


# -- phonebooks and inbox ---------------------------------------------------------------------


@pytest.mark.asyncio
async def test_phonebooks_list_and_send() -> None:
    """booklist is parsed (ids as string or number); booksend posts bookid as a JSON array."""
    books = [{"id": 17, "title": "Customers"}, {"ID": "18", "Title": "VIP", "extra": 1}]
    router = ippanel_router(responses={"booklist": [0, json.dumps(books)]})
    async with gateway(router) as gw:
        listed = await gw.phonebooks.list()
        receipt = await gw.phonebooks.send([17, "18"], "hello all")
    assert [(b.id, b.title) for b in listed] == [("17", "Customers"), ("18", "VIP")]
    assert listed[1].raw["extra"] == 1
    assert form_fields(router["booklist"].calls.last.request)["op"] == "booklist"
    assert form_fields(router["booksend"].calls.last.request) == {
        "uname": USERNAME,
        "pass": PASSWORD,
        "op": "booksend",
        "from": SENDER,
        "message": "hello all",
        "bookid": '["17","18"]',
    }
    assert receipt.message_id == str(FIRST_BULK_ID)
    assert receipt.recipients == () and dict(receipt.message_ids) == {}


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("ids", "text"), [([], "hi"), (["x"], "hi"), ([True], "hi"), ([1.5], "hi"), ([1], "")]
)
async def test_phonebooks_send_refused_before_io(ids: Any, text: str) -> None:
    """No or malformed phonebook ids, or an empty text: refused before a request."""
    router = ippanel_router()
    async with gateway(router) as gw:
        with pytest.raises(ValueError, match=r"."):
            await gw.phonebooks.send(ids, text)
    assert router["booksend"].call_count == 0


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "payload",
    [[0, '[{"title": "no id"}]'], [0, '["just a string"]'], [0, "{broken"], [0, "5"]],
)
async def test_phonebooks_unreadable(payload: Any) -> None:
    """A phonebook without an id, a non-object entry or broken JSON: ProtocolError."""
    router = ippanel_router(responses={"booklist": payload})
    async with gateway(router) as gw:
        with pytest.raises(smsgate.ProtocolError):
            await gw.phonebooks.list()


@pytest.mark.asyncio
async def test_phonebook_error_code() -> None:
    """booksend's 993 is a ProviderError with its code."""
    router = ippanel_router(responses={"booksend": [993, "phonebook must be an array"]})
    async with gateway(router) as gw:
        with pytest.raises(smsgate.ProviderError) as info:
            await gw.phonebooks.send([1], "hi")
    assert info.value.code == "993"


@pytest.mark.asyncio
async def test_inbox_list() -> None:
    """inboxlist entries become InboxMessage, under either spelling of the fields."""
    entries = [
        {"id": 9, "from": "09121234567", "to": "+983000505", "message": "سلام", "time": "t1"},
        '{"number": "+989351112222", "text": "hi", "date": "t2"}',
        {"body": "no sender"},
    ]
    router = ippanel_router(responses={"inboxlist": [0, json.dumps(entries)]})
    async with gateway(router) as gw:
        messages = await gw.inbox.list()
    assert form_fields(router["inboxlist"].calls.last.request)["op"] == "inboxlist"
    assert [(m.id, m.sender, m.line, m.text, m.received_at) for m in messages] == [
        ("9", "+989121234567", "+983000505", "سلام", "t1"),
        (None, "+989351112222", None, "hi", "t2"),
        (None, None, None, "no sender", None),
    ]


# -- account -------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_packages_list() -> None:
    """accesslist becomes Package values with Decimal price and discount."""
    packages = [
        {"code": 3, "title": "Gold", "price": "1500000", "discount": "5/5"},
        {"id": "4", "name": "Free"},
    ]
    router = ippanel_router(responses={"accesslist": [0, json.dumps(packages)]})
    async with gateway(router) as gw:
        listed = await gw.packages.list()
    assert form_fields(router["accesslist"].calls.last.request)["op"] == "accesslist"
    assert [(p.code, p.title, p.price, p.discount) for p in listed] == [
        ("3", "Gold", Decimal(1500000), Decimal("5.5")),
        ("4", "Free", None, None),
    ]


@pytest.mark.asyncio
async def test_accounts_create_fields() -> None:
    """newuser posts S2's underscore field names; the mobile is normalised to 09…."""
    router = ippanel_router()
    async with gateway(router) as gw:
        account = await gw.accounts.create(
            username="subuser1",
            password="Sub-Secret-99",
            name="Ali",
            company="Co",
            national_id="0012345678",
            certificate_id="123",
            access_id=2,
            tell="02188776655",
            mobile="+989121234567",
            postal_code="1415566778",
            email="a@example.com",
            address="Tehran",
        )
    assert form_fields(router["newuser"].calls.last.request) == {
        "uname": USERNAME,
        "pass": PASSWORD,
        "op": "newuser",
        "user_uname": "subuser1",
        "user_pass": "Sub-Secret-99",
        "name": "Ali",
        "company": "Co",
        "national_id": "0012345678",
        "certificate_id": "123",
        "access_id": "2",
        "tell": "02188776655",
        "mobile": "09121234567",
        "postalcode": "1415566778",
        "email": "a@example.com",
        "address": "Tehran",
    }
    assert account.username == "subuser1" and account.id == "5001"


@pytest.mark.asyncio
async def test_accounts_create_errors_hide_new_password() -> None:
    """A refusal is SubAccountRejectedError (a ValueError) and never shows the new password."""
    new_password = "Sub-Secret-99"
    router = ippanel_router(responses={"newuser": [1002, f"password {new_password} too simple"]})
    async with gateway(router) as gw:
        with pytest.raises(SubAccountRejectedError) as info:
            await gw.accounts.create(username="subuser1", password=new_password, mobile="")
    assert isinstance(info.value, ValueError)
    assert info.value.code == "1002"
    assert new_password not in str(info.value) and new_password not in repr(info.value)
    assert info.value.detail == "password *** too simple"
    router = ippanel_router(responses={"newuser": raw(f"<html>{new_password}</html>".encode())})
    async with gateway(router) as gw:
        with pytest.raises(smsgate.ProtocolError) as proto:
            await gw.accounts.create(username="subuser1", password=new_password)
    assert new_password not in str(proto.value)
    router = ippanel_router(responses={"newuser": [964, "no reseller access"]})
    async with gateway(router) as gw:
        with pytest.raises(smsgate.AccountRestrictedError):
            await gw.accounts.create(username="subuser1", password=new_password)


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"username": "", "password": "x"}, smsgate.ConfigurationError),
        ({"username": "u", "password": ""}, smsgate.ConfigurationError),
        ({"username": "u", "password": "x", "access_id": "2"}, smsgate.ConfigurationError),
        ({"username": "u", "password": "x", "mobile": "123"}, smsgate.InvalidRecipientError),
    ],
)
async def test_accounts_create_refused_before_io(
    options: dict[str, Any], error: type[Exception]
) -> None:
    """Missing credentials, a non-int access id or a bad mobile: refused, no request."""
    router = ippanel_router()
    async with gateway(router) as gw:
        with pytest.raises(error):
            await gw.accounts.create(**options)
    assert router["newuser"].call_count == 0


# -- targeting -----------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_postal_ops() -> None:
    """postalcodecount/area/send: type, gender and postalcode fields; typed answers."""
    router = ippanel_router()
    async with gateway(router) as gw:
        count = await gw.postal.count("۱۴۱۵۵-۶۶۷۷۸", operator="MTN", gender=Gender.FEMALE)
        areas = await gw.postal.areas()
        receipt = await gw.postal.send("1415566778", "promo", operator="tci")
    assert count == 120
    assert form_fields(router["postalcodecount"].calls.last.request) == {
        "uname": USERNAME,
        "pass": PASSWORD,
        "op": "postalcodecount",
        "type": "mtn",
        "gender": "2",
        "postalcode": "1415566778",
    }
    assert [(a.code, a.title) for a in areas] == [("14155", "Yusef Abad")]
    assert form_fields(router["postalcodesend"].calls.last.request) == {
        "uname": USERNAME,
        "pass": PASSWORD,
        "op": "postalcodesend",
        "type": "tci",
        "gender": "0",
        "postalcode": "1415566778",
        "message": "promo",
        "from": SENDER,
    }
    assert receipt.message_id == str(FIRST_BULK_ID)


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("postal_code", "options"),
    [
        ("14155x", {}),
        ("12345678901", {}),
        (None, {}),
        ("1415566778", {"operator": "rightel"}),
        ("1415566778", {"gender": 3}),
        ("1415566778", {"gender": True}),
    ],
)
async def test_postal_refused_before_io(postal_code: Any, options: dict[str, Any]) -> None:
    """Bad postal code, operator or gender: InvalidRecipientError without a request."""
    router = ippanel_router()
    async with gateway(router) as gw:
        with pytest.raises(smsgate.InvalidRecipientError):
            await gw.postal.count(postal_code, **options)
        with pytest.raises(smsgate.InvalidRecipientError):
            await gw.postal.send(postal_code, "hi", **options)
    assert router["postalcodecount"].call_count == 0
    assert router["postalcodesend"].call_count == 0


@pytest.mark.asyncio
@pytest.mark.parametrize("data", ["many", "-1", None, "1.5"])
async def test_counts_unreadable(data: Any) -> None:
    """A count that is not a non-negative integer is ProtocolError."""
    router = ippanel_router(responses={"postalcodecount": [0, data], "jobscount": [0, data]})
    async with gateway(router) as gw:
        with pytest.raises(smsgate.ProtocolError):
            await gw.postal.count("1415566778")
        with pytest.raises(smsgate.ProtocolError):
            await gw.jobs.count([11])


@pytest.mark.asyncio
async def test_job_ops() -> None:
    """jobslist, jobstrenlist (jobsid), jobscount (trendid array), jobssend (both)."""
    router = ippanel_router()
    async with gateway(router) as gw:
        jobs = await gw.jobs.list()
        trends = await gw.jobs.trends(jobs[0].id)
        count = await gw.jobs.count([t.id for t in trends])
        receipt = await gw.jobs.send(1, ["11", 12], "for doctors")
    assert [(j.id, j.title) for j in jobs] == [("1", "Medicine")]
    assert [(t.id, t.title) for t in trends] == [("11", "Dentistry")]
    assert count == 42
    assert form_fields(router["jobslist"].calls.last.request)["op"] == "jobslist"
    assert form_fields(router["jobstrenlist"].calls.last.request)["jobsid"] == "1"
    assert form_fields(router["jobscount"].calls.last.request)["trendid"] == '["11"]'
    assert form_fields(router["jobssend"].calls.last.request) == {
        "uname": USERNAME,
        "pass": PASSWORD,
        "op": "jobssend",
        "from": SENDER,
        "message": "for doctors",
        "trendid": '["11","12"]',
        "jobsid": "1",
    }
    assert receipt.message_id == str(FIRST_BULK_ID)


@pytest.mark.asyncio
async def test_job_ids_refused_before_io() -> None:
    """Malformed job or trend ids are refused without a request."""
    router = ippanel_router()
    async with gateway(router) as gw:
        with pytest.raises(smsgate.InvalidRecipientError):
            await gw.jobs.trends("abc")
        with pytest.raises(smsgate.InvalidRecipientError):
            await gw.jobs.count([])
        with pytest.raises(smsgate.InvalidRecipientError):
            await gw.jobs.send(1, [None], "hi")  # type: ignore[list-item]
    assert all(router[n].call_count == 0 for n in ("jobstrenlist", "jobscount", "jobssend"))


# -- white label ----------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_white_label_base_url() -> None:
    """A Kapanel-style host is used for every endpoint, paths appended to it."""
    router = ippanel_router(base_url="https://sms.kapanel.example")
    async with gateway(
        router, pattern_endpoint="patterns/pattern", base_url="https://sms.kapanel.example/"
    ) as gw:
        await gw.send("09121234567", "hi")
        await gw.send_pattern("09121234567", pattern_code="c", values={})
    assert router["send"].calls.last.request.url.host == "sms.kapanel.example"
    assert router["patterns"].calls.last.request.url.host == "sms.kapanel.example"


# -- transport errors and secrets -----------------------------------------------------------


@pytest.mark.asyncio
async def test_transport_errors_mapped() -> None:
    """Connect failure is NotSentError; a read timeout on a send is OutcomeUnknownError."""
    router = ippanel_router(responses={"send": httpx.ConnectError, "credit": httpx.ReadTimeout})
    async with gateway(router) as gw:
        with pytest.raises(smsgate.NotSentError):
            await gw.send("09121234567", "hi")
        with pytest.raises(smsgate.OutcomeUnknownError) as info:
            await gw.credit()
    assert info.value.retryable and not info.value.maybe_sent
    router = ippanel_router(responses={"send": httpx.ReadTimeout})
    async with gateway(router) as gw:
        with pytest.raises(smsgate.OutcomeUnknownError) as sent:
            await gw.send("09121234567", "hi")
    assert sent.value.maybe_sent and not sent.value.retryable


@pytest.mark.asyncio
async def test_http_5xx() -> None:
    """HTTP 503 is ProviderUnavailableError; a 404 page is ProtocolError."""
    router = ippanel_router(responses={"send": httpx.Response(503, text="busy")})
    async with gateway(router) as gw:
        with pytest.raises(smsgate.ProviderUnavailableError):
            await gw.send("09121234567", "hi")
    router = ippanel_router(responses={"credit": httpx.Response(404, text="not found")})
    async with gateway(router) as gw:
        with pytest.raises(smsgate.ProtocolError):
            await gw.credit()


@pytest.mark.asyncio
async def test_pattern_url_never_logged(caplog: pytest.LogCaptureFixture) -> None:
    """httpx's INFO line for the pattern endpoint shows neither the password nor the user name."""
    router = ippanel_router()
    with caplog.at_level(logging.DEBUG):
        async with gateway(router, pattern_endpoint="patterns/pattern") as gw:
            await gw.send_pattern("09121234567", pattern_code="c", values={"a": "b"})
    url = str(router["patterns"].calls.last.request.url)
    assert "password=s3cr3t" in url  # the wire really carries it, so the check below can fail
    httpx_lines = [r.getMessage() for r in caplog.records if r.name == "httpx"]
    assert any("/patterns/pattern" in line for line in httpx_lines)
    for line in httpx_lines:
        assert "password=***" in line and "username=***" in line
    no_secret(caplog.text, *httpx_lines)


@pytest.mark.asyncio
async def test_transport_error_text_never_shows_url_secret() -> None:
    """An httpx error quoting the URL loses the password, and the chained cause is dropped."""

    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError(f"cannot reach {request.url}", request=request)

    async with gateway(handler=handler, pattern_endpoint="patterns/pattern") as gw:
        with pytest.raises(smsgate.NotSentError) as info:
            await gw.send_pattern("09121234567", pattern_code="c", values={})
    no_secret(str(info.value), repr(info.value))
    assert info.value.__cause__ is None
    chain = info.getrepr(chain=True)
    no_secret(str(chain))


@pytest.mark.asyncio
async def test_protocol_error_excerpt_scrubbed() -> None:
    """A page that echoes the password (raw or encoded) shows *** in the excerpt instead."""
    body = f"<html>uname={USERNAME}&pass={PASSWORD} {quote(PASSWORD)}</html>".encode()
    router = ippanel_router(responses={"send": raw(body, "text/html")})
    async with gateway(router) as gw:
        with pytest.raises(smsgate.ProtocolError) as info:
            await gw.send("09121234567", "hi")
    assert "***" in info.value.excerpt
    no_secret(str(info.value), info.value.excerpt)


def test_log_filter_scrubs_any_credential_query() -> None:
    """The filter rewrites records naming credentials in a query and leaves others alone."""
    record = logging.LogRecord(
        "httpx",
        logging.INFO,
        __file__,
        1,
        "HTTP Request: %s %s",
        ("POST", "https://h/p?a=1&password=x%20y&User=bob"),
        None,
    )
    assert _LOG_FILTER.filter(record) is True
    assert record.getMessage() == "HTTP Request: POST https://h/p?a=1&password=***&User=***"
    plain = logging.LogRecord("httpx", logging.INFO, __file__, 1, "hello %s", ("world",), None)
    assert _LOG_FILTER.filter(plain) is True
    assert plain.args == ("world",)
    assert logging.getLogger("httpx").filters.count(_LOG_FILTER) == 1
    assert _LOG_FILTER in logging.getLogger("httpcore.http11").filters


# -- trio -----------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_send_and_delivery_under_any_backend() -> None:
    """send, delivery, credit and a pattern work the same under asyncio and trio."""
    router = ippanel_router()
    async with gateway(router) as gw:
        receipt = await gw.send(["09121111111", "09122222222"], "hi")
        reports = await gw.delivery(receipt)
        credit = await gw.credit()
        pattern = await gw.send_pattern("09121111111", pattern_code="c", values={})
    assert [r.recipient for r in reports] == list(receipt.recipients)
    assert credit == Decimal("10929800.0")
    assert int(pattern.message_id) == int(receipt.message_id) + 1


@pytest.mark.asyncio
@pytest.mark.parametrize("endpoint", ["patterns/pattern", "api/select"])
@pytest.mark.parametrize("body", ["970", "996", '"971"'])
async def test_pattern_bare_error_code_is_a_refusal(endpoint: str, body: str) -> None:
    """A bare small number that is a known result code is a PatternError, not bulk id "970"."""
    async with gateway(
        handler=lambda request: httpx.Response(200, text=body), pattern_endpoint=endpoint
    ) as gw:
        with pytest.raises(smsgate.PatternError) as info:
            await gw.send_pattern("09121234567", pattern_code="abc", values={"a": "1"})
    assert info.value.code == body.strip('"')


@pytest.mark.asyncio
async def test_pattern_default_keeps_credentials_out_of_the_url() -> None:
    """The default pattern endpoint sends the credentials in the body, never the URL."""
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, text="562892393")

    async with gateway(handler=handler) as gw:
        receipt = await gw.send_pattern("09121234567", pattern_code="abc", values={"a": "1"})
    assert receipt.message_id == "562892393"
    assert PASSWORD not in str(seen[0].url)
    assert seen[0].url.path == "/api/select"


def test_number_lists_are_the_json_encoders() -> None:
    """The joined list of numbers is the compact JSON the encoder writes, for any list."""
    from smsgate.backends.ippanel._parsing import _to_json_array

    for values in ([], [""], ["09121234567"], ["0912", "0935"], ["۰۹۱۲"], ['a"b'], ["12", ""]):
        assert _to_json_array(values) == json.dumps(
            values, separators=(",", ":"), ensure_ascii=False
        )


@pytest.mark.parametrize(
    "body",
    [b'[0,"123456789"]', b'[0,"007"]', b"[0,123456789]", b'[0, "123456789"]', b' [0,"12"] '],
)
def test_plain_send_answers_read_as_the_lenient_parser_reads_them(body: bytes) -> None:
    """The shortcut for ``[0,"<digits>"]`` gives the value the lenient JSON path gives."""
    from smsgate.backends._transport import HttpAnswer
    from smsgate.backends.ippanel._parsing import loads_lenient

    gateway = smsgate.IppanelGateway(username="u", password="p", sender="+983000505")
    answer = HttpAnswer(status_code=200, content=body)
    assert gateway._decode(answer, idempotent=False) == loads_lenient(answer.text())
