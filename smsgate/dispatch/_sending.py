"""The send path of one job: claim, pace, send, retry, split, fall back, record, report.

For each batch a worker takes (see ``_job``):

1. with a journal, ``recent_window`` rows are looked up (sent by another job lately:
   skipped), then the rest are **claimed** (:meth:`Journal.claim`); only the rows won are
   sent. A row lost to another run is reported from the journal: ``skipped`` if it was
   sent, ``unknown`` if it is pending or in doubt;
2. each request waits for the send window, the rate limiter and the route's breaker, then
   goes out; while the job is not known to be healthy (its first request, or after a
   connection failure) one request goes at a time, so a wrong password or an unreachable
   host costs one request, not one per worker;
3. the answer is recorded (:meth:`Journal.record`) and reported, one :class:`Outcome` per row.

Errors: a :class:`~smsgate.SmsGateError` becomes the rows' outcome. Any other exception
from ``gateway.send`` (a bug, a ``UnicodeEncodeError`` from an encoder) cannot tell whether
the request left, so its rows are ``unknown`` (never resent blindly) and the job goes on.
A journal that fails ends the job with :class:`~smsgate.JournalError`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import anyio

from .. import _telemetry
from .._models import SendReceipt
from ..exceptions import (
    AccountRestrictedError,
    AuthenticationError,
    CircuitOpenError,
    ConfigurationError,
    InsufficientCreditError,
    InvalidRecipientError,
    JobStoppedError,
    JournalError,
    NotSentError,
    OutcomeUnknownError,
    RateLimitedError,
    RecipientOptedOutError,
    SendWindowError,
    SmsGateError,
    TooManyRecipientsError,
)
from ._context import JobContext
from ._fallback import Route
from ._intake import Admission, Item
from ._journal import Journal, JournalEntry, JournalStatus, claimable
from ._pacing import amount, clamp_for_limiter, parts
from ._progress import Meter
from ._values import (
    REASON_ALREADY_SENT,
    REASON_IN_DOUBT,
    REASON_JOB_STOPPED,
    REASON_MAYBE_SENT,
    REASON_SENT_RECENTLY,
    Outcome,
    OutcomeStatus,
)

__all__ = ["ACCOUNT_WIDE", "CONNECTION_STREAK", "Sender", "Sink"]

T = TypeVar("T")
Sink = Callable[[Outcome], Awaitable[None]]

#: Characters of an error's text kept in a journal row.
_DETAIL_CHARS = 200
#: A batch refused with one of these (and not maybe_sent) was refused for one of its
#: numbers, or for its size: split it in halves and send each, so one bad number costs
#: log2(batch) extra requests instead of the whole batch.
_SPLIT_ON: tuple[type[SmsGateError], ...] = (
    InvalidRecipientError,  # RecipientRejectedError too
    TooManyRecipientsError,
    RecipientOptedOutError,
)
#: Answers that no other row of the job can escape (on the last route): the job stops.
ACCOUNT_WIDE: tuple[type[SmsGateError], ...] = (
    AuthenticationError,
    InsufficientCreditError,
    AccountRestrictedError,
)
#: Requests in a row (after their retries) that never reached the provider: the job stops.
CONNECTION_STREAK = 3
#: Claim rounds for rows that turned claimable between a lost claim and its read-back.
_CLAIM_ROUNDS = 3


class Sender:
    """The state and the send path of one run of a job (``_job.Job`` adds the reading)."""

    def __init__(self, ctx: JobContext, job_id: str, meter: Meter) -> None:
        self.ctx = ctx
        self.job_id = job_id
        self.meter = meter
        self.policy = ctx.policy
        self.limiter = ctx.limiter
        self.retry = ctx.retry
        self.journal: Journal | None = None
        self.journal_where: str | None = None
        self.admission: Admission | None = None
        self.sink: Sink | None = None
        self.stopping: str | None = None
        self.abandoned = False  # a stream's consumer left: no request may start
        self.healthy = False  # a request got an answer: requests need not go one by one
        self.probe = anyio.Lock()
        self.streak = 0  # consecutive requests that never reached the provider
        self.journal_error: JournalError | None = None

    # -- hooks the job provides ------------------------------------------------------------

    def request_stop(self, reason: str) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    async def wait_window(self, index: int, item: Item) -> None:  # pragma: no cover
        raise NotImplementedError

    def window_refused(self, index: int, error: SendWindowError) -> None:  # pragma: no cover
        raise NotImplementedError

    def journal_broken(self, error: JournalError) -> None:  # pragma: no cover
        raise NotImplementedError

    def window_open(self, index: int) -> bool:  # pragma: no cover
        raise NotImplementedError

    # -- the journal, with its failures made plain -----------------------------------------

    async def journal_call(self, call: Awaitable[T]) -> T:
        """Await a journal call; any failure becomes one :class:`JournalError`."""
        try:
            return await call
        except JournalError:
            raise
        except Exception as exc:
            where = self.journal_where or repr(self.journal)
            error = JournalError(
                f"the journal {where} failed ({type(exc).__name__}: {exc}); the job stopped. "
                "Fix the storage (free disk space, permissions, the database) and run the "
                "same job id again: rows recorded as sent are not sent again, rows left "
                "pending are reported in doubt",
                path=self.journal_where,
            )
            error.__cause__ = exc
            self.journal_broken(error)
            raise error from exc

    def _entries(
        self,
        items: list[Item],
        status: JournalStatus,
        route: Route,
        *,
        receipt: SendReceipt | None = None,
        error: SmsGateError | None = None,
    ) -> list[JournalEntry]:
        now = self.ctx.wall()
        first = items[0]
        text_parts = first.parts
        if not text_parts:  # once per batch (distinct texts miss the parts cache)
            text_parts = parts(first.message.text)
            for item in items:
                item.parts = text_parts
        return [
            JournalEntry(
                key=item.key,
                recipient=item.recipient,
                status=status,
                route=route.name,
                provider=route.gateway.name,
                message_id=(
                    None
                    if receipt is None
                    else receipt.message_ids.get(item.recipient, receipt.message_id)
                ),
                error=None if error is None else type(error).__name__,
                detail=None if error is None else str(error)[:_DETAIL_CHARS],
                updated=now,
                parts=text_parts,
                aliases=item.aliases,
            )
            for item in items
        ]

    async def record(
        self,
        items: list[Item],
        status: JournalStatus,
        route: Route,
        *,
        receipt: SendReceipt | None = None,
        error: SmsGateError | None = None,
    ) -> None:
        """Write the state of rows this run claimed (others are not ours to write)."""
        journal = self.journal
        if journal is None or self.journal_error is not None:
            return  # no journal, or a broken one (the job is ending with its error)
        mine = [i for i in items if i.claimed]
        if mine:
            entries = self._entries(mine, status, route, receipt=receipt, error=error)
            await self.journal_call(journal.record(self.job_id, entries))

    # -- outcomes --------------------------------------------------------------------------

    async def emit(
        self, outcome: Outcome, item: Item | None = None, *, observed: bool = False
    ) -> None:
        """Count and hand over one outcome (``observed``: telemetry already has it)."""
        if item is not None:
            item.done = True
        if not observed:
            _telemetry.outcome(None, outcome.route, outcome.status, 1)
        self.meter.count(outcome)
        assert self.sink is not None
        await self.sink(outcome)
        if self.meter.on_progress is not None:
            self.meter.progress()

    async def sent(self, items: list[Item], receipt: SendReceipt, route: Route) -> None:
        await self.record(items, "sent", route, receipt=receipt)
        _telemetry.outcome(route.gateway.name, route.name, "sent", len(items))
        for item in items:
            await self.emit(
                Outcome(
                    message=item.message,
                    status="sent",
                    recipient=item.recipient,
                    receipt=receipt,
                    route=route.name,
                ),
                item,
                observed=True,
            )

    async def finish(
        self,
        items: list[Item],
        status: OutcomeStatus,
        error: SmsGateError,
        route: Route,
        reason: str | None = None,
    ) -> None:
        await self.record(items, "unknown" if status == "unknown" else "failed", route, error=error)
        _telemetry.outcome(route.gateway.name, route.name, status, len(items))
        for item in items:
            await self.emit(
                Outcome(
                    message=item.message,
                    status=status,
                    recipient=item.recipient,
                    error=error,
                    route=route.name,
                    reason=reason,
                ),
                item,
                observed=True,
            )

    def stopped_error(self) -> JobStoppedError:
        return JobStoppedError(
            f"job {self.job_id!r} stopped before this row was sent ({self.stopping}); "
            "run the job again to send it"
        )

    async def fail_stopped(self, items: list[Item], route: Route | None = None) -> None:
        """Rows admitted but never sent: ``failed`` with ``JobStoppedError`` (claimable)."""
        route = route or self.policy.routes[0]
        await self.finish(items, "failed", self.stopped_error(), route, REASON_JOB_STOPPED)

    # -- one batch -------------------------------------------------------------------------

    async def process(self, items: list[Item]) -> None:
        """Send one batch a worker took from the reader."""
        if self.stopping is not None or self.abandoned:
            await self.fail_stopped(items)
            return
        if self.journal is not None and self.ctx.settings.recent_window is not None:
            items = await self._skip_recent(items)
            if not items:
                return
        await self.deliver(items, 0)

    async def _skip_recent(self, items: list[Item]) -> list[Item]:
        """Leave out rows another job of this journal sent within ``recent_window``."""
        journal = self.journal
        lookup = getattr(journal, "recent_sends", None)
        window = self.ctx.settings.recent_window
        if lookup is None or window is None:
            return items
        since = self.ctx.wall() - window
        found: dict[str, str] = await self.journal_call(
            lookup([i.key for i in items], since=since, exclude_job=self.job_id)
        )
        if not found:
            return items
        fresh: list[Item] = []
        for item in items:
            other = found.get(item.key)
            if other is None:
                fresh.append(item)
                continue
            await self.emit(
                Outcome(
                    message=item.message,
                    status="skipped",
                    recipient=item.recipient,
                    reason=REASON_SENT_RECENTLY,
                    route=None,
                ),
                item,
            )
        return fresh

    async def _claim(self, items: list[Item]) -> list[Item]:
        """Claim the rows; report those another run holds; return those this run won."""
        journal = self.journal
        assert journal is not None
        route = self.policy.routes[0]
        todo = items
        for _ in range(_CLAIM_ROUNDS):
            entries = self._entries(todo, "pending", route)
            won = await self.journal_call(journal.claim(self.job_id, entries))
            lost: list[Item] = []
            for item in todo:
                if item.key in won:
                    item.claimed = True
                else:
                    lost.append(item)
            if not lost:
                break
            todo = await self._report_lost(lost)
            if not todo:
                break
        else:  # still claimable after several rounds: someone keeps changing them
            await self._in_doubt(todo, None)
        return [i for i in items if i.claimed]

    async def _report_lost(self, lost: list[Item]) -> list[Item]:
        """Report rows whose claim another run holds; return those claimable again."""
        assert self.journal is not None
        keys = [i.key for i in lost] + [a for i in lost for a in i.aliases]
        known = await self.journal_call(self.journal.get(self.job_id, keys))
        again: list[Item] = []
        for item in lost:
            entry = known.get(item.key)
            if entry is None or claimable(entry):
                entry = next(
                    (known[a] for a in item.aliases if a in known and not claimable(known[a])),
                    entry,
                )
            if entry is None or claimable(entry):
                again.append(item)  # it changed since the claim: try again
            elif entry.status == "sent":
                await self.emit(
                    Outcome(
                        message=item.message,
                        status="skipped",
                        recipient=item.recipient,
                        route=entry.route,
                        reason=REASON_ALREADY_SENT,
                    ),
                    item,
                )
            else:
                await self._in_doubt([item], entry)
        return again

    async def _in_doubt(self, items: list[Item], entry: JournalEntry | None) -> None:
        state = "pending" if entry is None else entry.status
        cause = "" if entry is None else f" ({entry.error or 'in flight'})"
        error = OutcomeUnknownError(
            f"another run of job {self.job_id!r} holds this recipient {state!r}{cause}: it is "
            "being sent now, or a run that died left it in doubt; it is not sent again here: "
            "reconcile it through the provider's status call"
        )
        for item in items:
            await self.emit(
                Outcome(
                    message=item.message,
                    status="unknown",
                    recipient=item.recipient,
                    error=error,
                    route=None if entry is None else entry.route,
                    reason=REASON_IN_DOUBT,
                ),
                item,
            )

    async def deliver(self, items: list[Item], index: int) -> None:
        """Send rows on route ``index``, in batches that fit it."""
        route = self.policy.routes[index]
        if index > 0:
            await self.record(items, "pending", route)  # the route changed (fallback)
        text_parts = parts(items[0].message.text) if self.limiter.unit == "parts" else 1
        size = clamp_for_limiter(self.ctx.batch_size(index), text_parts, self.limiter)
        if size < 1:
            error = ConfigurationError(
                f"one message of {text_parts} parts is more than the rate "
                f"limit lets start in one window ({self.limiter.max_amount} parts)"
            )
            await self.finish(items, "failed", error, route)
            return
        for start in range(0, len(items), size):
            await self.attempt(items[start : start + size], index)

    async def attempt(self, items: list[Item], index: int) -> None:
        """One request (with its retries) on route ``index``; then split, fall back or
        record the result."""
        route = self.policy.routes[index]
        if self.healthy:
            result = await self._request(items, index, route)
        else:
            # Not known to work yet (the first request, or after a connection failure):
            # one request at a time, so an account-wide failure costs one request.
            await self.probe.acquire()
            if self.healthy:  # the request before this one got an answer: go freely
                self.probe.release()
                result = await self._request(items, index, route)
            else:
                try:
                    result = await self._request(items, index, route)
                finally:
                    self.probe.release()
        if result is None:
            return  # stopped, lost to another run, or sent in part and then in full
        items, answer = result
        if isinstance(answer, SendReceipt):
            await self.sent(items, answer, route)
        else:
            await self.settle(items, index, answer)

    async def _request(
        self, items: list[Item], index: int, route: Route
    ) -> tuple[list[Item], SendReceipt | SmsGateError] | None:
        breaker = self.policy.breaker
        message = items[0].message
        sender = route.sender_for(message.sender)
        attempt = 0
        while True:
            attempt += 1
            if self.stopping is None:
                await self.wait_window(index, items[0])
            if self.stopping is None:
                await self._pace(len(items), message.text)
                if not self.window_open(index):
                    attempt -= 1  # the window closed while it waited: wait again
                    continue
            if self.stopping is not None or self.abandoned:
                await self.fail_stopped(items, route)
                return None
            if self.journal is not None and not items[0].claimed:
                # Claimed as late as possible (after the window and the limiter), so rows
                # left waiting by a cancelled job are not in doubt: only what was sent is.
                items = await self._claim(items)
                if not items:
                    return None
            permit = None
            if breaker is not None:
                permit = breaker.acquire(route.name)
                if permit is None:
                    return items, CircuitOpenError(route.name)
            result = await self._send(route, items, message.text, sender, permit)
            if isinstance(result, SendReceipt):
                self.healthy = True
                self.streak = 0
                return items, result
            error = result
            if not error.maybe_sent:
                for item in items:
                    item.sending = False
            if not isinstance(error, (NotSentError, *ACCOUNT_WIDE)):
                self.healthy = True  # the provider answered
            partial = getattr(error, "receipt", None)
            if isinstance(partial, SendReceipt) and partial.recipients:
                # Some numbers went out before the error (a per-number backend): they are
                # sent, whatever happens to the others.
                done = set(partial.recipients)
                await self.sent([i for i in items if i.recipient in done], partial, route)
                items = [i for i in items if i.recipient not in done]
                if not items:
                    return None
            if isinstance(error, SendWindowError):
                self.window_refused(index, error)
                continue  # wait for the window, then try again; not a failure
            if isinstance(error, RateLimitedError):
                self.limiter.penalize(error.retry_after)
            if not self.retry.should_retry(error, attempt):
                return items, error
            self.meter.retries += 1
            if not isinstance(error, RateLimitedError):  # the limiter does that wait
                await self.ctx.sleep(self.retry.wait(attempt, rng=self.ctx.rng))

    async def _pace(self, count: int, text: str) -> None:
        limiter = self.limiter
        units = amount(count, text, limiter)
        if _telemetry.current() is None:
            await limiter.acquire(units)
            return
        began = self.ctx.clock()
        await limiter.acquire(units)
        _telemetry.limiter_wait(self.ctx.clock() - began)

    async def _send(
        self, route: Route, items: list[Item], text: str, sender: str | None, permit: Any
    ) -> SendReceipt | SmsGateError:
        to: str | list[str] = (
            items[0].recipient if len(items) == 1 else [i.recipient for i in items]
        )
        breaker = self.policy.breaker
        meter = self.meter
        meter.requests += 1
        meter.in_flight += 1
        for item in items:
            item.sending = True
        try:
            receipt = await route.gateway.send(to, text, sender=sender)
        except SmsGateError as exc:
            if breaker is not None:
                breaker.record(permit, exc)
            return exc
        except Exception as exc:
            # Not an smsgate error: a bug, or an encoder's error from inside the gateway.
            # Nothing says whether the request left (a per-number backend may have sent
            # some numbers first), so the rows are in doubt, never resent blindly.
            if breaker is not None:
                breaker.record(permit, exc)
            error = OutcomeUnknownError(
                f"{route.gateway.name}.send raised {type(exc).__name__} (not an smsgate "
                "error); the request may have gone out, so it is not sent again: "
                "reconcile it through the provider's status call"
            )
            error.__cause__ = exc
            return error
        except BaseException as exc:
            # Cancellation: free a half-open probe, then let it propagate.
            if breaker is not None:
                breaker.record(permit, exc)
            raise
        finally:
            meter.in_flight -= 1
        if breaker is not None:
            breaker.record(permit)
        return receipt

    async def settle(self, items: list[Item], index: int, error: SmsGateError) -> None:
        """Rows whose request ended with ``error`` after retries."""
        route = self.policy.routes[index]
        if error.maybe_sent:
            await self.finish(items, "unknown", error, route, REASON_MAYBE_SENT)
        elif len(items) > 1 and isinstance(error, _SPLIT_ON):
            middle = len(items) // 2
            await self.attempt(items[:middle], index)
            await self.attempt(items[middle:], index)
        elif index + 1 < len(self.policy.routes) and (
            isinstance(error, CircuitOpenError) or self.policy.should_fall_back(error)
        ):
            await self.deliver(items, index + 1)
        else:
            await self.finish(items, "failed", error, route)
            self._account_check(error, route)

    def _account_check(self, error: SmsGateError, route: Route) -> None:
        """Stop the job on an error no other row can escape."""
        if isinstance(error, ACCOUNT_WIDE):
            self.request_stop(f"{route.name} answered {type(error).__name__}: {error}")
        elif isinstance(error, NotSentError) and not isinstance(
            error, JobStoppedError | CircuitOpenError
        ):
            self.streak += 1
            if self.streak >= CONNECTION_STREAK:
                self.request_stop(
                    f"{self.streak} requests in a row never reached {route.name} "
                    f"({type(error).__name__}: {error})"
                )
