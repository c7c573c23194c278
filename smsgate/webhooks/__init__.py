"""Delivery-report webhooks, without any web framework.

* :func:`parse_kapanel_delivery` turns a Kapanel (ippanel white-label) push into a list of
  :class:`~smsgate.DeliveryReport`; :class:`KapanelDeliveryParser` is the same with your
  own field names and status values.
* :class:`WebhookReceiver` is the whole endpoint's logic: source allow-list, constant-time
  secret check, size cap, parsing, deduplication, and then the user's ``on_report``.
* :class:`RefusalLog` writes the warnings about refused pushes, at most one line per
  interval and kind, so a flood of forged pushes cannot fill a disk.
* :class:`DedupeStore` is the small protocol for remembering seen reports;
  :class:`MemoryDedupeStore` is the in-process default.

Refusals are :class:`~smsgate.WebhookError` subclasses: :class:`~smsgate.WebhookAuthError`
(source or secret), :class:`~smsgate.MalformedReportError` and its two refinements here,
:class:`UnreadableReportError` (not JSON) and :class:`ReportTooLargeError`.

The FastAPI router built on this lives in :mod:`smsgate.fastapi`. Nothing here imports a
web framework, an HTTP client or an event-loop library.
"""

from __future__ import annotations

from ._dedupe import DedupeStore, MemoryDedupeStore, dedupe_key
from ._errors import ReportTooLargeError, UnreadableReportError
from ._kapanel import FIELDS, KapanelDeliveryParser, parse_kapanel_delivery
from ._receiver import (
    DEFAULT_MAX_BODY,
    DEFAULT_TOKEN_HEADER,
    OnReport,
    ReportParser,
    WebhookReceiver,
    WebhookResult,
)
from ._throttle import DEFAULT_LOG_INTERVAL, RefusalLog

__all__ = [
    "DEFAULT_LOG_INTERVAL",
    "DEFAULT_MAX_BODY",
    "DEFAULT_TOKEN_HEADER",
    "FIELDS",
    "DedupeStore",
    "KapanelDeliveryParser",
    "MemoryDedupeStore",
    "OnReport",
    "RefusalLog",
    "ReportParser",
    "ReportTooLargeError",
    "UnreadableReportError",
    "WebhookReceiver",
    "WebhookResult",
    "dedupe_key",
    "parse_kapanel_delivery",
]
