"""smsgate track, report and serve: a bulk job's deliveries and its page, from the CLI."""

from __future__ import annotations

import json
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from smsgate.cli._operate import parse_duration
from smsgate.testing import FakeClock, FakeProvider, LoopbackServer, serve_loopback

from ._helpers import NUMBERS, PASSWORD, assert_no_secret, env_for, invoke, write_csv
from ._process import smsgate_process

pytestmark = pytest.mark.loopback

OPTED_OUT = "09350000001"


@pytest.fixture
def clocked() -> Iterator[tuple[FakeProvider, FakeClock, LoopbackServer]]:
    """A fake on loopback whose delivery timelines move only when the test says."""
    clock = FakeClock()
    fake = FakeProvider(clock=clock, opted_out=[OPTED_OUT])
    with serve_loopback(fake) as server:
        yield fake, clock, server


def run_bulk(server: LoopbackServer, tmp_path: Path) -> Path:
    csv_file = write_csv(tmp_path / "job.csv", [f"{n},hi" for n in [*NUMBERS, OPTED_OUT]])
    journal = tmp_path / "job.sqlite"
    ran = invoke(
        ["bulk", str(csv_file), "--journal", str(journal), "--job-id", "camp"], env_for(server)
    )
    assert ran.exit_code == 0, ran.output
    return journal


def test_parse_duration() -> None:
    assert parse_duration("90") == 90
    assert parse_duration("30m") == 1800
    assert parse_duration("1.5h") == 5400
    with pytest.raises(Exception, match="not a duration"):
        parse_duration("soon")


def test_track_then_report(
    clocked: tuple[FakeProvider, FakeClock, LoopbackServer], tmp_path: Path
) -> None:
    """track stores final states (exit 0); report writes a page with the same counts."""
    _fake, clock, server = clocked
    journal = run_bulk(server, tmp_path)
    early = invoke(["track", str(journal), "--deadline", "0", "--json"], env_for(server))
    assert early.exit_code == 3, early.output  # nothing final yet: exit 3, run again later
    assert json.loads(early.stdout)["jobs"][0]["delivery"]["pending"] == len(NUMBERS) + 1
    clock.advance(3600)
    result = invoke(["track", str(journal), "--job-id", "camp"], env_for(server))
    assert result.exit_code == 0, result.output
    assert "job 'camp'" in result.stdout
    assert_no_secret(result)
    again = invoke(["track", str(journal), "--json"], env_for(server))
    data = json.loads(again.stdout)["jobs"][0]
    assert data["complete"] and data["requests"] == 0  # final rows are not asked again
    assert data["delivery"]["delivered"] == len(NUMBERS)
    assert data["delivery"]["blocked"] == 1

    page = tmp_path / "out" / "camp.html"
    page.parent.mkdir()
    made = invoke(["report", str(journal), "--html", str(page), "--price-per-part", "1000"], env={})
    assert made.exit_code == 0, made.output
    text = page.read_text(encoding="utf-8")
    assert '"delivered":4' in text and '"blocked":1' in text
    assert "+98935***0001" in text and "+989350000001" not in text
    shown = invoke(["report", str(journal), "--html", str(page), "--show-numbers"], env={})
    assert shown.exit_code == 0 and "+989350000001" in page.read_text(encoding="utf-8")


def test_report_needs_a_job(
    tmp_path: Path, clocked: tuple[FakeProvider, FakeClock, LoopbackServer]
) -> None:
    _fake, _clock, server = clocked
    journal = run_bulk(server, tmp_path)
    wrong = invoke(["report", str(journal), "--job-id", "nope", "--html", str(tmp_path / "x.html")])
    assert wrong.exit_code == 1 and "no job 'nope'" in wrong.stderr
    missing = invoke(["report", str(tmp_path / "none.sqlite"), "--html", str(tmp_path / "x.html")])
    assert missing.exit_code == 1 and "no journal" in missing.stderr
    bad_price = invoke(
        ["report", str(journal), "--html", str(tmp_path / "x.html"), "--price-per-part", "x"]
    )
    assert bad_price.exit_code == 2


def test_serve_refuses_remote_host(
    tmp_path: Path, clocked: tuple[FakeProvider, FakeClock, LoopbackServer]
) -> None:
    _fake, _clock, server = clocked
    journal = run_bulk(server, tmp_path)
    result = invoke(["serve", str(journal), "--host", "192.0.2.1"])
    assert result.exit_code == 1
    assert "loopback only" in result.stderr


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_serve_answers_on_loopback(
    tmp_path: Path, clocked: tuple[FakeProvider, FakeClock, LoopbackServer]
) -> None:
    """smsgate serve answers the page and its data on 127.0.0.1 until Ctrl-C."""
    _fake, _clock, server = clocked
    journal = run_bulk(server, tmp_path)
    port = _free_port()
    with smsgate_process(["serve", str(journal), "--port", str(port)]) as child:
        child.wait_for(lambda c: "serving the report" in c.stderr)
        origin = f"http://127.0.0.1:{port}"
        page = None
        deadline = time.monotonic() + 20
        while page is None and time.monotonic() < deadline:  # bounded: the server starts
            try:
                page = httpx.get(origin + "/", timeout=5)
            except httpx.TransportError:
                time.sleep(0.05)
        assert page is not None and page.status_code == 200
        assert '"job_id":"camp"' in page.text and '"live":true' in page.text
        data = httpx.get(origin + "/data.json", timeout=5).json()
        assert data["rows"] == len(NUMBERS) + 1
        child.process.send_signal(signal.SIGINT)
        assert child.finish() in (0, 130)
    assert PASSWORD not in child.stdout + child.stderr
