"""Delivery and status: ``op=credit``, ``op=delivery``, ``op=checkmessage``.

Sources: docs/protocols/ippanel.md, "credit", "delivery" and "checkmessage".
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import attrs

from ..._models import DeliveryReport, SendReceipt
from ...exceptions import UnknownMessageError
from .._http import HttpAnswer
from .._parse import as_int, as_text
from ._parsing import (
    _as_decimal,
    _first,
    _is_auth_text,
    _parse_delivery_item,
    delivery_state,
    loads_lenient,
)
from ._wire import IppanelBase


@attrs.frozen(kw_only=True)
class MessageStatus:
    """The panel's view of a bulk (``op=checkmessage``, docs/protocols/ippanel.md).

    Attributes:
        message_id: The bulk id asked about.
        status: ``statusMessage`` as sent: ``"Finish"``, ``"Interacting"``, ``"Active"``,
            ``"Cancel"``, ``"NoAuthentication"``, ``"No Sufficient Charge"``,
            ``"NoContactWithTheOperator"``, ``"NoSendSMS"``...
        validation: ``validMessage`` in lower case: ``"approve"``, ``"cancel"``,
            ``"notconfirm"`` (awaiting moderation), or ``None`` when absent.
        raw: The decoded answer.
    """

    message_id: str
    status: str
    validation: str | None
    raw: Any = attrs.field(default=None, eq=False, repr=False)

    @property
    def finished(self) -> bool:
        """Whether the panel has finished sending this bulk."""
        return self.status.strip().lower() == "finish"

    @property
    def approved(self) -> bool:
        """Whether the text passed the panel's moderation."""
        return self.validation == "approve"


class ReportsMixin(IppanelBase):
    """``credit``, ``delivery`` and ``message_status`` of :class:`~smsgate.IppanelGateway`."""

    # -- reports and account -----------------------------------------------------------

    async def credit(self) -> Decimal:
        """The account's credit in Rial (``op=credit``).

        Returns:
            A ``Decimal``; ``.`` and ``/`` are both read as the decimal mark.

        Raises:
            AuthenticationError: Wrong credentials.
            ProtocolError: The answer holds no number.
        """
        with self._observe("credit"):
            payload, answer = await self._op("credit", {}, idempotent=True)
            data = self._unwrap(payload, answer, idempotent=True)
            amount = _as_decimal(data)
            if amount is None:
                raise self._protocol_error(
                    "ippanel's credit answer is not a number", answer, idempotent=True
                )
            return amount

    async def delivery(self, ref: SendReceipt | str, /) -> list[DeliveryReport]:
        """Each recipient's delivery state (``op=delivery``).

        The provider names every number, so every report has its ``recipient`` whether
        ``ref`` is a receipt or a bare bulk id. The bulk id goes out as both ``uinqid`` (the
        ippanel PDF) and ``Uniqid`` (the Kapanel pages), so a panel reading either finds it.
        The answer is read as all three documents print it (a bare JSON array of
        ``"<number>:<status>"``, numbers possibly in Persian digits) and as clients in the
        wild see it (``[0, list]``, ``[0, "<JSON string>"]``); numbers come back E.164.

        Args:
            ref: A receipt from this gateway or a bulk id.

        Returns:
            One report per recipient, in the provider's order.

        Raises:
            UnknownMessageError: The provider does not know the bulk id (it answers
                ``null``, ``[0,null]`` or ``[0,"null"]``; code 456), or ``ref`` is not an
                ippanel bulk id.
            AuthenticationError: Wrong credentials (code 962, or the documents' English
                text alone).
            ProtocolError: The answer could not be read.
        """
        bulk = self._bulk_ref(ref)
        fields = {"uinqid": bulk, "Uniqid": bulk}
        with self._observe("delivery"):
            payload, answer = await self._op("delivery", fields, idempotent=True)
            items = self._delivery_items(payload, answer)
            if items is None:
                raise UnknownMessageError(
                    provider=self.name, detail=f"no delivery data for bulk id {bulk}"
                )
            parsed = [_parse_delivery_item(item) for item in items]
            if any(p is None for p in parsed):
                raise self._protocol_error(
                    "ippanel's delivery list holds an unreadable entry", answer, idempotent=True
                )
        return [
            DeliveryReport(
                message_id=bulk,
                recipient=number,
                state=delivery_state(status),
                provider_status=status,
                provider=self.name,
            )
            for number, status in (p for p in parsed if p is not None)
        ]

    def _delivery_items(self, payload: Any, answer: HttpAnswer) -> list[Any] | None:
        """The ``"<number>:<status>"`` items of a delivery answer; ``None`` for "no such bulk".

        Accepted alike (docs/protocols/ippanel.md "delivery"): the bare array the documents
        print, ``[0, list]``, ``[0, "<JSON string>"]``; ``null``, ``[0,null]``,
        ``[0,"null"]`` mean an unknown bulk id.
        """
        if isinstance(payload, str):
            payload = self._delivery_string(payload, answer)
        if payload is None:
            return None
        if isinstance(payload, list) and not _is_envelope(payload):
            return payload
        data = self._unwrap(payload, answer, idempotent=True)
        if isinstance(data, str):
            data = self._delivery_string(data, answer)
        if data is None:
            return None
        return self._json_list(data, answer)

    def _delivery_string(self, text: str, answer: HttpAnswer) -> Any:
        """A JSON string holding the list (or ``"null"``), decoded."""
        if text.strip().lower() == "null":
            return None
        if _is_auth_text(text):
            raise self._auth_text_error(text)
        if not text.strip():
            return []
        try:
            return loads_lenient(text)
        except ValueError:
            raise self._protocol_error(
                "ippanel's delivery answer is not a list", answer, idempotent=True
            ) from None

    async def message_status(self, ref: SendReceipt | str, /) -> MessageStatus:
        """The panel's status and moderation verdict for a bulk (``op=checkmessage``).

        Args:
            ref: A receipt from this gateway or a bulk id.

        Returns:
            A :class:`MessageStatus`.

        Raises:
            UnknownMessageError: The provider does not know the bulk id (code 456).
            ProtocolError: The answer could not be read.
        """
        bulk = self._bulk_ref(ref)
        with self._observe("checkmessage"):
            payload, answer = await self._op("checkmessage", {"messageid": bulk}, idempotent=True)
            data = self._unwrap(payload, answer, idempotent=True)
            if isinstance(data, str) and data.strip().startswith("{"):
                data = self._second_level(data, answer)
            if not isinstance(data, Mapping):
                raise self._protocol_error(
                    "ippanel's checkmessage answer is not an object", answer, idempotent=True
                )
            status = as_text(_first(data, "statusmessage", "status"))
            if status is None:
                raise self._protocol_error(
                    "ippanel's checkmessage answer has no statusMessage", answer, idempotent=True
                )
        validation = as_text(_first(data, "validmessage", "valid"))
        return MessageStatus(
            message_id=bulk,
            status=status.strip(),
            validation=None if validation is None else validation.strip().lower(),
            raw=payload,
        )


def _is_envelope(payload: list[Any]) -> bool:
    """``[code]`` or ``[code, data]``, as opposed to a bare list of delivery items.

    A one-element list holding a string is a (short) bare list, not a code.
    """
    if len(payload) == 1:
        return not isinstance(payload[0], str) and as_int(payload[0]) is not None
    return len(payload) == 2 and as_int(payload[0]) is not None
