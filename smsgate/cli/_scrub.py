"""Output scrubbing: a text stream that masks every registered secret before writing."""

from __future__ import annotations

import io
from typing import IO

__all__ = ["ScrubbingWriter", "scrub"]

MASK = "***"


def scrub(text: str, secrets: list[str]) -> str:
    """``text`` with every secret in ``secrets`` (longest first) replaced by ``***``."""
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    return text


class ScrubbingWriter(io.TextIOBase):
    """A text stream that removes every registered secret before writing through.

    ``secrets`` is shared with the caller: a secret added later is masked from then on.
    """

    def __init__(self, target: IO[str], secrets: list[str]) -> None:
        super().__init__()
        self._target = target
        self._secrets = secrets

    def write(self, text: str) -> int:
        text = scrub(text, self._secrets)
        self._target.write(text)
        return len(text)

    def flush(self) -> None:
        self._target.flush()

    def isatty(self) -> bool:
        isatty = getattr(self._target, "isatty", None)
        return bool(isatty()) if callable(isatty) else False

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self._target, "encoding", None) or "utf-8"
