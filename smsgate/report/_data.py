"""The report's data: what a page (or a script) shows about one job, from its journal.

Plain JSON-ready values (dicts, lists, numbers, strings), so that the same data feeds the
self-contained HTML page, the live server's ``/data.json`` and a user's own dashboard.
Numbers are masked by default (``+98912***4567``).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Any

from .._models import DeliveryState
from ..dispatch import Journal, JournalEntry
from ..tracking import count_deliveries

__all__ = ["MAX_FAILURES", "MAX_POINTS", "build_report", "mask_number", "report_from_entries"]

#: Rows of the failures table at most (the counts still count every row).
MAX_FAILURES = 500
#: Points of each funnel series at most.
MAX_POINTS = 120

_FAILED_DELIVERY = frozenset(
    {DeliveryState.UNDELIVERED, DeliveryState.BLOCKED, DeliveryState.REJECTED}
)


def mask_number(number: str) -> str:
    """A phone number with its middle hidden: ``+989121234567`` -> ``+98912***4567``.

    Keeps the country and operator prefix (the first six characters of E.164) and the
    last four digits; anything short is hidden but for its last two characters.
    """
    if len(number) >= 11:
        return f"{number[:6]}***{number[-4:]}"
    return "***" + number[-2:] if len(number) > 4 else "***"


def _series(times: Iterable[float], start: float, end: float) -> list[list[float]]:
    """Cumulative count over time as ``[[seconds since start, count], ...]`` (bounded)."""
    ordered = sorted(times)
    if not ordered:
        return [[0.0, 0], [round(max(0.0, end - start), 3), 0]]
    points: list[list[float]] = [[0.0, 0]]
    step = max(1, len(ordered) // MAX_POINTS)
    points.extend(
        [round(ordered[index] - start, 3), index + 1]
        for index in range(step - 1, len(ordered), step)
    )
    if points[-1][1] != len(ordered):
        points.append([round(ordered[-1] - start, 3), len(ordered)])
    points.append([round(max(end, ordered[-1]) - start, 3), len(ordered)])
    return points


def _reason(entry: JournalEntry) -> str:
    if entry.status == "sent":
        state = entry.delivery.value if entry.delivery is not None else "?"
        return f"{state} (provider status {entry.delivery_status or '?'})"
    if entry.status == "pending":
        return "in flight when the job stopped: in doubt, reconcile before resending"
    return entry.detail or entry.error or entry.status


def report_from_entries(
    job_id: str,
    entries: Sequence[JournalEntry],
    *,
    mask: bool = True,
    price_per_part: Decimal | int | str | None = None,
    now: float | None = None,
) -> dict[str, Any]:
    """The report data of a job from its rows (see :func:`build_report`)."""
    now = time.time() if now is None else now
    price = None if price_per_part is None else Decimal(price_per_part)
    statuses = dict.fromkeys(("pending", "sent", "failed", "unknown"), 0)
    for entry in entries:
        statuses[entry.status] += 1
    delivery, by_route = count_deliveries(entries)

    routes: dict[str, dict[str, Any]] = {}
    for entry in entries:
        name = entry.route or "-"
        route = routes.setdefault(
            name,
            {"route": name, "provider": entry.provider, "rows": 0, "sent": 0, "parts": 0},
        )
        route["rows"] += 1
        if entry.status == "sent":
            route["sent"] += 1
            if entry.parts is None:
                route["parts_unknown"] = route.get("parts_unknown", 0) + 1
            else:
                route["parts"] += entry.parts
    for name, route in routes.items():
        route["delivery"] = by_route[name].as_dict() if name in by_route else None
        route["cost"] = None if price is None else str(price * route["parts"])

    sent_times = [e.updated for e in entries if e.status == "sent" and e.updated]
    delivered_times = [
        e.delivery_updated or e.updated
        for e in entries
        if e.status == "sent" and e.delivery is DeliveryState.DELIVERED
    ]
    lost_times = [
        e.delivery_updated or e.updated
        for e in entries
        if e.status == "sent" and e.delivery in _FAILED_DELIVERY
    ]
    all_times = [t for t in (*sent_times, *delivered_times, *lost_times) if t]
    stamps = [e.updated for e in entries if e.updated]
    start = min(all_times or stamps or [now])
    end = max([*all_times, *stamps]) if (all_times or stamps) else now

    failures: list[dict[str, Any]] = []
    failed_total = 0
    for entry in entries:
        bad = entry.status != "sent" or entry.delivery in _FAILED_DELIVERY
        if not bad:
            continue
        failed_total += 1
        if len(failures) >= MAX_FAILURES:
            continue
        failures.append(
            {
                "recipient": mask_number(entry.recipient) if mask else entry.recipient,
                "status": entry.status,
                "delivery": entry.delivery.value if entry.delivery is not None else None,
                "route": entry.route,
                "error": entry.error,
                "reason": _reason(entry),
                "at": entry.delivery_updated or entry.updated or None,
            }
        )
    return {
        "job_id": job_id,
        "generated": now,
        "started": start if entries else None,
        "updated": end if entries else None,
        "masked": mask,
        "price_per_part": None if price is None else str(price),
        "rows": len(entries),
        "statuses": statuses,
        "delivery": delivery.as_dict(),
        "routes": [routes[name] for name in sorted(routes)],
        "funnel": {
            "accepted": _series(sent_times, start, end),
            "delivered": _series(delivered_times, start, end),
            "not_delivered": _series(lost_times, start, end),
        },
        "failures": failures,
        "failures_total": failed_total,
        "running": statuses["pending"] > 0 or delivery.pending > 0,
    }


async def build_report(
    journal: Journal,
    job_id: str,
    *,
    mask: bool = True,
    price_per_part: Decimal | int | str | None = None,
) -> dict[str, Any]:
    """Read a job from its journal into the report's data (JSON-ready).

    Args:
        journal: Any journal (delivery states show where it stores them).
        job_id: The job.
        mask: Hide the middle of every phone number (``+98912***4567``); ``False`` shows
            them whole (keep such a page private).
        price_per_part: Rial per SMS part, to show a cost per route (parts are counted
            from rows that know theirs).

    Returns:
        A dict: ``job_id``, ``rows``, ``statuses`` (journal statuses), ``delivery``
        (delivered / undelivered / blocked / rejected / pending among sent rows),
        ``routes`` (rows, sent, parts, cost and delivery per route), ``funnel``
        (cumulative accepted / delivered / not delivered over time, seconds since the
        first event), ``failures`` (at most :data:`MAX_FAILURES` rows with a reason) and
        ``running`` (rows or deliveries still pending).
    """
    entries = await journal.entries(job_id)
    return report_from_entries(job_id, entries, mask=mask, price_per_part=price_per_part)
