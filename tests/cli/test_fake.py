"""fake-server and demo: no account needed."""

from __future__ import annotations

import re
import signal
import time
import urllib.request

import pytest

from smsgate.cli._context import command_name
from smsgate.cli._requestlog import describe

from ._helpers import assert_no_secret, invoke
from ._process import smsgate_process

pytestmark = pytest.mark.loopback


def _post(url: str, data: bytes) -> bytes:
    with urllib.request.urlopen(url, data=data, timeout=10) as answer:  # noqa: S310
        body: bytes = answer.read()
        return body


def test_fake_server_serves_until_ctrl_c_and_logs_requests() -> None:
    """fake-server prints its URL and credentials, answers, logs each request without the
    password, and stops cleanly on SIGINT."""
    with smsgate_process(["fake-server", "--port", "0", "--log-requests"]) as child:
        child.wait_for(lambda c: "Ctrl+C stops the server" in c.stdout)
        url = re.search(r"on (http://127\.0\.0\.1:\d+)", child.stdout)
        assert url is not None, child.stdout
        assert "username: user" in child.stdout
        assert "smsgate send" in child.stdout
        answer = _post(
            f"{url.group(1)}/services.jspd",
            b"uname=user&pass=secret-pass&op=send&from=%2B983000505"
            b"&to=%5B%2209121111111%22%2C%2209122222222%22%5D&message=hi",
        )
        assert answer.startswith(b"[0,")
        child.wait_for(lambda c: "op=send" in c.stderr)
        child.process.send_signal(signal.SIGINT)
        assert child.finish() == 0
    assert "POST /services.jspd op=send recipients=2 -> 200" in child.stderr
    assert "secret-pass" not in child.stderr
    assert "0912" not in child.stderr
    assert "the fake accepted 2 SMS" in child.stdout


def test_fake_server_stops_after_its_duration() -> None:
    """--duration ends the server by itself (exit 0); --credit sets the account's credit."""
    with smsgate_process(["fake-server", "--port", "0", "--duration", "0.5"]) as child:
        assert child.finish() == 0
    assert "Stopping in 0.5s" in child.stdout
    assert "stopped" in child.stdout


def test_hints_say_uv_run_under_uv(monkeypatch: pytest.MonkeyPatch) -> None:
    """Under `uv run` (UV and UV_RUN_RECURSION_DEPTH set) hints show `uv run smsgate ...`;
    under uvx or none, `smsgate ...`."""
    monkeypatch.setenv("UV", "/usr/bin/uv")
    monkeypatch.setenv("UV_RUN_RECURSION_DEPTH", "1")
    assert command_name() == "uv run smsgate"
    monkeypatch.delenv("UV_RUN_RECURSION_DEPTH")  # uvx: a tool environment
    assert command_name() == "smsgate"
    monkeypatch.delenv("UV")
    assert command_name() == "smsgate"


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


@pytest.mark.parametrize(
    ("method", "path", "query", "body", "content_type", "line"),
    [
        (
            "POST",
            "/services.jspd",
            b"",
            b"uname=u&pass=secret&op=send&to=%5B%2209121111111%22%5D&message=x",
            "application/x-www-form-urlencoded",
            "POST /services.jspd op=send recipients=1",
        ),
        (
            "GET",
            "/api/wsSend.ashx",
            b"username=u&password=secret&mobile=09121111111,09122222222&message=x",
            b"",
            "",
            "GET /api/wsSend.ashx op=wsSend.ashx recipients=2",
        ),
        ("POST", "/services.jspd", b"", b"uname=u&pass=secret&op=credit", "", "op=credit"),
    ],
)
def test_request_log_line_names_no_value_but_the_operation(
    method: str, path: str, query: bytes, body: bytes, content_type: str, line: str
) -> None:
    """One line per request: method, path, op, recipients; never the password or a number."""
    described = describe(method, path, query, body, content_type)
    assert line in described
    assert "secret" not in described
    assert "0912" not in described


def test_fake_server_profile_is_checked_and_used() -> None:
    """--profile takes the fake's profiles (docs/protocols/); anything else is a usage error."""
    result = invoke(["fake-server", "--profile", "kapanel-ish", "--duration", "0.1"])
    assert result.exit_code == 2
    assert "ippanel-pdf" in result.output and "kapanel-ish" in result.output
    with smsgate_process(["fake-server", "--port", "0", "--profile", "ippanel-pdf"]) as child:
        child.wait_for(lambda c: "Ctrl+C stops the server" in c.stdout)
        url = re.search(r"on (http://127\.0\.0\.1:\d+)", child.stdout)
        assert url is not None, child.stdout
        # The PDF's panel knows only "joblist": the Kapanel spelling is an unknown op there.
        login = b"uname=user&pass=secret-pass&op="
        pdf = _post(f"{url.group(1)}/services.jspd", login + b"joblist")
        kapanel = _post(f"{url.group(1)}/services.jspd", login + b"Jobslist")
        child.process.send_signal(signal.SIGINT)
        assert child.finish() == 0
    assert pdf != kapanel
