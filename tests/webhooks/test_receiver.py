"""The framework-free core: WebhookReceiver checks, MemoryDedupeStore, dedupe keys."""

from __future__ import annotations

import ipaddress
import json
import logging
import subprocess
import sys
from typing import Any

import pytest

from smsgate import (
    ConfigurationError,
    DeliveryReport,
    DeliveryState,
    MalformedReportError,
    WebhookAuthError,
)
from smsgate.testing import FakeClock
from smsgate.webhooks import (
    DedupeStore,
    KapanelDeliveryParser,
    MemoryDedupeStore,
    ReportTooLargeError,
    UnreadableReportError,
    WebhookReceiver,
    WebhookResult,
    dedupe_key,
)

pytestmark = pytest.mark.anyio

SECRET = "s3cret-token_with.enough~chars"
JSON = {"content-type": "application/json"}


def _report(status: str = "delivered", to: str = "+989121234567", mid: str = "7") -> dict[str, Any]:
    return {"message_id": mid, "to": to, "status": status, "date": "2024-05-01T08:30:00Z"}


def _body(*reports: dict[str, Any]) -> bytes:
    return json.dumps(list(reports)).encode()


class Recorder:
    """An on_report that keeps what it gets."""

    def __init__(self) -> None:
        self.reports: list[DeliveryReport] = []

    async def __call__(self, report: DeliveryReport) -> None:
        self.reports.append(report)


# -- source allow-list ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("allowed", "source", "ok"),
    [
        (["203.0.113.7"], "203.0.113.7", True),
        (["203.0.113.7"], "203.0.113.8", False),
        (["203.0.113.0/24"], "203.0.113.200", True),
        (["203.0.113.0/24"], "198.51.100.1", False),
        ("10.0.0.0/8", "10.1.2.3", True),
        (ipaddress.ip_network("10.0.0.0/8"), "10.1.2.3", True),  # bare network, not iterated
        (ipaddress.ip_address("10.0.0.1"), "10.0.0.2", False),
        ([ipaddress.ip_network("10.0.0.0/8")], "10.1.2.3", True),
        ([ipaddress.ip_address("10.0.0.1")], "10.0.0.1", True),
        (["203.0.113.1/24"], "203.0.113.9", True),  # host bits are forgiven
        (["2001:db8::/32"], "2001:db8::1", True),
        (["2001:db8::/32"], "2001:db9::1", False),
        (["fe80::/10"], "fe80::1%eth0", True),  # an IPv6 zone id is ignored
        (["203.0.113.7"], "::ffff:203.0.113.7", True),  # dual-stack socket
        (["127.0.0.1"], None, False),
        (["127.0.0.1"], "", False),
        (["127.0.0.1"], "testclient", False),
    ],
)
async def test_source_allow_list(allowed: Any, source: str | None, ok: bool) -> None:
    """Addresses and CIDR networks (IPv4, IPv6, mapped IPv4) allow; anything else refuses."""
    receiver = WebhookReceiver(None, allowed_sources=allowed)
    if ok:
        result = await receiver.accept(_body(_report()), JSON, source=source)
        assert len(result.reports) == 1
    else:
        with pytest.raises(WebhookAuthError, match="not allowed"):
            await receiver.accept(_body(_report()), JSON, source=source)


async def test_no_allow_list_allows_any_source() -> None:
    """Without allowed_sources every address (or none) is accepted."""
    receiver = WebhookReceiver(None)
    assert (await receiver.accept(_body(_report()), JSON, source=None)).reports


# -- secret ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("token", "ok"),
    [
        (SECRET, True),
        (None, False),
        ("", False),
        (SECRET[:-1], False),
        (SECRET + "x", False),
        (SECRET.upper(), False),
        ("ñ" * 5, False),  # non-ASCII must not crash compare_digest
        ("\udcff", False),  # a lone surrogate (undecodable path bytes) neither
    ],
)
async def test_secret(token: str | None, ok: bool) -> None:
    """Only the exact secret passes; missing, near and non-ASCII tokens are refused."""
    receiver = WebhookReceiver(None, secret=SECRET)
    if ok:
        assert (await receiver.accept(_body(_report()), JSON, token=token)).reports
    else:
        with pytest.raises(WebhookAuthError, match="secret") as info:
            await receiver.accept(_body(_report()), JSON, token=token)
        assert SECRET not in str(info.value)


def test_token_from_path_or_header() -> None:
    """The token is the path segment if given, else the token header (any case)."""
    receiver = WebhookReceiver(None, secret=SECRET)
    assert receiver.token_from({"X-Smsgate-Token": "h"}, "p") == "p"
    assert receiver.token_from({"X-Smsgate-Token": "h"}) == "h"
    assert receiver.token_from({"x-smsgate-token": "h"}) == "h"
    assert receiver.token_from({}) is None
    custom = WebhookReceiver(None, secret=SECRET, token_header="X-Hook")
    assert custom.token_from({"x-hook": "c"}) == "c"


def test_secret_never_shown() -> None:
    """The secret is in no repr, and cannot be read back."""
    receiver = WebhookReceiver(None, secret=SECRET)
    assert SECRET not in repr(receiver)
    assert receiver.requires_token
    assert not WebhookReceiver(None).requires_token


# -- size ------------------------------------------------------------------------------------


def test_check_length() -> None:
    """A declared length over the cap, or one that is not a number, is refused up front."""
    receiver = WebhookReceiver(None, max_body=100)
    receiver.check_length(None)
    receiver.check_length("100")
    receiver.check_length(" 0 ")
    with pytest.raises(ReportTooLargeError, match="over 100 bytes"):
        receiver.check_length("101")
    for bad in ["-1", "1e3", "ten", "", "١٢"]:
        with pytest.raises(UnreadableReportError, match="Content-Length"):
            receiver.check_length(bad)


async def test_body_over_cap() -> None:
    """A body over max_body is refused even without a declared length; at the cap it passes."""
    body = _body(_report())
    with pytest.raises(ReportTooLargeError):
        await WebhookReceiver(None, max_body=len(body) - 1).accept(body, JSON)
    assert (await WebhookReceiver(None, max_body=len(body)).accept(body, JSON)).reports


async def test_checks_run_in_order() -> None:
    """Source is checked before the secret, the secret before size, size before parsing."""
    receiver = WebhookReceiver(None, secret=SECRET, allowed_sources=["10.0.0.1"], max_body=5)
    with pytest.raises(WebhookAuthError, match="not allowed"):
        await receiver.accept(b"x" * 10, {}, source="10.0.0.2", token="bad")
    with pytest.raises(WebhookAuthError, match="secret"):
        await receiver.accept(b"x" * 10, {}, source="10.0.0.1", token="bad")
    with pytest.raises(ReportTooLargeError):
        await receiver.accept(b"x" * 10, {}, source="10.0.0.1", token=SECRET)
    with pytest.raises(UnreadableReportError):
        await receiver.accept(b"x", {}, source="10.0.0.1", token=SECRET)


# -- dedupe and delivery -----------------------------------------------------------------------


async def test_duplicates_dropped_across_and_within_pushes() -> None:
    """A report seen before (in an earlier push or earlier in the same one) is counted once."""
    receiver = WebhookReceiver(None)
    first = await receiver.accept(_body(_report(), _report(), _report("failed", mid="8")), JSON)
    assert (len(first.reports), first.duplicates) == (2, 1)
    again = await receiver.accept(_body(_report()), JSON)
    assert again == WebhookResult(reports=(), duplicates=1)
    moved_on = await receiver.accept(
        _body(_report("pending", mid="9"), _report("delivered", mid="9")), JSON
    )
    assert [r.provider_status for r in moved_on.reports] == ["pending", "delivered"]


async def test_handle_calls_on_report_once_per_new_report() -> None:
    """handle() = accept + deliver: on_report sees each new report once, in order."""
    seen = Recorder()
    receiver = WebhookReceiver(seen)
    await receiver.handle(_body(_report(mid="1"), _report(mid="2")), JSON)
    await receiver.handle(_body(_report(mid="2"), _report(mid="3")), JSON)
    assert [r.message_id for r in seen.reports] == ["1", "2", "3"]


async def test_accept_does_not_call_on_report() -> None:
    """accept() only checks and parses; the callback waits for deliver()."""
    seen = Recorder()
    receiver = WebhookReceiver(seen)
    result = await receiver.accept(_body(_report()), JSON)
    assert seen.reports == []
    assert await receiver.deliver(result.reports) == 0
    assert len(seen.reports) == 1


async def test_deliver_survives_failing_callback(caplog: pytest.LogCaptureFixture) -> None:
    """A raising on_report is logged with its traceback and the next report still goes out."""
    calls: list[str] = []

    def on_report(report: DeliveryReport) -> None:  # a plain function works too
        calls.append(report.message_id)
        if report.message_id == "1":
            raise RuntimeError("database down")

    receiver = WebhookReceiver(on_report)
    result = await receiver.accept(_body(_report(mid="1"), _report(mid="2")), JSON)
    with caplog.at_level(logging.ERROR, logger="smsgate.webhooks"):
        failures = await receiver.deliver(result.reports)
    assert (failures, calls) == (1, ["1", "2"])
    assert "on_report failed for message 1" in caplog.text
    assert "database down" in caplog.text


async def test_deliver_without_callback() -> None:
    """With no on_report, deliver() does nothing."""
    assert await WebhookReceiver(None).deliver([]) == 0


async def test_custom_parser_and_store() -> None:
    """A custom parser and a custom DedupeStore are used."""

    class NeverSeen:
        async def seen(self, key: str) -> bool:
            return False

    store = NeverSeen()
    assert isinstance(store, DedupeStore)
    receiver = WebhookReceiver(
        None, parser=KapanelDeliveryParser(field_map={"message_id": "ref"}), dedupe=store
    )
    body = json.dumps({"ref": "r1", "status": "send"}).encode()
    assert (await receiver.accept(body, JSON)).reports[0].message_id == "r1"
    assert len((await receiver.accept(body, JSON)).reports) == 1  # the store never remembers


async def test_malformed_body_reaches_caller() -> None:
    """A parser error comes out of accept() unchanged."""
    with pytest.raises(MalformedReportError, match="no status"):
        await WebhookReceiver(None).accept(b'{"id": 1}', JSON)


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"secret": "short"}, "at least 16"),
        ({"secret": "x" * 20 + "/"}, "at least 16"),
        ({"secret": "x" * 20 + " "}, "at least 16"),
        ({"secret": b"x" * 20}, "must be a str"),
        ({"allowed_sources": []}, "empty"),
        ({"allowed_sources": ["not-an-ip"]}, "not an IP"),
        ({"allowed_sources": [None]}, "not an IP"),
        ({"max_body": 0}, "positive"),
        ({"max_body": True}, "positive"),
        ({"max_body": 1.5}, "positive"),
        ({"dedupe": object()}, "seen"),
    ],
)
def test_bad_configuration(kwargs: dict[str, Any], fragment: str) -> None:
    """Bad settings are a ConfigurationError at construction, never echoing the secret."""
    with pytest.raises(ConfigurationError, match=fragment) as info:
        WebhookReceiver(None, **kwargs)
    secret = kwargs.get("secret")
    if isinstance(secret, str):
        assert secret not in str(info.value)


# -- MemoryDedupeStore -------------------------------------------------------------------------


async def test_store_remembers_then_forgets_after_ttl() -> None:
    """A key is a repeat within ttl of its last sighting, and new again after."""
    clock = FakeClock()
    store = MemoryDedupeStore(ttl=10, clock=clock)
    assert await store.seen("a") is False
    clock.advance(9)
    assert await store.seen("a") is True  # and the sighting refreshes the ttl
    clock.advance(9)
    assert "a" in store
    assert await store.seen("a") is True
    clock.advance(10)
    assert "a" not in store
    assert await store.seen("a") is False


async def test_store_is_bounded_least_recent_first() -> None:
    """Over max_entries, the least recently seen key is dropped first."""
    store = MemoryDedupeStore(max_entries=2, clock=FakeClock())
    await store.seen("a")
    await store.seen("b")
    await store.seen("a")  # a is now the most recent
    await store.seen("c")  # b goes
    assert len(store) == 2
    assert ("a" in store, "b" in store, "c" in store) == (True, False, True)
    store.clear()
    assert len(store) == 0
    assert "a" not in store and 5 not in store


async def test_store_expiry_purges_old_keys() -> None:
    """Expired keys are dropped as new ones arrive, so memory follows the traffic."""
    clock = FakeClock()
    store = MemoryDedupeStore(ttl=1, clock=clock)
    for i in range(100):
        await store.seen(str(i))
    clock.advance(2)
    await store.seen("new")
    assert len(store) == 1
    assert "MemoryDedupeStore(entries=1" in repr(store)


@pytest.mark.parametrize(
    "kwargs", [{"max_entries": 0}, {"max_entries": True}, {"ttl": 0}, {"ttl": -1.0}]
)
def test_store_bad_configuration(kwargs: dict[str, Any]) -> None:
    """A store that could not remember anything is refused."""
    with pytest.raises(ConfigurationError):
        MemoryDedupeStore(**kwargs)


def test_dedupe_key() -> None:
    """The key is message id + recipient + status (case-insensitive) (+ provider)."""

    def key(**kw: Any) -> str:
        base: dict[str, Any] = {
            "message_id": "1",
            "recipient": "+989121234567",
            "state": DeliveryState.DELIVERED,
            "provider_status": "delivered",
        }
        return dedupe_key(DeliveryReport(**(base | kw)))

    assert key() == key(provider_status="Delivered")
    assert key() != key(message_id="2")
    assert key() != key(recipient="+989351234567")
    assert key() != key(recipient=None)
    assert key() != key(provider_status="failed", state=DeliveryState.UNDELIVERED)


def test_import_webhooks_is_light() -> None:
    """`import smsgate` and `smsgate.webhooks` load no web framework, HTTP client or anyio."""
    code = (
        "import sys, smsgate, smsgate.webhooks; "
        "print(','.join(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = set(out.stdout.strip().split(","))
    assert "smsgate" in loaded  # the probe did run
    assert loaded.isdisjoint({"fastapi", "starlette", "pydantic", "httpx", "anyio", "uvicorn"})


def test_import_fastapi_integration_loads_fastapi() -> None:
    """The probe can fail: importing smsgate.fastapi does load FastAPI."""
    code = "import sys, smsgate.fastapi; print('fastapi' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True"
