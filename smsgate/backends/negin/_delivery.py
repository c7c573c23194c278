"""Delivery states: ``wsStates.ashx`` (docs/protocols/negin.md §5, §6)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import anyio
import attrs

from ..._models import DeliveryReport, SendReceipt
from ...exceptions import SmsGateError, UnknownMessageError
from ._base import MAX_IDS_PER_STATES_CALL, NeginBase
from ._codes import PROVIDER
from ._parsing import chunks, report, split_ids
from ._parsing import message_ids as _ids

__all__ = ["DeliveryMixin"]


class DeliveryMixin(NeginBase):
    """:meth:`delivery` and :meth:`states` of the Negin gateway."""

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
            if ref.provider != PROVIDER:
                raise UnknownMessageError(
                    f"this receipt is from {ref.provider!r}, not Negin", provider=PROVIDER
                )
            pairs = self._receipt_pairs(ref)
        else:
            pairs = [(i, None) for i in _ids(ref)]
        if not pairs:
            raise UnknownMessageError("no message id given", provider=PROVIDER)
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
            with self._observe("states", recipients=len(ids)):
                answer = await self._request("POST", self._states_path, data=form, idempotent=True)
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
            # Position is the only link between an id and its state (§5).
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
                f"Negin does not know the message id(s) {shown}", provider=PROVIDER
            )
        return reports
