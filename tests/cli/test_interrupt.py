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

ROWS = 200


def _wait(condition: Callable[[], bool], what: str, timeout: float = 30) -> None:
    """Bounded polling until ``condition()`` holds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def test_first_ctrl_c_drains_and_the_printed_command_resumes(tmp_path: Path) -> None:
    """SIGINT mid-run: exit 130, zero rows in doubt, the resume command finishes the job."""
    fake = FakeProvider(faults=Faults(latency=0.05))
    numbers = [f"0912{i:07d}" for i in range(ROWS)]
    csv_file = write_csv(tmp_path / "campaign.csv", [f"{n},order {n} shipped" for n in numbers])
    journal = tmp_path / "campaign.sqlite"
    args = ["bulk", str(csv_file), "--journal", str(journal), "--concurrency", "4"]
    args += ["--max-batch", "1", "--no-progress"]
    with serve_loopback(fake) as server:
        env = env_for(server)
        with smsgate_process(args, env) as child:
            _wait(lambda: len(fake.ledger) >= 20, "the first sends")
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
