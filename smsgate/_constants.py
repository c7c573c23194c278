"""Every default in one place."""

from __future__ import annotations

#: Seconds to open a connection, to write the request, to wait for a pooled connection.
DEFAULT_CONNECT_TIMEOUT = 10.0
DEFAULT_WRITE_TIMEOUT = 10.0
DEFAULT_POOL_TIMEOUT = 30.0
#: Seconds to wait for the provider's answer once the request went out.
DEFAULT_READ_TIMEOUT = 30.0

#: Connections a gateway keeps open to its provider (and so requests in flight).
DEFAULT_MAX_CONNECTIONS = 64

#: Larger answers are refused as ``ProtocolError`` (every real answer is a few KiB).
MAX_RESPONSE_BYTES = 4 * 1024 * 1024

#: Characters of an unreadable answer kept in ``ProtocolError.excerpt``.
EXCERPT_CHARS = 200

#: The most we ever wait because a provider said "retry after".
MAX_RETRY_AFTER = 300.0
