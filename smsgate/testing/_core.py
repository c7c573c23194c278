"""State shared by both halves of the fake provider: accounts, credit, ids, the ledger.

The ledger is the fake's own server-side record of every send it accepted. Reliability
tests count from it, never from the client, so a client bug cannot hide a double send.
"""

from __future__ import annotations

import itertools
import random
import threading
import time
from collections.abc import Callable, Iterable
from decimal import Decimal

import attrs

from .._phone import normalize_msisdn
from ..exceptions import InvalidRecipientError

__all__ = ["PROFILES", "FakeClock", "FakeCore", "Faults", "LedgerEntry"]

#: How strictly the fake follows one provider document (``FakeProvider(profile=...)``):
#:
#: * ``"lenient"``: every spelling any document or known client uses (the default);
#: * ``"ippanel-pdf"``: the ippanel half as the ippanel PDF describes it (reads the bulk id
#:   only from ``uinqid``, knows ``joblist`` and not ``jobslist``, answers ``delivery`` with
#:   the bare array the PDF prints);
#: * ``"kapanel"``: the ippanel half as the Kapanel pages describe it (``Uniqid``,
#:   ``Jobslist``, the bare delivery array with Persian digits as those pages print it);
#: * ``"negin-guide"``: the Negin half as the Negin REST guide describes it.
#:
#: A profile changes only the half it names; both halves read it from ``FakeCore.profile``.
PROFILES: tuple[str, ...] = ("lenient", "ippanel-pdf", "kapanel", "negin-guide")


def _check_profile(_instance: object, _attribute: object, value: object) -> None:
    if value not in PROFILES:
        raise ValueError(f"profile must be one of {', '.join(PROFILES)}, not {value!r}")


def _e164_set(values: Iterable[str]) -> set[str]:
    result: set[str] = set()
    for value in values:
        try:
            result.add(normalize_msisdn(value))
        except InvalidRecipientError:
            raise ValueError(f"opted_out holds an invalid number: {value!r}") from None
    return result


@attrs.define
class FakeClock:
    """A clock tests move by hand: ``clock.advance(5)``. Call it to read the time."""

    now: float = 1_000_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move time forward."""
        self.now += seconds


@attrs.frozen(kw_only=True)
class LedgerEntry:
    """One recipient of one send the fake accepted (and charged for)."""

    provider: str
    message_id: str
    recipient: str  # E.164
    text: str
    sender: str | None
    at: float
    parts: int
    route: str = "line"  # "line", "line2", "chelcheleh", "service_line", "pattern"


@attrs.define(kw_only=True)
class Faults:
    """Scriptable misbehaviour, applied to every request of both protocols.

    Rates are probabilities per request, drawn from a seeded generator so runs repeat.

    Attributes:
        latency: Seconds to wait before answering.
        error_rate: Answer HTTP 500 **before** processing (nothing was sent).
        unavailable_rate: Answer HTTP 503 before processing.
        html_rate: Answer an HTML error page with HTTP 200 before processing.
        drop_rate: Process the request (the send happens and is in the ledger), then drop
            the connection without a complete answer.
        hang_rate: Process the request, then wait ``hang_seconds`` before answering (the
            client's read timeout fires first).
        hang_seconds: See ``hang_rate``.
    """

    latency: float = 0.0
    error_rate: float = 0.0
    unavailable_rate: float = 0.0
    html_rate: float = 0.0
    drop_rate: float = 0.0
    hang_rate: float = 0.0
    hang_seconds: float = 30.0


@attrs.define(kw_only=True, eq=False)
class FakeCore:
    """Accounts, credit, ids and the ledger, shared by the ippanel and Negin halves.

    Thread-safe: the loopback server runs in its own thread while tests read the ledger.
    """

    username: str = "user"
    password: str = attrs.field(default="secret-pass", repr=False)
    credit: Decimal = Decimal("1000000000")  # Rial
    price_per_part: Decimal = Decimal("1000")  # Rial per SMS part and recipient
    opted_out: set[str] = attrs.field(factory=set, converter=_e164_set)
    clock: Callable[[], float] = time.monotonic
    faults: Faults = attrs.Factory(Faults)
    seed: int = 0
    #: See :data:`PROFILES`; fixed for the fake's life (each half reads it per request).
    profile: str = attrs.field(default="lenient", validator=_check_profile)
    ledger: list[LedgerEntry] = attrs.Factory(list)
    requests: int = 0
    _ids: itertools.count[int] = attrs.field(factory=lambda: itertools.count(562892393))
    _lock: threading.Lock = attrs.Factory(threading.Lock)
    _rng: random.Random = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    def check_login(self, username: str | None, password: str | None) -> bool:
        """Whether the credentials are the account's."""
        return username == self.username and password == self.password

    def next_id(self) -> str:
        """A fresh message or bulk id."""
        with self._lock:
            return str(next(self._ids))

    def draw(self) -> float:
        """A seeded random number in [0, 1) for fault decisions."""
        with self._lock:
            return self._rng.random()

    def count_request(self) -> None:
        """Count one HTTP request received (before any fault is applied)."""
        with self._lock:
            self.requests += 1

    def try_charge(self, units: int) -> bool:
        """Take ``units`` SMS parts from the credit; ``False`` if it does not cover them."""
        cost = self.price_per_part * units
        with self._lock:
            if cost > self.credit:
                return False
            self.credit -= cost
            return True

    def record(self, entries: Iterable[LedgerEntry]) -> None:
        """Add accepted sends to the ledger."""
        with self._lock:
            self.ledger.extend(entries)

    def is_opted_out(self, msisdn: str) -> bool:
        """Whether an E.164 number is on the operators' opt-out list."""
        return msisdn in self.opted_out

    def sent_to(self, msisdn: str) -> int:
        """How many times the ledger shows a send to this number."""
        target = normalize_msisdn(msisdn)
        with self._lock:
            return sum(1 for e in self.ledger if e.recipient == target)

    def recipients(self) -> list[str]:
        """Every ledger recipient, in order, with repeats."""
        with self._lock:
            return [e.recipient for e in self.ledger]
