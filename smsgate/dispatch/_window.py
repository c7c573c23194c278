"""The send window: the hours a line may send (Iranian advertising lines: 08:00 to 23:00).

Operators refuse advertising SMS outside 08:00–23:00 Tehran time (ippanel codes 9 and 992;
pattern sends are exempt). :class:`SendWindow` is the value; a bulk job checks it before
each request and, outside it, pauses (no request starts) until it opens, then goes on.
"""

from __future__ import annotations

import datetime as _dt
import math
import os
import re
from typing import Literal

import attrs

from ..exceptions import ConfigurationError

__all__ = ["AUTO", "SendWindow", "WindowSetting"]

#: ``send_window="auto"``: on for ippanel routes (advertising lines), off elsewhere.
AUTO: Literal["auto"] = "auto"
_HHMM = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")


def _clock_time(value: object) -> str:
    if not isinstance(value, str) or not _HHMM.match(value):
        raise ConfigurationError(f"a send window time is 'HH:MM' (00:00-23:59), not {value!r}")
    return value


def _zone(value: object) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigurationError(f"tz must be an IANA time zone name, not {value!r}")
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigurationError(
            f"unknown time zone {value!r} (install the 'tzdata' package where the system "
            "has no time zone database)"
        ) from exc
    return value


def _parse(value: str) -> _dt.time:
    hours, minutes = value.split(":")
    return _dt.time(int(hours), int(minutes))


@attrs.frozen
class SendWindow:
    """The local hours in which requests may start: ``[start, end)`` in ``tz``.

    >>> window = SendWindow("08:00", "23:00", tz="Asia/Tehran")
    >>> window.is_open(1_767_240_000.0)     # 2026-01-01 07:30 in Tehran
    False

    ``end`` before ``start`` is a window over midnight (``SendWindow("22:00", "06:00")``).

    Args:
        start: When sending may start, ``"HH:MM"`` local time.
        end: When it must stop (exclusive), ``"HH:MM"``.
        tz: An IANA time zone name (the system's database; on systems without one,
            install ``tzdata``).

    Raises:
        ConfigurationError: For a malformed time, an unknown zone, or ``start == end``.
    """

    start: str = attrs.field(default="08:00", converter=_clock_time)
    end: str = attrs.field(default="23:00", converter=_clock_time)
    tz: str = attrs.field(default="Asia/Tehran", kw_only=True, converter=_zone)

    def __attrs_post_init__(self) -> None:
        if _parse(self.start) == _parse(self.end):
            raise ConfigurationError("a send window's start and end must differ")

    def _local(self, when: float) -> _dt.datetime:
        from zoneinfo import ZoneInfo

        return _dt.datetime.fromtimestamp(when, ZoneInfo(self.tz))

    def is_open(self, when: float) -> bool:
        """Whether a request may start at ``when`` (seconds since the epoch)."""
        now = self._local(when).time()
        start, end = _parse(self.start), _parse(self.end)
        if start < end:
            return start <= now < end
        return now >= start or now < end

    def opens_at(self, when: float) -> float:
        """When the window is next open at or after ``when`` (``when`` itself if open)."""
        if not math.isfinite(when) or self.is_open(when):
            return when
        from zoneinfo import ZoneInfo

        local = self._local(when)
        start = _parse(self.start)
        day = local.date()
        if local.time() >= start:
            day += _dt.timedelta(days=1)
        opening = _dt.datetime.combine(day, start, tzinfo=ZoneInfo(self.tz))
        return max(when, opening.timestamp())

    def closes_at(self, when: float) -> float:
        """When the window, open at ``when``, next closes (``when`` if it is closed)."""
        if not math.isfinite(when) or not self.is_open(when):
            return when
        from zoneinfo import ZoneInfo

        local = self._local(when)
        end = _parse(self.end)
        day = local.date()
        if local.time() >= end:
            day += _dt.timedelta(days=1)
        closing = _dt.datetime.combine(day, end, tzinfo=ZoneInfo(self.tz))
        return closing.timestamp()


#: What ``BulkDispatcher(send_window=...)`` and ``Route(send_window=...)`` take.
WindowSetting = SendWindow | None | Literal["auto"]


def check_setting(value: object) -> WindowSetting:
    """Validate a ``send_window=`` value."""
    if value is None or value == AUTO or isinstance(value, SendWindow):
        return value
    raise ConfigurationError(f"send_window must be a SendWindow, None or 'auto', not {value!r}")


#: The environment variable that turns the automatic window off (``off``), for service
#: lines on ippanel that may send at any hour, and for test suites that must not depend on
#: the hour they run at. An explicit ``send_window=`` is not affected.
ENV_VAR = "SMSGATE_SEND_WINDOW"


def _loopback(base_url: object) -> bool:
    """Whether a gateway's ``base_url`` is this machine (a fake provider, a demo)."""
    if not isinstance(base_url, str):
        return False
    from urllib.parse import urlsplit

    host = (urlsplit(base_url).hostname or "").lower()
    return host in ("localhost", "::1") or host.startswith("127.")


def resolve(dispatcher: WindowSetting, route: WindowSetting, gateway: object) -> SendWindow | None:
    """The window in force on one route: the route's own, else the dispatcher's.

    "auto" is the default window for a gateway named ``"ippanel"`` (advertising lines),
    none elsewhere, none for a gateway whose ``base_url`` is on this machine (the fake
    provider of ``smsgate fake-server`` and the demo), and none when
    ``SMSGATE_SEND_WINDOW=off``.
    """
    chosen = route if route != AUTO else dispatcher
    if chosen == AUTO:
        if os.environ.get(ENV_VAR, "").strip().lower() in ("off", "0", "no", "false"):
            return None
        if getattr(gateway, "name", None) != "ippanel":
            return None
        if _loopback(getattr(gateway, "base_url", None)):
            return None
        return SendWindow()
    return chosen if isinstance(chosen, SendWindow) else None
