"""The contract every backend meets, and the small optional abilities some have.

A backend is a class with ``name``, ``max_recipients``, ``send``, ``delivery`` and
``aclose`` (plus ``async with``). It inherits nothing: the protocols are structural, so a
third-party backend, :class:`smsgate.testing.FakeGateway`-style doubles, and the built-in
HTTP backends all satisfy them the same way. Code that needs an optional ability checks
for it::

    if isinstance(gateway, smsgate.SupportsCredit):
        print(await gateway.credit())
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from types import TracebackType
from typing import Protocol, Self, runtime_checkable

from ._models import DeliveryReport, SendReceipt

__all__ = ["SmsGateway", "SupportsCredit", "SupportsPattern"]


@runtime_checkable
class SmsGateway(Protocol):
    """One SMS provider account, seen the same way whichever provider it is.

    Attributes:
        name: The backend's name: ``"ippanel"``, ``"negin"``...
        max_recipients: How many numbers one request may carry (ippanel 100, Negin 1).
    """

    name: str
    max_recipients: int

    async def send(
        self, to: str | Sequence[str], text: str, *, sender: str | None = None
    ) -> SendReceipt:
        """Send one text to one or more numbers, as one logical send.

        Numbers are normalised (and refused with ``InvalidRecipientError``) before any
        I/O. Raises a :class:`~smsgate.SmsGateError` subclass when the send fails.
        """
        ...

    async def delivery(self, ref: SendReceipt | str, /) -> list[DeliveryReport]:
        """The delivery state of every recipient of a send.

        Given a receipt every report names its recipient; given a bare id, ``recipient``
        is ``None`` where the provider does not return numbers. An id the provider does
        not know raises :class:`~smsgate.UnknownMessageError`.
        """
        ...

    async def aclose(self) -> None:
        """Release the connections this gateway opened; safe to call twice."""
        ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


@runtime_checkable
class SupportsCredit(Protocol):
    """A gateway that can tell the account's credit."""

    async def credit(self) -> Decimal:
        """The account's credit, in Rial."""
        ...


@runtime_checkable
class SupportsPattern(Protocol):
    """A gateway that sends pre-approved patterns (templates) with variables."""

    async def send_pattern(
        self,
        to: str,
        *,
        pattern_code: str,
        values: Mapping[str, str],
        sender: str | None = None,
    ) -> SendReceipt:
        """Send the pattern ``pattern_code`` to one number with ``values`` filled in."""
        ...
