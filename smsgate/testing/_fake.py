"""``FakeProvider``: one ASGI app that speaks both providers' wire protocols.

Mount it in-process (``httpx.ASGITransport(app=fake)``) or serve it on loopback
(``smsgate fake-server``, :func:`smsgate.testing.serve_loopback`). Both halves share one
:class:`FakeCore`: one account, one credit, one opt-out list, one ledger of accepted sends.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from decimal import Decimal
from typing import Any

import anyio

from ._core import FakeClock, FakeCore, Faults, LedgerEntry

__all__ = ["FakeProvider"]

_HTML_PAGE = (
    b"<!DOCTYPE html><html><head><title>503 Service Unavailable</title></head>"
    b"<body><h1>Service Unavailable</h1><p>The server is temporarily busy.</p></body></html>"
)

ASGIApp = Callable[..., Any]


class FakeProvider:
    """A stateful fake of the ippanel (op-style) and Negin 3300 REST services.

    Args:
        username: The account's user name (both protocols).
        password: The account's password.
        credit: Starting credit in Rial.
        price_per_part: Rial charged per SMS part and recipient.
        opted_out: Numbers on the operators' opt-out list (any accepted form).
        clock: The time source for delivery timelines; pass a :class:`FakeClock` to move
            time by hand.
        faults: Scripted misbehaviour (latency, 5xx, HTML pages, dropped connections).
        seed: Seeds the fault decisions, so runs repeat.
        profile: How strictly to follow one provider document: ``"lenient"`` (default:
            every spelling any document or known client uses), ``"ippanel-pdf"``,
            ``"kapanel"`` or ``"negin-guide"`` (see :data:`~smsgate.testing.PROFILES`).

    Raises:
        ValueError: For a profile name not in :data:`~smsgate.testing.PROFILES`.

    Attributes:
        core: The shared state; ``core.ledger`` lists every accepted send.
        ippanel: The ippanel half (its own settings and state).
        negin: The Negin half.
    """

    def __init__(
        self,
        *,
        username: str = "user",
        password: str = "secret-pass",
        credit: Decimal | int | str = Decimal("1000000000"),
        price_per_part: Decimal | int | str = Decimal("1000"),
        opted_out: Iterable[str] = (),
        clock: Callable[[], float] | None = None,
        faults: Faults | None = None,
        seed: int = 0,
        profile: str = "lenient",
    ) -> None:
        from starlette.applications import Starlette

        from ._fake_ippanel import IppanelFake
        from ._fake_negin import NeginFake

        kwargs: dict[str, Any] = {}
        if clock is not None:
            kwargs["clock"] = clock
        self.core = FakeCore(
            username=username,
            password=password,
            credit=Decimal(credit),
            price_per_part=Decimal(price_per_part),
            opted_out=set(opted_out),
            faults=faults or Faults(),
            seed=seed,
            profile=profile,
            **kwargs,
        )
        self.ippanel = IppanelFake(self.core)
        self.negin = NeginFake(self.core)
        self._app: Any = Starlette(routes=[*self.ippanel.routes(), *self.negin.routes()])

    # -- conveniences for tests --------------------------------------------------------

    @property
    def ledger(self) -> list[LedgerEntry]:
        """Every recipient of every send the fake accepted, in order."""
        return self.core.ledger

    @property
    def profile(self) -> str:
        """The profile the fake follows (see :data:`~smsgate.testing.PROFILES`)."""
        return self.core.profile

    @property
    def faults(self) -> Faults:
        """The scripted faults; change them between requests."""
        return self.core.faults

    def opt_out(self, *numbers: str) -> None:
        """Put numbers on the opt-out list."""
        from .._phone import normalize_msisdn

        self.core.opted_out.update(normalize_msisdn(n) for n in numbers)

    # -- ASGI --------------------------------------------------------------------------

    async def __call__(
        self,
        scope: MutableMapping[str, Any],
        receive: Callable[[], Awaitable[MutableMapping[str, Any]]],
        send: Callable[[MutableMapping[str, Any]], Awaitable[None]],
    ) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        self.core.count_request()
        faults = self.core.faults
        if faults.latency:
            await anyio.sleep(faults.latency)
        if faults.error_rate and self.core.draw() < faults.error_rate:
            await _respond(send, 500, b"Internal Server Error", b"text/plain")
            return
        if faults.unavailable_rate and self.core.draw() < faults.unavailable_rate:
            await _respond(send, 503, b"Service Unavailable", b"text/plain")
            return
        if faults.html_rate and self.core.draw() < faults.html_rate:
            await _respond(send, 200, _HTML_PAGE, b"text/html; charset=utf-8")
            return
        drop = bool(faults.drop_rate) and self.core.draw() < faults.drop_rate
        hang = bool(faults.hang_rate) and self.core.draw() < faults.hang_rate
        if not (drop or hang):
            await self._app(scope, receive, send)
            return
        # Process the request for real (the send lands in the ledger), then misbehave.
        captured: list[dict[str, Any]] = []

        async def capture(message: Any) -> None:
            captured.append(message)

        await self._app(scope, receive, capture)
        if hang:
            await anyio.sleep(faults.hang_seconds)
            for message in captured:
                await send(message)
            return
        # Drop: start the answer with a length it will never reach, then give up. The
        # server closes the connection; the client sees an incomplete answer.
        start = next(m for m in captured if m["type"] == "http.response.start")
        headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
        headers.append((b"content-length", b"1000"))
        await send({**start, "headers": headers})
        await send({"type": "http.response.body", "body": b"[0", "more_body": True})
        raise ConnectionAbortedError("fake provider dropped the connection on purpose")


async def _respond(
    send: Callable[[MutableMapping[str, Any]], Awaitable[None]],
    status: int,
    body: bytes,
    content_type: bytes,
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", content_type),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


__all__ += ["FakeClock", "Faults", "LedgerEntry"]
