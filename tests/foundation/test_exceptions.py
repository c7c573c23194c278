"""The error tree: one root, the documented branches, the action flags, pickling."""

from __future__ import annotations

import inspect
import pickle

import pytest

import smsgate
from smsgate import exceptions as exc_mod


def _error_classes() -> list[type[Exception]]:
    return [
        obj
        for _name, obj in inspect.getmembers(exc_mod, inspect.isclass)
        if issubclass(obj, Exception) and obj.__module__ == exc_mod.__name__
    ]


def test_one_root() -> None:
    """Every error class smsgate defines descends from SmsGateError."""
    classes = _error_classes()
    assert len(classes) > 20
    assert all(issubclass(cls, smsgate.SmsGateError) for cls in classes)


def test_docstring_draws_every_class() -> None:
    """The module docstring's tree names every error class."""
    doc = exc_mod.__doc__ or ""
    missing = [cls.__name__ for cls in _error_classes() if cls.__name__ not in doc]
    assert missing == []


@pytest.mark.parametrize(
    "cls",
    [smsgate.InvalidRecipientError, smsgate.InvalidMessageError, smsgate.ConfigurationError],
)
def test_bad_input_is_value_error(cls: type[Exception]) -> None:
    """Bad-input errors are also ValueError."""
    assert issubclass(cls, ValueError)


def test_provider_rejections_catchable_both_ways() -> None:
    """A provider-side invalid recipient is both a ProviderError and an InvalidRecipientError."""
    err = smsgate.RecipientRejectedError(
        provider="negin", code=1, detail="شماره گیرنده نامعتبر است"
    )
    assert isinstance(err, smsgate.ProviderError)
    assert isinstance(err, smsgate.InvalidRecipientError)
    assert err.code == "1"
    assert "شماره گیرنده" in str(err)
    assert "negin code 1" in str(err)


def test_flags() -> None:
    """The action flags say what is safe: never resend what may have been sent."""
    assert smsgate.NotSentError("x").retryable and smsgate.NotSentError("x").fallback_ok
    unknown = smsgate.OutcomeUnknownError("x")
    assert unknown.maybe_sent and not unknown.retryable and not unknown.fallback_ok
    assert smsgate.RecipientOptedOutError(provider="p").fallback_ok
    assert not smsgate.AuthenticationError(provider="p").retryable
    assert smsgate.RateLimitedError(provider="p", retry_after=5).retry_after == 5
    per_instance = smsgate.ProviderUnavailableError(
        provider="p", maybe_sent=True, fallback_ok=False
    )
    assert per_instance.maybe_sent and not per_instance.fallback_ok
    assert not smsgate.ProviderUnavailableError(provider="p").maybe_sent


def test_default_messages() -> None:
    """A provider error without a message uses its class's English default."""
    err = smsgate.InsufficientCreditError(provider="ippanel", code=5, detail="اعتبار کافی نیست")
    assert err.message == "insufficient credit"
    assert str(err) == "insufficient credit [ippanel code 5] (اعتبار کافی نیست)"


def test_protocol_error_text() -> None:
    """ProtocolError shows the status and the excerpt."""
    err = smsgate.ProtocolError("unreadable", status_code=502, excerpt="<html>")
    assert str(err) == "unreadable (HTTP 502): '<html>'"


@pytest.mark.parametrize(
    "err",
    [
        smsgate.AuthenticationError(provider="ippanel", code=962, detail="bad"),
        smsgate.RateLimitedError(provider="negin", code=409, retry_after=5.0),
        smsgate.RecipientRejectedError(provider="negin", code=1),
        smsgate.ProviderUnavailableError(provider="p", maybe_sent=True),
        smsgate.ProtocolError("x", status_code=200, excerpt="e"),
        smsgate.NotSentError("x"),
        smsgate.InvalidRecipientError("bad", value="0912"),
    ],
)
def test_pickle_round_trip(err: smsgate.SmsGateError) -> None:
    """Errors survive pickling (multiprocessing, journals) with their attributes."""
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is type(err)
    assert str(back) == str(err)
    assert vars(back) == vars(err)
