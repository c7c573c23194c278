"""``BulkDispatcher``: many messages through one gateway, or a fallback chain of routes.

This module is the public surface: settings (checked here, once), ``run``, ``stream``,
``estimate`` and ``statistics``. A job's work lives in ``_job`` (reading, workers,
stopping) and ``_sending`` (claim, pace, send, record); admission and batching in
``_intake``; keys in ``_dedupe``; limiter arithmetic in ``_pacing``; counters and
progress in ``_progress``; the send window in ``_window``.

Errors: a child task turns :class:`~smsgate.SmsGateError` into outcomes, so one bad row
never cancels the others. A journal that fails ends the job with one
:class:`~smsgate.JournalError` (``.report``: what was done). A row that is not a
``Message`` raises ``TypeError``. Cancellation propagates; nothing is left running and no
limiter token stays held.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Sized
from decimal import Decimal
from typing import TYPE_CHECKING

import anyio
import attrs

from .._gateway import SmsGateway, SupportsCredit
from ..exceptions import ConfigurationError, JournalError
from ._context import JobContext, Settings, check_job_id
from ._dedupe import fingerprint
from ._fallback import FallbackPolicy
from ._intake import Admission, Item, Messages, aiter_rows
from ._job import Job
from ._journal import Journal, JournalEntry, claimable
from ._limiter import RateLimit, RateLimiter, TokenBucket, _is_int, _PauseOnly
from ._pacing import clamp_for_limiter, parts
from ._retry import RetryPolicy, as_retry_policy
from ._stream import OutcomeStream
from ._values import REASON_DUPLICATE, BulkReport, Estimate, Outcome, Progress
from ._window import WindowSetting, check_setting, resolve

if TYPE_CHECKING:
    from anyio.streams.memory import MemoryObjectSendStream

__all__ = ["MAX_CONCURRENCY", "BulkDispatcher", "DispatcherStatistics"]

_DEFAULT_RETRIES = RetryPolicy()
#: The most requests one dispatcher keeps in flight. No provider serves more at once from
#: one account (ippanel and Negin throttle long before), and each in-flight request holds a
#: task, a connection and a socket buffer: beyond this, more concurrency only costs memory.
MAX_CONCURRENCY = 1024
#: ``drain_timeout`` and ``recent_window`` are bounded by a day: a longer value is a unit
#: mistake (milliseconds for seconds), not a plan.
_DAY = 86_400.0


@attrs.frozen(kw_only=True)
class DispatcherStatistics:
    """A snapshot of a :class:`BulkDispatcher`.

    Attributes:
        concurrency: The cap on requests in flight.
        borrowed: Concurrency tokens held now (0 once every job ended or was cancelled).
        waiting: Tasks waiting for a concurrency token.
        in_flight: Requests being sent now.
        jobs: Jobs running now.
    """

    concurrency: int
    borrowed: int
    waiting: int
    in_flight: int
    jobs: int


def _seconds(name: str, value: object, *, allow_none: bool = False, minimum: float = 0.0) -> None:
    if value is None and allow_none:
        return
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or not minimum <= value <= _DAY
    ):
        raise ConfigurationError(
            f"{name} must be a number of seconds in [{minimum:g}, {_DAY:g}], not {value!r}"
        )


class BulkDispatcher:
    """Send many messages through one gateway (or a fallback chain), fast and accountably.

    Concurrency (``concurrency`` requests in flight) and rate (``rate_limit``: requests,
    recipients or SMS parts that may *start* per window) are separate knobs: a slow
    provider needs concurrency to reach its rate, and a fast one needs the rate limit to
    stay within its contract.

    Args:
        gateway: An :class:`~smsgate.SmsGateway`, or a :class:`FallbackPolicy` of routes.
        rate_limit: A :class:`RateLimit` (the in-memory :class:`TokenBucket` enforces it),
            any :class:`RateLimiter` (e.g. one shared by several processes), or ``None``:
            no pacing, but a provider's "too many requests" still pauses the whole job for
            its ``retry_after``.
        concurrency: Requests in flight at most (shared by every job of this dispatcher),
            1 to :data:`MAX_CONCURRENCY` (1024). Workers start as batches need them.
        max_batch: Recipients per request, where the route's gateway takes several
            (``max_recipients > 1``); ``None`` uses each gateway's ``max_recipients``.
        journal: ``None``, a path (an ``SqliteJournal`` file, opened and closed by each
            job) or any :class:`Journal` (not closed by the dispatcher). Every batch is
            claimed in it before it is sent, so concurrent runs of one job (tasks,
            processes) never both send a row. Without a journal, concurrent runs of one
            job id *on this dispatcher* still split the rows (an in-memory set that lives
            while a run of the job does); nothing is remembered once they end.
        retries: A :class:`RetryPolicy`, or the number of retries (0 or ``None``: none).
            Default: up to 3 retries of ``NotSentError`` and ``RateLimitedError``; never
            a retry of an error that may have been sent.
        on_progress: Called with a :class:`Progress` event at most every
            ``progress_interval`` seconds, and once at the end. It runs in the job's task:
            keep it quick (update a progress bar).
        progress_interval: Seconds between two progress events.
        linger: Seconds a partial batch waits for more rows of the same text when the
            input is an async iterable that is slow to deliver them.
        recent_window: Seconds. With a journal that can tell (``recent_sends``), a row
            whose recipient got the same text from the same line in *another* job of the
            journal within this window is ``skipped`` (``reason == REASON_SENT_RECENTLY``).
            ``None`` (the default) looks at this job only.
        drain_timeout: Seconds a stopping job (``stop`` set, or an account-wide error)
            lets its requests in flight finish; then they are cancelled (in doubt).
        send_window: A :class:`SendWindow` (requests start only inside it; outside, the
            job pauses), ``None`` (no window), or ``"auto"``: the default window
            (08:00-23:00 Asia/Tehran) on routes whose gateway is named ``"ippanel"`` (its
            advertising lines may not send outside it; pattern sends, which do not go
            through the dispatcher, are exempt), none elsewhere and none for a gateway
            whose ``base_url`` is on this machine (a fake provider); the environment
            variable ``SMSGATE_SEND_WINDOW=off`` turns "auto" off. A :class:`Route` may
            carry its own.
        clock: Returns the time in seconds (default :func:`anyio.current_time`).
        sleep: Sleeps that many seconds (default :func:`anyio.sleep`); used for retry
            back-off, the send window and by the default limiter.
        wall_clock: Seconds since the epoch (default :func:`time.time`): journal times,
            ``recent_window`` and the send window.

    Raises:
        ConfigurationError: For settings that cannot work (with the reason).
    """

    def __init__(
        self,
        gateway: SmsGateway | FallbackPolicy,
        *,
        rate_limit: RateLimit | RateLimiter | None = None,
        concurrency: int = 32,
        max_batch: int | None = None,
        journal: Journal | str | os.PathLike[str] | None = None,
        retries: RetryPolicy | int | None = _DEFAULT_RETRIES,
        on_progress: Callable[[Progress], object] | None = None,
        progress_interval: float = 0.25,
        linger: float = 0.05,
        recent_window: float | None = None,
        drain_timeout: float = 10.0,
        send_window: WindowSetting = "auto",
        clock: Callable[[], float] | None = None,
        sleep: Callable[[float], Awaitable[object]] | None = None,
        wall_clock: Callable[[], float] | None = None,
    ) -> None:
        self.policy = (
            gateway if isinstance(gateway, FallbackPolicy) else FallbackPolicy.single(gateway)
        )
        if not _is_int(concurrency, 1):
            raise ConfigurationError(f"concurrency must be an int >= 1, not {concurrency!r}")
        if concurrency > MAX_CONCURRENCY:
            raise ConfigurationError(
                f"concurrency={concurrency} is more than {MAX_CONCURRENCY}: no provider serves "
                "that many requests at once from one account, and each one in flight holds "
                "memory and a connection; use the rate limit to go faster"
            )
        if max_batch is not None and not _is_int(max_batch, 1):
            raise ConfigurationError(f"max_batch must be None or an int >= 1, not {max_batch!r}")
        _seconds("progress_interval", progress_interval)
        _seconds("linger", linger)
        _seconds("recent_window", recent_window, allow_none=True, minimum=1e-3)
        _seconds("drain_timeout", drain_timeout)
        self.send_window = check_setting(send_window)
        self._clock: Callable[[], float] = clock or anyio.current_time
        self._sleep: Callable[[float], Awaitable[object]] = sleep or anyio.sleep
        self.limiter: RateLimiter
        if rate_limit is None:
            self.limiter = _PauseOnly(clock=clock, sleep=sleep)
        elif isinstance(rate_limit, RateLimit):
            self.limiter = TokenBucket.from_limit(rate_limit, clock=clock, sleep=sleep)
        elif isinstance(rate_limit, RateLimiter):
            self.limiter = rate_limit
        else:
            raise ConfigurationError(
                f"rate_limit must be a RateLimit, a RateLimiter or None, not {rate_limit!r}"
            )
        if journal is not None and not isinstance(journal, str | os.PathLike | Journal):
            raise ConfigurationError(f"journal must be a path or a Journal, not {journal!r}")
        self.concurrency = concurrency
        self.max_batch = max_batch
        self.journal = journal
        self.retries = as_retry_policy(retries)
        self.recent_window = recent_window
        self.drain_timeout = drain_timeout
        windows = tuple(
            resolve(self.send_window, route.send_window, route.gateway)
            for route in self.policy.routes
        )
        self._ctx = JobContext(
            policy=self.policy,
            limiter=self.limiter,
            retry=self.retries,
            settings=Settings(
                concurrency=concurrency,
                max_batch=max_batch,
                linger=linger,
                on_progress=on_progress,
                progress_interval=progress_interval,
                recent_window=recent_window,
                drain_timeout=drain_timeout,
            ),
            journal=journal,
            clock=self._clock,
            sleep=self._sleep,
            wall=wall_clock or time.time,
            windows=windows,
        )

    def __repr__(self) -> str:
        routes = ", ".join(self.policy.names())
        return (
            f"<BulkDispatcher routes=[{routes}] concurrency={self.concurrency} "
            f"limiter={self.limiter!r}>"
        )

    @property
    def on_progress(self) -> Callable[[Progress], object] | None:
        """The progress callback (settable)."""
        return self._ctx.settings.on_progress

    @on_progress.setter
    def on_progress(self, value: Callable[[Progress], object] | None) -> None:
        self._ctx.settings.on_progress = value

    # -- public API -----------------------------------------------------------------------------

    async def run(
        self,
        messages: Messages,
        job_id: str = "default",
        *,
        total: int | None = None,
        check_credit: bool = False,
        price_per_part: Decimal | int | str | None = None,
        stop: anyio.Event | None = None,
    ) -> BulkReport:
        """Send every message and return the report once all are accounted for.

        Args:
            messages: Any iterable or async iterable of :class:`~smsgate.Message`, read
                lazily (a generator of a million rows is fine).
            job_id: The job's id in the journal (reruns with the same id resume).
            total: Rows expected, for progress events (default: ``len(messages)`` when it
                has one).
            check_credit: Run :meth:`estimate` first and raise before sending anything if
                the account's credit does not cover the job. Needs ``price_per_part`` and
                an input that can be read twice (a list, not a generator).
            price_per_part: Rial per SMS part, for ``check_credit``.
            stop: When set, the job stops reading rows, lets requests in flight finish
                (up to ``drain_timeout``), reports every row read but not sent ``failed``
                with :class:`~smsgate.JobStoppedError` (a rerun sends them) and returns;
                :attr:`BulkReport.stopped` says why.

        Returns:
            The :class:`BulkReport`.

        Raises:
            InsufficientCreditError: With ``check_credit``, when the credit is short.
            ConfigurationError: ``check_credit`` without a price or with a one-shot input.
            JournalError: The journal failed; ``.report`` holds what was done.
            TypeError: A row is not a ``Message`` (the job stops there).
        """
        if check_credit:
            await self._check_credit(messages, job_id, price_per_part)
        failures: list[Outcome] = []

        async def keep_failures(outcome: Outcome) -> None:
            if outcome.status == "failed" or outcome.status == "unknown":
                failures.append(outcome)

        job = Job(self._ctx, job_id, _total(messages, total), stop)
        try:
            await job.execute(messages, keep_failures)
        except JournalError as exc:
            exc.report = job.meter.report(failures)
            raise
        return job.meter.report(failures)

    def stream(
        self,
        messages: Messages,
        job_id: str = "default",
        *,
        total: int | None = None,
        stop: anyio.Event | None = None,
    ) -> OutcomeStream:
        """Send every message, yielding one :class:`Outcome` per row as each finishes.

        The job runs while you iterate (in a task of its own). Leaving the loop early
        (``break``, an exception) stops it: no request starts after that, and the job's
        task ends on the event loop's next turn. To also wait until it has ended, use
        the stream as a context manager::

            async with dispatcher.stream(rows) as outcomes:
                async for outcome in outcomes:
                    ...

        Args:
            messages: Any iterable or async iterable of :class:`~smsgate.Message`.
            job_id: The job's id in the journal.
            total: Rows expected, for progress events.
            stop: As for :meth:`run`.

        Returns:
            An async iterator of :class:`Outcome` (one per row, in the order they finish)
            that is also an async context manager. A failing journal raises
            :class:`~smsgate.JournalError` from the iteration.
        """
        job = Job(self._ctx, job_id, _total(messages, total), stop)

        async def runner(job: Job, send: MemoryObjectSendStream[Outcome]) -> None:
            try:
                await job.execute(messages, send.send)
            except JournalError as exc:
                exc.report = job.meter.report()
                raise

        return OutcomeStream(job, messages, runner, self.concurrency)

    async def estimate(
        self,
        messages: Messages,
        *,
        price_per_part: Decimal | int | str | None = None,
        job_id: str | None = None,
    ) -> Estimate:
        """A dry run: count what a job would send and cost, without sending anything.

        Reads the whole input (lazily, in constant memory apart from the duplicate
        filter and one counter per distinct text), with the same admission rule as a
        job, asks the first route's gateway for its credit where it can tell
        (:class:`~smsgate.SupportsCredit`), and, given ``job_id`` and a journal, leaves
        out rows an earlier run already sent or left in doubt.

        Args:
            messages: The job's rows.
            price_per_part: Rial per SMS part; gives ``cost`` and lets
                :meth:`Estimate.check` compare it with the credit.
            job_id: Consult the journal for this job.

        Returns:
            An :class:`Estimate`; call :meth:`Estimate.check` to raise
            ``InsufficientCreditError`` when the credit is short.
        """
        price = None if price_per_part is None else Decimal(str(price_per_part))
        if job_id is not None:
            check_job_id(job_id)
        # (text, line) fingerprint -> [rows, parts of the text]: 8-byte keys, not texts.
        groups: dict[int, list[int]] = {}
        duplicates = invalid = already = recipients = total_parts = 0
        journal, owned, _where = await self._ctx.open_journal()
        try:
            use_journal = (
                journal is not None and job_id is not None and job_id in await journal.jobs()
            )
        except BaseException:
            if owned and journal is not None:
                with anyio.CancelScope(shield=True):
                    await journal.aclose()
            raise
        admission = Admission(self.policy.routes[0], keyed=use_journal, legacy=use_journal)
        try:
            pending: list[Item] = []

            async def settle(items: list[Item]) -> None:
                nonlocal already, recipients, total_parts
                known: dict[str, JournalEntry] = {}
                if use_journal and journal is not None and job_id is not None and items:
                    keys = [i.key for i in items] + [a for i in items for a in i.aliases]
                    known = await journal.get(job_id, keys)
                for item in items:
                    taken = [known[k] for k in (item.key, *item.aliases) if k in known]
                    if any(not claimable(entry) for entry in taken):
                        already += 1
                        continue
                    recipients += 1
                    text = item.message.text
                    group = fingerprint("", text, item.line)
                    counter = groups.get(group)
                    if counter is None:
                        counter = groups[group] = [0, parts(text)]
                    counter[0] += 1
                    total_parts += counter[1]

            async for message in aiter_rows(messages):
                result = admission.admit(message)
                if isinstance(result, Outcome):
                    if result.reason == REASON_DUPLICATE:
                        duplicates += 1
                    else:
                        invalid += 1
                    continue
                pending.append(result)
                if len(pending) >= 512:
                    await settle(pending)
                    pending = []
            await settle(pending)
        finally:
            if owned and journal is not None:
                with anyio.CancelScope(shield=True):
                    await journal.aclose()
        size = self._ctx.batch_size(0)
        requests = 0
        for count, text_parts in groups.values():
            per = clamp_for_limiter(size, text_parts, self.limiter) or 1
            requests += math.ceil(count / per)
        credit: Decimal | None = None
        gateway = self.policy.routes[0].gateway
        if isinstance(gateway, SupportsCredit):
            credit = await gateway.credit()
        return Estimate(
            rows=admission.rows,
            recipients=recipients,
            duplicates=duplicates,
            invalid=invalid,
            already_done=already,
            requests=requests,
            parts=total_parts,
            price_per_part=price,
            cost=None if price is None else price * total_parts,
            credit=credit,
            provider=gateway.name,
        )

    def statistics(self) -> DispatcherStatistics:
        """A snapshot: tokens held, requests in flight, jobs running."""
        slots = self._ctx.slots
        jobs = [job for job in self._ctx.jobs if isinstance(job, Job)]
        return DispatcherStatistics(
            concurrency=self.concurrency,
            borrowed=slots.borrowed,
            waiting=slots.waiting,
            in_flight=sum(job.in_flight for job in jobs),
            jobs=len(jobs),
        )

    # -- internals ------------------------------------------------------------------------------

    async def _check_credit(
        self, messages: Messages, job_id: str, price_per_part: Decimal | int | str | None
    ) -> None:
        if price_per_part is None:
            raise ConfigurationError("check_credit=True needs price_per_part (Rial per part)")
        if _iter_once(messages):
            raise ConfigurationError(
                "check_credit=True reads the input twice; pass a list (or another "
                "re-iterable), not a generator or iterator"
            )
        estimate = await self.estimate(messages, price_per_part=price_per_part, job_id=job_id)
        estimate.check()


def _iter_once(messages: object) -> bool:
    """Whether ``messages`` can be read only once (an iterator or async iterator)."""
    if isinstance(messages, AsyncIterable):
        return isinstance(messages, AsyncIterator)
    return iter(messages) is messages  # type: ignore[call-overload]


def _total(messages: object, total: int | None) -> int | None:
    if total is not None:
        return total
    return len(messages) if isinstance(messages, Sized) else None
