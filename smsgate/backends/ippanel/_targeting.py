"""Postal-code and job targeting: the ``postalcode*`` and ``job*`` ops.

Sources: docs/protocols/ippanel.md, "Targeting ops" and "Jobs list".
"""

from __future__ import annotations

import builtins
import enum
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Final

import attrs

from ..._models import SendReceipt
from ..._text import check_text
from ...exceptions import InvalidRecipientError, ProtocolError, ProviderError
from .._http import HttpAnswer
from .._parse import DIGITS, as_int
from ._parsing import _as_id, _check_ids, _first, _frozen, _to_json_array, _verbatim
from ._wire import ERROR_CODES, _SubAPI


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
    # docs/protocols/ippanel.md "Targeting ops": the Kapanel pages write tci/mtn, the PDF
    # Mci/Mtn; lower case is what clients send.
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
    text = postal_code.translate(DIGITS).replace("-", "").replace(" ", "")
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
            title = _verbatim(_first(obj, "title", "name", "area"))
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
            "message": check_text(text),
            "from": self._gw._line(sender),
        }
        return await self._gw._bulk_send("postalcodesend", fields)


class JobAPI(_SubAPI):
    """Job targeting: ``gw.jobs``."""

    __slots__ = ()

    async def list(self) -> builtins.list[Job]:
        """Every job category (``op=jobslist``, or ``op=joblist``).

        The Kapanel pages name the op ``Jobslist``, the ippanel PDF ``joblist``
        (docs/protocols/ippanel.md, "Jobs list"), and a panel may know only one. The
        gateway asks with the spelling that worked last (``jobslist`` first); when the
        panel does not know it (a code outside :data:`ERROR_CODES`, or an answer that is
        not the envelope) it asks once more with the other and remembers which worked.

        Raises:
            ProviderError: The provider refused (both spellings, or a known code).
            ProtocolError: The answer could not be read (both spellings).
        """
        first_error: ProviderError | ProtocolError | None = None
        for op in self._gw._jobs_ops():
            try:
                data, answer = await self._gw._query_list(op, {})
            except (ProviderError, ProtocolError) as exc:
                if not _unknown_op(exc):
                    raise
                first_error = first_error or exc
                continue
            self._gw._jobs_op = op
            return [
                Job(id=job_id, title=title, raw=obj)
                for job_id, title, obj in self._id_title(data, answer, "jobsid", "job_id")
            ]
        assert first_error is not None
        raise first_error

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
            "message": check_text(text),
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
            yield item_id, _verbatim(_first(obj, "title", "name")) or "", obj


def _unknown_op(exc: ProviderError | ProtocolError) -> bool:
    """Whether an answer reads as "no such op" rather than a refusal we know.

    What a panel answers to an op it does not know is not documented
    (docs/protocols/ippanel.md, "Jobs list"): a code outside the table, or an answer that
    is not the envelope, is taken as that; a known code (962 wrong password...) is not.
    """
    if isinstance(exc, ProtocolError):
        return True
    code = as_int(exc.code)
    return code is None or code not in ERROR_CODES
