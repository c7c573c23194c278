"""A journal on PostgreSQL, shared by processes and machines (``pip install ".[postgres]"``).

:class:`PostgresJournal` is the :class:`~smsgate.dispatch.Journal` for a bulk job that
runs on several workers: every dispatcher claims rows before it sends them, and PostgreSQL
decides each claim in **one statement**, so two workers (two processes, two machines, a
chunk delivered twice by a task queue) never both send one recipient::

    from smsgate.postgres import PostgresJournal

    journal = PostgresJournal("postgresql://app@db.internal/sms")
    dispatcher = smsgate.BulkDispatcher(gateway, journal=journal)

How it works, and why:

* **Claims by one statement.** ``INSERT ... ON CONFLICT (job_id, key) DO UPDATE ... WHERE
  <the row may be claimed> RETURNING key``: a key absent from the job is inserted; an
  existing row is overwritten only when it is ``failed`` with a definite refusal (the
  error class names come from :func:`smsgate.dispatch._journal.definite_refusals`, the set
  :func:`~smsgate.dispatch._journal.claimable` uses, passed as an array parameter), and
  only the keys written come back. PostgreSQL locks a conflicting row and re-checks the
  ``WHERE`` on its newest version, so there is no read-then-write race. A row under one of
  an entry's :attr:`~smsgate.dispatch.JournalEntry.aliases` (a key written by an older
  smsgate) is checked in the same statement.
* **Durable commits.** The journal's own pool sets ``synchronous_commit=on`` on its
  connections: a commit returns after the WAL is flushed to disk (and to synchronous
  standbys, where configured), so a ``pending`` row that was written survives a server
  crash. A pool you pass keeps its own settings; the journal refuses to work on one whose
  ``synchronous_commit`` is ``off`` (a crash could lose the last claims and a recipient
  would be sent twice).
* **Schema created and versioned by the journal**: three tables named from ``prefix``
  (``smsgate_journal_meta``, ``smsgate_journal_jobs``, ``smsgate_journal_entries`` by
  default) in ``schema`` (default: the connection's ``search_path``). The meta table holds
  the application name and the schema version. A database where those names belong to
  something else, or where a newer smsgate wrote a newer version, is refused with
  :class:`~smsgate.ConfigurationError` before anything is changed. Creation runs under a
  transaction-level advisory lock, so workers starting together create the tables once.
* **Errors.** Anything asyncpg or the network raises is re-raised as
  :class:`~smsgate.JournalError` naming the database by its DSN **without the password**;
  the original error is the ``__cause__``.

asyncpg runs under asyncio only: under trio every call raises
:class:`~smsgate.ConfigurationError`. Importing ``smsgate`` never imports this module or
asyncpg.
"""

from __future__ import annotations

from ._journal import PostgresJournal
from ._schema import APPLICATION, SCHEMA_VERSION, redact_dsn

__all__ = ["APPLICATION", "SCHEMA_VERSION", "PostgresJournal", "redact_dsn"]
