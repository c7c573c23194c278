"""normalize_msisdn: every accepted form, and everything else refused before any I/O."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

import smsgate
from smsgate import InvalidRecipientError, normalize_msisdn
from smsgate._phone import to_local, to_national

PERSIAN = "۰۱۲۳۴۵۶۷۸۹"
ARABIC = "٠١٢٣٤٥٦٧٨٩"

subscriber = st.from_regex(r"9[0-9]{9}", fullmatch=True)
prefixes = st.sampled_from(["", "0", "98", "+98", "0098"])
separators = st.sampled_from([" ", "-", "\u200c", "\u200f", "\u00a0", "–"])


def _localise(digits: str, table: str) -> str:
    return "".join(table[int(c)] if c.isdigit() else c for c in digits)


def test_issue_example() -> None:
    """The issue's example: Persian digits with a dash and a space."""
    assert normalize_msisdn("۰۹۱۲-۱۲۳ ۴۵۶۷") == "+989121234567"


@pytest.mark.parametrize(
    "raw",
    [
        "09121234567",
        "9121234567",
        "989121234567",
        "+989121234567",
        "00989121234567",
        "0912 123 4567",
        "(0912) 123-4567",
        "٠٩١٢١٢٣٤٥٦٧",
        "+۹۸۹۱۲۱۲۳۴۵۶۷",
        "\u200f09121234567\u200e",
    ],
)
def test_accepted_forms(raw: str) -> None:
    """Each documented form normalises to the same E.164 number."""
    assert normalize_msisdn(raw) == "+989121234567"


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "0912123456",
        "091212345678",
        "08121234567",
        "+18121234567",
        "+0989121234567",
        "0912123456x",
        "۰۹۱۲۱۲۳۴۵۶",
        "0912_123_4567",
        "0912.123.4567",
        "9" * 80,
        "＋989121234567",
        "0098 0912 123 4567",
    ],
)
def test_rejected_forms(raw: str) -> None:
    """Anything that is not an Iranian mobile number is refused with a ValueError subclass."""
    with pytest.raises(InvalidRecipientError) as info:
        normalize_msisdn(raw)
    assert isinstance(info.value, ValueError)


def test_non_str_is_refused() -> None:
    """An int is not silently accepted (a leading zero would already be lost)."""
    with pytest.raises(InvalidRecipientError, match="must be a str"):
        normalize_msisdn(9121234567)  # type: ignore[arg-type]


@given(subscriber, prefixes, st.sampled_from(["ascii", "persian", "arabic"]), st.data())
def test_property_accepts_every_form(
    number: str, prefix: str, digits: str, data: st.DataObject
) -> None:
    """Any subscriber number in any accepted form, digits and separators normalises to +98 + it."""
    text = prefix + number
    if digits == "persian":
        text = _localise(text, PERSIAN)
    elif digits == "arabic":
        text = _localise(text, ARABIC)
    # Sprinkle separators between characters (never inside "+").
    pieces = []
    for ch in text:
        pieces.append(ch)
        if ch != "+" and data.draw(st.booleans()):
            pieces.append(data.draw(separators))
    assert normalize_msisdn("".join(pieces)) == "+98" + number


@given(st.text(max_size=30))
def test_property_never_crashes(text: str) -> None:
    """Arbitrary text gives an E.164 mobile number or InvalidRecipientError, nothing else."""
    try:
        result = normalize_msisdn(text)
    except InvalidRecipientError:
        return
    assert result.startswith("+989")
    assert len(result) == 13
    assert result[1:].isdigit()


@given(st.from_regex(r"[0-8][0-9]{9}", fullmatch=True), prefixes)
def test_property_rejects_non_mobile(number: str, prefix: str) -> None:
    """A ten-digit number not starting with 9 is never a mobile number, whatever the prefix."""
    with pytest.raises(InvalidRecipientError):
        normalize_msisdn(prefix + number)


def test_provider_forms() -> None:
    """The twelve-digit and local forms used on the wire."""
    assert to_national("09121234567") == "989121234567"
    assert to_local("+989121234567") == "09121234567"


def test_public_name() -> None:
    """normalize_msisdn is importable from the top-level package."""
    assert smsgate.normalize_msisdn is normalize_msisdn


@given(
    st.one_of(
        st.from_regex(r"(\+|00)?[0-9]{8,15}", fullmatch=True),
        st.text(alphabet="+0123456789 ۹", max_size=16),
    )
)
def test_property_plain_spellings_take_the_same_path(text: str) -> None:
    """The ASCII shortcut (no translation, no regex) agrees with the full rule everywhere."""
    from smsgate._phone import _MOBILE, _TABLE, _plain

    match = _MOBILE.fullmatch(text.translate(_TABLE))
    shortcut = _plain(text)
    if shortcut is not None:
        assert match is not None and shortcut == "+98" + match.group(1)
    elif text.isascii() and text.lstrip("+").isdigit() and text.count("+") <= 1:
        assert match is None  # every plain spelling the rule accepts has the shortcut
