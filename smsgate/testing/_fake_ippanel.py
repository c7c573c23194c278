"""The ippanel / Kapanel op-style half of the fake provider.

Written from ``docs/protocols/ippanel.md`` (section names below are that page's headings),
never from the client (STYLE R16): it imports nothing from ``smsgate.backends``. It serves

* ``POST /services.jspd`` (endpoint A) and ``POST /api/select`` (endpoint B), every op of the
  seeds, parameters read from the query string, urlencoded and multipart forms (PHP-style
  ``to[]`` / ``input_data[name]`` keys included) and JSON bodies, ``op`` matched
  case-insensitively with the aliases of "The fake";
* ``GET|POST /patterns/pattern`` (endpoint C, "Pattern endpoints"), parameters in the query
  string.

Answers follow "The fake": ``[0, "<bulk id>"]`` for sends, ``[0, "<rial>.0"]`` for credit,
``[0, "<JSON string>"]`` for lists, an object for ``checkmessage``, ``null`` for the delivery
of an unknown bulk, a bare integer for pattern sends on endpoints B and C, and
``[<code>, "<English text>"]`` for errors; always HTTP 200, ``application/json``.

``FakeCore.profile`` makes it strict the way one document is (docs/protocols/ippanel.md,
"The fake's profiles"): ``"ippanel-pdf"`` reads the bulk id only from ``uinqid``, knows only
``joblist`` and answers ``delivery`` with the bare array the PDF prints; ``"kapanel"`` reads
only ``Uniqid``, knows only ``Jobslist`` and prints delivery numbers with Persian digits as the
Kapanel pages do. Both answer a wrong login on ``delivery`` with the English text alone, as
the documents show it. ``"lenient"`` (and ``"negin-guide"``, which concerns the other half)
accept every spelling.

The request reading, aliases, answer writing and fixed targeting data are in
``_ippanel_wire``. This module stays one class (the panel's state and one handler per op of
the documents), a little over 500 lines: splitting the op handlers apart would scatter the
state they share.

State lives in the shared :class:`~smsgate.testing.FakeCore` (account, credit, ids, ledger,
clock) and here (lines, patterns, phonebooks, inbox, bulks with per-recipient delivery
timelines). Where the page guesses, the choice made is marked "inferred" in a comment.
"""

from __future__ import annotations

import json
import random
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import attrs
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from .._phone import normalize_msisdn
from .._segments import segments
from ..exceptions import InvalidRecipientError
from ._core import FakeCore, LedgerEntry
from ._ippanel_wire import (
    _AREAS,
    _BULK_FIELD,
    _JOBS,
    _JOBS_OP,
    _OPS,
    _PERSIAN,
    _TRENDS,
    TEHRAN,
    TEXTS,
    RawText,
    _error,
    _json,
    _line_key,
    _list,
    _numbers,
    _Params,
    _parse_time,
    _postal_numbers,
    _read_params,
    _trend_job,
    _trend_numbers,
    _values,
)

__all__ = ["TEXTS", "FakePattern", "IppanelFake"]

PROVIDER = "ippanel"
_VARIABLE = re.compile(r"%\s*([^%\s]+)\s*%")
_FINAL = frozenset({"delivered", "failed", "discarded"})


@attrs.define(kw_only=True)
class FakePattern:
    """A pattern registered in the fake panel.

    Attributes:
        code: The pattern code.
        text: The text with ``%name%`` variables.
        active: Inactive patterns answer 996.
        allowed: Patterns of another account answer 997.
    """

    code: str
    text: str
    active: bool = True
    allowed: bool = True

    @property
    def variables(self) -> set[str]:
        """The variable names in the text."""
        return set(_VARIABLE.findall(self.text))

    def render(self, values: Mapping[str, str]) -> str:
        """The text with every variable replaced."""
        return _VARIABLE.sub(lambda m: values.get(m.group(1), m.group(0)), self.text)


@attrs.define(kw_only=True)
class _Recipient:
    # One recipient's timeline ("Delivery statuses", "The fake"): notsync until
    # ``sent_at``, send until ``pending_at``, pending until ``final_at``, then ``final``.
    # Opted-out numbers are discarded by the operator at ``pending_at``.
    msisdn: str
    sent_at: float
    pending_at: float
    final_at: float
    final: str

    def status(self, now: float) -> str:
        if now < self.sent_at:
            return "notsync"
        if self.final == "discarded":
            return "send" if now < self.pending_at else "discarded"
        if now < self.pending_at:
            return "send"
        if now < self.final_at:
            return "pending"
        return self.final


@attrs.define(kw_only=True)
class _Bulk:
    id: str
    op: str
    text: str
    sender: str
    created: float
    recipients: list[_Recipient]


@attrs.define(kw_only=True)
class _Scripted:
    code: int
    text: str
    op: str | None
    remaining: int


class IppanelFake:
    """The ippanel half of :class:`~smsgate.testing.FakeProvider`.

    Attributes:
        lines: The sender lines the account owns (others answer 3).
        max_recipients: Recipients one send may carry (more answer 98).
        send_window: Refuse non-pattern sends outside 08:00-23:00 Tehran (992); off by
            default so that tests do not depend on the hour.
        wall_clock: The wall time for ``send_window`` and scheduled sends (``time``).
        delays: Seconds from a send to ``send``, to ``pending`` and to the final state.
        jitter: Up to this many seconds (seeded) added to each recipient's final step;
            every recipient is final within ``sum(delays[-1:]) + jitter`` (15 s by default).
        failure_rate: The share of recipients that end ``failed`` (seeded draw).
        undeliverable: Numbers (E.164) that always end ``failed``.
        credit_mark: The decimal mark of the credit answer (``"."`` or ``"/"``, "credit").
        validation: ``validMessage`` of ``checkmessage`` (``approve``/``cancel``/``notconfirm``).
        reseller: Whether ``newuser`` is allowed (964 otherwise).
        patterns: The registered patterns, by code.
    """

    def __init__(self, core: FakeCore) -> None:
        self.core = core
        self.lines: set[str] = {"+983000505", "+9810001234", "+985000125475"}
        self.max_recipients = 100
        self.send_window = False
        self.wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC)
        self.delays: tuple[float, float, float] = (1.0, 3.0, 10.0)
        self.jitter = 5.0
        self.failure_rate = 0.0
        self.undeliverable: set[str] = set()
        self.credit_mark = "."
        self.validation = "approve"
        self.reseller = True
        self.patterns: dict[str, FakePattern] = {}
        self.users: dict[str, str] = {}
        self._phonebooks: dict[str, tuple[str, list[str]]] = {}
        self._inbox: list[dict[str, Any]] = []
        self._bulks: dict[str, _Bulk] = {}
        self._scripted: list[_Scripted] = []
        self._rng = random.Random(core.seed)
        self._lock = threading.RLock()
        self._book_ids = iter(range(1001, 10**9))
        self._inbox_ids = iter(range(1, 10**9))
        self.add_pattern("ybnldnpo73", "کد تایید شما: %code%")
        self.add_pattern("welcome1", "%name% عزیز به ippanel.com خوش آمدید")

    # -- scripting -------------------------------------------------------------------

    def add_pattern(
        self, code: str, text: str, *, active: bool = True, allowed: bool = True
    ) -> FakePattern:
        """Register a pattern (``%name%`` variables), like creating one in the panel."""
        pattern = FakePattern(code=code, text=text, active=active, allowed=allowed)
        with self._lock:
            self.patterns[code] = pattern
        return pattern

    def add_line(self, line: str) -> None:
        """Give the account another sender line."""
        with self._lock:
            self.lines.add(line)

    def add_phonebook(self, title: str, numbers: Iterable[str]) -> str:
        """Create a phonebook; returns its id."""
        msisdns = [normalize_msisdn(n) for n in numbers]
        with self._lock:
            book_id = str(next(self._book_ids))
            self._phonebooks[book_id] = (title, msisdns)
        return book_id

    def add_inbound(self, sender: str, text: str, *, line: str = "+983000505") -> None:
        """A message received on one of the account's lines (unread until ``inboxlist``)."""
        when = self.wall_clock().astimezone(TEHRAN).strftime("%Y-%m-%d %H:%M:%S")
        with self._lock:
            self._inbox.append(
                {
                    "id": next(self._inbox_ids),
                    "from": normalize_msisdn(sender),
                    "to": line,
                    "message": text,
                    "time": when,
                }
            )

    def fail_next(
        self, code: int, text: str | None = None, *, op: str | None = None, times: int = 1
    ) -> None:
        """Answer the next ``times`` requests (of ``op`` only, if given) with ``[code, text]``.

        ``op`` takes the wire names and aliases (``"send"``, ``"sendPattern"``,
        ``"joblist"``...); ``"pattern"`` covers all three pattern variants.
        """
        canonical = None if op is None else _OPS.get(op.lower(), op.lower())
        with self._lock:
            self._scripted.append(
                _Scripted(
                    code=code,
                    text=text if text is not None else TEXTS.get(code, "Error"),
                    op=canonical,
                    remaining=times,
                )
            )

    # -- reading the state (tests, the webhook pusher) ---------------------------------

    def bulks(self) -> list[str]:
        """Every bulk id issued, oldest first."""
        with self._lock:
            return list(self._bulks)

    def bulk_states(self, bulk_id: str) -> list[tuple[str, str]]:
        """Each recipient (E.164) of a bulk with its delivery status now.

        Raises:
            KeyError: For a bulk id the fake never issued.
        """
        now = self.core.clock()
        with self._lock:
            bulk = self._bulks[str(bulk_id)]
            return [(r.msisdn, r.status(now)) for r in bulk.recipients]

    # -- ASGI ------------------------------------------------------------------------

    def routes(self) -> list[BaseRoute]:
        """The Starlette routes of the three endpoints ("Endpoints": A, B, C)."""
        return [
            Route("/services.jspd", self._services, methods=["POST"]),
            Route("/api/select", self._select, methods=["POST"]),
            Route("/patterns/pattern", self._patterns, methods=["GET", "POST"]),
        ]

    async def _services(self, request: Request) -> Response:
        return _json(self.answer(await _read_params(request), endpoint="services"))

    async def _select(self, request: Request) -> Response:
        return _json(self.answer(await _read_params(request), endpoint="select"))

    async def _patterns(self, request: Request) -> Response:
        # "Pattern endpoints": the parameters travel in the query string; a body is ignored
        # (inferred), so the
        # query wins over anything posted.
        params = await _read_params(request, query_wins=True)
        return _json(self.answer(params, endpoint="patterns"))

    def answer(self, raw: Mapping[str, Any], *, endpoint: str = "services") -> Any:
        """The decoded JSON answer to one request's parameters (no HTTP involved).

        Args:
            raw: The request's parameters.
            endpoint: ``"services"``, ``"select"`` or ``"patterns"``.
        """
        params = _Params(raw)
        profile = self.core.profile
        if endpoint == "patterns":
            op = "pattern"
        else:
            wire_op = params.text("op").lower()
            op = _OPS.get(wire_op, wire_op)
            if op == "jobslist" and wire_op != _JOBS_OP.get(profile, wire_op):
                op = wire_op + " (not known to this panel)"  # one spelling only
        with self._lock:
            scripted = self._take_scripted(op)
            if scripted is not None:
                return [scripted.code, scripted.text]
            if not self.core.check_login(params.text("uname"), params.text("pass")):
                if op == "delivery" and profile in _BULK_FIELD:
                    # All three documents print this text, with no code, as the error of
                    # delivery (docs/protocols/ippanel.md, "delivery").
                    return RawText(TEXTS[962])
                return _error(962)
            handler = getattr(self, f"_op_{op}", None)
            if handler is None:
                # What the real service answers to an unknown op is not documented (inferred,
                # "The fake").
                return [-1, "Unknown operation"]
            result: Any = handler(params, endpoint)
            return result

    def _take_scripted(self, op: str) -> _Scripted | None:
        for scripted in self._scripted:
            if scripted.op is None or scripted.op == op:
                scripted.remaining -= 1
                if scripted.remaining <= 0:
                    self._scripted.remove(scripted)
                return scripted
        return None

    # -- ops -------------------------------------------------------------------------

    def _op_send(self, p: _Params, endpoint: str) -> Any:
        text = p.text("message")
        if not text:
            return _error(1)
        numbers = _numbers(p.get("to"))
        if not numbers:
            return _error(4)
        if len(numbers) > self.max_recipients:
            return _error(98)
        return self._accept(p, "send", text, numbers, bulk_window=True)

    def _op_booksend(self, p: _Params, endpoint: str) -> Any:
        text = p.text("message")
        if not text:
            return _error(1)
        ids = _list(p.get("bookid"))
        if ids is None:
            return _error(993)
        numbers: list[str] = []
        for book_id in ids:
            _title, members = self._phonebooks.get(str(book_id).strip(), ("", []))
            numbers.extend(n for n in members if n not in numbers)
        if not numbers:
            return _error(4)
        return self._accept(p, "booksend", text, numbers, bulk_window=True)

    def _op_postalcodesend(self, p: _Params, endpoint: str) -> Any:
        text = p.text("message")
        if not text:
            return _error(1)
        numbers = _postal_numbers(p.text("postalcode"), p.text("type"), p.text("gender"))
        if not numbers:
            return _error(4)
        return self._accept(p, "postalcodesend", text, numbers, bulk_window=True)

    def _op_jobssend(self, p: _Params, endpoint: str) -> Any:
        text = p.text("message")
        if not text:
            return _error(1)
        trends = _list(p.get("trendid")) or []
        job = p.text("jobsid")
        numbers = [n for t in trends if _trend_job(str(t)) == job for n in _trend_numbers(str(t))]
        if not numbers:
            return _error(4)
        return self._accept(p, "jobssend", text, numbers, bulk_window=True)

    def _op_pattern(self, p: _Params, endpoint: str) -> Any:
        pattern = self.patterns.get(p.text("pattern_code"))
        if pattern is None:
            return _error(971)
        if not pattern.active:
            return _error(996)
        if not pattern.allowed:
            return _error(997)
        values = _values(p.get("input_data"))
        if values is None or not pattern.variables <= set(values):
            return _error(970)
        numbers = _numbers(p.get("to"))
        if not numbers:
            return _error(972)
        # S2 ("Pattern endpoints"): a pattern goes to one number; "the rest are not sent".
        answer = self._accept(p, "pattern", pattern.render(values), numbers[:1], bulk_window=False)
        if endpoint == "services" or answer[0] != 0:
            return answer
        # "Pattern endpoints": endpoints C and B answer a bare number on success.
        return int(answer[1])

    def _accept(
        self, p: _Params, op: str, text: str, numbers: list[str], *, bulk_window: bool
    ) -> list[Any]:
        line = p.text("from")
        if not self._owns(line):
            return _error(3)
        now_wall = self.wall_clock()
        if bulk_window and self.send_window:
            hour = now_wall.astimezone(TEHRAN).hour
            if not 8 <= hour < 23:
                return _error(992)
        scheduled = p.text("time")
        if scheduled:
            when = _parse_time(scheduled)
            if when is None or when < now_wall:
                return _error(1006)
        parts = max(1, segments(text).parts)
        if not self.core.try_charge(parts * len(numbers)):
            return _error(5)
        bulk_id = self.core.next_id()
        now = self.core.clock()
        recipients = [self._timeline(n, now) for n in numbers]
        self._bulks[bulk_id] = _Bulk(
            id=bulk_id, op=op, text=text, sender=line, created=now, recipients=recipients
        )
        self.core.record(
            LedgerEntry(
                provider=PROVIDER,
                message_id=bulk_id,
                recipient=n,
                text=text,
                sender=line,
                at=now,
                parts=parts,
                route="pattern" if op == "pattern" else "line",
            )
            for n in numbers
        )
        # "The fake": the bulk id as a string.
        return [0, bulk_id]

    def _timeline(self, msisdn: str, now: float) -> _Recipient:
        to_send, to_pending, to_final = self.delays
        if self.core.is_opted_out(msisdn):
            final = "discarded"
        elif msisdn in self.undeliverable or (
            self.failure_rate and self._rng.random() < self.failure_rate
        ):
            final = "failed"
        else:
            final = "delivered"
        return _Recipient(
            msisdn=msisdn,
            sent_at=now + to_send,
            pending_at=now + to_pending,
            final_at=now + to_final + self._rng.uniform(0.0, self.jitter),
            final=final,
        )

    def _owns(self, line: str) -> bool:
        key = _line_key(line)
        return bool(key) and any(_line_key(own) == key for own in self.lines)

    def _op_credit(self, p: _Params, endpoint: str) -> Any:
        amount = format(self.core.credit, "f")
        if "." not in amount:
            amount += ".0"
        return [0, amount.replace(".", self.credit_mark)]

    def _op_delivery(self, p: _Params, endpoint: str) -> Any:
        profile = self.core.profile
        field = _BULK_FIELD.get(profile)
        bulk = self._bulks.get(p.text("uinqid") if field is None else p.exact(field))
        if bulk is None:
            return None  # the bare literal null: a wrong bulk code
        now = self.core.clock()
        items = [f"{r.msisdn}:{r.status(now)}" for r in bulk.recipients]
        if field is None:
            # What clients in the wild decode: the list JSON-encoded inside [0, "..."].
            return [0, json.dumps(items)]
        if profile == "kapanel" and items:
            # The Kapanel pages print the first number in Persian digits.
            number, _, status = items[0].rpartition(":")
            items[0] = f"{number.translate(_PERSIAN)}:{status}"
        return items  # all three documents print the bare array

    def _op_checkmessage(self, p: _Params, endpoint: str) -> Any:
        bulk = self._bulks.get(p.text("messageid"))
        if bulk is None:
            return _error(456)
        now = self.core.clock()
        done = all(r.status(now) in _FINAL for r in bulk.recipients)
        return {
            "statusMessage": "Finish" if done else "Interacting",
            "validMessage": self.validation,
        }

    def _op_booklist(self, p: _Params, endpoint: str) -> Any:
        # Numeric ids here, strings elsewhere: "send" does not pin the type down.
        books = [{"id": int(i), "title": t} for i, (t, _n) in self._phonebooks.items()]
        return [0, json.dumps(books, ensure_ascii=False)]

    def _op_inboxlist(self, p: _Params, endpoint: str) -> Any:
        # S2: "unread received messages"; listing marks them read (inferred).
        unread, self._inbox = self._inbox, []
        return [0, json.dumps(unread, ensure_ascii=False)]

    def _op_accesslist(self, p: _Params, endpoint: str) -> Any:
        # S2: code, title, price, discount; the wire shape is inferred ("Account ops").
        packages = [
            {"code": "1", "title": "برنزی", "price": "1500000", "discount": "0"},
            {"code": "2", "title": "نقره‌ای", "price": "3000000", "discount": "10"},
        ]
        return [0, json.dumps(packages, ensure_ascii=False)]

    def _op_newuser(self, p: _Params, endpoint: str) -> Any:
        if not self.reseller:
            return _error(964)
        uname = p.text("user_uname")
        password = p.text("user_pass")
        if not uname:
            return _error(303)
        if not re.fullmatch(r"[A-Za-z0-9_.]+", uname):
            return _error(301)
        if len(uname) < 5 or not re.fullmatch(r"[A-Za-z0-9]+", uname):
            return _error(1001)
        if uname in self.users or uname == self.core.username:
            return _error(304)
        if not password:
            return _error(317)
        if len(password) < 8 or uname.lower() in password.lower():
            return _error(1002)
        national_id = p.text("national_id")
        if national_id and not re.fullmatch(r"\d{10}", national_id):
            return _error(307)
        mobile = p.text("mobile")
        if not mobile:
            return _error(314)
        try:
            normalize_msisdn(mobile)
        except InvalidRecipientError:
            return _error(315)
        access = p.text("access_id")
        if access not in ("", "0", "1", "2"):
            return _error(316)
        user_id = self.core.next_id()
        self.users[uname] = user_id
        return [0, user_id]

    def _op_postalcodecount(self, p: _Params, endpoint: str) -> Any:
        numbers = _postal_numbers(p.text("postalcode"), p.text("type"), p.text("gender"))
        return [0, str(len(numbers))]

    def _op_postalcodearea(self, p: _Params, endpoint: str) -> Any:
        return [0, json.dumps(_AREAS, ensure_ascii=False)]

    def _op_jobslist(self, p: _Params, endpoint: str) -> Any:
        jobs = [{"id": job_id, "title": title} for job_id, title in _JOBS.items()]
        return [0, json.dumps(jobs, ensure_ascii=False)]

    def _op_jobstrenlist(self, p: _Params, endpoint: str) -> Any:
        job = p.text("jobsid")
        trends = [
            {"id": trend_id, "title": title}
            for trend_id, (job_id, title) in _TRENDS.items()
            if job_id == job
        ]
        return [0, json.dumps(trends, ensure_ascii=False)]

    def _op_jobscount(self, p: _Params, endpoint: str) -> Any:
        trends = _list(p.get("trendid")) or []
        return [0, str(sum(len(_trend_numbers(str(t))) for t in trends))]
