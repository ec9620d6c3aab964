"""Long-term evidence: the chain and CRLs inside each signature, and archive time-stamps (``archive renew``).

A real local TSA (``agreements_kit.localtsa``: ``openssl ts -reply`` in its own process)
stamps the signatures and the renewals; a second one, whose certificate expires in 30 days
(built here with ``cryptography`` in localtsa's folder format), stands for a TSA whose
certificate is about to age out. Every case works on its own copy of one pristine practice
and asks both verifiers (``verify_folder`` with the ledger, and ``audit``) with what an
auditor holds outside the archive (the practice root and the TSA roots). OpenSSL judges the
embedded evidence independently: ``cms -verify -crl_check`` with the CRLs the signature
carries, the README's token recipe, and ``ts -verify`` of a renewal token over its JSON.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import secrets
import shutil
import socket
import subprocess
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from asn1crypto import cms as acms
from asn1crypto import crl as acrl
from attack_kit import client_signing
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from helpers import describe_failures

from agreements_kit import localtsa
from agreements_kit.authoring.practice import load_practice
from agreements_kit.authoring.render import Job, Renderer
from agreements_kit.authoring.spec import make_spec
from agreements_kit.errors import InvalidFormat, SigningError, TimestampError
from agreements_kit.formats import renewal as renewal_format
from agreements_kit.formats.folder import read_folder
from agreements_kit.formats.ledger import parse_entry
from agreements_kit.localtsa import folder as tsa_layout
from agreements_kit.signing import cms as signing_cms
from agreements_kit.signing.evidence import add_evidence, path_to_root, practice_evidence
from agreements_kit.signing.pki import PKI, load_cert, load_key, utcnow
from agreements_kit.signing.renders import log_renders
from agreements_kit.signing.renew import renew_archive
from agreements_kit.signing.setup import configure_timestamping, init_practice
from agreements_kit.signing.sign import sign_client, sign_therapist
from agreements_kit.signing.timestamp import Timestamper, timestamp_signature
from agreements_kit.store.files import make_private_dir, write_new
from agreements_kit.verification.audit import audit, results
from agreements_kit.verification.evidence import EMBEDDED_NOTE
from agreements_kit.verification.steps import STEP_NUMBER, Verdict
from agreements_kit.verification.trust import resolve_trust
from agreements_kit.verification.verify import verify_folder

REPO = Path(__file__).resolve().parent.parent
RECIPE_HEADING = "### Check a time-stamp token with OpenSSL"
ROOT_PASS, INTAKE_PASS, CLINICIAN_PASS = b"root-pass-1", b"intake-pass-1", b"clinician-pass-1"
KEY_PASS = {"lee": b"lee-key-pass-1"}
PRACTICE_NAME = "Renewal Practice"
CLIENT = "Jane Q. Doe"
THERAPISTS = {"lee": ("Dr. Robin Lee", "PhD", "psychologist")}
DONE = "agr-rn-done"   # client and therapist signed in the fixture: valid
HALF = "agr-rn-half"   # client signed only: incomplete
VARIABLES = ("AGREEMENTS_PRACTICE", "AGREEMENTS_TRUST", "AGREEMENTS_TRUST_SHA256", "AGREEMENTS_TSA_TRUST",
             "AGREEMENTS_LOG_KEY", "AGREEMENTS_PASSPHRASE", "AGREEMENTS_KEY_PASSPHRASE", "AGREEMENTS_FAULT")


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in VARIABLES:
        monkeypatch.delenv(key, raising=False)


# ----------------------------------------------------------------------------- TSAs


@pytest.fixture(scope="module")
def tsa_folder(tmp_path_factory: pytest.TempPathFactory) -> localtsa.TsaFolder:
    return localtsa.create(tmp_path_factory.mktemp("tsa") / "tsa", "Renewal Test TSA")


def short_lived_tsa(folder: Path, days: int) -> localtsa.TsaFolder:
    """A TSA folder in localtsa's format whose certificate expires in ``days`` days (localtsa.create makes 10 years)."""
    make_private_dir(folder)
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Ageing Test TSA")])
    root_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Ageing Test TSA root")])
    root_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    root = (x509.CertificateBuilder().subject_name(root_name).issuer_name(root_name)
            .public_key(root_key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(root_key.public_key()), critical=False)
            .sign(root_key, hashes.SHA256()))
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(root_name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(True, True, False, False, False, False, False, False, False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()), critical=False)
            .sign(root_key, hashes.SHA256()))
    secret = secrets.token_urlsafe(24)
    tsa = localtsa.TsaFolder(folder)
    write_new(tsa.passfile, secret.encode() + b"\n")
    write_new(tsa.key, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                         serialization.BestAvailableEncryption(secret.encode())))
    write_new(tsa.cert, cert.public_bytes(serialization.Encoding.PEM))
    write_new(tsa.root, root.public_bytes(serialization.Encoding.PEM))
    write_new(tsa.config, tsa_layout._CONFIG.encode())
    write_new(folder / tsa_layout.SERIAL, b"01\n")
    return tsa


@pytest.fixture(scope="module")
def ageing_folder(tmp_path_factory: pytest.TempPathFactory) -> localtsa.TsaFolder:
    return short_lived_tsa(tmp_path_factory.mktemp("ageing") / "tsa", days=30)


@pytest.fixture(scope="module")
def tsa(tsa_folder: localtsa.TsaFolder, tmp_path_factory: pytest.TempPathFactory) -> Iterator[localtsa.LocalTsa]:
    with open(tmp_path_factory.mktemp("tsa-log") / "stderr.log", "wb") as err, \
            localtsa.start(tsa_folder.path, stderr=err) as running:
        yield running


@pytest.fixture(scope="module")
def ageing(ageing_folder: localtsa.TsaFolder, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[localtsa.LocalTsa]:
    with open(tmp_path_factory.mktemp("ageing-log") / "stderr.log", "wb") as err, \
            localtsa.start(ageing_folder.path, stderr=err) as running:
        yield running


@pytest.fixture
def dead_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


# ----------------------------------------------------------------------------- the practice


@dataclass(frozen=True)
class Pristine:
    root: Path
    auditor: Path  # root.pem and tsa-roots.pem (both TSAs' roots), outside any archive


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory, tsa: localtsa.LocalTsa, tsa_folder: localtsa.TsaFolder,
             ageing_folder: localtsa.TsaFolder) -> Pristine:
    base = tmp_path_factory.mktemp("pristine")
    root = base / "practice"
    init_practice(root, name=PRACTICE_NAME, jurisdiction="US-NY", phone="(212) 555-0100", therapists=THERAPISTS)
    pki = PKI(root / "pki")
    pki.create(PRACTICE_NAME, ROOT_PASS, INTAKE_PASS, CLINICIAN_PASS, now=utcnow() - dt.timedelta(days=1))
    configure_timestamping(root, [tsa.url], tsa_folder.root.read_bytes())
    pki.issue_clinician("lee", THERAPISTS["lee"][0], PRACTICE_NAME, CLINICIAN_PASS, KEY_PASS["lee"])
    practice = load_practice(root)
    renderer = Renderer.load(root)
    today = utcnow().date()
    log_renders(practice, [renderer.render_to(Job(make_spec(client=CLIENT, therapist="lee", id=aid, date=today),
                                                  practice.drafts)) for aid in (DONE, HALF)])
    for aid in (DONE, HALF):
        assert sign_client(practice, aid, client_signing(root / "drafts" / aid), INTAKE_PASS).untimestamped is None
    assert sign_therapist(practice, DONE, KEY_PASS["lee"]).untimestamped is None
    auditor = base / "auditor"
    auditor.mkdir()
    shutil.copy(root / "pki" / "root.pem", auditor / "root.pem")
    (auditor / "tsa-roots.pem").write_bytes(tsa_folder.root.read_bytes() + ageing_folder.root.read_bytes())
    return Pristine(root, auditor)


@pytest.fixture
def copy(pristine: Pristine, tmp_path: Path) -> Path:
    dest = tmp_path / "practice"
    shutil.copytree(pristine.root, dest)
    return dest


@dataclass
class Judged:
    verdict: Verdict
    row: dict[str, Any] | None
    summary: Any

    @property
    def audit_codes(self) -> set[str]:
        return {f["code"] for f in self.row["failures"]} if self.row else set()

    def failing(self, code: str) -> list[str]:
        return [f"{c.subject}: {c.detail}" for c in self.verdict.failures if c.code == code]


def judge(root: Path, auditor: Path, target: str) -> Judged:
    archive = root / "signed"
    trust = resolve_trust(trust_file=auditor / "root.pem", archive=archive, tsa_trust=auditor / "tsa-roots.pem")
    verdict = verify_folder(archive / target, trust, ledger=archive / "ledger.jsonl")
    summary, db = audit(archive, trust, workers=1)
    try:
        rows = {r["id"]: r for r in results(db)}
    finally:
        shutil.rmtree(db.parent, ignore_errors=True)
    return Judged(verdict, rows.get(target), summary)


def assert_rejected(j: Judged, code: str, *words: str) -> None:
    why = describe_failures(j.verdict)
    assert j.verdict.status == "invalid", why
    assert code in j.verdict.codes, f"verify does not name {code}:\n{why}"
    assert j.row is not None and j.row["status"] == "invalid" and code in j.audit_codes, j.row
    for word in words:
        assert any(word in f for f in j.failing(code)), f"{code} does not name {word!r}: {j.failing(code)}"


def renew(root: Path, timestamper: Timestamper | None = None) -> dict[str, tuple[str, str]]:
    return {o.agreement_id: (o.action, o.detail) for o in renew_archive(load_practice(root), timestamper)}


def ledger_lines(root: Path) -> list[dict[str, Any]]:
    lines = (root / "signed" / "ledger.jsonl").read_bytes().splitlines()
    return [parse_entry(line, "ledger.jsonl", n).data for n, line in enumerate(lines, 1)]


def openssl(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["openssl", *map(str, args)], capture_output=True, text=True, timeout=60, check=False)


# ----------------------------------------------------------------------------- 1. evidence inside the signature


def _signed_data(p7s: bytes) -> Any:
    return acms.ContentInfo.load(p7s)["content"]


def test_signatures_carry_the_root_and_the_crls_in_force_and_openssl_uses_them(pristine: Pristine, tmp_path: Path):
    folder = pristine.root / "signed" / HALF
    for record in ("01-client.json", "02-therapist.json"):  # a one-time certificate's path, and a therapist's
        done = openssl("cms", "-verify", "-binary", "-inform", "DER", "-in", pristine.root / "signed" / DONE /
                       f"{record}.p7s", "-content", pristine.root / "signed" / DONE / record, "-CAfile",
                       pristine.auditor / "root.pem", "-purpose", "any", "-out", "/dev/null", "-crl_check_all")
        assert done.returncode == 0, (record, done.stderr)
    p7s = (folder / "01-client.json.p7s").read_bytes()
    sd = _signed_data(p7s)
    subjects = {c.chosen.subject.native["common_name"] for c in sd["certificates"]}
    root = PKI(pristine.root / "pki").root()
    assert root.subject.rfc4514_string().split("CN=")[1].split(",")[0] in subjects, subjects  # the root, too
    assert len(sd["crls"]) == len(PKI(pristine.root / "pki").crls()) >= 2  # the CRL set in force, each CA's
    assert {c.chosen.dump() for c in sd["crls"]} == {
        c.public_bytes(serialization.Encoding.DER) for c in PKI(pristine.root / "pki").crls()}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # cryptography warns on a certificate SET out of DER order
        assert len(pkcs7.load_der_pkcs7_certificates(p7s)) == 3  # one-time leaf, intake CA, root
    verify = ["cms", "-verify", "-binary", "-inform", "DER", "-in", folder / "01-client.json.p7s", "-content",
              folder / "01-client.json", "-CAfile", pristine.auditor / "root.pem", "-purpose", "any",
              "-out", "/dev/null"]
    for extra in ((), ("-crl_check",), ("-crl_check_all",)):
        done = openssl(*verify, *extra)
        assert done.returncode == 0, (extra, done.stderr)
    # The CRLs that made -crl_check pass are the embedded ones: without them OpenSSL has none.
    bare = tmp_path / "no-crls.p7s"
    info = acms.ContentInfo.load(p7s)
    info["content"]["crls"] = None
    bare.write_bytes(info.dump())
    done = openssl(*[bare if a == folder / "01-client.json.p7s" else a for a in verify], "-crl_check")
    assert done.returncode != 0 and "crl" in done.stderr.lower(), done.stderr


def readme_recipe() -> str:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    start_at = text.find("\n" + RECIPE_HEADING + "\n")
    assert start_at >= 0, f"README.md has no section '{RECIPE_HEADING}'"
    block = re.search(r"^```bash\n(.*?)^```", text[start_at:], flags=re.MULTILINE | re.DOTALL)
    assert block, f"the README section '{RECIPE_HEADING}' has no ```bash block"
    return block.group(1)


def test_add_evidence_changes_no_signed_byte_and_openssl_still_verifies(pristine: Pristine, tmp_path: Path,
                                                                        tsa: localtsa.LocalTsa,
                                                                        tsa_folder: localtsa.TsaFolder):
    pki = PKI(pristine.root / "pki")
    cert = load_cert(pki.therapist_cert("lee"), "lee")
    key = load_key(pki.therapist_key("lee"), KEY_PASS["lee"], "lee")
    data = b'{"a record":"its exact bytes"}'
    stamped, token = timestamp_signature(signing_cms.sign_detached(data, cert, key), Timestamper((tsa.url,)))
    cas, crls = practice_evidence(pristine.root / "pki")
    certificates = path_to_root(cert, cas)
    assert certificates[-1] == pki.root() and len(certificates) >= 2  # the clinician CA, then the root
    full = add_evidence(stamped, certificates, crls)
    before, after = _signed_data(stamped)["signer_infos"][0], _signed_data(full)["signer_infos"][0]
    assert after["signed_attrs"].dump() == before["signed_attrs"].dump()
    assert after["signature"].dump() == before["signature"].dump()
    assert after["unsigned_attrs"][0]["values"][0].dump() == token
    assert _signed_data(full)["encap_content_info"].dump() == _signed_data(stamped)["encap_content_info"].dump()
    assert len(full) > len(stamped) and len(_signed_data(full)["crls"]) == len(crls)
    with pytest.raises(SigningError) as twice:
        add_evidence(full, certificates, crls)
    assert twice.value.code == "conflict.evidence"
    (tmp_path / "rec.json").write_bytes(data)
    (tmp_path / "sig.p7s").write_bytes(full)
    done = openssl("cms", "-verify", "-binary", "-inform", "DER", "-in", tmp_path / "sig.p7s", "-content",
                   tmp_path / "rec.json", "-CAfile", pki.root_cert, "-purpose", "any", "-out", "/dev/null",
                   "-crl_check")
    assert done.returncode == 0, done.stderr
    (tmp_path / "check-token.sh").write_text(readme_recipe(), encoding="utf-8")
    recipe = subprocess.run(["bash", "check-token.sh", "sig.p7s", str(tsa_folder.root)], capture_output=True,
                            text=True, cwd=tmp_path, timeout=60, check=False)
    assert recipe.returncode == 0 and "Verification: OK" in recipe.stdout, recipe.stdout + recipe.stderr


# ----------------------------------------------------------------------------- 2. embedded CRLs


def test_without_crl_pem_revocation_is_judged_from_the_embedded_crls(copy: Path, pristine: Pristine):
    (copy / "pki" / "crl.pem").unlink()
    j = judge(copy, pristine.auditor, DONE)
    assert j.verdict.status == "valid", describe_failures(j.verdict)
    assert EMBEDDED_NOTE in j.verdict.notes
    judged = [c for c in j.verdict.checks if c.name == "revocation"]
    assert len(judged) == 2 and all(c.ok and EMBEDDED_NOTE in c.detail for c in judged), judged
    assert j.row is not None and j.row["status"] == "valid", j.row


def test_a_later_revocation_still_needs_its_crl_when_crl_pem_is_gone(copy: Path, pristine: Pristine):
    """lee is revoked after signing: the embedded set cannot say from when; the ledger says a later set revoked him."""
    pki = PKI(copy / "pki")
    # Dated two seconds ahead: TSA times have whole seconds, and a revocation in the same second counts as before.
    pki.revoke(load_cert(pki.therapist_cert("lee"), "lee"), CLINICIAN_PASS, now=utcnow() + dt.timedelta(seconds=2))
    j = judge(copy, pristine.auditor, DONE)
    assert j.verdict.status == "valid", describe_failures(j.verdict)  # with the CRL set: revoked later, fine
    (copy / "pki" / "crl.pem").unlink()
    j = judge(copy, pristine.auditor, DONE)
    assert_rejected(j, "revocation.missing-crl", "revoked later")


def test_an_embedded_crl_not_signed_by_its_ca_is_refused(copy: Path, pristine: Pristine):
    """The intake CA's CRL inside the client's signature replaced by one an attacker signed (same issuer, number)."""
    pki = PKI(copy / "pki")
    intake, number = pki.intake(), min(c.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
                                       for c in pki.crls())
    (copy / "pki" / "crl.pem").unlink()
    now = utcnow()
    forged = (x509.CertificateRevocationListBuilder().issuer_name(intake.subject).last_update(now)
              .next_update(now + dt.timedelta(days=30)).add_extension(x509.CRLNumber(number), critical=False)
              .sign(ec.generate_private_key(ec.SECP256R1()), hashes.SHA256()))
    path = copy / "signed" / DONE / "01-client.json.p7s"
    info = acms.ContentInfo.load(path.read_bytes())
    kept = [c for c in info["content"]["crls"] if c.chosen["tbs_cert_list"]["issuer"].dump()
            != intake.subject.public_bytes()]
    info["content"]["crls"] = acms.RevocationInfoChoices(kept + [acms.RevocationInfoChoice(
        name="crl", value=acrl.CertificateList.load(forged.public_bytes(serialization.Encoding.DER)))])
    path.write_bytes(info.dump())
    trust = resolve_trust(trust_file=pristine.auditor / "root.pem", archive=copy / "signed",
                          tsa_trust=pristine.auditor / "tsa-roots.pem")
    alone = verify_folder(copy / "signed" / DONE, trust)  # no ledger: the CRL's own signature is what refuses it
    assert "revocation.missing-crl" in alone.codes, describe_failures(alone)
    assert any("not signed by it" in c.detail for c in alone.failures if c.code == "revocation.missing-crl")
    j = judge(copy, pristine.auditor, DONE)  # with the ledger: it also recorded another set, and this p7s
    assert_rejected(j, "revocation.substituted")
    assert "ledger.files-differ" in j.verdict.codes, describe_failures(j.verdict)


# ----------------------------------------------------------------------------- 3. archive renew


def test_renew_adds_a_time_stamped_record_to_every_folder_and_both_verify(copy: Path, pristine: Pristine, cli,
                                                                          tsa_folder: localtsa.TsaFolder):
    before = len(ledger_lines(copy))
    res = cli("archive", "renew", "--practice", copy)
    assert res.exit_code == 0, res.stdout + res.stderr
    assert f"renewed {DONE}: renewal-01.json" in res.stdout and f"renewed {HALF}: renewal-01.json" in res.stdout
    entries = ledger_lines(copy)[before:]
    assert [(e["event"], e["agreement_id"], e["record"]) for e in entries] == [
        ("renew", DONE, "renewal-01.json"), ("renew", HALF, "renewal-01.json")]
    folder = copy / "signed" / DONE
    raw = (folder / "renewal-01.json").read_bytes()
    rec = renewal_format.parse_renewal(raw, "renewal-01.json")
    assert rec.agreement_id == DONE and rec.sequence == 1
    on_disk = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir()
               if not p.name.startswith("renewal-")}
    assert rec.files == on_disk and "completion.pdf" in on_disk and "02-therapist.json.p7s" in on_disk
    assert entries[0]["files"] == {n: hashlib.sha256((folder / n).read_bytes()).hexdigest()
                                   for n in ("renewal-01.json", "renewal-01.tsr")}
    assert json.loads(raw)["format"] == "agreements-kit/renewal" and raw == renewal_format.encode(
        DONE, 1, rec.files, json.loads(raw)["created"])
    # OpenSSL alone: the token covers SHA-256 of the JSON's bytes and comes from the TSA.
    done = openssl("ts", "-verify", "-in", folder / "renewal-01.tsr", "-token_in", "-data",
                   folder / "renewal-01.json", "-CAfile", tsa_folder.root)
    assert done.returncode == 0 and "Verification: OK" in done.stdout, done.stdout + done.stderr
    j = judge(copy, pristine.auditor, DONE)
    assert j.verdict.status == "valid", describe_failures(j.verdict)
    evidence = [c for c in j.verdict.checks if c.name == "evidence"]
    assert evidence and all(c.ok for c in evidence) and evidence[0].step == STEP_NUMBER["evidence"]
    assert any(c.subject == "renewal-01.json" and "by TSA 'Renewal Test TSA'" in c.detail for c in evidence)
    assert not j.summary.renewal_due and j.summary.ok, j.summary.as_dict()
    half = judge(copy, pristine.auditor, HALF)
    assert half.verdict.status == "incomplete", describe_failures(half.verdict)


def test_renewing_twice_skips_unchanged_folders_and_the_next_renewal_covers_the_first(copy: Path,
                                                                                     pristine: Pristine):
    assert renew(copy) == {DONE: ("renewed", "renewal-01.json covers 9 files"),  # with the two signed copies
                           HALF: ("renewed", "renewal-01.json covers 5 files")}
    again = renew(copy)
    assert {k: v[0] for k, v in again.items()} == {DONE: "skipped", HALF: "skipped"}
    assert "unchanged since renewal-01.json" in again[DONE][1]
    sign_therapist(load_practice(copy), HALF, KEY_PASS["lee"])  # HALF changes: countersigned, completed
    third = renew(copy)
    assert third[DONE][0] == "skipped" and third[HALF] == ("renewed", "renewal-02.json covers 11 files")
    second = renewal_format.parse_renewal((copy / "signed" / HALF / "renewal-02.json").read_bytes(), "r")
    assert {"renewal-01.json", "renewal-01.tsr", "02-therapist.json.p7s", "completion.pdf"} <= set(second.files)
    j = judge(copy, pristine.auditor, HALF)
    assert j.verdict.status == "valid", describe_failures(j.verdict)
    assert {c.subject for c in j.verdict.checks if c.name == "evidence" and c.subject} == {
        "renewal-01.json", "renewal-02.json"}


def test_a_file_changed_after_renewal_is_named(copy: Path, pristine: Pristine):
    """completion.pdf is not signed evidence: only the renewal covers it, so only the renewal can name it."""
    renew(copy)
    path = copy / "signed" / DONE / "completion.pdf"
    path.write_bytes(path.read_bytes() + b"%tampered\n")
    assert_rejected(judge(copy, pristine.auditor, DONE), "evidence.renewal-mismatch", "completion.pdf changed")


def test_a_file_slipped_in_before_a_renewal_but_not_covered_is_named(copy: Path, pristine: Pristine):
    renew(copy)
    folder = copy / "signed" / DONE
    raw = json.loads((folder / "renewal-01.json").read_bytes())
    del raw["files"]["02-therapist.json"]
    (folder / "renewal-01.json").write_bytes(renewal_format.encode(DONE, 1, raw["files"], raw["created"]))
    j = judge(copy, pristine.auditor, DONE)
    assert_rejected(j, "evidence.renewal-mismatch", "does not cover 02-therapist.json")
    assert "evidence.renewal-token" in j.verdict.codes  # and its token no longer covers it


def test_a_deleted_renewal_is_named(copy: Path, pristine: Pristine):
    renew(copy)
    sign_therapist(load_practice(copy), HALF, KEY_PASS["lee"])
    renew(copy)
    for name in ("renewal-01.json", "renewal-01.tsr"):
        (copy / "signed" / HALF / name).unlink()
    j = judge(copy, pristine.auditor, HALF)
    assert_rejected(j, "evidence.renewal-erased", "renewal-01.json")
    for name in ("renewal-01.json", "renewal-01.tsr"):
        (copy / "signed" / DONE / name).unlink()
    assert_rejected(judge(copy, pristine.auditor, DONE), "evidence.renewal-erased", "renewal-01.json")


def test_a_renewal_token_over_other_bytes_is_named(copy: Path, pristine: Pristine):
    renew(copy)
    shutil.copy(copy / "signed" / HALF / "renewal-01.tsr", copy / "signed" / DONE / "renewal-01.tsr")
    j = judge(copy, pristine.auditor, DONE)
    assert_rejected(j, "evidence.renewal-token", "covers other bytes")
    assert "evidence.renewal-mismatch" in j.verdict.codes  # the ledger recorded the real token's hash


def test_a_renewal_the_ledger_never_recorded_is_named(copy: Path, pristine: Pristine, tsa: localtsa.LocalTsa):
    folder = copy / "signed" / DONE
    files = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir()}
    raw = renewal_format.encode(DONE, 1, files, f"{utcnow():%Y-%m-%dT%H:%M:%SZ}")
    (folder / "renewal-01.json").write_bytes(raw)
    (folder / "renewal-01.tsr").write_bytes(Timestamper((tsa.url,)).token(raw))  # a real token, made by hand
    assert_rejected(judge(copy, pristine.auditor, DONE), "evidence.renewal-unlogged", "renewal-01.json")
    assert renew(copy)[DONE][0] == "refused"  # renew never blesses a folder the ledger does not describe


def test_renewal_is_due_for_a_tsa_certificate_that_expires_soon(copy: Path, pristine: Pristine,
                                                                ageing: localtsa.LocalTsa):
    assert renew(copy, Timestamper((ageing.url,)))[DONE][0] == "renewed"
    j = judge(copy, pristine.auditor, DONE)
    assert j.verdict.status == "valid", describe_failures(j.verdict)  # a note, never a failure
    due = [c for c in j.verdict.checks if c.code == "evidence.renewal-due"]
    assert len(due) == 1 and due[0].ok and "within a year" in due[0].detail, j.verdict.checks
    assert j.summary.renewal_due == sorted([DONE, HALF])  # both were renewed by the ageing TSA
    assert DONE in j.summary.as_dict()["renewal_due"]["agreements"] and j.summary.ok
    assert any("renewal due" in n for n in j.summary.notes), j.summary.notes
    # Unchanged, but due: renew does not skip it; the long-lived TSA's renewal is not due.
    outcome = renew(copy)
    assert outcome[DONE] == ("renewed", "renewal-02.json covers 11 files"), outcome
    j = judge(copy, pristine.auditor, DONE)
    assert j.verdict.status == "valid" and DONE not in j.summary.renewal_due, describe_failures(j.verdict)


def test_a_tsa_failure_stops_renewal_and_writes_nothing(copy: Path, dead_url: str):
    before = (copy / "signed" / "ledger.jsonl").read_bytes()
    with pytest.raises(TimestampError) as failure:
        renew(copy, Timestamper((dead_url,), timeout=5))
    assert failure.value.code == "unavailable.tsa" and dead_url in failure.value.message
    assert (copy / "signed" / "ledger.jsonl").read_bytes() == before
    assert not list((copy / "signed").glob("*/renewal-*")) and not list((copy / "signed").glob("*/.renewal-*"))


def test_the_folder_reader_accepts_renewals_strictly(copy: Path):
    renew(copy)
    folder = copy / "signed" / DONE
    assert set(read_folder(str(folder)).renewals) == {"renewal-01.json", "renewal-01.tsr"}
    (folder / "renewal-1.json").write_bytes(b"{}")
    (folder / "renewal-02.txt").write_bytes(b"x")
    (folder / "renewal-02.tsr").write_bytes(b"\0" * (64 * 1024 + 1))
    problems = {(name, code) for name, code, _ in read_folder(str(folder)).problems}
    assert problems == {("renewal-1.json", "layout.unexpected-file"), ("renewal-02.txt", "layout.unexpected-file"),
                        ("renewal-02.tsr", "format.too-large")}, problems


@pytest.mark.parametrize(("change", "code"), [
    (lambda d: d.update(extra=1), "format.unknown-key"),
    (lambda d: d.update(hash_algorithm="sha-1"), "format.bad-value"),
    (lambda d: d["files"].update({"../etc/passwd": "0" * 64}), "format.bad-value"),
    (lambda d: d.update(format_version=2), "format.version"),
])
def test_the_renewal_parser_is_strict(change, code):
    raw = renewal_format.encode(DONE, 1, {"agreement.pdf": "a" * 64}, "2026-01-01T00:00:00Z")
    data = json.loads(raw)
    change(data)
    with pytest.raises(InvalidFormat) as bad:
        renewal_format.parse_renewal(json.dumps(data, sort_keys=True, separators=(",", ":")).encode(), "r")
    assert bad.value.code == code
    with pytest.raises(InvalidFormat) as pretty:
        renewal_format.parse_renewal(raw + b"\n", "r")
    assert pretty.value.code == "format.not-canonical"


def test_the_renew_command_stops_with_exit_3_when_the_tsa_is_down(copy: Path, cli, tsa: localtsa.LocalTsa,
                                                                   dead_url: str):
    settings = copy / "practice.yaml"
    text = settings.read_text(encoding="utf-8")
    assert tsa.url in text
    settings.write_text(text.replace(tsa.url, dead_url), encoding="utf-8")
    res = cli("archive", "renew", "--practice", copy)
    assert res.exit_code == 3, res.stdout + res.stderr
    assert "no archive time-stamp for agr-rn-done" in res.stdout + res.stderr and "Traceback" not in res.stderr
    assert not list((copy / "signed").glob("*/renewal-*"))
