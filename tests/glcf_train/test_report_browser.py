"""The report in a real browser: headless Chromium opens index.html from disk (no server, no
network), every figure loads, nothing logs an error, and the page is not blank."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from tests.browser import open_browser


def test_report_renders_in_chromium(reported_run, tmp_path: Path) -> None:
    _, result = reported_run
    with open_browser(1280, 1000) as browser:
        browser.open(result.report.as_uri(), wait_for="#fig-roc")
        browser.wait_until(lambda: browser.run("return document.readyState") == "complete")
        assert browser.broken_images() == []
        assert browser.run("return document.images.length") >= 5  # ROC, histograms, 3 galleries
        assert browser.console_errors() == []
        shot = browser.screenshot(tmp_path / "report.png")
        section = np.frombuffer(browser.element_png("#fig-roc"), np.uint8)
    page = cv2.imread(str(shot))
    assert page.shape[1] >= 1200 and page.std() > 10, "the page looks blank"
    roc = cv2.imdecode(section, cv2.IMREAD_COLOR)
    assert roc is not None and roc.shape[0] > 200 and (roc < 128).any(), "the ROC figure is empty"
