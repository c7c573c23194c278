"""The report page: one self-contained HTML file (inline CSS, JS and SVG; nothing fetched).

The data travels inside the page as JSON (``<script type="application/json">``) and the
page's own script fills the counts, the tables and the SVG chart from it. Every value is
written with ``textContent``, never as HTML, so a provider's error text cannot inject
markup. In live mode (:func:`smsgate.report.serve`) the script asks the same origin for
``data.json`` every few seconds and redraws.
"""

from __future__ import annotations

import functools
import html
import json
from importlib import resources
from typing import Any

__all__ = ["render_html"]


def _asset(name: str) -> str:
    return (resources.files(__package__) / "assets" / name).read_text(encoding="utf-8")


@functools.cache
def _assets() -> tuple[str, str, str]:
    """(CSS, script, body) of the page, read once from the package."""
    return _asset("report.css"), _asset("report.js"), _asset("body.html")


def _json_for_script(value: Any) -> str:
    # Inside <script>, "</" would end the element and "<!--" start a comment: escape "<",
    # ">" and "&" as JSON unicode escapes (still the same JSON).
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def render_html(data: dict[str, Any], *, live: bool = False, refresh: float = 5.0) -> str:
    """The report page for ``data`` (from :func:`~smsgate.report.build_report`).

    Args:
        data: The report data.
        live: Poll ``data.json`` on the page's own origin every ``refresh`` seconds (what
            :func:`~smsgate.report.serve` uses); ``False`` for a file.
        refresh: Seconds between two polls in live mode.

    Returns:
        One HTML document with everything inline: no CDN, no font, no external fetch.
    """
    title = html.escape(f"smsgate job {data.get('job_id', '')}")
    config = {"live": live, "refresh": refresh}
    css, script, body = _assets()
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        # No favicon request: an inline empty icon.
        '<link rel="icon" href="data:,">'
        f"<title>{title}</title><style>{css}</style></head><body>\n{body}\n"
        f'<script type="application/json" id="report-data">{_json_for_script(data)}</script>\n'
        f'<script type="application/json" id="report-config">{_json_for_script(config)}</script>\n'
        f"<script>{script}</script>\n</body></html>\n"
    )
