"""Commands for one account: ``send``, ``credit``, ``status``."""

from __future__ import annotations

import sys
from decimal import Decimal

import anyio
import click
from rich.table import Table

from .._models import DeliveryReport, SendReceipt
from .._segments import segments
from ._app import cli
from ._context import UnsupportedError, handled, settings, state

__all__ = ["CONFIRM_PARTS", "credit", "send", "status"]

#: ``send`` asks before sending a text of more SMS parts than this (each part is billed).
CONFIRM_PARTS = 5

JSON_HELP = "Print one JSON document (see docs/cli.md for its shape)."


def describe_parts(text: str) -> str:
    """``"3 SMS parts (UCS-2, 190 characters)"``: what a text costs per recipient."""
    counted = segments(text)
    noun = "part" if counted.parts == 1 else "parts"
    return f"{counted.parts} SMS {noun} ({counted.encoding}, {counted.chars} units)"


def _interactive() -> bool:
    """Whether standard input is a terminal a question can be asked on."""
    return sys.stdin.isatty()


@cli.command()
@click.argument("number")
@click.argument("text")
@click.option("--sender", help="The line to send from (default: the configured one).")
@click.option(
    "--yes",
    "-y",
    is_flag=True,
    help=f"Send a text of more than {CONFIRM_PARTS} SMS parts without asking.",
)
@handled
def send(number: str, text: str, sender: str | None, yes: bool) -> None:
    """Send TEXT to NUMBER (TEXT '-' reads it from standard input).

    It says how many SMS parts the text makes (each is billed); above 5 parts it asks
    first, and without a terminal to ask on it needs --yes.
    """
    current = state()
    account = settings()
    from_stdin = text == "-"
    if from_stdin:
        text = sys.stdin.read().rstrip("\n")
    parts = segments(text).parts
    if parts > CONFIRM_PARTS and not yes:
        question = f"This text makes {describe_parts(text)} per recipient. Send it?"
        if from_stdin or not _interactive():
            current.fail(
                f"the text makes {describe_parts(text)}, more than {CONFIRM_PARTS}",
                hint="pass --yes to send it anyway (no terminal to ask on)",
            )
        if not click.confirm(question, err=True):
            current.fail("not sent")

    async def main() -> SendReceipt:
        async with account.gateway() as gateway:
            return await gateway.send(number, text, sender=sender)

    receipt = anyio.run(main)
    line = f" from {receipt.sender}" if receipt.sender else ""
    current.out.print(
        f"[green]sent[/] to {', '.join(receipt.recipients)}{line} via {receipt.provider}: "
        f"message id {receipt.message_id} ({describe_parts(text)} per recipient)"
    )


@cli.command()
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
@handled
def credit(as_json: bool) -> None:
    """Show the account's credit (Rial). Exit 4 when the provider cannot tell it."""
    from .._gateway import SupportsCredit

    current = state()
    account = settings()

    async def main() -> tuple[str, Decimal]:
        async with account.gateway() as gateway:
            if not isinstance(gateway, SupportsCredit):
                raise UnsupportedError(
                    f"{gateway.name} cannot tell the account's credit "
                    "(the provider offers no such query)"
                )
            return gateway.name, await gateway.credit()

    provider, amount = anyio.run(main)
    if as_json:
        current.write_json({"provider": provider, "credit": str(amount), "unit": "IRR"})
        return
    current.out.print(f"credit: {amount:,} Rial")


@cli.command()
@click.argument("message_id")
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
@handled
def status(message_id: str, as_json: bool) -> None:
    """Show the delivery state of MESSAGE_ID (per recipient where the provider says)."""
    current = state()
    account = settings()

    async def main() -> list[DeliveryReport]:
        async with account.gateway() as gateway:
            return await gateway.delivery(message_id)

    reports = anyio.run(main)
    if as_json:
        current.write_json(
            {
                "message_id": message_id,
                "reports": [
                    {
                        "recipient": report.recipient,
                        "state": report.state.name,
                        "provider_status": report.provider_status,
                        "final": report.is_final,
                        "provider": report.provider,
                        "at": report.at.isoformat() if report.at is not None else None,
                    }
                    for report in reports
                ],
            }
        )
        return
    if not reports:
        current.out.print(f"no delivery reports yet for {message_id}")
        return
    table = Table("recipient", "state", "provider status", "final")
    for report in reports:
        table.add_row(
            report.recipient or "-",
            report.state.name,
            str(report.provider_status),
            "yes" if report.is_final else "no",
        )
    current.out.print(table)
