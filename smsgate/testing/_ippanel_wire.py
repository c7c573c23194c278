"""The wire half of the ippanel fake: names, aliases, request reading, answers, fixed data.

Split from ``_fake_ippanel`` (the fake's state and ops) so that each stays small. Written from
``docs/protocols/ippanel.md`` (section names below are that page's headings), never from the
client: it imports nothing from ``smsgate.backends``.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from .._phone import canonical_line, normalize_msisdn
from ..exceptions import InvalidRecipientError

# Iran: UTC+03:30 all year since 2022.
TEHRAN = timezone(timedelta(hours=3, minutes=30), "Asia/Tehran")

# English texts for the codes the fake answers ("Result codes"; the wording is inferred).
TEXTS: dict[int, str] = {
    1: "Message text is empty",
    2: "User is limited",
    3: "The line does not belong to you",
    4: "Recipients list is empty",
    5: "Credit is not enough",
    7: "The line is not suitable for bulk sending",
    9: "The line cannot send at this hour",
    98: "Maximum number of recipients exceeded",
    99: "The operator of the line is down",
    301: "Special characters in user name",
    303: "User name is not entered",
    304: "User name is already taken",
    306: "National id is not entered",
    307: "National id is not valid",
    314: "Mobile number is not entered",
    315: "Mobile number is not valid",
    316: "Access level is not valid",
    317: "Password is not entered",
    456: "Invalid bulk code",
    962: "The username or password is incorrect",
    964: "You do not have reseller access",
    970: "Pattern parameters are not valid",
    971: "The pattern is not valid",
    972: "Recipient is not valid for pattern sending",
    992: "Sending is allowed only between 08:00 and 23:00",
    993: "Phonebook must be an array",
    996: "The pattern is not active",
    997: "You are not allowed to send with this pattern",
    1001: "User name format is not valid",
    1002: "Password is too simple",
    1006: "The send date is in the past",
}

# op aliases ("Where the documents disagree", "The fake") to one canonical name per op.
# The three pattern variants share "pattern" so that fail_next(op="pattern") reaches
# whichever a client uses.
_OPS: dict[str, str] = {
    "send": "send",
    "sendpattern": "pattern",
    "pattern": "pattern",
    "credit": "credit",
    "delivery": "delivery",
    "checkmessage": "checkmessage",
    "booklist": "booklist",
    "booksend": "booksend",
    "inboxlist": "inboxlist",
    "accesslist": "accesslist",
    "newuser": "newuser",
    "postalcodecount": "postalcodecount",
    "postalcodearea": "postalcodearea",
    "postalcoderarea": "postalcodearea",
    "postalcodesend": "postalcodesend",
    "postalcodesen": "postalcodesend",
    "joblist": "jobslist",
    "jobslist": "jobslist",
    "jobstrenlist": "jobstrenlist",
    "jobscount": "jobscount",
    "jobssend": "jobssend",
}

# Parameter aliases ("Common fields", "Pattern endpoints", "The fake"), matched
# case-insensitively.
_PARAMS: dict[str, tuple[str, ...]] = {
    "uname": ("uname", "user", "username"),
    "pass": ("pass", "password"),
    "from": ("from", "fromnum"),
    "to": ("to", "tonum"),
    "message": ("message", "msg"),
    "uinqid": ("uinqid", "uniqid"),
    "messageid": ("messageid",),
    "pattern_code": ("pattern_code", "code_pattern", "patterncode"),
    "input_data": ("input_data", "data_input", "inputdata"),
    "user_uname": ("user_uname", "user-name", "user-uname", "user_name"),
    "user_pass": ("user_pass", "user-pass"),
    "national_id": ("national_id", "national-id"),
    "certificate_id": ("certificate_id", "certificate-id"),
    "access_id": ("access_id", "access-id"),
}

# What each strict profile reads (docs/protocols/ippanel.md, "The fake's profiles"): the one
# spelling of the bulk-id field, matched exactly, and the one spelling of the jobs-list op.
_BULK_FIELD: dict[str, str] = {"ippanel-pdf": "uinqid", "kapanel": "Uniqid"}
_JOBS_OP: dict[str, str] = {"ippanel-pdf": "joblist", "kapanel": "jobslist"}
_PERSIAN = str.maketrans("0123456789", "۰۱۲۳۴۵۶۷۸۹")


class RawText(str):
    """An answer that is plain text, not JSON (the documents' bare login error)."""

    __slots__ = ()


class _Params:
    """Request parameters, looked up case-insensitively through the aliases."""

    def __init__(self, raw: Mapping[str, Any]) -> None:
        self._raw = {str(k): v for k, v in raw.items()}
        self._low = {str(k).lower(): v for k, v in raw.items()}

    def exact(self, name: str) -> str:
        """One field by its exact spelling (the strict profiles), as text."""
        value = self._raw.get(name)
        if value is None or isinstance(value, list | dict):
            return ""
        return str(value).strip()

    def get(self, name: str) -> Any:
        for alias in _PARAMS.get(name, (name,)):
            if alias in self._low:
                return self._low[alias]
        return None

    def text(self, name: str) -> str:
        value = self.get(name)
        if value is None or isinstance(value, list | dict):
            return ""
        return str(value).strip()


# -- fixed targeting data (invented for the fake) --------------------------------------

_AREAS = [
    {"code": "14155", "title": "یوسف‌آباد"},
    {"code": "19395", "title": "زعفرانیه"},
    {"code": "16619", "title": "نارمک"},
]
_JOBS = {"1": "پزشکی", "2": "مهندسی"}
_TRENDS = {
    "11": ("1", "دندانپزشکی"),
    "12": ("1", "داروسازی"),
    "21": ("2", "عمران"),
    "22": ("2", "نرم‌افزار"),
}


def _synthetic(seed: str, count: int, prefix: str) -> list[str]:
    numbers = []
    for i in range(count):
        digest = hashlib.sha256(f"{seed}:{i}".encode()).hexdigest()
        numbers.append(prefix + str(int(digest[:12], 16) % 10_000_000).zfill(7))
    return numbers


def _postal_numbers(postal_code: str, operator: str, gender: str) -> list[str]:
    # Deterministic numbers for a postal code: 3 to 8 per gender and operator (inferred).
    if not postal_code.isdigit() or operator.lower() not in ("mci", "tci", "mtn"):
        return []
    prefix = "+98935" if operator.lower() == "mtn" else "+98912"
    genders = {"0": ("1", "2"), "1": ("1",), "2": ("2",)}.get(gender or "0")
    if genders is None:
        return []
    numbers: list[str] = []
    for g in genders:
        seed = f"{postal_code}:{prefix}:{g}"
        count = 3 + int(hashlib.sha256(seed.encode()).hexdigest()[:2], 16) % 6
        numbers.extend(_synthetic(seed, count, prefix))
    return numbers


def _trend_job(trend_id: str) -> str | None:
    entry = _TRENDS.get(trend_id)
    return None if entry is None else entry[0]


def _trend_numbers(trend_id: str) -> list[str]:
    if trend_id not in _TRENDS:
        return []
    return _synthetic(f"trend:{trend_id}", 4, "+98919")


# -- request parsing -------------------------------------------------------------------


async def _read_params(request: Request, *, query_wins: bool = False) -> dict[str, Any]:
    """Query string + urlencoded + multipart + JSON body, merged ("Transport", "The fake")."""
    query: dict[str, Any] = {}
    _merge_php(query, request.query_params.multi_items())
    body: dict[str, Any] = {}
    content_type = request.headers.get("content-type", "").lower()
    raw = await request.body()
    if "json" in content_type or raw.lstrip()[:1] == b"{":
        try:
            decoded = json.loads(raw.decode("utf-8-sig"))
        except (ValueError, UnicodeDecodeError):
            decoded = None
        if isinstance(decoded, dict):
            body.update(decoded)
    elif "form" in content_type:
        # As a context manager so that uploaded files (ignored here) are closed.
        async with request.form() as form:
            _merge_php(body, [(k, v) for k, v in form.multi_items() if isinstance(v, str)])
    return {**body, **query} if query_wins else {**query, **body}


def _merge_php(target: dict[str, Any], items: Iterable[tuple[str, str]]) -> None:
    """Form items into a dict, reading PHP's ``to[]=…`` and ``input_data[name]=…`` keys."""
    for key, value in items:
        match = re.fullmatch(r"([^\[\]]+)\[([^\[\]]*)\]", key)
        if match is None:
            target[key] = value
            continue
        name, sub = match.groups()
        if sub == "":
            existing = target.get(name)
            target[name] = [*existing, value] if isinstance(existing, list) else [value]
        else:
            existing = target.get(name)
            mapping = existing if isinstance(existing, dict) else {}
            mapping[sub] = value
            target[name] = mapping


def _list(value: Any) -> list[Any] | None:
    """A JSON array (string or decoded), a PHP array, or a plain comma-separated string."""
    if value is None:
        return []
    if isinstance(value, list):
        return value
    if isinstance(value, dict):
        return list(value.values())
    text = str(value).strip()
    if text.startswith("["):
        try:
            decoded = json.loads(text)
        except ValueError:
            return None
        return decoded if isinstance(decoded, list) else None
    # Clients that send ``to`` as one plain number exist ("Common fields"); accept them.
    return [part.strip() for part in text.split(",") if part.strip()]


def _numbers(value: Any) -> list[str]:
    """Valid recipients in E.164, in order; unreadable numbers are dropped (inferred)."""
    out: list[str] = []
    for item in _list(value) or []:
        if not isinstance(item, str | int) or isinstance(item, bool):
            continue
        try:
            msisdn = normalize_msisdn(str(item))
        except InvalidRecipientError:
            continue
        out.append(msisdn)
    return out


def _values(value: Any) -> dict[str, str] | None:
    """Pattern values: a JSON object (string or decoded), a PHP array, or a list of objects."""
    if isinstance(value, str):
        try:
            value = json.loads(value) if value.strip() else {}
        except ValueError:
            return None
    if isinstance(value, list):  # "Pattern endpoints": inputData is [ {…} ]
        merged: dict[str, Any] = {}
        for item in value:
            decoded = _values(item)
            if decoded is None:
                return None
            merged.update(decoded)
        value = merged
    if value is None:
        return {}
    if not isinstance(value, dict):
        return None
    return {str(k): str(v) for k, v in value.items()}


def _line_key(line: str) -> str:
    """One spelling of a sender line for comparing (``canonical_line``); ``""`` if none."""
    try:
        return canonical_line(line)
    except (TypeError, ValueError):
        return ""


def _parse_time(text: str) -> datetime | None:
    # "Common fields" ``time``: "2016-07-30" or "2016-07-30 12:50:50", Iran local time
    # (inferred). A bare date
    # stands for the whole day, so today's date is not "in the past".
    for fmt, day in (("%Y-%m-%d %H:%M:%S", False), ("%Y-%m-%d %H:%M", False), ("%Y-%m-%d", True)):
        try:
            when = datetime.strptime(text.strip(), fmt).replace(tzinfo=TEHRAN)
        except ValueError:
            continue
        return when + timedelta(days=1) if day else when
    return None


def _error(code: int) -> list[Any]:
    return [code, TEXTS.get(code, "Error")]


def _json(payload: Any) -> Response:
    if isinstance(payload, RawText):
        return Response(str(payload), status_code=200, media_type="text/plain; charset=utf-8")
    body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
    return Response(body, status_code=200, media_type="application/json; charset=utf-8")
