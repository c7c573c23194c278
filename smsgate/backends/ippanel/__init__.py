"""ippanel / Kapanel "op-style" backend (``services.jspd``, ``api/select``, ``patterns/pattern``).

One class, :class:`IppanelGateway`, speaks the old ippanel web service that ippanel.com and
its white-label panels (Kapanel, FarazSMS, MaxSMS, Rangine...) all serve: a form-encoded
POST to ``<base_url>/services.jspd`` carrying ``uname``, ``pass``, ``op`` and the op's
fields, answered by a JSON array ``[code, data]`` (``docs/protocols/ippanel.md`` "Endpoints"
to "Other ops seen in clients").

Every op of the provider documents is here, with a typed result:

* on the gateway: :meth:`~IppanelGateway.send`, :meth:`~IppanelGateway.send_pattern`,
  :meth:`~IppanelGateway.credit`, :meth:`~IppanelGateway.delivery`,
  :meth:`~IppanelGateway.message_status`;
* grouped: ``gw.phonebooks`` (``booklist``, ``booksend``), ``gw.inbox`` (``inboxlist``),
  ``gw.packages`` (``accesslist``), ``gw.accounts`` (``newuser``), ``gw.postal``
  (``postalcodecount``, ``postalcodearea``, ``postalcodesend``), ``gw.jobs``
  (``jobslist``, ``jobstrenlist``, ``jobscount``, ``jobssend``).

Parsing is lenient wherever the protocol page records variation (``0`` or ``"0"``, ids as
strings or numbers, a byte-order mark, any content type, ``.`` or ``/`` as decimal mark,
lists that arrive JSON-encoded a second time or not); whatever still cannot be read is a
:class:`~smsgate.ProtocolError`. Result codes become the error classes of
:data:`ERROR_CODES`; unknown codes a plain :class:`~smsgate.ProviderError` with ``.code``.

The package follows the user's tasks: ``_sending`` (send, patterns), ``_reports`` (credit,
delivery, status), ``_phonebooks`` (phonebooks, inbox), ``_targeting`` (postal code, jobs),
``_account`` (packages, sub-accounts); ``_wire`` holds the op call, the error table and the
parsers they share.
"""

from __future__ import annotations

from ...exceptions import SubAccountRejectedError
from ._account import AccountAPI, Package, PackageAPI, SubAccount
from ._gateway import IppanelGateway
from ._parsing import delivery_state
from ._phonebooks import InboxAPI, InboxMessage, Phonebook, PhonebookAPI
from ._reports import MessageStatus
from ._sending import PatternEndpoint
from ._targeting import Gender, Job, JobAPI, JobTrend, PostalAPI, PostalArea
from ._wire import DELIVERY_STATES, ERROR_CODES

__all__ = [
    "DELIVERY_STATES",
    "ERROR_CODES",
    "AccountAPI",
    "Gender",
    "InboxAPI",
    "InboxMessage",
    "IppanelGateway",
    "Job",
    "JobAPI",
    "JobTrend",
    "MessageStatus",
    "Package",
    "PackageAPI",
    "PatternEndpoint",
    "Phonebook",
    "PhonebookAPI",
    "PostalAPI",
    "PostalArea",
    "SubAccount",
    "SubAccountRejectedError",
    "delivery_state",
]
