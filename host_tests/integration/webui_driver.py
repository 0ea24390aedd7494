"""Driving the web pages in headless Chromium (selenium) for the page tests (test_webui*_mp.py,
test_users_webui_mp.py): where the browser is, the skip rule, and what a user does on a page. The `browser`
fixture itself is in conftest.py beside this file."""
import importlib.util
import os
import sys

import pytest

from firmware_proc import wait_for

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "tools"))
import www  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
_missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not os.path.exists(p)]
_why = "Debian chromium / chromium-driver not installed (%s): run tools/setup_host.sh" % ", ".join(_missing)
if importlib.util.find_spec("selenium") is None:
    _missing.append("selenium")
    _why = "selenium not installed: run tools/setup_host.sh"
# CI installs both (tools/setup_host.sh): there a missing browser is a failure, not a skip
PAGE_TEST = [pytest.mark.mp, pytest.mark.skipif(bool(_missing) and not os.environ.get("CI"), reason=_why)]

FACTORY = "JuiCeMeUP!"  # the seed's factory password (firmware: config/schema.FACTORY_ADMIN_PWD)


def build_pages(fs_dir):
    """The pages as `make deploy` puts them on the box (tools/www.py), into a test box's file system."""
    www.build(os.path.join(fs_dir, "www"))


def by_id(d, i):
    from selenium.webdriver.common.by import By
    return d.find_element(By.ID, i)


def text_of(d, i, timeout=8.0):
    """Wait until element id exists and has text; -> its text ('' after the timeout)."""
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException

    def get():
        try:
            return by_id(d, i).text
        except (NoSuchElementException, StaleElementReferenceException):
            return ""
    return wait_for(get, timeout) or ""


def until(d, fn, timeout=8.0):
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException

    def safe():
        try:
            return fn()
        except (NoSuchElementException, StaleElementReferenceException):
            return None
    v = wait_for(safe, timeout)
    assert v, "the page never showed it (screenshot: %s)" % shot(d, "failed")
    return v


def shot(d, name):
    path = os.path.join(d.shots, name + ".png")
    d.save_screenshot(path)
    return path


def field_error(d, key):
    from selenium.webdriver.common.by import By
    return d.find_element(By.CSS_SELECTOR, '[data-key="%s"] .err' % key).text


def click(d, el):
    """As a user does: scroll the element into the middle of the window (clear of the fixed Save bar), click."""
    d.execute_script("arguments[0].scrollIntoView({block: 'center'})", el)
    el.click()


def set_value(el, value):
    el.clear()
    el.send_keys(str(value))


def go(d, url, page):
    d.get(url + "#" + page)
    d.execute_script("if (location.hash !== '#%s') location.hash = '#%s'; else route();" % (page, page))


