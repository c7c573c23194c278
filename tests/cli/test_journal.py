"""smsgate journal: a journal's jobs, read only."""

from __future__ import annotations

import json
import uuid
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


def _doubt_two_rows(path: Path, fake: FakeProvider) -> tuple[str, str]:
    """Turn two sent rows of job 'campaign' into rows in doubt: one with an id, one without."""
    import anyio

    from smsgate.dispatch import JournalEntry, SqliteJournal

    async def rewrite() -> tuple[str, str]:
        async with SqliteJournal(path) as journal:
            rows = sorted(await journal.entries("campaign"), key=lambda e: e.recipient)
            with_id, without = rows[0], rows[1]
            await journal.record(
                "campaign",
                [
                    JournalEntry(
                        key=with_id.key,
                        recipient=with_id.recipient,
                        status="unknown",
                        error="OutcomeUnknownError",
                        detail="read timeout",
                        message_id=with_id.message_id,
                    ),
                    JournalEntry(key=without.key, recipient=without.recipient, status="pending"),
                ],
            )
            return with_id.recipient, without.recipient

    return anyio.run(rewrite)


def test_journal_lists_rows_in_doubt_and_reconcile_settles_them(
    served: tuple[FakeProvider, LoopbackServer], tmp_path: Path
) -> None:
    """journal says which rows are in doubt and why; reconcile asks the fake and records."""
    fake, server = served
    csv_file = write_csv(tmp_path / "job.csv", [f"{n},hi {n}" for n in NUMBERS])
    path = tmp_path / "job.sqlite"
    args = ["bulk", str(csv_file), "--journal", str(path), "--job-id", "campaign"]
    assert invoke(args, env_for(server)).exit_code == 0
    with_id, without = _doubt_two_rows(path, fake)

    listed = invoke(["journal", str(path)], env={})
    assert listed.exit_code == 3
    assert with_id in listed.stdout and without in listed.stdout
    assert "read timeout" in listed.stdout
    assert "in flight" in listed.stdout
    report = json.loads(invoke(["journal", str(path), "--json"], env={}).stdout)
    (job,) = report["jobs"]
    assert job["in_doubt"] == 2
    assert {row["recipient"]: row["status"] for row in job["rows_in_doubt"]} == {
        with_id: "unknown",
        without: "pending",
    }

    before = fake.core.requests
    settled = invoke(["reconcile", str(path)], env_for(server))
    assert settled.exit_code == 3, settled.output  # the row without an id stays in doubt
    assert fake.core.requests - before == 1  # one delivery query, for the known id
    assert "still in doubt" in settled.stdout
    after = json.loads(invoke(["journal", str(path), "--json"], env={}).stdout)
    assert [row["recipient"] for row in after["jobs"][0]["rows_in_doubt"]] == [without]
    assert after["jobs"][0]["sent"] == len(NUMBERS) - 1
    rerun = invoke(args, env_for(server))
    assert rerun.exit_code == 3, rerun.output  # the pending row is reported, never resent
    assert len(fake.ledger) == len(NUMBERS)  # nothing sent twice: confirmed or still in doubt


def test_journal_json_without_doubt_and_whole_ids_in_a_pipe(
    served: tuple[FakeProvider, LoopbackServer], tmp_path: Path
) -> None:
    """A long job id is printed whole when stdout is not a terminal; --json exits 0."""
    _fake, server = served
    csv_file = write_csv(tmp_path / "job.csv", [f"{n},hi {n}" for n in NUMBERS])
    path = tmp_path / "job.sqlite"
    job = "campaign-" + "x" * 120
    args = ["bulk", str(csv_file), "--journal", str(path), "--job-id", job]
    assert invoke(args, env_for(server)).exit_code == 0
    table = invoke(["journal", str(path)], env={})
    assert table.exit_code == 0
    assert job in table.stdout
    report = invoke(["journal", str(path), "--json"], env={})
    assert report.exit_code == 0
    assert json.loads(report.stdout)["jobs"][0]["job_id"] == job


def test_bulk_and_journal_on_postgresql(
    served: tuple[FakeProvider, LoopbackServer], tmp_path: Path
) -> None:
    """--journal and `smsgate journal` take a postgresql:// DSN (a real server)."""
    from tests._services import postgres_dsn

    dsn = postgres_dsn()
    fake, server = served
    job = f"cli-{uuid.uuid4().hex}"
    # The database is shared: a text of its own keeps other runs' jobs from counting as
    # recent sends of the same text (--recent-window).
    csv_file = write_csv(tmp_path / "job.csv", [f"{n},hi {n} {job}" for n in NUMBERS])
    args = ["bulk", str(csv_file), "--journal", dsn, "--job-id", job]
    first = invoke(args, env_for(server))
    assert first.exit_code == 0, first.output
    again = invoke(args, env_for(server))
    assert again.exit_code == 0, again.output
    assert len(fake.ledger) == len(NUMBERS)  # the rerun skipped every row
    report = invoke(["journal", dsn, "--job-id", job, "--json"], env={})
    assert report.exit_code == 0, report.output
    (summary,) = json.loads(report.stdout)["jobs"]
    assert (summary["job_id"], summary["sent"], summary["in_doubt"]) == (job, len(NUMBERS), 0)
