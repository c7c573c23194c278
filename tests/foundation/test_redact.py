"""smsgate._redact: one redaction module, one filter installed once, nothing secret kept."""

from __future__ import annotations

import gc
import html
import importlib
import json
import logging
import pkgutil
from urllib.parse import quote, quote_plus

import httpx
import pytest

import smsgate
import smsgate.backends
from smsgate import _redact
from smsgate._redact import LOG_FILTER, Redactor

SECRET = "p@ss<w>/+&=\"'ÿ"


@pytest.mark.parametrize(
    "form",
    [
        SECRET,
        quote(SECRET, safe=""),
        quote(SECRET),
        quote_plus(SECRET),
        quote_plus(SECRET).replace("%C3%BF", "%c3%bf"),
        quote_plus(SECRET).replace("%2F", "%2f").replace("%3C", "%3c"),
        json.dumps(SECRET)[1:-1],
        json.dumps(SECRET, ensure_ascii=False)[1:-1],
        json.dumps(SECRET)[1:-1].replace("/", "\\/"),
        html.escape(SECRET),
        html.escape(SECRET, quote=False),
        html.escape(SECRET).replace("&#x27;", "&#39;"),
        html.escape(SECRET).replace("&#x27;", "&apos;").replace("&quot;", "&#34;"),
        SECRET.encode("ascii", "xmlcharrefreplace").decode(),
        repr(SECRET.encode())[2:-1],
        ascii(SECRET)[1:-1],
    ],
)
def test_every_form_is_scrubbed(form: str) -> None:
    """Raw, URL/form, JSON, PHP JSON, HTML (named and numeric) and repr forms."""
    scrub = Redactor([SECRET])
    assert scrub(f"<p>before {form} after</p>") == "<p>before *** after</p>"


def test_query_password_is_scrubbed_whatever_its_spelling() -> None:
    scrub = Redactor(["known"])
    assert scrub("GET /x?username=u&password=other+value&to=1") == (
        "GET /x?username=u&password=***&to=1"
    )


def test_excerpt_scrubs_before_it_cuts() -> None:
    """A secret straddling the cut leaves no prefix (cut first, it would leave 'p@ss<')."""
    scrub = Redactor([SECRET])
    for offset in range(190, 201):
        text = "x" * offset + SECRET + "y" * 50
        cut = scrub.excerpt(text, 200)
        assert len(cut) <= 200
        assert "p@ss" not in cut
        assert cut.startswith("x" * offset)


def test_no_secret_no_pattern() -> None:
    scrub = Redactor([None, ""])
    assert scrub.secrets == ()
    assert scrub("nothing to hide") == "nothing to hide"
    assert "p@ss" not in repr(Redactor([SECRET]))


@pytest.mark.asyncio
async def test_filter_installed_on_open_on_the_http_loggers_only() -> None:
    """Opening a gateway installs the filter on httpx/httpcore/aiohttp, never the root; again
    opening adds no second copy."""
    async with httpx.AsyncClient() as client:
        for _ in range(2):
            async with smsgate.IppanelGateway(username="u", password=SECRET, http_client=client):
                pass
    for name in _redact.HTTP_LOGGERS:
        assert logging.getLogger(name).filters.count(LOG_FILTER) == 1
    assert LOG_FILTER not in logging.getLogger().filters
    record = logging.LogRecord("httpx", logging.INFO, __file__, 1, "POST %s", ("?pass=x",), None)
    LOG_FILTER.filter(record)
    assert record.getMessage() == "POST ?pass=***"


@pytest.mark.asyncio
async def test_filter_keeps_no_password_of_a_collected_gateway() -> None:
    """The filter holds redactors weakly: once a gateway is gone, so is its password."""
    secret = "only-this-gateway-9731"
    async with httpx.AsyncClient() as client:
        gw = smsgate.NeginGateway(
            username="u", password=secret, line="30003300", http_client=client
        )
        async with gw:
            assert any(secret in r.secrets for r in list(LOG_FILTER._redactors))
        del gw
    gc.collect()
    assert not any(secret in r.secrets for r in list(LOG_FILTER._redactors))


def test_no_cache_in_the_backends() -> None:
    """No functools cache in the backends' modules (one kept the password and the texts)."""
    for info in pkgutil.walk_packages(smsgate.backends.__path__, "smsgate.backends."):
        module = importlib.import_module(info.name)
        cached = [name for name, value in vars(module).items() if hasattr(value, "cache_info")]
        assert cached == [], info.name


@pytest.mark.parametrize(
    "page",
    [
        # PHP's htmlspecialchars(ENT_QUOTES) writes ' as &#039;.
        "<p>Login failed for pass O&#039;Brien+&lt;2024&gt;</p>",
        # .NET's JSON encoders escape quotes, + and < > as \uXXXX (upper-case hex).
        '{"error":"bad pass O\\u0027Brien\\u002B\\u003C2024\\u003E"}',
        '{"error":"bad pass O\\u0027Brien\\u002b\\u003c2024\\u003e"}',
        # Every character escaped.
        '{"e":"' + "".join(f"\\u{ord(c):04X}" for c in "O'Brien+<2024>") + '"}',
    ],
)
def test_escapes_of_strict_encoders_are_scrubbed(page: str) -> None:
    """Spellings a reviewer found passing: &#039; and JSON \\u escapes of ASCII characters."""
    cleaned = Redactor(["O'Brien+<2024>"])(page)
    assert "Brien" not in cleaned


def test_persian_password_in_upper_case_json_escapes_is_scrubbed() -> None:
    secret = "رمز۱۲۳"
    page = json.dumps({"pass": secret}).upper().replace("\\U", "\\u").replace('"PASS"', '"pass"')
    assert "\\u06F1" in page
    assert secret not in Redactor([secret])(page) and "06F1" not in Redactor([secret])(page)
