"""The shared op call, the error table and the lenient parsers of the ippanel backend.

Everything here follows ``shared/protocols/ippanel.md`` (section numbers below are that
page's). The task modules (``_sending``, ``_reports``, ``_phonebooks``, ``_targeting``,
``_account``) build on :class:`IppanelBase`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from types import MappingProxyType
from typing import Any, Final

from ... import _redact
from ..._models import DeliveryState, SendReceipt
from ..._phone import _DIGITS, normalize_msisdn
from ...exceptions import (
    AccountRestrictedError,
    AuthenticationError,
    ConfigurationError,
    InsufficientCreditError,
    InvalidMessageError,
    InvalidRecipientError,
    InvalidSenderError,
    MessageRejectedError,
    PatternError,
    ProviderError,
    ProviderUnavailableError,
    RecipientRejectedError,
    SendWindowError,
    SmsGateError,
    SubAccountRejectedError,
    TooManyRecipientsError,
    UnknownMessageError,
)
from .._http import HttpAnswer, HttpGateway

PROVIDER: Final = "ippanel"

# Iran has kept UTC+03:30 all year since DST was abolished in 2022; a fixed offset avoids
# depending on the system's tz database for the scheduled-send field (§3 ``time``).
TEHRAN: Final = timezone(timedelta(hours=3, minutes=30), "Asia/Tehran")


# -- the error table (protocols/ippanel.md §6.1) ------------------------------------------

_E = tuple[type[ProviderError], str]

#: Every result code of protocols/ippanel.md §6.1, to the error class raised and its English
#: meaning. The provider's own text always travels in the error's ``detail``.
ERROR_CODES: Mapping[int, _E] = MappingProxyType(
    {
        1: (MessageRejectedError, "the message text is empty"),
        2: (AccountRestrictedError, "the user is restricted"),
        3: (InvalidSenderError, "the sender line does not belong to this account"),
        # We never send an empty list (checked before any I/O), so the provider saying so
        # means it dropped every number it was given as unreadable.
        4: (RecipientRejectedError, "the recipient list is empty"),
        5: (InsufficientCreditError, "insufficient credit"),
        7: (InvalidSenderError, "the line is not suitable for bulk sending"),
        9: (SendWindowError, "the line cannot send at this hour"),
        21: (MessageRejectedError, "invalid voice-file extension"),
        22: (MessageRejectedError, "invalid voice-file size"),
        23: (MessageRejectedError, "invalid retry count for a voice message"),
        98: (TooManyRecipientsError, "the maximum number of recipients was exceeded"),
        99: (ProviderUnavailableError, "the operator of the sender line is down"),
        100: (RecipientRejectedError, "invalid phonebook contact number"),
        101: (ProviderError, "the contact number is already in the phonebook"),
        102: (ProviderError, "the contact number was saved to the phonebook"),
        105: (ProviderError, "phonebook error"),
        111: (TooManyRecipientsError, "too many recipients for a voice message"),
        131: (MessageRejectedError, "the voice-message retry count must be 1"),
        132: (MessageRejectedError, "the voice-file URL is missing"),
        266: (InvalidSenderError, "a shared line may not be used"),
        301: (SubAccountRejectedError, "the user name contains a special character"),
        302: (AccountRestrictedError, "pricing has not been set up for this account"),
        303: (SubAccountRejectedError, "the user name is missing"),
        304: (SubAccountRejectedError, "the user name is already taken"),
        305: (SubAccountRejectedError, "the user name is missing"),
        306: (SubAccountRejectedError, "the national id is missing"),
        307: (SubAccountRejectedError, "the national id is invalid"),
        308: (SubAccountRejectedError, "the birth-certificate number is invalid"),
        309: (SubAccountRejectedError, "the birth-certificate number is missing"),
        310: (SubAccountRejectedError, "the e-mail address is missing"),
        311: (SubAccountRejectedError, "the phone number is missing"),
        312: (SubAccountRejectedError, "the phone number is invalid"),
        313: (SubAccountRejectedError, "the address is missing"),
        314: (SubAccountRejectedError, "the mobile number is missing"),
        315: (SubAccountRejectedError, "the mobile number is invalid"),
        316: (SubAccountRejectedError, "the access level is invalid"),
        317: (SubAccountRejectedError, "the password is missing"),
        404: (PatternError, "the pattern is not available"),
        455: (ProviderError, "the scheduled sending of this bulk was cancelled"),
        456: (UnknownMessageError, "the bulk id is invalid"),
        458: (ProviderError, "the ticket code is invalid"),
        962: (AuthenticationError, "the user name or password is incorrect"),
        963: (AccountRestrictedError, "the account has no access to this"),
        964: (AccountRestrictedError, "the account has no reseller access"),
        970: (PatternError, "the values sent for the pattern are invalid"),
        971: (PatternError, "the pattern is invalid"),
        972: (PatternError, "the recipient is invalid for pattern sending"),
        992: (SendWindowError, "sending is allowed only between 08:00 and 23:00"),
        # The request itself is malformed: a bug on our side, not a user error.
        993: (ProviderError, "the phonebook list must be an array"),
        994: (AccountRestrictedError, "a bank-card image must be uploaded (KYC)"),
        995: (AccountRestrictedError, "shared lines need a registered bank card (KYC)"),
        996: (PatternError, "the pattern is not active"),
        997: (PatternError, "this account may not send with this pattern"),
        998: (AccountRestrictedError, "the national card or bank card is not approved"),
        1001: (SubAccountRejectedError, "the user name format is invalid"),
        1002: (SubAccountRejectedError, "the password is too simple"),
        1003: (SubAccountRejectedError, "registration failed; contact the provider's support"),
        1004: (SubAccountRejectedError, "registration failed; contact the provider's support"),
        1005: (SubAccountRejectedError, "registration failed; contact the provider's support"),
        1006: (MessageRejectedError, "the send date is in the past"),
    }
)

# Per-code flag overrides. Code 99 is the provider's own "operator down" verdict on a
# request it did not carry out: nothing went out (unlike an HTTP 5xx, see _http).
_ERROR_FLAGS: Mapping[int, Mapping[str, bool]] = MappingProxyType(
    {99: MappingProxyType({"maybe_sent": False})}
)

#: Delivery statuses of ``op=delivery`` (protocols/ippanel.md §7.1) to the common states.
DELIVERY_STATES: Mapping[str, DeliveryState] = MappingProxyType(
    {
        "notsync": DeliveryState.QUEUED,
        "send": DeliveryState.SENT,
        "pending": DeliveryState.AT_OPERATOR,
        "delivered": DeliveryState.DELIVERED,
        "failed": DeliveryState.UNDELIVERED,
        "discarded": DeliveryState.BLOCKED,
    }
)


def _frozen(value: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return MappingProxyType(dict(value or {}))


# -- log and exception hygiene ------------------------------------------------------------

# The one redaction module (smsgate/_redact.py) does the work; these names stay for the
# task modules. The HTTP base registers each gateway's redactor and installs the filter on
# the HTTP libraries' loggers when the gateway opens.
_LOG_FILTER: Final = _redact.LOG_FILTER


def _install_log_filter() -> None:
    """Kept for the task modules: the HTTP base installs the filter on first open."""


def _drop_secret_cause(exc: BaseException, scrub: Callable[[str], str]) -> None:
    """Detach a chained exception that shows a credential (``_redact.drop_secret_chain``)."""
    _redact.drop_secret_chain(exc, scrub)


# -- small parsers (pure) -----------------------------------------------------------------

_INT = re.compile(r"[+-]?\d+")
_BULK_ID = re.compile(r"\d{1,30}")
_SENDER = re.compile(r"\+?\d{3,20}")


def _as_int(value: Any) -> int | None:
    """An integer from ``0``, ``"0"``, ``" 0 "``, ``0.0`` or Persian digits; else ``None``."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        text = value.translate(_DIGITS).strip()
        if _INT.fullmatch(text):
            return int(text)
    return None


def _as_id(value: Any) -> str | None:
    """An id from a string or a number (protocols §2.4: the type is not pinned down)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, str):
        text = value.translate(_DIGITS).strip()
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
        # protocols §4.2 credit: the official plugin splits on "." or "/".
        text = value.translate(_DIGITS).strip().replace("/", ".").replace("٫", ".")
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


def _as_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int | float | Decimal):
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
    try:
        return normalize_msisdn(value)
    except InvalidRecipientError:
        return value.strip()


def _parse_delivery_item(item: Any) -> tuple[str, str] | None:
    """``"+989121234567:delivered"`` -> (number, status); ``None`` if unreadable."""
    if not isinstance(item, str) or ":" not in item:
        return None
    number, _, status = item.strip().rpartition(":")  # §12.1.5: split on the last colon
    number, status = number.strip(), status.strip()
    if not number or not status:
        return None
    return _msisdn_or_raw(number), status


def delivery_state(status: str) -> DeliveryState:
    """The common state of an ippanel delivery status (case-insensitive; unknown -> UNKNOWN)."""
    return DELIVERY_STATES.get(status.strip().lower(), DeliveryState.UNKNOWN)


# -- input checks (before any I/O) --------------------------------------------------------


def _require_text(value: object, what: str, error: type[SmsGateError] = ConfigurationError) -> str:
    if not isinstance(value, str) or not value.strip():
        raise error(f"{what} must be a non-empty str")
    return value


def _check_text(text: object) -> str:
    if not isinstance(text, str):
        raise InvalidMessageError(f"the text must be a str, not {type(text).__name__}")
    if not text.strip():
        raise InvalidMessageError("the text is empty")
    return text


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
    # protocols §12.1.2: a compact JSON array of strings inside one form field.
    return json.dumps(list(values), separators=(",", ":"), ensure_ascii=False)


def _format_send_at(when: datetime) -> str:
    # protocols §3 ``time``: "2016-07-30 12:50:50", Iran local time (our reading).
    if when.tzinfo is not None:
        when = when.astimezone(TEHRAN)
    return when.strftime("%Y-%m-%d %H:%M:%S")


# -- the base every task module builds on ---------------------------------------------------


class IppanelBase(HttpGateway):
    """The shared state and op call of :class:`~smsgate.IppanelGateway` (see there)."""

    name = PROVIDER
    max_recipients: int
    _username: str
    _password: str
    _sender: str | None

    # -- plumbing shared with the sub-APIs ---------------------------------------------

    def _recipients(self, to: str | Sequence[str]) -> tuple[str, ...]:
        given: object = to  # checked at run time too: callers are not always type-checked
        if isinstance(given, str):
            numbers: Sequence[object] = [to]
        elif isinstance(given, Sequence) and not isinstance(given, bytes | bytearray):
            numbers = given
        else:
            raise InvalidRecipientError(
                f"'to' must be a str or a sequence of str, not {type(to).__name__}", value=to
            )
        if not numbers:
            raise InvalidRecipientError("no recipients given", value=to)
        if len(numbers) > self.max_recipients:
            raise TooManyRecipientsError(
                f"{len(numbers)} recipients; this gateway sends at most "
                f"{self.max_recipients} per request (checked before sending)",
                provider=self.name,
            )
        seen: set[str] = set()
        out: list[str] = []
        for number in numbers:
            if not isinstance(number, str):
                raise InvalidRecipientError(
                    f"a phone number must be a str, not {type(number).__name__}", value=number
                )
            msisdn = normalize_msisdn(number)
            if msisdn in seen:
                raise InvalidRecipientError(
                    f"{msisdn} is given more than once; it would be sent (and charged) twice",
                    value=number,
                )
            seen.add(msisdn)
            out.append(msisdn)
        return tuple(out)

    def _line(self, sender: str | None) -> str:
        if sender is not None:
            return _check_sender(sender)
        if self._sender is None:
            raise ConfigurationError(
                "no sender line: pass sender= here or to the IppanelGateway constructor"
            )
        return self._sender

    def _bulk_ref(self, ref: SendReceipt | str) -> str:
        if isinstance(ref, SendReceipt):
            if ref.provider != self.name:
                raise UnknownMessageError(
                    provider=self.name, detail=f"a receipt from {ref.provider!r}, not ippanel"
                )
            ref = ref.message_id
        given: object = ref
        bulk = _as_bulk_id(given) if isinstance(given, str | int) else None
        if bulk is None:
            raise UnknownMessageError(provider=self.name, detail=f"not a bulk id: {ref!r}")
        return bulk

    def _receipt(
        self, bulk: str, recipients: Sequence[str], line: str, payload: Any
    ) -> SendReceipt:
        return SendReceipt(
            message_id=bulk,
            message_ids=dict.fromkeys(recipients, bulk),
            provider=self.name,
            recipients=tuple(recipients),
            sender=line,
            raw=payload,
        )

    async def _op(
        self, op: str, fields: Mapping[str, str], *, idempotent: bool
    ) -> tuple[Any, HttpAnswer]:
        """POST one op to ``/services.jspd``, form-encoded (protocols §12.1.2)."""
        data = {"uname": self._username, "pass": self._password, "op": op, **fields}
        answer = await self._request(
            "POST", "/services.jspd", data=data, idempotent=idempotent, operation=op
        )
        return self._json(answer, idempotent=idempotent), answer

    def _unwrap(self, payload: Any, answer: HttpAnswer, *, idempotent: bool) -> Any:
        """The data of a success answer, or the mapped error of a refusal.

        ``[code, data]`` (§2.3) and the ``{"status": {"code": …}, "data": …}`` V2 envelope
        are unwrapped; anything else (``checkmessage``'s object, a pattern endpoint's bare
        bulk id) is returned as it is.
        """
        if isinstance(payload, list):
            if len(payload) not in (1, 2):
                raise self._protocol_error(
                    "ippanel answered a list that is not [code, data]",
                    answer,
                    idempotent=idempotent,
                )
            code = _as_int(payload[0])
            if code is None:
                raise self._protocol_error(
                    "ippanel answered without a readable result code",
                    answer,
                    idempotent=idempotent,
                )
            data = payload[1] if len(payload) == 2 else None
            if code != 0:
                raise self._error(code, data)
            return data
        if isinstance(payload, Mapping) and isinstance(payload.get("status"), Mapping):
            status = payload["status"]
            code = _as_int(status.get("code"))
            if code is None:
                raise self._protocol_error(
                    "ippanel answered a status without a code", answer, idempotent=idempotent
                )
            if code != 0:
                raise self._error(code, status.get("errorMessage") or status.get("message"))
            return payload.get("data")
        return payload

    def _error(self, code: int, data: Any) -> ProviderError:
        """The error for a non-zero result code, with the provider's text as ``detail``."""
        detail = _as_text(data)
        if detail is None and data is not None:
            detail = json.dumps(data, ensure_ascii=False, default=str)
        detail = None if detail is None else self._scrub(detail.strip()) or None
        cls, message = ERROR_CODES.get(code, (ProviderError, "ippanel refused the request"))
        flags = _ERROR_FLAGS.get(code, {})
        return cls(message, provider=self.name, code=code, detail=detail, **flags)

    def _bulk_from_envelope(self, payload: Any, answer: HttpAnswer) -> str:
        if not isinstance(payload, list | Mapping):
            # A send answers [code, data]; a bare value is no protocol we know, and reading
            # it as an id could report a refused send as sent.
            raise self._protocol_error("ippanel's send answer is not [code, data]", answer)
        data = self._unwrap(payload, answer, idempotent=False)
        bulk = _as_bulk_id(data)
        if bulk is None:
            raise self._protocol_error("ippanel accepted the send but gave no bulk id", answer)
        return bulk

    def _second_level(self, data: str, answer: HttpAnswer) -> Any:
        # §12.1.4: list payloads are JSON encoded a second time inside the data string.
        text = data.lstrip("\ufeff").strip()
        try:
            return json.loads(text)
        except (ValueError, RecursionError):
            raise self._protocol_error(
                "ippanel's data string is not JSON", answer, idempotent=True
            ) from None

    def _json_list(self, data: Any, answer: HttpAnswer) -> list[Any]:
        """A list payload, decoded a second time when it arrives as a JSON string."""
        if data is None:
            return []
        if isinstance(data, str):
            if not data.strip():
                return []
            data = self._second_level(data, answer)
        if isinstance(data, Mapping):
            # Some panels key lists by position: {"0": {...}, "1": {...}}.
            data = list(data.values())
        if not isinstance(data, list):
            raise self._protocol_error("ippanel's data is not a list", answer, idempotent=True)
        return data

    def _objects(self, data: Any, answer: HttpAnswer) -> Iterator[Mapping[str, Any]]:
        for item in self._json_list(data, answer):
            if isinstance(item, str) and item.strip().startswith("{"):
                item = self._second_level(item, answer)  # §4.4: elements may be JSON too
            if not isinstance(item, Mapping):
                raise self._protocol_error(
                    "ippanel's list holds something that is not an object",
                    answer,
                    idempotent=True,
                )
            yield item

    def _count(self, data: Any, answer: HttpAnswer) -> int:
        count = _as_int(data)
        if count is None or count < 0:
            raise self._protocol_error("ippanel's count is not a number", answer, idempotent=True)
        return count

    async def _query_list(self, op: str, fields: Mapping[str, str]) -> tuple[Any, HttpAnswer]:
        payload, answer = await self._op(op, fields, idempotent=True)
        return self._unwrap(payload, answer, idempotent=True), answer

    async def _bulk_send(self, op: str, fields: Mapping[str, str]) -> SendReceipt:
        payload, answer = await self._op(op, fields, idempotent=False)
        bulk = self._bulk_from_envelope(payload, answer)
        return self._receipt(bulk, (), fields["from"], payload)


class _SubAPI:
    __slots__ = ("_gw",)

    def __init__(self, gateway: IppanelBase) -> None:
        self._gw = gateway

    def __repr__(self) -> str:
        return f"<{type(self).__name__} of {self._gw!r}>"
