"""A respx router that answers like the ippanel op-style service, for unit tests without a server.

Plug it in without patching anything::

    router = ippanel_router()
    client = httpx.AsyncClient(transport=httpx.MockTransport(router.async_handler))
    gw = IppanelGateway(username="u", password="p", sender="+983000505", http_client=client)
    ...
    request = router["send"].calls.last.request   # what the gateway sent
    form_fields(request)["to"]                     # '["09121111111"]'

One named route per op of ``/services.jspd`` (``"send"``, ``"sendPattern"``, ``"credit"``,
``"delivery"``, ``"checkmessage"``, ``"booklist"``, ``"booksend"``, ``"inboxlist"``,
``"accesslist"``, ``"newuser"``, ``"postalcodecount"``, ``"postalcodearea"``,
``"postalcodesend"``, ``"jobslist"``, ``"jobstrenlist"``, ``"jobscount"``, ``"jobssend"``),
plus ``"patterns"`` (``/patterns/pattern``) and ``"select"`` (``/api/select`` ``op=pattern``).
Answers follow ``docs/protocols/ippanel.md`` "Envelope" and "The fake". The default routes
remember the numbers of each send, so ``delivery`` and ``checkmessage`` answer for the ids
they issued (and ``null`` / 456 for others). Written from the protocol page, not from the
client (R16).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import parse_qs

import httpx
import respx

from .._phone import normalize_msisdn
from ..exceptions import InvalidRecipientError

__all__ = ["FIRST_BULK_ID", "OPS", "form_fields", "ippanel_router", "query_fields"]

#: The first bulk id the default send answers give (then counting up), as in S2's sample.
FIRST_BULK_ID = 562892393

#: The ``op`` values routed on ``/services.jspd``, each a route of the same name.
OPS = (
    "send",
    "sendPattern",
    "credit",
    "delivery",
    "checkmessage",
    "booklist",
    "booksend",
    "inboxlist",
    "accesslist",
    "newuser",
    "postalcodecount",
    "postalcodearea",
    "postalcodesend",
    "jobslist",
    "jobstrenlist",
    "jobscount",
    "jobssend",
)

#: A canned answer: a JSON value (the decoded body: ``[0, "123"]``, ``None`` for ``null``,
#: an object), an ``httpx.Response``, an exception (instance or class) to raise, or a
#: function of the request returning an ``httpx.Response`` (plain or async).
Responder = Any


def form_fields(request: httpx.Request) -> dict[str, str]:
    """The urlencoded form fields of a request (the last value of each key)."""
    parsed = parse_qs(request.content.decode("utf-8"), keep_blank_values=True)
    return {key: values[-1] for key, values in parsed.items()}


def query_fields(request: httpx.Request) -> dict[str, str]:
    """The query-string parameters of a request (the last value of each key)."""
    return dict(request.url.params.items())


def _json_response(payload: Any) -> httpx.Response:
    body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
    return httpx.Response(
        200, content=body, headers={"content-type": "application/json; charset=utf-8"}
    )


def _numbers(value: str) -> list[str]:
    try:
        decoded = json.loads(value) if value.strip().startswith("[") else [value]
    except ValueError:
        return []
    out = []
    for item in decoded if isinstance(decoded, list) else []:
        try:
            out.append(normalize_msisdn(str(item)))
        except InvalidRecipientError:
            continue
    return out


def ippanel_router(
    *,
    base_url: str = "https://ippanel.com",
    responses: Mapping[str, Responder] | None = None,
    delivery_status: str = "delivered",
    assert_all_called: bool = False,
) -> respx.Router:
    """A respx router for :class:`~smsgate.IppanelGateway` unit tests.

    Args:
        base_url: The origin the gateway under test uses (a white-label host, say).
        responses: Answers to use instead of the defaults, by route name (see the module
            docstring), e.g. ``{"credit": [0, "1250/5"], "send": [962, "..."]}``.
        delivery_status: The status the default ``delivery`` answer gives every number.
        assert_all_called: Let respx check that every route was called.

    Returns:
        The router; ``router["send"].calls`` lists the requests made.
    """
    router = respx.Router(base_url=base_url, assert_all_called=assert_all_called)
    ids = itertools.count(FIRST_BULK_ID)
    sent: dict[str, list[str]] = {}

    def issue(numbers: list[str]) -> str:
        bulk = str(next(ids))
        sent[bulk] = numbers
        return bulk

    def send(request: httpx.Request) -> httpx.Response:
        fields = form_fields(request)
        return _json_response([0, issue(_numbers(fields.get("to", "")))])

    def bulk_send(request: httpx.Request) -> httpx.Response:
        return _json_response([0, issue([])])

    def pattern_url(request: httpx.Request) -> httpx.Response:
        numbers = _numbers(query_fields(request).get("to", ""))
        return _json_response(int(issue(numbers[:1])))  # "Pattern endpoints": a bare number

    def pattern_select(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content.decode("utf-8"))
        return _json_response(int(issue(_numbers(str(body.get("toNum", ""))))))

    def delivery(request: httpx.Request) -> httpx.Response:
        numbers = sent.get(form_fields(request).get("uinqid", ""))
        if numbers is None:
            return _json_response(None)  # "delivery": unknown bulk id
        items = [f"{n}:{delivery_status}" for n in numbers]
        return _json_response([0, json.dumps(items)])

    def checkmessage(request: httpx.Request) -> httpx.Response:
        if form_fields(request).get("messageid", "") not in sent:
            return _json_response([456, "Invalid bulk code"])
        return _json_response({"statusMessage": "Finish", "validMessage": "approve"})

    def canned(payload: Any) -> Callable[[httpx.Request], httpx.Response]:
        return lambda request: _json_response(payload)

    defaults: dict[str, Callable[[httpx.Request], httpx.Response]] = {
        "send": send,
        "sendPattern": send,
        "credit": canned([0, "10929800.0"]),
        "delivery": delivery,
        "checkmessage": checkmessage,
        "booklist": canned([0, json.dumps([{"id": "17", "title": "Customers"}])]),
        "booksend": bulk_send,
        "inboxlist": canned(
            [
                0,
                json.dumps(
                    [
                        {
                            "id": "9",
                            "from": "+989121234567",
                            "to": "+983000505",
                            "message": "سلام",
                            "time": "2024-05-01 10:00:00",
                        }
                    ],
                    ensure_ascii=False,
                ),
            ]
        ),
        "accesslist": canned(
            [0, json.dumps([{"code": "3", "title": "Gold", "price": "1500000", "discount": "5"}])]
        ),
        "newuser": canned([0, "5001"]),
        "postalcodecount": canned([0, "120"]),
        "postalcodearea": canned([0, json.dumps([{"code": "14155", "title": "Yusef Abad"}])]),
        "postalcodesend": bulk_send,
        "jobslist": canned([0, json.dumps([{"id": "1", "title": "Medicine"}])]),
        "jobstrenlist": canned([0, json.dumps([{"id": "11", "title": "Dentistry"}])]),
        "jobscount": canned([0, "42"]),
        "jobssend": bulk_send,
        "patterns": pattern_url,
        "select": pattern_select,
    }
    overrides = dict(responses or {})
    unknown = set(overrides) - set(defaults)
    if unknown:
        raise ValueError(f"no such ippanel route: {', '.join(sorted(unknown))}")

    def effect(name: str) -> Any:
        return _effect(overrides[name]) if name in overrides else defaults[name]

    for op in OPS:
        router.post(path="/services.jspd", data__contains={"op": op}, name=op).mock(
            side_effect=effect(op)
        )
    router.route(method__in=["GET", "POST"], path="/patterns/pattern", name="patterns").mock(
        side_effect=effect("patterns")
    )
    router.post(path="/api/select", json__op="pattern", name="select").mock(
        side_effect=effect("select")
    )
    return router


def _effect(spec: Responder) -> Any:
    if isinstance(spec, httpx.Response):
        answer = spec
        # The same answer every time, as a fresh Response per call.
        return lambda request: httpx.Response(
            answer.status_code, headers=answer.headers, content=answer.content
        )
    if isinstance(spec, BaseException) or (
        isinstance(spec, type) and issubclass(spec, BaseException)
    ):
        return spec
    if callable(spec):
        fn: Callable[[httpx.Request], httpx.Response | Awaitable[httpx.Response]] = spec
        return fn
    payload = spec
    return lambda request: _json_response(payload)
