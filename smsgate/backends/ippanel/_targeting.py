"""Postal-code and job targeting: the ``postalcode*`` and ``job*`` ops (protocols §4.1-§4.2)."""

from __future__ import annotations

import builtins
import enum
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Final

import attrs

from ..._models import SendReceipt
from ..._phone import _DIGITS
from ...exceptions import (
    InvalidRecipientError,
)
from .._http import HttpAnswer
from ._wire import (
    _as_id,
    _as_text,
    _check_ids,
    _check_text,
    _first,
    _frozen,
    _SubAPI,
    _to_json_array,
)


@attrs.frozen(kw_only=True)
class PostalArea:
    """A Tehran neighbourhood postal code (``op=postalcodearea``).

    Attributes:
        code: The postal code (prefix).
        title: The neighbourhood's name, if given.
        raw: The provider's object.
    """

    code: str
    title: str | None
    raw: Mapping[str, Any] = attrs.field(factory=dict, converter=_frozen, eq=False, repr=False)


@attrs.frozen(kw_only=True)
class Job:
    """A job category for job targeting (``op=jobslist``).

    Attributes:
        id: The job id (``jobsid``).
        title: Its title.
        raw: The provider's object.
    """

    id: str
    title: str
    raw: Mapping[str, Any] = attrs.field(factory=dict, converter=_frozen, eq=False, repr=False)


@attrs.frozen(kw_only=True)
class JobTrend:
    """A kind ("trend") of a job (``op=jobstrenlist``).

    Attributes:
        id: The trend id (an element of ``trendid``).
        title: Its title.
        raw: The provider's object.
    """

    id: str
    title: str
    raw: Mapping[str, Any] = attrs.field(factory=dict, converter=_frozen, eq=False, repr=False)


class Gender(enum.IntEnum):
    """Who postal-code targeting reaches (``gender`` of ``postalcodecount``/``postalcodesend``)."""

    ANY = 0
    MALE = 1
    FEMALE = 2


_OPERATORS: Final = ("mci", "tci", "mtn")


def _check_operator(operator: object) -> str:
    # protocols §10: S0/S1 write tci/mtn, S2 Mci/Mtn; lower case is what clients send.
    if not isinstance(operator, str) or operator.strip().lower() not in _OPERATORS:
        raise InvalidRecipientError(
            f"operator must be one of {', '.join(_OPERATORS)}, not {operator!r}", value=operator
        )
    return operator.strip().lower()


def _check_gender(gender: object) -> int:
    if isinstance(gender, bool) or not isinstance(gender, int) or gender not in (0, 1, 2):
        raise InvalidRecipientError(
            f"gender must be Gender.ANY, MALE or FEMALE (0, 1, 2), not {gender!r}", value=gender
        )
    return int(gender)


def _check_postal_code(postal_code: object) -> str:
    if isinstance(postal_code, int) and not isinstance(postal_code, bool):
        postal_code = str(postal_code)
    if not isinstance(postal_code, str):
        raise InvalidRecipientError("postal_code must be a str of digits", value=postal_code)
    text = postal_code.translate(_DIGITS).replace("-", "").replace(" ", "")
    if not text.isdigit() or len(text) > 10:
        raise InvalidRecipientError(f"invalid postal code: {postal_code!r}", value=postal_code)
    return text


class PostalAPI(_SubAPI):
    """Postal-code targeting: ``gw.postal``."""

    __slots__ = ()

    async def count(
        self, postal_code: str, *, operator: str = "mci", gender: int = Gender.ANY
    ) -> int:
        """How many numbers a postal code reaches (``op=postalcodecount``).

        Args:
            postal_code: The postal code.
            operator: ``"mci"`` / ``"tci"`` (Hamrah-e Aval) or ``"mtn"`` (Irancell).
            gender: :class:`Gender` (0 both, 1 male, 2 female).

        Raises:
            InvalidRecipientError: A bad postal code, operator or gender (before any I/O).
            ProtocolError: The answer holds no count.
        """
        fields = {
            "type": _check_operator(operator),
            "gender": str(_check_gender(gender)),
            "postalcode": _check_postal_code(postal_code),
        }
        data, answer = await self._gw._query_list("postalcodecount", fields)
        return self._gw._count(data, answer)

    async def areas(self) -> builtins.list[PostalArea]:
        """Tehran neighbourhood postal codes (``op=postalcodearea``).

        Raises:
            ProviderError: The provider refused.
            ProtocolError: The answer could not be read.
        """
        data, answer = await self._gw._query_list("postalcodearea", {})
        areas: list[PostalArea] = []
        for obj in self._gw._objects(data, answer):
            code = _as_id(_first(obj, "code", "postalcode", "postal_code", "id"))
            if code is None:
                raise self._gw._protocol_error(
                    "an area in ippanel's answer has no postal code", answer, idempotent=True
                )
            title = _as_text(_first(obj, "title", "name", "area"))
            areas.append(PostalArea(code=code, title=title, raw=obj))
        return areas

    async def send(
        self,
        postal_code: str,
        text: str,
        *,
        operator: str = "mci",
        gender: int = Gender.ANY,
        sender: str | None = None,
    ) -> SendReceipt:
        """Send a text to the numbers of a postal code (``op=postalcodesend``).

        Args:
            postal_code: The postal code.
            text: The text.
            operator: ``"mci"`` / ``"tci"`` or ``"mtn"``.
            gender: :class:`Gender`.
            sender: The line; default the gateway's ``sender``.

        Returns:
            A receipt with the bulk id and no ``recipients`` (see :meth:`IppanelGateway.delivery`).

        Raises:
            InvalidRecipientError: A bad postal code, operator or gender (before any I/O).
            InvalidMessageError: An empty text (before any I/O).
            ProviderError: The provider refused.
        """
        fields = {
            "type": _check_operator(operator),
            "gender": str(_check_gender(gender)),
            "postalcode": _check_postal_code(postal_code),
            "message": _check_text(text),
            "from": self._gw._line(sender),
        }
        return await self._gw._bulk_send("postalcodesend", fields)


class JobAPI(_SubAPI):
    """Job targeting: ``gw.jobs``."""

    __slots__ = ()

    async def list(self) -> builtins.list[Job]:
        """Every job category (``op=jobslist``; S2 spells it ``joblist``, §10).

        Raises:
            ProviderError: The provider refused.
            ProtocolError: The answer could not be read.
        """
        data, answer = await self._gw._query_list("jobslist", {})
        return [
            Job(id=job_id, title=title, raw=obj)
            for job_id, title, obj in self._id_title(data, answer, "jobsid", "job_id")
        ]

    async def trends(self, job_id: str | int) -> builtins.list[JobTrend]:
        """The kinds ("trends") of one job (``op=jobstrenlist``).

        Raises:
            InvalidRecipientError: A malformed job id (before any I/O).
            ProviderError: The provider refused.
        """
        (job,) = _check_ids([job_id], "job_id")
        data, answer = await self._gw._query_list("jobstrenlist", {"jobsid": job})
        return [
            JobTrend(id=trend_id, title=title, raw=obj)
            for trend_id, title, obj in self._id_title(data, answer, "trendid", "trend_id")
        ]

    async def count(self, trend_ids: Sequence[str | int] | str | int) -> int:
        """How many numbers some trends reach (``op=jobscount``).

        Raises:
            InvalidRecipientError: No or malformed ids (before any I/O).
            ProtocolError: The answer holds no count.
        """
        ids = _check_ids(trend_ids, "trend_ids")
        data, answer = await self._gw._query_list("jobscount", {"trendid": _to_json_array(ids)})
        return self._gw._count(data, answer)

    async def send(
        self,
        job_id: str | int,
        trend_ids: Sequence[str | int] | str | int,
        text: str,
        *,
        sender: str | None = None,
    ) -> SendReceipt:
        """Send a text to the numbers of a job's trends (``op=jobssend``).

        Returns:
            A receipt with the bulk id and no ``recipients``.

        Raises:
            InvalidRecipientError: Malformed ids (before any I/O).
            InvalidMessageError: An empty text (before any I/O).
            ProviderError: The provider refused.
        """
        (job,) = _check_ids([job_id], "job_id")
        ids = _check_ids(trend_ids, "trend_ids")
        fields = {
            "from": self._gw._line(sender),
            "message": _check_text(text),
            "trendid": _to_json_array(ids),
            "jobsid": job,
        }
        return await self._gw._bulk_send("jobssend", fields)

    def _id_title(
        self, data: Any, answer: HttpAnswer, *id_keys: str
    ) -> Iterator[tuple[str, str, Mapping[str, Any]]]:
        for obj in self._gw._objects(data, answer):
            item_id = _as_id(_first(obj, "id", *id_keys, "code"))
            if item_id is None:
                raise self._gw._protocol_error(
                    "an entry in ippanel's answer has no id", answer, idempotent=True
                )
            yield item_id, _as_text(_first(obj, "title", "name")) or "", obj
