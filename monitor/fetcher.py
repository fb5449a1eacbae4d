"""Fetch documents politely: the only module (with browser.py) that touches the network.

One ``Fetcher`` per check cycle, used as an async context manager::

    async with Fetcher(timeout=30.0, per_host=2) as fetcher:
        result = await fetcher.fetch(url, etag=last.etag, last_modified=last.last_modified)

What ``fetch`` does:

- sends a clear User-Agent naming tos-monitor and its home page;
- follows redirects itself (at most ``max_redirects``); a loop fails naming the chain;
- runs at most ``per_host`` requests at once per host (host:port), across all documents;
- retries transient failures (connection errors, resets, truncated bodies, timeouts, 5xx, 429)
  ``retries`` times with exponential backoff (``backoff``, 2x, 4x ... seconds, no jitter). A
  ``Retry-After`` (seconds or HTTP date) on 429/503 replaces the backoff; if it asks for more than
  ``max_retry_after`` seconds the fetcher gives up at once rather than sleep;
- ``timeout`` bounds each request as a whole (connect, headers, the whole body; each redirect
  hop gets its own), not the wait for a free per-host slot;
- sends If-None-Match / If-Modified-Since when given; a 304 is ``not_modified=True``;
- streams the body and stops at ``max_bytes``, counting what every Content-Encoding layer
  produces as it is produced (``monitor.decoding``), so a gzip bomb, even a stacked
  ``gzip, gzip`` one, stops at the cap; a coding other than gzip or deflate is refused;
- refuses empty bodies, 4xx/5xx statuses, and bot walls served with 200 (``detect_block``).

Every failure is a ``FetchError`` whose message is one line: ``<url>: <reason>``, flagged
``transient`` (worth trying again next cycle) and/or ``blocked`` (the site refused us).

Text decoding: the charset is taken from a byte-order mark, else the Content-Type header, else (for
HTML) ``<meta charset>`` / ``<meta http-equiv>`` or an XML declaration, else detected (UTF-8 if the
bytes are valid UTF-8, otherwise windows-1252). ``FetchResult.text()`` decodes with
``errors="replace"``: a stray invalid byte in a footer must not stop a document from being
monitored, and U+FFFD is stable from one fetch to the next, so it causes no spurious change.
``FetchResult.has_invalid_bytes`` tells whether that happened (the tracker may log it). As browsers
do, ISO-8859-1 and US-ASCII labels decode as windows-1252.
"""

from __future__ import annotations

import asyncio
import contextvars
import email.message
import email.utils
import functools
import itertools
import re
import select
import socket
import ssl
import time
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from http import HTTPStatus
from http.cookiejar import CookieJar
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import httpcore
import httpx

from monitor.charsets import codec_for, detect_charset
from monitor.config import DEFAULT_USER_AGENT, Config, FetchConfig
from monitor.decoding import BodyDecoder, BodyTooLarge, content_codings, not_text_reason
from monitor.errors import FetchError
from monitor.markup import body_start, strip_tags, whole_blocks
from monitor.netpolicy import Resolver, is_private_address, system_resolver
from monitor.urls import mask_credentials

if TYPE_CHECKING:
    from monitor.browser import Browser

__all__ = [
    "DEFAULT_USER_AGENT",
    "FetchResult",
    "Fetcher",
    "detect_block",
    "detect_charset",
    "parse_retry_after",
]


ACCEPT = "text/html,application/xhtml+xml,text/markdown;q=0.9,text/plain;q=0.8,*/*;q=0.5"
ACCEPT_ENCODING = "gzip, deflate"  # what monitor.decoding undoes, with a bounded output
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})


@dataclass(frozen=True, slots=True)
class FetchResult:
    """A fetched document: the raw bytes and what the server said about them."""

    url: str  # final URL after redirects
    status: int  # 2xx, or 304 when not_modified
    content: bytes  # body (empty when not_modified)
    media_type: str  # "text/html", "text/markdown", "text/plain", ...
    charset: str | None  # declared charset (BOM, header or <meta>), or detected
    etag: str | None
    last_modified: str | None
    not_modified: bool
    duration: float  # seconds, wall clock, including retries

    def text(self) -> str:
        """The body decoded with ``charset``; bytes invalid in it become U+FFFD."""
        return self.content.decode(codec_for(self.charset), errors="replace")

    @property
    def has_invalid_bytes(self) -> bool:
        """True when the body holds bytes invalid in its charset (``text()`` replaced them)."""
        try:
            self.content.decode(codec_for(self.charset))
        except UnicodeDecodeError:
            return True
        return False


GARBLED_MIN_CHARS = 16
GARBLED_SHARE = 0.01
"""A body with more undecodable characters than this (and this share of its text) is broken,
not a page: a stray invalid byte in a footer is tolerated, a body of garbage is a failure."""


def _sniff_media_type(content: bytes) -> str:
    head = content[:512].lstrip().lower()
    if head.startswith((b"<!doctype html", b"<html", b"<head", b"<body")):
        return "text/html"
    if head.startswith(b"<?xml"):
        return "application/xml"
    return "text/plain"


# -- blocked pages ---------------------------------------------------------------------------

_WORDS = re.compile(r"\w+")
# Markers of a challenge widget or bot-protection page: specific enough on a short page.
_CHALLENGE_MARKERS = (
    ("g-recaptcha", "reCAPTCHA widget"),
    ("www.google.com/recaptcha", "reCAPTCHA widget"),
    ("h-captcha", "hCaptcha widget"),
    ("hcaptcha.com", "hCaptcha widget"),
    ("cf-challenge", "Cloudflare challenge"),
    ("challenges.cloudflare.com", "Cloudflare challenge"),
    ("_cf_chl_opt", "Cloudflare challenge"),
    ("cf-turnstile", "Cloudflare Turnstile widget"),
    ("captcha-delivery.com", "DataDome captcha"),
    ("px-captcha", "PerimeterX captcha"),
    ("<title>just a moment...</title>", "'Just a moment...' interstitial"),
    ("<title>attention required! | cloudflare</title>", "Cloudflare block page"),
)
# Phrases of a bot wall: only trusted on a very short page (terms pages use some of these words).
_CHALLENGE_PHRASES = (
    "checking your browser",
    "verify you are human",
    "verify that you are human",
    "are you a robot",
    "not a robot",
    "unusual traffic",
    "enable javascript and cookies to continue",
    "complete the security check",
)
_PASSWORD_INPUT = re.compile(r"<input\b[^>]*\btype\s*=\s*[\"']?password", re.I)
_LOGIN_WORDS = re.compile(r"\b(log ?in|sign ?in|password)\b", re.I)

CHALLENGE_MAX_WORDS = 600  # a challenge page is a few dozen words; a terms page, thousands
PHRASE_MAX_WORDS = 250
LOGIN_MAX_WORDS = 250


_PREFIX_CHARS = 32_768
_WINDOWS = (8_192, _PREFIX_CHARS)
"""How much of a long page is read for its words, from its body, before all of it is."""


def _classify_block(text: str, status: int) -> tuple[str, bool] | None:
    """(reason, transient) when ``text`` served with ``status`` is a bot wall, else None."""
    # count words only as far as the largest limit: a long terms page is never a wall, and the
    # start of its body usually tells so without stripping the tags of all of it (a long page
    # is read from its <body>: its head often holds tens of KB of styles and scripts)
    limit = max(CHALLENGE_MAX_WORDS, PHRASE_MAX_WORDS, LOGIN_MAX_WORDS) + 1
    start = body_start(text) if len(text) > _PREFIX_CHARS else 0
    for size in _WINDOWS:
        visible = strip_tags(whole_blocks(text, start, size))
        words = len(list(itertools.islice(_WORDS.finditer(visible), limit)))
        if words >= limit or start + size >= len(text):
            break
    if words < limit and len(text) > _PREFIX_CHARS:
        visible = strip_tags(text)
        words = len(list(itertools.islice(_WORDS.finditer(visible), limit)))
    if words <= CHALLENGE_MAX_WORDS:
        lowered = text.lower()
        for marker, name in _CHALLENGE_MARKERS:
            if marker in lowered:
                return f"bot challenge page ({name})", True
    if words <= PHRASE_MAX_WORDS:
        visible_lower = " ".join(visible.lower().split())
        for phrase in _CHALLENGE_PHRASES:
            if phrase in visible_lower:
                return f"bot challenge page ({phrase!r})", True
    if (
        words <= LOGIN_MAX_WORDS
        and _PASSWORD_INPUT.search(text)
        and len(_LOGIN_WORDS.findall(visible)) >= 1
    ):
        return "login wall (a short page with a password form)", False
    if status in (401, 407):
        return f"HTTP {status} {_phrase(status)}: login required", False
    if status in (403, 451):
        return f"HTTP {status} {_phrase(status)}", False
    if status == 429:
        return f"HTTP {status} {_phrase(status)}", True
    return None


def detect_block(text: str, status: int) -> str | None:
    """A reason when a page is a captcha, bot challenge or login wall, or a refusing status.

    Needs strong signals: captcha/challenge widget markers (g-recaptcha, h-captcha, cf-challenge,
    "Just a moment..."), or bot-wall phrases ("verify you are human", "unusual traffic"), or a
    password form, and in every case a short page: a long terms page that mentions logging in
    or CAPTCHAs is not a wall. Statuses 401, 403, 407, 429 and 451 are refusals by themselves.
    """
    found = _classify_block(text, status)
    return found[0] if found else None


# -- Retry-After -----------------------------------------------------------------------------


def parse_retry_after(value: str | None, *, now: datetime) -> float | None:
    """Seconds to wait from a Retry-After value (delay in seconds or HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "(unknown status)"


def _default_port(url: httpx.URL) -> int:
    return 443 if url.scheme == "https" else 80


def _host_key(url: httpx.URL) -> str:
    return f"{url.host}:{url.port or _default_port(url)}"


# -- where we may connect --------------------------------------------------------------------

# Whether the fetch under way may reach private addresses (set by Fetcher._get_once for the
# task that runs it: httpcore opens connections in the caller's task).
_PRIVATE_OK: contextvars.ContextVar[bool] = contextvars.ContextVar("private_ok", default=False)
ALLOW_PRIVATE_HINT = "set [fetch] allow_private = true to allow it"


class _PrivateAddress(Exception):
    """Internal: a connection to a private address was refused (see monitor.netpolicy)."""

    def __init__(self, host: str, address: str) -> None:
        shown = host if host == address else f"{host} ({address})"
        super().__init__(f"{shown} is a private address")


class _GuardedNetwork(httpcore.AsyncNetworkBackend):
    """Resolves every host with ``resolver`` and connects only to addresses the rule allows.

    httpx resolves names at connect time; doing it here, with the addresses then used for the
    connection, closes the gap between checking a hop and connecting to it (DNS rebinding).
    TLS still verifies the certificate against the host name (httpcore passes it as SNI).
    """

    def __init__(self, resolver: Resolver, inner: httpcore.AsyncNetworkBackend) -> None:
        self._resolve = resolver
        self._inner = inner

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            addresses = await self._resolve(host, port)
        except OSError as exc:
            raise httpcore.ConnectError(f"cannot resolve {host} ({exc})") from exc
        if not _PRIVATE_OK.get():
            public = [a for a in addresses if not is_private_address(a)]
            if len(public) < len(addresses):
                private = next(a for a in addresses if is_private_address(a))
                raise _PrivateAddress(host, private)
            addresses = public
        if not addresses:
            raise httpcore.ConnectError(f"{host} has no address")
        failure: Exception | None = None
        for address in addresses:
            try:
                stream = await self._inner.connect_tcp(
                    address,
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except httpcore.ConnectError as exc:
                failure = exc
            else:
                return _Stream(stream)
        assert failure is not None
        raise failure

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Any = None
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("tos-monitor does not fetch over Unix sockets")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class _Stream(httpcore.AsyncNetworkStream):
    """A connection's stream that answers "is_readable" from the socket it keeps.

    httpcore asks it of every idle connection each time a request looks for one; anyio answers
    by building a dict of every attribute of the stream (addresses from system calls included)
    on each call. Everything else is the inner stream's.
    """

    def __init__(self, inner: httpcore.AsyncNetworkStream) -> None:
        self._inner = inner
        self._socket = inner.get_extra_info("socket")

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return await self._inner.read(max_bytes, timeout)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        await self._inner.write(buffer, timeout)

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.AsyncNetworkStream:
        if ssl_context is _tls_placeholder():
            ssl_context = _tls_context()
        return _Stream(await self._inner.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> Any:
        if info == "is_readable" and self._socket is not None:
            return _readable(self._socket)
        return self._inner.get_extra_info(info)


@functools.cache
def _tls_placeholder() -> ssl.SSLContext:
    """What the connection pool is given as its TLS context: an empty one, replaced by
    ``_tls_context()`` when a connection starts TLS (the pool only sets its ALPN protocols)."""
    return ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """The TLS context of every https connection, made at the first one: loading the CA
    certificates (certifi's, as httpx does) costs about 20 ms of CPU, which a process that
    fetches only http:// pages, or nothing, need not pay."""
    context = httpx.create_ssl_context(trust_env=False)
    context.set_alpn_protocols(["http/1.1"])
    return context


def _readable(sock: socket.socket) -> bool:
    """Whether reading ``sock`` would return at once (data, or the end of a closed connection):
    what httpcore's own test does."""
    fd = sock.fileno()
    if fd < 0:
        return True
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(0))


# -- the fetcher -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Response:
    url: str
    status: int
    headers: Mapping[str, str]  # lower-case names
    content: bytes


class _Retry(Exception):
    """Internal: this attempt failed transiently; wait ``delay`` seconds (None: backoff)."""

    def __init__(self, error: FetchError, delay: float | None = None) -> None:
        super().__init__(str(error))
        self.error = error
        self.delay = delay


class Fetcher:
    """Fetches documents over HTTP (or through Chromium with ``render=True``). One per cycle."""

    def __init__(
        self,
        *,
        user_agent: str = FetchConfig.user_agent,
        timeout: float = FetchConfig.timeout,
        max_bytes: int = FetchConfig.max_bytes,
        per_host: int = FetchConfig.per_host,
        retries: int = FetchConfig.retries,
        backoff: float = 1.0,
        max_retry_after: float = 120.0,
        max_redirects: int = 10,
        allow_private: bool = FetchConfig.allow_private,
        resolver: Resolver | None = None,
        network: httpcore.AsyncNetworkBackend | None = None,
        browser_args: Sequence[str] = (),
        browser_executable: Path | None = None,
    ) -> None:
        """``resolver`` and ``network`` replace getaddrinfo and the socket layer, and
        ``browser_args`` are added to Chromium's command line (for tests)."""
        if per_host < 1:
            raise ValueError("per_host must be at least 1")
        self.user_agent = user_agent
        self.timeout = timeout
        self.max_bytes = max_bytes
        self.per_host = per_host
        self.retries = max(0, retries)
        self.backoff = backoff
        self.max_retry_after = max_retry_after
        self.max_redirects = max_redirects
        self.allow_private = allow_private
        self._resolve = resolver or system_resolver
        self.browser_args = tuple(browser_args)
        self._network = _GuardedNetwork(self._resolve, network or httpcore.AnyIOBackend())
        self.browser_executable = browser_executable  # [browser] executable (None: look for one)
        self._pool: httpcore.AsyncConnectionPool | None = None
        self._headers: list[tuple[bytes, bytes]] = []
        self._cookies = CookieJar()
        self._browser: Browser | None = None
        self._browser_lock = asyncio.Lock()
        self._hosts: dict[str, asyncio.Semaphore] = {}

    @classmethod
    def from_config(cls, config: Config) -> Fetcher:
        """The Fetcher ``[fetch]`` and ``[browser]`` describe: how the API, the CLI and the
        daemon build one."""
        fetch = config.fetch
        return cls(
            user_agent=fetch.user_agent,
            timeout=fetch.timeout,
            max_bytes=fetch.max_bytes,
            per_host=fetch.per_host,
            retries=fetch.retries,
            allow_private=fetch.allow_private,
            browser_executable=config.browser.executable,
        )

    async def __aenter__(self) -> Fetcher:
        # httpcore's pool, around _GuardedNetwork: the fetcher follows redirects, sets headers
        # and keeps cookies itself, so httpx's client would only add work to every request
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=_tls_placeholder(),
            max_connections=100,
            max_keepalive_connections=20,
            keepalive_expiry=30.0,
            network_backend=self._network,
        )
        self._headers = [
            (b"User-Agent", self.user_agent.encode("ascii", "replace")),
            (b"Accept", ACCEPT.encode("ascii")),
            (b"Accept-Encoding", ACCEPT_ENCODING.encode("ascii")),
        ]
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        pool, self._pool = self._pool, None
        browser, self._browser = self._browser, None
        try:
            if browser is not None:
                await browser.close()
        finally:
            if pool is not None:
                await pool.aclose()

    # -- public ------------------------------------------------------------------------------

    async def fetch(
        self,
        url: str,
        *,
        etag: str | None = None,
        last_modified: str | None = None,
        render: bool = False,
    ) -> FetchResult:
        """Fetch ``url``; raises FetchError (see the module docstring).

        The error's message never shows credentials held in the URL (``user:password@``).
        """
        try:
            return await self._fetch(url, etag=etag, last_modified=last_modified, render=render)
        except FetchError as exc:
            exc.args = (mask_credentials(str(exc)),)
            raise

    async def _fetch(
        self, url: str, *, etag: str | None, last_modified: str | None, render: bool
    ) -> FetchResult:
        if self._pool is None:
            raise RuntimeError("use the Fetcher as 'async with Fetcher(...) as fetcher'")
        try:
            parsed = httpx.URL(url)
        except httpx.InvalidURL as exc:
            raise FetchError(f"{url}: invalid URL ({exc})") from exc
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise FetchError(f"{url}: not an http(s) URL")

        headers: dict[str, str] = {}
        if etag and not render:
            headers["If-None-Match"] = etag
        if last_modified and not render:
            headers["If-Modified-Since"] = last_modified

        started = time.monotonic()
        if render:
            await self._start_browser(url)
        attempt = 0
        while True:
            attempt += 1
            try:
                if render:
                    response = await self._render_once(url, parsed)
                else:
                    response = await self._get_once(url, parsed, headers)
                return self._result(url, response, started, etag, last_modified)
            except _Retry as exc:
                retry = exc
            error = retry.error
            error.args = (_one_line(str(error)),)
            if attempt > self.retries:
                if attempt > 1:
                    error.args = (f"{error} (gave up after {attempt} attempts)",)
                raise error from retry.__cause__
            delay = retry.delay
            if delay is None:
                delay = self.backoff * 2 ** (attempt - 1)
            elif delay > self.max_retry_after:
                error.args = (
                    f"{error}; the server asks to wait {delay:g}s, more than the "
                    f"{self.max_retry_after:g}s limit",
                )
                raise error from retry.__cause__
            await asyncio.sleep(delay)

    # -- one attempt -------------------------------------------------------------------------

    def _semaphore(self, url: httpx.URL) -> asyncio.Semaphore:
        key = _host_key(url)
        semaphore = self._hosts.get(key)
        if semaphore is None:
            semaphore = self._hosts[key] = asyncio.Semaphore(self.per_host)
        return semaphore

    async def _get_once(self, url: str, current: httpx.URL, headers: dict[str, str]) -> _Response:
        # a document whose own URL is private was asked for: its redirects may stay inside
        private_ok = self.allow_private or await self._host_is_private(current)
        token = _PRIVATE_OK.set(private_ok)
        try:
            return await self._follow(url, current, headers, private_ok=private_ok)
        except _PrivateAddress as exc:
            raise FetchError(f"{url}: refused: {exc}; {ALLOW_PRIVATE_HINT}") from None
        finally:
            _PRIVATE_OK.reset(token)

    async def _host_is_private(self, url: httpx.URL) -> bool:
        """Whether ``url``'s host resolves to a private address (False when it does not resolve)."""
        try:
            addresses = await self._resolve(url.host, url.port or _default_port(url))
        except OSError:
            return False
        return any(is_private_address(a) for a in addresses)

    async def _check_hop(self, url: str, target: httpx.URL) -> None:
        """Refuse a redirect of a public document to a private address, before following it."""
        try:
            addresses = await self._resolve(target.host, target.port or _default_port(target))
        except OSError as exc:
            error = FetchError(f"{url}: cannot resolve {target.host} ({exc})", transient=True)
            raise _Retry(error) from exc
        if private := next((a for a in addresses if is_private_address(a)), None):
            where = target.host if target.host == private else f"{target.host} ({private})"
            raise FetchError(
                f"{url}: refused a redirect to {target}: {where} is a private address; "
                f"{ALLOW_PRIVATE_HINT}"
            )

    async def _follow(
        self, url: str, current: httpx.URL, headers: dict[str, str], *, private_ok: bool
    ) -> _Response:
        assert self._pool is not None
        chain = [url]
        extra = [(_header_bytes(k), _header_bytes(v)) for k, v in headers.items()]
        timeouts = dict.fromkeys(("connect", "read", "write", "pool"), self.timeout)
        for _ in range(self.max_redirects + 1):
            async with self._semaphore(current):
                sent = [*self._headers, *extra, *self._cookie_header(current)]
                try:
                    async with (
                        asyncio.timeout(self.timeout),
                        self._pool.stream(
                            b"GET",
                            _core_url(current),
                            headers=sent,
                            extensions={"timeout": timeouts},
                        ) as response,
                    ):
                        received = _header_dict(response.headers)
                        self._keep_cookies(current, response.headers)
                        location = received.get("location")
                        if response.status in REDIRECT_STATUSES and location:
                            target = current.join(location.strip())
                        else:
                            content = await self._read_capped(url, response, received)
                            return _Response(
                                url=str(current),
                                status=response.status,
                                headers=received,
                                content=content,
                            )
                except (httpcore.TimeoutException, TimeoutError) as exc:
                    error = FetchError(f"{url}: timed out after {self.timeout:g}s", transient=True)
                    raise _Retry(error) from exc
                except (httpcore.NetworkError, httpcore.ProtocolError) as exc:
                    reason = _transport_reason(exc)
                    raise _Retry(FetchError(f"{url}: {reason}", transient=True)) from exc
                except httpx.InvalidURL as exc:
                    raise FetchError(f"{url}: invalid redirect target ({exc})") from exc
            if target.scheme not in ("http", "https"):
                raise FetchError(f"{url}: redirect to a non-http URL ({target.scheme}:)")
            if str(target) in chain:
                loop = " -> ".join([*chain, str(target)])
                raise FetchError(f"{url}: redirect loop: {loop}")
            if not private_ok:
                await self._check_hop(url, target)
            chain.append(str(target))
            current = target
        raise FetchError(f"{url}: more than {self.max_redirects} redirects (last: {chain[-1]})")

    def _cookie_header(self, url: httpx.URL) -> list[tuple[bytes, bytes]]:
        """The Cookie header the cookies kept give a request to ``url`` (none: no header)."""
        if not self._cookies:
            return []
        request = urllib.request.Request(str(url))
        self._cookies.add_cookie_header(request)
        value = request.get_header("Cookie")
        return [(b"Cookie", value.encode("latin-1", "replace"))] if value else []

    def _keep_cookies(self, url: httpx.URL, headers: list[tuple[bytes, bytes]]) -> None:
        """Keep the cookies a response sets, for the fetcher's later requests (a site that sets
        one and redirects expects it back, as a browser would send it)."""
        cookies = [v for k, v in headers if k.lower() == b"set-cookie"]
        if not cookies:
            return
        message = email.message.Message()
        for value in cookies:
            message["Set-Cookie"] = value.decode("latin-1")
        self._cookies.extract_cookies(_CookieResponse(message), urllib.request.Request(str(url)))  # type: ignore[arg-type]

    async def _read_capped(
        self, url: str, response: httpcore.Response, headers: Mapping[str, str]
    ) -> bytes:
        """The body, Content-Encoding undone, every decoded byte counted as it is produced."""
        too_big = f"{url}: response larger than {self.max_bytes} bytes"
        try:
            codings = content_codings(headers.get("content-encoding"))
        except FetchError as exc:
            if not 200 <= response.status < 300:
                return b""  # an error page: its status says enough
            raise FetchError(f"{url}: {exc}", status=response.status) from None
        declared = headers.get("content-length", "")
        # Content-Length counts encoded bytes: trust it up front only for an uncompressed body.
        if not codings and declared.isdigit() and int(declared) > self.max_bytes:
            raise FetchError(too_big)
        decoder = BodyDecoder(codings, max_bytes=self.max_bytes)
        try:
            async for chunk in response.aiter_stream():
                decoder.feed(chunk)
            return decoder.finish()
        except BodyTooLarge:
            raise FetchError(too_big) from None
        except FetchError as exc:
            raise FetchError(f"{url}: {exc}", status=response.status) from None

    async def _render_once(self, url: str, parsed: httpx.URL) -> _Response:
        assert self._browser is not None
        private_ok = self.allow_private or await self._host_is_private(parsed)
        async with self._semaphore(parsed):
            try:
                # The browser enforces ``timeout`` on loading, then waits a little for scripts.
                async with asyncio.timeout(self.timeout * 2 + 5):
                    page = await self._browser.render(
                        url,
                        timeout=self.timeout,
                        private_ok=private_ok,
                        resolver=self._resolve,
                        refusal_hint=ALLOW_PRIVATE_HINT,
                    )
            except TimeoutError as exc:
                error = FetchError(f"{url}: timed out after {self.timeout:g}s", transient=True)
                raise _Retry(error) from exc
            except FetchError as exc:
                if exc.transient:
                    raise _Retry(exc) from exc.__cause__
                raise
        content = page.html.encode("utf-8")
        if len(content) > self.max_bytes:
            raise FetchError(f"{url}: response larger than {self.max_bytes} bytes")
        headers = {k.lower(): v for k, v in page.headers.items()}
        headers["content-type"] = "text/html; charset=utf-8"
        return _Response(url=page.url, status=page.status, headers=headers, content=content)

    async def _start_browser(self, url: str) -> None:
        async with self._browser_lock:
            if self._browser is not None:
                return
            from monitor.browser import Browser  # optional extra: imported only when used

            browser = Browser(
                user_agent=self.user_agent,
                executable=self.browser_executable,
                extra_args=self.browser_args,
            )
            try:
                await browser.start()
            except FetchError as exc:
                raise FetchError(f"{url}: {exc}") from exc.__cause__
            self._browser = browser

    # -- judging a response ------------------------------------------------------------------

    def _result(
        self,
        url: str,
        response: _Response,
        started: float,
        etag: str | None,
        last_modified: str | None,
    ) -> FetchResult:
        status = response.status
        headers = response.headers
        if status == 304:
            return FetchResult(
                url=response.url,
                status=304,
                content=b"",
                media_type=_media_type(headers.get("content-type", "")) or "",
                charset=None,
                etag=headers.get("etag") or etag,
                last_modified=headers.get("last-modified") or last_modified,
                not_modified=True,
                duration=time.monotonic() - started,
            )
        content_type = headers.get("content-type", "")
        media_type = _media_type(content_type) or _sniff_media_type(response.content)
        charset = detect_charset(response.content, media_type, _charset_param(content_type))
        result = FetchResult(
            url=response.url,
            status=status,
            content=response.content,
            media_type=media_type,
            charset=charset,
            etag=headers.get("etag"),
            last_modified=headers.get("last-modified"),
            not_modified=False,
            duration=time.monotonic() - started,
        )
        textual = media_type.startswith("text/") or "xml" in media_type or "json" in media_type
        text = result.text()
        if not 200 <= status < 300:
            self._raise_for_status(url, status, headers, text if textual else "")
        if not response.content.strip():
            empty = FetchError(f"{url}: empty response body (HTTP {status})", transient=True)
            raise _Retry(empty)
        if reason := not_text_reason(response.content, text):
            raise FetchError(f"{url}: {reason}", status=status)
        if textual and (block := _classify_block(text, status)):
            reason, transient = block
            raise FetchError(f"{url}: {reason}", blocked=True, transient=transient, status=status)
        if (garbled := text.count("\ufffd")) > max(GARBLED_MIN_CHARS, GARBLED_SHARE * len(text)):
            raise FetchError(
                f"{url}: body is not valid {charset or 'utf-8'} "
                f"({garbled} undecodable characters in {len(text)}): a broken or binary response",
                transient=True,
                status=status,
            )
        return result

    def _raise_for_status(
        self, url: str, status: int, headers: Mapping[str, str], text: str
    ) -> None:
        described = f"HTTP {status} {_phrase(status)}"
        block = _classify_block(text, status)
        if status == 429 or status >= 500:
            error = FetchError(
                f"{url}: {described}", transient=True, blocked=status == 429, status=status
            )
            retry_after = None
            if status in (429, 503):
                now = datetime.now(UTC)
                retry_after = parse_retry_after(headers.get("retry-after"), now=now)
            raise _Retry(error, retry_after)
        if block is not None:
            reason, transient = block
            if not reason.startswith("HTTP"):
                reason = f"{described}, {reason}"
            raise FetchError(f"{url}: {reason}", blocked=True, transient=transient, status=status)
        raise FetchError(f"{url}: {described}", status=status)


def _one_line(message: str) -> str:
    return " ".join(message.split())


def _media_type(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


def _charset_param(content_type: str) -> str | None:
    for param in content_type.split(";")[1:]:
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset":
            return value.strip().strip("\"'") or None
    return None


def _transport_reason(exc: httpcore.NetworkError | httpcore.ProtocolError) -> str:
    detail = str(exc) or type(exc).__name__  # a reset connection says nothing of its own
    if isinstance(exc, httpcore.ConnectError):
        return f"connection failed ({detail})"
    if isinstance(exc, httpcore.RemoteProtocolError):
        return f"connection broken ({detail})"
    if isinstance(exc, httpcore.ReadError):
        return f"connection reset while reading ({detail})"
    return f"network error: {type(exc).__name__} {exc}".strip()


def _core_url(url: httpx.URL) -> httpcore.URL:
    return httpcore.URL(
        scheme=url.raw_scheme, host=url.raw_host, port=url.port, target=url.raw_path
    )


def _header_bytes(value: str) -> bytes:
    """A header value to send: a validator the server gave (an ETag) goes back as it came, in
    UTF-8 when it holds a character Latin-1 cannot (as ``_header_dict`` read it)."""
    try:
        return value.encode("latin-1")
    except UnicodeEncodeError:
        return value.encode("utf-8")


def _header_dict(headers: list[tuple[bytes, bytes]]) -> dict[str, str]:
    """Response headers by lower-case name; a repeated header's values joined with ", " (as
    httpx's ``Headers.items()`` gives them)."""
    found: dict[str, str] = {}
    for raw_name, raw_value in headers:
        name = raw_name.decode("latin-1").lower()
        try:
            value = raw_value.decode("utf-8")
        except UnicodeDecodeError:
            value = raw_value.decode("latin-1")
        found[name] = f"{found[name]}, {value}" if name in found else value
    return found


class _CookieResponse:
    """What ``http.cookiejar`` reads of a response: its headers, as ``info()``."""

    def __init__(self, headers: email.message.Message) -> None:
        self._headers = headers

    def info(self) -> email.message.Message:
        return self._headers
