"""The intake pages in a real browser: Debian's Chromium driven by Playwright.

The server is the real Flask app on 127.0.0.1 (a thread); the browser is
/usr/bin/chromium (Playwright never downloads one). Screenshots of every page go
to tests/output/screenshots/ for a person to look at. The app's clock (sessions and
rate limits) is the test's own: idle expiry and waits are reached by moving it,
never by sleeping. Every browser here comes from 127.0.0.1: a guesser and the
people it must not lock out share an address, as on one clinic network.
"""

from __future__ import annotations

import base64
import hashlib
import http.server
import json
import re
import struct
import subprocess
import threading
import urllib.request
import zlib
from pathlib import Path

import pytest
from helpers import FakeClock, cheap_hasher

from agreements_kit.authoring.practice import load_practice
from agreements_kit.authoring.render import Job, Renderer
from agreements_kit.authoring.spec import make_spec
from agreements_kit.cli.demo import DEMO_PRACTICE
from agreements_kit.intake import drawing
from agreements_kit.intake.app import create_app, intake_link
from agreements_kit.intake.staff import StaffStore
from agreements_kit.intake.tickets import TicketStore
from agreements_kit.signing.pki import PKI
from agreements_kit.signing.setup import init_practice
from agreements_kit.signing.sign import sign_therapist

CHROMIUM = "/usr/bin/chromium"
PASS = b"browser-test-passphrase"  # the intake CA's
ROOT_PASS = b"browser-root-pass"
CLINICIAN_PASS = b"browser-clinician-pass"
LEE_PASS = b"browser-lee-pass"
STAFF = ("pat.kim", "Pat Kim", "the front desk's long password")
SHOTS = Path(__file__).resolve().parent / "output" / "screenshots"
CLIENTS = {"agr-web-0001": "Jane Q. Doe", "agr-web-0002": "John Roe", "agr-web-0003": "Mary Major",
           "agr-web-0004": "Ana María Núñez", "agr-web-0005": "Lena Staffed", "agr-web-0006": "Omar Drawn"}

if not Path(CHROMIUM).exists():  # a missing browser fails these tests; it never skips them
    raise RuntimeError("Debian's chromium is not installed: scripts/bootstrap --test installs it")

from playwright import sync_api  # noqa: E402  (after the clearer message above)


class Seen:
    """What reached the app at /i/...: (method, Sec-Purpose or Purpose) per request; ``prefetched`` is set
    when a browser's speculative fetch arrives."""

    def __init__(self, app):
        self.app = app
        self.requests: list[tuple[str, str]] = []
        self.prefetched = threading.Event()

    def __call__(self, environ, start_response):
        if environ.get("PATH_INFO", "").startswith("/i/"):
            purpose = environ.get("HTTP_SEC_PURPOSE") or environ.get("HTTP_PURPOSE") or ""
            self.requests.append((environ["REQUEST_METHOD"], purpose))
            if "prefetch" in purpose:
                self.prefetched.set()
        return self.app(environ, start_response)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """A practice with six drafts, a staff account, and the intake server running for it."""
    from werkzeug.serving import make_server

    root = tmp_path_factory.mktemp("web") / "practice"
    init_practice(root, passphrase=ROOT_PASS, intake_passphrase=PASS, clinician_passphrase=CLINICIAN_PASS,
                  **DEMO_PRACTICE)
    practice = load_practice(root)
    PKI(root / "pki").issue_clinician("lee", "Dr. Robin Lee", practice.name, CLINICIAN_PASS, LEE_PASS)
    renderer = Renderer.load(root)
    for aid, name in CLIENTS.items():
        renderer.render_to(Job(make_spec(client=name, therapist="lee", id=aid), practice.drafts))
    StaffStore(root, cheap_hasher()).add(*STAFF)
    clock = FakeClock()
    app = create_app(root, PASS, clock=clock, staff_hasher=cheap_hasher())
    seen = Seen(app.wsgi_app)
    app.wsgi_app = seen
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield {"root": root, "practice": practice, "base": f"http://127.0.0.1:{server.server_port}",
           "tickets": TicketStore(root / "intake"), "clock": clock, "seen": seen}
    server.shutdown()


# Debian's Chromium, headless in a container: no sandbox, GPU or background traffic.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 900, "height": 1000}, accept_downloads=True)
    pg = context.new_page()
    yield pg
    context.close()


def link(site, agreement_id: str, **kw) -> str:
    token, _ = site["tickets"].open(agreement_id, kw.get("role", "client"), "photo ID checked in person",
                                    "Front desk (test)", kw.get("minutes", 15))
    return intake_link(site["base"], token)


def shot(page, name: str) -> None:
    """A screenshot for people to look at. A full-page capture that stalls (headless Chromium
    sometimes does on a loaded machine) falls back to the visible part, never failing a test."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = str(SHOTS / f"{name}.png")
    try:
        page.screenshot(path=path, full_page=True, animations="disabled", timeout=10_000)
    except sync_api.TimeoutError:
        page.screenshot(path=path, animations="disabled", timeout=10_000)


def tab_to(page, selector: str, limit: int = 80) -> None:
    """Press Tab until the element matching ``selector`` has the focus (keyboard only)."""
    for _ in range(limit):
        if page.evaluate("sel => document.activeElement === document.querySelector(sel)", selector):
            return
        page.keyboard.press("Tab")
    raise AssertionError(f"Tab never reached {selector}")


def countersign(practice, agreement_id: str) -> None:
    """The therapist countersigns, in a thread of its own as the terminal would: this thread runs
    Playwright's event loop, and signing (pyHanko, for the signed copy) runs one of its own."""
    failure: list[BaseException] = []

    def run() -> None:
        try:
            sign_therapist(practice, agreement_id, LEE_PASS)
        except BaseException as exc:  # noqa: BLE001 - re-raised below, in the test's thread
            failure.append(exc)

    worker = threading.Thread(target=run)
    worker.start()
    worker.join()
    if failure:
        raise failure[0]


def start(page, url: str, name: str | None = None) -> None:
    """Open a link and press Start, as the client does."""
    page.goto(url)
    assert page.url == url and page.is_visible("#start"), page.content()[:500]
    if name:
        shot(page, name)
    page.click("#start")
    page.wait_for_url("**/sign/consent")


def to_signature(page, url: str, name: str) -> None:
    start(page, url)
    page.check("#consent")
    page.click("button[type=submit]")
    page.wait_for_url("**/sign/agreement")
    for field in page.query_selector_all("input[name^='initials.']"):
        field.fill("XY")
    page.click("button[type=submit]")
    page.wait_for_url("**/sign/signature")
    page.fill("#name", name)
    page.check("#intent")


def staff_sign_in(page, site, password: str = STAFF[2], name: str = STAFF[0]):
    """Sign in at /staff with the form; the response to the sign-in POST."""
    page.goto(f"{site['base']}/staff")
    page.fill("#name", name)
    page.fill("#password", password)
    with page.expect_response(lambda r: r.url.endswith("/staff/login")) as answer:
        page.click("button[type=submit]")
    page.wait_for_load_state()
    return answer.value


def unlabelled_fields(page) -> list[str]:
    return page.evaluate("""() => [...document.querySelectorAll('input:not([type=hidden]), select, textarea')]
        .filter(el => !el.labels || el.labels.length === 0).map(el => el.name || el.id)""")


def fits_without_horizontal_scroll(page) -> bool:
    return page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth + 1")


def test_keyboard_only_client_completes_the_whole_flow(site, page, run_bin):
    page.goto(link(site, "agr-web-0001"))
    shot(page, "0-start")
    assert unlabelled_fields(page) == []
    tab_to(page, "#start")
    page.keyboard.press("Enter")
    page.wait_for_url("**/sign/consent")
    assert page.evaluate("() => document.documentElement.lang") == "en"
    shot(page, "1-consent")
    assert unlabelled_fields(page) == []
    tab_to(page, "#consent")
    page.keyboard.press("Space")
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    page.wait_for_url("**/sign/agreement")
    shot(page, "2-read-and-initial")
    assert unlabelled_fields(page) == []
    initials = page.query_selector_all("input[name^='initials.']")
    assert initials, "the agreement has clauses to initial"
    for field in initials:
        tab_to(page, f"#{field.get_attribute('id')}")
        page.keyboard.type("JQD")
    page.keyboard.press("Enter")
    page.wait_for_url("**/sign/signature")
    shot(page, "3-sign")
    assert unlabelled_fields(page) == []
    tab_to(page, "#name")
    page.keyboard.type("Jane Q. Doe")
    tab_to(page, "#intent")
    page.keyboard.press("Space")
    tab_to(page, "#sign-button")
    page.keyboard.press("Enter")
    page.wait_for_url("**/sign/done")
    shot(page, "4-done")
    with page.expect_download() as download:
        tab_to(page, "a[href$='agreement.pdf']")
        page.keyboard.press("Enter")
    saved = Path(download.value.path())
    folder = site["root"] / "signed" / "agr-web-0001"
    # The client takes home the signed copy: the archived PDF byte for byte, then their PAdES signature.
    assert saved.read_bytes() == (folder / "01-client.copy.pdf").read_bytes()
    assert saved.read_bytes().startswith((folder / "agreement.pdf").read_bytes())
    record = json.loads((folder / "01-client.json").read_text())
    assert record["signer"] == {"name": "Jane Q. Doe", "role": "client"}
    assert record["identity"] == {"method": "photo ID checked in person", "checked_by": "Front desk (test)"}
    assert record["method"]["drawn_signature_png_sha256"] is None
    tab_to(page, "#finish")
    page.keyboard.press("Enter")
    page.wait_for_url("**/sign/finish")  # the closing page (a plain wait could return before navigating)
    page.wait_for_load_state()
    shot(page, "5-finished")
    assert "session is closed" in page.content()
    # The therapist countersigns; agreements verify and OpenSSL accept both signatures.
    countersign(site["practice"], "agr-web-0001")
    res = run_bin("verify", folder, "--trust", site["root"] / "pki" / "root.pem")
    assert res.exit_code == 0, res.stdout + res.stderr
    assert res.stdout.startswith("valid: agr-web-0001 signed by Jane Q. Doe (client)")
    for name in ("01-client.json", "02-therapist.json"):
        proc = subprocess.run(["openssl", "cms", "-verify", "-binary", "-inform", "DER", "-in",
                               str(folder / f"{name}.p7s"), "-content", str(folder / name), "-CAfile",
                               str(site["root"] / "pki" / "root.pem"), "-purpose", "any", "-out", "/dev/null"],
                              capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr


def test_drawn_signature_is_captured_as_png(site, page):
    start(page, link(site, "agr-web-0002"))
    page.check("#consent")
    page.click("button[type=submit]")
    for field in page.query_selector_all("input[name^='initials.']"):
        field.fill("JR")
    page.click("button[type=submit]")
    page.wait_for_url("**/sign/signature")
    page.fill("#name", "John Roe")
    box = page.query_selector("#pad").bounding_box()
    page.mouse.move(box["x"] + 30, box["y"] + 80)
    page.mouse.down()
    page.mouse.move(box["x"] + 180, box["y"] + 120, steps=8)
    page.mouse.move(box["x"] + 320, box["y"] + 50, steps=8)
    page.mouse.up()
    shot(page, "3-sign-with-drawing")
    page.check("#intent")
    page.click("#sign-button")
    page.wait_for_url("**/sign/done")
    folder = site["root"] / "signed" / "agr-web-0002"
    record = json.loads((folder / "01-client.json").read_text())
    png = (folder / record["method"]["drawn_signature_file"]).read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    assert drawing.clean_png(png) == png  # the stored picture is the server's re-encoding of the canvas
    assert record["method"]["drawn_signature_png_sha256"] == hashlib.sha256(png).hexdigest()
    ledger = [json.loads(line) for line in (site["root"] / "signed" / "ledger.jsonl").read_text().splitlines()]
    entry = next(e for e in ledger if e.get("record") == "01-client.json" and e["agreement_id"] == "agr-web-0002")
    assert entry["files"][record["method"]["drawn_signature_file"]] == hashlib.sha256(png).hexdigest()


def test_reused_expired_and_altered_links_are_refused(site, page):
    url = link(site, "agr-web-0003")
    altered = url[:-1] + ("A" if url[-1] != "A" else "B")
    page.goto(altered)
    assert "not valid" in page.content()
    assert page.context.cookies() == []
    start(page, url)
    other = page.context.browser.new_context()
    try:
        second = other.new_page()
        second.goto(url)
        shot(second, "link-already-used")
        assert "already used" in second.content()
        assert other.cookies() == []
    finally:
        other.close()
    expired = link(site, "agr-web-0003", minutes=1)
    digest = __import__("hashlib").sha256(expired.rsplit("/", 1)[1].encode()).hexdigest()
    ticket_file = site["root"] / "intake" / "pending" / f"{digest}.json"
    data = json.loads(ticket_file.read_text())
    data["expires"] = "2000-01-01T00:00:00+00:00"
    ticket_file.write_text(json.dumps(data))
    page.context.clear_cookies()
    page.goto(expired)
    assert "expired" in page.content()


def test_a_form_without_its_csrf_token_is_refused(site, page):
    start(page, link(site, "agr-web-0003"))
    response = page.request.post(f"{site['base']}/sign/consent", form={"consent": "yes"})
    assert response.status == 400
    assert "could not be accepted" in response.text()
    page.reload()
    assert page.url.endswith("/sign/consent")  # consent was not recorded: still the first step
    page.goto(f"{site['base']}/sign/agreement")
    assert page.url.endswith("/sign/consent")


def test_a_second_agreement_cannot_be_reached_from_the_first_session(site, page):
    start(page, link(site, "agr-web-0004"))
    page.check("#consent")
    page.click("button[type=submit]")
    page.wait_for_url("**/sign/agreement")
    content = page.content()
    for other_id, other_name in CLIENTS.items():
        if other_id != "agr-web-0004":
            assert other_id not in content and other_name not in content
    pdf = page.request.get(f"{site['base']}/sign/document.pdf")
    assert pdf.body() == (site["root"] / "drafts" / "agr-web-0004" / "agreement.pdf").read_bytes()
    for path in ("/sign/document.pdf?id=agr-web-0001", "/sign/agr-web-0001", "/signed/agr-web-0001/agreement.pdf",
                 "/drafts/agr-web-0001/agreement.pdf", "/sign/copy/agreement.pdf", "/staff/open"):
        response = page.request.get(site["base"] + path)
        body = response.body()
        assert b"Jane Q. Doe" not in body
        assert body != (site["root"] / "signed" / "agr-web-0001" / "agreement.pdf").read_bytes()
    assert site["base"] in page.url and "agr-web" not in page.url


def test_pages_stay_readable_at_200_percent_zoom(site, browser):
    # 200% zoom on a 1280-pixel screen leaves 640 CSS pixels: nothing may need sideways scrolling.
    context = browser.new_context(viewport={"width": 640, "height": 900}, device_scale_factor=2)
    try:
        pg = context.new_page()
        pg.goto(link(site, "agr-web-0003"))
        assert fits_without_horizontal_scroll(pg)
        shot(pg, "zoom-200-start")
        pg.click("#start")
        pg.wait_for_url("**/sign/consent")
        assert fits_without_horizontal_scroll(pg)
        shot(pg, "zoom-200-consent")
        pg.check("#consent")
        pg.click("button[type=submit]")
        pg.wait_for_url("**/sign/agreement")
        assert fits_without_horizontal_scroll(pg)
        for field in pg.query_selector_all("input[name^='initials.']"):
            field.fill("MM")
        pg.click("button[type=submit]")
        pg.wait_for_url("**/sign/signature")
        assert fits_without_horizontal_scroll(pg)
        shot(pg, "zoom-200-sign")
    finally:
        context.close()


class PrefetchingPage(http.server.BaseHTTPRequestHandler):
    """Another site's page that asks the browser to prefetch a link, as a mail client or a search page might."""

    target = ""

    def do_GET(self):  # http.server's name
        body = ('<!DOCTYPE html><html lang="en"><title>mail</title>'
                f'<link rel="prefetch" href="{self.target}"><p>A message with a link.</p></html>').encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def pending(site, url: str) -> bool:
    digest = hashlib.sha256(url.rsplit("/", 1)[1].encode()).hexdigest()
    return (site["root"] / "intake" / "pending" / f"{digest}.json").is_file()


def test_head_a_prefetch_and_a_link_scanner_do_not_use_up_a_link(site, page):
    url = link(site, "agr-web-0003")
    # A mail scanner: HEAD, then GET, from outside any browser.
    assert page.request.fetch(url, method="HEAD").status == 200
    with urllib.request.urlopen(url) as response:
        assert response.status == 200 and b'id="start"' in response.read()
    # A real browser prefetch, asked for by another page (Chromium sends Sec-Purpose: prefetch).
    site["seen"].prefetched.clear()
    PrefetchingPage.target = url
    other = http.server.ThreadingHTTPServer(("127.0.0.1", 0), PrefetchingPage)
    thread = threading.Thread(target=other.serve_forever, daemon=True)
    thread.start()
    try:
        page.goto(f"http://127.0.0.1:{other.server_port}/")
        assert site["seen"].prefetched.wait(30), f"Chromium sent no prefetch: {site['seen'].requests}"
    finally:
        other.shutdown()
        other.server_close()
    assert any(method == "GET" and "prefetch" in purpose for method, purpose in site["seen"].requests)
    assert pending(site, url)
    # The client opens the link: the Start page, and Start works.
    start(page, url, "0-start-after-prefetch")
    assert not pending(site, url)
    shot(page, "1-consent-after-prefetch")


def test_staff_sign_in_with_their_own_account_and_the_record_names_them(site, page):
    page.goto(f"{site['base']}/staff")
    assert unlabelled_fields(page) == []
    shot(page, "staff-1-sign-in")
    answer = staff_sign_in(page, site, password=PASS.decode())  # the intake CA's passphrase: no one's password
    assert answer.status == 403 and "do not match a staff account" in page.content()
    shot(page, "staff-1-sign-in-refused")
    answer = staff_sign_in(page, site)
    assert answer.status == 302
    assert "Signed in as Pat Kim" in page.content()
    assert unlabelled_fields(page) == []
    shot(page, "staff-2-open-an-intake")
    page.select_option("#agreement", "agr-web-0005")
    page.click("text=Open intake")
    page.wait_for_load_state()
    shot(page, "staff-3-intake-link")
    url = page.get_attribute("p.link a", "href")
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/i/[A-Za-z0-9_-]{43}", url)
    to_signature(page, url, "Lena Staffed")  # staff hand the tablet over: Start ends the staff session
    page.click("#sign-button")
    page.wait_for_url("**/sign/done")
    record = json.loads((site["root"] / "signed" / "agr-web-0005" / "01-client.json").read_text())
    assert record["identity"] == {"method": "photo ID checked in person", "checked_by": "Pat Kim",
                                  "staff_account": "pat.kim"}
    page.goto(f"{site['base']}/staff")
    assert page.is_visible("#password")  # the tablet is the client's now: no staff session on it


def test_a_guesser_locks_out_neither_the_client_nor_the_staff(site, browser):
    clock = site["clock"]
    clock.advance(3600)  # the failures of earlier tests (a used link, an altered one) are forgotten
    contexts = [browser.new_context() for _ in range(4)]
    guesser, client, desk, fresh = (c.new_page() for c in contexts)
    try:
        # The staff member signed in on the desk's browser before (it is a known device), then signed out.
        assert staff_sign_in(desk, site).status == 302
        desk.click("text=Sign out")
        desk.wait_for_load_state()
        # Someone on the same network tries links...
        wrong = [f"{site['base']}/i/{base64.urlsafe_b64encode(bytes([i]) * 32).decode()[:43]}" for i in range(14)]
        statuses = [guesser.request.get(url).status for url in wrong[:-1]] + [guesser.goto(wrong[-1]).status]
        assert statuses[:11] == [404] * 11 and statuses[11:] == [429] * 3
        assert "Too many links that do not work" in guesser.content()
        shot(guesser, "link-too-many-tries")
        # ...and the client's valid link still opens at once, from the same address.
        start(client, link(site, "agr-web-0003"))
        shot(client, "1-consent-while-a-guesser-is-slowed")
        # The guesser tries passwords: after 4 wrong ones, sign-ins from new browsers wait.
        answers = [staff_sign_in(guesser, site, password=f"guess number {i} of many").status for i in range(6)]
        assert answers == [403] * 4 + [429] * 2
        assert "too many wrong sign-ins" in guesser.content()
        shot(guesser, "staff-too-many-tries")
        answer = staff_sign_in(fresh, site)  # the right password from a new browser: asked to wait, not locked
        assert answer.status == 429
        retry = int(answer.headers["retry-after"])
        assert 1 <= retry <= 60
        # The staff member's own browser goes straight in.
        assert staff_sign_in(desk, site).status == 302
        assert "Signed in as Pat Kim" in desk.content()
        # After the wait, the new browser gets in too: a wait, never a lockout.
        clock.advance(retry)
        assert staff_sign_in(fresh, site).status == 302
        assert "Signed in as Pat Kim" in fresh.content()
    finally:
        for context in contexts:
            context.close()
        clock.advance(3600)  # every failure forgotten: later tests start unthrottled


def test_idle_sessions_end_for_the_client_and_for_staff(site, browser):
    clock = site["clock"]
    context = browser.new_context()
    staff_context = browser.new_context()
    try:
        tablet = context.new_page()
        start(tablet, link(site, "agr-web-0004"))
        clock.advance(14 * 60)
        tablet.reload()
        assert tablet.url.endswith("/sign/consent") and tablet.is_visible("#consent")  # 14 minutes: still open
        clock.advance(15 * 60)
        tablet.reload()
        assert "ended after 15 minutes without activity" in tablet.content()
        shot(tablet, "session-ended-idle")
        desk = staff_context.new_page()
        assert staff_sign_in(desk, site).status == 302
        clock.advance(15 * 60)
        desk.reload()
        assert desk.is_visible("#password") and "signed out after 15 minutes without activity" in desk.content()
        shot(desk, "staff-signed-out-idle")
    finally:
        context.close()
        staff_context.close()


def png_of(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    rows = b"".join(b"\x00" + b"\x00\x00\x00\xff" * width for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows, 9)) + chunk(b"IEND", b""))


def submit_drawing(page, value: str) -> None:
    """Send the sign form with ``value`` as the drawing, as a tampered page or a rogue client would
    (form.submit() skips the page's own submit handler, which would put the canvas there)."""
    page.check("#intent")
    with page.expect_navigation():
        page.evaluate("v => { document.getElementById('drawn').value = v; "
                      "document.getElementById('sign-form').submit(); }", value)


AGAIN = "Draw it again, or sign without a drawing."


def test_a_non_png_or_oversized_drawing_is_refused(site, page):
    to_signature(page, link(site, "agr-web-0006"), "Omar Drawn")
    gif = "data:image/png;base64," + base64.b64encode(b"GIF89a\x01\x00\x01\x00\x00\x00\x00;").decode()
    wide = "data:image/png;base64," + base64.b64encode(png_of(drawing.MAX_WIDTH * 2, 40)).decode()
    trailing = "data:image/png;base64," + base64.b64encode(png_of(60, 20) + b"<script>x</script>").decode()
    for value in (gif, wide, trailing):
        submit_drawing(page, value)
        assert page.url.endswith("/sign/signature")
        assert page.inner_text("#error") == f"Please check: {drawing.REFUSED}. {AGAIN}"
    shot(page, "3-sign-drawing-refused")
    assert not (site["root"] / "signed" / "agr-web-0006" / "01-client.json").exists()
    # A real drawing from the pad is accepted, and what is kept is the server's re-encoding.
    page.check("#intent")
    box = page.query_selector("#pad").bounding_box()
    page.mouse.move(box["x"] + 40, box["y"] + 60)
    page.mouse.down()
    page.mouse.move(box["x"] + 260, box["y"] + 110, steps=6)
    page.mouse.up()
    page.click("#sign-button")
    page.wait_for_url("**/sign/done")
    folder = site["root"] / "signed" / "agr-web-0006"
    record = json.loads((folder / "01-client.json").read_text())
    stored = (folder / record["method"]["drawn_signature_file"]).read_bytes()
    assert drawing.clean_png(stored) == stored
    assert record["method"]["drawn_signature_png_sha256"] == hashlib.sha256(stored).hexdigest()



def test_two_tablets_sign_two_agreements_at_once_and_the_archive_audits_valid(site, browser, run_bin, tmp_path):
    # Two fresh drafts, two browser contexts (two tablets) interleaved step by step.
    practice = site["practice"]
    renderer = Renderer.load(site["root"])
    ids = {"agr-web-0101": "Richard Miles", "agr-web-0102": "Sam Example"}
    for aid, name in ids.items():
        renderer.render_to(Job(make_spec(client=name, therapist="lee", id=aid), practice.drafts))
    tablets = []
    for aid in ids:
        context = browser.new_context()
        pg = context.new_page()
        start(pg, link(site, aid))
        tablets.append((context, pg, aid))
    try:
        for _, pg, _ in tablets:
            pg.check("#consent")
            pg.click("button[type=submit]")
        for _, pg, _ in tablets:
            pg.wait_for_url("**/sign/agreement")
            for field in pg.query_selector_all("input[name^='initials.']"):
                field.fill("XY")
            pg.click("button[type=submit]")
        for _, pg, aid in tablets:
            pg.wait_for_url("**/sign/signature")
            pg.fill("#name", ids[aid])
            pg.check("#intent")
        # Both press Sign without waiting for the other: the server handles them concurrently.
        for _, pg, _ in tablets:
            pg.click("#sign-button", no_wait_after=True)
        for _, pg, _ in tablets:
            pg.wait_for_url("**/sign/done")
    finally:
        for context, _, _ in tablets:
            context.close()
    for aid in ids:
        assert (site["root"] / "signed" / aid / "01-client.json").is_file()
    # Countersign everything signed through the web, then audit the whole archive.
    for folder in sorted((site["root"] / "signed").iterdir()):
        if folder.is_dir() and not folder.name.startswith(".") and \
                not (folder / "02-therapist.json").exists() and (folder / "01-client.json").exists():
            countersign(practice, folder.name)
    res = run_bin("audit", site["root"] / "signed", "--json", "--trust", site["root"] / "pki" / "root.pem")
    assert res.exit_code == 0, (res.stdout[-2000:], res.stderr[-2000:])
    summary = json.loads(res.stdout)["summary"]
    assert summary["counts"]["invalid"] == 0
    signed = [f for f in (site["root"] / "signed").iterdir() if f.is_dir() and not f.name.startswith(".")]
    assert summary["counts"]["valid"] == len(signed) >= 2
