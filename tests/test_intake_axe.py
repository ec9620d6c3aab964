"""axe-core (from npm) on every intake page: no WCAG 2.1 A or AA violation anywhere.

Each page of the intake is reached the way a person reaches it (a link, Start, the
forms, staff signing in), in Debian's Chromium through Playwright, against the real
app (test_intake_browser's ``site``: a practice on 127.0.0.1 with drafts and a staff
account). axe-core then checks the page as served; a failure lists each violation's
rule id, help text and the elements it found. A screenshot of every page is kept in
tests/output/screenshots/axe-NAME.png.

To cover a new page, add a function that reaches it, decorated with ``@intake_page("name")``:
it is given the site and a fresh page (its own browser context) and leaves that page
showing what is to be checked. Pages of other test modules can call
``axe_check.assert_accessible(page, name)`` directly.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable

import pytest
import test_intake_browser as web
from axe_check import assert_accessible, axe_violations
from test_intake_browser import CLIENTS, STAFF, link, staff_sign_in, start, to_signature

# test_intake_browser's fixtures, by name: its practice on 127.0.0.1 (its own instance for this module) and
# Debian's Chromium.
site = web.site
browser = web.browser

PAGES: dict[str, Callable] = {}


def intake_page(name: str):
    """Register a function that brings a page to the intake page ``name``, for the axe check."""
    def register(reach: Callable) -> Callable:
        assert name not in PAGES, f"two intake pages named {name}"
        PAGES[name] = reach
        return reach
    return register


def submit_without_checks(page) -> None:
    """Send the page's main form as it stands, skipping the browser's own checks of required fields
    (so the server's error message is what the page shows)."""
    with page.expect_navigation():
        page.evaluate("() => document.querySelector('main form').submit()")


# ------------------------------------------------------------------ the client's pages


@intake_page("start")
def _start(site, page):
    page.goto(link(site, "agr-web-0003"))
    assert page.is_visible("#start")


@intake_page("consent")
def _consent(site, page):
    start(page, link(site, "agr-web-0003"))


@intake_page("consent-error")
def _consent_error(site, page):
    start(page, link(site, "agr-web-0003"))
    page.click("button[type=submit]")  # the box left unticked
    page.wait_for_selector("#error")


def _to_review(site, page) -> None:
    start(page, link(site, "agr-web-0003"))
    page.check("#consent")
    page.click("button[type=submit]")
    page.wait_for_url("**/sign/agreement")


@intake_page("review")
def _review(site, page):
    _to_review(site, page)
    assert page.query_selector_all("input[name^='initials.']")


@intake_page("review-error")
def _review_error(site, page):
    _to_review(site, page)
    submit_without_checks(page)  # no initials
    assert "initials are needed" in page.inner_text("#error")


@intake_page("review-details-open")
def _review_details_open(site, page):
    _to_review(site, page)
    page.evaluate("() => document.querySelectorAll('details').forEach(d => { d.open = true; })")


@intake_page("signature")
def _signature(site, page):
    to_signature(page, link(site, "agr-web-0003"), "Mary Major")


@intake_page("signature-error")
def _signature_error(site, page):
    to_signature(page, link(site, "agr-web-0003"), "Mary Major")
    page.uncheck("#intent")
    page.click("#sign-button")
    page.wait_for_selector("#error")
    assert "tick the box" in page.inner_text("#error")


def _sign(site, page, agreement_id: str) -> None:
    to_signature(page, link(site, agreement_id), CLIENTS[agreement_id])
    page.click("#sign-button")
    page.wait_for_url("**/sign/done")


@intake_page("done")
def _done(site, page):
    _sign(site, page, "agr-web-0001")


@intake_page("message-finished")
def _finished(site, page):
    _sign(site, page, "agr-web-0002")
    page.click("main form[action$='/sign/finish'] button[type=submit]")
    page.wait_for_url("**/sign/finish")
    assert "session is closed" in page.content()


@intake_page("message-link-used")
def _link_used(site, page):
    url = link(site, "agr-web-0003")
    start(page, url)
    page.context.clear_cookies()
    page.goto(url)
    assert "already used" in page.content()


@intake_page("message-link-expired")
def _link_expired(site, page):
    url = link(site, "agr-web-0003", minutes=1)
    ticket = site["root"] / "intake" / "pending" / f"{hashlib.sha256(url.rsplit('/', 1)[1].encode()).hexdigest()}.json"
    data = json.loads(ticket.read_text())
    data["expires"] = "2000-01-01T00:00:00+00:00"
    ticket.write_text(json.dumps(data))
    page.goto(url)
    assert "expired" in page.content()


@intake_page("message-link-not-valid")
def _link_not_valid(site, page):
    page.goto(f"{site['base']}/i/{'A' * 43}")
    assert "not valid" in page.content()


@intake_page("message-session-ended")
def _session_ended(site, page):
    page.goto(f"{site['base']}/sign/consent")
    assert "Session ended" in page.content()


# ------------------------------------------------------------------ staff pages


@intake_page("staff-login")
def _staff_login(site, page):
    page.goto(f"{site['base']}/staff")
    assert page.is_visible("#password")


@intake_page("staff-login-error")
def _staff_login_error(site, page):
    assert staff_sign_in(page, site, password="not the password").status == 403
    assert page.is_visible("#error")


@intake_page("staff-home")
def _staff_home(site, page):
    assert staff_sign_in(page, site).status == 302
    assert f"Signed in as {STAFF[1]}" in page.content()


@intake_page("staff-link")
def _staff_link(site, page):
    assert staff_sign_in(page, site).status == 302
    page.select_option("#agreement", "agr-web-0004")
    page.click("text=Open intake")
    page.wait_for_selector("p.link a")


# ------------------------------------------------------------------ the check


@pytest.fixture
def fresh_page(browser):
    context = browser.new_context(viewport={"width": 900, "height": 1000}, accept_downloads=True)
    try:
        yield context.new_page()
    finally:
        context.close()


@pytest.mark.parametrize("name", list(PAGES))
def test_intake_page_has_no_axe_violations(site, fresh_page, name):
    PAGES[name](site, fresh_page)
    fresh_page.wait_for_load_state()
    assert_accessible(fresh_page, name)


def test_axe_finds_a_violation_when_there_is_one(site, fresh_page):
    # The check itself can fail: the Start page with its button's text removed has a button without a name.
    fresh_page.goto(link(site, "agr-web-0003"))
    fresh_page.evaluate("() => { document.getElementById('start').textContent = ''; }")
    assert "button-name" in {v["id"] for v in axe_violations(fresh_page)}
