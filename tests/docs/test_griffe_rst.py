"""The docs build's docstring converter (docs/_hooks/griffe_rst.py) turns RST habits into Markdown.

The converter runs inside ``mkdocs build``; these tests pin its text rewriting without the
docs toolchain installed: griffe is replaced by a stub (the text functions never touch it
when no griffe object is given).
"""

from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path
from typing import Any

import pytest

HOOK = Path(__file__).resolve().parents[2] / "docs" / "_hooks" / "griffe_rst.py"


@pytest.fixture
def rst(monkeypatch: pytest.MonkeyPatch) -> Any:
    """The converter module, loaded against a stub griffe."""
    stub = types.ModuleType("griffe")
    stub.Extension = object  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "griffe", stub)
    spec = importlib.util.spec_from_file_location("griffe_rst_under_test", HOOK)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_qualified_roles_become_required_links(rst: Any) -> None:
    """A role naming smsgate.X becomes a Markdown cross-reference (checked by --strict)."""
    text = "Raises :class:`~smsgate.NotSentError`; see :func:`smsgate.segments`."
    assert rst.convert(text) == (
        "Raises [`NotSentError`][smsgate.NotSentError]; "
        "see [`smsgate.segments()`][smsgate.segments]."
    )


def test_foreign_private_and_unresolved_roles_become_code(rst: Any) -> None:
    """Other projects' names, private names and unresolvable names render as code."""
    text = ":func:`anyio.to_thread.run_sync`, :meth:`_request`, :meth:`send`, :class:`!Raw`"
    assert rst.convert(text) == "`anyio.to_thread.run_sync()`, `_request()`, `send()`, `Raw`"


def test_literal_block_becomes_fence(rst: Any) -> None:
    """``text::`` and an indented block become ``text:`` and a fenced block."""
    text = "Check for it::\n\n    if ok:\n        print(1)\n\nAfter."
    assert rst.convert(text) == ("Check for it:\n\n```python\nif ok:\n    print(1)\n```\n\nAfter.")


def test_literal_block_in_example_section_stays_indented(rst: Any) -> None:
    """Inside a Google ``Example:`` section the fence keeps the section's indentation."""
    text = "Summary.\n\nExample::\n\n    CREATE TABLE t (x)\n"
    expected = "Summary.\n\nExample:\n\n    ```text\n    CREATE TABLE t (x)\n    ```"
    assert rst.convert(text) == expected


def test_doctest_becomes_pycon_fence(rst: Any) -> None:
    """A ``>>>`` example outside a fence becomes a pycon block (not nested quotes)."""
    text = "Pacing.\n\n>>> RateLimit(50)\nRateLimit(rate=50)\n\nMore."
    assert rst.convert(text) == (
        "Pacing.\n\n```pycon\n>>> RateLimit(50)\nRateLimit(rate=50)\n```\n\nMore."
    )


def test_simple_table_becomes_markdown_table(rst: Any) -> None:
    """An RST simple table, continuation rows included, becomes a pipe table."""
    text = (
        "Answers:\n\n"
        "======  ==========\n"
        "code    meaning\n"
        "======  ==========\n"
        "200     ok, the report\n"
        "        was accepted\n"
        "403     bad | secret\n"
        "======  ==========\n"
    )
    assert rst.convert(text) == (
        "Answers:\n\n"
        "| code | meaning |\n"
        "| --- | --- |\n"
        "| 200 | ok, the report was accepted |\n"
        "| 403 | bad \\| secret |"
    )


def test_fenced_code_is_left_alone(rst: Any) -> None:
    """Roles inside an existing fence are code, not rewritten."""
    text = "```python\nx = ':class:`smsgate.X`'\n```"
    assert rst.convert(text) == text
