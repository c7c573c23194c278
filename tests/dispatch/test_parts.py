"""``_pacing.parts``: the SMS parts of a text, with a fast path for short texts."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from smsgate._segments import segments
from smsgate.dispatch._pacing import parts


@given(st.text(max_size=90))
def test_parts_fast_path_agrees_with_the_full_count(text: str) -> None:
    parts.cache_clear()
    assert parts(text) == max(1, segments(text).parts)


def test_parts_at_the_edges() -> None:
    """70 UTF-16 code units and 160 septets, on either side, in both encodings."""
    for text in (
        "",
        "a" * 70,
        "€" * 70,  # GSM-7 extension: 140 septets
        "€" * 81,  # 162 septets: two parts
        "س" * 70,
        "س" * 71,
        "😀" * 35,  # 70 UTF-16 code units
        "😀" * 36,
        "a" * 160,
        "a" * 161,
    ):
        parts.cache_clear()
        assert parts(text) == max(1, segments(text).parts), text
