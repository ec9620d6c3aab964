"""A Spanish intake, through Flask's test client: every page, the disclosure accepted, the record.

The practice has a Spanish draft (``language: es``) and an English one. A link for the
Spanish draft shows Spanish pages (``<html lang="es">``, the words of
templates/web/strings/es.yaml) and the Spanish ESIGN disclosure; the record names that
disclosure's version and SHA-256 and verifies. A link opened with ``--language es`` (or
the /staff form's language) shows Spanish pages for an English agreement. A record that
names a disclosure never published (an unknown version, or a known version with other
words) is refused as ``records.disclosure``, in either language.
"""

from __future__ import annotations

import hashlib
import html
import json
import re
import shutil
from pathlib import Path

import pytest
from helpers import cheap_hasher, describe_failures, failure_codes
from test_intake import (
    CLINICIAN_PASS,
    PASS,
    ROOT_PASS,
    STAFF_FULL,
    STAFF_NAME,
    STAFF_PASS,
    Tablet,
    as_staff,
    new_app,
    text,
)

from agreements_kit.authoring.practice import load_practice
from agreements_kit.authoring.render import Job, Renderer
from agreements_kit.authoring.spec import make_spec
from agreements_kit.errors import LibraryError
from agreements_kit.formats import record
from agreements_kit.intake import words
from agreements_kit.intake.staff import StaffStore
from agreements_kit.intake.tickets import TicketStore
from agreements_kit.resources import templates_dir
from agreements_kit.signing.renders import log_renders
from agreements_kit.signing.sign import ClientSigning, sign_client
from agreements_kit.verification.steps import known_disclosures
from agreements_kit.verification.trust import load_trust
from agreements_kit.verification.verify import verify_folder

ES_ID, ES_NAME = "agr-web-es", "Ana María Núñez"
EN_ID, EN_NAME = "agr-web-en", "Jane Q. Doe"
SPANISH = templates_dir() / "esign-disclosure.es.txt"
HTML_LANG = re.compile(r'<html lang="([^"]+)">')
ES_INITIALS = re.compile(r'Iniciales necesarias: sus iniciales para la parte (\d+)</label>\s*<input id="[^"]+" '
                         r'name="(initials\.[^"]+)"')
# Words of the English pages that must not be left on a Spanish one.
ENGLISH = ("Please check", "Skip to content", "Continue", "Read and initial", "For your privacy", "Your full name",
           "Sign the agreement", "Thank you", "Finish and close", "Download", "Before you sign")


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    from agreements_kit.signing.setup import init_practice

    root = tmp_path_factory.mktemp("intake-es") / "practice"
    init_practice(root, name="Test Practice", jurisdiction="US-NY", phone="(212) 555-0100",
                  therapists={"lee": ("Dr. Robin Lee", "PhD", "psychologist")}, passphrase=ROOT_PASS.encode(),
                  intake_passphrase=PASS.encode(), clinician_passphrase=CLINICIAN_PASS.encode())
    practice = load_practice(root)
    renderer = Renderer.load(root)
    drafts = [renderer.render_to(Job(make_spec(client=name, therapist="lee", id=aid, language=lang,
                                               date="2026-11-27"), practice.drafts))
              for aid, name, lang in ((ES_ID, ES_NAME, "es"), (EN_ID, EN_NAME, None))]
    log_renders(practice, drafts)
    StaffStore(root, cheap_hasher()).add(STAFF_NAME, STAFF_FULL, STAFF_PASS)
    return root


@pytest.fixture
def pr(base: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(base, tmp_path / "practice"))


def assert_spanish(resp, *wanted: str) -> str:
    body = html.unescape(text(resp))
    assert HTML_LANG.search(body).group(1) == "es", body[:200]
    for w in wanted:
        assert w in body, f"{w!r} not on the page:\n{body}"
    visible = re.sub(r"<[^>]+>", " ", body)
    left = [w for w in ENGLISH if w in visible]
    assert not left, f"English words on a Spanish page: {left}\n{visible}"
    return body


def verdict(root: Path, aid: str):
    return verify_folder(root / "signed" / aid, load_trust(root / "pki" / "root.pem"),
                         ledger=root / "signed" / "ledger.jsonl")


def client_record(root: Path, aid: str) -> dict:
    return json.loads((root / "signed" / aid / "01-client.json").read_bytes())


def run_spanish(app, token: str, name: str) -> dict[str, object]:
    """Start, consent, initial, sign and finish on Spanish pages, checking each; the responses by step."""
    t = Tablet(app)
    r: dict[str, object] = {"start": t.look(token)}
    assert_spanish(r["start"], "Listo para firmar", "Empezar")
    assert t.start(token).status_code == 302
    r["consent"] = t.get("/sign/consent")
    body = assert_spanish(r["consent"], "Antes de firmar", "Acepto usar documentos electrónicos")
    assert SPANISH.read_text(encoding="utf-8") in body  # the Spanish disclosure, whole
    refused = t.post("/sign/consent", {"csrf": t.csrf})
    assert refused.status_code == 422
    assert_spanish(refused, "Revise esto:", "marque la casilla para aceptar")
    assert t.post("/sign/consent", {"csrf": t.csrf, "consent": "yes"}).status_code == 302
    r["review"] = t.get("/sign/agreement")
    assert_spanish(r["review"], "Leer y poner iniciales", "Iniciales necesarias", "Texto completo de la parte")
    fields = ES_INITIALS.findall(text(r["review"]))
    assert fields
    missing = t.post("/sign/agreement", {"csrf": t.csrf})
    assert missing.status_code == 422
    assert_spanish(missing, f"faltan sus iniciales en la parte {fields[0][0]}")
    assert t.post("/sign/agreement", {"csrf": t.csrf, **{f: "AMN" for _, f in fields}}).status_code == 302
    r["signature"] = t.get("/sign/signature")
    assert_spanish(r["signature"], "Su nombre completo", "Firmar el acuerdo", record.intent_statement("es"))
    no_intent = t.sign(name=name, intent=None)
    assert no_intent.status_code == 422
    assert_spanish(no_intent, "marque la casilla para confirmar")
    wrong = t.sign(name="Otra Persona")
    assert wrong.status_code == 422
    assert_spanish(wrong, "el nombre escrito no es el nombre del acuerdo")
    assert t.sign(name=name).status_code == 302
    r["done"] = t.get("/sign/done")
    assert_spanish(r["done"], "Firmado", "Gracias. Usted firmó el acuerdo el", "Terminar y cerrar",
                   "Descargar su comprobante de firma (PDF)")
    r["receipt"] = t.get("/sign/copy/receipt.pdf")
    r["print"] = t.post("/sign/handoff", {"csrf": t.csrf, "channel": "print"})
    r["print_page"] = t.get("/sign/handoff/print")
    assert_spanish(r["print_page"], "Imprimir su copia", "Para la recepción")
    r["finish"] = t.post("/sign/finish", {"csrf": t.csrf})
    assert_spanish(r["finish"], "Todo listo", "Esta sesión está cerrada")
    return r


def test_a_spanish_agreement_is_signed_on_spanish_pages_accepting_the_spanish_disclosure(pr: Path):
    token, _ = TicketStore(pr / "intake").open(ES_ID, "client", "photo ID", "Front desk")
    r = run_spanish(new_app(pr), token, ES_NAME.upper())
    assert r["receipt"].status_code == 200 and r["receipt"].data.startswith(b"%PDF")
    esign = client_record(pr, ES_ID)["esign"]
    spanish = record.load_disclosure(SPANISH)
    assert spanish.version == "2-es"
    assert esign == {"disclosure_version": "2-es",
                     "disclosure_sha256": hashlib.sha256(SPANISH.read_bytes()).hexdigest(),
                     "disclosure_accepted": True, "consent_to_electronic_records": True}
    # The record says the client adopted the words the page showed them, in Spanish.
    assert client_record(pr, ES_ID)["intent"] == {"statement": record.intent_statement("es"), "adopted": True}
    assert record.intent_statement("es").startswith("Leí este acuerdo.")


def test_an_intent_statement_nobody_was_shown_is_refused(pr: Path, monkeypatch):
    """A client record whose intent statement is no published statement in any language (rewritten after
    signing, or made up) fails records.intent; the Spanish statement itself passes."""
    monkeypatch.setattr(record, "intent_statement", lambda language=None: "Firmo lo que sea.")
    spanish_sign(pr, EN_ID, record.load_disclosure(SPANISH), monkeypatch)
    v = verdict(pr, EN_ID)
    assert failure_codes(v) == {"records.intent"}, describe_failures(v)


def test_a_signed_spanish_render_verifies_whole(pr: Path):
    token, _ = TicketStore(pr / "intake").open(ES_ID, "client", "photo ID", "Front desk")
    run_spanish(new_app(pr), token, ES_NAME)
    v = verdict(pr, ES_ID)
    assert not v.failures and v.status == "incomplete", describe_failures(v)  # the therapist signs later


def test_an_english_agreement_opened_in_spanish_from_the_command_line(cli, pr: Path):
    res = cli("intake", "open", EN_ID, "--identity", "photo ID", "--checked-by", "Desk", "--practice", pr,
              *as_staff(pr), "--language", "es")
    assert res.exit_code == 0, res.stderr
    token = re.search(r"/i/([A-Za-z0-9_-]+)\s*$", res.stdout, re.M).group(1)
    run_spanish(new_app(pr), token, EN_NAME)
    assert client_record(pr, EN_ID)["esign"]["disclosure_version"] == "2-es"
    v = verdict(pr, EN_ID)  # an English agreement: its manifest has no language members
    assert not v.failures and v.status == "incomplete", describe_failures(v)


def test_the_command_line_refuses_a_language_the_pages_lack(cli, pr: Path):
    res = cli("intake", "open", EN_ID, "--identity", "photo ID", "--checked-by", "Desk", "--practice", pr,
              *as_staff(pr), "--language", "fr")
    assert res.exit_code == 2
    assert "not written in 'fr'" in res.stderr and "en, es" in res.stderr and len(res.stderr.strip().splitlines()) == 1
    assert not list((pr / "intake" / "pending").glob("*.json")) if (pr / "intake" / "pending").is_dir() else True


def test_the_staff_form_chooses_the_language_and_english_stays_english(pr: Path):
    app = new_app(pr)
    desk = Tablet(app)
    desk.staff_login()
    home = desk.get("/staff")
    assert '<option value="es">Spanish (español)</option>' in text(home)
    opened = desk.post("/staff/open", {"csrf": desk.csrf, "agreement": EN_ID, "identity": "photo ID",
                                       "language": "es"})
    assert opened.status_code == 200, text(opened)
    link = re.search(r'<a href="[^"]*/i/([A-Za-z0-9_-]+)">', text(opened)).group(1)
    assert_spanish(Tablet(app).look(link), "Empezar")
    bad = desk.post("/staff/open", {"csrf": desk.csrf, "agreement": EN_ID, "identity": "photo ID", "language": "xx"})
    assert bad.status_code == 422 and "not written in" in text(bad)
    # Without a choice, an English agreement's pages stay English, with the English disclosure.
    token, _ = TicketStore(pr / "intake").open(EN_ID, "client", "photo ID", "Front desk")
    t = Tablet(app)
    assert t.claim(token).status_code == 302
    consent = t.get("/sign/consent")
    assert HTML_LANG.search(text(consent)).group(1) == "en"
    assert record.load_disclosure().text in html.unescape(text(consent))


def spanish_sign(root: Path, aid: str, disclosure: record.Disclosure, monkeypatch) -> None:
    """Sign as the intake does, with the disclosure sign.py loads replaced by ``disclosure``."""
    manifest = json.loads((root / "drafts" / aid / "manifest.json").read_text())
    with monkeypatch.context() as m:
        m.setattr(record, "load_disclosure", lambda path=None, language=None: disclosure)
        sign_client(load_practice(root), aid, ClientSigning(
            name=EN_NAME, consent=True, initials={c["id"]: "JQD" for c in manifest["clauses"] if c["initials"]},
            intent=True, identity_method="photo ID", identity_checked_by="Desk", language="es"), PASS.encode())


@pytest.mark.parametrize(("version", "words_of"), [("2-es", "Esta frase no se publicó.\n"), ("3-es", "")])
def test_a_record_naming_an_unpublished_disclosure_is_refused(pr: Path, monkeypatch, version: str, words_of: str):
    published = record.load_disclosure(SPANISH)
    forged = record.Disclosure(version, published.text.replace("Version: 2-es", f"Version: {version}") + words_of)
    spanish_sign(pr, EN_ID, forged, monkeypatch)  # (an English render: its manifest verifies today)
    assert client_record(pr, EN_ID)["esign"]["disclosure_version"] == version
    v = verdict(pr, EN_ID)
    assert failure_codes(v) == {"records.disclosure"}, describe_failures(v)


def test_every_published_disclosure_in_every_language_is_known():
    known = known_disclosures()
    for path in [templates_dir() / "esign-disclosure.txt", SPANISH,
                 *(templates_dir() / "esign-disclosure-history").glob("*.txt")]:
        d = record.load_disclosure(path)
        assert known[d.version] == d.sha256, path
    assert {"1", "2", "2-es"} <= set(known)
    assert record.disclosure_languages() == ["en", "es"]
    assert record.load_disclosure(language="es-MX").version == "2-es"


def test_page_words_match_english_and_a_broken_translation_is_refused(tmp_path: Path, monkeypatch):
    english, spanish = words.messages("en"), words.messages("es")
    assert set(english) == set(spanish)
    assert record.intent_statement("en") == record.INTENT == record.intent_statement()  # English: the record's own
    folder = tmp_path / "strings"
    folder.mkdir()
    shutil.copy(words.strings_dir() / "en.yaml", folder / "en.yaml")
    broken = (words.strings_dir() / "es.yaml").read_text(encoding="utf-8").replace("{idle_minutes} minutos",
                                                                                   "{minutos} minutos", 1)
    (folder / "xx.yaml").write_text(broken, encoding="utf-8")
    monkeypatch.setattr(words, "strings_dir", lambda: folder)
    with pytest.raises(LibraryError) as caught:
        words.messages("xx")
    assert "'privacy' must use the placeholders ['idle_minutes']" in caught.value.message
    assert caught.value.line is not None and caught.value.line > 1


def test_a_language_without_its_texts_is_refused_before_anything_is_written(pr: Path):
    """A signer's language with no disclosure or intent statement of its own stops signing before the
    agreement is admitted to the archive or a certificate is issued (ledger and archive untouched)."""
    from agreements_kit.errors import AgreementsError

    ledger = pr / "signed" / "ledger.jsonl"
    before = ledger.read_bytes() if ledger.exists() else b""
    manifest = json.loads((pr / "drafts" / EN_ID / "manifest.json").read_text())
    for language in ("fr", "x/../../etc", "de-DE"):
        with pytest.raises(AgreementsError) as caught:
            sign_client(load_practice(pr), EN_ID, ClientSigning(
                name=EN_NAME, consent=True, initials={c["id"]: "JQD" for c in manifest["clauses"] if c["initials"]},
                intent=True, identity_method="photo ID", identity_checked_by="Desk", language=language),
                PASS.encode())
        assert caught.value.code == "usage.language", language
    assert (ledger.read_bytes() if ledger.exists() else b"") == before
    assert not (pr / "signed" / EN_ID).exists()
    assert record.intent_statement("es-MX") == record.intent_statement("es")  # one rule finds both texts


def test_a_record_mixing_two_languages_is_refused(pr: Path, monkeypatch):
    """The Spanish intent statement over the English disclosure: no intake pages show both, so
    records.language-mix (each text alone is published)."""
    monkeypatch.setattr(record, "intent_statement", lambda language=None: record.INTENT)  # English intent ...
    spanish_sign(pr, EN_ID, record.load_disclosure(SPANISH), monkeypatch)  # ... Spanish disclosure
    v = verdict(pr, EN_ID)
    assert failure_codes(v) == {"records.language-mix"}, describe_failures(v)


def test_a_reworded_intent_statement_keeps_old_records_verifying(tmp_path: Path, monkeypatch):
    """templates/intent-history/LANG/N.txt keeps every statement ever published, as the disclosures'
    history does: a record that adopted the old words still names a published statement, in its language."""
    from agreements_kit import resources

    templates = tmp_path / "templates"
    shutil.copytree(templates_dir(), templates)
    (templates / "intent-history" / "es").mkdir(parents=True)
    (templates / "intent-history" / "es" / "1.txt").write_text("Leí el acuerdo y lo firmo.\n", encoding="utf-8")
    (templates / "intent" / "es.txt").write_text("Leí este acuerdo y quiero firmarlo.\n", encoding="utf-8")
    monkeypatch.setattr(resources, "templates_dir", lambda: templates)
    record.intent_statements.cache_clear()
    try:
        known = record.intent_statements()
        assert known["Leí el acuerdo y lo firmo."] == "es" and known["Leí este acuerdo y quiero firmarlo."] == "es"
        assert known[record.INTENT] == "en"
        assert record.intent_statement("es") == "Leí este acuerdo y quiero firmarlo."
    finally:
        record.intent_statements.cache_clear()
