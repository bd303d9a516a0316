"""A real browser (Debian's headless chromium through selenium) against a
rendered library, opened from disk and through `avatar-batch serve`.

Skipped when chromium, chromedriver or selenium is missing; CI installs all
three (.ci/run). The driver is the system chromedriver: selenium-manager
never runs and nothing is downloaded."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import serving
from tests.hardening.projects import make_project, render, smoke_data

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"

# The machine has no network: without these, chromium's background services
# flood the log with refused connections.
CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",
    "--window-size=1280,900",
    "--lang=en-US",
)

ENTRIES = [
    {
        "id": "register",
        "department": "registration",
        "question": "Where do I register?",
        "answer": "Please register at the front desk in the main hall.",
    },
    {
        "id": "chest-pain",
        "department": "cardiology",
        "question": {"en": "Where should I go for chest pain?", "zh": "胸口痛应该去哪个科室？"},
        "answer": {
            "en": "If the pain is severe, call emergency services now.",
            "zh": "如果胸痛剧烈，请立即拨打急救电话。",
        },
    },
    {
        "id": "hostile",
        "department": "registration",
        "question": 'Is <img src=x onerror="window.pwned=1"> shown as text?',
        "answer": "<script>window.pwned=2</script> It is shown & never run.",
    },
]


def require_browser() -> None:
    for program in (CHROMIUM, CHROMEDRIVER):
        if not program.exists():
            pytest.skip(f"{program} is not installed (apt-get install chromium chromium-driver)")
    pytest.importorskip("selenium", reason="pip install selenium (the `test` extra)")


@pytest.fixture(scope="session")
def library(tmp_path_factory) -> Path:
    require_browser()
    root = tmp_path_factory.mktemp("browser")
    data = smoke_data(entries=ENTRIES)
    data["personas"]["dr_chen"]["voices"] = {"en": "en-us", "zh": "cmn"}
    project = make_project(root / "project", data)
    library = root / "library"
    done = render(project, library)
    assert done.returncode == 0, done.stderr
    return library


@pytest.fixture(scope="session")
def server(library: Path):
    with serving(library) as running:
        yield running


@pytest.fixture(scope="session")
def browser(tmp_path_factory):
    require_browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    with pytest.MonkeyPatch.context() as patch:
        # Any attempt to run selenium-manager (which would try to download a
        # browser) fails loudly instead.
        patch.setenv("SE_MANAGER_PATH", "/nonexistent/selenium-manager")
        driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    driver.set_script_timeout(30)
    yield driver
    driver.quit()


@pytest.fixture(params=["file", "http"])
def page(request, library: Path, browser):
    """The player, opened from disk (file://) or through `serve` (http://)."""
    if request.param == "file":
        url = (library / "index.html").as_uri()
    else:
        url = request.getfixturevalue("server").url
    browser.get(url)
    browser.origin = request.param
    return browser


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
