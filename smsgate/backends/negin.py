"""The Negin 3300 REST backend (``sms.3300.ir``: ``wsSend.ashx`` and ``wsStates.ashx``).

Provider quirks this module handles (the protocol page is ``protocols/negin.md``; section
numbers below refer to it):

* One recipient per request (§2.1, §6 q7): :meth:`NeginGateway.send` fans a list out into
  concurrent requests, bounded by the gateway's own :class:`anyio.CapacityLimiter`, and
  never joins numbers with commas.
* Always HTTP 200; the outcome is the JSON ``status``: success iff it is negative **and**
  ``data.message_id`` is present (§2.4, §6 q1). Error codes follow Magfa's numbering and are
  mapped through :data:`ERROR_CODES` (§2.5, §6 q2); ``msg`` is never parsed.
* ``message_id`` may be a JSON number beyond 32 bits or a string; ``line`` and ``mobile``
  may be numbers or strings (§2.4, §6 q3). All become ``str`` here.
* Credentials travel in every form body, so requests are always form POSTs, never GETs
  with the password in the URL (§1, §6 q5), and the password is registered as a secret
  that is scrubbed from every error text.
* The server-side opt-out fallback (``line2``, Chelcheleh ``type=1``, the service line
  ``type=2`` + ``template``) is chosen per gateway and may be overridden per call
  (§2.2, §2.3); ``data.line`` says which line actually sent (§6 q13).
* ``wsStates.ashx`` takes at most 100 ids per call here (§6 q17) and answers the states as
  comma-joined strings (§3.2); JSON lists are accepted too.

How :class:`~smsgate.UnknownMessageError` arises. Negin's ``-1`` state means "never sent to
the operator", and like Magfa's it probably also comes back for ids the provider does not
know or has expired (§3.3). The two cannot be told apart on the wire, so ``-1`` is always
reported as a final ``REJECTED``. An id is *unknown* (``UnknownMessageError``) when:

* the provider answers the states call with status ``24`` (``INVALID_MESSAGE_ID``), or
* a requested id is missing from the ``msgIds`` the provider returns, or
* the id cannot be a Negin id at all (not a positive integer); this is found before any
  request is made.
"""

from __future__ import annotations

import enum
import logging
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from types import MappingProxyType
from typing import Any, Final, Literal, cast, get_args

import anyio
import attrs
import httpx

from .._constants import DEFAULT_MAX_CONNECTIONS
from .._models import DeliveryReport, DeliveryState, SendReceipt
from .._phone import _DIGITS, _INVISIBLE, normalize_msisdn, to_national
from ..exceptions import (
    AccountRestrictedError,
    AuthenticationError,
    ConfigurationError,
    InsufficientCreditError,
    InvalidMessageError,
    InvalidRecipientError,
    InvalidSenderError,
    MessageRejectedError,
    NotSentError,
    ProviderError,
    ProviderUnavailableError,
    RateLimitedError,
    RecipientOptedOutError,
    RecipientRejectedError,
    SmsGateError,
    TooManyRecipientsError,
    UnknownMessageError,
)
from ._http import HttpAnswer, HttpGateway, TransportName

__all__ = [
    "ERROR_CODES",
    "MAX_IDS_PER_STATES_CALL",
    "STATES",
    "NeginGateway",
    "OptOutFallback",
    "normalize_line",
]

logger = logging.getLogger("smsgate.negin")

#: What the provider does when the recipient is on the operators' opt-out list:
#: ``"line2"`` sends from the second line (S0 scenario 3), ``"chelcheleh"`` sends through
#: Chelcheleh (``type=1``, scenario 4), ``"service_line"`` sends through Negin's shared
#: service line with a template (``type=2``, scenario 5). ``None``: no fallback, the send
#: fails with :class:`~smsgate.RecipientOptedOutError`.
OptOutFallback = Literal["line2", "chelcheleh", "service_line"]
_FALLBACKS: Final = frozenset(get_args(OptOutFallback))

#: Ids per ``wsStates.ashx`` call; the real limit is unknown, Magfa's arrays take 90-100
#: (protocols/negin.md §6 q17).
MAX_IDS_PER_STATES_CALL: Final = 100

_DEFAULT_BASE_URL: Final = "https://sms.3300.ir"
_PROVIDER: Final = "negin"
# The fields the gateway itself sends; ``extra_params`` may not override them.
_RESERVED: Final = frozenset(
    {"username", "password", "mobile", "message", "line", "line2", "type", "template"}
)
# S0 names the separator "comma" and OCR turned it into U+066B; Persian text also uses the
# Arabic comma U+060C (§3.1, §5 item 7). Accept all three when reading ids.
_ID_SEPARATORS: Final = re.compile("[,\u060c\u066b]")
_INTEGER: Final = re.compile(r"[+-]?[0-9]+")
# Lines are sent as given after converting Persian/Arabic digits and dropping spaces and
# the invisible marks pasted right-to-left text carries (§6 q9); anything else is refused.
_LINE_TABLE: Final = _DIGITS | {ord(c): None for c in " \t\u00a0\u202f\u2009" + _INVISIBLE}


class _Unset(enum.Enum):
    UNSET = enum.auto()


#: Marks "not given" where ``None`` is a meaningful value (``opt_out_fallback=None``).
UNSET: Final = _Unset.UNSET


# -- the code tables ----------------------------------------------------------------------


@attrs.frozen
class _Code:
    """One provider status code: the error class it becomes and what it means."""

    error: type[ProviderError]
    name: str  # the Magfa/Negin upper-case name (protocols/negin.md §2.5)
    message: str  # an English sentence for the exception
    options: Mapping[str, Any] = attrs.field(factory=dict)


#: Every ``status`` code with a known meaning (protocols/negin.md §2.5, §6 q2), mapped onto
#: smsgate's error tree. Codes not listed become a plain :class:`~smsgate.ProviderError`
#: that keeps the raw ``status`` (``.code``) and ``msg`` (``.detail``).
ERROR_CODES: Final[Mapping[int, _Code]] = MappingProxyType(
    {
        1: _Code(RecipientRejectedError, "INVALID_RECIPIENT_NUMBER", "Negin rejected the number"),
        2: _Code(
            InvalidSenderError, "INVALID_SENDER_NUMBER", "the line is not valid for this account"
        ),
        12: _Code(AuthenticationError, "INVALID_ACCOUNT_ID", "the account id is invalid"),
        13: _Code(MessageRejectedError, "NULL_MESSAGE", "Negin refused an empty message"),
        14: _Code(InsufficientCreditError, "CREDIT_NOT_ENOUGH", "insufficient credit"),
        # "internal server error; send again" (C8): refused before sending.
        15: _Code(
            ProviderUnavailableError,
            "SERVER_ERROR",
            "Negin reported an internal error; nothing was sent",
            {"maybe_sent": False},
        ),
        16: _Code(AccountRestrictedError, "ACCOUNT_INACTIVE", "the account is inactive"),
        17: _Code(AccountRestrictedError, "ACCOUNT_EXPIRED", "the account has expired"),
        18: _Code(
            AuthenticationError,
            "INVALID_USERNAME_PASSWORD",
            "the user name or password is incorrect",
        ),
        19: _Code(AuthenticationError, "AUTHENTICATION_FAILED", "authentication failed"),
        20: _Code(
            InvalidSenderError,
            "SERVICE_TYPE_NOT_FOUND",
            "the send type is not available to this account",
        ),
        22: _Code(
            AccountRestrictedError,
            "ACCOUNT_SERVICE_NOT_FOUND",
            "the account may not use the web service",
        ),
        23: _Code(
            ProviderUnavailableError,
            "SERVER_BUSY",
            "Negin is busy; nothing was sent",
            {"maybe_sent": False},
        ),
        24: _Code(UnknownMessageError, "INVALID_MESSAGE_ID", "Negin does not know this message id"),
        27: _Code(
            RecipientOptedOutError,
            "RECEIVER_NUMBER_IN_BLACK_LIST",
            "the recipient has opted out of advertising SMS",
        ),
        28: _Code(
            RecipientRejectedError,
            "PREFIX_RECEIVER_NUMBER_IS_BLOCKED",
            "the recipient's prefix is blocked",
        ),
        29: _Code(
            AccountRestrictedError, "IP_NOT_ALLOWED", "this IP address may not use the account"
        ),
        30: _Code(MessageRejectedError, "LARGE_SMS_CONTENT", "the message is too long"),
        103: _Code(
            RecipientRejectedError,
            "INVALID_ARRAY_MOBILES_LENGTH",
            "Negin rejected the number",
        ),
        106: _Code(RecipientRejectedError, "EMPTY_RECIPIENTS", "Negin received no recipient"),
        107: _Code(TooManyRecipientsError, "TOO_MANY_RECIPIENTS", "too many recipients"),
        # SOAP: "minimum interval between requests (5 seconds) not respected" (C8, C9).
        409: _Code(
            RateLimitedError,
            "TOO_FREQUENT",
            "requests too close together (Negin asks for 5 s)",
            {"retry_after": 5.0},
        ),
    }
)


@attrs.frozen
class _State:
    state: DeliveryState
    meaning: str


#: ``wsStates.ashx`` per-message codes (protocols/negin.md §3.3; API.md §2). Anything else
#: (e.g. Kannel's 4, "queued on SMSC") becomes ``UNKNOWN`` with the raw value kept.
STATES: Final[Mapping[int, _State]] = MappingProxyType(
    {
        -1: _State(DeliveryState.REJECTED, "not sent to the operator (or an unknown id)"),
        0: _State(DeliveryState.QUEUED, "no report yet, in the send queue"),
        1: _State(DeliveryState.DELIVERED, "delivered to the handset"),
        2: _State(DeliveryState.UNDELIVERED, "not delivered to the handset"),
        8: _State(DeliveryState.AT_OPERATOR, "delivered to the operator (SMSC)"),
        16: _State(DeliveryState.REJECTED, "refused by the operator (SMSC)"),
    }
)


# -- small parsers ------------------------------------------------------------------------


def _as_int(value: object) -> int | None:
    """An int from a JSON number or numeric string (§6 q3), else ``None``."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and _INTEGER.fullmatch(value.strip()):
        return int(value.strip())
    return None


def _as_text(value: object) -> str | None:
    """A non-empty str from a JSON number or string (ids and lines), else ``None``."""
    number = _as_int(value)
    if number is not None:
        return str(number)
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None


def _require_text(value: object, field: str) -> None:
    # Settings arrive from config files and environment variables: check the types too.
    # Empty strings are refused: the provider reads an empty field as absent (§2.1).
    if not isinstance(value, str) or not value.strip():
        raise ConfigurationError(f"{field} must be a non-empty str")


def _require_count(value: object, field: str, *, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigurationError(f"{field} must be an int of at least {minimum}")


def _clean_line(value: object, field: str) -> str:
    if not isinstance(value, str):
        raise ConfigurationError(f"{field} must be a str of digits, not {type(value).__name__}")
    line = value.translate(_LINE_TABLE)
    if not line.isascii() or not line.isdigit():
        # Lines are sent as given (§6 q9): only spaces and Persian digits are cleaned up.
        raise ConfigurationError(
            f"{field} must be digits only, such as '9830003300', not {value!r}"
        )
    return line


def normalize_line(value: str) -> str:
    """Return a Negin line number in the ``98…`` form every example uses (§6 q9).

    The gateway sends lines exactly as given; call this yourself if your panel shows
    the line without the country code (``30003300`` -> ``9830003300``).

    Args:
        value: The line, with or without ``+98``, ``0098`` or ``98``; Persian digits allowed.

    Returns:
        The line with the ``98`` prefix and digits only.

    Raises:
        ConfigurationError: If it is not a line number.
    """
    text = value.strip()
    plus = text.startswith("+")
    line = _clean_line(text[1:] if plus else text, "line")
    if line.startswith("0098"):
        line = line[2:]
    elif line.startswith("0"):
        line = "98" + line[1:]
    elif not line.startswith("98") or len(line) < 10:
        line = "98" + line
    if len(line) < 6:
        raise ConfigurationError(f"not a line number: {value!r}")
    return line


def _split_ids(value: object) -> list[str]:
    """Ids from a comma-joined string or a JSON list (§3.2, §6 q15)."""
    if isinstance(value, str):
        parts: Iterable[object] = _ID_SEPARATORS.split(value)
    elif isinstance(value, list):
        parts = value
    else:
        return []
    out = []
    for part in parts:
        text = _as_text(part.strip().strip("\"'") if isinstance(part, str) else part)
        out.append("" if text is None else text)
    return out


def _message_ids(ref: str | int | Iterable[str | int]) -> list[str]:
    """The ids a caller asked about, deduplicated in order; non-ids refused before I/O."""
    if isinstance(ref, int):
        items: list[str | int] = [ref]
    elif isinstance(ref, str):
        # A comma-joined handle (a multi-number receipt's message_id); a trailing comma
        # leaves an empty piece, which is not an id someone asked about.
        items = [p for p in _ID_SEPARATORS.split(ref) if p.strip()]
    else:
        items = list(ref)
    seen: dict[str, None] = {}
    for item in items:
        number = _as_int(item.strip().strip("\"'") if isinstance(item, str) else item)
        if number is None or number <= 0:
            raise UnknownMessageError(
                f"{item!r} is not a Negin message id (they are positive integers)",
                provider=_PROVIDER,
            )
        seen.setdefault(str(number))
    return list(seen)


def _chunks(items: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _report(message_id: str, raw_state: object, recipient: str | None) -> DeliveryReport:
    code = _as_int(raw_state)
    known = STATES.get(code) if code is not None else None
    raw = str(code) if code is not None else str(raw_state)
    return DeliveryReport(
        message_id=message_id,
        recipient=recipient,
        state=known.state if known else DeliveryState.UNKNOWN,
        provider_status=raw,
        provider=_PROVIDER,
    )


def _attach(
    exc: SmsGateError, receipt: SendReceipt | None, errors: Mapping[str, SmsGateError]
) -> None:
    # API.md §3: the error of a multi-number send carries the partial receipt, so nothing
    # that was sent is forgotten, and each failed number's own error (a plain dict, so
    # that the error still pickles).
    exc.receipt = receipt
    exc.errors = dict(errors)


# Errors that say every further request of this send would fail the same way: stop
# starting new ones (requests already in flight are never cancelled).
_ACCOUNT_WIDE = (
    AuthenticationError,
    AccountRestrictedError,
    InsufficientCreditError,
    InvalidSenderError,
    RateLimitedError,
)


def _most_relevant(errors: Sequence[SmsGateError]) -> SmsGateError:
    """The error to raise for a fan-out: doubt first (do not resend), then account-wide."""
    for exc in errors:
        if exc.maybe_sent:
            return exc
    for exc in errors:
        if isinstance(exc, _ACCOUNT_WIDE):
            return exc
    return errors[0]


@attrs.frozen
class _Sent:
    message_id: str
    line: str | None
    raw: Any


# -- the gateway --------------------------------------------------------------------------


class NeginGateway(HttpGateway):
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
            old panels (protocols/negin.md §1).
        http_client: An ``httpx.AsyncClient`` to borrow instead of our own.
        timeout: Per-request timeouts (seconds or ``httpx.Timeout``).
        max_concurrency: Requests this gateway keeps in flight at once, across all calls
            (a send to many numbers makes one request per number). With a borrowed client,
            keep it at or below that client's connection limit.
        max_connections: Connections our own client keeps; defaults to ``max_concurrency``.
        extra_params: More form fields for every send (e.g. ``{"life_time": "60"}``,
            §6 q12); they may not replace the gateway's own fields.
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
        _require_text(username, "username")
        _require_text(password, "password")
        _require_count(max_concurrency, "max_concurrency", minimum=1)
        _require_count(template, "template", minimum=0)
        if not path_prefix.startswith("/") or "?" in path_prefix:
            raise ConfigurationError("path_prefix must start with '/' (e.g. '/api')")
        self._username = username
        self._line = None if line is None else _clean_line(line, "line")
        self._line2 = None if line2 is None else _clean_line(line2, "line2")
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
            _require_text(key, "an extra_params key")
            _require_text(value, f"extra_params[{key!r}]")
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
            # Every fallback scenario starts on the customer's own line (S0 scenarios 3-5).
            raise ConfigurationError(
                f"opt_out_fallback={fallback!r} needs a line to fall back from"
            )
        if fallback == "line2" and self._line2 is None:
            raise ConfigurationError("opt_out_fallback='line2' needs line2")
        return cast(OptOutFallback, fallback)

    def _send_fields(
        self, sender: str | None, fallback: OptOutFallback | _Unset | None
    ) -> dict[str, str]:
        """The form fields that choose the scenario (§2.2, §6 q10), checked before I/O."""
        line = self._line if sender is None else _clean_line(sender, "sender")
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
                accepts. A number given twice is sent once.
            text: The message, sent as given (UTF-8).
            sender: Send from this line instead of the gateway's ``line``.
            opt_out_fallback: Override the gateway's opt-out fallback for this call
                (``None`` switches it off).

        Returns:
            One receipt: ``message_ids`` maps each number to its id, ``message_id`` joins
            them with commas in recipient order, ``sender`` is the line the provider says
            it used (``None`` when numbers went out on different lines).

        Raises:
            InvalidRecipientError, InvalidMessageError, ConfigurationError: Before any I/O.
            SmsGateError: A provider or transport error. With several numbers, the most
                relevant one (an outcome in doubt first, then an account-wide refusal,
                else the first number's), carrying ``.receipt`` (the numbers that were
                sent, or ``None``) and ``.errors`` (each failed number's error).
        """
        recipients = self._recipients(to)
        self._check_text(text)
        fields = self._send_fields(sender, opt_out_fallback)
        default_line = fields["line"] if "line2" not in fields and "type" not in fields else None
        return await self._fan_out(recipients, text, fields, default_line)

    async def send_service(
        self, to: str | Sequence[str], text: str, *, template: int | None = None
    ) -> SendReceipt:
        """Send through Negin's shared service line (``type=2`` with no line; scenario 2).

        A service line reaches numbers on the opt-out list. Its texts are pre-approved:
        the provider probably wraps ``text`` (often just an OTP code) in the template
        ``template`` (protocols/negin.md §2.3). ``text`` is sent exactly as given.

        Args:
            to: One number or several.
            text: The message or the template's variable part.
            template: The template number; defaults to the gateway's ``template``.

        Returns:
            A receipt as for :meth:`send`; ``sender`` is the service line used.

        Raises:
            SmsGateError: The same errors as :meth:`send`, for the same reasons.
        """
        recipients = self._recipients(to)
        self._check_text(text)
        chosen = self._template if template is None else template
        _require_count(chosen, "template", minimum=0)
        fields = {"type": "2", "template": str(chosen)}
        return await self._fan_out(recipients, text, fields, None)

    @staticmethod
    def _recipients(to: str | Sequence[str]) -> tuple[str, ...]:
        numbers = [to] if isinstance(to, str) else list(to)
        if not numbers:
            raise InvalidRecipientError("no recipient given", value=to)
        # Each number is checked before any request, so one bad number sends nothing.
        return tuple(dict.fromkeys(normalize_msisdn(n) for n in numbers))

    @staticmethod
    def _check_text(text: str) -> None:
        if not isinstance(text, str):
            raise InvalidMessageError(f"the text must be a str, not {type(text).__name__}")
        if not text.strip():
            raise InvalidMessageError("the text is empty")

    async def _fan_out(
        self,
        recipients: tuple[str, ...],
        text: str,
        fields: Mapping[str, str],
        default_line: str | None,
    ) -> SendReceipt:
        sent: dict[str, _Sent] = {}
        errors: dict[str, SmsGateError] = {}
        pending = iter(recipients)
        stop = False

        async def worker() -> None:
            nonlocal stop
            # Workers pull from one iterator: at most max_concurrency tasks per call,
            # whatever the number of recipients.
            for recipient in pending:
                if stop:
                    return
                try:
                    sent[recipient] = await self._send_one(recipient, text, fields, default_line)
                except SmsGateError as exc:
                    errors[recipient] = exc
                    if isinstance(exc, _ACCOUNT_WIDE):
                        stop = True

        self._ensure_client()  # a closed gateway raises RuntimeError here, not in a task
        workers = min(len(recipients), self._max_concurrency)
        try:
            if workers == 1:
                await worker()  # one number (the dispatcher's way): no task group needed
            else:
                async with anyio.create_task_group() as tg:
                    for _ in range(workers):
                        tg.start_soon(worker)
        except BaseException:
            if sent:
                # Cancelled (or crashed) after some numbers went out: there is no receipt
                # to return, so leave the ids where an operator can reconcile them.
                logger.warning(
                    "Negin send interrupted after %d of %d numbers were accepted; message ids: %s",
                    len(sent),
                    len(recipients),
                    ",".join(s.message_id for s in sent.values()),
                )
            raise

        # Numbers never tried (the send stopped after an account-wide refusal) are reported
        # too: every number ends in the receipt or in .errors.
        for recipient in recipients:
            if recipient not in sent and recipient not in errors:
                errors[recipient] = NotSentError(
                    "not sent: the send stopped after an account-wide refusal"
                )
        receipt = self._receipt(recipients, sent) if sent else None
        if not errors:
            assert receipt is not None
            return receipt
        ordered = [errors[r] for r in recipients if r in errors]
        exc = _most_relevant(ordered)
        _attach(exc, receipt, {r: errors[r] for r in recipients if r in errors})
        raise exc

    def _receipt(self, recipients: tuple[str, ...], sent: Mapping[str, _Sent]) -> SendReceipt:
        done = [r for r in recipients if r in sent]
        lines = {sent[r].line for r in done}
        return SendReceipt(
            message_id=",".join(sent[r].message_id for r in done),
            message_ids={r: sent[r].message_id for r in done},
            provider=_PROVIDER,
            recipients=done,
            sender=lines.pop() if len(lines) == 1 else None,
            raw=sent[done[0]].raw if len(done) == 1 else {r: sent[r].raw for r in done},
        )

    async def _send_one(
        self, recipient: str, text: str, fields: Mapping[str, str], default_line: str | None
    ) -> _Sent:
        form = {
            **self._extra,
            "username": self._username,
            "password": self._password,
            # The form the server echoes and accepts (§6 q8).
            "mobile": to_national(recipient),
            "message": text,
            **fields,
        }
        async with self._slots:
            answer = await self._request(
                "POST", self._send_path, data=form, operation="send", recipients=1
            )
        status, body = self._envelope(answer, idempotent=False)
        if status >= 0:
            raise self._error(status, body.get("msg"), sending=True)
        data = body.get("data")
        message_id = _as_text(data.get("message_id")) if isinstance(data, dict) else None
        if message_id is None:
            # The provider says it worked but gives nothing to track: the SMS may be out.
            raise self._protocol_error(
                "Negin reported success without a message_id", answer, idempotent=False
            )
        if status != -1:
            # Only -1 is documented; other negative values are accepted as success the way
            # the sister SOAP API and three clients do (§2.4, §6 q1).
            logger.warning("Negin answered an undocumented success status %d", status)
        line = _as_text(data.get("line")) if isinstance(data, dict) else None
        return _Sent(message_id=message_id, line=line or default_line, raw=body)

    # -- answers -----------------------------------------------------------------------

    def _envelope(self, answer: HttpAnswer, *, idempotent: bool) -> tuple[int, dict[str, Any]]:
        """The ``{"data", "status", "msg"}`` object and its ``status`` as an int (§6 q3)."""
        body = self._json(answer, idempotent=idempotent)
        status = _as_int(body.get("status")) if isinstance(body, dict) else None
        if status is None:
            raise self._protocol_error(
                "Negin answered JSON without a numeric status", answer, idempotent=idempotent
            )
        return status, body

    def _error(self, status: int, msg: object, *, sending: bool = False) -> ProviderError:
        """The exception for a status code, by table (never by the ``msg`` text, §6 q2).

        A code with no known meaning, answered to a send, may come after the provider
        accepted it (e.g. 0, "unexpected service error", §2.5): it is ``maybe_sent`` and the
        recipient is reconciled, never resent or sent on another route.
        """
        detail = self._scrub(msg.strip()) if isinstance(msg, str) and msg.strip() else None
        known = ERROR_CODES.get(status)
        if known is None:
            return ProviderError(
                f"Negin refused the request with status {status}",
                provider=_PROVIDER,
                code=status,
                detail=detail,
                maybe_sent=sending,
            )
        return known.error(
            known.message, provider=_PROVIDER, code=status, detail=detail, **known.options
        )

    # -- delivery ----------------------------------------------------------------------

    async def delivery(self, ref: SendReceipt | str, /) -> list[DeliveryReport]:
        """The delivery state of every recipient of a send.

        Args:
            ref: A receipt from :meth:`send` (every report then names its recipient) or a
                bare id, or several ids comma-joined as in ``receipt.message_id``
                (``recipient`` is then ``None``: Negin does not return numbers).

        Returns:
            One report per recipient (or per id), in order.

        Raises:
            UnknownMessageError: An id Negin does not know (see the module docstring).
            SmsGateError: Other provider and transport errors.
        """
        if isinstance(ref, SendReceipt):
            if ref.provider != _PROVIDER:
                raise UnknownMessageError(
                    f"this receipt is from {ref.provider!r}, not Negin", provider=_PROVIDER
                )
            pairs = self._receipt_pairs(ref)
        else:
            pairs = [(i, None) for i in _message_ids(ref)]
        if not pairs:
            raise UnknownMessageError("no message id given", provider=_PROVIDER)
        states = await self.states([i for i, _ in pairs])
        return [
            attrs.evolve(states[i], recipient=recipient) if recipient else states[i]
            for i, recipient in pairs
        ]

    @staticmethod
    def _receipt_pairs(receipt: SendReceipt) -> list[tuple[str, str | None]]:
        if receipt.message_ids and all(r in receipt.message_ids for r in receipt.recipients):
            return [(_message_ids(receipt.message_ids[r])[0], r) for r in receipt.recipients]
        # A receipt built by hand: its comma-joined handle, by position when it fits.
        ids = _message_ids(receipt.message_id)
        if len(ids) == len(receipt.recipients):
            return list(zip(ids, receipt.recipients, strict=True))
        return [(i, None) for i in ids]

    async def states(
        self, message_ids: str | int | Iterable[str | int]
    ) -> dict[str, DeliveryReport]:
        """The delivery states of many messages by id (``wsStates.ashx``).

        Ids go out comma-joined, at most :data:`MAX_IDS_PER_STATES_CALL` per request;
        more are split into requests that run concurrently.

        Args:
            message_ids: Ids as a list, or one comma-joined string.

        Returns:
            Each id (as a str, in the order asked) to its report (``recipient`` is ``None``).

        Raises:
            UnknownMessageError: An id Negin does not know (see the module docstring).
            SmsGateError: Other provider and transport errors.
        """
        ids = _message_ids(message_ids)
        self._ensure_client()  # a closed gateway raises RuntimeError here, not in a task
        if len(ids) <= MAX_IDS_PER_STATES_CALL:
            found = await self._states_chunk(ids) if ids else {}
            return {i: found[i] for i in ids}
        results: dict[str, DeliveryReport] = {}
        errors: list[tuple[int, SmsGateError]] = []

        async def one_chunk(index: int, chunk: Sequence[str]) -> None:
            try:
                results.update(await self._states_chunk(chunk))
            except SmsGateError as exc:
                errors.append((index, exc))
                # The whole call fails anyway; queries have no side effect to protect.
                tg.cancel_scope.cancel()

        async with anyio.create_task_group() as tg:
            for index, chunk in enumerate(_chunks(ids, MAX_IDS_PER_STATES_CALL)):
                tg.start_soon(one_chunk, index, chunk)
        if errors:
            raise min(errors, key=lambda pair: pair[0])[1]
        return {i: results[i] for i in ids}

    async def _states_chunk(self, ids: Sequence[str]) -> dict[str, DeliveryReport]:
        form = {
            "username": self._username,
            "password": self._password,
            "message_ids": ",".join(ids),
        }
        async with self._slots:
            answer = await self._request(
                "POST", self._states_path, data=form, idempotent=True, operation="states"
            )
        status, body = self._envelope(answer, idempotent=True)
        if status >= 0:
            raise self._error(status, body.get("msg"))
        data = body.get("data")
        if not isinstance(data, dict):
            raise self._protocol_error(
                "Negin answered states without data", answer, idempotent=True
            )
        got_ids = _split_ids(data.get("msgIds", data.get("msgids")))
        got_states = _split_ids(data.get("states"))
        if len(got_ids) != len(got_states):
            # Position is the only link between an id and its state (§3.2).
            raise self._protocol_error(
                "Negin answered a different number of ids and states", answer, idempotent=True
            )
        wanted = set(ids)
        reports = {
            i: _report(i, s, None) for i, s in zip(got_ids, got_states, strict=True) if i in wanted
        }
        missing = [i for i in ids if i not in reports]
        if missing:
            shown = ", ".join(missing[:10]) + (" ..." if len(missing) > 10 else "")
            raise UnknownMessageError(
                f"Negin does not know the message id(s) {shown}", provider=_PROVIDER
            )
        return reports
