"""The Negin 3300 REST half of the fake provider: ``wsSend.ashx`` and ``wsStates.ashx``.

Written from the protocol page (``docs/protocols/negin.md``; its §7 describes the
profiles), never from the client (R16): it imports nothing from ``smsgate.backends``.
Section numbers below refer to that page. Where the page guesses, this fake picks one
answer and makes the alternatives switchable, so the client's leniency can be tested:

* an id this account never issued: the whole states call answers status 24
  (``INVALID_MESSAGE_ID``) by default; ``unknown_ids="minus_one"`` answers it with the
  state -1 (Magfa's "bad or expired id", §6) and ``"omit"`` leaves it out of the answer;
* ``mobile_as_number`` / ``data_as_strings`` / ``error_data`` / ``states_as_lists``: the
  field types seen in different clients (§3.3);
* ``html_without_user_agent``: the HTML page a SOAP client warns about (§2);
* ``min_interval``: the SOAP 409 "requests less than 5 s apart" (§4).

**Profiles.** ``"lenient"`` (the default) is everything above. ``"negin-guide"`` behaves
exactly as Negin's REST guide describes, and no more (docs/protocols/negin.md §7): form
POSTs only (no GET, no query string), the ``/api/`` paths only, field names exactly as
printed (lower case), ids separated by the comma the guide names, the send answer in the
guide's sample shape (``message_id`` and ``line`` JSON numbers, ``mobile`` a string), the
states answer as comma-joined strings, and ``18`` (the guide's number) for "not received
by the operator" where the lenient fake says ``16``. The guide prints no error code, so
refusals keep the lenient fake's inferred ones. The profile is the shared core's
(``FakeProvider(profile=...)``); the ippanel profiles leave this half lenient.
"""

from __future__ import annotations

import collections
import json
import re
import threading
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, Literal

import attrs
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Match, NoMatchFound
from starlette.types import Receive, Scope, Send

from .._phone import _DIGITS, normalize_msisdn
from .._segments import segments
from ..exceptions import InvalidRecipientError
from ._core import FakeCore, LedgerEntry

__all__ = ["DEFAULT_TIMELINE", "GUIDE_PROFILE", "NeginFake", "Timeline"]

#: The profile that follows Negin's REST guide to the letter.
GUIDE_PROFILE = "negin-guide"

#: ``(seconds after the send, state code)`` steps, in time order (§6 codes).
Timeline = tuple[tuple[float, int], ...]

#: Queued, then at the operator after 2 s, delivered after 5 s of fake time.
DEFAULT_TIMELINE: Timeline = ((0.0, 0), (2.0, 8), (5.0, 1))

# The upper-case names of the inferred codes (§4), sent as ``msg`` on errors (a guess:
# no refusal's text is known).
_MESSAGES: dict[int, str] = {
    -1: "success",
    1: "INVALID_RECIPIENT_NUMBER",
    2: "INVALID_SENDER_NUMBER",
    13: "NULL_MESSAGE",
    14: "CREDIT_NOT_ENOUGH",
    16: "ACCOUNT_INACTIVE",
    17: "ACCOUNT_EXPIRED",
    18: "INVALID_USERNAME_PASSWORD",
    20: "SERVICE_TYPE_NOT_FOUND",
    24: "INVALID_MESSAGE_ID",
    27: "RECEIVER_NUMBER_IN_BLACK_LIST",
    409: "TOO_FREQUENT",
}

_SEND_PATHS = frozenset({"/api/wssend.ashx", "/services/wssend.ashx"})
_STATES_PATHS = frozenset({"/api/wsstates.ashx", "/services/wsstates.ashx"})
# §5: ids are split on the comma, the Arabic comma and the Arabic decimal separator
# (the OCR'd seed shows the latter); spaces and quotes around them are dropped.
_ID_SPLIT = re.compile("[,\u060c\u066b]")
# The guide's own words: "separated by comma (٫)" (its comma glyph is U+066B).
_GUIDE_ID_SPLIT = re.compile("[,\u066b]")


@attrs.define
class _Message:
    message_id: str
    recipient: str
    sent_at: float
    timeline: Timeline


class NeginFake:
    """A stateful fake of Negin's ``wsSend.ashx`` and ``wsStates.ashx``.

    Args:
        core: The account, credit, ids, opt-out list, clock and ledger shared with the
            other half of :class:`~smsgate.testing.FakeProvider`.

    Attributes:
        lines: The account's own lines (``line`` and ``line2`` must be one of them).
        service_line: The number Negin's shared service line sends from (``type=2``).
        chelcheleh_line: The number reported for a send that went through Chelcheleh.
        default_timeline: The state timeline of every message without its own.
        timelines: Per-recipient timelines (E.164 -> steps); see :meth:`set_timeline`.
        account_status: ``16`` (inactive) or ``17`` (expired) to refuse every call.
        unknown_ids: How a states call answers an id this account never issued:
            ``"status_24"``, ``"minus_one"`` or ``"omit"``.
        expire_after: Seconds after which a message's state reads -1 (Magfa: "sent more
            than a day ago"), or ``None`` to keep states forever.
        min_interval: Answer 409 to a send less than this many seconds after the previous
            one, or ``None``.
        messages: ``msg`` text per status code (swap it to test that clients ignore it).
        mobile_as_number: Send ``data.mobile`` as a JSON number (a C# sample, §3.3)
            instead of a string.
        data_as_strings: Send every ``data`` field as a string (a C# client's later
            typing, §3.3).
        error_data: ``data`` on errors: ``"null"``, ``"empty"`` (``{}``) or ``"absent"``.
        states_as_lists: Send ``msgIds``/``states`` as JSON lists instead of comma strings.
        html_without_user_agent: Answer an HTML page to requests with no User-Agent.
        received: The last requests' fields (lower-case keys, the password masked), each
            with ``"_path"`` and ``"_method"``, newest last.
        states_calls: How many ids each states call asked about, in order.
    """

    def __init__(self, core: FakeCore) -> None:
        self.core = core
        self.lines: set[str] = {"9830003300", "9830007485"}
        self.service_line = "9820003300"
        self.chelcheleh_line = "9810003300"
        self.default_timeline: Timeline = DEFAULT_TIMELINE
        self.timelines: dict[str, Timeline] = {}
        self.account_status: int | None = None
        self.unknown_ids: Literal["status_24", "minus_one", "omit"] = "status_24"
        self.expire_after: float | None = None
        self.min_interval: float | None = None
        self.messages: dict[int, str] = dict(_MESSAGES)
        self.mobile_as_number = False
        self.data_as_strings = False
        self.error_data: Literal["null", "empty", "absent"] = "null"
        self.states_as_lists = False
        self.html_without_user_agent = False
        self.received: collections.deque[dict[str, str]] = collections.deque(maxlen=1000)
        self.states_calls: list[int] = []
        self._issued: dict[str, _Message] = {}
        self._last_send: float | None = None
        # The loopback server answers from its own thread while tests read and script.
        self._lock = threading.Lock()

    @property
    def profile(self) -> str:
        """The shared core's profile (``FakeProvider(profile=...)``); this half follows
        ``"negin-guide"`` and is lenient under every other."""
        return self.core.profile

    @property
    def _guide(self) -> bool:
        return self.core.profile == GUIDE_PROFILE

    # -- scripting ---------------------------------------------------------------------

    def set_timeline(self, number: str, steps: Iterable[tuple[float, int]]) -> None:
        """Give every later message to ``number`` its own state timeline.

        Args:
            number: The recipient, in any accepted form.
            steps: ``(seconds after the send, state)`` pairs, e.g. ``[(0, 0), (3, 16)]``.
        """
        timeline = tuple(sorted((float(at), int(state)) for at, state in steps))
        if not timeline:
            raise ValueError("a timeline needs at least one step")
        self.timelines[normalize_msisdn(number)] = timeline

    def message_state(self, message_id: str) -> int:
        """The state code ``wsStates.ashx`` reports now for an id (-1 if never issued)."""
        with self._lock:
            message = self._issued.get(str(message_id))
        if message is None:
            return -1
        elapsed = self.core.clock() - message.sent_at
        if self.expire_after is not None and elapsed >= self.expire_after:
            return -1
        state = message.timeline[0][1]
        for at, code in message.timeline:
            if elapsed >= at:
                state = code
        return state

    def issued(self) -> list[str]:
        """Every message id this half has issued, in order."""
        with self._lock:
            return list(self._issued)

    # -- routing -------------------------------------------------------------------------

    def routes(self) -> list[BaseRoute]:
        """The Starlette routes of this half (paths matched without regard to case)."""
        return [
            _CaselessRoute(_SEND_PATHS, self._send),
            _CaselessRoute(_STATES_PATHS, self._states),
        ]

    async def _fields(self, request: Request) -> dict[str, str]:
        # ASP.NET's Request["name"] reads the query string first, then the form, and
        # ignores key case (§2). A JSON body has no form fields.
        # The guide profile reads only what the guide prints: POST parameters, by their
        # exact (lower-case) names.
        guide = self._guide
        fold = str if guide else str.lower
        fields: dict[str, str] = {}
        if not guide:
            for key, value in request.query_params.multi_items():
                fields.setdefault(fold(key), value)
        content_type = request.headers.get("content-type", "")
        if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
            async with request.form() as form:
                for key, item in form.multi_items():
                    if isinstance(item, str):  # uploaded files are not fields
                        fields.setdefault(fold(key), item)
        shown = {k: ("***" if k == "password" else v) for k, v in fields.items()}
        shown.update(_path=request.url.path, _method=request.method)
        with self._lock:
            self.received.append(shown)
        return fields

    def _reply(self, status: int, data: Any = None) -> Response:
        body: dict[str, Any] = {"status": status, "msg": self.messages.get(status, "ERROR")}
        if status >= 0:
            if self.error_data == "null":
                body["data"] = None
            elif self.error_data == "empty":
                body["data"] = {}
        else:
            body["data"] = data
        payload = json.dumps(body, ensure_ascii=False).encode("utf-8")
        # §2: always 200 with JSON; the error is in "status".
        return Response(payload, status_code=200, media_type="application/json; charset=utf-8")

    def _outside_guide(self, request: Request) -> Response | None:
        """What the guide profile answers to a request the guide does not describe."""
        if not self._guide:
            return None
        if not request.url.path.lower().startswith("/api/"):
            return PlainTextResponse("Not Found", status_code=404)
        if request.method != "POST":
            return PlainTextResponse("Method Not Allowed", status_code=405)
        return None

    async def _admit(self, request: Request) -> tuple[dict[str, str], Response | None]:
        """The request's fields, and the answer if it is refused before its own checks."""
        outside = self._outside_guide(request)
        if outside is not None:
            return {}, outside
        fields = await self._fields(request)
        return fields, self._refusal(request, fields)

    def _refusal(self, request: Request, fields: Mapping[str, str]) -> Response | None:
        """The answers every endpoint gives before looking at its own fields."""
        if self.html_without_user_agent and not request.headers.get("user-agent"):
            return HTMLResponse("<html><body><h1>Negin SMS panel</h1></body></html>")
        if not self.core.check_login(fields.get("username"), fields.get("password")):
            return self._reply(18)
        if self.account_status is not None:
            return self._reply(self.account_status)
        return None

    # -- wsSend.ashx ---------------------------------------------------------------------

    async def _send(self, request: Request) -> Response:
        fields, refusal = await self._admit(request)
        if refusal is not None:
            return refusal
        # Checks, in this order: credentials, account, type, line, number, text, credit,
        # opt-out (the inferred codes of §4).
        kind = fields.get("type", "").strip() or "0"
        if kind not in ("0", "1", "2"):
            return self._reply(20)
        line = fields.get("line", "").strip()  # an empty line counts as absent (a PHP client, §3.1)
        line2 = fields.get("line2", "").strip()
        if (kind != "2" and not line) or (line and line not in self.lines):
            return self._reply(2)
        if line2 and line2 not in self.lines:
            return self._reply(2)
        mobile = fields.get("mobile", "")
        try:
            if "," in mobile:
                raise InvalidRecipientError("one recipient per request")
            recipient = normalize_msisdn(mobile.translate(_DIGITS))
        except InvalidRecipientError:
            return self._reply(1)
        text = fields.get("message", "")
        if not text:
            return self._reply(13)
        now = self.core.clock()
        with self._lock:
            too_soon = (
                self.min_interval is not None
                and self._last_send is not None
                and now - self._last_send < self.min_interval
            )
            self._last_send = now
        if too_soon:
            return self._reply(409)
        route, used = self._route(kind, line, line2, recipient)
        parts = max(1, segments(text).parts)
        if route is None:
            # Not enough credit wins over the opt-out refusal (check 7 before check 8),
            # and nothing is charged for a refused send.
            enough = self.core.credit >= self.core.price_per_part * parts
            return self._reply(27 if enough else 14)
        if not self.core.try_charge(parts):
            return self._reply(14)
        message_id = self.core.next_id()
        timeline = self.timelines.get(recipient, self.default_timeline)
        with self._lock:
            self._issued[message_id] = _Message(message_id, recipient, now, timeline)
        self.core.record(
            [
                LedgerEntry(
                    provider="negin",
                    message_id=message_id,
                    recipient=recipient,
                    text=text,
                    sender=used,
                    at=now,
                    parts=parts,
                    route=route,
                )
            ]
        )
        return self._reply(-1, self._send_data(message_id, used, recipient))

    def _route(self, kind: str, line: str, line2: str, recipient: str) -> tuple[str | None, str]:
        """Which route sends, and from which number (§3.2)."""
        if kind == "2" and not line:
            return "service_line", self.service_line  # scenario 2
        if not self.core.is_opted_out(recipient):
            return "line", line
        if line2:
            return "line2", line2  # scenario 3
        if kind == "1":
            return "chelcheleh", self.chelcheleh_line  # scenario 4
        if kind == "2":
            return "service_line", self.service_line  # scenario 5
        return None, line

    def _send_data(self, message_id: str, line: str, recipient: str) -> dict[str, Any]:
        mobile = recipient[1:]  # the 98… form the real service echoes
        if self._guide:
            # The guide's sample: {"message_id": 3403, "line": 9830003300,
            # "mobile": "989395213300"}.
            return {"message_id": int(message_id), "line": int(line), "mobile": mobile}
        if self.data_as_strings:
            return {"message_id": message_id, "line": line, "mobile": mobile}
        return {
            "message_id": int(message_id),
            "line": int(line),
            "mobile": int(mobile) if self.mobile_as_number else mobile,
        }

    # -- wsStates.ashx -------------------------------------------------------------------

    async def _states(self, request: Request) -> Response:
        fields, refusal = await self._admit(request)
        if refusal is not None:
            return refusal
        ids = [
            piece.strip().strip("\"'").strip()
            for piece in (_GUIDE_ID_SPLIT if self._guide else _ID_SPLIT).split(
                fields.get("message_ids", "")
            )
        ]
        ids = [i.translate(_DIGITS) for i in ids if i]
        with self._lock:
            self.states_calls.append(len(ids))
            known = {i for i in ids if i in self._issued}
        if not ids:
            return self._reply(24)
        if self.unknown_ids == "status_24" and len(known) < len(ids):
            return self._reply(24)
        pairs = [
            (i, self.message_state(i)) for i in ids if i in known or self.unknown_ids != "omit"
        ]
        return self._reply(-1, self._states_data(pairs))

    def _states_data(self, pairs: Sequence[tuple[str, int]]) -> dict[str, Any]:
        if self._guide:
            # Comma-joined strings, and the guide's 18 for "not received by the operator".
            return {
                "msgIds": ",".join(i for i, _ in pairs),
                "states": ",".join(str(18 if s == 16 else s) for _, s in pairs),
            }
        if self.states_as_lists:
            return {"msgIds": [int(i) for i, _ in pairs], "states": [s for _, s in pairs]}
        return {
            "msgIds": ",".join(i for i, _ in pairs),
            "states": ",".join(str(s) for _, s in pairs),
        }


Endpoint = Callable[[Request], Awaitable[Response]]


class _CaselessRoute(BaseRoute):
    """A route for a fixed set of paths compared without case, as IIS does (§2)."""

    def __init__(self, paths: Iterable[str], endpoint: Endpoint) -> None:
        self._paths = frozenset(p.lower() for p in paths)
        self._endpoint = endpoint

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] != "http" or scope["path"].lower() not in self._paths:
            return Match.NONE, {}
        return Match.FULL, {}

    def url_path_for(self, name: str, /, **path_params: Any) -> Any:
        raise NoMatchFound(name, path_params)

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        if request.method not in ("GET", "POST", "HEAD"):
            response: Response = PlainTextResponse("Method Not Allowed", status_code=405)
        else:
            response = await self._endpoint(request)
        await response(scope, receive, send)
