"""The ``smsgate`` command line: send, bulk, credit, status, fake-server, demo.

Credentials come from environment variables or a TOML config file, never from flags (a
flag ends up in the shell's history and in ``ps``). Everything this module prints goes
through a writer that removes the configured password, so not even an unexpected error
can show it.

Needs the ``cli`` extra (click, rich; uvicorn and starlette for ``fake-server`` and
``demo``). ``import smsgate`` never imports this module.
"""

from __future__ import annotations

import csv
import functools
import io
import os
import random
import re
import stat
import sys
import time
import tomllib
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from decimal import Decimal
from pathlib import Path
from typing import IO, Any, Literal, NoReturn, ParamSpec, TypeVar, cast

import anyio
import attrs
import click
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

from . import __version__
from ._models import Message
from .exceptions import (
    AuthenticationError,
    ConfigurationError,
    InsufficientCreditError,
    SmsGateError,
)

__all__ = [
    "EXIT_ERROR",
    "EXIT_INTERRUPTED",
    "EXIT_PARTIAL",
    "EXIT_USAGE",
    "Settings",
    "cli",
    "load_settings",
]

P = ParamSpec("P")
R = TypeVar("R")

Provider = Literal["ippanel", "negin"]
PROVIDERS: tuple[Provider, ...] = ("ippanel", "negin")

#: Environment variable -> settings field. SMSGATE_LINE is Negin's word for the sender.
ENVIRONMENT: Mapping[str, str] = {
    "SMSGATE_PROVIDER": "provider",
    "SMSGATE_USERNAME": "username",
    "SMSGATE_PASSWORD": "password",
    "SMSGATE_PASSWORD_FILE": "password_file",
    "SMSGATE_SENDER": "sender",
    "SMSGATE_LINE": "sender",
    "SMSGATE_LINE2": "line2",
    "SMSGATE_OPT_OUT_FALLBACK": "opt_out_fallback",
    "SMSGATE_BASE_URL": "base_url",
    "SMSGATE_ALLOW_INSECURE_HTTP": "allow_insecure_http",
    "SMSGATE_TIMEOUT": "timeout",
}
#: Keys a config file may hold (``line`` is an alias of ``sender``).
CONFIG_KEYS = frozenset(
    {"provider", "username", "password", "password_file", "sender", "line"}
    | {"line2", "opt_out_fallback", "base_url", "allow_insecure_http", "timeout"}
)

# Exit codes, documented in docs/cli.md.
EXIT_ERROR = 1  # the command could not do its work (configuration, provider refusal, I/O)
EXIT_USAGE = 2  # click's own code for a bad command line
EXIT_PARTIAL = 3  # a bulk job ran, but some rows failed or are in doubt
EXIT_INTERRUPTED = 130

#: Header names recognised in a bulk CSV file, per column.
NUMBER_HEADERS = frozenset({"number", "to", "mobile", "phone", "recipient", "msisdn"})
TEXT_HEADERS = frozenset({"text", "message", "body"})
SENDER_HEADERS = frozenset({"sender", "from", "line"})

FAKE_SENDER = "+983000505"  # lines the fake provider's accounts own
FAKE_NEGIN_LINE = "9830003300"


# -- output -------------------------------------------------------------------------------


class _ScrubbingWriter(io.TextIOBase):
    """A text stream that removes every registered secret before writing through."""

    def __init__(self, target: IO[str], secrets: list[str]) -> None:
        super().__init__()
        self._target = target
        self._secrets = secrets

    def write(self, text: str) -> int:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, "***")
        self._target.write(text)
        return len(text)

    def flush(self) -> None:
        self._target.flush()

    def isatty(self) -> bool:
        return bool(getattr(self._target, "isatty", lambda: False)())

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self._target, "encoding", None) or "utf-8"


@attrs.define
class _Context:
    """Per-invocation state: the config file, the secrets to hide, the consoles."""

    config: Path | None
    secrets: list[str] = attrs.Factory(list)
    _out: Console | None = None
    _err: Console | None = None

    def hide(self, secret: str | None) -> None:
        """Never print ``secret`` (and its URL-encoded forms) from now on."""
        if not secret:
            return
        from .backends._http import Scrubber

        for form in Scrubber.of([secret]).secrets:
            if form not in self.secrets:
                self.secrets.append(form)
        self.secrets.sort(key=len, reverse=True)

    @property
    def out(self) -> Console:
        if self._out is None:
            stream = _ScrubbingWriter(sys.stdout, self.secrets)
            self._out = Console(file=cast(IO[str], stream), highlight=False, soft_wrap=True)
        return self._out

    @property
    def err(self) -> Console:
        if self._err is None:
            stream = _ScrubbingWriter(sys.stderr, self.secrets)
            self._err = Console(file=cast(IO[str], stream), highlight=False, soft_wrap=True)
        return self._err

    def scrub(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return text

    def fail(self, message: str, *, hint: str | None = None, code: int = EXIT_ERROR) -> NoReturn:
        """Print an error (and a hint) on stderr and exit."""
        self.err.print(f"[bold red]error:[/] {_escape(self.scrub(message))}")
        if hint:
            self.err.print(f"[dim]hint:[/] {_escape(hint)}")
        raise SystemExit(code)


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


def _state() -> _Context:
    context = click.get_current_context().find_object(_Context)
    if context is None:  # pragma: no cover - every command runs under the group
        raise RuntimeError("smsgate command run outside its group")
    return context


def _handled(command: Callable[P, R]) -> Callable[P, R]:
    """Turn smsgate errors and the usual mishaps into a clean message and an exit code."""

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        state = _state()
        try:
            return command(*args, **kwargs)
        except (SystemExit, click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except KeyboardInterrupt:
            state.err.print("interrupted")
            raise SystemExit(EXIT_INTERRUPTED) from None
        except AuthenticationError as exc:
            state.fail(
                f"{type(exc).__name__}: {exc}",
                hint="check SMSGATE_USERNAME and SMSGATE_PASSWORD (or the config file)",
            )
        except InsufficientCreditError as exc:
            state.fail(f"{type(exc).__name__}: {exc}", hint="top up the account's credit")
        except SmsGateError as exc:
            state.fail(f"{type(exc).__name__}: {exc}")
        except OSError as exc:
            state.fail(f"{type(exc).__name__}: {exc}")
        except Exception as exc:  # a bug: still one scrubbed line, never a raw traceback
            if os.environ.get("SMSGATE_DEBUG"):
                raise
            state.fail(
                f"unexpected {type(exc).__name__}: {exc}",
                hint="set SMSGATE_DEBUG=1 to see the traceback",
            )

    return wrapper


# -- settings -----------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class Settings:
    """How to reach the provider: from the environment and/or a TOML file.

    Environment variables win over the file, so that one file can serve several
    accounts. The password is never shown in ``repr``.
    """

    provider: Provider
    username: str
    password: str = attrs.field(repr=False)
    sender: str | None = None
    line2: str | None = None
    opt_out_fallback: str | None = None
    base_url: str | None = None
    allow_insecure_http: bool = False
    timeout: float | None = None

    def gateway(self) -> Any:
        """A new gateway for these settings (``IppanelGateway`` or ``NeginGateway``)."""
        common: dict[str, Any] = {
            "username": self.username,
            "password": self.password,
            "allow_insecure_http": self.allow_insecure_http,
            "timeout": self.timeout,
        }
        if self.base_url:
            common["base_url"] = self.base_url
        if self.provider == "ippanel":
            from .backends.ippanel import IppanelGateway

            return IppanelGateway(sender=self.sender, **common)
        from .backends.negin import NeginGateway

        extra: dict[str, Any] = {}
        if self.opt_out_fallback is not None:
            extra["opt_out_fallback"] = (
                None if self.opt_out_fallback == "none" else (self.opt_out_fallback)
            )
        return NeginGateway(line=self.sender, line2=self.line2, **common, **extra)


def _default_config_path() -> Path | None:
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    path = Path(base) / "smsgate" / "config.toml"
    return path if path.is_file() else None


def load_settings(
    config: Path | None,
    environ: Mapping[str, str] | None = None,
    *,
    warn: Callable[[str], None] | None = None,
) -> Settings:
    """Read the settings: the TOML file (if any), then the environment on top.

    Args:
        config: A TOML file; ``None`` looks for ``$XDG_CONFIG_HOME/smsgate/config.toml``
            (``~/.config/smsgate/config.toml``).
        environ: The environment (default ``os.environ``).
        warn: Called with a warning, e.g. a config file that others can read.

    Returns:
        The settings.

    Raises:
        ConfigurationError: A missing or unknown key, a bad value, an unreadable file.
    """
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    path = config if config is not None else _default_config_path()
    if path is not None:
        values.update(_read_config(path, warn=warn))
    for variable, key in ENVIRONMENT.items():
        value = env.get(variable)
        if value:
            values[key] = value
    password_file = values.pop("password_file", None)
    if password_file and not values.get("password"):
        try:
            values["password"] = Path(str(password_file)).read_text("utf-8").strip()
        except OSError as exc:
            raise ConfigurationError(f"cannot read the password file: {exc.strerror}") from None
    provider = str(values.get("provider") or "").strip().lower()
    if provider not in PROVIDERS:
        raise ConfigurationError(
            "no provider configured: set SMSGATE_PROVIDER to 'ippanel' or 'negin' "
            "(or `provider = ...` in the config file)"
            if not provider
            else f"unknown provider {provider!r}; use 'ippanel' or 'negin'"
        )
    missing = [key for key in ("username", "password") if not values.get(key)]
    if missing:
        names = " and ".join(f"SMSGATE_{key.upper()}" for key in missing)
        raise ConfigurationError(f"missing {' and '.join(missing)}: set {names} or use --config")
    timeout = values.get("timeout")
    try:
        timeout_value = None if timeout in (None, "") else float(timeout)
    except (TypeError, ValueError):
        raise ConfigurationError("timeout must be a number of seconds") from None
    fallback = values.get("opt_out_fallback")
    if fallback is not None and fallback not in ("line2", "chelcheleh", "service_line", "none"):
        raise ConfigurationError(
            "opt_out_fallback must be one of line2, chelcheleh, service_line, none"
        )
    return Settings(
        provider=provider,
        username=str(values["username"]),
        password=str(values["password"]),
        sender=_optional(values.get("sender")),
        line2=_optional(values.get("line2")),
        opt_out_fallback=_optional(fallback),
        base_url=_optional(values.get("base_url")),
        allow_insecure_http=_flag(values.get("allow_insecure_http")),
        timeout=timeout_value,
    )


def _read_config(path: Path, *, warn: Callable[[str], None] | None) -> dict[str, Any]:
    try:
        raw = path.read_bytes()
        mode = path.stat().st_mode
    except OSError as exc:
        raise ConfigurationError(f"cannot read the config file {path}: {exc.strerror}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        # Only the position: never the decoder's text, in case a future one quotes the
        # offending line (which may hold the password).
        position = re.search(r"\(at line \d+, column \d+\)", str(exc))
        where = f" {position.group(0)}" if position else ""
        raise ConfigurationError(f"the config file {path} is not valid TOML{where}") from None
    if isinstance(data.get("smsgate"), dict):  # a [smsgate] table is fine too
        data = data["smsgate"]
    unknown = sorted(set(data) - CONFIG_KEYS)
    if unknown:
        raise ConfigurationError(
            f"unknown key(s) in {path}: {', '.join(unknown)} "
            f"(known: {', '.join(sorted(CONFIG_KEYS))})"
        )
    if "line" in data:
        data.setdefault("sender", data.pop("line"))
    if "password" in data and mode & (stat.S_IRWXG | stat.S_IRWXO) and warn is not None:
        warn(f"{path} holds a password and other users can read it (chmod 600 {path})")
    return dict(data)


def _optional(value: object) -> str | None:
    return None if value in (None, "") else str(value)


def _flag(value: object) -> bool:
    if isinstance(value, bool):
        return value
    return str(value or "").strip().lower() in ("1", "true", "yes", "on")


def _settings() -> Settings:
    state = _state()
    settings = load_settings(state.config, warn=lambda m: state.err.print(f"warning: {m}"))
    state.hide(settings.password)
    return settings


# -- the commands -----------------------------------------------------------------------------


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
    ctx.obj = _Context(config=config)


@cli.command()
@click.argument("number")
@click.argument("text")
@click.option("--sender", help="The line to send from (default: the configured one).")
@_handled
def send(number: str, text: str, sender: str | None) -> None:
    """Send TEXT to NUMBER (TEXT '-' reads it from standard input)."""
    state = _state()
    settings = _settings()
    if text == "-":
        text = sys.stdin.read().rstrip("\n")

    async def main() -> Any:
        async with settings.gateway() as gateway:
            return await gateway.send(number, text, sender=sender)

    receipt = anyio.run(main)
    line = f" from {receipt.sender}" if receipt.sender else ""
    state.out.print(
        f"[green]sent[/] to {', '.join(receipt.recipients)}{line} via {receipt.provider}: "
        f"message id {receipt.message_id}"
    )


@cli.command()
@_handled
def credit() -> None:
    """Show the account's credit (Rial)."""
    from ._gateway import SupportsCredit

    state = _state()
    settings = _settings()

    async def main() -> Decimal:
        async with settings.gateway() as gateway:
            if not isinstance(gateway, SupportsCredit):
                raise ConfigurationError(f"{gateway.name} cannot tell the account's credit")
            return await gateway.credit()

    amount = anyio.run(main)
    state.out.print(f"credit: {amount:,} Rial")


@cli.command()
@click.argument("message_id")
@_handled
def status(message_id: str) -> None:
    """Show the delivery state of MESSAGE_ID (per recipient where the provider says)."""
    state = _state()
    settings = _settings()

    async def main() -> list[Any]:
        async with settings.gateway() as gateway:
            reports: list[Any] = await gateway.delivery(message_id)
            return reports

    reports = anyio.run(main)
    if not reports:
        state.out.print(f"no delivery reports yet for {message_id}")
        return
    table = Table("recipient", "state", "provider status", "final")
    for report in reports:
        table.add_row(
            report.recipient or "-",
            report.state.name,
            str(report.provider_status),
            "yes" if report.is_final else "no",
        )
    state.out.print(table)


@cli.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
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
    help="The job's name in the journal (default: the file's name and a digest of its bytes).",
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
@_handled
def bulk(
    file: Path,
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
    """Send every row of FILE (CSV: number,text[,sender]; a header row is optional)."""
    from .dispatch import BulkDispatcher, RateLimit

    state = _state()
    settings = _settings()
    price = _decimal(price_per_part) if price_per_part is not None else None
    if sender is not None and settings.sender is not None and _same_line(sender, settings.sender):
        # The default line spelled out: keep rows sender-less so that a rerun with or
        # without --sender finds the same journal rows (the key includes the sender).
        sender = None
    total = sum(1 for _ in _read_csv(file, text=text, sender=sender))
    # The default job id names the file *and* its content: a rerun of the same file
    # resumes, while next month's customers.csv with new rows is a new job.
    job = job_id or f"{file.name}-{_digest(file)}"

    def rows() -> Iterator[Message]:
        return _read_csv(file, text=text, sender=sender)

    if dry_run:

        async def estimate() -> Any:
            async with settings.gateway() as gateway:
                dispatcher = BulkDispatcher(
                    gateway, max_batch=max_batch, journal=str(journal) if journal else None
                )
                return await dispatcher.estimate(rows(), price_per_part=price, job_id=job)

        _print_estimate(state.out, anyio.run(estimate))
        return

    with _progress_bar(state.err, total, show=progress) as on_progress:

        async def run() -> Any:
            async with settings.gateway() as gateway:
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
    _print_report(state.out, report)
    if failures is not None and report.failures:
        _write_failures(failures, report.failures)
        state.out.print(f"failed and in-doubt rows written to {failures}")
    if report.failed or report.unknown:
        raise SystemExit(EXIT_PARTIAL)


@cli.command()
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--job-id", help="Report only this job (default: every job in the file).")
@_handled
def journal(file: Path, job_id: str | None) -> None:
    """Report how far the jobs in a journal FILE got (read only; needs no credentials).

    Exit status 3 when some recipients are in doubt (their request may have gone out):
    reconcile them before sending to them again.
    """
    from datetime import datetime

    from .dispatch._sqlite_journal import summarize

    state = _state()
    if not file.exists():
        state.fail(f"no journal at {file}", hint="pass the file given to `smsgate bulk --journal`")
    summaries = summarize(str(file), job_id)
    if not summaries:
        state.out.print(f"no job {job_id!r} in {file}" if job_id else f"no jobs in {file}")
        return
    table = Table("job", "recipients", "sent", "failed", "in doubt", "last write")
    for summary in summaries.values():
        updated = (
            datetime.fromtimestamp(summary.updated).isoformat(sep=" ", timespec="seconds")
            if summary.updated
            else "-"
        )
        table.add_row(
            summary.job_id,
            f"{summary.total:,}",
            f"{summary.sent:,}",
            f"{summary.failed:,}",
            f"{summary.in_doubt:,}",
            updated,
        )
    state.out.print(table)
    errors: dict[str, int] = {}
    for summary in summaries.values():
        for name, count in summary.errors.items():
            errors[name] = errors.get(name, 0) + count
    if errors:
        state.out.print(
            "errors: " + ", ".join(f"{name} {count:,}" for name, count in sorted(errors.items()))
        )
    if any(summary.in_doubt for summary in summaries.values()):
        state.out.print(
            "[yellow]some recipients are in doubt[/]: rerunning the job never resends them; "
            "reconcile them through the provider's delivery reports (docs/reliability.md)"
        )
        raise SystemExit(EXIT_PARTIAL)


@cli.command("fake-server")
@click.option("--port", type=click.IntRange(0, 65535), default=8765, show_default=True)
@click.option("--latency", type=click.FloatRange(min=0), default=0.0, help="Seconds per answer.")
@click.option("--opt-out", multiple=True, help="A number on the opt-out list (repeatable).")
@click.option(
    "--duration",
    type=click.FloatRange(min=0, min_open=True),
    help="Stop after this many seconds (default: run until Ctrl+C).",
)
@_handled
def fake_server(
    port: int, latency: float, opt_out: tuple[str, ...], duration: float | None
) -> None:
    """Serve the fake provider (ippanel and Negin protocols) on 127.0.0.1.

    It is smsgate.testing.FakeProvider: credit, opt-out list, delivery timelines and a
    ledger of what it accepted, with its own demo credentials (printed below).
    """
    from .testing import FakeProvider, Faults, serve_loopback

    state = _state()
    fake = FakeProvider(opted_out=opt_out, faults=Faults(latency=latency))
    username, password = fake.core.username, fake.core.password
    with serve_loopback(fake, port=port) as server:
        out = state.out
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
        out.print('  smsgate send 09121234567 "hello"  &&  smsgate credit')
        out.print("Ctrl+C stops the server." if duration is None else f"Stopping in {duration}s.")
        deadline = None if duration is None else time.monotonic() + duration
        try:
            while deadline is None or time.monotonic() < deadline:
                time.sleep(0.1 if deadline is None else min(0.1, deadline - time.monotonic()))
        except KeyboardInterrupt:
            pass
        out.print(f"stopped; the fake accepted {len(fake.ledger)} SMS")


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
@_handled
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
    from .backends.ippanel import IppanelGateway
    from .backends.negin import NeginGateway
    from .dispatch import BulkDispatcher, FallbackPolicy, RateLimit, Route
    from .testing import FakeProvider, serve_loopback

    state = _state()
    out = state.out
    rng = random.Random(seed)
    numbers = [f"0912{n:07d}" for n in rng.sample(range(10_000_000), count)]
    opted_out = rng.sample(numbers, int(count * opt_out_share))
    fake = FakeProvider(opted_out=opted_out)
    username, password = fake.core.username, fake.core.password
    state.hide(password)  # a demo, but the same rule as for real credentials

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
        with _progress_bar(state.err, count + 4, show=progress) as on_progress:

            async def run() -> Any:
                async with negin, ippanel:
                    dispatcher = BulkDispatcher(
                        policy,
                        rate_limit=RateLimit(rate) if rate else None,
                        concurrency=concurrency,
                        on_progress=on_progress,
                    )
                    return await dispatcher.run(rows(), job_id="demo", total=count + 4)

            report = anyio.run(run)
    _print_report(out, report)
    routes = Counter(f"{e.provider} from {e.sender}" for e in fake.ledger)
    table = Table("route (the fake's own ledger)", "SMS accepted", title="where they went")
    for route, accepted in routes.most_common():
        table.add_row(route, f"{accepted:,}")
    out.print(table)
    out.print(
        "Next: `smsgate fake-server` serves this fake for your own tries; docs/cli.md has the rest."
    )


# -- helpers ------------------------------------------------------------------------------


def _decimal(value: str) -> Decimal:
    try:
        return Decimal(value)
    except ArithmeticError:
        raise click.BadParameter(f"not a number: {value!r}") from None


def _read_csv(path: Path, *, text: str | None, sender: str | None) -> Iterator[Message]:
    """Rows of a bulk file as messages, read lazily (a million rows stay a few KiB).

    Columns: number, text, optional sender; or named by a header row (``number``/``to``/
    ``mobile``..., ``text``/``message``, ``sender``/``from``/``line``). ``text`` (the
    ``--text`` option) replaces the file's texts; ``sender`` fills rows without one.
    """
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        columns = (0, 1, 2)
        first = True
        for row in reader:
            cells = [cell.strip() for cell in row]
            if not any(cells):
                continue
            if first:
                first = False
                names = [cell.lower() for cell in cells]
                looks_like_header = names[0] in NUMBER_HEADERS or bool(
                    set(names) & (TEXT_HEADERS | SENDER_HEADERS)
                )
                if looks_like_header and not _is_number(cells[0]):
                    columns = (
                        _find(names, NUMBER_HEADERS, 0),
                        _find(names, TEXT_HEADERS, 1),
                        _find(names, SENDER_HEADERS, 2),
                    )
                    if columns[0] < 0:
                        raise click.UsageError(
                            f"{path.name}: the header names no number column "
                            f"(one of: {', '.join(sorted(NUMBER_HEADERS))})"
                        )
                    if columns[1] < 0 and text is None:
                        raise click.UsageError(
                            f"{path.name}: the header names no text column "
                            f"(one of: {', '.join(sorted(TEXT_HEADERS))}); or pass --text"
                        )
                    continue
            number = _cell(cells, columns[0]) or ""
            body = text if text is not None else (_cell(cells, columns[1]) or "")
            line = _cell(cells, columns[2]) or sender
            yield Message(to=number, text=body, sender=line)


def _is_number(cell: str) -> bool:
    from ._phone import normalize_msisdn

    try:
        normalize_msisdn(cell)
    except ValueError:
        return False
    return True


def _same_line(a: str, b: str) -> bool:
    """Whether two spellings name one sender line (``+983000505``, ``983000505``...)."""

    def digits(line: str) -> str:
        text = "".join(ch for ch in line if ch.isdigit())
        for prefix in ("0098", "98", "0"):
            if text.startswith(prefix):
                return text[len(prefix) :]
        return text

    return digits(a) == digits(b) and bool(digits(a))


def _digest(path: Path) -> str:
    """A short digest of a file's bytes (read in chunks; the file may be large)."""
    import hashlib

    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()[:12]


def _find(names: list[str], wanted: frozenset[str], default: int) -> int:
    for index, name in enumerate(names):
        if name in wanted:
            return index
    return -1 if default < len(names) and names[default] else default


def _cell(cells: list[str], index: int) -> str | None:
    if 0 <= index < len(cells) and cells[index]:
        return cells[index]
    return None


class _ProgressHook:
    """Renders the dispatcher's progress events (``on_progress``) as a rich progress bar."""

    def __init__(self, progress: Progress | None, task: TaskID | None) -> None:
        self._progress = progress
        self._task = task

    def __call__(self, event: Any) -> None:
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


class _progress_bar:  # used like a function: `with _progress_bar(...) as on_progress`
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

    def __enter__(self) -> _ProgressHook:
        if self._progress is None:
            return _ProgressHook(None, None)
        self._progress.start()
        task = self._progress.add_task("send", total=self._total, rate="", counts="")
        return _ProgressHook(self._progress, task)

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()


def _print_report(console: Console, report: Any) -> None:
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


def _print_estimate(console: Console, estimate: Any) -> None:
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
    if estimate.sufficient is False:
        table.add_row("[red]credit short by[/]", f"{estimate.cost - estimate.credit:,} Rial")
    console.print(table)


def _write_failures(path: Path, failures: Any) -> None:
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
