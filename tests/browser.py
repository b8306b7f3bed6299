"""Headless Chromium for the browser tests (Debian's chromium + chromedriver, driven by Selenium).

Without them a browser test skips, or fails when SFTFLOW_REQUIRE_BROWSER=1 (CI installs them:
`apt-get install -y chromium chromium-driver`). Screenshots go to $SFTFLOW_ARTIFACTS, default
tests/artifacts/.
"""

import os
import shutil
from pathlib import Path

import pytest

ARTIFACTS = Path(os.environ.get("SFTFLOW_ARTIFACTS", Path(__file__).parent / "artifacts"))


def browser(width: int = 1300, height: int = 1100):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    if not (chromium and driver_path):
        if os.environ.get("SFTFLOW_REQUIRE_BROWSER"):
            pytest.fail("chromium and chromedriver are required here (apt-get install chromium chromium-driver)")
        pytest.skip("needs Debian's chromium + chromium-driver")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        if os.environ.get("SFTFLOW_REQUIRE_BROWSER"):
            pytest.fail("selenium is required here (pip install -e '.[dev]')")
        pytest.skip("needs selenium")

    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", f"--window-size={width},{height}"):
        opts.add_argument(arg)
    return webdriver.Chrome(service=Service(driver_path), options=opts)


def screenshot(driver, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / name
    driver.save_screenshot(str(path))
    return path


def rect(driver, element) -> dict:
    """Where an element is drawn in the viewport (CSS pixels: top, left, bottom, right, width,
    height), and the viewport's own size (`vw`, `vh`): what a reader sees without scrolling."""
    return driver.execute_script(
        "const r = arguments[0].getBoundingClientRect();"
        "return {top: r.top, left: r.left, bottom: r.bottom, right: r.right, width: r.width, height: r.height,"
        " vw: window.innerWidth, vh: window.innerHeight};", element)
