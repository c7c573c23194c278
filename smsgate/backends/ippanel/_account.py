"""The account: packages (``accesslist``) and sub-accounts (``newuser``).

Source: docs/protocols/ippanel.md "Account ops".
"""

from __future__ import annotations

import builtins
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import attrs

from ..._phone import to_local
from ...exceptions import (
    ConfigurationError,
    ProtocolError,
    ProviderError,
    SmsGateError,
)
from .._http import Scrubber
from ._parsing import _as_decimal, _as_id, _first, _frozen, _require_text, _verbatim
from ._wire import _drop_secret_cause, _SubAPI


@attrs.frozen(kw_only=True)
class Package:
    """An active package of the account (``op=accesslist``): code, title, price, discount.

    Attributes:
        code: The package code.
        title: Its title.
        price: Its price in Rial, if given.
        discount: Its discount, if given.
        raw: The provider's object.
    """

    code: str
    title: str
    price: Decimal | None
    discount: Decimal | None
    raw: Mapping[str, Any] = attrs.field(factory=dict, converter=_frozen, eq=False, repr=False)


@attrs.frozen(kw_only=True)
class SubAccount:
    """The answer to ``op=newuser``.

    Attributes:
        username: The new account's user name (as requested).
        id: What the provider answered (an id, when it gives one).
        raw: The decoded answer.
    """

    username: str
    id: str | None
    raw: Any = attrs.field(default=None, eq=False, repr=False)


class PackageAPI(_SubAPI):
    """The account's packages: ``gw.packages``."""

    __slots__ = ()

    async def list(self) -> builtins.list[Package]:
        """The active packages: code, title, price, discount (``op=accesslist``).

        Raises:
            ProviderError: The provider refused.
            ProtocolError: The answer could not be read.
        """
        data, answer = await self._gw._query_list("accesslist", {})
        packages: list[Package] = []
        for obj in self._gw._objects(data, answer):
            code = _as_id(_first(obj, "code", "id", "access_id"))
            if code is None:
                raise self._gw._protocol_error(
                    "a package in ippanel's answer has no code", answer, idempotent=True
                )
            packages.append(
                Package(
                    code=code,
                    title=_verbatim(_first(obj, "title", "name")) or "",
                    price=_as_decimal(_first(obj, "price")),
                    discount=_as_decimal(_first(obj, "discount")),
                    raw=obj,
                )
            )
        return packages


class AccountAPI(_SubAPI):
    """Sub-accounts (reseller access needed): ``gw.accounts``."""

    __slots__ = ()

    async def create(
        self,
        *,
        username: str,
        password: str,
        name: str = "",
        company: str = "",
        national_id: str = "",
        certificate_id: str = "",
        access_id: int = 0,
        tell: str = "",
        mobile: str = "",
        postal_code: str = "",
        email: str = "",
        address: str = "",
    ) -> SubAccount:
        """Create a sub-account (``op=newuser``, S2's underscore field names).

        The new account's password is treated as a secret too: it never appears in an
        error raised here.

        Args:
            username: The new user name (``user_uname``).
            password: The new password (``user_pass``).
            name: The holder's name.
            company: The company.
            national_id: The national id.
            certificate_id: The birth-certificate number.
            access_id: The package / access level (from :meth:`PackageAPI.list`).
            tell: A landline number.
            mobile: A mobile number (normalised; sent as ``09…``).
            postal_code: The postal code.
            email: The e-mail address.
            address: The postal address.

        Returns:
            A :class:`SubAccount`.

        Raises:
            ConfigurationError: A missing user name or password (before any I/O).
            InvalidRecipientError: A malformed mobile number (before any I/O).
            SubAccountRejectedError: The provider refused the details (301-317, 1001-1005).
            AccountRestrictedError: No reseller access (964), pricing not done (302).
        """
        _require_text(username, "username")
        _require_text(password, "password")
        if isinstance(access_id, bool) or not isinstance(access_id, int):
            raise ConfigurationError("access_id must be an int")
        fields = {
            "user_uname": username.strip(),
            "user_pass": password,
            "name": name,
            "company": company,
            "national_id": national_id,
            "certificate_id": certificate_id,
            "access_id": str(access_id),
            "tell": tell,
            "mobile": to_local(mobile) if mobile else "",
            "postalcode": postal_code,
            "email": email,
            "address": address,
        }
        scrub = Scrubber.of([password])
        try:
            payload, answer = await self._gw._op("newuser", fields, idempotent=False)
            data = self._gw._unwrap(payload, answer, idempotent=False)
        except SmsGateError as exc:
            _rescrub(exc, scrub)
            raise
        return SubAccount(username=username.strip(), id=_as_id(data), raw=payload)


def _rescrub(exc: SmsGateError, scrub: Scrubber) -> None:
    """Remove one more secret from an error already built (the sub-account's password)."""
    exc.message = scrub(exc.message)
    exc.args = (exc.message,)
    if isinstance(exc, ProviderError) and exc.detail:
        exc.detail = scrub(exc.detail)
    if isinstance(exc, ProtocolError):
        exc.excerpt = scrub(exc.excerpt)
    _drop_secret_cause(exc, scrub)
