"""Which network addresses a public document may lead us to: the rule against redirects inward.

A terms page on a public host must not be able to send tos-monitor, by a redirect, to the
machine it runs on (127.0.0.1, ::1), the cloud metadata service (169.254.169.254), or the
private network around it (10/8, 172.16/12, 192.168/16, fc00::/7...), and have what answers
there stored as a version and mailed out. ``monitor.fetcher`` applies the rule to the resolved
address of every hop, before following it and again when connecting (so a name that resolves to
a public address when checked and to 127.0.0.1 a moment later is refused too). A document whose
own URL is private is trusted: the operator asked for it. ``[fetch] allow_private = true``
turns the rule off.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable

__all__ = ["Resolver", "is_private_address", "system_resolver"]

Resolver = Callable[[str, int], Awaitable[list[str]]]
"""``await resolve(host, port)``: the addresses of ``host``, in the order to try them."""


def is_private_address(address: str) -> bool:
    """True for any address that is not on the public internet.

    Loopback, link-local (169.254/16, fe80::/10: cloud metadata services live there), private
    (10/8, 172.16/12, 192.168/16, fc00::/7), shared (100.64/10), unspecified, multicast, reserved
    and documentation ranges; an IPv4 address mapped into IPv6 is judged as IPv4. A string that
    is not an address counts as private: it cannot be shown to be public.
    """
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return True
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not ip.is_global or ip.is_multicast


async def system_resolver(host: str, port: int) -> list[str]:
    """The addresses of ``host`` from the system's resolver (getaddrinfo), without duplicates."""
    try:
        return [str(ipaddress.ip_address(host))]  # a literal needs no lookup
    except ValueError:
        pass
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))
