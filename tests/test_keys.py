"""Keys in separate hands (issue 9, item 5): each key its own passphrase, the root offline, per-issuer CRLs,
rotation and revocation entered in the ledger.

The practice here has a root (offline after export), an intake CA (front desk: clients sign with it), a
clinician CA (whoever issues and revokes therapists) and two therapists, each key under a passphrase of
its own. Everything runs through the real code: the CLI in-process, the library, OpenSSL for what an
auditor would run, and the verifier on what comes out.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import attack_kit as kit
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from helpers import invoke, ok, private_copy, refused, tree

from agreements_kit.authoring.practice import load_practice
from agreements_kit.authoring.render import Job, Renderer
from agreements_kit.authoring.spec import make_spec
from agreements_kit.errors import LedgerError, PKIError
from agreements_kit.formats.certprofile import OU_ROOT, OU_THERAPIST, fingerprint
from agreements_kit.formats.crlset import issuer_key, parse_crl_set
from agreements_kit.formats.ledger import crl_numbers, encode, parse_entry
from agreements_kit.signing import pki as pki_module
from agreements_kit.signing.pki import INTAKE, PKI, load_cert, load_key, utcnow
from agreements_kit.signing.renders import log_renders
from agreements_kit.signing.setup import init_practice
from agreements_kit.signing.sign import ClientSigning, sign_client, sign_therapist
from agreements_kit.store.archive import Archive
from agreements_kit.store.files import make_private_dir, write_new
from agreements_kit.verification.ledgerview import build_index
from agreements_kit.verification.trust import load_trust
from agreements_kit.verification.verify import verify_folder

NAME = "Separate Hands Practice"
CLIENT = "Jane Q. Doe"
ROOT_PASS = "root-pass-sep-1"
INTAKE_PASS = "intake-pass-sep-1"
CLINICIAN_PASS = "clinician-pass-sep-1"
THERAPIST_PASS = {"lee": "lee-pass-sep-1", "ortiz": "ortiz-pass-sep-1"}
THERAPISTS = {"lee": ("Dr. Robin Lee", "PhD", "psychologist"), "ortiz": ("Sam Ortiz", "LCSW", "lcsw")}
SIGNED = "agr-keys-signed"   # client, then lee
ORTIZS = "agr-keys-ortiz"    # client, then ortiz
DRAFT = "agr-keys-draft"     # rendered only
LATER = "agr-keys-later"     # rendered only (for signatures after a change)
ENV = {"AGREEMENTS_PASSPHRASE": ROOT_PASS, "AGREEMENTS_INTAKE_PASSPHRASE": INTAKE_PASS,
       "AGREEMENTS_CLINICIAN_CA_PASSPHRASE": CLINICIAN_PASS}


def signing(root: Path, aid: str) -> ClientSigning:
    manifest = json.loads((root / "drafts" / aid / "manifest.json").read_text())
    return ClientSigning(name=CLIENT, consent=True, initials={c["id"]: "JQD" for c in manifest["clauses"]
                                                               if c["initials"]},
                         intent=True, identity_method="photo ID", identity_checked_by="Front desk")


def render(root: Path, *ids: str, therapist: str = "lee") -> None:
    practice = load_practice(root)
    renderer = Renderer.load(root)
    drafts = [renderer.render_to(Job(make_spec(client=CLIENT, therapist=therapist, id=aid), practice.drafts))
              for aid in ids]
    log_renders(practice, drafts)


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("keys") / "practice"
    init_practice(root, name=NAME, jurisdiction="US-NY", therapists=THERAPISTS, passphrase=ROOT_PASS.encode(),
                  intake_passphrase=INTAKE_PASS.encode(), clinician_passphrase=CLINICIAN_PASS.encode())
    pki = PKI(root / "pki")
    for tid, (name, *_) in THERAPISTS.items():
        pki.issue_clinician(tid, name, NAME, CLINICIAN_PASS.encode(), THERAPIST_PASS[tid].encode())
    render(root, SIGNED, DRAFT, LATER)
    render(root, ORTIZS, therapist="ortiz")
    practice = load_practice(root)
    # A minute back: a revocation or rotation in a test comes strictly after these signatures.
    at = utcnow() - dt.timedelta(seconds=90)
    for i, (aid, tid) in enumerate(((SIGNED, "lee"), (ORTIZS, "ortiz"))):
        sign_client(practice, aid, signing(root, aid), INTAKE_PASS.encode(), now=at + dt.timedelta(seconds=2 * i))
        sign_therapist(practice, aid, THERAPIST_PASS[tid].encode(), now=at + dt.timedelta(seconds=2 * i + 1))
    return root


@pytest.fixture
def pr(base: Path, tmp_path: Path, monkeypatch) -> Path:
    return private_copy(base, tmp_path, monkeypatch)


def verdict(root: Path, aid: str, trust_root: Path | None = None):
    return verify_folder(root / "signed" / aid, load_trust(trust_root or root / "pki" / "root.pem"),
                         ledger=root / "signed" / "ledger.jsonl")


def ledger(root: Path) -> list[dict]:
    return [json.loads(line) for line in (root / "signed" / "ledger.jsonl").read_bytes().splitlines()]


def set_env(monkeypatch, **values: str) -> None:
    for key in (*ENV, "AGREEMENTS_KEY_PASSPHRASE", "AGREEMENTS_LOG_PASSPHRASE"):
        monkeypatch.delenv(key, raising=False)
    for key, value in values.items():
        monkeypatch.setenv(key, value)


def client_args(root: Path, aid: str) -> list:
    return ["sign", aid, "--practice", root, "--as", "client", "--name", CLIENT, "--initials", "JQD", "--consent",
            "--agree", "--identity", "photo ID", "--checked-by", "Front desk"]


# --------------------------------------------------------------------------- each key, its own passphrase


def test_each_key_opens_with_its_own_passphrase_only(base: Path):
    pki = PKI(base / "pki")
    keys = {"root": (pki.root_key, ROOT_PASS), "intake": (pki.intake_key, INTAKE_PASS),
            "clinicians": (pki.clinician_key, CLINICIAN_PASS),
            **{tid: (pki.therapist_key(tid), p) for tid, p in THERAPIST_PASS.items()}}
    opened = 0
    for owner, (path, own) in keys.items():
        assert path.read_bytes().startswith(b"-----BEGIN " + b"ENCRYPTED PRIVATE KEY-----")
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        load_key(path, own.encode(), owner)
        opened += 1
        for other, (_, passphrase) in keys.items():
            if other != owner:  # no therapist opens another's key, no CA passphrase opens another key
                with pytest.raises(PKIError, match="wrong passphrase"):
                    load_key(path, passphrase.encode(), owner)
    assert opened == 5


def test_the_clinician_ca_issues_therapists_and_the_cms_carries_it(base: Path, tmp_path: Path):
    pki = PKI(base / "pki")
    root, clinicians, intake = pki.root(), pki.clinician_ca(), pki.intake()
    assert clinicians.issuer == root.subject and clinicians.subject not in (root.subject, intake.subject)
    clinicians.verify_directly_issued_by(root)
    bc = clinicians.extensions.get_extension_for_class(x509.BasicConstraints).value
    assert bc.ca and bc.path_length == 0
    assert clinicians.subject.get_attributes_for_oid(x509.NameOID.ORGANIZATIONAL_UNIT_NAME)[0].value == \
        "agreements-kit clinicians"
    lee = load_cert(pki.therapist_cert("lee"), "lee")
    lee.verify_directly_issued_by(clinicians)
    # The therapist's signature carries the clinician CA, so OpenSSL needs only the root: the README's command.
    rec = base / "signed" / SIGNED / "02-therapist.json"
    out = tmp_path / "signers.pem"
    proc = subprocess.run(["openssl", "cms", "-verify", "-binary", "-inform", "DER", "-in", f"{rec}.p7s",
                           "-content", str(rec), "-CAfile", str(base / "pki" / "root.pem"), "-purpose", "any",
                           "-out", "/dev/null"], capture_output=True, text=True)
    assert proc.returncode == 0 and "Verification successful" in proc.stderr, proc.stderr
    proc = subprocess.run(["openssl", "pkcs7", "-inform", "DER", "-in", f"{rec}.p7s", "-print_certs", "-out",
                           str(out)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    carried = {fingerprint(c) for c in x509.load_pem_x509_certificates(out.read_bytes())}
    assert {fingerprint(lee), fingerprint(clinicians)} <= carried
    v = verdict(base, SIGNED)
    assert v.status == "valid", [c.code for c in v.failures]
    paths = [c.detail for c in v.checks if c.name == "path" and c.subject == "02-therapist.json"]
    assert paths and "Clinician CA" in paths[0], paths


def test_every_ca_is_entered_in_the_register(base: Path):
    pki = PKI(base / "pki")
    certs = {e["certificate_sha256"]: e for e in ledger(base) if e["event"] == "certificate"}
    root = fingerprint(pki.root())
    assert certs[fingerprint(pki.clinician_ca())]["role"] == "clinician-ca"
    assert certs[fingerprint(pki.clinician_ca())]["issuer_sha256"] == root
    assert certs[fingerprint(pki.intake())]["role"] == "intake"
    lee = certs[fingerprint(load_cert(pki.therapist_cert("lee"), "lee"))]
    assert (lee["role"], lee["issuer_sha256"]) == ("therapist", fingerprint(pki.clinician_ca()))


def test_init_refuses_one_passphrase_for_two_keys(cli, monkeypatch, tmp_path: Path):
    for same in ("AGREEMENTS_INTAKE_PASSPHRASE", "AGREEMENTS_CLINICIAN_CA_PASSPHRASE"):
        set_env(monkeypatch, **{**ENV, same: ROOT_PASS})
        work = tmp_path / same
        work.mkdir()
        line = refused(cli("init", work / "p"), "same", "passphrase of its own")
        assert "root" in line
        assert tree(work) == {}
    set_env(monkeypatch, **{**ENV, "AGREEMENTS_CLINICIAN_CA_PASSPHRASE": INTAKE_PASS})
    work = tmp_path / "intake-clinician"
    work.mkdir()
    assert "intake CA and the clinician CA" in refused(cli("init", work / "p"), "same")
    assert tree(work) == {}
    with pytest.raises(PKIError, match="same"):
        PKI(tmp_path / "lib" / "pki").create(NAME, b"one-pass-1", b"one-pass-1", b"two-pass-2")
    assert not (tmp_path / "lib").exists() or tree(tmp_path / "lib") == {}


def test_the_root_passphrase_never_stands_in_for_another(cli, monkeypatch, pr: Path, tmp_path: Path):
    """With only $AGREEMENTS_PASSPHRASE (the root's) set, commands needing another key refuse by name."""
    set_env(monkeypatch, AGREEMENTS_PASSPHRASE=ROOT_PASS, AGREEMENTS_KEY_PASSPHRASE="new-ortiz-pass")
    work = tmp_path / "work"
    work.mkdir()
    refused(cli("init", work / "p"), "intake CA passphrase", "AGREEMENTS_INTAKE_PASSPHRASE",
            "--intake-passphrase-file")
    assert tree(work) == {}
    before = tree(pr)
    refused(cli(*client_args(pr, DRAFT)), "intake CA passphrase", "AGREEMENTS_INTAKE_PASSPHRASE")
    refused(cli("pki", "revoke", "--practice", pr, "--therapist", "lee"), "clinician CA passphrase",
            "AGREEMENTS_CLINICIAN_CA_PASSPHRASE")
    assert tree(pr) == before


def test_the_intake_passphrase_cannot_issue_or_revoke_a_therapist(cli, monkeypatch, pr: Path):
    set_env(monkeypatch, AGREEMENTS_CLINICIAN_CA_PASSPHRASE=INTAKE_PASS, AGREEMENTS_KEY_PASSPHRASE="new-lee-pass-1")
    before = tree(pr)
    pki = PKI(pr / "pki")
    lee = load_cert(pki.therapist_cert("lee"), "lee")
    pki.revoke(lee, CLINICIAN_PASS.encode())  # so that issuing lee anew is allowed: the passphrase decides
    revoked = tree(pr)
    refused(cli("pki", "issue", "--practice", pr, "--therapist", "lee"), "wrong passphrase", "clinician CA")
    refused(cli("pki", "revoke", "--practice", pr, "--therapist", "ortiz"), "wrong passphrase", "clinician CA")
    assert tree(pr) == revoked != before
    with pytest.raises(PKIError, match="wrong passphrase for the clinician CA"):
        PKI(pr / "pki").issue_clinician("ortiz", "Sam Ortiz", NAME, INTAKE_PASS.encode(), b"new-ortiz-pass")


def test_the_clinician_passphrase_cannot_sign_as_a_client(cli, monkeypatch, pr: Path):
    set_env(monkeypatch, AGREEMENTS_INTAKE_PASSPHRASE=CLINICIAN_PASS)
    before = tree(pr)
    refused(cli(*client_args(pr, DRAFT)), "wrong passphrase", "intake CA")
    assert tree(pr) == before
    # nor the root's
    set_env(monkeypatch, AGREEMENTS_INTAKE_PASSPHRASE=ROOT_PASS)
    refused(cli(*client_args(pr, DRAFT)), "wrong passphrase", "intake CA")
    assert tree(pr) == before


def test_a_therapist_passphrase_must_differ_from_the_clinician_cas(pr: Path):
    with pytest.raises(PKIError, match="passphrase of its own"):
        PKI(pr / "pki").issue_clinician("ortiz", "Sam Ortiz", NAME, CLINICIAN_PASS.encode(), CLINICIAN_PASS.encode())


# --------------------------------------------------------------------------- the root offline


def test_export_root_key_moves_it_checked(cli, monkeypatch, pr: Path, tmp_path: Path):
    medium = tmp_path / "usb"
    medium.mkdir()
    original = (pr / "pki" / "root.key.pem").read_bytes()
    set_env(monkeypatch, AGREEMENTS_PASSPHRASE="not-the-root-pass")
    before = tree(pr)
    refused(cli("pki", "export-root-key", "--practice", pr, "--to", medium), "wrong passphrase")
    assert tree(pr) == before and tree(medium) == {}
    set_env(monkeypatch, AGREEMENTS_PASSPHRASE=INTAKE_PASS)  # another key's passphrase is as wrong
    refused(cli("pki", "export-root-key", "--practice", pr, "--to", medium), "wrong passphrase")
    set_env(monkeypatch, AGREEMENTS_PASSPHRASE=ROOT_PASS)
    res = ok(cli("pki", "export-root-key", "--practice", pr, "--to", medium))
    assert "exported the root key" in res.stdout and "removed it" in res.stdout
    assert not (pr / "pki" / "root.key.pem").exists()
    copy = medium / "root.key.pem"
    assert copy.read_bytes() == original and stat.S_IMODE(os.stat(copy).st_mode) == 0o600
    assert {p.name for p in medium.iterdir()} == {"root.key.pem"}  # no temporary file left
    key = serialization.load_pem_private_key(copy.read_bytes(), password=ROOT_PASS.encode())
    assert key.public_key() == PKI(pr / "pki").root().public_key()
    refused(cli("pki", "export-root-key", "--practice", pr, "--to", medium), "exported already")


def test_with_the_root_key_exported_daily_work_goes_on(cli, monkeypatch, pr: Path, tmp_path: Path):
    medium = tmp_path / "usb"
    medium.mkdir()
    set_env(monkeypatch, AGREEMENTS_PASSPHRASE=ROOT_PASS)
    ok(cli("pki", "export-root-key", "--practice", pr, "--to", medium))
    shutil.move(str(medium), str(tmp_path / "usb-in-the-safe"))  # the medium is gone: offline
    assert not any(p.name.startswith("root.key") for p in (pr / "pki").rglob("*"))
    set_env(monkeypatch, AGREEMENTS_PASSPHRASE=THERAPIST_PASS["lee"], AGREEMENTS_INTAKE_PASSPHRASE=INTAKE_PASS,
            AGREEMENTS_CLINICIAN_CA_PASSPHRASE=CLINICIAN_PASS, AGREEMENTS_KEY_PASSPHRASE="ortiz-new-pass-1",
            AGREEMENTS_LOG_PASSPHRASE="log-pass-sep-1")
    # render, the transparency log's key, a staff account, intake links, a client signature, a countersignature, a void
    out = ok(cli("render", "--practice", pr, "--client", CLIENT, "--therapist", "lee", "--id", "agr-keys-new"))
    assert "agr-keys-new" in out.stdout
    ok(cli("log", "key", "init", "--practice", pr))
    staff_password = tmp_path / "staff-password"
    staff_password.write_text("front desk pass phrase sep\n", encoding="utf-8")
    ok(cli("staff", "add", "desk", "--practice", pr, "--password-file", staff_password))
    ok(cli("intake", "open", LATER, "--practice", pr, "--identity", "photo ID", "--checked-by", "Desk",
           "--staff", "desk", "--staff-password-file", staff_password))
    ok(cli(*client_args(pr, "agr-keys-new")))
    ok(cli(*client_args(pr, LATER)))
    ok(cli("sign", "agr-keys-new", "--practice", pr, "--as", "therapist"))
    ok(cli("void", LATER, "--practice", pr, "--reason", "Rendered twice"))
    # the practice administrator revokes and re-issues a therapist: the clinician CA alone
    ok(cli("pki", "revoke", "--practice", pr, "--therapist", "ortiz"))
    ok(cli("pki", "issue", "--practice", pr, "--therapist", "ortiz"))
    ok(cli("pki", "list", "--practice", pr))
    ok(cli("log", "checkpoint", "--practice", pr))
    ok(cli("log", "show", "--practice", pr))
    ok(cli("log", "prove", "agr-keys-new", "--practice", pr))
    trust = pr / "pki" / "root.pem"
    res = ok(cli("verify", pr / "signed" / "agr-keys-new", "--trust", trust))
    assert res.stdout.startswith("valid: agr-keys-new")
    res = cli("audit", pr / "signed", "--trust", trust)
    assert res.exit_code == 0, res.stdout + res.stderr
    assert res.stdout.startswith("ok: ")
    # the intake server starts and serves with the intake CA's passphrase alone
    _serve_once(pr)
    # only a CA operation needs the root, and says where to give it
    set_env(monkeypatch, AGREEMENTS_PASSPHRASE=ROOT_PASS, AGREEMENTS_INTAKE_PASSPHRASE="new-intake-pass-1")
    before = tree(pr)
    refused(cli("pki", "rotate", "--intake", "--practice", pr), "root key is not in", "--root-key")
    assert tree(pr) == before
    ok(cli("pki", "rotate", "--intake", "--practice", pr, "--root-key",
           tmp_path / "usb-in-the-safe" / "root.key.pem"))
    assert not (pr / "pki" / "root.key.pem").exists()  # it was used where it is, never copied back


def _serve_once(root: Path) -> None:
    agreements = Path(sys.executable).parent / "agreements"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGREEMENTS_")}
    env["AGREEMENTS_INTAKE_PASSPHRASE"] = INTAKE_PASS
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([str(agreements), "intake", "serve", "--practice", str(root), "--port", str(port)],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env)
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        assert "intake server on http://127.0.0.1:" in line, line + (proc.stderr.read() if proc.poll() else "")
    finally:
        proc.terminate()
        proc.wait(timeout=30)


# --------------------------------------------------------------------------- per-issuer CRLs


def crl_blocks(root: Path) -> dict[x509.Name, bytes]:
    return {c.issuer: c.public_bytes(serialization.Encoding.DER)
            for c in parse_crl_set((root / "pki" / "crl.pem").read_bytes(), "crl.pem").crls}


def test_revoking_a_therapist_reissues_only_the_clinician_cas_crl(pr: Path):
    pki = PKI(pr / "pki")
    before = crl_blocks(pr)
    numbers_before = parse_crl_set(pki.crl.read_bytes(), "crl").numbers
    ortiz = load_cert(pki.therapist_cert("ortiz"), "ortiz")
    # the root's key is not even there: revoking a therapist never needs it
    (pr / "pki" / "root.key.pem").unlink()
    pki.revoke(ortiz, CLINICIAN_PASS.encode())
    after = crl_blocks(pr)
    ca = pki.clinician_ca().subject
    assert set(after) == set(before) and len(after) == 3
    assert [name for name in after if after[name] != before[name]] == [ca]
    crls = parse_crl_set(pki.crl.read_bytes(), "crl")
    key = issuer_key(ca)
    assert crls.numbers == {**numbers_before, key: numbers_before[key] + 1}
    assert crls.for_issuer(ca).get_revoked_certificate_by_serial_number(ortiz.serial_number) is not None
    entry = ledger(pr)[-1]
    assert entry["event"] == "crl" and entry["revoked"] == [fingerprint(ortiz)]
    assert entry["crl_numbers"] == crls.numbers and entry["crls"] == crls.digests()
    assert verdict(pr, SIGNED).status == "valid"  # lee, the intake CA and the root are untouched


@pytest.mark.parametrize(("change", "code"), [
    ("rollback", "revocation.rollback"),
    ("substituted", "revocation.substituted"),
    ("unlogged", "revocation.unlogged"),
    ("removed", "revocation.substituted"),
])
def test_crl_attacks_are_named_per_issuer(pr: Path, change: str, code: str):
    pki = PKI(pr / "pki")
    older = pki.crl.read_bytes()
    pki.revoke(load_cert(pki.therapist_cert("ortiz"), "ortiz"), CLINICIAN_PASS.encode())
    clinicians = pki.clinician_ca()
    ca_key = load_key(pki.clinician_key, CLINICIAN_PASS.encode(), "clinician CA")
    current = pki.crl.read_bytes()
    if change == "rollback":
        data = older  # the set from before ortiz's revocation, put back
    elif change == "substituted":
        data = kit.replace_crl(current, clinicians, ca_key, 2)  # number 2 again, without the revocation
    elif change == "unlogged":
        data = kit.replace_crl(current, clinicians, ca_key, 3)
    else:
        data = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in parse_crl_set(current, "c").crls
                        if c.issuer != clinicians.subject)
    kit.rewrite(pki.crl, data)
    v = verdict(pr, ORTIZS)
    details = [c.detail for c in v.failures if c.code == code]
    assert details, [c.code for c in v.failures]
    if change != "removed":
        assert all("Clinician CA" in d for d in details), details  # it names the issuer whose CRL it is
    # the other issuers' CRLs, untouched, are not blamed
    assert not [d for c in v.failures for d in [c.detail] if "Root CA" in d or "Intake CA" in d]


# --------------------------------------------------------------------------- rotation


def test_rotating_the_intake_ca(cli, monkeypatch, pr: Path):
    pki = PKI(pr / "pki")
    old, old_key_pem = pki.intake(), pki.intake_key.read_bytes()
    set_env(monkeypatch, AGREEMENTS_PASSPHRASE=ROOT_PASS, AGREEMENTS_INTAKE_PASSPHRASE=ROOT_PASS)
    refused(cli("pki", "rotate", "--intake", "--practice", pr), "same")
    set_env(monkeypatch, AGREEMENTS_PASSPHRASE=ROOT_PASS, AGREEMENTS_INTAKE_PASSPHRASE="new-intake-pass-1")
    res = ok(cli("pki", "rotate", "--intake", "--practice", pr))
    assert "revoked" in res.stdout
    new = pki.intake()
    assert new.serial_number != old.serial_number and new.subject != old.subject
    assert (pki.retired / f"intake-{old.serial_number:x}.pem").read_bytes() == \
        old.public_bytes(serialization.Encoding.PEM)
    load_key(pki.intake_key, b"new-intake-pass-1", "intake CA")  # the new key, its new passphrase
    with pytest.raises(PKIError):
        load_key(pki.intake_key, INTAKE_PASS.encode(), "intake CA")
    assert old_key_pem not in b"".join(p.read_bytes() for p in pki.root_dir.rglob("*") if p.is_file())
    # entered in the ledger: the new CA in the register, the old one revoked in the root's CRL
    entries = ledger(pr)
    assert entries[-2]["event"] == "certificate" and entries[-2]["role"] == "intake"
    assert entries[-2]["certificate_sha256"] == fingerprint(new)
    assert entries[-1]["event"] == "crl" and entries[-1]["revoked"] == [fingerprint(old)]
    root_crl = parse_crl_set(pki.crl.read_bytes(), "crl").for_issuer(pki.root().subject)
    revoked = root_crl.get_revoked_certificate_by_serial_number(old.serial_number)
    assert revoked.extensions.get_extension_for_class(x509.CRLReason).value.reason == x509.ReasonFlags.superseded
    # what the old CA issued before stays valid; a client signs with the new one
    assert verdict(pr, SIGNED).status == "valid"
    monkeypatch.setenv("AGREEMENTS_INTAKE_PASSPHRASE", "new-intake-pass-1")
    ok(cli(*client_args(pr, DRAFT)))
    v = verdict(pr, DRAFT)
    assert v.status == "incomplete" and not v.failures, [c.code for c in v.failures]
    # the old key, stolen before the rotation, no longer makes a valid signature
    keep = pki.intake_key.read_bytes(), pki.intake_cert.read_bytes()
    kit.rewrite(pki.intake_key, old_key_pem)
    kit.rewrite(pki.intake_cert, old.public_bytes(serialization.Encoding.PEM))
    sign_client(load_practice(pr), LATER, signing(pr, LATER), INTAKE_PASS.encode())
    kit.rewrite(pki.intake_key, keep[0])
    kit.rewrite(pki.intake_cert, keep[1])
    codes = {c.code for c in verdict(pr, LATER).failures}
    assert {"revocation.revoked", "revocation.revoked-by-ledger"} <= codes, codes


def test_rotating_the_clinician_ca(cli, monkeypatch, pr: Path):
    pki = PKI(pr / "pki")
    old = pki.clinician_ca()
    old_lee = load_cert(pki.therapist_cert("lee"), "lee")
    set_env(monkeypatch, AGREEMENTS_PASSPHRASE=ROOT_PASS, AGREEMENTS_CLINICIAN_CA_PASSPHRASE="new-clinician-pass")
    res = ok(cli("pki", "rotate", "--clinician-ca", "--practice", pr))
    assert "pki issue --therapist" in res.stdout
    new = pki.clinician_ca()
    assert new.subject != old.subject and (pki.retired / f"clinicians-{old.serial_number:x}.pem").is_file()
    assert verdict(pr, SIGNED).status == "valid"  # signed before the rotation
    # the old CA's certificates sign no more; a new one is issued without revoking the old first
    sign_env = {"AGREEMENTS_PASSPHRASE": THERAPIST_PASS["lee"]}
    render(pr, "agr-keys-rot")
    set_env(monkeypatch, AGREEMENTS_INTAKE_PASSPHRASE=INTAKE_PASS)
    ok(cli(*client_args(pr, "agr-keys-rot")))
    set_env(monkeypatch, **sign_env)
    refused(cli("sign", "agr-keys-rot", "--practice", pr, "--as", "therapist"), "clinician CA", "pki issue")
    set_env(monkeypatch, AGREEMENTS_CLINICIAN_CA_PASSPHRASE="new-clinician-pass",
            AGREEMENTS_KEY_PASSPHRASE=THERAPIST_PASS["lee"] + "-2")
    ok(cli("pki", "issue", "--practice", pr, "--therapist", "lee"))
    lee = load_cert(pki.therapist_cert("lee"), "lee")
    lee.verify_directly_issued_by(new)
    assert (pki.therapists / f"lee-{old_lee.serial_number:x}.pem").is_file()
    set_env(monkeypatch, AGREEMENTS_PASSPHRASE=THERAPIST_PASS["lee"] + "-2")
    ok(cli("sign", "agr-keys-rot", "--practice", pr, "--as", "therapist"))
    v = verdict(pr, "agr-keys-rot")
    assert v.status == "valid", [(c.code, c.detail) for c in v.failures]
    registered = [e for e in ledger(pr) if e["event"] == "certificate" and e["role"] == "clinician-ca"]
    assert [e["certificate_sha256"] for e in registered] == [fingerprint(old), fingerprint(new)]


# --------------------------------------------------------------------------- practices made before


def legacy_practice(root: Path) -> None:
    """A practice as the tools made it before keys were separated: root and intake CA under one passphrase,
    therapists issued by the root, one CRL number for the set (an old-format ``crl`` ledger line)."""
    init_practice(root, name=NAME, jurisdiction="US-NY", therapists=THERAPISTS)
    pki = PKI(root / "pki")
    make_private_dir(pki.root_dir)
    make_private_dir(pki.therapists)
    now = utcnow() - dt.timedelta(hours=1)
    root_key = ec.generate_private_key(ec.SECP256R1())
    name = pki_module._name(f"{NAME} Root CA", NAME, OU_ROOT)
    root_cert = pki_module._ca_extensions(
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(root_key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=3650)), root_key, root_key, 1
    ).sign(root_key, pki_module.hashes.SHA256())
    intake, intake_key = pki_module._sub_ca(PKI._ca_name(INTAKE, NAME, 1), root_cert, root_key, now)
    write_new(pki.root_key, pki_module._encrypted(root_key, ROOT_PASS.encode()))
    write_new(pki.intake_key, pki_module._encrypted(intake_key, ROOT_PASS.encode()))
    write_new(pki.intake_cert, pki_module._pem(intake))
    write_new(pki.crl, pki_module._crl(root_cert, root_key, 1, [], now) + pki_module._crl(intake, intake_key, 1, [],
                                                                                          now))
    pki.register(root_cert, "root", root_cert, now)
    pki.register(intake, "intake", root_cert, now)
    crls = parse_crl_set(pki.crl.read_bytes(), "crl")
    archive = Archive(pki.archive_dir())
    with archive.locked():
        archive.log({"event": "crl", "crl_number": 1, "crls": crls.digests(), "time": pki_module.iso(now),
                     "revoked": []})
    write_new(pki.root_cert, pki_module._pem(root_cert))
    key = ec.generate_private_key(ec.SECP256R1())
    lee = pki_module._leaf(pki_module._name("Dr. Robin Lee", NAME, OU_THERAPIST), key.public_key(), root_cert,
                           root_key, now - dt.timedelta(minutes=5), now + dt.timedelta(days=730))
    write_new(pki.therapist_key("lee"), pki_module._encrypted(key, THERAPIST_PASS["lee"].encode()))
    write_new(pki.therapist_cert("lee"), pki_module._pem(lee))
    pki.register(lee, "therapist", root_cert, now, therapist_id="lee")


def test_a_practice_made_before_keeps_working_and_gains_a_clinician_ca(cli, monkeypatch, tmp_path: Path):
    root = tmp_path / "legacy"
    legacy_practice(root)
    render(root, SIGNED, DRAFT)
    practice = load_practice(root)
    at = utcnow() - dt.timedelta(seconds=90)  # strictly before the revocation below
    sign_client(practice, SIGNED, signing(root, SIGNED), ROOT_PASS.encode(), now=at)  # its one passphrase
    sign_therapist(practice, SIGNED, THERAPIST_PASS["lee"].encode(), now=at + dt.timedelta(seconds=1))
    old_line = next(e for e in ledger(root) if e["event"] == "crl")
    assert "crl_number" in old_line and "crl_numbers" not in old_line
    v = verdict(root, SIGNED)
    assert v.status == "valid", [(c.code, c.detail) for c in v.failures]  # root-issued therapist: path of 2
    # issuing a therapist needs the clinician CA: the command names how to add it
    set_env(monkeypatch, AGREEMENTS_CLINICIAN_CA_PASSPHRASE=CLINICIAN_PASS, AGREEMENTS_KEY_PASSPHRASE="ortiz-pass-1")
    before = tree(root)
    refused(cli("pki", "issue", "--practice", root, "--therapist", "ortiz"), "agreements pki add-clinician-ca")
    assert tree(root) == before
    set_env(monkeypatch, AGREEMENTS_PASSPHRASE=ROOT_PASS, AGREEMENTS_CLINICIAN_CA_PASSPHRASE=CLINICIAN_PASS,
            AGREEMENTS_KEY_PASSPHRASE="ortiz-pass-1")
    ok(cli("pki", "add-clinician-ca", "--practice", root))
    refused(cli("pki", "add-clinician-ca", "--practice", root), "already")
    ok(cli("pki", "issue", "--practice", root, "--therapist", "ortiz"))
    pki = PKI(root / "pki")
    load_cert(pki.therapist_cert("ortiz"), "ortiz").verify_directly_issued_by(pki.clinician_ca())
    new_line = ledger(root)[-2]  # the crl entry add-clinician-ca wrote (before ortiz's register entry)
    assert new_line["event"] == "crl" and len(new_line["crl_numbers"]) == 3
    assert verdict(root, SIGNED).status == "valid"  # old-format and new-format crl lines side by side
    # lee's root-issued certificate is revoked by the root (its issuer), with a note saying so
    res = ok(cli("pki", "revoke", "--practice", root, "--therapist", "lee"))
    assert "issued by the root" in res.stderr
    lee = load_cert(pki.therapist_cert("lee"), "lee")
    root_crl = parse_crl_set(pki.crl.read_bytes(), "crl").for_issuer(pki.root().subject)
    assert root_crl.get_revoked_certificate_by_serial_number(lee.serial_number) is not None
    v = verdict(root, SIGNED)
    assert v.status == "valid" and any("revoked later" in n for n in v.notes), v.notes
    # rolling the root's CRL back is still named, now per issuer, across old and new lines
    older = kit.crl_set([(pki.root(), load_key(pki.root_key, ROOT_PASS.encode(), "root"))], 1)
    rest = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in pki.crls() if c.issuer != pki.root().subject)
    kit.rewrite(pki.crl, older + rest)
    assert "revocation.rollback" in {c.code for c in verdict(root, SIGNED).failures}


# --------------------------------------------------------------------------- the ledger's crl line, both forms


def _line(seq: int, prev: str, fields: dict) -> bytes:
    return encode({"seq": seq, "prev": prev, "time": "2026-12-03T10:00:00Z", **fields})


def test_crl_lines_old_and_new_are_read_and_indexed_per_issuer(tmp_path: Path):
    import hashlib

    a, b = "a" * 64, "b" * 64
    old = _line(1, "0" * 64, {"event": "crl", "crl_number": 1, "crls": {a: "1" * 64, b: "2" * 64}, "revoked": []})
    new = _line(2, hashlib.sha256(old).hexdigest(),
                {"event": "crl", "crl_numbers": {a: 1, b: 2}, "crls": {a: "1" * 64, b: "3" * 64}, "revoked": []})
    path = tmp_path / "ledger.jsonl"
    path.write_bytes(old + b"\n" + new + b"\n")
    assert crl_numbers(parse_entry(old, "l", 1).data) == {a: 1, b: 1}
    assert crl_numbers(parse_entry(new, "l", 2).data) == {a: 1, b: 2}
    index = build_index(str(path))
    assert index.report.ok, index.report.problems
    assert index.newest_crl() == {a: 1, b: 2}
    assert index.newest_crl(before_seq=2) == {a: 1, b: 1}
    assert (index.crl_entry(b, 1), index.crl_entry(b, 2), index.crl_entry(b, 3)) == ("2" * 64, "3" * 64, None)
    both = _line(1, "0" * 64, {"event": "crl", "crl_number": 1, "crl_numbers": {a: 1}, "crls": {a: "1" * 64},
                               "revoked": []})
    neither = _line(1, "0" * 64, {"event": "crl", "crls": {a: "1" * 64}, "revoked": []})
    for line in (both, neither):
        with pytest.raises(LedgerError, match="crl_number"):
            parse_entry(line, "l", 1)


def test_the_schema_takes_both_forms_of_a_crl_line():
    from jsonschema import Draft202012Validator

    schema = json.loads((Path(__file__).resolve().parent.parent / "docs" / "schemas" /
                         "ledger-entry.schema.json").read_text())
    validator = Draft202012Validator(schema)
    base = {"seq": 1, "prev": "0" * 64, "format": "agreements-kit/ledger", "format_version": 2, "event": "crl",
            "time": "2026-12-03T10:00:00Z", "crls": {"a" * 64: "1" * 64}, "revoked": []}
    assert validator.is_valid({**base, "crl_number": 1})
    assert validator.is_valid({**base, "crl_numbers": {"a" * 64: 4}})
    assert not validator.is_valid(base)
    assert not validator.is_valid({**base, "crl_number": 1, "crl_numbers": {"a" * 64: 4}})


# --------------------------------------------------------------------------- the demo


def test_the_demo_gives_every_key_its_own_random_passphrase(tmp_path: Path):
    res = subprocess.run([str(Path(sys.executable).parent / "agreements"), "demo", str(tmp_path / "demo")],
                         capture_output=True, text=True, timeout=600,
                         env={k: v for k, v in os.environ.items() if not k.startswith("AGREEMENTS_")})
    assert res.returncode == 0, res.stdout + res.stderr
    demo = tmp_path / "demo"
    files = {name: (demo / name).read_bytes().strip() for name in
             ("demo-passphrase.txt", "demo-intake-passphrase.txt", "demo-clinician-ca-passphrase.txt",
              "demo-lee-passphrase.txt", "demo-log-passphrase.txt")}
    assert len(set(files.values())) == len(files)
    pki = PKI(demo / "pki")
    load_key(pki.root_key, files["demo-passphrase.txt"], "root")
    load_key(pki.intake_key, files["demo-intake-passphrase.txt"], "intake")
    load_key(pki.clinician_key, files["demo-clinician-ca-passphrase.txt"], "clinician CA")
    load_key(pki.therapist_key("lee"), files["demo-lee-passphrase.txt"], "lee")
    with pytest.raises(PKIError):
        load_key(pki.intake_key, files["demo-passphrase.txt"], "intake")


def test_invoke_helper_clears_the_new_variables(pr: Path, monkeypatch):
    """tests/helpers.invoke runs with the new variables unset unless given: a refusal, not a reuse."""
    monkeypatch.setenv("AGREEMENTS_INTAKE_PASSPHRASE", INTAKE_PASS)
    with pytest.raises(AssertionError, match="AGREEMENTS_INTAKE_PASSPHRASE"):
        invoke(client_args(pr, DRAFT), env={"AGREEMENTS_PASSPHRASE": ROOT_PASS})
