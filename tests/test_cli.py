"""The ``smsgate`` command line, end to end against the fake provider on 127.0.0.1.

Commands run through click's ``CliRunner`` in this process; the fake provider is served
by uvicorn in a thread, and what was sent is read from the fake's own ledger. Every error
path is scanned for the password (in every encoding it may travel in).
"""

from __future__ import annotations

import math
import socket
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import pytest
from click.testing import CliRunner, Result

from smsgate import _cli, _cli_entry
from smsgate._cli import ENVIRONMENT, EXIT_ERROR, EXIT_PARTIAL, cli, load_settings
from smsgate.exceptions import ConfigurationError
from smsgate.testing import FakeProvider, LoopbackServer, serve_loopback

PASSWORD = "secret-pass"  # the fake's default account
NUMBERS = ["09121111111", "09122222222", "09123333333", "09124444444"]

pytestmark = pytest.mark.loopback


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No SMSGATE_* variable or user config file from the machine leaks into a test."""
    for name in [*ENVIRONMENT, "SMSGATE_CONFIG", "SMSGATE_DEBUG"]:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))


@pytest.fixture
def served() -> Iterator[tuple[FakeProvider, LoopbackServer]]:
    """A fresh fake provider on loopback."""
    fake = FakeProvider()
    with serve_loopback(fake) as server:
        yield fake, server


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


# -- the entry point ----------------------------------------------------------------------


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


# -- settings -----------------------------------------------------------------------------


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


# -- commands against the fake ----------------------------------------------------------


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


def _write_csv(path: Path, rows: list[str]) -> Path:
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def test_bulk_csv_sends_each_row_and_reports(
    served: tuple[FakeProvider, LoopbackServer], tmp_path: Path
) -> None:
    """A CSV with a header: valid rows are sent once, a bad number fails alone (exit 3)."""
    fake, server = served
    rows = ["number,text,sender", *(f"{n},hello {i},+983000505" for i, n in enumerate(NUMBERS))]
    rows += ["not-a-number,hello,+983000505", f"{NUMBERS[0]},hello 0,+983000505"]
    failures = tmp_path / "failures.csv"
    result = invoke(
        [
            "bulk",
            str(_write_csv(tmp_path / "job.csv", rows)),
            "--progress",
            "--failures",
            str(failures),
        ],
        env_for(server),
    )
    assert result.exit_code == EXIT_PARTIAL, result.output
    assert sorted(e.recipient for e in fake.ledger) == sorted("+98" + n[1:] for n in NUMBERS)
    assert "sending" in result.stderr  # the progress bar, drawn from the dispatcher's hook
    assert "6/6" in result.stderr
    assert "InvalidRecipientError" in result.stdout
    assert "not-a-number" in failures.read_text()
    assert_no_secret(result)


def test_bulk_one_text_is_batched(
    served: tuple[FakeProvider, LoopbackServer], tmp_path: Path
) -> None:
    """--text sends one text to every number in ceil(n / max_batch) requests (server count)."""
    fake, server = served
    numbers = [f"0912{i:07d}" for i in range(250)]
    before = fake.core.requests
    result = invoke(
        [
            "bulk",
            str(_write_csv(tmp_path / "numbers.csv", numbers)),
            "--text",
            "same for all",
            "--max-batch",
            "100",
        ],
        env_for(server),
    )
    assert result.exit_code == 0, result.output
    assert len(fake.ledger) == 250
    assert fake.core.requests - before == math.ceil(250 / 100)


def test_bulk_journal_resumes_without_resending(
    served: tuple[FakeProvider, LoopbackServer], tmp_path: Path
) -> None:
    """Running the same file with the same journal again sends nothing twice."""
    fake, server = served
    csv_file = _write_csv(tmp_path / "job.csv", [f"{n},hi {n}" for n in NUMBERS])
    journal = tmp_path / "job.sqlite"
    first = invoke(["bulk", str(csv_file), "--journal", str(journal)], env_for(server))
    assert first.exit_code == 0, first.output
    second = invoke(["bulk", str(csv_file), "--journal", str(journal)], env_for(server))
    assert second.exit_code == 0, second.output
    assert len(fake.ledger) == len(NUMBERS)
    assert [fake.core.sent_to(n) for n in NUMBERS] == [1] * len(NUMBERS)


def test_journal_reports_a_job(served: tuple[FakeProvider, LoopbackServer], tmp_path: Path) -> None:
    """`smsgate journal FILE` counts a finished job's rows, with no credentials needed."""
    _fake, server = served
    csv_file = _write_csv(tmp_path / "job.csv", [f"{n},hi {n}" for n in NUMBERS])
    journal = tmp_path / "job.sqlite"
    ran = invoke(
        ["bulk", str(csv_file), "--journal", str(journal), "--job-id", "campaign"],
        env_for(server),
    )
    assert ran.exit_code == 0, ran.output
    result = invoke(["journal", str(journal)], env={})
    assert result.exit_code == 0, result.output
    rows = [
        [cell.strip() for cell in line.split("│")[1:-1]]
        for line in result.stdout.splitlines()
        if line.startswith("│")
    ]
    n = str(len(NUMBERS))
    assert rows == [["campaign", n, n, "0", "0", rows[0][5]]]


def test_journal_in_doubt_exits_3(tmp_path: Path) -> None:
    """Rows left pending by a killed job are reported in doubt, with exit status 3."""
    import anyio

    from smsgate.dispatch import JournalEntry, SqliteJournal

    path = tmp_path / "killed.sqlite"

    async def write() -> None:
        async with SqliteJournal(path) as journal:
            await journal.open("job")
            await journal.record(
                "job",
                [
                    JournalEntry(key="a", recipient="+989121111111", status="sent"),
                    JournalEntry(key="b", recipient="+989122222222", status="pending"),
                    JournalEntry(
                        key="c",
                        recipient="+989123333333",
                        status="unknown",
                        error="OutcomeUnknownError",
                    ),
                ],
            )

    anyio.run(write)
    result = invoke(["journal", str(path)], env={})
    assert result.exit_code == 3, result.output
    assert "in doubt" in result.stdout
    assert "OutcomeUnknownError 1" in result.stdout
    missing = invoke(["journal", str(tmp_path / "nope.sqlite")], env={})
    assert missing.exit_code == 1
    assert "no journal" in missing.stderr


def test_bulk_dry_run_sends_nothing(
    served: tuple[FakeProvider, LoopbackServer], tmp_path: Path
) -> None:
    """--dry-run counts requests, parts and cost, and the ledger stays empty."""
    fake, server = served
    csv_file = _write_csv(tmp_path / "job.csv", [f"{n},hi" for n in NUMBERS])
    result = invoke(
        ["bulk", str(csv_file), "--dry-run", "--price-per-part", "250"], env_for(server)
    )
    assert result.exit_code == 0, result.output
    assert fake.ledger == []
    assert "dry run" in result.stdout
    assert "1,000 Rial" in result.stdout  # 4 recipients x 1 part x 250


def test_fake_server_serves_until_its_duration(tmp_path: Path) -> None:
    """fake-server prints its URL and demo credentials and answers while it runs."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    answers: list[bytes] = []

    def poll() -> None:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not answers:
            try:
                data = b"uname=user&pass=secret-pass&op=credit"
                url = f"http://127.0.0.1:{port}/services.jspd"
                with urllib.request.urlopen(url, data=data, timeout=2) as answer:
                    answers.append(answer.read())
            except OSError:
                time.sleep(0.05)

    poller = threading.Thread(target=poll)
    poller.start()
    result = invoke(["fake-server", "--port", str(port), "--duration", "1.5"])
    poller.join(10)
    assert result.exit_code == 0, result.output
    assert f"http://127.0.0.1:{port}" in result.stdout
    assert "username: user" in result.stdout
    assert answers
    assert answers[0].startswith(b"[0,")


def test_demo_end_to_end() -> None:
    """`smsgate demo` sends through the fallback chain, prints the report, and exits 0."""
    started = time.monotonic()
    result = invoke(["demo", "--count", "200", "--progress"])
    assert result.exit_code == 0, result.output
    assert time.monotonic() - started < 60
    out = result.stdout
    assert "job 'demo'" in out
    assert "where they went" in out
    assert "negin from 9830003300" in out
    assert "ippanel from +983000505" in out  # the opted-out recipients, by fallback
    assert "204/204" in result.stderr  # 200 + 2 duplicates + 2 invalid rows, all accounted for
    assert_no_secret(result)


# -- secrets on error paths ------------------------------------------------------------------


SPECIAL = "p@ss w/rd+ÿ&=%"


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
    import io

    state = _cli._Context(config=None)
    state.hide(SPECIAL)
    target = io.StringIO()
    writer = _cli._ScrubbingWriter(target, state.secrets)
    writer.write(f"a {SPECIAL} b {quote(SPECIAL, safe='')} c {quote_plus(SPECIAL)}")
    assert target.getvalue() == "a *** b *** c ***"


def test_bulk_resume_with_default_sender_spelled_out(
    served: tuple[FakeProvider, LoopbackServer], tmp_path: Path
) -> None:
    """A rerun that names the default line with --sender (any spelling) still resumes."""
    fake, server = served
    csv_file = _write_csv(tmp_path / "job.csv", [f"{n},hi {n}" for n in NUMBERS])
    journal = tmp_path / "job.sqlite"
    first = invoke(["bulk", str(csv_file), "--journal", str(journal)], env_for(server))
    assert first.exit_code == 0, first.output
    for spelling in ("+983000505", "983000505"):
        again = invoke(
            ["bulk", str(csv_file), "--journal", str(journal), "--sender", spelling],
            env_for(server),
        )
        assert again.exit_code == 0, again.output
    assert [fake.core.sent_to(n) for n in NUMBERS] == [1] * len(NUMBERS)


def test_bulk_new_file_with_the_same_name_is_a_new_job(
    served: tuple[FakeProvider, LoopbackServer], tmp_path: Path
) -> None:
    """Next month's file of the same name is not mistaken for a finished job."""
    fake, server = served
    journal = tmp_path / "job.sqlite"
    csv_file = _write_csv(tmp_path / "customers.csv", [f"{NUMBERS[0]},hi"])
    assert (
        invoke(["bulk", str(csv_file), "--journal", str(journal)], env_for(server)).exit_code == 0
    )
    csv_file = _write_csv(tmp_path / "customers.csv", [f"{NUMBERS[0]},hi", f"{NUMBERS[1]},hi"])
    assert (
        invoke(["bulk", str(csv_file), "--journal", str(journal)], env_for(server)).exit_code == 0
    )
    assert fake.core.sent_to(NUMBERS[0]) == 2  # a new job: its first row is sent again
    assert fake.core.sent_to(NUMBERS[1]) == 1


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (["phone,msg", "09121111111,hi"], "no text column"),
        (["text,phonenumber", "hi,09121111111"], "no number"),
    ],
)
def test_bulk_header_without_needed_column_is_a_usage_error(
    served: tuple[FakeProvider, LoopbackServer], tmp_path: Path, lines: list[str], message: str
) -> None:
    """A header that names no text (or number) column stops before anything is sent."""
    fake, server = served
    csv_file = _write_csv(tmp_path / "job.csv", lines)
    result = invoke(["bulk", str(csv_file)], env_for(server))
    assert result.exit_code == 2
    assert message in result.output
    assert fake.ledger == []


def test_bulk_first_row_that_is_a_number_is_data(
    served: tuple[FakeProvider, LoopbackServer], tmp_path: Path
) -> None:
    """A first row whose first cell is a phone number is data, even if a cell says 'body'."""
    fake, server = served
    csv_file = _write_csv(tmp_path / "job.csv", ["09121111111,body", "09122222222,text"])
    result = invoke(["bulk", str(csv_file)], env_for(server))
    assert result.exit_code == 0, result.output
    assert sorted(fake.core.recipients()) == ["+989121111111", "+989122222222"]
