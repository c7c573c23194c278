"""smsgate against its targets (shared/PERFORMANCE.md), in one run on this machine.

    uv run --group bench python -m benchmarks.dispatch            # every row, ~4 minutes
    uv run --group bench python -m benchmarks.dispatch --quick    # smaller counts, ~1 minute
    uv run --group bench python -m benchmarks.dispatch --rows throughput batched

Rows (each against smsgate's FakeProvider served by granian, one worker, in its own
process on 127.0.0.1; requests and recipients counted by the server):

* ``throughput``: BulkDispatcher over IppanelGateway, distinct texts (one recipient per
  request), concurrency 64, fake at 0 ms and 20 ms latency, interleaved with a hand-written
  aiohttp loop and a plain ``httpx.AsyncClient`` loop doing the same POSTs. The client's
  CPU time per request is measured in the same runs (the "overhead above the transport").
* ``batched``: one text to many recipients; requests must equal ceil(n / max_batch).
* ``limiter``: RateLimit(200/s) for a fixed number of requests; achieved rate and the
  worst sliding 1-second window, from the server's arrival times.
* ``rss``: peak RSS of a fresh process streaming 10k and 100k messages from a generator.
* ``import``: ``import smsgate`` in a fresh interpreter, and what it must not import.

The output is Markdown, ready for benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import asyncio  # the raw baselines are hand-written asyncio loops, as users write them
import bisect
import json
import math
import resource
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from ._harness import ROOT, Server, interleaved, machine, median, serve, table, versions

USER, PASSWORD, LINE = "user", "secret-pass", "+983000505"
CONCURRENCY = 64
FORBIDDEN_ON_IMPORT = ("httpx", "aiohttp", "fastapi", "starlette", "click", "rich", "respx")


def number(i: int) -> str:
    """The i-th distinct mobile number, local form."""
    return f"0912{i % 10_000_000:07d}"


def text(i: int) -> str:
    """A distinct GSM-7 text for row i (no two rows batch together)."""
    return f"Your code is {i:06d}. Thanks for using the benchmark."


def messages(n: int, *, same_text: bool = False) -> Iterator[Any]:
    """n messages from a generator, never a list (memory must stay flat)."""
    from smsgate import Message

    for i in range(n):
        yield Message(to=number(i), text=text(0) if same_text else text(i))


def ippanel_form(i: int) -> dict[str, str]:
    """The form IppanelGateway.send posts for row i (protocols/ippanel.md §2.4)."""
    return {
        "uname": USER,
        "pass": PASSWORD,
        "op": "send",
        "from": LINE,
        "message": text(i),
        "to": json.dumps([number(i)], separators=(",", ":")),
    }


# -- one run of each client --------------------------------------------------------------


async def _workers(n: int, post: Callable[[int], Any]) -> None:
    next_row = 0

    async def worker() -> None:
        nonlocal next_row
        while next_row < n:
            i = next_row
            next_row += 1
            await post(i)

    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))


async def raw_aiohttp(url: str, n: int) -> None:
    """The hand-written aiohttp loop: one session, 64 workers, the same POSTs.

    The form is encoded with ``urlencode`` per request, as smsgate does, rather than
    handed to aiohttp as a dict (its ``FormData`` path costs more): the strongest
    baseline, not the most common one.
    """
    import aiohttp

    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=CONCURRENCY)) as s:

        async def post(i: int) -> None:
            body = urlencode(ippanel_form(i)).encode()
            async with s.post(url + "/services.jspd", data=body, headers=headers) as answer:
                body = await answer.read()
                if not body.startswith(b"[0,"):
                    raise RuntimeError(body[:100])

        await _workers(n, post)


async def raw_httpx(url: str, n: int) -> None:
    """A plain ``httpx.AsyncClient`` loop (its default pool), 64 workers, the same POSTs."""
    import httpx

    async with httpx.AsyncClient() as client:

        async def post(i: int) -> None:
            answer = await client.post(url + "/services.jspd", data=ippanel_form(i))
            if not answer.content.startswith(b"[0,"):
                raise RuntimeError(answer.content[:100])

        await _workers(n, post)


async def smsgate_dispatch(
    url: str,
    n: int,
    *,
    same_text: bool = False,
    max_batch: int | None = None,
    rate: Any = None,
    journal: Any = None,
) -> Any:
    """BulkDispatcher over IppanelGateway with its defaults but for concurrency."""
    import smsgate

    gateway = smsgate.IppanelGateway(username=USER, password=PASSWORD, sender=LINE, base_url=url)
    async with gateway:
        dispatcher = smsgate.BulkDispatcher(
            gateway,
            concurrency=CONCURRENCY,
            max_batch=max_batch,
            rate_limit=rate,
            journal=journal,
            send_window=None,  # benchmarks run at any hour
        )
        report = await dispatcher.run(messages(n, same_text=same_text))
    if report.sent != n:
        raise RuntimeError(f"smsgate sent {report.sent} of {n}: {dict(report.errors)}")
    return report


async def smsgate_journaled(url: str, n: int) -> Any:
    """The same with the SQLite journal on (a fresh file per run: every row is new)."""
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        return await smsgate_dispatch(url, n, journal=Path(folder) / "bulk.sqlite")


async def gateway_loop(url: str, n: int) -> None:
    """IppanelGateway.send from 64 hand-written workers: smsgate without the dispatcher."""
    import smsgate

    gateway = smsgate.IppanelGateway(username=USER, password=PASSWORD, sender=LINE, base_url=url)
    async with gateway:

        async def post(i: int) -> None:
            await gateway.send(number(i), text(i))

        await _workers(n, post)


def timed(server: Server, run: Callable[[], None], n: int) -> dict[str, float]:
    """Run once; wall-clock rate from the server's own counts, and client CPU per request."""
    before = server.stats()
    wall, cpu = time.perf_counter(), time.process_time()
    run()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    after = server.stats()
    requests = after["requests"] - before["requests"]
    recipients = after["recipients"] - before["recipients"]
    if recipients != n:
        raise RuntimeError(f"the server saw {recipients} recipients, expected {n}")
    return {
        "rate": recipients / wall,
        "requests": requests,
        "cpu_us": cpu / max(requests, 1) * 1e6,
    }


# -- rows -------------------------------------------------------------------------------


def _throughput_runs(latency: float, n: int, repeats: int) -> dict[str, list[dict[str, float]]]:
    """Interleaved runs of every client against one fake at one latency."""
    clients: dict[str, Callable[[str, int], Any]] = {
        "smsgate": smsgate_dispatch,
        "journal": smsgate_journaled,
        "aiohttp": raw_aiohttp,
        "httpx": raw_httpx,
        "gateway": gateway_loop,
    }
    with serve("fake_app", latency=latency) as server:

        def candidate(client: Callable[[str, int], Any]) -> Callable[[], dict[str, float]]:
            return lambda: timed(server, lambda: asyncio.run(client(server.url, n)), n)

        runs: dict[str, list[dict[str, float]]] = interleaved(
            {name: candidate(c) for name, c in clients.items()}, repeats
        )
        return runs


def row_throughput(n: int, repeats: int, latencies: list[float]) -> list[list[str]]:
    """Dispatch throughput vs raw aiohttp and raw httpx, and CPU overhead."""
    rows = []
    for latency in latencies:
        results = _throughput_runs(latency, n, repeats)
        rate = {name: median([r["rate"] for r in runs]) for name, runs in results.items()}
        cpu = {name: median([r["cpu_us"] for r in runs]) for name, runs in results.items()}
        ms = f"{latency * 1000:.0f} ms"
        vs_aiohttp = rate["smsgate"] / rate["aiohttp"]
        vs_httpx = rate["smsgate"] / rate["httpx"]
        rows.append(
            [
                f"dispatch throughput, distinct texts, C=64, fake {ms}",
                f"smsgate {rate['smsgate']:,.0f} msg/s; aiohttp loop {rate['aiohttp']:,.0f}; "
                f"httpx loop {rate['httpx']:,.0f}; (IppanelGateway.send loop, no dispatcher: "
                f"{rate['gateway']:,.0f})",
                f"**{vs_aiohttp:.2f}×** aiohttp (≥ 0.95), **{vs_httpx:.1f}×** httpx (≥ 3)",
                _verdict(vs_aiohttp >= 0.95 and vs_httpx >= 3),
            ]
        )
        vs_off = rate["journal"] / rate["smsgate"]
        rows.append(
            [
                f"the same with the SQLite journal on, fake {ms}",
                f"journal on {rate['journal']:,.0f} msg/s; off {rate['smsgate']:,.0f}",
                f"**{vs_off:.2f}×** the journal-off rate (≥ 0.8)",
                _verdict(vs_off >= 0.8),
            ]
        )
        overhead = cpu["smsgate"] / cpu["aiohttp"] - 1
        rows.append(
            [
                f"client CPU per request, fake {ms}",
                f"smsgate {cpu['smsgate']:.0f} µs; aiohttp loop {cpu['aiohttp']:.0f} µs; "
                f"httpx loop {cpu['httpx']:.0f} µs; (IppanelGateway.send loop "
                f"{cpu['gateway']:.0f} µs)",
                f"smsgate above the transport: **{overhead:+.0%}** (≤ +20 %)",
                _verdict(overhead <= 0.20),
            ]
        )
    return rows


def row_batched(n: int, unbatched_n: int, repeats: int) -> list[list[str]]:
    """One text to many recipients, batched (max_batch 100) vs one per request."""
    with serve("fake_app") as server:
        url = server.url

        def batched() -> dict[str, float]:
            return timed(server, lambda: asyncio.run(smsgate_dispatch(url, n, same_text=True)), n)

        def unbatched() -> dict[str, float]:
            return timed(
                server,
                lambda: asyncio.run(
                    smsgate_dispatch(url, unbatched_n, same_text=True, max_batch=1)
                ),
                unbatched_n,
            )

        results = interleaved({"batched": batched, "unbatched": unbatched}, repeats)
    expected = math.ceil(n / 100)
    requests = {r["requests"] for r in results["batched"]}
    rate_b = median([r["rate"] for r in results["batched"]])
    rate_u = median([r["rate"] for r in results["unbatched"]])
    ok_requests = requests == {expected}
    return [
        [
            f"batched: one text to {n:,} recipients (ippanel, max_batch 100)",
            f"{rate_b:,.0f} recipients/s in {sorted(requests)} requests "
            f"(ceil(n/100) = {expected}); unbatched {rate_u:,.0f} recipients/s",
            f"**{rate_b / rate_u:.0f}×** unbatched (≥ 20); requests exact: {ok_requests}",
            _verdict(ok_requests and rate_b / rate_u >= 20),
        ]
    ]


def row_limiter(rate: int, seconds: float) -> list[list[str]]:
    """RateLimit(rate/s): achieved rate and the worst sliding 1 s window (server clock)."""
    import smsgate

    n = int(rate * seconds)
    with serve("fake_app") as server:
        server.arrivals()  # clear
        asyncio.run(smsgate_dispatch(server.url, n, rate=smsgate.RateLimit(rate, per=1.0)))
        times = sorted(server.arrivals())
    if len(times) != n:
        raise RuntimeError(f"the server saw {len(times)} requests, expected {n}")
    # n requests paced at `rate` span (n - 1) / rate seconds.
    achieved = (len(times) - 1) / (times[-1] - times[0])
    worst = max(bisect.bisect_left(times, t + 1.0) - i for i, t in enumerate(times))
    error = achieved / rate - 1
    return [
        [
            f"rate limiter, RateLimit({rate}/s, burst 1), {n:,} requests",
            f"achieved {achieved:.1f} req/s over {times[-1] - times[0]:.2f} s; "
            f"worst sliding 1 s window: {worst} requests",
            f"rate error **{error:+.2%}** (within ±1 %); worst window ≤ {rate + 1}",
            _verdict(abs(error) <= 0.01 and worst <= rate + 1),
        ]
    ]


def _peak_rss_mib() -> float:
    """This process's peak resident set size (VmHWM), in MiB.

    Not ``getrusage().ru_maxrss``: Linux carries that over ``execve`` from the parent, so a
    child started by a bigger process would report the parent's peak.
    """
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # not Linux


def _rss_child(n: int, url: str) -> None:
    """In a fresh process: stream n messages, print the peak RSS in MiB as JSON."""
    import aiohttp  # noqa: F401 - the baseline includes the HTTP stack, loaded either way
    import httpx  # noqa: F401

    import smsgate  # noqa: F401

    baseline = _peak_rss_mib()
    report = asyncio.run(smsgate_dispatch(url, n))
    peak = _peak_rss_mib()
    print(json.dumps({"n": n, "baseline": baseline, "peak": peak, "sent": report.sent}))


def row_rss(counts: list[int]) -> list[list[str]]:
    """Peak RSS of a fresh process per count (distinct texts: the most requests)."""
    peaks = {}
    with serve("fake_app") as server:
        for n in counts:
            out = subprocess.run(
                [sys.executable, "-m", "benchmarks.dispatch", "--rss-child", str(n), server.url],
                cwd=ROOT,
                capture_output=True,
                text=True,
                check=True,
                timeout=900,
            )
            peaks[n] = json.loads(out.stdout.strip().splitlines()[-1])
    small, large = counts[0], counts[-1]
    growth = peaks[large]["peak"] - peaks[small]["peak"]
    detail = "; ".join(
        f"{n:,}: peak {p['peak']:.1f} MiB (after imports {p['baseline']:.1f})"
        for n, p in peaks.items()
    )
    return [
        [
            f"peak RSS, messages streamed from a generator ({small:,} vs {large:,})",
            detail,
            f"{large:,} − {small:,}: **{growth:+.1f} MiB** (flat; ≤ 120 MB)",
            _verdict(peaks[large]["peak"] <= 120 * 1e6 / 2**20 and growth < 10),
        ]
    ]


def row_import(repeats: int) -> list[list[str]]:
    """``import smsgate`` in a fresh interpreter, minus a bare interpreter start."""
    probe = (
        "import sys, time; t = time.perf_counter(); import smsgate; "
        "d = time.perf_counter() - t; "
        f"print(d, [m for m in {FORBIDDEN_ON_IMPORT!r} if m in sys.modules])"
    )
    times, leaked = [], set()
    for _ in range(repeats + 1):  # the first run also compiles .pyc files
        out = subprocess.run(
            [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True
        )
        seconds, modules = out.stdout.split(" ", 1)
        times.append(float(seconds))
        leaked.update(json.loads(modules.replace("'", '"')))
    ms = median(times[1:]) * 1000
    return [
        [
            "import smsgate (fresh interpreter)",
            f"{ms:.0f} ms (median of {repeats}); heavy modules imported: "
            f"{', '.join(sorted(leaked)) or 'none'}",
            "≤ 150 ms, no httpx/aiohttp/FastAPI/CLI",
            _verdict(ms <= 150 and not leaked),
        ]
    ]


def _verdict(ok: bool) -> str:
    return "met" if ok else "**missed**"


def main() -> None:
    parser = argparse.ArgumentParser(description="smsgate benchmarks (see module docstring)")
    parser.add_argument("--quick", action="store_true", help="smaller counts")
    parser.add_argument(
        "--rows",
        nargs="*",
        default=["throughput", "batched", "limiter", "rss", "import"],
        choices=["throughput", "batched", "limiter", "rss", "import"],
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rss-child", nargs=2, metavar=("N", "URL"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rss_child:
        _rss_child(int(args.rss_child[0]), args.rss_child[1])
        return

    quick = args.quick
    print(machine())
    print(versions("smsgate-ir", "httpx", "aiohttp", "anyio", "granian", "starlette"))
    print()
    rows: list[list[str]] = []
    started = time.perf_counter()
    for name in args.rows:
        if name == "throughput":
            rows += row_throughput(1500 if quick else 3000, args.repeats, [0.0, 0.02])
        elif name == "batched":
            rows += row_batched(5000 if quick else 20_000, 1000 if quick else 2000, args.repeats)
        elif name == "limiter":
            rows += row_limiter(200, 3.0 if quick else 10.0)
        elif name == "rss":
            rows += row_rss([2_000, 20_000] if quick else [10_000, 100_000])
        elif name == "import":
            rows += row_import(5)
        print(f"  ({name} done after {time.perf_counter() - started:.0f} s)", file=sys.stderr)
    print(table(["what", "measured", "ratio / target", "verdict"], rows))


if __name__ == "__main__":
    main()
