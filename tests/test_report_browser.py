"""The demo's report as a person sees it: opened from disk in headless Chromium, driven by Playwright.

Needs the system Chromium (Debian's ``chromium``: ``.ci/run`` installs it) and the ``playwright``
Python package (a ``dev`` extra; it drives that Chromium, no browser download). Skipped, saying why,
where either is missing. Saves a screenshot to ``$SDF_AUTODEC_ARTIFACTS`` (default ``.artifacts/``).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = next((p for p in (shutil.which("chromium"), shutil.which("chromium-browser"), shutil.which("google-chrome")) if p), None)
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def browser():
    if CHROMIUM is None:
        pytest.skip("no Chromium on this machine (apt-get install chromium; .ci/run does)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed (pip install -e '.[dev]')")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        yield b
        b.close()


def test_demo_report_in_a_real_browser(demo_run, browser):
    demo, proc = demo_run
    assert proc.returncode == 0, proc.stderr[-2000:]
    page = browser.new_page(viewport={"width": 1300, "height": 900})
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto((demo / "report.html").resolve().as_uri())
    page.wait_for_load_state("load")

    # every image decoded
    sizes = page.eval_on_selector_all("img", "imgs => imgs.map(i => [i.complete, i.naturalWidth])")
    assert len(sizes) >= 6 and all(done and width > 0 for done, width in sizes), sizes

    # a click on a header sorts the table by that column, a second click reverses it
    table = "#metrics-table"
    headers = page.eval_on_selector_all(f"{table} thead th", "hs => hs.map(h => h.textContent)")
    col = headers.index("chamfer_x1000")
    values = lambda: page.eval_on_selector_all(  # noqa: E731
        f"{table} tbody tr", f"rows => rows.map(r => parseFloat(r.cells[{col}].textContent))"
    )
    page.click(f"{table} thead th:nth-child({col + 1})")
    ascending = values()
    assert ascending == sorted(ascending) and len(ascending) >= 2
    page.click(f"{table} thead th:nth-child({col + 1})")
    assert values() == sorted(ascending, reverse=True)

    # the filter hides the rows of other classes
    classes = page.eval_on_selector_all(f"{table} tbody tr", f"rows => rows.map(r => r.cells[{headers.index('class')}].textContent)")
    pick = sorted(set(classes))[0]
    page.select_option("select[data-table='metrics-table']", pick)
    shown = page.eval_on_selector_all(f"{table} tbody tr", f"rows => rows.filter(r => r.style.display !== 'none').map(r => r.cells[{headers.index('class')}].textContent)")
    assert shown and set(shown) == {pick} and len(shown) == classes.count(pick)
    if len(set(classes)) > 1:
        assert len(shown) < len(classes)

    # nothing but the page itself was asked for: no network
    assert all(u.startswith(("file:", "data:")) for u in requests), [u for u in requests if not u.startswith(("file:", "data:"))]
    assert not errors

    artifacts = Path(os.environ.get("SDF_AUTODEC_ARTIFACTS", REPO / ".artifacts"))
    artifacts.mkdir(parents=True, exist_ok=True)
    page.select_option("select[data-table='metrics-table']", "")
    page.screenshot(path=str(artifacts / "demo_report.png"), full_page=True)
    assert (artifacts / "demo_report.png").stat().st_size > 10_000
    page.close()
