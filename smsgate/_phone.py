"""Iranian mobile numbers: normalisation to E.164 and the provider formats.

Pure functions, no I/O. Every Iranian mobile number is ``+98 9XX XXX XXXX``; the operators
keep allocating new ``09xx`` prefixes (0900-0905, 0941, 099x ...), and validators that
check a prefix table have broken each time (persian-tools#280, 0902/0903, 0905). So the
rule here is structural: ten digits starting with 9 after the country code. What
users actually type is the hard part: Persian (U+06F0..) and Arabic-Indic (U+0660..)
digits, spaces, dashes, brackets, and the invisible direction marks that come with text
pasted from a right-to-left editor.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from .exceptions import InvalidRecipientError, TooManyRecipientsError

__all__ = [
    "canonical_line",
    "normalize_msisdn",
    "normalize_recipients",
    "to_local",
    "to_national",
]

# Persian and Arabic-Indic digits to ASCII.
_DIGITS = {ord(c): str(i) for i, c in enumerate("۰۱۲۳۴۵۶۷۸۹")} | {
    ord(c): str(i) for i, c in enumerate("٠١٢٣٤٥٦٧٨٩")
}
# Separators people type inside numbers, and invisible marks that come with pasted
# right-to-left text (ZWNJ, ZWJ, LRM, RLM, the bidi embeddings and isolates, BOM).
_SEPARATORS = " \t\u00a0\u202f\u2009-\u2010\u2011\u2012\u2013\u2014()"
_INVISIBLE = "\u200c\u200d\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\ufeff"
_DROP = {ord(c): None for c in _SEPARATORS + _INVISIBLE}
_TABLE = _DIGITS | _DROP

# After cleaning: an optional international prefix (+98, 0098, 98) or a trunk 0, then the
# ten-digit subscriber number starting with 9.
_MOBILE = re.compile(r"(?:\+98|0098|98|0)?(9[0-9]{9})")

_MAX_INPUT = 64  # longer input is not a phone number; refuse before doing any work


def normalize_msisdn(value: str) -> str:
    """Return an Iranian mobile number in E.164 form (``+989121234567``).

    Accepts Persian and Arabic-Indic digits, spaces, dashes, brackets and invisible
    direction marks, in the forms ``09…``, ``9…``, ``989…``, ``+989…`` and ``00989…``.

    Args:
        value: The number as the user typed it.

    Returns:
        ``"+98"`` followed by the ten-digit subscriber number.

    Raises:
        InvalidRecipientError: For anything else (also a ``ValueError``), before any I/O.
    """
    if not isinstance(value, str):
        raise InvalidRecipientError(
            f"a phone number must be a str, not {type(value).__name__}", value=value
        )
    if len(value) > _MAX_INPUT:
        raise InvalidRecipientError("not an Iranian mobile number (too long)", value=value[:20])
    fast = _plain(value)
    if fast is not None:
        return fast
    cleaned = value.translate(_TABLE)
    match = _MOBILE.fullmatch(cleaned)
    if match is None:
        raise InvalidRecipientError(f"not an Iranian mobile number: {value!r}", value=value)
    return "+98" + match.group(1)


def _plain(value: str) -> str | None:
    """The E.164 form of a number typed in one of the plain ASCII spellings, else ``None``.

    The common case of a bulk job (``09…``, ``9…``, ``989…``, ``+989…``, ``00989…`` in
    ASCII digits, nothing to clean), without the translation and the regular expression:
    exactly what :data:`_MOBILE` gives for such a string. Anything else (``None``) takes the
    full path, which also raises the error.
    """
    if not value.isascii():
        return None
    size = len(value)
    if size == 13:
        digits = value[1:]
        if value[:4] == "+989" and digits.isdigit():
            return value
        return None
    if not value.isdigit():
        return None
    if size == 11:
        return "+98" + value[1:] if value[:2] == "09" else None
    if size == 10:
        return "+98" + value if value[0] == "9" else None
    if size == 12:
        return "+" + value if value[:3] == "989" else None
    if size == 14:
        return "+" + value[2:] if value[:5] == "00989" else None
    return None


def to_national(msisdn: str) -> str:
    """Return the twelve-digit ``98…`` form (what Negin sends and echoes) of a number."""
    return normalize_msisdn(msisdn)[1:]


def to_local(msisdn: str) -> str:
    """Return the eleven-digit ``09…`` form of a number."""
    return "0" + normalize_msisdn(msisdn)[3:]


_LINE_PREFIX = re.compile(r"(?:\+|00)?(?:98)?0?")


def canonical_line(value: str) -> str:
    """One spelling of a sender line, for keys and comparisons (never sent as is).

    ``"+983000505"``, ``"983000505"``, ``"00983000505"``, ``"03000505"`` and ``"3000505"``
    (Persian digits, spaces and dashes allowed) are one line: ``"+983000505"``. The
    providers read lines in several spellings; what one customer receives must not depend
    on which spelling the caller used, so deduplication and the journal key use this form.

    Args:
        value: A line number in any of those spellings.

    Returns:
        ``"+98"`` and the line's national digits.

    Raises:
        ValueError: If ``value`` is not a str of digits after cleaning.
    """
    if not isinstance(value, str):
        raise TypeError(f"a line must be a str, not {type(value).__name__}")
    cleaned = value.translate(_TABLE)
    digits = cleaned[1:] if cleaned.startswith("+") else cleaned
    if not digits.isascii() or not digits.isdigit():
        raise ValueError(f"not a line number: {value!r}")
    match = _LINE_PREFIX.match(cleaned)
    national = cleaned[match.end() :] if match else digits
    if not national:
        raise ValueError(f"not a line number: {value!r}")
    return "+98" + national


def normalize_recipients(
    to: object, *, limit: int | None = None, provider: str = ""
) -> tuple[str, ...]:
    """The recipients of one send, each in E.164, checked before any I/O.

    The one rule of both backends: ``to`` is one ``str`` or a sequence of ``str`` (a list
    or a tuple: order matters, since receipts map each number to its id, so a ``set`` is
    refused); it is not empty; every number normalises; and no number is given twice in
    any spelling (it would be sent, and charged, twice).

    Args:
        to: What the caller passed as ``to``.
        limit: The most numbers one request may carry, if the backend has such a limit.
        provider: The backend's name, for :class:`~smsgate.TooManyRecipientsError`.

    Returns:
        The numbers, E.164, in the order given.

    Raises:
        InvalidRecipientError: For a wrong type, an empty list, a bad number or a
            duplicate (also a ``ValueError``).
        TooManyRecipientsError: More numbers than ``limit``.
    """
    if isinstance(to, str):
        numbers: Sequence[object] = (to,)
    elif isinstance(to, list | tuple):
        numbers = to
    else:
        raise InvalidRecipientError(
            f"'to' must be a str, or a list or tuple of str, not {type(to).__name__}",
            value=None if to is None else type(to).__name__,
        )
    if not numbers:
        raise InvalidRecipientError("no recipients given", value=None)
    if limit is not None and len(numbers) > limit:
        raise TooManyRecipientsError(
            f"{len(numbers)} recipients; at most {limit} may go in one request "
            "(checked before sending)",
            provider=provider,
        )
    out: dict[str, None] = {}
    for number in numbers:
        msisdn = normalize_msisdn(number)  # type: ignore[arg-type] # the type is checked inside
        if msisdn in out:
            raise InvalidRecipientError(
                f"{msisdn} is given more than once; it would be sent (and charged) twice",
                value=msisdn,
            )
        out[msisdn] = None
    return tuple(out)
