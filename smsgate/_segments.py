"""Count SMS parts the way operators bill them.

GSM 03.38 text goes out as 7-bit septets: 160 in one part, 153 per part once the message
is split (the user-data header takes 7). Characters of the extension table (``^{}[~]|€\\``
and form feed) are sent as escape + character and count twice, and an escape pair is
never split across two parts. Anything else (any Persian letter, emoji) forces UCS-2:
70 UTF-16 code units in one part, 67 per part when split, and a surrogate pair (an emoji
outside the BMP) is never split across two parts (fiorix/go-smpp#114).
"""

from __future__ import annotations

import attrs

from .exceptions import InvalidMessageError

__all__ = ["Segments", "segments"]

_GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM7_EXTENSION = frozenset("\f^{}\\[~]|€")

GSM7 = "GSM-7"
UCS2 = "UCS-2"


@attrs.frozen(kw_only=True)
class Segments:
    """How many SMS parts a text costs.

    Attributes:
        encoding: ``"GSM-7"`` or ``"UCS-2"``.
        parts: The number of SMS parts an operator bills (0 for an empty text).
        chars: The length in billing units: septets for GSM-7 (extension characters count
            twice), UTF-16 code units for UCS-2.
        per_part: Units that fit in one part at this length: 160/70 for a single part,
            153/67 once the text is split.
        non_gsm: The first character that forced UCS-2, or ``None``.
    """

    encoding: str
    parts: int
    chars: int
    per_part: int
    non_gsm: str | None = attrs.field(default=None, eq=False, repr=False)


def _units(text: str) -> tuple[str, list[int], str | None]:
    """Return the encoding and the width in units of each character."""
    widths: list[int] = []
    for ch in text:
        if ch in _GSM7_BASIC and ch != "\x1b":
            widths.append(1)
        elif ch in _GSM7_EXTENSION:
            widths.append(2)
        else:
            return UCS2, [2 if ord(c) > 0xFFFF else 1 for c in text], ch
    return GSM7, widths, None


def _pack(widths: list[int], per_part: int) -> int:
    """Greedy packing: a character never straddles two parts."""
    parts, used = 1, 0
    for w in widths:
        if used + w > per_part:
            parts += 1
            used = 0
        used += w
    return parts


def segments(text: str) -> Segments:
    """Count the SMS parts of ``text``.

    >>> segments("سلام")
    Segments(encoding='UCS-2', parts=1, chars=4, per_part=70)

    Args:
        text: The message text.

    Returns:
        A frozen :class:`Segments`.

    Raises:
        InvalidMessageError: ``text`` is not a ``str`` (``None``, bytes, a number): a bad
            row is a typed error, never a ``TypeError`` from deep inside.
    """
    if not isinstance(text, str):
        raise InvalidMessageError(f"the text must be a str, not {type(text).__name__}")
    encoding, widths, non_gsm = _units(text)
    total = sum(widths)
    single, multi = (160, 153) if encoding == GSM7 else (70, 67)
    if total == 0:
        return Segments(encoding=encoding, parts=0, chars=0, per_part=single, non_gsm=non_gsm)
    if total <= single:
        return Segments(encoding=encoding, parts=1, chars=total, per_part=single, non_gsm=non_gsm)
    return Segments(
        encoding=encoding,
        parts=_pack(widths, multi),
        chars=total,
        per_part=multi,
        non_gsm=non_gsm,
    )
