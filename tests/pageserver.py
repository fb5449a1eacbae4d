"""A real HTTP server on 127.0.0.1 for tests, with a route table the test programs.

Use it as a pytest plugin (``pytest_plugins = ["tests.pageserver"]`` in tests/conftest.py); it
provides the function-scoped fixture ``page_server``: a fresh server on a random port, in a thread,
for each test. Nothing here touches a public host.

Programming routes (``path`` is the URL path without query string; the query is ignored for
matching but recorded in the request log)::

    page_server.set(path, body, *, status=200, headers=None,
                    content_type="text/html; charset=utf-8", etag=None, last_modified=None)
        Serve ``body`` (str is encoded as UTF-8; pass bytes for other encodings). Call again to
        change the page between checks. ``etag``: a string, or True for one derived from the body;
        the response carries it and a request whose If-None-Match matches gets 304 with no body.
        ``last_modified``: an HTTP date; a request whose If-Modified-Since equals it gets 304.
    page_server.fail(path, *, times=1, status=500, headers=None, body="server error")
        The next ``times`` requests to ``path`` get ``status`` (e.g. 500, 503, or 429 with
        ``headers={"Retry-After": "1"}``), then the route serves normally (404 if none is set).
    page_server.delay(path, seconds)   wait before answering (every request to ``path``)
    page_server.redirect(path, to, *, status=302)   ``to`` is a path or an absolute URL
    page_server.reset(path)            close the connection with a TCP reset, no response
    page_server.truncate(path, body, *, declared_length=None)
        send Content-Length ``declared_length`` (default len(body) + 1000) but only ``body``
    page_server.stream(path, size, *, content_length=True, chunk_size=65536, content_type=...)
        stream ``size`` bytes of HTML-ish filler in chunks (with or without Content-Length)
    page_server.remove(path)           forget the route (requests then get 404)
    page_server.url(path, *, host="127.0.0.1")  absolute URL; host="localhost" gives a URL
                                       that a client sees as a different host on the same server

Request log (thread-safe, in arrival order)::

    page_server.requests           list[RecordedRequest]: .method, .path, .query, .headers
                                   (dict with lower-case names), .at (time.monotonic())
    page_server.requests_to(path)  the requests whose path is ``path``
    page_server.hits(path)         how many of them
    page_server.peak_concurrency   the most requests being handled at once since start / clear_log()
    page_server.clear_log()

Ready-made routes, installed in every fresh server (override them with ``set`` etc.)::

    /terms               a small UTF-8 terms page
    /etag                the same page with ETag "v1" and a Last-Modified date (304 when matched)
    /missing             404 (as is every unknown path); /gone 410
    /flaky               500 twice, then the terms page
    /ratelimited         429 with "Retry-After: 1" once, then the terms page
    /slow                the terms page after 2 seconds
    /redirect            302 -> /terms;  /redirect-chain 301 -> /redirect -> /terms
    /loop/a, /loop/b     a redirect loop
    /latin1              ISO-8859-1 declared in the Content-Type header
    /cp1252              windows-1252 declared only by <meta charset> (header has no charset)
    /meta-http-equiv     windows-1252 declared only by <meta http-equiv="Content-Type">
    /sjis                Shift_JIS declared in the header
    /bad-utf8            declared UTF-8 with invalid bytes in it
    /captcha             a reCAPTCHA "verify you are human" page with status 200
    /cloudflare          a Cloudflare "Just a moment..." challenge, status 403
    /login               a short login wall page with status 200
    /js                  an empty shell whose text a script inserts (needs a browser)
    /reset               connection reset
    /truncated           Content-Length larger than the body sent
    /empty               200 with an empty body
    /huge                20 MB streamed with Content-Length; /huge-chunked without it
    /markdown, /plain    text/markdown and text/plain documents
    /corpus/<path>       files under ../shared/corpus/ (only when that folder exists)
"""

from __future__ import annotations

import contextlib
import hashlib
import mimetypes
import socket
import struct
import threading
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

__all__ = ["CORPUS_DIR", "PageServer", "RecordedRequest", "page_server"]

CORPUS_DIR = Path(__file__).resolve().parents[2] / "shared" / "corpus"

HTML = "text/html; charset=utf-8"

TERMS_HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Terms of Service</title></head>
<body><main><h1>Terms of Service</h1>
<h2>1. Your content</h2>
<p>You keep ownership of your content. You grant us a licence to host and display it.</p>
<h2>2. Accounts</h2>
<p>You must log in to your account to change your settings. Keep your password safe.</p>
</main></body></html>
"""

CAPTCHA_HTML = """<!doctype html>
<html><head><title>Security check</title>
<script src="https://www.google.com/recaptcha/api.js" async defer></script></head>
<body><h1>Please verify you are human</h1>
<p>Our systems have detected unusual traffic from your computer network.</p>
<form method="post"><div class="g-recaptcha" data-sitekey="x"></div>
<button type="submit">Continue</button></form></body></html>
"""

CLOUDFLARE_HTML = """<!DOCTYPE html><html lang="en-US"><head><title>Just a moment...</title>
<meta http-equiv="refresh" content="390"></head><body>
<div class="main-wrapper"><h1>Checking your browser before accessing the site.</h1>
<div id="cf-challenge-running"></div>
<script>window._cf_chl_opt={cvId:'3'};</script></div></body></html>
"""

LOGIN_HTML = """<!doctype html>
<html><head><title>Log in</title></head><body>
<h1>Log in to continue</h1>
<form action="/session" method="post">
<label>Email <input type="email" name="email"></label>
<label>Password <input type="password" name="password"></label>
<button>Log in</button></form>
<p><a href="/signup">Sign up</a></p></body></html>
"""

JS_HTML = """<!doctype html>
<html><head><meta charset="utf-8"><title>Terms</title></head>
<body><main id="terms"></main>
<script>
// The text exists only once the script ran: the raw HTML holds none of it.
const words = (s) => s.split("|").join(" ");
document.getElementById("terms").innerHTML =
  "<h1>" + words("Rendered|terms") + "</h1><p>" +
  words("We may use your content to train artificial|intelligence.") + "</p>";
</script></body></html>
"""


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One request the server received."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    at: float


@dataclass(slots=True)
class _Failure:
    status: int
    headers: dict[str, str]
    body: bytes


@dataclass(slots=True)
class _Route:
    kind: str = "page"  # page | redirect | reset | truncate | stream | corpus
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    etag: str | None = None
    last_modified: str | None = None
    location: str = ""
    declared_length: int = 0
    size: int = 0
    chunk_size: int = 65536
    content_length: bool = True


def _as_bytes(body: bytes | str) -> bytes:
    return body.encode("utf-8") if isinstance(body, str) else body


class PageServer:
    """The programmable server behind the ``page_server`` fixture (API in the module docstring)."""

    def __init__(self, *, corpus_dir: Path | None = CORPUS_DIR) -> None:
        self._lock = threading.Lock()
        self._routes: dict[str, _Route] = {}
        self._failures: dict[str, list[_Failure]] = {}
        self._delays: dict[str, float] = {}
        self._active = 0
        self.peak_concurrency = 0
        self.requests: list[RecordedRequest] = []
        self.corpus_dir = corpus_dir if corpus_dir is not None and corpus_dir.is_dir() else None
        self._httpd = _QuietServer(("127.0.0.1", 0), _make_handler(self))
        self.port: int = self._httpd.server_address[1]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> PageServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> PageServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- addresses ---------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str, *, host: str = "127.0.0.1") -> str:
        if not path.startswith("/"):
            path = "/" + path
        return f"http://{host}:{self.port}{path}"

    # -- programming routes ------------------------------------------------------------------

    def set(
        self,
        path: str,
        body: bytes | str,
        *,
        status: int = 200,
        headers: dict[str, str] | None = None,
        content_type: str | None = HTML,
        etag: str | bool | None = None,
        last_modified: str | None = None,
    ) -> None:
        data = _as_bytes(body)
        all_headers = dict(headers or {})
        if content_type is not None:
            all_headers.setdefault("Content-Type", content_type)
        if etag is True:
            etag = '"' + hashlib.sha256(data).hexdigest()[:16] + '"'
        route = _Route(
            status=status,
            body=data,
            headers=all_headers,
            etag=etag or None,
            last_modified=last_modified,
        )
        self._put(path, route)

    def fail(
        self,
        path: str,
        *,
        times: int = 1,
        status: int = 500,
        headers: dict[str, str] | None = None,
        body: bytes | str = "server error",
    ) -> None:
        all_headers = {"Content-Type": "text/plain; charset=utf-8", **(headers or {})}
        failure = _Failure(status, all_headers, _as_bytes(body))
        with self._lock:
            self._failures[path] = [failure] * times

    def delay(self, path: str, seconds: float) -> None:
        with self._lock:
            self._delays[path] = seconds

    def redirect(self, path: str, to: str, *, status: int = 302) -> None:
        self._put(path, _Route(kind="redirect", status=status, location=to))

    def reset(self, path: str) -> None:
        self._put(path, _Route(kind="reset"))

    def truncate(self, path: str, body: bytes | str, *, declared_length: int | None = None) -> None:
        data = _as_bytes(body)
        length = len(data) + 1000 if declared_length is None else declared_length
        route = _Route(kind="truncate", body=data, declared_length=length)
        route.headers["Content-Type"] = HTML
        self._put(path, route)

    def stream(
        self,
        path: str,
        size: int,
        *,
        content_length: bool = True,
        chunk_size: int = 65536,
        content_type: str = HTML,
    ) -> None:
        route = _Route(kind="stream", size=size, chunk_size=chunk_size)
        route.content_length = content_length
        route.headers["Content-Type"] = content_type
        self._put(path, route)

    def remove(self, path: str) -> None:
        with self._lock:
            self._routes.pop(path, None)
            self._failures.pop(path, None)
            self._delays.pop(path, None)

    def _put(self, path: str, route: _Route) -> None:
        if not path.startswith("/"):
            raise ValueError(f"route path must start with '/': {path!r}")
        with self._lock:
            self._routes[path] = route

    # -- request log -------------------------------------------------------------------------

    def requests_to(self, path: str) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self.requests if r.path == path]

    def hits(self, path: str) -> int:
        return len(self.requests_to(path))

    def clear_log(self) -> None:
        with self._lock:
            self.requests.clear()
            self.peak_concurrency = self._active

    # -- ready-made routes -------------------------------------------------------------------

    def install_standard_routes(self) -> None:
        self.set("/terms", TERMS_HTML)
        self.set("/etag", TERMS_HTML, etag='"v1"', last_modified="Mon, 05 Jan 2026 10:00:00 GMT")
        self.set("/gone", "gone", status=410, content_type="text/plain; charset=utf-8")
        self.set("/flaky", TERMS_HTML)
        self.fail("/flaky", times=2, status=500)
        self.set("/ratelimited", TERMS_HTML)
        self.fail("/ratelimited", times=1, status=429, headers={"Retry-After": "1"})
        self.set("/slow", TERMS_HTML)
        self.delay("/slow", 2.0)
        self.redirect("/redirect", "/terms")
        self.redirect("/redirect-chain", "/redirect", status=301)
        self.redirect("/loop/a", "/loop/b")
        self.redirect("/loop/b", "/loop/a")
        self.set(
            "/latin1",
            "<html><body><p>Conditions générales d'utilisation, été</p></body></html>".encode(
                "iso-8859-1"
            ),
            content_type="text/html; charset=ISO-8859-1",
        )
        self.set(
            "/cp1252",
            (
                '<html><head><meta charset="windows-1252"></head>'
                "<body><p>\u201cSmart quotes\u201d \u2013 and \u20ac10 fees</p></body></html>"
            ).encode("cp1252"),
            content_type="text/html",
        )
        self.set(
            "/meta-http-equiv",
            (
                '<html><head><meta http-equiv="Content-Type" '
                'content="text/html; charset=windows-1252"></head>'
                "<body><p>\u201cQuoted\u201d terms</p></body></html>"
            ).encode("cp1252"),
            content_type="text/html",
        )
        self.set(
            "/sjis",
            "<html><body><h1>利用規約</h1><p>本規約に同意します。</p></body></html>".encode(
                "shift_jis"
            ),
            content_type="text/html; charset=Shift_JIS",
        )
        self.set(
            "/bad-utf8",
            b"<html><body><p>Terms \xff\xfe of service caf\xc3\xa9</p></body></html>",
        )
        self.set("/captcha", CAPTCHA_HTML)
        self.set("/cloudflare", CLOUDFLARE_HTML, status=403)
        self.set("/login", LOGIN_HTML)
        self.set("/js", JS_HTML)
        self.reset("/reset")
        self.truncate("/truncated", TERMS_HTML[:200])
        self.set("/empty", b"")
        self.stream("/huge", 20_000_000)
        self.stream("/huge-chunked", 20_000_000, content_length=False)
        self.set(
            "/markdown",
            "# Terms\n\n## Licence\n\nYou grant us a licence.\n",
            content_type="text/markdown; charset=utf-8",
        )
        self.set("/plain", "Terms\n\nYou grant us a licence.\n", content_type="text/plain")

    # -- used by the handler -----------------------------------------------------------------

    def _begin(self, record: RecordedRequest) -> tuple[_Route | None, _Failure | None, float]:
        with self._lock:
            self.requests.append(record)
            self._active += 1
            self.peak_concurrency = max(self.peak_concurrency, self._active)
            failure = None
            pending = self._failures.get(record.path)
            if pending:
                failure = pending.pop(0)
            return self._routes.get(record.path), failure, self._delays.get(record.path, 0.0)

    def _end(self) -> None:
        with self._lock:
            self._active -= 1


def _make_handler(server: PageServer) -> type[BaseHTTPRequestHandler]:
    class Handler(_Handler):
        page_server = server

    return Handler


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "tos-monitor-test-server"
    page_server: PageServer

    def log_message(self, format: str, *args: Any) -> None:
        """Keep test output quiet."""

    def do_HEAD(self) -> None:
        self._respond(head=True)

    def do_GET(self) -> None:
        self._respond(head=False)

    def _respond(self, *, head: bool) -> None:
        parsed = urllib.parse.urlsplit(self.path)
        record = RecordedRequest(
            method=self.command,
            path=parsed.path,
            query=parsed.query,
            headers={k.lower(): v for k, v in self.headers.items()},
            at=time.monotonic(),
        )
        route, failure, delay = self.page_server._begin(record)
        try:
            if delay:
                time.sleep(delay)
            if failure is not None:
                self._send(failure.status, failure.body, failure.headers, head=head)
            elif route is None:
                self._serve_corpus_or_404(parsed.path, head=head)
            else:
                self._serve(route, record, head=head)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        finally:
            self.page_server._end()

    def _send(
        self, status: int, body: bytes, headers: dict[str, str], *, head: bool = False
    ) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _serve(self, route: _Route, record: RecordedRequest, *, head: bool) -> None:
        if route.kind == "page":
            self._serve_page(route, record, head=head)
        elif route.kind == "redirect":
            self._send(route.status, b"", {"Location": route.location}, head=head)
        elif route.kind == "reset":
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
            self.connection.close()
        elif route.kind == "truncate":
            self.send_response(200)
            for name, value in route.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(route.declared_length))
            self.end_headers()
            self.wfile.write(route.body)
            self.wfile.flush()
            self.close_connection = True
        elif route.kind == "stream":
            self._serve_stream(route, head=head)

    def _serve_page(self, route: _Route, record: RecordedRequest, *, head: bool) -> None:
        headers = dict(route.headers)
        if route.etag:
            headers["ETag"] = route.etag
        if route.last_modified:
            headers["Last-Modified"] = route.last_modified
        if route.status == 200 and _not_modified(route, record.headers):
            validators = {k: v for k, v in headers.items() if k in ("ETag", "Last-Modified")}
            self.send_response(304)
            for name, value in validators.items():
                self.send_header(name, value)
            self.end_headers()
            return
        self._send(route.status, route.body, headers, head=head)

    def _serve_stream(self, route: _Route, *, head: bool) -> None:
        self.send_response(200)
        for name, value in route.headers.items():
            self.send_header(name, value)
        if route.content_length:
            self.send_header("Content-Length", str(route.size))
        else:
            self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        if head:
            return
        filler = (b"<p>" + b"lorem ipsum dolor sit amet " * 40 + b"</p>\n") * (
            route.chunk_size // 1000 + 1
        )
        sent = 0
        while sent < route.size:
            chunk = filler[: min(route.chunk_size, route.size - sent)]
            if route.content_length:
                self.wfile.write(chunk)
            else:
                self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
            sent += len(chunk)
        if not route.content_length:
            self.wfile.write(b"0\r\n\r\n")

    def _serve_corpus_or_404(self, path: str, *, head: bool) -> None:
        corpus = self.page_server.corpus_dir
        if corpus is not None and path.startswith("/corpus/"):
            relative = urllib.parse.unquote(path[len("/corpus/") :])
            target = (corpus / relative).resolve()
            if target.is_file() and target.is_relative_to(corpus.resolve()):
                body = target.read_bytes()
                kind = {".md": "text/markdown", ".html": "text/html", ".json": "application/json"}
                media = kind.get(target.suffix) or (
                    mimetypes.guess_type(target.name)[0] or "application/octet-stream"
                )
                self._send(200, body, {"Content-Type": f"{media}; charset=utf-8"}, head=head)
                return
        status = HTTPStatus.NOT_FOUND.value
        self._send(status, b"not found", {"Content-Type": "text/plain; charset=utf-8"}, head=head)

    def finish(self) -> None:
        # A reset connection is already closed; flushing it must not raise.
        with contextlib.suppress(OSError, ValueError):
            super().finish()


def _not_modified(route: _Route, request_headers: dict[str, str]) -> bool:
    if_none_match = request_headers.get("if-none-match")
    if route.etag and if_none_match is not None:
        candidates = [c.strip() for c in if_none_match.split(",")]
        return route.etag in candidates or "*" in candidates
    if_modified_since = request_headers.get("if-modified-since")
    return bool(route.last_modified and if_modified_since == route.last_modified)


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients that hang up mid-response are part of the tests; don't print tracebacks."""


@pytest.fixture
def page_server() -> Iterator[PageServer]:
    """A fresh programmable HTTP server on 127.0.0.1 (see the module docstring)."""
    server = PageServer()
    server.install_standard_routes()
    with server:
        yield server
