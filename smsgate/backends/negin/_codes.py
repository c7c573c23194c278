"""Negin's status codes (``wsSend``/``wsStates`` answers) and per-message state codes.

Sources are in ``docs/protocols/negin.md`` (section numbers below are that page's).

**The error codes are inferred, not documented.** Negin's guide prints one ``status``:
``-1``, success. Every other number here comes from related providers (Magfa, which
carries Negin's 3000 lines, and Negin's own SOAP service on the same host) and from public
clients that handle a few of them (§4). So the table is used with one safety rule: a
status counts as "certainly not sent" only when its inferred meaning is a refusal of the
request's input or of the account, which a provider checks before it sends anything
(a wrong password, no credit, a bad number or line, an empty text, an opted-out number,
a rate limit). Every other status (server-side conditions such as 0 "unexpected error",
15 "internal error", 23 "busy", and every number not in the table) is answered to a send
as ``maybe_sent=True``: never retried, never sent on another route, reconciled instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Final

from ..._models import DeliveryState
from ...exceptions import (
    AccountRestrictedError,
    AuthenticationError,
    InsufficientCreditError,
    InvalidSenderError,
    MessageRejectedError,
    ProviderError,
    ProviderUnavailableError,
    RateLimitedError,
    RecipientOptedOutError,
    RecipientRejectedError,
    TooManyRecipientsError,
    UnknownMessageError,
)

__all__ = ["ERROR_CODES", "IN_DOUBT", "PROVIDER", "STATES", "error_for", "state_of"]

PROVIDER: Final = "negin"

_E = tuple[type[ProviderError], str]

#: Every ``status`` with an inferred meaning (docs/protocols/negin.md §4: Magfa's and
#: the SOAP service's numbering; none is in Negin's REST guide), to the error class raised
#: and an English meaning. Statuses not listed become a plain
#: :class:`~smsgate.ProviderError` keeping the raw ``status`` (``.code``) and ``msg``
#: (``.detail``); answered to a send, they are ``maybe_sent``.
ERROR_CODES: Final[Mapping[int, _E]] = MappingProxyType(
    {
        1: (RecipientRejectedError, "Negin rejected the number"),
        2: (InvalidSenderError, "the line is not valid for this account"),
        12: (AuthenticationError, "the account id is invalid"),
        13: (MessageRejectedError, "Negin refused an empty message"),
        14: (InsufficientCreditError, "insufficient credit"),
        # Server-side: an internal error may strike after the message was queued.
        15: (ProviderUnavailableError, "Negin reported an internal error"),
        16: (AccountRestrictedError, "the account is inactive"),
        17: (AccountRestrictedError, "the account has expired"),
        18: (AuthenticationError, "the user name or password is incorrect"),
        19: (AuthenticationError, "authentication failed"),
        20: (InvalidSenderError, "the send type is not available to this account"),
        22: (AccountRestrictedError, "the account may not use the web service"),
        # Server-side: "busy" names no point in the processing where it was decided.
        23: (ProviderUnavailableError, "Negin reported heavy traffic"),
        24: (UnknownMessageError, "Negin does not know this message id"),
        27: (RecipientOptedOutError, "the recipient has opted out of advertising SMS"),
        28: (RecipientRejectedError, "the recipient's prefix is blocked"),
        29: (AccountRestrictedError, "this IP address may not use the account"),
        30: (MessageRejectedError, "the message is too long"),
        103: (RecipientRejectedError, "Negin rejected the number"),
        106: (RecipientRejectedError, "Negin received no recipient"),
        107: (TooManyRecipientsError, "too many recipients"),
        409: (RateLimitedError, "requests too close together (Negin asks for 5 s)"),
    }
)

#: Statuses that, answered to a send, leave its outcome in doubt even though the table
#: names them: the server-side conditions (plus every status not in :data:`ERROR_CODES`).
IN_DOUBT: Final = frozenset({0, 15, 23})

# Extra constructor arguments per status.
_OPTIONS: Final[Mapping[int, Mapping[str, Any]]] = MappingProxyType(
    {409: MappingProxyType({"retry_after": 5.0})}
)

#: ``wsStates.ashx`` per-message codes to the common states and their meaning
#: (docs/protocols/negin.md §6). The guide prints ``18`` for "not received by
#: the operator", which Magfa, Kannel and the SOAP clients number ``16``: both are read.
#: Anything else (e.g. Kannel's 4, "queued on SMSC") is ``UNKNOWN``; the raw value is kept
#: in every report's ``provider_status``.
STATES: Final[Mapping[int, tuple[DeliveryState, str]]] = MappingProxyType(
    {
        -1: (DeliveryState.REJECTED, "not sent to the operator (or an unknown id)"),
        0: (DeliveryState.QUEUED, "no report yet, in the send queue"),
        1: (DeliveryState.DELIVERED, "delivered to the handset"),
        2: (DeliveryState.UNDELIVERED, "not delivered to the handset"),
        8: (DeliveryState.AT_OPERATOR, "delivered to the operator (SMSC)"),
        16: (DeliveryState.REJECTED, "not received by the operator (SMSC)"),
        18: (DeliveryState.REJECTED, "not received by the operator (the guide's number)"),
    }
)


def state_of(code: int | None) -> DeliveryState:
    """The common state of a per-message code; ``UNKNOWN`` for codes not in :data:`STATES`."""
    known = STATES.get(code) if code is not None else None
    return known[0] if known else DeliveryState.UNKNOWN


def error_for(status: int, detail: str | None, *, sending: bool) -> ProviderError:
    """The exception for a non-success ``status``, by table (never by the ``msg`` text).

    Args:
        status: The answer's ``status`` (not negative).
        detail: The provider's ``msg``, already scrubbed, or ``None``.
        sending: Whether the request was a send (a query changes nothing, so it is never
            in doubt).

    Returns:
        The error to raise; answered to a send, a status in :data:`IN_DOUBT` or not in
        :data:`ERROR_CODES` is ``maybe_sent`` (and so neither retryable nor safe to send
        on another route).
    """
    known = ERROR_CODES.get(status)
    doubt = sending and (known is None or status in IN_DOUBT)
    flags: dict[str, Any] = dict(_OPTIONS.get(status, {}))
    if doubt:
        flags.update(maybe_sent=True, retryable=False, fallback_ok=False)
    if known is None:
        return ProviderError(
            f"Negin refused the request with status {status}",
            provider=PROVIDER,
            code=status,
            detail=detail,
            **flags,
        )
    error, message = known
    if doubt:
        message += "; the message may have been sent"
    return error(message, provider=PROVIDER, code=status, detail=detail, **flags)
