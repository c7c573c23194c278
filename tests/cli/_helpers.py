"""Shared helpers of the CLI tests: the environment for the fake, running the CLI."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

from click.testing import CliRunner, Result

from smsgate.cli import cli
from smsgate.testing import LoopbackServer

PASSWORD = "secret-pass"  # the fake's default account
SPECIAL = "p@ss w/rd+ÿ&=%"
NUMBERS = ["09121111111", "09122222222", "09123333333", "09124444444"]


def env_for(server: LoopbackServer, provider: str = "ippanel", **extra: str) -> dict[str, str]:
    """The environment a user would export for the fake."""
    env = {
        "SMSGATE_PROVIDER": provider,
        "SMSGATE_USERNAME": "user",
        "SMSGATE_PASSWORD": PASSWORD,
        "SMSGATE_BASE_URL": server.url,
        "SMSGATE_SENDER": "+983000505" if provider == "ippanel" else "9830003300",
    }
    env.update(extra)
    return env


def invoke(args: list[str], env: dict[str, str] | None = None, **kwargs: Any) -> Result:
    """Run the command line in-process."""
    return CliRunner().invoke(cli, args, env=env, catch_exceptions=False, **kwargs)


def assert_no_secret(result: Result, secret: str = PASSWORD) -> None:
    """Neither stdout nor stderr holds the secret, raw or URL-encoded."""
    for form in {secret, quote(secret, safe=""), quote_plus(secret)}:
        assert form not in result.stdout
        assert form not in result.stderr


def write_csv(path: Path, rows: list[str]) -> Path:
    """A UTF-8 CSV file of these lines."""
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path
