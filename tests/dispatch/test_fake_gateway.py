"""FakeGateway, the in-memory gateway of the test kit: the fakes are code too."""

from __future__ import annotations

from decimal import Decimal

import pytest

import smsgate
from smsgate import (
    InsufficientCreditError,
    InvalidMessageError,
    InvalidRecipientError,
    NotSentError,
    OutcomeUnknownError,
    RecipientOptedOutError,
    RecipientRejectedError,
    TooManyRecipientsError,
    UnknownMessageError,
)
from smsgate.testing import FakeGateway

pytestmark = pytest.mark.anyio


async def test_is_a_gateway_with_credit() -> None:
    """FakeGateway satisfies SmsGateway and SupportsCredit, and closes idempotently."""
    async with FakeGateway(name="x", max_recipients=5) as gw:
        assert isinstance(gw, smsgate.SmsGateway)
        assert isinstance(gw, smsgate.SupportsCredit)
        assert (gw.name, gw.max_recipients) == ("x", 5)
    assert gw.closed
    await gw.aclose()
    with pytest.raises(RuntimeError, match="closed"):
        await gw.send("09121234567", "hi")


async def test_send_records_and_delivers() -> None:
    """A send is recorded (request and ledger), its receipt maps every number, delivery()
    reports each recipient delivered, and an unknown id raises UnknownMessageError."""
    gw = FakeGateway(max_recipients=3, sender="3000")
    receipt = await gw.send(["09121111111", "+989122222222"], "hi")
    assert receipt.recipients == ("+989121111111", "+989122222222")
    assert set(receipt.message_ids.values()) == {receipt.message_id}
    assert receipt.sender == "3000" and receipt.provider == "fake"
    assert len(gw.requests) == 1 and gw.requests[0].error is None
    assert gw.sent_to("09121111111") == 1
    reports = await gw.delivery(receipt)
    assert {r.recipient for r in reports} == set(receipt.recipients)
    assert all(r.state is smsgate.DeliveryState.DELIVERED for r in reports)
    assert len(await gw.delivery(receipt.message_id)) == 2
    with pytest.raises(UnknownMessageError):
        await gw.delivery("nope")


async def test_local_validation_before_any_request() -> None:
    """Bad numbers and empty texts raise before anything is recorded."""
    gw = FakeGateway()
    with pytest.raises(InvalidRecipientError):
        await gw.send("123", "hi")
    with pytest.raises(InvalidMessageError):
        await gw.send("09121234567", "")
    with pytest.raises(InvalidMessageError):
        await gw.send([], "hi")
    assert gw.requests == []


async def test_refusals() -> None:
    """Too many numbers, opted-out and rejected numbers are refused as a whole request."""
    gw = FakeGateway(max_recipients=2, opted_out=["09350000001"])
    gw.reject("09120000000")
    with pytest.raises(TooManyRecipientsError):
        await gw.send(["09121111111", "09122222222", "09123333333"], "hi")
    with pytest.raises(RecipientOptedOutError):
        await gw.send(["09121111111", "09350000001"], "hi")
    with pytest.raises(RecipientRejectedError):
        await gw.send("09120000000", "hi")
    assert gw.accepted == []
    assert [r.error for r in gw.requests] == [
        "TooManyRecipientsError",
        "RecipientOptedOutError",
        "RecipientRejectedError",
    ]


async def test_scripts_and_maybe_sent() -> None:
    """Scripted outcomes apply per request in order; a maybe-sent error is accepted first."""
    gw = FakeGateway()
    gw.script("09121111111", NotSentError("x"), None, OutcomeUnknownError("lost"))
    with pytest.raises(NotSentError):
        await gw.send("09121111111", "hi")
    await gw.send("09121111111", "hi")
    with pytest.raises(OutcomeUnknownError):
        await gw.send("09121111111", "hi")
    await gw.send("09121111111", "hi")
    assert gw.sent_to("09121111111") == 3  # the OutcomeUnknownError one went out
    gw.fail_next(NotSentError("a"), NotSentError("b"))
    for _ in range(2):
        with pytest.raises(NotSentError):
            await gw.send("09122222222", "hi")
    gw.on_request = lambda request: NotSentError("hooked") if request.text == "no" else None
    with pytest.raises(NotSentError, match="hooked"):
        await gw.send("09122222222", "no")
    await gw.send("09122222222", "yes")
    assert gw.sent_to("09122222222") == 1


async def test_credit_is_charged_per_part() -> None:
    """Each accepted recipient costs price_per_part per SMS part; short credit refuses."""
    gw = FakeGateway(max_recipients=10, credit=1000, price_per_part=100)
    await gw.send(["09121111111", "09122222222"], "x" * 200)  # 2 parts x 2 recipients
    assert await gw.credit() == Decimal(600)
    with pytest.raises(InsufficientCreditError):
        await gw.send(["09121111111", "09123333333"], "س" * 300)  # 5 parts x 2 recipients
    assert gw.balance == Decimal(600)
