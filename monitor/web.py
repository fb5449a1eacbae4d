"""The confirm / unsubscribe endpoint: a small stdlib HTTP server in a thread.

Routes (``token`` is a signed link token, see :mod:`monitor.subscriptions`)::

    GET  /confirm?token=...       a page with a "Confirm" button (link scanners only GET)
    POST /confirm?token=...       confirms the subscription
    GET  /unsubscribe?token=...   a page with an "Unsubscribe" button
    POST /unsubscribe?token=...   unsubscribes (RFC 8058 one-click: body List-Unsubscribe=One-Click)
    GET  /changes/<id>            the report of one change, as HTML (the "full diff" link)
    GET  /healthz                 "ok"

A forged, altered or expired token gets a 400 page and changes nothing.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, quote, urlsplit

from sqlalchemy.orm import Session, sessionmaker

from monitor import render, subscriptions
from monitor.clock import utcnow
from monitor.config import Config
from monitor.errors import ConfigError, SubscriptionError
from monitor.site import Site

log = logging.getLogger(__name__)

MAX_BODY = 16_384
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

    def __init__(self, httpd: ThreadingHTTPServer, thread: threading.Thread) -> None:
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


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(
        self,
        address: tuple[str, int],
        *,
        sessions: sessionmaker[Session],
        key: bytes,
        base_url: str,
        now: Callable[[], datetime],
    ) -> None:
        if ":" in address[0]:
            import socket

            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)
        self.sessions = sessions
        self.key = key
        self.base_url = base_url
        self.now = now
        self.site = Site(sessions, base_url=base_url, now=now)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "tos-monitor"
    sys_version = ""

    def log_message(self, format: str, *args: object) -> None:
        # the query holds tokens: log the path only
        log.info("%s %s -> %s", self.command, urlsplit(self.path).path, args[1] if args else "")

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
) -> WebServer:
    """Start the endpoint on ``[web] bind`` in a daemon thread (port 0 picks a free port)."""
    host, port = parse_bind(config.web.bind)
    if key is None:
        key = subscriptions.load_secret_key(config.secret_key_file)
    try:
        httpd = _Server(
            (host, port), sessions=sessions, key=key, base_url=config.web.base_url, now=now
        )
    except OSError as exc:
        raise ConfigError(
            f"cannot listen on {config.web.bind}: {exc.strerror}", key="web.bind"
        ) from exc
    thread = threading.Thread(target=httpd.serve_forever, name="tosmon-web", daemon=True)
    thread.start()
    return WebServer(httpd, thread)
