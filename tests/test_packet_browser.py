"""An intake packet in a real browser: Debian's Chromium driven by Playwright.

Staff open one link for two documents of one client (the consent to electronic
records and the therapists' agreement) on /staff; the client consents once, reads,
initials and signs each document on its own pages, and downloads both signed copies
and one receipt from the done page. Each folder then verifies with ``agreements
verify``. A second client leaves after the first document: the staff page shows the
packet left part-way. Screenshots of every new page go to tests/output/screenshots/.
The server is the real Flask app on 127.0.0.1 (a thread), as in test_intake_browser.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import threading
from pathlib import Path

import pytest
import test_intake_browser as web
from helpers import FakeClock, cheap_hasher
from test_intake_browser import (
    CLINICIAN_PASS,
    LEE_PASS,
    PASS,
    ROOT_PASS,
    STAFF,
    countersign,
    staff_sign_in,
    start,
    unlabelled_fields,
)

from agreements_kit.authoring.documents import ESIGN_DISCLOSURE
from agreements_kit.authoring.practice import load_practice
from agreements_kit.authoring.render import Job, Renderer
from agreements_kit.authoring.spec import make_spec
from agreements_kit.cli.demo import DEMO_PRACTICE
from agreements_kit.intake.app import create_app
from agreements_kit.intake.staff import StaffStore
from agreements_kit.signing.pki import PKI
from agreements_kit.signing.renders import log_renders
from agreements_kit.signing.setup import init_practice

# test_intake_browser's fixtures, by name: Debian's Chromium, and a fresh browser context per test.
browser = web.browser
page = web.page

DATE = dt.date(2026, 12, 3)
# (agreement id, client, document): two clients, each with the therapists' agreement and the consent.
DOCUMENTS = [("agr-pb-jane-agreement", "Jane Q. Doe", None), ("agr-pb-jane-consent", "Jane Q. Doe", ESIGN_DISCLOSURE),
             ("agr-pb-omar-agreement", "Omar Left", None), ("agr-pb-omar-consent", "Omar Left", ESIGN_DISCLOSURE)]


def shot(page, name: str) -> None:
    """A screenshot of the page, and axe-core's WCAG 2.1 A/AA check of it: every packet page is checked
    where the flow shows it."""
    from axe_check import check_page

    web.shot(page, name)
    check_page(page, name)


@pytest.fixture(scope="module")
def packet_site(tmp_path_factory):
    """A practice with two clients' packets, a therapist's key, a staff account and the intake server running."""
    from werkzeug.serving import make_server

    root = tmp_path_factory.mktemp("packet-web") / "practice"
    init_practice(root, passphrase=ROOT_PASS, intake_passphrase=PASS, clinician_passphrase=CLINICIAN_PASS,
                  **DEMO_PRACTICE)
    practice = load_practice(root)
    PKI(root / "pki").issue_clinician("lee", "Dr. Robin Lee", practice.name, CLINICIAN_PASS, LEE_PASS)
    renderers = {None: Renderer.load(root), ESIGN_DISCLOSURE: Renderer.load(root, ESIGN_DISCLOSURE)}
    drafts = [renderers[kind].render_to(Job(make_spec(client=name, therapist="lee", id=aid, date=DATE),
                                            practice.drafts)) for aid, name, kind in DOCUMENTS]
    log_renders(practice, drafts)
    StaffStore(root, cheap_hasher()).add(*STAFF)
    app = create_app(root, PASS, clock=FakeClock(), staff_hasher=cheap_hasher())
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield {"root": root, "practice": practice, "base": f"http://127.0.0.1:{server.server_port}"}
    server.shutdown()


def open_packet(pg, site, first: str, also: str, name: str | None = None) -> str:
    """Staff sign in and open a packet of two documents on /staff; the link the page shows."""
    assert staff_sign_in(pg, site).status == 302
    pg.select_option("#agreement", first)
    pg.check(f"input[name=also][value={also}]")
    if name:
        shot(pg, name)
    pg.click("text=Open intake")
    pg.wait_for_selector("p.link a")
    return pg.get_attribute("p.link a", "href")


def initial_and_sign(pg, name: str, initials: str, shot_prefix: str | None = None) -> None:
    pg.wait_for_url("**/sign/agreement")
    if shot_prefix:
        shot(pg, f"{shot_prefix}-read")
    assert unlabelled_fields(pg) == []
    fields = pg.query_selector_all("input[name^='initials.']")
    assert fields, "each document of the packet has a part to initial"
    for field in fields:
        field.fill(initials)
    pg.click("button[type=submit]")
    pg.wait_for_url("**/sign/signature")
    pg.fill("#name", name)
    pg.check("#intent")
    if shot_prefix:
        shot(pg, f"{shot_prefix}-sign")
    assert unlabelled_fields(pg) == []
    pg.click("#sign-button")


def test_a_packet_of_two_documents_end_to_end(packet_site, page, run_bin):
    site, root = packet_site, packet_site["root"]
    url = open_packet(page, site, "agr-pb-jane-agreement", "agr-pb-jane-consent", "packet-0-staff-choose")
    shot(page, "packet-0-staff-link")
    listed = page.inner_text("ol.documents")
    assert listed.index("agr-pb-jane-consent") < listed.index("agr-pb-jane-agreement")  # the consent first
    start(page, url)
    assert page.is_visible("text=What you will sign today")
    shot(page, "packet-1-consent")
    page.check("#consent")
    page.click("button[type=submit]")
    initial_and_sign(page, "Jane Q. Doe", "JQD", "packet-2-document-1")
    page.wait_for_url("**/sign/agreement")
    assert page.is_visible("text=Document 1 of 2, Consent to electronic records and signatures, is signed")
    assert page.is_visible("text=Document 2 of 2: Our commitments to you")
    initial_and_sign(page, "Jane Q. Doe", "JQD", "packet-3-document-2")
    page.wait_for_url("**/sign/done")
    shot(page, "packet-4-done")
    assert page.is_visible("text=You signed 2 documents")
    saved = {}
    for n in (1, 2):
        with page.expect_download() as download:
            page.click(f"a[href$='agreement-{n}.pdf']")
        saved[n] = Path(download.value.path()).read_bytes()
    with page.expect_download() as download:
        page.click("a[href$='receipt.pdf']")
    receipt = Path(download.value.path()).read_bytes()
    assert receipt.startswith(b"%PDF")
    consent, agreement = root / "signed" / "agr-pb-jane-consent", root / "signed" / "agr-pb-jane-agreement"
    # Each download is that document's own signed copy: its archived PDF, then the client's PAdES signature.
    assert saved[1] == (consent / "01-client.copy.pdf").read_bytes()
    assert saved[2] == (agreement / "01-client.copy.pdf").read_bytes()
    for folder in (consent, agreement):
        record = json.loads((folder / "01-client.json").read_text())
        assert record["document"]["sha256"] == hashlib.sha256((folder / "agreement.pdf").read_bytes()).hexdigest()
        assert record["identity"]["staff_account"] == STAFF[0]
    page.click("text=Finish and close")
    page.wait_for_url("**/sign/finish")
    # The therapist countersigns each; each folder verifies on its own.
    for folder in (consent, agreement):
        countersign(site["practice"], folder.name)
        res = run_bin("verify", folder, "--trust", root / "pki" / "root.pem")
        assert res.exit_code == 0, res.stdout + res.stderr
        assert res.stdout.startswith(f"valid: {folder.name} signed by Jane Q. Doe (client)"), res.stdout


def test_a_packet_left_half_way_shows_on_the_staff_page(packet_site, browser):
    site, root = packet_site, packet_site["root"]
    desk_context, tablet_context = browser.new_context(), browser.new_context()
    try:
        desk, tablet = desk_context.new_page(), tablet_context.new_page()
        url = open_packet(desk, site, "agr-pb-omar-consent", "agr-pb-omar-agreement")
        start(tablet, url)
        tablet.check("#consent")
        tablet.click("button[type=submit]")
        initial_and_sign(tablet, "Omar Left", "OL")
        tablet.wait_for_url("**/sign/agreement")
        shot(tablet, "packet-5-next-document")
        # The client walks away before the second document (the tablet is left as it is).
        desk.goto(f"{site['base']}/staff")
        shot(desk, "packet-6-staff-left-part-way")
        packets = desk.inner_text("section.packets")
        assert "Omar Left: left part-way" in packets
        assert "agr-pb-omar-consent: Consent to electronic records and signatures: signed by the client" in packets
        assert "agr-pb-omar-agreement: Our commitments to you: waiting for the client's signature" in packets
        options = desk.eval_on_selector_all("#agreement option", "els => els.map(e => e.value)")
        assert "agr-pb-omar-agreement" in options and "agr-pb-omar-consent" not in options
        assert (root / "signed" / "agr-pb-omar-consent" / "01-client.json").is_file()
        assert not (root / "signed" / "agr-pb-omar-agreement").exists()
    finally:
        desk_context.close()
        tablet_context.close()
