"""Bulk runs against the loopback fake under the fault mix of RELIABILITY.md.

Faults (drawn per request from a seeded generator in the fake): 10 % HTTP 500 before
processing, 5 % connections dropped after the send was processed, 5 % answers held back
longer than the client's read timeout, plus opted-out numbers. For each backend and seed:

1. a first run (journal on an SQLite file): every recipient gets exactly one outcome, the
   four counts add up, and each outcome tells the truth against the fake's own ledger
   (``sent`` ones are in it; ``failed`` ones, which a rerun would send again, are not);
2. a rerun with the same journal, faults still on: nothing the ledger holds is sent again;
3. reconciliation of the in-doubt rows (delivery call, ids found in the ledger as a user
   finds them in the panel's outbox), then a last run without faults: every recipient is
   in the ledger exactly once, except opted-out ones a Negin line cannot reach.
"""

from __future__ import annotations

import collections
from pathlib import Path

import anyio
import pytest

import smsgate
from smsgate.dispatch import (
    BulkDispatcher,
    JournalEntry,
    Outcome,
    SqliteJournal,
    reconcile,
    record_reconciled,
)
from smsgate.testing import FakeProvider, Faults, serve_loopback

from ._support import (
    CountingApp,
    duplicates,
    e164,
    gateway,
    ledger_counts,
    ledger_lookup,
    numbers,
    record_figures,
)

pytestmark = [pytest.mark.anyio, pytest.mark.loopback, pytest.mark.slow]

READ_TIMEOUT = 0.25
HANG_SECONDS = 0.6
FAULTS = {"error_rate": 0.10, "drop_rate": 0.05, "hang_rate": 0.05}
SIZES = {"ippanel": 600, "negin": 160}  # ippanel batches 10 numbers per request
SEEDS = [101, 202, 303]
JOB = "fault-run"


async def run(
    backend: str,
    url: str,
    rows: list[smsgate.Message],
    journal: Path,
    *,
    read_timeout: float = READ_TIMEOUT,
) -> list[Outcome]:
    """One run of the job; every outcome, in the order they finished."""
    async with gateway(backend, url, read_timeout=read_timeout) as gw:
        dispatcher = BulkDispatcher(gw, concurrency=16, max_batch=10, journal=journal)
        return [o async for o in dispatcher.stream(rows, job_id=JOB)]


def by_recipient(outcomes: list[Outcome]) -> dict[str, Outcome]:
    found: dict[str, Outcome] = {}
    for outcome in outcomes:
        assert outcome.recipient is not None
        assert outcome.recipient not in found, f"two outcomes for {outcome.recipient}"
        found[outcome.recipient] = outcome
    return found


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("backend", ["ippanel", "negin"])
async def test_faults_every_recipient_accounted_no_double_send(
    backend: str, seed: int, tmp_path: Path, anyio_backend: str
) -> None:
    """Under 500s, drops and hangs: all accounted for, truthful, never sent twice, finally all."""
    size = SIZES[backend]
    locals_ = numbers(size, start=seed * 10_000)
    everyone = [e164(n) for n in locals_]
    opted_out = set(everyone[::17])
    fake = FakeProvider(
        faults=Faults(**FAULTS, hang_seconds=HANG_SECONDS), seed=seed, opted_out=opted_out
    )
    counting = CountingApp(fake, hang_after=HANG_SECONDS * 0.9)
    rows = [smsgate.Message(to=n, text=f"campaign {seed}") for n in locals_]
    journal = tmp_path / "bulk.sqlite"

    with serve_loopback(counting, log_level="critical") as server:
        # -- 1: the first run, faults on ------------------------------------------------
        first = by_recipient(await run(backend, server.url, rows, journal))
        assert set(first) == set(everyone)
        statuses = collections.Counter(o.status for o in first.values())
        assert sum(statuses.values()) == size
        ledger = ledger_counts(fake)
        assert duplicates(ledger.values()) == 0
        for recipient, outcome in first.items():
            if outcome.status == "sent":
                assert ledger[recipient] == 1, f"{recipient} reported sent, not in the ledger"
            elif outcome.status == "failed":
                # A rerun sends "failed" rows again: the fake must not have them.
                assert ledger[recipient] == 0, f"{recipient} failed but the fake sent it"
        assert statuses["unknown"] > 0  # the faults did bite (else this test proves little)
        injected = dict(counting.counts)
        assert injected.get("error", 0) > 0
        assert injected.get("drop", 0) + injected.get("hang", 0) > 0

        # -- 2: a rerun with the same journal, faults still on ------------------------------
        before = ledger_counts(fake)
        second = by_recipient(await run(backend, server.url, rows, journal))
        assert set(second) == set(everyone)
        after = ledger_counts(fake)
        assert duplicates(after.values()) == 0
        for recipient in before:
            assert after[recipient] == 1, f"{recipient} was sent again by the rerun"
        for recipient, outcome in first.items():
            if outcome.status == "sent":
                assert second[recipient].status == "skipped"
            if outcome.status == "unknown":
                assert second[recipient].status == "unknown"  # in doubt: never resent

        # -- 3: reconcile what is in doubt, then finish without faults ---------------------
        # The faults are still on: status queries fail too, so ask again (bounded) for
        # what is still unknown, as a user would.
        verdicts: collections.Counter[str] = collections.Counter()
        passes = 0
        async with SqliteJournal(journal) as jr, gateway(backend, server.url) as gw:
            doubtful = await jr.entries(JOB)
            while doubtful and passes < 10:
                passes += 1
                results = await reconcile(doubtful, gw, lookup=ledger_lookup(fake))
                await record_reconciled(jr, JOB, results)
                verdicts.update(r.verdict for r in results if r.settled)
                doubtful = [
                    r.source
                    for r in results
                    if not r.settled and isinstance(r.source, JournalEntry)
                ]
        assert doubtful == []
        fake.core.faults = Faults()
        # No faults now, and a patient client: a loaded machine must not fake a timeout.
        third = by_recipient(await run(backend, server.url, rows, journal, read_timeout=10.0))
        final = ledger_counts(fake)

    assert set(third) == set(everyone)
    assert duplicates(final.values()) == 0
    unreachable = opted_out if backend == "negin" else set()
    for recipient in everyone:
        expected = 0 if recipient in unreachable else 1
        assert final[recipient] == expected, f"{recipient}: {final[recipient]} sends"
    assert collections.Counter(o.status for o in third.values())["unknown"] == 0
    record_figures(
        "fault_injection",
        {
            "backend": backend,
            "anyio_backend": anyio_backend,
            "seed": seed,
            "recipients": size,
            "opted_out": len(opted_out),
            "requests": injected.get("requests", 0),
            "faults_injected": {k: v for k, v in injected.items() if k != "requests"},
            "first_run": dict(statuses),
            "reconciled": dict(verdicts),
            "reconcile_passes": passes,
            "ledger_total": sum(final.values()),
            "duplicates": duplicates(final.values()),
        },
    )


async def test_hang_longer_than_the_read_timeout_is_unknown_not_resent(
    tmp_path: Path, anyio_backend: str
) -> None:
    """Every answer held back: every recipient unknown, each in the ledger once, no retry."""
    fake = FakeProvider(faults=Faults(hang_rate=1.0, hang_seconds=HANG_SECONDS))
    rows = [smsgate.Message(to=n, text="hang") for n in numbers(6)]
    with serve_loopback(fake, log_level="critical") as server:
        with anyio.fail_after(30):
            outcomes = await run("negin", server.url, rows, tmp_path / "j.sqlite")
    assert [o.status for o in outcomes] == ["unknown"] * 6
    assert all(isinstance(o.error, smsgate.OutcomeUnknownError) for o in outcomes)
    assert sorted(ledger_counts(fake).values()) == [1] * 6
