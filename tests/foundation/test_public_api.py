"""The public API: __all__ sorted and complete, names importable, import stays light."""

from __future__ import annotations

import subprocess
import sys
import types

import smsgate

HEAVY = (
    "fastapi",
    "starlette",
    "click",
    "rich",
    "redis",
    "respx",
    "pytest",
    "uvicorn",
    "trio",
    "hypothesis",
)


def test_all_is_sorted() -> None:
    """__all__ is sorted (case-sensitive), so additions are easy to review."""
    assert smsgate.__all__ == sorted(smsgate.__all__)


def test_all_is_complete() -> None:
    """Every public name defined in smsgate's namespace is in __all__, and vice versa."""
    public = {
        name
        for name in dir(smsgate)
        if not name.startswith("_") and not isinstance(getattr(smsgate, name), types.ModuleType)
    }
    assert public | {"__version__"} == set(smsgate.__all__)


def test_every_name_resolves() -> None:
    """Each name in __all__ (lazy ones included) resolves to an object."""
    for name in smsgate.__all__:
        assert getattr(smsgate, name) is not None, name


def test_api_md_names_exist() -> None:
    """The names API.md promises are importable from the top-level package."""
    promised = [
        "normalize_msisdn",
        "segments",
        "Message",
        "SendReceipt",
        "DeliveryReport",
        "DeliveryState",
        "SmsGateway",
        "SupportsCredit",
        "SupportsPattern",
        "IppanelGateway",
        "NeginGateway",
        "MessageStatus",
        "SmsGateError",
        "InvalidRecipientError",
        "InvalidMessageError",
        "ConfigurationError",
        "ProviderError",
        "AuthenticationError",
        "InsufficientCreditError",
        "InvalidSenderError",
        "RecipientOptedOutError",
        "PatternError",
        "RateLimitedError",
        "UnknownMessageError",
        "ProviderUnavailableError",
        "TransportError",
        "NotSentError",
        "OutcomeUnknownError",
        "ProtocolError",
        "BulkDispatcher",
        "RateLimit",
        "RateLimiter",
        "FallbackPolicy",
        "Route",
        "Outcome",
        "BulkReport",
    ]
    missing = [name for name in promised if not hasattr(smsgate, name)]
    assert missing == []


def test_unknown_attribute() -> None:
    """A typo gives the usual AttributeError."""
    try:
        smsgate.NoSuchThing  # noqa: B018
    except AttributeError as exc:
        assert "NoSuchThing" in str(exc)
    else:
        raise AssertionError("expected AttributeError")


def test_import_is_light() -> None:
    """`import smsgate` imports no web framework, CLI, test library or HTTP client."""
    code = "import sys, smsgate; print(','.join(sorted({m.split('.')[0] for m in sys.modules})))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = set(out.stdout.strip().split(","))
    assert not loaded & set(HEAVY), loaded & set(HEAVY)
    assert "httpx" not in loaded  # backends load on first use
