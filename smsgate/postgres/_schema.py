"""The PostgreSQL journal's tables: created, versioned, refused when not ours; DSNs and errors.

Three tables named from a prefix (``smsgate_journal`` by default), in a schema or the
connection's ``search_path``::

    {prefix}_meta(name text PRIMARY KEY, value text)        -- application, schema_version
    {prefix}_jobs(job_id text PRIMARY KEY, created float8)
    {prefix}_entries(job_id, key, recipient, status, route, provider, message_id, error,
                     detail, updated, parts, delivery, delivery_status, delivery_updated,
                     seq (first-written order), PRIMARY KEY (job_id, key))
    INDEX {prefix}_message_id, INDEX {prefix}_key
"""

from __future__ import annotations

import re
import urllib.parse
from typing import Any

import attrs

from .._asynclib import running_library
from ..exceptions import ConfigurationError

__all__ = [
    "APPLICATION",
    "SCHEMA_VERSION",
    "Tables",
    "create_or_check",
    "hint",
    "redact_dsn",
    "require_asyncio",
]

#: The schema version this code writes (the meta table's ``schema_version`` row).
SCHEMA_VERSION = 1
#: The meta table's ``application`` row: whose tables these are.
APPLICATION = "smsgate-journal"

IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]{0,40}")


@attrs.frozen
class Tables:
    """The quoted names of one journal's tables, and where they are (for messages)."""

    schema: str | None
    prefix: str
    where: str

    @property
    def _space(self) -> str:
        return f'"{self.schema}".' if self.schema else ""

    @property
    def meta(self) -> str:
        return f'{self._space}"{self.prefix}_meta"'

    @property
    def jobs(self) -> str:
        return f'{self._space}"{self.prefix}_jobs"'

    @property
    def entries(self) -> str:
        return f'{self._space}"{self.prefix}_entries"'


def redact_dsn(dsn: str) -> str:
    """``dsn`` without its password (in the user part or a ``password=`` parameter).

    A DSN that is not a URL (``"host=db user=app password=..."``) loses every
    ``password=`` value as well.
    """
    try:
        parts = urllib.parse.urlsplit(dsn)
    except ValueError:  # not even a URL: keep the scheme, hide everything after it
        scheme, sep, _ = dsn.partition("://")
        return f"{scheme}://***" if sep else "***"
    if not parts.scheme or not parts.netloc:
        return re.sub(r"(?i)(password\s*=\s*)('[^']*'|\S+)", r"\1***", dsn)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, hostinfo = netloc.rpartition("@")
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}{':***' if ':' in userinfo else ''}@{hostinfo}"
    query = urllib.parse.urlencode(
        [
            (name, "***" if name.lower() == "password" else value)
            for name, value in urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
        ]
    )
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


async def create_or_check(conn: Any, tables: Tables) -> None:
    """Inside one transaction: refuse foreign or newer tables, else create or keep them."""
    qualified = f"{tables.schema or ''}.{tables.prefix}"
    # Workers starting together create the tables once: the others wait here.
    await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", f"smsgate:{qualified}")
    names = [tables.meta, tables.jobs, tables.entries]
    found = [await conn.fetchval("SELECT to_regclass($1)::text", name) for name in names]
    meta, jobs, entries = found
    if meta is None:
        if jobs is not None or entries is not None:
            raise ConfigurationError(
                f"the database at {tables.where} already has a table named "
                f"{jobs or entries} that smsgate did not create; choose another "
                "prefix= or schema= for the journal"
            )
        await _create(conn, tables)
        return
    try:
        rows = await conn.fetch(f"SELECT name, value FROM {tables.meta}")  # noqa: S608 - validated names
    except _errors().UndefinedColumnError as exc:
        raise ConfigurationError(
            f"the table {meta} at {tables.where} belongs to another application, "
            "not an smsgate journal; choose another prefix= or schema="
        ) from exc
    values = {str(row[0]): str(row[1]) for row in rows}
    if values.get("application") != APPLICATION:
        raise ConfigurationError(
            f"the table {meta} at {tables.where} belongs to another application, "
            "not an smsgate journal; choose another prefix= or schema="
        )
    try:
        version = int(values.get("schema_version", ""))
    except ValueError:
        raise ConfigurationError(
            f"the journal at {tables.where} ({meta}) has no readable schema version; it is damaged"
        ) from None
    if version > SCHEMA_VERSION:
        raise ConfigurationError(
            f"the journal at {tables.where} ({meta}) was written by a newer smsgate "
            f"(schema {version}; this one reads up to {SCHEMA_VERSION}); upgrade smsgate"
        )
    # Later versions migrate here, one step at a time: "if version < 2: ...".


async def _create(conn: Any, tables: Tables) -> None:
    if tables.schema:
        await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{tables.schema}"')
    statements = (
        f"CREATE TABLE {tables.meta} (name text PRIMARY KEY, value text NOT NULL)",
        f"CREATE TABLE {tables.jobs} (job_id text PRIMARY KEY, created double precision NOT NULL)",
        f"CREATE TABLE {tables.entries} ("
        "job_id text NOT NULL, key text NOT NULL, recipient text NOT NULL, "
        "status text NOT NULL CHECK (status IN ('pending', 'sent', 'failed', 'unknown')), "
        "route text, provider text, message_id text, error text, detail text, "
        "updated double precision NOT NULL, parts integer, delivery text, "
        "delivery_status text, delivery_updated double precision, "
        # First-written order for entries(); an upsert keeps the row's number.
        "seq bigint GENERATED ALWAYS AS IDENTITY, "
        "PRIMARY KEY (job_id, key))",
        f'CREATE INDEX "{tables.prefix}_message_id" ON {tables.entries} (message_id)',
        f'CREATE INDEX "{tables.prefix}_key" ON {tables.entries} (key)',
    )
    for statement in statements:
        await conn.execute(statement)
    await conn.execute(
        f"INSERT INTO {tables.meta} (name, value) VALUES "  # noqa: S608 - validated names
        "('application', $1), ('schema_version', $2)",
        APPLICATION,
        str(SCHEMA_VERSION),
    )


def _errors() -> Any:
    """``asyncpg.exceptions`` (imported when first needed)."""
    import asyncpg.exceptions

    return asyncpg.exceptions


def require_asyncio() -> None:
    library = running_library()
    if library not in (None, "asyncio"):
        raise ConfigurationError(
            f"PostgresJournal needs asyncio (asyncpg runs on it), not {library}; "
            "run the job under asyncio, or use SqliteJournal under trio"
        )


# asyncpg error class names (``asyncpg.exceptions``) -> what to do.
_HINTS = (
    (
        ("CannotConnectNowError", "ConnectionDoesNotExistError"),
        "check that the server runs and can be reached, then run the job again",
    ),
    (("DiskFullError",), "the server's disk is full: free space, then run the job again"),
    (
        ("InsufficientPrivilegeError",),
        "the database user may not do this: grant it the rights on the journal tables",
    ),
    (
        ("ReadOnlySQLTransactionError",),
        "the server is read-only (a standby?): point the journal at the primary",
    ),
    (
        ("InvalidPasswordError", "InvalidAuthorizationSpecificationError"),
        "the server refused the login: check the user and password of the DSN",
    ),
    (("InvalidCatalogNameError",), "the database does not exist: create it or fix the DSN"),
    (
        ("QueryCanceledError",),
        "a statement took longer than timeout=: check the server's load and locks",
    ),
)


def hint(exc: BaseException) -> str:
    if isinstance(exc, (OSError, TimeoutError)):
        return "check that the server runs and can be reached, then run the job again"
    names = {cls.__name__ for cls in type(exc).__mro__}
    for classes, advice in _HINTS:
        if names.intersection(classes):
            return advice
    return "see the cause below"
