"""Render pages with the system Chromium through Playwright (optional: ``render = true`` documents).

Only ``monitor.fetcher`` imports this module, and only when a document asks for rendering, so
tos-monitor works without Playwright. It never downloads a browser: it drives Debian's
``/usr/bin/chromium``. To enable it::

    pip install 'tos-monitor[browser]'
    apt-get install chromium

Playwright errors are translated here into ``FetchError`` (one line, naming the URL).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from monitor.errors import FetchError

__all__ = ["CHROMIUM_ARGS", "CHROMIUM_PATH", "ENABLE_HINT", "Browser", "RenderedPage"]

CHROMIUM_PATH = Path("/usr/bin/chromium")
CHROMIUM_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
ENABLE_HINT = (
    "install the browser extra: pip install 'tos-monitor[browser]' and Debian's chromium package"
)
IDLE_WAIT = 5.0  # seconds to wait for scripts' network requests to settle after "load"

# net:: errors that will not go away by trying again soon
_PERMANENT_NET_ERRORS = (
    "ERR_TOO_MANY_REDIRECTS",
    "ERR_INVALID_URL",
    "ERR_UNSAFE_REDIRECT",
    "ERR_UNKNOWN_URL_SCHEME",
    "ERR_NAME_NOT_RESOLVED",
)


@dataclass(frozen=True, slots=True)
class RenderedPage:
    """The DOM of a page after its scripts ran."""

    url: str  # final URL
    status: int
    headers: dict[str, str]
    html: str


def browser_unavailable(executable: Path | None = None) -> str | None:
    """Why rendering cannot work here (None when Playwright and Chromium are both present)."""
    executable = executable or CHROMIUM_PATH
    try:
        import playwright.async_api  # noqa: F401
    except ImportError:
        return f"Playwright is not installed; {ENABLE_HINT}"
    if not executable.exists():
        return f"{executable} is missing; {ENABLE_HINT}"
    return None


class Browser:
    """One headless Chromium for a check cycle; a fresh context (no cookies) per page."""

    def __init__(self, *, user_agent: str, executable: Path | None = None) -> None:
        self.user_agent = user_agent
        self.executable = executable or CHROMIUM_PATH
        self._playwright: Any = None
        self._browser: Any = None

    async def start(self) -> None:
        if reason := browser_unavailable(self.executable):
            raise FetchError(f"cannot render pages: {reason}")
        from playwright.async_api import Error as PlaywrightError
        from playwright.async_api import async_playwright

        self._playwright = await async_playwright().start()
        try:
            self._browser = await self._playwright.chromium.launch(
                executable_path=str(self.executable),
                headless=True,
                args=list(CHROMIUM_ARGS),
            )
        except PlaywrightError as exc:
            await self._playwright.stop()
            self._playwright = None
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise FetchError(f"cannot start {self.executable}: {first}") from exc

    async def render(self, url: str, *, timeout: float) -> RenderedPage:
        """Load ``url``, let its scripts run, and return the resulting DOM."""
        from playwright.async_api import Error as PlaywrightError
        from playwright.async_api import TimeoutError as PlaywrightTimeout

        if self._browser is None:
            raise RuntimeError("Browser.start() was not called")
        context = await self._browser.new_context(
            user_agent=self.user_agent, service_workers="block", accept_downloads=False
        )
        try:
            page = await context.new_page()
            response = await page.goto(url, wait_until="load", timeout=timeout * 1000)
            with contextlib.suppress(PlaywrightTimeout):
                await page.wait_for_load_state(
                    "networkidle", timeout=min(IDLE_WAIT, timeout) * 1000
                )
            html = await page.content()
            status = response.status if response is not None else 200
            headers = await response.all_headers() if response is not None else {}
            return RenderedPage(url=page.url, status=status, headers=headers, html=html)
        except PlaywrightTimeout as exc:
            raise FetchError(f"{url}: timed out after {timeout:g}s", transient=True) from exc
        except PlaywrightError as exc:
            message = " ".join(str(exc).split()) or type(exc).__name__
            message = message.split(" Call log:")[0]
            permanent = any(code in message for code in _PERMANENT_NET_ERRORS)
            if "ERR_TOO_MANY_REDIRECTS" in message:
                raise FetchError(f"{url}: redirect loop (browser: {message})") from exc
            raise FetchError(f"{url}: browser: {message}", transient=not permanent) from exc
        finally:
            with contextlib.suppress(PlaywrightError):
                await context.close()

    async def close(self) -> None:
        browser, self._browser = self._browser, None
        playwright, self._playwright = self._playwright, None
        try:
            if browser is not None:
                await browser.close()
        finally:
            if playwright is not None:
                await playwright.stop()
