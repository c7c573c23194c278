"""``smsgate track`` (delivery states into the journal), ``smsgate report`` (the page as a
file) and ``smsgate serve`` (the page live on 127.0.0.1).

The journal argument is what ``smsgate journal`` takes: an SQLite file or a PostgreSQL DSN.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import click
from rich.table import Table

from ._app import cli
from ._context import EXIT_PARTIAL, handled, settings, state
from ._journal import JSON_HELP, _check_exists, open_journal

if TYPE_CHECKING:
    from ..tracking import DeliveryCounts, TrackSummary

__all__ = ["parse_duration", "report", "serve", "track"]

_UNITS = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")


def parse_duration(text: str) -> float:
    """Seconds from ``"90"``, ``"90s"``, ``"30m"``, ``"2h"`` or ``"1d"``."""
    match = _DURATION.match(text.lower())
    if match is None:
        raise click.BadParameter(f"{text!r} is not a duration (e.g. 90, 30m, 2h)")
    return float(match.group(1)) * _UNITS[match.group(2)]


class _Duration(click.ParamType[float]):  # type: ignore[type-arg,unused-ignore]
    name = "DURATION"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        if isinstance(value, int | float):
            return float(value)
        try:
            return parse_duration(str(value))
        except click.BadParameter as exc:
            self.fail(str(exc), param, ctx)


def _price(value: str | None) -> Decimal | None:
    if value is None:
        return None
    try:
        price = Decimal(value)
    except InvalidOperation:
        raise click.BadParameter(
            f"{value!r} is not a number", param_hint="--price-per-part"
        ) from None
    if not price.is_finite() or price < 0:
        raise click.BadParameter("must be a number >= 0", param_hint="--price-per-part")
    return price


def _counts_row(name: str, counts: DeliveryCounts) -> list[str]:
    return [
        name,
        f"{counts.sent:,}",
        f"{counts.delivered:,}",
        f"{counts.undelivered:,}",
        f"{counts.blocked:,}",
        f"{counts.rejected:,}",
        f"{counts.pending:,}",
    ]


@cli.command()
@click.argument("target", metavar="JOURNAL")
@click.option("--job-id", help="Track only this job (default: every job in the journal).")
@click.option(
    "--deadline",
    type=_Duration(),
    default="1h",
    show_default=True,
    help="Give up on rows still not final after this long (90, 30m, 2h).",
)
@click.option(
    "--interval",
    type=_Duration(),
    default="30s",
    show_default=True,
    help="Time between two rounds of status calls.",
)
@click.option(
    "--rate",
    type=click.FloatRange(min=0, min_open=True),
    default=5.0,
    show_default=True,
    help="Status calls per second at most.",
)
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
@handled
def track(
    target: str, job_id: str | None, deadline: float, interval: float, rate: float, as_json: bool
) -> None:
    """Poll delivery for the sent rows of JOURNAL's jobs until final, into the journal.

    Asks the provider configured in the environment (as for `smsgate send`): ippanel one
    call per bulk, Negin up to 100 ids per call. Exit status 3 when some rows are still
    not final at the deadline (run it again later: final rows are not asked again).
    """
    from ..dispatch import RateLimit
    from ..tracking import track as track_job

    current = state()
    _check_exists(target)
    account = settings()

    async def main() -> list[TrackSummary]:
        found: list[TrackSummary] = []
        async with open_journal(target) as opened, account.gateway() as gateway:
            jobs = [job_id] if job_id is not None else await opened.jobs()
            limit = RateLimit(rate)
            for job in jobs:
                summary = await track_job(
                    opened,
                    gateway,
                    job_id=job,
                    deadline=deadline,
                    interval=interval,
                    rate_limit=limit,
                )
                found.append(summary)
        return found

    summaries = anyio.run(main)
    incomplete = any(not s.complete for s in summaries)
    if as_json:
        current.write_json(
            {
                "jobs": [
                    {
                        "job_id": s.job_id,
                        "complete": s.complete,
                        "delivery": s.counts.as_dict(),
                        "routes": {name: c.as_dict() for name, c in s.routes.items()},
                        "untracked": s.untracked,
                        "requests": s.requests,
                        "errors": dict(s.errors),
                    }
                    for s in summaries
                ]
            }
        )
    elif not summaries:
        current.out.print(f"no jobs in {target}")
    else:
        for s in summaries:
            table = Table(
                "route", "sent", "delivered", "undelivered", "blocked", "rejected", "pending",
                title=f"job {s.job_id!r}",
            )  # fmt: skip
            for name, counts in s.routes.items():
                table.add_row(*_counts_row(name, counts))
            if len(s.routes) != 1:
                table.add_row(*_counts_row("all", s.counts))
            current.out.print(table)
            notes = [f"{s.requests:,} status call(s)"]
            if s.untracked:
                notes.append(f"{s.untracked:,} row(s) cannot be tracked (no provider id)")
            if s.errors:
                notes.append("errors: " + ", ".join(f"{k} {v:,}" for k, v in s.errors.items()))
            current.out.print("; ".join(notes))
        if incomplete:
            current.out.print(
                "[yellow]some rows are not final yet[/]: run `smsgate track` again later"
            )
    if incomplete:
        raise SystemExit(EXIT_PARTIAL)


def _mask_option(func: Any) -> Any:
    return click.option(
        "--show-numbers",
        is_flag=True,
        help="Show phone numbers in full (masked by default, like +98912***4567).",
    )(func)


def _price_option(func: Any) -> Any:
    return click.option(
        "--price-per-part", metavar="RIAL", help="Rial per SMS part, for the cost column."
    )(func)


async def _only_job(opened: Any, target: str, job_id: str | None) -> str:
    if job_id is not None:
        if job_id not in await opened.jobs():
            state().fail(f"no job {job_id!r} in {target}")
        return job_id
    jobs = await opened.jobs()
    if len(jobs) != 1:
        listed = ", ".join(jobs[:10]) or "none"
        state().fail(f"{target} holds {len(jobs)} jobs ({listed}): pick one with --job-id")
    return str(jobs[0])


@cli.command()
@click.argument("target", metavar="JOURNAL")
@click.option("--job-id", help="The job (needed when the journal holds several).")
@click.option(
    "--html",
    "html_file",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the page to this file (replaced if it exists).",
)
@_mask_option
@_price_option
@handled
def report(
    target: str,
    job_id: str | None,
    html_file: Path,
    show_numbers: bool,
    price_per_part: str | None,
) -> None:
    """Write the report page of a job in JOURNAL: one self-contained HTML file.

    Counts, the delivery funnel over time, parts and cost per route, and the failures
    with their reasons. Nothing in the page is fetched from anywhere: open it offline.
    Needs no credentials.
    """
    from ..report import write_html

    current = state()
    _check_exists(target)
    price = _price(price_per_part)

    async def main() -> str:
        async with open_journal(target) as opened:
            job = await _only_job(opened, target, job_id)
            await write_html(opened, job, html_file, mask=not show_numbers, price_per_part=price)
            return job

    job = anyio.run(main)
    current.out.print(f"wrote the report of job {job!r} to {html_file}")


@cli.command()
@click.argument("target", metavar="JOURNAL")
@click.option("--job-id", help="The job shown first (default: the journal's last job).")
@click.option("--host", default="127.0.0.1", show_default=True, help="The interface.")
@click.option("--port", type=click.IntRange(0, 65535), default=8750, show_default=True)
@click.option(
    "--allow-remote",
    is_flag=True,
    help="Permit a --host other than loopback (the page lists failed numbers).",
)
@click.option(
    "--refresh", type=_Duration(), default="5s", show_default=True, help="Page refresh period."
)
@_mask_option
@_price_option
@handled
def serve(
    target: str,
    job_id: str | None,
    host: str,
    port: int,
    allow_remote: bool,
    refresh: float,
    show_numbers: bool,
    price_per_part: str | None,
) -> None:
    """Serve the report page of JOURNAL live (refreshing while the job runs) until Ctrl-C.

    On 127.0.0.1 by default; `?job=ID` in the address picks another job. Needs no
    credentials.
    """
    from ..report import serve as serve_report

    current = state()
    _check_exists(target)
    price = _price(price_per_part)

    async def main() -> None:
        async with open_journal(target) as opened:
            current.err.print(f"serving the report on http://{host}:{port}/ (Ctrl-C stops)")
            await serve_report(
                opened,
                host,
                port,
                job_id=job_id,
                mask=not show_numbers,
                price_per_part=price,
                refresh=refresh,
                allow_remote=allow_remote,
            )

    anyio.run(main)
