"""The confirm / unsubscribe endpoint: a small stdlib HTTP server in a thread.

Routes (``token`` is a signed link token, see :mod:`monitor.subscriptions`)::

    GET  /confirm?token=...       a page with a "Confirm" button (link scanners only GET)
    POST /confirm?token=...       confirms the subscription
    GET  /unsubscribe?token=...   a page with an "Unsubscribe" button
    POST /unsubscribe?token=...   unsubscribes (RFC 8058 one-click: body List-Unsubscribe=One-Click)
    GET  /changes/<id>            the report of one change, as HTML (the "full diff" link)
    GET  /healthz                 "ok"

A forged, altered or expired token gets a 400 page and changes nothing.

The endpoint faces the internet, so it defends itself: one gate thread accepts connections and
gathers each request head without blocking (a connection that has not sent a complete head
within ``HEADER_TIMEOUT`` is closed: idle or slowloris clients hold no thread), then a bounded
pool of ``WORKERS`` threads answers; a request body must arrive within ``READ_TIMEOUT``. A
malformed request gets a 400, an unknown or absurd id a 404, and neither prints a traceback.
"""

from __future__ import annotations

import contextlib
import io
import logging
import selectors
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, HTTPServer
from urllib.parse import parse_qs, quote, urlsplit

from sqlalchemy.orm import Session, sessionmaker

from monitor import render, subscriptions
from monitor.clock import utcnow
from monitor.config import Config
from monitor.errors import ConfigError, SubscriptionError
from monitor.site import Site

log = logging.getLogger(__name__)

MAX_BODY = 16_384
MAX_HEAD = 16_384
"""Bytes of request line and headers accepted; a longer head gets a 431."""
HEADER_TIMEOUT = 10.0
"""Seconds a connection may take to send its complete request head (then it is closed)."""
READ_TIMEOUT = 10.0
"""Seconds a worker waits on a socket read (a POST body) or write before giving up."""
WORKERS = 16
"""Threads answering requests; connections still sending their head hold none."""
MAX_WAITING = 512
"""Connections gathering their head at once; past it the oldest is closed."""
BACKLOG = 128
"""The listen backlog (connections the kernel queues before the gate accepts them)."""
"""Rendered change pages kept (each under render.REPORT_LIMIT)."""
"""A change id: ASCII digits that fit any integer column (a longer one is a 404, not an error)."""
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; form-action 'self'; "
        "frame-ancestors 'none'"
    ),
}


class WebServer:
    """A running endpoint: ``.url`` where it listens, ``.stop()`` to shut it down."""

    def __init__(self, httpd: _Server, thread: threading.Thread) -> None:
        self._httpd = httpd
        self._thread = thread
        address, port = httpd.server_address[:2]
        host = address.decode() if isinstance(address, bytes) else str(address)
        shown = f"[{host}]" if ":" in host else host
        self.url = f"http://{shown}:{port}"

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=10)


def parse_bind(bind: str) -> tuple[str, int]:
    host, _, port = bind.rpartition(":")
    return host.strip("[]"), int(port)


class _Waiting:
    """A connection still sending its request head."""

    __slots__ = ("address", "deadline", "head", "sock")

    def __init__(self, sock: socket.socket, address: tuple[str, int], deadline: float) -> None:
        self.sock = sock
        self.address = address
        self.deadline = deadline
        self.head = bytearray()


class _Server(HTTPServer):
    """Binds like HTTPServer; serves through a non-blocking gate and a bounded worker pool."""

    request_queue_size = BACKLOG

    def __init__(
        self,
        address: tuple[str, int],
        *,
        sessions: sessionmaker[Session],
        key: bytes,
        base_url: str,
        now: Callable[[], datetime],
        config: Config | None = None,
        header_timeout: float = HEADER_TIMEOUT,
        read_timeout: float = READ_TIMEOUT,
        workers: int = WORKERS,
    ) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)
        self.sessions = sessions
        self.key = key
        self.base_url = base_url
        self.now = now
        self.site = Site(sessions, base_url=base_url, now=now, config=config)
        self.header_timeout = header_timeout
        self.read_timeout = read_timeout
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="tosmon-web")
        self._busy = threading.BoundedSemaphore(workers * 4)
        self._stopping = threading.Event()
        self._stopped = threading.Event()
        self._local = threading.local()

    # -- the gate -----------------------------------------------------------------------------

    def serve_forever(self, poll_interval: float = 0.25) -> None:
        waiting: dict[int, _Waiting] = {}
        selector = selectors.DefaultSelector()
        self.socket.setblocking(False)
        selector.register(self.socket, selectors.EVENT_READ, None)
        try:
            while not self._stopping.is_set():
                for key, _ in selector.select(poll_interval):
                    if key.data is None:
                        self._accept(selector, waiting)
                    else:
                        self._gather(selector, waiting, key.data)
                now = time.monotonic()
                for item in [w for w in waiting.values() if w.deadline <= now]:
                    self._drop(selector, waiting, item, b"408 Request Timeout")
        finally:
            for item in list(waiting.values()):
                self._drop(selector, waiting, item, None)
            selector.close()
            self._stopped.set()

    def _accept(self, selector: selectors.BaseSelector, waiting: dict[int, _Waiting]) -> None:
        try:
            sock, address = self.socket.accept()
        except (BlockingIOError, InterruptedError, ConnectionError):
            return
        except OSError:
            log.warning("cannot accept a connection", exc_info=True)
            return
        if len(waiting) >= MAX_WAITING:
            oldest = min(waiting.values(), key=lambda w: w.deadline)
            self._drop(selector, waiting, oldest, None)
        sock.setblocking(False)
        item = _Waiting(sock, address, time.monotonic() + self.header_timeout)
        waiting[sock.fileno()] = item
        selector.register(sock, selectors.EVENT_READ, item)

    def _gather(
        self, selector: selectors.BaseSelector, waiting: dict[int, _Waiting], item: _Waiting
    ) -> None:
        try:
            chunk = item.sock.recv(4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            chunk = b""
        if not chunk:
            self._drop(selector, waiting, item, None)
            return
        item.head += chunk
        if b"\r\n\r\n" not in item.head and b"\n\n" not in item.head:
            if len(item.head) > MAX_HEAD:
                self._drop(selector, waiting, item, b"431 Request Header Fields Too Large")
            return
        if not self._busy.acquire(blocking=False):
            self._drop(selector, waiting, item, b"503 Service Unavailable")
            return
        selector.unregister(item.sock)
        del waiting[item.sock.fileno()]
        item.sock.setblocking(True)
        item.sock.settimeout(self.read_timeout)
        self._pool.submit(self._answer, item.sock, item.address, bytes(item.head))

    def _drop(
        self,
        selector: selectors.BaseSelector,
        waiting: dict[int, _Waiting],
        item: _Waiting,
        status: bytes | None,
    ) -> None:
        waiting.pop(item.sock.fileno(), None)
        with contextlib.suppress(KeyError, ValueError):
            selector.unregister(item.sock)
        if status is not None:
            response = b"HTTP/1.1 " + status + b"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            with contextlib.suppress(OSError):
                item.sock.send(response)
        self.shutdown_request(item.sock)

    # -- the workers --------------------------------------------------------------------------

    def _answer(self, sock: socket.socket, address: tuple[str, int], head: bytes) -> None:
        try:
            self._local.head = head
            self.finish_request(sock, address)
        except Exception:
            self.handle_error(sock, address)
        finally:
            self._local.head = b""
            self.shutdown_request(sock)
            self._busy.release()

    def take_head(self) -> bytes:
        head: bytes = getattr(self._local, "head", b"")
        self._local.head = b""
        return head

    def handle_error(self, request: object, client_address: object) -> None:
        """A request that failed below the handler: one log line, never a traceback on stderr."""
        import sys

        exc = sys.exc_info()[1]
        if isinstance(exc, OSError):  # a client that went away or timed out
            log.info("connection from %s ended: %s", client_address, exc)
        else:
            log.error("request from %s failed: %r", client_address, exc, exc_info=exc)

    def shutdown(self) -> None:
        self._stopping.set()
        self._stopped.wait(timeout=10)
        self._pool.shutdown(wait=False, cancel_futures=True)


class _PrefixedSocketReader(io.RawIOBase):
    """Reads the request head the gate already received, then the socket."""

    def __init__(self, head: bytes, sock: socket.socket) -> None:
        self._head = memoryview(head)
        self._sock = sock

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        if self._head:
            n = min(len(buffer), len(self._head))
            buffer[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        return self._sock.recv_into(buffer)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "tos-monitor"
    sys_version = ""
    default_request_version = "HTTP/1.0"  # a malformed request line still gets a status line

    def setup(self) -> None:
        super().setup()
        head = self.server.take_head()
        if head:
            self.rfile = io.BufferedReader(_PrefixedSocketReader(head, self.connection))

    def log_message(self, format: str, *args: object) -> None:
        # the query holds tokens: log the path only (no path at all when the request was malformed)
        path = urlsplit(getattr(self, "path", "") or "").path
        log.info("%s %s -> %s", self.command, path, args[1] if len(args) > 1 else "")

    # -- routing ------------------------------------------------------------------------------

    def do_GET(self) -> None:
        path, token = self._route()
        if path == "/healthz":
            self._send(HTTPStatus.OK, "ok\n", content_type="text/plain; charset=utf-8")
        elif path in ("/confirm", "/unsubscribe"):
            self._show_form(path, token)
        elif (page := self.server.site.handle(self.path)) is not None:
            self._send(
                HTTPStatus(page.status),
                page.body,
                content_type=page.content_type,
                extra=page.headers,
            )
        else:
            self._page(HTTPStatus.NOT_FOUND, "Not found", "There is nothing at this address.")

    def do_POST(self) -> None:
        path, token = self._route()
        length = self.headers.get("Content-Length", "0")
        if not length.isdigit() or int(length) > MAX_BODY:
            self._page(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "Too large", "Request too large.")
            return
        body = self.rfile.read(int(length)).decode("utf-8", "replace")
        token = token or parse_qs(body).get("token", [""])[0]
        if path == "/confirm":
            self._act(token, confirm=True)
        elif path == "/unsubscribe":
            self._act(token, confirm=False)
        else:
            self._page(HTTPStatus.NOT_FOUND, "Not found", "There is nothing at this address.")

    def do_HEAD(self) -> None:
        self._send(HTTPStatus.METHOD_NOT_ALLOWED, "", content_type="text/plain")

    # -- pages --------------------------------------------------------------------------------

    def _route(self) -> tuple[str, str]:
        parts = urlsplit(self.path)
        token = parse_qs(parts.query).get("token", [""])[0]
        return parts.path.rstrip("/") or "/", token

    def _show_form(self, path: str, token: str) -> None:
        purpose: subscriptions.TokenPurpose = "confirm" if path == "/confirm" else "unsubscribe"
        try:
            claims = subscriptions.peek_token(
                self.server.key, token, purpose, now=self.server.now()
            )
        except SubscriptionError as exc:
            self._page(HTTPStatus.BAD_REQUEST, "Link not valid", str(exc).capitalize() + ".")
            return
        action = f"{path}?token={quote(token)}"
        if purpose == "confirm":
            self._page(
                HTTPStatus.OK,
                "Confirm your subscription",
                f"Send tos-monitor reports to {claims.email}?",
                form_action=action,
                button="Confirm subscription",
            )
        else:
            self._page(
                HTTPStatus.OK,
                "Unsubscribe",
                f"Stop all tos-monitor reports to {claims.email}?",
                form_action=action,
                button="Unsubscribe",
            )

    def _act(self, token: str, *, confirm: bool) -> None:
        try:
            with self.server.sessions.begin() as session:
                if confirm:
                    email = subscriptions.confirm_token(
                        session, self.server.key, token, now=self.server.now()
                    )
                else:
                    email = subscriptions.unsubscribe_token(
                        session, self.server.key, token, now=self.server.now()
                    )
        except SubscriptionError as exc:
            self._page(HTTPStatus.BAD_REQUEST, "Link not valid", str(exc).capitalize() + ".")
            return
        except Exception:
            log.exception("the %s endpoint failed", "confirm" if confirm else "unsubscribe")
            self._page(
                HTTPStatus.INTERNAL_SERVER_ERROR, "Something went wrong", "Please try again later."
            )
            return
        if confirm:
            self._page(
                HTTPStatus.OK,
                "Subscription confirmed",
                f"Reports will now be sent to {email}. Every email has an unsubscribe link.",
            )
        else:
            self._page(
                HTTPStatus.OK, "Unsubscribed", f"{email} will receive no more tos-monitor reports."
            )

    def _page(
        self,
        status: HTTPStatus,
        title: str,
        message: str,
        *,
        form_action: str | None = None,
        button: str = "",
    ) -> None:
        html = render.render_page(
            title=title, message=message, form_action=form_action, button=button
        )
        self._send(status, html)

    def _send(
        self,
        status: HTTPStatus,
        body: str | bytes,
        *,
        content_type: str = "text/html; charset=utf-8",
        extra: dict[str, str] | None = None,
    ) -> None:
        """Send a complete response; ``extra`` headers override the security defaults by name."""
        data = body.encode("utf-8") if isinstance(body, str) else body
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for name, value in {**SECURITY_HEADERS, **(extra or {})}.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)


def serve(
    config: Config,
    sessions: sessionmaker[Session],
    *,
    now: Callable[[], datetime] = utcnow,
    key: bytes | None = None,
    header_timeout: float = HEADER_TIMEOUT,
    read_timeout: float = READ_TIMEOUT,
    workers: int = WORKERS,
) -> WebServer:
    """Start the endpoint on ``[web] bind`` in a daemon thread (port 0 picks a free port)."""
    host, port = parse_bind(config.web.bind)
    if key is None:
        key = subscriptions.load_secret_key(config.secret_key_file)
    try:
        httpd = _Server(
            (host, port),
            sessions=sessions,
            key=key,
            base_url=config.web.base_url,
            now=now,
            config=config,
            header_timeout=header_timeout,
            read_timeout=read_timeout,
            workers=workers,
        )
    except OSError as exc:
        raise ConfigError(
            f"cannot listen on {config.web.bind}: {exc.strerror}", key="web.bind"
        ) from exc
    thread = threading.Thread(target=httpd.serve_forever, name="tosmon-web", daemon=True)
    thread.start()
    return WebServer(httpd, thread)
