"""A warning per refused push, at most one line per interval (a flood must not fill the disk).

A flood of 2,000 forged pushes once wrote 6,024 log lines. :class:`RefusalLog` writes the
first refusal of each kind at once, counts the ones after it, and writes the next one only
when ``interval`` seconds have passed, saying how many were left out in between.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from ..exceptions import ConfigurationError

__all__ = ["DEFAULT_LOG_INTERVAL", "RefusalLog"]

#: Seconds between two log lines about refused pushes of one kind.
DEFAULT_LOG_INTERVAL = 60.0


class RefusalLog:
    """Rate-limited warnings about refused pushes, one budget per kind (HTTP status).

    Args:
        logger: Where the lines go (default ``smsgate.webhooks``).
        interval: At least this many seconds between two lines of one kind; ``0`` logs
            every refusal.
        clock: The time source (seconds, monotonic); tests pass a fake one.
    """

    def __init__(
        self,
        logger: logging.Logger | None = None,
        *,
        interval: float = DEFAULT_LOG_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not interval >= 0:
            raise ConfigurationError(f"interval must be seconds >= 0, not {interval!r}")
        self.logger = logger or logging.getLogger("smsgate.webhooks")
        self.interval = interval
        self._clock = clock
        self._last: dict[int, float] = {}
        self._suppressed: dict[int, int] = {}
        self._lock = threading.Lock()  # sync endpoints may run in worker threads

    def __repr__(self) -> str:
        return f"RefusalLog(interval={self.interval!r})"

    def refused(self, status: int, source: str | None, reason: object) -> bool:
        """Record one refused push; log it unless a line of its kind was written recently.

        Returns:
            Whether a line was written.
        """
        now = self._clock()
        with self._lock:
            last = self._last.get(status)
            if last is not None and now - last < self.interval:
                self._suppressed[status] = self._suppressed.get(status, 0) + 1
                return False
            self._last[status] = now
            skipped = self._suppressed.pop(status, 0)
        if skipped:
            self.logger.warning(
                "refused a delivery push from %s (HTTP %d): %s [%d more HTTP %d refusals in "
                "the last %.0f s were not logged]",
                source,
                status,
                reason,
                skipped,
                status,
                now - last if last is not None else 0.0,
            )
        else:
            self.logger.warning(
                "refused a delivery push from %s (HTTP %d): %s", source, status, reason
            )
        return True

    def suppressed(self) -> int:
        """Refusals counted but not yet reported in a line."""
        with self._lock:
            return sum(self._suppressed.values())
