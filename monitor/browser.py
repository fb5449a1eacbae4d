"""Render pages with Chromium through Playwright (optional: ``render = true`` documents).

Only ``monitor.fetcher`` (and ``tosmon doctor``, the daemon's start-up notice) import this module,
and only when a document asks for rendering, so tos-monitor works without Playwright. It never
downloads a browser itself. The Chromium it drives is, in this order (:func:`find_chromium`):

1. ``[browser] executable`` from the config (an error if that file is missing: no silent fallback);
2. Debian's ``chromium`` package, ``/usr/bin/chromium``;
3. a Chromium Playwright installed itself (``playwright install chromium``), at Playwright's own
   ``chromium.executable_path``.

To enable it::

    pip install 'tos-monitor[browser]' && apt install chromium

Playwright errors are translated here into ``FetchError`` (one line, naming the URL).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from monitor.errors import FetchError

__all__ = [
    "CHROMIUM_ARGS",
    "CHROMIUM_PATH",
    "ENABLE_COMMAND",
    "ENABLE_HINT",
    "Browser",
    "Chromium",
    "RenderedPage",
    "find_chromium",
]

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
ENABLE_COMMAND = "pip install 'tos-monitor[browser]' && apt install chromium"
ENABLE_HINT = (
    f"install the browser extra and a Chromium: {ENABLE_COMMAND} "
    "(or `playwright install chromium`, or set [browser] executable)"
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


@dataclass(frozen=True, slots=True)
class Chromium:
    """The Chromium executable found, and where it came from (for messages)."""

    path: Path
    source: str  # "[browser] executable", "Debian's chromium", "Playwright's own Chromium"


def is_executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def playwright_chromium() -> Path | None:
    """Where Playwright keeps a Chromium it installed itself (``playwright install chromium``).

    Asks Playwright (``chromium.executable_path``), which starts its driver for a moment; None when
    Playwright is missing or cannot say. Call it outside a running event loop.
    """
    try:
        from playwright.sync_api import sync_playwright

        with sync_playwright() as playwright:
            return Path(playwright.chromium.executable_path)
    except Exception:  # not installed, no driver, inside an event loop: no such browser
        return None


def find_chromium(
    configured: Path | None = None,
    *,
    system: Path | None = None,
    bundled: Callable[[], Path | None] = playwright_chromium,
) -> Chromium:
    """The Chromium to drive, in the order of the module docstring.

    Raises FetchError naming what to do when none is usable (or the configured one is missing).
    ``system`` defaults to :data:`CHROMIUM_PATH`; ``bundled`` is only asked when the first two are
    not there.
    """
    system = system or CHROMIUM_PATH
    if configured is not None:
        if is_executable(configured):
            return Chromium(configured, "[browser] executable")
        state = "is not executable" if configured.exists() else "does not exist"
        raise FetchError(
            f"[browser] executable {configured} {state}: fix the path, or remove the key to use "
            f"{system} or Playwright's own Chromium"
        )
    if is_executable(system):
        return Chromium(system, "Debian's chromium")
    own = bundled()
    if own is not None and is_executable(own):
        return Chromium(own, "Playwright's own Chromium")
    raise FetchError(f"no Chromium found ({system} is missing); {ENABLE_HINT}")


def browser_unavailable(configured: Path | None = None) -> str | None:
    """Why rendering cannot work here (None when Playwright and a Chromium are both present)."""
    try:
        import playwright.async_api  # noqa: F401
    except ImportError:
        return f"Playwright is not installed; {ENABLE_HINT}"
    try:
        find_chromium(configured)
    except FetchError as exc:
        return str(exc)
    return None


class Browser:
    """One headless Chromium for a check cycle; a fresh context (no cookies) per page."""

    def __init__(
        self,
        *,
        user_agent: str,
        executable: Path | None = None,
        system: Path | None = None,
    ) -> None:
        self.user_agent = user_agent
        self.configured = executable  # [browser] executable; None: look for one
        self.system = system or CHROMIUM_PATH
        self.executable: Path | None = None  # the one started
        self._playwright: Any = None
        self._browser: Any = None

    async def start(self) -> None:
        try:
            import playwright.async_api  # noqa: F401
        except ImportError:
            raise FetchError(
                f"cannot render pages: Playwright is not installed; {ENABLE_HINT}"
            ) from None
        from playwright.async_api import Error as PlaywrightError
        from playwright.async_api import async_playwright

        self._playwright = await async_playwright().start()
        bundled = self._playwright.chromium.executable_path
        try:
            found = find_chromium(
                self.configured, system=self.system, bundled=lambda: Path(bundled)
            )
        except FetchError as exc:
            await self._playwright.stop()
            self._playwright = None
            raise FetchError(f"cannot render pages: {exc}") from None
        self.executable = found.path
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
