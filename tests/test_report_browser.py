"""The quick demo's report in headless Chromium: table, plots and sample images are there
and load, and the page makes no network request.

Needs Debian's ``chromium`` and ``chromium-driver`` (``.ci/run`` installs them).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


@pytest.fixture(scope="module")
def demo_report(tmp_path_factory) -> Path:
    from fairvlm.experiment import run_experiment
    from fairvlm.experiment.demo import demo_experiment_path

    out = tmp_path_factory.mktemp("quick_demo")
    with demo_experiment_path(quick=True) as path:
        result = run_experiment(path, out, echo=False)
    assert result.report is not None
    return result.report


@pytest.fixture(scope="module")
def browser():
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.skip("chromium + chromium-driver are not installed (apt-get install them)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1400,1000"):  # fmt: skip
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    yield driver
    driver.quit()


def _requests(driver) -> list[str]:
    urls = []
    for entry in driver.get_log("performance"):
        msg = json.loads(entry["message"])["message"]
        if msg.get("method") == "Network.requestWillBeSent":
            urls.append(msg["params"]["request"]["url"])
    return urls


def test_report_renders_offline(browser, demo_report):
    from selenium.webdriver.common.by import By

    summary = json.loads((demo_report.parent / "summary.json").read_text())
    browser.get(demo_report.as_uri())
    assert browser.title.startswith("fairvlm report")

    tables = browser.find_elements(By.CSS_SELECTOR, "table.summary")
    assert len(tables) == len(summary["studies"]) == 2
    for table, study in zip(tables, summary["studies"], strict=True):
        rows = table.find_elements(By.TAG_NAME, "tr")
        assert len(rows) == 1 + len(study["rows"])  # header + one per method
        marked = table.find_elements(By.CSS_SELECTOR, "td.better")
        assert len(marked) == sum(len(v) for v in study["better"].values())
    legend = " ".join(p.text for p in browser.find_elements(By.CSS_SELECTOR, "p.note"))
    assert "significantly better than base at 95% after Holm" in legend

    loaded = "return arguments[0].complete && arguments[0].naturalWidth > 0"
    plots = browser.find_elements(By.CSS_SELECTOR, "img.plot")
    samples = browser.find_elements(By.CSS_SELECTOR, "img.sample")
    assert len(plots) >= 2 * 3  # per study: group bars, Pareto scatter, curves
    assert len(samples) >= 2 * 2  # per study: >= 2 groups with images
    for img in plots + samples:
        assert browser.execute_script(loaded, img)
    for study in summary["studies"]:
        pareto = browser.find_element(By.ID, f"pareto-{study['name']}")
        assert pareto.find_elements(By.TAG_NAME, "img")

    # no request left the page: only the file itself (and inline data: URIs) were loaded
    urls = _requests(browser)
    assert urls, "performance log is empty: the check would prove nothing"
    external = [u for u in urls if not u.startswith(("file://", "data:"))]
    assert external == []
    resources = browser.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name)"
    )
    assert [r for r in resources if not r.startswith("data:")] == []
    csp = browser.find_element(By.CSS_SELECTOR, "meta[http-equiv='Content-Security-Policy']")
    assert "default-src 'none'" in csp.get_attribute("content")


def test_network_check_sees_an_external_request(browser, tmp_path):
    """The check above can fail: a page that fetches an image is caught by it."""
    page = tmp_path / "leaky.html"
    page.write_text('<html><body><img src="http://127.0.0.1:9/x.png"></body></html>')
    browser.get_log("performance")  # drop earlier entries
    browser.get(page.as_uri())
    assert "http://127.0.0.1:9/x.png" in _requests(browser)
