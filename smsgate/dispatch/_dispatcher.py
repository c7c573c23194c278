"""``BulkDispatcher``: many messages through one gateway, or a fallback chain of routes.

How a job flows (see docs/dispatch.md for the user-facing story)::

    input (Iterable | AsyncIterable of Message, read lazily)
      -> per row: normalise the number (invalid: a "failed" outcome), drop duplicates of
         (recipient, text, sender) ("skipped"), group rows with the same text and sender
      -> batches (up to max_batch numbers; a partial batch leaves after `linger` seconds)
      -> a memory stream with no buffer (back-pressure: the input is read only as fast as
         workers take batches)
      -> `concurrency` worker tasks in one task group, each holding a CapacityLimiter
         token while it works: journal lookup (resume), rate limiter, journal "pending",
         gateway.send, retries, batch splitting, fallback, journal result, outcome.

Memory is flat in the number of rows: at most ``concurrency`` batches in flight plus at
most ``_MAX_OPEN_GROUPS`` partial batches, and the duplicate filter, which keeps an 8-byte
fingerprint per distinct row (16 to 32 bytes each with its hash table: 16 MiB at one
million rows).

Errors: a child task catches :class:`~smsgate.SmsGateError` only and turns it into
outcomes, so one bad number never cancels the others. Anything else (a bug, a journal that
cannot write, a row that is not a ``Message``) ends the whole job and is raised as itself.
Cancellation propagates; nothing is left running and no limiter token stays held.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import math
import os
import random
import time
from array import array
from collections import deque
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Sized,
)
from decimal import Decimal
from typing import TYPE_CHECKING, Any, TypeAlias

import anyio
import anyio.lowlevel
import attrs

from .._gateway import SmsGateway, SupportsCredit
from .._models import Message, SendReceipt
from .._phone import normalize_msisdn
from .._segments import segments
from ..exceptions import (
    ConfigurationError,
    InvalidMessageError,
    InvalidRecipientError,
    OutcomeUnknownError,
    RateLimitedError,
    RecipientOptedOutError,
    SmsGateError,
    TooManyRecipientsError,
)
from ._breaker import CircuitOpenError
from ._fallback import FallbackPolicy, Route
from ._journal import Journal, JournalEntry, JournalStatus, claimable, journal_key
from ._limiter import RateLimit, RateLimiter, TokenBucket, _is_int, _PauseOnly
from ._retry import RetryPolicy, as_retry_policy
from ._values import (
    REASON_ALREADY_SENT,
    REASON_DUPLICATE,
    REASON_IN_DOUBT,
    REASON_INVALID_MESSAGE,
    REASON_INVALID_RECIPIENT,
    REASON_MAYBE_SENT,
    BulkReport,
    Estimate,
    Outcome,
    OutcomeStatus,
    Progress,
)

if TYPE_CHECKING:
    from anyio.abc import ObjectReceiveStream, ObjectSendStream
    from anyio.streams.memory import MemoryObjectSendStream

__all__ = ["BulkDispatcher", "DispatcherStatistics"]

_DEFAULT_RETRIES = RetryPolicy()

Messages: TypeAlias = Iterable[Message] | AsyncIterable[Message]
Sink: TypeAlias = Callable[[Outcome], Awaitable[None]]

#: Partial batches (distinct text+sender groups) kept open at once; the oldest leaves
#: when one more would open. Bounds memory for inputs with many distinct texts.
_MAX_OPEN_GROUPS = 64
#: Rows read between two checkpoints when the input never blocks (a list).
_YIELD_EVERY = 256
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


@functools.lru_cache(maxsize=4096)
def _parts(text: str) -> int:
    """SMS parts of a text (cached: bulk jobs repeat texts)."""
    return max(1, segments(text).parts)


def _fingerprint(recipient: str, text: str, sender: str | None) -> int:
    """64 bits of BLAKE2b over the row's identity (stable across processes)."""
    marker = "\x00" if sender is None else "\x01" + sender
    data = f"{recipient}\x1f{text}\x1f{marker}".encode("utf-8", "surrogatepass")
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "little") or 1


class _SeenSet:
    """A set of 64-bit fingerprints in one ``array('Q')`` (open addressing, linear probing).

    8 bytes per slot at a load factor of at most 1/2: 16 to 32 bytes per entry, against
    ~70 for a ``set`` of Python ints. Two distinct rows share a fingerprint with
    probability ~ n^2 / 2^65 (3e-8 at a million rows); the cost of such a collision is one
    row wrongly reported as a duplicate.
    """

    __slots__ = ("_count", "_mask", "_table")

    def __init__(self, capacity: int = 1024) -> None:
        self._table = array("Q", bytes(8 * capacity))
        self._mask = capacity - 1
        self._count = 0

    def __len__(self) -> int:
        return self._count

    @property
    def nbytes(self) -> int:
        """Bytes held by the table."""
        return len(self._table) * self._table.itemsize

    def add(self, fp: int) -> bool:
        """Add ``fp`` (non-zero); ``False`` if it was already there."""
        table = self._table
        mask = self._mask
        i = fp & mask
        while True:
            slot = table[i]
            if slot == 0:
                table[i] = fp
                self._count += 1
                if self._count * 2 > mask:
                    self._grow()
                return True
            if slot == fp:
                return False
            i = (i + 1) & mask

    def _grow(self) -> None:
        old = self._table
        self._table = array("Q", bytes(16 * len(old)))
        self._mask = len(self._table) - 1
        table, mask = self._table, self._mask
        for fp in old:
            if fp:
                i = fp & mask
                while table[i]:
                    i = (i + 1) & mask
                table[i] = fp


class _Signal:
    """Control items in the async reader's pipe."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"<{self.name}>"


_END = _Signal("end of input")
_TICK = _Signal("linger expired")


class _Item:
    """One admitted row: the message, its E.164 number and (with a journal) its key."""

    __slots__ = ("key", "message", "recipient")

    def __init__(self, message: Message, recipient: str) -> None:
        self.message = message
        self.recipient = recipient
        self.key: str | None = None


class _Group:
    __slots__ = ("items", "opened")

    def __init__(self, opened: float) -> None:
        self.items: list[_Item] = []
        self.opened = opened


class _Batcher:
    """Groups rows with the same text and sender into batches of up to ``size`` numbers."""

    __slots__ = ("_groups", "linger", "size")

    def __init__(self, size: int, linger: float) -> None:
        self.size = size
        self.linger = linger
        self._groups: dict[tuple[str, str | None], _Group] = {}

    def add(self, item: _Item, now: float) -> list[list[_Item]]:
        """Add a row; return the batches that are ready to go."""
        if self.size == 1:
            return [[item]]
        key = (item.message.text, item.message.sender)
        ready: list[list[_Item]] = []
        group = self._groups.get(key)
        if group is None:
            if len(self._groups) >= _MAX_OPEN_GROUPS:
                oldest = next(iter(self._groups))
                ready.append(self._groups.pop(oldest).items)
            group = self._groups[key] = _Group(now)
        group.items.append(item)
        if len(group.items) >= self.size:
            ready.append(self._groups.pop(key).items)
        ready.extend(self.expired(now))
        return ready

    def next_deadline(self) -> float | None:
        """When the oldest open group must leave, or ``None`` if none is open."""
        for group in self._groups.values():
            return group.opened + self.linger
        return None

    def expired(self, now: float) -> list[list[_Item]]:
        """Pop the groups that have lingered long enough (oldest first)."""
        ready: list[list[_Item]] = []
        while self._groups:
            key, group = next(iter(self._groups.items()))
            if group.opened + self.linger > now:
                break
            ready.append(group.items)
            del self._groups[key]
        return ready

    def drain(self) -> list[list[_Item]]:
        """Pop every open group."""
        ready = [g.items for g in self._groups.values()]
        self._groups.clear()
        return ready


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


def _unwrap(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The single plain exception of a task-group error, or the group itself.

    Cancellation stays a group (the backends' cancel scopes expect to see it).
    """
    leaves: list[BaseException] = []

    def walk(exc: BaseException) -> None:
        if isinstance(exc, BaseExceptionGroup):
            for inner in exc.exceptions:
                walk(inner)
        else:
            leaves.append(exc)

    walk(group)
    if len(leaves) == 1 and isinstance(leaves[0], Exception):
        return leaves[0]
    return group


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
        concurrency: Requests in flight at most (shared by every job of this dispatcher).
        max_batch: Recipients per request, where the route's gateway takes several
            (``max_recipients > 1``); ``None`` uses each gateway's ``max_recipients``.
        journal: ``None``, a path (an ``SqliteJournal`` file, opened and closed by each
            job) or any :class:`Journal` (not closed by the dispatcher).
        retries: A :class:`RetryPolicy`, or the number of retries (0 or ``None``: none).
            Default: up to 3 retries of ``NotSentError`` and ``RateLimitedError``; never
            a retry of an error that may have been sent.
        on_progress: Called with a :class:`Progress` event at most every
            ``progress_interval`` seconds, and once at the end. It runs in the job's task:
            keep it quick (update a progress bar).
        progress_interval: Seconds between two progress events.
        linger: Seconds a partial batch waits for more rows of the same text when the
            input is an async iterable that is slow to deliver them.
        clock: Returns the time in seconds (default :func:`anyio.current_time`).
        sleep: Sleeps that many seconds (default :func:`anyio.sleep`); used for retry
            back-off and by the default limiter.

    Raises:
        ConfigurationError: For settings that cannot work.
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
        clock: Callable[[], float] | None = None,
        sleep: Callable[[float], Awaitable[object]] | None = None,
    ) -> None:
        self.policy = (
            gateway if isinstance(gateway, FallbackPolicy) else FallbackPolicy.single(gateway)
        )
        if not _is_int(concurrency, 1):
            raise ConfigurationError(f"concurrency must be an int >= 1, not {concurrency!r}")
        if max_batch is not None and not _is_int(max_batch, 1):
            raise ConfigurationError(f"max_batch must be None or an int >= 1, not {max_batch!r}")
        if not progress_interval >= 0 or not linger >= 0:
            raise ConfigurationError("progress_interval and linger must be >= 0")
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
        self.on_progress = on_progress
        self.progress_interval = progress_interval
        self.linger = linger
        self._slots = anyio.CapacityLimiter(concurrency)
        self._jobs: set[_Job] = set()
        self._rng = random.Random()

    def __repr__(self) -> str:
        routes = ", ".join(self.policy.names())
        return (
            f"<BulkDispatcher routes=[{routes}] concurrency={self.concurrency} "
            f"limiter={self.limiter!r}>"
        )

    # -- public API -----------------------------------------------------------------------------

    async def run(
        self,
        messages: Messages,
        job_id: str = "default",
        *,
        total: int | None = None,
        check_credit: bool = False,
        price_per_part: Decimal | int | str | None = None,
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

        Returns:
            The :class:`BulkReport`.

        Raises:
            InsufficientCreditError: With ``check_credit``, when the credit is short.
            ConfigurationError: ``check_credit`` without a price or with a one-shot input.
            TypeError: A row is not a ``Message`` (the job stops there).
        """
        if check_credit:
            await self._check_credit(messages, job_id, price_per_part)
        failures: list[Outcome] = []

        async def keep_failures(outcome: Outcome) -> None:
            if outcome.status == "failed" or outcome.status == "unknown":
                failures.append(outcome)

        job = _Job(self, job_id, _total(messages, total))
        await job.execute(messages, keep_failures)
        return job.report(failures)

    async def stream(
        self,
        messages: Messages,
        job_id: str = "default",
        *,
        total: int | None = None,
    ) -> AsyncGenerator[Outcome, None]:
        """Send every message, yielding one :class:`Outcome` per row as each finishes.

        The job runs while you iterate. If the loop may end early (``break``, an
        exception, a cancel scope around it), close the generator deterministically so the
        job's tasks stop at once::

            async with contextlib.aclosing(dispatcher.stream(rows)) as outcomes:
                async for outcome in outcomes:
                    ...

        Args:
            messages: Any iterable or async iterable of :class:`~smsgate.Message`.
            job_id: The job's id in the journal.
            total: Rows expected, for progress events.

        Yields:
            One :class:`Outcome` per row, in the order they finish.
        """
        send, receive = anyio.create_memory_object_stream[Outcome](self.concurrency)
        job = _Job(self, job_id, _total(messages, total))

        async def produce() -> None:
            async with send:
                await job.execute(messages, send.send)

        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(produce)
                async with receive:
                    try:
                        async for outcome in receive:
                            yield outcome
                    except GeneratorExit:
                        # The consumer closed us early: stop the job, then end normally
                        # (re-raising inside the task group would wrap GeneratorExit).
                        tg.cancel_scope.cancel()
                        return
        except BaseExceptionGroup as group:
            raise _unwrap(group) from None

    async def estimate(
        self,
        messages: Messages,
        *,
        price_per_part: Decimal | int | str | None = None,
        job_id: str | None = None,
    ) -> Estimate:
        """A dry run: count what a job would send and cost, without sending anything.

        Reads the whole input (lazily, in constant memory apart from the duplicate
        filter and one counter per distinct text), asks the first route's gateway for its
        credit where it can tell (:class:`~smsgate.SupportsCredit`), and, given
        ``job_id`` and a journal, leaves out rows an earlier run already sent or left
        in doubt.

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
        seen = _SeenSet()
        # (text, sender) fingerprint -> [rows, parts of the text]: 8-byte keys, not texts.
        groups: dict[int, list[int]] = {}
        rows = duplicates = invalid = already = recipients = parts = 0
        journal, owned = await self._open_journal()
        try:
            use_journal = (
                journal is not None and job_id is not None and job_id in await journal.jobs()
            )
            pending: list[_Item] = []

            async def settle(items: list[_Item]) -> None:
                nonlocal already, recipients, parts
                known: dict[str, JournalEntry] = {}
                if use_journal and journal is not None and job_id is not None:
                    keys = [_key(i) for i in items]
                    known = await journal.get(job_id, keys)
                for item in items:
                    entry = known.get(item.key or "")
                    if entry is not None and not _resendable(entry):
                        already += 1
                        continue
                    recipients += 1
                    text = item.message.text
                    group = _fingerprint("", text, item.message.sender)
                    counter = groups.get(group)
                    if counter is None:
                        counter = groups[group] = [0, _parts(text)]
                    counter[0] += 1
                    parts += counter[1]

            async with contextlib.aclosing(_aiter(messages)) as source:
                async for message in source:
                    rows += 1
                    _check_row(message, rows)
                    if not message.text:
                        invalid += 1
                        continue
                    try:
                        recipient = normalize_msisdn(message.to)
                    except InvalidRecipientError:
                        invalid += 1
                        continue
                    if not seen.add(_fingerprint(recipient, message.text, message.sender)):
                        duplicates += 1
                        continue
                    pending.append(_Item(message, recipient))
                    if len(pending) >= 512:
                        await settle(pending)
                        pending = []
            await settle(pending)
        finally:
            if owned and journal is not None:
                with anyio.CancelScope(shield=True):
                    await journal.aclose()
        size = self._batch_size(0)
        requests = 0
        for count, text_parts in groups.values():
            per = _clamp_for_limiter(size, text_parts, self.limiter) or 1
            requests += math.ceil(count / per)
        credit: Decimal | None = None
        gateway = self.policy.routes[0].gateway
        if isinstance(gateway, SupportsCredit):
            credit = await gateway.credit()
        return Estimate(
            rows=rows,
            recipients=recipients,
            duplicates=duplicates,
            invalid=invalid,
            already_done=already,
            requests=requests,
            parts=parts,
            price_per_part=price,
            cost=None if price is None else price * parts,
            credit=credit,
            provider=gateway.name,
        )

    def statistics(self) -> DispatcherStatistics:
        """A snapshot: tokens held, requests in flight, jobs running."""
        slots = self._slots.statistics()
        return DispatcherStatistics(
            concurrency=self.concurrency,
            borrowed=slots.borrowed_tokens,
            waiting=slots.tasks_waiting,
            in_flight=sum(job.in_flight for job in self._jobs),
            jobs=len(self._jobs),
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

    async def _open_journal(self) -> tuple[Journal | None, bool]:
        """The journal for one job, and whether the job owns (and must close) it."""
        if self.journal is None:
            return None, False
        if isinstance(self.journal, str | os.PathLike):
            # Imported here: sqlite3 and the journal module load only when a path is used.
            from ._sqlite_journal import SqliteJournal

            return SqliteJournal(self.journal), True
        return self.journal, False

    def _batch_size(self, index: int) -> int:
        """Numbers per request on route ``index`` (before the rate limiter's clamp)."""
        cap = self.policy.routes[index].gateway.max_recipients
        return cap if self.max_batch is None else max(1, min(cap, self.max_batch))


def _iter_once(messages: object) -> bool:
    """Whether ``messages`` can be read only once (an iterator or async iterator)."""
    if isinstance(messages, AsyncIterable):
        return isinstance(messages, AsyncIterator)
    return iter(messages) is messages  # type: ignore[call-overload]


def _total(messages: object, total: int | None) -> int | None:
    if total is not None:
        return total
    return len(messages) if isinstance(messages, Sized) else None


def _check_row(message: object, row: int) -> None:
    if not isinstance(message, Message):
        raise TypeError(
            f"BulkDispatcher takes smsgate.Message rows; row {row} is a {type(message).__name__}"
        )


async def _aiter(messages: Messages) -> AsyncGenerator[Message, None]:
    """Iterate either kind of input (sync inputs yield to the loop every few rows)."""
    if isinstance(messages, AsyncIterable):
        async for message in messages:
            yield message
        return
    for n, message in enumerate(messages, 1):
        if n % _YIELD_EVERY == 0:
            await anyio.lowlevel.checkpoint()
        yield message


def _key(item: _Item) -> str:
    if item.key is None:
        item.key = journal_key(item.recipient, item.message.text, item.message.sender)
    return item.key


async def _hand_off(out: MemoryObjectSendStream[list[_Item]], batch: list[_Item]) -> None:
    """Give a batch to an idle worker without yielding; wait only when none is idle.

    ``send()`` always yields to the event loop, so the reader would hand out one batch per
    loop turn and every request's write would leave alone (benchmarks/README.md: about
    150 µs per message). ``send_nowait`` hands the batch straight to a waiting worker.
    """
    try:
        out.send_nowait(batch)
    except anyio.WouldBlock:
        await out.send(batch)


def _resendable(entry: JournalEntry) -> bool:
    """A journal row that a rerun sends again: a definite refusal (see _journal.py)."""
    return entry.status == "failed" and claimable(entry)


def _clamp_for_limiter(size: int, parts: int, limiter: RateLimiter) -> int:
    """Fit a batch to a limiter that counts recipients or parts (0: not even one fits).

    A request of ``n`` numbers takes ``n`` (or ``n * parts``) units, and a window holds at
    most ``max_amount``: batches of 40 under 100 recipients/s fit only two per window (80/s),
    so the size is evened out to ``cap // k`` (three batches of 33: 99/s).
    """
    cap = limiter.max_amount
    if cap is None or limiter.unit == "requests":
        return size
    per_window = cap // (parts if limiter.unit == "parts" else 1)
    if per_window < 1:
        return 0
    if size >= per_window:
        return per_window
    return per_window // math.ceil(per_window / size)


def _amount(count: int, text: str, limiter: RateLimiter) -> int:
    if limiter.unit == "recipients":
        return count
    if limiter.unit == "parts":
        return count * _parts(text)
    return 1


class _Job:
    """One run of a job: its counters, its task group, its outcomes."""

    def __init__(self, dispatcher: BulkDispatcher, job_id: str, total: int | None) -> None:
        if not job_id or not isinstance(job_id, str):
            raise ConfigurationError(f"job_id must be a non-empty str, not {job_id!r}")
        self.d = dispatcher
        self.job_id = job_id
        self.total = total
        self.policy = dispatcher.policy
        self.limiter = dispatcher.limiter
        self.retry = dispatcher.retries
        self.clock = dispatcher._clock
        self.journal: Journal | None = None
        self.resume = False
        self.sink: Sink | None = None
        self.seen = _SeenSet()
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
        self.last_progress = 0.0
        self.samples: deque[tuple[float, int]] = deque(maxlen=8)  # (time, done) for the rate
        self.rate = 0.0

    # -- the job ---------------------------------------------------------------------------

    async def execute(self, messages: Messages, sink: Sink) -> None:
        self.sink = sink
        self.started = self.last_progress = self.clock()
        self.samples.append((self.started, 0))
        self.d._jobs.add(self)
        journal, owned = await self.d._open_journal()
        try:
            if journal is not None:
                self.resume = self.job_id in await journal.jobs()
                await journal.open(self.job_id)
                self.journal = journal
            try:
                async with anyio.create_task_group() as tg:
                    send, receive = anyio.create_memory_object_stream[list[_Item]](0)
                    async with receive:
                        for _ in range(self.d.concurrency):
                            tg.start_soon(self._worker, receive.clone())
                    async with send:
                        await self._read(messages, send)
            except BaseExceptionGroup as group:
                raise _unwrap(group) from None
            self.ended = self.clock()
            self._progress(final=True)
        finally:
            self.d._jobs.discard(self)
            if owned and journal is not None:
                with anyio.CancelScope(shield=True):
                    await journal.aclose()

    async def _read(self, messages: Messages, out: MemoryObjectSendStream[list[_Item]]) -> None:
        size = _clamp_for_limiter(self.d._batch_size(0), 1, self.limiter) or 1
        batcher = _Batcher(size, self.d.linger)
        if isinstance(messages, AsyncIterable):
            if batcher.size > 1:
                await self._read_async(messages, batcher, out)
            else:  # nothing lingers: no helper tasks needed
                async for message in messages:
                    for batch in await self._admit(message, batcher):
                        await _hand_off(out, batch)
        else:
            for message in messages:
                for batch in await self._admit(message, batcher):
                    await _hand_off(out, batch)
                if self.read % _YIELD_EVERY == 0:
                    await anyio.lowlevel.checkpoint()
        for batch in batcher.drain():
            await _hand_off(out, batch)

    async def _read_async(
        self,
        messages: AsyncIterable[Message],
        batcher: _Batcher,
        out: MemoryObjectSendStream[list[_Item]],
    ) -> None:
        # Two helper tasks feed one pipe: `pump` pulls the user's iterator, `tick` says
        # when a partial batch has lingered long enough. Nothing here cancels a pending
        # __anext__ (that would kill an async generator) or a pending receive (an item
        # handed over at that moment could be lost): the loop just reads the pipe.
        pipe_in, pipe_out = anyio.create_memory_object_stream[Message | _Signal](0)

        async def pump() -> None:
            async with pipe_in:
                async for message in messages:
                    await pipe_in.send(message)
                await pipe_in.send(_END)

        async def tick(ticks: ObjectSendStream[Message | _Signal]) -> None:
            async with ticks:
                while True:
                    deadline = batcher.next_deadline()
                    now = self.clock()
                    if deadline is not None and deadline <= now:
                        await ticks.send(_TICK)
                    else:
                        wait = self.d.linger if deadline is None else deadline - now
                        await self.d._sleep(max(wait, 1e-3))

        async with anyio.create_task_group() as helpers, pipe_out:
            helpers.start_soon(pump)
            helpers.start_soon(tick, pipe_in.clone())
            while True:
                item = await pipe_out.receive()
                if item is _END:
                    helpers.cancel_scope.cancel()
                    return
                if item is _TICK:
                    ready = batcher.expired(self.clock())
                else:
                    assert not isinstance(item, _Signal)
                    ready = await self._admit(item, batcher)
                for batch in ready:
                    await _hand_off(out, batch)

    async def _admit(self, message: Message, batcher: _Batcher) -> list[list[_Item]]:
        """Check one row; return the batches it completes (its outcome, if it has one
        already, is emitted here)."""
        self.read += 1
        _check_row(message, self.read)
        if not message.text:
            self.invalid += 1
            await self._emit(
                Outcome(
                    message=message,
                    status="failed",
                    error=InvalidMessageError("the text is empty"),
                    reason=REASON_INVALID_MESSAGE,
                )
            )
            return []
        try:
            recipient = normalize_msisdn(message.to)
        except InvalidRecipientError as exc:
            self.invalid += 1
            await self._emit(
                Outcome(
                    message=message, status="failed", error=exc, reason=REASON_INVALID_RECIPIENT
                )
            )
            return []
        if not self.seen.add(_fingerprint(recipient, message.text, message.sender)):
            self.duplicates += 1
            await self._emit(
                Outcome(
                    message=message, status="skipped", recipient=recipient, reason=REASON_DUPLICATE
                )
            )
            return []
        return batcher.add(_Item(message, recipient), self.clock() if batcher.size > 1 else 0.0)

    async def _worker(self, batches: ObjectReceiveStream[list[_Item]]) -> None:
        async with batches:
            async for batch in batches:
                slots = self.d._slots
                try:
                    # Receiving the batch was a checkpoint already; only wait (and yield
                    # again) when another job of this dispatcher holds every token.
                    slots.acquire_nowait()
                except anyio.WouldBlock:
                    await slots.acquire()
                try:
                    await self._process(batch)
                finally:
                    slots.release()

    async def _process(self, items: list[_Item]) -> None:
        if self.resume:
            items = await self._skip_known(items)
            if not items:
                return
        await self._deliver(items, 0)

    async def _skip_known(self, items: list[_Item]) -> list[_Item]:
        """On a rerun: leave out rows the journal says were sent or are in doubt."""
        assert self.journal is not None
        known = await self.journal.get(self.job_id, [_key(i) for i in items])
        if not known:
            return items
        fresh: list[_Item] = []
        for item in items:
            entry = known.get(_key(item))
            if entry is None or _resendable(entry):
                fresh.append(item)
            elif entry.status == "sent":
                await self._emit(
                    Outcome(
                        message=item.message,
                        status="skipped",
                        recipient=item.recipient,
                        route=entry.route,
                        reason=REASON_ALREADY_SENT,
                    )
                )
            else:
                error = OutcomeUnknownError(
                    f"an earlier run of job {self.job_id!r} left this recipient "
                    f"{entry.status!r} ({entry.error or 'in flight'}); it is not sent again: "
                    "reconcile it through the provider's status call"
                )
                await self._emit(
                    Outcome(
                        message=item.message,
                        status="unknown",
                        recipient=item.recipient,
                        error=error,
                        route=entry.route,
                        reason=REASON_IN_DOUBT,
                    )
                )
        return fresh

    async def _deliver(self, items: list[_Item], index: int) -> None:
        """Send rows on route ``index``, in batches that fit it."""
        parts = _parts(items[0].message.text) if self.limiter.unit == "parts" else 1
        size = _clamp_for_limiter(self.d._batch_size(index), parts, self.limiter)
        if size < 1:
            error = ConfigurationError(
                f"one message of {parts} parts is more than the rate "
                f"limit lets start in one window ({self.limiter.max_amount} parts)"
            )
            await self._finish(items, "failed", error, self.policy.routes[index])
            return
        for start in range(0, len(items), size):
            await self._attempt(items[start : start + size], index)

    async def _attempt(self, items: list[_Item], index: int) -> None:
        """One request (with its retries) on route ``index``; then split, fall back or
        record the result."""
        route = self.policy.routes[index]
        breaker = self.policy.breaker
        message = items[0].message
        sender = route.sender_for(message.sender)
        attempt = 0
        while True:
            attempt += 1
            await self.limiter.acquire(_amount(len(items), message.text, self.limiter))
            permit = None
            if breaker is not None:
                permit = breaker.acquire(route.name)
                if permit is None:
                    await self._skip_route(items, index)
                    return
            if self.journal is not None:
                await self._journal(items, "pending", route)
            result = await self._send(route, items, message.text, sender, permit)
            if isinstance(result, SendReceipt):
                await self._sent(items, result, route)
                return
            error = result
            partial = getattr(error, "receipt", None)
            if isinstance(partial, SendReceipt) and partial.recipients:
                # Some numbers went out before the error (a per-number backend): they are
                # sent, whatever happens to the others.
                done = set(partial.recipients)
                await self._sent([i for i in items if i.recipient in done], partial, route)
                items = [i for i in items if i.recipient not in done]
                if not items:
                    return
            if isinstance(error, RateLimitedError):
                self.limiter.penalize(error.retry_after)
            if not self.retry.should_retry(error, attempt):
                break
            self.retries += 1
            if not isinstance(error, RateLimitedError):  # the limiter does that wait
                await self.d._sleep(self.retry.wait(attempt, rng=self.d._rng))
        await self._settle(items, index, error)

    async def _send(
        self, route: Route, items: list[_Item], text: str, sender: str | None, permit: Any
    ) -> SendReceipt | SmsGateError:
        to: str | list[str] = (
            items[0].recipient if len(items) == 1 else [i.recipient for i in items]
        )
        breaker = self.policy.breaker
        self.requests += 1
        self.in_flight += 1
        try:
            receipt = await route.gateway.send(to, text, sender=sender)
        except SmsGateError as exc:
            if breaker is not None:
                breaker.record(permit, exc)
            return exc
        except BaseException as exc:
            # Cancellation (or a bug): free a half-open probe, then let it propagate.
            if breaker is not None:
                breaker.record(permit, exc)
            raise
        finally:
            self.in_flight -= 1
        if breaker is not None:
            breaker.record(permit)
        return receipt

    async def _settle(self, items: list[_Item], index: int, error: SmsGateError) -> None:
        """Rows whose request ended with ``error`` after retries."""
        route = self.policy.routes[index]
        if error.maybe_sent:
            await self._finish(items, "unknown", error, route, REASON_MAYBE_SENT)
        elif len(items) > 1 and isinstance(error, _SPLIT_ON):
            middle = len(items) // 2
            await self._attempt(items[:middle], index)
            await self._attempt(items[middle:], index)
        elif index + 1 < len(self.policy.routes) and self.policy.should_fall_back(error):
            await self._deliver(items, index + 1)
        else:
            await self._finish(items, "failed", error, route)

    async def _skip_route(self, items: list[_Item], index: int) -> None:
        """The route's circuit is open: nothing was sent, so the next route may try."""
        if index + 1 < len(self.policy.routes):
            await self._deliver(items, index + 1)
            return
        route = self.policy.routes[index]
        await self._finish(items, "failed", CircuitOpenError(route.name), route)

    # -- results -------------------------------------------------------------------------------

    async def _sent(self, items: list[_Item], receipt: SendReceipt, route: Route) -> None:
        if self.journal is not None:
            await self._journal(items, "sent", route, receipt=receipt)
        for item in items:
            await self._emit(
                Outcome(
                    message=item.message,
                    status="sent",
                    recipient=item.recipient,
                    receipt=receipt,
                    route=route.name,
                )
            )

    async def _finish(
        self,
        items: list[_Item],
        status: OutcomeStatus,
        error: SmsGateError,
        route: Route,
        reason: str | None = None,
    ) -> None:
        if self.journal is not None:
            await self._journal(
                items, "unknown" if status == "unknown" else "failed", route, error=error
            )
        for item in items:
            await self._emit(
                Outcome(
                    message=item.message,
                    status=status,
                    recipient=item.recipient,
                    error=error,
                    route=route.name,
                    reason=reason,
                )
            )

    async def _journal(
        self,
        items: list[_Item],
        status: JournalStatus,
        route: Route,
        *,
        receipt: SendReceipt | None = None,
        error: SmsGateError | None = None,
    ) -> None:
        assert self.journal is not None
        now = time.time()
        entries = [
            JournalEntry(
                key=_key(item),
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
            )
            for item in items
        ]
        await self.journal.record(self.job_id, entries)

    async def _emit(self, outcome: Outcome) -> None:
        self.counts[outcome.status] += 1
        if outcome.error is not None and outcome.status in ("failed", "unknown"):
            name = type(outcome.error).__name__
            self.errors[name] = self.errors.get(name, 0) + 1
        assert self.sink is not None
        await self.sink(outcome)
        if self.d.on_progress is not None:
            self._progress()

    # -- progress and report -------------------------------------------------------------------

    def _progress(self, *, final: bool = False) -> None:
        callback = self.d.on_progress
        if callback is None:
            return
        now = self.clock()
        if not final and now - self.last_progress < self.d.progress_interval:
            return
        done = sum(self.counts.values())
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
                sent=self.counts["sent"],
                failed=self.counts["failed"],
                unknown=self.counts["unknown"],
                skipped=self.counts["skipped"],
                requests=self.requests,
                in_flight=self.in_flight,
                elapsed=elapsed,
                rate=self.rate,
                eta=eta,
                final=final,
            )
        )

    def report(self, failures: list[Outcome]) -> BulkReport:
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
        )
