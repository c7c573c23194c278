"""Every error smsgate raises, in one tree.

Branches are chosen by what the caller can do next::

    SmsGateError
    ├── InvalidRecipientError (ValueError)   a number failed local validation
    │   └── RecipientRejectedError           ...or the provider rejected it (also ProviderError)
    ├── InvalidMessageError (ValueError)     empty text, bad pattern values...
    │   └── MessageRejectedError             ...or the provider rejected it (also ProviderError)
    ├── ConfigurationError (ValueError)      bad settings, found at construction
    ├── ProviderError                        the provider answered and refused (.code .detail)
    │   ├── AuthenticationError                  wrong user name / password
    │   ├── AccountRestrictedError               account inactive, expired, limited, KYC missing
    │   ├── InsufficientCreditError
    │   ├── InvalidSenderError                   the sender line is not yours / unusable
    │   ├── RecipientOptedOutError               the recipient is on the operators' opt-out list
    │   ├── SendWindowError                      this line may not send at this hour (08-23)
    │   ├── TooManyRecipientsError               more numbers than one request may carry
    │   ├── PatternError                         pattern unknown, inactive, or values invalid
    │   ├── SubAccountRejectedError (ValueError) a new sub-account's details were refused
    │   ├── RateLimitedError                     slow down (.retry_after seconds, when known)
    │   ├── UnknownMessageError                  a status query for an id the provider does not know
    │   ├── ProviderUnavailableError             HTTP 5xx, or the provider says the route is down
    │   ├── RecipientRejectedError               (see above)
    │   └── MessageRejectedError                 (see above)
    ├── TransportError                       no usable answer
    │   ├── NotSentError                         the request certainly never reached the provider
    │   │   ├── CircuitOpenError                     a route skipped: its circuit breaker is open
    │   │   └── JobStoppedError                      a bulk job stopped before this row was sent
    │   ├── OutcomeUnknownError                  it may have been sent: never retried blindly
    │   └── ProtocolError                        the answer could not be read (HTML, truncated JSON)
    ├── JournalError                         the journal could not be read or written (.path)
    └── WebhookError                         a pushed delivery report was refused
        ├── WebhookAuthError                     wrong secret or source address
        └── MalformedReportError                 the body is not a report we can read
            ├── UnreadableReportError                not JSON at all (HTTP 400)
            └── ReportTooLargeError                  over the size cap (HTTP 413)

Every error carries three flags that say what is safe to do:

* ``retryable``: sending the same request again later is safe and may succeed.
* ``maybe_sent``: the message may have gone out; do not resend, reconcile instead.
* ``fallback_ok``: trying the same recipient on another route (line, provider) is safe.

Provider errors keep the provider's own text (often Persian) in ``detail`` beside the
English ``message``; neither ever contains a credential.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from ._models import SendReceipt

__all__ = [
    "AccountRestrictedError",
    "AuthenticationError",
    "CircuitOpenError",
    "ConfigurationError",
    "InsufficientCreditError",
    "InvalidMessageError",
    "InvalidRecipientError",
    "InvalidSenderError",
    "JobStoppedError",
    "JournalError",
    "MalformedReportError",
    "MessageRejectedError",
    "NotSentError",
    "OutcomeUnknownError",
    "PatternError",
    "ProtocolError",
    "ProviderError",
    "ProviderUnavailableError",
    "RateLimitedError",
    "RecipientOptedOutError",
    "RecipientRejectedError",
    "ReportTooLargeError",
    "SendWindowError",
    "SmsGateError",
    "SubAccountRejectedError",
    "TooManyRecipientsError",
    "TransportError",
    "UnknownMessageError",
    "UnreadableReportError",
    "WebhookAuthError",
    "WebhookError",
]


class SmsGateError(Exception):
    """The root of every error smsgate raises.

    Args:
        message: An English sentence saying what went wrong. Never holds a credential.
        retryable: Override the class default (see the module docstring).
        maybe_sent: Override the class default.
        fallback_ok: Override the class default.
    """

    #: Sending the same request again later is safe and may succeed.
    retryable: bool = False
    #: The message may have gone out: reconcile, never resend blindly.
    maybe_sent: bool = False
    #: The recipient may be tried on another route.
    fallback_ok: bool = False
    #: For a send to several numbers that partly failed: the receipt of the numbers that
    #: were sent (``None`` if none was), so nothing sent is forgotten.
    receipt: SendReceipt | None = None
    #: For a send to several numbers: each failed number (E.164) to its own error.
    errors: Mapping[str, SmsGateError] = MappingProxyType({})

    def __init__(
        self,
        message: str,
        *,
        retryable: bool | None = None,
        maybe_sent: bool | None = None,
        fallback_ok: bool | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if retryable is not None:
            self.retryable = retryable
        if maybe_sent is not None:
            self.maybe_sent = maybe_sent
        if fallback_ok is not None:
            self.fallback_ok = fallback_ok

    def __str__(self) -> str:
        return self.message


class InvalidRecipientError(SmsGateError, ValueError):
    """A phone number is not a valid Iranian mobile number; nothing was sent.

    Attributes:
        value: The number as given (numbers are not secrets).
    """

    def __init__(self, message: str, *, value: object = None, **flags: Any) -> None:
        super().__init__(message, **flags)
        self.value = value


class InvalidMessageError(SmsGateError, ValueError):
    """The message is unusable (empty text, unknown pattern variable...); nothing was sent."""


class ConfigurationError(SmsGateError, ValueError):
    """Settings that cannot work, found when an object is built, before any I/O."""


class ProviderError(SmsGateError):
    """The provider answered and refused.

    Attributes:
        provider: ``"ippanel"``, ``"negin"``, ...
        code: The provider's own result code, as a string (``"962"``, ``"27"``).
        detail: The provider's own text for it, often Persian, or ``None``.
    """

    #: The English meaning of each code this class stands for; filled by backends' tables.
    default_message: ClassVar[str] = "the provider refused the request"

    def __init__(
        self,
        message: str | None = None,
        *,
        provider: str,
        code: str | int | None = None,
        detail: str | None = None,
        **flags: Any,
    ) -> None:
        super().__init__(message or self.default_message, **flags)
        self.provider = provider
        self.code = None if code is None else str(code)
        self.detail = detail

    def __str__(self) -> str:
        parts = [self.message]
        if self.code is not None:
            parts.append(f"[{self.provider} code {self.code}]")
        else:
            parts.append(f"[{self.provider}]")
        if self.detail and self.detail != self.message:
            parts.append(f"({self.detail})")
        return " ".join(parts)

    def __reduce__(self) -> Any:
        # Exceptions with keyword-only constructors need help to survive pickling
        # (multiprocessing, journals).
        return (_rebuild_provider_error, (type(self), self.__dict__))


def _rebuild_provider_error(cls: type[ProviderError], state: dict[str, Any]) -> ProviderError:
    err = cls.__new__(cls)
    Exception.__init__(err, state.get("message", ""))
    err.__dict__.update(state)
    return err


class AuthenticationError(ProviderError):
    """The user name or password (or API key) was refused."""

    default_message = "the user name or password is incorrect"


class AccountRestrictedError(ProviderError):
    """The account may not do this: inactive, expired, limited, or documents not approved."""

    default_message = "the account is restricted"


class InsufficientCreditError(ProviderError):
    """The account's credit does not cover the send."""

    default_message = "insufficient credit"
    fallback_ok = True  # another provider's account may still have credit


class InvalidSenderError(ProviderError):
    """The sender line does not belong to the account or may not be used this way."""

    default_message = "the sender line is not valid for this account"
    fallback_ok = True


class RecipientOptedOutError(ProviderError):
    """The recipient is on the operators' opt-out (black) list for advertising SMS.

    A service line, Chelcheleh or another route may still reach them, so this error is
    ``fallback_ok``.
    """

    default_message = "the recipient has opted out of advertising SMS"
    fallback_ok = True


class SendWindowError(ProviderError):
    """This line may not send at this hour (Iranian advertising lines: 08:00 to 23:00)."""

    default_message = "the line cannot send at this hour"
    retryable = True
    fallback_ok = True


class TooManyRecipientsError(ProviderError):
    """The request carried more recipients than the provider allows in one request."""

    default_message = "too many recipients in one request"


class PatternError(ProviderError):
    """The pattern (template) is unknown, inactive, not yours, or its values are invalid."""

    default_message = "the pattern or its values are invalid"


class RateLimitedError(ProviderError):
    """The provider asks us to slow down.

    Attributes:
        retry_after: Seconds to wait before the next request, when the provider says.
    """

    default_message = "too many requests"
    retryable = True

    def __init__(
        self, message: str | None = None, *, retry_after: float | None = None, **kwargs: Any
    ) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class UnknownMessageError(ProviderError):
    """A status or delivery query named a message id the provider does not know."""

    default_message = "the provider does not know this message id"


class ProviderUnavailableError(ProviderError):
    """The provider, or the operator behind the line, is down (HTTP 5xx, ippanel code 99).

    ``maybe_sent`` is set per instance: an HTTP 500, 502 or 504 answer to a send may come
    after the provider accepted it, so those are ``maybe_sent=True`` and never resent;
    a business code saying "the operator is down" means nothing went out.
    """

    default_message = "the provider or the line's operator is unavailable"
    retryable = True
    fallback_ok = True


class RecipientRejectedError(ProviderError, InvalidRecipientError):
    """The provider rejected the recipient's number (catch it as either parent)."""

    default_message = "the provider rejected the recipient number"


class MessageRejectedError(ProviderError, InvalidMessageError):
    """The provider rejected the text (empty, too long...) (catch it as either parent)."""

    default_message = "the provider rejected the message text"


class SubAccountRejectedError(ProviderError, ValueError):
    """The provider refused the details of a new sub-account (ippanel ``newuser`` codes).

    Also a ``ValueError``: the fix is in the values given, never in retrying.
    """

    default_message = "the provider refused the new sub-account's details"


class TransportError(SmsGateError):
    """No usable answer came back from the provider."""


class NotSentError(TransportError):
    """The request certainly never reached the provider (connect refused, DNS, pool timeout).

    Safe to retry and safe to send on another route.
    """

    retryable = True
    fallback_ok = True


class CircuitOpenError(NotSentError):
    """A route was skipped because its circuit breaker is open; nothing was sent.

    A :class:`NotSentError`: safe to retry later and safe to send on another route.

    Attributes:
        route: The route's name.
        retry_at: The breaker clock's time at which a probe will be allowed.
    """

    def __init__(self, route: str, *, retry_at: float | None = None, **flags: Any) -> None:
        super().__init__(f"the circuit for route {route!r} is open; nothing was sent", **flags)
        self.route = route
        self.retry_at = retry_at

    def __reduce__(self) -> Any:
        return (_rebuild_circuit_open, (self.route, self.retry_at, self.__dict__))


def _rebuild_circuit_open(
    route: str, retry_at: float | None, state: dict[str, Any]
) -> CircuitOpenError:
    err = CircuitOpenError(route, retry_at=retry_at)
    err.__dict__.update(state)
    return err


class JobStoppedError(NotSentError):
    """A bulk job stopped (asked to, or on an account-wide error) before this row was sent.

    A :class:`NotSentError`: nothing went out for this row, so running the job again
    sends it.
    """


class OutcomeUnknownError(TransportError):
    """The request may have reached the provider (timeout or disconnect after it went out).

    An SMS send is not idempotent: smsgate never retries this automatically. Reconcile
    through the provider's delivery or status call instead.
    """

    maybe_sent = True


class ProtocolError(TransportError):
    """The provider's answer could not be read (an HTML page, truncated JSON, a wrong shape).

    Attributes:
        status_code: The HTTP status of the answer, when there was one.
        excerpt: The first characters of the body, with credentials removed.
    """

    maybe_sent = True  # we could not read whether it was accepted

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        excerpt: str = "",
        **flags: Any,
    ) -> None:
        super().__init__(message, **flags)
        self.status_code = status_code
        self.excerpt = excerpt

    def __str__(self) -> str:
        status = "" if self.status_code is None else f" (HTTP {self.status_code})"
        tail = f": {self.excerpt!r}" if self.excerpt else ""
        return f"{self.message}{status}{tail}"


class JournalError(SmsGateError):
    """The journal could not be read or written (a full disk, a locked or read-only file).

    The message names the journal and what to do; the storage error is the ``__cause__``.
    Rows whose outcome could not be recorded are in doubt until the journal works again.

    Attributes:
        path: Where the journal is (a file path, or a DSN without its password), if known.
        report: When a bulk job ended with this error, its ``BulkReport`` of what was
            done until then; else ``None``.
    """

    def __init__(self, message: str, *, path: str | None = None, **flags: Any) -> None:
        super().__init__(message, **flags)
        self.path = path
        self.report: Any = None


class WebhookError(SmsGateError):
    """A pushed delivery report was refused."""


class WebhookAuthError(WebhookError):
    """The push carried a wrong secret, or came from an address outside the allow-list."""


class MalformedReportError(WebhookError, ValueError):
    """The pushed body is not a delivery report smsgate can read."""


class UnreadableReportError(MalformedReportError):
    """The body could not be read as JSON at all (bad bytes, bad encoding, bad syntax)."""


class ReportTooLargeError(MalformedReportError):
    """The body is larger than the receiver's size cap (or says it will be)."""
