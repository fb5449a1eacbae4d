"""A pretend public internet on loopback, for testing the private-address rule over real HTTP.

The fetcher resolves names with a ``resolver`` and opens sockets through an httpcore network
backend; both can be replaced. ``names`` is a resolver with a fixed table (IP literals resolve to
themselves), and ``Routes`` is a network backend that forwards connections for chosen public
addresses to a local server, like a NAT: the HTTP exchange itself is real, over a real socket
to the page server. Any other address is unreachable here, so no test can touch a public host.
"""

from __future__ import annotations

import ipaddress
import socket
from typing import Any

import httpcore

from monitor.netpolicy import Resolver

__all__ = ["PUBLIC", "Routes", "names"]

PUBLIC = "93.184.216.34"  # a public address (globally routable): the tests never reach it


def names(table: dict[str, list[str]], log: list[str] | None = None) -> Resolver:
    """A resolver answering from ``table`` (a list of answers is consumed one call at a time
    when it holds lists, for DNS rebinding tests)."""

    async def resolve(host: str, port: int) -> list[str]:
        if log is not None:
            log.append(host)
        try:
            ipaddress.ip_address(host)
        except ValueError:
            pass
        else:
            return [host]
        if host not in table:
            raise socket.gaierror(socket.EAI_NONAME, f"unknown test host {host}")
        answer = table[host]
        if answer and isinstance(answer[0], list):  # successive answers
            return answer.pop(0) if len(answer) > 1 else answer[0]  # type: ignore[return-value]
        return answer

    return resolve


class Routes(httpcore.AsyncNetworkBackend):
    """Connects ``address`` to ``routes[address]`` (loopback); anything else is unreachable."""

    def __init__(self, routes: dict[str, str]) -> None:
        self.routes = routes
        self.connects: list[str] = []
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> httpcore.AsyncNetworkStream:
        self.connects.append(host)
        target = self.routes.get(host, host)
        if not ipaddress.ip_address(target).is_loopback:
            raise httpcore.ConnectError(f"test network: no route to {host}")
        return await self._inner.connect_tcp(
            target,
            port,
            timeout=timeout,
            local_address=local_address,
            socket_options=socket_options,
        )

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Any = None
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("no unix sockets here")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)
