"""The client's receipt: one real PDF page, read back with poppler (pdftotext, pdfinfo).

A module-scoped practice (PKI, log key, a client with a very long name, three
agreements: one countersigned, two signed by the client only, each checkpointed)
is signed once; each test reads receipts of it. Facts are checked against the
archive itself (the SHA-256 of agreement.pdf, the records' names, times and
identity checks, the log's checkpoint), times against a date formatter written
out here by hand, not against the code under test. The intake's download and
the ``agreements receipt`` command are tested through the app and the CLI.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
import segno
from helpers import refused

from agreements_kit.authoring import catalogues
from agreements_kit.authoring.practice import load_practice
from agreements_kit.authoring.render import Job, Renderer
from agreements_kit.authoring.spec import make_spec
from agreements_kit.errors import AgreementsError, ReceiptError
from agreements_kit.formats.checkpoint import parse_checkpoint
from agreements_kit.resources import clauses_dir, templates_dir
from agreements_kit.signing import receipt as rc
from agreements_kit.signing.pki import PKI
from agreements_kit.signing.renders import log_renders
from agreements_kit.signing.setup import init_practice
from agreements_kit.signing.sign import ClientSigning, sign_client, sign_therapist
from agreements_kit.store import tlog
from agreements_kit.store.archive import load_folder

ROOT_PASS, INTAKE_PASS, CLINICIAN_PASS = b"root-pass-1", b"practice-pass-1", b"clinician-ca-pass-1"
KEY_PASS, LOG_PASS = b"lee-key-pass-1", b"log-pass-1"
# A long name (within the 200 characters names may have), with accents, so the one page is tested at its worst.
# Its first 64 characters are ASCII: the one-time certificate's CN is the name's first 64 characters, and
# cryptography refuses a CN of more than 64 bytes (a bug of pki.py, reported, not this module's).
CLIENT = ("Maria Fernanda de los Angeles Castellanos-Villalobos Hernandez de la Santísima Trinidad "
          "Ortega y Gasset Montenegro Bustamante Zúñiga")
IDS = ("agr-receipt-one", "agr-receipt-two", "agr-receipt-three")
LATE = "agr-receipt-late"  # signed after the last checkpoint
WEB = "agr-receipt-web"  # signed at the intake server
IDENTITY = {
    IDS[0]: ("photo ID checked in person", "Front desk: Pat Kim", "pat.kim"),
    IDS[1]: ("passport checked in person, and the client's date of birth and home address compared with the "
             "referral letter from their physician, which the front desk keeps on file for this purpose",
             "Front desk: Samantha Alexandra Ortiz-Wellington, intake coordinator on the evening shift", "sam.ortiz"),
    IDS[2]: ("known to the therapist from earlier sessions", "Dr. Robin Lee", None),
}
DATE = dt.date(2026, 11, 27)
MONTHS_EN = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
             "November", "December")
MONTHS_ES = ("enero", "febrero", "marzo", "abril", "mayo", "junio", "julio", "agosto", "septiembre", "octubre",
             "noviembre", "diciembre")

pytestmark = pytest.mark.requires_tool("pdftotext", "pdfinfo")


# --------------------------------------------------------------------------- helpers


def when_en(iso: str) -> str:
    t = dt.datetime.fromisoformat(iso.replace("Z", "+00:00"))
    hour = t.hour % 12 or 12
    return f"{MONTHS_EN[t.month - 1]} {t.day}, {t.year}, {hour}:{t:%M:%S} {'AM' if t.hour < 12 else 'PM'} UTC"


def when_es(iso: str) -> str:
    t = dt.datetime.fromisoformat(iso.replace("Z", "+00:00"))
    return f"{t.day} de {MONTHS_ES[t.month - 1]} de {t.year}, {t:%H:%M:%S} UTC"


def flat(text: str) -> str:
    """Text with every run of white space (line breaks, narrow no-break spaces) as one space."""
    return " ".join(text.split())


def pdf_text(path: Path, layout: bool = False) -> str:
    """The page's text: in the order it was drawn (-raw: a table cell's lines together), or laid out as seen."""
    args = ["pdftotext", "-layout" if layout else "-raw", str(path), "-"]
    return subprocess.run(args, capture_output=True, text=True, check=True).stdout


def pages(path: Path) -> int:
    info = subprocess.run(["pdfinfo", str(path)], capture_output=True, text=True, check=True).stdout
    return int(re.search(r"^Pages:\s+(\d+)$", info, re.M).group(1))


def write(tmp_path: Path, data: bytes, name: str = "receipt.pdf") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def records(folder: Path) -> list[dict]:
    return [json.loads(p.read_bytes()) for p in sorted(folder.glob("[0-9][0-9]-*.json"))]


def printed_checkpoint(text: str) -> str | None:
    """The signed checkpoint as printed (origin, size, root, blank line, signature lines), from -layout text."""
    match = re.search(r"^(agreements-kit/ledger/[0-9a-f]{16}\n\d+\n[A-Za-z0-9+/=]+\n\n(?:\u2014 [^\n]+\n)+)", text,
                      re.M)
    return match.group(1) if match else None


# --------------------------------------------------------------------------- the practice (built once)


def _render(root: Path, aid: str, client: str = CLIENT) -> Path:
    practice = load_practice(root)
    draft = Renderer.load(root).render_to(Job(make_spec(client=client, therapist="lee", id=aid, date=DATE),
                                               practice.drafts))
    log_renders(practice, [draft])
    return draft


def _sign(root: Path, aid: str, log_key, method="photo ID", checked_by="Desk", staff=None, client=CLIENT):
    manifest = json.loads((root / "drafts" / aid / "manifest.json").read_text())
    initials = {c["id"]: "MFC" for c in manifest["clauses"] if c["initials"]}
    return sign_client(load_practice(root), aid, ClientSigning(
        name=client, consent=True, initials=initials, intent=True, identity_method=method,
        identity_checked_by=checked_by, staff_account=staff), INTAKE_PASS, log_key=log_key)


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("receipt") / "practice"
    init_practice(root, name="Riverbend Dialectical Behavior Therapy Collaborative of Western Montana (fictional)",
                  jurisdiction="US-NY", phone="(212) 555-0100", address="12 Example Street, Missoula, MT",
                  email="intake@riverbend.example", therapists={"lee": ("Dr. Robin Lee", "PhD", "psychologist")},
                  passphrase=ROOT_PASS, intake_passphrase=INTAKE_PASS, clinician_passphrase=CLINICIAN_PASS)
    practice = load_practice(root)
    PKI(root / "pki").issue_clinician("lee", "Dr. Robin Lee", practice.name, CLINICIAN_PASS, KEY_PASS)
    log_key = tlog.create_log_key(root / "pki", passphrase=LOG_PASS)
    for aid in (*IDS, LATE, WEB):
        _render(root, aid)
    for aid in IDS:
        method, checked_by, staff = IDENTITY[aid]
        _sign(root, aid, log_key, method, checked_by, staff)
    sign_therapist(practice, IDS[0], KEY_PASS, log_key=log_key)
    _sign(root, LATE, None)  # no checkpoint signed since
    return root


def folder(site: Path, aid: str):
    return load_folder(site / "signed" / aid)


def packet(site: Path):
    return [folder(site, aid) for aid in IDS]


@pytest.fixture(scope="module")
def english(site: Path, tmp_path_factory) -> Path:
    folders = packet(site)
    return write(tmp_path_factory.mktemp("en"), rc.receipt_pdf(folders, checkpoint=rc.client_checkpoint(folders)))


@pytest.fixture(scope="module")
def spanish(site: Path, tmp_path_factory) -> Path:
    folders = packet(site)
    data = rc.receipt_pdf(folders, checkpoint=rc.client_checkpoint(folders), language="es")
    return write(tmp_path_factory.mktemp("es"), data)


# --------------------------------------------------------------------------- the page


def test_a_packet_of_three_with_a_long_name_fits_one_page(english: Path, spanish: Path):
    assert pages(english) == 1
    assert pages(spanish) == 1  # Spanish runs longer than English


def test_the_receipt_is_pdfa_and_names_no_client_in_its_metadata(english: Path):
    import pypdf

    reader = pypdf.PdfReader(english)
    xmp = reader.trailer["/Root"]["/Metadata"].get_object().get_data().decode("utf-8")
    assert 'pdfaid:part="3"' in xmp and 'pdfaid:conformance="U"' in xmp  # PDF/A-3u, as agreements are
    (summary,) = reader.attachments["receipt.json"]  # what it was made from, for a machine to read
    assert [a["id"] for a in json.loads(summary)["agreements"]] == list(IDS)
    assert reader.trailer["/Root"]["/Lang"] == "en"
    info = subprocess.run(["pdfinfo", str(english)], capture_output=True, text=True, check=True).stdout
    assert "Receipt of signing: " + ", ".join(IDS) in info
    assert "Castellanos" not in info and "Castellanos" not in xmp


def test_every_required_fact_is_on_the_page(site: Path, english: Path):
    text = flat(pdf_text(english))
    assert "Receipt of signing" in text
    assert flat(CLIENT) in text
    for aid in IDS:
        path = site / "signed" / aid
        assert f"Agreement {aid}" in text
        pdf = (path / "agreement.pdf").read_bytes()
        pdf_sha = hashlib.sha256(pdf).hexdigest()
        assert f"SHA-256 of the signed document, agreement.pdf ({len(pdf)} bytes): {pdf_sha}" in text
        # The client holds the signed copy: the receipt's recipe gives the same hash from its first SIZE bytes.
        head = subprocess.run(f"head -c {len(pdf)} {path / '01-client.copy.pdf'} | sha256sum", shell=True,
                              capture_output=True, text=True, check=True).stdout
        assert head.split()[0] == pdf_sha
        for rec in records(path):
            assert rec["document"]["sha256"] == pdf_sha
            identity = rec["identity"]
            # One row: the signer and role, the signing time, how identity was checked (and by whom, which account).
            row = (f"{rec['signer']['name']} ({rec['signer']['role']}) {when_en(rec['signed_at'])} "
                   f"{identity['method']}; checked by {identity['checked_by']}")
            if "staff_account" in identity:
                row += f"; staff account {identity['staff_account']}"
            assert flat(row) in text, f"{aid}: the row of {rec['signer']['role']} is not on the receipt"
        if IDENTITY[aid][2]:
            assert f"staff account {IDENTITY[aid][2]}" in text
    assert "Dr. Robin Lee (therapist)" in text  # the countersignature of the first
    assert text.count("Complete: signed by you and by the therapist.") == 1
    assert text.count("Signed on your side. Your therapist signs next") == 2
    for pointer in ("any PDF reader", "pdfsig", "pyhanko sign validate", "docs/copy.md",
                    "Verify without agreements-kit", "sha256sum agreement.pdf"):
        assert pointer in text


def test_the_checkpoint_is_printed_exactly_and_includes_the_client(site: Path, english: Path):
    latest = (site / "signed" / "log" / "checkpoint").read_bytes()
    printed = printed_checkpoint(pdf_text(english, layout=True))
    assert printed is not None, "the receipt does not print the signed checkpoint"
    assert printed.encode("utf-8") == latest
    cp = parse_checkpoint(latest)
    text = flat(pdf_text(english))
    assert f"Tree size: {cp.size} entries" in text
    import base64

    assert base64.b64encode(cp.root_hash).decode() in text
    # The checkpoint covers the client's "sign" entry of each agreement (the proof the client can ask for).
    for aid in IDS:
        entries = [json.loads(e["line"]) for e in tlog.inclusion(site / "signed", aid, cp)]
        assert any(e["event"] == "sign" and e["role"] == "client" for e in entries)


def test_the_qr_code_is_the_checkpoint(site: Path):
    """No QR decoder is installed (none is needed): the picture must be segno's encoding of the checkpoint."""
    folders = packet(site)
    checkpoint = rc.client_checkpoint(folders)
    html, _, _ = rc.receipt_html(folders, checkpoint=checkpoint)
    expected = segno.make(checkpoint.decode("utf-8"), error="m").svg_inline(scale=2, dark="#000", light="#fff")
    assert expected in html
    other = segno.make(checkpoint.decode("utf-8").swapcase(), error="m")  # another text: another picture
    assert other.svg_inline(scale=2, dark="#000", light="#fff") not in html


def test_without_a_checkpoint_the_receipt_has_no_log_section(site: Path, tmp_path: Path):
    path = write(tmp_path, rc.receipt_pdf([folder(site, IDS[1])]))
    text = flat(pdf_text(path))
    assert "Proof that your signature was logged" not in text
    assert printed_checkpoint(pdf_text(path, layout=True)) is None
    assert f"Agreement {IDS[1]}" in text and pages(path) == 1


def test_the_receipt_is_the_same_bytes_each_time(site: Path):
    folders = [folder(site, IDS[2])]
    assert rc.receipt_pdf(folders) == rc.receipt_pdf(folders)


# --------------------------------------------------------------------------- language


def test_spanish_receipt_has_spanish_headings_and_dates(site: Path, spanish: Path):
    import pypdf

    assert pypdf.PdfReader(spanish).trailer["/Root"]["/Lang"] == "es"
    text = flat(pdf_text(spanish))
    for words in ("Comprobante de firma", "Cómo comprobarlo", "Prueba de que su firma quedó registrada",
                  "Fecha y hora", "Cómo se comprobó la identidad", "Firmante", "Cliente:",
                  "SHA-256 del documento firmado, agreement.pdf (", "Completo: lo firmaron usted y su terapeuta.",
                  "Tamaño del árbol", "Hash raíz (base64)", "(terapeuta)", "(cliente)"):
        assert words in text, words
    for english_words in ("Receipt of signing", "How to check it", "Signed at", "checked by"):
        assert english_words not in text
    for aid in IDS:
        assert f"Acuerdo {aid}" in text
        for rec in records(site / "signed" / aid):
            assert when_es(rec["signed_at"]) in text
    assert "con fecha 27 de noviembre de 2026" in text
    assert "comprobada por Front desk: Pat Kim" in text and "cuenta del personal: pat.kim" in text


def test_the_agreement_language_comes_from_its_clause_library(site: Path, tmp_path: Path):
    """A practice whose library says ``language: es`` gets Spanish receipts unasked; the default library English."""
    assert rc.agreement_language(folder(site, IDS[0])) == "en"
    root = tmp_path / "practice"
    shutil.copytree(site, root)
    shutil.copytree(clauses_dir(), root / "clauses-es")
    index = root / "clauses-es" / "library.yaml"
    index.write_text(index.read_text(encoding="utf-8").replace("\nlanguage: en\n", "\nlanguage: es\n"),
                     encoding="utf-8")
    with open(root / "practice.yaml", "a", encoding="utf-8") as fh:
        fh.write("clauses: clauses-es\n")
    spanish_folder = load_folder(root / "signed" / IDS[1])
    assert rc.agreement_language(spanish_folder) == "es"
    text = flat(pdf_text(write(tmp_path, rc.receipt_pdf([spanish_folder]))))
    assert "Comprobante de firma" in text and "Receipt of signing" not in text
    english = flat(pdf_text(write(tmp_path, rc.receipt_pdf([spanish_folder], language="en"), "en.pdf")))
    assert "Receipt of signing" in english  # the language asked for wins
    # Another kind of document has a library of its own, in documents/NAME/ of a library folder.
    (root / "clauses-es" / "documents" / "consent-es").mkdir(parents=True)
    (root / "clauses-es" / "documents" / "consent-es" / "library.yaml").write_text(
        "library: consent-es\nversion: 1\nlanguage: es\n", encoding="utf-8")
    index.write_text(index.read_text(encoding="utf-8").replace("\nlanguage: es\n", "\nlanguage: en\n"),
                     encoding="utf-8")
    rc._library_index.cache_clear()  # (a server sees the edit by its modification time; this test does not wait)
    assert rc.agreement_language(spanish_folder) == "en"
    spanish_folder.manifest["library"] = {"name": "consent-es", "version": 1}
    assert rc.agreement_language(spanish_folder) == "es"
    spanish_folder.manifest["library"] = {"name": "no-such-library", "version": 1}
    assert rc.agreement_language(spanish_folder) == "en"  # not found: English


def test_a_region_keeps_its_dates(site: Path):
    html, _, _ = rc.receipt_html([folder(site, IDS[2])], language="es-MX")
    assert '<html lang="es-MX">' in html
    assert re.search(r"\d{1,2}:\d\d:\d\d\s?[ap]\.\u00a0?m\.", html), "es-MX writes times with a. m. / p. m."


@pytest.mark.parametrize("tag", ["fr", "xx", "de-DE", "../en", "en/../es", "", "e", "es\nen"])
def test_an_unknown_language_is_one_clear_error(site: Path, tag: str):
    with pytest.raises(ReceiptError) as info:
        rc.receipt_pdf([folder(site, IDS[2])], language=tag)
    assert info.value.code == "usage.receipt-language"
    assert "\n" not in str(info.value)
    assert "receipts are written in en, es" in str(info.value)


def test_every_catalogue_has_englishs_messages_and_placeholders():
    languages = rc.available_languages()
    assert {"en", "es"} <= set(languages)
    english = rc.load_catalogue("en")
    for language in languages:
        messages = rc.load_catalogue(language)
        assert set(messages) == set(english)
        for key, text in messages.items():
            assert catalogues.placeholders(text) == catalogues.placeholders(english[key]), (language, key)
            assert "<" not in text, f"{language}.{key}: messages are plain text"


def test_a_catalogue_missing_a_message_is_refused(site: Path, tmp_path: Path):
    copy = tmp_path / "templates"
    shutil.copytree(templates_dir(), copy)
    es = copy / "receipt" / "es.yaml"
    es.write_text("\n".join(line for line in es.read_text(encoding="utf-8").splitlines()
                            if not line.startswith("col_time:")) + "\n", encoding="utf-8")
    with pytest.raises(ReceiptError, match="message 'col_time' is missing"):
        rc.receipt_pdf([folder(site, IDS[2])], language="es", template_dir=copy)


def test_values_are_escaped_not_markup(site: Path):
    """Names and identity notes are people's text: never markup in the receipt's HTML."""
    f = folder(site, IDS[2])
    name, rec = f.records[0]
    f.records[0] = (name, dict(rec, identity={"method": "<b>ID</b> & {size}", "checked_by": "A <i>B</i>"}))
    html, _, _ = rc.receipt_html([f])
    assert "&lt;b&gt;ID&lt;/b&gt; &amp; {size}" in html and "<b>ID</b>" not in html
    assert "A &lt;i&gt;B&lt;/i&gt;" in html


GUARDIAN = "Guadalupe Alejandra Castellanos-Villalobos Hernandez de la Santísima Trinidad Ortega Montenegro"


def signed_by_a_guardian(site: Path) -> list:
    """The packet as if a guardian (with a long name too) had signed each agreement for the client."""
    folders = packet(site)
    for f in folders:
        name, rec = f.records[0]
        f.records[0] = (name, dict(rec, signer={"role": "guardian", "name": GUARDIAN, "on_behalf_of": CLIENT,
                                                "relation": "parent"}))
    return folders


@pytest.mark.parametrize("language", ["en", "es"])
def test_a_guardian_signs_as_the_clients_legal_representative_on_one_page(site: Path, tmp_path: Path, language):
    folders = signed_by_a_guardian(site)
    path = write(tmp_path, rc.receipt_pdf(folders, checkpoint=rc.client_checkpoint(folders), language=language))
    assert pages(path) == 1
    role = {"en": "the client's legal representative", "es": "representante legal del cliente"}[language]
    assert flat(pdf_text(path)).count(f"{GUARDIAN} ({role})") == 3


# --------------------------------------------------------------------------- what is refused


def test_an_unsigned_agreement_or_another_clients_is_refused(site: Path, tmp_path: Path):
    root = tmp_path / "practice"
    shutil.copytree(site, root)
    with pytest.raises(ReceiptError, match="has no client signature yet"):
        rc.receipt_pdf([load_folder(site / "drafts" / WEB)])
    _render(root, "agr-receipt-other", "Sam Other")
    _sign(root, "agr-receipt-other", None, client="Sam Other")
    with pytest.raises(ReceiptError, match="agr-receipt-other is another client's than agr-receipt-one"):
        rc.receipt_pdf([load_folder(root / "signed" / IDS[0]), load_folder(root / "signed" / "agr-receipt-other")])
    with pytest.raises(ReceiptError, match="named twice"):
        rc.receipt_pdf([folder(site, IDS[0]), folder(site, IDS[0])])
    with pytest.raises(ReceiptError, match="at least one"):
        rc.receipt_pdf([])


def test_the_client_checkpoint_must_include_the_clients_signature(site: Path):
    assert rc.client_checkpoint([folder(site, LATE)]) is None  # signed after the last checkpoint
    assert rc.client_checkpoint([folder(site, IDS[0]), folder(site, LATE)]) is None
    assert rc.client_checkpoint(packet(site)) == (site / "signed" / "log" / "checkpoint").read_bytes()


def test_a_checkpoint_the_ledger_contradicts_is_refused(site: Path, tmp_path: Path):
    root = tmp_path / "practice"
    shutil.copytree(site, root)
    ledger = root / "signed" / "ledger.jsonl"
    lines = ledger.read_bytes().splitlines(keepends=True)
    ledger.chmod(0o600)
    ledger.write_bytes(b"".join(lines[:3]))  # the tail erased: the checkpoint covers more than the ledger holds
    with pytest.raises(AgreementsError) as info:
        rc.client_checkpoint([load_folder(root / "signed" / IDS[0])])
    assert info.value.code == "conflict.log-inconsistent"


# --------------------------------------------------------------------------- the command


def test_cli_writes_a_new_private_receipt(site: Path, tmp_path: Path, cli):
    out = tmp_path / "receipt.pdf"
    res = cli("receipt", *IDS, "--practice", site, "--out", out)
    assert res.exit_code == 0, res.stderr
    assert res.stdout == f"receipt: {out}\n" and res.stderr == ""
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert pages(out) == 1
    text = flat(pdf_text(out))
    assert all(f"Agreement {aid}" in text for aid in IDS)
    assert printed_checkpoint(pdf_text(out, layout=True)).encode() == (site / "signed" / "log" /
                                                                         "checkpoint").read_bytes()
    assert list(tmp_path.iterdir()) == [out]  # no temporary file left beside it


def test_cli_language_option(site: Path, tmp_path: Path, cli):
    out = tmp_path / "recibo.pdf"
    res = cli("receipt", IDS[1], "--practice", site, "--language", "es", "--out", out)
    assert res.exit_code == 0, res.stderr
    assert "Comprobante de firma" in flat(pdf_text(out))


def test_cli_says_when_no_checkpoint_includes_the_signature(site: Path, tmp_path: Path, cli):
    out = tmp_path / "late.pdf"
    res = cli("receipt", LATE, "--practice", site, "--out", out)
    assert res.exit_code == 0 and "no signed checkpoint of the log includes the client's signature" in res.stderr
    assert printed_checkpoint(pdf_text(out, layout=True)) is None


def test_cli_refuses_an_unknown_language_in_one_line(site: Path, tmp_path: Path, cli):
    out = tmp_path / "receipt.pdf"
    refused(cli("receipt", IDS[0], "--practice", site, "--language", "fr", "--out", out),
            "no receipt in the language 'fr'", "en, es")
    assert not out.exists()


def test_cli_never_overwrites(site: Path, tmp_path: Path, cli):
    out = tmp_path / "receipt.pdf"
    out.write_bytes(b"the client's earlier receipt")
    refused(cli("receipt", IDS[0], "--practice", site, "--out", out), "already exists")
    assert out.read_bytes() == b"the client's earlier receipt"
    link = tmp_path / "dangling.pdf"
    link.symlink_to(tmp_path / "nowhere.pdf")
    refused(cli("receipt", IDS[0], "--practice", site, "--out", link), "already exists")
    assert not (tmp_path / "nowhere.pdf").exists()


def test_cli_refuses_an_unsigned_or_unknown_agreement(site: Path, tmp_path: Path, cli):
    refused(cli("receipt", WEB, "--practice", site, "--out", tmp_path / "a.pdf"), "no client signature yet")
    refused(cli("receipt", "agr-nowhere", "--practice", site, "--out", tmp_path / "b.pdf"), "no agreement")
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- the intake's download


def signed_at_the_intake(root: Path, log_key):
    """The client signs WEB on the intake server's pages (a staff member opened the intake); the tablet."""
    from test_intake import Tablet, data_url, new_app, png

    from agreements_kit.intake.tickets import TicketStore

    app = new_app(root, log_key=log_key)
    token, _ = TicketStore(root / "intake").open(WEB, "client", "photo ID at the desk", "Front desk: Pat Kim", 15,
                                                 opened_by="pat.kim")
    t = Tablet(app)
    t.to_signature(token)
    r = t.sign(name=CLIENT, drawn=data_url(png()))
    assert r.status_code == 302, r.get_data(as_text=True)[:400]
    return t


def test_intake_download_is_the_receipt_with_the_signatures_checkpoint(site: Path, tmp_path: Path):
    root = tmp_path / "practice"
    shutil.copytree(site, root)
    log_key = tlog.load_log_key(root / "pki", LOG_PASS)
    t = signed_at_the_intake(root, log_key)  # the log's keeper unlocked its key: each signature is anchored
    anchored = (root / "signed" / "log" / "checkpoint").read_bytes()  # signed with this signature
    # A later checkpoint (the ledger grew since) leaves the receipt with the one signed with the signature.
    log_renders(load_practice(root), [_render(root, "agr-receipt-after")])
    later = tlog.sign_checkpoint(root / "signed", log_key)[1]
    assert parse_checkpoint(later).size > parse_checkpoint(anchored).size
    r = t.get("/sign/copy/receipt.pdf")
    assert r.status_code == 200 and r.mimetype == "application/pdf"
    assert 'filename="receipt-of-signing.pdf"' in r.headers["Content-Disposition"]
    path = write(tmp_path, r.data)
    assert pages(path) == 1
    text = flat(pdf_text(path))
    assert f"Agreement {WEB}" in text and flat(CLIENT) in text
    pdf_sha = hashlib.sha256((root / "signed" / WEB / "agreement.pdf").read_bytes()).hexdigest()
    assert pdf_sha in text
    (rec,) = records(root / "signed" / WEB)
    assert when_en(rec["signed_at"]) in text
    assert "photo ID at the desk; checked by Front desk: Pat Kim; staff account pat.kim" in text
    assert printed_checkpoint(pdf_text(path, layout=True)).encode() == anchored


def test_intake_says_plainly_when_no_receipt_can_be_made(site: Path, tmp_path: Path, caplog, monkeypatch):
    """Pages in a language without a receipt catalogue (the receipt follows the pages the client read): a page
    that says so, the signature kept, no id logged."""
    root = tmp_path / "practice"
    shutil.copytree(site, root)
    t = signed_at_the_intake(root, None)
    # English pages, and no English receipt catalogue:
    monkeypatch.setattr(rc, "available_languages", lambda template_dir=None: ["es"])
    r = t.get("/sign/copy/receipt.pdf")
    assert r.status_code == 400 and r.mimetype == "text/html"
    page = r.get_data(as_text=True)
    assert "Receipt unavailable" in page and "your signature is recorded" in page
    assert WEB not in page and "Castellanos" not in page
    assert WEB not in caplog.text and "Castellanos" not in caplog.text
    assert "usage.receipt-language" in caplog.text
    assert t.get("/sign/copy/agreement.pdf").status_code == 200  # the signed copy is still theirs


# --------------------------------------------------------------------------- the demo


def test_the_demo_writes_the_clients_receipt_beside_what_it_lists(tmp_path: Path):
    from agreements_kit.cli.demo import run_demo

    result = run_demo(tmp_path / "demo")
    assert result.receipts == [tmp_path / "demo" / "demo-receipt.pdf", tmp_path / "demo" / "demo-receipt-es.pdf"]
    assert any(str(result.receipts[0]) in line and line.startswith("  receipt") for line in result.lines)
    latest = (tmp_path / "demo" / "signed" / "log" / "checkpoint").read_bytes()
    for path, heading in zip(result.receipts, ("Receipt of signing", "Comprobante de firma"), strict=True):
        assert pages(path) == 1
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        text = flat(pdf_text(path))
        assert heading in text and f"{result.archived.name}" in text
        assert hashlib.sha256((result.archived / "agreement.pdf").read_bytes()).hexdigest() in text
        assert printed_checkpoint(pdf_text(path, layout=True)).encode() == latest
    assert not list(result.archived.glob("*receipt*"))  # the receipt is the client's, not archive evidence
