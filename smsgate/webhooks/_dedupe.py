"""Remembering which delivery reports were already handled, so a repeated push counts once.

Providers (and proxies, and our own fake) may push the same report twice: a retry after a
slow answer, a replay. The receiver asks a :class:`DedupeStore` about each report's key
(message id, recipient and status) and hands only new ones to the user's callback.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Protocol, runtime_checkable

from .._models import DeliveryReport
from ..exceptions import ConfigurationError

__all__ = ["DedupeStore", "MemoryDedupeStore", "dedupe_key"]


def dedupe_key(report: DeliveryReport) -> str:
    """The identity of a report for deduplication: message id, recipient and status.

    The raw status is compared case-insensitively, so ``"Delivered"`` repeats
    ``"delivered"``; a report that moves on (``pending`` then ``delivered``) is new.
    """
    return "\x1f".join(
        (report.provider, report.message_id, report.recipient or "", report.provider_status.lower())
    )


@runtime_checkable
class DedupeStore(Protocol):
    """Where seen report keys are kept (memory by default; Redis or a database to share).

    An implementation must record and answer in one atomic step (Redis ``SET key 1 NX EX
    ttl``; SQL ``INSERT ... ON CONFLICT DO NOTHING``), so that two copies of a report
    arriving at once are not both taken as new.
    """

    async def seen(self, key: str) -> bool:
        """Record ``key`` and say whether it had been recorded before.

        Args:
            key: A report's :func:`dedupe_key`.

        Returns:
            ``True`` if the key was already known (a repeat), ``False`` if it is new.
        """
        ...


def _positive_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


class MemoryDedupeStore:
    """An in-process :class:`DedupeStore`, bounded in size and in time.

    Keys are forgotten ``ttl`` seconds after they were last seen, and the least recently
    seen keys go first when more than ``max_entries`` are held. Thread-safe, so one store
    may serve several event loops in one process; for several processes, use a shared
    store.

    Args:
        max_entries: How many keys to hold (about 200 bytes each).
        ttl: Seconds a key is remembered after it was last seen.
        clock: The time source (seconds); tests pass a fake clock.

    Raises:
        ConfigurationError: ``max_entries`` below 1 or ``ttl`` not positive.
    """

    def __init__(
        self,
        *,
        max_entries: int = 100_000,
        ttl: float = 24 * 3600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not _positive_int(max_entries):
            raise ConfigurationError(f"max_entries must be a positive int, not {max_entries!r}")
        if not ttl > 0:
            raise ConfigurationError(f"ttl must be positive seconds, not {ttl!r}")
        self.max_entries = max_entries
        self.ttl = float(ttl)
        self._clock = clock
        # key -> expiry time. Every hit moves its key to the end with a fresh expiry, so the
        # order is both least-recently-seen first and earliest-expiry first.
        self._keys: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return (
            f"MemoryDedupeStore(entries={len(self)}, max_entries={self.max_entries}, "
            f"ttl={self.ttl})"
        )

    def __len__(self) -> int:
        with self._lock:
            return len(self._keys)

    def __contains__(self, key: object) -> bool:
        now = self._clock()
        with self._lock:
            expiry = self._keys.get(key) if isinstance(key, str) else None
            return expiry is not None and expiry > now

    async def seen(self, key: str) -> bool:
        """Record ``key``; ``True`` if it was seen within ``ttl`` (see :class:`DedupeStore`)."""
        # No await in here: with the lock, check-and-record is one step for every caller.
        now = self._clock()
        with self._lock:
            keys = self._keys
            while keys:
                oldest, expiry = next(iter(keys.items()))
                if expiry > now:
                    break
                del keys[oldest]
            known = key in keys
            keys[key] = now + self.ttl
            keys.move_to_end(key)
            while len(keys) > self.max_entries:
                keys.popitem(last=False)
            return known

    def clear(self) -> None:
        """Forget every key."""
        with self._lock:
            self._keys.clear()
