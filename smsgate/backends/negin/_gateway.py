"""The Negin gateway: settings and the five sending scenarios, over the task mixins.

Provider quirks handled here (sources and section numbers: ``docs/protocols/negin.md``):

* One recipient per request (§3): :meth:`NeginGateway.send` fans a list out with
  :mod:`smsgate.backends._fanout`, bounded by the gateway's own
  :class:`anyio.CapacityLimiter`, and never joins numbers with commas.
* Always HTTP 200; the outcome is the JSON ``status``: success iff it is negative **and**
  ``data.message_id`` is present (§3.3). Other statuses go through the inferred table of
  :mod:`._codes` (§4); ``msg`` is never parsed.
* ``message_id`` may be a JSON number beyond 32 bits or a string; ``line`` and ``mobile``
  may be numbers or strings, in ASCII or Persian digits (§3.3). All become ``str`` here.
* Credentials travel in every form body, so requests are always form POSTs, never GETs
  with the password in the URL (§2), and the password is registered as a secret that is
  scrubbed from every error text.
* The server-side opt-out fallback (``line2``, Chelcheleh ``type=1``, the service line
  ``type=2`` + ``template``) is chosen per gateway and may be overridden per call (§3.2);
  ``data.line`` says which line actually sent.
* ``wsStates.ashx`` takes at most 100 ids per call here and answers the states as
  comma-joined strings (§5); JSON lists are accepted too.

How :class:`~smsgate.UnknownMessageError` arises. Negin's ``-1`` state means "never sent to
the operator", and like Magfa's it probably also comes back for ids the provider does not
know or has expired (§6). The two cannot be told apart on the wire, so ``-1`` is always
reported as a final ``REJECTED``. An id is *unknown* (``UnknownMessageError``) when:

* the provider answers the states call with status ``24`` (``INVALID_MESSAGE_ID``), or
* a requested id is missing from the ``msgIds`` the provider returns, or
* the id cannot be a Negin id at all (not a positive integer); this is found before any
  request is made.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from typing import Final, Literal, cast, get_args

import anyio
import httpx

from ..._constants import DEFAULT_MAX_CONNECTIONS
from ..._models import SendReceipt
from ..._phone import normalize_recipients
from ..._text import check_text
from ...exceptions import ConfigurationError
from .._http import TransportName
from ._base import MAX_IDS_PER_STATES_CALL
from ._codes import PROVIDER
from ._delivery import DeliveryMixin
from ._parsing import clean_line, require_count, require_text
from ._sending import SendingMixin

__all__ = ["MAX_IDS_PER_STATES_CALL", "UNSET", "NeginGateway", "OptOutFallback"]

#: What the provider does when the recipient is on the operators' opt-out list:
#: ``"line2"`` sends from the second line (the guide's scenario 3), ``"chelcheleh"`` sends
#: through Chelcheleh (``type=1``, scenario 4), ``"service_line"`` sends through Negin's
#: shared service line with a template (``type=2``, scenario 5). ``None``: no fallback, the
#: send fails with :class:`~smsgate.RecipientOptedOutError`.
OptOutFallback = Literal["line2", "chelcheleh", "service_line"]
_FALLBACKS: Final = frozenset(get_args(OptOutFallback))

_DEFAULT_BASE_URL: Final = "https://sms.3300.ir"
_PROVIDER: Final = PROVIDER
# The fields the gateway itself sends; ``extra_params`` may not override them.
_RESERVED: Final = frozenset(
    {"username", "password", "mobile", "message", "line", "line2", "type", "template"}
)


class _Unset(enum.Enum):
    UNSET = enum.auto()


#: Marks "not given" where ``None`` is a meaningful value (``opt_out_fallback=None``).
UNSET: Final = _Unset.UNSET


class NeginGateway(SendingMixin, DeliveryMixin):
    """The Negin SMS panel (sms.3300.ir) over its REST API.

    The five sending scenarios of Negin's guide::

        # 1. a plain send from your internet line
        NeginGateway(username=u, password=p, line="9830003300")
        # 2. Negin's shared service line (reaches opted-out numbers; OTPs), no line needed
        await gw.send_service("09121234567", "1234", template=0)
        # 3. on opt-out the provider retries from a second line
        NeginGateway(username=u, password=p, line="9830003300", line2="9830007485")
        # 4. on opt-out the provider sends through Chelcheleh (type=1)
        NeginGateway(username=u, password=p, line="9830003300", opt_out_fallback="chelcheleh")
        # 5. on opt-out the provider sends through its service line with a template (type=2)
        NeginGateway(username=u, password=p, line="9830003300",
                     opt_out_fallback="service_line", template=0)

    Args:
        username: The panel user name.
        password: The panel password. Never shown in a ``repr`` or an error.
        line: The internet line (sender) in the ``98…`` form, sent as given. Needed by
            :meth:`send` unless each call passes ``sender=``; :meth:`send_service` needs none.
        line2: A second line the provider uses when ``line`` hits the opt-out list.
        opt_out_fallback: What the provider does when the recipient opted out:
            ``None``, ``"line2"``, ``"chelcheleh"`` or ``"service_line"``. Left out, it is
            ``"line2"`` when ``line2`` is given and ``None`` otherwise.
        template: The service-line template number, for ``"service_line"`` and
            :meth:`send_service`.
        base_url: The panel's origin.
        path_prefix: Where the ``.ashx`` handlers live: ``"/api"``, or ``"/services"`` on
            old panels (docs/protocols/negin.md §2).
        http_client: An ``httpx.AsyncClient`` to borrow instead of our own.
        timeout: Per-request timeouts (seconds or ``httpx.Timeout``).
        max_concurrency: Requests this gateway keeps in flight at once, across all calls
            (a send to many numbers makes one request per number). With a borrowed client,
            keep it at or below that client's connection limit.
        max_connections: Connections our own client keeps; defaults to ``max_concurrency``.
        extra_params: More form fields for every send (e.g. ``{"life_time": "60"}``,
            docs/protocols/negin.md §3.1); they may not replace the gateway's own fields.
        allow_insecure_http: Permit a plain ``http://`` base URL off loopback.
        transport: ``"auto"`` (default: httpx with ``http_client``, else aiohttp under
            asyncio and a small h11 client under trio), ``"httpx"`` (an httpx client of
            our own, which ``respx.mock`` sees), ``"aiohttp"`` (asyncio only) or ``"h11"``;
            see the Testing page.

    Raises:
        ConfigurationError: For settings that cannot work, before any I/O.
    """

    name = _PROVIDER
    max_recipients = 1

    def __init__(
        self,
        *,
        username: str,
        password: str,
        line: str | None = None,
        line2: str | None = None,
        opt_out_fallback: OptOutFallback | _Unset | None = UNSET,
        template: int = 0,
        base_url: str = _DEFAULT_BASE_URL,
        path_prefix: str = "/api",
        http_client: httpx.AsyncClient | None = None,
        timeout: float | httpx.Timeout | None = None,
        max_concurrency: int = DEFAULT_MAX_CONNECTIONS,
        max_connections: int | None = None,
        extra_params: Mapping[str, str] | None = None,
        allow_insecure_http: bool = False,
        transport: TransportName = "auto",
    ) -> None:
        require_text(username, "username")
        require_text(password, "password")
        require_count(max_concurrency, "max_concurrency", minimum=1)
        require_count(template, "template", minimum=0)
        if not path_prefix.startswith("/") or "?" in path_prefix:
            raise ConfigurationError("path_prefix must start with '/' (e.g. '/api')")
        self._username = username
        self._line = None if line is None else clean_line(line, "line")
        self._line2 = None if line2 is None else clean_line(line2, "line2")
        if self._line2 is not None and self._line2 == self._line:
            raise ConfigurationError("line2 must differ from line")
        if opt_out_fallback is UNSET:
            opt_out_fallback = "line2" if self._line2 is not None else None
        self._fallback = self._check_fallback(opt_out_fallback, self._line)
        self._template = template
        extra = dict(extra_params or {})
        clash = _RESERVED.intersection(k.lower() for k in extra)
        if clash:
            raise ConfigurationError(f"extra_params may not set {sorted(clash)}")
        for key, value in extra.items():
            require_text(key, "an extra_params key")
            require_text(value, f"extra_params[{key!r}]")
        self._extra = extra
        self._send_path = path_prefix.rstrip("/") + "/wsSend.ashx"
        self._states_path = path_prefix.rstrip("/") + "/wsStates.ashx"
        super().__init__(
            base_url=base_url,
            http_client=http_client,
            timeout=timeout,
            max_connections=max_connections or max_concurrency,
            secrets=(password,),
            allow_insecure_http=allow_insecure_http,
            transport=transport,
        )
        self._password = password
        self._max_concurrency = max_concurrency
        # Bounds requests in flight across every call on this gateway (fan-outs, state
        # chunks, concurrent callers), so a large fan-out never waits on the pool.
        self._slots = anyio.CapacityLimiter(max_concurrency)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(username={self._username!r}, line={self._line!r}, "
            f"line2={self._line2!r}, opt_out_fallback={self._fallback!r}, "
            f"base_url={self.base_url!r})"
        )

    # -- settings ----------------------------------------------------------------------

    @property
    def line(self) -> str | None:
        """The default sender line."""
        return self._line

    @property
    def default_sender(self) -> str | None:
        """The line a send without ``sender=`` goes out from (``line``), or ``None``.

        The dispatcher keys its journal by this line (canonical spelling), so a job that
        names no sender and one that names this line are the same messages.
        """
        return self._line

    @property
    def line2(self) -> str | None:
        """The second line the provider falls back to on opt-out."""
        return self._line2

    @property
    def opt_out_fallback(self) -> OptOutFallback | None:
        """The server-side opt-out fallback used when a call names none."""
        return self._fallback

    def _check_fallback(self, fallback: object, line: str | None) -> OptOutFallback | None:
        if fallback is None:
            return None
        if fallback not in _FALLBACKS:
            raise ConfigurationError(
                f"opt_out_fallback must be None, 'line2', 'chelcheleh' or 'service_line', "
                f"not {fallback!r}"
            )
        if line is None:
            # Every fallback scenario starts on the customer's own line (the guide's scenarios 3-5,
            # docs/protocols/negin.md §3.2).
            raise ConfigurationError(
                f"opt_out_fallback={fallback!r} needs a line to fall back from"
            )
        if fallback == "line2" and self._line2 is None:
            raise ConfigurationError("opt_out_fallback='line2' needs line2")
        return cast(OptOutFallback, fallback)

    def _send_fields(
        self, sender: str | None, fallback: OptOutFallback | _Unset | None
    ) -> dict[str, str]:
        """The form fields that choose the scenario (§3.2), checked before I/O."""
        line = self._line if sender is None else clean_line(sender, "sender")
        if line is None:
            raise ConfigurationError(
                "no line to send from: give the gateway a line, pass sender=, "
                "or use send_service() for Negin's service line"
            )
        chosen = self._fallback if fallback is UNSET else self._check_fallback(fallback, line)
        fields = {"line": line}
        # Optional fields go only where the scenario lists them; never empty strings.
        if chosen == "line2":
            assert self._line2 is not None  # checked by _check_fallback
            fields["line2"] = self._line2
        elif chosen == "chelcheleh":
            fields["type"] = "1"
        elif chosen == "service_line":
            fields["type"] = "2"
            fields["template"] = str(self._template)
        return fields

    # -- sending -----------------------------------------------------------------------

    async def send(
        self,
        to: str | Sequence[str],
        text: str,
        *,
        sender: str | None = None,
        opt_out_fallback: OptOutFallback | _Unset | None = UNSET,
    ) -> SendReceipt:
        """Send one text to one or more numbers from the internet line.

        Each number is one request (the API carries one recipient); several numbers go
        out concurrently within ``max_concurrency``.

        Args:
            to: One number or several, in any form :func:`~smsgate.normalize_msisdn`
                accepts (a list or tuple; a number given twice in any
                spelling is refused, since it would be sent and charged twice).
            text: The message, sent as given (UTF-8).
            sender: Send from this line instead of the gateway's ``line``.
            opt_out_fallback: Override the gateway's opt-out fallback for this call
                (``None`` switches it off).

        Returns:
            One receipt: ``message_ids`` maps each number to its id, ``message_id`` joins
            them with commas in recipient order, ``sender`` is the line the provider says
            it used (``None`` when numbers went out on different lines).

        Raises:
            InvalidRecipientError, InvalidMessageError, ConfigurationError: Before any I/O
                (a bad, repeated or mistyped number; an empty, oversized or unencodable
                text; a bad line).
            SmsGateError: A provider or transport error. With several numbers, the most
                relevant one (an outcome in doubt first, then an account-wide refusal,
                else the first number's), carrying ``.receipt`` (the numbers that were
                sent, or ``None``) and ``.errors`` (each failed number's error).
        """
        recipients = normalize_recipients(to, provider=_PROVIDER)
        check_text(text)
        fields = self._send_fields(sender, opt_out_fallback)
        default_line = fields["line"] if "line2" not in fields and "type" not in fields else None
        return await self._fan_out(recipients, text, fields, default_line)

    async def send_service(
        self, to: str | Sequence[str], text: str, *, template: int | None = None
    ) -> SendReceipt:
        """Send through Negin's shared service line (``type=2`` with no line; scenario 2).

        A service line reaches numbers on the opt-out list. Its texts are pre-approved:
        the provider probably wraps ``text`` (often just an OTP code) in the template
        ``template`` (docs/protocols/negin.md §3.2). ``text`` is sent exactly as given.

        Args:
            to: One number or several.
            text: The message or the template's variable part.
            template: The template number; defaults to the gateway's ``template``.

        Returns:
            A receipt as for :meth:`send`; ``sender`` is the service line used.

        Raises:
            SmsGateError: The same errors as :meth:`send`, for the same reasons.
        """
        recipients = normalize_recipients(to, provider=_PROVIDER)
        check_text(text)
        chosen = self._template if template is None else template
        require_count(chosen, "template", minimum=0)
        fields = {"type": "2", "template": str(chosen)}
        return await self._fan_out(recipients, text, fields, None)
