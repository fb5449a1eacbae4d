"""A real SMTP server (aiosmtpd) on 127.0.0.1 for tests, capturing what it accepts.

Use it as a pytest plugin (``pytest_plugins = ["tests.smtp"]``); it provides the function-scoped
fixture ``smtp_server``: a fresh server on a random port. Nothing here touches a public host.

    smtp_server.host, smtp_server.port
    smtp_server.messages         list[EmailMessage] accepted, parsed with policy.default
    smtp_server.envelopes        list[Envelope]: .mail_from, .rcpt_tos, .data (raw bytes)
    smtp_server.stop()           simulate an outage (connections are refused)
    smtp_server.start()          come back on the same port
    smtp_server.refuse(address)  answer RCPT TO for this address with 550 (a bad address)
    smtp_server.wait_for(n)      wait (bounded) until n messages arrived; returns the messages

``SMTPTestServer(tls=..., starttls=..., auth=(user, password))`` builds a server that speaks TLS
from the first byte, requires STARTTLS, and/or requires AUTH; ``self_signed_cert(dir)`` makes the
certificate (with the openssl command) and ``client_context(cert)`` a context trusting it.
"""

from __future__ import annotations

import socket
import ssl
import subprocess
import threading
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


@dataclass(frozen=True)
class Envelope:
    mail_from: str
    rcpt_tos: tuple[str, ...]
    data: bytes


class _Handler:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.envelopes: list[Envelope] = []
        self.refused: dict[str, str] = {}

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: Any
    ) -> str:
        if address.lower() in self.refused:
            return self.refused[address.lower()]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        data = envelope.original_content or envelope.content
        if isinstance(data, str):
            data = data.encode("utf-8")
        with self.lock:
            self.envelopes.append(
                Envelope(
                    mail_from=str(envelope.mail_from),
                    rcpt_tos=tuple(envelope.rcpt_tos),
                    data=bytes(data),
                )
            )
        return "250 2.0.0 accepted"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class SMTPTestServer:
    def __init__(
        self,
        *,
        tls: ssl.SSLContext | None = None,
        starttls: ssl.SSLContext | None = None,
        auth: tuple[str, str] | None = None,
    ) -> None:
        self.host = "127.0.0.1"
        self.port = free_port()
        self._handler = _Handler()
        self._tls = tls
        self._starttls = starttls
        self._auth = auth
        self._controller: Controller | None = None
        self.logins: list[str] = []

    def _authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
    ) -> AuthResult:
        if not isinstance(auth_data, LoginPassword) or self._auth is None:
            return AuthResult(success=False, handled=False)
        user, password = auth_data.login.decode(), auth_data.password.decode()
        ok = (user, password) == self._auth
        if ok:
            self.logins.append(user)
        return AuthResult(success=ok, handled=False)

    def start(self) -> None:
        if self._controller is not None:
            return
        kwargs: dict[str, Any] = {}
        if self._tls is not None:
            kwargs["ssl_context"] = self._tls
        if self._starttls is not None:
            kwargs["tls_context"] = self._starttls
            kwargs["require_starttls"] = True
        if self._auth is not None:
            kwargs["authenticator"] = self._authenticate
            kwargs["auth_required"] = True
            # with implicit TLS aiosmtpd does not notice the connection is encrypted, so it
            # would hide AUTH; the connection is TLS from the first byte anyway
            kwargs["auth_require_tls"] = self._starttls is not None
            if self._tls is not None:
                warnings.filterwarnings(
                    "ignore", message="Requiring AUTH while not requiring TLS", category=UserWarning
                )
        controller = Controller(
            self._handler, hostname=self.host, port=self.port, ready_timeout=10, **kwargs
        )
        for attempt in range(50):
            try:
                controller.start()
                break
            except (OSError, RuntimeError):  # the port may linger briefly after a stop
                if attempt == 49:
                    raise
                time.sleep(0.1)
        self._controller = controller

    def stop(self) -> None:
        controller, self._controller = self._controller, None
        if controller is not None:
            controller.stop()

    @property
    def running(self) -> bool:
        return self._controller is not None

    def refuse(self, address: str, reply: str = "550 5.1.1 no such user here") -> None:
        """Answer RCPT TO ``address`` with ``reply`` (a permanent "no such user" by default)."""
        self._handler.refused[address.lower()] = reply

    def accept(self, address: str) -> None:
        self._handler.refused.pop(address.lower(), None)

    @property
    def envelopes(self) -> list[Envelope]:
        with self._handler.lock:
            return list(self._handler.envelopes)

    @property
    def messages(self) -> list[EmailMessage]:
        return [
            message_from_bytes(envelope.data, policy=policy.default)  # type: ignore[misc]
            for envelope in self.envelopes
        ]

    def clear(self) -> None:
        with self._handler.lock:
            self._handler.envelopes.clear()

    def wait_for(self, count: int, timeout: float = 10.0) -> list[EmailMessage]:
        deadline = time.monotonic() + timeout
        while len(self.envelopes) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.messages


def self_signed_cert(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key (made with the openssl command)."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "2",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


def server_context(cert: Path, key: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


def client_context(cert: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(cert))


@pytest.fixture
def smtp_server() -> Iterator[SMTPTestServer]:
    server = SMTPTestServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()
