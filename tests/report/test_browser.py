"""The report page in a real headless Chromium (Debian's ``chromium``).

The page is served on 127.0.0.1 by a server that logs every request, and Chromium is
pointed at a "trap" proxy that logs (and refuses) any request for another host, so
"nothing is fetched from outside" is checked on the wire, not only by reading the HTML.
Chromium itself calls a few Google services at start-up whatever the flags (component
updates, sign-in, network time, depending on timing): those hosts are set aside by name
(:data:`BROWSER_OWN`; the page holds no URL at all, which the test checks too), and a
canary page that does fetch from outside proves that the trap sees a page's requests.
Chromium missing: skipped with the reason locally, a failure under CI.
"""

from __future__ import annotations

import html
import os
import re
import shutil
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from smsgate.report import build_report, render_html, report_app
from smsgate.testing import serve_loopback

from .._services import under_ci
from ._journal import EVIL, sample_journal

pytestmark = pytest.mark.loopback

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
]
TIMEOUT = 90
#: Chromium's own update, sign-in and time services, called by the browser itself (also on
#: about:blank), never by a page that names none of them.
BROWSER_OWN = (".google.com", ".googleapis.com", ".gstatic.com", ".gvt1.com")


@pytest.fixture(scope="module")
def chromium() -> str:
    """The Chromium binary, or skip (fail under CI) with the reason."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None and Path("/usr/bin/chromium").exists():
        found = "/usr/bin/chromium"
    if found is None:
        reason = "Debian's chromium is not installed (apt-get install -y chromium)"
        if under_ci():
            pytest.fail(f"CI needs a browser: {reason}", pytrace=False)
        pytest.skip(reason)
    return found


class Recorder(ThreadingHTTPServer):
    """An HTTP server on 127.0.0.1 that logs every request line and answers from a dict."""

    daemon_threads = True

    def __init__(self, pages: dict[str, bytes]) -> None:
        self.pages = pages
        self.log: list[tuple[str, str]] = []
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _Handler)

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    server: Recorder

    def _answer(self) -> None:
        with self.server.lock:
            self.server.log.append((self.command, self.path))
        body = self.server.pages.get(self.path)
        if body is None:
            self.send_response(403)
            self.send_header("content-length", "0")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("content-type", "text/html; charset=utf-8")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_HEAD = do_CONNECT = do_PUT = do_OPTIONS = _answer

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def serve_pages() -> Iterator[Any]:
    servers: list[Recorder] = []

    def start(pages: dict[str, bytes]) -> Recorder:
        server = Recorder(pages)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def run_chromium(chromium: str, tmp_path: Path, trap: Recorder, *args: str) -> str:
    profile = tmp_path / f"profile-{len(list(tmp_path.glob('profile-*')))}"
    command = [
        chromium,
        *FLAGS,
        f"--user-data-dir={profile}",
        # Every request for another host goes to the trap (loopback is never proxied).
        f"--proxy-server={trap.origin}",
        *args,
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def hosts(trap: Recorder) -> set[str]:
    """The hosts of every request that reached the trap proxy."""
    found = set()
    for method, target in trap.log:
        if method == "CONNECT":
            found.add(target.rsplit(":", 1)[0])
        else:
            found.add(urlsplit(target).hostname or target)
    return found


def page_hosts(trap: Recorder) -> set[str]:
    """The hosts the trap saw, less Chromium's own services."""
    return {h for h in hosts(trap) if not h.endswith(BROWSER_OWN)}


def text_of(dom: str, element_id: str) -> str:
    match = re.search(rf'id="{element_id}"[^>]*>([^<]*)<', dom)
    assert match, f"#{element_id} not in the DOM"
    return html.unescape(match.group(1))


def test_report_page_in_chromium(chromium: str, tmp_path: Path, serve_pages: Any) -> None:
    """The page renders its counts and chart from inline data, fetching nothing else."""
    import anyio

    async def make() -> dict[str, Any]:
        return await build_report(await sample_journal(), "camp-7", price_per_part=1000)

    data = anyio.run(make)
    page = render_html(data).encode()
    (tmp_path / "report.html").write_bytes(page)
    site = serve_pages({"/report.html": page})
    trap = serve_pages({})
    url = f"{site.origin}/report.html"

    dom = run_chromium(chromium, tmp_path, trap, "--dump-dom", url)
    assert 'data-ready="1"' in dom  # the page's script ran to the end
    assert text_of(dom, "job") == "camp-7"
    assert text_of(dom, "n-rows") == "40"
    assert text_of(dom, "n-sent") == "33"
    assert text_of(dom, "n-failed") == "4"
    assert text_of(dom, "d-delivered") == "24"
    assert text_of(dom, "d-blocked") == "2"
    assert text_of(dom, "d-pending") == "3"
    assert text_of(dom, "f-count") == "13"
    # The chart has data: three step lines with points.
    points = re.findall(r'<polyline[^>]*data-series="(\w+)"[^>]*data-points="(\d+)"', dom)
    assert {name for name, _ in points} == {"accepted", "delivered", "not_delivered"}
    assert all(int(n) >= 3 for _, n in points)
    # The failures table shows masked numbers and the hostile text as text, not markup.
    assert "+98912***9999" in dom and "+989129999999" not in dom
    assert html.escape(EVIL, quote=False) in dom and "<b>bold</b>" not in dom

    shot = tmp_path / "report.png"
    run_chromium(chromium, tmp_path, trap, f"--screenshot={shot}", "--window-size=1280,1500", url)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert shot.stat().st_size > 20_000  # a rendered page, not a blank one
    if os.environ.get("SMSGATE_KEEP_SCREENSHOT"):
        shutil.copy(shot, os.environ["SMSGATE_KEEP_SCREENSHOT"])

    assert site.log == [("GET", "/report.html")] * 2  # the page, once per run, and nothing else
    assert page_hosts(trap) == set()


def test_live_page_polls_its_own_origin(chromium: str, tmp_path: Path, serve_pages: Any) -> None:
    """The served page refreshes from data.json on its own origin, and from nowhere else."""
    import anyio

    journal = anyio.run(sample_journal)
    app = report_app(journal, refresh=0.5)
    seen: list[str] = []

    async def logged(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            seen.append(scope["path"])
        await app(scope, receive, send)

    trap = serve_pages({})
    with serve_loopback(logged) as server:
        dom = run_chromium(
            chromium, tmp_path, trap, "--virtual-time-budget=3000", "--dump-dom", server.url + "/"
        )
    assert text_of(dom, "n-rows") == "40"
    assert text_of(dom, "live") == "live"
    assert seen[0] == "/" and "/data.json" in seen
    assert set(seen) == {"/", "/data.json"}
    assert page_hosts(trap) == set()


def test_trap_sees_a_page_fetching_from_outside(
    chromium: str, tmp_path: Path, serve_pages: Any
) -> None:
    """The check has teeth: a page that loads an image and fetches from other hosts is seen."""
    canary = (
        b"<!DOCTYPE html><html><body><img src='http://canary-one.example/pixel.png'>"
        b"<script>fetch('http://canary-two.example/data.json').catch(function(){});</script>"
        b"</body></html>"
    )
    site = serve_pages({"/canary.html": canary})
    trap = serve_pages({})
    run_chromium(
        chromium, tmp_path, trap, "--virtual-time-budget=2000", "--dump-dom",
        f"{site.origin}/canary.html",
    )  # fmt: skip
    assert {"canary-one.example", "canary-two.example"} <= page_hosts(trap)
