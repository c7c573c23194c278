"""A job's counters and the progress events built from them."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from ._values import BulkReport, Outcome, OutcomeStatus, Progress

__all__ = ["Meter"]


class Meter:
    """Counts of one run, the smoothed rate, and the :class:`Progress` / report values."""

    def __init__(
        self,
        job_id: str,
        total: int | None,
        clock: Callable[[], float],
        on_progress: Callable[[Progress], object] | None,
        interval: float,
    ) -> None:
        self.job_id = job_id
        self.total = total
        self.clock = clock
        self.on_progress = on_progress
        self.interval = interval
        self.read = 0
        self.counts: dict[OutcomeStatus, int] = {"sent": 0, "failed": 0, "unknown": 0, "skipped": 0}
        self.errors: dict[str, int] = {}
        self.duplicates = 0
        self.invalid = 0
        self.requests = 0
        self.retries = 0
        self.in_flight = 0
        self.started = 0.0
        self.ended: float | None = None
        self.stopped: str | None = None
        self.paused_until: float | None = None
        self.last_progress = 0.0
        self.samples: deque[tuple[float, int]] = deque(maxlen=8)  # (time, done) for the rate
        self.rate = 0.0

    def start(self) -> None:
        self.started = self.last_progress = self.clock()
        self.samples.append((self.started, 0))

    def count(self, outcome: Outcome) -> None:
        """Count one outcome (and its error class)."""
        self.counts[outcome.status] += 1
        error = outcome.error
        if error is not None and outcome.status != "sent" and outcome.status != "skipped":
            name = type(error).__name__
            self.errors[name] = self.errors.get(name, 0) + 1

    def progress(self, *, final: bool = False, force: bool = False) -> None:
        """Hand a :class:`Progress` event to the callback (at most every ``interval``)."""
        callback = self.on_progress
        if callback is None:
            return
        now = self.clock()
        if not final and not force and now - self.last_progress < self.interval:
            return
        counts = self.counts
        done = counts["sent"] + counts["failed"] + counts["unknown"] + counts["skipped"]
        elapsed = max(0.0, now - self.started)
        if final:
            self.rate = done / elapsed if elapsed > 0 else 0.0
        else:
            # The rate over the last few events (up to 8 intervals): recent enough to
            # follow a slow-down, long enough not to jump with each batch.
            then, done_then = self.samples[0]
            self.rate = (done - done_then) / (now - then) if now > then else 0.0
            self.samples.append((now, done))
        self.last_progress = now
        eta: float | None = None
        if self.total is not None and self.rate > 0:
            eta = max(0, self.total - done) / self.rate
        elif final:
            eta = 0.0
        callback(
            Progress(
                job_id=self.job_id,
                total=self.total,
                read=self.read,
                done=done,
                sent=counts["sent"],
                failed=counts["failed"],
                unknown=counts["unknown"],
                skipped=counts["skipped"],
                requests=self.requests,
                in_flight=self.in_flight,
                elapsed=elapsed,
                rate=self.rate,
                eta=eta,
                final=final,
                paused_until=None if final else self.paused_until,
                stopped=self.stopped,
            )
        )

    def report(self, failures: list[Outcome] | tuple[Outcome, ...] = ()) -> BulkReport:
        """The :class:`BulkReport` of what was done so far."""
        end = self.ended if self.ended is not None else self.clock()
        return BulkReport(
            total=self.read,
            sent=self.counts["sent"],
            failed=self.counts["failed"],
            unknown=self.counts["unknown"],
            skipped=self.counts["skipped"],
            requests=self.requests,
            elapsed=max(0.0, end - self.started),
            errors=self.errors,
            failures=tuple(failures),
            job_id=self.job_id,
            duplicates=self.duplicates,
            invalid=self.invalid,
            retries=self.retries,
            stopped=self.stopped,
        )
