"""parse_kapanel_delivery: every accepted shape, every rejection, and arbitrary input."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smsgate import (
    ConfigurationError,
    DeliveryReport,
    DeliveryState,
    MalformedReportError,
    WebhookError,
)
from smsgate.webhooks import (
    KapanelDeliveryParser,
    ReportTooLargeError,
    UnreadableReportError,
    parse_kapanel_delivery,
)

JSON = {"Content-Type": "application/json"}

# The payload protocols/ippanel.md §8 proposes.
PROPOSED = {
    "message_id": 562892393,
    "from": "+983000505",
    "to": "+989121234567",
    "status": "delivered",
    "date": "2024-05-01T08:30:00Z",
}
WHEN = datetime(2024, 5, 1, 8, 30, tzinfo=UTC)


def _body(payload: Any) -> bytes:
    return json.dumps(payload).encode()


def _one(payload: Any, **kwargs: Any) -> DeliveryReport:
    reports = parse_kapanel_delivery(_body(payload), JSON, **kwargs)
    assert len(reports) == 1
    return reports[0]


# -- accepted shapes -----------------------------------------------------------------------


def test_proposed_payload() -> None:
    """The §8 payload becomes one final report with an E.164 number and an aware UTC date."""
    assert parse_kapanel_delivery(_body(PROPOSED), JSON) == [
        DeliveryReport(
            message_id="562892393",
            recipient="+989121234567",
            state=DeliveryState.DELIVERED,
            provider_status="delivered",
            provider="ippanel",
            at=WHEN,
        )
    ]


def test_headers_are_optional() -> None:
    """Headers may be omitted or empty; the body is then read as UTF-8."""
    assert parse_kapanel_delivery(_body(PROPOSED))[0].message_id == "562892393"
    assert parse_kapanel_delivery(_body(PROPOSED), {})[0].message_id == "562892393"


@pytest.mark.parametrize(
    "wrap",
    [
        lambda items: items,
        lambda items: {"reports": items},
        lambda items: {"Reports": items},
        lambda items: {"data": items},
        lambda items: {"items": items, "count": 2},
        lambda items: {"deliveries": items},
    ],
    ids=["array", "reports", "Reports", "data", "items+extra", "deliveries"],
)
def test_batches(wrap: Any) -> None:
    """An array, or an array under an envelope key, gives one report per object, in order."""
    second = {**PROPOSED, "to": "09351234567", "status": "failed"}
    reports = parse_kapanel_delivery(_body(wrap([PROPOSED, second])), JSON)
    assert [(r.recipient, r.state) for r in reports] == [
        ("+989121234567", DeliveryState.DELIVERED),
        ("+989351234567", DeliveryState.UNDELIVERED),
    ]


def test_envelope_holding_one_object() -> None:
    """``{"data": {...}}`` is one report."""
    assert _one({"data": PROPOSED}).state is DeliveryState.DELIVERED


def test_empty_array() -> None:
    """An empty batch is valid and holds no reports."""
    assert parse_kapanel_delivery(b"[]", JSON) == []
    assert parse_kapanel_delivery(b'{"reports": []}', JSON) == []


@pytest.mark.parametrize(
    "key",
    [
        "message_id",
        "messageId",
        "MessageID",
        "message-id",
        "MESSAGE_ID",
        "msgid",
        "bulk_id",
        "bulkId",
        "sms_id",
        "uinqid",
        "uniqid",
        "id",
        "Id",
    ],
)
def test_message_id_aliases(key: str) -> None:
    """Every spelling of the message id is understood."""
    assert _one({key: "77", "to": "09121234567", "status": "send"}).message_id == "77"


@pytest.mark.parametrize(
    "key",
    [
        "to",
        "To",
        "recipient",
        "receptor",
        "mobile",
        "Mobile",
        "msisdn",
        "number",
        "phone",
        "phone_number",
        "mobileNumber",
        "toNum",
        "destination",
        "receiver",
    ],
)
def test_recipient_aliases(key: str) -> None:
    """Every spelling of the recipient is understood, and the number normalised."""
    assert _one({"id": 1, key: "0912 123 4567", "status": "send"}).recipient == "+989121234567"


@pytest.mark.parametrize(
    "key", ["status", "Status", "STATE", "state", "delivery_status", "deliveryState", "dlr"]
)
def test_status_aliases(key: str) -> None:
    """Every spelling of the status is understood."""
    assert _one({"id": 1, "to": "09121234567", key: "pending"}).state is DeliveryState.AT_OPERATOR


@pytest.mark.parametrize(
    "key",
    [
        "date",
        "Date",
        "time",
        "delivered_at",
        "deliveredAt",
        "delivery_date",
        "datetime",
        "timestamp",
        "updated_at",
        "at",
    ],
)
def test_date_aliases(key: str) -> None:
    """Every spelling of the date is understood."""
    report = _one(
        {"id": 1, "to": "09121234567", "status": "delivered", key: "2024-05-01T08:30:00Z"}
    )
    assert report.at == WHEN


def test_specific_name_beats_generic_id() -> None:
    """With both ``message_id`` and ``id``, the id is the push's own: ``message_id`` wins."""
    assert _one({**PROPOSED, "id": "event-9"}).message_id == "562892393"


def test_unknown_keys_are_ignored() -> None:
    """Extra keys (sender, text, anything) do not disturb the report."""
    report = _one({**PROPOSED, "from": "+983000505", "text": "سلام", "x": [1, {"y": None}]})
    assert report.recipient == "+989121234567"


def test_field_map() -> None:
    """User key names come first and are matched leniently, a tuple in preference order."""
    payload = {"smsCode": "9", "target": "09121234567", "dlrStatus": "DELIVERED", "when": None}
    report = _one(
        payload,
        field_map={"message_id": "sms_code", "recipient": ("dest", "target"), "date": "when"},
    )
    assert (report.message_id, report.recipient, report.state) == (
        "9",
        "+989121234567",
        DeliveryState.DELIVERED,
    )


def test_field_map_claims_an_alias() -> None:
    """A name given to one field is no longer an alias of another."""
    payload = {"id": "09121234567", "ref": "55", "status": "delivered"}
    report = _one(payload, field_map={"recipient": "id", "message_id": "ref"})
    assert (report.message_id, report.recipient) == ("55", "+989121234567")


def test_parser_object_equals_function() -> None:
    """A configured KapanelDeliveryParser gives what the function gives."""
    parser = KapanelDeliveryParser(field_map={"message_id": "ref"})
    body = _body({"ref": 5, "to": "09121234567", "status": "failed"})
    assert parser(body, JSON) == parse_kapanel_delivery(body, JSON, field_map={"message_id": "ref"})


@pytest.mark.parametrize(
    ("raw", "state", "final"),
    [
        ("notsync", DeliveryState.QUEUED, False),
        ("send", DeliveryState.SENT, False),
        ("pending", DeliveryState.AT_OPERATOR, False),
        ("delivered", DeliveryState.DELIVERED, True),
        ("failed", DeliveryState.UNDELIVERED, True),
        ("discarded", DeliveryState.BLOCKED, True),
        ("Delivered", DeliveryState.DELIVERED, True),
        (" NOTSYNC ", DeliveryState.QUEUED, False),
        ("sent", DeliveryState.SENT, False),
        ("at_operator", DeliveryState.AT_OPERATOR, False),
        ("undelivered", DeliveryState.UNDELIVERED, True),
        ("rejected", DeliveryState.REJECTED, True),
        ("blocked", DeliveryState.BLOCKED, True),
        ("expired", DeliveryState.UNKNOWN, False),
        (4, DeliveryState.UNKNOWN, False),
    ],
)
def test_status_mapping(raw: Any, state: DeliveryState, final: bool) -> None:
    """ippanel's values map as docs/webhooks.md shows (any case); unknown ones keep raw value."""
    report = _one({"id": 1, "to": "09121234567", "status": raw})
    assert (report.state, report.is_final) == (state, final)
    assert report.provider_status == str(raw).strip()


def test_status_map_extends_and_overrides() -> None:
    """status_map adds values (numeric ones too) and overrides built-in ones."""
    status_map = {"2": DeliveryState.DELIVERED, "Pending": DeliveryState.QUEUED}
    assert _one({"id": 1, "status": 2}, status_map=status_map).state is DeliveryState.DELIVERED
    assert _one({"id": 1, "status": "pending"}, status_map=status_map).state is DeliveryState.QUEUED


@pytest.mark.parametrize(
    "number",
    [
        "+989121234567",
        "989121234567",
        "09121234567",
        "9121234567",
        "00989121234567",
        "۰۹۱۲۱۲۳۴۵۶۷",
        989121234567,
    ],
)
def test_recipient_formats(number: Any) -> None:
    """Every form of an Iranian mobile number (Persian digits and a JSON integer too) -> E.164."""
    assert _one({"id": 1, "to": number, "status": "send"}).recipient == "+989121234567"


@pytest.mark.parametrize("value", [None, ""])
def test_recipient_absent(value: Any) -> None:
    """A report without a number (missing, null or empty) has recipient None."""
    assert _one({"id": 1, "status": "send"}).recipient is None
    assert _one({"id": 1, "to": value, "status": "send"}).recipient is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-05-01T08:30:00Z", WHEN),
        ("2024-05-01t08:30:00z", WHEN),
        ("2024-05-01 08:30:00Z", WHEN),
        ("2024-05-01T12:00:00+03:30", WHEN),
        ("2024-05-01T12:00:00+0330", WHEN),
        ("2024-05-01T03:30:00-05:00", WHEN),
        ("2024-05-01T08:30:00", WHEN),  # no offset: the provider documents UTC
        ("2024-05-01T08:30:00.25Z", WHEN + timedelta(microseconds=250_000)),
        ("2024-05-01T08:30:00,123456789Z", WHEN + timedelta(microseconds=123_456)),
        ("2016-12-31T23:59:60Z", datetime(2016, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC)),
        ("  2024-05-01T08:30:00Z ", WHEN),
    ],
)
def test_dates(text: str, expected: datetime) -> None:
    """RFC 3339 dates (offsets, fractions, a leap second) become aware UTC datetimes."""
    at = _one({"id": 1, "status": "delivered", "date": text}).at
    assert at == expected
    assert at.tzinfo is UTC


@pytest.mark.parametrize("payload", [{"date": None}, {"date": ""}, {}])
def test_date_absent(payload: dict[str, Any]) -> None:
    """A missing, null or empty date is None."""
    assert _one({"id": 1, "status": "delivered", **payload}).at is None


@pytest.mark.parametrize(
    ("body", "headers"),
    [
        (b"\xef\xbb\xbf" + _body(PROPOSED), JSON),
        (
            json.dumps(PROPOSED).encode("utf-16"),
            {"content-type": "application/json; charset=UTF-16"},
        ),
        (
            json.dumps(PROPOSED).encode("utf-32-le"),
            {"CONTENT-TYPE": 'text/json;charset="utf-32-le"'},
        ),
        (_body(PROPOSED), {"Content-Type": "text/plain"}),
        (bytearray(_body(PROPOSED)), JSON),
        (memoryview(_body(PROPOSED)), JSON),
    ],
    ids=["bom", "utf-16", "utf-32-le", "text-plain", "bytearray", "memoryview"],
)
def test_encodings_and_buffers(body: Any, headers: dict[str, str]) -> None:
    """A BOM, a UTF-16/32 charset, a non-JSON content type and bytes-like bodies are read."""
    assert parse_kapanel_delivery(body, headers)[0].recipient == "+989121234567"


def test_int_message_id_becomes_str() -> None:
    """Integer ids become their decimal string, string ids are stripped."""
    assert _one({"id": 0, "status": "send"}).message_id == "0"
    assert _one({"id": " abc-123 ", "status": "send"}).message_id == "abc-123"


# -- rejections ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "headers", "fragment"),
    [
        (b"", JSON, "empty"),
        (b"  \n", JSON, "empty"),
        (b"{", JSON, "not valid JSON"),
        (
            b"status=delivered",
            {"Content-Type": "application/x-www-form-urlencoded"},
            "Content-Type",
        ),
        (b'{"id": "\xff"}', JSON, "not valid utf-8"),
        (b'{"id": 1, "status": NaN}', JSON, "not valid JSON"),
        (b'{"id": 1, "status": Infinity}', JSON, "not valid JSON"),
        (b"[" * 100_000 + b"]" * 100_000, JSON, "nested too deeply"),
        (b'{"id": ' + b"9" * 5000 + b"}", JSON, "not valid JSON"),
        (_body(PROPOSED), {"Content-Type": "application/json; charset=rot13"}, "charset"),
        (_body(PROPOSED), {"Content-Type": "application/json; charset=no-such"}, "charset"),
        (_body(PROPOSED), {"Content-Type": "application/json; charset=latin-1"}, "charset"),
    ],
    ids=[
        "empty",
        "blank",
        "syntax",
        "form",
        "bad-utf8",
        "nan",
        "infinity",
        "deep",
        "huge-int",
        "rot13",
        "unknown-charset",
        "latin-1",
    ],
)
def test_unreadable(body: bytes, headers: dict[str, str], fragment: str) -> None:
    """A body that is not JSON is an UnreadableReportError (a MalformedReportError)."""
    with pytest.raises(UnreadableReportError, match=fragment) as info:
        parse_kapanel_delivery(body, headers)
    assert isinstance(info.value, MalformedReportError)
    assert isinstance(info.value, WebhookError)


BASE: dict[str, Any] = {"id": 1, "to": "09121234567", "status": "delivered"}


@pytest.mark.parametrize(
    ("payload", "fragment"),
    [
        (1, "not int"),
        ("delivered", "not str"),
        (None, "not NoneType"),
        (True, "not bool"),
        ([BASE, 5], "report 1: expected a JSON object"),
        ({"reports": "none"}, "must hold a report object"),
        ({"to": "09121234567", "status": "delivered"}, "no message id"),
        ({**BASE, "id": None}, "no message id"),
        ({**BASE, "id": ""}, "no message id"),
        ({**BASE, "id": True}, "string or an integer"),
        ({**BASE, "id": 1.5}, "string or an integer"),
        ({**BASE, "id": [1]}, "string or an integer"),
        ({**BASE, "id": -1}, "negative"),
        ({**BASE, "id": "a b"}, "not an id"),
        ({**BASE, "id": "a\nb"}, "not an id"),
        ({**BASE, "id": "   "}, "not an id"),
        ({**BASE, "id": "x" * 129}, "not an id"),
        ({"id": 1, "to": "09121234567"}, "no status"),
        ({**BASE, "status": None}, "no status"),
        ({**BASE, "status": True}, "must be a string"),
        ({**BASE, "status": 1.0}, "must be a string"),
        ({**BASE, "status": {"code": 1}}, "must be a string"),
        ({**BASE, "status": " "}, "not a status"),
        ({**BASE, "status": "d" * 65}, "not a status"),
        ({**BASE, "to": "12345"}, "not an Iranian mobile number"),
        ({**BASE, "to": "+14155550100"}, "not an Iranian mobile number"),
        ({**BASE, "to": True}, "recipient must be a string"),
        ({**BASE, "to": 9.1e9}, "recipient must be a string"),
        ({**BASE, "to": ["09121234567"]}, "recipient must be a string"),
        ({**BASE, "date": 1714552200}, "RFC 3339 string"),
        ({**BASE, "date": "2024-05-01"}, "not RFC 3339"),
        ({**BASE, "date": "yesterday"}, "not RFC 3339"),
        ({**BASE, "date": "20240501T083000Z"}, "not RFC 3339"),
        ({**BASE, "date": "2024-05-01T08:30Z"}, "not RFC 3339"),
        ({**BASE, "date": "2024-05-01T08:30:00." + "1" * 50 + "Z"}, "not RFC 3339"),
        ({**BASE, "date": "۲۰۲۴-05-01T08:30:00Z"}, "not RFC 3339"),
        ({**BASE, "date": "2024-05-01T08:30:00+24:00"}, "bad UTC offset"),
        ({**BASE, "date": "2024-05-01T08:30:00+03:60"}, "bad UTC offset"),
        ({**BASE, "date": "2024-02-30T08:30:00Z"}, "does not exist"),
        ({**BASE, "date": "2024-05-01T25:30:00Z"}, "does not exist"),
        ({**BASE, "date": "0001-01-01T00:00:00+01:00"}, "does not exist"),
        ({**BASE, "Status": "failed"}, "disagree about the status"),
        ({**BASE, "message-id": 1, "message_id": "1"}, "disagree about the message_id"),
    ],
)
def test_malformed(payload: Any, fragment: str) -> None:
    """JSON that is not a delivery report is a MalformedReportError naming the problem."""
    with pytest.raises(MalformedReportError, match=fragment) as info:
        parse_kapanel_delivery(_body(payload), JSON)
    assert not isinstance(info.value, UnreadableReportError | ReportTooLargeError)


def test_same_key_twice() -> None:
    """A key repeated in one object is ambiguous and refused."""
    body = b'{"id": 1, "status": "delivered", "status": "failed"}'
    with pytest.raises(MalformedReportError, match="repeated"):
        parse_kapanel_delivery(body, JSON)


def test_agreeing_spellings_are_fine() -> None:
    """Two spellings of one key with the same value are not a conflict."""
    assert _one({**BASE, "Status": "delivered"}).state is DeliveryState.DELIVERED


def test_bad_recipient_error_is_chained() -> None:
    """The number's own error is kept as the cause."""
    with pytest.raises(MalformedReportError) as info:
        _one({**BASE, "to": "12345"})
    assert isinstance(info.value.__cause__, ValueError)


def test_body_must_be_bytes() -> None:
    """A str body is a programming error (TypeError), not a bad push."""
    with pytest.raises(TypeError, match="bytes"):
        parse_kapanel_delivery(json.dumps(PROPOSED), JSON)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"field_map": {"sender": "from"}}, "unknown fields"),
        ({"field_map": {"message_id": ""}}, "non-empty"),
        ({"field_map": {"message_id": ()}}, "non-empty"),
        ({"field_map": {"message_id": 5}}, "key name"),
        ({"field_map": {"message_id": ("a", 5)}}, "non-empty"),
        ({"field_map": ["message_id"]}, "mapping"),
        ({"status_map": {"x": "delivered"}}, "DeliveryState"),
        ({"status_map": {"": DeliveryState.SENT}}, "non-empty"),
        ({"status_map": {1: DeliveryState.SENT}}, "non-empty"),
        ({"status_map": [("x", DeliveryState.SENT)]}, "mapping"),
    ],
)
def test_bad_configuration(kwargs: dict[str, Any], fragment: str) -> None:
    """A bad field_map or status_map is a ConfigurationError before any body is read."""
    with pytest.raises(ConfigurationError, match=fragment):
        parse_kapanel_delivery(_body(PROPOSED), JSON, **kwargs)


# -- properties ----------------------------------------------------------------------------

_KEYS = st.sampled_from(
    [
        "id",
        "message_id",
        "messageId",
        "to",
        "mobile",
        "status",
        "State",
        "date",
        "time",
        "from",
        "reports",
        "data",
        "x",
    ]
)
_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**20), max_value=10**20)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30)
    | st.sampled_from(
        [
            "delivered",
            "FAILED",
            "09121234567",
            "+989121234567",
            "2024-05-01T08:30:00Z",
            "2024-02-30T00:00:00+03:30",
            "562892393",
        ]
    )
)
_JSON = st.recursive(
    _SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(_KEYS | st.text(max_size=8), inner, max_size=6)
    ),
    max_leaves=20,
)


def _parse_or_refuse(body: bytes, headers: dict[str, str] | None) -> None:
    try:
        reports = parse_kapanel_delivery(body, headers)
    except WebhookError:
        return
    assert all(isinstance(r, DeliveryReport) for r in reports)
    for report in reports:
        assert report.recipient is None or report.recipient.startswith("+989")
        assert report.at is None or report.at.tzinfo is UTC


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_arbitrary_bytes(body: bytes) -> None:
    """Any bytes give reports or a WebhookError, never another exception."""
    _parse_or_refuse(body, JSON)


@settings(max_examples=300, deadline=None)
@given(
    _JSON, st.sampled_from([None, "application/json", "text/plain; charset=utf-16", "x; charset"])
)
def test_arbitrary_json(payload: Any, content_type: str | None) -> None:
    """Any JSON value (shaped like reports or not) gives reports or a WebhookError."""
    headers = None if content_type is None else {"content-type": content_type}
    body = json.dumps(payload).encode(
        "utf-16" if content_type and "16" in content_type else "utf-8"
    )
    _parse_or_refuse(body, headers)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80), st.sampled_from([_body(PROPOSED), b"[]", b"{"]))
def test_arbitrary_content_type(content_type: str, body: bytes) -> None:
    """Any Content-Type header (NULs, surrogates, odd charsets) gives reports or a WebhookError."""
    _parse_or_refuse(body, {"content-type": content_type})


@pytest.mark.parametrize("charset", ["a\x00b", "\ud800", "x" * 100, "cp1256", "utf-7"])
def test_hostile_charsets(charset: str) -> None:
    """Odd charset names (NUL, surrogate, huge) and non-UTF ones are refused as unreadable."""
    with pytest.raises(UnreadableReportError, match="charset"):
        parse_kapanel_delivery(
            _body(PROPOSED), {"content-type": f"application/json; charset={charset}"}
        )


_STATES = {"notsync", "send", "pending", "delivered", "failed", "discarded"}


@settings(max_examples=200, deadline=None)
@given(
    message_id=st.integers(min_value=0, max_value=10**12)
    | st.text(alphabet=st.characters(categories=["L", "N"]), min_size=1, max_size=20),
    number=st.from_regex(r"9[0-9]{9}", fullmatch=True),
    status=st.sampled_from(sorted(_STATES)),
    at=st.datetimes(
        min_value=datetime(1990, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
    ),
)
def test_round_trip(message_id: int | str, number: str, status: str, at: datetime) -> None:
    """A well-formed report survives serialising and parsing with every value intact."""
    payload = {
        "message_id": message_id,
        "to": "+98" + number,
        "status": status,
        "date": at.isoformat().replace("+00:00", "Z"),
    }
    report = _one(payload)
    assert report.message_id == str(message_id).strip()
    assert report.recipient == "+98" + number
    assert report.provider_status == status
    assert report.at == at
