"""The bulk dispatcher over FakeGateway: accounting, batching, dedup, invalid rows, retries,
rate and concurrency caps, cancellation, lazy input, progress and the dry run.

Timed tests run under trio's MockClock (class TestTimed): the fake's latency and the rate
limiter's waits are instant and deterministic.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import random
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from decimal import Decimal
from typing import Any

import anyio
import pytest

from smsgate import (
    ConfigurationError,
    InsufficientCreditError,
    InvalidMessageError,
    InvalidRecipientError,
    Message,
    NotSentError,
    OutcomeUnknownError,
    ProtocolError,
    ProviderError,
    ProviderUnavailableError,
    RateLimitedError,
    RecipientOptedOutError,
    RecipientRejectedError,
    SendReceipt,
    SmsGateError,
    TooManyRecipientsError,
)
from smsgate.dispatch import (
    BulkDispatcher,
    BulkReport,
    FallbackPolicy,
    Outcome,
    Progress,
    RateLimit,
    RetryPolicy,
    TokenBucket,
)
from smsgate.dispatch._dedupe import SeenSet as _SeenSet
from smsgate.testing import FakeGateway

from ._helpers import max_in_window, mock_clock_backend

pytestmark = pytest.mark.anyio


def rows(n: int, text: str = "hello", start: int = 0, sender: str | None = None) -> list[Message]:
    return [Message(to=f"0912{start + i:07d}", text=text, sender=sender) for i in range(n)]


def e164(i: int) -> str:
    return f"+98912{i:07d}"


def accounted(report: BulkReport) -> bool:
    return report.sent + report.failed + report.unknown + report.skipped == report.total


async def collect(dispatcher: BulkDispatcher, messages: Any, **kw: Any) -> list[Outcome]:
    async with contextlib.aclosing(dispatcher.stream(messages, **kw)) as outcomes:
        return [o async for o in outcomes]


def task_count() -> int:
    return len(anyio.get_running_tasks())


# -- accounting ---------------------------------------------------------------------------------


async def test_every_row_sent_and_reported() -> None:
    """A plain job: one outcome per row, the report adds up, receipts name the recipient."""
    gw = FakeGateway()
    report = await BulkDispatcher(gw).run(rows(50), job_id="plain")
    assert (report.total, report.sent, report.requests) == (50, 50, 50)
    assert accounted(report) and report.ok and report.failures == ()
    assert report.job_id == "plain" and report.errors == {}
    assert sorted(gw.accepted_recipients()) == [e164(i) for i in range(50)]
    outcomes = await collect(BulkDispatcher(FakeGateway()), rows(3))
    assert sorted(o.recipient or "" for o in outcomes) == [e164(i) for i in range(3)]
    for o in outcomes:
        assert o.status == "sent" and o.route == "fake:default" and o.error is None
        assert o.receipt is not None and o.message_id == o.receipt.message_ids[o.recipient or ""]
    assert "50 sent" in report.summary()


async def test_async_iterable_input() -> None:
    """An async generator is read like a list."""

    async def source() -> AsyncIterator[Message]:
        for m in rows(30):
            yield m

    report = await BulkDispatcher(FakeGateway()).run(source())
    assert (report.total, report.sent) == (30, 30)


async def test_dedup_after_normalisation() -> None:
    """0912…, +98912…, 912… and Persian digits are one person: one SMS, the rest skipped."""
    same = ["09121234567", "+989121234567", "9121234567", "۰۹۱۲۱۲۳۴۵۶۷", "00989121234567"]
    messages = [Message(to=n, text="hi") for n in same]
    messages += [Message(to="09121234567", text="other text")]
    messages += [Message(to="09121234567", text="hi", sender="3000")]
    gw = FakeGateway()
    outcomes = await collect(BulkDispatcher(gw), messages)
    assert [o.status for o in outcomes].count("sent") == 3
    skipped = [o for o in outcomes if o.status == "skipped"]
    assert len(skipped) == 4
    assert {o.reason for o in skipped} == {"duplicate"}
    assert {o.recipient for o in skipped} == {"+989121234567"}
    assert gw.sent_to("09121234567") == 3
    report = await BulkDispatcher(FakeGateway()).run(messages)
    assert (report.skipped, report.duplicates, report.sent) == (4, 4, 3)


def test_seen_set_is_compact_and_exact() -> None:
    """The duplicate filter keeps 8-byte fingerprints at <= 1/2 load and forgets nothing."""
    seen = _SeenSet(capacity=8)
    rng = random.Random(1)
    values = list({rng.randrange(1, 2**64) for _ in range(5000)})
    assert len(values) == 5000
    assert all(seen.add(v) for v in values)
    assert not any(seen.add(v) for v in values)
    assert len(seen) == 5000
    assert seen.nbytes <= 32 * 5000 and seen.nbytes >= 16 * 5000


async def test_invalid_rows_fail_and_the_job_continues() -> None:
    """Bad numbers and empty texts are `failed` per row, with no request; others go out."""
    messages = [
        Message(to="12345", text="hi"),
        *rows(2),
        Message(to="09121234567", text=""),
        Message(to="0912-123-45-68", text="hi"),
    ]
    gw = FakeGateway()
    outcomes = await collect(BulkDispatcher(gw), messages)
    failed = [o for o in outcomes if o.status == "failed"]
    assert [(type(o.error), o.reason, o.recipient) for o in failed] == [
        (InvalidRecipientError, "invalid recipient", None),
        (InvalidMessageError, "invalid message", None),
    ]
    assert failed[0].message.to == "12345"
    assert len(gw.requests) == 3
    report = await BulkDispatcher(FakeGateway()).run(messages)
    assert (report.failed, report.invalid, report.sent) == (2, 2, 3)
    assert dict(report.errors) == {"InvalidRecipientError": 1, "InvalidMessageError": 1}


async def test_a_non_message_row_stops_the_job_with_type_error() -> None:
    """A row that is not a Message is a programming error: TypeError, raised as itself."""
    with pytest.raises(TypeError, match="row 3 is a tuple"):
        await BulkDispatcher(FakeGateway()).run([*rows(2), ("0912", "hi")])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="row 1 is a str"):
        await collect(BulkDispatcher(FakeGateway()), ["x"])


async def test_every_recipient_accounted_for_under_faults() -> None:
    """A seeded mix of NotSent / OutcomeUnknown / ProviderUnavailable / opt-out / rejections:
    every row gets exactly one outcome, nothing the fake accepted is sent twice, and each
    status matches the fake's own ledger."""
    rng = random.Random(2024)
    primary = FakeGateway(name="ippanel", max_recipients=20)
    backup = FakeGateway(name="negin")
    opted = {e164(i) for i in range(0, 600, 37)}
    everywhere = {e164(i) for i in range(3, 600, 53)}  # opted out on both routes
    rejected = {e164(i) for i in range(5, 600, 101)}
    primary.opt_out(*opted, *everywhere)
    backup.opt_out(*everywhere)
    primary.reject(*rejected)

    def chaos(request):
        draw = rng.random()
        if draw < 0.10:
            return NotSentError("connect refused")
        if draw < 0.15:
            return OutcomeUnknownError("read timeout")  # accepted, then the answer is lost
        if draw < 0.22:
            return ProviderUnavailableError(provider="ippanel", code=99)
        if draw < 0.25:
            return ProviderUnavailableError(provider="ippanel", maybe_sent=True)  # HTTP 500
        if draw < 0.27:
            return ProtocolError("HTML page", status_code=200)
        return None

    primary.on_request = chaos
    backup.on_request = lambda request: NotSentError("down") if rng.random() < 0.1 else None
    policy = FallbackPolicy(
        [primary, backup], on=(RecipientOptedOutError, ProviderUnavailableError)
    )
    messages = rows(600, text="sale") + rows(50, text="sale", start=0)  # 50 duplicates
    outcomes = await collect(
        BulkDispatcher(policy, retries=RetryPolicy(attempts=3, wait_initial=0, wait_jitter=0)),
        messages,
    )
    assert len(outcomes) == 650
    by_recipient: dict[str, list[Outcome]] = {}
    for o in outcomes:
        by_recipient.setdefault(o.recipient or "", []).append(o)
    assert len(by_recipient) == 600
    ledger = primary.accepted_recipients() + backup.accepted_recipients()
    assert len(ledger) == len(set(ledger)), "a recipient was accepted twice"
    for recipient, its in by_recipient.items():
        final = [o for o in its if o.status != "skipped"]
        assert len(final) == 1
        status = final[0].status
        if status == "sent":
            assert recipient in ledger
            assert recipient not in everywhere
        elif status == "failed":
            assert recipient not in ledger
            assert final[0].error is not None and not final[0].error.maybe_sent
        else:
            assert status == "unknown" and final[0].error is not None
            assert final[0].error.maybe_sent
    statuses = [o.status for o in outcomes]
    assert statuses.count("skipped") == 50
    assert {"sent", "failed", "unknown"} <= set(statuses)
    # Nobody on the primary's opt-out or reject lists was reported sent by the primary.
    sent_by_primary = {
        o.recipient for o in outcomes if o.status == "sent" and o.route == "ippanel:default"
    }
    assert sent_by_primary and not (opted | everywhere | rejected) & sent_by_primary


# -- batching -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "max_batch", "cap"), [(250, None, 100), (250, 30, 100), (7, None, 3)]
)
async def test_batching_makes_ceil_n_over_max_batch_requests(
    n: int, max_batch: int | None, cap: int
) -> None:
    """Same text and sender: ceil(n / max_batch) requests, none bigger than allowed."""
    gw = FakeGateway(name="ippanel", max_recipients=cap)
    report = await BulkDispatcher(gw, max_batch=max_batch).run(rows(n))
    size = min(cap, max_batch or cap)
    assert report.requests == len(gw.requests) == math.ceil(n / size)
    assert max(len(r.recipients) for r in gw.requests) == size
    assert report.sent == n == len(gw.accepted)


async def test_batches_never_mix_texts_or_senders() -> None:
    """Rows are grouped by (text, sender); each request carries one text from one line."""
    gw = FakeGateway(max_recipients=50)
    messages = [
        Message(to=f"0912{i:07d}", text=f"t{i % 3}", sender=None if i % 2 else "3000")
        for i in range(120)
    ]
    report = await BulkDispatcher(gw).run(messages)
    assert report.sent == 120
    assert len(gw.requests) == 6  # 6 (text, sender) groups of 20
    for request in gw.requests:
        texts = {m.text for m in messages if f"+98{m.to[1:]}" in request.recipients}
        senders = {m.sender for m in messages if f"+98{m.to[1:]}" in request.recipients}
        assert len(texts) == 1 and texts == {request.text}
        assert senders == {request.sender}


async def test_one_number_per_request_is_sent_as_a_plain_string() -> None:
    """Gateways that take one number per request get `to` as a str, never a list."""
    seen: list[object] = []

    class Recording(FakeGateway):
        async def send(self, to: Any, text: str, *, sender: str | None = None) -> SendReceipt:
            seen.append(to)
            return await super().send(to, text, sender=sender)

    await BulkDispatcher(Recording()).run(rows(3))
    assert seen and all(isinstance(to, str) for to in seen)


async def test_many_distinct_texts_keep_the_window_bounded() -> None:
    """Distinct texts each open a group; the oldest leaves once 64 are open (memory bound)."""
    gw = FakeGateway(max_recipients=100)
    messages = [Message(to=f"0912{i:07d}", text=f"text {i}") for i in range(300)]
    report = await BulkDispatcher(gw).run(messages)
    assert report.sent == 300 and len(gw.requests) == 300


async def test_batch_refused_for_one_number_is_split() -> None:
    """A 32-number batch with one rejected number: 31 sent, 1 failed, log-many requests."""
    gw = FakeGateway(max_recipients=32)
    gw.reject("09120000017")
    outcomes = await collect(BulkDispatcher(gw), rows(32))
    failed = [o for o in outcomes if o.status == "failed"]
    assert [(o.recipient, type(o.error)) for o in failed] == [
        ("+989120000017", RecipientRejectedError)
    ]
    assert len(gw.accepted) == 31
    assert len(gw.requests) == 1 + 2 * 5  # one refused batch, then two halves per level


async def test_too_many_recipients_is_split_until_it_fits() -> None:
    """A provider that takes fewer numbers than it claims: halves until accepted, none lost."""
    gw = FakeGateway(max_recipients=40)
    gw.on_request = lambda r: (
        TooManyRecipientsError(provider="fake") if len(r.recipients) > 12 else None
    )
    report = await BulkDispatcher(gw).run(rows(40))
    assert report.sent == 40 and len(gw.accepted) == 40
    assert max(len(r.recipients) for r in gw.requests if r.error is None) <= 12


async def test_partial_receipt_keeps_the_sent_ones() -> None:
    """An error that carries a partial receipt: those numbers are sent, the rest decided
    by the error (a per-number backend that failed half way)."""

    class HalfWay(FakeGateway):
        async def send(self, to: Any, text: str, *, sender: str | None = None) -> SendReceipt:
            numbers = list(to)
            receipt = await super().send(numbers[:2], text, sender=sender)
            error = ProviderError("boom", provider="half")
            error.receipt = receipt
            raise error

    gw = HalfWay(max_recipients=5)
    outcomes = await collect(BulkDispatcher(gw), rows(5))
    assert sorted(o.status for o in outcomes) == ["failed"] * 3 + ["sent"] * 2
    assert {o.recipient for o in outcomes if o.status == "sent"} == {e164(0), e164(1)}


# -- retries --------------------------------------------------------------------------------


async def test_not_sent_is_retried() -> None:
    """NotSentError twice, then a success: sent, three requests, two retries."""
    gw = FakeGateway()
    gw.script("09120000000", NotSentError("refused"), NotSentError("refused"))
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    report = await BulkDispatcher(gw, sleep=sleep).run(rows(1))
    assert (report.sent, report.requests, report.retries) == (1, 3, 2)
    assert len(slept) == 2 and slept[1] > slept[0]  # exponential back-off (0.2, 0.4 + jitter)


async def test_retries_exhausted_or_disabled() -> None:
    """retries=0: a NotSentError fails the row at once; it is safe to send again later."""
    gw = FakeGateway()
    gw.fail_next(NotSentError("refused"))
    report = await BulkDispatcher(gw, retries=0).run(rows(1))
    assert (report.failed, report.requests) == (1, 1)
    assert isinstance(report.failures[0].error, NotSentError)
    assert not report.failures[0].error.maybe_sent


@pytest.mark.parametrize(
    "error",
    [
        OutcomeUnknownError("read timeout"),
        ProtocolError("truncated JSON"),
        ProviderUnavailableError(provider="x", maybe_sent=True),
        NotSentError("odd", maybe_sent=True),
    ],
)
async def test_maybe_sent_is_never_retried(error: SmsGateError) -> None:
    """Whatever the retry policy says, a send that may have gone out is not repeated."""
    gw = FakeGateway()
    gw.fail_next(error)
    policy = RetryPolicy(attempts=5, on=lambda e: True, wait_initial=0, wait_jitter=0)
    report = await BulkDispatcher(gw, retries=policy).run(rows(1))
    assert (report.unknown, report.requests) == (1, 1)
    assert report.failures[0].reason == "may have been sent"


async def test_other_refusals_are_not_retried() -> None:
    """ProviderUnavailable (not maybe-sent) is not in the default retry set: one request."""
    gw = FakeGateway()
    gw.fail_next(ProviderUnavailableError(provider="fake", code=99))
    report = await BulkDispatcher(gw).run(rows(1))
    assert (report.failed, report.requests) == (1, 1)


def test_retry_policy_values() -> None:
    """RetryPolicy validates, waits exponentially with a cap, and `retries=` accepts ints."""
    policy = RetryPolicy(wait_initial=1, wait_max=5, wait_jitter=0)
    assert [policy.wait(n) for n in (1, 2, 3, 4)] == [1, 2, 4, 5]
    assert RetryPolicy.never().attempts == 1
    assert not policy.should_retry(NotSentError("x"), attempt=4)
    assert policy.should_retry(RateLimitedError(provider="x"), attempt=1)
    assert not policy.should_retry(ProviderUnavailableError(provider="x"), attempt=1)
    assert BulkDispatcher(FakeGateway(), retries=2).retries.attempts == 3
    assert BulkDispatcher(FakeGateway(), retries=None).retries.attempts == 1
    for bad in (-1, 1.5, "3"):
        with pytest.raises(ConfigurationError):
            BulkDispatcher(FakeGateway(), retries=bad)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError):
        RetryPolicy(attempts=0)


# -- settings and statistics --------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"concurrency": 0},
        {"concurrency": True},
        {"max_batch": 0},
        {"rate_limit": 50},
        {"journal": 3},
        {"linger": -1},
    ],
)
def test_bad_settings(kwargs: dict[str, Any]) -> None:
    """Settings that cannot work are refused at construction."""
    with pytest.raises(ConfigurationError):
        BulkDispatcher(FakeGateway(), **kwargs)


async def test_bad_job_id() -> None:
    """An empty job id is refused."""
    with pytest.raises(ConfigurationError, match="job_id"):
        await BulkDispatcher(FakeGateway()).run(rows(1), job_id="")


def test_repr_and_rate_limit_kinds() -> None:
    """A RateLimit becomes a TokenBucket; a RateLimiter is used as given; repr names routes."""
    bucket = TokenBucket(5)
    assert BulkDispatcher(FakeGateway(), rate_limit=bucket).limiter is bucket
    d = BulkDispatcher(FakeGateway(name="ippanel"), rate_limit=RateLimit(9))
    assert isinstance(d.limiter, TokenBucket) and d.limiter.max_rate == 9
    assert "ippanel:default" in repr(d) and "TokenBucket" in repr(d)


# -- the dry run ----------------------------------------------------------------------------


async def test_estimate_counts_requests_parts_and_cost() -> None:
    """Dry run: rows, duplicates, invalid, batched requests, SMS parts, cost, credit; no send."""
    gw = FakeGateway(max_recipients=100, credit=10**6)
    long_text = "س" * 100  # UCS-2: 2 parts
    messages = rows(250, text="hi") + rows(10, text=long_text) + rows(5, text="hi")
    messages.append(Message(to="bad", text="hi"))
    estimate = await BulkDispatcher(gw).estimate(messages, price_per_part="150.5")
    assert (estimate.rows, estimate.duplicates, estimate.invalid) == (266, 5, 1)
    assert estimate.recipients == 260
    assert estimate.requests == 3 + 1
    assert estimate.parts == 250 + 20
    assert estimate.cost == Decimal("150.5") * 270
    assert estimate.credit == Decimal(10**6) and estimate.sufficient is True
    assert estimate.provider == "fake"
    estimate.check()
    assert gw.requests == []


async def test_short_credit_raises_before_anything_is_sent() -> None:
    """check_credit=True: InsufficientCreditError with the numbers, and no request made."""
    gw = FakeGateway(credit=1000)
    messages = rows(20)
    with pytest.raises(InsufficientCreditError, match="needs 2000 Rial") as caught:
        await BulkDispatcher(gw).run(messages, check_credit=True, price_per_part=100)
    assert "1000 short" in str(caught.value) and caught.value.provider == "fake"
    assert gw.requests == []
    report = await BulkDispatcher(gw).run(messages[:10], check_credit=True, price_per_part=100)
    assert report.sent == 10


async def test_check_credit_needs_a_price_and_a_rereadable_input() -> None:
    """check_credit reads the input twice: a generator is refused, as is a missing price."""
    d = BulkDispatcher(FakeGateway())
    with pytest.raises(ConfigurationError, match="price_per_part"):
        await d.run(rows(1), check_credit=True)
    with pytest.raises(ConfigurationError, match="generator"):
        await d.run(iter(rows(1)), check_credit=True, price_per_part=1)


async def test_estimate_without_credit_ability() -> None:
    """A gateway without credit(): the estimate still counts; sufficiency is unknown."""

    class NoCredit:
        name = "bare"
        max_recipients = 1

        async def send(self, to: Any, text: str, *, sender: str | None = None) -> SendReceipt:
            raise AssertionError("a dry run never sends")

    estimate = await BulkDispatcher(NoCredit()).estimate(rows(3))  # type: ignore[arg-type]
    assert (estimate.recipients, estimate.credit, estimate.cost) == (3, None, None)
    assert estimate.sufficient is None
    estimate.check()


# -- the stream -----------------------------------------------------------------------------


async def test_stream_closed_early_leaves_nothing_running() -> None:
    """Breaking out of an aclosing stream stops the job: no tasks, no tokens, no jobs."""
    before = task_count()
    gw = FakeGateway()
    d = BulkDispatcher(gw, concurrency=4)
    seen = 0
    async with contextlib.aclosing(d.stream(rows(10_000))) as outcomes:
        async for _ in outcomes:
            seen += 1
            if seen == 10:
                break
    assert task_count() == before
    stats = d.statistics()
    assert (stats.borrowed, stats.in_flight, stats.jobs) == (0, 0, 0)
    assert len(gw.requests) < 100


# -- time: rate, concurrency, cancellation, laziness, progress ----------------------------------


class TestTimed:
    """Tests that need time to pass: trio's MockClock makes it instant and exact."""

    @pytest.fixture
    def anyio_backend(self) -> tuple[str, dict[str, object]]:
        """trio with a MockClock."""
        return mock_clock_backend()

    async def test_concurrency_cap_holds(self) -> None:
        """With 1 s latency and concurrency 7, exactly 7 requests are ever in flight."""
        gw = FakeGateway(latency=1.0)
        report = await BulkDispatcher(gw, concurrency=7).run(rows(70))
        assert gw.max_in_flight == 7
        # The first request goes alone (the job probes the account), then 69 in waves of 7.
        assert report.elapsed == pytest.approx(11.0)

    async def test_two_jobs_share_the_concurrency_cap(self) -> None:
        """Two jobs of one dispatcher together stay within its concurrency."""
        gw = FakeGateway(latency=1.0)
        d = BulkDispatcher(gw, concurrency=5)
        async with anyio.create_task_group() as tg:
            tg.start_soon(d.run, rows(20), "a")
            tg.start_soon(d.run, rows(20, start=100), "b")
        assert gw.max_in_flight == 5
        assert len(gw.accepted) == 40

    async def test_rate_never_exceeded_in_any_window(self) -> None:
        """10 req/s with burst 3 and 50 in flight allowed: no 1 s window has more than 12
        starts, and the job takes about 100/10 seconds."""
        gw = FakeGateway(latency=0.3)
        report = await BulkDispatcher(gw, rate_limit=RateLimit(10, burst=3), concurrency=50).run(
            rows(100)
        )
        starts = [r.started for r in gw.requests]
        assert max_in_window(starts, 1.0) <= 12
        assert max_in_window(starts, 0.5) <= 5 + 2
        # The probe alone (0.3 s), then two more at once and one every 0.1 s: the 100th
        # starts at 9.9 s and ends at 10.2 s.
        assert report.elapsed == pytest.approx(9.9 + 0.3)

    async def test_rate_in_recipients_with_batching(self) -> None:
        """unit="recipients": 100 recipients/s, batches of up to 40: every window holds
        <= 100, and batches are evened out to 33 so that three fit a window (99/s, not 80)."""
        gw = FakeGateway(max_recipients=40)
        limit = RateLimit(100, unit="recipients")
        report = await BulkDispatcher(gw, rate_limit=limit).run(rows(1000))
        starts = [r.started for r in gw.requests]
        sizes = [len(r.recipients) for r in gw.requests]
        assert max_in_window(starts, 1.0, sizes) <= 100
        assert max(sizes) == 33 and len(gw.requests) == math.ceil(1000 / 33)
        assert report.sent == 1000
        assert report.elapsed == pytest.approx(10.0, abs=0.1)

    async def test_rate_in_parts_clamps_the_batch(self) -> None:
        """unit="parts" at 9 parts/s with 3-part texts: batches shrink to 3 numbers, every
        window holds <= 9 parts; a text longer than a window's parts fails, alone."""
        gw = FakeGateway(max_recipients=100)
        text = "x" * 400  # GSM-7, 3 parts
        huge = "y" * (153 * 13)  # 13 parts: cannot ever start within 9 parts/s
        limit = RateLimit(9, unit="parts")
        report = await BulkDispatcher(gw, rate_limit=limit).run(
            [*rows(50, text=text), Message(to="09350000000", text=huge)]
        )
        assert max(len(r.recipients) for r in gw.requests) == 3
        parts = [3 * len(r.recipients) for r in gw.requests]
        assert max_in_window([r.started for r in gw.requests], 1.0, parts) <= 9
        assert (report.sent, report.failed) == (50, 1)
        assert "ConfigurationError" in report.errors

    async def test_rate_limited_slows_the_whole_job(self) -> None:
        """A 429 with retry_after=5: nothing starts for 5 s, the request is retried, and the
        pace after it is slower than before."""
        gw = FakeGateway()
        calls = itertools.count()
        gw.on_request = lambda r: (
            RateLimitedError(provider="fake", retry_after=5) if next(calls) == 20 else None
        )
        d = BulkDispatcher(gw, rate_limit=RateLimit(20), concurrency=8)
        report = await d.run(rows(60))
        assert (report.sent, report.retries) == (60, 1)
        starts = sorted(r.started for r in gw.requests)
        refused_at = next(r.started for r in gw.requests if r.error == "RateLimitedError")
        after = [s for s in starts if s > refused_at]
        assert after[0] - refused_at == pytest.approx(5.0, abs=1e-6)
        assert max_in_window(after, 1.0) < 20  # slowed down
        assert isinstance(d.limiter, TokenBucket)
        assert d.limiter.statistics().penalties == 1

    async def test_rate_limited_without_a_rate_limit_still_pauses(self) -> None:
        """No rate limit configured: a 429's retry_after still pauses every worker."""
        gw = FakeGateway(latency=0.01)
        gw.fail_next(RateLimitedError(provider="fake", retry_after=3))
        report = await BulkDispatcher(gw, concurrency=1).run(rows(5))
        assert report.sent == 5
        assert gw.requests[1].started - gw.requests[0].started == pytest.approx(3.01)

    async def test_cancellation_leaves_nothing_behind(self) -> None:
        """move_on_after around run(): no tasks, no concurrency tokens, no limiter waiters,
        and an endless generator was read only a bounded way past what was sent."""
        read = 0

        def endless() -> Iterator[Message]:
            nonlocal read
            for i in itertools.count():
                read += 1
                yield Message(to=f"0912{i % 10_000_000:07d}", text=f"t{i}")

        before = task_count()
        gw = FakeGateway(latency=1.0)
        d = BulkDispatcher(gw, concurrency=8, rate_limit=RateLimit(100))
        with anyio.move_on_after(5.5) as scope:
            await d.run(endless())
        assert scope.cancelled_caught
        assert task_count() == before
        stats = d.statistics()
        assert (stats.borrowed, stats.waiting, stats.in_flight, stats.jobs) == (0, 0, 0, 0)
        assert isinstance(d.limiter, TokenBucket) and d.limiter.statistics().waiting == 0
        assert len(gw.accepted) == 1 + 8 * 4  # the probe at 1 s, then 8 a second
        assert read <= len(gw.requests) + 8 + 2
        assert gw.in_flight == 0

    async def test_async_input_is_consumed_lazily(self) -> None:
        """An async generator is pulled only as fast as workers take rows."""
        pulled: list[float] = []

        async def endless() -> AsyncGenerator[Message, None]:
            for i in itertools.count():
                pulled.append(anyio.current_time())
                yield Message(to=f"0912{i:07d}", text="hi")

        gw = FakeGateway(latency=2.0)
        # The dispatcher leaves the caller's generator open (the caller may go on reading
        # it); closing it is the caller's job.
        async with contextlib.aclosing(endless()) as source:
            with anyio.move_on_after(9.0):
                await BulkDispatcher(gw, concurrency=3).run(source)
        assert len(gw.accepted) == 1 + 3 * 3  # the probe at 2 s, then 3 every 2 s
        assert len(pulled) <= len(gw.requests) + 3 + 2

    async def test_linger_closes_partial_batches_of_a_slow_stream(self) -> None:
        """Rows trickling in 1 s apart go out alone after `linger`; a quick burst is batched."""

        async def trickle() -> AsyncIterator[Message]:
            for m in rows(4):
                yield m
                await anyio.sleep(1.0)
            for m in rows(30, start=100):
                yield m

        gw = FakeGateway(max_recipients=100)
        report = await BulkDispatcher(gw, linger=0.2).run(trickle())
        assert report.sent == 34
        sizes = [len(r.recipients) for r in gw.requests]
        assert sizes == [1, 1, 1, 1, 30]
        first_wait = gw.requests[0].started
        assert first_wait == pytest.approx(0.2, abs=0.01)

    async def test_a_plain_iterable_is_batched_full_whatever_the_clock(self) -> None:
        """Linger is for async inputs: a list's rows of one text make ceil(n / 100)
        requests even on a clock that jumps an hour at every reading."""
        hours = itertools.count(0.0, 3600.0)
        gw = FakeGateway(max_recipients=100)
        report = await BulkDispatcher(gw, clock=lambda: next(hours)).run(rows(1050))
        assert report.sent == 1050
        assert sorted(len(r.recipients) for r in gw.requests) == [50] + [100] * 10

    async def test_progress_events_are_bounded_and_final(self) -> None:
        """Progress events come at most every progress_interval, end with final=True, and
        carry counts, rate and ETA."""
        events: list[Progress] = []
        gw = FakeGateway(latency=0.1)
        d = BulkDispatcher(gw, concurrency=10, on_progress=events.append, progress_interval=1.0)
        report = await d.run(rows(500))
        assert report.elapsed == pytest.approx(5.1)  # the probe, then 499 in 5 s
        assert 4 <= len(events) <= 5 / 1.0 + 2
        times = [e.elapsed for e in events[:-1]]
        assert all(b - a >= 1.0 - 1e-9 for a, b in itertools.pairwise(times))
        last = events[-1]
        assert last.final and last.done == last.total == 500 and last.sent == 500
        assert last.fraction == 1.0 and last.eta == 0.0
        middle = events[1]
        assert middle.total == 500 and 0 < middle.done < 500
        assert middle.rate == pytest.approx(100, rel=0.1)
        assert middle.eta is not None and middle.eta == pytest.approx(
            (500 - middle.done) / middle.rate
        )
        assert all(not e.final for e in events[:-1])

    async def test_retry_waits_use_the_injected_clock(self) -> None:
        """Back-off sleeps go through anyio (MockClock): a retried row ends after its wait."""
        gw = FakeGateway()
        gw.script("09120000000", NotSentError("x"))
        policy = RetryPolicy(wait_initial=2.0, wait_jitter=0)
        report = await BulkDispatcher(gw, retries=policy).run(rows(1))
        assert report.sent == 1 and report.elapsed == pytest.approx(2.0)
