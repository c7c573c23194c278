"""Every ```python block on the documentation pages runs, against the fake provider.

How a page's examples run (what a page author may rely on):

* The ```python blocks of one page run in order, in one namespace, like cells of a notebook:
  a later block may use what an earlier one defined. ``__name__`` is ``"__main__"``.
* A block with a top-level ``await`` / ``async with`` / ``async for`` runs in the test's
  event loop (asyncio, through anyio). A block without one runs in a worker thread, so that
  ``anyio.run(main)`` / ``asyncio.run(main())`` work exactly as in a user's script.
* Every gateway that creates its own HTTP client (no ``http_client=`` given) talks to one
  in-process :class:`~smsgate.testing.FakeProvider`, whatever its ``base_url`` (so the real
  ``https://ippanel.com`` and a Kapanel origin both work; a loopback ``base_url`` such as
  a ``serve_loopback`` server's is left alone). The fake accepts any user name and
  password and owns the lines used on the pages (ippanel ``+983000505``, Negin
  ``9830003300`` and ``9830007485``); ``09350000001`` is on its opt-out black list. Its
  time runs a billion times faster than real time, so a delivery report asked for after a
  send is already final and a polling loop ends on its first round.
* Pre-seeded names, for fragments that start from "given a gateway": ``gateway`` (an
  :class:`~smsgate.IppanelGateway` on the fake) and ``fake`` (the fake provider).
  Environment variables ``SMSGATE_USERNAME`` / ``SMSGATE_PASSWORD`` are set.
* A block titled as a pytest file (```python title="conftest.py"``` or
  ``title="test_….py"``) is not run in the page's namespace: the page's pytest files are
  written to a temporary directory and run by pytest in a subprocess, which must pass.
* A block that must not run (a configuration file, a server that runs forever) starts
  with the line ``# docs: no-run`` (a reason may follow). Such blocks are counted:
  :func:`test_most_examples_run` fails if they outnumber the runnable ones, and every page
  with Python blocks must run at least one.
* ``--8<-- "path"`` (pymdownx.snippets) inside a block is replaced by that file, as on the
  site.

A failing block reports ``docs/<page>.md:<line>``: tracebacks point into the page itself.
"""

from __future__ import annotations

import ast
import contextlib
import inspect
import os
import re
import subprocess
import sys
import time
import traceback
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import attrs
import httpx
import pytest

import smsgate
from smsgate.backends._http import HttpGateway, Transport
from smsgate.backends._httpx_transport import HttpxTransport
from smsgate.testing import FakeCore, FakeProvider

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
NO_RUN = "# docs: no-run"
PYTHON = {"python", "py", "python3", "py3"}
# Languages that look like Python but cannot be run as a script: refused, so that no
# example hides from this suite under another name.
REFUSED = {"pycon", "pyi", "ipython", "python-console"}
BLOCK_TIMEOUT = 10.0
USERNAME = "docs-user"
PASSWORD = "docs-password"  # the examples read it from the environment
OPTED_OUT = "09350000001"  # on the fake's black list, for the fallback examples

_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^`]*?)[ \t]*$")
_SNIPPET = re.compile(r"^[ \t]*-{1,}8<-{1,}[ \t]+[\"'](?P<path>[^\"']+)[\"'][ \t]*$")


@attrs.frozen
class Block:
    """One fenced Python block of a page."""

    page: Path
    line: int  # 1-based line of the block's first code line in the page
    source: str
    runnable: bool
    title: str | None = None  # ```python title="conftest.py"

    @property
    def is_pytest_file(self) -> bool:
        """A ``conftest.py`` or ``test_*.py`` file, run by pytest rather than exec'd."""
        return self.title is not None and (
            self.title == "conftest.py"
            or (self.title.startswith("test_") and self.title.endswith(".py"))
        )

    @property
    def where(self) -> str:
        """``docs/page.md:line``."""
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def pages() -> list[Path]:
    """Every Markdown page with examples (the reference pages only hold directives)."""
    return sorted(
        p
        for p in DOCS.rglob("*.md")
        if not p.relative_to(DOCS).parts[0].startswith(("reference", "_"))
    )


def _title(info: str) -> str | None:
    match = re.search(r"""title=(?:"([^"]*)"|'([^']*)')""", info)
    return None if match is None else (match[1] or match[2])


def _language(info: str) -> str:
    # "python", "python title='x.py'", "{.python .annotate}", "py linenums='1'"
    word = info.strip().lstrip("{").split()
    return word[0].lstrip(".").lower() if word else ""


def _expand_snippets(lines: list[str]) -> list[str]:
    out: list[str] = []
    for line in lines:
        match = _SNIPPET.match(line)
        if match is None:
            out.append(line)
            continue
        for base in (DOCS, ROOT):
            target = base / match["path"]
            if target.is_file():
                out.extend(target.read_text(encoding="utf-8").splitlines())
                break
        else:
            raise AssertionError(f"snippet not found: {match['path']}")
    return out


def extract(page: Path) -> list[Block]:
    """The Python blocks of one page, in order."""
    lines = page.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        opening = _FENCE.match(lines[i])
        if opening is None:
            i += 1
            continue
        indent, fence = opening["indent"], opening["fence"]
        language = _language(opening["info"])
        closing = re.compile(rf"^[ \t]*{re.escape(fence[0])}{{{len(fence)},}}[ \t]*$")
        body: list[str] = []
        j = i + 1
        while j < len(lines) and not closing.match(lines[j]):
            line = lines[j]
            body.append(line[len(indent) :] if line.startswith(indent) else line.lstrip())
            j += 1
        if j == len(lines):
            raise AssertionError(f"{page.relative_to(ROOT)}:{i + 1}: unclosed code fence")
        if language in REFUSED:
            raise AssertionError(
                f"{page.relative_to(ROOT)}:{i + 1}: ```{language} blocks cannot be run; "
                "write a ```python block (top-level await is fine)"
            )
        if language in PYTHON:
            first = next((b.strip() for b in body if b.strip()), "")
            blocks.append(
                Block(
                    page=page,
                    line=i + 2,
                    source="\n".join(_expand_snippets(body)) + "\n",
                    runnable=not first.startswith(NO_RUN),
                    title=_title(opening["info"]),
                )
            )
        i = j + 1
    return blocks


ALL_PAGES = pages()
PAGES_WITH_CODE = [p for p in ALL_PAGES if extract(p)]


# -- the environment the examples run in ------------------------------------------------


@pytest.fixture
def anyio_backend() -> str:
    """The examples run under asyncio (the trio runs belong to the library's own tests)."""
    return "asyncio"


class WarpClock:
    """Fake time that runs ``speed`` times faster than the real monotonic clock."""

    def __init__(self, speed: float = 1e9) -> None:
        self._start = time.monotonic()
        self._speed = speed

    def __call__(self) -> float:
        return 1_000_000.0 + (time.monotonic() - self._start) * self._speed


@contextlib.contextmanager
def _docs_world(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeProvider]:
    fake = FakeProvider(
        username=USERNAME, password=PASSWORD, clock=WarpClock(), opted_out=[OPTED_OUT]
    )
    # The pages use placeholder credentials ("...", "my-user"): any pair logs in here.
    monkeypatch.setattr(FakeCore, "check_login", lambda self, username, password: True)
    monkeypatch.setenv("SMSGATE_USERNAME", USERNAME)
    monkeypatch.setenv("SMSGATE_PASSWORD", PASSWORD)

    real_make_transport = HttpGateway._make_transport

    def in_process_transport(self: HttpGateway) -> Transport:
        if httpx.URL(self.base_url).host in ("127.0.0.1", "localhost", "::1"):
            return real_make_transport(self)  # an example's own loopback server
        # Whatever the base_url (ippanel.com, a Kapanel origin), requests go to the fake.
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=fake), timeout=5.0, follow_redirects=False
        )
        return HttpxTransport(client, owned=True)

    monkeypatch.setattr(HttpGateway, "_make_transport", in_process_transport)
    yield fake


@contextlib.asynccontextmanager
async def _namespace(fake: FakeProvider) -> AsyncIterator[dict[str, Any]]:
    gateway = smsgate.IppanelGateway(username=USERNAME, password=PASSWORD, sender="+983000505")
    try:
        yield {
            "__name__": "__main__",
            "__builtins__": __builtins__,
            "fake": fake,
            "gateway": gateway,
        }
    finally:
        await gateway.aclose()


def _compile(block: Block) -> Any:
    # Padding with blank lines makes tracebacks and SyntaxErrors point at the page's line.
    padded = "\n" * (block.line - 1) + block.source
    return compile(padded, str(block.page), "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)


async def _run(block: Block, namespace: dict[str, Any]) -> None:
    code = _compile(block)
    with anyio.fail_after(BLOCK_TIMEOUT):
        if code.co_flags & inspect.CO_COROUTINE:
            await eval(code, namespace)  # noqa: S307 - our own documentation's code
        else:
            await anyio.to_thread.run_sync(exec, code, namespace, abandon_on_cancel=True)


# -- the tests -------------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize(
    "page", PAGES_WITH_CODE, ids=[str(p.relative_to(DOCS)) for p in PAGES_WITH_CODE]
)
async def test_page_examples_run(page: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every runnable Python block of the page runs without an error, in order."""
    blocks = extract(page)
    runnable = [b for b in blocks if b.runnable and not b.is_pytest_file]
    assert runnable, f"{page.relative_to(ROOT)} has Python blocks but none runs"
    with _docs_world(monkeypatch) as fake:
        async with _namespace(fake) as namespace:
            for block in runnable:
                try:
                    await _run(block, namespace)
                except BaseException as exc:
                    raise AssertionError(f"example at {block.where} failed: {exc!r}") from exc


PAGES_WITH_PYTEST_FILES = [
    p for p in PAGES_WITH_CODE if any(b.is_pytest_file and b.runnable for b in extract(p))
]


@pytest.mark.parametrize(
    "page", PAGES_WITH_PYTEST_FILES, ids=[str(p.relative_to(DOCS)) for p in PAGES_WITH_PYTEST_FILES]
)
def test_page_pytest_files_pass(page: Path, tmp_path: Path) -> None:
    """The page's conftest.py / test_*.py blocks, written out as files, pass under pytest."""
    files = [b for b in extract(page) if b.is_pytest_file and b.runnable]
    tests = 0
    for block in files:
        assert block.title is not None
        (tmp_path / block.title).write_text(block.source, encoding="utf-8")
        tests += len(re.findall(r"^(?:async )?def test_", block.source, re.MULTILINE))
    assert tests, f"{page.relative_to(ROOT)}: pytest files without a test"
    # Only anyio's plugin: the pages' tests use it, and skipping the other installed
    # plugins (hypothesis, coverage...) saves most of the start-up time.
    env = {**os.environ, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "anyio",
            "-p",
            "no:cacheprovider",
            "-W",
            "error",
            str(tmp_path),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, f"{page.relative_to(ROOT)}:\n{result.stdout}{result.stderr}"
    passed = re.search(r"(\d+) passed", result.stdout)
    assert passed and int(passed[1]) >= tests, result.stdout


def test_no_run_blocks_compile() -> None:
    """Blocks marked no-run are still valid Python (they are shown to be copied)."""
    for page in PAGES_WITH_CODE:
        for block in extract(page):
            if not block.runnable:
                _compile(block)


def test_most_examples_run() -> None:
    """Runnable blocks outnumber no-run ones, so the suite cannot skip the docs wholesale."""
    blocks = [b for p in PAGES_WITH_CODE for b in extract(p)]
    runnable = sum(b.runnable for b in blocks)
    skipped = len(blocks) - runnable
    assert runnable >= 10, f"only {runnable} runnable examples found"
    assert skipped * 2 <= runnable, f"{skipped} no-run blocks against {runnable} runnable"


def test_extractor_sees_fences_and_markers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The extractor finds plain, titled and indented fences and honours the marker."""
    monkeypatch.setattr(f"{__name__}.ROOT", tmp_path)
    page = tmp_path / "page.md"
    page.write_text(
        "# Page\n\n"
        "```python\nx = 1\n```\n\n"
        '```python title="config.py"\n# docs: no-run - a file you keep\ny = 2\n```\n\n'
        '=== "Tab"\n\n    ```py\n    z = 3\n    ```\n\n'
        "```bash\necho no\n```\n",
        encoding="utf-8",
    )
    blocks = extract(page)
    assert [(b.line, b.source, b.runnable, b.title) for b in blocks] == [
        (4, "x = 1\n", True, None),
        (8, "# docs: no-run - a file you keep\ny = 2\n", False, "config.py"),
        (15, "z = 3\n", True, None),
    ]


def test_extractor_refuses_console_blocks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A ```pycon block fails loudly instead of silently not running."""
    monkeypatch.setattr(f"{__name__}.ROOT", tmp_path)
    page = tmp_path / "page.md"
    page.write_text("```pycon\n>>> 1 + 1\n2\n```\n", encoding="utf-8")
    with pytest.raises(AssertionError, match="cannot be run"):
        extract(page)


@pytest.mark.anyio
async def test_a_broken_example_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A block that raises fails with the page and line it came from."""
    monkeypatch.setattr(f"{__name__}.ROOT", tmp_path)
    page = tmp_path / "broken.md"
    page.write_text(
        "text\n\n```python\nreceipt = await gateway.send('0912', 'x')\n```\n", encoding="utf-8"
    )
    [block] = extract(page)
    with _docs_world(monkeypatch) as fake:
        async with _namespace(fake) as namespace:
            with pytest.raises(smsgate.InvalidRecipientError) as info:
                await _run(block, namespace)
    frames = [(f.filename, f.lineno) for f in traceback.extract_tb(info.tb)]
    assert (str(page), 4) in frames


@pytest.mark.anyio
async def test_gateways_reach_the_fake(monkeypatch: pytest.MonkeyPatch) -> None:
    """A gateway built with the real provider URL sends to the in-process fake."""
    page_code = (
        "import smsgate\n"
        "async with smsgate.IppanelGateway(username='u', password='p', sender='+983000505',\n"
        "                                  base_url='https://ippanel.com') as gw:\n"
        "    receipt = await gw.send('09121234567', 'hi')\n"
    )
    block = Block(page=DOCS / "index.md", line=1, source=page_code, runnable=True)
    with _docs_world(monkeypatch) as fake:
        async with _namespace(fake) as namespace:
            await _run(block, namespace)
    assert [e.recipient for e in fake.ledger] == ["+989121234567"]
    assert namespace["receipt"].recipients == ("+989121234567",)


def test_sync_blocks_may_start_their_own_event_loop() -> None:
    """A block without top-level await compiles as plain code (it runs in a thread)."""
    block = Block(
        page=DOCS / "index.md",
        line=1,
        source="import anyio\nanyio.run(anyio.sleep, 0)\n",
        runnable=True,
    )
    assert not _compile(block).co_flags & inspect.CO_COROUTINE
    awaiting = attrs.evolve(block, source="await anyio.sleep(0)\n")
    assert _compile(awaiting).co_flags & inspect.CO_COROUTINE
