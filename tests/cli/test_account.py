"""send, credit and status against the fake provider on loopback."""

from __future__ import annotations

import pytest

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
