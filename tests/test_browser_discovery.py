"""Which Chromium Playwright drives: ``[browser] executable``, then Debian's ``chromium``, then
the one ``playwright install chromium`` downloaded, in that order. Order is tested with real
executable files in a temporary directory; the launch with the real ``/usr/bin/chromium``."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from monitor.browser import ENABLE_COMMAND, Browser, find_chromium, playwright_chromium
from monitor.config import load_config
from monitor.errors import FetchError

CHROMIUM = Path("/usr/bin/chromium")


def executable(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\nexit 0\n", encoding="utf-8")
    path.chmod(0o755)
    return path


@pytest.fixture
def candidates(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A configured, a system and a Playwright-installed Chromium, all present."""
    return (
        executable(tmp_path / "opt" / "chrome"),
        executable(tmp_path / "usr" / "bin" / "chromium"),
        executable(tmp_path / "ms-playwright" / "chromium-1" / "chrome-linux" / "chrome"),
    )


def test_the_configured_executable_comes_first(candidates: tuple[Path, Path, Path]) -> None:
    configured, system, bundled = candidates
    found = find_chromium(configured, system=system, bundled=lambda: bundled)
    assert found.path == configured
    assert found.source == "[browser] executable"


def test_then_debians_chromium_and_playwright_is_not_even_asked(
    candidates: tuple[Path, Path, Path],
) -> None:
    _, system, _ = candidates
    asked: list[bool] = []

    def bundled() -> Path | None:
        asked.append(True)
        return None

    found = find_chromium(None, system=system, bundled=bundled)
    assert found.path == system
    assert found.source == "Debian's chromium"
    assert asked == []  # starting Playwright's driver is skipped when not needed


def test_then_the_chromium_playwright_installed(candidates: tuple[Path, Path, Path]) -> None:
    _, system, bundled = candidates
    system.unlink()
    found = find_chromium(None, system=system, bundled=lambda: bundled)
    assert found.path == bundled
    assert found.source == "Playwright's own Chromium"


def test_a_missing_configured_executable_is_an_error_not_a_fallback(
    candidates: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    _, system, bundled = candidates
    missing = tmp_path / "nowhere" / "chrome"
    with pytest.raises(FetchError, match=r"\[browser\] executable .*nowhere/chrome does not exist"):
        find_chromium(missing, system=system, bundled=lambda: bundled)
    not_executable = tmp_path / "plain-file"
    not_executable.write_text("", encoding="utf-8")
    with pytest.raises(FetchError, match="is not executable"):
        find_chromium(not_executable, system=system, bundled=lambda: bundled)


def test_none_found_names_the_command_that_enables_rendering(tmp_path: Path) -> None:
    with pytest.raises(FetchError) as info:
        find_chromium(
            None,
            system=tmp_path / "no-chromium",
            bundled=lambda: tmp_path / "ms-playwright" / "not-downloaded" / "chrome",
        )
    assert ENABLE_COMMAND in str(info.value)
    assert "playwright install chromium" in str(info.value)


def test_playwrights_own_path_is_where_playwright_installs_browsers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("playwright")
    monkeypatch.setenv("PLAYWRIGHT_BROWSERS_PATH", str(tmp_path / "browsers"))
    path = playwright_chromium()
    assert path is not None
    assert path.is_relative_to(tmp_path / "browsers")
    with pytest.raises(FetchError):  # nothing was downloaded there, and no other candidate
        find_chromium(None, system=tmp_path / "no-chromium")


def test_the_config_key_is_a_path_relative_to_the_config_file(tmp_path: Path) -> None:
    config = tmp_path / "tosmon.toml"
    config.write_text('[browser]\nexecutable = "bin/chrome"\n', encoding="utf-8")
    assert load_config(config).browser.executable == tmp_path / "bin" / "chrome"
    config.write_text('[browser]\nexecutabel = "x"\n', encoding="utf-8")
    with pytest.raises(Exception, match="did you mean 'executable'"):
        load_config(config)


@pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed")
def test_the_browser_launches_debians_chromium_when_nothing_is_configured() -> None:
    pytest.importorskip("playwright")

    async def start_and_close() -> Path | None:
        browser = Browser(user_agent="tos-monitor test")
        await browser.start()
        try:
            return browser.executable
        finally:
            await browser.close()

    assert asyncio.run(start_and_close()) == CHROMIUM


def test_the_browser_refuses_to_start_with_a_missing_configured_path(tmp_path: Path) -> None:
    pytest.importorskip("playwright")

    async def start() -> None:
        await Browser(user_agent="t", executable=tmp_path / "chrome").start()

    with pytest.raises(FetchError, match=r"cannot render pages: .*chrome does not exist"):
        asyncio.run(start())
