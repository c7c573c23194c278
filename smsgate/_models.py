"""The values every backend speaks: messages, receipts, delivery reports.

Frozen attrs classes with keyword-only fields. Provider payloads become these values
through named constructors in the backends, never ``Model(**payload)``.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from datetime import datetime
from types import MappingProxyType
from typing import Any

import attrs

from ._phone import normalize_msisdn
from .exceptions import InvalidMessageError

__all__ = ["DeliveryReport", "DeliveryState", "Message", "SendReceipt"]


def _text(value: object) -> str:
    if not isinstance(value, str):
        raise InvalidMessageError(f"the text must be a str, not {type(value).__name__}")
    return value


def _optional_str(value: object) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise InvalidMessageError(f"the sender must be a str or None, not {type(value).__name__}")


@attrs.frozen(kw_only=True)
class Message:
    """One text to one recipient, as a bulk job consumes them.

    The number is kept as given, so that one bad row in a 100,000-row file is reported
    for that row instead of stopping the file: :attr:`msisdn` normalises it (and raises
    :class:`~smsgate.InvalidRecipientError` for a bad one).

    Attributes:
        to: The recipient, in any form :func:`~smsgate.normalize_msisdn` accepts.
        text: The message text.
        sender: The sender line, or ``None`` for the gateway's default.
    """

    to: str = attrs.field()
    text: str = attrs.field(converter=_text)
    sender: str | None = attrs.field(default=None, converter=_optional_str)

    @to.validator
    def _check_to(self, _attr: attrs.Attribute[str], value: object) -> None:
        if not isinstance(value, str):
            # Only the type is checked here; the number itself is checked per row later.
            raise InvalidMessageError(f"'to' must be a str, not {type(value).__name__}")

    @property
    def msisdn(self) -> str:
        """The recipient in E.164 form; raises ``InvalidRecipientError`` if it is not one."""
        return normalize_msisdn(self.to)


def _frozen_mapping(value: Mapping[str, str]) -> Mapping[str, str]:
    return MappingProxyType(dict(value))


def _str_tuple(value: Iterable[str]) -> tuple[str, ...]:
    return tuple(value)


@attrs.frozen(kw_only=True)
class SendReceipt:
    """What a provider said when it accepted a send.

    Attributes:
        message_id: An opaque handle that ``delivery()`` accepts: ippanel's bulk id;
            Negin's message id, or for several numbers their ids comma-joined in
            recipient order.
        message_ids: Each recipient (E.164) to the provider's id for it. With ippanel every
            recipient maps to the bulk id.
        provider: The backend's name (``"ippanel"``, ``"negin"``...).
        recipients: The recipients, E.164, in the order given.
        sender: The line actually used, when the provider says.
        raw: The decoded provider response, for debugging (not compared, not shown).
    """

    message_id: str
    message_ids: Mapping[str, str] = attrs.field(converter=_frozen_mapping)
    provider: str
    recipients: tuple[str, ...] = attrs.field(converter=_str_tuple)
    sender: str | None = None
    raw: Any = attrs.field(default=None, eq=False, repr=False)


class DeliveryState(enum.Enum):
    """Where a message is on its way to the handset, the same for every provider.

    ================  =========================================  ======
    state             provider values                            final
    ================  =========================================  ======
    ``QUEUED``        ippanel ``notsync`` / Negin ``0``          no
    ``SENT``          ippanel ``send``                           no
    ``AT_OPERATOR``   ippanel ``pending`` / Negin ``8``          no
    ``DELIVERED``     ippanel ``delivered`` / Negin ``1``        yes
    ``UNDELIVERED``   ippanel ``failed`` / Negin ``2``           yes
    ``REJECTED``      Negin ``16`` and ``-1``                    yes
    ``BLOCKED``       ippanel ``discarded`` (opt-out list)       yes
    ``UNKNOWN``       anything else, raw value kept              no
    ================  =========================================  ======
    """

    QUEUED = "queued"
    SENT = "sent"
    AT_OPERATOR = "at_operator"
    DELIVERED = "delivered"
    UNDELIVERED = "undelivered"
    REJECTED = "rejected"
    BLOCKED = "blocked"
    UNKNOWN = "unknown"

    @property
    def is_final(self) -> bool:
        """Whether this state will not change any more."""
        return self in _FINAL


_FINAL = frozenset(
    {
        DeliveryState.DELIVERED,
        DeliveryState.UNDELIVERED,
        DeliveryState.REJECTED,
        DeliveryState.BLOCKED,
    }
)


@attrs.frozen(kw_only=True)
class DeliveryReport:
    """One recipient's delivery state, from polling or a webhook push.

    Attributes:
        message_id: The provider's id for the message (ippanel bulk id, Negin message id).
        recipient: E.164, or ``None`` where the provider does not say (Negin by bare id).
        state: The provider-independent state.
        provider_status: The raw value, e.g. ``"discarded"`` or ``"16"``.
        is_final: Whether the state will not change any more.
        provider: The backend's name.
        at: When the provider says the state was reached (webhooks), else ``None``.
    """

    message_id: str
    recipient: str | None
    state: DeliveryState
    provider_status: str
    is_final: bool = attrs.field()
    provider: str = ""
    at: datetime | None = None

    @is_final.default
    def _default_final(self) -> bool:
        return self.state.is_final
