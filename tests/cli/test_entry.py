"""The console script's entry point and the command group."""

from __future__ import annotations

import sys

import pytest

from smsgate import _cli_entry
from smsgate.cli import cli

from ._helpers import invoke


@pytest.mark.parametrize("missing", ["click", "rich"])
def test_entry_point_explains_a_missing_cli_extra(
    missing: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without click or rich the script names the extra to install and exits 1."""
    monkeypatch.setitem(sys.modules, missing, None)  # makes `import missing` fail
    with pytest.raises(SystemExit) as exited:
        _cli_entry.main()
    assert exited.value.code == 1
    err = capsys.readouterr().err
    assert "smsgate-ir[cli]" in err
    assert missing in err


def test_entry_point_runs_the_cli(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """With the extra installed, the entry point runs the click group."""
    monkeypatch.setattr(sys, "argv", ["smsgate", "--version"])
    with pytest.raises(SystemExit) as exited:
        _cli_entry.main()
    assert exited.value.code == 0
    assert "smsgate" in capsys.readouterr().out


def test_help_lists_every_command_and_the_environment() -> None:
    """`smsgate --help` names the six commands and the credential variables."""
    result = invoke(["--help"])
    assert result.exit_code == 0
    for command in ("send", "bulk", "credit", "status", "fake-server", "demo"):
        assert command in result.stdout
    assert "SMSGATE_PASSWORD" in result.stdout


def test_no_command_line_flag_takes_a_password() -> None:
    """No option of any command is a credential (they would end up in shell history)."""
    for command in cli.commands.values():
        for param in command.params:
            assert not any("pass" in opt or "user" in opt for opt in param.opts), param.opts
