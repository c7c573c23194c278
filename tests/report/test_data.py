"""The report's data and the self-contained page (no browser)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import pytest

from smsgate.report import build_report, mask_number, render_html, report_app, write_html

from ._journal import EVIL, sample_journal

pytestmark = pytest.mark.anyio

# The only absolute URL the page may hold: the SVG namespace name (an identifier that
# createElementNS takes; browsers never fetch it).
ALLOWED_URLS = {"http://www.w3.org/2000/svg"}
URL = re.compile(r"""(?:https?:)?//[^\s"'<>)\\]+""")


def test_mask_number() -> None:
    assert mask_number("+989121234567") == "+98912***4567"
    assert mask_number("12345") == "***45"
    assert mask_number("123") == "***"


async def test_counts_routes_failures() -> None:
    journal = await sample_journal()
    data = await build_report(journal, "camp-7", price_per_part=1000)
    assert data["rows"] == 40
    assert data["statuses"] == {"pending": 2, "sent": 33, "failed": 4, "unknown": 1}
    assert data["delivery"] == {
        "sent": 33, "delivered": 24, "undelivered": 3, "blocked": 2, "rejected": 1, "pending": 3,
    }  # fmt: skip
    routes = {r["route"]: r for r in data["routes"]}
    assert sum(r["rows"] for r in routes.values()) == 40
    assert sum(r["parts"] for r in routes.values()) == 33 * 2
    assert routes["negin:9830003300"]["cost"] == str(1000 * routes["negin:9830003300"]["parts"])
    # Failed, unknown, pending rows and the failed deliveries: 4 + 1 + 2 + 6.
    assert data["failures_total"] == len(data["failures"]) == 13
    shown = json.dumps(data)
    assert "+98912***" in shown
    assert "+989121000000" not in shown and "+989129999999" not in shown
    funnel = data["funnel"]
    assert funnel["accepted"][-1][1] == 33
    assert funnel["delivered"][-1][1] == 24
    assert funnel["not_delivered"][-1][1] == 6
    assert data["running"]  # deliveries still pending


async def test_unmasked_on_request() -> None:
    data = await build_report(await sample_journal(), "camp-7", mask=False)
    assert "+989129999999" in json.dumps(data)


async def test_page_is_self_contained(tmp_path: Path) -> None:
    path = await write_html(await sample_journal(), "camp-7", tmp_path / "r.html")
    page = path.read_text(encoding="utf-8")
    assert set(URL.findall(page)) <= ALLOWED_URLS
    assert not re.search(r"""<(?:link|script|img|iframe)[^>]+(?:src|href)=["'](?!data:)""", page)
    assert "@import" not in page and "url(" not in page
    # The journal's text cannot close the data script element.
    assert EVIL not in page and "</script> &" not in page
    assert page.count("</script>") == 3


async def test_live_app() -> None:
    journal = await sample_journal()
    app = report_app(journal)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        page = await client.get("/")
        data = await client.get("/data.json")
        other = await client.get("/data.json", params={"job": "nope"})
    assert page.status_code == 200 and '"live":true' in page.text
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert data.json()["job_id"] == "camp-7" and data.json()["rows"] == 40
    assert other.json()["rows"] == 0


async def test_live_app_answers_loopback_names_only() -> None:
    """A page loaded under another name (DNS rebinding to 127.0.0.1) gets nothing."""
    journal = await sample_journal()
    transport = httpx.ASGITransport(app=report_app(journal))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        rebound = await client.get("/data.json", headers={"host": "evil.example:8750"})
        local = await client.get("/data.json", headers={"host": "localhost:8750"})
    assert rebound.status_code == 400 and "camp-7" not in rebound.text
    assert local.status_code == 200


def test_render_empty_job() -> None:
    from smsgate.report import report_from_entries

    page = render_html(report_from_entries("empty", []))
    assert "report-data" in page
