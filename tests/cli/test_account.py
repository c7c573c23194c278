"""send, credit and status against the fake provider on loopback."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from smsgate.cli import EXIT_ERROR, EXIT_UNSUPPORTED, Settings
from smsgate.testing import FakeProvider, LoopbackServer

from ._helpers import env_for, invoke

pytestmark = pytest.mark.loopback


def test_send_credit_and_status(served: tuple[FakeProvider, LoopbackServer]) -> None:
    """send puts one SMS in the fake's ledger; credit and status read the account back."""
    fake, server = served
    env = env_for(server)
    sent = invoke(["send", "0912 111 1111", "سلام"], env)
    assert sent.exit_code == 0, sent.output
    assert [e.recipient for e in fake.ledger] == ["+989121111111"]
    message_id = fake.ledger[0].message_id
    assert message_id in sent.stdout
    credit = invoke(["credit"], env)
    assert credit.exit_code == 0
    assert f"{fake.core.credit:,}" in credit.stdout
    status = invoke(["status", message_id], env)
    assert status.exit_code == 0
    assert "+989121111111" in status.stdout


def test_send_reads_text_from_stdin_and_works_with_negin(
    served: tuple[FakeProvider, LoopbackServer],
) -> None:
    """TEXT '-' reads standard input; SMSGATE_PROVIDER=negin uses the Negin protocol."""
    fake, server = served
    result = invoke(["send", "09122222222", "-"], env_for(server, "negin"), input="from stdin\n")
    assert result.exit_code == 0, result.output
    assert [(e.provider, e.text) for e in fake.ledger] == [("negin", "from stdin")]


LONG = "پیام " * 80  # 400 characters of Persian: UCS-2, 6 parts


def test_send_says_the_parts(served: tuple[FakeProvider, LoopbackServer]) -> None:
    """The confirmation line says how many SMS parts the text made."""
    _fake, server = served
    result = invoke(["send", "09121111111", "سلام"], env_for(server))
    assert result.exit_code == 0, result.output
    assert "1 SMS part (UCS-2" in result.stdout


def test_send_long_text_needs_yes_without_a_terminal(
    served: tuple[FakeProvider, LoopbackServer],
) -> None:
    """Above 5 parts: refused under a non-interactive stdin (exit 1), sent with --yes."""
    fake, server = served
    refused = invoke(["send", "09121111111", LONG], env_for(server))
    assert refused.exit_code == EXIT_ERROR
    assert "6 SMS parts" in refused.stderr
    assert "--yes" in refused.stderr
    assert fake.ledger == []
    piped = invoke(["send", "09121111111", "-"], env_for(server), input=LONG)
    assert piped.exit_code == EXIT_ERROR
    assert fake.ledger == []
    sent = invoke(["send", "09121111111", LONG, "--yes"], env_for(server))
    assert sent.exit_code == 0, sent.output
    assert len(fake.ledger) == 1
    assert "6 SMS parts" in sent.stdout


def test_send_long_text_asks_on_a_terminal(
    served: tuple[FakeProvider, LoopbackServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a terminal the question is asked; 'n' sends nothing, 'y' sends."""
    fake, server = served
    monkeypatch.setattr("smsgate.cli._account._interactive", lambda: True)
    declined = invoke(["send", "09121111111", LONG], env_for(server), input="n\n")
    assert declined.exit_code == EXIT_ERROR
    assert "Send it?" in declined.stderr
    assert fake.ledger == []
    accepted = invoke(["send", "09121111111", LONG], env_for(server), input="y\n")
    assert accepted.exit_code == 0, accepted.output
    assert len(fake.ledger) == 1


def test_credit_and_status_json(served: tuple[FakeProvider, LoopbackServer]) -> None:
    """--json prints one parsable document with the documented keys."""
    fake, server = served
    env = env_for(server)
    assert invoke(["send", "09121111111", "hi"], env).exit_code == 0
    credit = json.loads(invoke(["credit", "--json"], env).stdout)
    assert set(credit) == {"provider", "credit", "unit"}
    assert (credit["provider"], credit["unit"]) == ("ippanel", "IRR")
    assert Decimal(credit["credit"]) == fake.core.credit
    message_id = fake.ledger[0].message_id
    status = json.loads(invoke(["status", message_id, "--json"], env).stdout)
    assert status["message_id"] == message_id
    assert [r["recipient"] for r in status["reports"]] == ["+989121111111"]
    assert set(status["reports"][0]) == {
        "recipient",
        "state",
        "provider_status",
        "final",
        "provider",
        "at",
    }


def test_credit_unsupported_is_exit_4(
    served: tuple[FakeProvider, LoopbackServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A gateway without a credit query: an unsupported operation (exit 4), not a config error."""
    _fake, server = served

    class NoCredit:
        name = "nocredit"

        async def __aenter__(self) -> NoCredit:
            return self

        async def __aexit__(self, *exc: object) -> None:
            return None

    monkeypatch.setattr(Settings, "gateway", lambda self: NoCredit())
    result = invoke(["credit"], env_for(server))
    assert result.exit_code == EXIT_UNSUPPORTED
    assert "cannot tell the account's credit" in result.stderr
    assert "ConfigurationError" not in result.stderr


def test_insecure_url_hint_names_the_cli_setting() -> None:
    """A plain-http address: the message names SMSGATE_ALLOW_INSECURE_HTTP=1, not the kwarg."""
    env = {
        "SMSGATE_PROVIDER": "ippanel",
        "SMSGATE_USERNAME": "u",
        "SMSGATE_PASSWORD": "p",
        "SMSGATE_BASE_URL": "http://sms.example.com",
    }
    result = invoke(["credit"], env)
    assert result.exit_code == EXIT_ERROR
    assert "SMSGATE_ALLOW_INSECURE_HTTP=1" in result.stderr
    assert "SMSGATE_BASE_URL" in result.stderr
    assert "allow_insecure_http=True" not in result.stderr
