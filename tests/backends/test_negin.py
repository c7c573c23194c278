"""NeginGateway against a respx router: request fields, answers, codes, states, fan-out."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import anyio
import httpx
import pytest

import smsgate
from smsgate import DeliveryState
from smsgate.backends.negin import MAX_IDS_PER_STATES_CALL, NeginGateway, normalize_line
from smsgate.testing import negin_router
from smsgate.testing._routes_negin import FIRST_ID, form_fields

PASSWORD = "p@ss w/rd+ÿ"  # characters that percent-encode, to test scrubbing
LINE = "9830003300"
LINE2 = "9830007485"
NUMBER = "09121234567"
BASE = {"username": "user", "password": PASSWORD, "mobile": "989121234567", "message": "سلام"}


def ok(message_id: Any = 3403, line: Any = 9830003300, **data: Any) -> dict[str, Any]:
    """A success envelope (docs/protocols/negin.md §3.3)."""
    return {
        "data": {"message_id": message_id, "line": line, "mobile": "989121234567", **data},
        "status": -1,
        "msg": "success",
    }


def refused(status: Any, msg: str = "ERROR", **extra: Any) -> dict[str, Any]:
    """An error envelope."""
    return {"data": None, "status": status, "msg": msg, **extra}


def states_answer(ids: Any, states: Any) -> dict[str, Any]:
    """A wsStates success envelope."""
    return {"data": {"msgIds": ids, "states": states}, "status": -1, "msg": "success"}


@contextlib.asynccontextmanager
async def connected(router: Any, **options: Any) -> AsyncIterator[NeginGateway]:
    """A gateway on the router's transport; closes the borrowed client afterwards."""
    settings: dict[str, Any] = {"username": "user", "password": PASSWORD, "line": LINE}
    settings.update(options)
    transport = httpx.MockTransport(router.async_handler)
    async with (
        httpx.AsyncClient(transport=transport) as client,
        NeginGateway(http_client=client, **settings) as gw,
    ):
        yield gw


def sent_fields(router: Any) -> list[dict[str, str]]:
    """The form fields of every send request, in order."""
    return [form_fields(call.request) for call in router["send"].calls]


# -- the five scenarios ---------------------------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("options", "call", "expected"),
    [
        pytest.param({}, "send", {"line": LINE}, id="1-plain-line"),
        pytest.param(
            {"line": None}, "send_service", {"type": "2", "template": "0"}, id="2-service-line"
        ),
        pytest.param({"line2": LINE2}, "send", {"line": LINE, "line2": LINE2}, id="3-line2"),
        pytest.param(
            {"opt_out_fallback": "chelcheleh"},
            "send",
            {"line": LINE, "type": "1"},
            id="4-chelcheleh",
        ),
        pytest.param(
            {"opt_out_fallback": "service_line", "template": 3},
            "send",
            {"line": LINE, "type": "2", "template": "3"},
            id="5-service-line-backup",
        ),
    ],
)
async def test_scenario_fields(
    options: dict[str, Any], call: str, expected: dict[str, str]
) -> None:
    """Each scenario POSTs exactly the seed's form fields, UTF-8 form-encoded, no query."""
    router = negin_router()
    async with connected(router, **options) as gw:
        await getattr(gw, call)(NUMBER, "سلام")
    request = router["send"].calls.last.request
    assert request.method == "POST"
    assert request.url.path == "/api/wsSend.ashx"
    assert request.url.query == b""  # the password never travels in the URL
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    assert request.headers["user-agent"].startswith("smsgate/")
    assert "%D8%B3%D9%84%D8%A7%D9%85" in request.content.decode()  # "سلام" as UTF-8
    assert form_fields(request) == {**BASE, **expected}


@pytest.mark.asyncio
async def test_send_service_template_per_call() -> None:
    """send_service takes its own template, else the gateway's."""
    router = negin_router()
    async with connected(router, template=4) as gw:
        await gw.send_service(NUMBER, "1234")
        await gw.send_service(NUMBER, "1234", template=7)
    assert [f["template"] for f in sent_fields(router)] == ["4", "7"]
    assert all("line" not in f for f in sent_fields(router))


@pytest.mark.asyncio
async def test_line2_alone_means_line2_fallback_and_none_switches_it_off() -> None:
    """Giving line2 implies opt_out_fallback='line2'; an explicit None sends no line2."""
    router = negin_router()
    async with connected(router, line2=LINE2) as gw:
        assert gw.opt_out_fallback == "line2"
        await gw.send(NUMBER, "hi")
    async with connected(router, line2=LINE2, opt_out_fallback=None) as gw:
        assert gw.opt_out_fallback is None
        await gw.send(NUMBER, "hi")
    first, second = sent_fields(router)
    assert first["line2"] == LINE2
    assert "line2" not in second


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("override", "expected"),
    [
        (None, {"line": LINE}),
        ("line2", {"line": LINE, "line2": LINE2}),
        ("chelcheleh", {"line": LINE, "type": "1"}),
        ("service_line", {"line": LINE, "type": "2", "template": "0"}),
    ],
)
async def test_per_call_fallback_override(override: str | None, expected: dict[str, str]) -> None:
    """send(..., opt_out_fallback=) replaces the gateway's fallback for one call."""
    router = negin_router()
    async with connected(router, line2=LINE2, opt_out_fallback="chelcheleh") as gw:
        await gw.send(NUMBER, "سلام", opt_out_fallback=override)  # type: ignore[arg-type]
    assert sent_fields(router) == [{**BASE, **expected}]


@pytest.mark.asyncio
async def test_sender_overrides_line() -> None:
    """sender= sends from another line (digits cleaned), and a bad one fails before I/O."""
    router = negin_router()
    async with connected(router) as gw:
        receipt = await gw.send(NUMBER, "hi", sender="۹۸۳۰۰۰۷۴۸۵")
        with pytest.raises(smsgate.ConfigurationError):
            await gw.send(NUMBER, "hi", sender="+98-3000")
    assert [f["line"] for f in sent_fields(router)] == [LINE2]
    assert receipt.sender == LINE2  # the default router echoes the line it was sent


@pytest.mark.asyncio
async def test_extra_params_pass_through() -> None:
    """extra_params (e.g. life_time, docs/protocols/negin.md §3.1) are added to every send."""
    router = negin_router()
    async with connected(router, extra_params={"life_time": "60"}) as gw:
        await gw.send(NUMBER, "سلام")
    assert sent_fields(router) == [{**BASE, "line": LINE, "life_time": "60"}]


@pytest.mark.asyncio
async def test_legacy_path_prefix() -> None:
    """path_prefix='/services' reaches the legacy handler path."""
    router = negin_router()
    async with connected(router, path_prefix="/services") as gw:
        await gw.send(NUMBER, "hi")
    assert router["send"].calls.last.request.url.path == "/services/wsSend.ashx"


# -- configuration ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "options",
    [
        pytest.param({"opt_out_fallback": "line2"}, id="line2-without-line2"),
        pytest.param({"line": None, "opt_out_fallback": "chelcheleh"}, id="type1-without-line"),
        pytest.param({"line": None, "opt_out_fallback": "service_line"}, id="type2-backup-no-line"),
        pytest.param({"line": None, "line2": LINE2}, id="line2-fallback-without-line"),
        pytest.param({"opt_out_fallback": "sms"}, id="unknown-fallback"),
        pytest.param({"line": "98300a3300"}, id="non-digit-line"),
        pytest.param({"line": "+989830003300"}, id="plus-line"),
        pytest.param({"line2": "98-30"}, id="non-digit-line2"),
        pytest.param({"line2": LINE}, id="line2-equals-line"),
        pytest.param({"line": 9830003300}, id="int-line"),
        pytest.param({"template": -1}, id="negative-template"),
        pytest.param({"template": True}, id="bool-template"),
        pytest.param({"max_concurrency": 0}, id="zero-concurrency"),
        pytest.param({"username": " "}, id="blank-username"),
        pytest.param({"password": ""}, id="empty-password"),
        pytest.param({"extra_params": {"Password": "x"}}, id="extra-overrides-field"),
        pytest.param({"extra_params": {"life_time": ""}}, id="extra-empty-value"),
        pytest.param({"path_prefix": "api"}, id="relative-prefix"),
        pytest.param({"base_url": "http://sms.3300.ir"}, id="plain-http"),
    ],
)
def test_configuration_errors(options: dict[str, Any]) -> None:
    """Settings that cannot work raise ConfigurationError at construction."""
    settings: dict[str, Any] = {"username": "user", "password": PASSWORD, "line": LINE}
    settings.update(options)
    with pytest.raises(smsgate.ConfigurationError):
        NeginGateway(**settings)


def test_line_digits_are_cleaned() -> None:
    """Persian digits and spaces in a line become ASCII digits; nothing else changes."""
    gw = NeginGateway(username="u", password=PASSWORD, line="۹۸ ۳۰۰۰ ۳۳۰۰", line2="30007485")
    assert (gw.line, gw.line2) == ("9830003300", "30007485")


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("30003300", "9830003300"),
        ("9830003300", "9830003300"),
        ("+9830003300", "9830003300"),
        ("009830003300", "9830003300"),
        ("030003300", "9830003300"),
        ("۳۰۰۰۳۳۰۰", "9830003300"),
    ],
)
def test_normalize_line(given: str, expected: str) -> None:
    """normalize_line adds the 98 prefix every example line has (opt-in; protocols §3.1)."""
    assert normalize_line(given) == expected


def test_repr_hides_password() -> None:
    """The repr names the account and lines but never the password."""
    gw = NeginGateway(username="user", password=PASSWORD, line=LINE)
    text = repr(gw)
    assert "user" in text and LINE in text
    assert PASSWORD not in text and "p@ss" not in text


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("to", "text", "error"),
    [
        ([NUMBER, "12345"], "hi", smsgate.InvalidRecipientError),
        ("0912123456,09121234568", "hi", smsgate.InvalidRecipientError),
        ([], "hi", smsgate.InvalidRecipientError),
        (NUMBER, "", smsgate.InvalidMessageError),
        (NUMBER, "   ", smsgate.InvalidMessageError),
        # The one rule of both backends (smsgate._phone.normalize_recipients).
        ([NUMBER, "+989121234567"], "hi", smsgate.InvalidRecipientError),
        ({NUMBER}, "hi", smsgate.InvalidRecipientError),
        (None, "hi", smsgate.InvalidRecipientError),
        (9121234567, "hi", smsgate.InvalidRecipientError),
        ([NUMBER, None], "hi", smsgate.InvalidRecipientError),
        # smsgate._text.check_text: unencodable, oversized, not a str.
        (NUMBER, "bad \ud800 text", smsgate.InvalidMessageError),
        (NUMBER, "x" * 2001, smsgate.InvalidMessageError),
        (NUMBER, None, smsgate.InvalidMessageError),
    ],
)
async def test_bad_input_before_io(to: Any, text: str, error: type[Exception]) -> None:
    """Bad numbers (or a comma list) and empty texts are refused before any request."""
    router = negin_router()
    async with connected(router) as gw:
        with pytest.raises(error):
            await gw.send(to, text)
        with pytest.raises(error):
            await gw.send_service(to, text)
    assert router["send"].call_count == 0


@pytest.mark.asyncio
async def test_send_without_line_needs_sender() -> None:
    """A gateway with no line can use the service line; send() without a line fails early."""
    router = negin_router()
    async with connected(router, line=None) as gw:
        with pytest.raises(smsgate.ConfigurationError):
            await gw.send(NUMBER, "hi")
        receipt = await gw.send_service(NUMBER, "1234")
    assert router["send"].call_count == 1
    assert receipt.sender == "9820003300"


# -- answers ---------------------------------------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "answer",
    [
        pytest.param(ok(35702617027, 983000330000), id="numbers"),
        pytest.param(ok("35702617027", "983000330000"), id="strings"),
        pytest.param({**ok(35702617027, 983000330000), "status": "-1"}, id="status-string"),
        pytest.param(ok(35702617027, 983000330000, mobile=989121234567), id="mobile-number"),
    ],
)
async def test_success_leniency(answer: dict[str, Any]) -> None:
    """Ids beyond 32 bits become exact strings whatever JSON type; data.line is the sender."""
    async with connected(negin_router(send=answer)) as gw:
        receipt = await gw.send(NUMBER, "hi")
    assert receipt.message_id == "35702617027"
    assert dict(receipt.message_ids) == {"+989121234567": "35702617027"}
    assert receipt.recipients == ("+989121234567",)
    assert receipt.sender == "983000330000"
    assert receipt.provider == "negin"
    assert receipt.raw["data"]["message_id"] in (35702617027, "35702617027")


@pytest.mark.asyncio
async def test_line_used_by_fallback_is_the_sender() -> None:
    """After a server-side fallback the receipt names the line the provider says it used."""
    async with connected(negin_router(send=ok(line=int(LINE2))), line2=LINE2) as gw:
        receipt = await gw.send(NUMBER, "hi")
    assert receipt.sender == LINE2


@pytest.mark.asyncio
async def test_missing_line_is_not_guessed_with_a_fallback() -> None:
    """Without data.line the sender is the line only when no fallback could have changed it."""
    answer = {"data": {"message_id": 7}, "status": -1, "msg": "success"}
    async with connected(negin_router(send=answer)) as gw:
        plain = await gw.send(NUMBER, "hi")
    async with connected(negin_router(send=answer), opt_out_fallback="chelcheleh") as gw:
        backed = await gw.send(NUMBER, "hi")
    assert plain.sender == LINE
    assert backed.sender is None


@pytest.mark.asyncio
async def test_other_negative_status_is_success_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A negative status other than -1 counts as success (protocols §3.3) and is logged."""
    answer = {**ok(55), "status": -3}
    with caplog.at_level(logging.WARNING, logger="smsgate.negin"):
        async with connected(negin_router(send=answer)) as gw:
            receipt = await gw.send(NUMBER, "hi")
    assert receipt.message_id == "55"
    assert "-3" in caplog.text


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "answer",
    [
        pytest.param({"data": None, "status": -1, "msg": "success"}, id="data-null"),
        pytest.param({"data": {"line": 1}, "status": -1, "msg": "success"}, id="no-id"),
        pytest.param({"data": {"message_id": ""}, "status": -1, "msg": "success"}, id="empty-id"),
    ],
)
async def test_success_without_id_is_in_doubt(answer: dict[str, Any]) -> None:
    """A negative status with no message_id is a ProtocolError that may have sent."""
    async with connected(negin_router(send=answer)) as gw:
        with pytest.raises(smsgate.ProtocolError) as info:
            await gw.send(NUMBER, "hi")
    assert info.value.maybe_sent


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "response",
    [
        pytest.param(httpx.Response(200, html="<html>panel</html>"), id="html"),
        pytest.param(httpx.Response(200, json=[1, 2]), id="json-list"),
        pytest.param(httpx.Response(200, json={"data": {}, "msg": "x"}), id="no-status"),
        pytest.param(httpx.Response(200, json={"status": "ok"}), id="text-status"),
        pytest.param(httpx.Response(200, json={"status": True}), id="bool-status"),
        pytest.param(httpx.Response(200, text='{"status":-1,"data":{"mess'), id="truncated"),
    ],
)
async def test_unreadable_answers(response: httpx.Response) -> None:
    """Answers that are not the envelope raise ProtocolError without the password."""
    async with connected(negin_router(send=response)) as gw:
        with pytest.raises(smsgate.ProtocolError) as info:
            await gw.send(NUMBER, "hi")
    assert PASSWORD not in str(info.value)


# Written out by hand (not read from ERROR_CODES) so the table itself is under test.
MAPPED = [
    (1, smsgate.RecipientRejectedError),
    (2, smsgate.InvalidSenderError),
    (12, smsgate.AuthenticationError),
    (13, smsgate.MessageRejectedError),
    (14, smsgate.InsufficientCreditError),
    (15, smsgate.ProviderUnavailableError),
    (16, smsgate.AccountRestrictedError),
    (17, smsgate.AccountRestrictedError),
    (18, smsgate.AuthenticationError),
    (19, smsgate.AuthenticationError),
    (20, smsgate.InvalidSenderError),
    (22, smsgate.AccountRestrictedError),
    (23, smsgate.ProviderUnavailableError),
    (24, smsgate.UnknownMessageError),
    (27, smsgate.RecipientOptedOutError),
    (28, smsgate.RecipientRejectedError),
    (29, smsgate.AccountRestrictedError),
    (30, smsgate.MessageRejectedError),
    (103, smsgate.RecipientRejectedError),
    (106, smsgate.RecipientRejectedError),
    (107, smsgate.TooManyRecipientsError),
    (409, smsgate.RateLimitedError),
]


@pytest.mark.asyncio
@pytest.mark.parametrize(("code", "error"), MAPPED)
@pytest.mark.parametrize("data", ["null", "empty", "absent"])
async def test_error_codes(code: int, error: type[smsgate.ProviderError], data: str) -> None:
    """Every known status maps onto its error class, keeping code and msg; data is ignored."""
    answer = refused(code, "خطا")
    if data == "empty":
        answer["data"] = {}
    elif data == "absent":
        del answer["data"]
    async with connected(negin_router(send=answer)) as gw:
        with pytest.raises(error) as info:
            await gw.send(NUMBER, "hi")
    exc = info.value
    assert (exc.provider, exc.code, exc.detail) == ("negin", str(code), "خطا")
    # Server-side conditions leave a send in doubt (docs/protocols/negin.md §4).
    assert exc.maybe_sent is (code in (15, 23))


@pytest.mark.asyncio
async def test_error_flags() -> None:
    """409 asks for 5 s; 15/23 leave a send in doubt; 27 allows fallback."""
    answers = [refused(409), refused(15), refused(23), refused(27), refused("1")]
    async with connected(negin_router(send=answers)) as gw:
        errors = []
        for _ in answers:
            with pytest.raises(smsgate.ProviderError) as info:
                await gw.send(NUMBER, "hi")
            errors.append(info.value)
    rate, server, busy, opted, rejected = errors
    assert isinstance(rate, smsgate.RateLimitedError) and rate.retry_after == 5.0
    for exc in (server, busy):
        # An internal error or "busy" names no point in the processing: the SMS may be
        # out, so it is never retried or sent on another route (reconciled instead).
        assert isinstance(exc, smsgate.ProviderUnavailableError)
        assert exc.maybe_sent and not exc.retryable and not exc.fallback_ok
    assert opted.fallback_ok and not opted.retryable
    assert isinstance(rejected, smsgate.InvalidRecipientError)  # also a ValueError


@pytest.mark.asyncio
@pytest.mark.parametrize("code", [0, 3, 99, 1000])
async def test_unknown_codes_stay_generic(code: int) -> None:
    """A status without a known meaning is a plain ProviderError with status and msg kept."""
    async with connected(negin_router(send=refused(code, "SOMETHING"))) as gw:
        with pytest.raises(smsgate.ProviderError) as info:
            await gw.send(NUMBER, "hi")
    assert type(info.value) is smsgate.ProviderError
    assert info.value.code == str(code) and info.value.detail == "SOMETHING"
    # Undocumented, so answered to a send it may follow acceptance.
    assert info.value.maybe_sent and not info.value.retryable and not info.value.fallback_ok


@pytest.mark.asyncio
async def test_password_scrubbed_from_provider_text() -> None:
    """A provider message that echoes the password never shows it."""
    answer = refused(18, f"bad password {PASSWORD}")
    async with connected(negin_router(send=answer)) as gw:
        with pytest.raises(smsgate.AuthenticationError) as info:
            await gw.send(NUMBER, "hi")
    assert PASSWORD not in str(info.value) and PASSWORD not in repr(info.value)
    assert "***" in (info.value.detail or "")


# -- several numbers -------------------------------------------------------------------------

NUMBERS = ["09121111111", "09122222222", "09123333333"]
E164 = ("+989121111111", "+989122222222", "+989123333333")


def by_mobile(codes: dict[str, Any], delays: dict[str, float] | None = None) -> Any:
    """A send answer per number: an id derived from it, or the error status given for it."""

    async def answer(request: httpx.Request) -> httpx.Response:
        mobile = form_fields(request)["mobile"]
        await anyio.sleep((delays or {}).get(mobile, 0))
        code = codes.get(mobile)
        if isinstance(code, Exception):
            raise code
        body = refused(code) if code is not None else ok(int(mobile[-7:]), int(LINE))
        return httpx.Response(200, json=body)

    return answer


@pytest.mark.anyio
async def test_fan_out_one_request_per_number_in_recipient_order() -> None:
    """Several numbers: one request each; ids joined in recipient order, not finish order."""
    delays = {"989121111111": 0.03, "989122222222": 0.0, "989123333333": 0.01}
    router = negin_router(send=by_mobile({}, delays))
    async with connected(router) as gw:
        receipt = await gw.send(NUMBERS, "hi")
    assert router["send"].call_count == 3
    assert receipt.recipients == E164
    assert receipt.message_id == "1111111,2222222,3333333"
    assert dict(receipt.message_ids) == dict(
        zip(E164, ["1111111", "2222222", "3333333"], strict=True)
    )
    assert receipt.sender == LINE
    assert set(receipt.raw) == set(E164)


@pytest.mark.anyio
async def test_fan_out_is_bounded() -> None:
    """No more than max_concurrency requests are in flight, and that many are used."""
    in_flight = peak = 0

    async def answer(request: httpx.Request) -> httpx.Response:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await anyio.sleep(0.01)
        in_flight -= 1
        return httpx.Response(200, json=ok(len(form_fields(request)["mobile"])))

    numbers = [f"0912000{i:04d}" for i in range(12)]
    async with connected(negin_router(send=answer), max_concurrency=3) as gw:
        receipt = await gw.send(numbers, "hi")
    assert peak == 3
    assert len(receipt.recipients) == 12


@pytest.mark.anyio
async def test_partial_failure_carries_the_partial_receipt() -> None:
    """Some numbers fail: the error carries .receipt of those sent and .errors per number."""
    router = negin_router(send=by_mobile({"989122222222": 27}))
    async with connected(router) as gw:
        with pytest.raises(smsgate.RecipientOptedOutError) as info:
            await gw.send(NUMBERS, "hi")
    exc: Any = info.value
    assert exc.receipt.recipients == (E164[0], E164[2])
    assert exc.receipt.message_id == "1111111,3333333"
    assert set(exc.errors) == {E164[1]}
    assert router["send"].call_count == 3


@pytest.mark.anyio
async def test_doubt_wins_over_refusal() -> None:
    """An outcome in doubt is raised before a refusal, so nobody resends blindly."""
    codes = {"989121111111": 27, "989122222222": httpx.ReadTimeout("slow")}
    async with connected(negin_router(send=by_mobile(codes))) as gw:
        with pytest.raises(smsgate.OutcomeUnknownError) as info:
            await gw.send(NUMBERS, "hi")
    exc: Any = info.value
    assert exc.maybe_sent
    assert exc.receipt.recipients == (E164[2],)
    assert set(exc.errors) == {E164[0], E164[1]}


@pytest.mark.anyio
async def test_account_wide_error_stops_the_fan_out() -> None:
    """A refused login stops further requests; nothing was sent, so no receipt."""
    router = negin_router(send=refused(18))
    numbers = [f"0912000{i:04d}" for i in range(10)]
    async with connected(router, max_concurrency=2) as gw:
        with pytest.raises(smsgate.AuthenticationError) as info:
            await gw.send(numbers, "hi")
    exc: Any = info.value
    assert exc.receipt is None
    assert router["send"].call_count == 2  # the two first workers, then stop
    # Every number is accounted for: the two refused, the eight never tried as NotSentError.
    assert len(exc.errors) == 10
    assert sum(isinstance(e, smsgate.AuthenticationError) for e in exc.errors.values()) == 2
    assert sum(isinstance(e, smsgate.NotSentError) for e in exc.errors.values()) == 8


@pytest.mark.asyncio
async def test_single_number_error_has_errors_too() -> None:
    """A one-number send raises its own error, with the same attributes."""
    async with connected(negin_router(send=refused(14))) as gw:
        with pytest.raises(smsgate.InsufficientCreditError) as info:
            await gw.send(NUMBER, "hi")
    exc: Any = info.value
    assert exc.receipt is None and set(exc.errors) == {"+989121234567"}


# -- states ----------------------------------------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("raw", "state", "final"),
    [
        ("-1", DeliveryState.REJECTED, True),
        ("0", DeliveryState.QUEUED, False),
        ("1", DeliveryState.DELIVERED, True),
        ("2", DeliveryState.UNDELIVERED, True),
        ("8", DeliveryState.AT_OPERATOR, False),
        ("16", DeliveryState.REJECTED, True),
        # The guide prints 18 for "not received by the operator" (16 elsewhere): both.
        ("18", DeliveryState.REJECTED, True),
        ("4", DeliveryState.UNKNOWN, False),
        ("32", DeliveryState.UNKNOWN, False),
        ("x", DeliveryState.UNKNOWN, False),
    ],
)
async def test_state_table(raw: str, state: DeliveryState, final: bool) -> None:
    """Each state code maps per docs/protocols/negin.md §6; unknown codes keep their raw value."""
    async with connected(negin_router(states=states_answer("6062", raw))) as gw:
        [report] = await gw.delivery("6062")
    assert (report.state, report.is_final, report.provider_status) == (state, final, raw)
    assert (report.message_id, report.recipient, report.provider) == ("6062", None, "negin")


@pytest.mark.asyncio
async def test_states_request_fields() -> None:
    """wsStates gets a form POST with the ids comma-joined, no spaces, no quotes."""
    router = negin_router()
    async with connected(router) as gw:
        reports = await gw.states(["6062", 6063, " 6064 "])
    request = router["states"].calls.last.request
    assert request.method == "POST" and request.url.path == "/api/wsStates.ashx"
    assert request.url.query == b""
    assert form_fields(request) == {
        "username": "user",
        "password": PASSWORD,
        "message_ids": "6062,6063,6064",
    }
    assert list(reports) == ["6062", "6063", "6064"]
    assert all(r.state is DeliveryState.DELIVERED for r in reports.values())


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "given", ["6062,6063,6062", "6062، 6063", ["6062", "6063"], ("6062", 6063, "6062")]
)
async def test_states_input_forms(given: Any) -> None:
    """Ids as a comma string (any comma) or a list; repeats asked once."""
    router = negin_router()
    async with connected(router) as gw:
        reports = await gw.states(given)
    assert list(reports) == ["6062", "6063"]
    assert form_fields(router["states"].calls.last.request)["message_ids"] == "6062,6063"


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "answer",
    [
        pytest.param(states_answer("6062,6063", "1,8"), id="comma-strings"),
        pytest.param(states_answer([6062, 6063], [1, 8]), id="json-lists"),
        pytest.param(states_answer(["6062", "6063"], ["1", "8"]), id="string-lists"),
        pytest.param(states_answer(' 6062 ,"6063"', "1 , 8"), id="spaces-quotes"),
        pytest.param(states_answer("6063٫6062", "8٫1"), id="arabic-separator-reordered"),
    ],
)
async def test_states_answer_leniency(answer: dict[str, Any]) -> None:
    """msgIds/states as comma strings or JSON lists, paired by position, not request order."""
    async with connected(negin_router(states=answer)) as gw:
        reports = await gw.states(["6062", "6063"])
    assert reports["6062"].state is DeliveryState.DELIVERED
    assert reports["6063"].state is DeliveryState.AT_OPERATOR


@pytest.mark.asyncio
async def test_states_chunked_at_100() -> None:
    """More than 100 ids go out in requests of at most 100, all answered in order."""
    router = negin_router(state=8)
    ids = [str(1000 + i) for i in range(2 * MAX_IDS_PER_STATES_CALL + 50)]
    async with connected(router) as gw:
        reports = await gw.states(ids)
        exact = await gw.states(ids[:MAX_IDS_PER_STATES_CALL])
    sizes = [len(form_fields(c.request)["message_ids"].split(",")) for c in router["states"].calls]
    assert sorted(sizes[:3]) == [50, 100, 100]
    assert sizes[3:] == [100]  # exactly 100 is one request
    assert list(reports) == ids and len(exact) == 100
    assert all(r.state is DeliveryState.AT_OPERATOR for r in reports.values())


@pytest.mark.anyio
async def test_states_chunk_error_is_raised() -> None:
    """If one chunk is refused the whole call raises that error."""
    answers = [states_answer("1", "1"), refused(18)]

    async def answer(request: httpx.Request) -> httpx.Response:
        asked = form_fields(request)["message_ids"].split(",")
        if "150" in asked:
            return httpx.Response(200, json=answers[1])
        return httpx.Response(200, json=states_answer(",".join(asked), ",".join("1" * len(asked))))

    async with connected(negin_router(states=answer)) as gw:
        with pytest.raises(smsgate.AuthenticationError):
            await gw.states([str(i) for i in range(1, 201)])


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "answer",
    [
        pytest.param(refused(24), id="status-24"),
        pytest.param(states_answer("6062", "1"), id="missing-from-answer"),
        pytest.param(states_answer("", ""), id="empty-answer"),
    ],
)
async def test_unknown_ids(answer: dict[str, Any]) -> None:
    """Status 24, or an id missing from the answer, is UnknownMessageError."""
    async with connected(negin_router(states=answer)) as gw:
        with pytest.raises(smsgate.UnknownMessageError) as info:
            await gw.states(["6062", "6063"])
    assert info.value.provider == "negin"


@pytest.mark.asyncio
@pytest.mark.parametrize("ref", ["abc", "-5", "0", "6062,x", ""])
async def test_non_ids_refused_before_io(ref: str) -> None:
    """Something that cannot be a Negin id is unknown without asking."""
    router = negin_router()
    async with connected(router) as gw:
        with pytest.raises(smsgate.UnknownMessageError):
            await gw.delivery(ref)
    assert router["states"].call_count == 0


@pytest.mark.asyncio
async def test_states_of_nothing_makes_no_request() -> None:
    """states([]) answers {} without a request."""
    router = negin_router()
    async with connected(router) as gw:
        assert await gw.states([]) == {}
    assert router["states"].call_count == 0


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "answer",
    [
        pytest.param(states_answer("6062,6063", "1"), id="length-mismatch"),
        pytest.param({"data": None, "status": -1, "msg": "success"}, id="no-data"),
    ],
)
async def test_states_unpairable(answer: dict[str, Any]) -> None:
    """Ids and states that cannot be paired are a ProtocolError (a query: not maybe_sent)."""
    async with connected(negin_router(states=answer)) as gw:
        with pytest.raises(smsgate.ProtocolError) as info:
            await gw.states(["6062", "6063"])
    assert not info.value.maybe_sent


@pytest.mark.asyncio
async def test_delivery_by_receipt_and_by_id() -> None:
    """By receipt every report names its recipient; by the joined id, recipient is None."""
    router = negin_router(states=states_answer(f"{FIRST_ID},{FIRST_ID + 1}", "1,2"))
    async with connected(router) as gw:
        receipt = await gw.send(NUMBERS[:2], "hi")
        named = await gw.delivery(receipt)
        bare = await gw.delivery(receipt.message_id)
    assert [(r.recipient, r.message_id, r.state) for r in named] == [
        (E164[0], str(FIRST_ID), DeliveryState.DELIVERED),
        (E164[1], str(FIRST_ID + 1), DeliveryState.UNDELIVERED),
    ]
    assert [(r.recipient, r.message_id) for r in bare] == [
        (None, str(FIRST_ID)),
        (None, str(FIRST_ID + 1)),
    ]
    assert router["states"].call_count == 2


@pytest.mark.asyncio
async def test_delivery_of_a_hand_built_receipt() -> None:
    """A receipt without message_ids falls back to its joined id, by position."""
    receipt = smsgate.SendReceipt(
        message_id="6062,6063", message_ids={}, provider="negin", recipients=E164[:2]
    )
    async with connected(negin_router(states=states_answer("6062,6063", "1,1"))) as gw:
        reports = await gw.delivery(receipt)
    assert [r.recipient for r in reports] == list(E164[:2])


@pytest.mark.asyncio
async def test_delivery_of_another_providers_receipt() -> None:
    """A receipt from another provider is unknown to Negin."""
    receipt = smsgate.SendReceipt(
        message_id="123", message_ids={E164[0]: "123"}, provider="ippanel", recipients=E164[:1]
    )
    router = negin_router()
    async with connected(router) as gw:
        with pytest.raises(smsgate.UnknownMessageError):
            await gw.delivery(receipt)
    assert router["states"].call_count == 0


@pytest.mark.asyncio
async def test_states_errors_map_like_sends() -> None:
    """wsStates refusals use the same code table (18: AuthenticationError)."""
    async with connected(negin_router(states=refused(18))) as gw:
        with pytest.raises(smsgate.AuthenticationError):
            await gw.delivery("6062")


@pytest.mark.asyncio
async def test_states_timeout_is_retryable_not_maybe_sent() -> None:
    """A states query that times out is safe to repeat (it changes nothing)."""
    async with connected(negin_router(states=httpx.ReadTimeout("slow"))) as gw:
        with pytest.raises(smsgate.OutcomeUnknownError) as info:
            await gw.states(["6062"])
    assert info.value.retryable and not info.value.maybe_sent


# -- lifecycle and cancellation ---------------------------------------------------------------


@pytest.mark.anyio
async def test_closed_gateway_refuses_fan_outs() -> None:
    """After aclose, a many-number send and a chunked query raise RuntimeError plainly."""
    async with connected(negin_router()) as gw:
        pass
    with pytest.raises(RuntimeError):
        await gw.send(NUMBERS, "hi")
    with pytest.raises(RuntimeError):
        await gw.states([str(i) for i in range(1, 300)])


@pytest.mark.anyio
async def test_cancelled_fan_out_frees_its_slots() -> None:
    """Cancelling a fan-out mid-flight leaves every concurrency slot free."""
    started = anyio.Event()

    async def slow(request: httpx.Request) -> httpx.Response:
        started.set()
        await anyio.sleep(10)
        raise AssertionError("unreachable")

    async with connected(negin_router(send=slow), max_concurrency=2) as gw:
        with anyio.move_on_after(1) as scope:
            async with anyio.create_task_group() as tg:
                tg.start_soon(gw.send, NUMBERS, "hi")
                await started.wait()
                tg.cancel_scope.cancel()
        assert not scope.cancelled_caught
        assert gw._slots.borrowed_tokens == 0


def test_router_default_states_is_configurable() -> None:
    """negin_router(state=...) sets the default states answer (a helper sanity check)."""
    router = negin_router(state=16)
    with httpx.Client(transport=httpx.MockTransport(router.handler)) as client:
        body = client.post(
            "https://sms.3300.ir/api/wsStates.ashx", data={"message_ids": "1,2"}
        ).json()
    assert body["data"] == {"msgIds": "1,2", "states": "16,16"}


@pytest.mark.asyncio
async def test_unknown_status_on_send_is_maybe_sent() -> None:
    """A status with no known meaning answered to a send may follow acceptance: maybe_sent."""
    async with connected(negin_router(send=refused(0))) as gw:
        with pytest.raises(smsgate.ProviderError) as info:
            await gw.send(NUMBER, "hi")
    assert type(info.value) is smsgate.ProviderError
    assert info.value.maybe_sent and not info.value.fallback_ok


@pytest.mark.asyncio
async def test_cancelled_fan_out_logs_the_ids_sent(caplog: pytest.LogCaptureFixture) -> None:
    """A multi-number send cancelled midway leaves the accepted ids in a warning."""
    calls = 0

    async def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        if calls > 1:
            await anyio.sleep(10)
        return httpx.Response(
            200, json={"data": {"message_id": 7001, "line": 9830003300}, "status": -1, "msg": "ok"}
        )

    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    gw = smsgate.NeginGateway(username="u", password="p", line="9830003300", http_client=client)
    with anyio.move_on_after(0.5):
        await gw.send(["09121111111", "09122222222"], "hi")
    await client.aclose()
    assert "interrupted after 1 of 2" in caplog.text
    assert "7001" in caplog.text


# -- public tables and settings ----------------------------------------------------------------


def test_public_tables_use_public_shapes() -> None:
    """ERROR_CODES: code -> (error, meaning), as ippanel; STATES: code -> (state, meaning)."""
    from smsgate.backends.negin import ERROR_CODES, STATES

    entries: list[Any] = [*ERROR_CODES.values(), *STATES.values()]
    for entry in entries:
        assert type(entry) is tuple and len(entry) == 2 and isinstance(entry[1], str)
    assert all(issubclass(entry[0], smsgate.ProviderError) for entry in ERROR_CODES.values())
    assert all(type(entry[0]) is DeliveryState for entry in STATES.values())
    assert STATES[18][0] is STATES[16][0] is DeliveryState.REJECTED


def test_default_sender_is_the_line() -> None:
    """default_sender is the line a send without sender= uses (None without a line)."""
    assert NeginGateway(username="u", password=PASSWORD, line=LINE).default_sender == LINE
    assert NeginGateway(username="u", password=PASSWORD).default_sender is None


@pytest.mark.parametrize("given", ["98300", "+98-3000", "abc", ""])
def test_normalize_line_refuses(given: str) -> None:
    """normalize_line refuses what is not a line (too short, separators, letters)."""
    with pytest.raises(smsgate.ConfigurationError):
        normalize_line(given)


@pytest.mark.parametrize("given", ["30003300", "9830003300", "+9830003300", "030003300"])
def test_normalize_line_agrees_with_canonical_line(given: str) -> None:
    """One prefix rule: normalize_line is canonical_line without the plus."""
    from smsgate._phone import canonical_line

    assert "+" + normalize_line(given) == canonical_line(given)


# -- the answers the guide prints (seed 003_36a5f5477728f0f9.txt) --------------------------------

# Seed 003_36a5f5477728f0f9.txt, section "ارسال پیامک با استفاده از REST API", "Response
# sample": the bytes between the heading and the "line2:" paragraph, as printed (the OCR
# put a code-fence line inside the object and split its last line off; both are dropped,
# nothing else is changed, spaces and line breaks included).
GUIDE_SEND_SAMPLE = (
    b"{\n"
    b'  "data": {\n'
    b'  "message_id": 3403,\n'
    b'  "line": 9830003300,\n'
    b'  "mobile": "989395213300"\n'
    b"},\n"
    b'  "status": -1,\n'
    b"\n"
    b'"msg": "success"\n'
    b"\n"
    b"}"
)


@pytest.mark.asyncio
async def test_guide_send_sample() -> None:
    """The guide's own send answer is a receipt: id 3403 from line 9830003300."""
    router = negin_router(send=httpx.Response(200, content=GUIDE_SEND_SAMPLE))
    async with connected(router) as gw:
        receipt = await gw.send("09395213300", "سلام")
    assert receipt.message_id == "3403"
    assert dict(receipt.message_ids) == {"+989395213300": "3403"}
    assert receipt.sender == "9830003300"
    assert receipt.raw == {
        "data": {"message_id": 3403, "line": 9830003300, "mobile": "989395213300"},
        "status": -1,
        "msg": "success",
    }


# Seed 003_36a5f5477728f0f9.txt, section "دریافت وضعیت پیامک با استفاده از REST API": the
# request sample is `message_ids: "6062,6063,6064"`; the "Response sample" heading is
# followed by no sample (lost), only its description: data has msgIds and states,
# comma-joined, position by position, when status is -1. The state table prints, in
# Persian digits, ۱ - (-1 written right to left), نامشخص (0, its digit lost), ۱, ۲, ٨, and 18.
GUIDE_STATE_TABLE = [
    ("-1", DeliveryState.REJECTED),
    ("0", DeliveryState.QUEUED),
    ("1", DeliveryState.DELIVERED),
    ("2", DeliveryState.UNDELIVERED),
    ("8", DeliveryState.AT_OPERATOR),
    ("18", DeliveryState.REJECTED),
]


@pytest.mark.asyncio
async def test_guide_states_description() -> None:
    """The shape the guide describes, for its own ids, with every code of its table."""
    ids = ["6062", "6063", "6064", "6065", "6066", "6067"]
    body = (
        '{"data":{"msgIds":"'
        + ",".join(ids)
        + '","states":"'
        + ",".join(code for code, _ in GUIDE_STATE_TABLE)
        + '"},"status":-1,"msg":"success"}'
    ).encode()
    router = negin_router(states=httpx.Response(200, content=body))
    async with connected(router) as gw:
        reports = await gw.states("6062,6063,6064,6065,6066,6067")
    assert [(r.provider_status, r.state) for r in reports.values()] == GUIDE_STATE_TABLE
    assert reports["6067"].is_final  # 18: final, like 16
    asked = form_fields(router["states"].calls.last.request)["message_ids"]
    assert asked == "6062,6063,6064,6065,6066,6067"  # as the guide's request sample


@pytest.mark.asyncio
async def test_guide_states_in_persian_digits() -> None:
    """States and ids written in Persian digits, as the guide's table prints them, read alike."""
    body = '{"data":{"msgIds":"۶۰۶۲,۶۰۶۳,۶۰۶۴","states":"۱,٨,18"},"status":-1,"msg":"success"}'
    router = negin_router(states=httpx.Response(200, content=body.encode()))
    async with connected(router) as gw:
        reports = await gw.states(["6062", "6063", "6064"])
    assert [(r.provider_status, r.state) for r in reports.values()] == [
        ("1", DeliveryState.DELIVERED),
        ("8", DeliveryState.AT_OPERATOR),
        ("18", DeliveryState.REJECTED),
    ]


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("body", "error", "maybe_sent"),
    [
        # A documented-looking refusal of the input or the account: certainly not sent.
        pytest.param('{"data":null,"status":18,"msg":"x"}', smsgate.AuthenticationError, False),
        pytest.param('{"data":null,"status":14,"msg":"x"}', smsgate.InsufficientCreditError, False),
        pytest.param('{"data":null,"status":27,"msg":"x"}', smsgate.RecipientOptedOutError, False),
        pytest.param('{"data":null,"status":"۱","msg":"x"}', smsgate.RecipientRejectedError, False),
        # Server-side conditions and statuses no source names: may have been sent.
        pytest.param('{"data":null,"status":0,"msg":"x"}', smsgate.ProviderError, True),
        pytest.param('{"data":null,"status":15,"msg":"x"}', smsgate.ProviderUnavailableError, True),
        pytest.param('{"data":null,"status":23,"msg":"x"}', smsgate.ProviderUnavailableError, True),
        pytest.param('{"data":null,"status":5,"msg":"x"}', smsgate.ProviderError, True),
        pytest.param('{"data":null,"status":500,"msg":"x"}', smsgate.ProviderError, True),
    ],
)
async def test_each_class_of_answer(
    body: str, error: type[smsgate.ProviderError], maybe_sent: bool
) -> None:
    """Definite refusals are not sent; every other non-success status is in doubt."""
    async with connected(negin_router(send=httpx.Response(200, content=body.encode()))) as gw:
        with pytest.raises(error) as info:
            await gw.send(NUMBER, "hi")
    assert info.value.maybe_sent is maybe_sent
    if maybe_sent:
        assert not info.value.retryable and not info.value.fallback_ok


@pytest.mark.asyncio
@pytest.mark.parametrize("status", [0, 15, 23, 5])
async def test_doubtful_codes_on_a_query_are_not_maybe_sent(status: int) -> None:
    """A states query changes nothing: the same statuses there are never in doubt."""
    async with connected(negin_router(states=refused(status))) as gw:
        with pytest.raises(smsgate.ProviderError) as info:
            await gw.states(["6062"])
    assert not info.value.maybe_sent


# -- in doubt, end to end: the dispatcher neither retries nor reroutes it ------------------------


@pytest.mark.asyncio
@pytest.mark.parametrize(("status", "expected"), [(15, "unknown"), (23, "unknown"), (5, "unknown")])
async def test_doubtful_status_is_never_retried_or_rerouted(status: int, expected: str) -> None:
    """Through FallbackPolicy and BulkDispatcher: a status in doubt stays 'unknown' on its
    route (no retry, no second route) even where ProviderUnavailableError may fall back;
    an opted-out number (27, a definite refusal) moves to the next route."""
    doubtful, opted, plain = "989121111111", "989122222222", "989123333333"
    first = negin_router(send=by_mobile({doubtful: status, opted: 27}))
    second = negin_router()
    async with connected(first) as gw1, connected(second) as gw2:
        policy = smsgate.FallbackPolicy(
            [smsgate.Route(gw1, name="first"), smsgate.Route(gw2, name="second")],
            on=(smsgate.ProviderUnavailableError, smsgate.RecipientOptedOutError),
        )
        report = await smsgate.BulkDispatcher(policy).run(
            [smsgate.Message(to=n, text="hi") for n in NUMBERS]
        )
    outcomes = {o.recipient: (o.status, o.route) for o in report.failures}
    assert outcomes == {"+" + doubtful: (expected, "first")}
    assert report.sent == 2
    sent_first = [form_fields(c.request)["mobile"] for c in first["send"].calls]
    sent_second = [form_fields(c.request)["mobile"] for c in second["send"].calls]
    assert sorted(sent_first) == sorted([doubtful, opted, plain])  # each asked once
    assert sent_second == [opted]  # only the definite refusal moved on
