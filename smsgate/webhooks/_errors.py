"""The two refinements of :class:`~smsgate.MalformedReportError` a web layer needs.

A web layer answers differently when the body is not JSON at all (HTTP 400), when it is JSON
but not a report (422) and when it is too large (413). Both classes are subclasses of
``MalformedReportError``, so code that catches the documented error keeps working.
"""

from __future__ import annotations

from ..exceptions import MalformedReportError

__all__ = ["ReportTooLargeError", "UnreadableReportError"]


class UnreadableReportError(MalformedReportError):
    """The body could not be read as JSON at all (bad bytes, bad encoding, bad syntax)."""


class ReportTooLargeError(MalformedReportError):
    """The body is larger than the receiver's size cap (or says it will be)."""
