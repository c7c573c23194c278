"""Message texts: the one check every entry point runs before any I/O.

Both backends, the dispatcher and the CLI call :func:`check_text`, so a text that cannot be
sent fails as one typed :class:`~smsgate.InvalidMessageError` for its own row, never as a
``UnicodeEncodeError`` deep inside a transport that takes a whole job down with it.
"""

from __future__ import annotations

from .exceptions import InvalidMessageError

__all__ = ["MAX_TEXT_CHARS", "check_text"]

#: The longest text smsgate uploads. No provider document accepts more: the longest limit
#: any of them states is 1,400 characters (ippanel's newer drafts API), and a text this long
#: is already 30 UCS-2 parts. Longer texts are refused before any request.
MAX_TEXT_CHARS = 2000


def check_text(text: object, *, what: str = "the text") -> str:
    """Return ``text`` if it can be sent; else raise :class:`~smsgate.InvalidMessageError`.

    Refused: anything that is not a ``str``, a text that is empty or only white space, a
    text with a lone surrogate (it cannot be encoded as UTF-8 or UCS-2: ``"\\ud800"``), and a
    text longer than :data:`MAX_TEXT_CHARS`.

    Args:
        text: The message text as the caller gave it.
        what: How the error names the field.

    Returns:
        The text, unchanged.

    Raises:
        InvalidMessageError: With a message naming what is wrong (also a ``ValueError``).
    """
    if not isinstance(text, str):
        raise InvalidMessageError(f"{what} must be a str, not {type(text).__name__}")
    if not text.strip():
        raise InvalidMessageError(f"{what} is empty")
    if len(text) > MAX_TEXT_CHARS:
        raise InvalidMessageError(
            f"{what} has {len(text)} characters; no provider accepts more than {MAX_TEXT_CHARS}"
        )
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidMessageError(
            f"{what} holds a lone surrogate at position {exc.start} "
            f"(U+{ord(text[exc.start]):04X}); it cannot be encoded for any provider"
        ) from None
    return text
