"""``smsgate bulk FILE``: a bulk job from a CSV or .xlsx file, with a progress bar and a report.

Before the first request it prints what the job will cost (rows to send, SMS parts, the
account's credit); the first Ctrl+C drains the job (see ``_interrupt``) and prints the
command that resumes it; an account-wide error (login, credit, an unreachable host) stops
it (the dispatcher decides) and exits 1.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import anyio
import attrs
import click
from rich.console import Console
from rich.markup import escape

from .._models import Message
from ._app import cli
from ._context import (
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_PARTIAL,
    command_name,
    handled,
    settings,
    state,
)
from ._files import read_rows, same_line
from ._interrupt import GRACE_SECONDS, run_draining
from ._journal import is_dsn, open_journal
from ._recent import RecentCounter
from ._render import (
    announce,
    estimate_json,
    print_estimate,
    print_report,
    progress_bar,
    report_json,
    write_failures,
)

if TYPE_CHECKING:
    from ..dispatch import BulkReport, Estimate, SendWindow

__all__ = ["DEFAULT_RECENT_WINDOW", "bulk", "parse_duration"]

#: Default of --recent-window: a recipient who got the same text from the same line in
#: another job of the journal within this many seconds is skipped.
DEFAULT_RECENT_WINDOW = "24h"
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
#: Options that do not change which rows a rerun sends (left out of the resume command).
_NOT_RESUMED = frozenset({"progress", "dry_run", "as_json"})


def parse_duration(value: str) -> float:
    """``90``, ``90s``, ``30m``, ``24h``, ``7d`` -> seconds (``0`` turns the check off).

    Raises:
        click.BadParameter: Not such a duration.
    """
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", value.lower())
    if match is None:
        raise click.BadParameter(f"{value!r} is not a duration such as 90s, 30m, 24h or 7d")
    return float(match.group(1)) * _UNITS[match.group(2) or "s"]


def _duration(_ctx: click.Context, _param: click.Parameter, value: str) -> float:
    return parse_duration(value)


def _decimal(value: str) -> Decimal:
    try:
        return Decimal(value)
    except ArithmeticError:
        raise click.BadParameter(f"not a number: {value!r}") from None


@attrs.frozen
class _Ran:
    estimate: Estimate
    report: BulkReport | None = None  # None: cut short (second Ctrl+C, drain time over)
    interrupts: int = 0
    recent: int = 0  # rows skipped by --recent-window


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
    help="SQLite journal file (or a postgresql:// DSN): rerunning with the same journal "
    "resumes the job without resending. With --queue: the workers' journal.",
)
@click.option(
    "--job-id",
    help="The job's name in the journal (default: the file's name). A rerun with the same "
    "job id sends only the rows not sent yet (new or edited rows).",
)
@click.option(
    "--recent-window",
    callback=_duration,
    default=DEFAULT_RECENT_WINDOW,
    show_default=True,
    help="Skip a recipient who got the same text from the same line in another job of "
    "the journal within this window (0 turns it off).",
)
@click.option(
    "--allow-repeat",
    is_flag=True,
    help="Send even to recipients who got the same text in another job recently.",
)
@click.option(
    "--send-window",
    default="auto",
    show_default=True,
    help="Hours requests may start, e.g. 08:00-23:00 (Tehran time); 'auto' applies the "
    "advertising hours on ippanel lines, 'off' none. Outside it the job waits.",
)
@click.option("--dry-run", is_flag=True, help="Only count requests, SMS parts and cost.")
@click.option(
    "--price-per-part",
    type=str,
    help="Rial per SMS part: prints the cost, and refuses to start when the credit is short.",
)
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
@click.option(
    "--json", "as_json", is_flag=True, help="Print the report as one JSON document (docs/cli.md)."
)
@click.option(
    "--queue",
    "queue_url",
    help="Submit to workers ('smsgate worker') through this queue instead of sending from "
    "here: a Redis URL (redis://host:6379/0) or a RabbitMQ URL (amqp://...); the progress "
    "bar follows the job in Redis.",
)
@click.option(
    "--redis",
    help="With --queue: the workers' Redis URL (or $SMSGATE_REDIS; default: the queue's own "
    "Redis, else redis://127.0.0.1:6379/0).",
)
@click.option("--queue-name", default="smsgate", show_default=True, help="With --queue.")
@click.option("--chunk-size", type=click.IntRange(min=1), default=500, show_default=True)
@click.option("--wait/--no-wait", default=True, help="With --queue: follow the job to its end.")
@handled
def bulk(
    file: Path,
    encoding: str | None,
    text: str | None,
    sender: str | None,
    rate: float | None,
    concurrency: int,
    max_batch: int | None,
    journal: str | None,
    job_id: str | None,
    recent_window: float,
    allow_repeat: bool,
    send_window: str,
    dry_run: bool,
    price_per_part: str | None,
    failures: Path | None,
    progress: bool | None,
    as_json: bool,
    queue_url: str | None,
    redis: str | None,
    queue_name: str,
    chunk_size: int,
    wait: bool,
) -> None:
    """Send every row of FILE (CSV or .xlsx: number,text[,sender]; a header is optional).

    CSV files may be UTF-8 (with or without BOM), UTF-16 or Windows-1256, separated by
    commas, semicolons or tabs: both are detected. An .xlsx file needs the 'xlsx' extra.
    The first Ctrl+C lets the requests in flight finish and prints the command that
    resumes the job; a second one stops at once.
    """
    from ..dispatch import BulkDispatcher, RateLimit

    current = state()
    account = settings()
    if journal is not None and is_dsn(journal):
        current.hide_dsn(journal)
    ctx = click.get_current_context()
    price = _decimal(price_per_part) if price_per_part is not None else None
    if sender is not None and account.sender is not None and same_line(sender, account.sender):
        # The default line spelled out: keep rows sender-less so that a rerun with or
        # without --sender finds the same journal rows (the key includes the sender).
        sender = None
    # The default job id is the file's name, not its content: a rerun of an edited file is
    # the same job, and the journal's per-recipient key (number, text, line) tells an
    # unchanged row (skipped) from a new or edited one (sent).
    job = job_id or file.name
    window = None if allow_repeat or recent_window <= 0 else recent_window
    hours = _send_window(send_window)
    resume = _resume_command(ctx, job)

    def rows() -> Iterator[Message]:
        return read_rows(file, text=text, sender=sender, encoding=encoding)

    if queue_url is not None:
        if not journal:
            raise click.UsageError("--queue needs --journal (the workers' journal)")
        from ._queue import ENV_REDIS, default_redis, submit_to_queue

        submit_to_queue(
            rows(),
            total=sum(1 for _ in rows()),
            job_id=job,
            queue_url=queue_url,
            redis=redis or os.environ.get(ENV_REDIS) or default_redis(queue_url),
            journal=journal,
            name=queue_name,
            chunk_size=chunk_size,
            show_progress=progress,
            wait=wait,
        )
        return

    async def main() -> _Ran:
        async with contextlib.AsyncExitStack() as stack:
            gateway = account.gateway()
            await stack.enter_async_context(gateway)
            # The journal (a file or a DSN) is opened here, and wrapped to count the rows
            # --recent-window skips.
            counter: RecentCounter | None = None
            if journal is not None:
                opened = await stack.enter_async_context(open_journal(journal))
                counter = RecentCounter(opened)
            # The whole file is read (and the credit asked) before the first send: a bad
            # file, a wrong password or a short credit stop here, with nothing sent.
            estimator = BulkDispatcher(
                gateway, max_batch=max_batch, journal=counter, send_window=None
            )
            estimate = await estimator.estimate(rows(), price_per_part=price, job_id=job)
            if dry_run:
                return _Ran(estimate)
            announce(current.err, estimate, job)
            estimate.check()
            with progress_bar(current.err, estimate.rows, show=progress) as on_progress:
                dispatcher = BulkDispatcher(
                    gateway,
                    rate_limit=RateLimit(rate) if rate else None,
                    concurrency=concurrency,
                    max_batch=max_batch,
                    journal=counter,
                    on_progress=on_progress,
                    recent_window=window,
                    send_window=hours,
                    drain_timeout=GRACE_SECONDS,
                )

                def stopping() -> None:
                    current.err.print(
                        "\n[yellow]Ctrl+C[/]: no new rows; letting the requests in flight "
                        f"finish (up to {GRACE_SECONDS:.0f} s; Ctrl+C again stops at once)"
                    )

                drained = await run_draining(
                    lambda stop: dispatcher.run(rows(), job_id=job, total=estimate.rows, stop=stop),
                    on_stop=stopping,
                )
            return _Ran(
                estimate,
                drained.result,
                interrupts=drained.interrupts,
                recent=counter.recent if counter is not None else 0,
            )

    ran = anyio.run(main)
    if dry_run:
        if as_json:
            current.write_json(estimate_json(ran.estimate, job))
        else:
            print_estimate(current.out, ran.estimate)
        return
    report = ran.report
    if report is None:  # cut short: the journal holds what was recorded
        current.err.print(
            "[red]stopped at once[/]: rows whose request was in flight are in doubt "
            "and will not be resent"
        )
        if journal:
            name = command_name()
            see = f"{name} journal {shlex.quote(journal)} --job-id {shlex.quote(job)}"
            current.err.print(f"see them with: {see}", markup=False)
            current.err.print(f"resume with:   {resume}", markup=False)
        raise SystemExit(EXIT_INTERRUPTED)
    if as_json:
        current.write_json(
            report_json(
                report,
                ran.estimate,
                interrupted=bool(ran.interrupts),
                resume=resume,
                sent_recently=ran.recent,
            )
        )
    else:
        print_report(current.out, report)
    if failures is not None and report.failures:
        write_failures(failures, report.failures)
        current.err.print(f"failed and in-doubt rows written to {failures}")
    if ran.interrupts:
        _print_stopped(current.err, report, "stopped by Ctrl+C", resume, journal, ran.estimate.rows)
        raise SystemExit(EXIT_INTERRUPTED)
    if ran.recent:
        current.err.print(
            f"[yellow]{ran.recent:,} recipient(s) skipped[/]: they were sent the same text from "
            "the same line by another job of this journal in the last "
            f"{_describe_seconds(window or 0)} (--allow-repeat sends them anyway)"
        )
    stopped = report.stopped
    if stopped:
        _print_stopped(
            current.err, report, f"the job stopped: {stopped}", resume, journal, ran.estimate.rows
        )
        hint = _hint_for(report)
        if hint:
            current.err.print(f"[dim]hint:[/] {hint}")
        raise SystemExit(EXIT_ERROR)
    if report.failed or report.unknown:
        raise SystemExit(EXIT_PARTIAL)


def _send_window(value: str) -> SendWindow | Literal["auto"] | None:
    """``auto``, ``off`` or ``HH:MM-HH:MM`` (Asia/Tehran) as the dispatcher's setting."""
    from ..dispatch import SendWindow

    spelled = value.strip().lower()
    if spelled == "auto":
        return "auto"
    if spelled in ("off", "none", "0"):
        return None
    start, dash, end = spelled.partition("-")
    if not dash:
        raise click.BadParameter(
            f"{value!r}: use auto, off, or HH:MM-HH:MM", param_hint="--send-window"
        )
    try:
        return SendWindow(start.strip(), end.strip(), tz="Asia/Tehran")
    except ValueError as exc:
        raise click.BadParameter(f"{value!r}: {exc}", param_hint="--send-window") from None


def _describe_seconds(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size * (2 if unit == "d" else 1) and seconds % size == 0:
            return f"{seconds / size:.0f}{unit}"
    return f"{seconds:.0f}s"


def _print_stopped(
    console: Console, report: BulkReport, why: str, resume: str, journal: str | None, rows: int
) -> None:
    # Rows never read, and rows read but stopped before their request (JobStoppedError).
    not_attempted = max(0, rows - report.total) + report.errors.get("JobStoppedError", 0)
    console.print(
        f"[yellow]{escape(why)}[/]: {report.sent:,} sent, {not_attempted:,} not attempted, "
        f"{report.unknown:,} in doubt"
    )
    if journal:
        console.print(f"resume with: {resume}", markup=False)
    else:
        console.print(
            "without --journal a rerun sends every row again: remove the rows already sent, "
            "or use --journal next time"
        )


def _hint_for(report: BulkReport) -> str | None:
    errors = set(report.errors)
    if "AuthenticationError" in errors:
        return "check SMSGATE_USERNAME and SMSGATE_PASSWORD (or the config file)"
    if "InsufficientCreditError" in errors:
        return "top up the account's credit"
    if "AccountRestrictedError" in errors:
        return "the provider restricted the account: ask its support"
    if errors & {"NotSentError", "ProviderUnavailableError"}:
        return "check SMSGATE_BASE_URL and the network (the provider could not be reached)"
    return None


def _default(ctx: click.Context, param: click.Option) -> object:
    default = param.get_default(ctx)
    return _duration(ctx, param, str(default)) if param.name == "recent_window" else default


def _resume_command(ctx: click.Context, job: str) -> str:
    """The exact command that resumes this job (same file, journal, job id and options)."""
    words = command_name().split()
    parent = ctx.parent
    if parent is not None and parent.params.get("config") is not None:
        words += ["--config", str(parent.params["config"])]
    words.append(ctx.info_name or "bulk")
    has_job_id = False
    for param in ctx.command.params:
        name = param.name or ""
        value = ctx.params.get(name)
        if isinstance(param, click.Argument):
            words.append(str(value))
            continue
        if name in _NOT_RESUMED or value is None or value is False:
            continue
        if not isinstance(param, click.Option) or value == _default(ctx, param):
            continue
        option = param.opts[0]
        if param.is_flag:
            words.append(option)
        else:
            words += [option, str(value)]
        has_job_id = has_job_id or name == "job_id"
    if not has_job_id:
        words += ["--job-id", job]
    return shlex.join(words)
