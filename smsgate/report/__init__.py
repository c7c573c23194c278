"""The report page of a bulk job: counts, delivery funnel, routes, failures.

* :func:`build_report` reads a job from its journal into JSON-ready data (numbers masked
  by default: ``+98912***4567``);
* :func:`render_html` turns it into one self-contained HTML file (inline CSS, JS and SVG,
  nothing fetched from anywhere); :func:`write_html` does both into a file;
* :func:`serve` serves the same page live on 127.0.0.1 (needs the ``cli`` extra:
  starlette and uvicorn), refreshing while the job runs; :func:`report_app` is its ASGI app.

``smsgate report JOURNAL --job-id ID --html FILE`` and ``smsgate serve JOURNAL`` are the
command-line forms.
"""

from __future__ import annotations

import os
from decimal import Decimal
from pathlib import Path

import anyio

from ..dispatch import Journal
from ._data import MAX_FAILURES, MAX_POINTS, build_report, mask_number, report_from_entries
from ._html import render_html
from ._server import DEFAULT_PORT, report_app, serve

__all__ = [
    "DEFAULT_PORT",
    "MAX_FAILURES",
    "MAX_POINTS",
    "build_report",
    "mask_number",
    "render_html",
    "report_app",
    "report_from_entries",
    "serve",
    "write_html",
]


async def write_html(
    journal: Journal,
    job_id: str,
    path: str | os.PathLike[str],
    *,
    mask: bool = True,
    price_per_part: Decimal | int | str | None = None,
) -> Path:
    """Write the report page of ``job_id`` to ``path`` (one self-contained file).

    Args:
        journal: The job's journal.
        job_id: The job.
        path: Where to write (UTF-8); replaced if it exists.
        mask: Hide the middle of phone numbers (the default).
        price_per_part: Rial per SMS part, for the cost column.

    Returns:
        The path written.
    """
    data = await build_report(journal, job_id, mask=mask, price_per_part=price_per_part)
    target = Path(path)
    await anyio.Path(target).write_text(render_html(data), encoding="utf-8")
    return target
