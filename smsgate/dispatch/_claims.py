"""The journal side of a job's send path: claims, recent sends, records, outcomes.

:class:`JobState` is the base of a running job (``_job.Job`` via ``_sending.Sender``): its
state, the journal calls (each failure made one :class:`~smsgate.JournalError`), the
claim of a batch's rows before their request (rows lost to another run are reported from
the journal), and the outcomes handed to the job's sink.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import anyio

from .. import _telemetry
from .._models import SendReceipt
from ..exceptions import (
    JobStoppedError,
    JournalError,
    OutcomeUnknownError,
    SendWindowError,
    SmsGateError,
)
from ._context import JobContext
from ._fallback import Route
from ._intake import Admission, Item
from ._journal import Journal, JournalEntry, JournalStatus, claimable
from ._pacing import parts
from ._progress import Meter
from ._values import (
    REASON_ALREADY_SENT,
    REASON_IN_DOUBT,
    REASON_JOB_STOPPED,
    REASON_SENT_RECENTLY,
    Outcome,
    OutcomeStatus,
)

__all__ = ["JobState", "Sink"]

T = TypeVar("T")
Sink = Callable[[Outcome], Awaitable[None]]

#: Characters of an error's text kept in a journal row.
_DETAIL_CHARS = 200
#: Claim rounds for rows that turned claimable between a lost claim and its read-back.
_CLAIM_ROUNDS = 3


class JobState:
    """The state of one run of a job, its journal calls and its outcomes."""

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
            if status != "pending":
                # A final state ends this run's claim: from here another run may claim a
                # released row (a definite refusal), and a second write of ours would
                # overwrite its claim, so this run never writes these rows again.
                for item in mine:
                    item.claimed = False

    async def release(self, items: list[Item], route: Route | None = None) -> None:
        """Journal only: give back the claims of rows this run holds that no request
        carried (``failed`` with ``JobStoppedError``, claimable, so a rerun sends them).
        Rows whose request may have gone out stay ``pending``: they are in doubt."""
        idle = [i for i in items if i.claimed and not i.sending and i.outcome is None]
        if idle:
            await self.record(
                idle, "failed", route or self.policy.routes[0], error=self.stopped_error()
            )

    # -- outcomes --------------------------------------------------------------------------

    async def emit(
        self, outcome: Outcome, item: Item | None = None, *, observed: bool = False
    ) -> None:
        """Count and hand over one outcome (``observed``: telemetry already has it)."""
        if not observed:
            _telemetry.outcome(None, outcome.route, outcome.status, 1)
        if item is not None:
            item.outcome = outcome
        self.meter.count(outcome)
        assert self.sink is not None
        await self.sink(outcome)
        if item is not None:
            item.done = True
        if self.meter.on_progress is not None:
            self.meter.progress()

    async def redeliver(self, items: list[Item]) -> None:
        """Hand over outcomes decided (and recorded) but not yet handed over."""
        for item in items:
            if not item.done and item.outcome is not None:
                assert self.sink is not None
                await self.sink(item.outcome)
                item.done = True

    async def sent(self, items: list[Item], receipt: SendReceipt, route: Route) -> None:
        await self.record(items, "sent", route, receipt=receipt)
        _telemetry.outcome(route.gateway.name, route.name, "sent", len(items))
        for item in items:
            item.outcome = Outcome(
                message=item.message,
                status="sent",
                recipient=item.recipient,
                receipt=receipt,
                route=route.name,
            )
        for item in items:
            await self._hand_over(item)

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
            item.outcome = Outcome(
                message=item.message,
                status=status,
                recipient=item.recipient,
                error=error,
                route=route.name,
                reason=reason,
            )
        for item in items:
            await self._hand_over(item)

    async def _hand_over(self, item: Item) -> None:
        """Emit the outcome stored on ``item`` (telemetry has counted it already)."""
        assert item.outcome is not None
        await self.emit(item.outcome, item, observed=True)

    def stopped_error(self) -> JobStoppedError:
        return JobStoppedError(
            f"job {self.job_id!r} stopped before this row was sent ({self.stopping}); "
            "run the job again to send it"
        )

    async def fail_stopped(self, items: list[Item], route: Route | None = None) -> None:
        """Rows admitted but never sent: ``failed`` with ``JobStoppedError`` (claimable)."""
        route = route or self.policy.routes[0]
        await self.finish(items, "failed", self.stopped_error(), route, REASON_JOB_STOPPED)

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
