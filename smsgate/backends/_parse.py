"""Small readers of provider answers that every backend shares (pure, no I/O).

Providers print numbers as JSON numbers, numeric strings, strings with spaces, and (the
Kapanel pages) Persian digits. One reader for all of them, so the backends agree.
"""

from __future__ import annotations

import re

__all__ = ["DIGITS", "as_int", "as_text"]

#: Persian (U+06F0..) and Arabic-Indic (U+0660..) digits to ASCII, for ``str.translate``.
DIGITS = {ord(c): str(i) for i, c in enumerate("۰۱۲۳۴۵۶۷۸۹")} | {
    ord(c): str(i) for i, c in enumerate("٠١٢٣٤٥٦٧٨٩")
}

_INT = re.compile(r"[+-]?\d+")


def as_int(value: object) -> int | None:
    """An int from ``0``, ``"0"``, ``" 0 "``, ``0.0`` or Persian digits; else ``None``.

    ``bool`` is not a number here (``True`` is never a code), nor is a float with a
    fraction.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        text = value.translate(DIGITS).strip()
        if _INT.fullmatch(text):
            return int(text)
    return None


def as_text(value: object) -> str | None:
    """A non-empty str from a JSON number or string (ids and lines); else ``None``."""
    number = as_int(value)
    if number is not None:
        return str(number)
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None
