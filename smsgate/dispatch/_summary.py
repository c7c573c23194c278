"""``JobSummary``: how far a job got, counted from its journal rows (any journal).

The SQLite and PostgreSQL journals run the same three grouped queries and hand their rows
to :func:`build_summaries`, so both report one shape, with the same rules.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Any

import attrs

from .._models import DeliveryState

__all__ = ["FINAL_DELIVERY", "JobSummary", "build_summaries"]

#: Delivery states after which nothing changes any more (the per-state counts).
FINAL_DELIVERY: Mapping[str, str] = MappingProxyType(
    {
        DeliveryState.DELIVERED.value: "delivered",
        DeliveryState.UNDELIVERED.value: "undelivered",
        DeliveryState.BLOCKED.value: "blocked",
        DeliveryState.REJECTED.value: "rejected",
    }
)


def _frozen_counts(value: Mapping[str, int]) -> Mapping[str, int]:
    return MappingProxyType(dict(value))


def _frozen_routes(value: Mapping[str, Mapping[str, int]]) -> Mapping[str, Mapping[str, int]]:
    return MappingProxyType({route: _frozen_counts(counts) for route, counts in value.items()})


@attrs.frozen(kw_only=True)
class JobSummary:
    """How far one job got, counted from its journal rows.

    Attributes:
        job_id: The job.
        total: Rows (recipients the job has touched; never-attempted ones have no row).
        pending: Rows written before a request whose answer was never recorded: the
            process died or was cancelled while the request was in flight. In doubt.
        sent: Confirmed by the provider; a rerun skips them.
        failed: Refused or certainly not sent (see ``errors``).
        unknown: The request may have gone out (timeout, dropped connection). In doubt.
        errors: Error class name to the number of rows that carry it.
        created: When the job was first opened (``time.time()``), if known.
        updated: The latest row write, or ``None`` for a job with no rows.
        delivered: Rows whose last known delivery state is ``delivered``.
        undelivered: Rows the operator could not deliver (``undelivered``).
        blocked: Rows blocked by the provider (the opt-out list).
        rejected: Rows the operator rejected.
        pending_delivery: ``sent`` rows with no final delivery state yet (none known,
            or queued, at the operator, unknown).
        parts: SMS parts of the ``sent`` rows whose parts are known (what they cost).
        routes: Route name to its rows per status, e.g. ``{"ippanel:+983000505":
            {"sent": 90, "failed": 2}}``; rows with no route are under ``""``.
    """

    job_id: str
    total: int = 0
    pending: int = 0
    sent: int = 0
    failed: int = 0
    unknown: int = 0
    errors: Mapping[str, int] = attrs.field(factory=dict, converter=_frozen_counts)
    created: float | None = None
    updated: float | None = None
    delivered: int = 0
    undelivered: int = 0
    blocked: int = 0
    rejected: int = 0
    pending_delivery: int = 0
    parts: int = 0
    routes: Mapping[str, Mapping[str, int]] = attrs.field(factory=dict, converter=_frozen_routes)

    @property
    def in_doubt(self) -> int:
        """``pending + unknown``: recipients to reconcile before anything is resent."""
        return self.pending + self.unknown


def build_summaries(
    created: Mapping[str, float | None],
    by_status: Iterable[Iterable[Any]],
    errors: Iterable[Iterable[Any]],
    deliveries: Iterable[Iterable[Any]],
) -> dict[str, JobSummary]:
    """Summaries per job from three grouped queries' rows.

    Args:
        created: Job id to its creation time (every job, rows or not).
        by_status: ``(job_id, status, route, count, max(updated), sum(parts))`` grouped by
            job, status and route.
        errors: ``(job_id, error, count)`` for rows with an error, grouped by job and error.
        deliveries: ``(job_id, status, delivery, count)`` grouped by job, status and
            delivery (``delivery`` may be ``None``).

    Returns:
        Job id to its :class:`JobSummary`, sorted by job id.
    """
    counts: dict[str, dict[str, int]] = {job: {} for job in created}
    routes: dict[str, dict[str, dict[str, int]]] = {}
    updated: dict[str, float] = {}
    parts: dict[str, int] = {}
    for job, status, route, n, last, parts_sum in by_status:
        by = counts.setdefault(job, {})
        by[status] = by.get(status, 0) + int(n)
        per_route = routes.setdefault(job, {}).setdefault(route or "", {})
        per_route[status] = per_route.get(status, 0) + int(n)
        last = float(last)
        updated[job] = max(updated.get(job, last), last)
        if status == "sent" and parts_sum is not None:
            parts[job] = parts.get(job, 0) + int(parts_sum)
    error_counts: dict[str, dict[str, int]] = {}
    for job, error, n in errors:
        error_counts.setdefault(job, {})[error] = int(n)
    delivery_counts: dict[str, dict[str, int]] = {}
    for job, status, delivery, n in deliveries:
        name = FINAL_DELIVERY.get(delivery) if delivery is not None else None
        if name is None:
            if status != "sent":
                continue
            name = "pending_delivery"
        by = delivery_counts.setdefault(job, {})
        by[name] = by.get(name, 0) + int(n)
    return {
        job: JobSummary(
            job_id=job,
            total=sum(by_status_.values()),
            pending=by_status_.get("pending", 0),
            sent=by_status_.get("sent", 0),
            failed=by_status_.get("failed", 0),
            unknown=by_status_.get("unknown", 0),
            errors=dict(sorted(error_counts.get(job, {}).items())),
            created=created.get(job),
            updated=updated.get(job),
            parts=parts.get(job, 0),
            routes={
                route: dict(sorted(per.items()))
                for route, per in sorted(routes.get(job, {}).items())
            },
            **delivery_counts.get(job, {}),
        )
        for job, by_status_ in sorted(counts.items())
    }
