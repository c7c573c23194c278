"""SIGKILL a bulk job in a child process at a random point, resume it, count from the ledger.

The fake provider runs in this (parent) process on loopback, so its ledger, the server's
own record of every send it accepted, survives the child. For each seed:

1. the child starts the job (SQLite journal) and is SIGKILLed once the ledger holds a
   seed-chosen number of sends, plus a seed-chosen few milliseconds (so the kill lands
   mid-request, between a journal write and its request, or between batches);
2. a second child resumes the job with the same journal: nothing the ledger holds is sent
   again; rows left ``pending`` by the kill come back ``unknown`` and are not resent;
3. the parent reconciles the in-doubt rows through the fake's delivery call (ids found in
   the ledger, as a user searches the panel's outbox) and writes the verdicts back;
4. a third child finishes the job: every recipient is in the ledger exactly once.
"""

from __future__ import annotations

import collections
import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import anyio
import pytest

from smsgate.dispatch import SqliteJournal, reconcile, record_reconciled, summarize
from smsgate.testing import FakeClock, FakeProvider, Faults, serve_loopback

from ._support import duplicates, e164, gateway, ledger_counts, ledger_lookup, record_figures

pytestmark = [pytest.mark.loopback, pytest.mark.slow]

CHILD = Path(__file__).with_name("_kill_child.py")
JOB = "kill-resume"
COUNT = 60
LATENCY = 0.08
# (seed, backend, event loop of the child): both backends, both event loops.
CASES = [
    (1, "ippanel", "asyncio"),
    (2, "negin", "asyncio"),
    (3, "ippanel", "trio"),
    (4, "negin", "trio"),
    (5, "negin", "asyncio"),
    (6, "ippanel", "asyncio"),
]


def child(url: str, journal: Path, backend: str, start: int, loop: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, str(CHILD), url, str(journal), backend, str(COUNT), str(start), loop],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def finish(proc: subprocess.Popen[bytes]) -> dict[str, str]:
    """Wait for a child that runs to the end; its outcome status per recipient."""
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err.decode()
    status: dict[str, str] = json.loads(out.decode().strip().splitlines()[-1])["status"]
    return status


async def reconcile_journal(journal: Path, backend: str, url: str, fake: FakeProvider) -> Any:
    async with SqliteJournal(journal) as jr, gateway(backend, url) as gw:
        results = await reconcile(await jr.entries(JOB), gw, lookup=ledger_lookup(fake))
        await record_reconciled(jr, JOB, results)
    return results


@pytest.mark.parametrize(("seed", "backend", "loop"), CASES)
def test_sigkill_and_resume_sends_everyone_exactly_once(
    seed: int, backend: str, loop: str, tmp_path: Path
) -> None:
    """Killed at a random point and resumed: each recipient at most once, all in the end."""
    rng = random.Random(seed)
    start = seed * 1_000
    everyone = [e164(f"0912{n:07d}") for n in range(start, start + COUNT)]
    journal = tmp_path / "bulk.sqlite"
    # The fake takes LATENCY per request, so a wave of 8 requests in flight lasts that
    # long: a kill at most 2/3 of the way through the ledger, plus less than one wave,
    # always lands before the child can finish. Its delivery timelines stand still (its
    # clock is never moved): a row it holds reconciles as "sent", not "delivered", however
    # long the steps below take on a loaded machine.
    fake = FakeProvider(faults=Faults(latency=LATENCY), clock=FakeClock())
    threshold = rng.randint(5, COUNT * 2 // 3)
    extra_delay = rng.uniform(0.0, LATENCY / 3)

    with serve_loopback(fake, log_level="critical") as server:
        # -- 1: run and SIGKILL ---------------------------------------------------------
        proc = child(server.url, journal, backend, start, loop)
        deadline = time.monotonic() + 30
        while len(fake.ledger) < threshold and proc.poll() is None:
            assert time.monotonic() < deadline, "the child never reached the kill point"
            time.sleep(0.001)
        time.sleep(extra_delay)
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
        assert proc.returncode == -signal.SIGKILL, "the child finished before the kill"
        time.sleep(0.1)  # requests the child had in flight land in the ledger (or not)
        at_kill = ledger_counts(fake)
        killed = summarize(journal)[JOB]
        assert killed.sent < COUNT
        assert duplicates(at_kill.values()) == 0

        # -- 2: resume with the same journal --------------------------------------------
        second = finish(child(server.url, journal, backend, start, loop))
        after_resume = ledger_counts(fake)
        assert sorted(second) == sorted(everyone)
        assert duplicates(after_resume.values()) == 0
        for recipient in at_kill:
            assert after_resume[recipient] == 1, f"{recipient} sent again after the kill"
        in_doubt = {r for r, s in second.items() if s == "unknown"}
        assert len(in_doubt) == killed.in_doubt  # the killed run's pending rows, not resent

        # -- 3: reconcile through the fake's delivery call ------------------------------
        results = anyio.run(reconcile_journal, journal, backend, server.url, fake)
        verdicts = collections.Counter(r.verdict for r in results)
        assert {r.recipient for r in results} == in_doubt
        assert verdicts["unknown"] == 0
        for result in results:
            expected = "not_sent" if after_resume[result.recipient] == 0 else "sent"
            assert result.verdict == expected

        # -- 4: finish -------------------------------------------------------------------
        third = finish(child(server.url, journal, backend, start, loop))
        final = ledger_counts(fake)

    assert set(third.values()) <= {"sent", "skipped"}
    assert sorted(final) == sorted(everyone)
    assert set(final.values()) == {1}
    record_figures(
        "kill_resume",
        {
            "seed": seed,
            "backend": backend,
            "loop": loop,
            "recipients": COUNT,
            "kill_after_ledger": threshold,
            "ledger_at_kill": sum(at_kill.values()),
            "journal_at_kill": {
                "sent": killed.sent,
                "pending": killed.pending,
                "unknown": killed.unknown,
                "failed": killed.failed,
            },
            "in_doubt_reconciled": dict(verdicts),
            "ledger_total": sum(final.values()),
            "duplicates": duplicates(final.values()),
        },
    )


@pytest.mark.parametrize(("seed", "backend"), [(7, "ippanel"), (8, "negin")])
def test_two_processes_on_one_job_one_killed(seed: int, backend: str, tmp_path: Path) -> None:
    """Two dispatcher processes run one job on one SQLite journal at once; one is SIGKILLed
    mid-run. They share the rows through the journal's claims (none sent by both), the
    survivor finishes, a rerun and a reconcile settle the killed one's in-flight rows, and
    in the end every recipient is in the fake's ledger exactly once."""
    rng = random.Random(seed)
    start = seed * 1_000
    everyone = [e164(f"0912{n:07d}") for n in range(start, start + COUNT)]
    journal = tmp_path / "bulk.sqlite"
    fake = FakeProvider(faults=Faults(latency=LATENCY))
    threshold = rng.randint(5, COUNT // 3)

    with serve_loopback(fake, log_level="critical") as server:
        victim = child(server.url, journal, backend, start, "asyncio")
        survivor = child(server.url, journal, backend, start, "asyncio")
        deadline = time.monotonic() + 30
        while len(fake.ledger) < threshold and victim.poll() is None:
            assert time.monotonic() < deadline, "the children never reached the kill point"
            time.sleep(0.001)
        time.sleep(rng.uniform(0.0, LATENCY / 3))
        victim.send_signal(signal.SIGKILL)
        victim.communicate(timeout=30)
        assert victim.returncode == -signal.SIGKILL, "the victim finished before the kill"
        survived = finish(survivor)
        time.sleep(0.1)  # the victim's requests in flight land in the ledger (or not)
        assert sorted(survived) == sorted(everyone)
        assert duplicates(ledger_counts(fake).values()) == 0

        # A rerun sends what nobody sent; the victim's in-flight rows are in doubt.
        finish(child(server.url, journal, backend, start, "asyncio"))
        assert duplicates(ledger_counts(fake).values()) == 0
        anyio.run(reconcile_journal, journal, backend, server.url, fake)
        third = finish(child(server.url, journal, backend, start, "asyncio"))
        final = ledger_counts(fake)

    assert set(third.values()) <= {"sent", "skipped"}
    assert sorted(final) == sorted(everyone)
    assert set(final.values()) == {1}
