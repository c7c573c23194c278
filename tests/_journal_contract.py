"""One set of checks for every journal (memory, SQLite, PostgreSQL): the same rules, three stores.

Each function takes an open journal (fresh: no rows in the job ids it uses) and asserts
what API.md §9 and ``smsgate.dispatch._journal`` promise.
"""

from __future__ import annotations

from typing import Any

from smsgate import DeliveryReport, DeliveryState
from smsgate.dispatch import DeliveryUpdate, JournalEntry, journal_key, reconcile, record_reconciled


def entry(n: int, status: str = "pending", text: str = "hello", **fields: Any) -> JournalEntry:
    recipient = f"+98912{n:07d}"
    return JournalEntry(
        key=journal_key(recipient, text, None),
        recipient=recipient,
        status=status,  # type: ignore[arg-type]
        **fields,
    )


async def check_claim_semantics(journal: Any, job: str = "claims") -> None:
    """absent -> won; pending/sent/unknown -> lost; failed: won only for a definite refusal."""
    await journal.open(job)
    stored = {
        1: entry(1, "pending"),
        2: entry(2, "sent", message_id="m2"),
        3: entry(3, "unknown", error="OutcomeUnknownError"),
        4: entry(4, "failed", error="NotSentError"),
        5: entry(5, "failed", error="RecipientOptedOutError"),
        6: entry(6, "failed", error="OutcomeUnknownError"),  # failed, but may have gone out
        7: entry(7, "failed", error=None),
        8: entry(8, "failed", error="AnErrorFromTheFutureError"),  # unknown class: in doubt
        9: entry(9, "failed", error="JobStoppedError"),
    }
    await journal.record(job, list(stored.values()))
    claims = [entry(n, "pending", route="r1", updated=7.0) for n in range(1, 12)]
    won = await journal.claim(job, claims)
    assert won == {claims[n - 1].key for n in (4, 5, 7, 9, 10, 11)}
    rows = await journal.get(job, [c.key for c in claims])
    for n in (4, 5, 7, 9, 10, 11):  # won: written as given
        assert rows[claims[n - 1].key] == claims[n - 1]
    for n in (1, 2, 3, 6, 8):  # lost: untouched
        assert rows[claims[n - 1].key] == stored[n]
    # Claimed rows are pending now: nobody wins them again.
    assert await journal.claim(job, claims) == set()
    # A key given twice in one call is won once; an empty call wins nothing.
    twice = [entry(20), entry(20, route="other")]
    assert await journal.claim(job, twice) == {twice[0].key}
    assert (await journal.get(job, [twice[0].key]))[twice[0].key].route is None
    assert await journal.claim(job, []) == set()
    # Jobs are separate: the same key in another job is free.
    assert await journal.claim(f"{job}-other", [entry(2)]) == {entry(2).key}


async def check_claim_aliases(journal: Any, job: str = "aliases") -> None:
    """A row under an alias key (an older key of the same row) blocks or frees the claim."""
    old_sent = entry(1, "sent", text="old-1")
    old_refused = entry(2, "failed", text="old-2", error="NotSentError")
    old_unknown = entry(3, "unknown", text="old-3", error="OutcomeUnknownError")
    await journal.record(job, [old_sent, old_refused, old_unknown])
    new = [
        JournalEntry(
            key=entry(1).key, recipient="+989120000001", status="pending", aliases=(old_sent.key,)
        ),
        JournalEntry(
            key=entry(2).key,
            recipient="+989120000002",
            status="pending",
            aliases=(old_refused.key,),
        ),
        JournalEntry(
            key=entry(3).key,
            recipient="+989120000003",
            status="pending",
            aliases=("no-such-key", old_unknown.key),
        ),
        JournalEntry(
            key=entry(4).key, recipient="+989120000004", status="pending", aliases=("nothing",)
        ),
    ]
    assert await journal.claim(job, new) == {new[1].key, new[3].key}
    rows = await journal.get(job, [e.key for e in new])
    assert set(rows) == {new[1].key, new[3].key}


async def check_delivery_and_recent(journal: Any) -> None:
    """record_delivery() matches by message id (+ recipient) across jobs; recent_sends()."""
    await journal.record(
        "a",
        [
            entry(1, "sent", message_id="bulk-1", updated=100.0),
            entry(2, "sent", message_id="bulk-1", updated=100.0),
            entry(3, "sent", message_id="solo-3", updated=50.0),
            entry(4, "failed", error="NotSentError", updated=100.0),
        ],
    )
    await journal.record("b", [entry(1, "sent", message_id="bulk-1", updated=200.0)])
    changed = await journal.record_delivery(
        [
            DeliveryUpdate(
                message_id="bulk-1",
                recipient="+989120000001",
                state=DeliveryState.DELIVERED,
                provider_status="delivered",
                at=300.0,
            ),
            DeliveryUpdate(
                message_id="solo-3",
                recipient=None,
                state=DeliveryState.BLOCKED,
                provider_status="discarded",
                at=301.0,
            ),
            DeliveryUpdate(
                message_id="nobody",
                recipient=None,
                state=DeliveryState.UNDELIVERED,
                provider_status="failed",
                at=302.0,
            ),
        ]
    )
    assert changed == 3  # recipient 1 in jobs a and b, and solo-3
    rows_a = {e.recipient: e for e in await journal.entries("a")}
    one = rows_a["+989120000001"]
    assert (one.delivery, one.delivery_status, one.delivery_updated) == (
        DeliveryState.DELIVERED,
        "delivered",
        300.0,
    )
    assert rows_a["+989120000002"].delivery is None  # same bulk id, other recipient
    assert rows_a["+989120000003"].delivery is DeliveryState.BLOCKED
    assert (await journal.entries("b"))[0].delivery is DeliveryState.DELIVERED
    assert await journal.record_delivery([]) == 0

    keys = [entry(n).key for n in (1, 2, 3, 4, 5)]
    assert await journal.recent_sends(keys, since=150.0, exclude_job="c") == {keys[0]: "b"}
    recent = await journal.recent_sends(keys, since=100.0, exclude_job="b")
    assert recent == {keys[0]: "a", keys[1]: "a"}  # 3 is too old, 4 failed, 5 absent
    assert await journal.recent_sends(keys, since=0.0, exclude_job="a") == {keys[0]: "b"}
    assert await journal.recent_sends([], since=0.0, exclude_job="a") == {}


async def check_fields_round_trip(journal: Any) -> None:
    """Every stored field of JournalEntry comes back as written."""
    full = entry(
        1,
        "sent",
        route="ippanel:+983000505",
        provider="ippanel",
        message_id="562892393",
        error=None,
        detail="ok",
        updated=1234.5,
        parts=3,
        delivery=DeliveryState.AT_OPERATOR,
        delivery_status="pending",
        delivery_updated=1240.25,
    )
    bare = entry(
        2, "failed", error="NotSentError", detail="refused: \u0645\u0633\u062f\u0648\u062f"
    )
    await journal.record("fields", [full, bare])
    assert await journal.entries("fields") == [full, bare]
    assert await journal.get("fields", [full.key, "absent"]) == {full.key: full}


async def check_summary(journal: Any) -> None:
    """summary(): counts per status, errors, deliveries, parts and routes, per job."""
    await journal.open("empty")
    await journal.record(
        "s",
        [
            entry(1, "sent", route="r1", parts=2, updated=10.0),
            entry(2, "sent", route="r1", parts=2, updated=11.0),
            entry(3, "sent", route="r2", parts=1, updated=12.0, message_id="x3"),
            entry(4, "failed", route="r2", error="RecipientOptedOutError", updated=13.0),
            entry(5, "unknown", route="r1", error="OutcomeUnknownError", updated=14.0),
            entry(6, "pending", updated=15.0),
            entry(7, "sent", route="r1", updated=9.0, message_id="x7"),
        ],
    )
    await journal.record_delivery(
        [
            DeliveryUpdate(
                message_id="x3",
                recipient=None,
                state=DeliveryState.DELIVERED,
                provider_status="1",
                at=20.0,
            ),
            DeliveryUpdate(
                message_id="x7",
                recipient=None,
                state=DeliveryState.REJECTED,
                provider_status="16",
                at=20.0,
            ),
        ]
    )
    summaries = await journal.summary()
    assert list(summaries) == ["empty", "s"]
    s = summaries["s"]
    assert (s.total, s.sent, s.failed, s.unknown, s.pending, s.in_doubt) == (7, 4, 1, 1, 1, 2)
    assert dict(s.errors) == {"OutcomeUnknownError": 1, "RecipientOptedOutError": 1}
    assert (s.delivered, s.rejected, s.undelivered, s.blocked, s.pending_delivery) == (
        1,
        1,
        0,
        0,
        2,
    )
    assert s.parts == 5
    assert {k: dict(v) for k, v in s.routes.items()} == {
        "": {"pending": 1},
        "r1": {"sent": 3, "unknown": 1},
        "r2": {"failed": 1, "sent": 1},
    }
    assert s.updated == 15.0 and s.created is not None
    empty = summaries["empty"]
    assert (empty.total, empty.updated, dict(empty.routes)) == (0, None, {})
    assert await journal.summary("s") == {"s": s}
    assert await journal.summary("nope") == {}


class _DeliveryStub:
    """A gateway whose delivery() answers from a table (reconciliation never sends)."""

    name = "stub"

    def __init__(self, table: dict[str, list[DeliveryReport]]) -> None:
        self.table = table

    async def delivery(self, ref: object, /) -> list[DeliveryReport]:
        assert isinstance(ref, str)
        return self.table[ref]


async def check_reconcile(journal: Any) -> None:
    """reconcile() + record_reconciled() settle a job's in-doubt rows in this journal."""
    a, b, c = entry(1, "pending", message_id="b1", parts=2), entry(2, "unknown"), entry(3)
    await journal.record("job", [a, b, c, entry(4, "sent", message_id="b4")])
    gateway = _DeliveryStub(
        {
            "b1": [
                DeliveryReport(
                    message_id="b1",
                    recipient=a.recipient,
                    state=DeliveryState.DELIVERED,
                    provider_status="delivered",
                )
            ]
        }
    )

    async def lookup(recipient: str) -> str | None:
        return None if recipient == b.recipient else "b-unknown-to-the-stub"

    rows = await journal.entries("job")
    results = await reconcile(
        [r for r in rows if r.recipient != c.recipient], gateway, lookup=lookup
    )
    assert [(r.recipient, r.verdict) for r in results] == [
        (a.recipient, "delivered"),
        (b.recipient, "not_sent"),
    ]
    assert await record_reconciled(journal, "job", results) == 2
    after = {e.recipient: e for e in await journal.entries("job")}
    settled = after[a.recipient]
    assert (settled.status, settled.message_id, settled.parts) == ("sent", "b1", 2)
    assert (settled.delivery, settled.delivery_status) == (DeliveryState.DELIVERED, "delivered")
    assert (after[b.recipient].status, after[b.recipient].error) == ("failed", "NotSentError")
    # A rerun may send b again (a definite "nothing went out"), never a.
    assert await journal.claim("job", [entry(1), entry(2)]) == {entry(2).key}
    if hasattr(journal, "summary"):
        summary = (await journal.summary("job"))["job"]
        assert (summary.sent, summary.delivered, summary.pending) == (2, 1, 2)


def race_claimers(commands: list[list[str]], keys: int) -> None:
    """Start one claiming process per command, release them together, check the winners.

    Each child prints ``ready``, waits for ``go`` on stdin (the barrier: every child is
    ready before any one starts), claims, and prints the JSON list of keys it won last.
    The winners must be disjoint (nobody sends a row another process won) and cover every
    key ``k00000`` .. (nothing lost).
    """
    import json
    import subprocess

    children = [
        subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for command in commands
    ]
    try:
        for child in children:
            assert child.stdout is not None
            assert child.stdout.readline().strip() == "ready"
        for child in children:
            assert child.stdin is not None
            child.stdin.write("go\n")
            child.stdin.flush()
        results = []
        for child in children:
            out, err = child.communicate(timeout=120)
            assert child.returncode == 0, err
            results.append(set(json.loads(out.strip().splitlines()[-1])))
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()
    union: set[str] = set()
    for won in results:
        assert union.isdisjoint(won), "a key was won twice"
        union |= won
    assert union == {f"k{n:05d}" for n in range(keys)}
