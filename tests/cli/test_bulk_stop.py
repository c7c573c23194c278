"""A bulk job stops on an account-wide error (wrong password, no credit, an unreachable
host) after a handful of requests, reports the rest as not attempted, and exits 1."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

import pytest

from smsgate import _telemetry
from smsgate.testing import FakeProvider, LoopbackServer

from ._helpers import env_for, invoke, write_csv

pytestmark = pytest.mark.loopback

ROWS = 200
HANDFUL = 10


def _rows(tmp_path: Path) -> Path:
    # A different text per row: without the stop, every row would be its own request.
    return write_csv(
        tmp_path / "campaign.csv", [f"0912{i:07d},order {i} shipped" for i in range(ROWS)]
    )


class _Counter:
    """A telemetry observer that counts provider requests (connection attempts included)."""

    def __init__(self) -> None:
        self.requests = 0

    def request(
        self, *, provider: str, operation: str, recipients: int, parts: int, attempt: int
    ) -> AbstractContextManager[object]:
        self.requests += 1
        return nullcontext()

    def outcome(self, *, provider: str | None, route: str | None, status: str, count: int) -> None:
        return None

    def limiter_wait(self, seconds: float) -> None:
        return None

    def breaker_state(self, route: str, state: str) -> None:
        return None


@pytest.fixture
def counted() -> Iterator[_Counter]:
    counter = _Counter()
    _telemetry.install(counter)
    try:
        yield counter
    finally:
        _telemetry.uninstall()


def test_wrong_password_stops_at_once(
    served: tuple[FakeProvider, LoopbackServer], tmp_path: Path
) -> None:
    """A refused login: exit 1, the hint names the settings, a handful of requests at most."""
    fake, server = served
    result = invoke(
        ["bulk", str(_rows(tmp_path)), "--concurrency", "4", "--max-batch", "1"],
        env_for(server, SMSGATE_PASSWORD="wrong"),
    )
    assert result.exit_code == 1, result.output
    assert "AuthenticationError" in result.stderr
    assert "SMSGATE_PASSWORD" in result.stderr
    assert fake.core.requests <= HANDFUL
    assert fake.ledger == []


def test_empty_credit_stops_the_job(
    served: tuple[FakeProvider, LoopbackServer], tmp_path: Path
) -> None:
    """No credit: the first refusal stops the job; the rest is not attempted; exit 1."""
    fake, server = served
    fake.core.credit = fake.core.credit * 0
    journal = tmp_path / "j.sqlite"
    args = ["bulk", str(_rows(tmp_path)), "--concurrency", "4", "--max-batch", "1"]
    result = invoke([*args, "--journal", str(journal), "--json"], env_for(server))
    assert result.exit_code == 1, result.output
    assert "InsufficientCreditError" in result.output
    assert "top up" in result.stderr
    assert fake.core.requests <= HANDFUL
    assert fake.ledger == []
    report = json.loads(result.stdout)
    assert report["stopped"]
    assert report["sent"] == 0
    assert report["resume"] and "--job-id campaign.csv" in report["resume"]


def test_unreachable_host_stops_after_a_few_attempts(tmp_path: Path, counted: _Counter) -> None:
    """Connection refused on every attempt: a handful of attempts, exit 1, nothing sent."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {
        "SMSGATE_PROVIDER": "ippanel",
        "SMSGATE_USERNAME": "user",
        "SMSGATE_PASSWORD": "secret-pass",
        "SMSGATE_SENDER": "+983000505",
        "SMSGATE_BASE_URL": f"http://127.0.0.1:{port}",
    }
    result = invoke(["bulk", str(_rows(tmp_path)), "--concurrency", "4", "--max-batch", "1"], env)
    assert result.exit_code == 1, result.output
    assert "NotSentError" in result.stderr
    assert "SMSGATE_BASE_URL" in result.stderr
    assert 1 <= counted.requests <= HANDFUL
