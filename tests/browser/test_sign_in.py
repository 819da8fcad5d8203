"""A coordinator signs in to the console in a real browser, on a laptop and on a 360 px phone."""

import datetime as dt

import pytest

from telline import db, groups
from telline.accounts import users
from telline.scheduling.series import create_series
from tests.browser.conftest import screenshot, serious_violations

pytestmark = pytest.mark.slow


@pytest.fixture
def coordinator(served):
    session = db.session()
    group = groups.create_group(session, name="Carers Tuesday", timezone="Europe/Paris", region="FR")
    line = groups.add_line(session, group.id, "+33 1 84 88 00 00")
    create_series(session, group=group, line=line, title="Tuesday evening", rrule="FREQ=WEEKLY",
                  first_start_local=dt.datetime(2030, 1, 1, 19, 0))
    users.create_user(session, email="ana@example.org", display_name="Ana", password="correct horse 1",
                      role="coordinator", group_ids=[group.id])
    session.commit()


def test_sign_in_wrong_then_right_see_the_next_meetings_and_sign_out(page, served, coordinator):
    page.goto(served.base_url + "/")
    assert page.url.startswith(served.base_url + "/login")
    assert serious_violations(page) == []
    page.get_by_label("E-mail").fill("ana@example.org")
    page.get_by_label("Password").fill("not my password")
    page.get_by_role("button", name="Sign in").click()
    assert page.get_by_role("alert").inner_text() == "That e-mail and password do not match an active account."
    page.get_by_label("Password").fill("correct horse 1")
    page.keyboard.press("Enter")  # the keyboard alone can sign in
    page.get_by_role("heading", name="Today").wait_for()
    assert "Tue 01 Jan 2030, 19:00" in page.locator("main").inner_text()
    assert serious_violations(page) == []
    assert page.evaluate("document.documentElement.scrollWidth") <= page.viewport_size["width"]
    screenshot(page, "console-today")
    page.get_by_role("button", name="Sign out").click()
    page.get_by_role("heading", name="Sign in").wait_for()
    page.goto(served.base_url + "/")
    assert page.url.startswith(served.base_url + "/login")
