"""Two dispatchers started at once on the same job and the same journal (two connections,
as two processes or machines would have) send each recipient once in total (API.md §9)."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest

import smsgate
from smsgate.testing import FakeGateway
from tests._services import postgres_dsn

ROWS = 600


@asynccontextmanager
async def _sqlite(tmp_path: Path) -> AsyncIterator[Callable[[], Any]]:
    from smsgate.dispatch import SqliteJournal

    opened: list[Any] = []

    def make() -> Any:
        journal = SqliteJournal(tmp_path / "journal.sqlite")
        opened.append(journal)
        return journal

    try:
        yield make
    finally:
        for journal in opened:
            await journal.aclose()


@asynccontextmanager
async def _postgres(tmp_path: Path) -> AsyncIterator[Callable[[], Any]]:
    dsn = postgres_dsn()
    from smsgate import postgres

    opened: list[Any] = []

    def make() -> Any:
        journal = postgres.PostgresJournal(dsn)
        opened.append(journal)
        return journal

    try:
        yield make
    finally:
        for journal in opened:
            await journal.aclose()


@pytest.mark.asyncio
@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
async def test_two_dispatchers_one_job_nobody_twice(kind: str, tmp_path: Path) -> None:
    opener = _sqlite if kind == "sqlite" else _postgres
    gateway = FakeGateway(max_recipients=50, latency=0.001)
    job_id = f"two-{uuid.uuid4().hex[:8]}"
    rows = [
        smsgate.Message(to=f"0912{i:07d}", text="same" if i % 3 else f"own {i}")
        for i in range(ROWS)
    ]
    reports: list[smsgate.BulkReport] = []
    async with opener(tmp_path) as make:
        first, second = make(), make()
        start = anyio.Event()

        async def run(journal: Any) -> None:
            dispatcher = smsgate.BulkDispatcher(gateway, journal=journal, concurrency=8)
            await start.wait()
            reports.append(await dispatcher.run(rows, job_id=job_id))

        async with anyio.create_task_group() as tg:
            tg.start_soon(run, first)
            tg.start_soon(run, second)
            start.set()
    sent = Counter(s.recipient for s in gateway.accepted)
    assert [n for n, c in sent.items() if c > 1] == []
    assert len(sent) == ROWS
    assert sum(r.sent for r in reports) == ROWS
    for report in reports:
        assert report.total == ROWS
        assert report.sent + report.skipped + report.unknown + report.failed == ROWS
