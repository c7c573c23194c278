"""The Negin 3300 REST backend (``sms.3300.ir``: ``wsSend.ashx`` and ``wsStates.ashx``).

One class, :class:`NeginGateway`, speaks the REST API of Negin's guide: one recipient per
``wsSend.ashx`` request (a send to several numbers fans out, bounded), and
``wsStates.ashx`` for delivery states. What each field, answer and code rests on (the
guide, public clients, or inference) is in ``docs/protocols/negin.md``.

The package, shaped like ``ippanel/``: ``_codes`` (the inferred status table and the state
table), ``_parsing`` (lines, ids, reports: pure functions), ``_base`` (the settings the
task modules read, the answer envelope), ``_sending`` (one request per number) and
``_delivery`` (``wsStates.ashx``), put together by ``_gateway`` (settings and the five
scenarios). The one-number-per-request fan-out lives below the package, in
``smsgate.backends._fanout``, for any backend of that kind.
"""

from __future__ import annotations

from ._codes import ERROR_CODES, STATES
from ._gateway import MAX_IDS_PER_STATES_CALL, NeginGateway, OptOutFallback
from ._gateway import UNSET as UNSET  # the "not given" marker of opt_out_fallback
from ._parsing import normalize_line

__all__ = [
    "ERROR_CODES",
    "MAX_IDS_PER_STATES_CALL",
    "STATES",
    "NeginGateway",
    "OptOutFallback",
    "normalize_line",
]
