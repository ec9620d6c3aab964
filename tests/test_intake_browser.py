"""The intake pages in a real browser: Debian's Chromium driven by Playwright.

The server is the real Flask app on 127.0.0.1 (a thread); the browser is
/usr/bin/chromium (Playwright never downloads one). Screenshots of every page go
to tests/output/screenshots/ for a person to look at.
"""

from __future__ import annotations

import json
import subprocess
import threading
from pathlib import Path

import pytest

from agreements_kit.authoring.practice import load_practice
from agreements_kit.authoring.render import Job, Renderer
from agreements_kit.authoring.spec import make_spec
from agreements_kit.cli.demo import DEMO_PRACTICE
from agreements_kit.intake.app import create_app, intake_link
from agreements_kit.intake.tickets import TicketStore
from agreements_kit.signing.pki import PKI
from agreements_kit.signing.setup import init_practice
from agreements_kit.signing.sign import sign_therapist

CHROMIUM = "/usr/bin/chromium"
PASS = b"browser-test-passphrase"  # the intake CA's
ROOT_PASS = b"browser-root-pass"
CLINICIAN_PASS = b"browser-clinician-pass"
LEE_PASS = b"browser-lee-pass"
SHOTS = Path(__file__).resolve().parent / "output" / "screenshots"
CLIENTS = {"agr-web-0001": "Jane Q. Doe", "agr-web-0002": "John Roe", "agr-web-0003": "Mary Major",
           "agr-web-0004": "Ana María Núñez"}

if not Path(CHROMIUM).exists():  # a missing browser fails these tests; it never skips them
    raise RuntimeError("Debian's chromium is not installed: scripts/bootstrap --test installs it")

from playwright import sync_api  # noqa: E402  (after the clearer message above)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """A practice with four drafts and the intake server running for it."""
    from werkzeug.serving import make_server

    root = tmp_path_factory.mktemp("web") / "practice"
    init_practice(root, passphrase=ROOT_PASS, intake_passphrase=PASS, clinician_passphrase=CLINICIAN_PASS,
                  **DEMO_PRACTICE)
    practice = load_practice(root)
    PKI(root / "pki").issue_clinician("lee", "Dr. Robin Lee", practice.name, CLINICIAN_PASS, LEE_PASS)
    renderer = Renderer.load(root)
    for aid, name in CLIENTS.items():
        renderer.render_to(Job(make_spec(client=name, therapist="lee", id=aid), practice.drafts))
    app = create_app(root, PASS)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield {"root": root, "practice": practice, "base": f"http://127.0.0.1:{server.server_port}",
           "tickets": TicketStore(root / "intake")}
    server.shutdown()


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"])
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


def unlabelled_fields(page) -> list[str]:
    return page.evaluate("""() => [...document.querySelectorAll('input:not([type=hidden]), select, textarea')]
        .filter(el => !el.labels || el.labels.length === 0).map(el => el.name || el.id)""")


def fits_without_horizontal_scroll(page) -> bool:
    return page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth + 1")


def test_keyboard_only_client_completes_the_whole_flow(site, page, run_bin):
    page.goto(link(site, "agr-web-0001"))
    assert page.url.endswith("/sign/consent")
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
    assert saved.read_bytes() == (folder / "agreement.pdf").read_bytes()
    record = json.loads((folder / "01-client.json").read_text())
    assert record["signer"] == {"name": "Jane Q. Doe", "role": "client"}
    assert record["identity"] == {"method": "photo ID checked in person", "checked_by": "Front desk (test)"}
    assert record["method"]["drawn_signature_png_sha256"] is None
    tab_to(page, "button[type=submit]")
    page.keyboard.press("Enter")
    page.wait_for_url("**/sign/finish")  # the closing page (a plain wait could return before navigating)
    page.wait_for_load_state()
    shot(page, "5-finished")
    assert "session is closed" in page.content()
    # The therapist countersigns; agreements verify and OpenSSL accept both signatures.
    sign_therapist(site["practice"], "agr-web-0001", LEE_PASS)
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
    page.goto(link(site, "agr-web-0002"))
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
    import hashlib

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
    page.goto(url)
    assert page.url.endswith("/sign/consent")
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
    page.goto(link(site, "agr-web-0003"))
    response = page.request.post(f"{site['base']}/sign/consent", form={"consent": "yes"})
    assert response.status == 400
    assert "could not be accepted" in response.text()
    page.reload()
    assert page.url.endswith("/sign/consent")  # consent was not recorded: still the first step
    page.goto(f"{site['base']}/sign/agreement")
    assert page.url.endswith("/sign/consent")


def test_a_second_agreement_cannot_be_reached_from_the_first_session(site, page):
    page.goto(link(site, "agr-web-0004"))
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
        pg.goto(link(site, aid))
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
            sign_therapist(practice, folder.name, LEE_PASS)
    res = run_bin("audit", site["root"] / "signed", "--json", "--trust", site["root"] / "pki" / "root.pem")
    assert res.exit_code == 0, (res.stdout[-2000:], res.stderr[-2000:])
    summary = json.loads(res.stdout)["summary"]
    assert summary["counts"]["invalid"] == 0
    signed = [f for f in (site["root"] / "signed").iterdir() if f.is_dir() and not f.name.startswith(".")]
    assert summary["counts"]["valid"] == len(signed) >= 2
