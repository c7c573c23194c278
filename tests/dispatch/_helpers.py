"""Helpers shared by the dispatch tests: fake time and sliding-window checks."""

from __future__ import annotations

from collections.abc import Sequence

import anyio.lowlevel
import trio.testing

# Floats: a start that lands within this of a window's end belongs to the next window
# (the limiter's own rounding tolerance is 1e-9).
TOLERANCE = 1e-6


class FakeTime:
    """A clock and a sleep for code that takes them injected: sleeping moves the clock."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += max(0.0, seconds)
        await anyio.lowlevel.checkpoint()


def max_in_window(starts: Sequence[float], per: float, amounts: Sequence[int] | None = None) -> int:
    """The largest total amount that starts within any half-open window of ``per`` seconds.

    Every window that could hold a maximum starts at some start time, so checking the
    window opening at each start covers every sliding window.
    """
    pairs = sorted(zip(starts, amounts or [1] * len(starts), strict=True))
    best = 0
    j = 0
    total = 0
    for i in range(len(pairs)):
        while j < len(pairs) and pairs[j][0] < pairs[i][0] + per - TOLERANCE:
            total += pairs[j][1]
            j += 1
        best = max(best, total)
        total -= pairs[i][1]
    return best


def mock_clock_backend() -> tuple[str, dict[str, object]]:
    """anyio_backend value: trio with a MockClock that jumps as soon as every task sleeps."""
    return ("trio", {"clock": trio.testing.MockClock(autojump_threshold=0)})
