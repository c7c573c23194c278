"""The send path of one job: claim, pace, send, retry, split, fall back, record, report.

For each batch a worker takes (see ``_job``):

1. with a journal and ``recent_window``, rows another job sent lately are skipped;
2. each request waits for the send window; then (with a journal) its rows are
   **claimed** (:meth:`Journal.claim`, in ``_claims``), it waits for the rate limiter
   (claims still waiting are released if the job is stopped or cancelled), and only the
   rows won go out; a row lost to another run is reported from the journal (``skipped`` if it was
   sent, ``unknown`` if it is pending or in doubt). While the job is not known to be
   healthy (its first request, or after a connection failure) one request goes at a time,
   so a wrong password or an unreachable host costs one request, not one per worker;
3. the answer is recorded (:meth:`Journal.record`) and reported, one :class:`Outcome` per row.

Errors: a :class:`~smsgate.SmsGateError` becomes the rows' outcome. Any other exception
from ``gateway.send`` (a bug, a ``UnicodeEncodeError`` from an encoder) cannot tell whether
the request left, so its rows are ``unknown`` (never resent blindly) and the job goes on.
A journal that fails ends the job with :class:`~smsgate.JournalError`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

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
    NotSentError,
    OutcomeUnknownError,
    RateLimitedError,
    RecipientOptedOutError,
    SendWindowError,
    SmsGateError,
    TooManyRecipientsError,
)
from ._claims import JobState, Sink
from ._fallback import Route
from ._intake import Item
from ._pacing import amount, clamp_for_limiter, parts
from ._values import REASON_MAYBE_SENT

if TYPE_CHECKING:
    from ._window import SendWindow

__all__ = ["ACCOUNT_WIDE", "CONNECTION_STREAK", "Sender", "Sink"]

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


class Sender(JobState):
    """The send path of one run of a job (``_reading.Reader`` adds the reading, and
    ``_job.Job`` the workers, the stop and the send window)."""

    windows: list[SendWindow | None]  # each route's send window (``_job.Job`` sets it)

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
            if self.stopping is None and self.windows[index] is not None:
                await self.wait_window(index, items[0])
            if self.stopping is not None or self.abandoned:
                await self.fail_stopped(items, route)
                return None
            if self.journal is not None and not items[0].claimed:
                # Claimed before the rate limiter, not after it: the grant is then followed
                # by the request itself, with no journal write (whose wait varies with the
                # other runs sharing the journal) between them, so requests reach the
                # provider at the pace the limiter granted. Claimed rows still waiting when
                # the job is stopped or cancelled are released (JobStoppedError), never
                # left in doubt: only what was sent is.
                items = await self._claim(items)
                if not items:
                    return None
            if self.stopping is None:
                await self._pace_claimed(items, route, message.text)
                if not self.window_open(index):
                    attempt -= 1  # the window closed while it waited: wait again
                    continue
            if self._halted():  # stopped (or the stream left) while it waited
                await self.fail_stopped(items, route)
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
                if self._last_stop(items, index, error):
                    # Decided before the probe lock is released: the next request waiting
                    # for it sees the stop and is not sent.
                    self._account_check(error, route)
                return items, error
            self.meter.retries += 1
            if not isinstance(error, RateLimitedError):  # the limiter does that wait
                await self.ctx.sleep(self.retry.wait(attempt, rng=self.ctx.rng))

    def _halted(self) -> bool:
        return self.stopping is not None or self.abandoned

    async def _pace_claimed(self, items: list[Item], route: Route, text: str) -> None:
        """Wait for the limiter; if cancelled there, release this run's claims first."""
        limiter = self.limiter
        observed = _telemetry.current() is not None
        try:
            units = amount(len(items), text, limiter)
            began = self.ctx.clock() if observed else 0.0
            await limiter.acquire(units)
        except anyio.get_cancelled_exc_class():
            with anyio.CancelScope(shield=True):
                await self.release(items, route)
            raise
        if observed:
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

    def _last_stop(self, items: list[Item], index: int, error: SmsGateError) -> bool:
        """Whether :meth:`settle` will fail these rows for good on this route (no split,
        no fallback): only then can the error say something about the whole account."""
        if error.maybe_sent or (len(items) > 1 and isinstance(error, _SPLIT_ON)):
            return False
        return not (
            index + 1 < len(self.policy.routes)
            and (isinstance(error, CircuitOpenError) or self.policy.should_fall_back(error))
        )

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
