"""``PostgresJournal``: the journal on PostgreSQL (see the package docstring for the why)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

import anyio
import anyio.lowlevel

from ..dispatch._journal import (
    DeliveryUpdate,
    JournalEntry,
    check_job_id,
    definite_refusals,
    stored_delivery,
)
from ..dispatch._summary import JobSummary, build_summaries
from ..exceptions import ConfigurationError, JournalError
from ._schema import IDENTIFIER, Tables, create_or_check, hint, redact_dsn, require_asyncio

if TYPE_CHECKING:
    import asyncpg

__all__ = ["PostgresJournal"]

# Attempts of a statement that PostgreSQL rolled back to break a deadlock.
_RETRIES = 5

_COLUMNS = (
    "key, recipient, status, route, provider, message_id, error, detail, updated, "
    "parts, delivery, delivery_status, delivery_updated"
)
# The rows of a write, passed as one array per column and read back with unnest().
_UNNEST = (
    "unnest($3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], "
    "$9::text[], $10::text[], $11::float8[], $12::int[], $13::text[], $14::text[], "
    "$15::float8[]) AS i(" + _COLUMNS + ")"
)
_SET_ALL = ", ".join(
    f"{column} = EXCLUDED.{column}" for column in _COLUMNS.split(", ") if column != "key"
)


class PostgresJournal:
    """A :class:`~smsgate.dispatch.Journal` in PostgreSQL, safe for many workers at once.

    Args:
        dsn_or_pool: A DSN (``"postgresql://user@host/db"``; the journal opens its own
            small pool on first use and closes it in :meth:`aclose`) or an
            ``asyncpg.Pool`` (used as is and never closed by the journal).
        schema: The PostgreSQL schema of the tables (created if missing); by default the
            connection's ``search_path`` decides (usually ``public``).
        prefix: The start of the three table names.
        pool_size: Connections of the journal's own pool (a DSN only).
        timeout: Seconds for one statement (and for connecting) before it fails with
            :class:`~smsgate.JournalError`.

    Raises:
        ConfigurationError: ``schema`` or ``prefix`` is not a plain lower-case SQL name,
            or ``pool_size`` / ``timeout`` is not positive. A database that holds
            someone else's tables under these names, or a newer journal schema, raises
            it on first use; so does a call made under trio.
        ImportError: asyncpg is not installed (``pip install ".[postgres]"``).
    """

    def __init__(
        self,
        dsn_or_pool: str | asyncpg.Pool,
        *,
        schema: str | None = None,
        prefix: str = "smsgate_journal",
        pool_size: int = 4,
        timeout: float = 30.0,
    ) -> None:
        import asyncpg  # noqa: F401 - fail at construction when the extra is missing

        if schema is not None and not IDENTIFIER.fullmatch(schema):
            raise ConfigurationError(
                f"schema must be a lower-case SQL name (letters, digits, _), not {schema!r}"
            )
        if not IDENTIFIER.fullmatch(prefix):
            raise ConfigurationError(
                f"prefix must be a lower-case SQL name (letters, digits, _), not {prefix!r}"
            )
        if pool_size < 1:
            raise ConfigurationError("pool_size must be at least 1")
        if not timeout > 0:
            raise ConfigurationError("timeout must be a positive number of seconds")
        if isinstance(dsn_or_pool, str):
            self._dsn: str | None = dsn_or_pool
            self._pool: Any = None
            self._owns_pool = True
            self._where = redact_dsn(dsn_or_pool)
        else:
            self._dsn = None
            self._pool = dsn_or_pool
            self._owns_pool = False
            self._where = "the PostgreSQL pool given to PostgresJournal"
        self._schema = schema
        self._prefix = prefix
        self._pool_size = pool_size
        self._timeout = float(timeout)
        self._tables = Tables(schema, prefix, self._where)
        self._jobs = self._tables.jobs
        self._entries = self._tables.entries
        self._ready = False
        self._closed = False
        self._lock = anyio.Lock()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "ready" if self._ready else "unopened"
        return f"<PostgresJournal {self._where!r} tables={self._entries} {state}>"

    @property
    def where(self) -> str:
        """The database, as errors name it: the DSN without its password."""
        return self._where

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # -- the Journal protocol ----------------------------------------------------------------

    async def open(self, job_id: str) -> None:
        """Create the tables if needed and register ``job_id``. Idempotent."""
        job = check_job_id(job_id)
        await self._run(
            "execute",
            f"INSERT INTO {self._jobs} (job_id, created) VALUES ($1, $2) "  # noqa: S608 - validated names
            "ON CONFLICT (job_id) DO NOTHING",
            job,
            time.time(),
        )

    async def get(self, job_id: str, keys: Sequence[str]) -> dict[str, JournalEntry]:
        """The rows known for ``keys`` in ``job_id``; keys without a row are absent."""
        job = check_job_id(job_id)
        wanted = list(dict.fromkeys(keys))
        if not wanted:
            await anyio.lowlevel.checkpoint()
            return {}
        rows = await self._run(
            "fetch",
            f"SELECT {_COLUMNS} FROM {self._entries} WHERE job_id = $1 AND key = ANY($2::text[])",  # noqa: S608 - validated names
            job,
            wanted,
        )
        return {row["key"]: _entry(row) for row in rows}

    async def record(self, job_id: str, entries: Sequence[JournalEntry]) -> None:
        """Upsert ``entries`` by ``(job_id, key)`` in one statement; durable when it returns.

        Raises:
            TypeError: An item is not a :class:`JournalEntry` (nothing is written).
            JournalError: The database refused or could not be reached (nothing written).
        """
        job = check_job_id(job_id)
        latest: dict[str, JournalEntry] = {}
        for entry in entries:
            _check_entry(entry)
            latest[entry.key] = entry  # one statement may not touch a row twice: last wins
        if not latest:
            await anyio.lowlevel.checkpoint()
            return
        await self._run(
            "execute",
            f"WITH job AS (INSERT INTO {self._jobs} (job_id, created) VALUES ($1, $2) "  # noqa: S608 - validated names
            "ON CONFLICT (job_id) DO NOTHING) "
            f"INSERT INTO {self._entries} AS e (job_id, {_COLUMNS}) "
            f"SELECT $1, {_COLUMNS} FROM {_UNNEST} ORDER BY key "
            f"ON CONFLICT (job_id, key) DO UPDATE SET {_SET_ALL}",
            job,
            time.time(),
            *_columns(sorted(latest.values(), key=_by_key)),
        )

    async def claim(self, job_id: str, entries: Sequence[JournalEntry]) -> set[str]:
        """Write ``entries`` where absent or claimable, in one statement; return the keys won.

        See the module docstring for the statement. Durable when it returns.
        """
        job = check_job_id(job_id)
        wanted: dict[str, JournalEntry] = {}
        for entry in entries:
            _check_entry(entry)
            wanted.setdefault(entry.key, entry)
        if not wanted:
            await anyio.lowlevel.checkpoint()
            return set()
        owners = [e.key for e in wanted.values() for _ in e.aliases]
        aliases = [alias for e in wanted.values() for alias in e.aliases]
        claimable = "{t}.status = 'failed' AND ({t}.error IS NULL OR {t}.error = ANY($18::text[]))"
        rows = await self._run(
            "fetch",
            f"WITH job AS (INSERT INTO {self._jobs} (job_id, created) VALUES ($1, $2) "  # noqa: S608 - validated names
            "ON CONFLICT (job_id) DO NOTHING) "
            f"INSERT INTO {self._entries} AS e (job_id, {_COLUMNS}) "
            f"SELECT $1, {_COLUMNS} FROM {_UNNEST} "
            "WHERE NOT EXISTS ("
            "SELECT 1 FROM unnest($16::text[], $17::text[]) AS a(owner, alias) "
            f"JOIN {self._entries} AS x ON x.job_id = $1 AND x.key = a.alias "
            f"WHERE a.owner = i.key AND NOT ({claimable.format(t='x')})) "
            "ORDER BY key "
            f"ON CONFLICT (job_id, key) DO UPDATE SET {_SET_ALL} "
            f"WHERE {claimable.format(t='e')} "
            "RETURNING e.key",
            job,
            time.time(),
            *_columns(sorted(wanted.values(), key=_by_key)),
            owners,
            aliases,
            sorted(definite_refusals()),
        )
        return {row["key"] for row in rows}

    async def entries(self, job_id: str) -> list[JournalEntry]:
        """Every row of ``job_id``, in first-written order."""
        job = check_job_id(job_id)
        rows = await self._run(
            "fetch",
            f"SELECT {_COLUMNS} FROM {self._entries} WHERE job_id = $1 ORDER BY seq",  # noqa: S608 - validated names
            job,
        )
        return [_entry(row) for row in rows]

    async def jobs(self) -> list[str]:
        """The ids of every job in the tables, sorted."""
        rows = await self._run("fetch", f"SELECT job_id FROM {self._jobs} ORDER BY job_id")  # noqa: S608 - validated names
        return [str(row["job_id"]) for row in rows]

    async def aclose(self) -> None:
        """Close the journal's own pool (a pool given is left open). Idempotent.

        Later calls of the other methods raise ``RuntimeError``.
        """
        self._closed = True
        pool, self._pool = self._pool, None
        if pool is not None and self._owns_pool:
            await pool.close()
        else:
            await anyio.lowlevel.checkpoint()

    # -- the optional abilities ----------------------------------------------------------------

    async def record_delivery(self, updates: Sequence[DeliveryUpdate]) -> int:
        """Store delivery states on the rows they name, in any job; return the rows changed.

        A row matches an update by ``message_id`` and, when the update names one, by
        ``recipient``. Where two updates of one call name the same row, the later wins.
        """
        checked = list(updates)
        for update in checked:
            if not isinstance(update, DeliveryUpdate):
                raise TypeError(
                    f"record_delivery takes DeliveryUpdate values, not {type(update).__name__}"
                )
        if not checked:
            await anyio.lowlevel.checkpoint()
            return 0
        status = await self._run(
            "execute",
            f"UPDATE {self._entries} AS e SET delivery = u.state, "  # noqa: S608 - validated names
            "delivery_status = u.provider_status, delivery_updated = u.at "
            "FROM (SELECT DISTINCT ON (x.job_id, x.key) x.job_id, x.key, v.state, "
            "v.provider_status, v.at "
            "FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::float8[]) "
            "WITH ORDINALITY AS v(message_id, recipient, state, provider_status, at, n) "
            f"JOIN {self._entries} AS x ON x.message_id = v.message_id "
            "AND (v.recipient IS NULL OR x.recipient = v.recipient) "
            "ORDER BY x.job_id, x.key, v.n DESC) AS u "
            "WHERE e.job_id = u.job_id AND e.key = u.key",
            [u.message_id for u in checked],
            [u.recipient for u in checked],
            [u.state.value for u in checked],
            [u.provider_status for u in checked],
            [float(u.at) for u in checked],
        )
        return int(str(status).rsplit(" ", 1)[-1])

    async def recent_sends(
        self, keys: Sequence[str], *, since: float, exclude_job: str
    ) -> dict[str, str]:
        """Keys ``sent`` in another job at or after ``since``: key -> that job's id.

        Where a key was sent by several other jobs, the one written last is named.
        """
        wanted = list(dict.fromkeys(keys))
        if not wanted:
            await anyio.lowlevel.checkpoint()
            return {}
        rows = await self._run(
            "fetch",
            f"SELECT DISTINCT ON (key) key, job_id FROM {self._entries} "  # noqa: S608 - validated names
            "WHERE key = ANY($1::text[]) AND status = 'sent' AND updated >= $2 "
            "AND job_id <> $3 ORDER BY key, updated DESC",
            wanted,
            float(since),
            exclude_job,
        )
        return {row["key"]: row["job_id"] for row in rows}

    async def summary(self, job_id: str | None = None) -> dict[str, JobSummary]:
        """Counts per status, error, delivery state and route for each job (or one job)."""
        where, args = ("", []) if job_id is None else ("WHERE job_id = $1", [check_job_id(job_id)])
        with_error = f"{'AND' if where else 'WHERE'} error IS NOT NULL"
        # One read-only transaction: the four queries see one state of the tables.
        created, by_status, errors, deliveries = await self._run(
            "summary",
            (
                f"SELECT job_id, created FROM {self._jobs} {where}",  # noqa: S608 - validated names
                f"SELECT job_id, status, route, count(*), max(updated), sum(parts) "  # noqa: S608 - validated names
                f"FROM {self._entries} {where} GROUP BY job_id, status, route",
                f"SELECT job_id, error, count(*) FROM {self._entries} {where} {with_error} "  # noqa: S608 - validated names
                "GROUP BY job_id, error",
                f"SELECT job_id, status, delivery, count(*) FROM {self._entries} {where} "  # noqa: S608 - validated names
                "GROUP BY job_id, status, delivery",
            ),
            *args,
        )
        return build_summaries(
            {row[0]: row[1] for row in created},
            (tuple(row) for row in by_status),
            (tuple(row) for row in errors),
            (tuple(row) for row in deliveries),
        )

    # -- the connection ------------------------------------------------------------------------

    async def _run(self, how: str, query: Any, *args: Any) -> Any:
        """Run one statement (or the summary's reads) on a pooled connection.

        Shielded from cancellation (every wait in it is bounded by ``timeout``): a claim
        the server committed is always returned to its caller, which can then give it
        back; cancelled half-way, the caller would never learn it holds the rows, and
        they would stay ``pending`` (in doubt) though nothing was sent. A cancellation
        is delivered at the caller's next checkpoint instead.
        """
        with anyio.CancelScope(shield=True):
            return await self._run_unshielded(how, query, *args)

    async def _run_unshielded(self, how: str, query: Any, *args: Any) -> Any:
        import asyncpg

        pool = await self._ready_pool()
        attempt = 0
        while True:
            attempt += 1
            try:
                async with pool.acquire(timeout=self._timeout) as conn:
                    if how == "summary":
                        async with conn.transaction(readonly=True, isolation="repeatable_read"):
                            return [
                                await conn.fetch(q, *args, timeout=self._timeout) for q in query
                            ]
                    method = getattr(conn, how)
                    return await method(query, *args, timeout=self._timeout)
            except (
                asyncpg.exceptions.DeadlockDetectedError,
                asyncpg.exceptions.SerializationError,
            ) as exc:
                # The statement was rolled back whole, so running it again is safe. Writes
                # take their rows in key order, so this is rare (a write racing a
                # record_delivery that touches the same rows in another order).
                if attempt >= _RETRIES:
                    raise self._error(exc, "could not be written") from exc
            except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError) as exc:
                raise self._error(exc, "could not be read or written") from exc

    def _error(self, exc: BaseException, what: str) -> JournalError:
        return JournalError(
            f"the journal at {self._where} {what} ({type(exc).__name__}: {exc}): {hint(exc)}. "
            "Rows whose outcome was not recorded are in doubt until the journal works again",
            path=self._where,
        )

    async def _ready_pool(self) -> Any:
        require_asyncio()
        if self._closed:
            raise RuntimeError("this journal is closed")
        if self._ready:
            return self._pool
        async with self._lock:
            if self._closed:
                raise RuntimeError("this journal is closed")
            if not self._ready:
                await self._set_up()
                self._ready = True
        return self._pool

    async def _set_up(self) -> None:
        import asyncpg

        if self._pool is None:
            try:
                self._pool = await asyncpg.create_pool(
                    self._dsn,
                    min_size=1,
                    max_size=self._pool_size,
                    timeout=self._timeout,
                    command_timeout=self._timeout,
                    server_settings={
                        "synchronous_commit": "on",
                        "application_name": "smsgate-journal",
                    },
                )
            except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError) as exc:
                raise self._error(exc, "could not be reached") from exc
            except ValueError:
                # A DSN asyncpg cannot parse; its text may hold pieces of the password.
                raise ConfigurationError(
                    f"the PostgreSQL DSN {self._where} cannot be read: "
                    "expected postgresql://user:password@host:port/database"
                ) from None
        try:
            async with self._pool.acquire(timeout=self._timeout) as conn:
                if not self._owns_pool:
                    level = await conn.fetchval("SELECT current_setting('synchronous_commit')")
                    if level == "off":
                        raise ConfigurationError(
                            f"the journal at {self._where} runs with synchronous_commit=off: "
                            "a crash of the server could lose claims that were already "
                            "answered, and a recipient would be sent twice; set it to on "
                            "(ALTER ROLE ... SET synchronous_commit = on, or in the pool's "
                            "server_settings)"
                        )
                async with conn.transaction():
                    await create_or_check(conn, self._tables)
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError) as exc:
            raise self._error(exc, "could not be set up") from exc


def _by_key(entry: JournalEntry) -> str:
    return entry.key


def _check_entry(entry: object) -> None:
    if not isinstance(entry, JournalEntry):
        raise TypeError(f"a journal records JournalEntry values, not {type(entry).__name__}")


def _columns(entries: Any) -> list[list[Any]]:
    """The rows as one list per column, in the order of ``_COLUMNS``."""
    rows = list(entries)
    return [
        [e.key for e in rows],
        [e.recipient for e in rows],
        [e.status for e in rows],
        [e.route for e in rows],
        [e.provider for e in rows],
        [e.message_id for e in rows],
        [e.error for e in rows],
        [e.detail for e in rows],
        [float(e.updated) for e in rows],
        [e.parts for e in rows],
        [None if e.delivery is None else e.delivery.value for e in rows],
        [e.delivery_status for e in rows],
        [e.delivery_updated for e in rows],
    ]


def _entry(row: Any) -> JournalEntry:
    return JournalEntry(
        key=row["key"],
        recipient=row["recipient"],
        status=row["status"],
        route=row["route"],
        provider=row["provider"],
        message_id=row["message_id"],
        error=row["error"],
        detail=row["detail"],
        updated=float(row["updated"]),
        parts=row["parts"],
        delivery=stored_delivery(row["delivery"]),
        delivery_status=row["delivery_status"],
        delivery_updated=row["delivery_updated"],
    )
