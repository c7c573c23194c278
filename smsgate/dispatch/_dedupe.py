"""One key per message: the line a row goes out from, its fingerprint, and the seen-set.

A row's identity is (recipient, text, line), where the line is the one the first route
actually sends from: the route's own sender, else the message's, else the gateway's
``default_sender``, written in one spelling (:func:`~smsgate._phone.canonical_line`). So
``"+983000505"``, ``"983000505"``, ``"3000505"`` and ``None`` (the default line, when it is
that line) are one message to one person, in the in-job duplicate filter and in the
journal key alike.
"""

from __future__ import annotations

from array import array

from .._phone import canonical_line
from ._fallback import Route
from ._journal import journal_key

__all__ = ["LineKeys", "SeenSet", "fingerprint"]


_BITS = (1 << 64) - 1


def fingerprint(recipient: str, text: str, line: str) -> int:
    """64 bits of the row's identity, never 0.

    Python's own hash of the three strings (SipHash, keyed per process; a text's hash is
    computed once per ``str`` object): every set that holds fingerprints lives in one
    process. A tenth of the cost of a BLAKE2b digest, per row.
    """
    return hash((recipient, text, line)) & _BITS or 1


class LineKeys:
    """The canonical line of each message sender on one route (cached: senders repeat).

    ``None`` resolves to the route's sender, else the gateway's ``default_sender``
    attribute, else a stable token ``"<gateway.name>:default"`` (a gateway that does not
    say which line it defaults to is keyed by its name). A sender that is not a number
    (an alphanumeric line) is kept as given.
    """

    __slots__ = ("_cache", "_route")

    def __init__(self, route: Route) -> None:
        self._route = route
        self._cache: dict[str | None, str] = {}

    def line(self, sender: str | None) -> str:
        """The line a message with ``sender`` goes out from, in one spelling."""
        found = self._cache.get(sender)
        if found is None:
            found = self._cache[sender] = self._resolve(sender)
        return found

    def _resolve(self, sender: str | None) -> str:
        actual = self._route.sender_for(sender)
        if actual is None:
            default = getattr(self._route.gateway, "default_sender", None)
            if not isinstance(default, str) or not default:
                return f"{self._route.gateway.name}:default"
            actual = default
        try:
            return canonical_line(actual)
        except (TypeError, ValueError):
            return actual

    def aliases(self, recipient: str, text: str, sender: str | None, key: str) -> tuple[str, ...]:
        """Keys an older smsgate wrote for this row (the raw sender), when not ``key``."""
        legacy = journal_key(recipient, text, sender)
        return () if legacy == key else (legacy,)


class SeenSet:
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
