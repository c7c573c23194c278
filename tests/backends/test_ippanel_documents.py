"""IppanelGateway against the provider documents' own samples, byte for byte, and against
every alternative of each guess in docs/protocols/ippanel.md ("Guesses").

The seeds (the provider documents) are S0 = ``000_815a9774fa2389f0.txt`` (the Kapanel
web-service page), S1 = ``001_80ea4ff6bf519dd2.txt`` (a second copy of the same white-label
page) and S2 = ``002_ae6b4198e4451e5b.txt`` (the ippanel PDF); docs/protocols/ippanel.md
("Sources") describes them. Every byte string below marked "copied from" is the document's
text as it is, Persian digits, typographic quotes and line breaks included.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest

import smsgate
from smsgate.backends.ippanel import ERROR_CODES, IppanelGateway
from smsgate.exceptions import ProviderError

SENDER = "+983000505"
BULK = "562892393"
Q = smsgate.DeliveryState.QUEUED

# -- the documents' samples -------------------------------------------------------------------

# Copied from S0 (000_815a9774fa2389f0.txt), section "Delivery": the sample answer, the first
# number in Persian digits and one digit short, typographic quotes as the page prints them.
S0_DELIVERY = "[“+۹۸۹۱۰۰۰۰۰۹۸:notsync”,”+989210000616:notsync”,”+989212000943:notsync”,”+989360000994:notsync”]".encode()  # noqa: E501

# Copied from S1 (001_80ea4ff6bf519dd2.txt), section "delivery": the same sample, broken over
# lines before the third item's colon.
S1_DELIVERY = "[“+۹۸۹۱۰۰۰۰۰۹۸:notsync”,”+989210000616:notsync”,”+989212000943\n\n:notsync”,”+989360000994:notsync”]".encode()  # noqa: E501

# Copied from S2 (002_ae6b4198e4451e5b.txt), section "گزارش ارسال" (Delivery method): the
# sample, broken over lines after the third item's colon, then a trailing space.
S2_DELIVERY = b'["+98910000098:notsync","+989210000616:notsync","+989212000943:\n\nnotsync","+989360000994:notsync"] '  # noqa: E501

# What every one of the three samples means.
SAMPLE_REPORTS = [
    ("+98910000098", "notsync", Q),
    ("+989210000616", "notsync", Q),
    ("+989212000943", "notsync", Q),
    ("+989360000994", "notsync", Q),
]

# Copied from S0 and S1, section "Delivery" ("خطاها", errors): the error text, no code.
S0_AUTH_TEXT = b"The username or password is incorrect"
# Copied from S2, section "گزارش ارسال", "خطاها": the same text in lower case.
S2_AUTH_TEXT = b"the username or password is incorrect"
# Copied from S0/S1 ("Null") and S2 ("null"), section "Delivery": a wrong bulk code.
S0_NULL = b"Null"
S2_NULL = b"null"

# The delivery legend, copied from S0/S1 (capitalised) and S2 (lower case), section
# "Delivery" / "گزارش ارسال": each word and the state it maps to (API.md §2).
LEGEND = [
    ("Notsync", smsgate.DeliveryState.QUEUED),
    ("Send", smsgate.DeliveryState.SENT),
    ("Pending", smsgate.DeliveryState.AT_OPERATOR),
    ("Failed", smsgate.DeliveryState.UNDELIVERED),
    ("Discarded", smsgate.DeliveryState.BLOCKED),
    ("Delivered", smsgate.DeliveryState.DELIVERED),
    ("notsync", smsgate.DeliveryState.QUEUED),
    ("send", smsgate.DeliveryState.SENT),
    ("pending", smsgate.DeliveryState.AT_OPERATOR),
    ("failed", smsgate.DeliveryState.UNDELIVERED),
    ("discarded", smsgate.DeliveryState.BLOCKED),
    ("delivered", smsgate.DeliveryState.DELIVERED),
]

# checkmessage's printed values. statusMessage: copied from S0 ("statusMessag" under the
# mislabelled "Booksend" heading) and S2 (section "وضعیت ارسال", Checkmessage method).
# validMessage: S0 capitalised, S2 lower case. The documents print no whole answer object.
STATUS_MESSAGES = [
    "Finish",
    "NoContactWithTheOperator",
    "Interacting",
    "NoAuthentication",
    "Active",
    "NoSendSMS",
    "Cancel",
    "No Sufficient Charge",
]
VALID_MESSAGES = [
    ("Approve", "approve"),
    ("Cancel", "cancel"),
    ("Notconfirm", "notconfirm"),
    ("approve", "approve"),
    ("cancel", "cancel"),
    ("notconfirm", "notconfirm"),
]

# S2, section "sendPattern" output: "like a normal send a numeric send id; on error an error
# code"; the examples it prints are bare codes 971, 970 and 996.
S2_PATTERN_CODES = [b"971", b"970", b"996"]


# -- plumbing -------------------------------------------------------------------------------


def fields_of(request: httpx.Request) -> dict[str, str]:
    """Form fields of a services.jspd request (last value of each key)."""
    parsed = parse_qs(request.content.decode("utf-8"), keep_blank_values=True)
    return {key: values[-1] for key, values in parsed.items()}


@contextlib.asynccontextmanager
async def gateway(
    answer: Callable[[httpx.Request], httpx.Response], **options: Any
) -> AsyncIterator[tuple[IppanelGateway, list[httpx.Request]]]:
    """A gateway whose every request is answered by ``answer``; the requests are kept."""
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return answer(request)

    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    settings: dict[str, Any] = {
        "username": "u",
        "password": "the-password",
        "sender": SENDER,
        "http_client": client,
    }
    settings.update(options)
    try:
        async with IppanelGateway(**settings) as gw:
            yield gw, seen
    finally:
        await client.aclose()


def body(content: bytes, content_type: str = "application/json") -> Callable[..., httpx.Response]:
    """Answer every request with exactly these bytes."""
    return lambda request: httpx.Response(
        200, content=content, headers={"content-type": content_type}
    )


# -- delivery: the samples --------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize(
    "sample", [S0_DELIVERY, S1_DELIVERY, S2_DELIVERY], ids=["S0-kapanel", "S1-copy", "S2-pdf"]
)
@pytest.mark.parametrize("content_type", ["application/json", "text/html; charset=utf-8"])
async def test_delivery_samples_of_the_documents(sample: bytes, content_type: str) -> None:
    """Each document's printed delivery answer reads as four reports, numbers in ASCII."""
    async with gateway(body(sample, content_type)) as (gw, seen):
        reports = await gw.delivery(BULK)
    assert [(r.recipient, r.provider_status, r.state) for r in reports] == SAMPLE_REPORTS
    assert all(r.message_id == BULK and r.provider == "ippanel" for r in reports)
    assert all(not r.is_final for r in reports)
    assert fields_of(seen[0])["op"] == "delivery"


@pytest.mark.anyio
@pytest.mark.parametrize(
    "wrap",
    [
        lambda items: items,  # the documents: a bare array
        lambda items: [0, items],  # a decoded list inside the envelope
        lambda items: [0, json.dumps(items)],  # clients in the wild: a JSON string
        lambda items: ["0", json.dumps(items, ensure_ascii=False)],
    ],
    ids=["bare", "envelope-list", "envelope-string", "string-code"],
)
async def test_delivery_shapes_alike(wrap: Callable[[list[str]], Any]) -> None:
    """The bare array, [0, list] and [0, "<json string>"] read alike; E.164 numbers back."""
    items = ["+۹۸۹۱۲۱۱۱۱۱۱۱:delivered", "09122222222:failed", "989123333333:pending"]
    payload = json.dumps(wrap(items), ensure_ascii=False).encode()
    async with gateway(body(payload)) as (gw, _seen):
        reports = await gw.delivery(BULK)
    assert [(r.recipient, r.state) for r in reports] == [
        ("+989121111111", smsgate.DeliveryState.DELIVERED),
        ("+989122222222", smsgate.DeliveryState.UNDELIVERED),
        ("+989123333333", smsgate.DeliveryState.AT_OPERATOR),
    ]


@pytest.mark.anyio
@pytest.mark.parametrize(("word", "state"), LEGEND)
async def test_delivery_legend_of_the_documents(word: str, state: smsgate.DeliveryState) -> None:
    """Every status word of the documents' legend, either case, maps to its state."""
    payload = json.dumps([f"+989121111111:{word}"]).encode()
    async with gateway(body(payload)) as (gw, _seen):
        (report,) = await gw.delivery(BULK)
    assert report.state is state
    assert report.provider_status == word


@pytest.mark.anyio
@pytest.mark.parametrize(
    "content",
    [S0_NULL, S2_NULL, b"[0,null]", b'[0,"null"]', b'"null"', b'[0,"Null"]', b" null\n"],
)
async def test_delivery_null_forms_are_unknown(content: bytes) -> None:
    """null in every form (the documents' Null/null, [0,null], [0,"null"]): a wrong bulk code."""
    async with gateway(body(content)) as (gw, _seen):
        with pytest.raises(smsgate.UnknownMessageError) as info:
            await gw.delivery(BULK)
    assert info.value.provider == "ippanel"
    assert not info.value.maybe_sent


@pytest.mark.anyio
@pytest.mark.parametrize(
    "content",
    [
        S0_AUTH_TEXT,
        S2_AUTH_TEXT,
        b'"' + S0_AUTH_TEXT + b'"',
        S0_AUTH_TEXT + b".",
        b'[0,"' + S0_AUTH_TEXT + b'"]',
    ],
)
@pytest.mark.parametrize("content_type", ["text/plain", "application/json"])
async def test_delivery_bare_login_error(content: bytes, content_type: str) -> None:
    """The documents' English login error with no code is AuthenticationError (no secret)."""
    async with gateway(body(content, content_type)) as (gw, _seen):
        with pytest.raises(smsgate.AuthenticationError) as info:
            await gw.delivery(BULK)
    assert "the-password" not in str(info.value)
    assert info.value.detail is not None and "incorrect" in info.value.detail


@pytest.mark.anyio
async def test_bare_login_error_on_any_op() -> None:
    """The same bare text answering another op (credit here) is AuthenticationError too."""
    async with gateway(body(S0_AUTH_TEXT, "text/plain")) as (gw, _seen):
        with pytest.raises(smsgate.AuthenticationError):
            await gw.credit()


@pytest.mark.anyio
@pytest.mark.parametrize(
    "content",
    [b'["+989121111111"]', b"[0,5]", b'[0,"abc"]', b"<html>busy</html>", b'"hello"', b"[0,true]"],
)
async def test_delivery_unreadable(content: bytes) -> None:
    """Anything else is ProtocolError (a status query: not maybe_sent)."""
    async with gateway(body(content)) as (gw, _seen):
        with pytest.raises(smsgate.ProtocolError) as info:
            await gw.delivery(BULK)
    assert not info.value.maybe_sent


# -- the bulk-id field ------------------------------------------------------------------------


@pytest.mark.anyio
async def test_bulk_id_sent_under_both_spellings() -> None:
    """The PDF's `uinqid` and the Kapanel pages' `Uniqid` both carry the id."""
    async with gateway(body(S2_DELIVERY)) as (gw, seen):
        await gw.delivery(BULK)
    fields = fields_of(seen[0])
    assert fields["uinqid"] == BULK and fields["Uniqid"] == BULK


@pytest.mark.anyio
@pytest.mark.parametrize("field", ["uinqid", "Uniqid"])
async def test_panel_reading_one_spelling_finds_the_id(field: str) -> None:
    """A panel that reads only one spelling (exact case) answers for the id, not null."""

    def panel(request: httpx.Request) -> httpx.Response:
        known = fields_of(request).get(field) == BULK
        content = S2_DELIVERY if known else b"null"
        return httpx.Response(200, content=content)

    async with gateway(panel) as (gw, _seen):
        reports = await gw.delivery(BULK)
    assert len(reports) == 4


# -- checkmessage: the printed values ---------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize("status", STATUS_MESSAGES)
@pytest.mark.parametrize(("valid", "validation"), VALID_MESSAGES)
async def test_checkmessage_values_of_the_documents(
    status: str, valid: str, validation: str
) -> None:
    """Every statusMessage and validMessage value the documents print reads as it is."""
    payload = json.dumps({"statusMessage": status, "validMessage": valid}).encode()
    async with gateway(body(payload)) as (gw, seen):
        result = await gw.message_status(BULK)
    assert result.status == status
    assert result.validation == validation
    assert result.finished is (status == "Finish")
    assert result.approved is (validation == "approve")
    assert fields_of(seen[0])["messageid"] == BULK


# -- bare numbers: one rule for every send answer --------------------------------------------

SENDS: dict[str, Callable[[IppanelGateway], Any]] = {
    "send": lambda gw: gw.send("09121111111", "hi"),
    "sendPattern": lambda gw: gw.send_pattern("09121111111", pattern_code="p", values={"a": 1}),
    "booksend": lambda gw: gw.phonebooks.send(["17"], "hi"),
    "jobssend": lambda gw: gw.jobs.send("1", ["11"], "hi"),
    "postalcodesend": lambda gw: gw.postal.send("1415500000", "hi"),
}
ENDPOINTS = ["patterns/pattern", "sendPattern", "api/select"]


def _call(name: str) -> tuple[Callable[[IppanelGateway], Any], dict[str, Any]]:
    if name in ENDPOINTS:
        return SENDS["sendPattern"], {"pattern_endpoint": name}
    return SENDS[name], {}


ALL_SENDS = ["send", "booksend", "jobssend", "postalcodesend", *ENDPOINTS]


@pytest.mark.anyio
@pytest.mark.parametrize("name", ALL_SENDS)
@pytest.mark.parametrize("content", [b"562892393", b'"562892393"', b"[0,562892393]", b"100000"])
async def test_bare_bulk_id_is_a_receipt(name: str, content: bytes) -> None:
    """A bare number of at least MIN_BULK_ID (or [0, id]) is the bulk id, on every send."""
    call, options = _call(name)
    async with gateway(body(content), **options) as (gw, _seen):
        receipt = await call(gw)
    assert receipt.message_id == str(json.loads(content.replace(b"[0,", b"").rstrip(b"]")))
    assert str(int(receipt.message_id)) == receipt.message_id


@pytest.mark.anyio
@pytest.mark.parametrize("name", ALL_SENDS)
@pytest.mark.parametrize("content", [*S2_PATTERN_CODES, b"962", b'"5"', '"۹۷۱"'.encode(), b"99"])
async def test_bare_known_code_is_a_refusal(name: str, content: bytes) -> None:
    """A bare number that is a known code is that code's refusal, never a receipt."""
    persian = str.maketrans("۰۱۲۳۴۵۶۷۸۹", "0123456789")
    code = int(json.loads(content.decode().translate(persian)))
    call, options = _call(name)
    async with gateway(body(content), **options) as (gw, _seen):
        with pytest.raises(ERROR_CODES[code][0]) as info:
            await call(gw)
    assert info.value.code == str(code)
    assert info.value.maybe_sent is False


@pytest.mark.anyio
@pytest.mark.parametrize("name", ALL_SENDS)
@pytest.mark.parametrize("content", [b"0", b"-1", b"1234", b"99999", b'"42"'])
async def test_bare_small_number_is_never_a_receipt(name: str, content: bytes) -> None:
    """A bare number below MIN_BULK_ID and not a known code: a refusal of unknown meaning,
    flagged maybe_sent (reconciled, never resent, never sent on another route)."""
    call, options = _call(name)
    async with gateway(body(content), **options) as (gw, _seen):
        with pytest.raises(ProviderError) as info:
            await call(gw)
    assert type(info.value) is ProviderError
    assert info.value.code == str(int(json.loads(content)))
    assert info.value.maybe_sent is True and info.value.fallback_ok is False


@pytest.mark.anyio
@pytest.mark.parametrize("name", ALL_SENDS)
@pytest.mark.parametrize("content", [b"[0,971]", b'[0,"5"]', b"[0,99999]"])
async def test_enveloped_small_id_is_unreadable(name: str, content: bytes) -> None:
    """[0, n] with n too small to be a bulk id: accepted, but no receipt (ProtocolError)."""
    call, options = _call(name)
    async with gateway(body(content), **options) as (gw, _seen):
        with pytest.raises(smsgate.ProtocolError) as info:
            await call(gw)
    assert info.value.maybe_sent is True


# -- the jobs list: joblist (PDF) or Jobslist (Kapanel) ---------------------------------------

JOBS = json.dumps([0, json.dumps([{"id": "1", "title": "پزشکی"}], ensure_ascii=False)])


def panel_knowing(op: str, unknown: bytes = b'[-1,"Unknown operation"]') -> Any:
    """A panel that knows only one spelling of the jobs-list op."""

    def answer(request: httpx.Request) -> httpx.Response:
        if fields_of(request)["op"].lower() == op:
            return httpx.Response(200, content=JOBS.encode())
        return httpx.Response(200, content=unknown)

    return answer


@pytest.mark.anyio
@pytest.mark.parametrize("known", ["joblist", "jobslist"])
@pytest.mark.parametrize(
    "unknown", [b'[-1,"Unknown operation"]', b"[12345]", b"<html>404</html>", b""]
)
async def test_jobs_list_finds_the_spelling(known: str, unknown: bytes) -> None:
    """Against a panel knowing one spelling, the list arrives; the spelling is remembered."""
    async with gateway(panel_knowing(known, unknown)) as (gw, seen):
        first = await gw.jobs.list()
        tried = [fields_of(r)["op"] for r in seen]
        second = await gw.jobs.list()
    assert [j.id for j in first] == ["1"] and first == second
    assert tried == (["jobslist"] if known == "jobslist" else ["jobslist", "joblist"])
    assert fields_of(seen[-1])["op"] == known
    assert len(seen) == len(tried) + 1


@pytest.mark.anyio
async def test_jobs_list_known_refusal_is_not_retried() -> None:
    """A known code (962 wrong password) is raised at once, not tried with the other name."""
    async with gateway(body(b'[962,"The username or password is incorrect"]')) as (gw, seen):
        with pytest.raises(smsgate.AuthenticationError):
            await gw.jobs.list()
    assert len(seen) == 1


@pytest.mark.anyio
async def test_jobs_list_neither_spelling() -> None:
    """A panel knowing neither spelling: the first answer's error, after one try each."""
    async with gateway(body(b'[-1,"Unknown operation"]')) as (gw, seen):
        with pytest.raises(ProviderError) as info:
            await gw.jobs.list()
    assert info.value.code == "-1"
    assert [fields_of(r)["op"] for r in seen] == ["jobslist", "joblist"]


# -- shared helpers (issue 13) ----------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("to", "error"),
    [
        ({"09121111111"}, smsgate.InvalidRecipientError),
        (["09121111111", "+989121111111"], smsgate.InvalidRecipientError),
        (["09121111111", "۰۹۱۲۱۱۱۱۱۱۱"], smsgate.InvalidRecipientError),
        ([], smsgate.InvalidRecipientError),
    ],
)
async def test_recipients_follow_the_shared_rule(to: Any, error: type[Exception]) -> None:
    """normalize_recipients: a set is refused, a number twice in any spelling raises."""
    async with gateway(body(b"[0,562892393]")) as (gw, seen):
        with pytest.raises(error):
            await gw.send(to, "hi")
    assert seen == []


@pytest.mark.anyio
@pytest.mark.parametrize("text", ["\ud800 lone", "x" * 2001, " ", 5])
async def test_texts_follow_the_shared_check(text: Any) -> None:
    """check_text: lone surrogates, the size cap, empty and non-str texts, before any I/O."""
    async with gateway(body(b"[0,562892393]")) as (gw, seen):
        with pytest.raises(smsgate.InvalidMessageError):
            await gw.send("09121111111", text)
        with pytest.raises(smsgate.InvalidMessageError):
            await gw.phonebooks.send(["17"], text)
    assert seen == []


@pytest.mark.anyio
@pytest.mark.parametrize(
    "values", [{"code": "\ud800"}, {"\udfff": "1"}, {"code": "x" * 2001}, {"a": None}]
)
async def test_pattern_values_follow_the_shared_check(values: Any) -> None:
    """Pattern values and names go through check_text too, before any I/O."""
    async with gateway(body(b"562892393")) as (gw, seen):
        with pytest.raises(smsgate.InvalidMessageError):
            await gw.send_pattern("09121111111", pattern_code="p", values=values)
    assert seen == []


def test_error_table_uses_public_types_only() -> None:
    """ERROR_CODES: code -> (a public error class of smsgate.exceptions, its meaning)."""
    for code, entry in ERROR_CODES.items():
        assert isinstance(code, int)
        assert type(entry) is tuple and len(entry) == 2
        cls, meaning = entry
        assert issubclass(cls, ProviderError)
        assert cls.__module__ == "smsgate.exceptions"
        assert not cls.__name__.startswith("_") and getattr(smsgate, cls.__name__) is cls
        assert meaning.strip()


def test_default_sender() -> None:
    """default_sender is the constructor's sender (None without one)."""
    assert IppanelGateway(username="u", password="p", sender=SENDER).default_sender == SENDER
    assert IppanelGateway(username="u", password="p").default_sender is None


def test_one_state_table_for_backend_and_webhooks() -> None:
    """The backend and the webhook parser read one delivery-state table."""
    from smsgate._states import IPPANEL_STATES
    from smsgate.backends.ippanel import DELIVERY_STATES
    from smsgate.webhooks import _kapanel

    assert DELIVERY_STATES is IPPANEL_STATES
    for word, state in IPPANEL_STATES.items():
        assert _kapanel._STATUSES[word] is state


# -- the protocol page: references resolve, cited tests exist ---------------------------------

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "protocols" / "ippanel.md"
IPPANEL_SOURCES = [
    *sorted((ROOT / "smsgate" / "backends" / "ippanel").glob("*.py")),
    ROOT / "smsgate" / "testing" / "_fake_ippanel.py",
    ROOT / "smsgate" / "testing" / "_routes_ippanel.py",
    ROOT / "smsgate" / "webhooks" / "_kapanel.py",
    ROOT / "smsgate" / "_states.py",
]


def _headings() -> set[str]:
    return set(re.findall(r"^#{2,3} (.+?)\s*$", PAGE.read_text(encoding="utf-8"), re.M))


def _flat(path: Path) -> str:
    """The file's text with comment markers and line breaks folded to single spaces."""
    text = path.read_text(encoding="utf-8")
    return re.sub(r"\s*\n\s*(?:#:?\s*)?", " ", text)


def test_comment_references_resolve_to_the_protocol_page() -> None:
    """Every `docs/protocols/ippanel.md "Heading"` in the code names a heading of the page,
    and no ippanel module cites a document outside the repository."""
    headings = _headings()
    cited: set[str] = set()
    for path in IPPANEL_SOURCES:
        flat = _flat(path)
        assert "shared/protocols" not in flat and "../shared" not in flat, path
        for match in re.finditer(
            r"docs/protocols/ippanel\.md`{0,2},?\s*\(?((?:\"[^\"]+\"(?:,\s*|\s+and\s+|\s+to\s+)?)+)",
            flat,
        ):
            names = re.findall(r"\"([^\"]+)\"", match.group(1))
            cited.update(names)
            missing = [name for name in names if name not in headings]
            assert not missing, (path.name, missing)
    assert {"delivery", "Bare numbers", "Jobs list", "Result codes"} <= cited


def test_guesses_table_cites_existing_tests() -> None:
    """Each test the guesses table names exists in the file its letter stands for."""
    files = {
        "D": Path(__file__),
        "U": ROOT / "tests" / "backends" / "test_ippanel.py",
        "L": ROOT / "tests" / "backends" / "test_ippanel_loopback.py",
        "C": ROOT / "tests" / "contract" / "test_contract.py",
    }
    defined = {
        letter: set(re.findall(r"^(?:async )?def (test_\w+)", f.read_text("utf-8"), re.M))
        for letter, f in files.items()
    }
    table = PAGE.read_text(encoding="utf-8").split("## Guesses", 1)[1]
    checked = 0
    for row in (line for line in table.splitlines() if line.startswith("| ") and "`" in line):
        cell = row.rstrip(" |").rsplit(" | ", 1)[-1]
        letter = None
        for token in re.finditer(r"\b([DULC])\b|`(test_\w+)", cell):
            if token.group(1):
                letter = token.group(1)
            elif letter is not None:
                assert token.group(2) in defined[letter], (letter, token.group(2))
                checked += 1
    assert checked >= 40
