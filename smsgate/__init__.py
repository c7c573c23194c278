"""smsgate: an async, typed SMS SDK for Iranian providers.

Values, errors and protocols load with ``import smsgate``; the backends (which need httpx)
and the dispatcher load on first use, so that importing smsgate stays cheap and never
pulls in FastAPI, Redis, a CLI or a test library.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._gateway import SmsGateway, SupportsCredit, SupportsPattern
from ._models import DeliveryReport, DeliveryState, Message, SendReceipt
from ._phone import normalize_msisdn
from ._segments import Segments, segments
from ._version import __version__
from .exceptions import (
    AccountRestrictedError,
    AuthenticationError,
    CircuitOpenError,
    ConfigurationError,
    InsufficientCreditError,
    InvalidMessageError,
    InvalidRecipientError,
    InvalidSenderError,
    JobStoppedError,
    JournalError,
    MalformedReportError,
    MessageRejectedError,
    NotSentError,
    OutcomeUnknownError,
    PatternError,
    ProtocolError,
    ProviderError,
    ProviderUnavailableError,
    RateLimitedError,
    RecipientOptedOutError,
    RecipientRejectedError,
    ReportTooLargeError,
    SendWindowError,
    SmsGateError,
    SubAccountRejectedError,
    TooManyRecipientsError,
    TransportError,
    UnknownMessageError,
    UnreadableReportError,
    WebhookAuthError,
    WebhookError,
)

if TYPE_CHECKING:
    from .backends.ippanel import IppanelGateway, MessageStatus
    from .backends.negin import NeginGateway
    from .dispatch import (
        BulkDispatcher,
        BulkReport,
        Estimate,
        FallbackPolicy,
        Journal,
        MemoryJournal,
        Outcome,
        Progress,
        RateLimit,
        RateLimiter,
        RetryPolicy,
        Route,
        SendWindow,
    )

# Public names that live in modules with heavier imports (httpx), loaded on first access.
_LAZY: dict[str, str] = {
    "BulkDispatcher": "smsgate.dispatch",
    "BulkReport": "smsgate.dispatch",
    "Estimate": "smsgate.dispatch",
    "FallbackPolicy": "smsgate.dispatch",
    "IppanelGateway": "smsgate.backends.ippanel",
    "Journal": "smsgate.dispatch",
    "MemoryJournal": "smsgate.dispatch",
    "MessageStatus": "smsgate.backends.ippanel",
    "NeginGateway": "smsgate.backends.negin",
    "Outcome": "smsgate.dispatch",
    "Progress": "smsgate.dispatch",
    "RateLimit": "smsgate.dispatch",
    "RateLimiter": "smsgate.dispatch",
    "RetryPolicy": "smsgate.dispatch",
    "Route": "smsgate.dispatch",
    "SendWindow": "smsgate.dispatch",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'smsgate' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


__all__ = [
    "AccountRestrictedError",
    "AuthenticationError",
    "BulkDispatcher",
    "BulkReport",
    "CircuitOpenError",
    "ConfigurationError",
    "DeliveryReport",
    "DeliveryState",
    "Estimate",
    "FallbackPolicy",
    "InsufficientCreditError",
    "InvalidMessageError",
    "InvalidRecipientError",
    "InvalidSenderError",
    "IppanelGateway",
    "JobStoppedError",
    "Journal",
    "JournalError",
    "MalformedReportError",
    "MemoryJournal",
    "Message",
    "MessageRejectedError",
    "MessageStatus",
    "NeginGateway",
    "NotSentError",
    "Outcome",
    "OutcomeUnknownError",
    "PatternError",
    "Progress",
    "ProtocolError",
    "ProviderError",
    "ProviderUnavailableError",
    "RateLimit",
    "RateLimitedError",
    "RateLimiter",
    "RecipientOptedOutError",
    "RecipientRejectedError",
    "ReportTooLargeError",
    "RetryPolicy",
    "Route",
    "Segments",
    "SendReceipt",
    "SendWindow",
    "SendWindowError",
    "SmsGateError",
    "SmsGateway",
    "SubAccountRejectedError",
    "SupportsCredit",
    "SupportsPattern",
    "TooManyRecipientsError",
    "TransportError",
    "UnknownMessageError",
    "UnreadableReportError",
    "WebhookAuthError",
    "WebhookError",
    "__version__",
    "normalize_msisdn",
    "segments",
]
