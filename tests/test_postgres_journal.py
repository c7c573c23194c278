"""PostgresJournal against the real PostgreSQL (127.0.0.1:5432, db ``test``): the journal contract,
claims from many tasks and processes, schema refusal, errors without the password.

Every test works in its own PostgreSQL schema, dropped afterwards.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anyio
import asyncpg
import pytest
import pytest_asyncio

import smsgate
from smsgate.dispatch import Journal, JournalEntry
from smsgate.postgres import SCHEMA_VERSION, PostgresJournal, redact_dsn
from smsgate.testing import FakeGateway

from ._journal_contract import (
    check_claim_aliases,
    check_claim_semantics,
    check_delivery_and_recent,
    check_fields_round_trip,
    check_reconcile,
    check_summary,
    entry,
    race_claimers,
)
from ._services import postgres_dsn


@pytest.fixture
def schema() -> Iterator[str]:
    """A fresh schema name; the schema (if created) is dropped after the test."""
    dsn = postgres_dsn()
    name = f"t_{uuid.uuid4().hex[:12]}"
    yield name

    async def drop() -> None:
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
        finally:
            await conn.close()

    anyio.run(drop)


@pytest_asyncio.fixture
async def journal(schema: str) -> AsyncIterator[PostgresJournal]:
    async with PostgresJournal(postgres_dsn(), schema=schema) as j:
        yield j


# -- the contract ------------------------------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "check",
    [
        check_claim_semantics,
        check_claim_aliases,
        check_delivery_and_recent,
        check_fields_round_trip,
        check_reconcile,
        check_summary,
    ],
)
async def test_contract(journal: PostgresJournal, check: Any) -> None:
    """PostgresJournal keeps every rule of the shared journal contract."""
    assert isinstance(journal, Journal)
    await check(journal)


@pytest.mark.asyncio
async def test_round_trip_order_jobs_and_reopen(schema: str) -> None:
    """Upserts keep first-written order; a second journal object reads the same rows."""
    dsn = postgres_dsn()
    async with PostgresJournal(dsn, schema=schema) as journal:
        await journal.open("b")
        await journal.record("a", [entry(3), entry(1), entry(2)])
        await journal.record("a", [entry(1, "sent", message_id="9")])
        rows = await journal.entries("a")
        assert [r.recipient[-1] for r in rows] == ["3", "1", "2"]
        assert rows[1].status == "sent"
        assert await journal.jobs() == ["a", "b"]
        with pytest.raises(TypeError, match="JournalEntry"):
            await journal.record("a", [{"key": "x"}])  # type: ignore[list-item]
        with pytest.raises(ValueError, match="empty"):
            await journal.claim("", [entry(1)])
    assert "closed" in repr(journal)
    with pytest.raises(RuntimeError, match="closed"):
        await journal.entries("a")
    async with PostgresJournal(dsn, schema=schema) as again:
        assert [r.status for r in await again.entries("a")] == ["pending", "sent", "pending"]


@pytest.mark.asyncio
async def test_a_pool_given_is_used_and_left_open(schema: str) -> None:
    """With a pool, the journal borrows connections and never closes the pool."""
    pool = await asyncpg.create_pool(postgres_dsn(), min_size=1, max_size=2)
    try:
        journal = PostgresJournal(pool, schema=schema)
        assert await journal.claim("job", [entry(1)]) == {entry(1).key}
        await journal.aclose()
        assert not pool._closed
        assert await pool.fetchval("SELECT 1") == 1
        assert "pool given" in repr(journal)
    finally:
        await pool.close()


@pytest.mark.asyncio
async def test_a_pool_without_durable_commits_is_refused(schema: str) -> None:
    """A pool whose connections run synchronous_commit=off is refused before any write."""
    pool = await asyncpg.create_pool(
        postgres_dsn(), min_size=1, max_size=1, server_settings={"synchronous_commit": "off"}
    )
    try:
        journal = PostgresJournal(pool, schema=schema)
        with pytest.raises(smsgate.ConfigurationError, match="synchronous_commit=off"):
            await journal.open("job")
        exists = await pool.fetchval("SELECT to_regnamespace($1)::text", schema)
        assert exists is None  # nothing created
    finally:
        await pool.close()


@pytest.mark.asyncio
async def test_own_pool_commits_durably(journal: PostgresJournal) -> None:
    """The journal's own connections run with synchronous_commit=on."""
    await journal.open("job")
    assert await journal._run("fetchval", "SELECT current_setting('synchronous_commit')") == "on"


@pytest.mark.asyncio
async def test_a_dispatcher_resumes_from_postgres(journal: PostgresJournal) -> None:
    """BulkDispatcher on PostgresJournal: a rerun skips what was sent, resends only refusals."""
    gw = FakeGateway()
    gw.script("09120000002", smsgate.RecipientOptedOutError(provider="fake"))
    messages = [smsgate.Message(to=f"0912{i:07d}", text="hello") for i in range(5)]
    first = await smsgate.BulkDispatcher(gw, journal=journal).run(messages, job_id="c")
    assert (first.sent, first.failed) == (4, 1)
    again = await smsgate.BulkDispatcher(gw, journal=journal).run(messages, job_id="c")
    assert (again.skipped, again.sent) == (4, 1)  # the refusal was sent again, now accepted
    assert sorted(gw.accepted_recipients()) == [f"+98912{i:07d}" for i in range(5)]  # once each
    summary = (await journal.summary("c"))["c"]
    assert (summary.total, summary.sent, summary.failed) == (5, 5, 0)


# -- claims under concurrency --------------------------------------------------------------


@pytest.mark.asyncio
async def test_many_tasks_over_separate_connections_win_disjoint_sets(schema: str) -> None:
    """12 tasks on 3 journal objects (3 pools) claim overlapping keys: disjoint winners, all won."""
    dsn = postgres_dsn()
    journals = [PostgresJournal(dsn, schema=schema, pool_size=4) for _ in range(3)]
    keys = [f"k{n:04d}" for n in range(300)]
    won: list[set[str]] = []
    start = anyio.Event()

    async def claimer(t: int) -> None:
        journal = journals[t % 3]
        mine = keys[t * 20 : t * 20 + 120] if t < 12 else keys
        order = mine[::-1] if t % 2 else mine
        got: set[str] = set()
        await start.wait()
        for i in range(0, len(order), 9):
            rows = [
                JournalEntry(key=k, recipient="+989120000001", status="pending")
                for k in order[i : i + 9]
            ]
            got |= await journal.claim("job", rows)
        won.append(got)

    try:
        await journals[0].open("job")  # the tables exist before the race starts
        async with anyio.create_task_group() as tg:
            for t in range(13):
                tg.start_soon(claimer, t)
            start.set()
    finally:
        for journal in journals:
            await journal.aclose()
    union: set[str] = set()
    for got in won:
        assert union.isdisjoint(got)
        union |= got
    assert union == set(keys)


_CLAIMER = textwrap.dedent(
    """
    import asyncio, json, sys
    from smsgate.dispatch import JournalEntry
    from smsgate.postgres import PostgresJournal

    async def main() -> None:
        dsn, schema, first, count = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
        keys = [f"k{n:05d}" for n in range(first, first + count)]
        if first % 100:
            keys.reverse()
        journal = PostgresJournal(dsn, schema=schema)
        print("ready", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        won = []
        for i in range(0, len(keys), 11):
            rows = [
                JournalEntry(key=k, recipient="+989120000001", status="pending")
                for k in keys[i : i + 11]
            ]
            won.extend(await journal.claim("job", rows))
        await journal.aclose()
        print(json.dumps(won), flush=True)

    asyncio.run(main())
    """
)


def test_processes_claiming_one_job_win_disjoint_sets(schema: str) -> None:
    """3 processes, released together on a fresh schema, claim overlapping ranges of one job.

    They even race to create the tables. Winners are disjoint and cover every key.
    """
    dsn = postgres_dsn()
    race_claimers(
        [[sys.executable, "-c", _CLAIMER, dsn, schema, str(i * 50), "200"] for i in range(3)],
        keys=300,
    )


_KILLED = textwrap.dedent(
    """
    import asyncio, os, signal, sys
    from smsgate.dispatch import JournalEntry
    from smsgate.postgres import PostgresJournal

    async def main() -> None:
        journal = PostgresJournal(sys.argv[1], schema=sys.argv[2])
        rows = [
            JournalEntry(key=f"k{n}", recipient="+989120000001", status="pending")
            for n in range(300)
        ]
        won = await journal.claim("job", rows)
        assert len(won) == 300
        # claim() returned: the rows must survive the process dying without warning.
        os.kill(os.getpid(), signal.SIGKILL)

    asyncio.run(main())
    """
)


@pytest.mark.asyncio
async def test_claimed_rows_survive_sigkill(schema: str) -> None:
    """Rows whose claim() returned are committed even if the process is SIGKILLed next."""
    dsn = postgres_dsn()
    child = await anyio.run_process([sys.executable, "-c", _KILLED, dsn, schema], check=False)
    assert child.returncode == -9, child.stderr.decode()
    async with PostgresJournal(dsn, schema=schema) as journal:
        rows = await journal.entries("job")
        assert len(rows) == 300 and {r.status for r in rows} == {"pending"}
        assert await journal.claim("job", [entry(1), *rows[:5]]) == {entry(1).key}


# -- the schema: created, versioned, and refused when not ours --------------------------------


async def _sql(statement: str, *args: Any) -> Any:
    conn = await asyncpg.connect(postgres_dsn())
    try:
        return await conn.fetch(statement, *args)
    finally:
        await conn.close()


@pytest.mark.asyncio
async def test_schema_is_versioned_in_the_meta_table(journal: PostgresJournal, schema: str) -> None:
    """The meta table names the application and the version; the tables carry the prefix."""
    await journal.open("job")
    rows = await _sql(f'SELECT name, value FROM "{schema}".smsgate_journal_meta ORDER BY name')  # noqa: S608
    assert [tuple(r) for r in rows] == [
        ("application", "smsgate-journal"),
        ("schema_version", str(SCHEMA_VERSION)),
    ]
    tables = await _sql(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = $1 ORDER BY 1",
        schema,
    )
    assert [r[0] for r in tables] == [
        "smsgate_journal_entries",
        "smsgate_journal_jobs",
        "smsgate_journal_meta",
    ]


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("CREATE TABLE {s}.smsgate_journal_entries (id int)", "did not create"),
        ("CREATE TABLE {s}.smsgate_journal_meta (id int, body text)", "another application"),
        (
            "CREATE TABLE {s}.smsgate_journal_meta (name text, value text);"
            "INSERT INTO {s}.smsgate_journal_meta VALUES ('application', 'billing')",
            "another application",
        ),
    ],
)
async def test_foreign_tables_are_refused_untouched(schema: str, setup: str, message: str) -> None:
    """Tables of another application under the journal's names: refused, nothing changed."""
    await _sql(f'CREATE SCHEMA "{schema}"')
    for statement in setup.format(s=f'"{schema}"').split(";"):
        await _sql(statement)
    before = await _sql(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = $1 ORDER BY 1",
        schema,
    )
    async with PostgresJournal(postgres_dsn(), schema=schema) as journal:
        with pytest.raises(smsgate.ConfigurationError, match=message):
            await journal.claim("job", [entry(1)])
    after = await _sql(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = $1 ORDER BY 1",
        schema,
    )
    assert after == before


@pytest.mark.asyncio
async def test_newer_schema_is_refused(schema: str) -> None:
    """A journal written by a newer smsgate is refused, its rows untouched."""
    async with PostgresJournal(postgres_dsn(), schema=schema) as journal:
        await journal.record("job", [entry(1)])
    await _sql(
        f"UPDATE \"{schema}\".smsgate_journal_meta SET value = $1 WHERE name = 'schema_version'",  # noqa: S608
        str(SCHEMA_VERSION + 1),
    )
    async with PostgresJournal(postgres_dsn(), schema=schema) as journal:
        with pytest.raises(smsgate.ConfigurationError, match="newer smsgate"):
            await journal.entries("job")
    rows = await _sql(f'SELECT status FROM "{schema}".smsgate_journal_entries')  # noqa: S608
    assert [r[0] for r in rows] == ["pending"]


@pytest.mark.asyncio
async def test_two_prefixes_in_one_schema_are_two_journals(schema: str) -> None:
    """prefix= keeps two journals apart in one schema."""
    dsn = postgres_dsn()
    async with (
        PostgresJournal(dsn, schema=schema, prefix="one") as one,
        PostgresJournal(dsn, schema=schema, prefix="two") as two,
    ):
        assert await one.claim("job", [entry(1)]) == {entry(1).key}
        assert await two.claim("job", [entry(1)]) == {entry(1).key}


def test_bad_names_and_settings_are_refused() -> None:
    """Schema and prefix must be plain SQL names; pool_size and timeout positive."""
    for bad in ("Public", "a-b", 'x"; DROP TABLE y; --', ""):
        with pytest.raises(smsgate.ConfigurationError):
            PostgresJournal("postgresql://h/db", schema=bad)
        with pytest.raises(smsgate.ConfigurationError):
            PostgresJournal("postgresql://h/db", prefix=bad)
    with pytest.raises(smsgate.ConfigurationError, match="pool_size"):
        PostgresJournal("postgresql://h/db", pool_size=0)
    with pytest.raises(smsgate.ConfigurationError, match="timeout"):
        PostgresJournal("postgresql://h/db", timeout=float("nan"))


# -- errors ---------------------------------------------------------------------------------

SECRET = "s3cr3t-Pa55"


def test_redact_dsn() -> None:
    """Every spelling of a password leaves the DSN."""
    assert (
        redact_dsn(f"postgresql://app:{SECRET}@db:5432/sms") == "postgresql://app:***@db:5432/sms"
    )
    assert redact_dsn("postgresql://app@db/sms") == "postgresql://app@db/sms"
    assert SECRET not in redact_dsn(f"postgresql://app@db/sms?password={SECRET}&sslmode=require")
    assert "sslmode=require" in redact_dsn(f"postgresql://db/sms?password={SECRET}&sslmode=require")
    assert SECRET not in redact_dsn(f"host=db user=app password={SECRET} dbname=sms")
    assert SECRET not in redact_dsn(f"host=db password='{SECRET} x' dbname=sms")
    assert redact_dsn(f"postgresql://u:{SECRET}@[::1/db") == "postgresql://***"


@pytest.mark.asyncio
async def test_unreadable_dsn_is_a_configuration_error_without_the_password() -> None:
    """A DSN asyncpg cannot parse: ConfigurationError, no password, no chained parser text."""
    for dsn in (
        f"postgresql://u:{SECRET}@127.0.0.1:notaport/db",
        f"postgresql://u:{SECRET}@[::1/db",
    ):
        journal = PostgresJournal(dsn)
        with pytest.raises(smsgate.ConfigurationError, match="cannot be read") as caught:
            await journal.open("job")
        assert SECRET not in str(caught.value) and caught.value.__cause__ is None
        await journal.aclose()


@pytest.mark.asyncio
async def test_unreachable_server_is_a_journal_error_without_the_password() -> None:
    """A server that does not answer: JournalError naming the DSN, never its password."""
    dsn = f"postgresql://app:{SECRET}@127.0.0.1:1/sms"
    journal = PostgresJournal(dsn, timeout=5)
    assert SECRET not in repr(journal)
    with pytest.raises(smsgate.JournalError) as caught:
        await journal.claim("job", [entry(1)])
    error = caught.value
    assert "postgresql://app:***@127.0.0.1:1/sms" in str(error)
    assert error.path == "postgresql://app:***@127.0.0.1:1/sms"
    assert "check that the server runs" in str(error)
    assert error.__cause__ is not None
    texts = [str(error), repr(error), repr(journal), str(error.__cause__), repr(error.__cause__)]
    assert not any(SECRET in text for text in texts)
    await journal.aclose()


@pytest.mark.asyncio
async def test_wrong_password_is_a_journal_error_without_the_password(schema: str) -> None:
    """A refused login or a missing database: JournalError, the DSN redacted."""
    dsn = postgres_dsn()
    parts = dsn.split("/")
    missing = "/".join([*parts[:-1], "no_such_db_" + uuid.uuid4().hex[:8]])
    with_secret = missing.replace("://", f"://x:{SECRET}@", 1) if "@" not in missing else missing
    journal = PostgresJournal(with_secret, schema=schema)
    with pytest.raises(smsgate.JournalError) as caught:
        await journal.open("job")
    assert "does not exist" in str(caught.value) or "login" in str(caught.value)
    assert SECRET not in str(caught.value) and SECRET not in repr(journal)
    await journal.aclose()


@pytest.mark.asyncio
async def test_database_errors_are_journal_errors(journal: PostgresJournal, schema: str) -> None:
    """A statement the server refuses (here: the table was taken away) is a JournalError."""
    await journal.open("job")
    await _sql(f'REVOKE ALL ON "{schema}".smsgate_journal_entries FROM PUBLIC')
    await _sql(f'ALTER TABLE "{schema}".smsgate_journal_entries RENAME TO gone')
    with pytest.raises(smsgate.JournalError, match="could not be read or written") as caught:
        await journal.record("job", [entry(1)])
    assert isinstance(caught.value.__cause__, asyncpg.PostgresError)


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["trio"])
async def test_trio_is_refused_plainly() -> None:
    """Under trio every call raises ConfigurationError saying asyncio is needed."""
    journal = PostgresJournal("postgresql://127.0.0.1/test")
    with pytest.raises(smsgate.ConfigurationError, match="needs asyncio"):
        await journal.open("job")
    await journal.aclose()


def test_import_smsgate_does_not_import_asyncpg() -> None:
    """asyncpg is loaded by smsgate.postgres only."""
    code = "import sys, smsgate, smsgate.dispatch; print('asyncpg' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
