"""A FastAPI app that sends SMS through ippanel/Kapanel and receives the delivery reports.

Run it (the secret goes in the callback URL you give the panel)::

    export SMSGATE_USERNAME=... SMSGATE_PASSWORD=... SMSGATE_SENDER=+983000505
    export SMSGATE_BASE_URL=https://your-panel.example       # Kapanel's origin
    export SMSGATE_WEBHOOK_SECRET=$(python -c "import secrets; print(secrets.token_urlsafe(32))")
    export SMSGATE_WEBHOOK_SOURCES=203.0.113.7               # the address the panel announces
    uvicorn --app-dir docs/examples webhook_app:app --no-access-log

and set the panel's delivery URL to ``https://your.host/sms/delivery/<secret>``. Then::

    curl -X POST localhost:8000/send -H 'content-type: application/json' \\
         -d '{"to": ["09121234567"], "text": "hello"}'
    curl localhost:8000/reports

The app opens one gateway at start-up (``gateway_lifespan``), shares it with every request
(``Depends(sms.gateway)``) and closes it at shutdown.
"""

from __future__ import annotations

import logging
import os
from collections import deque
from collections.abc import Awaitable, Callable, Sequence

from fastapi import Depends, FastAPI, HTTPException
from pydantic import BaseModel

import smsgate
from smsgate.fastapi import delivery_router, gateway_lifespan

logger = logging.getLogger("webhook_app")


class SendRequest(BaseModel):
    """POST /send: one text to one or more numbers."""

    to: list[str]
    text: str


class SendResponse(BaseModel):
    """What /send answers: the provider's id for the send, and the numbers (E.164)."""

    message_id: str
    recipients: list[str]


class ReportOut(BaseModel):
    """One delivery report, as GET /reports shows it."""

    message_id: str
    recipient: str | None
    state: str
    provider_status: str
    final: bool
    at: str | None


def create_app(
    *,
    username: str | None = None,
    password: str | None = None,
    sender: str | None = None,
    base_url: str | None = None,
    secret: str | None = None,
    allowed_sources: Sequence[str] | None = None,
    on_report: Callable[[smsgate.DeliveryReport], Awaitable[None]] | None = None,
) -> FastAPI:
    """Build the app; every setting not given comes from the environment.

    Credentials are read when the app starts (not when it is built), so importing this
    module needs no environment.
    """
    if secret is None:
        secret = os.environ.get("SMSGATE_WEBHOOK_SECRET") or None
    if allowed_sources is None and os.environ.get("SMSGATE_WEBHOOK_SOURCES"):
        allowed_sources = os.environ["SMSGATE_WEBHOOK_SOURCES"].split(",")

    def open_gateway() -> smsgate.IppanelGateway:
        user = username or os.environ.get("SMSGATE_USERNAME")
        pw = password or os.environ.get("SMSGATE_PASSWORD")
        if not user or not pw:
            raise smsgate.ConfigurationError("set SMSGATE_USERNAME and SMSGATE_PASSWORD")
        return smsgate.IppanelGateway(
            username=user,
            password=pw,
            sender=sender or os.environ.get("SMSGATE_SENDER") or None,
            base_url=base_url or os.environ.get("SMSGATE_BASE_URL") or "https://ippanel.com",
        )

    sms = gateway_lifespan(open_gateway)
    app = FastAPI(title="smsgate webhook example", lifespan=sms)
    recent: deque[smsgate.DeliveryReport] = deque(maxlen=1000)

    async def remember(report: smsgate.DeliveryReport) -> None:
        # Runs after the provider got its answer; a real app would update its database.
        recent.append(report)
        logger.info("%s %s -> %s", report.message_id, report.recipient, report.state.name)
        if on_report is not None:
            await on_report(report)

    app.include_router(delivery_router(remember, secret=secret, allowed_sources=allowed_sources))

    @app.post("/send")
    async def send(
        body: SendRequest,
        gateway: smsgate.IppanelGateway = Depends(sms.gateway),  # noqa: B008 (FastAPI style)
    ) -> SendResponse:
        try:
            receipt = await gateway.send(body.to, body.text)
        except (smsgate.InvalidRecipientError, smsgate.InvalidMessageError) as exc:
            raise HTTPException(422, str(exc)) from exc
        except smsgate.ProviderError as exc:
            raise HTTPException(502, str(exc)) from exc
        except smsgate.OutcomeUnknownError as exc:
            # It may have gone out: tell the caller not to resend blindly.
            raise HTTPException(504, str(exc)) from exc
        except smsgate.TransportError as exc:
            raise HTTPException(503, str(exc)) from exc
        return SendResponse(message_id=receipt.message_id, recipients=list(receipt.recipients))

    @app.get("/reports")
    async def reports() -> list[ReportOut]:
        return [
            ReportOut(
                message_id=r.message_id,
                recipient=r.recipient,
                state=r.state.name,
                provider_status=r.provider_status,
                final=r.is_final,
                at=None if r.at is None else r.at.isoformat(),
            )
            for r in recent
        ]

    return app


app = create_app()
