"""Every response parser of both backends, fed arbitrary answers: a value or a typed error.

Each public operation of ``IppanelGateway`` and ``NeginGateway`` runs against an
``httpx.MockTransport`` that answers whatever hypothesis draws: raw bytes, arbitrary JSON,
JSON shaped like each provider's envelopes (with codes it knows and codes it does not, data
encoded once or twice, a byte-order mark), under statuses 200/4xx/5xx and various content
types. The promise (RELIABILITY.md 6): the call returns a value or raises an
``SmsGateError``; any other exception fails the test.
"""

from __future__ import annotations

import codecs
import json
import os
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import smsgate

PASSWORD = "hyp0thesis-pass"
EXAMPLES = int(os.environ.get("SMSGATE_PARSER_EXAMPLES", "60"))

# -- answers -------------------------------------------------------------------------------

_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=30)
    | st.sampled_from(
        ["0", "-1", "1", "8", "16", "27", "+989121234567:delivered", "null", "Finish"]
    )
)
json_values = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=12), inner, max_size=5)
    ),
    max_leaves=15,
)
_codes = st.sampled_from([0, "0", 1, 2, 3, 5, 27, 99, 962, 970, 992, 1006, -1, "abc", None, 0.5])
_ippanel_keys = st.sampled_from(
    ["statusMessage", "validMessage", "id", "title", "number", "code", "name", "count"]
)
_delivery_items = st.lists(
    st.tuples(
        st.sampled_from(["+989121234567", "09351234567", "x", ""]),
        st.sampled_from(["notsync", "send", "pending", "delivered", "failed", "discarded", "??"]),
    ).map(lambda t: f"{t[0]}:{t[1]}"),
    max_size=4,
)


def _maybe_twice(value: Any) -> st.SearchStrategy[Any]:
    return st.sampled_from([value, json.dumps(value)])


_ids = st.one_of(
    st.integers(min_value=-5, max_value=10**14),
    st.text(alphabet="0123456789", min_size=1, max_size=16),
    json_values,
)
ippanel_success = st.tuples(st.sampled_from([0, "0"]), _ids).map(list)
negin_success = st.fixed_dictionaries(
    {
        "status": st.sampled_from([-1, "-1", -2]),
        "msg": st.just("success"),
        "data": st.fixed_dictionaries(
            {},
            optional={
                "message_id": _ids,
                "line": st.one_of(st.just(983000330000), st.just("9830003300"), json_values),
                "mobile": st.one_of(st.just(989121234567), st.just("989121234567"), json_values),
            },
        ),
    }
)
ippanel_shaped = st.one_of(
    ippanel_success,
    st.tuples(_codes, json_values).map(list),
    st.tuples(_codes, json_values.map(json.dumps)).map(list),  # data encoded a second time
    st.tuples(st.just(0), _delivery_items.flatmap(_maybe_twice)).map(list),
    st.dictionaries(_ippanel_keys, json_values, max_size=3),
    st.dictionaries(
        st.sampled_from(["status", "data"]),
        st.dictionaries(st.sampled_from(["code", "errorMessage", "level"]), json_values),
    ),
    st.integers(min_value=-5, max_value=10**12),
)
_state_ids = st.one_of(
    st.permutations(["1", "2", "3"]),  # what states(["1", "2", "3"]) asks for
    st.just(["35702617027"]),  # what delivery("35702617027") asks for
    st.lists(st.sampled_from(["1", "2", "3", "35702617027", "x", ""]), max_size=4),
)
_state_value = st.sampled_from(["-1", "0", "1", "2", "4", "8", "16", "", "z"])


@st.composite
def _states_data(draw: st.DrawFn) -> dict[str, Any]:
    ids = draw(_state_ids)
    # Mostly one state per id (the success path); sometimes a length mismatch.
    size = draw(st.one_of(st.just(len(ids)), st.integers(min_value=0, max_value=4)))
    values = draw(st.lists(_state_value, min_size=size, max_size=size))
    joined = draw(st.booleans())
    return {
        "msgIds": ",".join(ids) if joined else ids,
        "states": ",".join(values) if joined else values,
    }


negin_states_success = st.fixed_dictionaries(
    {
        "status": st.sampled_from([-1, "-1"]),
        "msg": st.just("success"),
        "data": _states_data(),
    }
)
negin_shaped = st.one_of(
    negin_success,
    negin_states_success,
    st.fixed_dictionaries(
        {"status": _codes, "msg": st.text(max_size=10)},
        optional={"data": json_values},
    ),
    st.fixed_dictionaries(
        {
            "status": st.sampled_from([-1, "-1", 0]),
            "data": st.fixed_dictionaries(
                {},
                optional={
                    "msgIds": st.one_of(
                        st.text(alphabet="0123456789,، ", max_size=20),
                        st.lists(json_values, max_size=4),
                    ),
                    "states": st.one_of(
                        st.text(alphabet="-0123456789,", max_size=20),
                        st.lists(json_values, max_size=4),
                    ),
                    "message_id": json_values,
                },
            ),
        }
    ),
)


def _encode(value: Any, bom: bool) -> bytes:
    body = json.dumps(value, ensure_ascii=False).encode("utf-8")
    return codecs.BOM_UTF8 + body if bom else body


def _json_body(values: st.SearchStrategy[Any]) -> st.SearchStrategy[bytes]:
    return st.tuples(values, st.booleans()).map(lambda t: _encode(*t))


_literals = st.sampled_from(
    [b"", b"null", b"[]", b"{}", b"<html>503</html>", b"[0", b'[0,"1"', b'{"status":-1']
)
#: Per backend: raw bytes, any JSON, the provider's shapes, and (so that the success
#: parsers are reached often) its success shape once more.
BODIES: dict[str, st.SearchStrategy[bytes]] = {
    "ippanel": st.one_of(
        st.binary(max_size=200),
        _json_body(json_values),
        _json_body(ippanel_shaped),
        _json_body(ippanel_success),
        _json_body(negin_shaped),
        _literals,
    ),
    "negin": st.one_of(
        st.binary(max_size=200),
        _json_body(json_values),
        _json_body(negin_shaped),
        _json_body(negin_success),
        _json_body(negin_states_success),
        _json_body(ippanel_shaped),
        _literals,
    ),
}
statuses = st.sampled_from([200, 200, 200, 200, 201, 204, 302, 400, 404, 409, 429, 500, 502, 503])
content_types = st.sampled_from(
    ["application/json", "text/html; charset=utf-8", "text/plain", "application/octet-stream"]
)

# -- the operations ------------------------------------------------------------------------

Op = Callable[[Any], Awaitable[Any]]

IPPANEL_OPS: dict[str, Op] = {
    "send": lambda gw: gw.send(["09121234567", "09351234567"], "hi"),
    "send_pattern": lambda gw: gw.send_pattern(
        "09121234567", pattern_code="abc123", values={"name": "Ali"}
    ),
    "credit": lambda gw: gw.credit(),
    "delivery": lambda gw: gw.delivery("562892393"),
    "message_status": lambda gw: gw.message_status("562892393"),
    "phonebooks.list": lambda gw: gw.phonebooks.list(),
    "phonebooks.send": lambda gw: gw.phonebooks.send([12], "hi"),
    "inbox.list": lambda gw: gw.inbox.list(),
    "packages.list": lambda gw: gw.packages.list(),
    "accounts.create": lambda gw: gw.accounts.create(username="sub", password="sub-pass"),
    "postal.count": lambda gw: gw.postal.count("1234567890"),
    "postal.areas": lambda gw: gw.postal.areas(),
    "postal.send": lambda gw: gw.postal.send("1234567890", "hi"),
    "jobs.list": lambda gw: gw.jobs.list(),
    "jobs.trends": lambda gw: gw.jobs.trends(3),
    "jobs.count": lambda gw: gw.jobs.count([1, 2]),
    "jobs.send": lambda gw: gw.jobs.send(3, [1, 2], "hi"),
}
NEGIN_OPS: dict[str, Op] = {
    "send": lambda gw: gw.send("09121234567", "hi"),
    "send several": lambda gw: gw.send(["09121234567", "09351234567"], "hi"),
    "send_service": lambda gw: gw.send_service("09121234567", "1234"),
    "delivery": lambda gw: gw.delivery("35702617027"),
    "states": lambda gw: gw.states(["1", "2", "3"]),
}


def _ippanel(client: httpx.AsyncClient, variant: str) -> Any:
    return smsgate.IppanelGateway(
        username="user",
        password=PASSWORD,
        sender="+983000505",
        base_url="https://panel.example",
        http_client=client,
        pattern_endpoint=variant,  # type: ignore[arg-type]
    )


def _negin(client: httpx.AsyncClient, variant: str) -> Any:
    return smsgate.NeginGateway(
        username="user",
        password=PASSWORD,
        line="9830003300",
        base_url="https://sms.example",
        http_client=client,
    )


CASES: list[tuple[str, Callable[[httpx.AsyncClient, str], Any], str, Op]] = [
    *(("ippanel", _ippanel, "patterns/pattern", op) for op in IPPANEL_OPS.values()),
    ("ippanel", _ippanel, "sendPattern", IPPANEL_OPS["send_pattern"]),
    ("ippanel", _ippanel, "api/select", IPPANEL_OPS["send_pattern"]),
    *(("negin", _negin, "", op) for op in NEGIN_OPS.values()),
]
IDS = [
    *(f"ippanel-{name}" for name in IPPANEL_OPS),
    "ippanel-send_pattern-sendPattern",
    "ippanel-send_pattern-api/select",
    *(f"negin-{name}" for name in NEGIN_OPS),
]


async def _run(
    build: Callable[[httpx.AsyncClient, str], Any],
    variant: str,
    op: Op,
    status: int,
    body: bytes,
    content_type: str,
) -> tuple[int, BaseException | None]:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return httpx.Response(status, content=body, headers={"content-type": content_type})

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        gw = build(client, variant)
        try:
            await op(gw)
        except smsgate.SmsGateError:
            pass
        except Exception as exc:  # the promise is broken: report it with the input
            return calls, exc
        finally:
            await gw.aclose()
    return calls, None


@pytest.mark.parametrize(("backend", "build", "variant", "op"), CASES, ids=IDS)
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    database=None,
)
@given(data=st.data(), status=statuses, content_type=content_types)
def test_any_answer_gives_a_value_or_a_typed_error(
    backend: str,
    build: Callable[[httpx.AsyncClient, str], Any],
    variant: str,
    op: Op,
    data: st.DataObject,
    status: int,
    content_type: str,
) -> None:
    """Arbitrary answers to every operation: a value or an SmsGateError, never another error."""
    body = data.draw(BODIES[backend], label="body")
    calls, unexpected = anyio.run(_run, build, variant, op, status, body, content_type)
    assert calls >= 1, "the operation never reached the transport: the test would be vacuous"
    assert unexpected is None, f"{type(unexpected).__name__}: {unexpected!r} for body {body!r}"
