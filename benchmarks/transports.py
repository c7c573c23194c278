"""Which HTTP transport should smsgate's own client use? Measure, don't guess.

N form POSTs of an ippanel ``op=send`` body at concurrency 1, 16 and 64 against the
minimal ASGI app (granian, one worker, its own process), interleaved A B C ... over
several rounds; the table shows the median requests per second, counted by the server.

    uv run --group bench python -m benchmarks.transports [--n 3000] [--repeats 3]

Candidates that are not installed are reported as such and skipped.
"""

from __future__ import annotations

import argparse
import asyncio  # the raw asyncio baselines are the point of this script
import importlib.util
import json
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from ._harness import Server, interleaved, machine, median, serve, table, versions

FORM = {
    "uname": "user",
    "pass": "secret-pass",
    "op": "send",
    "from": "+983000505",
    "message": "Hello from the benchmark",
    "to": json.dumps(["9121111111"]),
}
PATH = "/services.jspd"

Post = Callable[[], Awaitable[None]]


async def _drive(post: Post, n: int, concurrency: int) -> None:
    """``concurrency`` workers sharing one counter until ``n`` requests are done."""
    left = n

    async def worker() -> None:
        nonlocal left
        while left > 0:
            left -= 1
            await post()

    await asyncio.gather(*(worker() for _ in range(concurrency)))


async def _run_aiohttp(url: str, n: int, concurrency: int) -> None:
    import aiohttp

    connector = aiohttp.TCPConnector(limit=64)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def post() -> None:
            async with session.post(url, data=FORM) as answer:
                await answer.read()

        await _drive(post, concurrency, concurrency)  # open the connections first
        await _drive(post, n, concurrency)


def _httpx_runner(
    make_transport: Callable[[Any], Any] | None,
) -> Callable[[str, int, int], Coroutine[Any, Any, None]]:
    async def run(url: str, n: int, concurrency: int) -> None:
        import httpx

        limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
        transport = make_transport(limits) if make_transport else None
        async with httpx.AsyncClient(limits=limits, transport=transport) as client:

            async def post() -> None:
                answer = await client.post(url, data=FORM)
                answer.raise_for_status()

            await _drive(post, concurrency, concurrency)
            await _drive(post, n, concurrency)

    return run


def _httpx_aiohttp(limits: Any) -> Any:
    from httpx_aiohttp import AiohttpTransport

    return AiohttpTransport(limits=limits)


def _pyreqwest(limits: Any) -> Any:
    from pyreqwest.compatibility.httpx import HttpxTransport

    return HttpxTransport()


def _smsgate_http(transport: str) -> Callable[[str, int, int], Coroutine[Any, Any, None]]:
    """smsgate's HTTP layer as a backend uses it (error mapping included), on ``transport``."""

    async def run(url: str, n: int, concurrency: int) -> None:
        import anyio

        from smsgate.backends._http import HttpGateway

        base, path = url.rsplit("/", 1)
        async with HttpGateway(
            base_url=base,
            max_connections=64,
            transport=transport,  # type: ignore[arg-type]
        ) as gateway:
            left = n

            async def worker() -> None:
                nonlocal left
                while left > 0:
                    left -= 1
                    await gateway._request("POST", "/" + path, data=FORM)

            for total in (concurrency, n):
                left = total
                async with anyio.create_task_group() as group:
                    for _ in range(concurrency):
                        group.start_soon(worker)

    return run


async def _run_dispatcher(url: str, n: int, concurrency: int) -> None:
    """The bulk dispatcher over IppanelGateway, distinct texts (no batching), default transport."""
    import smsgate
    from smsgate.dispatch import BulkDispatcher

    base = url.rsplit("/", 1)[0]
    async with smsgate.IppanelGateway(
        username="user",
        password="secret-pass",
        sender="+983000505",
        base_url=base,
        max_connections=concurrency,
    ) as gateway:
        dispatcher = BulkDispatcher(gateway, concurrency=concurrency)
        for start, count in ((0, concurrency), (concurrency, n)):
            rows = [
                smsgate.Message(to=f"0912{start + i:07d}", text=f"hello {start + i}")
                for i in range(count)
            ]
            report = await dispatcher.run(rows, job_id=f"bench-{start}")
            if report.sent != count:
                raise RuntimeError(f"the dispatcher sent {report.sent} of {count}")


async def _run_httpx2(url: str, n: int, concurrency: int) -> None:
    import httpx2

    limits = httpx2.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx2.AsyncClient(limits=limits) as client:

        async def post() -> None:
            answer = await client.post(url, data=FORM)
            answer.raise_for_status()

        await _drive(post, concurrency, concurrency)
        await _drive(post, n, concurrency)


def _trio_httpx(url: str, n: int, concurrency: int, *, sized: bool = False) -> None:
    import httpx
    import trio

    async def main() -> None:
        # sized: the pool exactly as large as the concurrency, every connection kept alive.
        size = concurrency if sized else 64
        limits = httpx.Limits(max_connections=size, max_keepalive_connections=size)
        async with httpx.AsyncClient(limits=limits) as client:
            left = n

            async def worker(total: int) -> None:
                nonlocal left
                while left > 0:
                    left -= 1
                    answer = await client.post(url, data=FORM)
                    answer.raise_for_status()

            for total in (concurrency, n):
                left = total
                async with trio.open_nursery() as nursery:
                    for _ in range(concurrency):
                        nursery.start_soon(worker, total)

    trio.run(main)


def _run_trio(run: Callable[[str, int, int], Awaitable[None]], *args: Any) -> None:
    import anyio

    anyio.run(run, *args, backend="trio")


#: name -> (modules it needs, how to run it once: (url, n, concurrency) -> None)
CANDIDATES: dict[str, tuple[tuple[str, ...], Callable[[str, int, int], None]]] = {
    "aiohttp (raw loop)": (("aiohttp",), lambda u, n, c: asyncio.run(_run_aiohttp(u, n, c))),
    "httpx default pool": (("httpx",), lambda u, n, c: asyncio.run(_httpx_runner(None)(u, n, c))),
    "httpx + httpx-aiohttp": (
        ("httpx_aiohttp",),
        lambda u, n, c: asyncio.run(_httpx_runner(_httpx_aiohttp)(u, n, c)),
    ),
    "smsgate HTTP layer, asyncio (aiohttp, the default)": (
        ("smsgate", "aiohttp"),
        lambda u, n, c: asyncio.run(_smsgate_http("auto")(u, n, c)),
    ),
    "smsgate HTTP layer, asyncio, httpx": (
        ("smsgate",),
        lambda u, n, c: asyncio.run(_smsgate_http("httpx")(u, n, c)),
    ),
    "smsgate HTTP layer, asyncio, h11": (
        ("smsgate",),
        lambda u, n, c: asyncio.run(_smsgate_http("h11")(u, n, c)),
    ),
    "smsgate HTTP layer, trio, httpx pool": (
        ("smsgate", "trio"),
        lambda u, n, c: _run_trio(_smsgate_http("httpx"), u, n, c),
    ),
    "smsgate HTTP layer, trio, h11 (the default)": (
        ("smsgate", "trio"),
        lambda u, n, c: _run_trio(_smsgate_http("auto"), u, n, c),
    ),
    "smsgate BulkDispatcher, asyncio": (
        ("smsgate", "aiohttp"),
        lambda u, n, c: asyncio.run(_run_dispatcher(u, n, c)),
    ),
    "smsgate BulkDispatcher, trio": (
        ("smsgate", "trio"),
        lambda u, n, c: _run_trio(_run_dispatcher, u, n, c),
    ),
    "httpx + pyreqwest": (
        ("pyreqwest",),
        lambda u, n, c: asyncio.run(_httpx_runner(_pyreqwest)(u, n, c)),
    ),
    "httpx2 (fork)": (("httpx2",), lambda u, n, c: asyncio.run(_run_httpx2(u, n, c))),
    "httpx default pool, trio": (("httpx", "trio"), _trio_httpx),
    "httpx pool sized to C, trio": (
        ("httpx", "trio"),
        lambda u, n, c: _trio_httpx(u, n, c, sized=True),
    ),
}


def measure(
    server: Server, names: list[str], n: int, concurrency: int, repeats: int
) -> dict[str, float]:
    """Median requests/s per candidate at one concurrency, interleaved."""

    def one(name: str) -> Callable[[], float]:
        run = CANDIDATES[name][1]

        def go() -> float:
            before = server.stats()["requests"]
            started = time.perf_counter()
            run(server.url + PATH, n, concurrency)
            elapsed = time.perf_counter() - started
            done = server.stats()["requests"] - before - concurrency  # minus the warm-up
            if done != n:
                raise RuntimeError(f"{name}: the server counted {done} requests, not {n}")
            return n / elapsed

        return go

    results = interleaved({name: one(name) for name in names}, repeats, warmup=False)
    return {name: median(values) for name, values in results.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=3000, help="requests per run")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved rounds")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16, 64])
    parser.add_argument("--latency", type=float, default=0.0, help="server latency, seconds")
    parser.add_argument("--only", nargs="*", help="candidate names (substring match)")
    args = parser.parse_args()

    names = []
    for name, (modules, _) in CANDIDATES.items():
        if args.only and not any(part in name for part in args.only):
            continue
        missing = [m for m in modules if importlib.util.find_spec(m) is None]
        if missing:
            print(f"skipping {name}: {', '.join(missing)} not installed")
            continue
        names.append(name)

    print(machine())
    print(
        versions("httpx", "httpcore", "aiohttp", "httpx-aiohttp", "pyreqwest", "httpx2", "granian")
    )
    print(
        f"N={args.n} POSTs per run, median of {args.repeats} interleaved rounds, "
        f"server latency {args.latency * 1000:.0f} ms; requests/s counted by the server\n"
    )
    columns: dict[int, dict[str, float]] = {}
    with serve("minimal_app", latency=args.latency) as server:
        for concurrency in args.concurrency:
            columns[concurrency] = measure(server, names, args.n, concurrency, args.repeats)
    header = ["client", *(f"C = {c}" for c in args.concurrency)]
    rows = [[name, *(f"{columns[c][name]:,.0f}" for c in args.concurrency)] for name in names]
    print(table(header, rows))


if __name__ == "__main__":
    main()
