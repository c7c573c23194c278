"""Commands for one account: ``send``, ``credit``, ``status``."""

from __future__ import annotations

import sys
from decimal import Decimal

import anyio
import click
from rich.table import Table

from .._models import DeliveryReport, SendReceipt
from ..exceptions import ConfigurationError
from ._app import cli
from ._context import handled, settings, state

__all__ = ["credit", "send", "status"]


@cli.command()
@click.argument("number")
@click.argument("text")
@click.option("--sender", help="The line to send from (default: the configured one).")
@handled
def send(number: str, text: str, sender: str | None) -> None:
    """Send TEXT to NUMBER (TEXT '-' reads it from standard input)."""
    current = state()
    account = settings()
    if text == "-":
        text = sys.stdin.read().rstrip("\n")

    async def main() -> SendReceipt:
        async with account.gateway() as gateway:
            return await gateway.send(number, text, sender=sender)

    receipt = anyio.run(main)
    line = f" from {receipt.sender}" if receipt.sender else ""
    current.out.print(
        f"[green]sent[/] to {', '.join(receipt.recipients)}{line} via {receipt.provider}: "
        f"message id {receipt.message_id}"
    )


@cli.command()
@handled
def credit() -> None:
    """Show the account's credit (Rial)."""
    from .._gateway import SupportsCredit

    current = state()
    account = settings()

    async def main() -> Decimal:
        async with account.gateway() as gateway:
            if not isinstance(gateway, SupportsCredit):
                raise ConfigurationError(f"{gateway.name} cannot tell the account's credit")
            return await gateway.credit()

    amount = anyio.run(main)
    current.out.print(f"credit: {amount:,} Rial")


@cli.command()
@click.argument("message_id")
@handled
def status(message_id: str) -> None:
    """Show the delivery state of MESSAGE_ID (per recipient where the provider says)."""
    current = state()
    account = settings()

    async def main() -> list[DeliveryReport]:
        async with account.gateway() as gateway:
            return await gateway.delivery(message_id)

    reports = anyio.run(main)
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
