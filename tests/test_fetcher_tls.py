"""https fetches over real TLS on loopback, with certificates from a test CA (trustme).

The page is served for the name ``terms.example``, which the test network (``tests.network``)
resolves to a public address and routes to the local server, so the fetcher verifies the
certificate against the name it asked for, as it would on the internet.
"""

from __future__ import annotations

import asyncio
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import trustme

from monitor import fetcher as fetcher_module
from monitor.errors import FetchError
from monitor.fetcher import Fetcher, FetchResult
from tests.network import PUBLIC, Routes, names

HOST = "terms.example"
PAGE = b"<html><body><h1>Terms</h1><p>You keep ownership of your content.</p></body></html>"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(PAGE)))
        self.end_headers()
        self.wfile.write(PAGE)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def ca() -> Any:
    return trustme.CA()


@pytest.fixture
def https_port(ca: Any) -> Iterator[int]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(HOST).configure_cert(context)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def _fetch(port: int) -> FetchResult:
    async def go() -> FetchResult:
        async with Fetcher(
            retries=0,
            timeout=5.0,
            resolver=names({HOST: [PUBLIC]}),
            network=Routes({PUBLIC: "127.0.0.1"}),
        ) as fetcher:
            return await fetcher.fetch(f"https://{HOST}:{port}/terms")

    return asyncio.run(go())


def test_a_page_is_fetched_over_verified_tls(
    ca: Any, https_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the one thing not real here: a public CA's signature, so the test CA is trusted instead
    trusted = ssl.create_default_context()
    ca.configure_trust(trusted)
    monkeypatch.setattr(fetcher_module, "_tls_context", lambda: trusted)
    result = _fetch(https_port)
    assert result.status == 200
    assert result.url == f"https://{HOST}:{https_port}/terms"
    assert "You keep ownership" in result.text()


def test_a_certificate_no_trusted_authority_signed_is_refused(https_port: int) -> None:
    with pytest.raises(FetchError) as info:
        _fetch(https_port)
    message = str(info.value)
    assert message.startswith(f"https://{HOST}:{https_port}/terms: connection failed")
    assert "CERTIFICATE_VERIFY_FAILED" in message
