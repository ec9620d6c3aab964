"""Intake packets: several documents of one client signed in one visit, without a browser.

A packet here is the electronic-records consent (a signable document of its own,
rendered from clauses/documents/esign-disclosure through the same pipeline as the
therapists' agreement) and the therapists' agreement. Through Flask's test client
and the real CLI: one link, one consent, then each document read, initialled and
signed on its own pages; each becomes its own agreement folder with its own record,
CMS signature and signed copy, and each verifies with ``agreements verify`` after the
therapist countersigns; the ledger has both; one receipt lists both. Different
clients are refused with one line; a client who leaves half way leaves the first
document signed and the second awaiting signature, which the staff page shows.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import subprocess
from pathlib import Path

import pytest
from helpers import FakeClock, cheap_hasher, ledger_entries
from test_intake import (
    CHECKED_BY,
    IDENTITY,
    INITIALS_RE,
    Tablet,
    as_staff,
    copy_practice,
    one_error_line,
    page_error,
    text,
    ticket_path,
)
from test_intake import new_app as intake_app

from agreements_kit.authoring.documents import ESIGN_DISCLOSURE, document_dirs
from agreements_kit.authoring.practice import load_practice
from agreements_kit.authoring.render import Job, Renderer
from agreements_kit.authoring.spec import make_spec
from agreements_kit.intake.staff import StaffStore
from agreements_kit.intake.tickets import IntakeError, TicketStore
from agreements_kit.signing.pki import PKI
from agreements_kit.signing.renders import log_renders
from agreements_kit.signing.setup import init_practice
from agreements_kit.signing.sign import sign_therapist

PASS = "practice-pass-1"  # the intake CA's (test_intake's new_app signs with it)
ROOT_PASS = "root-pass-1"
CLINICIAN_PASS = b"clinician-ca-pass-1"
LEE_PASS = b"lee-key-pass-1"
STAFF_NAME, STAFF_FULL, STAFF_PASS = "pat.kim", "Pat Kim", "front desk pass phrase one"
CLIENT = "Jane Q. Doe"
OTHER = "Marisol Okonkwo"
AGREEMENT = "agr-pk-agreement"  # the therapists' agreement, Jane's
CONSENT = "agr-pk-consent"  # the consent to electronic records, Jane's
OTHERS = "agr-pk-other"  # another client's agreement
DATE = dt.date(2026, 12, 3)
LINK_RE = re.compile(r"/i/([A-Za-z0-9_-]{43,})")


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    """A practice with a therapist's key, Jane's two documents, another client's agreement and a staff account."""
    root = tmp_path_factory.mktemp("packet-base") / "practice"
    init_practice(root, name="Test Practice", jurisdiction="US-NY", phone="(212) 555-0100",
                  address="1 Test Street, New York, NY", therapists={"lee": ("Dr. Robin Lee", "PhD", "psychologist")},
                  passphrase=ROOT_PASS.encode(), intake_passphrase=PASS.encode(),
                  clinician_passphrase=CLINICIAN_PASS)
    practice = load_practice(root)
    PKI(root / "pki").issue_clinician("lee", "Dr. Robin Lee", practice.name, CLINICIAN_PASS, LEE_PASS)
    agreements = Renderer.load(root)
    consents = Renderer.load(root, ESIGN_DISCLOSURE)
    drafts = [agreements.render_to(Job(make_spec(client=CLIENT, therapist="lee", id=AGREEMENT, date=DATE),
                                       practice.drafts)),
              consents.render_to(Job(make_spec(client=CLIENT, therapist="lee", id=CONSENT, date=DATE),
                                     practice.drafts)),
              agreements.render_to(Job(make_spec(client=OTHER, therapist="lee", id=OTHERS, date=DATE),
                                       practice.drafts))]
    log_renders(practice, drafts)
    StaffStore(root, cheap_hasher()).add(STAFF_NAME, STAFF_FULL, STAFF_PASS)
    return root


@pytest.fixture
def pr(base: Path, tmp_path: Path, monkeypatch) -> Path:
    for key in ("AGREEMENTS_PASSPHRASE", "AGREEMENTS_KEY_PASSPHRASE", "AGREEMENTS_INTAKE_PASSPHRASE",
                "AGREEMENTS_CLINICIAN_CA_PASSPHRASE", "AGREEMENTS_FAULT", "AGREEMENTS_PRACTICE"):
        monkeypatch.delenv(key, raising=False)
    return copy_practice(base, tmp_path / "practice")


def open_cli(cli, root: Path, *ids: str):
    return cli("intake", "open", *ids, "--identity", IDENTITY, "--checked-by", CHECKED_BY, "--practice", root,
               *as_staff(root))


def token_of(res) -> str:
    assert res.exit_code == 0, res.stderr
    m = LINK_RE.search(res.stdout)
    assert m, res.stdout
    return m.group(1)


def sign_current(t: Tablet, initials: str = "JQD", name: str = CLIENT):
    """Read, initial and sign the document the session is on; the signature POST's response."""
    r = t.get("/sign/agreement")
    assert r.status_code == 200, text(r)
    fields = INITIALS_RE.findall(text(r))
    assert fields, "each document of this packet has a part to initial"
    r = t.post("/sign/agreement", {"csrf": t.csrf, **{name_: initials for _, name_ in fields}})
    assert r.status_code == 302 and r.headers["Location"].endswith("/sign/signature"), text(r)
    assert t.get("/sign/signature").status_code == 200
    return t.sign(name=name)


def pending_tickets(root: Path) -> list[Path]:
    folder = root / "intake" / "pending"
    return sorted(folder.iterdir()) if folder.exists() else []


def pdf_text(path: Path | bytes, tmp: Path) -> str:
    if isinstance(path, bytes):
        (tmp / "doc.pdf").write_bytes(path)
        path = tmp / "doc.pdf"
    return subprocess.run(["pdftotext", "-layout", str(path), "-"], capture_output=True, text=True,
                          check=True).stdout


# --------------------------------------------------------------------------- the disclosure as a document


def test_the_consent_to_electronic_records_is_a_document_library_of_its_own(base: Path, cli):
    from agreements_kit.authoring.library import load_library
    from agreements_kit.authoring.lint import lint_library

    folder = document_dirs(load_practice(base))[ESIGN_DISCLOSURE]
    library = load_library(folder)  # every commitment covered by a clause: loading checks it
    assert library.name == ESIGN_DISCLOSURE and library.page == "agreement-esign.html.j2"
    assert {c.id for c in library.commitments} >= {"choice.paper-option", "withdrawal.right", "scope.documents",
                                                   "withdrawal.procedure", "copies.paper-on-request",
                                                   "copies.requirements", "copies.changes"}
    assert all(c.covers for c in library.clauses.values())
    report = lint_library(folder)
    assert report.ok, [str(p) for p in report.problems] + [g.label for g in report.too_hard]
    # The practice's main library does not pick it up: the therapists' agreement is unchanged.
    main = load_library(load_practice(base).library_dir())
    assert not set(main.clauses) & set(library.clauses)


def test_the_consent_renders_to_pdf_a_and_reproduces(base: Path, cli, tmp_path: Path):
    folder = base / "drafts" / CONSENT
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["library"]["name"] == ESIGN_DISCLOSURE
    assert manifest["agreement"]["client"]["name"] == CLIENT
    assert "record_retention_years" in manifest["variables"]
    meta = subprocess.run(["pdfinfo", "-meta", str(folder / "agreement.pdf")], capture_output=True, text=True,
                          check=True).stdout
    assert re.search(r"pdfaid:part(=\"|>)3", meta), meta  # PDF/A-3, like every agreement
    attached = subprocess.run(["pdfdetach", "-list", str(folder / "agreement.pdf")], capture_output=True, text=True,
                              check=True).stdout
    assert "manifest.json" in attached
    words = pdf_text(folder / "agreement.pdf", tmp_path)
    assert "Consent to electronic records and signatures" in words and CLIENT in words
    assert "Withdrawing your consent" in words and "Initials required" in words
    res = cli("reproduce", CONSENT, "--practice", base)
    assert res.exit_code == 0 and res.stdout.startswith("identical"), res.stdout + res.stderr


def test_render_document_option(pr: Path, cli):
    res = cli("render", "--client", CLIENT, "--therapist", "lee", "--id", "agr-pk-cli", "--document",
              ESIGN_DISCLOSURE, "--practice", pr)
    assert res.exit_code == 0, res.stderr
    manifest = json.loads((pr / "drafts" / "agr-pk-cli" / "manifest.json").read_text())
    assert manifest["library"]["name"] == ESIGN_DISCLOSURE
    one_error_line(cli("render", "--client", CLIENT, "--therapist", "lee", "--document", "no-such-document",
                       "--practice", pr), "unknown document 'no-such-document'", ESIGN_DISCLOSURE)


# --------------------------------------------------------------------------- one visit, two documents


@pytest.fixture(scope="module")
def visit(base: Path, tmp_path_factory):
    """The whole packet once: opened on the command line, consent once, both documents signed, copies taken."""
    from click.testing import CliRunner

    from agreements_kit.cli.commands import main

    root = copy_practice(base, tmp_path_factory.mktemp("visit") / "practice")
    res = CliRunner().invoke(main, ["intake", "open", AGREEMENT, CONSENT, "--identity", IDENTITY, "--checked-by",
                                    CHECKED_BY, "--practice", str(root), *map(str, as_staff(root))],
                             catch_exceptions=False)
    token = token_of(res)
    app = intake_app(root)
    t = Tablet(app)
    r: dict[str, object] = {"open": res}
    r["claim"] = t.claim(token)
    r["consent"] = t.get("/sign/consent")
    r["consent_post"] = t.post("/sign/consent", {"csrf": t.csrf, "consent": "yes"})
    r["review1"] = t.get("/sign/agreement")
    r["document1"] = t.get("/sign/document.pdf")
    r["sign1"] = sign_current(t)
    r["review2"] = t.get("/sign/agreement")
    r["document2"] = t.get("/sign/document.pdf")
    r["done_early"] = t.get("/sign/done")
    r["sign2"] = sign_current(t)
    r["done"] = t.get("/sign/done")
    r["copy1"] = t.get("/sign/copy/agreement-1.pdf")
    r["copy2"] = t.get("/sign/copy/agreement-2.pdf")
    r["copy3"] = t.get("/sign/copy/agreement-3.pdf")
    r["receipt"] = t.get("/sign/copy/receipt.pdf")
    return {"root": root, "token": token, "r": r, "tablet": t}


def test_a_packet_ticket_lists_its_documents_consent_first(visit):
    root, token = visit["root"], visit["token"]
    assert CONSENT in visit["r"]["open"].stdout and AGREEMENT in visit["r"]["open"].stdout
    stored = json.loads(ticket_path(root, token, "claimed").read_bytes())
    # Staff named the agreement first; the consent to electronic records is signed first all the same.
    assert stored["agreement_id"] == CONSENT and stored["packet"] == [CONSENT, AGREEMENT]


def test_the_client_consents_once_for_every_document(visit):
    r = visit["r"]
    consent = text(r["consent"])
    assert "What you will sign today" in consent
    assert consent.index(CONSENT) < consent.index(AGREEMENT)
    assert "Consent to electronic records and signatures" in consent and "Our commitments to you" in consent
    assert r["consent_post"].headers["Location"].endswith("/sign/agreement")
    # After the first signature the client goes straight to the second document, not back to consent.
    assert r["sign1"].status_code == 302 and r["sign1"].headers["Location"].endswith("/sign/agreement")
    assert r["sign2"].status_code == 302 and r["sign2"].headers["Location"].endswith("/sign/done")
    consent_pages = [p for m, p, _ in visit["tablet"].responses if p == "/sign/consent"]
    assert len(consent_pages) == 2  # the GET and the POST, once for the visit


def test_each_document_is_read_and_signed_on_its_own_pages(visit):
    root, r = visit["root"], visit["r"]
    first, second = text(r["review1"]), text(r["review2"])
    assert "Document 1 of 2: Consent to electronic records and signatures" in first and CONSENT in first
    assert "Document 2 of 2: Our commitments to you" in second and AGREEMENT in second
    assert "Document 1 of 2, Consent to electronic records and signatures, is signed" in second
    assert r["document1"].data == (root / "drafts" / CONSENT / "agreement.pdf").read_bytes() or \
        r["document1"].data == (root / "signed" / CONSENT / "agreement.pdf").read_bytes()
    assert r["document2"].data == (root / "signed" / AGREEMENT / "agreement.pdf").read_bytes()
    assert r["done_early"].status_code == 302  # no done page while a document is unsigned


def test_each_folder_has_its_own_record_signature_and_copy(visit):
    root = visit["root"]
    records = {}
    for aid in (CONSENT, AGREEMENT):
        folder = root / "signed" / aid
        names = sorted(p.name for p in folder.iterdir())
        assert {"agreement.pdf", "manifest.json", "01-client.json", "01-client.json.p7s",
                "01-client.copy.pdf"} <= set(names), names
        rec = json.loads((folder / "01-client.json").read_bytes())
        # The record says exactly what was signed: this document's id, PDF and manifest.
        assert rec["agreement_id"] == aid
        assert rec["document"]["sha256"] == hashlib.sha256((folder / "agreement.pdf").read_bytes()).hexdigest()
        assert rec["manifest"]["sha256"] == hashlib.sha256((folder / "manifest.json").read_bytes()).hexdigest()
        manifest = json.loads((folder / "manifest.json").read_text())
        assert set(rec["initials"]) == {c["id"] for c in manifest["clauses"] if c["initials"]}
        assert rec["identity"] == {"method": IDENTITY, "checked_by": CHECKED_BY, "staff_account": STAFF_NAME}
        assert (folder / "01-client.copy.pdf").read_bytes().startswith((folder / "agreement.pdf").read_bytes())
        records[aid] = rec
    # One consent, given once, is in both records; the initials are each document's own.
    assert records[CONSENT]["esign"] == records[AGREEMENT]["esign"]
    assert not set(records[CONSENT]["initials"]) & set(records[AGREEMENT]["initials"])
    assert records[CONSENT]["signed_at"] <= records[AGREEMENT]["signed_at"]


def test_the_ledger_has_both_signatures(visit):
    entries = [e for e, _ in ledger_entries(visit["root"] / "signed" / "ledger.jsonl")]
    signed = [e["agreement_id"] for e in entries if e.get("event") == "sign" and e.get("role") == "client"]
    assert signed == [CONSENT, AGREEMENT]
    # each names the staff member who opened the packet on the command line
    assert [e["staff_account"] for e in entries if e.get("event") == "sign" and e.get("role") == "client"] == \
        [STAFF_NAME, STAFF_NAME]


def test_the_done_page_lists_both_and_gives_each_copy_and_one_receipt(visit, tmp_path: Path):
    root, r = visit["root"], visit["r"]
    done = text(r["done"])
    assert "You signed 2 documents" in done
    assert done.index(CONSENT) < done.index(AGREEMENT)
    assert "agreement-1.pdf" in done and "agreement-2.pdf" in done and "receipt.pdf" in done
    assert r["copy1"].data == (root / "signed" / CONSENT / "01-client.copy.pdf").read_bytes()
    assert r["copy2"].data == (root / "signed" / AGREEMENT / "01-client.copy.pdf").read_bytes()
    assert 'filename=signed-document-2.pdf' in r["copy2"].headers["Content-Disposition"]
    assert r["copy3"].status_code == 404
    assert r["receipt"].status_code == 200 and r["receipt"].data.startswith(b"%PDF")
    words = pdf_text(r["receipt"].data, tmp_path)
    for aid in (CONSENT, AGREEMENT):
        assert aid in words
        assert hashlib.sha256((root / "signed" / aid / "agreement.pdf").read_bytes()).hexdigest()[:16] in \
            words.replace(" ", "").replace("\n", "")


def test_each_folder_verifies_after_countersigning(visit, run_bin):
    root = visit["root"]
    practice = load_practice(root)
    for aid in (CONSENT, AGREEMENT):
        sign_therapist(practice, aid, LEE_PASS)
        res = run_bin("verify", root / "signed" / aid, "--trust", root / "pki" / "root.pem")
        assert res.exit_code == 0, res.stdout + res.stderr
        assert res.stdout.startswith(f"valid: {aid} signed by {CLIENT} (client)"), res.stdout
    res = run_bin("audit", root / "signed", "--trust", root / "pki" / "root.pem")
    assert res.exit_code == 0, res.stdout + res.stderr


# --------------------------------------------------------------------------- refusals


def test_documents_of_different_clients_are_refused_on_the_command_line(pr: Path, cli):
    line = one_error_line(open_cli(cli, pr, CONSENT, OTHERS), "different clients", CONSENT, OTHERS)
    assert CLIENT not in line and OTHER not in line  # ids, not names
    assert pending_tickets(pr) == []


def test_a_packet_names_each_document_once_and_only_unsigned_ones(pr: Path, cli):
    one_error_line(open_cli(cli, pr, CONSENT, CONSENT), "named twice")
    one_error_line(open_cli(cli, pr, CONSENT, "agr-pk-nope"), "agr-pk-nope")
    token = token_of(open_cli(cli, pr, CONSENT))
    t = Tablet(intake_app(pr))
    t.claim(token)
    t.consent()
    assert sign_current(t).headers["Location"].endswith("/sign/done")  # a packet of one is a plain intake
    one_error_line(open_cli(cli, pr, AGREEMENT, CONSENT), CONSENT, "not awaiting a client signature")
    assert len(pending_tickets(pr)) == 0


def test_documents_of_different_clients_are_refused_on_the_staff_page(pr: Path):
    t = Tablet(intake_app(pr))
    t.get("/staff")
    t.post("/staff/login", {"csrf": t.csrf, "name": STAFF_NAME, "password": STAFF_PASS})
    home = text(t.get("/staff"))
    assert 'name="also"' in home and "Consent to electronic records and signatures" in home
    r = t.post("/staff/open", {"csrf": t.csrf, "agreement": CONSENT, "also": OTHERS, "role": "client",
                               "identity": IDENTITY})
    assert r.status_code == 422
    assert page_error(r) == (f"agreements {CONSENT} and {OTHERS} are for different clients: a packet holds one "
                             "client's documents.")
    assert pending_tickets(pr) == []


def test_staff_open_a_packet_on_the_staff_page(pr: Path):
    t = Tablet(intake_app(pr))
    t.get("/staff")
    t.post("/staff/login", {"csrf": t.csrf, "name": STAFF_NAME, "password": STAFF_PASS})
    t.get("/staff")
    r = t.post("/staff/open", {"csrf": t.csrf, "agreement": AGREEMENT, "also": [CONSENT, AGREEMENT],
                               "role": "client", "identity": IDENTITY})
    assert r.status_code == 200, page_error(r)
    body = text(r)
    assert "these documents only, signed in this order" in body
    assert body.index(CONSENT) < body.index(AGREEMENT)
    token = LINK_RE.search(body).group(1)
    stored = json.loads(ticket_path(pr, token).read_bytes())
    assert stored["packet"] == [CONSENT, AGREEMENT] and stored["opened_by"] == STAFF_NAME


def test_a_stale_signature_form_never_signs_the_next_document(pr: Path, cli):
    t = Tablet(intake_app(pr))
    t.claim(token_of(open_cli(cli, pr, CONSENT, AGREEMENT)))
    t.consent()
    csrf = t.csrf
    assert sign_current(t).headers["Location"].endswith("/sign/agreement")
    # The first document's signature form, sent again: the second document is not signed with it.
    r = t.post("/sign/signature", {"csrf": csrf, "name": CLIENT, "intent": "yes", "drawn": ""})
    assert r.status_code == 302 and r.headers["Location"].endswith("/sign/agreement")
    assert (pr / "signed" / CONSENT / "01-client.json").is_file()
    assert not (pr / "signed" / AGREEMENT).exists()


def test_a_stale_review_form_never_initials_nor_signs_the_next_document(pr: Path, cli):
    """Two agreements of one clause library (the same parts to initial): each page's forms name their document."""
    practice = load_practice(pr)
    second = "agr-pk-agreement-2"
    log_renders(practice, [Renderer.load(pr).render_to(Job(make_spec(client=CLIENT, therapist="lee", id=second,
                                                                     date=DATE), practice.drafts))])
    app = intake_app(pr)
    t = Tablet(app)
    t.claim(token_of(open_cli(cli, pr, AGREEMENT, second)))
    t.consent()
    r = t.get("/sign/agreement")
    first = t.document
    assert first in (AGREEMENT, second) and f'name="document" value="{first}"' in text(r)
    then = second if first == AGREEMENT else AGREEMENT
    review_form = {"csrf": t.csrf, "document": first, **{n: "JQD" for _, n in INITIALS_RE.findall(text(r))}}
    assert t.post("/sign/agreement", review_form).headers["Location"].endswith("/sign/signature")
    assert f'name="document" value="{first}"' in text(t.get("/sign/signature"))
    sign_form = {"csrf": t.csrf, "document": first, "name": CLIENT, "intent": "yes", "drawn": ""}
    assert t.post("/sign/signature", sign_form).headers["Location"].endswith("/sign/agreement")
    assert (pr / "signed" / first / "01-client.json").is_file()
    session, _ = app.extensions["agreements"]["sessions"].lookup(t.c.get_cookie("intake_session").value)
    # The first document's review form again (a second tab, a page sent again), and one naming no document:
    # nothing is recorded for the second document, and its signature page is not reached.
    for form in (review_form, {**review_form, "document": ""}, {**review_form, "document": "agr-pk-other"}):
        r = t.post("/sign/agreement", form)
        assert r.status_code == 302 and r.headers["Location"].endswith("/sign/agreement"), text(r)
        assert "initials" not in session.result and "initials_for" not in session.result
    r = t.get("/sign/signature")
    assert r.status_code == 302 and r.headers["Location"].endswith("/sign/agreement")
    r = t.post("/sign/signature", sign_form)
    assert r.status_code == 302 and r.headers["Location"].endswith("/sign/agreement")
    assert not (pr / "signed" / then).exists() and session.current_id == then
    # The second document is signed only after its own review page: a form that names it.
    r = t.get("/sign/agreement")
    assert f'name="document" value="{then}"' in text(r) and t.document == then
    r = t.post("/sign/agreement", {**review_form, "document": then})
    assert r.headers["Location"].endswith("/sign/signature") and session.result["initials_for"] == then
    r = t.post("/sign/signature", sign_form)  # the first document's signature form, even now: refused
    assert r.headers["Location"].endswith("/sign/agreement") and not (pr / "signed" / then).exists()
    assert f'name="document" value="{then}"' in text(t.get("/sign/signature"))
    assert t.sign(name=CLIENT).headers["Location"].endswith("/sign/done")
    assert (pr / "signed" / then / "01-client.json").is_file()


def test_a_tampered_packet_ticket_is_not_a_valid_link(pr: Path):
    store = TicketStore(pr / "intake")
    token, ticket = store.open([CONSENT, AGREEMENT], "client", IDENTITY, CHECKED_BY)
    assert ticket.agreement_ids == (CONSENT, AGREEMENT)
    single, _ = store.open(CONSENT, "client", IDENTITY, CHECKED_BY)
    assert "packet" not in json.loads(ticket_path(pr, single).read_bytes())  # one document: the form it had
    path = ticket_path(pr, token)
    data = json.loads(path.read_bytes())
    data["packet"] = [OTHERS, AGREEMENT]  # does not start with the ticket's agreement
    path.write_text(json.dumps(data))
    with pytest.raises(IntakeError, match="not valid"):
        store.check(token)
    with pytest.raises(IntakeError, match="named twice"):
        store.open([CONSENT, CONSENT], "client", IDENTITY, CHECKED_BY)


# --------------------------------------------------------------------------- half way


def test_a_client_who_leaves_half_way_leaves_the_first_signed_and_the_second_pending(pr: Path, cli):
    clock = FakeClock()
    app = intake_app(pr, clock=clock)
    t = Tablet(app)
    t.claim(token_of(open_cli(cli, pr, AGREEMENT, CONSENT)))
    t.consent()
    assert sign_current(t).headers["Location"].endswith("/sign/agreement")
    clock.advance(16 * 60)  # the client walked away: the session ends on idle
    r = t.get("/sign/agreement")
    assert r.status_code == 401
    consent, agreement = pr / "signed" / CONSENT, pr / "drafts" / AGREEMENT
    assert (consent / "01-client.json").is_file()
    assert agreement.is_dir() and not (pr / "signed" / AGREEMENT).exists()
    # Staff see it: the packet left part-way, each document's state, and the second still to sign.
    desk = Tablet(app, addr="10.0.0.9")
    desk.get("/staff")
    desk.post("/staff/login", {"csrf": desk.csrf, "name": STAFF_NAME, "password": STAFF_PASS})
    home = text(desk.get("/staff"))
    packets = home[home.index("Recent packets"):]
    assert "left part-way" in packets
    assert re.search(rf"{CONSENT}: Consent to electronic records and signatures: signed by the client", packets)
    assert re.search(rf"{AGREEMENT}: Our commitments to you: waiting for the client's signature", packets)
    options = re.findall(r'<option value="([^"]+)"', home)
    assert AGREEMENT in options and CONSENT not in options
    # A new link for what is left works as any intake.
    t2 = Tablet(app)
    t2.claim(token_of(open_cli(cli, pr, AGREEMENT)))
    t2.consent()
    assert sign_current(t2).headers["Location"].endswith("/sign/done")
    assert (pr / "signed" / AGREEMENT / "01-client.json").is_file()
    home = text(desk.get("/staff"))
    assert "left part-way" not in home


def test_a_guardian_packet_is_one_guardians(pr: Path, cli):
    practice = load_practice(pr)
    ward = "Sam Young"
    for aid, guardian, kind in (("agr-pk-ward-consent", "Alex Young", ESIGN_DISCLOSURE),
                                ("agr-pk-ward-agreement", "Alex Young", None),
                                ("agr-pk-ward-other", "Robin Young", None)):
        Renderer.load(pr, kind).render_to(Job(make_spec(client=ward, therapist="lee", id=aid, date=DATE,
                                                        guardian=guardian, relation="parent"), practice.drafts))
    res = cli("intake", "open", "agr-pk-ward-agreement", "agr-pk-ward-other", "--role", "guardian", "--identity",
              IDENTITY, "--checked-by", CHECKED_BY, "--practice", pr, *as_staff(pr))
    one_error_line(res, "name different guardians")
    one_error_line(cli("intake", "open", "agr-pk-ward-consent", CONSENT, "--role", "guardian", "--identity",
                       IDENTITY, "--checked-by", CHECKED_BY, "--practice", pr, *as_staff(pr)), "names no guardian")
    assert pending_tickets(pr) == []
    token = token_of(cli("intake", "open", "agr-pk-ward-agreement", "agr-pk-ward-consent", "--role", "guardian",
                         "--identity", IDENTITY, "--checked-by", CHECKED_BY, "--practice", pr, *as_staff(pr)))
    t = Tablet(intake_app(pr))
    t.claim(token)
    t.consent()
    assert sign_current(t, "AY", "Alex Young").headers["Location"].endswith("/sign/agreement")
    assert sign_current(t, "AY", "Alex Young").headers["Location"].endswith("/sign/done")
    for aid in ("agr-pk-ward-consent", "agr-pk-ward-agreement"):
        rec = json.loads((pr / "signed" / aid / "01-guardian.json").read_bytes())
        assert rec["signer"] == {"role": "guardian", "name": "Alex Young", "on_behalf_of": ward, "relation": "parent"}
