"""smsgate journal: a journal's jobs, read only."""

from __future__ import annotations

from pathlib import Path

import pytest

from smsgate.testing import FakeProvider, LoopbackServer

from ._helpers import NUMBERS, env_for, invoke, write_csv

pytestmark = pytest.mark.loopback


def test_journal_reports_a_job(served: tuple[FakeProvider, LoopbackServer], tmp_path: Path) -> None:
    """`smsgate journal FILE` counts a finished job's rows, with no credentials needed."""
    _fake, server = served
    csv_file = write_csv(tmp_path / "job.csv", [f"{n},hi {n}" for n in NUMBERS])
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
