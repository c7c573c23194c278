"""smsgate bulk against the fake provider on loopback (what was sent is read from its ledger)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from smsgate.cli import EXIT_PARTIAL
from smsgate.cli._bulk import parse_duration
from smsgate.testing import FakeProvider, LoopbackServer

from ._helpers import NUMBERS, assert_no_secret, env_for, invoke, write_csv

pytestmark = pytest.mark.loopback


def test_bulk_csv_sends_each_row_and_reports(
    served: tuple[FakeProvider, LoopbackServer], tmp_path: Path
) -> None:
    """A CSV with a header: valid rows are sent once, a bad number fails alone (exit 3)."""
    fake, server = served
    rows = ["number,text,sender", *(f"{n},hello {i},+983000505" for i, n in enumerate(NUMBERS))]
    rows += ["not-a-number,hello,+983000505", f"{NUMBERS[0]},hello 0,+983000505"]
    failures = tmp_path / "failures.csv"
    result = invoke(
        [
            "bulk",
            str(write_csv(tmp_path / "job.csv", rows)),
            "--progress",
            "--failures",
            str(failures),
        ],
        env_for(server),
    )
    assert result.exit_code == EXIT_PARTIAL, result.output
    assert sorted(e.recipient for e in fake.ledger) == sorted("+98" + n[1:] for n in NUMBERS)
    assert "sending" in result.stderr  # the progress bar, drawn from the dispatcher's hook
    assert "6/6" in result.stderr
    assert "InvalidRecipientError" in result.stdout
    assert "not-a-number" in failures.read_text()
    assert_no_secret(result)


def test_bulk_one_text_is_batched(
    served: tuple[FakeProvider, LoopbackServer], tmp_path: Path
) -> None:
    """--text sends one text to every number in ceil(n / max_batch) requests (server count)."""
    fake, server = served
    numbers = [f"0912{i:07d}" for i in range(250)]
    before = fake.core.requests
    result = invoke(
        [
            "bulk",
            str(write_csv(tmp_path / "numbers.csv", numbers)),
            "--text",
            "same for all",
            "--max-batch",
            "100",
        ],
        env_for(server),
    )
    assert result.exit_code == 0, result.output
    assert len(fake.ledger) == 250
    # One credit query (the cost printed before sending), then full batches.
    assert fake.core.requests - before == 1 + math.ceil(250 / 100)


def test_bulk_journal_resumes_without_resending(
    served: tuple[FakeProvider, LoopbackServer], tmp_path: Path
) -> None:
    """Running the same file with the same journal again sends nothing twice."""
    fake, server = served
    csv_file = write_csv(tmp_path / "job.csv", [f"{n},hi {n}" for n in NUMBERS])
    journal = tmp_path / "job.sqlite"
    first = invoke(["bulk", str(csv_file), "--journal", str(journal)], env_for(server))
    assert first.exit_code == 0, first.output
    second = invoke(["bulk", str(csv_file), "--journal", str(journal)], env_for(server))
    assert second.exit_code == 0, second.output
    assert len(fake.ledger) == len(NUMBERS)
    assert [fake.core.sent_to(n) for n in NUMBERS] == [1] * len(NUMBERS)


def test_bulk_dry_run_sends_nothing(
    served: tuple[FakeProvider, LoopbackServer], tmp_path: Path
) -> None:
    """--dry-run counts requests, parts and cost, and the ledger stays empty."""
    fake, server = served
    csv_file = write_csv(tmp_path / "job.csv", [f"{n},hi" for n in NUMBERS])
    result = invoke(
        ["bulk", str(csv_file), "--dry-run", "--price-per-part", "250"], env_for(server)
    )
    assert result.exit_code == 0, result.output
    assert fake.ledger == []
    assert "dry run" in result.stdout
    assert "1,000 Rial" in result.stdout  # 4 recipients x 1 part x 250


def test_bulk_resume_with_default_sender_spelled_out(
    served: tuple[FakeProvider, LoopbackServer], tmp_path: Path
) -> None:
    """A rerun that names the default line with --sender (any spelling) still resumes."""
    fake, server = served
    csv_file = write_csv(tmp_path / "job.csv", [f"{n},hi {n}" for n in NUMBERS])
    journal = tmp_path / "job.sqlite"
    first = invoke(["bulk", str(csv_file), "--journal", str(journal)], env_for(server))
    assert first.exit_code == 0, first.output
    for spelling in ("+983000505", "983000505"):
        again = invoke(
            ["bulk", str(csv_file), "--journal", str(journal), "--sender", spelling],
            env_for(server),
        )
        assert again.exit_code == 0, again.output
    assert [fake.core.sent_to(n) for n in NUMBERS] == [1] * len(NUMBERS)


def test_bulk_edited_file_sends_only_the_edited_row(
    served: tuple[FakeProvider, LoopbackServer], tmp_path: Path
) -> None:
    """Fix one number and rerun: one request, to the new number; --dry-run said so first."""
    fake, server = served
    journal = tmp_path / "job.sqlite"
    rows = [f"{n},hi {n}" for n in NUMBERS]
    csv_file = write_csv(tmp_path / "customers.csv", rows)
    args = ["bulk", str(csv_file), "--journal", str(journal), "--max-batch", "1"]
    assert invoke(args, env_for(server)).exit_code == 0
    rows[2] = "09125555555,hi 09125555555"  # the edit
    write_csv(csv_file, rows)
    dry = invoke([*args, "--dry-run"], env_for(server))
    assert dry.exit_code == 0, dry.output
    assert "already done (journal)" in dry.stdout
    assert _table_value(dry.stdout, "already done (journal)") == "3"
    assert _table_value(dry.stdout, "recipients to send") == "1"
    before = fake.core.requests
    again = invoke(args, env_for(server))
    assert again.exit_code == 0, again.output
    assert fake.core.requests - before == 2  # the credit query, then one send
    assert len(fake.ledger) == len(NUMBERS) + 1
    assert [fake.core.sent_to(n) for n in NUMBERS] == [1] * len(NUMBERS)
    assert fake.core.sent_to("09125555555") == 1


def _table_value(output: str, name: str) -> str:
    for line in output.splitlines():
        cells = [cell.strip() for cell in line.split("│")[1:-1]]
        if cells and cells[0] == name:
            return cells[1]
    raise AssertionError(f"{name!r} not in {output}")


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (["phone,msg", "09121111111,hi"], "no text column"),
        (["text,phonenumber", "hi,09121111111"], "no number"),
    ],
)
def test_bulk_header_without_needed_column_is_a_usage_error(
    served: tuple[FakeProvider, LoopbackServer], tmp_path: Path, lines: list[str], message: str
) -> None:
    """A header that names no text (or number) column stops before anything is sent."""
    fake, server = served
    csv_file = write_csv(tmp_path / "job.csv", lines)
    result = invoke(["bulk", str(csv_file)], env_for(server))
    assert result.exit_code == 2
    assert message in result.output
    assert fake.ledger == []


def test_bulk_first_row_that_is_a_number_is_data(
    served: tuple[FakeProvider, LoopbackServer], tmp_path: Path
) -> None:
    """A first row whose first cell is a phone number is data, even if a cell says 'body'."""
    fake, server = served
    csv_file = write_csv(tmp_path / "job.csv", ["09121111111,body", "09122222222,text"])
    result = invoke(["bulk", str(csv_file)], env_for(server))
    assert result.exit_code == 0, result.output
    assert sorted(fake.core.recipients()) == ["+989121111111", "+989122222222"]


def test_bulk_says_the_cost_before_the_first_request(
    served: tuple[FakeProvider, LoopbackServer], tmp_path: Path
) -> None:
    """Rows to send, SMS parts, requests and the credit, on stderr before anything is sent."""
    fake, server = served
    csv_file = write_csv(tmp_path / "job.csv", [f"{n},{'سلام ' * 20}" for n in NUMBERS])
    result = invoke(["bulk", str(csv_file), "--price-per-part", "250"], env_for(server))
    assert result.exit_code == 0, result.output
    line = next(x for x in result.stderr.splitlines() if x.startswith("job 'job.csv'"))
    assert "4 rows, 4 to send" in line
    assert "8 SMS parts" in line  # 100 Persian characters: 2 parts each
    assert "cost 2,000 Rial" in line
    assert f"credit {fake.core.credit + 8 * fake.core.price_per_part:,}" in line


def test_bulk_refuses_to_start_when_the_credit_is_short(
    served: tuple[FakeProvider, LoopbackServer], tmp_path: Path
) -> None:
    """With --price-per-part and too little credit: exit 1, nothing sent."""
    fake, server = served
    fake.core.credit = fake.core.credit * 0 + 500
    csv_file = write_csv(tmp_path / "job.csv", [f"{n},hi" for n in NUMBERS])
    result = invoke(["bulk", str(csv_file), "--price-per-part", "250"], env_for(server))
    assert result.exit_code == 1, result.output
    assert "InsufficientCreditError" in result.stderr
    assert "nothing was sent" in result.stderr
    assert fake.ledger == []


def test_bulk_json_report(served: tuple[FakeProvider, LoopbackServer], tmp_path: Path) -> None:
    """--json prints one document: counts, errors, the estimate, the failed rows."""
    fake, server = served
    csv_file = write_csv(tmp_path / "job.csv", [*(f"{n},hi" for n in NUMBERS), "nope,hi"])
    result = invoke(["bulk", str(csv_file), "--json"], env_for(server))
    assert result.exit_code == EXIT_PARTIAL, result.output
    report = json.loads(result.stdout)
    assert (report["job_id"], report["rows"], report["sent"], report["failed"]) == (
        "job.csv",
        5,
        4,
        1,
    )
    assert report["errors"] == {"InvalidRecipientError": 1}
    assert report["stopped"] is None and report["resume"] is None
    assert report["estimate"]["parts"] == 4
    (failure,) = report["failures"]
    assert (failure["number"], failure["status"]) == ("nope", "failed")
    dry = json.loads(invoke(["bulk", str(csv_file), "--json", "--dry-run"], env_for(server)).stdout)
    assert (dry["rows"], dry["recipients"], dry["invalid"]) == (5, len(NUMBERS), 1)
    assert len(fake.ledger) == len(NUMBERS)  # the dry run sent nothing


def test_bulk_second_job_skips_recent_recipients_unless_allowed(
    served: tuple[FakeProvider, LoopbackServer], tmp_path: Path
) -> None:
    """Same rows in another job of the same journal within the window: skipped by default,
    with a count; --allow-repeat sends them."""
    fake, server = served
    journal = tmp_path / "j.sqlite"
    rows = [f"{n},hi {n}" for n in NUMBERS]
    first = write_csv(tmp_path / "monday.csv", rows)
    second = write_csv(tmp_path / "tuesday.csv", rows)
    assert invoke(["bulk", str(first), "--journal", str(journal)], env_for(server)).exit_code == 0
    again = invoke(["bulk", str(second), "--journal", str(journal), "--json"], env_for(server))
    assert again.exit_code == 0, again.output
    report = json.loads(again.stdout)
    assert report["sent"] == 0
    assert report["sent_recently"] == len(NUMBERS)
    assert "4 recipient(s) skipped" in again.stderr
    assert "in the last 24h" in again.stderr and "--allow-repeat" in again.stderr
    assert len(fake.ledger) == len(NUMBERS)
    allowed = invoke(
        ["bulk", str(second), "--journal", str(journal), "--allow-repeat"], env_for(server)
    )
    assert allowed.exit_code == 0, allowed.output
    assert [fake.core.sent_to(n) for n in NUMBERS] == [2] * len(NUMBERS)


@pytest.mark.parametrize(
    ("text", "seconds"), [("90", 90), ("90s", 90), ("30m", 1800), ("24h", 86400), ("7d", 604800)]
)
def test_recent_window_durations(text: str, seconds: float) -> None:
    """--recent-window takes seconds or a unit."""
    assert parse_duration(text) == seconds


def test_recent_window_rejects_nonsense(
    served: tuple[FakeProvider, LoopbackServer], tmp_path: Path
) -> None:
    """A bad duration is a usage error (exit 2)."""
    _fake, server = served
    csv_file = write_csv(tmp_path / "job.csv", ["09121111111,hi"])
    result = invoke(["bulk", str(csv_file), "--recent-window", "soon"], env_for(server))
    assert result.exit_code == 2
    assert "not a duration" in result.output


def test_send_window_option() -> None:
    """--send-window: auto, off, or HH:MM-HH:MM in Tehran time; anything else is refused."""
    import click

    from smsgate import SendWindow
    from smsgate.cli._bulk import _send_window

    assert _send_window("auto") == "auto"
    assert _send_window("off") is None
    assert _send_window("09:00-21:30") == SendWindow("09:00", "21:30", tz="Asia/Tehran")
    for bad in ("evening", "25:00-26:00"):
        with pytest.raises(click.BadParameter):
            _send_window(bad)
