"""Pure readers and input checks of the ippanel backend (no I/O, no gateway state).

Split from ``_wire`` (the op call and the error table) so that each stays small. Sources:
docs/protocols/ippanel.md, the sections named in each comment.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from types import MappingProxyType
from typing import Any, Final

from ..._models import DeliveryState
from ..._phone import normalize_msisdn
from ..._states import ippanel_state
from ...exceptions import ConfigurationError, InvalidRecipientError, SmsGateError
from .._parse import DIGITS

# Iran has kept UTC+03:30 all year since DST was abolished in 2022; a fixed offset avoids
# depending on the system's tz database for the scheduled-send field
# (docs/protocols/ippanel.md "Common fields": ``time``).
TEHRAN: Final = timezone(timedelta(hours=3, minutes=30), "Asia/Tehran")

# The English error text the documents print for ``delivery`` with no code
# (docs/protocols/ippanel.md, "delivery").
_AUTH_TEXT: Final = "the username or password is incorrect"


def _frozen(value: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return MappingProxyType(dict(value or {}))


# -- small parsers (pure) -----------------------------------------------------------------

_BULK_ID = re.compile(r"\d{1,30}")
_SENDER = re.compile(r"\+?\d{3,20}")


def _as_id(value: Any) -> str | None:
    """An id from a string or a number (docs/protocols/ippanel.md "send": the type varies)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, str):
        text = value.translate(DIGITS).strip()
        return text or None
    return None


def _as_bulk_id(value: Any) -> str | None:
    """A positive numeric bulk id, as a string; else ``None``."""
    text = _as_id(value)
    if text is None or not _BULK_ID.fullmatch(text) or int(text) <= 0:
        return None
    return str(int(text))


def _as_decimal(value: Any) -> Decimal | None:
    """A finite decimal; ``.``, ``/`` (Persian decimal mark) or ``٫`` as the decimal mark."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | Decimal):
        number = Decimal(value)
    elif isinstance(value, float):
        number = Decimal(repr(value))
    elif isinstance(value, str):
        # docs/protocols/ippanel.md "credit": the official plugin splits on "." or "/".
        text = value.translate(DIGITS).strip().replace("/", ".").replace("٫", ".")
        text = text.replace(",", "").replace("٬", "").replace(" ", "")
        if not re.fullmatch(r"[+-]?(\d+(\.\d*)?|\.\d+)", text):
            return None
        try:
            number = Decimal(text)
        except InvalidOperation:  # pragma: no cover - the pattern above rules it out
            return None
    else:
        return None
    return number if number.is_finite() else None


def _verbatim(value: Any) -> str | None:
    """Free text (a title, a message, a line, a time) as the provider wrote it.

    Unlike :func:`smsgate.backends._parse.as_text` (ids and codes: ``"007"`` reads as
    ``"7"``), a numeric string keeps its spelling here; a JSON number becomes its str.
    """
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, int | float | Decimal) and not isinstance(value, bool):
        return str(value)
    return None


def _first(obj: Mapping[str, Any], *keys: str) -> Any:
    """The first present key, matched case-insensitively (field names are undocumented)."""
    lowered = {str(k).lower(): v for k, v in obj.items()}
    for key in keys:
        if key in lowered and lowered[key] is not None:
            return lowered[key]
    return None


def _msisdn_or_raw(value: str) -> str:
    """E.164 when the number reads as an Iranian mobile; else the digits as given, cleaned.

    The documents' own delivery samples carry a number one digit short (``+98910000098``)
    and Persian digits; such a number is kept (ASCII digits, no spaces), never dropped.
    """
    try:
        return normalize_msisdn(value)
    except InvalidRecipientError:
        return "".join(value.translate(DIGITS).split())


def _parse_delivery_item(item: Any) -> tuple[str, str] | None:
    """``"+989121234567:delivered"`` -> (number, status); ``None`` if unreadable."""
    if not isinstance(item, str) or ":" not in item:
        return None
    # docs/protocols/ippanel.md "delivery": split on the last colon; the samples of two
    # documents break the line around it, so white space on either side is dropped.
    number, _, status = item.strip().rpartition(":")
    number, status = number.strip(), status.strip()
    if not number or not status:
        return None
    return _msisdn_or_raw(number), status


def delivery_state(status: str) -> DeliveryState:
    """The common state of an ippanel delivery status (case-insensitive; unknown -> UNKNOWN)."""
    return ippanel_state(status)


def _is_auth_text(value: object) -> bool:
    """Whether an answer is the documents' bare English login error (no code)."""
    if not isinstance(value, str):
        return False
    return value.strip().strip("\"'“”").strip().rstrip(".").lower() == _AUTH_TEXT


_UNREAD: Final = object()

_QUOTES = str.maketrans({"\u201c": '"', "\u201d": '"', "\u201e": '"', "\u2033": '"'})
# ``json.loads(text, strict=False)`` builds a new decoder on every call; this is that decoder.
_LENIENT = json.JSONDecoder(strict=False)


def loads_lenient(text: str) -> Any:
    """JSON as the documents print it: raw line breaks inside strings and typographic quotes.

    Raises:
        ValueError: Not JSON even so.
    """
    text = text.lstrip("\ufeff").strip()
    try:
        return _LENIENT.decode(text)
    except RecursionError:
        raise ValueError("too deeply nested") from None
    except ValueError:
        fixed = text.translate(_QUOTES)
        if fixed == text:
            raise
    try:
        return _LENIENT.decode(fixed)
    except RecursionError:
        raise ValueError("too deeply nested") from None


# -- input checks (before any I/O) --------------------------------------------------------


def _require_text(value: object, what: str, error: type[SmsGateError] = ConfigurationError) -> str:
    if not isinstance(value, str) or not value.strip():
        raise error(f"{what} must be a non-empty str")
    return value


def _check_sender(sender: object, *, what: str = "sender") -> str:
    if not isinstance(sender, str) or not _SENDER.fullmatch(sender.strip()):
        raise ConfigurationError(
            f"{what} must be a line number such as '+983000505' or '3000505', not {sender!r}"
        )
    return sender.strip()


def _check_ids(values: object, what: str) -> list[str]:
    if isinstance(values, str | int):
        values = [values]
    if not isinstance(values, Sequence) or isinstance(values, bytes):
        raise InvalidRecipientError(f"{what} must be a sequence of ids", value=values)
    out: list[str] = []
    for value in values:
        text = _as_id(value) if isinstance(value, str | int) else None
        if text is None or not text.isdigit():
            raise InvalidRecipientError(f"{what} holds an invalid id: {value!r}", value=value)
        out.append(text)
    if not out:
        raise InvalidRecipientError(f"{what} is empty", value=values)
    return out


def _to_json_array(values: Sequence[str]) -> str:
    # docs/protocols/ippanel.md "Common fields": a compact JSON array inside one form field.
    joined = "".join(values)
    if joined.isascii() and joined.isdigit():
        # Numbers and ids (every send): JSON writes a string of ASCII digits as it is, so
        # the same text without the encoder (a third of a one-number send's own cost).
        return '["' + '","'.join(values) + '"]'
    return json.dumps(list(values), separators=(",", ":"), ensure_ascii=False)


def _format_send_at(when: datetime) -> str:
    # docs/protocols/ippanel.md "Common fields" ``time``: "2016-07-30 12:50:50", Iran local
    # time (inferred).
    if when.tzinfo is not None:
        when = when.astimezone(TEHRAN)
    return when.strftime("%Y-%m-%d %H:%M:%S")
