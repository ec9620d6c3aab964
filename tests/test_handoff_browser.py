"""The client's copy after intake, in a real browser: every hand-off choice (email, print, phone).

As in tests/test_intake_browser.py: Debian's Chromium driven by Playwright, the real intake
app on 127.0.0.1 in a thread, screenshots of every new page in tests/output/screenshots/
(``handoff-*``). The same app is served twice: over HTTPS with a certificate from the
practice's intake CA, as ``agreements intake serve --tls`` does, and over plain HTTP, where
a phone code must be refused. The browser trusts the practice root (added to its NSS
database with certutil, as a clinic's tablets and phones are given it), so it checks the
server's certificate as it would on the clinic network. Mail goes
to a real SMTP server (aiosmtpd, STARTTLS). Link expiry is reached by moving
``delivery._now`` (the server runs in this process), never by sleeping.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import ssl
import subprocess
import tempfile
import threading
import urllib.request
from pathlib import Path

import pytest
from helpers import FakeClock, cheap_hasher
from mailserver import MAIL_PASS, MailServer, attachments, body_text, make_mail_ca
from test_intake_browser import CHROMIUM, CHROMIUM_ARGS

from agreements_kit.authoring.practice import load_practice
from agreements_kit.authoring.render import Job, Renderer
from agreements_kit.authoring.spec import make_spec
from agreements_kit.intake import delivery
from agreements_kit.intake.app import create_app, intake_link
from agreements_kit.intake.staff import StaffStore
from agreements_kit.intake.tickets import TicketStore
from agreements_kit.signing.pki import PKI
from agreements_kit.signing.setup import init_practice

PASS = b"handoff-browser-intake-pass"
ROOT_PASS = b"handoff-browser-root-pass"
CLINICIAN_PASS = b"handoff-browser-clinician-pass"
LEE_PASS = "handoff-browser-lee-pass"
STAFF = ("pat.kim", "Pat Kim", "the front desk's long password")
PRACTICE_NAME = "Riverbend Handoff Practice"
CLIENTS = {"agr-hob-0001": "Jane Q. Doe", "agr-hob-0002": "John Roe", "agr-hob-0003": "Mary Major",
           "agr-hob-0004": "Lena Plain"}
ADDRESS = "jane.doe@example.org"
SHOTS = Path(__file__).resolve().parent / "output" / "screenshots"

if not Path(CHROMIUM).exists():  # a missing browser fails these tests; it never skips them
    raise RuntimeError("Debian's chromium is not installed: scripts/bootstrap --test installs it")

from playwright import sync_api  # noqa: E402  (after the clearer message above)


def tls_context(root: Path) -> ssl.SSLContext:
    """The intake server's TLS, as 'agreements intake serve --tls' makes it: a certificate from the intake CA."""
    from cryptography.hazmat.primitives import serialization

    pki = PKI(root / "pki")
    cert, key = pki.server_certificate(["127.0.0.1"], PASS)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with tempfile.TemporaryDirectory() as tmp:
        cert_path, key_path = Path(tmp) / "cert.pem", Path(tmp) / "key.pem"
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM) +
                              pki.intake().public_bytes(serialization.Encoding.PEM))
        key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
        context.load_cert_chain(cert_path, key_path)
    return context


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """A practice with four drafts, a therapist, a staff account, mail settings; its intake server over HTTPS
    and HTTP; and the practice's mail server."""
    from werkzeug.serving import make_server

    top = tmp_path_factory.mktemp("handoff-web")
    root = top / "practice"
    init_practice(root, name=PRACTICE_NAME, jurisdiction="US", passphrase=ROOT_PASS, intake_passphrase=PASS,
                  clinician_passphrase=CLINICIAN_PASS, therapists={"lee": ("Dr. Robin Lee", "PhD", "psychologist")})
    practice = load_practice(root)
    PKI(root / "pki").issue_clinician("lee", "Dr. Robin Lee", practice.name, CLINICIAN_PASS, LEE_PASS.encode())
    renderer = Renderer.load(root)
    for aid, name in CLIENTS.items():
        renderer.render_to(Job(make_spec(client=name, therapist="lee", id=aid), practice.drafts))
    StaffStore(root, cheap_hasher()).add(*STAFF)
    certs = make_mail_ca(tmp_path_factory.mktemp("mail-ca"))
    mail = MailServer(certs)
    (top / "mail-password.txt").write_text(MAIL_PASS + "\n")
    settings = root / "practice.yaml"
    settings.write_text(settings.read_text() + "\n".join([
        "handoff:", "  phone_minutes: 10", "  mail:", "    host: 127.0.0.1", f"    port: {mail.port}",
        "    security: starttls", f'    from: "{PRACTICE_NAME} <desk@riverbend.example>"', "    username: desk",
        "    password_file: ../mail-password.txt", f"    ca_bundle: {certs['ca']}", "    delivery: attach"]) + "\n")
    clock = FakeClock()
    app = create_app(root, PASS, clock=clock, staff_hasher=cheap_hasher())
    servers = [make_server("127.0.0.1", 0, app, threaded=True, ssl_context=tls_context(root)),
               make_server("127.0.0.1", 0, app, threaded=True)]
    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    yield {"root": root, "practice": load_practice(root), "https": f"https://127.0.0.1:{servers[0].server_port}",
           "http": f"http://127.0.0.1:{servers[1].server_port}", "tickets": TicketStore(root / "intake"),
           "clock": clock, "mail": mail}
    for server in servers:
        server.shutdown()
    mail.stop()


@pytest.fixture(scope="module")
def browser(site, tmp_path_factory):
    """Chromium trusting the practice root, as a clinic tablet is set up to: the root in the NSS database
    ($HOME/.pki/nssdb) that Chromium reads on Linux, made with certutil."""
    home = tmp_path_factory.mktemp("browser-home")
    db = home / ".pki" / "nssdb"
    db.mkdir(parents=True)
    subprocess.run(["certutil", "-N", "-d", f"sql:{db}", "--empty-password"], check=True, capture_output=True)
    subprocess.run(["certutil", "-A", "-d", f"sql:{db}", "-n", "practice-root", "-t", "C,,", "-i",
                    str(site["root"] / "pki" / "root.pem")], check=True, capture_output=True)
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, env={**os.environ, "HOME": str(home)}, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def context(browser):
    """The tablet: a browser profile of its own."""
    ctx = browser.new_context(viewport={"width": 900, "height": 1000}, accept_downloads=True)
    yield ctx
    ctx.close()


@pytest.fixture
def page(context):
    return context.new_page()


@pytest.fixture
def phone(browser):
    """The client's phone: another profile, a phone-sized screen."""
    ctx = browser.new_context(viewport={"width": 390, "height": 844}, accept_downloads=True, is_mobile=True,
                              has_touch=True, device_scale_factor=2)
    yield ctx
    ctx.close()


def shot(page, name: str) -> None:
    """A screenshot for people to look at (a full-page capture that stalls falls back to the visible part),
    and axe-core's WCAG 2.1 A/AA check of the page: every hand-off page is checked where the flow shows it."""
    from axe_check import check_page

    SHOTS.mkdir(parents=True, exist_ok=True)
    path = str(SHOTS / f"{name}.png")
    try:
        page.screenshot(path=path, full_page=True, animations="disabled", timeout=10_000)
    except sync_api.TimeoutError:
        page.screenshot(path=path, animations="disabled", timeout=10_000)
    check_page(page, name)


def tab_to(page, selector: str, limit: int = 80) -> None:
    """Press Tab until the element matching ``selector`` has the focus (keyboard only)."""
    for _ in range(limit):
        if page.evaluate("sel => document.activeElement === document.querySelector(sel)", selector):
            return
        page.keyboard.press("Tab")
    raise AssertionError(f"Tab never reached {selector}")


def unlabelled_fields(page) -> list[str]:
    return page.evaluate("""() => [...document.querySelectorAll('input:not([type=hidden]), select, textarea')]
        .filter(el => !el.labels || el.labels.length === 0).map(el => el.name || el.id)""")


def one_h1(page) -> bool:
    return page.evaluate("() => document.querySelectorAll('h1').length === 1")


def accessible(page) -> None:
    assert unlabelled_fields(page) == [] and one_h1(page)
    assert page.evaluate("() => document.documentElement.lang") == "en"


def sign_through_intake(site, page, agreement_id: str, scheme: str = "https") -> None:
    """The client's intake, start to the done page (link, consent, initials, name, intent, sign)."""
    token, _ = site["tickets"].open(agreement_id, "client", "photo ID checked in person", "Front desk (test)")
    page.goto(intake_link(site[scheme], token))
    page.click("#start")
    page.wait_for_url("**/sign/consent")
    page.check("#consent")
    page.click("button[type=submit]")
    page.wait_for_url("**/sign/agreement")
    for field in page.query_selector_all("input[name^='initials.']"):
        field.fill("XY")
    page.click("button[type=submit]")
    page.wait_for_url("**/sign/signature")
    page.fill("#name", CLIENTS[agreement_id])
    page.check("#intent")
    page.click("#sign-button")
    page.wait_for_url("**/sign/done")


def choose(page, channel: str) -> None:
    """Choose on the done page with the keyboard alone: Tab into the choices, arrows to one (a radio group is
    one Tab stop), Space, Tab to Continue, Enter."""
    tab_to(page, "input[name=channel]:enabled")
    for _ in range(4):
        if page.evaluate("sel => document.activeElement === document.querySelector(sel)", f"#by-{channel}"):
            break
        page.keyboard.press("ArrowDown")
    page.keyboard.press("Space")
    assert page.is_checked(f"#by-{channel}")
    tab_to(page, "#handoff-continue")
    with page.expect_navigation():
        page.keyboard.press("Enter")


def countersign(run_bin, site, agreement_id: str):
    """The therapist countersigns at the terminal: 'agreements sign --as therapist', follow-up included."""
    res = run_bin("sign", agreement_id, "--practice", site["root"], "--as", "therapist",
                  env={"AGREEMENTS_PASSPHRASE": LEE_PASS})
    assert res.exit_code == 0, res.stdout + res.stderr
    return res


def download(page, selector: str) -> bytes:
    with page.expect_download() as info:
        page.click(selector)
    return Path(info.value.path()).read_bytes()


def trusted(site) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(site["root"] / "pki" / "root.pem"))


def fetch_as(site, context, url: str):
    """GET ``url`` with the browser profile's cookies over TLS checked against the practice root: the
    headers and the exact bytes (a PDF the browser shows in its viewer is not handed to the test)."""
    cookies = "; ".join(f"{c['name']}={c['value']}" for c in context.cookies(url))
    with urllib.request.urlopen(urllib.request.Request(url, headers={"Cookie": cookies}),
                                context=trusted(site)) as response:
        return response.headers, response.read()


def link_on(page) -> str:
    return page.inner_text("#download-link").strip()


def staff_sign_in(page, base: str) -> None:
    page.goto(f"{base}/staff")
    page.fill("#name", STAFF[0])
    page.fill("#password", STAFF[2])
    page.click("button[type=submit]")
    page.wait_for_load_state()
    assert "Signed in as Pat Kim" in page.content()


# --------------------------------------------------------------------------- email


def test_email_sends_the_signed_copy_then_the_completed_copy_at_countersigning(site, page, run_bin):
    inbox = site["mail"].inbox
    before = len(inbox.messages)
    sign_through_intake(site, page, "agr-hob-0001")
    accessible(page)
    shot(page, "handoff-0-choose")
    choose(page, "email")
    assert page.url.endswith("/sign/handoff/email")
    accessible(page)
    shot(page, "handoff-email-1-address")
    tab_to(page, "#address")
    page.keyboard.type("jane.doe@")
    page.keyboard.press("Enter")  # the browser's own check: not sent, nothing left the server
    assert page.url.endswith("/sign/handoff/email") and len(inbox.messages) == before
    page.fill("#address", "jane.doe@example")  # passes the browser's check, not the server's
    with page.expect_navigation():
        page.click("#send")
    assert "does not look like an email address" in page.content() and len(inbox.messages) == before
    shot(page, "handoff-email-2-refused")
    page.fill("#address", ADDRESS)
    tab_to(page, "#send")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    accessible(page)
    shot(page, "handoff-email-3-sent")
    assert len(inbox.messages) == before + 1 and inbox.messages[-1][1] == [ADDRESS]
    msg = inbox.parsed()
    folder = site["root"] / "signed" / "agr-hob-0001"
    assert attachments(msg)["signed-agreement.pdf"] == (folder / "01-client.copy.pdf").read_bytes()
    assert msg["Subject"] == f"Your signed document from {PRACTICE_NAME}"
    assert "Jane" not in msg["Subject"] and "Jane" not in body_text(msg)
    page.click("#finish")
    page.wait_for_url("**/sign/finish")
    res = countersign(run_bin, site, "agr-hob-0001")
    assert "the completed copy was mailed (attached)" in res.stdout
    completed = inbox.parsed()
    assert len(inbox.messages) == before + 2
    assert attachments(completed)["signed-agreement.pdf"] == (folder / "02-therapist.copy.pdf").read_bytes()
    assert delivery.read_choice(site["practice"], "agr-hob-0001") is None  # the address is erased


# --------------------------------------------------------------------------- phone


def test_phone_code_downloads_once_on_the_phone_and_expires(site, page, phone, browser, monkeypatch):
    sign_through_intake(site, page, "agr-hob-0002")
    choose(page, "phone")
    assert page.url.endswith("/sign/handoff/phone")
    accessible(page)
    assert page.is_visible("img[alt='QR code of the one-time download link']")
    shot(page, "handoff-phone-1-code")
    link = link_on(page)
    assert link.startswith(site["https"] + "/h/")
    # A link scanner's HEAD and GET (checking the certificate against the practice root) use nothing up.
    for method in ("HEAD", "GET"):
        with urllib.request.urlopen(urllib.request.Request(link, method=method), context=trusted(site)) as response:
            assert response.status == 200
    mobile = phone.new_page()
    mobile.goto(link)
    accessible(mobile)
    shot(mobile, "handoff-phone-2-download-page")
    mobile.click("#open-documents")
    mobile.wait_for_url("**/h/files")
    accessible(mobile)
    shot(mobile, "handoff-phone-3-files")
    folder = site["root"] / "signed" / "agr-hob-0002"
    assert download(mobile, "a[href$='signed-agreement.pdf']") == (folder / "01-client.copy.pdf").read_bytes()
    assert download(mobile, "a[href$='receipt-of-signing.pdf']").startswith(b"%PDF-")
    # Used: another phone, or this one again, is refused.
    other = browser.new_context()
    try:
        second = other.new_page()
        second.goto(link)
        assert "already used" in second.content() and not second.is_visible("#open-documents")
        shot(second, "handoff-phone-4-already-used")
    finally:
        other.close()
    page.reload()
    assert "This code was used" in page.content()
    shot(page, "handoff-phone-5-code-used")
    # A new code, not used within 10 minutes, expires.
    page.click("#new-code")
    page.wait_for_url("**/sign/handoff/phone")
    fresh = link_on(page)
    assert fresh != link
    later = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=10, seconds=1)
    monkeypatch.setattr(delivery, "_now", lambda: later)
    late = phone.new_page()
    late.goto(fresh)
    assert "expired" in late.content() and not late.is_visible("#open-documents")
    shot(late, "handoff-phone-6-expired")
    page.reload()
    assert "This code has expired" in page.content()


def test_phone_is_refused_over_plain_http(site, page):
    sign_through_intake(site, page, "agr-hob-0004", scheme="http")
    assert page.is_disabled("#by-phone") and "needs a secure connection" in page.content()
    # Even a form sent around the disabled choice is refused, with a page that says why.
    page.evaluate("() => { const r = document.querySelector('#by-phone'); r.disabled = false; r.checked = true; }")
    page.click("#handoff-continue")
    page.wait_for_load_state()
    assert "Secure connection needed" in page.content() and "--tls" in page.content()
    accessible(page)
    shot(page, "handoff-phone-refused-over-http")
    assert not list((site["root"] / "intake" / "handoff" / "choices").glob("agr-hob-0004.json"))


# --------------------------------------------------------------------------- print, and the front desk


def test_print_then_the_front_desk_hands_over_the_completed_copy(site, page, context, phone, run_bin):
    sign_through_intake(site, page, "agr-hob-0003")
    choose(page, "print")
    assert page.url.endswith("/sign/handoff/print")
    accessible(page)
    shot(page, "handoff-print-1-front-desk")
    folder = site["root"] / "signed" / "agr-hob-0003"
    with context.expect_page() as opened:
        page.click("a[href$='/sign/handoff/print/signed-agreement.pdf']")
    tab = opened.value
    tab.wait_for_load_state()
    assert tab.url.endswith("/sign/handoff/print/signed-agreement.pdf")
    headers, body = fetch_as(site, context, tab.url)
    assert headers["Content-Type"] == "application/pdf"
    assert headers["Content-Disposition"].startswith("inline")  # opens in the browser's viewer, to print
    assert body == (folder / "01-client.copy.pdf").read_bytes()
    assert fetch_as(site, context, site["https"] + "/sign/handoff/print/receipt-of-signing.pdf")[1].startswith(
        b"%PDF-")
    tab.close()
    page.click("#finish")
    page.wait_for_url("**/sign/finish")
    res = countersign(run_bin, site, "agr-hob-0003")
    assert "on the front desk's list, to be printed" in res.stdout
    # At the next visit the front desk finds it on the staff page (over TLS: a code for a phone is offered too).
    desk = context.new_page()
    staff_sign_in(desk, site["https"])
    desk.click("text=Copies to hand over")
    desk.wait_for_url("**/staff/handoff")
    accessible(desk)
    assert "Mary Major" in desk.content() and "ready to hand over" in desk.content()
    shot(desk, "handoff-staff-1-list")
    completed = fetch_as(site, context, site["https"] + "/staff/handoff/agr-hob-0003/signed-agreement.pdf")[1]
    assert completed == (folder / "02-therapist.copy.pdf").read_bytes()
    desk.get_by_role("button", name="Show a code for the client's phone: Mary Major").click()
    desk.wait_for_load_state()
    accessible(desk)
    shot(desk, "handoff-staff-2-phone-code")
    mobile = phone.new_page()
    mobile.goto(link_on(desk))
    mobile.click("#open-documents")
    mobile.wait_for_url("**/h/files")
    assert download(mobile, "a[href$='signed-agreement.pdf']") == (folder / "02-therapist.copy.pdf").read_bytes()
    desk.click("text=Back to copies to hand over")
    desk.wait_for_url("**/staff/handoff")
    desk.get_by_role("button", name="Handed over: Mary Major").click()
    desk.wait_for_url("**/staff/handoff")
    assert "Mary Major" not in desk.content()
    shot(desk, "handoff-staff-3-handed-over")
    assert delivery.read_choice(site["practice"], "agr-hob-0003") is None
    listed = run_bin("handoff", "list", "--practice", site["root"])
    assert "agr-hob-0003" not in listed.stdout


def test_the_choices_are_recorded_outside_the_archive(site):
    for path in [site["root"] / "intake", *(site["root"] / "intake" / "handoff").rglob("*")]:
        assert path.stat().st_mode & 0o077 == 0, path
    for path in (site["root"] / "intake" / "handoff" / "choices").glob("*.json"):
        assert set(json.loads(path.read_text())) >= {"agreement_id", "front_desk", "email"}
    assert not re.search(r"handoff", " ".join(p.name for p in (site["root"] / "signed").rglob("*")))
