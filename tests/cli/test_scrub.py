"""Secrets on every error path: the password is never printed, in any encoding."""

from __future__ import annotations

import io
import socket
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import pytest

from smsgate.cli import EXIT_ERROR
from smsgate.cli._context import Context
from smsgate.cli._scrub import ScrubbingWriter
from smsgate.testing import FakeProvider, LoopbackServer

from ._helpers import SPECIAL, assert_no_secret, env_for, invoke

pytestmark = pytest.mark.loopback


def test_wrong_password_error_hides_it(served: tuple[FakeProvider, LoopbackServer]) -> None:
    """A refused login exits 1 with a hint, and shows the password in no form."""
    _, server = served
    result = invoke(["credit"], env_for(server, SMSGATE_PASSWORD=SPECIAL))
    assert result.exit_code == EXIT_ERROR
    assert "AuthenticationError" in result.stderr
    assert "SMSGATE_PASSWORD" in result.stderr
    assert_no_secret(result, SPECIAL)


def test_unreachable_provider_error_hides_the_password() -> None:
    """Connection refused: NotSentError, exit 1, no password."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {
        "SMSGATE_PROVIDER": "ippanel",
        "SMSGATE_USERNAME": "user",
        "SMSGATE_PASSWORD": SPECIAL,
        "SMSGATE_BASE_URL": f"http://127.0.0.1:{port}",
        "SMSGATE_SENDER": "+983000505",
    }
    result = invoke(["send", "09121111111", "hi"], env)
    assert result.exit_code == EXIT_ERROR
    assert "NotSentError" in result.stderr
    assert_no_secret(result, SPECIAL)


def test_unexpected_error_is_one_scrubbed_line(
    served: tuple[FakeProvider, LoopbackServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Even a bug that puts the password in its message prints it masked, no traceback."""
    _, server = served

    async def broken_send(self: Any, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError(f"bug while sending with {self._password} ({quote(SPECIAL)})")

    from smsgate.backends.ippanel import IppanelGateway

    monkeypatch.setattr(IppanelGateway, "send", broken_send)
    result = invoke(["send", "09121111111", "hi"], env_for(server, SMSGATE_PASSWORD=SPECIAL))
    assert result.exit_code == EXIT_ERROR
    assert "unexpected RuntimeError" in result.stderr
    assert "***" in result.stderr
    assert "Traceback" not in result.stderr
    assert_no_secret(result, SPECIAL)


def test_insecure_base_url_is_refused_without_the_password() -> None:
    """A plain-http remote base URL is a configuration error, caught before any I/O."""
    env = {
        "SMSGATE_PROVIDER": "negin",
        "SMSGATE_USERNAME": "user",
        "SMSGATE_PASSWORD": SPECIAL,
        "SMSGATE_BASE_URL": "http://sms.example.com",
    }
    result = invoke(["send", "09121111111", "hi"], env)
    assert result.exit_code == EXIT_ERROR
    assert "ConfigurationError" in result.stderr
    assert_no_secret(result, SPECIAL)


def test_bad_config_file_error_hides_the_password(tmp_path: Path) -> None:
    """A config file that is not TOML is reported by position only."""
    config = tmp_path / "bad.toml"
    config.write_text(f'provider = "ippanel"\npassword = "{SPECIAL}\n')
    result = invoke(["--config", str(config), "credit"])
    assert result.exit_code == EXIT_ERROR
    assert "not valid TOML" in result.stderr
    assert_no_secret(result, SPECIAL)


def test_scrubbing_writer_masks_every_registered_form() -> None:
    """The output stream masks the secret in raw and URL-encoded forms."""

    state = Context(config=None)
    state.hide(SPECIAL)
    target = io.StringIO()
    writer = ScrubbingWriter(target, state.secrets)
    writer.write(f"a {SPECIAL} b {quote(SPECIAL, safe='')} c {quote_plus(SPECIAL)}")
    assert target.getvalue() == "a *** b *** c ***"
