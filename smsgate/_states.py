"""The ippanel / Kapanel per-recipient delivery vocabulary, below every user of it.

The ``delivery`` op (polled by the ippanel backend) and the Kapanel webhook (read by
``smsgate.webhooks``) speak the same six words; both read them through this one table
(``docs/protocols/ippanel.md``, "Delivery statuses").
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

from ._models import DeliveryState

__all__ = ["IPPANEL_STATES", "ippanel_state"]

#: ippanel's delivery statuses, lower case, to the common states (API.md §2). All three
#: documents print the legend; the samples and every known client use lower case.
IPPANEL_STATES: Final[Mapping[str, DeliveryState]] = MappingProxyType(
    {
        "notsync": DeliveryState.QUEUED,
        "send": DeliveryState.SENT,
        "pending": DeliveryState.AT_OPERATOR,
        "delivered": DeliveryState.DELIVERED,
        "failed": DeliveryState.UNDELIVERED,
        "discarded": DeliveryState.BLOCKED,
    }
)


def ippanel_state(status: str) -> DeliveryState:
    """The common state of an ippanel status (case and white space ignored; unknown -> UNKNOWN)."""
    return IPPANEL_STATES.get(status.strip().lower(), DeliveryState.UNKNOWN)
