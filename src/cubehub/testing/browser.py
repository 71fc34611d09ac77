"""Headless Chromium for browser tests: the system's browser and driver (Debian packages
``chromium`` and ``chromium-driver``), never a downloaded one, driven with Selenium.

.. code-block:: python

    with headless_chromium(tmp_path / "profile") as browser:
        browser.get(url)
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.remote.webdriver import WebDriver

__all__ = ["CHROMEDRIVER", "CHROMIUM", "FLAGS", "headless_chromium"]

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
#: Headless, no sandbox (root in containers), and nothing that reaches the network on its own.
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


@contextmanager
def headless_chromium(
    profile: Path, *, window: tuple[int, int] = (1280, 900), timeout_s: float = 60.0
) -> Iterator[WebDriver]:
    """Start the system Chromium headless with :data:`FLAGS` and a fresh profile folder.

    Args:
        profile: the ``--user-data-dir``; must not exist yet (a fresh profile per browser).
        window: window size in CSS pixels (device pixel ratio 1).
        timeout_s: page-load and script timeout.

    Raises:
        FileNotFoundError: chromium or chromedriver is not installed (the message says how).
    """
    for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not path.is_file():
            raise FileNotFoundError(
                f"{path} is missing; install it with `apt-get install -y {package}`"
            )
    if profile.exists():
        raise FileExistsError(f"{profile} exists; give a new folder for a fresh profile")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    options.add_argument(f"--window-size={window[0]},{window[1]}")
    options.add_argument("--force-device-scale-factor=1")
    service = webdriver.ChromeService(executable_path=str(CHROMEDRIVER))
    browser = webdriver.Chrome(options=options, service=service)
    try:
        browser.set_page_load_timeout(timeout_s)
        browser.set_script_timeout(timeout_s)
        yield browser
    finally:
        browser.quit()
