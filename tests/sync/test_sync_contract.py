"""The sync twins pass the gateway contract's send/delivery cases, called from plain threads.

Each case of tests/contract/test_contract.py runs unchanged against an adapter whose async
methods hand every call to a worker thread (``anyio.to_thread``), where it calls the sync
gateway: the contract is then exercised from plain threads, never from an event loop.
The fake provider is served on 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio.to_thread
import pytest

import smsgate
from smsgate import sync
from smsgate.testing import FakeClock, FakeProvider, LoopbackServer
from tests.contract import test_contract as contract

pytestmark = pytest.mark.loopback

CASES = [
    contract.test_is_a_gateway,
    contract.test_send_one,
    contract.test_send_many,
    contract.test_delivery_by_receipt_becomes_final,
    contract.test_delivery_by_bare_id,
    contract.test_unknown_id,
    contract.test_invalid_recipient_before_io,
    contract.test_wrong_password,
    contract.test_opted_out,
    contract.test_lifecycle,
    contract.test_password_not_in_repr,
]


def build_sync(backend: str, fake: FakeProvider, url: str, **extra: Any) -> Any:
    """A sync gateway for the fake's account (the arguments of tests/contract/subject_*)."""
    if backend == "ippanel":
        return sync.IppanelGateway(
            username="user", password="secret-pass", sender="+983000505", base_url=url, **extra
        )
    line = sorted(fake.negin.lines)[0]
    return sync.NeginGateway(
        username="user", password="secret-pass", line=line, opt_out_fallback=None,
        base_url=url, **extra,
    )  # fmt: skip


class InThreads:
    """An async face over a sync gateway: each call runs in a worker thread."""

    def __init__(self, gw: Any) -> None:
        self.sync = gw
        self.name = gw.name
        self.max_recipients = gw.max_recipients

    def __repr__(self) -> str:
        return repr(self.sync)

    async def send(self, *args: Any, **kwargs: Any) -> Any:
        return await anyio.to_thread.run_sync(functools.partial(self.sync.send, *args, **kwargs))

    async def delivery(self, ref: Any, /) -> Any:
        return await anyio.to_thread.run_sync(self.sync.delivery, ref)

    async def aclose(self) -> None:
        await anyio.to_thread.run_sync(self.sync.close)

    async def __aenter__(self) -> InThreads:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


@pytest.fixture(params=["ippanel", "negin"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def provider(clock: FakeClock) -> FakeProvider:
    return FakeProvider(clock=clock, opted_out=[contract.OPTED_OUT])


@pytest.fixture
def url(provider: FakeProvider, serve_shared: Callable[[Any], LoopbackServer]) -> str:
    return serve_shared(provider).url


@pytest.mark.anyio
@pytest.mark.parametrize("case", CASES, ids=lambda f: f.__name__.removeprefix("test_"))
async def test_contract_case_from_threads(
    case: Callable[..., Any],
    backend: str,
    provider: FakeProvider,
    clock: FakeClock,
    url: str,
) -> None:
    """One contract case against the sync twin, every call made from a worker thread."""

    @contextlib.asynccontextmanager
    async def make(fake: FakeProvider = provider) -> AsyncIterator[Any]:
        gw = await anyio.to_thread.run_sync(lambda: build_sync(backend, fake, url))
        async with InThreads(gw) as facade:
            yield facade

    available = {"make": make, "provider": provider, "clock": clock, "backend": backend}
    wanted = inspect.signature(case).parameters
    await case(**{name: available[name] for name in wanted})


def test_many_threads_share_one_gateway(
    backend: str, provider: FakeProvider, clock: FakeClock, url: str
) -> None:
    """Eight plain threads send and ask delivery at once on one sync gateway."""
    numbers = [f"0912{t:03d}{i:04d}" for t in range(8) for i in range(5)]
    receipts: dict[int, list[smsgate.SendReceipt]] = {}
    errors: list[BaseException] = []
    start = threading.Barrier(8)

    with build_sync(backend, provider, url) as gw:

        def worker(t: int) -> None:
            try:
                start.wait(timeout=10)
                mine = numbers[t * 5 : (t + 1) * 5]
                receipts[t] = [gw.send(n, f"hello {t}") for n in mine]
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=worker, args=(t,)) for t in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert errors == []
        clock.advance(3600)
        all_receipts = [r for rs in receipts.values() for r in rs]
        reports: list[smsgate.DeliveryReport] = []
        lock = threading.Lock()

        def ask(receipt: smsgate.SendReceipt) -> None:
            found = gw.delivery(receipt)
            with lock:
                reports.extend(found)

        askers = [threading.Thread(target=ask, args=(r,)) for r in all_receipts]
        for thread in askers:
            thread.start()
        for thread in askers:
            thread.join(timeout=60)

    expected = sorted(smsgate.normalize_msisdn(n) for n in numbers)
    assert sorted(provider.core.recipients()) == expected  # each sent exactly once
    assert len({r.message_id for r in all_receipts}) == len(numbers)
    assert sorted(r.recipient for r in reports if r.recipient) == expected
    assert all(r.state is smsgate.DeliveryState.DELIVERED for r in reports)


def test_same_errors_and_groups(provider: FakeProvider, url: str) -> None:
    """Errors are the async ones; ippanel's groups and Negin's states() are blocking too."""
    with build_sync("ippanel", provider, url) as gw:
        with pytest.raises(smsgate.InvalidRecipientError):
            gw.send("12345", "hi")
        with pytest.raises(smsgate.UnknownMessageError):
            gw.delivery("999999999999")
        assert gw.credit() > 0
        assert isinstance(gw.phonebooks.list(), list)
        assert "secret-pass" not in repr(gw)
    with pytest.raises(RuntimeError):
        gw.send("09121111111", "hi")
    gw.close()  # idempotent
    with build_sync("negin", provider, url) as negin:
        receipt = negin.send("09121111111", "hi")
        states = negin.states([receipt.message_id])
        assert set(states) == {receipt.message_id}


def test_sync_dispatcher(provider: FakeProvider, url: str) -> None:
    """run, stream and estimate without a loop; a policy of sync routes shares one runner."""
    from smsgate.dispatch import MemoryJournal

    messages = [smsgate.Message(to=f"0912100{i:04d}", text="bulk") for i in range(12)]
    with build_sync("ippanel", provider, url) as gw:
        with sync.BulkDispatcher(gw, journal=MemoryJournal()) as dispatcher:
            estimate = dispatcher.estimate(messages)
            assert estimate.recipients == 12
            report = dispatcher.run(messages, job_id="j1")
            assert report.sent == 12
            again = list(dispatcher.stream(messages, job_id="j1"))
            assert [o.status for o in again] == ["skipped"] * 12
        with build_sync("negin", provider, url, runner=gw.runner) as negin:
            policy = smsgate.FallbackPolicy([smsgate.Route(negin), smsgate.Route(gw)])
            with sync.BulkDispatcher(policy) as dispatcher:
                outcomes = list(dispatcher.stream(messages[:3], job_id="j2"))
            assert {o.route for o in outcomes} == {"negin:default"}
            assert not gw.runner.closed  # still shared by gw
        other = build_sync("negin", provider, url)
        try:
            with pytest.raises(smsgate.ConfigurationError):
                sync.BulkDispatcher(
                    smsgate.FallbackPolicy([smsgate.Route(other), smsgate.Route(gw)])
                )
        finally:
            other.close()
    assert gw.runner.closed
    assert len(provider.ledger) == 15


def test_forgotten_gateway_does_not_block_exit() -> None:
    """A program that never closes its sync gateway still exits, without resource warnings."""
    import subprocess
    import sys

    code = (
        "import contextlib\n"
        "from smsgate.sync import IppanelGateway\n"
        "from smsgate.testing import FakeProvider, serve_loopback\n"
        "stack = contextlib.ExitStack()\n"
        "server = stack.enter_context(serve_loopback(FakeProvider()))\n"
        "gw = IppanelGateway(username='user', password='secret-pass', sender='+983000505',\n"
        "                    base_url=server.url)\n"
        "print(gw.send('09121111111', 'hi').message_id)\n"
    )
    done = subprocess.run(
        [sys.executable, "-W", "error", "-c", code], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().isdigit()
    assert "Unclosed" not in done.stderr and "ResourceWarning" not in done.stderr


def test_sync_track(provider: FakeProvider, clock: FakeClock, url: str, tmp_path: Any) -> None:
    """smsgate.sync.track tracks a job journaled in an SQLite file, from plain code."""
    journal = tmp_path / "job.sqlite"
    messages = [smsgate.Message(to=f"0912200{i:04d}", text="bulk") for i in range(5)]
    with build_sync("negin", provider, url) as gw:
        with sync.BulkDispatcher(gw, journal=str(journal)) as dispatcher:
            assert dispatcher.run(messages, job_id="t").sent == 5
        clock.advance(3600)
        summary = sync.track(str(journal), gw, job_id="t", deadline=0)
    assert summary.complete and summary.counts.delivered == 5
    with pytest.raises(smsgate.ConfigurationError):
        sync.track(str(journal), object(), job_id="t")


def test_a_forked_child_is_told_instead_of_hanging() -> None:
    """fork() copies a sync gateway but not its loop thread (Celery prefork, gunicorn
    --preload): the child gets a RuntimeError saying what to do, and exits cleanly."""
    import subprocess
    import sys

    code = (
        "import contextlib, os\n"
        "from smsgate.sync import IppanelGateway\n"
        "from smsgate.testing import FakeProvider, serve_loopback\n"
        "stack = contextlib.ExitStack()\n"
        "server = stack.enter_context(serve_loopback(FakeProvider()))\n"
        "gw = IppanelGateway(username='user', password='secret-pass', sender='+983000505',\n"
        "                    base_url=server.url)\n"
        "print('parent', gw.credit() > 0, flush=True)\n"
        "pid = os.fork()\n"
        "if pid == 0:\n"
        "    try:\n"
        "        gw.credit()\n"
        "    except RuntimeError as exc:\n"
        "        print('child', 'forked' in str(exc), flush=True)\n"
        "    gw.close()\n"
        "    os._exit(0)\n"
        "_, status = os.waitpid(pid, 0)\n"
        "print('child exit', os.waitstatus_to_exitcode(status), flush=True)\n"
        "gw.close()\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["parent", "True", "child", "True", "child", "exit", "0"]
