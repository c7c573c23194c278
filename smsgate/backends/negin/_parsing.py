"""Pure readers and checks of the Negin backend: lines, ids, the answers' fields (no I/O).

Section numbers refer to ``docs/protocols/negin.md``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from typing import Final

from ..._models import DeliveryReport
from ..._phone import _INVISIBLE, canonical_line
from ...exceptions import ConfigurationError, UnknownMessageError
from .._parse import DIGITS, as_int, as_text
from ._codes import PROVIDER, state_of

__all__ = [
    "chunks",
    "clean_line",
    "message_ids",
    "normalize_line",
    "report",
    "require_count",
    "require_text",
    "split_ids",
]

# The guide names the ids' separator "comma" and prints U+066B for it; Persian text also
# uses the Arabic comma U+060C (§5). All three are read.
_ID_SEPARATORS: Final = re.compile("[,\u060c\u066b]")
# Lines are sent as given after converting Persian/Arabic digits and dropping spaces and
# the invisible marks pasted right-to-left text carries (§3); anything else is refused.
_LINE_TABLE: Final = DIGITS | {ord(c): None for c in " \t\u00a0\u202f\u2009" + _INVISIBLE}


def require_text(value: object, field: str) -> None:
    """Refuse a setting that is not a non-empty str (Negin reads an empty field as absent)."""
    # Settings arrive from config files and environment variables: check the types too.
    if not isinstance(value, str) or not value.strip():
        raise ConfigurationError(f"{field} must be a non-empty str")


def require_count(value: object, field: str, *, minimum: int) -> None:
    """Refuse a setting that is not an int of at least ``minimum`` (``bool`` included)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigurationError(f"{field} must be an int of at least {minimum}")


def clean_line(value: object, field: str) -> str:
    """A line as it is sent: Persian digits converted, spaces dropped, digits only (§3)."""
    if not isinstance(value, str):
        raise ConfigurationError(f"{field} must be a str of digits, not {type(value).__name__}")
    line = value.translate(_LINE_TABLE)
    if not line.isascii() or not line.isdigit():
        raise ConfigurationError(
            f"{field} must be digits only, such as '9830003300', not {value!r}"
        )
    return line


def normalize_line(value: str) -> str:
    """Return a Negin line number in the ``98…`` form every example uses (§3).

    The gateway sends lines exactly as given; call this yourself if your panel shows
    the line without the country code (``30003300`` -> ``9830003300``). The prefix rule
    is ``smsgate._phone.canonical_line``'s, the one the dispatcher and the journal
    key lines by, so a line written any way normalises to the one form.

    Args:
        value: The line, with or without ``+98``, ``0098``, ``98`` or a trunk ``0``;
            Persian digits and spaces allowed.

    Returns:
        The line with the ``98`` prefix and digits only.

    Raises:
        ConfigurationError: If it is not a line number.
    """
    checked: object = value
    if not isinstance(checked, str):
        raise ConfigurationError(f"a line must be a str, not {type(checked).__name__}")
    text = value.strip()
    plus = text.startswith("+")
    digits = clean_line(text[1:] if plus else text, "line")
    national = canonical_line(("+" if plus else "") + digits)[3:]
    if len(national) < 4:
        raise ConfigurationError(f"not a line number: {value!r}")
    return "98" + national


def split_ids(value: object) -> list[str]:
    """Ids (or states) from a comma-joined string or a JSON list (§5)."""
    if isinstance(value, str):
        parts: Iterable[object] = _ID_SEPARATORS.split(value)
    elif isinstance(value, list):
        parts = value
    else:
        return []
    out = []
    for part in parts:
        text = as_text(part.strip().strip("\"'") if isinstance(part, str) else part)
        out.append("" if text is None else text)
    return out


def message_ids(ref: str | int | Iterable[str | int]) -> list[str]:
    """The ids a caller asked about, deduplicated in order; non-ids refused before I/O."""
    if isinstance(ref, int):
        items: list[str | int] = [ref]
    elif isinstance(ref, str):
        # A comma-joined handle (a multi-number receipt's message_id); a trailing comma
        # leaves an empty piece, which is not an id someone asked about.
        items = [p for p in _ID_SEPARATORS.split(ref) if p.strip()]
    else:
        items = list(ref)
    seen: dict[str, None] = {}
    for item in items:
        number = as_int(item.strip().strip("\"'") if isinstance(item, str) else item)
        if number is None or number <= 0:
            raise UnknownMessageError(
                f"{item!r} is not a Negin message id (they are positive integers)",
                provider=PROVIDER,
            )
        seen.setdefault(str(number))
    return list(seen)


def chunks(items: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    """``items`` in slices of at most ``size``."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def report(message_id: str, raw_state: object, recipient: str | None) -> DeliveryReport:
    """One delivery report from a per-message state code; the raw value is kept."""
    code = as_int(raw_state)
    return DeliveryReport(
        message_id=message_id,
        recipient=recipient,
        state=state_of(code),
        provider_status=str(code) if code is not None else str(raw_state),
        provider=PROVIDER,
    )
