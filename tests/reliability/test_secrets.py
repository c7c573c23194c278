"""A known password never shows: not in a repr, an exception's text or chain, a log record,
a journal file, or a bulk report, across every error path of both backends.

Every public operation of ``IppanelGateway`` and ``NeginGateway`` runs against transports
that misbehave in each way smsgate maps (answers that *echo the request*, password and
URL included, as HTML, as a provider error text, as 4xx/5xx pages; connection errors, read
timeouts, dropped connections whose messages quote the URL), with the root logger at
DEBUG. Then real HTTP on loopback (httpx/httpcore or aiohttp logs, the pattern endpoint that
carries the credentials in its query string, wrong credentials), and a bulk run with a
journal. Every text produced is scanned for the password in each encoding it can travel in.
"""

from __future__ import annotations

import gc
import html
import json
import logging
import pickle
import re
import sys
import traceback
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, quote_plus

import httpx
import pytest

import smsgate
from smsgate.backends._http import HttpGateway
from smsgate.dispatch import BulkDispatcher, FallbackPolicy, Route, SqliteJournal
from smsgate.testing import FakeProvider, serve_loopback

from .test_parsers_hypothesis import IPPANEL_OPS, NEGIN_OPS, Op

PASSWORD = "Zq7:p@ss w0rd/+&=ÿ-9X"
FORMS = sorted(
    {
        PASSWORD,
        quote(PASSWORD, safe=""),
        quote(PASSWORD),
        quote_plus(PASSWORD),
        json.dumps(PASSWORD)[1:-1],
        json.dumps(PASSWORD, ensure_ascii=False)[1:-1],
    }
)


def leaks(texts: Iterable[str]) -> list[str]:
    """The texts that contain the password in any of its forms."""
    return [t for t in texts if any(form in t for form in FORMS)]


def exception_texts(exc: BaseException) -> list[str]:
    """Everything a user (or a logger, or an error tracker) prints about an exception.

    The chain is walked the way ``traceback`` (and so ``logging``, and error trackers such
    as Sentry) walk it: the ``__cause__``, else the ``__context__`` unless suppressed
    (``raise ... from None``). For each: ``str``, ``repr`` and args; for smsgate's own
    errors also every attribute (``detail``, ``excerpt``...), which users display.
    """
    texts: list[str] = ["".join(traceback.format_exception(exc))]
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        texts += [str(current), repr(current), repr(current.args)]
        if isinstance(current, smsgate.SmsGateError):
            texts += [repr(v) for v in vars(current).values()]
        if current.__cause__ is not None:
            current = current.__cause__
        elif current.__suppress_context__:
            current = None
        else:
            current = current.__context__
    return texts


def log_texts(records: Iterable[logging.LogRecord]) -> list[str]:
    texts: list[str] = []
    for record in records:
        texts += [record.getMessage(), str(record.msg), repr(record.args)]
        if record.exc_info and record.exc_info[1] is not None:
            texts += exception_texts(record.exc_info[1])
    return texts


def files_text(folder: Path) -> str:
    """Every byte of every file in ``folder`` (the journal, its WAL), as text."""
    return b"".join(p.read_bytes() for p in sorted(folder.iterdir())).decode("utf-8", "replace")


# -- transports that misbehave -------------------------------------------------------------


def echo(request: httpx.Request) -> str:
    """Everything the request carried: URL, raw body, and the decoded form values."""
    body = request.content.decode("utf-8", "replace")
    values = " ".join(v for _, v in parse_qsl(body)) + " " + " ".join(request.url.params.values())
    return f"you sent {request.url} with {body} i.e. {values}"


def answer(status: int, body: Callable[[httpx.Request], bytes], content_type: str) -> Any:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, content=body(request), headers={"content-type": content_type})

    return handler


def raising(exc_type: type[Exception], message: str, *, url: bool = False) -> Any:
    """A transport failing the way real ones do: httpx's errors carry the request, and
    some (proxies, aiohttp's URL errors) quote the URL, which for the pattern endpoint
    holds the credentials."""

    def handler(request: httpx.Request) -> httpx.Response:
        text = f"{message} ({request.url})" if url else message
        if issubclass(exc_type, httpx.RequestError):
            raise exc_type(text, request=request)
        raise exc_type(text)

    return handler


def _text(request: httpx.Request) -> bytes:
    return f"<html><body>error: {echo(request)}</body></html>".encode()


def _ippanel_error(request: httpx.Request) -> bytes:
    return json.dumps([962, echo(request)], ensure_ascii=False).encode()


def _ippanel_unknown_code(request: httpx.Request) -> bytes:
    return json.dumps([424242, echo(request)], ensure_ascii=False).encode()


def _negin_error(request: httpx.Request) -> bytes:
    return json.dumps({"status": 1, "msg": echo(request), "data": None}).encode()


def _negin_unknown_code(request: httpx.Request) -> bytes:
    return json.dumps({"status": 4242, "msg": echo(request)}).encode()


def _half_json(request: httpx.Request) -> bytes:
    return f'[0, "{echo(request)}'.encode()


def _long_prefix(request: httpx.Request) -> bytes:
    # The password straddles the point where excerpts are cut (200 characters).
    return ("x" * 190 + PASSWORD + " " + echo(request)).encode()


TRANSPORTS: dict[str, Any] = {
    "html-200": answer(200, _text, "text/html"),
    "half-json-200": answer(200, _half_json, "application/json"),
    "cut-at-excerpt": answer(200, _long_prefix, "text/plain"),
    "html-404": answer(404, _text, "text/html"),
    "html-429": answer(429, _text, "text/html"),
    "html-500": answer(500, _text, "text/html"),
    "html-503": answer(503, _text, "text/html"),
    "connect-refused": raising(httpx.ConnectError, "[Errno 111] Connection refused"),
    "connect-url": raising(httpx.ConnectError, "cannot connect", url=True),
    "connect-timeout": raising(httpx.ConnectTimeout, "timed out", url=True),
    "pool-timeout": raising(httpx.PoolTimeout, "no connection available"),
    "read-timeout": raising(httpx.ReadTimeout, "timed out"),
    "read-timeout-url": raising(httpx.ReadTimeout, "timed out", url=True),
    "remote-protocol": raising(
        httpx.RemoteProtocolError, "peer closed connection without sending complete message body"
    ),
    "read-error-url": raising(httpx.ReadError, "connection reset", url=True),
    "decoding": raising(httpx.DecodingError, "bad gzip stream", url=True),
    "unsupported": raising(httpx.UnsupportedProtocol, "unknown scheme", url=True),
    "os-error": raising(OSError, "connection failed", url=True),
}
PROVIDER_ERRORS: dict[str, dict[str, Any]] = {
    "ippanel": {
        "known-code": answer(200, _ippanel_error, "application/json"),
        "unknown-code": answer(200, _ippanel_unknown_code, "application/json"),
    },
    "negin": {
        "known-code": answer(200, _negin_error, "application/json"),
        "unknown-code": answer(200, _negin_unknown_code, "application/json"),
    },
}


def build(
    backend: str, client: httpx.AsyncClient | None, base_url: str = "https://provider.example"
) -> Any:
    """A gateway with the known password (on ``client``, or its own client if ``None``)."""
    if backend == "ippanel":
        return smsgate.IppanelGateway(
            username="user",
            password=PASSWORD,
            sender="+983000505",
            base_url=base_url,
            http_client=client,
        )
    return smsgate.NeginGateway(
        username="user",
        password=PASSWORD,
        line="9830003300",
        line2="9830003301",
        base_url=base_url,
        http_client=client,
    )


OPS: dict[str, dict[str, Op]] = {"ippanel": IPPANEL_OPS, "negin": NEGIN_OPS}
CASES = [
    (backend, transport, op)
    for backend in ("ippanel", "negin")
    for transport in [*TRANSPORTS, *PROVIDER_ERRORS[backend]]
    for op in OPS[backend]
]


@pytest.mark.asyncio
@pytest.mark.parametrize(("backend", "transport", "op"), CASES)
async def test_error_paths_never_show_the_password(
    backend: str, transport: str, op: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Each operation x each failure: the error, its chain and every log record are clean."""
    caplog.set_level(logging.DEBUG)
    handler = TRANSPORTS.get(transport) or PROVIDER_ERRORS[backend][transport]
    requests = 0

    def counting(request: httpx.Request) -> httpx.Response:
        nonlocal requests
        requests += 1
        response: httpx.Response = handler(request)
        return response

    async with httpx.AsyncClient(transport=httpx.MockTransport(counting)) as client:
        gw = build(backend, client)
        with pytest.raises(smsgate.SmsGateError) as info:
            await OPS[backend][op](gw)
        await gw.aclose()
    assert requests >= 1  # the request really went out and came back with the password
    texts = exception_texts(info.value) + log_texts(caplog.records) + [repr(gw), str(gw)]
    assert leaks(texts) == []


@pytest.mark.anyio
@pytest.mark.parametrize("transport", ["auto", "httpx"])
@pytest.mark.parametrize("variant", ["patterns/pattern", "sendPattern", "api/select"])
async def test_pattern_endpoints_log_no_credentials(
    variant: str, transport: str, caplog: pytest.LogCaptureFixture, anyio_backend: str
) -> None:
    """Real HTTP to the fake: the query-string pattern endpoint's URL is scrubbed from logs."""
    caplog.set_level(logging.DEBUG)
    fake = FakeProvider(password=PASSWORD)
    fake.ippanel.add_pattern("abc123", "%name% خوش آمدید")
    with serve_loopback(fake, log_level="critical") as server:
        async with smsgate.IppanelGateway(
            username="user",
            password=PASSWORD,
            sender="+983000505",
            base_url=server.url,
            pattern_endpoint=variant,  # type: ignore[arg-type]
            transport=transport,  # type: ignore[arg-type]
        ) as gw:
            receipt = await gw.send_pattern(
                "09121234567", pattern_code="abc123", values={"name": "Ali"}
            )
            with pytest.raises(smsgate.PatternError) as info:
                await gw.send_pattern("09121234567", pattern_code="nope", values={"x": "1"})
    assert receipt.recipients == ("+989121234567",)
    if transport == "httpx":
        # httpx's own pool: its INFO line quotes the URL (the query holds the credentials).
        assert any(r.name == "httpx" and "HTTP Request" in r.getMessage() for r in caplog.records)
    # The default transports (aiohttp, h11) log no per-request line at all.
    texts = log_texts(caplog.records) + exception_texts(info.value) + [repr(receipt)]
    assert leaks(texts) == []


@pytest.mark.anyio
@pytest.mark.parametrize("backend", ["ippanel", "negin"])
async def test_wrong_credentials_on_loopback(
    backend: str, caplog: pytest.LogCaptureFixture, anyio_backend: str
) -> None:
    """Wrong password over real HTTP: AuthenticationError for every op, nothing leaks."""
    caplog.set_level(logging.DEBUG)
    fake = FakeProvider(password="the-right-one")
    errors: list[BaseException] = []
    with serve_loopback(fake, log_level="critical") as server:
        async with build(backend, None, server.url) as gw:
            for name, op in OPS[backend].items():
                try:
                    await op(gw)
                except smsgate.SmsGateError as exc:
                    errors.append(exc)
                else:  # pragma: no cover - the assertion below reports it
                    errors.append(AssertionError(f"{name} succeeded with a wrong password"))
    assert len(errors) == len(OPS[backend])
    assert any(isinstance(e, smsgate.AuthenticationError) for e in errors)
    assert all(isinstance(e, smsgate.SmsGateError) for e in errors)
    texts = log_texts(caplog.records) + [t for e in errors for t in exception_texts(e)]
    assert leaks(texts) == []


@pytest.mark.asyncio
@pytest.mark.parametrize("backend", ["ippanel", "negin"])
async def test_bulk_run_journal_and_report_stay_clean(
    backend: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A bulk job whose answers echo the password: outcomes, report, journal file all clean."""
    caplog.set_level(logging.DEBUG)
    handlers = [TRANSPORTS["html-500"], TRANSPORTS["read-timeout"], TRANSPORTS["html-404"]]
    calls = 0

    def rotate(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        response: httpx.Response = handlers[calls % len(handlers)](request)
        return response

    journal_path = tmp_path / "bulk.sqlite"
    rows = [smsgate.Message(to=f"0912000{n:04d}", text="hi") for n in range(9)]
    async with httpx.AsyncClient(transport=httpx.MockTransport(rotate)) as client:
        gw = build(backend, client)
        policy = FallbackPolicy([Route(gw, name="main")])
        dispatcher = BulkDispatcher(policy, max_batch=3, journal=SqliteJournal(journal_path))
        outcomes = [o async for o in dispatcher.stream(rows, job_id="leaky")]
        report = await BulkDispatcher(policy, journal=journal_path).run(rows, job_id="leaky")
        assert dispatcher.journal is not None
        await dispatcher.journal.aclose()  # type: ignore[union-attr]
    assert calls >= 3
    assert {o.status for o in outcomes} <= {"failed", "unknown"}
    texts = [repr(o) for o in outcomes] + [
        t for o in outcomes if o.error for t in exception_texts(o.error)
    ]
    texts += [report.summary(), repr(report), repr(dispatcher), repr(policy)]
    texts += log_texts(caplog.records)
    texts.append(files_text(tmp_path))
    assert leaks(texts) == []


def test_the_scanner_finds_each_form() -> None:
    """The scan itself works: each encoded form of the password is caught."""
    for form in FORMS:
        assert leaks([f"...{form}..."]) == [f"...{form}..."]
    assert leaks(["nothing here"]) == []
    exc = smsgate.ProtocolError("x", excerpt=quote_plus(PASSWORD))
    assert leaks(exception_texts(exc))
    record = logging.LogRecord("httpx", logging.INFO, __file__, 1, "GET %s", (PASSWORD,), None)
    assert leaks(log_texts([record]))


@pytest.mark.anyio
async def test_repr_of_gateways_and_sub_apis(anyio_backend: str) -> None:
    """repr/str of gateways, their sub-APIs, routes and dispatchers never show the password."""
    async with httpx.AsyncClient() as client:
        ippanel = build("ippanel", client)
        negin = build("negin", client)
        texts = [repr(ippanel), str(ippanel), repr(negin), str(negin)]
        texts += [
            repr(getattr(ippanel, name))
            for name in ("phonebooks", "inbox", "packages", "accounts", "postal", "jobs")
        ]
        route = Route(negin, sender="9830003301")
        texts += [repr(route), repr(FallbackPolicy([route])), repr(BulkDispatcher(ippanel))]
        await ippanel.aclose()
        await negin.aclose()
    assert leaks(texts) == []
    assert "user" in texts[0]  # the repr does say something useful


@pytest.mark.anyio
async def test_sub_account_password_is_a_secret_too(anyio_backend: str) -> None:
    """accounts.create's new password never shows in the error it raises."""
    new_password = "N3w-sub/acc0unt+pass"
    handler = TRANSPORTS["html-200"]
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        gw = build("ippanel", client)
        with pytest.raises(smsgate.SmsGateError) as info:
            await gw.accounts.create(username="sub", password=new_password)
    texts = exception_texts(info.value)
    assert not [t for t in texts if new_password in t or quote_plus(new_password) in t]
    assert leaks(texts) == []


# -- the command line ----------------------------------------------------------------------


async def _echo_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """A provider that answers every request with an HTML page quoting it, as HTTP 500."""
    if scope["type"] != "http":
        return
    body = b""
    more = True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    text = body.decode("utf-8", "replace")
    values = " ".join(v for _, v in parse_qsl(text))
    page = f"<html>{scope['path']}?{scope['query_string'].decode()} {text} {values}</html>"
    status = 500 if scope["path"].endswith(("services.jspd", "wsSend.ashx")) else 200
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"text/html; charset=utf-8")],
        }
    )
    await send({"type": "http.response.body", "body": page.encode()})


@pytest.fixture(scope="module", params=["wrong-password", "echo"])
def cli_server(request: pytest.FixtureRequest) -> Any:
    """A loopback provider that refuses our password, or echoes every request back."""
    app: Any = (
        FakeProvider(password="the-right-one") if request.param == "wrong-password" else _echo_app
    )
    with serve_loopback(app, log_level="critical") as server:
        yield request.param, server


@pytest.mark.parametrize("debug", [False, True])
@pytest.mark.parametrize("provider", ["ippanel", "negin"])
@pytest.mark.parametrize(
    "command",
    [["send", "09121234567", "hi"], ["credit"], ["status", "562892393"], ["bulk"]],
    ids=["send", "credit", "status", "bulk"],
)
def test_cli_output_never_shows_the_password(
    cli_server: Any,
    provider: str,
    command: list[str],
    debug: bool,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Every CLI error path (with and without SMSGATE_DEBUG): output and logs are clean."""
    from click.testing import CliRunner

    from smsgate.cli import cli

    caplog.set_level(logging.DEBUG)
    if command == ["bulk"]:
        rows = tmp_path / "rows.csv"
        rows.write_text("number,text\n09121234567,hi\n09351234567,hello\n", encoding="utf-8")
        command = ["bulk", str(rows), "--journal", str(tmp_path / "j.sqlite"), "--no-progress"]
    env = {
        "SMSGATE_PROVIDER": provider,
        "SMSGATE_USERNAME": "user",
        "SMSGATE_PASSWORD": PASSWORD,
        "SMSGATE_SENDER": "+983000505" if provider == "ippanel" else "9830003300",
        "SMSGATE_BASE_URL": cli_server[1].url,
        "SMSGATE_DEBUG": "1" if debug else "",
        "XDG_CONFIG_HOME": str(tmp_path),  # no config file: the environment only
    }
    result = CliRunner().invoke(cli, command, env=env, catch_exceptions=True)
    texts = [result.output, repr(result.exception), *log_texts(caplog.records)]
    if result.exc_info is not None and result.exc_info[1] is not None:
        texts += exception_texts(result.exc_info[1])
    if command[0] == "bulk":
        texts.append(files_text(tmp_path))
    assert result.exit_code != 0 or command[0] == "bulk", result.output  # it did fail
    assert result.output.strip()  # ...and said something
    no_request = provider == "negin" and command[0] == "credit"  # Negin has no credit call
    if cli_server[0] == "echo" and command[0] != "bulk" and not no_request:
        assert "***" in result.output  # the echoed password was there, and was scrubbed
    assert leaks(texts) == []


# -- issue 11: straddling cut, escaped forms, chained request objects ----------------------

# Characters that each escaping changes: HTML (& < > " '), URL (/ + = space), JSON (" \),
# PHP's JSON (/), and a non-ASCII letter (numeric entities, %C3%BF).
HOSTILE = "Zq7:p@ss<w0rd>/+&=\"'\\ÿ-9X"


def hostile_forms() -> list[str]:
    """Every spelling of HOSTILE a provider's page may carry (each built independently)."""
    base = {
        HOSTILE,
        quote(HOSTILE, safe=""),
        quote(HOSTILE),
        quote_plus(HOSTILE),
        re.sub("%[0-9A-F]{2}", lambda m: m.group().lower(), quote_plus(HOSTILE)),
        json.dumps(HOSTILE)[1:-1],
        json.dumps(HOSTILE, ensure_ascii=False)[1:-1],
        json.dumps(HOSTILE)[1:-1].replace("/", "\\/"),
    }
    forms = set(base)
    for form in base:
        forms.add(html.escape(form))
        forms.add(html.escape(form, quote=False))
        forms.add(html.escape(form).replace("&#x27;", "&#39;"))
        forms.add(form.encode("ascii", "xmlcharrefreplace").decode())
    return sorted(forms)


def chain_links(exc: BaseException) -> list[BaseException]:
    """Every exception reachable from ``exc`` through __cause__ AND __context__ (suppressed
    or not), as a debugger or a careless error tracker would find them."""
    links: list[BaseException] = []
    todo: list[BaseException] = [exc]
    while todo:
        current = todo.pop()
        if any(current is seen for seen in links):
            continue
        links.append(current)
        todo += [e for e in (current.__cause__, current.__context__) if e is not None]
    return links


def everything_about(exc: BaseException) -> list[str]:
    """str, repr, args, attributes, the formatted traceback and the pickle of every link."""
    texts = exception_texts(exc)
    for link in chain_links(exc):
        texts += [str(link), repr(link), repr(link.args), repr(vars(link))]
        texts.append("".join(traceback.format_exception(link)))
        try:
            texts.append(pickle.dumps(link).decode("utf-8", "replace"))
        except Exception as problem:  # pragma: no cover - reported by the assertion below
            texts.append(f"unpicklable: {problem!r}")
    return texts


def leaks_of(secret: str, texts: Iterable[str]) -> list[str]:
    forms = [secret, quote(secret, safe=""), quote_plus(secret), json.dumps(secret)[1:-1]]
    forms += [html.escape(secret), secret[:8]]  # the prefix too: a cut must not leak it
    return [t for t in texts if any(form in t for form in forms)]


class _Probe(HttpGateway):
    name = "probe"

    async def call(self) -> Any:
        return self._json(await self._request("POST", "/x", data={"pass": HOSTILE}))


@pytest.mark.anyio
@pytest.mark.parametrize("offset", [192, 195, 198, 199])
@pytest.mark.parametrize("status", [200, 404, 500])
async def test_password_straddling_the_excerpt_cut(
    offset: int, status: int, anyio_backend: str
) -> None:
    """The password starts just before character 200: no prefix of it survives the cut."""
    page = "x" * offset + PASSWORD + " and more text after it"

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, text=page)

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        gw = smsgate.IppanelGateway(
            username="user", password=PASSWORD, sender="+983000505", http_client=client
        )
        with pytest.raises(smsgate.SmsGateError) as info:
            await gw.credit()
    texts = everything_about(info.value)
    assert [t for t in texts if PASSWORD[: 200 - offset] in t and "xxxx" in t] == []
    assert leaks_of(PASSWORD, texts) == []


@pytest.mark.anyio
@pytest.mark.parametrize("form", hostile_forms())
@pytest.mark.parametrize("status", [200, 404, 500, 503])
async def test_escaped_password_in_an_error_page(
    form: str, status: int, anyio_backend: str
) -> None:
    """An HTML (or URL/JSON/entity) escaped password on an error page is scrubbed too."""
    page = f"<html><body><p>login failed for {form}</p></body></html>"

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, text=page, headers={"content-type": "text/html"})

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        gw = _Probe(base_url="https://provider.example", http_client=client, secrets=[HOSTILE])
        with pytest.raises(smsgate.SmsGateError) as info:
            await gw.call()
    texts = everything_about(info.value)
    assert [t for t in texts if form in t] == []
    assert "***" in str(info.value) + repr(vars(info.value))


def _failing(kind: type[httpx.RequestError]) -> Callable[[httpx.Request], httpx.Response]:
    def handler(request: httpx.Request) -> httpx.Response:
        # As httpx's own pool does: the error holds the request (URL and body); this one
        # also quotes them, as a proxy or a verbose transport may.
        raise kind(f"failed: {request.url} {request.content!r}", request=request)

    return handler


TRIO_CASES = [
    ("ippanel", "send", "api/select"),
    ("ippanel", "send_pattern", "patterns/pattern"),
    ("ippanel", "send_pattern", "api/select"),
    ("ippanel", "credit", "api/select"),
    ("negin", "send", ""),
    ("negin", "states", ""),
]


@pytest.mark.anyio
@pytest.mark.parametrize(("backend", "op", "variant"), TRIO_CASES)
@pytest.mark.parametrize(
    "kind", [httpx.ConnectError, httpx.ReadTimeout, httpx.RemoteProtocolError, httpx.ProxyError]
)
async def test_borrowed_client_failure_chain_holds_no_request(
    backend: str, op: str, variant: str, kind: type[httpx.RequestError], anyio_backend: str
) -> None:
    """Under trio and asyncio, through a borrowed httpx client: the whole exception chain
    (cause and context, suppressed or not), its repr/str/traceback and its pickle hold no
    request object and no password."""
    async with httpx.AsyncClient(transport=httpx.MockTransport(_failing(kind))) as client:
        gw = build(backend, client)
        if variant:
            gw.pattern_endpoint = variant
        with pytest.raises(smsgate.SmsGateError) as info:
            await OPS[backend][op](gw)
        await gw.aclose()
    for link in chain_links(info.value):
        assert not isinstance(link, httpx.HTTPError), link  # nothing from httpx is kept
        assert getattr(link, "_request", None) is None
    texts = everything_about(info.value)
    assert leaks(texts) == []
    assert leaks_of(PASSWORD, texts) == []


@pytest.mark.anyio
@pytest.mark.parametrize("variant", ["patterns/pattern", "api/select"])
async def test_own_transport_failure_chain_holds_no_request(
    variant: str, anyio_backend: str
) -> None:
    """Real sockets (httpx's pool under trio, aiohttp under asyncio): refused connections to
    the query-string endpoint leave no request object and no password in the chain."""
    import socket

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    async with smsgate.IppanelGateway(
        username="user",
        password=PASSWORD,
        sender="+983000505",
        base_url=f"http://127.0.0.1:{port}",
        pattern_endpoint=variant,  # type: ignore[arg-type]
    ) as gw:
        with pytest.raises(smsgate.NotSentError) as info:
            await gw.send_pattern("09121234567", pattern_code="abc", values={"name": "Ali"})
    assert [link for link in chain_links(info.value) if link is not info.value] == []
    texts = everything_about(info.value)
    assert leaks(texts) == []
    assert leaks_of(PASSWORD, texts) == []


def _process_caches() -> list[str]:
    """The reprs of every key and value held by an lru_cache of any loaded module (yarl,
    urllib, httpx...): a cache there lives as long as the process."""
    texts: list[str] = []
    for module in list(sys.modules.values()):
        for value in list(getattr(module, "__dict__", {}).values()):
            if not callable(value) or not hasattr(value, "cache_info"):
                continue
            for ref in gc.get_referents(value):
                if isinstance(ref, dict):
                    texts += [repr(k) + repr(v) for k, v in list(ref.items())]
    return texts


@pytest.mark.anyio
@pytest.mark.parametrize("transport", ["auto", "httpx", "h11"])
async def test_no_process_cache_keeps_the_password(transport: str, anyio_backend: str) -> None:
    """After sends on the query-string pattern endpoint (password in the URL) and the op
    endpoint (password in the form), no lru_cache in the process holds the password."""
    password = f"Uniq-{transport}-{anyio_backend}-p@ss/+ÿ"
    fake = FakeProvider(password=password)
    fake.ippanel.add_pattern("abc123", "%name% خوش آمدید")
    with serve_loopback(fake, log_level="critical") as server:
        async with smsgate.IppanelGateway(
            username="user",
            password=password,
            sender="+983000505",
            base_url=server.url,
            pattern_endpoint="patterns/pattern",
            transport=transport,  # type: ignore[arg-type]
        ) as gw:
            await gw.send_pattern("09121234567", pattern_code="abc123", values={"name": "Ali"})
            await gw.send("09121234567", "a campaign text")
    assert leaks_of(password, _process_caches()) == []
