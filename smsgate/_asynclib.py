"""Which event loop library is running: one answer for every module that must know.

smsgate runs on asyncio and trio through anyio; a few places still differ by library (the
default HTTP transport, the job task behind ``stream()``, asyncpg's asyncio-only driver).
They all ask here, and this asks sniffio, which both loops report to.
"""

from __future__ import annotations

__all__ = ["running_library"]


def running_library() -> str | None:
    """``"asyncio"``, ``"trio"`` (or another sniffio name), or ``None`` outside a loop."""
    import sniffio

    try:
        return sniffio.current_async_library()
    except sniffio.AsyncLibraryNotFoundError:
        return None
