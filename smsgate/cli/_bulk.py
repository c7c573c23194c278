"""``smsgate bulk FILE``: a bulk job from a CSV file, with a progress bar and a report."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import click

from .._models import Message
from ._app import cli
from ._context import EXIT_PARTIAL, handled, settings, state
from ._files import read_rows, same_line
from ._render import print_estimate, print_report, progress_bar, write_failures

if TYPE_CHECKING:
    from ..dispatch import BulkReport, Estimate

__all__ = ["bulk"]


def _decimal(value: str) -> Decimal:
    try:
        return Decimal(value)
    except ArithmeticError:
        raise click.BadParameter(f"not a number: {value!r}") from None


@cli.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--encoding",
    help="The CSV file's encoding (default: detected: BOM, UTF-8, else cp1256).",
)
@click.option("--text", help="One text for every row (the file then needs only numbers).")
@click.option("--sender", help="The line for every row without its own sender column.")
@click.option("--rate", type=click.FloatRange(min=0, min_open=True), help="Requests per second.")
@click.option("--concurrency", type=click.IntRange(min=1), default=32, show_default=True)
@click.option("--max-batch", type=click.IntRange(min=1), help="Recipients per request.")
@click.option(
    "--journal",
    type=click.Path(dir_okay=False, path_type=Path),
    help="SQLite journal: rerunning with the same journal resumes the job without resending.",
)
@click.option(
    "--job-id",
    help="The job's name in the journal (default: the file's name). A rerun with the same "
    "job id sends only the rows not sent yet (new or edited rows).",
)
@click.option("--dry-run", is_flag=True, help="Only count requests, SMS parts and cost.")
@click.option("--price-per-part", type=str, help="Rial per SMS part, for --dry-run's cost.")
@click.option(
    "--failures",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the failed and in-doubt rows to this CSV file.",
)
@click.option(
    "--progress/--no-progress",
    default=None,
    help="Show a progress bar (default: only on a terminal).",
)
@handled
def bulk(
    file: Path,
    encoding: str | None,
    text: str | None,
    sender: str | None,
    rate: float | None,
    concurrency: int,
    max_batch: int | None,
    journal: Path | None,
    job_id: str | None,
    dry_run: bool,
    price_per_part: str | None,
    failures: Path | None,
    progress: bool | None,
) -> None:
    """Send every row of FILE (CSV or .xlsx: number,text[,sender]; a header is optional).

    CSV files may be UTF-8 (with or without BOM), UTF-16 or Windows-1256, separated by
    commas, semicolons or tabs: both are detected. An .xlsx file needs the 'xlsx' extra.
    """
    from ..dispatch import BulkDispatcher, RateLimit

    current = state()
    account = settings()
    price = _decimal(price_per_part) if price_per_part is not None else None
    if sender is not None and account.sender is not None and same_line(sender, account.sender):
        # The default line spelled out: keep rows sender-less so that a rerun with or
        # without --sender finds the same journal rows (the key includes the sender).
        sender = None
    total = sum(1 for _ in read_rows(file, text=text, sender=sender, encoding=encoding))
    # The default job id is the file's name, not its content: a rerun of an edited file is
    # the same job, and the journal's per-recipient key (number, text, line) tells an
    # unchanged row (skipped) from a new or edited one (sent).
    job = job_id or file.name

    def rows() -> Iterator[Message]:
        return read_rows(file, text=text, sender=sender, encoding=encoding)

    if dry_run:

        async def estimate() -> Estimate:
            async with account.gateway() as gateway:
                dispatcher = BulkDispatcher(
                    gateway, max_batch=max_batch, journal=str(journal) if journal else None
                )
                return await dispatcher.estimate(rows(), price_per_part=price, job_id=job)

        print_estimate(current.out, anyio.run(estimate))
        return

    with progress_bar(current.err, total, show=progress) as on_progress:

        async def run() -> BulkReport:
            async with account.gateway() as gateway:
                dispatcher = BulkDispatcher(
                    gateway,
                    rate_limit=RateLimit(rate) if rate else None,
                    concurrency=concurrency,
                    max_batch=max_batch,
                    journal=str(journal) if journal else None,
                    on_progress=on_progress,
                )
                return await dispatcher.run(rows(), job_id=job, total=total)

        report = anyio.run(run)
    print_report(current.out, report)
    if failures is not None and report.failures:
        write_failures(failures, report.failures)
        current.out.print(f"failed and in-doubt rows written to {failures}")
    if report.failed or report.unknown:
        raise SystemExit(EXIT_PARTIAL)
