"""Headless Chromium for page tests (Debian's ``chromium`` and ``chromium-driver`` packages).

Usage::

    from tests.browser import open_browser

    def test_page(tmp_path):
        with open_browser() as browser:          # skips the test when no browser is installed
            browser.open("http://127.0.0.1:8000/", wait_for="#score")
            browser.screenshot(tmp_path / "page.png")
            assert browser.broken_images() == []
            assert browser.console_errors() == []

``open_browser`` skips (``pytest.skip``) with the reason when selenium, chromium or chromedriver
is missing; a browser that is installed but fails to start is a test failure, not a skip.
Chromium asks every page for ``/favicon.ico`` and logs a 404 as a console error: a page under
test declares its icon (``<link rel="icon" href="data:,">`` for none).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
INSTALL_HINT = "apt-get install chromium chromium-driver; pip install selenium"
FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)
# An image is loaded when it has pixels: an MJPEG <img> never "completes", but has a width.
_BROKEN_IMAGES_JS = (
    "return Array.from(document.images)"
    ".filter(img => !(img.naturalWidth > 0)).map(img => img.currentSrc || img.src);"
)


def _find(default: str, name: str) -> str | None:
    return default if os.access(default, os.X_OK) else shutil.which(name)


def missing_reason() -> str | None:
    """Why no headless browser can run here, or None when selenium, chromium and chromedriver are
    all installed."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return f"selenium is not installed ({INSTALL_HINT})"
    if _find(CHROMIUM, "chromium") is None:
        return f"no chromium at {CHROMIUM} or on PATH ({INSTALL_HINT})"
    if _find(CHROMEDRIVER, "chromedriver") is None:
        return f"no chromedriver at {CHROMEDRIVER} or on PATH ({INSTALL_HINT})"
    return None


class Browser:
    """A started headless Chromium; ``driver`` is the selenium WebDriver for anything else."""

    def __init__(self, driver: Any) -> None:
        self.driver = driver
        self._console: list[dict] = []

    def open(self, url: str, wait_for: str | None = None, timeout: float = 15.0) -> None:
        """Load ``url``; with ``wait_for``, wait until that CSS selector matches an element."""
        self.driver.get(url)
        if wait_for is not None:
            self.wait_until(
                lambda: bool(self.driver.find_elements("css selector", wait_for)),
                timeout,
                f"no element {wait_for!r} on {url}",
            )

    def run(self, script: str, *args: Any) -> Any:
        """``driver.execute_script``: the script's ``return`` value."""
        return self.driver.execute_script(script, *args)

    def wait_until(
        self, condition: Callable[[], Any], timeout: float = 15.0, what: str = "condition"
    ) -> Any:
        """Poll ``condition`` every 0.1 s until it returns something truthy; return that.

        Raises:
            AssertionError: ``what`` did not happen within ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        while True:
            value = condition()
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
            time.sleep(0.1)

    def screenshot(self, path: Path) -> Path:
        """PNG of the viewport, written to ``path`` (parents created)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        if not self.driver.save_screenshot(str(path)):
            raise AssertionError(f"chromium could not write the screenshot {path}")
        return path

    def screenshot_png(self) -> bytes:
        """PNG bytes of the viewport."""
        return self.driver.get_screenshot_as_png()

    def element_png(self, selector: str) -> bytes:
        """PNG bytes of the first element matching the CSS ``selector``."""
        return self.driver.find_element("css selector", selector).screenshot_as_png

    def broken_images(self) -> list[str]:
        """Sources of the page's ``<img>`` elements that have no pixels (failed or not loaded)."""
        return list(self.run(_BROKEN_IMAGES_JS))

    def console_messages(self) -> list[dict]:
        """Every console entry since the browser started (``level``, ``message``, ``timestamp``)."""
        self._console.extend(self.driver.get_log("browser"))
        return list(self._console)

    def console_errors(self) -> list[str]:
        """Messages of SEVERE console entries: script errors and failed loads (404s included)."""
        return [e["message"] for e in self.console_messages() if e.get("level") == "SEVERE"]


@contextlib.contextmanager
def open_browser(width: int = 1280, height: int = 900) -> Iterator[Browser]:
    """A fresh headless Chromium (own temporary profile) at ``width × height``; quit on exit.

    Skips the calling test with the reason when no browser is installed (see
    ``missing_reason``).
    """
    reason = missing_reason()
    if reason is not None:
        pytest.skip(reason)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    with tempfile.TemporaryDirectory(prefix="glcf-chromium-") as profile:
        options = webdriver.ChromeOptions()
        options.binary_location = _find(CHROMIUM, "chromium")
        for flag in FLAGS:
            options.add_argument(flag)
        options.add_argument(f"--user-data-dir={profile}")
        options.add_argument(f"--window-size={width},{height}")
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        service = Service(_find(CHROMEDRIVER, "chromedriver"))
        driver = webdriver.Chrome(service=service, options=options)
        try:
            yield Browser(driver)
        finally:
            driver.quit()
