"""Commands that need no account: ``fake-server`` and ``demo`` (the fake provider)."""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Iterator
from decimal import Decimal
from typing import TYPE_CHECKING

import anyio
import click
from rich.table import Table

from .._models import Message
from ._app import cli
from ._context import command_name, handled, state
from ._render import print_report, progress_bar

if TYPE_CHECKING:
    from ..dispatch import BulkReport

__all__ = ["FAKE_NEGIN_LINE", "FAKE_SENDER", "demo", "fake_server"]

FAKE_SENDER = "+983000505"  # lines the fake provider's accounts own
FAKE_NEGIN_LINE = "9830003300"


def _rial(value: str) -> Decimal:
    try:
        return Decimal(value)
    except ArithmeticError:
        raise click.BadParameter(f"not a number: {value!r}", param_hint="--credit") from None


@cli.command("fake-server")
@click.option("--port", type=click.IntRange(0, 65535), default=8765, show_default=True)
@click.option("--latency", type=click.FloatRange(min=0), default=0.0, help="Seconds per answer.")
@click.option("--opt-out", multiple=True, help="A number on the opt-out list (repeatable).")
@click.option(
    "--duration",
    type=click.FloatRange(min=0, min_open=True),
    help="Stop after this many seconds (default: run until Ctrl+C).",
)
@click.option("--credit", type=str, help="The account's starting credit in Rial.")
@click.option(
    "--profile",
    default="lenient",
    show_default=True,
    help="Behave exactly as one provider document describes: lenient, ippanel-pdf, kapanel "
    "or negin-guide (docs/protocols/).",
)
@click.option(
    "--log-requests",
    is_flag=True,
    help="Print one line per request: method, path, operation, recipients, status "
    "(never a credential, a text or a number).",
)
@handled
def fake_server(
    port: int,
    latency: float,
    opt_out: tuple[str, ...],
    duration: float | None,
    credit: str | None,
    profile: str,
    log_requests: bool,
) -> None:
    """Serve the fake provider (ippanel and Negin protocols) on 127.0.0.1.

    It is smsgate.testing.FakeProvider: credit, opt-out list, delivery timelines and a
    ledger of what it accepted, with its own demo credentials (printed below).
    """
    from ..testing import FakeProvider, Faults, serve_loopback
    from ._requestlog import ASGIApp, RequestLog

    current = state()
    try:
        fake = FakeProvider(opted_out=opt_out, faults=Faults(latency=latency), profile=profile)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--profile") from None
    if credit is not None:
        fake.core.credit = _rial(credit)
    username, password = fake.core.username, fake.core.password
    app: ASGIApp = fake
    if log_requests:
        err = current.err

        def write(line: str) -> None:
            err.print(line, markup=False)

        app = RequestLog(fake, write)
    with serve_loopback(app, port=port) as server:
        out = current.out
        out.print(f"FakeProvider (ippanel and Negin 3300 protocols) on [bold]{server.url}[/]")
        out.print(f"  username: {username}")
        out.print(f"  password: {password}   (the fake's own demo password)")
        out.print(f"  ippanel:  POST {server.url}/services.jspd  (sender {FAKE_SENDER})")
        out.print(f"  negin:    {server.url}/api/wsSend.ashx  (line {FAKE_NEGIN_LINE})")
        out.print("In another terminal:")
        out.print(
            f"  export SMSGATE_PROVIDER=ippanel SMSGATE_BASE_URL={server.url} "
            f"SMSGATE_USERNAME={username} SMSGATE_PASSWORD={password} "
            f"SMSGATE_SENDER={FAKE_SENDER}"
        )
        smsgate = command_name()
        out.print(f'  {smsgate} send 09121234567 "hello"  &&  {smsgate} credit')
        out.print("Ctrl+C stops the server." if duration is None else f"Stopping in {duration}s.")
        deadline = None if duration is None else time.monotonic() + duration
        try:
            while deadline is None or time.monotonic() < deadline:
                time.sleep(0.1 if deadline is None else min(0.1, deadline - time.monotonic()))
        except KeyboardInterrupt:
            pass
        out.print(f"stopped; the fake accepted {len(fake.ledger)} SMS", highlight=False)


@cli.command()
@click.option("--count", type=click.IntRange(min=10), default=3000, show_default=True)
@click.option(
    "--opt-out-share",
    type=click.FloatRange(0, 0.5),
    default=0.05,
    show_default=True,
    help="Share of recipients on the opt-out list.",
)
@click.option("--concurrency", type=click.IntRange(min=1), default=64, show_default=True)
@click.option("--rate", type=click.FloatRange(min=0, min_open=True), help="Requests per second.")
@click.option("--seed", type=int, default=1, show_default=True)
@click.option(
    "--progress/--no-progress",
    default=None,
    help="Show a progress bar (default: only on a terminal).",
)
@handled
def demo(
    count: int,
    opt_out_share: float,
    concurrency: int,
    rate: float | None,
    seed: int,
    progress: bool | None,
) -> None:
    """Send a bulk job to a fake provider on 127.0.0.1, with fallback, and print the report.

    No account needed: the fake provider runs in this process. Recipients on the
    operators' opt-out list fail on Negin's advertising line (error 27) and the
    FallbackPolicy sends them again through ippanel; a few duplicate and invalid rows show
    how each row is accounted for.
    """
    from ..backends.ippanel import IppanelGateway
    from ..backends.negin import NeginGateway
    from ..dispatch import BulkDispatcher, FallbackPolicy, RateLimit, Route
    from ..testing import FakeProvider, serve_loopback

    current = state()
    out = current.out
    rng = random.Random(seed)
    numbers = [f"0912{n:07d}" for n in rng.sample(range(10_000_000), count)]
    opted_out = rng.sample(numbers, int(count * opt_out_share))
    fake = FakeProvider(opted_out=opted_out)
    username, password = fake.core.username, fake.core.password
    current.hide(password)  # a demo, but the same rule as for real credentials

    def rows() -> Iterator[Message]:
        for i, number in enumerate(numbers):
            yield Message(to=number, text=f"Your order #{1000 + i} has shipped. Thanks!")
        # Accounted for too: two duplicates (the same person written two other ways) and
        # two numbers that are not Iranian mobiles.
        yield Message(to="+98" + numbers[0][1:], text="Your order #1000 has shipped. Thanks!")
        yield Message(to="0098" + numbers[1][1:], text="Your order #1001 has shipped. Thanks!")
        yield Message(to="02112345678", text="landlines cannot receive this")
        yield Message(to="0912-abc", text="not a number at all")

    with serve_loopback(fake) as server:
        negin = NeginGateway(
            username=username, password=password, line=FAKE_NEGIN_LINE, base_url=server.url
        )
        ippanel = IppanelGateway(
            username=username, password=password, sender=FAKE_SENDER, base_url=server.url
        )
        policy = FallbackPolicy(
            [Route(negin, name="negin:advertising-line"), Route(ippanel, name="ippanel")]
        )
        out.print(
            f"[bold]smsgate demo[/]: {count:,} messages to a fake provider on {server.url} "
            f"({len(opted_out)} recipients opted out; route negin -> ippanel)"
        )
        with progress_bar(current.err, count + 4, show=progress) as on_progress:

            async def run() -> BulkReport:
                async with negin, ippanel:
                    dispatcher = BulkDispatcher(
                        policy,
                        rate_limit=RateLimit(rate) if rate else None,
                        concurrency=concurrency,
                        on_progress=on_progress,
                        send_window=None,  # a fake provider: no advertising hours
                    )
                    return await dispatcher.run(rows(), job_id="demo", total=count + 4)

            report = anyio.run(run)
    print_report(out, report)
    routes = Counter(f"{e.provider} from {e.sender}" for e in fake.ledger)
    table = Table("route (the fake's own ledger)", "SMS accepted", title="where they went")
    for route, accepted in routes.most_common():
        table.add_row(route, f"{accepted:,}")
    out.print(table)
    out.print(
        f"Next: `{command_name()} fake-server` serves this fake for your own tries; "
        "docs/cli.md has the rest."
    )
