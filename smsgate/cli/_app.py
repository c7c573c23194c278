"""The ``smsgate`` click group. Commands attach to it from their own modules."""

from __future__ import annotations

from pathlib import Path

import click

from .. import __version__
from ._context import Context

__all__ = ["cli"]


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option(
    "--config",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="SMSGATE_CONFIG",
    help="TOML file with provider, username, password, sender, base_url "
    "(default: ~/.config/smsgate/config.toml if it exists). Environment variables win.",
)
@click.version_option(__version__, prog_name="smsgate")
@click.pass_context
def cli(ctx: click.Context, config: Path | None) -> None:
    """Send SMS through ippanel/Kapanel or Negin 3300 from the command line.

    \b
    Credentials come from the environment (or --config), never from flags:
      SMSGATE_PROVIDER   ippanel | negin
      SMSGATE_USERNAME   the panel's user name
      SMSGATE_PASSWORD   the panel's password (or SMSGATE_PASSWORD_FILE)
      SMSGATE_SENDER     the sender line (SMSGATE_LINE for Negin; SMSGATE_LINE2 too)
      SMSGATE_BASE_URL   a white-label panel's address (optional)

    Try it without an account: `smsgate demo`, or `smsgate fake-server` in one terminal.
    """
    ctx.obj = Context(config=config)
