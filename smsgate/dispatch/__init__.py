"""Bulk dispatch: many messages through one gateway or a fallback chain (being built)."""

from __future__ import annotations

from ._journal import Journal, JournalEntry, JournalStatus, MemoryJournal, journal_key

__all__ = ["Journal", "JournalEntry", "JournalStatus", "MemoryJournal", "journal_key"]
