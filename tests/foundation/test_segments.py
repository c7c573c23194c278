"""segments: GSM-7 and UCS-2 part counting the way operators bill."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

import smsgate
from smsgate import Segments, segments
from smsgate._segments import _GSM7_BASIC, _GSM7_EXTENSION

GSM_BASIC = sorted(_GSM7_BASIC - {"\x1b"})
GSM_EXT = sorted(_GSM7_EXTENSION)


def test_api_example() -> None:
    """The API.md example."""
    assert segments("سلام") == Segments(encoding="UCS-2", parts=1, chars=4, per_part=70)


def test_issue_examples() -> None:
    """71 Persian letters are 2 parts; 160 ASCII characters are 1."""
    assert segments("س" * 71).parts == 2
    assert segments("a" * 160).parts == 1
    assert segments("a" * 161).parts == 2


@pytest.mark.parametrize(
    ("text", "encoding", "parts"),
    [
        ("a" * 153 * 2, "GSM-7", 2),
        ("a" * (153 * 2 + 1), "GSM-7", 3),
        ("€" * 80, "GSM-7", 1),  # 160 septets
        ("€" * 81, "GSM-7", 2),
        ("س" * 70, "UCS-2", 1),
        ("س" * 134, "UCS-2", 2),
        ("س" * 135, "UCS-2", 3),
        ("😀" * 35, "UCS-2", 1),  # 70 UTF-16 units
        ("a" * 159 + "😀", "UCS-2", 3),
        ("", "GSM-7", 0),
    ],
)
def test_boundaries(text: str, encoding: str, parts: int) -> None:
    """Part boundaries at 160/153 and 70/67, extension characters and surrogates counted double."""
    result = segments(text)
    assert (result.encoding, result.parts) == (encoding, parts)


def test_escape_pair_is_not_split() -> None:
    """An extension character that would straddle parts moves whole to the next part."""
    # 152 plain septets then '€' (2 septets) does not fit in the first 153: 2 parts of 152 and 2+...
    text = "a" * 152 + "€" + "a" * 152
    assert segments(text).chars == 306
    assert segments(text).parts == 3  # 152 | 2+151 | 1


def test_non_gsm_reports_the_character() -> None:
    """The first character that forced UCS-2 is reported."""
    assert segments("hello ی").non_gsm == "ی"
    assert segments("hello").non_gsm is None


@given(st.lists(st.sampled_from(GSM_BASIC + GSM_EXT), max_size=600))
def test_property_gsm(chars: list[str]) -> None:
    """GSM-7 text: chars counts septets; parts within the billing formula's bounds."""
    text = "".join(chars)
    result = segments(text)
    septets = sum(2 if c in _GSM7_EXTENSION else 1 for c in chars)
    assert result.encoding == "GSM-7"
    assert result.chars == septets
    if septets == 0:
        assert result.parts == 0
    elif septets <= 160:
        assert result.parts == 1
    else:
        lower = math.ceil(septets / 153)
        assert lower <= result.parts <= math.ceil(septets / 152)


@given(
    st.text(min_size=1, max_size=300).filter(
        lambda t: any(c not in _GSM7_BASIC and c not in _GSM7_EXTENSION for c in t)
    )
)
def test_property_ucs2(text: str) -> None:
    """Any non-GSM character forces UCS-2, counted in UTF-16 code units."""
    result = segments(text)
    units = len(text.encode("utf-16-le")) // 2
    assert result.encoding == "UCS-2"
    assert result.chars == units
    if units <= 70:
        assert result.parts == 1
    else:
        assert math.ceil(units / 67) <= result.parts <= math.ceil(units / 66)


@pytest.mark.parametrize("value", [None, b"hi", 42, ["hi"]])
def test_not_a_str_is_a_typed_error(value: object) -> None:
    """segments(None) and other non-texts raise InvalidMessageError, not TypeError."""
    with pytest.raises(smsgate.InvalidMessageError, match="must be a str"):
        segments(value)  # type: ignore[arg-type]
