"""FastAPI integration: the delivery-report router and a gateway lifespan.

Needs the ``fastapi`` extra (``pip install ".[fastapi]"``). This is the only module
of smsgate that imports FastAPI; ``import smsgate`` and ``import smsgate.webhooks`` never
do::

    from fastapi import FastAPI
    from smsgate.fastapi import delivery_router, gateway_lifespan

    sms = gateway_lifespan(lambda: smsgate.IppanelGateway(username=..., password=...))
    app = FastAPI(lifespan=sms)
    app.include_router(delivery_router(on_report, secret=os.environ["SMS_WEBHOOK_SECRET"]))

**Why the callback runs as a background task.** The provider drops a push that is not
answered within 15 seconds (docs/webhooks.md, "What the provider sends"), so the endpoint
does only cheap, local work before it answers (checks, parsing, deduplication) and hands the
reports to ``on_report`` through FastAPI's ``BackgroundTasks``: Starlette runs them after
the response has been sent, in the same request task. That needs no set-up from the app (no
lifespan task group to wire), works the same under any ASGI server, and a server's graceful
shutdown waits for running requests, background tasks included, so a report being handled is
not cut off by a normal restart. A task group owned by the lifespan would buy only
detachment from the request, at the cost of an extra moving part.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import AbstractAsyncContextManager
from typing import Any, Generic, TypeVar

import anyio
from fastapi import APIRouter, BackgroundTasks, FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.requests import ClientDisconnect

from ._gateway import SmsGateway
from .exceptions import ConfigurationError, MalformedReportError, WebhookAuthError
from .webhooks import (
    DEFAULT_LOG_INTERVAL,
    DEFAULT_MAX_BODY,
    DEFAULT_TOKEN_HEADER,
    DedupeStore,
    KapanelDeliveryParser,
    OnReport,
    RefusalLog,
    ReportParser,
    ReportTooLargeError,
    UnreadableReportError,
    WebhookReceiver,
)

__all__ = [
    "DEFAULT_BODY_TIMEOUT",
    "GatewayLifespan",
    "delivery_router",
    "gateway_lifespan",
    "get_gateway",
    "receiver_router",
]

logger = logging.getLogger("smsgate.webhooks")

#: Seconds a client gets to send the whole body; a slower one is answered 408 (a stalled
#: upload must not hold the endpoint, and the provider itself sends ~150 bytes).
DEFAULT_BODY_TIMEOUT = 10.0

#: Where :func:`gateway_lifespan` keeps the gateway by default (``app.state.sms_gateway``).
DEFAULT_STATE_KEY = "sms_gateway"

G = TypeVar("G", bound=SmsGateway)


# -- delivery reports ---------------------------------------------------------------------


def delivery_router(
    on_report: OnReport,
    *,
    path: str = "/sms/delivery",
    secret: str | None = None,
    allowed_sources: Iterable[Any] | str | None = None,
    trusted_proxies: Iterable[Any] | str | None = None,
    max_body: int = DEFAULT_MAX_BODY,
    dedupe: DedupeStore | None = None,
    parser: ReportParser | None = None,
    token_header: str = DEFAULT_TOKEN_HEADER,
    body_timeout: float = DEFAULT_BODY_TIMEOUT,
    include_in_schema: bool = True,
    log_interval: float = DEFAULT_LOG_INTERVAL,
) -> APIRouter:
    """A router that receives Kapanel delivery pushes and calls ``on_report`` for each.

    Answers (JSON, within milliseconds; ``on_report`` runs after the answer):

    * 200 ``{"ok": true, "accepted": N, "duplicates": M}``: N new reports handed on, M
      repeats dropped (a repeat is still a success, so the sender stops sending it);
    * 400: the body is not JSON, or ``Content-Length`` is not a number;
    * 403: the client address is outside ``allowed_sources``, or the secret is wrong;
    * 408: the body did not arrive within ``body_timeout`` seconds;
    * 413: the body is over ``max_body`` bytes (declared or actually sent);
    * 422: JSON, but not a delivery report.

    With a ``secret``, give the panel the URL ``https://your.host/sms/delivery/SECRET``:
    the token travels as the last path segment (the panel lets you set a URL, not
    headers). A client that can set headers may instead POST to ``path`` with the secret
    in the ``token_header`` header. Either way it is compared in constant time. Keep the
    secret out of access logs (``uvicorn --no-access-log``, or filter the path).

    Args:
        on_report: ``async def on_report(report: DeliveryReport) -> None``, called once per
            new report, after the response. Exceptions are logged (logger
            ``smsgate.webhooks``), never sent to the provider.
        path: Where the endpoint lives.
        secret: A shared token of 16+ URL-safe characters (``secrets.token_urlsafe(32)``),
            or ``None`` for no token.
        allowed_sources: IP addresses and CIDR networks allowed to push (the address the
            panel announces), or ``None`` for any.
        trusted_proxies: IP addresses and CIDR networks of your own reverse proxies. The
            router reads ``X-Forwarded-For`` only on a connection from one of them, and
            takes the right-most hop that is not a trusted proxy. Nothing is trusted by
            default. A client address the server itself rewrote from the header (uvicorn
            does for connections from its ``forwarded_allow_ips``, 127.0.0.1 by default)
            is treated as unknown and refused by an allow-list: run the server with its
            proxy headers off (``uvicorn --forwarded-allow-ips=''``) and name the proxy
            here. See docs/webhooks.md, "Behind a proxy".
        max_body: The largest body accepted, in bytes.
        dedupe: Where seen reports are remembered (message id + recipient + status); the
            default is a fresh in-memory store. Share a store between workers with your
            own :class:`~smsgate.webhooks.DedupeStore`.
        parser: The push parser; default the Kapanel one. Pass
            ``KapanelDeliveryParser(field_map=...)`` for other field names.
        token_header: The header that may carry the secret.
        body_timeout: Seconds allowed for receiving the body.
        include_in_schema: Whether the route shows in the OpenAPI schema.
        log_interval: At least this many seconds between two warnings about refused
            pushes of one kind (HTTP status); the line after a quiet spell says how many
            were left out. ``0`` logs every refusal.

    Returns:
        An ``APIRouter`` to ``app.include_router(...)``.

    Raises:
        ConfigurationError: A malformed secret, source or size.
    """
    receiver = WebhookReceiver(
        on_report,
        secret=secret,
        allowed_sources=allowed_sources,
        trusted_proxies=trusted_proxies,
        max_body=max_body,
        dedupe=dedupe,
        token_header=token_header,
        parser=KapanelDeliveryParser() if parser is None else parser,
        refusal_log=RefusalLog(logger, interval=log_interval),
    )
    if secret is None and allowed_sources is None:
        # Legal (a private network, a proxy that checks), but worth saying once: anyone
        # who finds the URL can then forge delivery reports.
        logger.warning(
            "delivery_router(%r) has neither a secret nor allowed_sources: anyone who can "
            "reach it can push delivery reports",
            path,
        )
    return receiver_router(
        receiver, path=path, body_timeout=body_timeout, include_in_schema=include_in_schema
    )


def receiver_router(
    receiver: WebhookReceiver,
    *,
    path: str = "/sms/delivery",
    body_timeout: float = DEFAULT_BODY_TIMEOUT,
    include_in_schema: bool = True,
) -> APIRouter:
    """Like :func:`delivery_router`, for a :class:`~smsgate.webhooks.WebhookReceiver` you built.

    Args:
        receiver: The configured receiver (secret, allow-list, parser, dedupe store...).
        path: Where the endpoint lives.
        body_timeout: Seconds allowed for receiving the body.
        include_in_schema: Whether the route shows in the OpenAPI schema.

    Returns:
        An ``APIRouter``; with a secret it has ``{path}/{token}`` besides ``{path}``.
    """
    if not path.startswith("/") or path.endswith("/"):
        raise ConfigurationError(f"path must start with '/' and not end with one, not {path!r}")
    if not body_timeout > 0:
        raise ConfigurationError(f"body_timeout must be positive seconds, not {body_timeout!r}")

    async def receive_delivery_reports(
        request: Request, background_tasks: BackgroundTasks
    ) -> JSONResponse:
        peer = request.client.host if request.client else None
        source, how = receiver.locate(peer, request.headers.getlist("x-forwarded-for"))
        token = receiver.token_from(request.headers, request.path_params.get("token"))

        def refuse(status: int, public: str, exc: Exception) -> JSONResponse:
            # The log line names the reason; neither it nor the answer holds the secret.
            reason: object = exc if how == "peer" else f"{exc} [source: {how}]"
            receiver.refusal_log.refused(status, source or peer, reason)
            return JSONResponse({"ok": False, "error": public}, status_code=status)

        try:
            # Everything that needs no body first, so a refused client sends us nothing.
            receiver.check_source(source)
            receiver.check_token(token)
            receiver.check_length(request.headers.get("content-length"))
            try:
                with anyio.fail_after(body_timeout):
                    body = await _read_capped(request, receiver.max_body)
            except TimeoutError as exc:
                return refuse(408, "the body did not arrive in time", exc)
            result = await receiver.accept(body, request.headers, source=source, token=token)
        except WebhookAuthError as exc:
            return refuse(403, "forbidden", exc)
        except ReportTooLargeError as exc:
            return refuse(413, str(exc), exc)
        except UnreadableReportError as exc:
            return refuse(400, str(exc), exc)
        except MalformedReportError as exc:
            return refuse(422, str(exc), exc)
        except ClientDisconnect:
            return JSONResponse({"ok": False, "error": "client went away"}, status_code=400)
        if result.reports:
            background_tasks.add_task(receiver.deliver, result.reports)
        if result.unchecked:
            # The dedupe store failed part-way: deliver what was checked, and ask the
            # provider to push again so the rest is not lost.
            return JSONResponse(
                {"ok": False, "error": "try again later", "accepted": len(result.reports)},
                status_code=503,
                background=background_tasks,
            )
        return JSONResponse(
            {"ok": True, "accepted": len(result.reports), "duplicates": result.duplicates}
        )

    router = APIRouter()
    options: dict[str, Any] = {
        "methods": ["POST"],
        "response_model": None,
        "include_in_schema": include_in_schema,
        "summary": "Receive SMS delivery reports",
    }
    router.add_api_route(path, receive_delivery_reports, name="sms_delivery", **options)
    if receiver.requires_token:
        router.add_api_route(
            path + "/{token}", receive_delivery_reports, name="sms_delivery_token", **options
        )
    return router


async def _read_capped(request: Request, limit: int) -> bytes:
    """The body, but never more than ``limit`` bytes of it, whatever Content-Length said."""
    chunks: list[bytes] = []
    size = 0
    # aclosing: leaving the loop early must finalise the stream now, not at garbage
    # collection (trio has no async-generator hooks to do it later).
    async with contextlib.aclosing(request.stream()) as stream:
        async for chunk in stream:
            size += len(chunk)
            if size > limit:
                raise ReportTooLargeError(f"the body is over {limit} bytes")
            chunks.append(chunk)
    return b"".join(chunks)


# -- one gateway per app ------------------------------------------------------------------


class GatewayLifespan(Generic[G]):
    """A FastAPI lifespan that opens one gateway at start-up and closes it at shutdown.

    Build it with :func:`gateway_lifespan`. Pass it as ``FastAPI(lifespan=...)``; read the
    gateway in endpoints with ``Depends(lifespan.gateway)``.

    Args:
        factory: Builds the gateway (plain or async function); called once per start-up.
        key: The ``app.state`` attribute the gateway is kept in.
        lifespan: Your own lifespan, run inside this one (the gateway is already open).
    """

    def __init__(
        self,
        factory: Callable[[], G | Awaitable[G]],
        *,
        key: str = DEFAULT_STATE_KEY,
        lifespan: Callable[[FastAPI], AbstractAsyncContextManager[None]] | None = None,
    ) -> None:
        if not key.isidentifier():
            raise ConfigurationError(f"key must be an identifier, not {key!r}")
        self._factory = factory
        self.key = key
        self._inner = lifespan

    def __repr__(self) -> str:
        return f"GatewayLifespan(key={self.key!r})"

    @contextlib.asynccontextmanager
    async def __call__(self, app: FastAPI) -> AsyncIterator[None]:
        """Open the gateway, keep it on ``app.state``, run the app, close the gateway."""
        made = self._factory()
        gateway: G = await made if inspect.isawaitable(made) else made
        # ``async with`` closes the gateway whatever happens, even on a failed start-up;
        # aclose is idempotent and shielded (STYLE R8).
        async with gateway:
            setattr(app.state, self.key, gateway)
            try:
                if self._inner is None:
                    yield
                else:
                    async with self._inner(app):
                        yield
            finally:
                # A request arriving after shutdown gets a clear error, not a closed client.
                delattr(app.state, self.key)

    def gateway(self, request: Request) -> G:
        """The running app's gateway; use as ``Depends(lifespan.gateway)``.

        Raises:
            RuntimeError: The lifespan is not running (the server was started without
                lifespan support, or the app is shutting down).
        """
        return _state_gateway(request, self.key)  # type: ignore[return-value]


def gateway_lifespan(
    factory: Callable[[], G | Awaitable[G]],
    *,
    key: str = DEFAULT_STATE_KEY,
    lifespan: Callable[[FastAPI], AbstractAsyncContextManager[None]] | None = None,
) -> GatewayLifespan[G]:
    """A lifespan that opens one gateway for the whole app and closes it at shutdown.

    For example::

        sms = gateway_lifespan(lambda: smsgate.IppanelGateway(username=..., password=...))
        app = FastAPI(lifespan=sms)

        @app.post("/send")
        async def send(to: str, gateway: Annotated[IppanelGateway, Depends(sms.gateway)]):
            return (await gateway.send(to, "hello")).message_id

    One gateway means one connection pool shared by every request, which is what the
    backends are built for; opening one per request would pay a TLS handshake each time.

    Args:
        factory: Builds the gateway (plain or async function). Called at start-up, so
            settings errors show when the app starts.
        key: The ``app.state`` attribute that holds the gateway (one per gateway, if an
            app uses several).
        lifespan: Your own lifespan, run inside this one.

    Returns:
        A :class:`GatewayLifespan`: the lifespan itself, with ``.gateway`` as the
        dependency.
    """
    return GatewayLifespan(factory, key=key, lifespan=lifespan)


def get_gateway(request: Request) -> SmsGateway:
    """The gateway a :func:`gateway_lifespan` with the default key opened; for ``Depends``.

    Raises:
        RuntimeError: No such gateway is open.
    """
    return _state_gateway(request, DEFAULT_STATE_KEY)


def _state_gateway(request: Request, key: str) -> SmsGateway:
    gateway = getattr(request.app.state, key, None)
    if gateway is None:
        raise RuntimeError(
            f"no gateway on app.state.{key}: is the app's lifespan gateway_lifespan(...) "
            "and is the server running it (uvicorn --lifespan on)?"
        )
    gw: SmsGateway = gateway
    return gw
