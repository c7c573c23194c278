"""Before and after: the same clients from two checkouts, alternately, against one fake.

    uv run --group bench python -m benchmarks.checkouts /path/to/other/checkout
    uv run --group bench python -m benchmarks.checkouts OTHER --latency 0.02 --rounds 4
    uv run --group bench python -m benchmarks.checkouts OTHER --clients batched unbatched

``benchmarks.dispatch`` runs every client in one process of one checkout, so a change is
compared with the code before it across two runs, minutes apart; on a shared machine the
drift between them can be larger than the change. Here each client runs in a fresh process
of its checkout (``<checkout>/.venv/bin/python``, importing that checkout's
``benchmarks.dispatch`` and smsgate), rounds alternate (other, this, other, this...) against
one FakeProvider served by granian (this checkout's), and the table gives medians: client
CPU per request above the raw aiohttp loop, rates, and requests counted by the server.
Each process makes a warm-up run (a quarter of the rows) before the timed one, as the
benchmark's first round does.
"""

from __future__ import annotations

import argparse
import json
import subprocess
from pathlib import Path
from typing import Any

from ._harness import ROOT, machine, median, serve, table

#: Rows per timed run, by client (the same as ``benchmarks.dispatch``'s full rows).
ROWS = {"aiohttp": 3000, "gateway": 3000, "dispatch": 3000, "batched": 20_000, "unbatched": 2000}

# Run inside the checkout (cwd), with its interpreter: only its benchmarks.dispatch.
_CHILD = """
import asyncio, json, sys, time
sys.path.insert(0, ".")
from benchmarks import dispatch as d
client, n, url = sys.argv[1], int(sys.argv[2]), sys.argv[3]
def run(k):
    if client == "aiohttp":
        return d.raw_aiohttp(url, k)
    if client == "gateway":
        return d.gateway_loop(url, k)
    if client == "dispatch":
        return d.smsgate_dispatch(url, k)
    if client == "batched":
        return d.smsgate_dispatch(url, k, same_text=True)
    return d.smsgate_dispatch(url, k, same_text=True, max_batch=1)
asyncio.run(run(max(n // 4, 200)))
wall, cpu = time.perf_counter(), time.process_time()
asyncio.run(run(n))
print(json.dumps({"wall": time.perf_counter() - wall, "cpu": time.process_time() - cpu}))
"""


def _one(checkout: Path, client: str, url: str, server: Any) -> dict[str, float]:
    rows = ROWS[client]
    before = server.stats()
    done = subprocess.run(
        [str(checkout / ".venv" / "bin" / "python"), "-c", _CHILD, client, str(rows), url],
        cwd=checkout,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode:
        raise RuntimeError(f"{client} in {checkout} failed:\n{done.stderr[-2000:]}")
    after = server.stats()
    measured = json.loads(done.stdout.strip().splitlines()[-1])
    warm = max(rows // 4, 200)
    requests = after["requests"] - before["requests"]
    if after["recipients"] - before["recipients"] != rows + warm:
        raise RuntimeError(f"the server saw a wrong number of recipients for {client}")
    timed = requests * rows / (rows + warm)  # the warm-up's share taken out
    return {
        "rate": rows / measured["wall"],
        "cpu_us": measured["cpu"] / timed * 1e6,
        "requests": requests,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description="two checkouts' clients, alternately")
    parser.add_argument("other", type=Path, help="the other checkout (with its own .venv)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--latency", type=float, default=0.0, help="fake latency, seconds")
    parser.add_argument(
        "--clients", nargs="+", default=["aiohttp", "gateway", "dispatch"], choices=list(ROWS)
    )
    args = parser.parse_args()
    trees = {"other": args.other.resolve(), "this": ROOT}
    results: dict[tuple[str, str], list[dict[str, float]]] = {}
    with serve("fake_app", latency=args.latency) as server:
        for _ in range(args.rounds):
            for client in args.clients:
                # The raw aiohttp loop is the same code in both: run it from this one.
                for name in ("this",) if client == "aiohttp" else ("other", "this"):
                    run = _one(trees[name], client, server.url, server)
                    results.setdefault((client, name), []).append(run)
    print(machine())
    print(f"other: {trees['other']}; fake latency {args.latency * 1000:.0f} ms; ", end="")
    print(f"medians of {args.rounds} alternating rounds\n")
    raw_cpu = median([r["cpu_us"] for r in results.get(("aiohttp", "this"), [])])
    rows = []
    for (client, name), runs in results.items():
        cpu = median([r["cpu_us"] for r in runs])
        # Per request with one recipient each: not the batched client's 100.
        above = "" if client in ("aiohttp", "batched") else f"{cpu / raw_cpu - 1:+.0%}"
        rows.append(
            [
                client,
                name,
                f"{median([r['rate'] for r in runs]):,.0f}",
                f"{cpu:.0f}",
                above,
                str(sorted({int(r["requests"]) for r in runs})),
            ]
        )
    header = ["client", "checkout", "rows/s", "CPU µs/request", "above aiohttp", "requests"]
    print(table(header, rows))
    if ("batched", "this") in results and ("unbatched", "this") in results:
        for name in ("other", "this"):
            batched = median([r["rate"] for r in results[("batched", name)]])
            unbatched = median([r["rate"] for r in results[("unbatched", name)]])
            print(f"\nbatched / unbatched, {name}: {batched / unbatched:.1f}×", end="")
        print()


if __name__ == "__main__":
    main()
