"""What the Negin sending and delivery code share: the settings it reads and the envelope.

:class:`NeginBase` declares the attributes :class:`~smsgate.backends.negin.NeginGateway`
sets up, and reads the ``{"data", "status", "msg"}`` envelope every answer comes in
(docs/protocols/negin.md §2, §3.3); ``_sending`` and ``_delivery`` build on it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Final

import anyio
import attrs

from ...exceptions import SmsGateError
from .._http import HttpAnswer, HttpGateway
from .._parse import as_int
from ._codes import PROVIDER, error_for

__all__ = ["MAX_IDS_PER_STATES_CALL", "NeginBase", "Sent", "logger"]

logger = logging.getLogger("smsgate.negin")

#: Ids per ``wsStates.ashx`` call; the real limit is unknown, Magfa's arrays take 90-100
#: (docs/protocols/negin.md §5).
MAX_IDS_PER_STATES_CALL: Final = 100


@attrs.frozen
class Sent:
    """One number's accepted send: its id, the line the provider says it used, the answer."""

    message_id: str
    line: str | None
    raw: Any


class NeginBase(HttpGateway):
    """The settings and answer readers shared by the Negin mixins (set up by the gateway)."""

    name = PROVIDER
    _username: str
    _password: str
    _extra: Mapping[str, str]
    _send_path: str
    _states_path: str
    _max_concurrency: int
    # Bounds requests in flight across every call on the gateway.
    _slots: anyio.CapacityLimiter

    def _envelope(self, answer: HttpAnswer, *, idempotent: bool) -> tuple[int, dict[str, Any]]:
        """The ``{"data", "status", "msg"}`` object and its ``status`` as an int (§3.3)."""
        body = self._json(answer, idempotent=idempotent)
        status = as_int(body.get("status")) if isinstance(body, dict) else None
        if status is None:
            raise self._protocol_error(
                "Negin answered JSON without a numeric status", answer, idempotent=idempotent
            )
        return status, body

    def _error(self, status: int, msg: object, *, sending: bool = False) -> SmsGateError:
        detail = self._scrub(msg.strip()) if isinstance(msg, str) and msg.strip() else None
        return error_for(status, detail, sending=sending)
