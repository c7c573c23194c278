"""Sending: one request per number, fanned out (docs/protocols/negin.md §3)."""

from __future__ import annotations

from collections.abc import Mapping

from ..._models import SendReceipt
from ..._phone import to_national
from .._fanout import fan_out, settle
from .._parse import as_text
from ._base import NeginBase, Sent, logger
from ._codes import PROVIDER

__all__ = ["SendingMixin"]


class SendingMixin(NeginBase):
    """The wire side of :meth:`NeginGateway.send` and ``send_service``."""

    async def _fan_out(
        self,
        recipients: tuple[str, ...],
        text: str,
        fields: Mapping[str, str],
        default_line: str | None,
    ) -> SendReceipt:
        self._ensure_client()  # a closed gateway raises RuntimeError here, not in a task

        async def one(recipient: str) -> Sent:
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
    def _receipt(sent: Mapping[str, Sent]) -> SendReceipt:
        done = list(sent)
        lines = {sent[r].line for r in done}
        return SendReceipt(
            message_id=",".join(sent[r].message_id for r in done),
            message_ids={r: sent[r].message_id for r in done},
            provider=PROVIDER,
            recipients=done,
            sender=lines.pop() if len(lines) == 1 else None,
            raw=sent[done[0]].raw if len(done) == 1 else {r: sent[r].raw for r in done},
        )

    async def _send_one(
        self, recipient: str, text: str, fields: Mapping[str, str], default_line: str | None
    ) -> Sent:
        form = {
            **self._extra,
            "username": self._username,
            "password": self._password,
            # The form the server echoes and accepts (§3.1).
            "mobile": to_national(recipient),
            "message": text,
            **fields,
        }
        async with self._slots:
            with self._observe("send", recipients=1, text=text):
                answer = await self._request("POST", self._send_path, data=form)
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
            # the sister SOAP API and three clients do (§3.3).
            logger.warning("Negin answered an undocumented success status %d", status)
        line = as_text(data.get("line")) if isinstance(data, dict) else None
        return Sent(message_id=message_id, line=line or default_line, raw=body)
