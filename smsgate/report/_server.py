"""``serve()``: the report page live on 127.0.0.1 (Starlette under uvicorn, the ``cli`` extra).

``GET /`` answers the page of one job (``?job=ID`` picks another; by default the job given,
else the journal's last one), ``GET /data.json`` its data; the page polls the latter every
few seconds, so it follows a job while it runs. Nothing else is served, and by default only
on the loopback interface: the page lists failed numbers (masked unless told otherwise).
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from ..dispatch import Journal
from ..exceptions import ConfigurationError
from ._data import build_report
from ._html import render_html

__all__ = ["DEFAULT_PORT", "report_app", "serve"]

#: The port :func:`serve` listens on by default.
DEFAULT_PORT = 8750


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


#: The ``Host`` names of a page served on loopback.
LOOPBACK_HOSTS: tuple[str, ...] = ("127.0.0.1", "localhost", "::1", "[::1]")


def report_app(
    journal: Journal,
    *,
    job_id: str | None = None,
    mask: bool = True,
    price_per_part: Decimal | int | str | None = None,
    refresh: float = 5.0,
    allowed_hosts: Sequence[str] | None = LOOPBACK_HOSTS,
) -> Any:
    """The ASGI app that :func:`serve` runs (mount it in your own server if you like).

    Args:
        journal: The journal to read (it is not closed by the app).
        job_id: The job shown by default; ``None``: the journal's last job.
        mask: Hide the middle of phone numbers.
        price_per_part: Rial per SMS part, for the cost column.
        refresh: Seconds between two polls of the live page.
        allowed_hosts: The ``Host`` headers answered (others get HTTP 400), so that a web
            page the browser was tricked into loading under another name (DNS rebinding)
            cannot read the report from 127.0.0.1; ``None`` answers any.
    """
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.middleware.trustedhost import TrustedHostMiddleware
    from starlette.requests import Request
    from starlette.responses import HTMLResponse, JSONResponse, Response
    from starlette.routing import Route

    async def pick(request: Request) -> str | None:
        wanted = request.query_params.get("job") or job_id
        if wanted is not None:
            return wanted
        jobs = await journal.jobs()
        return jobs[-1] if jobs else None

    async def data(request: Request) -> Response:
        chosen = await pick(request)
        if chosen is None:
            return JSONResponse({"error": "the journal holds no job"}, status_code=404)
        report = await build_report(journal, chosen, mask=mask, price_per_part=price_per_part)
        return JSONResponse(report, headers={"cache-control": "no-store"})

    async def page(request: Request) -> Response:
        chosen = await pick(request)
        if chosen is None:
            return HTMLResponse("<!DOCTYPE html><p>The journal holds no job yet.</p>", 404)
        report = await build_report(journal, chosen, mask=mask, price_per_part=price_per_part)
        return HTMLResponse(
            render_html(report, live=True, refresh=refresh),
            headers={
                "cache-control": "no-store",
                # The page needs nothing from anywhere else; say so to the browser too.
                "content-security-policy": (
                    "default-src 'none'; script-src 'unsafe-inline'; "
                    "style-src 'unsafe-inline'; connect-src 'self'; img-src data:"
                ),
            },
        )

    middleware = (
        []
        if allowed_hosts is None
        else [Middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts))]
    )
    return Starlette(routes=[Route("/", page), Route("/data.json", data)], middleware=middleware)


async def serve(
    journal: Journal | str | os.PathLike[str],
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    *,
    job_id: str | None = None,
    mask: bool = True,
    price_per_part: Decimal | int | str | None = None,
    refresh: float = 5.0,
    allow_remote: bool = False,
) -> None:
    """Serve the report page live until cancelled (asyncio: uvicorn's loop).

    Args:
        journal: A journal, or the path of an SQLite journal file (opened and closed here).
        host: The interface; loopback only unless ``allow_remote``.
        port: The TCP port.
        job_id: The job shown by default (``?job=ID`` picks another).
        mask: Hide the middle of phone numbers.
        price_per_part: Rial per SMS part, for the cost column.
        refresh: Seconds between two polls of the page.
        allow_remote: Permit a non-loopback ``host`` (the page lists failed numbers).

    Raises:
        ConfigurationError: A non-loopback host without ``allow_remote``.
    """
    import uvicorn

    if not allow_remote and not _is_loopback(host):
        raise ConfigurationError(
            f"serve() listens on loopback only unless allow_remote=True (got {host!r})"
        )
    owned = None
    if isinstance(journal, str | os.PathLike):
        from ..dispatch import SqliteJournal

        journal = owned = SqliteJournal(journal)
    try:
        app = report_app(
            journal,
            job_id=job_id,
            mask=mask,
            price_per_part=price_per_part,
            refresh=refresh,
            # A remote listener is reached by whatever name its users give it.
            allowed_hosts=None if allow_remote else (*LOOPBACK_HOSTS, host),
        )
        config = uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="off")
        await uvicorn.Server(config).serve()
    finally:
        if owned is not None:
            await owned.aclose()
