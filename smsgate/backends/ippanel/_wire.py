"""The shared op call, the error table and the lenient parsers of the ippanel backend.

Everything here follows ``docs/protocols/ippanel.md`` (the section names quoted below are
that page's headings). The task modules (``_sending``, ``_reports``, ``_phonebooks``,
``_targeting``, ``_account``) build on :class:`IppanelBase`; the pure readers and input
checks they share are in ``_parsing``.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from types import MappingProxyType
from typing import Any, Final

from ... import _redact
from ..._models import DeliveryState, SendReceipt
from ..._phone import normalize_recipients
from ..._states import IPPANEL_STATES
from ...exceptions import (
    AccountRestrictedError,
    AuthenticationError,
    ConfigurationError,
    InsufficientCreditError,
    InvalidSenderError,
    MessageRejectedError,
    PatternError,
    ProviderError,
    ProviderUnavailableError,
    RecipientRejectedError,
    SendWindowError,
    SubAccountRejectedError,
    TooManyRecipientsError,
    UnknownMessageError,
)
from .._http import HttpAnswer, HttpGateway
from .._parse import as_int, as_text
from ._parsing import _UNREAD, _as_bulk_id, _check_sender, _is_auth_text, loads_lenient

PROVIDER: Final = "ippanel"


# -- the error table (docs/protocols/ippanel.md, "Result codes") ---------------------------

#: Every result code of docs/protocols/ippanel.md ("Result codes"), to the error class raised
#: and its English meaning. The provider's own text always travels in the error's ``detail``.
#: The shape (``code -> (error class, meaning)``, public types only) is the Negin table's too.
ERROR_CODES: Mapping[int, tuple[type[ProviderError], str]] = MappingProxyType(
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

#: Delivery statuses of ``op=delivery`` to the common states (docs/protocols/ippanel.md,
#: "Delivery statuses"); the one table of ``smsgate._states``, shared with the webhook parser.
DELIVERY_STATES: Mapping[str, DeliveryState] = IPPANEL_STATES

# The usual answer to a send, ``[0,"<digits>"]`` exactly as the provider writes it: read
# without the lenient JSON path (the same value it gives, for a fifth of the work).
_PLAIN_ANSWER = re.compile(rb'\[0,"([0-9]{1,30})"\]')

#: The smallest number read as a bulk id. Every result code the documents and clients list
#: is below 1,100 (the REST family's reach 13,012), and every bulk id seen has 8 or 9 digits
#: (docs/protocols/ippanel.md, "Bare numbers"). A smaller number is never a receipt.
MIN_BULK_ID: Final = 100_000


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


# -- the base every task module builds on ---------------------------------------------------


class IppanelBase(HttpGateway):
    """The shared state and op call of :class:`~smsgate.IppanelGateway` (see there)."""

    name = PROVIDER
    max_recipients: int
    _username: str
    _password: str
    _sender: str | None
    #: The spelling of the jobs-list op that worked last (see ``JobAPI.list``).
    _jobs_op: str = "jobslist"

    # -- plumbing shared with the sub-APIs ---------------------------------------------

    def _jobs_ops(self) -> tuple[str, str]:
        """Both spellings of the jobs-list op, the one that worked last first."""
        return ("joblist", "jobslist") if self._jobs_op == "joblist" else ("jobslist", "joblist")

    def _recipients(self, to: str | Sequence[str]) -> tuple[str, ...]:
        return normalize_recipients(to, limit=self.max_recipients, provider=self.name)

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
        self,
        op: str,
        fields: Mapping[str, str],
        *,
        idempotent: bool,
    ) -> tuple[Any, HttpAnswer]:
        """POST one op to ``/services.jspd``, form-encoded (docs/protocols/ippanel.md)."""
        data = {"uname": self._username, "pass": self._password, "op": op, **fields}
        answer = await self._request(
            "POST",
            "/services.jspd",
            data=data,
            idempotent=idempotent,
            operation=op,
        )
        return self._decode(answer, idempotent=idempotent), answer

    def _decode(self, answer: HttpAnswer, *, idempotent: bool) -> Any:
        """The answer's JSON; the documents' bare English login error is an
        :class:`~smsgate.AuthenticationError` whether it comes quoted or not."""
        plain = _PLAIN_ANSWER.fullmatch(answer.content)
        if plain is not None:
            return [0, plain.group(1).decode("ascii")]
        text = answer.text()
        if _is_auth_text(text):
            raise self._auth_text_error(text)
        payload: Any = _UNREAD
        with contextlib.suppress(ValueError):
            payload = loads_lenient(text)
        if payload is _UNREAD:
            if text.lower() == "null":  # the Kapanel page's "Null", unquoted
                return None
            # Raised outside the except block: the decoder's error would keep the body.
            raise self._protocol_error(
                "ippanel answered with something that is not JSON", answer, idempotent=idempotent
            )
        if _is_auth_text(payload):
            raise self._auth_text_error(str(payload))
        return payload

    def _auth_text_error(self, text: str) -> AuthenticationError:
        return AuthenticationError(
            ERROR_CODES[962][1], provider=self.name, detail=self._scrub(text.strip())
        )

    def _unwrap(self, payload: Any, answer: HttpAnswer, *, idempotent: bool) -> Any:
        """The data of a success answer, or the mapped error of a refusal.

        ``[code, data]`` (docs/protocols/ippanel.md "Envelope") and the
        ``{"status": {"code": …}, "data": …}`` V2 envelope are unwrapped; anything else
        (``checkmessage``'s object, a pattern endpoint's bare bulk id) is returned as it is.
        """
        if isinstance(payload, list):
            if len(payload) not in (1, 2):
                raise self._protocol_error(
                    "ippanel answered a list that is not [code, data]",
                    answer,
                    idempotent=idempotent,
                )
            code = as_int(payload[0])
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
            code = as_int(status.get("code"))
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
        detail = as_text(data)
        if detail is None and data is not None:
            detail = json.dumps(data, ensure_ascii=False, default=str)
        detail = None if detail is None else self._scrub(detail.strip()) or None
        cls, message = ERROR_CODES.get(code, (ProviderError, "ippanel refused the request"))
        flags = _ERROR_FLAGS.get(code, {})
        return cls(message, provider=self.name, code=code, detail=detail, **flags)

    def _send_answer(self, payload: Any, answer: HttpAnswer) -> str:
        """The bulk id of an accepted send, or the error of a refusal.

        THE rule for every send-like answer (``send``, ``sendPattern``, both pattern
        endpoints, ``booksend``, ``postalcodesend``, ``jobssend``), documented in
        docs/protocols/ippanel.md "Bare numbers":

        * ``[code, data]`` / the V2 envelope: a non-zero code is that code's refusal; with
          code 0 the data must be a bulk id.
        * A bare number (JSON or numeric string) of at least :data:`MIN_BULK_ID` is a bulk
          id; a smaller one is never a receipt: a known result code is that refusal, any
          other is a refusal of unknown meaning that may have been sent (``maybe_sent``:
          reconciled, never resent).
        * Anything else could not be read (``ProtocolError``, ``maybe_sent``).
        """
        enveloped = isinstance(payload, list | Mapping)
        value = self._unwrap(payload, answer, idempotent=False) if enveloped else payload
        number = as_int(value)
        if number is None:
            what = "accepted the send but gave no bulk id" if enveloped else "answered no bulk id"
            raise self._protocol_error(f"ippanel {what}", answer)
        if number >= MIN_BULK_ID:
            return str(number)
        if enveloped:
            raise self._protocol_error(
                f"ippanel accepted the send but its id {number} is too small to be a bulk id",
                answer,
            )
        if number in ERROR_CODES:
            raise self._error(number, None)
        raise ProviderError(
            f"ippanel answered {number}: too small to be a bulk id and not a known code",
            provider=self.name,
            code=number,
            maybe_sent=True,
            fallback_ok=False,
        )

    def _second_level(self, data: str, answer: HttpAnswer) -> Any:
        # docs/protocols/ippanel.md "Envelope": list payloads are JSON encoded a second time
        # inside the data string.
        try:
            return loads_lenient(data)
        except ValueError:
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
                item = self._second_level(
                    item, answer
                )  # "Other ops seen in clients": elements may be JSON
            if not isinstance(item, Mapping):
                raise self._protocol_error(
                    "ippanel's list holds something that is not an object",
                    answer,
                    idempotent=True,
                )
            yield item

    def _count(self, data: Any, answer: HttpAnswer) -> int:
        count = as_int(data)
        if count is None or count < 0:
            raise self._protocol_error("ippanel's count is not a number", answer, idempotent=True)
        return count

    async def _query_list(self, op: str, fields: Mapping[str, str]) -> tuple[Any, HttpAnswer]:
        with self._observe(op):
            payload, answer = await self._op(op, fields, idempotent=True)
            return self._unwrap(payload, answer, idempotent=True), answer

    async def _bulk_send(self, op: str, fields: Mapping[str, str]) -> SendReceipt:
        with self._observe(op):
            payload, answer = await self._op(op, fields, idempotent=False)
            bulk = self._send_answer(payload, answer)
        return self._receipt(bulk, (), fields["from"], payload)


class _SubAPI:
    __slots__ = ("_gw",)

    def __init__(self, gateway: IppanelBase) -> None:
        self._gw = gateway

    def __repr__(self) -> str:
        return f"<{type(self).__name__} of {self._gw!r}>"
