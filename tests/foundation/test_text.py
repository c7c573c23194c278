"""check_text: the one text check every entry point runs before any I/O."""

from __future__ import annotations

import pytest

from smsgate import InvalidMessageError
from smsgate._text import MAX_TEXT_CHARS, check_text


@pytest.mark.parametrize("text", ["سلام", "hello", "x" * MAX_TEXT_CHARS, "😀 pair is fine"])
def test_sendable_texts_pass_unchanged(text: str) -> None:
    assert check_text(text) is text


@pytest.mark.parametrize(
    ("text", "words"),
    [
        (None, "must be a str"),
        (42, "must be a str"),
        (b"bytes", "must be a str"),
        ("", "empty"),
        ("  \n", "empty"),
        ("ok \ud800 no", "lone surrogate at position 3"),
        ("\udfff", "lone surrogate"),
        ("x" * (MAX_TEXT_CHARS + 1), "characters"),
    ],
)
def test_unsendable_texts_are_invalid_message_errors(text: object, words: str) -> None:
    with pytest.raises(InvalidMessageError, match=words) as info:
        check_text(text)
    assert isinstance(info.value, ValueError)
