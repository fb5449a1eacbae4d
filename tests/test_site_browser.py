"""The web history in a real browser (Playwright driving Debian's Chromium): each kind of page
opens, its links can be followed by clicking, nothing is blocked by the Content-Security-Policy,
and nothing overflows sideways on a phone. Screenshots go to $TOSMON_SCREENSHOTS when set."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from monitor.browser import CHROMIUM_ARGS, CHROMIUM_PATH, browser_unavailable
from monitor.models import Change
from monitor.web import WebServer
from tests.test_site import sessions, site  # noqa: F401  (module-scoped fixtures)

pytestmark = pytest.mark.skipif(
    browser_unavailable() is not None, reason=str(browser_unavailable())
)

WIDTHS = {"desktop": (1280, 900), "phone": (390, 844)}


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM_PATH), headless=True, args=list(CHROMIUM_ARGS)
        )
        yield chromium
        chromium.close()


def shots_dir(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("TOSMON_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def first_change(sessions: sessionmaker[Session]) -> int:  # noqa: F811
    with sessions() as session:
        return session.scalars(
            select(Change.id)
            .where(Change.document_id == "instagram/terms-of-service")
            .order_by(Change.id)
        ).first()  # type: ignore[return-value]


@pytest.mark.parametrize("width", sorted(WIDTHS))
def test_each_page_opens_clicks_through_and_fits_the_screen(
    browser: object,
    site: WebServer,  # noqa: F811
    sessions: sessionmaker[Session],  # noqa: F811
    tmp_path: Path,
    width: str,
) -> None:
    viewport_width, viewport_height = WIDTHS[width]
    context = browser.new_context(  # type: ignore[attr-defined]
        viewport={"width": viewport_width, "height": viewport_height}
    )
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    folder = shots_dir(tmp_path)

    def look(name: str) -> None:
        assert page.evaluate("document.documentElement.scrollWidth") <= viewport_width, name
        page.screenshot(path=str(folder / f"{name}-{width}.png"), full_page=True)

    page.goto(site.url + "/")
    assert page.locator("h1").inner_text() == "Platforms"
    look("home")

    page.get_by_role("link", name="Instagram", exact=True).click()
    assert page.locator("h1").inner_text() == "Instagram"
    look("service")

    page.get_by_role("link", name="Terms of Service").first.click()
    assert page.locator("h1").inner_text() == "Instagram Terms of Service"
    page.get_by_role("link", name="cosmetic and above").click()
    assert "min_severity=cosmetic" in page.url
    look("document")

    page.goto(f"{site.url}/changes/{first_change(sessions)}")
    assert page.locator(".side.before").count() >= 1
    # the stylesheet applied (it is the only one the policy lets in): sides are laid out
    display = page.evaluate("getComputedStyle(document.querySelector('.sides')).display")
    assert display == "grid"
    look("change")
    page.get_by_role("link", name="all changes of this document").click()
    assert page.locator("h1").inner_text() == "Instagram Terms of Service"

    page.get_by_role("link", name="Current text").click()
    assert "in force on" in page.locator("h1").inner_text()
    look("version")

    page.get_by_role("link", name="Where platforms stand").click()
    assert page.locator("blockquote").count() >= 3
    look("stance")

    context.close()
    assert problems == []
