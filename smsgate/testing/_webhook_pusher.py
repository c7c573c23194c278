"""The fake provider's delivery push: final ippanel states POSTed to a webhook URL.

Kapanel pushes a delivery report to the user's URL (protocols/ippanel.md §8). The fake does
the same, from outside the ASGI app: :class:`WebhookPusher` watches
``fake.ippanel.bulks()`` / ``fake.ippanel.bulk_states(bulk_id)`` and, when a recipient's
state becomes final (``delivered``, ``failed``, ``discarded``), POSTs one JSON report for it,
once, with the proposed payload of §8::

    {"message_id": 562892393, "from": "+983000505", "to": "+989121234567",
     "status": "delivered", "date": "2024-05-01T08:30:00Z"}

It runs in a thread with a blocking httpx client, like :func:`serve_loopback`, so that it
works the same beside asyncio and trio tests and beside servers running in threads.
Loopback URLs only, unless told otherwise.
"""

from __future__ import annotations

import ipaddress
import threading
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

import attrs
import httpx

from ..exceptions import ConfigurationError

if TYPE_CHECKING:
    from ._fake import FakeProvider

__all__ = ["PushRecord", "WebhookPusher"]

# §8: the provider waits 15 seconds for the answer.
DEFAULT_PUSH_TIMEOUT = 15.0
_FINAL = frozenset({"delivered", "failed", "discarded"})


@attrs.frozen(kw_only=True)
class PushRecord:
    """One report the pusher sent (or gave up on).

    Attributes:
        bulk_id: The bulk (message) id.
        recipient: The recipient, E.164.
        status: The final status pushed.
        attempts: POSTs made.
        status_code: The last HTTP status, ``None`` if no answer came.
        error: Why it gave up, ``None`` on success.
        payload: The JSON object sent.
    """

    bulk_id: str
    recipient: str
    status: str
    attempts: int
    status_code: int | None
    error: str | None = None
    payload: Mapping[str, Any] = attrs.field(factory=dict, repr=False)

    @property
    def ok(self) -> bool:
        """Whether the webhook answered 2xx."""
        return self.error is None


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _line_e164(line: str | None) -> str:
    # §8: sender numbers carry the country code and "+". A line is kept as the client sent
    # it ("3000505", "+983000505", "0983000505"...); strip any prefix, then add +98.
    if not line:
        return ""
    digits = line.strip().lstrip("+")
    for prefix in ("0098", "98", "0"):
        if digits.startswith(prefix):
            digits = digits[len(prefix) :]
            break
    return "+98" + digits


def _rfc3339(moment: datetime) -> str:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class WebhookPusher:
    """POSTs each final (bulk, recipient) state of the fake's ippanel half to a URL, once.

    Use it as a context manager (a background thread scans every ``interval`` seconds) or
    call :meth:`push_pending` yourself for one synchronous scan::

        with serve_loopback(app) as hook, WebhookPusher(fake, hook.url + "/sms/delivery"):
            ...  # send through the fake, advance its clock: reports arrive at the app

    Args:
        fake: The :class:`~smsgate.testing.FakeProvider` to watch.
        url: The webhook URL (with a path token, if the receiver wants one).
        interval: Seconds between scans in the background thread.
        timeout: Seconds to wait for each answer (15, as the provider documents).
        retries: Further attempts after a failed one (no answer, 429 or 5xx); 4xx and
            redirects are not retried (§8: the URL must not redirect).
        backoff: Seconds before the first retry; doubled for each next one.
        headers: Extra request headers (a token header, say).
        allow_remote: Allow a URL that is not loopback (off: tests must stay on 127.0.0.1).
        transport: An httpx transport to use instead of the network (unit tests).

    Attributes:
        pushed: Every report delivered (2xx), in order.
        failed: Every report given up on, in order.
        errors: Exceptions a background scan raised (it keeps going).
    """

    def __init__(
        self,
        fake: FakeProvider,
        url: str,
        *,
        interval: float = 0.05,
        timeout: float = DEFAULT_PUSH_TIMEOUT,
        retries: int = 2,
        backoff: float = 0.2,
        headers: Mapping[str, str] | None = None,
        allow_remote: bool = False,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        parsed = httpx.URL(url)
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise ConfigurationError(f"the webhook URL must be http(s)://host/..., not {url!r}")
        if not allow_remote and not _is_loopback(parsed.host):
            raise ConfigurationError(
                f"the webhook URL's host {parsed.host!r} is not loopback "
                "(pass allow_remote=True to push elsewhere)"
            )
        if not interval > 0 or not timeout > 0 or retries < 0 or backoff < 0:
            raise ConfigurationError(
                "interval and timeout must be positive, retries and backoff >= 0"
            )
        self.fake = fake
        self.url = url
        self.interval = interval
        self.retries = retries
        self.backoff = backoff
        self.pushed: list[PushRecord] = []
        self.failed: list[PushRecord] = []
        self.errors: list[BaseException] = []
        self._client = httpx.Client(
            timeout=timeout,
            headers=dict(headers or {}),
            follow_redirects=False,
            transport=transport,
        )
        self._done: set[tuple[str, str]] = set()  # (bulk, recipient) pushed or given up on
        self._finished_bulks: set[str] = set()
        self._senders: dict[str, str | None] = {}
        self._ledger_read = 0
        self._scan_lock = threading.Lock()
        self._changed = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        return (
            f"WebhookPusher(url={self.url!r}, pushed={len(self.pushed)}, failed={len(self.failed)})"
        )

    # -- one scan ----------------------------------------------------------------------

    def push_pending(self) -> int:
        """Push every final state not pushed yet; returns how many were pushed now."""
        with self._scan_lock:
            count = 0
            ippanel = self.fake.ippanel
            for bulk_id in ippanel.bulks():
                if bulk_id in self._finished_bulks:
                    continue
                states = ippanel.bulk_states(bulk_id)
                for recipient, status in states:
                    if self._stop.is_set() and self._thread is not None:
                        return count
                    key = (bulk_id, recipient)
                    if status not in _FINAL or key in self._done:
                        continue
                    record = self._push(bulk_id, recipient, status)
                    self._done.add(key)
                    with self._changed:
                        (self.pushed if record.ok else self.failed).append(record)
                        self._changed.notify_all()
                    count += record.ok
                if all(s in _FINAL and (bulk_id, r) in self._done for r, s in states):
                    self._finished_bulks.add(bulk_id)
            return count

    def _payload(self, bulk_id: str, recipient: str, status: str) -> dict[str, Any]:
        return {
            # §8 shows a JSON number; the fake's ids are digits, anything else stays a string.
            "message_id": int(bulk_id) if bulk_id.isdigit() else bulk_id,
            "from": _line_e164(self._sender(bulk_id)),
            "to": recipient,
            "status": status,
            "date": _rfc3339(self.fake.ippanel.wall_clock()),
        }

    def _sender(self, bulk_id: str) -> str | None:
        # The line a bulk went out on is in the fake's ledger; read only the entries added
        # since the last look, so a long run stays linear.
        ledger = self.fake.ledger
        for entry in ledger[self._ledger_read :]:
            if entry.provider == "ippanel":
                self._senders.setdefault(entry.message_id, entry.sender)
        self._ledger_read = len(ledger)
        return self._senders.get(bulk_id)

    def _push(self, bulk_id: str, recipient: str, status: str) -> PushRecord:
        payload = self._payload(bulk_id, recipient, status)
        attempts = 0
        status_code: int | None = None
        error = "not attempted"
        while attempts <= self.retries:
            # Back off before a retry, but wake up at once when asked to stop.
            if attempts and self._stop.wait(self.backoff * 2 ** (attempts - 1)):
                break
            attempts += 1
            try:
                answer = self._client.post(self.url, json=payload)
            except httpx.HTTPError as exc:
                status_code, error = None, f"{type(exc).__name__}: {exc}"
                continue
            status_code = answer.status_code
            if answer.is_success:
                return PushRecord(
                    bulk_id=bulk_id,
                    recipient=recipient,
                    status=status,
                    attempts=attempts,
                    status_code=status_code,
                    payload=payload,
                )
            error = f"HTTP {status_code}"
            if status_code != 429 and status_code < 500:
                break  # the receiver refused this report: the same bytes will not do better
        return PushRecord(
            bulk_id=bulk_id,
            recipient=recipient,
            status=status,
            attempts=attempts,
            status_code=status_code,
            error=error,
            payload=payload,
        )

    # -- background thread -------------------------------------------------------------

    def start(self) -> Self:
        """Start scanning in a background thread."""
        if self._thread is not None:
            raise RuntimeError("the pusher is already running")
        self._thread = threading.Thread(
            target=self._run, name="smsgate-webhook-pusher", daemon=True
        )
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.push_pending()
            except Exception as exc:  # keep pushing; the test reads .errors
                self.errors.append(exc)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the thread (waiting up to ``timeout`` seconds) and close the HTTP client."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self._client.close()

    def wait_for(self, count: int, *, timeout: float = 10.0) -> bool:
        """Block until ``count`` reports were pushed successfully, or ``timeout`` passes.

        Returns:
            Whether ``count`` was reached.
        """
        deadline = time.monotonic() + timeout
        with self._changed:
            while len(self.pushed) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(left)
            return True

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
