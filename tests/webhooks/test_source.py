"""Where a push comes from: the peer, X-Forwarded-For from trusted proxies only, and the
rate-limited refusal log (smsgate/webhooks/_source.py, _throttle.py)."""

from __future__ import annotations

import ipaddress
import logging

import pytest

from smsgate import ConfigurationError
from smsgate.testing import FakeClock
from smsgate.webhooks import RefusalLog, WebhookReceiver

PROXY = "10.0.0.5"
PROVIDER = "203.0.113.7"


def receiver(*trusted: str) -> WebhookReceiver:
    """A receiver trusting these proxies."""
    return WebhookReceiver(trusted_proxies=list(trusted) or None)


@pytest.mark.parametrize(
    ("trusted", "peer", "xff", "expected"),
    [
        # 1. no header: the peer
        pytest.param((), PROVIDER, [], PROVIDER, id="no-header"),
        pytest.param((PROXY,), PROXY, [], PROXY, id="no-header-from-proxy"),
        # 4. a header from an untrusted peer is ignored
        pytest.param((), "127.0.0.1", ["10.1.2.3"], "127.0.0.1", id="nothing-trusted"),
        pytest.param((PROXY,), "127.0.0.1", ["10.1.2.3"], "127.0.0.1", id="other-peer"),
        # 3. from a trusted proxy: the right-most untrusted hop
        pytest.param((PROXY,), PROXY, [PROVIDER], PROVIDER, id="one-hop"),
        pytest.param((PROXY,), PROXY, ["1.1.1.1, " + PROVIDER], PROVIDER, id="spoofed-left"),
        pytest.param(
            ("10.0.0.0/8",), PROXY, ["1.1.1.1", PROVIDER + ", 10.0.0.4"], PROVIDER, id="cidr"
        ),
        pytest.param((PROXY,), PROXY, [f"{PROVIDER}:4711"], PROVIDER, id="hop-with-port"),
        pytest.param(("::1",), "::1", ["[2001:db8::5]:80"], "2001:db8::5", id="v6-hop"),
        pytest.param(("10.0.0.0/8",), PROXY, ["10.0.0.9, 10.0.0.4"], "10.0.0.9", id="all-trusted"),
        pytest.param((PROXY,), PROXY, ["not-an-ip"], None, id="garbage-hop"),
        pytest.param((PROXY,), "::ffff:10.0.0.5", [PROVIDER], PROVIDER, id="v4-mapped-peer"),
        # 2. the server already rewrote the peer from the header: unknown
        pytest.param((), "10.1.2.3", ["10.1.2.3"], None, id="rewritten-nothing-trusted"),
        pytest.param(
            ("127.0.0.1",), "10.1.2.3", ["10.1.2.3"], None, id="rewritten-loopback-trusted"
        ),
        pytest.param((PROXY,), PROXY, [PROVIDER + ", " + PROXY], None, id="rewritten-to-a-proxy"),
    ],
)
def test_source_rules(
    trusted: tuple[str, ...], peer: str, xff: list[str], expected: str | None
) -> None:
    """The four rules of docs/webhooks.md, "Behind a proxy"."""
    assert receiver(*trusted).source_from(peer, xff) == expected


def test_rewritten_peer_reason_names_the_fix() -> None:
    """The reason for an unknown source says what to change."""
    source, why = receiver().locate("10.1.2.3", ["10.1.2.3"])
    assert source is None
    assert "forwarded-allow-ips" in why and "trusted_proxies" in why


def test_trusted_proxies_settings() -> None:
    """Networks are parsed; bad entries are refused; an empty list means nothing trusted."""
    assert receiver().trusted_proxies == ()
    assert WebhookReceiver(trusted_proxies=[]).trusted_proxies == ()
    assert WebhookReceiver(trusted_proxies="10.0.0.0/8").trusted_proxies == (
        ipaddress.ip_network("10.0.0.0/8"),
    )
    with pytest.raises(ConfigurationError, match="trusted_proxies"):
        WebhookReceiver(trusted_proxies=["proxy.local"])


# -- the refusal log -------------------------------------------------------------------------


def test_refusal_log_one_line_per_interval(caplog: pytest.LogCaptureFixture) -> None:
    """A flood writes one line, then one line per interval saying how many were left out."""
    clock = FakeClock()
    log = RefusalLog(interval=10.0, clock=clock)
    with caplog.at_level(logging.WARNING, logger="smsgate.webhooks"):
        written = [log.refused(403, "198.51.100.9", "not allowed") for _ in range(1000)]
        assert written.count(True) == 1 and len(caplog.records) == 1
        assert log.suppressed() == 999
        clock.advance(9.9)
        assert not log.refused(403, "198.51.100.9", "not allowed")
        clock.advance(0.1)
        assert log.refused(403, "198.51.100.9", "not allowed")
    assert len(caplog.records) == 2
    assert "1000 more HTTP 403 refusals" in caplog.records[1].getMessage()
    assert log.suppressed() == 0


def test_refusal_log_budget_per_kind(caplog: pytest.LogCaptureFixture) -> None:
    """A flood of one kind (403) does not hide the first refusal of another (413)."""
    log = RefusalLog(interval=60.0, clock=FakeClock())
    with caplog.at_level(logging.WARNING, logger="smsgate.webhooks"):
        for _ in range(50):
            log.refused(403, "a", "x")
        log.refused(413, "b", "too large")
    assert [r.getMessage().split(" (HTTP ")[1][:3] for r in caplog.records] == ["403", "413"]


def test_refusal_log_interval_zero_logs_all(caplog: pytest.LogCaptureFixture) -> None:
    """interval=0 writes every refusal; a negative interval is refused."""
    log = RefusalLog(interval=0, clock=FakeClock())
    with caplog.at_level(logging.WARNING, logger="smsgate.webhooks"):
        for _ in range(5):
            log.refused(403, "a", "x")
    assert len(caplog.records) == 5
    with pytest.raises(ConfigurationError, match="interval"):
        RefusalLog(interval=-1)
