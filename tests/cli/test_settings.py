"""Settings from the environment and the config file."""

from __future__ import annotations

from pathlib import Path

import pytest

from smsgate.cli import load_settings
from smsgate.exceptions import ConfigurationError


def test_settings_from_the_environment() -> None:
    """Every variable lands in its field; SMSGATE_LINE is the sender; repr hides the password."""
    settings = load_settings(
        None,
        {
            "SMSGATE_PROVIDER": "Negin",
            "SMSGATE_USERNAME": "u",
            "SMSGATE_PASSWORD": "p4ssw0rd!",
            "SMSGATE_LINE": "9830003300",
            "SMSGATE_LINE2": "9830007485",
            "SMSGATE_OPT_OUT_FALLBACK": "line2",
            "SMSGATE_TIMEOUT": "12.5",
            "SMSGATE_ALLOW_INSECURE_HTTP": "yes",
        },
    )
    assert settings.provider == "negin"
    assert settings.sender == "9830003300"
    assert settings.line2 == "9830007485"
    assert settings.opt_out_fallback == "line2"
    assert settings.timeout == 12.5
    assert settings.allow_insecure_http is True
    assert "p4ssw0rd!" not in repr(settings)


def test_settings_file_then_environment_on_top(tmp_path: Path) -> None:
    """The TOML file (plain or a [smsgate] table) is read first; the environment wins."""
    config = tmp_path / "smsgate.toml"
    config.write_text(
        '[smsgate]\nprovider = "ippanel"\nusername = "file-user"\npassword = "file-pass"\n'
        'line = "+983000505"\nbase_url = "https://panel.example"\n'
    )
    config.chmod(0o600)
    from_file = load_settings(config, {})
    assert (from_file.username, from_file.password) == ("file-user", "file-pass")
    assert from_file.sender == "+983000505"
    assert from_file.base_url == "https://panel.example"
    overridden = load_settings(config, {"SMSGATE_USERNAME": "env-user"})
    assert overridden.username == "env-user"
    assert overridden.password == "file-pass"


def test_settings_default_file_and_password_file(tmp_path: Path) -> None:
    """~/.config/smsgate/config.toml is found; a password can come from a file."""
    (tmp_path / "xdg" / "smsgate").mkdir(parents=True)
    secret = tmp_path / "password.txt"
    secret.write_text("from-a-file\n")
    (tmp_path / "xdg" / "smsgate" / "config.toml").write_text(
        f'provider = "ippanel"\nusername = "u"\npassword_file = "{secret}"\n'
    )
    settings = load_settings(None, {})
    assert settings.password == "from-a-file"


@pytest.mark.parametrize(
    ("environ", "needle"),
    [
        ({}, "SMSGATE_PROVIDER"),
        ({"SMSGATE_PROVIDER": "kavenegar"}, "unknown provider"),
        ({"SMSGATE_PROVIDER": "ippanel", "SMSGATE_USERNAME": "u"}, "SMSGATE_PASSWORD"),
        (
            {
                "SMSGATE_PROVIDER": "ippanel",
                "SMSGATE_USERNAME": "u",
                "SMSGATE_PASSWORD": "p",
                "SMSGATE_TIMEOUT": "soon",
            },
            "timeout",
        ),
    ],
)
def test_settings_errors_say_what_to_set(environ: dict[str, str], needle: str) -> None:
    """A missing or bad setting raises ConfigurationError naming the fix."""
    with pytest.raises(ConfigurationError, match=needle):
        load_settings(None, environ)


def test_config_file_errors_never_quote_the_file(tmp_path: Path) -> None:
    """Bad TOML and unknown keys are reported without the file's content."""
    broken = tmp_path / "broken.toml"
    broken.write_text('password = "hunter2-secret\nprovider = ippanel\n')
    with pytest.raises(ConfigurationError) as caught:
        load_settings(broken, {})
    assert "hunter2-secret" not in str(caught.value)
    assert "line" in str(caught.value)
    unknown = tmp_path / "unknown.toml"
    unknown.write_text('passwrod = "hunter2-secret"\n')
    with pytest.raises(ConfigurationError, match="passwrod") as caught:
        load_settings(unknown, {})
    assert "hunter2-secret" not in str(caught.value)


def test_world_readable_config_with_a_password_warns(tmp_path: Path) -> None:
    """A config file others can read triggers a chmod 600 warning (not an error)."""
    config = tmp_path / "open.toml"
    config.write_text('provider = "ippanel"\nusername = "u"\npassword = "p"\n')
    config.chmod(0o644)
    warnings: list[str] = []
    load_settings(config, {}, warn=warnings.append)
    assert len(warnings) == 1
    assert "chmod 600" in warnings[0]
