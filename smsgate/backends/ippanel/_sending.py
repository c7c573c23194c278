"""Sending: ``op=send`` and the three pattern variants (docs/protocols/ippanel.md, "send" and
"Pattern endpoints")."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Final, Literal

from ..._models import SendReceipt
from ..._phone import normalize_msisdn, to_local
from ..._text import check_text
from ...exceptions import (
    InvalidMessageError,
    InvalidRecipientError,
    TransportError,
)
from ._parsing import _format_send_at, _require_text, _to_json_array
from ._wire import _LOG_FILTER, IppanelBase, _drop_secret_cause

#: Where :meth:`IppanelGateway.send_pattern` sends (docs/protocols/ippanel.md, "Pattern
#: endpoints"): ``"patterns/pattern"`` the URL endpoint most clients use (credentials in the
#: query string), ``"sendPattern"`` the ``op=sendPattern`` form op of the ippanel PDF, and
#: ``"api/select"`` the JSON ``op=pattern`` of the official FarazSMS plugin. The
#: default is ``"api/select"``: it carries the credentials in the body, never in a URL that
#: proxies, access logs and error messages would keep (RELIABILITY.md promise 7).
PatternEndpoint = Literal["patterns/pattern", "sendPattern", "api/select"]
_PATTERN_ENDPOINTS: Final = ("patterns/pattern", "sendPattern", "api/select")


class SendingMixin(IppanelBase):
    """``send`` and ``send_pattern`` of :class:`~smsgate.IppanelGateway`."""

    pattern_endpoint: PatternEndpoint

    # -- messaging ---------------------------------------------------------------------

    async def send(
        self,
        to: str | Sequence[str],
        text: str,
        *,
        sender: str | None = None,
        send_at: datetime | None = None,
    ) -> SendReceipt:
        """Send one text to one or more numbers in one request (``op=send``).

        Numbers are normalised first; a number given twice (after normalisation) is
        refused rather than silently sent, and charged, twice.

        Args:
            to: One number or a sequence of up to :attr:`max_recipients` numbers.
            text: The text.
            sender: The line to send from; default the gateway's ``sender``.
            send_at: Schedule the send (the ``time`` field); naive datetimes are Tehran
                local time.

        Returns:
            A receipt whose ``message_id`` is the bulk id (every recipient maps to it).

        Raises:
            InvalidRecipientError: A bad or repeated number, or none (before any I/O).
            InvalidMessageError: An empty text, a lone surrogate, or a text over
                ``MAX_TEXT_CHARS`` (before any I/O).
            TooManyRecipientsError: More than :attr:`max_recipients` numbers (before any I/O).
            ConfigurationError: No sender line.
            ProviderError: The provider refused (see :data:`ERROR_CODES`).
            TransportError: No usable answer.
        """
        recipients = self._recipients(to)
        text = check_text(text)
        line = self._line(sender)
        fields = {
            "from": line,
            "message": text,
            # "0" and the subscriber digits: to_local() of numbers already in E.164.
            "to": _to_json_array(["0" + r[3:] for r in recipients]),
        }
        if send_at is not None:
            if not isinstance(send_at, datetime):
                raise InvalidMessageError("send_at must be a datetime")
            fields["time"] = _format_send_at(send_at)
        with self._observe("send", recipients=len(recipients), text=text):
            payload, answer = await self._op("send", fields, idempotent=False)
            bulk = self._send_answer(payload, answer)
        return self._receipt(bulk, recipients, line, payload)

    async def send_pattern(
        self,
        to: str,
        *,
        pattern_code: str,
        values: Mapping[str, str | int | Decimal],
        sender: str | None = None,
    ) -> SendReceipt:
        """Send a registered, active pattern (template) to one number.

        The wire variant is :attr:`pattern_endpoint` (docs/protocols/ippanel.md, "Pattern
        endpoints"). Patterns go out 24
        hours a day; one recipient per request (the provider ignores extra numbers).

        Args:
            to: The recipient.
            pattern_code: The pattern's code in the panel, e.g. ``"ybnldnpo73"``.
            values: The pattern's variables (``%name%`` in its text) to their values.
            sender: The line; default the gateway's ``sender``.

        Returns:
            A receipt whose ``message_id`` is the bulk id.

        Raises:
            InvalidRecipientError: A bad number (before any I/O).
            InvalidMessageError: A missing pattern code or unusable values (before any I/O).
            PatternError: The pattern is unknown, inactive, not yours, or the values do not
                fit it (codes 404, 970, 971, 972, 996, 997).
            ProviderError: Another refusal (see :data:`ERROR_CODES`).
            TransportError: No usable answer.
        """
        if not isinstance(to, str):
            raise InvalidRecipientError(
                "a pattern goes to exactly one number: pass a str", value=to
            )
        recipient = normalize_msisdn(to)
        code = _require_text(pattern_code, "pattern_code", InvalidMessageError).strip()
        variables = _check_values(values)
        line = self._line(sender)
        local = to_local(recipient)
        input_data = json.dumps(variables, separators=(",", ":"), ensure_ascii=False)
        endpoint = self.pattern_endpoint
        with self._observe("pattern", recipients=1):
            if endpoint == "patterns/pattern":
                # Endpoint C: every parameter in the query string, credentials included (the log
                # filter and _drop_secret_cause keep them out of logs and errors).
                params = {
                    "username": self._username,
                    "password": self._password,
                    "from": line,
                    "to": _to_json_array([local]),
                    "input_data": input_data,
                    "pattern_code": code,
                }
                try:
                    answer = await self._request(
                        "POST", "/patterns/pattern", params=params, idempotent=False
                    )
                except TransportError as exc:
                    _drop_secret_cause(exc, _LOG_FILTER.scrub)
                    raise
                payload = self._decode(answer, idempotent=False)
            elif endpoint == "sendPattern":
                fields = {
                    "from": line,
                    "pattern_code": code,
                    "to": _to_json_array([local]),
                    "input_data": input_data,
                }
                payload, answer = await self._op("sendPattern", fields, idempotent=False)
            else:
                # Endpoint B: JSON body, ``user`` (not ``uname``), a single ``toNum`` string and
                # ``inputData`` as an array holding one object.
                body = {
                    "op": "pattern",
                    "user": self._username,
                    "pass": self._password,
                    "fromNum": line,
                    "toNum": local,
                    "patternCode": code,
                    "inputData": [variables],
                }
                answer = await self._request("POST", "/api/select", json_body=body)
                payload = self._decode(answer, idempotent=False)
            # One rule for every send answer: a bare number is a bulk id only when it is big
            # enough; a known code or a small number is a refusal (docs/protocols/ippanel.md
            # "Bare numbers").
            bulk = self._send_answer(payload, answer)
        return self._receipt(bulk, (recipient,), line, payload)


def _check_values(values: object) -> dict[str, str]:
    if not isinstance(values, Mapping):
        raise InvalidMessageError("values must be a mapping of pattern variable to value")
    out: dict[str, str] = {}
    for key, value in values.items():
        if not isinstance(key, str) or not key.strip():
            raise InvalidMessageError(f"pattern variable names must be non-empty str: {key!r}")
        if isinstance(value, bool) or not isinstance(value, str | int | Decimal):
            raise InvalidMessageError(
                f"the value of pattern variable {key!r} must be a str or a number"
            )
        text = str(value)
        if text.strip():
            # The one text check (lone surrogates, the size cap); an empty value is the
            # pattern's business, not ours.
            check_text(text, what=f"the value of pattern variable {key!r}")
        check_text(key, what="a pattern variable name")
        out[key.strip()] = text
    return out
