"""Per-invocation state, exit codes, and the error handling every command shares.

``state()`` is the running invocation's :class:`Context` (its consoles write through the
scrubbing writer); ``handled`` turns smsgate errors into one line and an exit code;
``settings()`` loads the credentials and registers the password for masking.
"""

from __future__ import annotations

import functools
import json
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import IO, NoReturn, ParamSpec, TypeVar, cast

import attrs
import click
from rich.console import Console
from rich.markup import escape

from ..exceptions import (
    AuthenticationError,
    ConfigurationError,
    InsufficientCreditError,
    NotSentError,
    SmsGateError,
)
from ._scrub import ScrubbingWriter, scrub
from ._settings import Settings, load_settings

__all__ = [
    "EXIT_ERROR",
    "EXIT_INTERRUPTED",
    "EXIT_PARTIAL",
    "EXIT_UNSUPPORTED",
    "EXIT_USAGE",
    "Context",
    "UnsupportedError",
    "cli_words",
    "command_name",
    "handled",
    "settings",
    "state",
]

P = ParamSpec("P")
R = TypeVar("R")

# Exit codes, documented in docs/cli.md.
EXIT_ERROR = 1  # the command could not do its work (configuration, provider refusal, I/O)
EXIT_USAGE = 2  # click's own code for a bad command line
EXIT_PARTIAL = 3  # a bulk job ran, but some rows failed or are in doubt
EXIT_UNSUPPORTED = 4  # the provider cannot do this (e.g. tell the credit)
EXIT_INTERRUPTED = 130

#: Python-API words in library messages -> the CLI setting a user of the command sets.
_CLI_WORDS: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern), words)
    for pattern, words in (
        (r"\bpass allow_insecure_http=True\b", "set SMSGATE_ALLOW_INSECURE_HTTP=1"),
        (r"\ballow_insecure_http(=True)?\b", "SMSGATE_ALLOW_INSECURE_HTTP=1"),
        (r"\bbase_url\b", "SMSGATE_BASE_URL"),
        (r"\bopt_out_fallback\b", "SMSGATE_OPT_OUT_FALLBACK"),
        (r"\bline2\b", "SMSGATE_LINE2"),
    )
)


class UnsupportedError(Exception):
    """The provider cannot do what the command asks (exit 4), e.g. tell the credit."""


def command_name() -> str:
    """How the user runs this command: ``uv run smsgate`` under ``uv run``, else ``smsgate``.

    uv sets ``UV`` (its own path) in the environment of what it runs, and ``uv run`` also
    ``UV_RUN_RECURSION_DEPTH`` (``uvx`` does not: its tool environment is not the project's).
    """
    under_uv_run = os.environ.get("UV") and os.environ.get("UV_RUN_RECURSION_DEPTH")
    return "uv run smsgate" if under_uv_run else "smsgate"


def cli_words(message: str) -> str:
    """A library message in the CLI's words (``SMSGATE_BASE_URL``, not ``base_url``)."""
    for pattern, words in _CLI_WORDS:
        message = pattern.sub(words, message)
    return message


@attrs.define
class Context:
    """Per-invocation state: the config file, the secrets to hide, the consoles."""

    config: Path | None
    secrets: list[str] = attrs.Factory(list)
    _out: Console | None = None
    _err: Console | None = None

    def hide(self, secret: str | None) -> None:
        """Never print ``secret`` (and its URL-encoded forms) from now on."""
        if not secret:
            return
        from .._redact import forms_of

        for form in forms_of(secret):
            if form not in self.secrets:
                self.secrets.append(form)
        self.secrets.sort(key=len, reverse=True)

    def hide_dsn(self, target: str) -> None:
        """Never print the password of a database URL (``postgresql://user:pw@host/db``)."""
        from urllib.parse import unquote, urlsplit

        try:
            password = urlsplit(target).password
        except ValueError:
            return
        if password:
            self.hide(password)
            self.hide(unquote(password))

    @property
    def out(self) -> Console:
        """Standard output, scrubbed."""
        if self._out is None:
            stream = ScrubbingWriter(sys.stdout, self.secrets)
            # Outside a terminal (a pipe, a file) nothing is cut to 80 columns: ids stay whole.
            width = None if stream.isatty() else 1000
            self._out = Console(
                file=cast(IO[str], stream), highlight=False, soft_wrap=True, width=width
            )
        return self._out

    @property
    def err(self) -> Console:
        """Standard error, scrubbed."""
        if self._err is None:
            stream = ScrubbingWriter(sys.stderr, self.secrets)
            self._err = Console(file=cast(IO[str], stream), highlight=False, soft_wrap=True)
        return self._err

    def write_json(self, data: object) -> None:
        """``data`` as one JSON document on standard output (scrubbed like the rest)."""
        stream = ScrubbingWriter(sys.stdout, self.secrets)
        stream.write(json.dumps(data, ensure_ascii=False, indent=2, default=str) + "\n")
        stream.flush()

    def scrub(self, text: str) -> str:
        """``text`` with every registered secret masked."""
        return scrub(text, self.secrets)

    def fail(self, message: str, *, hint: str | None = None, code: int = EXIT_ERROR) -> NoReturn:
        """Print an error (and a hint) on stderr and exit."""
        self.err.print(f"[bold red]error:[/] {escape(self.scrub(message))}")
        if hint:
            self.err.print(f"[dim]hint:[/] {escape(hint)}")
        raise SystemExit(code)


def state() -> Context:
    """The running invocation's context."""
    context = click.get_current_context().find_object(Context)
    if context is None:  # pragma: no cover - every command runs under the group
        raise RuntimeError("smsgate command run outside its group")
    return context


def settings() -> Settings:
    """Load the credentials for this invocation and mask the password from now on."""
    current = state()
    loaded = load_settings(current.config, warn=lambda m: current.err.print(f"warning: {m}"))
    current.hide(loaded.password)
    return loaded


def handled(command: Callable[P, R]) -> Callable[P, R]:
    """Turn smsgate errors and the usual mishaps into a clean message and an exit code."""

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        current = state()
        try:
            return command(*args, **kwargs)
        except (SystemExit, click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except KeyboardInterrupt:
            current.err.print("interrupted")
            raise SystemExit(EXIT_INTERRUPTED) from None
        except AuthenticationError as exc:
            current.fail(
                f"{type(exc).__name__}: {exc}",
                hint="check SMSGATE_USERNAME and SMSGATE_PASSWORD (or the config file)",
            )
        except InsufficientCreditError as exc:
            current.fail(f"{type(exc).__name__}: {exc}", hint="top up the account's credit")
        except NotSentError as exc:
            current.fail(
                f"{type(exc).__name__}: {exc}",
                hint="nothing was sent; check SMSGATE_BASE_URL and the network",
            )
        except UnsupportedError as exc:
            current.fail(str(exc), code=EXIT_UNSUPPORTED)
        except ConfigurationError as exc:
            current.fail(f"{type(exc).__name__}: {cli_words(str(exc))}")
        except SmsGateError as exc:
            current.fail(f"{type(exc).__name__}: {exc}")
        except OSError as exc:
            current.fail(f"{type(exc).__name__}: {exc}")
        except Exception as exc:  # a bug: still one scrubbed line, never a raw traceback
            if os.environ.get("SMSGATE_DEBUG"):
                raise
            current.fail(
                f"unexpected {type(exc).__name__}: {exc}",
                hint="set SMSGATE_DEBUG=1 to see the traceback",
            )

    return wrapper
