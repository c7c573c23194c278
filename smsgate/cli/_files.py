"""Reading bulk files: rows of a CSV file as messages, read lazily."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

import click

from .._models import Message

__all__ = ["NUMBER_HEADERS", "SENDER_HEADERS", "TEXT_HEADERS", "read_csv", "same_line"]

#: Header names recognised in a bulk CSV file, per column.
NUMBER_HEADERS = frozenset({"number", "to", "mobile", "phone", "recipient", "msisdn"})
TEXT_HEADERS = frozenset({"text", "message", "body"})
SENDER_HEADERS = frozenset({"sender", "from", "line"})


def read_csv(path: Path, *, text: str | None, sender: str | None) -> Iterator[Message]:
    """Rows of a bulk file as messages, read lazily (a million rows stay a few KiB).

    Columns: number, text, optional sender; or named by a header row (``number``/``to``/
    ``mobile``..., ``text``/``message``, ``sender``/``from``/``line``). ``text`` (the
    ``--text`` option) replaces the file's texts; ``sender`` fills rows without one.
    """
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        columns = (0, 1, 2)
        first = True
        for row in reader:
            cells = [cell.strip() for cell in row]
            if not any(cells):
                continue
            if first:
                first = False
                names = [cell.lower() for cell in cells]
                looks_like_header = names[0] in NUMBER_HEADERS or bool(
                    set(names) & (TEXT_HEADERS | SENDER_HEADERS)
                )
                if looks_like_header and not _is_number(cells[0]):
                    columns = (
                        _find(names, NUMBER_HEADERS, 0),
                        _find(names, TEXT_HEADERS, 1),
                        _find(names, SENDER_HEADERS, 2),
                    )
                    if columns[0] < 0:
                        raise click.UsageError(
                            f"{path.name}: the header names no number column "
                            f"(one of: {', '.join(sorted(NUMBER_HEADERS))})"
                        )
                    if columns[1] < 0 and text is None:
                        raise click.UsageError(
                            f"{path.name}: the header names no text column "
                            f"(one of: {', '.join(sorted(TEXT_HEADERS))}); or pass --text"
                        )
                    continue
            number = _cell(cells, columns[0]) or ""
            body = text if text is not None else (_cell(cells, columns[1]) or "")
            line = _cell(cells, columns[2]) or sender
            yield Message(to=number, text=body, sender=line)


def _is_number(cell: str) -> bool:
    from .._phone import normalize_msisdn

    try:
        normalize_msisdn(cell)
    except ValueError:
        return False
    return True


def same_line(a: str, b: str) -> bool:
    """Whether two spellings name one sender line (``+983000505``, ``983000505``...)."""

    def digits(line: str) -> str:
        text = "".join(ch for ch in line if ch.isdigit())
        for prefix in ("0098", "98", "0"):
            if text.startswith(prefix):
                return text[len(prefix) :]
        return text

    return digits(a) == digits(b) and bool(digits(a))


def digest(path: Path) -> str:
    """A short digest of a file's bytes (read in chunks; the file may be large)."""
    import hashlib

    hashed = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            hashed.update(chunk)
    return hashed.hexdigest()[:12]


def _find(names: list[str], wanted: frozenset[str], default: int) -> int:
    for index, name in enumerate(names):
        if name in wanted:
            return index
    return -1 if default < len(names) and names[default] else default


def _cell(cells: list[str], index: int) -> str | None:
    if 0 <= index < len(cells) and cells[index]:
        return cells[index]
    return None
