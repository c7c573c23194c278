"""``FakeGateway``: an in-memory :class:`~smsgate.SmsGateway` for unit tests.

No HTTP, no server: ``send`` checks its input the way a backend does, waits ``latency``
seconds on anyio's clock (so trio's ``MockClock`` makes it instant), applies whatever the
test scripted, and records everything:

* :attr:`FakeGateway.requests`: every request that got past local validation, with the
  time it started and ended and how it ended;
* :attr:`FakeGateway.accepted`: every recipient the fake "sent" (the server-side ledger).
  A scripted error with ``maybe_sent=True`` (``OutcomeUnknownError``, ``ProtocolError``)
  is raised *after* the send was accepted, which is what such errors mean in real life.

Scripting::

    gw = FakeGateway(max_recipients=100, latency=0.05)
    gw.opt_out("09350000001")                        # RecipientOptedOutError
    gw.reject("09120000000")                         # RecipientRejectedError (bad number)
    gw.script("09121111111", NotSentError("x"), None)  # first try fails, second succeeds
    gw.fail_next(ProviderUnavailableError(provider="fake"))   # the next request, any number
    gw.on_request = lambda request: ...              # return an error to raise, or None

A request is refused as a whole when any of its numbers is scripted to fail, as a
multi-recipient provider API does; the dispatcher splits such a batch to find the number.
"""

from __future__ import annotations

import functools
import itertools
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from decimal import Decimal
from types import TracebackType
from typing import Self

import anyio
import anyio.lowlevel
import attrs

from .._models import DeliveryReport, DeliveryState, SendReceipt
from .._phone import normalize_msisdn
from .._segments import segments
from ..exceptions import (
    ConfigurationError,
    InsufficientCreditError,
    InvalidMessageError,
    RecipientOptedOutError,
    RecipientRejectedError,
    SmsGateError,
    TooManyRecipientsError,
    UnknownMessageError,
)

__all__ = ["FakeGateway", "FakeRequest", "FakeSend"]


@functools.lru_cache(maxsize=1024)
def _parts(text: str) -> int:
    return segments(text).parts


@attrs.frozen(kw_only=True)
class FakeRequest:
    """One request a :class:`FakeGateway` received (after local validation).

    Attributes:
        recipients: The numbers, E.164, in the order given.
        text: The text.
        sender: The sender line asked for.
        started: ``anyio.current_time()`` (or the fake's clock) when it arrived.
        finished: When it was answered (or raised).
        error: The error class name it ended with (``"Cancelled"`` if the caller gave up
            during the latency), or ``None`` for an accepted send.
        message_id: The id given to an accepted send.
    """

    recipients: tuple[str, ...]
    text: str
    sender: str | None
    started: float
    finished: float
    error: str | None = None
    message_id: str | None = None


@attrs.frozen(kw_only=True)
class FakeSend:
    """One recipient of one send the fake accepted (its ledger row)."""

    recipient: str
    text: str
    sender: str | None
    message_id: str
    at: float
    parts: int


class FakeGateway:
    """An in-memory, scriptable :class:`~smsgate.SmsGateway` (also ``SupportsCredit``).

    Args:
        name: The gateway's ``name`` (route names derive from it).
        max_recipients: Numbers one request may carry (more: ``TooManyRecipientsError``).
        latency: Seconds each request takes (``anyio.sleep``; 0 still yields once).
        sender: The default line, reported in receipts when a send names none.
        credit: The account's credit, Rial; each accepted recipient costs
            ``price_per_part`` per SMS part.
        price_per_part: Rial per part and recipient (default 0: sends are free).
        opted_out: Numbers on the opt-out list.
        clock: Time source for the records (default :func:`anyio.current_time`).
    """

    def __init__(
        self,
        *,
        name: str = "fake",
        max_recipients: int = 1,
        latency: float = 0.0,
        sender: str | None = None,
        credit: Decimal | int | str = Decimal(10**12),
        price_per_part: Decimal | int | str = Decimal(0),
        opted_out: Iterable[str] = (),
        clock: Callable[[], float] | None = None,
    ) -> None:
        if max_recipients < 1:
            raise ConfigurationError("max_recipients must be >= 1")
        if latency < 0:
            raise ConfigurationError("latency must not be negative")
        #: The gateway's name.
        self.name = name
        #: Numbers one request may carry.
        self.max_recipients = max_recipients
        #: Seconds each request takes.
        self.latency = latency
        #: The default sender line.
        self.sender = sender
        #: Rial left.
        self.balance = Decimal(credit)
        #: Rial per SMS part and recipient.
        self.price_per_part = Decimal(price_per_part)
        #: Every request received, in arrival order (completed ones).
        self.requests: list[FakeRequest] = []
        #: Every recipient accepted (the fake's ledger).
        self.accepted: list[FakeSend] = []
        #: Requests being processed now, and the most there ever were at once.
        self.in_flight = 0
        self.max_in_flight = 0
        #: Called with each request (before scripts); return an error to raise it.
        self.on_request: Callable[[FakeRequest], SmsGateError | None] | None = None
        self.closed = False
        self._clock: Callable[[], float] = clock or anyio.current_time
        self._opted_out: set[str] = {normalize_msisdn(n) for n in opted_out}
        self._rejected: set[str] = set()
        self._scripts: dict[str, deque[SmsGateError | None]] = {}
        self._next: deque[SmsGateError] = deque()
        self._ids = itertools.count(1000)
        self._by_id: dict[str, list[FakeSend]] = {}

    def __repr__(self) -> str:
        return (
            f"<FakeGateway {self.name!r} max_recipients={self.max_recipients} "
            f"requests={len(self.requests)} accepted={len(self.accepted)}>"
        )

    # -- scripting -----------------------------------------------------------------------------

    def opt_out(self, *numbers: str) -> None:
        """Put numbers on the opt-out list (``RecipientOptedOutError`` for them)."""
        self._opted_out.update(normalize_msisdn(n) for n in numbers)

    def reject(self, *numbers: str) -> None:
        """Make the provider reject these numbers (``RecipientRejectedError``)."""
        self._rejected.update(normalize_msisdn(n) for n in numbers)

    def script(self, number: str, *outcomes: SmsGateError | None) -> None:
        """Script the next requests that carry ``number``: an error to raise, or ``None``
        for a normal send, one per request, in order; afterwards it behaves normally."""
        self._scripts.setdefault(normalize_msisdn(number), deque()).extend(outcomes)

    def fail_next(self, *errors: SmsGateError) -> None:
        """Make the next requests (whatever their numbers) raise these errors, in order."""
        self._next.extend(errors)

    # -- reading the records -------------------------------------------------------------------

    def sent_to(self, number: str) -> int:
        """How many times the ledger shows a send to ``number``."""
        target = normalize_msisdn(number)
        return sum(1 for s in self.accepted if s.recipient == target)

    def accepted_recipients(self) -> list[str]:
        """Every accepted recipient (E.164), in order, with repeats."""
        return [s.recipient for s in self.accepted]

    # -- the gateway protocol ------------------------------------------------------------------

    async def send(
        self, to: str | Sequence[str], text: str, *, sender: str | None = None
    ) -> SendReceipt:
        """Send ``text`` to one or more numbers (see the class docstring for the rules).

        Raises:
            InvalidRecipientError: A number is not a mobile number (before any "I/O").
            InvalidMessageError: The text is empty (before any "I/O").
            SmsGateError: Whatever was scripted, ``TooManyRecipientsError``,
                ``RecipientOptedOutError``, ``RecipientRejectedError``,
                ``InsufficientCreditError``.
        """
        if self.closed:
            raise RuntimeError("this gateway is closed")
        numbers = [to] if isinstance(to, str) else list(to)
        recipients = tuple(normalize_msisdn(n) for n in numbers)
        if not recipients:
            raise InvalidMessageError("no recipients")
        if not text:
            raise InvalidMessageError("the text is empty")
        started = self._clock()
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        error: SmsGateError | None = None
        message_id: str | None = None
        ended = "Cancelled"  # what the record says if the wait is cancelled
        try:
            if self.latency:
                await anyio.sleep(self.latency)
            else:
                await anyio.lowlevel.checkpoint()
            error = self._decide(recipients, text, sender, started)
            ended = "" if error is None else type(error).__name__
            if error is None or error.maybe_sent:
                message_id = self._accept(recipients, text, sender, self._clock())
            if error is not None:
                raise error
        finally:
            self.in_flight -= 1
            self.requests.append(
                FakeRequest(
                    recipients=recipients,
                    text=text,
                    sender=sender,
                    started=started,
                    finished=self._clock(),
                    error=ended or None,
                    message_id=message_id if error is None else None,
                )
            )
        assert message_id is not None
        return SendReceipt(
            message_id=message_id,
            message_ids=dict.fromkeys(recipients, message_id),
            provider=self.name,
            recipients=recipients,
            sender=sender or self.sender,
            raw={"fake": True, "id": message_id},
        )

    async def delivery(self, ref: SendReceipt | str, /) -> list[DeliveryReport]:
        """Every recipient of an accepted send, as delivered.

        Raises:
            UnknownMessageError: For an id this fake never gave.
        """
        message_id = ref.message_id if isinstance(ref, SendReceipt) else ref
        sends = self._by_id.get(message_id)
        if sends is None:
            raise UnknownMessageError(provider=self.name, detail=message_id)
        return [
            DeliveryReport(
                message_id=message_id,
                recipient=s.recipient,
                state=DeliveryState.DELIVERED,
                provider_status="delivered",
                provider=self.name,
            )
            for s in sends
        ]

    async def credit(self) -> Decimal:
        """The account's credit, Rial."""
        await anyio.lowlevel.checkpoint()
        return self.balance

    async def aclose(self) -> None:
        """Mark the gateway closed (idempotent)."""
        self.closed = True

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # -- internals -----------------------------------------------------------------------------

    def _decide(
        self, recipients: tuple[str, ...], text: str, sender: str | None, started: float
    ) -> SmsGateError | None:
        if self._next:
            return self._next.popleft()
        if self.on_request is not None:
            hooked = self.on_request(
                FakeRequest(
                    recipients=recipients,
                    text=text,
                    sender=sender,
                    started=started,
                    finished=started,
                )
            )
            if hooked is not None:
                return hooked
        scripted: SmsGateError | None = None
        for number in recipients:
            queue = self._scripts.get(number)
            if queue:
                outcome = queue.popleft()
                if scripted is None:
                    scripted = outcome
        if scripted is not None:
            return scripted
        if len(recipients) > self.max_recipients:
            return TooManyRecipientsError(
                provider=self.name, detail=f"{len(recipients)} > {self.max_recipients}"
            )
        for number in recipients:
            if number in self._rejected:
                return RecipientRejectedError(provider=self.name, detail=number)
            if number in self._opted_out:
                return RecipientOptedOutError(provider=self.name, detail=number)
        if self.price_per_part and (
            self.price_per_part * _parts(text) * len(recipients) > self.balance
        ):
            return InsufficientCreditError(provider=self.name)
        return None

    def _accept(self, recipients: tuple[str, ...], text: str, sender: str | None, at: float) -> str:
        message_id = str(next(self._ids))
        parts = _parts(text)
        if self.price_per_part:
            self.balance -= self.price_per_part * parts * len(recipients)
        sends = [
            FakeSend(
                recipient=r,
                text=text,
                sender=sender or self.sender,
                message_id=message_id,
                at=at,
                parts=parts,
            )
            for r in recipients
        ]
        self.accepted.extend(sends)
        self._by_id[message_id] = sends
        return message_id
