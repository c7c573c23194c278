"""``smsgate journal FILE``: how far the jobs in a journal got (read only)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import click
from rich.table import Table

from ._app import cli
from ._context import EXIT_PARTIAL, handled, state

__all__ = ["journal"]


@cli.command()
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--job-id", help="Report only this job (default: every job in the file).")
@handled
def journal(file: Path, job_id: str | None) -> None:
    """Report how far the jobs in a journal FILE got (read only; needs no credentials).

    Exit status 3 when some recipients are in doubt (their request may have gone out):
    reconcile them before sending to them again.
    """
    from ..dispatch import summarize

    current = state()
    if not file.exists():
        current.fail(
            f"no journal at {file}", hint="pass the file given to `smsgate bulk --journal`"
        )
    summaries = summarize(str(file), job_id)
    if not summaries:
        current.out.print(f"no job {job_id!r} in {file}" if job_id else f"no jobs in {file}")
        return
    table = Table("job", "recipients", "sent", "failed", "in doubt", "last write")
    for summary in summaries.values():
        updated = (
            datetime.fromtimestamp(summary.updated).isoformat(sep=" ", timespec="seconds")
            if summary.updated
            else "-"
        )
        table.add_row(
            summary.job_id,
            f"{summary.total:,}",
            f"{summary.sent:,}",
            f"{summary.failed:,}",
            f"{summary.in_doubt:,}",
            updated,
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
    if any(summary.in_doubt for summary in summaries.values()):
        current.out.print(
            "[yellow]some recipients are in doubt[/]: rerunning the job never resends them; "
            "reconcile them through the provider's delivery reports (docs/reliability.md)"
        )
        raise SystemExit(EXIT_PARTIAL)
