"""Running the real ``smsgate`` command in a child process (for signals and stdout pipes)."""

from __future__ import annotations

import codecs
import os
import selectors
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

ENTRY = [sys.executable, "-m", "smsgate._cli_entry"]


@contextmanager
def smsgate_process(args: list[str], env: dict[str, str] | None = None) -> Iterator[Child]:
    """Start ``smsgate ARGS``; on exit, kill it if still running and reap it."""
    environ = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("SMSGATE_") and key not in ("UV", "UV_RUN_RECURSION_DEPTH", "COLUMNS")
    }
    environ.update({"PYTHONUNBUFFERED": "1", "NO_COLOR": "1", "SMSGATE_SEND_WINDOW": "off"})
    environ.update(env or {})
    process = subprocess.Popen(
        [*ENTRY, *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=environ,
    )
    child = Child(process)
    try:
        yield child
    finally:
        if process.poll() is None:
            process.kill()
        child.finish(timeout=30)
        child.close()


class Child:
    """A child process whose stdout and stderr are read as they come, without blocking."""

    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        self.process = process
        self.out: list[str] = []
        self.err: list[str] = []
        self._selector = selectors.DefaultSelector()
        assert process.stdout is not None and process.stderr is not None
        self._sinks = {process.stdout.fileno(): self.out, process.stderr.fileno(): self.err}
        self._decoders = {
            fd: codecs.getincrementaldecoder("utf-8")("replace") for fd in self._sinks
        }
        for fd in self._sinks:
            self._selector.register(fd, selectors.EVENT_READ)

    @property
    def stdout(self) -> str:
        return "".join(self.out)

    @property
    def stderr(self) -> str:
        return "".join(self.err)

    def _pump(self, timeout: float) -> bool:
        """Read what is available (waiting up to ``timeout``); False once both pipes closed."""
        if not self._selector.get_map():
            return False
        for key, _ in self._selector.select(timeout):
            fd = key.fd
            chunk = os.read(fd, 1 << 16)
            if chunk:
                self._sinks[fd].append(self._decoders[fd].decode(chunk))
            else:
                self._selector.unregister(fd)
        return True

    def wait_for(self, condition: Callable[[Child], bool], timeout: float = 30) -> None:
        """Read output until ``condition(self)`` holds (bounded by ``timeout`` seconds)."""
        deadline = time.monotonic() + timeout
        while not condition(self):
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"timed out; stdout:\n{self.stdout}\nstderr:\n{self.stderr}")
            if not self._pump(min(left, 0.2)) and self.process.poll() is not None:
                if condition(self):
                    return
                raise AssertionError(
                    f"exited {self.process.returncode}; stdout:\n{self.stdout}\n"
                    f"stderr:\n{self.stderr}"
                )

    def close(self) -> None:
        """Close the pipes."""
        self._selector.close()
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()

    def finish(self, timeout: float = 30) -> int:
        """Read everything until the process exits; its exit code."""
        deadline = time.monotonic() + timeout
        while self._pump(0.2) and time.monotonic() < deadline:
            pass
        return self.process.wait(max(0.1, deadline - time.monotonic()))
