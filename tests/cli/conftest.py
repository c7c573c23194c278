"""Fixtures of the CLI tests: a clean environment, a fake provider on loopback."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from smsgate.cli import ENVIRONMENT
from smsgate.testing import FakeProvider, LoopbackServer


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No SMSGATE_* variable or user config file from the machine leaks into a test."""
    for name in [*ENVIRONMENT, "SMSGATE_CONFIG", "SMSGATE_DEBUG"]:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    # The fake is no advertising line: jobs run at any hour (not only 08:00-23:00 Tehran).
    monkeypatch.setenv("SMSGATE_SEND_WINDOW", "off")


@pytest.fixture
def served(
    serve_shared: Callable[[FakeProvider], LoopbackServer],
) -> tuple[FakeProvider, LoopbackServer]:
    """A fresh fake provider on loopback (the session's shared server)."""
    fake = FakeProvider()
    return fake, serve_shared(fake)
