"""The portal in a real browser for the integration tests: Debian's headless chromium through
chromedriver (python3-selenium), logged in to a daemon under test. Used by test_ui.py (the
session daemon, services off) and test_services.py (NATS and Prometheus supervised).

Screenshots go to build/ui-screenshots/ (relative to the repository)."""

import contextlib
import os
import shutil
import tempfile
from pathlib import Path

import pytest

# Debian's python3-selenium, chromium and chromium-driver (scripts/deps.sh test): missing
# ones fail the tests rather than skip them, so CI cannot pass without a browser.
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
SHOTS = Path(__file__).resolve().parents[2] / "build" / "ui-screenshots"
WAIT = 30  # seconds for anything the page shows after an API call


class Portal:
    """One headless chromium logged in to the daemon: every request carries the daemon's
    Basic credentials (CDP Network.setExtraHTTPHeaders), as the browser's own login would."""

    def __init__(self, daemon, profile_dir, send_credentials=True):
        self.daemon = daemon
        self.base = f"http://127.0.0.1:{daemon.port}"
        opts = webdriver.ChromeOptions()
        opts.binary_location = CHROMIUM
        for arg in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                    "--window-size=1280,900", f"--user-data-dir={profile_dir}",
                    "--no-first-run", "--disable-extensions"]:
            opts.add_argument(arg)
        opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        self.service = Service(executable_path=CHROMEDRIVER)
        self.driver = None
        try:
            self.driver = webdriver.Chrome(service=self.service, options=opts)
            if send_credentials:
                self.driver.execute_cdp_cmd("Network.enable", {})
                self.driver.execute_cdp_cmd("Network.setExtraHTTPHeaders",
                                            {"headers": {"Authorization": daemon.auth_header()}})
        except BaseException:
            self.close()
            raise

    def close(self):
        """Quits the browser (chromedriver ends the chromium it started), then stops the
        chromedriver this Service started, through its own process handle."""
        if self.driver is not None:
            try:
                self.driver.quit()
            finally:
                self.driver = None
        self.service.stop()

    def go(self, route):
        """Opens #/ROUTE and waits until the page's code ran (its heading is in <main>).

        Chromium aborts the requests in flight when the host's interfaces change (another
        test's bridge or veth: net::ERR_NETWORK_CHANGED); a module lost that way leaves the
        page at "Loading…" for good, and a later hash change does not reload it. Such a page is
        loaded again, up to three loads in all, then reported as any wait is. Returns the
        number of loads."""
        self.driver.get(f"{self.base}/ui/#/{route}")
        for loads in (1, 2):
            try:
                WebDriverWait(self.driver, 10, poll_frequency=0.1).until(lambda d: self._ran())
                return loads
            except Exception:
                console = [e["message"][:200] for e in self.driver.get_log("browser")]
                print(f"portal: #/{route} did not start ({console}); loading it again")
                self.driver.refresh()
        self.wait(self._ran, "the page's code to run")
        return 3

    def _ran(self):
        return self.driver.execute_script("return document.querySelector('#main h1') !== null")

    def wait(self, predicate, what, timeout=WAIT):
        try:
            return WebDriverWait(self.driver, timeout, poll_frequency=0.1).until(
                lambda d: predicate(), message=what)
        except Exception:
            page = self.text("main")[:2000]
            console = [e["message"][:300] for e in self.driver.get_log("browser")]
            raise AssertionError(f"{what}; at {self.driver.current_url}\n--- page ---\n{page}"
                                 f"\n--- console ---\n{console}") from None

    def find(self, css, timeout=WAIT):
        return self.wait(lambda: (self.driver.find_elements(By.CSS_SELECTOR, css) or [None])[0],
                         f"element {css}", timeout)

    def text(self, css):
        els = self.driver.find_elements(By.CSS_SELECTOR, css)
        return els[0].text if els else ""

    def fill(self, css, value):
        el = self.find(css)
        el.clear()
        el.send_keys(value)
        return el

    def shot(self, name, size=None):
        """Saves build/ui-screenshots/NAME.png, at `size` (width, height) if given."""
        SHOTS.mkdir(parents=True, exist_ok=True)
        if size:
            self.driver.set_window_size(*size)
        try:
            self.driver.save_screenshot(str(SHOTS / f"{name}.png"))
        finally:
            if size:
                self.driver.set_window_size(1280, 900)

    def errors(self):
        return [e.text for e in self.driver.find_elements(By.CSS_SELECTOR, ".error")]


@contextlib.contextmanager
def open_portal(daemon, send_credentials=True):
    """A Portal on `daemon` in a fresh chromium profile, closed (and the profile removed) after."""
    for tool in (CHROMIUM, CHROMEDRIVER):
        if not os.access(tool, os.X_OK):
            pytest.fail(f"{tool}: not installed (scripts/deps.sh test installs it)")
    profile = tempfile.mkdtemp(prefix="fdt-chromium-")
    p = None
    try:
        p = Portal(daemon, profile, send_credentials)
        yield p
    finally:
        if p is not None:
            p.close()
        shutil.rmtree(profile, ignore_errors=True)
