"""The two refinements of :class:`~smsgate.MalformedReportError` a web layer needs.

A web layer answers differently when the body is not JSON at all (HTTP 400), when it is JSON
but not a report (422) and when it is too large (413). Both classes are subclasses of
``MalformedReportError``, so code that catches the documented error keeps working.
"""

from __future__ import annotations

from ..exceptions import ReportTooLargeError, UnreadableReportError

__all__ = ["ReportTooLargeError", "UnreadableReportError"]
