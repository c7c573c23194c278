"""The one-number-per-request fan-out (smsgate/backends/_fanout.py), without any provider."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import anyio
import anyio.lowlevel
import pytest

import smsgate
from smsgate.backends._fanout import fan_out, most_relevant, settle

NUMBERS = tuple(f"+98912000{i:04d}" for i in range(8))


def receipt(sent: Mapping[str, str]) -> smsgate.SendReceipt:
    """A receipt of the numbers sent, ids joined in order."""
    return smsgate.SendReceipt(
        message_id=",".join(sent.values()),
        message_ids=dict(sent),
        provider="test",
        recipients=tuple(sent),
    )


@pytest.mark.anyio
async def test_bounded_and_in_order() -> None:
    """At most `workers` calls at once, that many used; results keyed by number in order."""
    in_flight = peak = 0

    async def one(number: str) -> str:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await anyio.lowlevel.checkpoint()
        await anyio.lowlevel.checkpoint()
        in_flight -= 1
        return number[-4:]

    result = await fan_out(NUMBERS, one, workers=3)
    assert peak == 3
    assert list(result.sent) != [] and set(result.sent) == set(NUMBERS) and not result.errors
    done = settle(result, receipt)
    assert done.recipients == NUMBERS  # recipient order, whatever the finish order
    assert done.message_id == ",".join(n[-4:] for n in NUMBERS)


@pytest.mark.anyio
async def test_partial_failure_every_number_accounted_for() -> None:
    """One refused number: .receipt holds the others, .errors the refused one."""

    async def one(number: str) -> str:
        if number == NUMBERS[2]:
            raise smsgate.RecipientOptedOutError(provider="test", code=27)
        return number[-4:]

    result = await fan_out(NUMBERS, one, workers=4)
    with pytest.raises(smsgate.RecipientOptedOutError) as info:
        settle(result, receipt)
    exc = info.value
    assert exc.receipt is not None
    assert exc.receipt.recipients == tuple(n for n in NUMBERS if n != NUMBERS[2])
    assert set(exc.errors) == {NUMBERS[2]}
    assert set(exc.errors) | set(exc.receipt.recipients) == set(NUMBERS)


@pytest.mark.anyio
async def test_account_wide_error_stops_new_requests() -> None:
    """After a refused login no number is started; the untried are NotSentError."""
    calls: list[str] = []

    async def one(number: str) -> str:
        calls.append(number)
        raise smsgate.AuthenticationError(provider="test", code=18)

    result = await fan_out(NUMBERS, one, workers=1)
    assert calls == [NUMBERS[0]]
    assert isinstance(result.errors[NUMBERS[0]], smsgate.AuthenticationError)
    assert all(isinstance(result.errors[n], smsgate.NotSentError) for n in NUMBERS[1:])
    with pytest.raises(smsgate.AuthenticationError) as info:
        settle(result, receipt)
    assert info.value.receipt is None and len(info.value.errors) == len(NUMBERS)


def test_doubt_is_raised_first() -> None:
    """An error that may have sent wins over an account-wide one, which wins over the rest."""
    plain = smsgate.RecipientRejectedError(provider="test")
    account = smsgate.InsufficientCreditError(provider="test")
    doubt = smsgate.OutcomeUnknownError("timed out")
    assert most_relevant([plain, account, doubt]) is doubt
    assert most_relevant([plain, account]) is account
    assert most_relevant([plain]) is plain


@pytest.mark.anyio
async def test_interrupted_fan_out_logs_accepted_ids(caplog: pytest.LogCaptureFixture) -> None:
    """Cancelled after one number went out: re-raised, and the accepted id is logged."""
    first_done = anyio.Event()

    async def one(number: str) -> str:
        if number == NUMBERS[0]:
            first_done.set()
            return "7001"
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    async def run() -> Any:
        return await fan_out(NUMBERS[:3], one, workers=3, provider="Test")

    with caplog.at_level(logging.WARNING):
        async with anyio.create_task_group() as tg:
            tg.start_soon(run)
            await first_done.wait()  # the first number is in `sent` when this fires
            tg.cancel_scope.cancel()
    assert "Test send interrupted after 1 of 3" in caplog.text
    assert "7001" in caplog.text
