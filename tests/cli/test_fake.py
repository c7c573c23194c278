"""fake-server and demo: no account needed."""

from __future__ import annotations

import socket
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from ._helpers import assert_no_secret, invoke

pytestmark = pytest.mark.loopback


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
