"""The system Chromium runs sandboxed when it can, and says once why when it cannot."""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path
from typing import Any

import pytest

import monitor.browser
from monitor.browser import Browser, browser_unavailable, sandbox_problem
from monitor.errors import FetchError
from monitor.fetcher import Fetcher, FetchResult
from tests.network import PUBLIC, names
from tests.pageserver import PageServer

needs_browser = pytest.mark.skipif(
    browser_unavailable() is not None, reason=str(browser_unavailable())
)


def _proc_sys(tmp_path: Path, **settings: str) -> Path:
    for name, value in settings.items():
        path = tmp_path / name.replace("__", "/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(value + "\n", encoding="ascii")
    return tmp_path


def test_root_cannot_sandbox(tmp_path: Path) -> None:
    assert "root" in str(sandbox_problem(euid=0, proc_sys=_proc_sys(tmp_path)))


def test_an_ordinary_user_sandboxes_when_user_namespaces_are_on(tmp_path: Path) -> None:
    on = _proc_sys(tmp_path, user__max_user_namespaces="63000")
    assert sandbox_problem(euid=1000, proc_sys=on) is None
    assert sandbox_problem(euid=1000, proc_sys=tmp_path / "absent") is None


@pytest.mark.parametrize(
    ("setting", "name"),
    [
        ("kernel__unprivileged_userns_clone", "kernel.unprivileged_userns_clone = 0"),
        ("user__max_user_namespaces", "user.max_user_namespaces = 0"),
    ],
)
def test_disabled_user_namespaces_prevent_the_sandbox(
    tmp_path: Path, setting: str, name: str
) -> None:
    off = _proc_sys(tmp_path, **{setting: "0"})
    assert name in str(sandbox_problem(euid=1000, proc_sys=off))


def _start_and_render(url: str) -> tuple[bool | None, str]:
    async def go() -> tuple[bool | None, str]:
        browser = Browser(user_agent="tos-monitor-test")
        await browser.start()
        try:
            page = await browser.render(url, timeout=30)
            return browser.sandboxed, page.html
        finally:
            await browser.close()

    return asyncio.run(go())


@needs_browser
def test_chromium_is_sandboxed_unless_it_must_not_be(
    page_server: PageServer, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(monitor.browser, "_explained", set())
    with caplog.at_level(logging.WARNING, logger="monitor.browser"):
        sandboxed, html = _start_and_render(page_server.url("/terms"))
        again, _ = _start_and_render(page_server.url("/terms"))
    assert "You keep ownership" in html
    problem = sandbox_problem()
    warnings = [r.getMessage() for r in caplog.records if "without its sandbox" in r.getMessage()]
    if problem is None:
        assert sandboxed is True and again is True
        assert warnings == []
    else:
        assert sandboxed is False and again is False
        assert warnings == [
            f"Chromium runs without its sandbox: {problem}; " + monitor.browser.SANDBOX_HINT
        ]


@needs_browser
@pytest.mark.skipif(os.geteuid() != 0, reason="needs a place where the sandbox fails: root")
def test_a_sandbox_that_fails_to_start_falls_back_and_says_why(
    page_server: PageServer, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the kernel checks pass (as for a user in a container whose seccomp filter blocks user
    # namespaces), yet Chromium cannot sandbox itself: here, because we are root
    monkeypatch.setattr(monitor.browser, "sandbox_problem", lambda: None)
    monkeypatch.setattr(monitor.browser, "_explained", set())
    with caplog.at_level(logging.WARNING, logger="monitor.browser"):
        sandboxed, html = _start_and_render(page_server.url("/terms"))
    assert sandboxed is False
    assert "You keep ownership" in html
    [warning] = [r.getMessage() for r in caplog.records if "without its sandbox" in r.getMessage()]
    assert "could not start sandboxed" in warning


# -- the private-address rule, in the browser ------------------------------------------------


def _render_public(page_server: PageServer, path: str, **options: Any) -> FetchResult:
    """Render http://terms.public.test:<port><path>: public to the rule, served locally.

    Chromium reaches the page server through its own host-resolver rule; the fetcher's
    resolver says the name is public, as a real DNS answer would.
    """

    async def go() -> FetchResult:
        async with Fetcher(
            timeout=30,
            retries=0,
            resolver=names({"terms.public.test": [PUBLIC]}),
            browser_args=["--host-resolver-rules=MAP terms.public.test 127.0.0.1"],
            **options,
        ) as fetcher:
            return await fetcher.fetch(page_server.url(path, host="terms.public.test"), render=True)

    return asyncio.run(go())


@needs_browser
def test_rendered_public_page_redirected_to_loopback_is_refused(page_server: PageServer) -> None:
    page_server.set("/secret", "<main><p>internal admin page</p></main>")
    page_server.redirect("/tos", page_server.url("/secret"))
    with pytest.raises(FetchError) as info:
        _render_public(page_server, "/tos")
    message = str(info.value)
    assert f"refused a redirect to {page_server.url('/secret')}" in message
    assert "127.0.0.1 is a private address" in message and "allow_private" in message
    result = _render_public(page_server, "/tos", allow_private=True)
    assert "internal admin page" in result.text()


@needs_browser
def test_scripts_of_a_public_page_cannot_read_private_addresses(page_server: PageServer) -> None:
    secret = page_server.url("/secret")
    page_server.set("/secret", "internal admin page", headers={"Access-Control-Allow-Origin": "*"})
    page_server.set(
        "/tos",
        f"""<!doctype html><html><body><main id="t"><p>Terms of use.</p></main><script>
fetch("{secret}").then(r => r.text())
  .then(t => {{ document.getElementById("t").innerHTML += "<p>" + t + "</p>"; }})
  .catch(() => {{ document.getElementById("t").innerHTML += "<p>fetch refused</p>"; }});
</script></body></html>""",
    )
    result = _render_public(page_server, "/tos")
    assert "fetch refused" in result.text()
    assert "internal admin page" not in result.text()
    assert page_server.hits("/secret") == 0
    allowed = _render_public(page_server, "/tos", allow_private=True)
    assert "internal admin page" in allowed.text()
