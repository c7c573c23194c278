"""``smsgate journal`` (how far the jobs got, which rows are in doubt and why) and
``smsgate reconcile`` (ask the provider about the rows in doubt and record the answers).

A journal is an SQLite file (``smsgate bulk --journal FILE``) or a PostgreSQL DSN
(``postgresql://...``, the ``postgres`` extra).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import anyio
import click
from rich.table import Table

from ..dispatch import Journal
from ._app import cli
from ._context import EXIT_PARTIAL, handled, settings, state

if TYPE_CHECKING:
    from ..dispatch import JobSummary, JournalEntry, Reconciled


class ReadableJournal(Journal, Protocol):
    """A journal that also counts its rows per job (SQLite and PostgreSQL journals)."""

    async def summary(self, job_id: str | None = None) -> dict[str, JobSummary]:
        """Counts per status for each job (or one job)."""
        ...


__all__ = ["ReadableJournal", "is_dsn", "journal", "open_journal", "reconcile"]

JSON_HELP = "Print one JSON document (see docs/cli.md for its shape)."
_IN_DOUBT = ("pending", "unknown")


def is_dsn(target: str) -> bool:
    """Whether a journal argument is a PostgreSQL DSN rather than a file path."""
    return target.startswith(("postgres://", "postgresql://"))


@asynccontextmanager
async def open_journal(target: str) -> AsyncIterator[ReadableJournal]:
    """The journal behind a CLI argument: an SQLite file, or a PostgreSQL DSN."""
    if is_dsn(target):
        from ..postgres import PostgresJournal  # type: ignore[import-not-found,unused-ignore]

        async with PostgresJournal(target) as pg:
            yield pg
        return
    from ..dispatch import SqliteJournal

    async with SqliteJournal(target) as sqlite:
        yield sqlite


def _check_exists(target: str) -> None:
    if is_dsn(target):
        state().hide_dsn(target)
    if not is_dsn(target) and not Path(target).is_file():
        state().fail(
            f"no journal at {target}",
            hint="pass the file given to `smsgate bulk --journal` (or a postgresql:// DSN)",
        )


def why_in_doubt(entry: JournalEntry) -> str:
    """One sentence: why this row is in doubt, and what can settle it."""
    if entry.status == "pending":
        cause = "the job stopped while its request was in flight (no answer recorded)"
    else:
        cause = entry.error or "the answer was lost"
        if entry.detail:
            cause = f"{cause}: {entry.detail}"
    settle = (
        "`smsgate reconcile` can ask the provider"
        if entry.message_id
        else "no provider id: check the panel's outbox"
    )
    return f"{cause}; {settle}"


def _iso(timestamp: float | None) -> str | None:
    if not timestamp:
        return None
    return datetime.fromtimestamp(timestamp).isoformat(sep=" ", timespec="seconds")


@cli.command()
@click.argument("target", metavar="JOURNAL")
@click.option("--job-id", help="Report only this job (default: every job in the journal).")
@click.option(
    "--limit",
    type=click.IntRange(min=0),
    default=20,
    show_default=True,
    help="Rows in doubt listed per job (--json lists them all).",
)
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
@handled
def journal(target: str, job_id: str | None, limit: int, as_json: bool) -> None:
    """Report how far the jobs in JOURNAL got, and which rows are in doubt and why.

    JOURNAL is the SQLite file given to `smsgate bulk --journal`, or a PostgreSQL DSN.
    Read only; needs no credentials. Exit status 3 when some recipients are in doubt
    (their request may have gone out): `smsgate reconcile` them before sending again.
    """
    current = state()
    _check_exists(target)

    async def read() -> tuple[dict[str, JobSummary], dict[str, list[JournalEntry]]]:
        async with open_journal(target) as opened:
            summaries = await opened.summary(job_id)
            doubts: dict[str, list[JournalEntry]] = {}
            for job, summary in summaries.items():
                if summary.in_doubt:
                    entries = await opened.entries(job)
                    doubts[job] = [e for e in entries if e.status in _IN_DOUBT]
            return summaries, doubts

    summaries, doubts = anyio.run(read)
    if as_json:
        current.write_json(
            {
                "journal": target if not is_dsn(target) else "postgresql",
                "jobs": [
                    {
                        "job_id": s.job_id,
                        "recipients": s.total,
                        "sent": s.sent,
                        "failed": s.failed,
                        "in_doubt": s.in_doubt,
                        "pending": s.pending,
                        "unknown": s.unknown,
                        "errors": dict(s.errors),
                        "updated": _iso(s.updated),
                        "rows_in_doubt": [
                            {
                                "recipient": e.recipient,
                                "status": e.status,
                                "error": e.error,
                                "message_id": e.message_id,
                                "why": why_in_doubt(e),
                            }
                            for e in doubts.get(s.job_id, [])
                        ],
                    }
                    for s in summaries.values()
                ],
            }
        )
        if any(s.in_doubt for s in summaries.values()):
            raise SystemExit(EXIT_PARTIAL)
        return
    if not summaries:
        current.out.print(f"no job {job_id!r} in {target}" if job_id else f"no jobs in {target}")
        return
    table = Table("job", "recipients", "sent", "failed", "in doubt", "last write")
    for summary in summaries.values():
        table.add_row(
            summary.job_id,
            f"{summary.total:,}",
            f"{summary.sent:,}",
            f"{summary.failed:,}",
            f"{summary.in_doubt:,}",
            _iso(summary.updated) or "-",
        )
    current.out.print(table)
    errors: dict[str, int] = {}
    for summary in summaries.values():
        for name, count in summary.errors.items():
            errors[name] = errors.get(name, 0) + count
    if errors:
        current.out.print(
            "errors: " + ", ".join(f"{name} {count:,}" for name, count in sorted(errors.items()))
        )
    if not doubts:
        return
    for job, rows in doubts.items():
        shown = rows[:limit]
        if not shown:
            continue
        more = f", first {len(shown)} of {len(rows)}" if len(rows) > len(shown) else ""
        listing = Table("recipient", "status", "message id", "why", title=f"in doubt: {job}{more}")
        for entry in shown:
            listing.add_row(
                entry.recipient, entry.status, entry.message_id or "-", why_in_doubt(entry)
            )
        current.out.print(listing)
    current.out.print(
        "[yellow]some recipients are in doubt[/]: rerunning the job never resends them; "
        f"`smsgate reconcile {target}` asks the provider about them (docs/reliability.md)"
    )
    raise SystemExit(EXIT_PARTIAL)


@cli.command()
@click.argument("target", metavar="JOURNAL")
@click.option("--job-id", help="Reconcile only this job (default: every job with rows in doubt).")
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
@handled
def reconcile(target: str, job_id: str | None, as_json: bool) -> None:
    """Ask the provider about the rows in doubt in JOURNAL and record what it says.

    A row whose send the provider confirms becomes `sent` (a rerun skips it); a row
    without a provider id stays in doubt: check the panel's outbox. Exit status 3 when
    some rows are still in doubt afterwards.
    """
    from ..dispatch import reconcile as ask_provider
    from ..dispatch import record_reconciled

    current = state()
    _check_exists(target)
    account = settings()

    async def main() -> dict[str, tuple[list[Reconciled], int]]:
        results: dict[str, tuple[list[Reconciled], int]] = {}
        async with open_journal(target) as opened, account.gateway() as gateway:
            jobs = [job_id] if job_id is not None else await opened.jobs()
            for job in jobs:
                entries = [e for e in await opened.entries(job) if e.status in _IN_DOUBT]
                if not entries:
                    continue
                found = await ask_provider(entries, gateway)
                written = await record_reconciled(opened, job, found)
                results[job] = (found, written)
        return results

    results = anyio.run(main)
    still = sum(1 for found, _ in results.values() for r in found if not r.settled)
    if as_json:
        current.write_json(
            {
                "jobs": [
                    {
                        "job_id": job,
                        "recorded": written,
                        "rows": [
                            {
                                "recipient": r.recipient,
                                "verdict": r.verdict,
                                "reason": r.reason,
                                "message_id": r.message_id,
                                "state": r.state.name if r.state is not None else None,
                            }
                            for r in found
                        ],
                    }
                    for job, (found, written) in results.items()
                ],
                "still_in_doubt": still,
            }
        )
    elif not results:
        current.out.print(f"nothing in doubt in {target}")
    else:
        for job, (found, written) in results.items():
            table = Table("recipient", "verdict", "message id", "reason", title=f"job {job!r}")
            for r in found:
                table.add_row(r.recipient, r.verdict, r.message_id or "-", r.reason)
            current.out.print(table)
            current.out.print(f"{written:,} row(s) settled and recorded in the journal")
        if still:
            current.out.print(
                f"[yellow]{still:,} row(s) still in doubt[/]: the provider cannot tell without "
                "an id; check the panel's outbox before sending to them again"
            )
    if still:
        raise SystemExit(EXIT_PARTIAL)
