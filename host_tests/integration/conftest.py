"""Fixtures shared by the integration tests."""
import os
import shutil
import tempfile

import pytest


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium for the page tests (webui_driver.py); screenshots kept with LOADPILOT_SHOTS=DIR."""
    import webui_driver
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    downloads = tempfile.mkdtemp(prefix="lp-dl-")
    shots = os.environ.get("LOADPILOT_SHOTS") or tempfile.mkdtemp(prefix="lp-shots-")
    os.makedirs(shots, exist_ok=True)
    opts = webdriver.ChromeOptions()
    opts.binary_location = webui_driver.CHROMIUM
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,1000"):
        opts.add_argument(a)
    opts.add_experimental_option("prefs", {"download.default_directory": downloads,
                                           "download.prompt_for_download": False})
    d = webdriver.Chrome(service=Service(executable_path=webui_driver.CHROMEDRIVER), options=opts)
    d.implicitly_wait(0)
    d.downloads = downloads
    d.shots = shots
    print("screenshots in", shots)
    try:
        yield d
    finally:
        d.quit()
        shutil.rmtree(downloads, ignore_errors=True)
