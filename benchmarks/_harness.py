"""Shared benchmark plumbing: a server in its own process, server-side counts, statistics.

Every server listens on 127.0.0.1 only, and every loop in the benchmarks is bounded by a
message count. The server runs in a separate process (granian, one worker) so that the
client being measured does not share an interpreter, a GIL or an event loop with it.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

ROOT = Path(__file__).resolve().parent.parent
T = TypeVar("T")


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """A running benchmark server: ``url`` is its origin."""

    def __init__(self, process: subprocess.Popen[bytes], port: int) -> None:
        self.process = process
        self.port = port
        self.url = f"http://127.0.0.1:{port}"

    def stats(self) -> dict[str, int]:
        """The server's own counts: ``requests`` and ``recipients`` seen so far."""
        with urllib.request.urlopen(self.url + "/_bench/stats", timeout=10) as answer:  # noqa: S310 - loopback
            data: dict[str, int] = json.loads(answer.read())
        return data

    def arrivals(self) -> list[float]:
        """Arrival times (server clock, seconds) of requests since the last call (fake only)."""
        with urllib.request.urlopen(self.url + "/_bench/arrivals", timeout=30) as answer:  # noqa: S310 - loopback
            data: list[float] = json.loads(answer.read())
        return data

    def pid(self) -> int:
        """The server process id."""
        return self.process.pid


@contextlib.contextmanager
def serve(app: str, *, latency: float = 0.0, startup_timeout: float = 20.0) -> Iterator[Server]:
    """Run ``benchmarks._apps:<app>`` under granian (one worker) on 127.0.0.1.

    Args:
        app: ``"minimal_app"`` or ``"fake_app"``.
        latency: Seconds the app waits before each answer.
        startup_timeout: Seconds to wait until the port accepts connections.

    Yields:
        The running server; it is stopped on exit.
    """
    port = free_port()
    env = dict(os.environ, SMSGATE_BENCH_LATENCY=str(latency), PYTHONPATH=str(ROOT))
    command = [
        sys.executable,
        "-m",
        "granian",
        "--interface",
        "asgi",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
        "--no-ws",
        "--log-level",
        "warning",
        "--factory",
        f"benchmarks._apps:{app}",
    ]
    process = subprocess.Popen(command, env=env, cwd=ROOT)
    server = Server(process, port)
    try:
        deadline = time.monotonic() + startup_timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"the benchmark server exited with {process.returncode}")
            try:
                server.stats()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("the benchmark server did not start") from None
                time.sleep(0.05)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def median(values: Sequence[float]) -> float:
    """The median, or NaN for no values."""
    return statistics.median(values) if values else float("nan")


def interleaved(
    candidates: dict[str, Callable[[], T]], repeats: int, *, warmup: bool = True
) -> dict[str, list[T]]:
    """Run each candidate ``repeats`` times, interleaved A B C A B C ...

    Interleaving spreads the machine's drift (other processes on 2 shared cores) over
    every candidate instead of handing it to whichever ran last.

    Args:
        candidates: Name to a zero-argument callable returning one measurement.
        repeats: Rounds.
        warmup: Run every candidate once first and drop the result.

    Returns:
        Name to its measurements, in round order.
    """
    if warmup:
        for run in candidates.values():
            run()
    results: dict[str, list[T]] = {name: [] for name in candidates}
    for _ in range(repeats):
        for name, run in candidates.items():
            results[name].append(run())
    return results


def machine() -> str:
    """One line describing the machine and the interpreter."""
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return (
        f"{os.cpu_count()} cores ({cpu}), Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}"
    )


def versions(*names: str) -> str:
    """``name version`` for each installed distribution, comma-separated."""
    from importlib import metadata

    out = []
    for name in names:
        try:
            out.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            out.append(f"{name} (not installed)")
    return ", ".join(out)


def table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)
