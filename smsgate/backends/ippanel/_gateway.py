"""``IppanelGateway``: the task modules put together (docs/protocols/ippanel.md, all of it)."""

from __future__ import annotations

from urllib.parse import quote

import httpx

from ..._constants import DEFAULT_MAX_CONNECTIONS
from ...exceptions import ConfigurationError
from .._transport import TransportName
from ._account import AccountAPI, PackageAPI
from ._parsing import _check_sender, _require_text
from ._phonebooks import InboxAPI, PhonebookAPI
from ._reports import ReportsMixin
from ._sending import _PATTERN_ENDPOINTS, PatternEndpoint, SendingMixin
from ._targeting import JobAPI, PostalAPI
from ._wire import _LOG_FILTER, PROVIDER, _install_log_filter


class IppanelGateway(SendingMixin, ReportsMixin):
    """An ippanel (or white-label panel, e.g. Kapanel) account, op-style web service.

    Args:
        username: The panel user name (``uname``).
        password: The panel password (``pass``). Never shown in a ``repr``, a log record
            or an error.
        sender: The default sender line (``from``), e.g. ``"+983000505"``.
        base_url: The panel's origin: ``https://ippanel.com`` or a white-label host such as
            your Kapanel domain. Paths (``/services.jspd``...) are added here.
        http_client: An ``httpx.AsyncClient`` to use instead of our own (borrowed: never
            closed here).
        timeout: Per-request timeouts, seconds or an ``httpx.Timeout``.
        max_connections: Connections our own client keeps open.
        max_recipients: Numbers one ``send`` may carry; the provider's own limit is not
            published (docs/protocols/ippanel.md, "Limits"), 100 is a safe default.
        pattern_endpoint: Which wire variant :meth:`send_pattern` uses (see
            :data:`PatternEndpoint`); default ``"api/select"``, which keeps the
            credentials in the request body. ``"patterns/pattern"`` (the URL endpoint many
            panels document) puts them in the query string.
        allow_insecure_http: Permit a plain ``http://`` base URL off loopback.
        transport: ``"auto"`` (default: httpx with ``http_client``, else aiohttp under
            asyncio and a small h11 client under trio), ``"httpx"`` (an httpx client of
            our own, which ``respx.mock`` sees), ``"aiohttp"`` (asyncio only) or ``"h11"``;
            see the Testing page.

    Raises:
        ConfigurationError: For a missing credential, a malformed sender line, a bad URL
            or limit.
    """

    name = PROVIDER

    def __init__(
        self,
        *,
        username: str,
        password: str,
        sender: str | None = None,
        base_url: str = "https://ippanel.com",
        http_client: httpx.AsyncClient | None = None,
        timeout: float | httpx.Timeout | None = None,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        max_recipients: int = 100,
        pattern_endpoint: PatternEndpoint = "api/select",
        allow_insecure_http: bool = False,
        transport: TransportName = "auto",
    ) -> None:
        _require_text(username, "username")
        _require_text(password, "password")
        if isinstance(max_recipients, bool) or not isinstance(max_recipients, int):
            raise ConfigurationError("max_recipients must be an int")
        if max_recipients < 1:
            raise ConfigurationError("max_recipients must be at least 1")
        if pattern_endpoint not in _PATTERN_ENDPOINTS:
            raise ConfigurationError(
                f"pattern_endpoint must be one of {', '.join(_PATTERN_ENDPOINTS)}"
            )
        super().__init__(
            base_url=base_url,
            http_client=http_client,
            timeout=timeout,
            max_connections=max_connections,
            # quote()'s default keeps "/" as is: a form the base scrubber does not derive.
            secrets=(password, quote(password)),
            allow_insecure_http=allow_insecure_http,
            transport=transport,
        )
        self._username = username.strip()
        self._password = password
        self._sender = None if sender is None else _check_sender(sender)
        self.max_recipients = max_recipients
        self.pattern_endpoint = pattern_endpoint
        _LOG_FILTER.register(self._scrub)
        _install_log_filter()
        #: Phonebooks: ``list()`` (``booklist``) and ``send()`` (``booksend``).
        self.phonebooks = PhonebookAPI(self)
        #: Received messages: ``list()`` (``inboxlist``).
        self.inbox = InboxAPI(self)
        #: The account's active packages: ``list()`` (``accesslist``).
        self.packages = PackageAPI(self)
        #: Sub-accounts: ``create()`` (``newuser``).
        self.accounts = AccountAPI(self)
        #: Postal-code targeting: ``count()``, ``areas()``, ``send()``.
        self.postal = PostalAPI(self)
        #: Job targeting: ``list()``, ``trends()``, ``count()``, ``send()``.
        self.jobs = JobAPI(self)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(username={self._username!r}, sender={self._sender!r}, "
            f"base_url={self.base_url!r})"
        )

    @property
    def username(self) -> str:
        """The panel user name."""
        return self._username

    @property
    def sender(self) -> str | None:
        """The default sender line."""
        return self._sender

    @property
    def default_sender(self) -> str | None:
        """The line a send without ``sender=`` uses (the constructor's ``sender``).

        The dispatcher keys its journal on this line (in ``canonical_line`` spelling).
        """
        return self._sender
