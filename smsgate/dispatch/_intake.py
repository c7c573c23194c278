"""Intake: reading rows, admitting them (one rule for a job and its dry run), batching.

:class:`Admission` decides, for each row, whether it is sent at all: a row that is not a
``Message`` stops the job (``TypeError``: a bug in the caller), a text that cannot be sent
(:func:`~smsgate._text.check_text`) or a number that is not one fails that row only, and a
repeat of an earlier row (same recipient, text and line, see ``_dedupe``) is skipped.
:class:`Batcher` groups admitted rows with the same text and line into requests.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterable, Iterable

import anyio.lowlevel

from .._models import Message
from .._phone import normalize_msisdn
from .._text import check_text
from ..exceptions import InvalidMessageError, InvalidRecipientError
from ._dedupe import LineKeys, SeenSet, fingerprint
from ._fallback import Route
from ._journal import journal_key
from ._values import (
    REASON_CLAIMED_BY_RUN,
    REASON_DUPLICATE,
    REASON_INVALID_MESSAGE,
    REASON_INVALID_RECIPIENT,
    Outcome,
)

__all__ = ["END", "TICK", "Admission", "Batcher", "Item", "Messages", "Signal", "aiter_rows"]

Messages = Iterable[Message] | AsyncIterable[Message]

#: Partial batches (distinct text+line groups) kept open at once; the oldest leaves
#: when one more would open. Bounds memory for inputs with many distinct texts.
MAX_OPEN_GROUPS = 64
#: Rows read between two checkpoints when the input never blocks (a list).
YIELD_EVERY = 256


class Signal:
    """Control items in the async reader's pipe."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"<{self.name}>"


END = Signal("end of input")
TICK = Signal("linger expired")


class Item:
    """One admitted row: the message, its E.164 number, its line and (keyed) its key."""

    __slots__ = (
        "aliases",
        "claimed",
        "done",
        "key",
        "line",
        "message",
        "outcome",
        "parts",
        "recipient",
        "sending",
    )

    def __init__(self, message: Message, recipient: str, line: str) -> None:
        self.message = message
        self.recipient = recipient
        self.line = line
        self.key = ""
        self.aliases: tuple[str, ...] = ()
        self.claimed = False  # this run won the row's journal claim
        self.done = False  # its outcome was handed over (the sink returned)
        # Its outcome once decided (and its final state recorded): kept until handed
        # over, so a worker cancelled while handing it over delivers it, not a guess.
        self.outcome: Outcome | None = None
        self.sending = False  # a request carrying it may have gone out
        self.parts = 0  # SMS parts of the text, once computed


def check_row(message: object, row: int) -> None:
    """Raise ``TypeError`` for a row that is not a ``Message`` (a bug: the job stops)."""
    if not isinstance(message, Message):
        raise TypeError(
            f"BulkDispatcher takes smsgate.Message rows; row {row} is a {type(message).__name__}"
        )


class Admission:
    """The one admission rule, for a job and for its dry run.

    Args:
        route: The first route (whose line keys the rows).
        keyed: Compute each row's journal key (a journal is in use).
        legacy: Also compute the key an older version wrote (``JournalEntry.aliases``).
        shared: A fingerprint set shared by concurrent runs of one job on one dispatcher
            without a journal: a row another run took is skipped.
    """

    __slots__ = ("_checked", "_keyed", "_legacy", "_lines", "_shared", "rows", "seen")

    def __init__(
        self, route: Route, *, keyed: bool, legacy: bool = False, shared: SeenSet | None = None
    ) -> None:
        self._lines = LineKeys(route)
        self._keyed = keyed
        self._legacy = legacy
        self._shared = shared
        self.seen = SeenSet()
        self.rows = 0
        self._checked: str | None = None  # the last text that passed check_text

    def admit(self, message: Message) -> Item | Outcome:
        """An :class:`Item` to send, or the row's final :class:`Outcome`."""
        self.rows += 1
        if not isinstance(message, Message):
            check_row(message, self.rows)
        text = message.text
        if text is not self._checked:  # rows of one campaign share their text object
            try:
                check_text(text)
            except InvalidMessageError as exc:
                return Outcome(
                    message=message, status="failed", error=exc, reason=REASON_INVALID_MESSAGE
                )
            self._checked = text
        try:
            recipient = normalize_msisdn(message.to)
        except InvalidRecipientError as exc:
            return Outcome(
                message=message, status="failed", error=exc, reason=REASON_INVALID_RECIPIENT
            )
        line = self._lines.line(message.sender)
        fp = fingerprint(recipient, text, line)
        if not self.seen.add(fp):
            return Outcome(
                message=message, status="skipped", recipient=recipient, reason=REASON_DUPLICATE
            )
        if self._shared is not None and not self._shared.add(fp):
            return Outcome(
                message=message, status="skipped", recipient=recipient, reason=REASON_CLAIMED_BY_RUN
            )
        item = Item(message, recipient, line)
        if self._keyed:
            item.key = key = journal_key(recipient, text, line)
            if self._legacy:
                item.aliases = self._lines.aliases(recipient, text, message.sender, key)
        return item


class _Group:
    __slots__ = ("items", "opened")

    def __init__(self, opened: float) -> None:
        self.items: list[Item] = []
        self.opened = opened


class Batcher:
    """Groups rows with the same text and line into batches of up to ``size`` numbers.

    ``timed``: a partial batch also leaves once it is ``linger`` seconds old (an async
    input, whose rows may come slowly). A plain iterable's rows are all there: its batches
    leave full, when more than ``MAX_OPEN_GROUPS`` are open, or at the end, whatever the
    time (a job of ``n`` rows of one text makes ``ceil(n / size)`` requests, even when the
    event loop is slow to come back to the reading task).
    """

    __slots__ = ("_groups", "linger", "size", "timed")

    def __init__(self, size: int, linger: float, *, timed: bool = True) -> None:
        self.size = size
        self.linger = linger
        self.timed = timed
        self._groups: dict[tuple[str, str], _Group] = {}

    def add(self, item: Item, now: float) -> list[list[Item]]:
        """Add a row; return the batches that are ready to go."""
        if self.size == 1:
            return [[item]]
        groups = self._groups
        key = (item.message.text, item.line)
        ready: list[list[Item]] = []
        group = groups.get(key)
        if group is None:
            if len(groups) >= MAX_OPEN_GROUPS:
                ready.append(groups.pop(next(iter(groups))).items)
            group = groups[key] = _Group(now)
        items = group.items
        items.append(item)
        if len(items) >= self.size:
            ready.append(groups.pop(key).items)
        if self.timed:
            ready.extend(self.expired(now))
        return ready

    def next_deadline(self) -> float | None:
        """When the oldest open group must leave, or ``None`` if none is open."""
        for group in self._groups.values():
            return group.opened + self.linger
        return None

    def expired(self, now: float) -> list[list[Item]]:
        """Pop the groups that have lingered long enough (oldest first)."""
        ready: list[list[Item]] = []
        while self._groups:
            key, group = next(iter(self._groups.items()))
            if group.opened + self.linger > now:
                break
            ready.append(group.items)
            del self._groups[key]
        return ready

    def drain(self) -> list[list[Item]]:
        """Pop every open group."""
        ready = [g.items for g in self._groups.values()]
        self._groups.clear()
        return ready


async def aiter_rows(messages: Messages) -> AsyncGenerator[Message, None]:
    """Iterate either kind of input (sync inputs yield to the loop every few rows)."""
    if isinstance(messages, AsyncIterable):
        async for message in messages:
            yield message
        return
    for n, message in enumerate(messages, 1):
        if n % YIELD_EVERY == 0:
            await anyio.lowlevel.checkpoint()
        yield message
