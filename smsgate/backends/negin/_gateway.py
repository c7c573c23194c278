"""The Negin gateway: settings, the five sending scenarios, the states query.

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
import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final, Literal, cast, get_args

import anyio
import attrs
import httpx

from ..._constants import DEFAULT_MAX_CONNECTIONS
from ..._models import DeliveryReport, SendReceipt
from ..._phone import normalize_recipients, to_national
from ..._text import check_text
from ...exceptions import ConfigurationError, SmsGateError, UnknownMessageError
from .._fanout import fan_out, settle
from .._http import HttpAnswer, HttpGateway, TransportName
from .._parse import as_int, as_text
from ._codes import PROVIDER, error_for
from ._parsing import (
    chunks,
    clean_line,
    report,
    require_count,
    require_text,
    split_ids,
)
from ._parsing import message_ids as _ids

__all__ = ["MAX_IDS_PER_STATES_CALL", "UNSET", "NeginGateway", "OptOutFallback"]

logger = logging.getLogger("smsgate.negin")

#: What the provider does when the recipient is on the operators' opt-out list:
#: ``"line2"`` sends from the second line (the guide's scenario 3), ``"chelcheleh"`` sends
#: through Chelcheleh (``type=1``, scenario 4), ``"service_line"`` sends through Negin's
#: shared service line with a template (``type=2``, scenario 5). ``None``: no fallback, the
#: send fails with :class:`~smsgate.RecipientOptedOutError`.
OptOutFallback = Literal["line2", "chelcheleh", "service_line"]
_FALLBACKS: Final = frozenset(get_args(OptOutFallback))

#: Ids per ``wsStates.ashx`` call; the real limit is unknown, Magfa's arrays take 90-100
#: (docs/protocols/negin.md §5).
MAX_IDS_PER_STATES_CALL: Final = 100

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


@attrs.frozen
class _Sent:
    message_id: str
    line: str | None
    raw: Any


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
        transport: ``"auto"`` (default: aiohttp under asyncio, httpx under trio or with
            ``http_client``), ``"httpx"`` (an httpx client of our own, which ``respx.mock``
            sees) or ``"aiohttp"`` (asyncio only); see the Testing page.

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
        recipients = normalize_recipients(to, provider=_PROVIDER)
        check_text(text)
        chosen = self._template if template is None else template
        require_count(chosen, "template", minimum=0)
        fields = {"type": "2", "template": str(chosen)}
        return await self._fan_out(recipients, text, fields, None)

    async def _fan_out(
        self,
        recipients: tuple[str, ...],
        text: str,
        fields: Mapping[str, str],
        default_line: str | None,
    ) -> SendReceipt:
        self._ensure_client()  # a closed gateway raises RuntimeError here, not in a task

        async def one(recipient: str) -> _Sent:
            return await self._send_one(recipient, text, fields, default_line)

        result = await fan_out(
            recipients,
            one,
            workers=self._max_concurrency,
            describe=lambda sent: sent.message_id,
            logger=logger,
            provider="Negin",
        )
        return settle(result, self._receipt)

    @staticmethod
    def _receipt(sent: Mapping[str, _Sent]) -> SendReceipt:
        done = list(sent)
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
        message_id = as_text(data.get("message_id")) if isinstance(data, dict) else None
        if message_id is None:
            # The provider says it worked but gives nothing to track: the SMS may be out.
            raise self._protocol_error(
                "Negin reported success without a message_id", answer, idempotent=False
            )
        if status != -1:
            # Only -1 is documented; other negative values are accepted as success the way
            # the sister SOAP API and three clients do (§2.4, §6 q1).
            logger.warning("Negin answered an undocumented success status %d", status)
        line = as_text(data.get("line")) if isinstance(data, dict) else None
        return _Sent(message_id=message_id, line=line or default_line, raw=body)

    # -- answers -----------------------------------------------------------------------

    def _envelope(self, answer: HttpAnswer, *, idempotent: bool) -> tuple[int, dict[str, Any]]:
        """The ``{"data", "status", "msg"}`` object and its ``status`` as an int (§6 q3)."""
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
            pairs = [(i, None) for i in _ids(ref)]
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
            return [(_ids(receipt.message_ids[r])[0], r) for r in receipt.recipients]
        # A receipt built by hand: its comma-joined handle, by position when it fits.
        ids = _ids(receipt.message_id)
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
        ids = _ids(message_ids)
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
            for index, chunk in enumerate(chunks(ids, MAX_IDS_PER_STATES_CALL)):
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
        got_ids = split_ids(data.get("msgIds", data.get("msgids")))
        got_states = split_ids(data.get("states"))
        if len(got_ids) != len(got_states):
            # Position is the only link between an id and its state (§3.2).
            raise self._protocol_error(
                "Negin answered a different number of ids and states", answer, idempotent=True
            )
        wanted = set(ids)
        reports = {
            i: report(i, s, None) for i, s in zip(got_ids, got_states, strict=True) if i in wanted
        }
        missing = [i for i in ids if i not in reports]
        if missing:
            shown = ", ".join(missing[:10]) + (" ..." if len(missing) > 10 else "")
            raise UnknownMessageError(
                f"Negin does not know the message id(s) {shown}", provider=_PROVIDER
            )
        return reports
