"""A real JupyterHub on this machine, used the way a scientist uses the platform, in a real browser.

JupyterHub 5.5 (the hub image's pins, hubenv.py) with configurable-http-proxy (npm) and a
local process spawner starts the project's own single-user server (this environment, which is
the image's) with the image's jupyter_server_config.py and the Dask configuration the chart
renders for notebooks. Headless Chromium (Debian's chromium and chromium-driver, driven by
Selenium) logs in, opens notebooks/01-quickstart.ipynb in JupyterLab, runs every cell but the
clean-up one, opens the Dask dashboard at the link the notebook printed (through
/user/<name>/proxy/...) and checks it renders, then runs the clean-up cell; the saved
notebook must hold no error. Screenshots go to test-artifacts/browser/ in the checkout.

.ci/run installs chromium, chromium-driver and configurable-http-proxy when they are missing.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from chart_helpers import ROOT, Manifest, named
from hubenv import hub_python
from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.wait import WebDriverWait

from cubehub.demo.servers import free_port

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
NOTEBOOK = ROOT / "notebooks" / "01-quickstart.ipynb"
ARTIFACTS = ROOT / "test-artifacts" / "browser"
USER = "alice"
#: Seconds for the hub to answer, the server to spawn, and the notebook's cells to run.
HUB_TIMEOUT, SPAWN_TIMEOUT, RUN_TIMEOUT = 60, 180, 600
#: The network is closed: Chromium must not try to reach anything but the hub.
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--window-size=1600,1000",
)  # fmt: skip

LAB_SETTINGS = {
    "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},
    "@jupyterlab/apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
}
HUB_CONFIG = """
c = get_config()  # noqa: F821
c.JupyterHub.bind_url = "http://127.0.0.1:{port}"
c.JupyterHub.hub_bind_url = "http://127.0.0.1:{hub_port}"
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{api_port}"
c.ConfigurableHTTPProxy.command = [{chp!r}]
c.JupyterHub.db_url = "sqlite:///{root}/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = "{root}/cookie_secret"
c.JupyterHub.pid_file = "{root}/jupyterhub.pid"
c.JupyterHub.authenticator_class = "shared-password"
c.SharedPasswordAuthenticator.user_password = {password!r}
c.Authenticator.allowed_users = {{{user!r}}}
c.JupyterHub.spawner_class = "simple"
c.Spawner.cmd = [{singleuser!r}]
c.Spawner.args = {args!r}
c.Spawner.default_url = "/lab"
c.Spawner.start_timeout = {spawn_timeout}
c.Spawner.http_timeout = {spawn_timeout}
c.Spawner.environment = {environment!r}
c.SimpleLocalProcessSpawner.home_dir_template = "{root}/home/{{username}}"
"""


def _require(path: Path | None, what: str) -> Path:
    if path is None or not path.exists():
        pytest.fail(
            f"{what} is not installed: run .ci/run once (it installs it), or install it yourself"
        )
    return path


def _wait_for(url: str, timeout: float, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"JupyterHub exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=5):
                return
        except OSError:
            time.sleep(0.5)
    pytest.fail(
        f"JupyterHub did not answer at {url} within {timeout} s:\n{log.read_text()[-3000:]}"
    )


@pytest.fixture
def hub(lint_manifests: list[Manifest], tmp_path: Path) -> Iterator[dict[str, Any]]:
    """A running JupyterHub whose user server gets the notebook pod's Dask and server config."""
    chp = _require(
        Path(found) if (found := shutil.which("configurable-http-proxy")) else None,
        "configurable-http-proxy (npm)",
    )
    root = tmp_path
    home = root / "home" / USER
    home.mkdir(parents=True)
    shutil.copy(NOTEBOOK, home / NOTEBOOK.name)
    # What the notebook pod mounts: the chart's Dask files, the image's server config.
    settings = json.loads(
        named(lint_manifests, "ConfigMap", "cubehub-hub")["data"]["hub-settings.json"]
    )
    dask_files = named(settings["namespaceObjects"], "ConfigMap", "cubehub-dask-config")["data"]
    (root / "etc" / "dask").mkdir(parents=True)
    for name in ("cubehub.yaml", "cubehub-notebook.yaml"):
        (root / "etc" / "dask" / name).write_text(dask_files[name])
    (root / "etc" / "jupyter").mkdir(parents=True)
    shutil.copy(ROOT / "docker" / "jupyter_server_config.py", root / "etc" / "jupyter")
    # JupyterLab user settings: every cell rendered (not only those in view), and no news
    # fetched from the internet.
    settings_dir = root / "lab-settings"
    for extension, setting in LAB_SETTINGS.items():
        (settings_dir / extension).parent.mkdir(parents=True, exist_ok=True)
        (settings_dir / extension).with_suffix(".jupyterlab-settings").write_text(
            json.dumps(setting)
        )
    environment = {
        "JUPYTERLAB_SETTINGS_DIR": str(settings_dir),
        "DASK_CONFIG": str(root / "etc" / "dask"),
        "JUPYTER_CONFIG_PATH": str(root / "etc" / "jupyter"),
    }
    password = secrets.token_urlsafe(16)
    port = free_port()
    config = HUB_CONFIG.format(
        port=port, hub_port=free_port(), api_port=free_port(), chp=str(chp), root=root,
        password=password, user=USER, singleuser=str(Path(sys.executable).parent / "jupyterhub-singleuser"),
        # The image runs as uid 1000; a root CI machine needs the server's explicit consent.
        args=["--allow-root"] if os.geteuid() == 0 else [],
        spawn_timeout=SPAWN_TIMEOUT, environment=environment,
    )  # fmt: skip
    (root / "jupyterhub_config.py").write_text(config)
    log = root / "jupyterhub.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(hub_python()), "-m", "jupyterhub", "-f", str(root / "jupyterhub_config.py")],
            cwd=root,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={k: v for k, v in os.environ.items() if k in ("PATH", "PYTHONPATH", "LANG")},
        )
    try:
        _wait_for(f"http://127.0.0.1:{port}/hub/health", HUB_TIMEOUT, process, log)
        yield {"url": f"http://127.0.0.1:{port}", "password": password, "home": home, "log": log}
    finally:
        os.killpg(process.pid, signal.SIGTERM)  # the hub stops the user server and the proxy
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[WebDriver]:
    options = webdriver.ChromeOptions()
    options.binary_location = str(_require(CHROMIUM, "chromium (Debian package)"))
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path / 'chromium-profile'}")
    service = webdriver.ChromeService(
        executable_path=str(_require(CHROMEDRIVER, "chromium-driver (Debian package)"))
    )
    driver = webdriver.Chrome(options=options, service=service)
    try:
        yield driver
    finally:
        driver.quit()


def _shot(driver: WebDriver, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    driver.save_screenshot(str(path))
    return path


def _command(driver: WebDriver, menu: str, command: str) -> None:
    """Run a JupyterLab command from its main menu."""
    driver.find_element(
        By.XPATH, f"//div[contains(@class, 'lm-MenuBar-itemLabel') and text()='{menu}']"
    ).click()
    item = WebDriverWait(driver, 10).until(
        expected_conditions.element_to_be_clickable(
            (By.CSS_SELECTOR, f"li.lm-Menu-item[data-command='{command}']")
        )
    )
    item.click()


def _prompts(driver: WebDriver) -> list[str]:
    return [
        p.text
        for p in driver.find_elements(
            By.CSS_SELECTOR, ".jp-NotebookPanel .jp-CodeCell .jp-InputPrompt"
        )
    ]


def _select_last_cell(driver: WebDriver) -> None:
    cell = driver.find_elements(By.CSS_SELECTOR, ".jp-NotebookPanel .jp-CodeCell")[-1]
    cell.find_element(By.CSS_SELECTOR, ".jp-InputPrompt").click()
    WebDriverWait(driver, 10).until(
        lambda d: "jp-mod-active" in (cell.get_attribute("class") or "")
    )


def _wait_until_run(driver: WebDriver, cells: int, timeout: float) -> None:
    """Until the first ``cells`` code cells show an execution count (not [*] or [ ])."""
    WebDriverWait(driver, timeout, poll_frequency=1).until(
        lambda d: all(re.fullmatch(r"\[\d+\]:", p.strip()) for p in _prompts(d)[:cells])
    )


# Seconds for the whole test: the spawn and the notebook's run take most of it (about 6 minutes
# on a busy 2-core machine).
@pytest.mark.timeout(SPAWN_TIMEOUT + RUN_TIMEOUT + 300)
def test_a_scientist_runs_the_quickstart_and_opens_the_dashboard(
    hub: dict[str, Any], browser: WebDriver
) -> None:
    started = time.perf_counter()
    url = hub["url"]
    try:
        browser.get(f"{url}/hub/login")
        browser.find_element(By.ID, "username_input").send_keys(USER)
        browser.find_element(By.ID, "password_input").send_keys(hub["password"])
        browser.find_element(By.ID, "login_submit").click()
        # The hub spawns the server and sends the browser on to JupyterLab.
        WebDriverWait(browser, SPAWN_TIMEOUT).until(lambda d: "/user/alice/lab" in d.current_url)
        browser.get(f"{url}/user/{USER}/lab/tree/{NOTEBOOK.name}")
        WebDriverWait(browser, 120).until(
            expected_conditions.presence_of_element_located(
                (By.CSS_SELECTOR, ".jp-NotebookPanel .jp-CodeCell")
            )
        )
        WebDriverWait(browser, 120).until(
            lambda d: (
                "Idle" in d.find_element(By.CSS_SELECTOR, ".jp-NotebookPanel-toolbar").text
                or d.find_elements(
                    By.CSS_SELECTOR, ".jp-NotebookPanel-toolbar [data-status='idle']"
                )
            )
        )
        _shot(browser, "1-notebook-open")
        code_cells = len(_prompts(browser))
        assert code_cells == sum(
            c["cell_type"] == "code" for c in json.loads(NOTEBOOK.read_text())["cells"]
        )
        # Everything but the last cell, which stops the cluster whose dashboard comes next.
        _select_last_cell(browser)
        _command(browser, "Run", "notebook:run-all-above")
        _wait_until_run(browser, code_cells - 1, RUN_TIMEOUT)
        _shot(browser, "2-notebook-run")
        text = browser.find_element(By.CSS_SELECTOR, ".jp-NotebookPanel").text
        found = re.search(r"Dask dashboard: (\S+)", text)
        assert found, "the notebook printed no dashboard link"
        link = found.group(1)
        assert re.fullmatch(rf"/user/{USER}/proxy/127\.0\.0\.1:\d+/status", link), link

        notebook_window = browser.current_window_handle
        browser.switch_to.new_window("tab")
        browser.get(url + link)
        WebDriverWait(browser, 60).until(lambda d: "Dask" in d.title)
        WebDriverWait(browser, 60).until(
            lambda d: d.find_elements(By.CSS_SELECTOR, "canvas, .bk-Canvas, [class*='bk-']")
        )
        time.sleep(2)  # let Bokeh draw the plots before the picture
        _shot(browser, "3-dask-dashboard")
        assert browser.current_url == url + link  # served through the user's server proxy
        browser.close()
        browser.switch_to.window(notebook_window)

        _select_last_cell(browser)
        _command(browser, "Run", "notebook:run-cell")  # the clean-up cell
        _wait_until_run(browser, code_cells, RUN_TIMEOUT)
        _command(browser, "File", "docmanager:save")
        time.sleep(2)
        _shot(browser, "4-notebook-done")
    except (WebDriverException, AssertionError):
        _shot(browser, "failure")
        print(hub["log"].read_text()[-5000:])
        raise
    saved = json.loads((hub["home"] / NOTEBOOK.name).read_text())
    code = [c for c in saved["cells"] if c["cell_type"] == "code"]
    errors = [o for c in code for o in c["outputs"] if o["output_type"] == "error"]
    assert errors == [], errors
    assert [i for i, c in enumerate(code) if not c["execution_count"]] == [], (
        "cells that did not run"
    )
    print(f"browser test: {time.perf_counter() - started:.0f} s, screenshots in {ARTIFACTS}")
