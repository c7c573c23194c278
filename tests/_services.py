"""The local services some tests need (PostgreSQL, Redis), found by environment variable.

Each address comes from an environment variable with the local default. A test that needs
a service calls :func:`require`: where the service is unreachable the test is skipped with
the reason, except under CI (``CI`` set to a true value, as ``.ci/run`` runs), where it
fails instead: a skipped integration test must never pass CI silently.
"""

from __future__ import annotations

import os
import socket
from urllib.parse import urlsplit

import pytest

#: PostgreSQL: trust auth on the local machine, database ``test``.
POSTGRES_DSN = os.environ.get("SMSGATE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
#: Redis: nothing on disk; tests use their own keys and database 15 by default.
REDIS_URL = os.environ.get("SMSGATE_TEST_REDIS", "redis://127.0.0.1:6379/15")

_DEFAULT_PORTS = {"postgresql": 5432, "postgres": 5432, "redis": 6379, "amqp": 5672, "nats": 4222}


def under_ci() -> bool:
    """Whether this run is CI's (services must be there)."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def _reachable(url: str) -> str | None:
    """``None`` if a TCP connection to the URL's host and port opens, else the reason."""
    parts = urlsplit(url)
    host = parts.hostname or "127.0.0.1"
    port = parts.port or _DEFAULT_PORTS.get(parts.scheme, 0)
    try:
        with socket.create_connection((host, port), timeout=2.0):
            return None
    except OSError as exc:
        return f"{host}:{port} is unreachable ({exc.__class__.__name__}: {exc})"


def require(name: str, url: str) -> str:
    """Return ``url`` if the service answers; else skip (fail under CI) with the reason."""
    reason = _reachable(url)
    if reason is None:
        return url
    message = f"{name} at {reason}; set the address in the environment to run this test"
    if under_ci():
        pytest.fail(f"CI needs {message}", pytrace=False)
    pytest.skip(message)


def postgres_dsn() -> str:
    """The PostgreSQL DSN for tests (``SMSGATE_TEST_POSTGRES``), or skip/fail."""
    return require("PostgreSQL", POSTGRES_DSN)


def redis_url() -> str:
    """The Redis URL for tests (``SMSGATE_TEST_REDIS``), or skip/fail."""
    return require("Redis", REDIS_URL)
