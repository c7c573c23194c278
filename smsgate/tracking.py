"""Delivery tracking: follow a bulk job's sent rows until each is final, in the journal.

A bulk job ends when the provider has *accepted* every row; whether the messages arrived
is known later. :func:`track` asks the provider's status calls for every ``sent`` row of a
job until each row's state is final (delivered, undelivered, rejected, blocked) or a
deadline passes, and stores each state in the journal (``journal.record_delivery``):

* ippanel: one ``delivery()`` call per bulk id (a bulk of 100 recipients is one call);
* Negin: ``states()`` with up to ``batch`` (100) ids per call;
* calls are paced by ``rate_limit`` (the job's rate limit is a good choice) and at most
  ``concurrency`` run at once; rows already final are never asked about again.

Pushed reports (Kapanel's webhook through :func:`smsgate.fastapi.delivery_router`) can
write into the same journal instead: :func:`journal_sink` makes the ``on_report`` callable.

:func:`count_deliveries` counts a job's rows by delivery state (what :func:`track`
returns, and what the report page shows).
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import Any, Protocol

import anyio
import attrs

from ._models import DeliveryReport, DeliveryState
from .dispatch import FallbackPolicy, Journal, JournalEntry, RateLimit, RateLimiter, TokenBucket
from .dispatch._journal import DeliveryUpdate
from .exceptions import ConfigurationError, SmsGateError, UnknownMessageError

__all__ = [
    "DeliveryCounts",
    "TrackSummary",
    "count_deliveries",
    "journal_sink",
    "track",
]

#: Ids per Negin ``states()`` call (its documented maximum).
DEFAULT_BATCH = 100
#: Seconds :func:`track` waits for by default before giving up on non-final rows.
DEFAULT_DEADLINE = 3600.0
#: Seconds between two polling rounds by default.
DEFAULT_INTERVAL = 30.0

_BUCKET: dict[DeliveryState, str] = {
    DeliveryState.DELIVERED: "delivered",
    DeliveryState.UNDELIVERED: "undelivered",
    DeliveryState.BLOCKED: "blocked",
    DeliveryState.REJECTED: "rejected",
}


def _frozen(value: Mapping[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(dict(value))


@attrs.frozen(kw_only=True)
class DeliveryCounts:
    """Sent rows by delivery state.

    Attributes:
        sent: Rows the provider accepted (the sum of the five below).
        delivered: Reached the handset.
        undelivered: The operator gave up (switched off, out of coverage for too long).
        blocked: The number is on the operators' opt-out black list.
        rejected: The operator (or the provider) refused the message.
        pending: No final state yet (queued, at the operator, unknown, never asked).
    """

    sent: int = 0
    delivered: int = 0
    undelivered: int = 0
    blocked: int = 0
    rejected: int = 0
    pending: int = 0

    @property
    def final(self) -> int:
        """Rows whose state will not change any more."""
        return self.sent - self.pending

    def as_dict(self) -> dict[str, int]:
        """The counts as a plain dict (for JSON)."""
        return attrs.asdict(self)


def _count(entries: Iterable[JournalEntry]) -> DeliveryCounts:
    counts = dict.fromkeys(("sent", "delivered", "undelivered", "blocked", "rejected"), 0)
    counts["pending"] = 0
    for entry in entries:
        if entry.status != "sent":
            continue
        counts["sent"] += 1
        bucket = _BUCKET.get(entry.delivery) if entry.delivery is not None else None
        counts[bucket or "pending"] += 1
    return DeliveryCounts(**counts)


def count_deliveries(
    entries: Iterable[JournalEntry],
) -> tuple[DeliveryCounts, dict[str, DeliveryCounts]]:
    """Count a job's ``sent`` rows by delivery state, in all and per route.

    Args:
        entries: The job's rows (``await journal.entries(job_id)``).

    Returns:
        ``(all routes, {route name: counts})``; rows without a route count under ``"-"``.
    """
    rows = [e for e in entries if e.status == "sent"]
    by_route: dict[str, list[JournalEntry]] = {}
    for entry in rows:
        by_route.setdefault(entry.route or "-", []).append(entry)
    return _count(rows), {name: _count(group) for name, group in sorted(by_route.items())}


@attrs.frozen(kw_only=True)
class TrackSummary:
    """What :func:`track` found.

    Attributes:
        job_id: The job.
        counts: Every sent row by delivery state (rows final before this call included).
        routes: The same per route name.
        complete: Whether every sent row is final (``False``: the deadline passed first,
            or some rows could not be asked about; see ``untracked``).
        untracked: Sent rows nobody can ask about: no provider id in the journal, no
            gateway for their route, or an id the provider no longer knows.
        requests: Status calls made.
        rounds: Polling rounds.
        elapsed: Seconds spent, by the clock given.
        errors: Error class name to the number of status calls that failed with it.
        updated: Rows whose delivery state this call stored.
    """

    job_id: str
    counts: DeliveryCounts
    routes: Mapping[str, DeliveryCounts] = attrs.field(converter=_frozen)
    complete: bool
    untracked: int = 0
    requests: int = 0
    rounds: int = 0
    elapsed: float = 0.0
    errors: Mapping[str, int] = attrs.field(factory=dict, converter=_frozen)
    updated: int = 0


class _Delivers(Protocol):
    name: str

    async def delivery(self, ref: Any, /) -> list[DeliveryReport]: ...


@attrs.define
class _Row:
    entry: JournalEntry
    gateway: _Delivers


def _gateways(gateway_or_policy: Any) -> tuple[dict[str, _Delivers], dict[str, _Delivers]]:
    """(route name -> gateway, provider name -> gateway) of what ``track()`` was given."""
    if isinstance(gateway_or_policy, FallbackPolicy):
        pairs: list[tuple[str, Any]] = [(r.name, r.gateway) for r in gateway_or_policy.routes]
    elif isinstance(gateway_or_policy, Mapping):
        pairs = [(str(name), gw) for name, gw in gateway_or_policy.items()]
    elif hasattr(gateway_or_policy, "delivery"):
        return {}, {str(gateway_or_policy.name): gateway_or_policy}
    else:
        raise ConfigurationError(
            "track() needs a gateway, a FallbackPolicy or a mapping of them, "
            f"not {type(gateway_or_policy).__name__}"
        )
    by_route: dict[str, _Delivers] = {}
    by_provider: dict[str, _Delivers] = {}
    for name, gw in pairs:
        if not hasattr(gw, "delivery"):
            raise ConfigurationError(f"the gateway of route {name!r} has no delivery() call")
        by_route[name] = gw
        by_provider.setdefault(str(gw.name), gw)
    return by_route, by_provider


def _limiter(
    rate_limit: RateLimit | RateLimiter | None,
    clock: Callable[[], float] | None,
    sleep: Callable[[float], Awaitable[object]] | None,
) -> RateLimiter | None:
    if rate_limit is None:
        return None
    if isinstance(rate_limit, RateLimit):
        return TokenBucket.from_limit(rate_limit, clock=clock, sleep=sleep)
    if isinstance(rate_limit, RateLimiter):
        return rate_limit
    raise ConfigurationError(
        f"rate_limit must be a RateLimit, a RateLimiter or None, not {rate_limit!r}"
    )


async def track(
    journal: Journal,
    gateway_or_policy: Any,
    *,
    job_id: str = "default",
    deadline: float = DEFAULT_DEADLINE,
    interval: float = DEFAULT_INTERVAL,
    rate_limit: RateLimit | RateLimiter | None = None,
    batch: int = DEFAULT_BATCH,
    concurrency: int = 4,
    clock: Callable[[], float] | None = None,
    sleep: Callable[[float], Awaitable[object]] | None = None,
) -> TrackSummary:
    """Poll delivery for every ``sent`` row of a job until each is final or time is up.

    Args:
        journal: The job's journal; it must store delivery states (``record_delivery``:
            ``MemoryJournal``, ``SqliteJournal``, ``PostgresJournal``).
        gateway_or_policy: The gateway the job sent through, the job's
            :class:`~smsgate.FallbackPolicy`, or a mapping from route name to gateway.
            Rows are matched to a gateway by route name, then by provider name.
        job_id: The job.
        deadline: Seconds from now after which rows still not final are left pending.
        interval: Seconds between two rounds of status calls.
        rate_limit: Paces the status calls (a :class:`~smsgate.RateLimit` or any
            :class:`~smsgate.RateLimiter`, e.g. the job's shared one); ``None``: no pacing.
        batch: Ids per call for gateways that take many (Negin ``states()``).
        concurrency: Status calls in flight at once.
        clock: Monotonic seconds (default :func:`anyio.current_time`).
        sleep: Waits that many seconds (default :func:`anyio.sleep`).

    Returns:
        A :class:`TrackSummary`; the states are in the journal too.

    Raises:
        ConfigurationError: Bad settings, or a journal that cannot store delivery states.
    """
    if not hasattr(journal, "record_delivery"):
        raise ConfigurationError(
            f"{type(journal).__name__} cannot store delivery states (no record_delivery)"
        )
    if batch < 1 or concurrency < 1:
        raise ConfigurationError("batch and concurrency must be ints >= 1")
    if not (deadline >= 0 and math.isfinite(deadline)) or not interval > 0:
        raise ConfigurationError("deadline must be >= 0 and interval > 0")
    now = clock or anyio.current_time
    wait = sleep or anyio.sleep
    limiter = _limiter(rate_limit, clock, sleep)
    by_route, by_provider = _gateways(gateway_or_policy)
    started = now()
    stop_at = started + deadline

    untracked = 0
    rows: dict[str, _Row] = {}
    for entry in await journal.entries(job_id):
        if entry.status != "sent" or (entry.delivery is not None and entry.delivery.is_final):
            continue
        gw = by_route.get(entry.route or "") or by_provider.get(entry.provider or "")
        if gw is None and not by_route and len(by_provider) == 1 and entry.provider is None:
            gw = next(iter(by_provider.values()))
        if gw is None or not entry.message_id:
            untracked += 1
            continue
        rows[entry.key] = _Row(entry, gw)

    stats: dict[str, Any] = {"requests": 0, "updated": 0, "errors": {}}
    slots = anyio.CapacityLimiter(concurrency)

    async def paced(call: Callable[[], Awaitable[Any]]) -> Any:
        async with slots:
            if limiter is not None:
                await limiter.acquire(1)
            stats["requests"] += 1
            return await call()

    def failed(exc: SmsGateError) -> None:
        name = type(exc).__name__
        stats["errors"][name] = stats["errors"].get(name, 0) + 1

    async def store(updates: list[DeliveryUpdate], members: Sequence[_Row]) -> None:
        if not updates:
            return
        await journal.record_delivery(updates)
        for update in updates:
            for row in members:
                if row.entry.message_id == update.message_id and (
                    update.recipient is None or update.recipient == row.entry.recipient
                ):
                    row.entry = attrs.evolve(
                        row.entry,
                        delivery=update.state,
                        delivery_status=update.provider_status,
                        delivery_updated=update.at,
                    )
                    stats["updated"] += 1

    lost: set[str] = set()

    async def by_bulk(gw: _Delivers, message_id: str, members: list[_Row]) -> None:
        try:
            reports = await paced(lambda: gw.delivery(message_id))
        except UnknownMessageError as exc:
            failed(exc)
            lost.update(row.entry.key for row in members)
            return
        except SmsGateError as exc:
            failed(exc)
            return
        at = time.time()
        wanted = {row.entry.recipient for row in members}
        updates = [
            DeliveryUpdate(
                message_id=message_id,
                recipient=r.recipient,
                state=r.state,
                provider_status=r.provider_status,
                at=at,
            )
            for r in reports
            if r.recipient is None or r.recipient in wanted
        ]
        if len(members) > 1:
            # Several rows share the id (an ippanel bulk): a report must name its row.
            updates = [u for u in updates if u.recipient is not None]
        await store(updates, members)

    async def by_ids(gw: Any, members: list[_Row]) -> None:
        ids = [row.entry.message_id for row in members]
        try:
            states: Mapping[str, DeliveryReport] = await paced(lambda: gw.states(ids))
        except UnknownMessageError as exc:
            if len(members) == 1:
                failed(exc)
                lost.add(members[0].entry.key)
                return
            # One unknown id fails the whole call: ask again in halves to find it.
            half = len(members) // 2
            await by_ids(gw, members[:half])
            await by_ids(gw, members[half:])
            return
        except SmsGateError as exc:
            failed(exc)
            return
        at = time.time()
        updates = [
            DeliveryUpdate(
                message_id=mid,
                recipient=None,
                state=report.state,
                provider_status=report.provider_status,
                at=at,
            )
            for mid, report in states.items()
        ]
        await store(updates, members)

    rounds = 0
    while True:
        todo = [
            row
            for key, row in rows.items()
            if key not in lost and not (row.entry.delivery and row.entry.delivery.is_final)
        ]
        if not todo:
            break
        rounds += 1
        async with anyio.create_task_group() as tg:
            for gw, group in _group_by_gateway(todo):
                if callable(getattr(gw, "states", None)):
                    for start in range(0, len(group), batch):
                        tg.start_soon(by_ids, gw, group[start : start + batch])
                else:
                    bulks: dict[str, list[_Row]] = {}
                    for row in group:
                        bulks.setdefault(str(row.entry.message_id), []).append(row)
                    for message_id, members in bulks.items():
                        tg.start_soon(by_bulk, gw, message_id, members)
        left = stop_at - now()
        if left <= 0:
            break
        if all(
            row.entry.delivery is not None and row.entry.delivery.is_final
            for key, row in rows.items()
            if key not in lost
        ):
            break
        await wait(min(interval, left))

    entries = await journal.entries(job_id)
    counts, routes = count_deliveries(entries)
    return TrackSummary(
        job_id=job_id,
        counts=counts,
        routes=routes,
        complete=counts.pending == 0,
        untracked=untracked + len(lost),
        requests=stats["requests"],
        rounds=rounds,
        elapsed=now() - started,
        errors=dict(sorted(stats["errors"].items())),
        updated=stats["updated"],
    )


def _group_by_gateway(rows: Sequence[_Row]) -> list[tuple[_Delivers, list[_Row]]]:
    groups: dict[int, tuple[_Delivers, list[_Row]]] = {}
    for row in rows:
        groups.setdefault(id(row.gateway), (row.gateway, []))[1].append(row)
    return list(groups.values())


def journal_sink(journal: Any) -> Callable[[DeliveryReport], Awaitable[None]]:
    """An ``on_report`` callable that stores pushed reports in a journal.

    For :func:`smsgate.fastapi.delivery_router` (or :class:`smsgate.webhooks.WebhookReceiver`)::

        app.include_router(delivery_router(journal_sink(journal), secret=...))

    Each report's state is stored on the journal rows of its message id (and recipient,
    when the report names one), in whatever job they are.

    Args:
        journal: A journal with ``record_delivery`` (``MemoryJournal``, ``SqliteJournal``,
            ``PostgresJournal``).

    Raises:
        ConfigurationError: The journal cannot store delivery states.
    """
    if not hasattr(journal, "record_delivery"):
        raise ConfigurationError(
            f"{type(journal).__name__} cannot store delivery states (no record_delivery)"
        )

    async def on_report(report: DeliveryReport) -> None:
        at = report.at.timestamp() if report.at is not None else time.time()
        await journal.record_delivery(
            [
                DeliveryUpdate(
                    message_id=report.message_id,
                    recipient=report.recipient,
                    state=report.state,
                    provider_status=report.provider_status,
                    at=at,
                )
            ]
        )

    return on_report
