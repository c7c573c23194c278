"""Values: frozen, keyword-only, validated."""

from __future__ import annotations

from typing import Any

import attrs
import pytest

import smsgate
from smsgate import DeliveryReport, DeliveryState, Message, SendReceipt


def test_message_is_frozen_and_keeps_number_as_given() -> None:
    """Message keeps the raw number (bad rows are reported per row) and cannot be changed."""
    m = Message(to="۰۹۱۲۱۲۳۴۵۶۷", text="سلام")
    assert m.to == "۰۹۱۲۱۲۳۴۵۶۷"
    assert m.msisdn == "+989121234567"
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        m.text = "x"  # type: ignore[misc]
    assert Message(to="0912", text="x").sender is None
    with pytest.raises(smsgate.InvalidRecipientError):
        _ = Message(to="0912", text="x").msisdn


@pytest.mark.parametrize(
    "kwargs",
    [
        {"to": 9121234567, "text": "x"},
        {"to": "0912", "text": None},
        {"to": "0912", "text": "x", "sender": 3000},
    ],
)
def test_message_types(kwargs: dict[str, object]) -> None:
    """Wrong types are refused with InvalidMessageError at construction."""
    with pytest.raises(smsgate.InvalidMessageError):
        Message(**kwargs)  # type: ignore[arg-type]


def test_message_positional_refused() -> None:
    """Fields are keyword-only."""
    factory: Any = Message
    with pytest.raises(TypeError):
        factory("0912", "x")


def test_receipt_mapping_is_read_only() -> None:
    """A receipt's message_ids cannot be mutated and raw is not part of equality."""
    r = SendReceipt(
        message_id="1",
        message_ids={"+989121234567": "1"},
        provider="p",
        recipients=["+989121234567"],
        raw={"a": 1},
    )
    assert r.recipients == ("+989121234567",)
    with pytest.raises(TypeError):
        r.message_ids["x"] = "y"  # type: ignore[index]
    assert r == attrs.evolve(r, raw=None)
    assert "raw" not in repr(r)


@pytest.mark.parametrize(
    ("state", "final"),
    [
        (DeliveryState.QUEUED, False),
        (DeliveryState.SENT, False),
        (DeliveryState.AT_OPERATOR, False),
        (DeliveryState.DELIVERED, True),
        (DeliveryState.UNDELIVERED, True),
        (DeliveryState.REJECTED, True),
        (DeliveryState.BLOCKED, True),
        (DeliveryState.UNKNOWN, False),
    ],
)
def test_state_finality(state: DeliveryState, final: bool) -> None:
    """Finality follows the API.md table, and reports default to it."""
    assert state.is_final is final
    report = DeliveryReport(message_id="1", recipient=None, state=state, provider_status="x")
    assert report.is_final is final
