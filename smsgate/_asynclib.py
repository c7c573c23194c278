"""Which event loop library is running: one answer for every module that must know.

smsgate runs on asyncio and trio through anyio; a few places still differ by library (the
default HTTP transport, the job task behind ``stream()``, asyncpg's asyncio-only driver).
They all ask here, and this asks sniffio, which both loops report to.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["loop_clock", "running_library"]


def running_library() -> str | None:
    """``"asyncio"``, ``"trio"`` (or another sniffio name), or ``None`` outside a loop."""
    import sniffio

    try:
        return sniffio.current_async_library()
    except sniffio.AsyncLibraryNotFoundError:
        return None


def loop_clock(clock: Callable[[], float]) -> Callable[[], float]:
    """``clock``; for :func:`anyio.current_time`, the running loop's own clock function.

    The same readings, without anyio asking sniffio which loop runs on every call (a
    microsecond, which a bulk job would pay per row). Call it inside the loop.
    """
    import anyio

    if clock is not anyio.current_time:
        return clock
    library = running_library()
    if library == "asyncio":
        import asyncio  # noqa: TID251 - the loop's clock is what anyio itself reads

        return asyncio.get_running_loop().time
    if library == "trio":
        import trio

        return trio.current_time
    return clock
