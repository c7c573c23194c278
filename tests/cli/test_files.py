"""Reading bulk files: encodings, separators, .xlsx, and errors that say what to do."""

from __future__ import annotations

import codecs
from pathlib import Path

import click
import pytest

from smsgate.cli._files import UnreadableFileError, detect_encoding, read_rows
from smsgate.testing import FakeProvider, LoopbackServer

from ._helpers import env_for, invoke

PERSIAN = "سلام، سفارش شما ارسال شد"
ROWS = [("09121111111", PERSIAN), ("09122222222", "دوم"), ("09123333333", "hello; world")]


def _lines(separator: str = ",", header: bool = True) -> str:
    quote = (lambda cell: f'"{cell}"') if separator == "," else (lambda cell: cell)
    body = [f"{number}{separator}{quote(text)}" for number, text in ROWS]
    if separator == ";":
        body = [f'{number};"{text}"' for number, text in ROWS]
    return "\r\n".join(([f"number{separator}text"] if header else []) + body) + "\r\n"


def _messages(path: Path, **kwargs: str) -> list[tuple[str, str]]:
    return [(m.to, m.text) for m in read_rows(path, text=None, sender=None, **kwargs)]


@pytest.mark.parametrize(
    ("encoding", "detected"),
    [
        ("utf-8", "utf-8"),
        ("utf-8-sig", "utf-8-sig"),
        ("utf-16", "utf-16"),
        ("utf-16-le", "utf-16-le"),
        ("cp1256", "cp1256"),
    ],
)
def test_encodings_are_detected(tmp_path: Path, encoding: str, detected: str) -> None:
    """BOM, then strict UTF-8, then Windows-1256; UTF-16 without a mark by its zero bytes."""
    path = tmp_path / "rows.csv"
    path.write_bytes(_lines().encode(encoding))
    assert detect_encoding(path) == detected
    assert _messages(path) == list(ROWS)


@pytest.mark.parametrize("separator", [",", ";", "\t"])
def test_separators_are_sniffed(tmp_path: Path, separator: str) -> None:
    """Comma, semicolon (Excel in many locales) and tab, with and without a header."""
    for header in (True, False):
        path = tmp_path / "rows.csv"
        path.write_text(_lines(separator, header), encoding="utf-8")
        assert _messages(path) == list(ROWS)


def test_utf8_file_with_one_damaged_line_is_refused_not_read_as_cp1256(tmp_path: Path) -> None:
    """Five UTF-8 Persian rows and one Windows-1256 row: reading it all as cp1256 would send
    mojibake, so the file is refused with the damaged line and what to do."""
    good = "".join(f"0912111111{i},{PERSIAN}\r\n" for i in range(5)).encode("utf-8")
    path = tmp_path / "mixed.csv"
    path.write_bytes(good + f"09122222222,{PERSIAN}\r\n".encode("cp1256"))
    with pytest.raises(UnreadableFileError) as info:
        detect_encoding(path)
    assert info.value.line == 6 and "--encoding cp1256" in info.value.fix


def test_comma_file_whose_texts_hold_semicolons(tmp_path: Path) -> None:
    """No header, a ";" in every text: the separator that puts a number first wins."""
    path = tmp_path / "semi.csv"
    path.write_text(
        "".join(f"0912123456{i},Hello; your order {i} shipped\n" for i in range(3)),
        encoding="utf-8",
    )
    assert _messages(path) == [
        (f"0912123456{i}", f"Hello; your order {i} shipped") for i in range(3)
    ]


def test_forced_encoding_that_does_not_fit_names_the_file_and_line(tmp_path: Path) -> None:
    """--encoding utf-8 on a Windows-1256 file: which file, which line, what to do."""
    path = tmp_path / "persian.csv"
    path.write_bytes(("09121111111,hello\n" + _lines(header=False)).encode("cp1256"))
    with pytest.raises(UnreadableFileError) as caught:
        _messages(path, encoding="utf-8")
    message = caught.value.format_message()
    assert "persian.csv, line 2" in message
    assert "utf-8" in message
    assert "--encoding" in caught.value.fix
    with pytest.raises(UnreadableFileError, match="unknown encoding"):
        _messages(path, encoding="klingon")


def test_xlsx_rows_are_read(tmp_path: Path) -> None:
    """An .xlsx sheet (numbers typed as numbers lose their 0: still read) with a header."""
    openpyxl = pytest.importorskip("openpyxl")
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["Mobile", "Message"])
    sheet.append([9121111111, PERSIAN])
    sheet.append(["09122222222", "دوم"])
    sheet.append([None, None])
    path = tmp_path / "rows.xlsx"
    book.save(path)
    assert _messages(path) == [("9121111111", PERSIAN), ("09122222222", "دوم")]


def test_broken_xlsx_says_what_to_do(tmp_path: Path) -> None:
    """A file named .xlsx that is not a workbook is one clear error, not a traceback."""
    path = tmp_path / "rows.xlsx"
    path.write_text("number,text\n", encoding="utf-8")
    with pytest.raises(UnreadableFileError, match="not an Excel"):
        _messages(path)


def test_unreadable_file_error_is_one_line_and_a_hint(tmp_path: Path) -> None:
    """The click exception prints like every other CLI error and exits 1."""
    error = UnreadableFileError(tmp_path / "x.csv", "broken", line=3, fix="do this")
    assert isinstance(error, click.ClickException)
    assert error.exit_code == 1


@pytest.mark.parametrize("kind", ["cp1256", "utf-16", "semicolon", "xlsx"])
def test_real_world_files_run_end_to_end(
    served: tuple[FakeProvider, LoopbackServer], tmp_path: Path, kind: str
) -> None:
    """Windows-1256, UTF-16, ';' and .xlsx files each send every row, once, text intact."""
    fake, server = served
    if kind == "xlsx":
        openpyxl = pytest.importorskip("openpyxl")
        book = openpyxl.Workbook()
        sheet = book.active
        sheet.append(["number", "text"])
        for number, text in ROWS:
            sheet.append([number, text])
        path = tmp_path / "rows.xlsx"
        book.save(path)
    else:
        path = tmp_path / "rows.csv"
        content = _lines(";") if kind == "semicolon" else _lines()
        path.write_bytes(content.encode("utf-8" if kind == "semicolon" else kind))
    result = invoke(["bulk", str(path), "--no-progress"], env_for(server))
    assert result.exit_code == 0, result.output
    assert sorted((e.recipient, e.text) for e in fake.ledger) == sorted(
        ("+98" + number[1:], text) for number, text in ROWS
    )


def test_bulk_on_an_unreadable_file_exits_1_with_the_line(
    served: tuple[FakeProvider, LoopbackServer], tmp_path: Path
) -> None:
    """Through the command: exit 1, file and line named, nothing sent, no traceback."""
    fake, server = served
    path = tmp_path / "bad.csv"
    path.write_bytes(b"09121111111,hi\n09122222222,\xff\xfe\xfa\n")
    result = invoke(["bulk", str(path), "--encoding", "utf-8"], env_for(server))
    assert result.exit_code == 1
    assert "bad.csv, line 2" in result.stderr
    assert "hint:" in result.stderr
    assert "Traceback" not in result.stderr
    assert fake.ledger == []
    assert codecs.lookup("cp1256")  # the default guess exists on this Python
