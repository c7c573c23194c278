"""Limiter arithmetic: how many units a request takes, and batch sizes that fit a window."""

from __future__ import annotations

import functools
import math

from .._segments import segments
from ._limiter import RateLimiter

__all__ = ["amount", "clamp_for_limiter", "parts"]


@functools.lru_cache(maxsize=4096)
def parts(text: str) -> int:
    """SMS parts of a text (cached: bulk jobs repeat texts)."""
    if len(text) <= 70 and (len(text) <= 35 or max(text) <= "\uffff"):
        # At most 70 UTF-16 code units (no character outside the BMP past 35), so at most
        # 140 septets: one part in either encoding, without looking at each character.
        return 1
    return max(1, segments(text).parts)


def clamp_for_limiter(size: int, text_parts: int, limiter: RateLimiter) -> int:
    """Fit a batch to a limiter that counts recipients or parts (0: not even one fits).

    A request of ``n`` numbers takes ``n`` (or ``n * parts``) units, and a window holds at
    most ``max_amount``: batches of 40 under 100 recipients/s fit only two per window (80/s),
    so the size is evened out to ``cap // k`` (three batches of 33: 99/s).
    """
    cap = limiter.max_amount
    if cap is None or limiter.unit == "requests":
        return size
    per_window = cap // (text_parts if limiter.unit == "parts" else 1)
    if per_window < 1:
        return 0
    if size >= per_window:
        return per_window
    return per_window // math.ceil(per_window / size)


def amount(count: int, text: str, limiter: RateLimiter) -> int:
    """Units one request of ``count`` numbers of ``text`` takes from ``limiter``."""
    unit = limiter.unit
    if unit == "recipients":
        return count
    if unit == "parts":
        return count * parts(text)
    return 1
