"""The confirm / unsubscribe endpoint over real HTTP on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from monitor.models import Delivery, Subscriber
from monitor.subscriptions import sign_token
from monitor.web import WebServer, serve
from tests.mailfactory import SECRET, T0, add_subscriber, mail_config, record_change

KEY = SECRET.encode()


@pytest.fixture
def web(
    sessions: sessionmaker[Session], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[WebServer]:
    monkeypatch.setenv("TOSMON_SECRET_KEY", SECRET)
    server = serve(mail_config(tmp_path), sessions, now=lambda: T0)
    yield server
    server.stop()


def state(sessions: sessionmaker[Session], email: str = "reader@example.org") -> str:
    with sessions() as session:
        return session.scalars(select(Subscriber.state).where(Subscriber.email == email)).one()


def token_for(
    purpose: str, subscriber_id: int, email: str = "reader@example.org", nonce: str | None = None
) -> str:
    return sign_token(KEY, purpose, subscriber_id=subscriber_id, email=email, now=T0, nonce=nonce)  # type: ignore[arg-type]


def nonce_of(sessions: sessionmaker[Session], subscriber_id: int) -> str | None:
    with sessions() as session:
        return session.get_one(Subscriber, subscriber_id).token_nonce


def test_one_click_unsubscribe_needs_a_post(
    web: WebServer, sessions: sessionmaker[Session]
) -> None:
    subscriber_id = add_subscriber(sessions)
    record_change(sessions)  # a report waiting in the outbox
    url = f"{web.url}/unsubscribe?token={quote(token_for('unsubscribe', subscriber_id))}"

    page = httpx.get(url)
    assert page.status_code == 200
    assert "Stop all tos-monitor reports to reader@example.org?" in page.text
    assert '<form method="post"' in page.text
    assert page.headers["Referrer-Policy"] == "no-referrer"
    assert state(sessions) == "active"  # a GET (a link scanner) changes nothing

    # RFC 8058: the mail client POSTs List-Unsubscribe=One-Click to the URL
    done = httpx.post(url, content=b"List-Unsubscribe=One-Click")
    assert done.status_code == 200 and "Unsubscribed" in done.text
    assert state(sessions) == "unsubscribed"
    with sessions() as session:
        assert session.scalars(select(Delivery.status)).all() == ["cancelled"]
    assert httpx.post(url, content=b"List-Unsubscribe=One-Click").status_code == 200


def test_confirm_by_link(web: WebServer, sessions: sessionmaker[Session]) -> None:
    subscriber_id = add_subscriber(sessions, confirm=True)
    token = token_for("confirm", subscriber_id, nonce=nonce_of(sessions, subscriber_id))
    url = f"{web.url}/confirm?token={quote(token)}"
    page = httpx.get(url)
    assert page.status_code == 200 and "Confirm subscription" in page.text
    assert state(sessions) == "pending"
    assert httpx.post(url).status_code == 200
    assert state(sessions) == "active"


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_a_forged_or_altered_token_is_refused(
    web: WebServer, sessions: sessionmaker[Session], method: str
) -> None:
    victim = add_subscriber(sessions, "victim@example.org")
    genuine = token_for("unsubscribe", victim, "victim@example.org")
    forged_payload = sign_token(
        b"guessed key 0123456789",
        "unsubscribe",
        subscriber_id=victim,
        email="victim@example.org",
        now=T0,
    )
    _body, signature = genuine.split(".")
    tampered = token_for("unsubscribe", victim + 1, "other@example.org").split(".")[0]
    for token in (forged_payload, f"{tampered}.{signature}", genuine[:-3], "", "a.b"):
        response = httpx.request(method, f"{web.url}/unsubscribe?token={quote(token)}")
        assert response.status_code == 400, token
        assert "not valid" in response.text
    # a confirm token cannot unsubscribe, an unsubscribe token cannot confirm
    wrong = token_for("confirm", victim, "victim@example.org")
    assert httpx.post(f"{web.url}/unsubscribe?token={quote(wrong)}").status_code == 400
    assert httpx.post(f"{web.url}/confirm?token={quote(genuine)}").status_code == 400
    assert state(sessions, "victim@example.org") == "active"


def test_page_text_on_the_change_page_is_escaped(
    web: WebServer, sessions: sessionmaker[Session]
) -> None:
    from tests.mailfactory import AI_CLAUSE

    hostile = {**AI_CLAUSE, "annotation": "<script>alert(1)</script>"}
    change_id, _ = record_change(sessions, [hostile])
    page = httpx.get(f"{web.url}/changes/{change_id}")
    assert page.status_code == 200
    assert "<script>" not in page.text and "&lt;script&gt;" in page.text
    assert "default-src 'none'" in page.headers["Content-Security-Policy"]
    assert httpx.get(f"{web.url}/changes/99999").status_code == 404
    assert httpx.get(f"{web.url}/nothing-here").status_code == 404
    assert httpx.get(f"{web.url}/healthz").text == "ok\n"


def test_an_oversized_body_is_refused(web: WebServer, sessions: sessionmaker[Session]) -> None:
    subscriber_id = add_subscriber(sessions)
    url = f"{web.url}/unsubscribe?token={quote(token_for('unsubscribe', subscriber_id))}"
    assert httpx.post(url, content=b"x" * 100_000).status_code == 413
    assert state(sessions) == "active"


def test_history_pages_show_a_new_change_at_once(
    web: WebServer, sessions: sessionmaker[Session]
) -> None:
    assert "No change of medium severity" in httpx.get(web.url + "/").text
    record_change(sessions)
    home = httpx.get(web.url + "/").text  # cached pages are dropped when the history moves
    assert "Instagram Terms of Use" in home
    assert "No change of medium severity" not in home


def test_tosmon_serve_shows_the_history_until_sigterm(data_dir: Path) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    from tests.smtp import free_port

    port = free_port()
    env = {**os.environ, "TOSMON_SECRET_KEY": SECRET}
    process = subprocess.Popen(
        [sys.executable, "-m", "monitor", "serve", "--bind", f"127.0.0.1:{port}"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                page = httpx.get(f"http://127.0.0.1:{port}/")
                break
            except httpx.TransportError:
                assert process.poll() is None, process.communicate()
                assert time.monotonic() < deadline, "tosmon serve did not start listening"
                time.sleep(0.2)
        assert page.status_code == 200 and "<h1>Platforms</h1>" in page.text
        assert httpx.get(f"http://127.0.0.1:{port}/feeds/all.atom").status_code == 200
    finally:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert "Serving the history at" in out and "Traceback" not in err


def _raw_request(url: str, data: bytes, *, timeout: float = 10.0) -> bytes:
    """Send raw bytes to the endpoint and read the whole answer."""
    import socket

    host, port = url.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=timeout) as sock:
        sock.sendall(data)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


@pytest.fixture
def guarded_web(
    sessions: sessionmaker[Session], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[WebServer]:
    """The endpoint with a short head timeout and a small pool, so that limits are reached."""
    monkeypatch.setenv("TOSMON_SECRET_KEY", SECRET)
    server = serve(mail_config(tmp_path), sessions, now=lambda: T0, header_timeout=1.0, workers=2)
    yield server
    server.stop()


def test_idle_and_slowloris_connections_hold_no_thread_and_are_closed(
    guarded_web: WebServer,
) -> None:
    import socket
    import threading

    host, port = guarded_web.url.removeprefix("http://").rsplit(":", 1)
    threads_before = threading.active_count()
    idle = [socket.create_connection((host, int(port)), timeout=10) for _ in range(150)]
    slow = [socket.create_connection((host, int(port)), timeout=10) for _ in range(50)]
    try:
        for sock in slow:  # a request head that never ends
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: example\r\nX-Slow: 1")
        # 200 stalled clients, 2 workers: a normal request is still answered
        answer = httpx.get(f"{guarded_web.url}/healthz", timeout=10)
        assert answer.status_code == 200 and answer.text == "ok\n"
        assert threading.active_count() <= threads_before + 2  # no thread per connection
        # the server closes them once their head is late (recv returns the end of stream)
        for sock in idle[:5] + slow[:5]:
            data = sock.recv(1024)
            while data and not data.endswith(b"\r\n\r\n"):
                data += sock.recv(1024)
            assert data == b"" or data.startswith(b"HTTP/1.1 408"), data
            assert sock.recv(1024) == b""
    finally:
        for sock in idle + slow:
            sock.close()


def test_a_malformed_request_gets_a_400_without_a_traceback(
    web: WebServer, capfd: pytest.CaptureFixture[str]
) -> None:
    for garbage in (
        b"GARBAGE\r\n\r\n",
        b"GET /x HTTP/9.9 extra words\r\n\r\n",
        b"\x00\xff\r\n\r\n",
    ):
        answer = _raw_request(web.url, garbage)
        assert answer.startswith(b"HTTP/1.0 400") or answer.startswith(b"HTTP/1.1 400"), answer
    assert httpx.get(f"{web.url}/healthz").status_code == 200
    assert "Traceback" not in capfd.readouterr().err


@pytest.mark.parametrize("path", ["/changes/" + "9" * 40, "/changes/99999999999", "/changes/²"])
def test_a_huge_or_odd_change_id_is_a_404_without_a_traceback(
    web: WebServer, path: str, capfd: pytest.CaptureFixture[str]
) -> None:
    answer = httpx.get(f"{web.url}{path}")
    assert answer.status_code == 404
    assert "Traceback" not in capfd.readouterr().err


def test_an_oversized_request_head_is_refused(web: WebServer) -> None:
    answer = _raw_request(web.url, b"GET /healthz HTTP/1.1\r\nX-Big: " + b"a" * 40_000)
    assert answer.startswith(b"HTTP/1.1 431")
