"""A respx router that answers like Negin's REST API, for unit tests without a server.

Plug it in without patching anything::

    router = negin_router()
    client = httpx.AsyncClient(transport=httpx.MockTransport(router.async_handler))
    gw = NeginGateway(username="u", password="p", line="9830003300", http_client=client)
    ...
    request = router["send"].calls.last.request   # what the gateway sent

Only POST is routed: a GET (which would put the password in the URL) is not mocked and
fails the test. Answers follow ``docs/protocols/negin.md`` §3.3 and §5.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any
from urllib.parse import parse_qs

import httpx
import respx

__all__ = ["negin_router"]

#: A canned answer: a JSON body (``{"data", "status", "msg"}``), a list of them answered
#: in turn, an ``httpx.Response``, an exception to raise (e.g. ``httpx.ReadTimeout``), or a
#: function of the request (plain or async: plug the router in with ``async_handler``).
Responder = (
    Mapping[str, Any]
    | Sequence[Mapping[str, Any] | httpx.Response | Exception]
    | httpx.Response
    | Exception
    | type[Exception]
    | Callable[[httpx.Request], httpx.Response | Awaitable[httpx.Response]]
)

_SEND = re.compile(r"(?i)^/(api|services)/wssend\.ashx$")
_STATES = re.compile(r"(?i)^/(api|services)/wsstates\.ashx$")
#: The first id the default send answer gives: beyond 32 bits, like the C# sample's real one
#: (docs/protocols/negin.md §3.3).
FIRST_ID = 35702617027
SERVICE_LINE = "9820003300"


def form_fields(request: httpx.Request) -> dict[str, str]:
    """The form fields of a request the gateway made (the last value of each key)."""
    parsed = parse_qs(request.content.decode("utf-8"), keep_blank_values=True)
    return {key: values[-1] for key, values in parsed.items()}


def negin_router(
    *,
    base_url: str = "https://sms.3300.ir",
    send: Responder | None = None,
    states: Responder | None = None,
    state: int = 1,
    assert_all_called: bool = False,
) -> respx.Router:
    """A respx router with the routes ``"send"`` (wsSend.ashx) and ``"states"`` (wsStates.ashx).

    Args:
        base_url: The origin the gateway under test uses.
        send: How wsSend answers. By default: success, with ids counting up from
            35702617027, ``line`` echoing the request's ``line`` (or a service
            line for ``type=2`` with no line) and ``mobile`` echoing the number.
        states: How wsStates answers. By default: every id asked about in ``state``.
        state: The state code of the default states answer.
        assert_all_called: Let respx check that both routes were called.

    Returns:
        The router; ``router["send"].calls`` lists the requests made.
    """
    router = respx.Router(base_url=base_url, assert_all_called=assert_all_called)
    ids = itertools.count(FIRST_ID)

    def default_send(request: httpx.Request) -> httpx.Response:
        fields = form_fields(request)
        line = fields.get("line") or SERVICE_LINE
        data = {"message_id": next(ids), "line": int(line), "mobile": fields.get("mobile", "")}
        return httpx.Response(200, json={"data": data, "status": -1, "msg": "success"})

    def default_states(request: httpx.Request) -> httpx.Response:
        asked = [i for i in form_fields(request).get("message_ids", "").split(",") if i]
        data = {"msgIds": ",".join(asked), "states": ",".join(str(state) for _ in asked)}
        return httpx.Response(200, json={"data": data, "status": -1, "msg": "success"})

    router.post(path__regex=_SEND, name="send").mock(side_effect=_effect(send, default_send))
    router.post(path__regex=_STATES, name="states").mock(
        side_effect=_effect(states, default_states)
    )
    return router


def _answer(item: Any) -> Any:
    if isinstance(item, Mapping):
        return httpx.Response(200, json=dict(item))
    return item


def _effect(spec: Responder | None, default: Callable[[httpx.Request], httpx.Response]) -> Any:
    if spec is None:
        return default
    if isinstance(spec, Mapping | httpx.Response):
        answer = _answer(spec)
        # The same body every time, as a fresh Response per call.
        return lambda request: httpx.Response(
            answer.status_code, headers=answer.headers, content=answer.content
        )
    if isinstance(spec, Sequence) and not isinstance(spec, str | bytes):
        return [_answer(item) for item in spec]
    return spec
