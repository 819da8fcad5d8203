"""The console in real headless Chromium (Debian's /usr/bin/chromium, driven by Playwright),
against telline served over real HTTP on a fresh, migrated database.

Chromium comes from the project's own script (deploy/local.py test installs Debian's package when it
can); without it these tests are skipped with the reason — except under CI, where they fail.
"""

import os
import shutil
import threading
from pathlib import Path

import pytest
from werkzeug.serving import make_server

from telline import create_app, db, migrate
from tests.conftest import make_settings

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
SCREENSHOTS = Path(os.environ.get("TELLINE_SCREENSHOTS", "/tmp/telline-screenshots"))


@pytest.fixture(scope="session")
def browser():
    if not shutil.which(CHROMIUM):
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing: python3 deploy/local.py test installs Debian's chromium")
        pytest.skip(f"needs {CHROMIUM} (Debian's chromium; python3 deploy/local.py test installs it)")
    from playwright.sync_api import sync_playwright
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def served(tmp_path, redis_url, redis_conn):
    """telline's web app on 127.0.0.1 over real HTTP (werkzeug, threaded) and its app, whose context
    is open for seeding; commits are real (the browser reads them through other connections)."""
    url = f"sqlite:///{tmp_path}/console.sqlite3"
    migrate.upgrade(url)
    app = create_app(make_settings(url, redis_url))
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    app.base_url = f"http://127.0.0.1:{server.port}"
    with app.app_context():
        yield app
        db.session().close()
    server.shutdown()
    server.server_close()
    thread.join(5)
    app.extensions["telline.db"].dispose()


@pytest.fixture(params=[(1280, 800), (360, 740)], ids=["laptop", "phone"])
def page(browser, request):
    width, height = request.param
    context = browser.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    page.set_default_timeout(10_000)
    page.screen = "laptop" if width > 360 else "phone"
    yield page
    context.close()


def serious_violations(page) -> list[str]:
    """axe-core's serious and critical accessibility violations on the page, one line each."""
    from axe_playwright_python.sync_playwright import Axe
    results = Axe().run(page)
    return [f"{v['id']}: {v['help']} ({len(v['nodes'])} elements)" for v in results.response["violations"]
            if v["impact"] in ("serious", "critical")]


def screenshot(page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}-{page.screen}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
