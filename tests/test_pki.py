"""The practice PKI: ``agreements init`` and ``agreements pki issue/revoke/list``.

Certificates and CRLs are read back with ``cryptography`` (and, where it adds
an independent check, with the ``openssl`` command), never through the
package's own loaders. Passphrases come from a file or the environment: the
CLI must never take one as a command-line value.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import stat
import subprocess
from pathlib import Path

import click
import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from helpers import invoke, ledger_entries, ok, private_copy, refused, tree

from agreements_kit.authoring.practice import load_practice
from agreements_kit.cli.commands import main
from agreements_kit.signing.pki import PKI

PRACTICE_PASS = "practice-pass-1"  # the root's
INTAKE_PASS = "intake-pass-1"
CLINICIAN_PASS = "clinician-ca-pass-1"
LEE_PASS = "lee-key-pass-1"
ALL_CA_PASSPHRASES = {"AGREEMENTS_PASSPHRASE": PRACTICE_PASS, "AGREEMENTS_INTAKE_PASSPHRASE": INTAKE_PASS,
                      "AGREEMENTS_CLINICIAN_CA_PASSPHRASE": CLINICIAN_PASS}
PRACTICE_NAME = "Test PKI Practice"

needs_openssl = pytest.mark.requires_tool("openssl")


# --------------------------------------------------------------------------- helpers


def cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def crls(path: Path) -> list[x509.CertificateRevocationList]:
    """Every CRL in a PEM file (there are several, one after another)."""
    data = path.read_bytes()
    marker = b"-----END X509 CRL-----"
    blocks = [b + marker + b"\n" for b in data.split(marker) if b.strip()]
    return [x509.load_pem_x509_crl(b.strip() + b"\n") for b in blocks]


def cn(c: x509.Certificate) -> str:
    return c.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value


def assert_p256_sha256(c: x509.Certificate) -> None:
    pub = c.public_key()
    assert isinstance(pub, ec.EllipticCurvePublicKey)
    assert isinstance(pub.curve, ec.SECP256R1)
    assert isinstance(c.signature_hash_algorithm, hashes.SHA256)
    assert c.signature_algorithm_oid == x509.oid.SignatureAlgorithmOID.ECDSA_WITH_SHA256


def basic_constraints(c: x509.Certificate) -> x509.Extension:
    return c.extensions.get_extension_for_class(x509.BasicConstraints)


def env(monkeypatch, **values: str | None) -> None:
    for key in ("AGREEMENTS_PASSPHRASE", "AGREEMENTS_KEY_PASSPHRASE", "AGREEMENTS_INTAKE_PASSPHRASE",
                "AGREEMENTS_CLINICIAN_CA_PASSPHRASE", "AGREEMENTS_PRACTICE"):
        monkeypatch.delenv(key, raising=False)
    for key, value in values.items():
        if value is not None:
            monkeypatch.setenv(key, value)


def therapist_row(rows: list[dict], file: str) -> dict:
    found = [r for r in rows if r["file"] == file]
    assert len(found) == 1, rows
    return found[0]


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    """A practice made by ``agreements init`` (passphrase file) with lee's certificate issued by the CLI."""
    top = tmp_path_factory.mktemp("pki")
    pass_file = top / "practice-pass.txt"
    pass_file.write_text(PRACTICE_PASS + "\n")
    root = top / "practice"
    invoke(["init", root, "--name", PRACTICE_NAME, "--jurisdiction", "US-NY", "--passphrase-file", pass_file],
           env={"AGREEMENTS_INTAKE_PASSPHRASE": INTAKE_PASS, "AGREEMENTS_CLINICIAN_CA_PASSPHRASE": CLINICIAN_PASS})
    # practice.yaml from init lists only an example therapist: list ours.
    settings = yaml.safe_load((root / "practice.yaml").read_text())
    settings["therapists"] = {"lee": {"name": "Dr. Robin Lee", "credentials": "PhD"},
                              "ortiz": {"name": "Sam Ortiz", "credentials": "LCSW"}}
    (root / "practice.yaml").write_text(yaml.safe_dump(settings, sort_keys=False))
    invoke(["pki", "issue", "--practice", root, "--therapist", "lee"],
           env={"AGREEMENTS_CLINICIAN_CA_PASSPHRASE": CLINICIAN_PASS, "AGREEMENTS_KEY_PASSPHRASE": LEE_PASS})
    return root


@pytest.fixture
def pr(base: Path, tmp_path: Path) -> Path:
    """A private copy of ``base`` for tests that change it."""
    return private_copy(base, tmp_path)


# --------------------------------------------------------------------------- init


def test_init_creates_the_pki_files(base: Path):
    pki = base / "pki"
    names = {p.name for p in pki.iterdir()}
    assert {"root.pem", "root.key.pem", "intake.pem", "intake.key.pem", "clinicians.pem", "clinicians.key.pem",
            "crl.pem", "therapists"} <= names
    assert (pki / "therapists").is_dir()
    assert {p.name for p in (pki / "therapists").iterdir()} == {"lee.pem", "lee.key.pem"}


def test_every_file_is_0600_and_every_folder_0700(base: Path):
    checked = 0
    for dirpath, _dirnames, filenames in os.walk(base):
        assert stat.S_IMODE(os.stat(dirpath).st_mode) == 0o700, dirpath
        for f in filenames:
            mode = stat.S_IMODE(os.stat(os.path.join(dirpath, f)).st_mode)
            assert mode == 0o600, (os.path.join(dirpath, f), oct(mode))
            checked += 1
    assert checked >= 8


def test_root_ca_is_self_signed_p256_sha256_ca_with_path_length_1(base: Path):
    root = cert(base / "pki" / "root.pem")
    assert_p256_sha256(root)
    assert root.issuer == root.subject
    root.verify_directly_issued_by(root)
    bc = basic_constraints(root)
    assert bc.critical and bc.value.ca is True and bc.value.path_length == 1
    ku = root.extensions.get_extension_for_class(x509.KeyUsage).value
    assert ku.key_cert_sign and ku.crl_sign
    assert PRACTICE_NAME in cn(root)
    # It must outlive the six years records are kept.
    assert root.not_valid_after_utc - dt.datetime.now(dt.UTC) > dt.timedelta(days=365 * 6)


def test_intake_ca_is_issued_by_root_with_path_length_0(base: Path):
    root = cert(base / "pki" / "root.pem")
    intake = cert(base / "pki" / "intake.pem")
    assert_p256_sha256(intake)
    assert intake.issuer == root.subject
    assert intake.subject != root.subject
    intake.verify_directly_issued_by(root)
    bc = basic_constraints(intake)
    assert bc.critical and bc.value.ca is True and bc.value.path_length == 0
    assert intake.not_valid_after_utc <= root.not_valid_after_utc


@needs_openssl
def test_openssl_accepts_the_chain(base: Path):
    pki = base / "pki"
    for leaf in ("intake.pem", "clinicians.pem", "therapists/lee.pem"):
        proc = subprocess.run(["openssl", "verify", "-CAfile", str(pki / "root.pem"), "-untrusted",
                               str(pki / "clinicians.pem"), str(pki / leaf)], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize(("key_file", "cert_file", "passphrase"), [
    ("root.key.pem", "root.pem", PRACTICE_PASS),
    ("intake.key.pem", "intake.pem", INTAKE_PASS),
    ("clinicians.key.pem", "clinicians.pem", CLINICIAN_PASS),
    ("therapists/lee.key.pem", "therapists/lee.pem", LEE_PASS),
])
def test_private_keys_are_encrypted_pem(base: Path, key_file: str, cert_file: str, passphrase: str):
    data = (base / "pki" / key_file).read_bytes()
    assert data.startswith(b"-----BEGIN " + b"ENCRYPTED PRIVATE KEY-----")  # split: no key-like line in the repo
    with pytest.raises(TypeError):
        serialization.load_pem_private_key(data, password=None)
    with pytest.raises(ValueError, match="Incorrect password"):
        serialization.load_pem_private_key(data, password=b"not-the-passphrase")
    key = serialization.load_pem_private_key(data, password=passphrase.encode())
    assert isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(key.curve, ec.SECP256R1)
    # The key is the one the certificate certifies.
    assert key.public_key() == cert(base / "pki" / cert_file).public_key()


def test_therapist_key_is_not_under_the_practice_passphrase(base: Path):
    data = (base / "pki" / "therapists" / "lee.key.pem").read_bytes()
    with pytest.raises(ValueError, match="Incorrect password"):
        serialization.load_pem_private_key(data, password=PRACTICE_PASS.encode())


def test_crl_file_holds_the_root_intake_and_clinician_crls_signed_by_them(base: Path):
    cas = {c.subject: c for c in (cert(base / "pki" / f) for f in ("root.pem", "intake.pem", "clinicians.pem"))}
    found = crls(base / "pki" / "crl.pem")
    assert len(found) == 3
    assert {c.issuer for c in found} == set(cas)
    for c in found:
        issuer = cas[c.issuer]
        assert c.is_signature_valid(issuer.public_key())
        assert len(c) == 0  # nothing revoked yet
        assert c.next_update_utc > dt.datetime.now(dt.UTC)


def test_init_passphrase_from_environment(cli, monkeypatch, tmp_path: Path):
    env(monkeypatch, AGREEMENTS_PASSPHRASE="env-pass-phrase", AGREEMENTS_INTAKE_PASSPHRASE="env-intake-pass",
        AGREEMENTS_CLINICIAN_CA_PASSPHRASE="env-clinician-pass")
    root = tmp_path / "envpractice"
    res = ok(cli("init", root, "--name", "Env Practice"))
    assert "root.pem" in res.stdout
    for name, passphrase in (("root", b"env-pass-phrase"), ("intake", b"env-intake-pass"),
                             ("clinicians", b"env-clinician-pass")):
        key = (root / "pki" / f"{name}.key.pem").read_bytes()
        serialization.load_pem_private_key(key, password=passphrase)


def test_init_passphrase_file_wins_over_environment_and_loses_its_newline(cli, monkeypatch, tmp_path: Path):
    env(monkeypatch, AGREEMENTS_PASSPHRASE="env-pass-phrase", AGREEMENTS_INTAKE_PASSPHRASE="env-intake-pass",
        AGREEMENTS_CLINICIAN_CA_PASSPHRASE="env-clinician-pass")
    pass_file = tmp_path / "pass.txt"
    pass_file.write_text("file-pass-phrase\n")
    root = tmp_path / "filepractice"
    ok(cli("init", root, "--passphrase-file", pass_file))
    key = (root / "pki" / "root.key.pem").read_bytes()
    serialization.load_pem_private_key(key, password=b"file-pass-phrase")
    with pytest.raises(ValueError, match="Incorrect password"):
        serialization.load_pem_private_key(key, password=b"env-pass-phrase")


def test_init_help_offers_a_passphrase_file_but_no_passphrase_value(cli):
    res = ok(cli("init", "--help"))
    options = [w.rstrip(",") for w in res.stdout.split() if w.startswith("--")]
    assert {"--passphrase-file", "--intake-passphrase-file", "--clinician-passphrase-file"} <= set(options)
    assert not [o for o in options if "passphrase" in o and not o.endswith("-passphrase-file")], options


def _all_commands(group: click.Group, prefix: str = ""):
    for name, command in group.commands.items():
        yield f"{prefix}{name}", command
        if isinstance(command, click.Group):
            yield from _all_commands(command, f"{prefix}{name} ")


def test_no_command_takes_a_passphrase_value_on_the_command_line():
    seen = 0
    for path, command in _all_commands(main):
        for param in command.params:
            if not isinstance(param, click.Option):
                continue
            for opt in param.opts + param.secondary_opts:
                if "passphrase" in opt or "password" in opt:
                    seen += 1
                    assert opt.endswith("-file"), f"'agreements {path}' takes {opt} on the command line"
    assert seen >= 4  # init, pki issue (two), pki revoke, sign, void


def test_init_refuses_a_passphrase_option(cli, monkeypatch, tmp_path: Path):
    env(monkeypatch)
    root = tmp_path / "p"
    refused(cli("init", root, "--passphrase", "long-enough-secret"))
    assert not root.exists()
    assert tree(tmp_path) == {}


@pytest.mark.parametrize("source", ["env", "file"])
def test_init_refuses_a_short_passphrase_and_writes_nothing(cli, monkeypatch, tmp_path: Path, source: str):
    work = tmp_path / "work"
    work.mkdir()
    args = ["init", work / "p"]
    if source == "env":
        env(monkeypatch, AGREEMENTS_PASSPHRASE="7-chars")
    else:
        env(monkeypatch)
        pass_file = tmp_path / "short.txt"
        pass_file.write_text("7-chars\n")
        args += ["--passphrase-file", pass_file]
    refused(cli(*args), "passphrase too short", "8")
    assert tree(work) == {}  # no folder, no leftover temporary sibling


def test_init_without_any_passphrase_source_refuses_and_writes_nothing(cli, monkeypatch, tmp_path: Path):
    env(monkeypatch)
    work = tmp_path / "work"
    work.mkdir()
    refused(cli("init", work / "p"), "AGREEMENTS_PASSPHRASE", "--passphrase-file")
    assert tree(work) == {}


def test_init_never_replaces_an_existing_practice(cli, monkeypatch, pr: Path):
    env(monkeypatch, AGREEMENTS_PASSPHRASE=PRACTICE_PASS)
    before = tree(pr)
    refused(cli("init", pr), "not empty")
    assert tree(pr) == before


# --------------------------------------------------------------------------- issue


def test_issued_therapist_certificate(base: Path):
    clinicians = cert(base / "pki" / "clinicians.pem")
    lee = cert(base / "pki" / "therapists" / "lee.pem")
    assert_p256_sha256(lee)
    assert lee.issuer == clinicians.subject  # the clinician CA issues therapists, not the root
    lee.verify_directly_issued_by(clinicians)
    assert cn(lee) == "Dr. Robin Lee"
    bc = basic_constraints(lee)
    assert bc.value.ca is False
    ku = lee.extensions.get_extension_for_class(x509.KeyUsage).value
    assert ku.digital_signature and not ku.key_cert_sign
    eku = lee.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.EMAIL_PROTECTION in eku
    days = (lee.not_valid_after_utc - lee.not_valid_before_utc).days
    assert 729 <= days <= 731  # the default --days 730


def test_issue_with_key_passphrase_file_and_days(cli, monkeypatch, pr: Path, tmp_path: Path):
    env(monkeypatch, AGREEMENTS_CLINICIAN_CA_PASSPHRASE=CLINICIAN_PASS)
    key_file = tmp_path / "ortiz.txt"
    key_file.write_text("ortiz-key-pass\n")
    res = ok(cli("pki", "issue", "--practice", pr, "--therapist", "ortiz", "--key-passphrase-file", key_file,
                 "--days", "10"))
    ortiz = cert(pr / "pki" / "therapists" / "ortiz.pem")
    assert f"{ortiz.serial_number:x}" in res.stdout
    assert cn(ortiz) == "Sam Ortiz"
    ortiz.verify_directly_issued_by(cert(pr / "pki" / "clinicians.pem"))
    assert (ortiz.not_valid_after_utc - ortiz.not_valid_before_utc) <= dt.timedelta(days=10, minutes=5)
    key = serialization.load_pem_private_key((pr / "pki" / "therapists" / "ortiz.key.pem").read_bytes(),
                                             password=b"ortiz-key-pass")
    assert key.public_key() == ortiz.public_key()
    for name in ("ortiz.pem", "ortiz.key.pem"):
        assert stat.S_IMODE(os.stat(pr / "pki" / "therapists" / name).st_mode) == 0o600


def test_issue_unknown_therapist_is_refused(cli, monkeypatch, pr: Path):
    env(monkeypatch, AGREEMENTS_CLINICIAN_CA_PASSPHRASE=CLINICIAN_PASS, AGREEMENTS_KEY_PASSPHRASE="some-key-pass")
    before = tree(pr)
    refused(cli("pki", "issue", "--practice", pr, "--therapist", "nobody"), "unknown therapist", "nobody")
    assert tree(pr) == before


def test_issue_twice_while_valid_is_refused(cli, monkeypatch, pr: Path):
    env(monkeypatch, AGREEMENTS_CLINICIAN_CA_PASSPHRASE=CLINICIAN_PASS, AGREEMENTS_KEY_PASSPHRASE="another-key-pass")
    before = tree(pr)
    refused(cli("pki", "issue", "--practice", pr, "--therapist", "lee"), "already has a valid certificate",
            "revoke")
    assert tree(pr) == before


def test_issue_with_wrong_practice_passphrase(cli, monkeypatch, pr: Path):
    env(monkeypatch, AGREEMENTS_CLINICIAN_CA_PASSPHRASE="wrong-clinician-pass",
        AGREEMENTS_KEY_PASSPHRASE="ortiz-key-pass")
    before = tree(pr)
    refused(cli("pki", "issue", "--practice", pr, "--therapist", "ortiz"), "wrong passphrase")
    assert tree(pr) == before


def test_issue_with_short_key_passphrase_is_refused(cli, monkeypatch, pr: Path):
    env(monkeypatch, AGREEMENTS_CLINICIAN_CA_PASSPHRASE=CLINICIAN_PASS, AGREEMENTS_KEY_PASSPHRASE="short")
    before = tree(pr)
    refused(cli("pki", "issue", "--practice", pr, "--therapist", "ortiz"), "too short")
    assert tree(pr) == before


def test_issue_without_key_passphrase_is_refused(cli, monkeypatch, pr: Path):
    env(monkeypatch, AGREEMENTS_CLINICIAN_CA_PASSPHRASE=CLINICIAN_PASS)
    before = tree(pr)
    refused(cli("pki", "issue", "--practice", pr, "--therapist", "ortiz"), "AGREEMENTS_KEY_PASSPHRASE")
    assert tree(pr) == before


# --------------------------------------------------------------------------- revoke and list


def test_revoke_lists_the_serial_in_the_clinician_ca_crl_alone(cli, monkeypatch, pr: Path):
    env(monkeypatch, AGREEMENTS_CLINICIAN_CA_PASSPHRASE=CLINICIAN_PASS)
    lee = cert(pr / "pki" / "therapists" / "lee.pem")
    before = {c.issuer: c.public_bytes(serialization.Encoding.DER) for c in crls(pr / "pki" / "crl.pem")}
    res = ok(cli("pki", "revoke", "--practice", pr, "--therapist", "lee"))
    assert f"{lee.serial_number:x}" in res.stdout
    root, intake = cert(pr / "pki" / "root.pem"), cert(pr / "pki" / "intake.pem")
    clinicians = cert(pr / "pki" / "clinicians.pem")
    found = crls(pr / "pki" / "crl.pem")
    assert len(found) == 3
    by_issuer = {c.issuer: c for c in found}
    assert set(by_issuer) == {root.subject, intake.subject, clinicians.subject}
    ca_crl = by_issuer[clinicians.subject]
    assert ca_crl.is_signature_valid(clinicians.public_key())
    # the root's and the intake CA's CRLs are untouched: their keys were not needed
    for other in (root, intake):
        assert by_issuer[other.subject].public_bytes(serialization.Encoding.DER) == before[other.subject]
    entry = ca_crl.get_revoked_certificate_by_serial_number(lee.serial_number)
    assert entry is not None
    assert abs(entry.revocation_date_utc - dt.datetime.now(dt.UTC)) < dt.timedelta(minutes=10)
    assert [r.serial_number for r in ca_crl] == [lee.serial_number]
    assert stat.S_IMODE(os.stat(pr / "pki" / "crl.pem").st_mode) == 0o600
    assert not [p for p in (pr / "pki").iterdir() if p.name.startswith(".")]  # no temporary CRL left


def test_pki_list_shows_revoked(cli, monkeypatch, pr: Path):
    env(monkeypatch, AGREEMENTS_CLINICIAN_CA_PASSPHRASE=CLINICIAN_PASS)
    rows = json.loads(ok(cli("pki", "list", "--practice", pr, "--json")).stdout)
    assert therapist_row(rows, "therapists/lee.pem")["status"] == "valid"
    ok(cli("pki", "revoke", "--practice", pr, "--therapist", "lee"))
    rows = json.loads(ok(cli("pki", "list", "--practice", pr, "--json")).stdout)
    row = therapist_row(rows, "therapists/lee.pem")
    assert row["status"] == "revoked"
    assert row["subject"] == "Dr. Robin Lee"
    assert row["serial"] == f"{cert(pr / 'pki' / 'therapists' / 'lee.pem').serial_number:x}"
    assert {r["role"]: r["status"] for r in rows if r["role"] != "therapist"} == {
        "root CA": "valid", "intake CA": "valid", "clinician CA": "valid"}
    text = ok(cli("pki", "list", "--practice", pr)).stdout
    lee_lines = [ln for ln in text.splitlines() if "Dr. Robin Lee" in ln]
    assert len(lee_lines) == 1 and lee_lines[0].rstrip().endswith("revoked")


def test_pki_list_json_fingerprints_match_the_files(base: Path, cli):
    rows = json.loads(ok(cli("pki", "list", "--practice", base, "--json")).stdout)
    assert [r["role"] for r in rows] == ["root CA", "intake CA", "clinician CA", "therapist"]
    for row in rows:
        c = cert(base / "pki" / row["file"])
        assert row["sha256"] == hashlib.sha256(c.public_bytes(serialization.Encoding.DER)).hexdigest()
        assert row["serial"] == f"{c.serial_number:x}"
        assert row["status"] == "valid"


@needs_openssl
def test_openssl_sees_the_revocation(cli, monkeypatch, pr: Path):
    env(monkeypatch, AGREEMENTS_CLINICIAN_CA_PASSPHRASE=CLINICIAN_PASS)
    pki = pr / "pki"
    cmd = ["openssl", "verify", "-crl_check", "-CAfile", str(pki / "root.pem"), "-untrusted",
           str(pki / "clinicians.pem"), "-CRLfile", str(pki / "crl.pem"), str(pki / "therapists" / "lee.pem")]
    assert subprocess.run(cmd, capture_output=True).returncode == 0
    ok(cli("pki", "revoke", "--practice", pr, "--therapist", "lee"))
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode != 0
    assert "revoked" in proc.stdout + proc.stderr


def test_revoke_with_wrong_passphrase_changes_nothing(cli, monkeypatch, pr: Path):
    env(monkeypatch, AGREEMENTS_CLINICIAN_CA_PASSPHRASE="wrong-clinician-pass")
    before = tree(pr)
    refused(cli("pki", "revoke", "--practice", pr, "--therapist", "lee"), "wrong passphrase")
    assert tree(pr) == before


def test_revoke_twice_is_refused(cli, monkeypatch, pr: Path):
    env(monkeypatch, AGREEMENTS_CLINICIAN_CA_PASSPHRASE=CLINICIAN_PASS)
    ok(cli("pki", "revoke", "--practice", pr, "--therapist", "lee"))
    before = tree(pr)
    refused(cli("pki", "revoke", "--practice", pr, "--therapist", "lee"), "already revoked")
    assert tree(pr) == before


def test_reissue_after_revoke_keeps_the_old_certificate(cli, monkeypatch, pr: Path):
    env(monkeypatch, AGREEMENTS_CLINICIAN_CA_PASSPHRASE=CLINICIAN_PASS, AGREEMENTS_KEY_PASSPHRASE="lee-new-key-pass")
    therapists = pr / "pki" / "therapists"
    old_pem = (therapists / "lee.pem").read_bytes()
    old_key = (therapists / "lee.key.pem").read_bytes()
    old = x509.load_pem_x509_certificate(old_pem)
    ok(cli("pki", "revoke", "--practice", pr, "--therapist", "lee"))
    ok(cli("pki", "issue", "--practice", pr, "--therapist", "lee"))
    new = cert(therapists / "lee.pem")
    assert new.serial_number != old.serial_number
    assert cn(new) == "Dr. Robin Lee"
    new.verify_directly_issued_by(cert(pr / "pki" / "clinicians.pem"))
    kept = therapists / f"lee-{old.serial_number:x}.pem"
    assert kept.read_bytes() == old_pem
    assert (therapists / f"lee-{old.serial_number:x}.key.pem").read_bytes() == old_key
    serialization.load_pem_private_key((therapists / "lee.key.pem").read_bytes(), password=b"lee-new-key-pass")
    rows = json.loads(ok(cli("pki", "list", "--practice", pr, "--json")).stdout)
    assert therapist_row(rows, "therapists/lee.pem")["status"] == "valid"
    assert therapist_row(rows, kept.relative_to(pr / "pki").as_posix())["status"] == "revoked"
    # Issuing once more while the new one is valid is refused again.
    refused(cli("pki", "issue", "--practice", pr, "--therapist", "lee"), "already has a valid certificate")


def test_expired_certificate_can_be_replaced_without_revoking(cli, monkeypatch, pr: Path):
    practice = load_practice(pr)
    pki = PKI(pr / "pki")
    past = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(days=30)
    old = pki.issue_clinician("ortiz", "Sam Ortiz", practice.name, CLINICIAN_PASS.encode(), b"ortiz-old-pass",
                              now=past, days=1)
    env(monkeypatch, AGREEMENTS_CLINICIAN_CA_PASSPHRASE=CLINICIAN_PASS, AGREEMENTS_KEY_PASSPHRASE="ortiz-new-pass")
    rows = json.loads(ok(cli("pki", "list", "--practice", pr, "--json")).stdout)
    assert therapist_row(rows, "therapists/ortiz.pem")["status"] == "expired"
    ok(cli("pki", "issue", "--practice", pr, "--therapist", "ortiz"))
    assert (pr / "pki" / "therapists" / f"ortiz-{old.serial_number:x}.pem").is_file()
    new = cert(pr / "pki" / "therapists" / "ortiz.pem")
    assert new.not_valid_after_utc > dt.datetime.now(dt.UTC) + dt.timedelta(days=700)


def test_crl_number_increases_with_every_revocation(pr: Path):
    """RFC 5280 5.2.3: a new CRL of a CA gets a larger number, even within the same second."""
    practice = load_practice(pr)
    pki = PKI(pr / "pki")
    passphrase = CLINICIAN_PASS.encode()
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)

    def root_crl_number() -> int:  # the clinician CA's CRL: it revokes therapists
        ca = cert(pr / "pki" / "clinicians.pem")
        crl = next(c for c in crls(pr / "pki" / "crl.pem") if c.issuer == ca.subject)
        return crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number

    numbers = [root_crl_number()]
    pki.revoke(cert(pr / "pki" / "therapists" / "lee.pem"), passphrase, now=now)
    numbers.append(root_crl_number())
    ortiz = pki.issue_clinician("ortiz", "Sam Ortiz", practice.name, passphrase, b"ortiz-key-pass", now=now)
    pki.revoke(ortiz, passphrase, now=now)  # a second revocation in the same second
    numbers.append(root_crl_number())
    assert len(crls(pr / "pki" / "crl.pem")) == 3
    assert numbers[0] < numbers[1] < numbers[2], numbers


def der_sha256(c: x509.Certificate | x509.CertificateRevocationList) -> str:
    return hashlib.sha256(c.public_bytes(serialization.Encoding.DER)).hexdigest()


def test_every_certificate_issued_and_every_crl_set_published_is_in_the_ledger(cli, monkeypatch, pr: Path):
    """The register: init enters the three CAs and the first CRL set, issue each therapist certificate, revoke
    the new CRL set with what it revokes; by hash and role, never by name."""
    env(monkeypatch, AGREEMENTS_CLINICIAN_CA_PASSPHRASE=CLINICIAN_PASS)
    pki = pr / "pki"
    root, intake, lee = cert(pki / "root.pem"), cert(pki / "intake.pem"), cert(pki / "therapists" / "lee.pem")
    clinicians = cert(pki / "clinicians.pem")

    def published() -> tuple[dict[str, int], dict[str, str]]:
        found = crls(pki / "crl.pem")
        key = {c.issuer: hashlib.sha256(c.issuer.public_bytes()).hexdigest() for c in found}
        return ({key[c.issuer]: c.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number for c in found},
                {key[c.issuer]: der_sha256(c) for c in found})

    first_number, first_crls = published()
    ok(cli("pki", "revoke", "--practice", pr, "--therapist", "lee"))
    second_number, second_crls = published()
    entries = [e for e, _ in ledger_entries(pr / "signed" / "ledger.jsonl")]
    assert [e["event"] for e in entries] == ["certificate", "certificate", "certificate", "crl", "certificate", "crl"]
    registered = [(e["role"], e["certificate_sha256"], e["issuer_sha256"], e["serial"], e.get("therapist_id"))
                  for e in entries if e["event"] == "certificate"]
    assert registered == [
        ("root", der_sha256(root), der_sha256(root), f"{root.serial_number:x}", None),
        ("intake", der_sha256(intake), der_sha256(root), f"{intake.serial_number:x}", None),
        ("clinician-ca", der_sha256(clinicians), der_sha256(root), f"{clinicians.serial_number:x}", None),
        ("therapist", der_sha256(lee), der_sha256(clinicians), f"{lee.serial_number:x}", "lee"),
    ]
    for e, c in zip([e for e in entries if e["event"] == "certificate"], (root, intake, clinicians, lee),
                    strict=True):
        assert e["source"] == "issued"
        assert (e["not_before"], e["not_after"]) == (f"{c.not_valid_before_utc:%Y-%m-%dT%H:%M:%SZ}",
                                                     f"{c.not_valid_after_utc:%Y-%m-%dT%H:%M:%SZ}")
    published_sets = [(e["crl_numbers"], e["crls"], e["revoked"]) for e in entries if e["event"] == "crl"]
    ca = hashlib.sha256(clinicians.subject.public_bytes()).hexdigest()
    # only the clinician CA's CRL was re-issued, with the next number; the others kept theirs
    assert second_number == {**first_number, ca: first_number[ca] + 1}
    assert first_crls != second_crls  # the revocation published new CRLs: the first entry names the old ones
    assert published_sets == [(first_number, first_crls, []), (second_number, second_crls, [der_sha256(lee)])]
    data = (pr / "signed" / "ledger.jsonl").read_bytes()
    for name in ("Dr. Robin Lee", "Robin", PRACTICE_NAME):
        assert name.encode() not in data
