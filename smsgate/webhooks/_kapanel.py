"""Kapanel (ippanel white-label) delivery pushes: body bytes and headers to delivery reports.

What the provider documents (docs/protocols/ippanel.md "Webhook"): a POST with a JSON body, dates in
RFC 3339 and UTC, sender and recipient numbers with ``+`` and the country code, "four
possible states", an answer within 15 seconds. The field names were only ever shown in an
image that no public text reproduces, so this parser is **lenient about names** and
**strict about values**:

* Names are matched without regard to case, ``_``, ``-``, ``.`` or spaces, against a list
  of common aliases (``message_id``/``messageId``/``bulk_id``/``id``, ``to``/``recipient``/
  ``mobile``/``number``, ``status``/``state``, ``date``/``time``/``delivered_at`` ...), and a
  user's ``field_map`` names come first.
* Values must have the right type: an id is a string or a non-negative integer, a number
  must be an Iranian mobile number (normalised to E.164), a date must be RFC 3339, a status
  a string or an integer. Anything else is a :class:`~smsgate.MalformedReportError`.

The body may be one report object, a JSON array of them, or an object holding the array
under ``reports`` (or ``data``, ``items``, ``results``, ``messages``, ``deliveries``,
``events``).

(Just over 500 lines with reason: one lenient parser, most of it its alias tables and
docstrings; the state vocabulary already lives in ``smsgate._states``.)
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta, timezone
from types import MappingProxyType
from typing import Any, Final, NoReturn

import attrs

from .._models import DeliveryReport, DeliveryState
from .._phone import normalize_msisdn
from .._states import IPPANEL_STATES
from ..exceptions import ConfigurationError, InvalidRecipientError, MalformedReportError
from ._errors import UnreadableReportError

__all__ = ["FIELDS", "KapanelDeliveryParser", "parse_kapanel_delivery"]

#: The report fields a ``field_map`` may name.
FIELDS: Final = ("message_id", "recipient", "status", "date")

# Aliases per field, already in normalised form (see _norm), most specific first: a payload
# that has both ``message_id`` and a generic ``id`` (say, the push's own event id) takes
# ``message_id``.
_ALIASES: Final[Mapping[str, tuple[str, ...]]] = {
    "message_id": (
        "messageid",
        "msgid",
        "bulkid",
        "smsid",
        "uinqid",  # the delivery op's own spelling (docs/protocols/ippanel.md "delivery")
        "uniqid",
        "uniqueid",
        "bulk",
        "id",
    ),
    "recipient": (
        "to",
        "recipient",
        "receptor",
        "mobile",
        "msisdn",
        "number",
        "phone",
        "phonenumber",
        "mobilenumber",
        "tonum",
        "tonumber",
        "destination",
        "receiver",
    ),
    "status": ("status", "state", "deliverystatus", "deliverystate", "dlrstatus", "dlr"),
    "date": (
        "date",
        "deliveredat",
        "deliverydate",
        "deliverytime",
        "datetime",
        "time",
        "timestamp",
        "updatedat",
        "at",
    ),
}

# Keys under which a batch of reports may arrive (normalised).
_ENVELOPES: Final = ("reports", "data", "items", "results", "messages", "deliveries", "events")

# ippanel's per-recipient vocabulary (one table below both this parser and the backend:
# smsgate/_states.py), plus smsgate's own state names so that a relay speaking smsgate's
# terms is understood. Keys are normalised with _norm.
_STATUSES: Final[Mapping[str, DeliveryState]] = MappingProxyType(
    {
        **{state.value.replace("_", ""): state for state in DeliveryState},
        **IPPANEL_STATES,
    }
)

# RFC 8259 says JSON is UTF-8; its predecessor allowed UTF-16 and UTF-32. Nothing else is
# accepted, whatever a Content-Type claims (a "charset" of rot13 or base64 is no text).
_CHARSETS: Final = frozenset(
    {
        "utf-8",
        "utf-8-sig",
        "utf-16",
        "utf-16-le",
        "utf-16-be",
        "utf-32",
        "utf-32-le",
        "utf-32-be",
        "ascii",
    }
)

_MAX_ID_CHARS: Final = 128
_MAX_STATUS_CHARS: Final = 64
_MAX_DATE_CHARS: Final = 64

# RFC 3339 §5.6, plus what the RFC's own note allows (a space for "T", lower-case t/z) and
# two common slips (an offset without its colon, a comma before the fraction).
_RFC3339: Final = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt ]([0-9]{2}):([0-9]{2}):([0-9]{2})"
    r"(?:[.,]([0-9]{1,30}))?"
    r"(?:([Zz])|([+-])([0-9]{2}):?([0-9]{2}))?"
)

_MISSING: Final = object()


_IGNORED_IN_NAMES: Final = str.maketrans("", "", "_-. ")


def _norm(name: str) -> str:
    """A key or status as compared: case-folded, without ``_``, ``-``, ``.`` or spaces."""
    return name.casefold().translate(_IGNORED_IN_NAMES)


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _names(value: object, field: str) -> tuple[str, ...]:
    if isinstance(value, str):
        names: tuple[object, ...] = (value,)
    elif isinstance(value, Sequence):
        names = tuple(value)
    else:
        raise ConfigurationError(
            f"field_map[{field!r}] must be a key name or a sequence of them, "
            f"not {type(value).__name__}"
        )
    if not names or not all(isinstance(n, str) and _norm(n) for n in names):
        raise ConfigurationError(f"field_map[{field!r}] must name at least one non-empty key")
    return tuple(_norm(str(n)) for n in names)


def _field_map(
    value: Mapping[str, str | Sequence[str]] | None,
) -> Mapping[str, tuple[str, ...]]:
    if value is None:
        return MappingProxyType({})
    if not isinstance(value, Mapping):
        raise ConfigurationError("field_map must be a mapping from a report field to key names")
    unknown = sorted(set(value) - set(FIELDS))
    if unknown:
        raise ConfigurationError(
            f"field_map names unknown fields {unknown}; the fields are {list(FIELDS)}"
        )
    return MappingProxyType({field: _names(names, field) for field, names in value.items()})


def _status_map(value: Mapping[str, DeliveryState] | None) -> Mapping[str, DeliveryState]:
    if value is None:
        return MappingProxyType({})
    if not isinstance(value, Mapping):
        raise ConfigurationError("status_map must be a mapping from a status value to a state")
    out: dict[str, DeliveryState] = {}
    items: Iterable[tuple[object, object]] = value.items()
    for raw, state in items:
        if not isinstance(raw, str) or not _norm(raw):
            raise ConfigurationError(f"status_map keys must be non-empty str, not {raw!r}")
        if not isinstance(state, DeliveryState):
            raise ConfigurationError(f"status_map[{raw!r}] must be a DeliveryState")
        out[_norm(raw)] = state
    return MappingProxyType(out)


def _header(headers: Mapping[str, str] | None, name: str) -> str | None:
    if not headers:
        return None
    direct = headers.get(name)  # a case-insensitive mapping (Starlette, httpx) answers here
    if direct is not None:
        return direct
    for key, value in headers.items():
        if key.lower() == name:
            return value
    return None


def _charset(content_type: str | None) -> str:
    if not content_type:
        return "utf-8"
    for param in content_type.split(";")[1:]:
        key, _, value = param.partition("=")
        if key.strip().lower() == "charset":
            return value.strip().strip('"').lower() or "utf-8"
    return "utf-8"


class _DuplicateKeyError(Exception):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKeyError(key)
        out[key] = value
    return out


def _no_constants(name: str) -> NoReturn:
    # NaN and Infinity are Python extensions, not JSON.
    raise ValueError(f"{name} is not JSON")


def _decode(body: bytes, headers: Mapping[str, str] | None) -> Any:
    """Bytes to a JSON value, or UnreadableReportError (or MalformedReportError)."""
    if not body.strip():
        raise UnreadableReportError("the body is empty")
    content_type = _header(headers, "content-type")
    charset = _charset(content_type)
    try:
        # A header is attacker-controlled: a NUL or a surrogate makes lookup raise
        # ValueError, not LookupError; a name longer than any codec's is not looked up.
        codec = codecs.lookup(charset).name if len(charset) <= 40 else ""
    except (LookupError, ValueError):
        codec = ""
    if codec not in _CHARSETS:
        raise UnreadableReportError(f"unsupported charset {charset[:40]!r}: JSON is UTF-8")
    if codec == "utf-8":
        codec = "utf-8-sig"  # tolerate a byte order mark, as many Windows stacks send one
    hint = ""
    if content_type and "json" not in content_type.lower():
        hint = f" (Content-Type was {content_type[:60]!r})"
    try:
        text = body.decode(codec)
    except UnicodeError:
        raise UnreadableReportError(f"the body is not valid {charset}{hint}") from None
    try:
        return json.loads(text, object_pairs_hook=_pairs, parse_constant=_no_constants)
    except _DuplicateKeyError as exc:
        raise MalformedReportError(f"the key {_short(exc.key)} is repeated in an object") from None
    except RecursionError:
        raise UnreadableReportError("the JSON is nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError, and integers longer than Python allows
        raise UnreadableReportError(f"the body is not valid JSON{hint}: {exc}") from None


def _parse_date(value: object, where: str) -> datetime | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise MalformedReportError(
            f"{where}the date must be an RFC 3339 string, not {type(value).__name__}"
        )
    text = value.strip()
    match = _RFC3339.fullmatch(text) if len(text) <= _MAX_DATE_CHARS else None
    if match is None:
        raise MalformedReportError(f"{where}the date {_short(value)} is not RFC 3339")
    year, month, day, hour, minute, second = (int(g) for g in match.group(1, 2, 3, 4, 5, 6))
    micro = int((match.group(7) or "").ljust(6, "0")[:6])
    if second == 60:
        # A leap second (RFC 3339 allows it; datetime cannot hold it): the last instant
        # before the next minute is the closest value.
        second, micro = 59, 999_999
    if match.group(8) or not match.group(9):
        # "Z", or no offset at all: the provider documents every date as UTC ("Webhook").
        tz: timezone = UTC
    else:
        hours, minutes = int(match.group(10)), int(match.group(11))
        if hours > 23 or minutes > 59:
            raise MalformedReportError(f"{where}the date {_short(value)} has a bad UTC offset")
        offset = timedelta(hours=hours, minutes=minutes)
        tz = timezone(-offset if match.group(9) == "-" else offset)
    try:
        return datetime(year, month, day, hour, minute, second, micro, tzinfo=tz).astimezone(UTC)
    except (ValueError, OverflowError):
        raise MalformedReportError(f"{where}the date {_short(value)} does not exist") from None


def _parse_message_id(value: object, where: str, looked: Iterable[str]) -> str:
    if value is _MISSING or value is None or value == "":
        raise MalformedReportError(f"{where}no message id (looked for {', '.join(looked)})")
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise MalformedReportError(
            f"{where}the message id must be a string or an integer, not {type(value).__name__}"
        )
    if isinstance(value, int) and value < 0:
        raise MalformedReportError(f"{where}the message id {value} is negative")
    text = str(value).strip()
    if (
        not text
        or len(text) > _MAX_ID_CHARS
        or not all(ch.isprintable() and not ch.isspace() for ch in text)
    ):
        raise MalformedReportError(f"{where}the message id {_short(value)} is not an id")
    return text


def _parse_recipient(value: object, where: str) -> str | None:
    if value is _MISSING or value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise MalformedReportError(
            f"{where}the recipient must be a string, not {type(value).__name__}"
        )
    try:
        return normalize_msisdn(str(value))
    except InvalidRecipientError as exc:
        raise MalformedReportError(f"{where}{exc}") from exc


@attrs.frozen(kw_only=True)
class KapanelDeliveryParser:
    """A configured Kapanel delivery-push parser: ``parser(body, headers) -> [reports]``.

    Build one when the panel uses field names or status values smsgate does not know, and
    give it to :class:`~smsgate.webhooks.WebhookReceiver` or
    :func:`smsgate.fastapi.delivery_router` as ``parser=``.

    Args:
        field_map: For each report field (``"message_id"``, ``"recipient"``, ``"status"``,
            ``"date"``), the key name (or names, in order of preference) the payload uses.
            They are tried before the built-in aliases and matched the same lenient way.
        status_map: Extra status values (matched case-insensitively) and the state each
            means, e.g. ``{"0": DeliveryState.SENT}``; they override the built-in table.
        provider: The name put in each report's ``provider`` (``"ippanel"``: Kapanel is an
            ippanel white-label and shares the backend).

    Raises:
        ConfigurationError: An unknown field name, an empty key name, or a status mapped to
            something that is not a :class:`~smsgate.DeliveryState`.
    """

    field_map: Mapping[str, tuple[str, ...]] = attrs.field(default=None, converter=_field_map)
    status_map: Mapping[str, DeliveryState] = attrs.field(default=None, converter=_status_map)
    provider: str = "ippanel"
    _lookup: Mapping[str, tuple[str, ...]] = attrs.field(init=False, repr=False, eq=False)
    _statuses: Mapping[str, DeliveryState] = attrs.field(init=False, repr=False, eq=False)

    def __attrs_post_init__(self) -> None:
        claimed = {name for names in self.field_map.values() for name in names}
        lookup: dict[str, tuple[str, ...]] = {}
        for field in FIELDS:
            mine = self.field_map.get(field, ())
            # A name the user gave to one field is never an alias of another.
            rest = [a for a in _ALIASES[field] if a not in claimed]
            lookup[field] = tuple(dict.fromkeys([*mine, *rest]))
        object.__setattr__(self, "_lookup", MappingProxyType(lookup))
        object.__setattr__(self, "_statuses", MappingProxyType({**_STATUSES, **self.status_map}))

    def __call__(
        self, body: bytes, headers: Mapping[str, str] | None = None
    ) -> list[DeliveryReport]:
        """Parse one push.

        Args:
            body: The request body, as received.
            headers: The request headers (any case); only ``Content-Type`` is read, for its
                charset.

        Returns:
            One report per object in the body, in order (an empty array gives ``[]``).

        Raises:
            UnreadableReportError: The body is not JSON (a ``MalformedReportError``).
            MalformedReportError: It is JSON but not reports: a missing id or status, a bad
                number or date, a value of the wrong type, an ambiguous key.
            TypeError: ``body`` is not bytes.
        """
        if isinstance(body, bytearray | memoryview):
            body = bytes(body)
        if not isinstance(body, bytes):
            raise TypeError(f"body must be bytes, not {type(body).__name__}")
        payload = _decode(body, headers)
        items, batch = self._unwrap(payload)
        reports = []
        for index, item in enumerate(items):
            where = f"report {index}: " if batch else ""
            if not isinstance(item, dict):
                raise MalformedReportError(
                    f"{where}expected a JSON object, not {type(item).__name__}"
                )
            reports.append(self._report(item, where))
        return reports

    def _unwrap(self, payload: Any) -> tuple[list[Any], bool]:
        if isinstance(payload, list):
            return payload, True
        if not isinstance(payload, dict):
            raise MalformedReportError(
                f"expected a report object or an array of them, not {type(payload).__name__}"
            )
        keys = {_norm(k): k for k in payload}
        if not any(name in keys for name in (*self._lookup["message_id"], *self._lookup["status"])):
            wrappers = [keys[name] for name in _ENVELOPES if name in keys]
            if len(wrappers) == 1:
                inner = payload[wrappers[0]]
                if isinstance(inner, list):
                    return inner, True
                if isinstance(inner, dict):
                    return [inner], False
                raise MalformedReportError(
                    f"{wrappers[0]!r} must hold a report object or an array of them, "
                    f"not {type(inner).__name__}"
                )
        return [payload], False

    def _pick(self, field: str, by_name: Mapping[str, list[Any]], where: str) -> Any:
        for name in self._lookup[field]:
            values = by_name.get(name)
            if values is None:
                continue
            first = values[0]
            if any(type(v) is not type(first) or v != first for v in values[1:]):
                raise MalformedReportError(
                    f"{where}{len(values)} keys spelled like {name!r} disagree about the {field}"
                )
            return first
        return _MISSING

    def _report(self, item: Mapping[str, Any], where: str) -> DeliveryReport:
        by_name: dict[str, list[Any]] = {}
        for key, value in item.items():
            by_name.setdefault(_norm(key), []).append(value)
        message_id = _parse_message_id(
            self._pick("message_id", by_name, where), where, self._lookup["message_id"]
        )
        recipient = _parse_recipient(self._pick("recipient", by_name, where), where)
        status = self._pick("status", by_name, where)
        if status is _MISSING or status is None:
            looked = ", ".join(self._lookup["status"])
            raise MalformedReportError(f"{where}no status (looked for {looked})")
        if isinstance(status, bool) or not isinstance(status, int | str):
            raise MalformedReportError(
                f"{where}the status must be a string, not {type(status).__name__}"
            )
        raw = str(status).strip()
        if not raw or len(raw) > _MAX_STATUS_CHARS:
            raise MalformedReportError(f"{where}the status {_short(status)} is not a status")
        state = self._statuses.get(_norm(raw), DeliveryState.UNKNOWN)
        date = self._pick("date", by_name, where)
        at = None if date is _MISSING else _parse_date(date, where)
        return DeliveryReport(
            message_id=message_id,
            recipient=recipient,
            state=state,
            provider_status=raw,
            provider=self.provider,
            at=at,
        )


def parse_kapanel_delivery(
    body: bytes,
    headers: Mapping[str, str] | None = None,
    *,
    field_map: Mapping[str, str | Sequence[str]] | None = None,
    status_map: Mapping[str, DeliveryState] | None = None,
) -> list[DeliveryReport]:
    """Read a Kapanel (ippanel white-label) delivery push.

    Accepts one report object, an array of them, or ``{"reports": [...]}``; the proposed
    payload of docs/protocols/ippanel.md "Webhook" is::

        {"message_id": 562892393, "from": "+983000505", "to": "+989121234567",
         "status": "delivered", "date": "2024-05-01T08:30:00Z"}

    Key names are matched leniently (any case, ``_``/``-`` ignored, common aliases); see
    ``docs/webhooks.md`` for the full list. Unknown keys are ignored.

    Args:
        body: The request body.
        headers: The request headers; only the ``Content-Type`` charset is read.
        field_map: Key names for fields the built-in aliases miss, e.g.
            ``{"message_id": "smsCode", "recipient": "dest"}``.
        status_map: Extra status values and their :class:`~smsgate.DeliveryState`.

    Returns:
        The reports, in body order. Numbers are E.164, dates aware UTC datetimes,
        ``provider_status`` the raw status and ``state`` its mapping (unknown values become
        ``DeliveryState.UNKNOWN`` with the raw value kept).

    Raises:
        UnreadableReportError: The body is not JSON (a ``MalformedReportError``).
        MalformedReportError: The JSON is not a delivery report.
        ConfigurationError: A bad ``field_map`` or ``status_map``.
    """
    if field_map is None and status_map is None:
        return _DEFAULT_PARSER(body, headers)
    parser = KapanelDeliveryParser(field_map=field_map, status_map=status_map)
    return parser(body, headers)


_DEFAULT_PARSER: Final = KapanelDeliveryParser()
