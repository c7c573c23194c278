"""Counting a SQLite journal's rows: :func:`summarize` (a file) and what ``summary()`` runs."""

from __future__ import annotations

import os
import sqlite3

from ..exceptions import ConfigurationError
from ._journal import check_job_id
from ._sqlite_schema import SCHEMA_VERSION, check_header, journal_error, open_for_reading
from ._summary import JobSummary, build_summaries

__all__ = ["summaries", "summarize"]


def summarize(path: str | os.PathLike[str], job_id: str | None = None) -> dict[str, JobSummary]:
    """Count a journal file's rows per status, per job (what ``smsgate journal FILE`` shows).

    Reads only (``PRAGMA query_only``), so it is safe while a job is writing to the file,
    and never creates one. Blocking (plain sqlite3): call it from synchronous code such as the CLI,
    or use :meth:`SqliteJournal.summary` inside an event loop.

    Args:
        path: The journal file.
        job_id: Only this job; by default every job in the file.

    Returns:
        Job id to its :class:`JobSummary`, sorted by job id. Empty if ``job_id`` is not in
        the file.

    Raises:
        FileNotFoundError: There is no such file.
        ConfigurationError: The file is not an smsgate journal, or a newer one.
    """
    fspath = os.fspath(path)
    if not os.path.isfile(fspath):
        raise FileNotFoundError(f"no journal file at {fspath!r}")
    try:
        conn = open_for_reading(fspath)
    except sqlite3.Error as exc:
        raise journal_error(fspath, exc) from exc
    try:
        try:
            app_id = conn.execute("PRAGMA application_id").fetchone()[0]
            version = conn.execute("PRAGMA user_version").fetchone()[0]
        except sqlite3.DatabaseError as exc:
            if (getattr(exc, "sqlite_errorcode", 0) or 0) & 0xFF != _SQLITE_NOTADB:
                raise journal_error(fspath, exc) from exc
            raise ConfigurationError(
                f"{fspath!r} is not an SQLite database, so not an smsgate journal"
            ) from exc
        check_header(app_id, version, fspath)
        try:
            return summaries(
                conn, None if job_id is None else check_job_id(job_id), version=version
            )
        except sqlite3.Error as exc:
            raise journal_error(fspath, exc) from exc
    finally:
        conn.close()


_SQLITE_NOTADB = 26


def summaries(
    conn: sqlite3.Connection, job_id: str | None, *, version: int = SCHEMA_VERSION
) -> dict[str, JobSummary]:
    """Summaries from one file. ``version`` 1 (a file read, not migrated) lacks the
    ``parts`` and ``delivery`` columns: they read as ``NULL``."""
    where, args = ("WHERE job_id = ?", (job_id,)) if job_id is not None else ("", ())
    parts, delivery = ("parts", "delivery") if version >= 2 else ("NULL", "NULL")
    created = dict(conn.execute(f"SELECT job_id, created FROM jobs {where}", args).fetchall())  # noqa: S608 - constant clause
    by_status = conn.execute(
        f"SELECT job_id, status, route, count(*), max(updated), sum({parts}) "  # noqa: S608 - constant clause
        f"FROM entries {where} GROUP BY job_id, status, route",
        args,
    ).fetchall()
    errors = conn.execute(
        f"SELECT job_id, error, count(*) FROM entries {where} "  # noqa: S608 - constant clause
        f"{'AND' if where else 'WHERE'} error IS NOT NULL GROUP BY job_id, error",
        args,
    ).fetchall()
    deliveries = conn.execute(
        f"SELECT job_id, status, {delivery}, count(*) FROM entries {where} "  # noqa: S608 - constant clause
        f"GROUP BY job_id, status, {delivery}",
        args,
    ).fetchall()
    return build_summaries(created, by_status, errors, deliveries)
