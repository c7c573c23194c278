"""Where a push comes from: the TCP peer, and ``X-Forwarded-For`` only from trusted proxies.

The rule (docs/webhooks.md, "Behind a proxy"), given the peer address the server reports
and every ``X-Forwarded-For`` header of the request:

1. No ``X-Forwarded-For``: the peer is the source.
2. The peer appears among the header's hops: the server already replaced the TCP peer
   with an address taken from the header (uvicorn does so for connections from its
   ``forwarded_allow_ips``, by default ``127.0.0.1`` and ``::1``; gunicorn's uvicorn
   workers from its ``forwarded_allow_ips``). The real peer is hidden, so whether the
   header came from a trusted proxy cannot be known: the source is **unknown** (an
   allow-list refuses it). Turn the server's own proxy-header handling off and name the
   proxy in ``trusted_proxies`` instead.
3. The peer is in ``trusted_proxies``: the source is the right-most hop that is not a
   trusted proxy (each proxy appends the address it saw), or the left-most hop when
   every hop is trusted. A hop that is not an IP address makes the source unknown.
4. Otherwise the header is ignored (anyone can send one): the peer is the source.

Nothing is trusted by default.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from typing import TypeAlias

from ..exceptions import ConfigurationError

__all__ = ["Address", "Network", "address", "client_source", "forwarded_hops", "networks"]

Network: TypeAlias = ipaddress.IPv4Network | ipaddress.IPv6Network
Address: TypeAlias = ipaddress.IPv4Address | ipaddress.IPv6Address
SourceSpec: TypeAlias = str | Address | Network


def networks(
    value: Iterable[SourceSpec] | SourceSpec | None, *, field: str, empty_ok: bool
) -> tuple[Network, ...] | None:
    """IP networks from addresses and CIDR strings (or objects); ``None`` stays ``None``.

    Raises:
        ConfigurationError: An entry is not an address or network, or the list is empty
            where that would make no sense.
    """
    if value is None:
        return None
    if isinstance(value, str | ipaddress.IPv4Address | ipaddress.IPv6Address | Network):
        # One address or network given bare (a network object is iterable: over its hosts).
        value = [value]
    nets: list[Network] = []
    for spec in value:
        try:
            nets.append(ipaddress.ip_network(spec, strict=False))
        except (TypeError, ValueError):
            raise ConfigurationError(
                f"{field} holds {spec!r}, which is not an IP address or network"
            ) from None
    if not nets and not empty_ok:
        raise ConfigurationError(
            f"{field} is empty, which would refuse every push; pass None to allow all"
        )
    return tuple(nets)


def address(host: str | None) -> Address | None:
    """An IP address from a peer or hop string (``[v6]:port`` and ``v4:port`` accepted)."""
    if not host:
        return None
    text = host.strip()
    if text.startswith("["):
        end = text.find("]")
        text = text[1:end] if end > 0 else text
    elif text.count(":") == 1:
        text = text.split(":", 1)[0]  # an IPv4 address with a port
    try:
        found = ipaddress.ip_address(text.split("%", 1)[0])  # drop an IPv6 zone id
    except ValueError:
        return None
    if isinstance(found, ipaddress.IPv6Address) and found.ipv4_mapped is not None:
        # A dual-stack socket reports an IPv4 client as ::ffff:a.b.c.d.
        return found.ipv4_mapped
    return found


def forwarded_hops(headers: Sequence[str]) -> list[str]:
    """The hops of every ``X-Forwarded-For`` header, left to right (empty ones dropped)."""
    return [hop.strip() for value in headers for hop in value.split(",") if hop.strip()]


def _within(found: Address, nets: Iterable[Network]) -> bool:
    return any(found in net for net in nets)


def client_source(
    peer: str | None, forwarded_for: Sequence[str], trusted: Sequence[Network]
) -> tuple[str | None, str]:
    """The source address of a request by the rule of this module's docstring.

    Args:
        peer: The client address the server reports (``request.client.host``).
        forwarded_for: The values of every ``X-Forwarded-For`` header, in order.
        trusted: The proxies whose ``X-Forwarded-For`` is believed.

    Returns:
        The source (``None`` when it cannot be known) and a short reason, for logs.
    """
    hops = forwarded_hops(forwarded_for)
    if not hops:
        return peer, "peer"
    peer_address = address(peer)
    hop_addresses = [address(hop) for hop in hops]
    if peer_address is not None and peer_address in hop_addresses:
        return None, (
            f"the server took the client address {peer} from X-Forwarded-For, which hides "
            "the real peer (switch the server's proxy headers off, e.g. uvicorn "
            "--forwarded-allow-ips='', and list your proxy in trusted_proxies)"
        )
    if peer_address is None or not _within(peer_address, trusted):
        return peer, "peer (X-Forwarded-For from an untrusted peer ignored)"
    for hop, found in zip(reversed(hops), reversed(hop_addresses), strict=True):
        if found is None:
            return None, f"X-Forwarded-For holds {hop[:50]!r}, which is not an IP address"
        if not _within(found, trusted):
            return str(found), f"X-Forwarded-For via trusted proxy {peer}"
    first = hop_addresses[0]
    return str(first), f"X-Forwarded-For via trusted proxy {peer} (every hop trusted)"
