"""A journal wrapper that counts the rows ``recent_window`` skips (for the warning line).

The dispatcher skips a row whose recipient got the same text from the same line in
another job of the journal within ``recent_window``; the report counts those rows among
``skipped``. This wrapper sees the journal's answer to ``recent_sends`` and counts them,
so that ``bulk`` can say how many were skipped for that reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..dispatch import Journal, JournalEntry

__all__ = ["RecentCounter"]


class RecentCounter:
    """Delegates every call to ``journal``; counts the rows found by ``recent_sends``."""

    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        self.recent = 0

    async def open(self, job_id: str) -> None:
        await self.journal.open(job_id)

    async def get(self, job_id: str, keys: Sequence[str]) -> dict[str, JournalEntry]:
        return await self.journal.get(job_id, keys)

    async def record(self, job_id: str, entries: Sequence[JournalEntry]) -> None:
        await self.journal.record(job_id, entries)

    async def claim(self, job_id: str, entries: Sequence[JournalEntry]) -> set[str]:
        return await self.journal.claim(job_id, entries)

    async def entries(self, job_id: str) -> list[JournalEntry]:
        return await self.journal.entries(job_id)

    async def jobs(self) -> list[str]:
        return await self.journal.jobs()

    async def aclose(self) -> None:
        await self.journal.aclose()

    async def recent_sends(
        self, keys: Sequence[str], *, since: float, exclude_job: str
    ) -> dict[str, str]:
        """The inner journal's answer (nothing, if it cannot tell), counted."""
        lookup = getattr(self.journal, "recent_sends", None)
        if lookup is None:
            return {}
        found: dict[str, str] = await lookup(keys, since=since, exclude_job=exclude_job)
        self.recent += sum(1 for key in dict.fromkeys(keys) if key in found)
        return found
