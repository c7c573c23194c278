"""Reading bulk files: CSV (any of the encodings Excel writes) and ``.xlsx``, lazily.

A CSV file's encoding is found in this order: a byte-order mark (UTF-8, UTF-16), strict
UTF-8, then Windows-1256 (what Excel saves a Persian sheet as by default); ``--encoding``
skips the guess. The separator (``,``, ``;`` or tab) is sniffed from the first lines. An
``.xlsx`` file is read with openpyxl in read-only mode, one row at a time (the ``xlsx``
extra). A file that cannot be read raises :class:`UnreadableFileError`, which names the
file, the line and what to do.
"""

from __future__ import annotations

import codecs
import csv
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import click

from .._models import Message

__all__ = [
    "NUMBER_HEADERS",
    "SENDER_HEADERS",
    "TEXT_HEADERS",
    "UnreadableFileError",
    "detect_encoding",
    "read_rows",
    "same_line",
]

#: Header names recognised in a bulk file, per column.
NUMBER_HEADERS = frozenset({"number", "to", "mobile", "phone", "recipient", "msisdn"})
TEXT_HEADERS = frozenset({"text", "message", "body"})
SENDER_HEADERS = frozenset({"sender", "from", "line"})

EXCEL_SUFFIXES = frozenset({".xlsx", ".xlsm"})
_SEPARATORS = ("\t", ";", ",")  # in order of preference when several fit
_SAMPLE_LINES = 50


class UnreadableFileError(click.ClickException):
    """A bulk file that cannot be read: which file, which line, and what to do (exit 1)."""

    exit_code = 1

    def __init__(self, path: Path, problem: str, *, line: int | None = None, fix: str) -> None:
        where = f"{path.name}, line {line}" if line is not None else path.name
        super().__init__(f"{where}: {problem}")
        self.path = path
        self.line = line
        self.fix = fix

    def show(self, file: IO[Any] | None = None) -> None:
        """Print ``error: FILE, line N: problem`` and the hint, like every CLI error."""
        click.echo(f"error: {self.format_message()}\nhint: {self.fix}", file=file, err=True)


def read_rows(
    path: Path, *, text: str | None, sender: str | None, encoding: str | None = None
) -> Iterator[Message]:
    """Rows of a bulk file as messages, read lazily (a million rows stay a few KiB).

    Columns: number, text, optional sender; or named by a header row (``number``/``to``/
    ``mobile``..., ``text``/``message``, ``sender``/``from``/``line``). ``text`` (the
    ``--text`` option) replaces the file's texts; ``sender`` fills rows without one.
    """
    rows = _excel_rows(path) if path.suffix.lower() in EXCEL_SUFFIXES else _csv_rows(path, encoding)
    columns = (0, 1, 2)
    first = True
    for cells in rows:
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


# -- CSV ----------------------------------------------------------------------------------


def detect_encoding(path: Path) -> str:
    """The encoding to read a CSV file with: BOM, then strict UTF-8, then Windows-1256."""
    with path.open("rb") as handle:
        head = handle.read(4)
        if head.startswith(codecs.BOM_UTF8):
            return "utf-8-sig"
        if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
            return "utf-16"
        if len(head) >= 4 and head[1] == 0 and head[3] == 0 and head[0] and head[2]:
            return "utf-16-le"  # no mark, but ASCII every other byte
        if len(head) >= 4 and head[0] == 0 and head[2] == 0 and head[1] and head[3]:
            return "utf-16-be"
        handle.seek(0)
        # Line by line: a file whose lines are UTF-8 Persian but for a few is a UTF-8 file
        # with damaged lines, not a Windows-1256 one (read as cp1256, its Persian would go
        # out as mojibake): it is refused with the first bad line. Only a file with no
        # UTF-8 multi-byte text at all is read as Windows-1256.
        first_bad: int | None = None
        utf8_text = False
        for number, raw in enumerate(handle, start=1):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError:
                if first_bad is None:
                    first_bad = number
                continue
            utf8_text = utf8_text or not raw.isascii()
            if utf8_text and first_bad is not None:
                break
    if first_bad is None:
        return "utf-8"
    if utf8_text:
        raise UnreadableFileError(
            path,
            "mixes UTF-8 text with bytes that are not UTF-8",
            line=first_bad,
            fix="fix that line (or save the whole file as 'CSV UTF-8'); to read it all as "
            "Windows-1256 anyway, pass --encoding cp1256",
        )
    return "cp1256"


def _check_encoding(path: Path, encoding: str) -> str:
    try:
        return codecs.lookup(encoding).name
    except LookupError:
        raise UnreadableFileError(
            path,
            f"unknown encoding {encoding!r}",
            fix="pass --encoding utf-8, utf-16 or cp1256 (Windows Arabic/Persian)",
        ) from None


def _sniff_separator(sample: list[str]) -> str:
    """The separator that splits every sampled line into the same number (> 1) of cells."""
    lines = [line for line in sample if line.strip()]
    if not lines:
        return ","
    fitting = []
    for separator in _SEPARATORS:
        rows = list(csv.reader(lines, delimiter=separator))
        counts = {len(row) for row in rows}
        if len(counts) == 1 and counts.pop() > 1:
            fitting.append((separator, rows))
    if fitting:
        # Several fit (texts with ";" in a comma file): the one whose first cell is a phone
        # number in the data lines wins; else the first in order of preference.
        for separator, rows in fitting:
            if any(_is_number(row[0]) for row in rows):
                return separator
        return fitting[0][0]
    # Ragged rows (an optional sender column): the separator present in most lines.
    best = max(_SEPARATORS, key=lambda sep: sum(sep in line for line in lines))
    return best if any(best in line for line in lines) else ","


def _csv_rows(path: Path, encoding: str | None) -> Iterator[list[str]]:
    chosen = _check_encoding(path, encoding) if encoding else detect_encoding(path)
    if chosen == "utf-8" and encoding is None:
        chosen = "utf-8-sig"  # harmless without a mark; strips one if --encoding utf-8
    line = 0
    try:
        with path.open(newline="", encoding=chosen, errors="strict") as handle:
            sample = [handle.readline() for _ in range(_SAMPLE_LINES)]
            separator = _sniff_separator(sample)
            handle.seek(0)
            reader = csv.reader(handle, delimiter=separator)
            for row in reader:
                line = reader.line_num
                yield [cell.strip().lstrip("\ufeff") for cell in row]
    except UnicodeError:
        raise UnreadableFileError(
            path,
            f"not readable as {chosen}",
            line=_bad_line(path, chosen) or line + 1,
            fix="save it from Excel as 'CSV UTF-8', or pass --encoding (utf-8, utf-16, cp1256)",
        ) from None
    except csv.Error as exc:
        raise UnreadableFileError(
            path, f"not a CSV file ({exc})", line=line + 1, fix="check the quoting on that line"
        ) from None


def _bad_line(path: Path, encoding: str) -> int | None:
    """The first line that does not decode (for encodings where a line ends in one byte)."""
    if "16" in encoding or "32" in encoding:
        return None
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                raw.decode(encoding)
            except UnicodeError:
                return number
    return None


# -- Excel ----------------------------------------------------------------------------------


def _excel_rows(path: Path) -> Iterator[list[str]]:
    try:
        import openpyxl  # type: ignore[import-untyped]
    except ImportError:
        raise UnreadableFileError(
            path,
            "reading .xlsx files needs openpyxl (the 'xlsx' extra)",
            fix="pip install openpyxl (in a checkout: pip install '.[cli,xlsx]'), "
            "or save the sheet as 'CSV UTF-8'",
        ) from None
    from zipfile import BadZipFile

    try:
        book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except (BadZipFile, KeyError, ValueError, OSError) as exc:
        raise UnreadableFileError(
            path,
            f"not an Excel .xlsx workbook ({type(exc).__name__})",
            fix="open it in Excel and save it as .xlsx or as 'CSV UTF-8'",
        ) from None
    try:
        sheet = book.worksheets[0]
        for values in sheet.iter_rows(values_only=True):
            yield [_excel_cell(value) for value in values]
    finally:
        book.close()


def _excel_cell(value: object) -> str:
    """A cell as text: numbers without a trailing ``.0`` (a number typed as 9121234567)."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


# -- cells ----------------------------------------------------------------------------------


def _is_number(cell: str) -> bool:
    from .._phone import normalize_msisdn

    try:
        normalize_msisdn(cell)
    except ValueError:
        return False
    return True


def same_line(a: str, b: str) -> bool:
    """Whether two spellings name one sender line (``+983000505``, ``983000505``...)."""
    from .._phone import canonical_line

    try:
        return canonical_line(a) == canonical_line(b)
    except ValueError:
        return False


def _find(names: list[str], wanted: frozenset[str], default: int) -> int:
    for index, name in enumerate(names):
        if name in wanted:
            return index
    return -1 if default < len(names) and names[default] else default


def _cell(cells: list[str], index: int) -> str | None:
    if 0 <= index < len(cells) and cells[index]:
        return cells[index]
    return None
