"""Helpers of the end-to-end test and the workers benchmark: worker processes started with
the documented command (``taskiq worker module:broker``), the arrival windows at the fake."""

from __future__ import annotations

import bisect
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
AMQP_URL = os.environ.get("SMSGATE_TEST_AMQP", "amqp://guest:guest@127.0.0.1:5672/")


def settings(
    *, fake_url: str, redis: str, journal: str, rate: float, chunk: int = 500, concurrency: int = 16
) -> dict[str, str]:
    """The environment of one run's workers (and of its submitter): names of its own."""
    run = uuid.uuid4().hex[:10]
    return {
        "SMSGATE_E2E_FAKE": fake_url,
        "SMSGATE_E2E_AMQP": AMQP_URL,
        "SMSGATE_E2E_QUEUE": f"smsgate-test-{run}",
        "SMSGATE_E2E_NAME": f"e2e{run}",
        "SMSGATE_E2E_REDIS": redis,
        "SMSGATE_E2E_JOURNAL": journal,
        "SMSGATE_E2E_RATE": str(rate),
        "SMSGATE_E2E_CHUNK": str(chunk),
        "SMSGATE_E2E_CONCURRENCY": str(concurrency),
    }


@contextlib.contextmanager
def fake_process() -> Iterator[str]:
    """The fake provider in a process of its own (``_fake_process``), so that its arrival
    stamps are not held up by the test's or the benchmark's own process; its URL."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.taskiq._fake_process"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().decode()  # bounded: the process prints it or exits
        if not line.startswith("port "):
            raise RuntimeError(f"the fake provider did not start: {line!r}")
        yield f"http://127.0.0.1:{int(line.split()[1])}"
    finally:
        proc.terminate()
        proc.wait(20)
        if proc.stdout is not None:
            proc.stdout.close()


def fake_ledger(url: str) -> tuple[list[float], list[tuple[str, str]]]:
    """The fake process's arrival stamps (every POST, sorted) and its ledger
    ``(recipient, message id)``."""
    from ._fake_process import LEDGER_PATH

    with urllib.request.urlopen(url + LEDGER_PATH, timeout=30) as answer:  # noqa: S310 - loopback
        data = json.loads(answer.read())
    return sorted(data["arrivals"]), [(r, m) for r, m in data["ledger"]]


def start_worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """One worker machine: ``taskiq worker`` (its manager and one worker process) in a
    process group of its own, so the whole group can be killed at once."""
    with log.open("ab") as out:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "taskiq",
                "worker",
                "tests.taskiq._worker_app:broker",
                "--workers",
                "1",
                "--shutdown-timeout",
                "10",
                "--log-level",
                "WARNING",
            ],
            cwd=ROOT,
            env={**os.environ, **env, "PYTHONPATH": str(ROOT)},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def kill(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL the worker's whole process group: no clean-up, no acknowledgement."""
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(30)


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop a worker politely (SIGTERM), or kill it after a bounded wait."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(20)
    except (subprocess.TimeoutExpired, ProcessLookupError):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


def wait_for(condition: Callable[[], bool], *, timeout: float, what: str) -> None:
    """Bounded polling of a condition another process makes true."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.05)


def worst_window(times: Sequence[float], per: float = 1.0) -> int:
    """The most arrivals in any window ``[t, t + per)`` that starts at an arrival."""
    if not times:
        return 0
    return max(bisect.bisect_left(times, t + per) - i for i, t in enumerate(times))


def messages(count: int, *, distinct_every: int = 10) -> list[tuple[str, str]]:
    """``count`` distinct recipients: every ``distinct_every``-th row has a text of its own,
    the others share their chunk's campaign text (batched, up to 100 per request)."""
    rows = []
    for i in range(count):
        text = f"your code {i}" if i % distinct_every == 0 else f"campaign {i // 500}"
        rows.append((f"0912{i:07d}", text))
    return rows


def per_second(times: Sequence[float]) -> list[int]:
    """Arrivals in each whole second since the first (for the report of a run)."""
    if not times:
        return []
    counts = [0] * (int(times[-1] - times[0]) + 1)
    for t in times:
        counts[int(t - times[0])] += 1
    return counts
