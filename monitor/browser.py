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

Chromium runs inside its own sandbox whenever it can: as an ordinary user with unprivileged user
namespaces (the default on Debian). As root it cannot (Chromium refuses to sandbox itself as
root), nor where user namespaces are disabled or blocked (some containers); only then is it
started with ``--no-sandbox``, and the reason is logged once (``sandbox_problem``).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from monitor.errors import FetchError
from monitor.netpolicy import Resolver, is_private_address, system_resolver

__all__ = [
    "CHROMIUM_ARGS",
    "CHROMIUM_PATH",
    "ENABLE_COMMAND",
    "ENABLE_HINT",
    "Browser",
    "Chromium",
    "RenderedPage",
    "browser_unavailable",
    "find_chromium",
    "sandbox_problem",
]

log = logging.getLogger(__name__)

CHROMIUM_PATH = Path("/usr/bin/chromium")
CHROMIUM_ARGS = (
    "--headless",
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
NO_SANDBOX = "--no-sandbox"
SANDBOX_HINT = "run tos-monitor as an ordinary user with user namespaces enabled to sandbox it"
PROC_SYS = Path("/proc/sys")
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


def sandbox_problem(*, euid: int | None = None, proc_sys: Path = PROC_SYS) -> str | None:
    """Why Chromium cannot run in its sandbox here, or None when it should be able to.

    Chromium sandboxes itself with unprivileged user namespaces; it refuses to as root, and
    cannot where the kernel disables them (``kernel.unprivileged_userns_clone = 0`` on older
    Debian, ``user.max_user_namespaces = 0``). Other obstacles (a container's seccomp filter)
    only show when Chromium starts: ``Browser.start`` then falls back and says so.
    """
    euid = os.geteuid() if euid is None else euid
    if euid == 0:
        return "tos-monitor runs as root, and Chromium cannot sandbox itself as root"
    for setting, name in (
        ("kernel/unprivileged_userns_clone", "kernel.unprivileged_userns_clone"),
        ("user/max_user_namespaces", "user.max_user_namespaces"),
    ):
        try:
            value = (proc_sys / setting).read_text(encoding="ascii").strip()
        except OSError:
            continue
        if value == "0":
            return f"unprivileged user namespaces are disabled ({name} = 0)"
    return None


_explained: set[str] = set()


def _explain_no_sandbox(reason: str) -> None:
    """Log once per process (per reason) why Chromium runs without its sandbox."""
    if reason not in _explained:
        _explained.add(reason)
        log.warning("Chromium runs without its sandbox: %s; %s", reason, SANDBOX_HINT)


def _sandbox_failure(message: str) -> bool:
    lowered = message.lower()
    return "sandbox" in lowered or "namespace" in lowered


class Browser:
    """One headless Chromium for a check cycle; a fresh context (no cookies) per page."""

    def __init__(
        self,
        *,
        user_agent: str,
        executable: Path | None = None,
        system: Path | None = None,
        extra_args: Sequence[str] = (),
    ) -> None:
        self.user_agent = user_agent
        self.configured = executable  # [browser] executable; None: look for one
        self.system = system or CHROMIUM_PATH
        self.executable: Path | None = None  # the one started
        self.extra_args = tuple(extra_args)
        self._playwright: Any = None
        self._browser: Any = None
        self.sandboxed: bool | None = None  # known once started

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
        problem = sandbox_problem()
        try:
            try:
                self._browser = await self._launch(sandboxed=problem is None)
            except PlaywrightError as exc:
                if problem is not None or not _sandbox_failure(str(exc)):
                    raise
                # the kernel said yes, but Chromium could not sandbox itself (a container's
                # seccomp filter, an AppArmor rule...): the fallback it must take
                problem = f"it could not start sandboxed ({_first_line(exc)})"
                self._browser = await self._launch(sandboxed=False)
        except PlaywrightError as exc:
            await self._playwright.stop()
            self._playwright = None
            raise FetchError(f"cannot start {self.executable}: {_first_line(exc)}") from exc
        self.sandboxed = problem is None
        if problem is not None:
            _explain_no_sandbox(problem)

    async def _launch(self, *, sandboxed: bool) -> Any:
        args = [*CHROMIUM_ARGS, *self.extra_args]
        if not sandboxed:
            args.append(NO_SANDBOX)
        return await self._playwright.chromium.launch(
            executable_path=str(self.executable),
            headless=True,
            args=args,
            chromium_sandbox=sandboxed,
        )

    async def render(
        self,
        url: str,
        *,
        timeout: float,
        private_ok: bool = True,
        resolver: Resolver | None = None,
        refusal_hint: str = "",
    ) -> RenderedPage:
        """Load ``url``, let its scripts run, and return the resulting DOM.

        With ``private_ok`` False (a public document), a request of the page to a private
        address (see monitor.netpolicy) is aborted, and a redirect of the page itself to one
        fails the render: Chromium follows redirects without asking, so the chain is judged
        once loaded, and nothing from it is kept.
        """
        from playwright.async_api import Error as PlaywrightError
        from playwright.async_api import TimeoutError as PlaywrightTimeout

        if self._browser is None:
            raise RuntimeError("Browser.start() was not called")
        resolve = resolver or system_resolver
        refused: list[str] = []
        context = await self._browser.new_context(
            user_agent=self.user_agent, service_workers="block", accept_downloads=False
        )

        async def private_host(address: str) -> str | None:
            parts = urlsplit(address)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                return None
            port = parts.port or (443 if parts.scheme == "https" else 80)
            try:
                addresses = await resolve(parts.hostname, port)
            except OSError:
                return None  # Chromium will fail to resolve it too
            private = next((a for a in addresses if is_private_address(a)), None)
            if private is None:
                return None
            return parts.hostname if parts.hostname == private else f"{parts.hostname} ({private})"

        async def guard(route: Any) -> None:
            if where := await private_host(route.request.url):
                refused.append(f"{route.request.url}: {where} is a private address")
                await route.abort("blockedbyclient")
            else:
                await route.continue_()

        def refusal(what: str) -> FetchError:
            return FetchError(f"{url}: refused {what}; {refusal_hint}".rstrip("; "))

        try:
            if not private_ok:
                await context.route("**/*", guard)
            page = await context.new_page()
            try:
                response = await page.goto(url, wait_until="load", timeout=timeout * 1000)
            except PlaywrightError:
                if refused and refused[0].startswith(url):
                    raise refusal(f"a request to {refused[0]}") from None
                raise
            with contextlib.suppress(PlaywrightTimeout):
                await page.wait_for_load_state(
                    "networkidle", timeout=min(IDLE_WAIT, timeout) * 1000
                )
            if not private_ok:
                hops = []
                request = response.request if response is not None else None
                while request is not None:
                    hops.append(request.url)
                    request = request.redirected_from
                for hop in [*reversed(hops[:-1]), page.url]:
                    if where := await private_host(hop):
                        raise refusal(f"a redirect to {hop}: {where} is a private address")
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


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
