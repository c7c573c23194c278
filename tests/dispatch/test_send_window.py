"""Issue 16, the send window: a job pauses outside it and resumes when it opens, with a
mock clock (no real waiting); a SendWindowError answer pauses instead of failing."""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

import anyio.lowlevel
import pytest

from smsgate import ConfigurationError, Message, SendWindow, SendWindowError
from smsgate.dispatch import BulkDispatcher, FallbackPolicy, Progress, RateLimit, Route
from smsgate.dispatch._window import resolve
from smsgate.testing import FakeGateway

pytestmark = pytest.mark.anyio

TEHRAN = ZoneInfo("Asia/Tehran")


def at(day: int, hour: int, minute: int = 0) -> float:
    return dt.datetime(2026, 12, day, hour, minute, tzinfo=TEHRAN).timestamp()


class WallClock:
    """Epoch seconds that only move when someone sleeps (the dispatcher's injected sleep)."""

    def __init__(self, now: float) -> None:
        self.now = now
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += max(0.0, seconds)
        await anyio.lowlevel.checkpoint()


def test_the_window_value() -> None:
    window = SendWindow()
    assert (window.start, window.end, window.tz) == ("08:00", "23:00", "Asia/Tehran")
    assert window.is_open(at(1, 8)) and window.is_open(at(1, 22, 59))
    assert not window.is_open(at(1, 23)) and not window.is_open(at(1, 7, 59))
    assert window.opens_at(at(1, 23, 30)) == at(2, 8)
    assert window.opens_at(at(2, 3)) == at(2, 8)
    assert window.opens_at(at(2, 9)) == at(2, 9)
    assert window.closes_at(at(2, 9)) == at(2, 23)
    night = SendWindow("22:00", "06:00", tz="UTC")
    assert night.is_open(dt.datetime(2026, 12, 1, 23, tzinfo=dt.UTC).timestamp())
    for bad in (("8", "23:00"), ("08:00", "24:00"), ("10:00", "10:00")):
        with pytest.raises(ConfigurationError):
            SendWindow(*bad)
    with pytest.raises(ConfigurationError, match="time zone"):
        SendWindow(tz="Mars/Olympus")


def test_auto_is_on_for_ippanel_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SMSGATE_SEND_WINDOW", raising=False)
    ippanel = FakeGateway(name="ippanel")
    negin = FakeGateway(name="negin")
    assert resolve("auto", "auto", ippanel) == SendWindow()
    assert resolve("auto", "auto", negin) is None
    assert resolve(None, "auto", ippanel) is None
    own = SendWindow("09:00", "21:00")
    assert resolve(None, own, negin) == own
    assert resolve("auto", None, ippanel) is None
    local = FakeGateway(name="ippanel")
    local.base_url = "http://127.0.0.1:8765"  # type: ignore[attr-defined]
    assert resolve("auto", "auto", local) is None  # a fake provider on this machine
    assert resolve(SendWindow(), "auto", local) == SendWindow()
    monkeypatch.setenv("SMSGATE_SEND_WINDOW", "off")
    assert resolve("auto", "auto", ippanel) is None
    assert resolve(SendWindow(), "auto", ippanel) == SendWindow()


async def test_a_job_started_at_2259_pauses_at_2300_and_resumes_at_0800() -> None:
    """One request a second from 22:59: 60 go out, then nothing until 08:00, then the
    rest; every row once at the fake, none lost, none repeated; progress says until when."""
    wall = WallClock(at(1, 22, 59))
    gw = FakeGateway(name="ippanel", clock=wall)
    events: list[Progress] = []
    d = BulkDispatcher(
        gw,
        rate_limit=RateLimit(1),
        concurrency=4,
        send_window=SendWindow("08:00", "23:00"),
        clock=wall,
        sleep=wall.sleep,
        wall_clock=wall,
        on_progress=events.append,
        progress_interval=30.0,
    )
    messages = [Message(to=f"0912{i:07d}", text="sale") for i in range(100)]
    report = await d.run(messages)
    assert (report.sent, report.failed, report.unknown) == (100, 0, 0)
    times = sorted(r.started for r in gw.requests)
    before = [t for t in times if t < at(1, 23)]
    after = [t for t in times if t >= at(1, 23)]
    assert len(before) == 60
    assert min(after) == pytest.approx(at(2, 8))
    assert not [t for t in times if at(1, 23) <= t < at(2, 8)]
    recipients = [r for request in gw.requests for r in request.recipients]
    assert len(recipients) == len(set(recipients)) == 100
    paused = [e for e in events if e.paused_until is not None]
    assert paused and paused[0].paused_until == pytest.approx(at(2, 8))
    assert events[-1].final and events[-1].paused_until is None


async def test_a_send_window_refusal_pauses_the_rows() -> None:
    """The provider says "not at this hour" although our clock says open: the rows wait
    (at least a minute) and go out after, none failed, none twice."""
    wall = WallClock(at(1, 10))
    gw = FakeGateway(clock=wall)
    refused = [0]

    def hook(_request: Any) -> SendWindowError | None:
        if refused[0] < 2:
            refused[0] += 1
            return SendWindowError(provider="fake")
        return None

    gw.on_request = hook
    d = BulkDispatcher(gw, concurrency=1, clock=wall, sleep=wall.sleep, wall_clock=wall)
    report = await d.run([Message(to=f"0912{i:07d}", text="x") for i in range(5)])
    assert (report.sent, report.failed, report.unknown) == (5, 0, 0)
    assert len(gw.accepted) == 5
    assert wall.now >= at(1, 10, 2)


async def test_a_route_carries_its_own_window() -> None:
    """Route 1 has a window that is closed now; route 0 has none: nothing waits on it."""
    wall = WallClock(at(1, 3))
    first = FakeGateway(name="negin", opted_out=["09120000001"])
    second = FakeGateway(name="other")
    policy = FallbackPolicy([Route(first), Route(second, send_window=SendWindow("08:00", "23:00"))])
    d = BulkDispatcher(policy, clock=wall, sleep=wall.sleep, wall_clock=wall)
    report = await d.run([Message(to=f"0912{i:07d}", text="x") for i in range(3)])
    assert report.sent == 3
    assert [s.recipient for s in second.accepted] == ["+989120000001"]
    assert wall.now == pytest.approx(at(1, 8))
