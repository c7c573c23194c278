"""Delivery and status: ``op=credit``, ``op=delivery``, ``op=checkmessage`` (§4.2, §7)."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import attrs

from ..._models import DeliveryReport, SendReceipt
from ...exceptions import (
    UnknownMessageError,
)
from ._wire import (
    IppanelBase,
    _as_decimal,
    _as_text,
    _first,
    _parse_delivery_item,
    delivery_state,
)


@attrs.frozen(kw_only=True)
class MessageStatus:
    """The panel's view of a bulk (``op=checkmessage``, protocols/ippanel.md §7.2).

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
        ``ref`` is a receipt or a bare bulk id.

        Args:
            ref: A receipt from this gateway or a bulk id.

        Returns:
            One report per recipient, in the provider's order.

        Raises:
            UnknownMessageError: The provider does not know the bulk id (it answers
                ``null``; code 456), or ``ref`` is not an ippanel bulk id.
            ProtocolError: The answer could not be read.
        """
        bulk = self._bulk_ref(ref)
        payload, answer = await self._op("delivery", {"uinqid": bulk}, idempotent=True)
        if payload is None:
            # §2.3: the bare literal ``null`` is the answer for an unknown bulk id.
            raise UnknownMessageError(
                provider=self.name, detail=f"no delivery data for bulk id {bulk}"
            )
        data = self._unwrap(payload, answer, idempotent=True)
        items = self._json_list(data, answer)
        reports: list[DeliveryReport] = []
        for item in items:
            parsed = _parse_delivery_item(item)
            if parsed is None:
                raise self._protocol_error(
                    "ippanel's delivery list holds an unreadable entry", answer, idempotent=True
                )
            number, status = parsed
            state = delivery_state(status)
            reports.append(
                DeliveryReport(
                    message_id=bulk,
                    recipient=number,
                    state=state,
                    provider_status=status,
                    provider=self.name,
                )
            )
        return reports

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
        payload, answer = await self._op("checkmessage", {"messageid": bulk}, idempotent=True)
        data = self._unwrap(payload, answer, idempotent=True)
        if isinstance(data, str) and data.strip().startswith("{"):
            data = self._second_level(data, answer)
        if not isinstance(data, Mapping):
            raise self._protocol_error(
                "ippanel's checkmessage answer is not an object", answer, idempotent=True
            )
        status = _as_text(_first(data, "statusmessage", "status"))
        if status is None:
            raise self._protocol_error(
                "ippanel's checkmessage answer has no statusMessage", answer, idempotent=True
            )
        validation = _as_text(_first(data, "validmessage", "valid"))
        return MessageStatus(
            message_id=bulk,
            status=status.strip(),
            validation=None if validation is None else validation.strip().lower(),
            raw=payload,
        )
