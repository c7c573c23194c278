"""The one place where secrets are removed from text: errors, excerpts and log records.

A :class:`Redactor` knows the secrets of one gateway (its password) and replaces every
spelling a secret can travel in with ``***``: as given, URL-encoded (``quote``,
``quote_plus``, any hex case), form-encoded, JSON-escaped (ASCII or not, ``\\/`` as PHP
writes it), HTML-escaped (named or numeric entities), as Python shows it in a ``repr`` of
``str`` or ``bytes``, and as ``password=…`` in a query string. Nothing here caches a
secret or a text.

:data:`LOG_FILTER` scrubs the records of the HTTP libraries' loggers (``httpx``,
``httpcore``, ``aiohttp``: never the root logger). It is installed once, by
:func:`install_log_filter` (the HTTP base calls it when a gateway opens), and holds the
redactors of live gateways weakly: a closed and collected gateway's password is not kept.
"""

from __future__ import annotations

import html
import json
import logging
import re
import weakref
from collections.abc import Callable, Iterable
from typing import Final
from urllib.parse import quote, quote_plus

__all__ = [
    "LOG_FILTER",
    "MASK",
    "Redactor",
    "drop_secret_chain",
    "excerpt",
    "forms_of",
    "install_log_filter",
    "scrub_query",
]

MASK: Final = "***"

# A password in a query string or form, whatever its encoding (the value runs to the next
# separator): the pattern endpoint puts credentials there, and a provider may echo them.
_QUERY_SECRET = re.compile(r"(?i)\b(pass(?:word)?|pwd)=[^&\s\"'<>]*")
# The same for log records of the HTTP libraries, which also hide the user name.
_QUERY_CREDENTIAL = re.compile(
    r"(?i)((?:^|[?&;\s])(?:password|pass|pwd|username|uname|user)=)[^&\s\"'<>]*"
)
_PERCENT = re.compile(r"%[0-9A-F]{2}")


def _hex_class(match: re.Match[str]) -> str:
    return "%" + "".join(f"[{c}{c.lower()}]" if c.isalpha() else c for c in match.group()[1:])


def _any_hex_case(pattern: str) -> str:
    """``%2F`` in an escaped form also matches ``%2f`` (encoders differ in hex case)."""
    return _PERCENT.sub(_hex_class, pattern)


def _html_forms(text: str) -> set[str]:
    escaped = html.escape(text, quote=False)
    forms = {escaped}
    for dquote in ("&quot;", "&#34;", "&#x22;"):
        for squote in ("&#x27;", "&#39;", "&#039;", "&apos;"):
            forms.add(escaped.replace('"', dquote).replace("'", squote))
    # Every non-ASCII character as a numeric reference (decimal and hex).
    forms.add(text.encode("ascii", "xmlcharrefreplace").decode("ascii"))
    forms.add("".join(c if ord(c) < 128 else f"&#x{ord(c):x};" for c in text))
    return forms


def _u_escapes(text: str, *, keep_alnum: bool, upper: bool) -> str:
    """``text`` with characters written as JSON ``\\uXXXX`` escapes (UTF-16 units).

    ``keep_alnum``: ASCII letters and digits stay as they are, everything else is escaped
    (what .NET's and other strict JSON encoders do with quotes, ``+``, ``<``...).
    """
    out: list[str] = []
    for char in text:
        if keep_alnum and char.isascii() and char.isalnum():
            out.append(char)
            continue
        units = char.encode("utf-16-be", "surrogatepass")
        for i in range(0, len(units), 2):
            code = f"{int.from_bytes(units[i : i + 2], 'big'):04x}"
            out.append("\\u" + (code.upper() if upper else code))
    return "".join(out)


def forms_of(secret: str) -> set[str]:
    """Every spelling of ``secret`` that :class:`Redactor` removes."""
    url = {quote(secret, safe=""), quote(secret), quote_plus(secret)}
    as_json = {json.dumps(secret)[1:-1], json.dumps(secret, ensure_ascii=False)[1:-1]}
    as_json |= {
        _u_escapes(secret, keep_alnum=keep, upper=upper)
        for keep in (True, False)
        for upper in (True, False)
    }
    as_json.add(
        re.sub(
            r"\\u[0-9a-f]{4}",
            lambda m: m.group(0).upper().replace("\\U", "\\u"),
            json.dumps(secret)[1:-1],
        )
    )
    as_json |= {form.replace("/", "\\/") for form in as_json}
    # Python's reprs, as an error quoting ``request.content`` or a str shows them.
    as_repr = {repr(secret.encode("utf-8"))[2:-1], ascii(secret)[1:-1], repr(secret)[1:-1]}
    forms = {secret} | url | as_json | as_repr
    for form in list(forms):
        forms |= _html_forms(form)
    return {form for form in forms if form}


class Redactor:
    """Removes the secrets of one gateway from any text.

    Args:
        secrets: The strings to hide; ``None`` and empty strings are ignored.
    """

    __slots__ = ("__weakref__", "_pattern", "secrets")

    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        forms: set[str] = set()
        for secret in secrets:
            if secret:
                forms |= forms_of(secret)
        #: Every form removed, longest first (a longer form is never half-replaced).
        self.secrets: tuple[str, ...] = tuple(sorted(forms, key=lambda f: (-len(f), f)))
        self._pattern = (
            re.compile("|".join(_any_hex_case(re.escape(form)) for form in self.secrets))
            if forms
            else None
        )

    @classmethod
    def of(cls, secrets: Iterable[str | None]) -> Redactor:
        """A redactor for ``secrets`` (the name the backends have used)."""
        return cls(secrets)

    def __repr__(self) -> str:
        return f"<Redactor of {len(self.secrets)} forms>"

    def __call__(self, text: str) -> str:
        """``text`` with every known secret and every query-string password masked."""
        if self._pattern is not None:
            text = self._pattern.sub(MASK, text)
        return _QUERY_SECRET.sub(r"\1=" + MASK, text)

    def excerpt(self, text: str, limit: int) -> str:
        """The first ``limit`` characters of ``text``, scrubbed *before* the cut."""
        return excerpt(text, limit, self)


def excerpt(text: str, limit: int, redactor: Redactor) -> str:
    """Scrub first, cut after: a secret straddling the cut cannot leave its prefix."""
    # Scrubbing a whole 4 MiB page costs little on an error path, but a bounded head keeps
    # it cheap: a secret starting before ``limit`` ends well within the head.
    longest = len(redactor.secrets[0]) if redactor.secrets else 0
    head = text[: limit + longest + 256]
    return redactor(head)[:limit]


def scrub_query(text: str) -> str:
    """Mask every ``password=``/``username=`` value in ``text`` (URLs in log records)."""
    return _QUERY_CREDENTIAL.sub(r"\1" + MASK, text)


class _CredentialLogFilter(logging.Filter):
    """Scrubs the records of the HTTP libraries' loggers.

    httpx logs every request at INFO with its URL, and an endpoint with credentials in the
    query string would put them there. A filter on a logger does not see its children's
    records, so it sits on each logger httpx, httpcore and aiohttp write to.
    """

    def __init__(self) -> None:
        super().__init__("smsgate.credentials")
        self._redactors: weakref.WeakSet[Redactor] = weakref.WeakSet()

    def register(self, redactor: Redactor) -> None:
        """Scrub this redactor's secrets from records while it lives."""
        self._redactors.add(redactor)

    def scrub(self, text: str) -> str:
        """``text`` with every live gateway's secrets and any query credential masked."""
        text = scrub_query(text)
        for redactor in list(self._redactors):
            text = redactor(text)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken record is not ours to fix; let logging report it
            return True
        cleaned = self.scrub(message)
        if cleaned != message:
            record.msg = cleaned
            record.args = None
        return True


#: The filter on the HTTP libraries' loggers (one per process).
LOG_FILTER: Final = _CredentialLogFilter()

HTTP_LOGGERS: Final = (
    "httpx",
    "httpcore",
    "httpcore.connection",
    "httpcore.http11",
    "httpcore.http2",
    "httpcore.proxy",
    "httpcore.socks",
    "aiohttp",
    "aiohttp.client",
    "aiohttp.internal",
)

_installed = False


def install_log_filter() -> None:
    """Put :data:`LOG_FILTER` on the HTTP libraries' loggers. Idempotent and cheap."""
    global _installed
    if _installed:
        return
    for name in HTTP_LOGGERS:
        logger = logging.getLogger(name)
        if LOG_FILTER not in logger.filters:
            logger.addFilter(LOG_FILTER)
    _installed = True


def drop_secret_chain(exc: BaseException, scrub: Callable[[str], str]) -> None:
    """Detach ``exc``'s cause and context when any link of the chain shows a secret or
    holds a request object (an httpx error keeps the request: its URL and body)."""
    link: BaseException | None = exc.__cause__ or exc.__context__
    for _ in range(16):  # a chain is short; the bound guards against a cycle
        if link is None:
            return
        text = str(link)
        if scrub(text) != text or getattr(link, "_request", None) is not None:
            break
        link = link.__cause__ or link.__context__
    else:
        return
    exc.__cause__ = None
    exc.__context__ = None
    exc.__suppress_context__ = True
