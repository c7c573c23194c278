"""Ctrl+C drains a bulk job: a real `smsgate bulk` process, SIGINT mid-run, against the fake
on loopback. Nothing is left in doubt, the resume command is printed, and running it
finishes the job with every recipient sent exactly once (counted at the fake's ledger)."""

from __future__ import annotations

import shlex
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from smsgate.dispatch import summarize
from smsgate.testing import FakeProvider, Faults, serve_loopback

from ._helpers import env_for, write_csv
from ._process import smsgate_process

pytestmark = pytest.mark.loopback

ROWS = 100


def _wait(condition: Callable[[], bool], what: str, timeout: float = 30) -> None:
    """Bounded polling until ``condition()`` holds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def test_first_ctrl_c_drains_and_the_printed_command_resumes(tmp_path: Path) -> None:
    """SIGINT mid-run: exit 130, zero rows in doubt, the resume command finishes the job."""
    fake = FakeProvider(faults=Faults(latency=0.01))
    numbers = [f"0912{i:07d}" for i in range(ROWS)]
    csv_file = write_csv(tmp_path / "campaign.csv", [f"{n},order {n} shipped" for n in numbers])
    journal = tmp_path / "campaign.sqlite"
    args = ["bulk", str(csv_file), "--journal", str(journal), "--concurrency", "4"]
    args += ["--max-batch", "1", "--no-progress"]
    with serve_loopback(fake) as server:
        env = env_for(server)
        with smsgate_process(args, env) as child:
            _wait(lambda: len(fake.ledger) >= 10, "the first sends")
            child.process.send_signal(signal.SIGINT)
            code = child.finish()
        assert code == 130, child.stderr
        assert "Ctrl+C" in child.stderr
        stopped_at = len(fake.ledger)
        assert stopped_at < ROWS, "the job ended before the Ctrl+C took effect"
        (summary,) = summarize(journal).values()
        assert summary.in_doubt == 0
        assert summary.sent == stopped_at
        resume = next(
            line.split("resume with:", 1)[1].strip()
            for line in child.stderr.splitlines()
            if "resume with:" in line
        )
        words = shlex.split(resume)
        assert words[0] == "smsgate"
        assert "--job-id" in words
        with smsgate_process(words[1:], env) as rerun:
            assert rerun.finish() == 0, rerun.stderr
    assert sorted(e.recipient for e in fake.ledger) == sorted("+98" + n[1:] for n in numbers)


def test_second_ctrl_c_stops_at_once(tmp_path: Path) -> None:
    """Two SIGINTs while slow requests are in flight: exit 130 without waiting for them,
    and the journal and reconcile commands are named for the rows left in doubt."""
    fake = FakeProvider()
    csv_file = write_csv(tmp_path / "campaign.csv", [f"0912{i:07d},order {i}" for i in range(20)])
    journal = tmp_path / "campaign.sqlite"
    args = ["bulk", str(csv_file), "--journal", str(journal), "--concurrency", "2"]
    args += ["--max-batch", "1", "--no-progress"]
    # The server's handlers sleep 30 s: let its shutdown cut them after 1 s.
    with (
        serve_loopback(fake, timeout_graceful_shutdown=1) as server,
        smsgate_process(args, env_for(server)) as child,
    ):
        child.wait_for(lambda c: "job 'campaign.csv'" in c.stderr)  # the credit was asked
        fake.faults.latency = 30  # every send from now on takes 30 s to answer
        _wait(lambda: fake.core.requests >= 2, "a send in flight")  # the credit, then a send
        child.process.send_signal(signal.SIGINT)
        child.wait_for(lambda c: "Ctrl+C again" in c.stderr)
        child.process.send_signal(signal.SIGINT)
        code = child.finish(timeout=20)
    assert code == 130, child.stderr
    assert "stopped at once" in child.stderr
    assert "journal" in child.stderr and "resume with:" in child.stderr
    (summary,) = summarize(journal).values()
    assert summary.sent == 0  # no answer came back before the second Ctrl+C
