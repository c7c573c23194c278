"""Phonebooks and inbox: ``booklist``, ``booksend``, ``inboxlist`` (docs/protocols/ippanel.md
"Phonebooks and inbox")."""

from __future__ import annotations

import builtins
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from ..._models import SendReceipt
from ..._text import check_text
from .._parse import as_text
from ._parsing import _as_id, _check_ids, _first, _frozen, _msisdn_or_raw, _to_json_array, _verbatim
from ._wire import _SubAPI


@attrs.frozen(kw_only=True)
class Phonebook:
    """A phonebook of the panel (``op=booklist``).

    Attributes:
        id: The phonebook id, as a string.
        title: Its title.
        raw: The provider's object.
    """

    id: str
    title: str
    raw: Mapping[str, Any] = attrs.field(factory=dict, converter=_frozen, eq=False, repr=False)


@attrs.frozen(kw_only=True)
class InboxMessage:
    """A received message (``op=inboxlist``). The provider's field names are not documented,
    so each attribute is read from the usual spellings and ``raw`` keeps everything.

    Attributes:
        id: The provider's id for it, if given.
        sender: Who sent it (E.164 when it is a mobile number), if given.
        line: The line it was sent to, if given.
        text: The text.
        received_at: The provider's timestamp, as sent.
        raw: The provider's object.
    """

    id: str | None
    sender: str | None
    line: str | None
    text: str
    received_at: str | None
    raw: Mapping[str, Any] = attrs.field(factory=dict, converter=_frozen, eq=False, repr=False)


class PhonebookAPI(_SubAPI):
    """The panel's phonebooks: ``gw.phonebooks``."""

    __slots__ = ()

    async def list(self) -> builtins.list[Phonebook]:
        """Every phonebook's id and title (``op=booklist``).

        Raises:
            ProviderError: The provider refused.
            ProtocolError: The answer could not be read.
        """
        data, answer = await self._gw._query_list("booklist", {})
        books: list[Phonebook] = []
        for obj in self._gw._objects(data, answer):
            book_id = _as_id(_first(obj, "id", "bookid", "code"))
            if book_id is None:
                raise self._gw._protocol_error(
                    "a phonebook in ippanel's answer has no id", answer, idempotent=True
                )
            title = _verbatim(_first(obj, "title", "name")) or ""
            books.append(Phonebook(id=book_id, title=title, raw=obj))
        return books

    async def send(
        self,
        phonebook_ids: Sequence[str | int] | str | int,
        text: str,
        *,
        sender: str | None = None,
    ) -> SendReceipt:
        """Send a text to every number of one or more phonebooks (``op=booksend``).

        Args:
            phonebook_ids: Phonebook ids (from :meth:`list`).
            text: The text.
            sender: The line; default the gateway's ``sender``.

        Returns:
            A receipt with the bulk id; ``recipients`` is empty (the provider does not list
            them; :meth:`IppanelGateway.delivery` does).

        Raises:
            InvalidRecipientError: No or malformed ids (before any I/O).
            InvalidMessageError: An empty text (before any I/O).
            ProviderError: The provider refused.
        """
        ids = _check_ids(phonebook_ids, "phonebook_ids")
        text = check_text(text)
        line = self._gw._line(sender)
        fields = {"from": line, "message": text, "bookid": _to_json_array(ids)}
        return await self._gw._bulk_send("booksend", fields)


class InboxAPI(_SubAPI):
    """Received messages: ``gw.inbox``."""

    __slots__ = ()

    async def list(self) -> builtins.list[InboxMessage]:
        """The unread received messages (``op=inboxlist``).

        Raises:
            ProviderError: The provider refused.
            ProtocolError: The answer could not be read.
        """
        data, answer = await self._gw._query_list("inboxlist", {})
        messages: list[InboxMessage] = []
        for obj in self._gw._objects(data, answer):
            sender = as_text(_first(obj, "from", "number", "sender", "fromnum", "mobile"))
            messages.append(
                InboxMessage(
                    id=_as_id(_first(obj, "id", "msgid", "message_id")),
                    sender=None if sender is None else _msisdn_or_raw(sender),
                    line=_verbatim(_first(obj, "to", "line", "receiver", "tonum")),
                    text=_verbatim(_first(obj, "message", "text", "body", "msg")) or "",
                    received_at=_verbatim(_first(obj, "time", "date", "created_at", "datetime")),
                    raw=obj,
                )
            )
        return messages
