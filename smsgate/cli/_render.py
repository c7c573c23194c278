"""Rendering: the progress bar, the job report, the dry-run estimate, the failures file."""

from __future__ import annotations

import csv
from collections.abc import Iterable
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Table

if TYPE_CHECKING:
    from ..dispatch import BulkReport, Estimate, Outcome
    from ..dispatch import Progress as ProgressEvent

__all__ = [
    "ProgressHook",
    "announce",
    "estimate_json",
    "print_estimate",
    "print_report",
    "progress_bar",
    "report_json",
    "write_failures",
]


class ProgressHook:
    """Renders the dispatcher's progress events (``on_progress``) as a rich progress bar."""

    def __init__(self, progress: Progress | None, task: TaskID | None) -> None:
        self._progress = progress
        self._task = task

    def __call__(self, event: ProgressEvent) -> None:
        if self._progress is None or self._task is None:
            return
        self._progress.update(
            self._task,
            total=event.total,
            completed=event.done,
            rate=f"{event.rate:,.0f}/s",
            counts=f"sent {event.sent:,} failed {event.failed:,} unknown {event.unknown:,} "
            f"skipped {event.skipped:,}",
        )


class progress_bar:  # used like a function: `with progress_bar(...) as hook`
    """A progress bar on ``console`` while the job runs, or nothing.

    ``show=None`` shows it only on a terminal (a log file gets the report alone).
    """

    def __init__(self, console: Console, total: int, *, show: bool | None) -> None:
        enabled = console.is_terminal if show is None else show
        self._progress = (
            Progress(
                TextColumn("sending"),
                BarColumn(bar_width=24),
                MofNCompleteColumn(),
                TextColumn("{task.fields[rate]}"),
                TimeRemainingColumn(compact=True),
                TextColumn("{task.fields[counts]}"),
                console=console,
                # Outside a terminal rich draws once, at the end: give that line room.
                expand=False,
            )
            if enabled
            else None
        )
        if self._progress is not None and not console.is_terminal:
            console.width = max(console.width, 120)
        self._total = total

    def __enter__(self) -> ProgressHook:
        if self._progress is None:
            return ProgressHook(None, None)
        self._progress.start()
        task = self._progress.add_task("send", total=self._total, rate="", counts="")
        return ProgressHook(self._progress, task)

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()


def print_report(console: Console, report: BulkReport) -> None:
    """The end-of-job table: counts, errors by class, the first failed rows."""
    table = Table(title=f"job {report.job_id!r}", show_header=False)
    table.add_column("what")
    table.add_column("count", justify="right")
    elapsed = max(report.elapsed, 1e-9)
    for name, value in (
        ("rows", report.total),
        ("sent", report.sent),
        ("failed", report.failed),
        ("unknown (maybe sent: never resent)", report.unknown),
        ("skipped", report.skipped),
        ("  of which duplicates", report.duplicates),
        ("invalid rows (in failed)", report.invalid),
        ("provider requests", report.requests),
        ("retries", report.retries),
    ):
        table.add_row(name, f"{value:,}")
    table.add_row("elapsed", f"{report.elapsed:.2f} s ({report.total / elapsed:,.0f} rows/s)")
    console.print(table)
    if report.errors:
        errors = Table("error", "rows", title="errors")
        for name, count in sorted(report.errors.items(), key=lambda item: -item[1]):
            errors.add_row(name, f"{count:,}")
        console.print(errors)
    shown = report.failures[:10]
    if shown:
        failed = Table("number", "status", "error", title="failed and in doubt (first 10)")
        for outcome in shown:
            error = outcome.error
            failed.add_row(
                outcome.message.to,
                outcome.status,
                f"{type(error).__name__}: {error}" if error is not None else outcome.reason or "",
            )
        console.print(failed)


def print_estimate(console: Console, estimate: Estimate) -> None:
    """The dry-run table."""
    table = Table(title="dry run: nothing was sent", show_header=False)
    table.add_column("what")
    table.add_column("value", justify="right")
    for name, value in (
        ("rows", estimate.rows),
        ("recipients to send", estimate.recipients),
        ("duplicates", estimate.duplicates),
        ("invalid rows", estimate.invalid),
        ("already done (journal)", estimate.already_done),
        ("provider requests (at least)", estimate.requests),
        ("SMS parts", estimate.parts),
    ):
        table.add_row(name, f"{value:,}")
    if estimate.cost is not None:
        table.add_row("cost", f"{estimate.cost:,} Rial")
    if estimate.credit is not None:
        table.add_row("credit", f"{estimate.credit:,} Rial")
    if estimate.sufficient is False and estimate.cost is not None and estimate.credit is not None:
        table.add_row("[red]credit short by[/]", f"{estimate.cost - estimate.credit:,} Rial")
    console.print(table)


def write_failures(path: Path, failures: Iterable[Outcome]) -> None:
    """The failed and in-doubt rows as CSV (number,text,sender,status,error)."""
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["number", "text", "sender", "status", "error"])
        for outcome in failures:
            message = outcome.message
            error = outcome.error
            writer.writerow(
                [
                    message.to,
                    message.text,
                    message.sender or "",
                    outcome.status,
                    type(error).__name__ if error is not None else outcome.reason or "",
                ]
            )


def announce(console: Console, estimate: Estimate, job: str) -> None:
    """One line before the first request: what the job will send and what it costs."""
    already = f", {estimate.already_done:,} already done" if estimate.already_done else ""
    dropped = estimate.duplicates + estimate.invalid
    skipped = f", {dropped:,} duplicate or invalid" if dropped else ""
    line = (
        f"job {job!r}: {estimate.rows:,} rows, {estimate.recipients:,} to send{already}{skipped}; "
        f"{estimate.parts:,} SMS parts in about {estimate.requests:,} requests"
    )
    if estimate.cost is not None:
        line += f"; cost {estimate.cost:,} Rial"
    if estimate.credit is not None:
        line += f"; credit {estimate.credit:,} Rial"
    console.print(line, highlight=False)


def estimate_json(estimate: Estimate, job: str) -> dict[str, object]:
    """The dry run as a JSON object (the shape is documented in docs/cli.md)."""
    return {
        "job_id": job,
        "rows": estimate.rows,
        "recipients": estimate.recipients,
        "duplicates": estimate.duplicates,
        "invalid": estimate.invalid,
        "already_done": estimate.already_done,
        "requests": estimate.requests,
        "parts": estimate.parts,
        "price_per_part": _money(estimate.price_per_part),
        "cost": _money(estimate.cost),
        "credit": _money(estimate.credit),
        "provider": estimate.provider,
    }


def report_json(
    report: BulkReport,
    estimate: Estimate,
    *,
    interrupted: bool,
    resume: str,
    sent_recently: int = 0,
) -> dict[str, object]:
    """A finished (or stopped) job as a JSON object (documented in docs/cli.md)."""
    return {
        "job_id": report.job_id,
        "rows": report.total,
        "sent": report.sent,
        "failed": report.failed,
        "unknown": report.unknown,
        "skipped": report.skipped,
        "duplicates": report.duplicates,
        "invalid": report.invalid,
        "requests": report.requests,
        "retries": report.retries,
        "elapsed": round(report.elapsed, 3),
        "errors": dict(report.errors),
        "sent_recently": sent_recently,
        "stopped": report.stopped,
        "interrupted": interrupted,
        "resume": resume if (interrupted or report.stopped) else None,
        "estimate": estimate_json(estimate, report.job_id),
        "failures": [
            {
                "number": outcome.message.to,
                "recipient": outcome.recipient,
                "status": outcome.status,
                "error": type(outcome.error).__name__ if outcome.error is not None else None,
                "reason": outcome.reason,
                "message_id": outcome.receipt.message_id if outcome.receipt else None,
            }
            for outcome in report.failures
        ],
    }


def _money(value: Decimal | None) -> str | None:
    return None if value is None else str(value)
