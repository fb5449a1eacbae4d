"""monitor.fetcher over real HTTP against tests.pageserver (127.0.0.1 only)."""

from __future__ import annotations

import asyncio
import gzip
import socket
import tracemalloc
import zlib
from collections.abc import Coroutine
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any, TypeVar

import pytest

from monitor import __version__
from monitor.errors import FetchError
from monitor.fetcher import (
    DEFAULT_USER_AGENT,
    Fetcher,
    FetchResult,
    detect_block,
    detect_charset,
    parse_retry_after,
)
from monitor.netpolicy import is_private_address
from tests.network import PUBLIC, Routes, names
from tests.pageserver import CORPUS_DIR, TERMS_HTML, PageServer

T = TypeVar("T")

FAST = {"backoff": 0.01, "timeout": 5.0}


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


async def fetch(url: str, **options: Any) -> FetchResult:
    fetch_options = {k: options.pop(k) for k in ("etag", "last_modified", "render") if k in options}
    async with Fetcher(**{**FAST, **options}) as fetcher:
        return await fetcher.fetch(url, **fetch_options)


def fetch_error(url: str, **options: Any) -> FetchError:
    with pytest.raises(FetchError) as info:
        run(fetch(url, **options))
    error = info.value
    message = str(error)
    assert "\n" not in message
    assert message.startswith(url), message
    return error


# -- plain fetches ---------------------------------------------------------------------------


def test_fetches_a_page_with_its_metadata(page_server: PageServer) -> None:
    result = run(fetch(page_server.url("/terms")))
    assert result.status == 200
    assert result.url == page_server.url("/terms")
    assert result.media_type == "text/html"
    assert result.charset == "utf-8"
    assert "You keep ownership of your content." in result.text()
    assert result.content == TERMS_HTML.encode()
    assert not result.not_modified
    assert result.duration > 0


def test_sends_a_clear_user_agent(page_server: PageServer) -> None:
    run(fetch(page_server.url("/terms")))
    user_agent = page_server.requests_to("/terms")[0].headers["user-agent"]
    assert user_agent == DEFAULT_USER_AGENT
    assert user_agent.startswith(f"tos-monitor/{__version__} (+https://")


def test_user_agent_can_be_configured(page_server: PageServer) -> None:
    run(fetch(page_server.url("/terms"), user_agent="acme-watch/2"))
    assert page_server.requests_to("/terms")[0].headers["user-agent"] == "acme-watch/2"


def test_page_changed_between_fetches_is_seen(page_server: PageServer) -> None:
    page_server.set("/doc", "<p>first version</p>")
    assert "first version" in run(fetch(page_server.url("/doc"))).text()
    page_server.set("/doc", "<p>second version</p>")
    assert "second version" in run(fetch(page_server.url("/doc"))).text()


@pytest.mark.parametrize(
    ("path", "media_type", "expected"),
    [("/markdown", "text/markdown", "## Licence"), ("/plain", "text/plain", "a licence")],
)
def test_markdown_and_plain_text(
    page_server: PageServer, path: str, media_type: str, expected: str
) -> None:
    result = run(fetch(page_server.url(path)))
    assert result.media_type == media_type
    assert expected in result.text()


def test_missing_content_type_is_sniffed(page_server: PageServer) -> None:
    page_server.set("/bare", "<!DOCTYPE html><html><body>Terms</body></html>", content_type=None)
    assert run(fetch(page_server.url("/bare"))).media_type == "text/html"


def test_not_an_http_url_is_refused() -> None:
    with pytest.raises(FetchError, match="not an http"):
        run(fetch("file:///etc/passwd"))


def test_fetcher_must_be_entered() -> None:
    with pytest.raises(RuntimeError, match="async with"):
        run(Fetcher().fetch("http://127.0.0.1:9/"))


# -- conditional requests --------------------------------------------------------------------


def test_etag_roundtrip_gives_not_modified(page_server: PageServer) -> None:
    first = run(fetch(page_server.url("/etag")))
    assert first.etag == '"v1"'
    assert first.last_modified == "Mon, 05 Jan 2026 10:00:00 GMT"

    again = run(fetch(page_server.url("/etag"), etag=first.etag))
    assert again.not_modified
    assert again.status == 304
    assert again.content == b""
    assert again.etag == '"v1"'
    assert page_server.requests_to("/etag")[1].headers["if-none-match"] == '"v1"'


def test_an_etag_with_non_latin_characters_goes_back_as_it_came(page_server: PageServer) -> None:
    etag = '"\u20acv1"'.encode().decode("latin-1")  # the server sends the UTF-8 bytes of '"€v1"'
    page_server.set("/euro", TERMS_HTML, etag=etag)
    first = run(fetch(page_server.url("/euro")))
    assert first.etag == '"\u20acv1"'
    again = run(fetch(page_server.url("/euro"), etag=first.etag))
    assert again.not_modified


def test_changed_etag_gives_the_new_page(page_server: PageServer) -> None:
    page_server.set("/doc", "<p>new terms</p>", etag='"v2"')
    result = run(fetch(page_server.url("/doc"), etag='"v1"'))
    assert not result.not_modified
    assert result.etag == '"v2"'
    assert "new terms" in result.text()


def test_if_modified_since(page_server: PageServer) -> None:
    stamp = "Mon, 05 Jan 2026 10:00:00 GMT"
    page_server.set("/doc", "<p>terms</p>", last_modified=stamp)
    result = run(fetch(page_server.url("/doc"), last_modified=stamp))
    assert result.not_modified
    assert result.last_modified == stamp
    assert page_server.requests_to("/doc")[0].headers["if-modified-since"] == stamp


def test_no_conditional_headers_without_validators(page_server: PageServer) -> None:
    run(fetch(page_server.url("/etag")))
    headers = page_server.requests_to("/etag")[0].headers
    assert "if-none-match" not in headers
    assert "if-modified-since" not in headers


# -- statuses --------------------------------------------------------------------------------


@pytest.mark.parametrize(("path", "status"), [("/missing", 404), ("/gone", 410)])
def test_not_found_is_permanent(page_server: PageServer, path: str, status: int) -> None:
    error = fetch_error(page_server.url(path))
    assert error.status == status
    assert not error.transient
    assert not error.blocked
    assert f"HTTP {status}" in str(error)
    assert page_server.hits(path) == 1  # not retried


def test_403_is_blocked(page_server: PageServer) -> None:
    page_server.set("/doc", "<p>Forbidden</p>", status=403)
    error = fetch_error(page_server.url("/doc"))
    assert error.blocked
    assert error.status == 403
    assert "HTTP 403 Forbidden" in str(error)
    assert page_server.hits("/doc") == 1


def test_403_challenge_names_the_challenge(page_server: PageServer) -> None:
    error = fetch_error(page_server.url("/cloudflare"))
    assert error.blocked
    assert "Cloudflare" in str(error)


def test_500_then_200_is_retried(page_server: PageServer) -> None:
    result = run(fetch(page_server.url("/flaky")))
    assert "You keep ownership" in result.text()
    assert page_server.hits("/flaky") == 3


def test_persistent_5xx_is_transient_after_retries(page_server: PageServer) -> None:
    page_server.fail("/terms", times=10, status=503)
    error = fetch_error(page_server.url("/terms"), retries=2)
    assert error.transient
    assert not error.blocked
    assert error.status == 503
    assert "gave up after 3 attempts" in str(error)
    assert page_server.hits("/terms") == 3


def test_retries_zero_means_one_attempt(page_server: PageServer) -> None:
    fetch_error(page_server.url("/flaky"), retries=0)
    assert page_server.hits("/flaky") == 1


def test_backoff_grows_between_attempts(page_server: PageServer) -> None:
    page_server.fail("/terms", times=2, status=500)
    run(fetch(page_server.url("/terms"), backoff=0.1))
    times = [r.at for r in page_server.requests_to("/terms")]
    assert times[1] - times[0] >= 0.1
    assert times[2] - times[1] >= 0.2


def test_429_honours_retry_after_seconds(page_server: PageServer) -> None:
    result = run(fetch(page_server.url("/ratelimited")))
    assert result.status == 200
    first, second = page_server.requests_to("/ratelimited")
    assert second.at - first.at >= 1.0


def test_429_honours_retry_after_http_date(page_server: PageServer) -> None:
    soon = format_datetime(datetime.now(UTC) + timedelta(seconds=2), usegmt=True)
    page_server.fail("/terms", times=1, status=429, headers={"Retry-After": soon})
    run(fetch(page_server.url("/terms")))
    first, second = page_server.requests_to("/terms")
    assert second.at - first.at >= 0.5


def test_429_with_long_retry_after_gives_up_at_once(page_server: PageServer) -> None:
    page_server.fail("/terms", times=5, status=429, headers={"Retry-After": "3600"})
    error = fetch_error(page_server.url("/terms"), max_retry_after=60)
    assert error.blocked
    assert error.transient
    assert error.status == 429
    assert "3600s" in str(error)
    assert page_server.hits("/terms") == 1


def test_persistent_429_is_blocked_and_transient(page_server: PageServer) -> None:
    page_server.fail("/terms", times=10, status=429)
    error = fetch_error(page_server.url("/terms"), retries=1)
    assert error.blocked
    assert error.transient
    assert page_server.hits("/terms") == 2


# -- network failures ------------------------------------------------------------------------


def test_connection_reset_is_transient(page_server: PageServer) -> None:
    error = fetch_error(page_server.url("/reset"), retries=1)
    assert error.transient
    # the reason is named, never an empty "()"
    assert "connection reset while reading (ReadError)" in str(error)
    assert page_server.hits("/reset") == 2


def test_connection_refused_is_transient() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    # the port is free again: nothing listens there
    error = fetch_error(f"http://127.0.0.1:{port}/terms", retries=0)
    assert error.transient
    assert "connection failed" in str(error)


def test_truncated_body_is_transient(page_server: PageServer) -> None:
    error = fetch_error(page_server.url("/truncated"), retries=1)
    assert error.transient
    assert page_server.hits("/truncated") == 2


def test_slow_response_times_out(page_server: PageServer) -> None:
    page_server.delay("/terms", 1.0)
    error = fetch_error(page_server.url("/terms"), timeout=0.2, retries=0)
    assert error.transient
    assert "timed out after 0.2s" in str(error)


def test_slow_response_within_timeout_succeeds(page_server: PageServer) -> None:
    page_server.delay("/terms", 0.2)
    assert run(fetch(page_server.url("/terms"), timeout=5.0)).status == 200


def test_empty_body_is_an_error(page_server: PageServer) -> None:
    error = fetch_error(page_server.url("/empty"), retries=0)
    assert "empty response body" in str(error)
    assert error.transient


def test_whitespace_body_counts_as_empty(page_server: PageServer) -> None:
    page_server.set("/blank", "  \n\t ")
    assert "empty" in str(fetch_error(page_server.url("/blank"), retries=0))


# -- size cap --------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/huge", "/huge-chunked"])
def test_huge_body_is_cut_off(page_server: PageServer, path: str) -> None:
    error = fetch_error(page_server.url(path), max_bytes=200_000)
    assert "response larger than 200000 bytes" in str(error)
    assert not error.transient
    assert page_server.hits(path) == 1


def test_body_at_the_cap_is_accepted(page_server: PageServer) -> None:
    page_server.stream("/exact", 100_000)
    assert len(run(fetch(page_server.url("/exact"), max_bytes=100_000)).content) == 100_000


# -- redirects -------------------------------------------------------------------------------


def test_redirects_are_followed_and_final_url_reported(page_server: PageServer) -> None:
    result = run(fetch(page_server.url("/redirect-chain")))
    assert result.url == page_server.url("/terms")
    assert "You keep ownership" in result.text()
    assert [r.path for r in page_server.requests] == ["/redirect-chain", "/redirect", "/terms"]


def test_conditional_headers_survive_redirects(page_server: PageServer) -> None:
    page_server.redirect("/old", "/etag", status=301)
    result = run(fetch(page_server.url("/old"), etag='"v1"'))
    assert result.not_modified
    assert result.url == page_server.url("/etag")


def test_a_cookie_set_with_a_redirect_is_sent_back(page_server: PageServer) -> None:
    # a consent or region page that sets a cookie, then sends the reader on to the terms
    page_server.set(
        "/consent",
        "",
        status=302,
        headers={"Location": "/terms", "Set-Cookie": "consent=yes; Path=/"},
    )

    async def both() -> None:
        async with Fetcher(**FAST) as fetcher:
            first = await fetcher.fetch(page_server.url("/consent"))
            assert first.url == page_server.url("/terms")
            await fetcher.fetch(page_server.url("/terms"))  # later, same fetcher
        async with Fetcher(**FAST) as fetcher:  # a new fetcher starts with none
            await fetcher.fetch(page_server.url("/terms"))

    run(both())
    sent = [r.headers.get("cookie") for r in page_server.requests_to("/terms")]
    assert sent == ["consent=yes", "consent=yes", None]
    assert "cookie" not in page_server.requests_to("/consent")[0].headers


def test_redirect_loop_is_named(page_server: PageServer) -> None:
    error = fetch_error(page_server.url("/loop/a"))
    assert "redirect loop" in str(error)
    assert "/loop/b" in str(error)
    assert not error.transient


def test_too_many_redirects(page_server: PageServer) -> None:
    for n in range(5):
        page_server.redirect(f"/hop{n}", f"/hop{n + 1}")
    page_server.set("/hop5", TERMS_HTML)
    assert "more than 3 redirects" in str(fetch_error(page_server.url("/hop0"), max_redirects=3))
    assert run(fetch(page_server.url("/hop0"), max_redirects=5)).url.endswith("/hop5")


def test_redirect_to_another_scheme_is_refused(page_server: PageServer) -> None:
    page_server.redirect("/ftp", "ftp://127.0.0.1/terms")
    assert "non-http" in str(fetch_error(page_server.url("/ftp")))


# -- charsets --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "charset", "expected"),
    [
        ("/latin1", "iso-8859-1", "Conditions générales d'utilisation, été"),
        ("/cp1252", "windows-1252", "\u201cSmart quotes\u201d \u2013 and \u20ac10 fees"),
        ("/meta-http-equiv", "windows-1252", "\u201cQuoted\u201d terms"),
        ("/sjis", "shift_jis", "利用規約"),
    ],
)
def test_declared_charsets(page_server: PageServer, path: str, charset: str, expected: str) -> None:
    result = run(fetch(page_server.url(path)))
    assert result.charset == charset
    assert expected in result.text()
    assert not result.has_invalid_bytes


def test_undeclared_charset_is_detected(page_server: PageServer) -> None:
    page_server.set("/utf8", "<p>café</p>".encode(), content_type="text/html")
    page_server.set("/legacy", "<p>café</p>".encode("cp1252"), content_type="text/html")
    utf8 = run(fetch(page_server.url("/utf8")))
    legacy = run(fetch(page_server.url("/legacy")))
    assert (utf8.charset, legacy.charset) == ("utf-8", "windows-1252")
    assert "café" in utf8.text()
    assert "café" in legacy.text()


def test_header_charset_wins_over_meta(page_server: PageServer) -> None:
    body = '<meta charset="shift_jis"><p>café</p>'.encode()
    page_server.set("/doc", body, content_type="text/html; charset=utf-8")
    result = run(fetch(page_server.url("/doc")))
    assert result.charset == "utf-8"
    assert "café" in result.text()


def test_invalid_utf8_is_replaced_and_flagged(page_server: PageServer) -> None:
    result = run(fetch(page_server.url("/bad-utf8")))
    assert result.charset == "utf-8"
    assert result.has_invalid_bytes
    text = result.text()
    assert "Terms \ufffd\ufffd of service café" in text


def test_utf8_bom_is_dropped(page_server: PageServer) -> None:
    page_server.set("/bom", b"\xef\xbb\xbf<p>terms</p>", content_type="text/html")
    result = run(fetch(page_server.url("/bom")))
    assert result.text() == "<p>terms</p>"


def test_unknown_charset_label_falls_back_to_detection() -> None:
    assert detect_charset(b"<p>caf\xc3\xa9</p>", "text/html", "x-klingon") == "utf-8"


# -- blocked pages ---------------------------------------------------------------------------


def test_captcha_page_with_200_is_blocked(page_server: PageServer) -> None:
    error = fetch_error(page_server.url("/captcha"))
    assert error.blocked
    assert error.status == 200
    assert "reCAPTCHA" in str(error)
    assert page_server.hits("/captcha") == 1


def test_login_wall_with_200_is_blocked(page_server: PageServer) -> None:
    error = fetch_error(page_server.url("/login"))
    assert error.blocked
    assert not error.transient
    assert "login wall" in str(error)


def test_terms_page_mentioning_login_and_captcha_is_not_blocked(page_server: PageServer) -> None:
    paragraphs = "".join(
        f"<p>Section {n}. You must not bypass any CAPTCHA, or log in to another person's account, "
        "or send unusual traffic to our services. Verify you are human before you sign in.</p>"
        for n in range(40)
    )
    body = f"<html><body><h1>Terms</h1>{paragraphs}<form><input type=password></form></body></html>"
    page_server.set("/long-terms", body)
    assert run(fetch(page_server.url("/long-terms"))).status == 200


def test_short_terms_page_with_login_words_is_not_blocked(page_server: PageServer) -> None:
    body = (
        "<html><body><h1>AI terms</h1><p>Log in to your account settings to opt out of "
        "training. We will not use content you share with a password-protected group.</p>"
        "</body></html>"
    )
    page_server.set("/short-terms", body)
    assert run(fetch(page_server.url("/short-terms"))).status == 200


@pytest.mark.parametrize(
    ("text", "status", "expected"),
    [
        ("<title>Just a moment...</title><div id=cf-challenge-running>", 503, "Cloudflare"),
        ('<div class="h-captcha" data-sitekey="k"></div>', 200, "hCaptcha"),
        ("<p>Our systems have detected unusual traffic from your network.</p>", 200, "unusual"),
        ("<p>Checking your browser before accessing example.com</p>", 200, "checking your"),
        ("", 403, "HTTP 403"),
        ("", 401, "login required"),
        ("", 429, "HTTP 429"),
    ],
)
def test_detect_block_signals(text: str, status: int, expected: str) -> None:
    reason = detect_block(text, status)
    assert reason is not None
    assert expected.lower() in reason.lower()


@pytest.mark.parametrize("head_kb", [0, 40])
def test_a_challenge_page_with_a_long_inline_script_is_still_blocked(head_kb: int) -> None:
    """Block detection reads a long page in parts: a part that ends inside a script must not
    count the script's code as words a reader sees (the challenge would pass for a long page)."""
    code = "var a = b + c; function check(token, key) { return token && key; } " * 600  # 40 KB
    head = f"<style>{'p { margin: 0 } ' * (head_kb * 64)}</style>" if head_kb else ""
    page = (
        f"<html><head><title>Just a moment...</title>{head}</head><body>"
        f"<p>Checking your browser before accessing example.com.</p><script>{code}</script>"
        f"<div id=cf-challenge-running></div></body></html>"
    )
    assert len(page) > 32_768
    reason = detect_block(page, 200)
    assert reason is not None and "challenge" in reason


def test_detect_block_ignores_ordinary_pages() -> None:
    assert detect_block(TERMS_HTML, 200) is None
    assert detect_block("<p>We use reCAPTCHA to protect our forms.</p>", 200) is None
    assert detect_block("<p>not found</p>", 404) is None


# -- politeness ------------------------------------------------------------------------------


def test_at_most_per_host_requests_at_once(page_server: PageServer) -> None:
    for n in range(6):
        page_server.set(f"/doc{n}", f"<p>doc {n}</p>")
        page_server.delay(f"/doc{n}", 0.2)

    async def many() -> list[FetchResult]:
        async with Fetcher(per_host=2, **FAST) as fetcher:
            urls = [page_server.url(f"/doc{n}") for n in range(6)]
            return await asyncio.gather(*(fetcher.fetch(u) for u in urls))

    results = run(many())
    assert [r.text() for r in results] == [f"<p>doc {n}</p>" for n in range(6)]
    assert page_server.peak_concurrency == 2


def test_waiting_for_a_free_slot_does_not_count_as_timeout(page_server: PageServer) -> None:
    for n in range(3):
        page_server.set(f"/doc{n}", f"<p>doc {n}</p>")
        page_server.delay(f"/doc{n}", 0.3)

    async def queued() -> list[FetchResult]:
        async with Fetcher(per_host=1, timeout=0.6, retries=0, backoff=0.01) as fetcher:
            urls = [page_server.url(f"/doc{n}") for n in range(3)]
            return await asyncio.gather(*(fetcher.fetch(u) for u in urls))

    assert [r.status for r in run(queued())] == [200, 200, 200]
    assert page_server.peak_concurrency == 1


def test_per_host_limit_is_per_host(page_server: PageServer) -> None:
    page_server.set("/doc", "<p>doc</p>")
    page_server.delay("/doc", 0.3)

    async def two_hosts() -> None:
        async with Fetcher(per_host=1, **FAST) as fetcher:
            await asyncio.gather(
                fetcher.fetch(page_server.url("/doc")),
                fetcher.fetch(page_server.url("/doc", host="localhost")),
            )

    try:
        run(two_hosts())
    except FetchError as exc:  # pragma: no cover - depends on the machine's resolver
        pytest.skip(f"localhost does not reach 127.0.0.1 here: {exc}")
    assert page_server.peak_concurrency == 2


# -- Retry-After parsing ---------------------------------------------------------------------


def test_parse_retry_after() -> None:
    now = datetime(2026, 1, 5, 10, 0, 0, tzinfo=UTC)
    assert parse_retry_after("120", now=now) == 120.0
    assert parse_retry_after("Mon, 05 Jan 2026 10:01:30 GMT", now=now) == 90.0
    assert parse_retry_after("Mon, 05 Jan 2026 09:00:00 GMT", now=now) == 0.0
    assert parse_retry_after("soon", now=now) is None
    assert parse_retry_after(None, now=now) is None


# -- corpus ----------------------------------------------------------------------------------


def test_serves_and_fetches_a_corpus_snapshot(page_server: PageServer) -> None:
    snapshots = sorted((CORPUS_DIR / "snapshots").glob("*/*/*.html"))
    if not CORPUS_DIR.is_dir() or not snapshots:
        pytest.skip("../shared/corpus is absent")
    relative = snapshots[0].relative_to(CORPUS_DIR).as_posix()
    result = run(fetch(page_server.url("/corpus/" + relative.replace(" ", "%20"))))
    assert result.content == snapshots[0].read_bytes()
    assert result.media_type == "text/html"


# -- rendering -------------------------------------------------------------------------------


def _browser_missing() -> str | None:
    from monitor.browser import browser_unavailable

    return browser_unavailable()


def test_render_without_browser_says_how_to_enable_it(
    page_server: PageServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    import monitor.browser

    monkeypatch.setattr(monitor.browser, "CHROMIUM_PATH", monitor.browser.Path("/nonexistent"))
    error = fetch_error(page_server.url("/js"), render=True)
    assert "pip install 'tos-monitor[browser]'" in str(error)
    assert "chromium" in str(error)
    assert page_server.hits("/js") == 0


def test_js_page_without_render_lacks_the_text(page_server: PageServer) -> None:
    assert "Rendered terms" not in run(fetch(page_server.url("/js"))).text()


@pytest.mark.skipif(_browser_missing() is not None, reason=str(_browser_missing()))
def test_render_runs_the_page_scripts(page_server: PageServer) -> None:
    result = run(fetch(page_server.url("/js"), render=True, timeout=30.0))
    assert "Rendered terms" in result.text()
    assert "train artificial intelligence" in result.text()
    assert result.media_type == "text/html"
    assert result.status == 200
    assert page_server.requests_to("/js")[0].headers["user-agent"] == DEFAULT_USER_AGENT


@pytest.mark.skipif(_browser_missing() is not None, reason=str(_browser_missing()))
def test_render_reports_blocks_and_missing_pages(page_server: PageServer) -> None:
    async def both() -> tuple[FetchError, FetchError]:
        errors = []
        async with Fetcher(**{**FAST, "timeout": 30.0}) as fetcher:
            for path in ("/captcha", "/missing"):
                with pytest.raises(FetchError) as info:
                    await fetcher.fetch(page_server.url(path), render=True)
                errors.append(info.value)
        return errors[0], errors[1]

    captcha, missing = run(both())
    assert captcha.blocked
    assert missing.status == 404


def test_a_body_of_garbage_bytes_is_a_failure_not_a_page(page_server: PageServer) -> None:
    page_server.set("/garbage", bytes(range(128, 256)) * 20 + b"<p>\xff\xfe</p>")
    with pytest.raises(FetchError, match="not valid utf-8"):
        run(fetch(page_server.url("/garbage")))


# -- content encodings -----------------------------------------------------------------------


def _compress(data: bytes, coding: str) -> bytes:
    if coding == "gzip":
        return gzip.compress(data)
    if coding == "deflate":  # zlib-wrapped, as RFC 9110 says
        return zlib.compress(data)
    raw = zlib.compressobj(wbits=-zlib.MAX_WBITS)  # "raw-deflate": what many servers send
    return raw.compress(data) + raw.flush()


def _bomb(size: int, codings: list[str]) -> bytes:
    """``size`` zero bytes under ``codings`` (applied in order), built without holding them."""
    wbits = 31 if codings[0] == "gzip" else 15
    compressor = zlib.compressobj(9, zlib.DEFLATED, wbits)
    zeros = bytes(1 << 20)
    body = b"".join(compressor.compress(zeros) for _ in range(size >> 20)) + compressor.flush()
    for coding in codings[1:]:
        body = _compress(body, coding)
    return body


@pytest.mark.parametrize(
    "codings",
    [["gzip"], ["deflate"], ["raw-deflate"], ["gzip", "gzip"], ["deflate", "gzip", "gzip"]],
)
def test_compressed_pages_are_decoded(page_server: PageServer, codings: list[str]) -> None:
    body = TERMS_HTML.encode()
    for coding in codings:
        body = _compress(body, coding)
    header = ", ".join("deflate" if c == "raw-deflate" else c for c in codings)
    page_server.set("/packed", body, headers={"Content-Encoding": header})
    result = run(fetch(page_server.url("/packed")))
    assert result.content == TERMS_HTML.encode()
    assert page_server.requests_to("/packed")[0].headers["accept-encoding"] == "gzip, deflate"


def test_multi_member_gzip_is_decoded_whole(page_server: PageServer) -> None:
    half = len(TERMS_HTML) // 2
    body = gzip.compress(TERMS_HTML[:half].encode()) + gzip.compress(TERMS_HTML[half:].encode())
    page_server.set("/members", body, headers={"Content-Encoding": "gzip"})
    assert run(fetch(page_server.url("/members"))).content == TERMS_HTML.encode()


@pytest.mark.parametrize(
    "codings", [["gzip"], ["deflate"], ["gzip", "gzip"], ["deflate", "gzip"], ["gzip", "deflate"]]
)
def test_compression_bomb_stops_at_the_cap_in_bounded_memory(
    page_server: PageServer, codings: list[str]
) -> None:
    # 256 MB of zeros: 2 KB on the wire with two layers. Before the fix two layers inflated a
    # whole network chunk at once (1.8 KB took 2.1 GB of memory, 29 s, before the cap saw it).
    body = _bomb(256 << 20, codings)
    page_server.set("/bomb", body, headers={"Content-Encoding": ", ".join(codings)})
    tracemalloc.start()
    try:
        error = fetch_error(page_server.url("/bomb"), max_bytes=1_000_000)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert "response larger than 1000000 bytes" in str(error)
    assert not error.transient
    assert peak < 16 << 20, f"peak {peak / 2**20:.1f} MB"


@pytest.mark.parametrize("coding", ["br", "zstd", "compress", "gzip, br"])
def test_content_encodings_we_do_not_decode_are_refused(
    page_server: PageServer, coding: str
) -> None:
    page_server.set("/odd", bytes(range(256)) * 4, headers={"Content-Encoding": coding})
    error = fetch_error(page_server.url("/odd"), retries=0)
    assert f"unsupported Content-Encoding {coding.split(', ')[-1]}" in str(error)
    assert page_server.hits("/odd") == 1


def test_an_error_page_in_an_unsupported_coding_reports_its_status(
    page_server: PageServer,
) -> None:
    page_server.set("/gone-br", bytes(range(256)), status=404, headers={"Content-Encoding": "br"})
    error = fetch_error(page_server.url("/gone-br"))
    assert error.status == 404 and "HTTP 404" in str(error)


def test_too_many_encoding_layers_are_refused(page_server: PageServer) -> None:
    body = TERMS_HTML.encode()
    for _ in range(4):
        body = gzip.compress(body)
    page_server.set("/onion", body, headers={"Content-Encoding": "gzip, gzip, gzip, gzip"})
    assert "4 layers" in str(fetch_error(page_server.url("/onion")))


def test_corrupt_gzip_is_a_clear_failure(page_server: PageServer) -> None:
    page_server.set(
        "/corrupt", b"\x1f\x8b\x08\x00" + b"junk" * 50, headers={"Content-Encoding": "gzip"}
    )
    assert "cannot decode the gzip body" in str(fetch_error(page_server.url("/corrupt")))


# -- binary and mislabelled bodies -----------------------------------------------------------

PNG = bytes.fromhex("89504e470d0a1a0a0000000d49484452000000100000001008060000001ff3ff61")


@pytest.mark.parametrize(
    ("body", "content_type", "reason"),
    [
        (PNG + bytes(range(256)) * 8, "text/html", "it is a PNG image"),
        (PNG + bytes(range(256)) * 8, "image/png", "it is a PNG image"),
        (gzip.compress(TERMS_HTML.encode()), "text/html; charset=utf-8", "it is a gzip file"),
        (b"%PDF-1.7\n" + bytes(range(256)) * 8, "application/pdf", "it is a PDF file"),
        # no signature, but a body of controls: decodes "fine" as windows-1252
        (b"<p>" + bytes(range(0, 32)) * 40 + b"</p>", "text/html", "% control"),
        # C1 controls (U+0080-U+009F), valid UTF-8 among ordinary text
        (
            ("<p>Terms " + "".join(map(chr, range(0x80, 0xA0))) * 20 + "</p>").encode(),
            "text/html; charset=utf-8",
            "% control",
        ),
    ],
)
def test_binary_bodies_are_refused(
    page_server: PageServer, body: bytes, content_type: str, reason: str
) -> None:
    page_server.set("/blob", body, content_type=content_type)
    error = fetch_error(page_server.url("/blob"))
    assert "body is not text" in str(error)
    assert reason in str(error)


def test_a_false_utf16_header_on_an_ascii_page_is_ignored(page_server: PageServer) -> None:
    page_server.set("/wide", TERMS_HTML, content_type="text/html; charset=utf-16")
    result = run(fetch(page_server.url("/wide")))
    assert result.charset == "utf-8"
    assert "You keep ownership of your content." in result.text()


def test_a_real_utf16_page_is_still_read(page_server: PageServer) -> None:
    body = TERMS_HTML.encode("utf-16-le")  # no BOM: only the header says so
    page_server.set("/utf16", body, content_type="text/html; charset=utf-16le")
    assert "You keep ownership of your content." in run(fetch(page_server.url("/utf16"))).text()


def test_a_stray_control_character_is_tolerated(page_server: PageServer) -> None:
    page_server.set("/stray", TERMS_HTML.replace("</main>", "\x00\x1b\x08</main>"))
    assert "You keep ownership" in run(fetch(page_server.url("/stray"))).text()


DATA = Path(__file__).parent / "data"


def _real_pages() -> list[tuple[Path, str]]:
    """Real pages (path, media type): shipped copies, and the whole corpus when it is there."""
    pages = [(p, "text/html") for p in sorted(DATA.glob("snapshots/*.html"))]
    pages += [(p, "text/html") for p in sorted(DATA.glob("extract/*/input.html"))]
    pages += [(p, "text/markdown") for p in sorted(DATA.glob("ota/*/*/*.md"))]
    pages += [(p, "text/html") for p in sorted(CORPUS_DIR.glob("snapshots/*/*/*.html"))]
    for versions in ("versions", "versions-pga", "versions-more"):
        pages += [(p, "text/markdown") for p in sorted(CORPUS_DIR.glob(f"{versions}/*/*/*.md"))]
    return pages


def test_real_pages_are_text() -> None:
    """The binary-body detector refuses no real page: shipped copies, and the corpus's."""
    from monitor.decoding import not_text_reason

    pages = _real_pages()
    assert len(pages) > 10, "tests/data is missing its snapshots"
    refused = []
    for path, media_type in pages:
        content = path.read_bytes()
        charset = detect_charset(content, media_type, None)
        text = content.decode(charset or "utf-8", errors="replace")
        if reason := not_text_reason(content, text):
            refused.append(f"{path}: {reason}")
    assert refused == []


# -- private addresses -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "private"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("169.254.169.254", True),  # cloud metadata
        ("fe80::1%eth0", True),
        ("10.1.2.3", True),
        ("172.16.0.1", True),
        ("192.168.1.1", True),
        ("100.64.0.1", True),  # carrier-grade NAT
        ("0.0.0.0", True),
        ("224.0.0.1", True),
        ("fd00::1", True),
        ("::ffff:127.0.0.1", True),  # IPv4-mapped loopback
        ("192.0.2.1", True),  # documentation
        ("not-an-address", True),
        ("93.184.216.34", False),
        ("8.8.8.8", False),
        ("2606:4700:4700::1111", False),
        ("::ffff:8.8.8.8", False),
    ],
)
def test_private_address_classification(address: str, private: bool) -> None:
    assert is_private_address(address) is private


def public_fetch(page_server: PageServer, url: str, **options: Any) -> FetchResult:
    """Fetch ``url`` where terms.public.test is a public host served by the page server."""
    table: dict[str, list[str]] = {"terms.public.test": [PUBLIC], **options.pop("names", {})}
    routes = options.pop("routes", Routes({PUBLIC: "127.0.0.1"}))
    return run(fetch(url, resolver=names(table), network=routes, **options))


def public_url(page_server: PageServer, path: str) -> str:
    return page_server.url(path, host="terms.public.test")


def test_a_public_document_is_fetched_through_the_test_network(page_server: PageServer) -> None:
    result = public_fetch(page_server, public_url(page_server, "/terms"))
    assert "You keep ownership" in result.text()
    assert page_server.hits("/terms") == 1


def _public_error(page_server: PageServer, url: str, **options: Any) -> FetchError:
    with pytest.raises(FetchError) as info:
        public_fetch(page_server, url, **options)
    assert str(info.value).startswith(url)
    return info.value


def test_public_document_redirected_to_loopback_is_refused(page_server: PageServer) -> None:
    page_server.set("/secret", "<p>internal admin page</p>")
    page_server.redirect("/tos", page_server.url("/secret"))
    url = public_url(page_server, "/tos")
    error = _public_error(page_server, url)
    assert "127.0.0.1 is a private address" in str(error)
    assert "allow_private = true" in str(error)
    assert not error.transient
    assert page_server.hits("/tos") == 1
    assert page_server.hits("/secret") == 0


def test_allow_private_follows_the_redirect(page_server: PageServer) -> None:
    page_server.set("/secret", "<p>internal admin page</p>")
    page_server.redirect("/tos", page_server.url("/secret"))
    result = public_fetch(page_server, public_url(page_server, "/tos"), allow_private=True)
    assert "internal admin page" in result.text()


def test_a_name_resolving_to_loopback_counts_as_private(page_server: PageServer) -> None:
    page_server.set("/secret", "<p>internal</p>")
    page_server.redirect("/tos", page_server.url("/secret", host="intranet.public.test"))
    url = public_url(page_server, "/tos")
    error = _public_error(page_server, url, names={"intranet.public.test": ["127.0.0.1"]})
    assert "intranet.public.test (127.0.0.1) is a private address" in str(error)
    assert page_server.hits("/secret") == 0


@pytest.mark.parametrize(
    "target", ["http://169.254.169.254/latest/meta-data/", "http://10.0.0.7:8080/admin"]
)
def test_redirects_inward_are_refused_before_connecting(
    page_server: PageServer, target: str
) -> None:
    page_server.redirect("/tos", target)
    routes = Routes({PUBLIC: "127.0.0.1"})
    error = _public_error(page_server, public_url(page_server, "/tos"), routes=routes)
    assert f"refused a redirect to {target}" in str(error)
    assert routes.connects == [PUBLIC]  # never tried to connect to the private address


def test_dns_rebinding_is_refused_at_connect_time(page_server: PageServer) -> None:
    """A name that resolves public when the hop is checked and loopback when connecting."""
    page_server.set("/secret", "<p>internal</p>")
    page_server.redirect("/tos", page_server.url("/secret", host="flip.public.test"))
    flip = [[PUBLIC], ["127.0.0.1"]]
    url = public_url(page_server, "/tos")
    error = _public_error(page_server, url, names={"flip.public.test": flip}, retries=0)
    assert "flip.public.test (127.0.0.1) is a private address" in str(error)
    assert page_server.hits("/secret") == 0


def test_a_private_document_may_redirect_inside(page_server: PageServer) -> None:
    # every other test here fetches from 127.0.0.1: a document that is private by its own URL
    page_server.redirect("/tos", page_server.url("/terms", host="localhost"))
    assert "You keep ownership" in run(fetch(page_server.url("/tos"))).text()
