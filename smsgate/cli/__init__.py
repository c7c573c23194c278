"""The ``smsgate`` command line: send, bulk, journal, credit, status, fake-server, demo.

Credentials come from environment variables or a TOML config file, never from flags (a
flag ends up in the shell's history and in ``ps``). Everything a command prints goes
through a writer that removes the configured password, so not even an unexpected error
can show it.

Needs the ``cli`` extra (click, rich; uvicorn and starlette for ``fake-server`` and
``demo``). ``import smsgate`` never imports this package.

Layout (one module per concern, one module per command group):

* ``_settings``: :class:`Settings` and :func:`load_settings` (environment + TOML file).
* ``_scrub``: the output stream that masks secrets.
* ``_context``: per-invocation state (``state()``), exit codes, ``handled`` (errors ->
  one line and an exit code) and ``settings()`` (credentials, password masked).
* ``_files``: reading bulk files.  ``_render``: progress bar, report and tables.
* ``_app``: the click group :data:`cli`.
* Commands: ``_account`` (send, credit, status), ``_bulk``, ``_journal``, ``_fake``
  (fake-server, demo), ``_queue`` (worker, job status|cancel; bulk --queue), ``_operate``
  (track, report, serve).

Adding a command: write ``smsgate/cli/_<group>.py`` with ``from ._app import cli`` and
``@cli.command()`` (or ``@cli.group()``) over a function decorated with
``@handled`` (from ``._context``); import framework packages inside the function; then add
the module to :data:`COMMAND_MODULES` below. tests/cli/ has one test file per module.
"""

from __future__ import annotations

import importlib

from ._app import cli
from ._context import (
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_PARTIAL,
    EXIT_UNSUPPORTED,
    EXIT_USAGE,
)
from ._settings import ENVIRONMENT, Settings, load_settings

__all__ = [
    "COMMAND_MODULES",
    "ENVIRONMENT",
    "EXIT_ERROR",
    "EXIT_INTERRUPTED",
    "EXIT_PARTIAL",
    "EXIT_UNSUPPORTED",
    "EXIT_USAGE",
    "Settings",
    "cli",
    "load_settings",
]

#: The modules that attach commands to :data:`cli` (imported in this order; the order of
#: ``smsgate --help`` is alphabetical regardless). Add a new command module here.
COMMAND_MODULES: tuple[str, ...] = (
    "_account",
    "_bulk",
    "_journal",
    "_fake",
    "_queue",
    "_operate",
)

for _module in COMMAND_MODULES:
    importlib.import_module(f"{__name__}.{_module}")
