"""The attack corpus: what outside auditors tried (issue 8), each attack refused by ``verify`` AND ``audit``.

Three adversaries (docs/threat-model.md), each limited to what they hold:

- ``forger``: the practice's public files (root.pem, crl.pem) and a copy of the archive; no key;
- ``therapist``: their own certificate, key and passphrase, and write access to the archive (folders, ledger);
- ``frontdesk``: runs intakes, so holds the intake CA's passphrase, and writes to the archive as the intake
  does; cases that use the root's or the clinician CA's key (each under a passphrase of its own) are an
  insider who holds that one too.

Every case starts from its own copy of one pristine practice (tests/attack_kit.py), changes it as its
adversary would, and asserts that ``verify_folder`` (with the archive's ledger) and ``audit`` (the
agreement's row, or for archive-wide ledger damage the summary) both refuse it with the expected reason
code. The auditor trusts the practice root they were given, kept outside the archive; the CRL set comes
from beside the archive (``pki/crl.pem``), which is what the revocation attacks go after. Cases that
could hang or exhaust memory (FIFOs, /dev/zero) run in a child process with a timeout and a memory limit.
Controls: the untouched practice passes both, and the attackers' own tools, used honestly, give valid
signatures, so each refusal is the attack's and not the tools'.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import attack_kit as kit
import pytest
from attack_kit import (
    CLIENT,
    FRESH,
    FRESH_GUARDED,
    GUARDED,
    GUARDIAN,
    HALF,
    KIMS,
    ORTIZ,
    OTHER,
    PARKS,
    VALID,
    VOIDED,
    Attack,
    Scene,
    client_body,
    forge,
    therapist_body,
    void_body,
)
from helpers import private_copy

from agreements_kit.errors import NotVerified
from agreements_kit.formats.jsonio import canonical_json, jcs
from agreements_kit.signing.pki import fingerprint, load_cert, utcnow
from agreements_kit.verification.audit import _ARCHIVE_WIDE
from agreements_kit.verification.trust import resolve_trust
from agreements_kit.verification.verify import verify_folder

CLIENT_REC = "01-client.json"
THERAPIST_REC = "02-therapist.json"


@pytest.fixture(scope="session")
def pristine(tmp_path_factory) -> kit.Pristine:
    return kit.build_pristine(tmp_path_factory.mktemp("attacks"))


@pytest.fixture
def scene(pristine: kit.Pristine, tmp_path: Path, monkeypatch) -> Scene:
    for var in ("AGREEMENTS_TRUST", "AGREEMENTS_TRUST_SHA256"):
        monkeypatch.delenv(var, raising=False)
    return Scene(private_copy(pristine.root, tmp_path, monkeypatch), pristine)


# ----------------------------------------------------------------------------- the adversaries' acts

def countersign(s: Scene, target: str, tid: str = "lee", **kw) -> kit.Forged:
    """The therapist ``tid`` countersigns ``target`` with their own key (record, CMS, ledger entry)."""
    cert, key = s.keys.therapist(tid)
    body = kw.pop("body", None) or therapist_body(tid)
    return forge(s.folder(target), "therapist", body, cert, key, s.keys.chain(cert), **kw)


def intake_sign(s: Scene, target: str, signer: str = CLIENT, role: str = "client", *, cert_role: str | None = None,
                cert_for: str | None = None, register_for: str | None = "same", register_role: str | None = None,
                body: dict | None = None, **kw) -> kit.Forged:
    """Front desk signs on the client's side of ``target`` by hand, with a one-time certificate it makes.

    ``cert_role``/``cert_for``: the role and agreement the certificate is issued for (default: as signed);
    ``register_for``: the agreement it is entered in the register for (None: not registered)."""
    if not s.folder(target).exists():
        kit.admit(s.root, target)
    cert, key = s.keys.one_time(signer, cert_for or target, cert_role or role)
    if register_for is not None:
        kit.register(s.archive, cert, register_role or cert_role or role, s.keys.pki.intake(), utcnow(),
                     agreement_id=target if register_for == "same" else register_for)
    extra = kw.pop("signer_extra", None) or ({"on_behalf_of": CLIENT, "relation": "parent"} if role == "guardian"
                                             else {})
    return forge(s.folder(target), role, body or client_body(signer, s.folder(target), role, **extra), cert, key,
                 [s.keys.pki.intake()], **kw)


def root_minted_therapist(s: Scene, name: str = "Dr. Robin Lee"):
    """Front desk mints a therapist certificate with the root key (the practice passphrase unlocks it)."""
    root = s.keys.pki.root()
    return kit.mint(kit.name(name, "therapist"), root, s.keys.root_key())


def pretty(data: dict) -> bytes:
    return canonical_json(data)


def deep(levels: int) -> object:
    value: object = "x"
    for _ in range(levels):
        value = {"a": value}
    return value


def replace_ledger_line(s: Scene, index: int, line: bytes) -> None:
    """Put ``line`` at ``index`` and re-chain every line after it (the attacker writes the ledger)."""
    lines = kit.ledger_lines(s.archive)
    lines[index] = line
    for i in range(index + 1, len(lines)):
        entry = json.loads(lines[i])
        entry["prev"] = kit.sha(lines[i - 1])
        lines[i] = kit.line_bytes(entry)
    kit.rewrite(s.archive / "ledger.jsonl", b"".join(x + b"\n" for x in lines))


def ledger_index(s: Scene, **match) -> int:
    for i, line in enumerate(kit.ledger_lines(s.archive)):
        entry = json.loads(line)
        if all(entry.get(k) == v for k, v in match.items()):
            return i
    raise AssertionError(f"no ledger entry {match}")


# ----------------------------------------------------------------------------- the corpus

ATTACKS: list[Attack] = []


def attack(name: str, adversary: str, klass: str, target: str, code: str, **kw):
    def wrap(fn):
        ATTACKS.append(Attack(name, adversary, klass, target, code, fn, **kw))
        return fn
    return wrap


# --- parsing ambiguity: the signer signs bytes two readers could read two ways

BACK = "2020-01-01T00:00:00Z"


@attack("dup-signed-at-backdated-first", "therapist", "parsing", HALF, "format.duplicate-key")
def _(s):
    countersign(s, HALF, encode=lambda d: kit.dup_keys(d, "signed_at", BACK, attacker_first=True))


@attack("dup-signed-at-backdated-last", "therapist", "parsing", HALF, "format.duplicate-key")
def _(s):
    countersign(s, HALF, encode=lambda d: kit.dup_keys(d, "signed_at", BACK, attacker_first=False))


@attack("dup-document-fake-hash-first", "therapist", "parsing", HALF, "format.duplicate-key")
def _(s):
    fake = {"file": "agreement.pdf", "sha256": "ab" * 32}
    countersign(s, HALF, encode=lambda d: kit.dup_keys(d, "document", fake, attacker_first=True))


@attack("dup-document-fake-hash-last", "therapist", "parsing", HALF, "format.duplicate-key")
def _(s):
    fake = {"file": "agreement.pdf", "sha256": "ab" * 32}
    countersign(s, HALF, encode=lambda d: kit.dup_keys(d, "document", fake, attacker_first=False))


@attack("dup-signer-role-guardian-first", "frontdesk", "parsing", FRESH, "format.duplicate-key")
def _(s):
    intake_sign(s, FRESH, encode=lambda d: kit.dup_keys(d, "role", "guardian", attacker_first=True, inside="signer"))


@attack("dup-signer-role-guardian-last", "frontdesk", "parsing", FRESH, "format.duplicate-key")
def _(s):
    intake_sign(s, FRESH, encode=lambda d: kit.dup_keys(d, "role", "guardian", attacker_first=False,
                                                        inside="signer"))


@attack("dup-kind-void-last", "therapist", "parsing", HALF, "format.duplicate-key")
def _(s):
    countersign(s, HALF, encode=lambda d: kit.dup_keys(d, "kind", "void", attacker_first=False))


@attack("unknown-record-kind", "therapist", "parsing", HALF, "format.unknown-kind")
def _(s):
    countersign(s, HALF, edit=lambda d: d.update(kind="amendment"))


@attack("unknown-signer-role", "therapist", "parsing", HALF, "format.unknown-kind")
def _(s):
    countersign(s, HALF, edit=lambda d: d["signer"].update(role="witness"))


@attack("unknown-record-file-kind", "therapist", "parsing", HALF, "layout.unexpected-file")
def _(s):
    countersign(s, HALF, file_kind="witness")


@attack("unknown-record-key", "therapist", "parsing", HALF, "format.unknown-key")
def _(s):
    countersign(s, HALF, edit=lambda d: d.update(countersigned_for="the whole practice"))


@attack("record-with-bom", "therapist", "parsing", HALF, "format.encoding")
def _(s):
    countersign(s, HALF, encode=lambda d: b"\xef\xbb\xbf" + jcs(d))


@attack("record-in-utf16", "therapist", "parsing", HALF, "format.encoding")
def _(s):
    countersign(s, HALF, encode=lambda d: jcs(d).decode().encode("utf-16"))


@attack("record-pretty-printed", "therapist", "parsing", HALF, "format.not-canonical")
def _(s):
    countersign(s, HALF, encode=pretty)


@attack("record-trailing-newline", "therapist", "parsing", HALF, "format.not-canonical")
def _(s):
    countersign(s, HALF, encode=lambda d: jcs(d) + b"\n")


@attack("record-deeply-nested", "therapist", "parsing", HALF, "format.too-deep")
def _(s):
    countersign(s, HALF, edit=lambda d: d.update(initials=deep(40)))


@attack("record-huge", "forger", "parsing", VALID, "format.too-large")
def _(s):
    kit.rewrite(s.folder(VALID) / CLIENT_REC, b"{" + b" " * 200_000 + b"}")


@attack("manifest-dup-key", "forger", "parsing", VALID, "format.duplicate-key")
def _(s):
    path = s.folder(VALID) / "manifest.json"
    text = path.read_text()
    kit.rewrite(path, text.replace('"format": "agreements-kit/manifest",',
                                   '"format": "agreements-kit/manifest",\n  "format": "agreements-kit/manifest",',
                                   1).encode())


@attack("manifest-with-bom", "forger", "parsing", VALID, "format.encoding")
def _(s):
    path = s.folder(VALID) / "manifest.json"
    kit.rewrite(path, b"\xef\xbb\xbf" + path.read_bytes())


@attack("manifest-in-utf16", "forger", "parsing", VALID, "format.encoding")
def _(s):
    path = s.folder(VALID) / "manifest.json"
    kit.rewrite(path, path.read_text().encode("utf-16"))


@attack("manifest-reindented", "forger", "parsing", VALID, "format.not-canonical")
def _(s):
    path = s.folder(VALID) / "manifest.json"
    kit.rewrite(path, json.dumps(json.loads(path.read_bytes()), indent=4, sort_keys=True).encode() + b"\n")


@attack("manifest-unknown-key", "forger", "parsing", VALID, "format.unknown-key")
def _(s):
    path = s.folder(VALID) / "manifest.json"
    data = json.loads(path.read_bytes())
    data["override"] = {"client": "Someone Else"}
    kit.rewrite(path, canonical_json(data))


@attack("manifest-deeply-nested", "forger", "robustness", VALID, "format.too-deep")
def _(s):
    kit.rewrite(s.folder(VALID) / "manifest.json", b"[" * 100_000 + b"]" * 100_000)


@attack("manifest-huge", "forger", "robustness", VALID, "format.too-large")
def _(s):
    path = s.folder(VALID) / "manifest.json"
    kit.rewrite(path, path.read_bytes() + b" " * (2 << 20))


@attack("ledger-line-dup-key", "therapist", "parsing", VALID, "ledger.malformed", audit_expect="ledger")
def _(s):
    i = ledger_index(s, event="sign", agreement_id=VALID, role="therapist")
    line = kit.ledger_lines(s.archive)[i]
    replace_ledger_line(s, i, line.replace(b'"event":"sign"', b'"event":"void","event":"sign"'))


@attack("ledger-line-utf16", "forger", "robustness", VALID, "ledger.malformed", audit_expect="ledger")
def _(s):
    i = ledger_index(s, event="sign", agreement_id=VALID, role="therapist")
    replace_ledger_line(s, i, kit.ledger_lines(s.archive)[i].decode().encode("utf-16-le"))


@attack("ledger-line-deeply-nested", "forger", "robustness", VALID, "ledger.malformed", audit_expect="ledger")
def _(s):
    i = ledger_index(s, event="sign", agreement_id=VALID, role="therapist")
    line = kit.ledger_lines(s.archive)[i]
    replace_ledger_line(s, i, line[:-1] + b',"x":' + b"[" * 5000 + b"]" * 5000 + b"}")


# --- trust taken from the archive (more in test_trust_* below)

@attack("fake-root-chain-with-real-trust", "forger", "trust", VALID, "chain.untrusted")
def _(s):
    """A self-made root (same name as the practice's), intake CA and therapist re-sign both records;
    the self-made root and its CRL sit in the archive copy's pki/, where they decide nothing."""
    real = s.keys.pki.root()
    root_key = kit.ec.generate_private_key(kit.ec.SECP256R1())
    fake_root, _ = kit.mint(real.subject, real.subject, root_key, ca=True, uri="root")
    fake_intake, intake_key = kit.mint(s.keys.pki.intake().subject, fake_root, root_key, ca=True)
    fake_lee, lee_key = kit.mint(kit.name("Dr. Robin Lee", "therapist"), fake_root, root_key)
    fake_client, client_key = kit.mint(kit.name(CLIENT, "client"), fake_intake, intake_key,
                                       uri=f"urn:agreements-kit:agreement:{VALID}:client",
                                       not_before=utcnow() - dt.timedelta(minutes=5), days=1)
    folder = s.folder(VALID)
    for name in (CLIENT_REC, THERAPIST_REC):
        (folder / name).unlink()
        (folder / f"{name}.p7s").unlink()
    kit.rewrite(s.root / "pki" / "root.pem", fake_root.public_bytes(kit.serialization.Encoding.PEM))
    kit.rewrite(s.root / "pki" / "crl.pem", kit.crl_set([(fake_root, root_key), (fake_intake, intake_key)], 7))
    forge(folder, "client", client_body(CLIENT, folder), fake_client, client_key, [fake_intake], ledger=False)
    forge(folder, "therapist", therapist_body("lee"), fake_lee, lee_key, ledger=False)


@attack("fake-crl-from-fake-root", "forger", "trust", VALID, "revocation.unlogged")
def _(s):
    real = s.keys.pki.root()
    key = kit.ec.generate_private_key(kit.ec.SECP256R1())
    intake = s.keys.pki.intake()
    kit.rewrite(s.root / "pki" / "crl.pem", kit.crl_set([(real, key), (intake, key)], 9))


# --- revocation

@attack("crl-deleted", "therapist", "revocation", KIMS, "revocation.missing-crl")
def _(s):
    """Signatures made by the tools carry the CRLs in force at signing, so deleting crl.pem hides nothing
    from them (tests/test_renew.py); kim, revoked, deletes it and countersigns with a signature of her own
    making, which carries none: revocation cannot be judged."""
    (s.root / "pki" / "crl.pem").unlink()
    countersign(s, KIMS, "kim")


@attack("older-crl-substituted", "forger", "revocation", VALID, "revocation.rollback")
def _(s):
    kit.rewrite(s.root / "pki" / "crl.pem", s.pristine.old_crl.read_bytes())


@attack("older-crl-substituted-for-revoked-therapist", "therapist", "revocation", KIMS, "revocation.rollback")
def _(s):
    kit.rewrite(s.root / "pki" / "crl.pem", s.pristine.old_crl.read_bytes())
    countersign(s, KIMS, "kim")


@attack("older-crl-prepended", "forger", "revocation", VALID, "format.duplicate-crl")
def _(s):
    path = s.root / "pki" / "crl.pem"
    kit.rewrite(path, s.pristine.old_crl.read_bytes() + path.read_bytes())


@attack("older-crl-appended", "forger", "revocation", VALID, "format.duplicate-crl")
def _(s):
    path = s.root / "pki" / "crl.pem"
    kit.rewrite(path, path.read_bytes() + s.pristine.old_crl.read_bytes())


@attack("revoked-therapist-backdated", "therapist", "revocation", KIMS, "revocation.revoked-by-ledger")
def _(s):
    """kim, revoked, countersigns with signed_at and CMS signingTime set back before the revocation, and
    appends the ledger entry (correctly chained) at the real time."""
    countersign(s, KIMS, "kim", signed_at=s.pristine.revoked_at - dt.timedelta(seconds=60))


@attack("revoked-therapist-backdated-ledger-time-too", "therapist", "revocation", KIMS,
        "revocation.revoked-by-ledger")
def _(s):
    when = s.pristine.revoked_at - dt.timedelta(minutes=30)
    countersign(s, KIMS, "kim", signed_at=when, ledger_time=when)


@attack("revoked-therapist-backdated-no-ledger-entry", "therapist", "revocation", KIMS, "ledger.unlogged-record")
def _(s):
    countersign(s, KIMS, "kim", signed_at=s.pristine.revoked_at - dt.timedelta(seconds=60), ledger=False)


@attack("revoked-therapist-honest-time", "therapist", "revocation", KIMS, "revocation.revoked")
def _(s):
    countersign(s, KIMS, "kim")


@attack("expired-therapist-backdated", "therapist", "revocation", PARKS, "validity.expired-by-ledger")
def _(s):
    cert = load_cert(s.keys.pki.therapist_cert("park"), "park")
    countersign(s, PARKS, "park", signed_at=cert.not_valid_after_utc - dt.timedelta(hours=1))


@attack("expired-therapist-honest-time", "therapist", "revocation", PARKS, "validity.expired")
def _(s):
    countersign(s, PARKS, "park")


@attack("crl-reissued-without-revocation", "frontdesk", "revocation", KIMS, "revocation.substituted")
def _(s):
    """The clinician CA's key re-issues its CRL number 2 (the one that revoked kim) without kim's revocation."""
    pki = s.keys.pki
    kit.rewrite(pki.crl, kit.replace_crl(pki.crl.read_bytes(), pki.clinician_ca(), s.keys.clinician_key(), 2))
    countersign(s, KIMS, "kim")


@attack("crl-new-number-unlogged", "frontdesk", "revocation", KIMS, "revocation.unlogged")
def _(s):
    pki = s.keys.pki
    kit.rewrite(pki.crl, kit.replace_crl(pki.crl.read_bytes(), pki.clinician_ca(), s.keys.clinician_key(), 3))
    countersign(s, KIMS, "kim")


@attack("crl-new-number-logged-without-revocation", "frontdesk", "revocation", KIMS, "revocation.revoked-by-ledger")
def _(s):
    """A newer CRL set that drops kim's revocation, entered in the ledger too: the ledger still
    holds the set that revoked kim, before kim's signature."""
    from agreements_kit.formats.crlset import parse_crl_set

    pki = s.keys.pki
    data = kit.replace_crl(pki.crl.read_bytes(), pki.clinician_ca(), s.keys.clinician_key(), 3)
    kit.rewrite(pki.crl, data)
    crls = parse_crl_set(data, "crl")
    kit.ledger_append(s.archive, {"event": "crl", "crl_numbers": crls.numbers, "crls": crls.digests(),
                                  "time": kit.iso(utcnow()), "revoked": []})
    countersign(s, KIMS, "kim")


# --- roles

@attack("stranger-as-guardian-agreement-names-none", "frontdesk", "roles", FRESH, "role.guardian-unnamed")
def _(s):
    intake_sign(s, FRESH, "John Stranger", "guardian")


@attack("stranger-as-guardian-under-clients-name", "frontdesk", "roles", FRESH, "role.guardian-unnamed")
def _(s):
    intake_sign(s, FRESH, CLIENT, "guardian")


@attack("guardian-countersigned-by-therapist", "therapist", "roles", FRESH, "role.guardian-unnamed")
def _(s):
    """A guardian's signature (front desk) on an agreement that names none, then countersigned."""
    intake_sign(s, FRESH, "John Stranger", "guardian")
    countersign(s, FRESH)


@attack("stranger-as-guardian-agreement-names-another", "frontdesk", "roles", FRESH_GUARDED,
        "role.guardian-mismatch")
def _(s):
    intake_sign(s, FRESH_GUARDED, "John Stranger", "guardian")


@attack("named-guardian-with-another-relation", "frontdesk", "roles", FRESH_GUARDED, "role.guardian-mismatch")
def _(s):
    intake_sign(s, FRESH_GUARDED, GUARDIAN, "guardian", signer_extra={"on_behalf_of": CLIENT,
                                                                      "relation": "conservator"})


@attack("named-guardian-on-behalf-of-someone-else", "frontdesk", "roles", FRESH_GUARDED, "role.guardian-mismatch")
def _(s):
    intake_sign(s, FRESH_GUARDED, GUARDIAN, "guardian", signer_extra={"on_behalf_of": "John Smith",
                                                                      "relation": "parent"})


@attack("client-signs-again-after-guardian", "frontdesk", "roles", GUARDED, "order.duplicate-signer")
def _(s):
    intake_sign(s, GUARDED)


@attack("therapist-signs-before-any-client", "therapist", "roles", FRESH, "order.therapist-first")
def _(s):
    kit.admit(s.root, FRESH)
    countersign(s, FRESH)


@attack("countersignature-after-void", "therapist", "roles", VOIDED, "order.after-void")
def _(s):
    countersign(s, VOIDED)


@attack("void-signed-with-client-certificate", "frontdesk", "roles", VALID, "role.void-by-client")
def _(s):
    cert, key = s.keys.one_time(CLIENT, VALID, "client")
    kit.register(s.archive, cert, "client", s.keys.pki.intake(), utcnow(), agreement_id=VALID)
    forge(s.folder(VALID), "void", void_body(), cert, key, [s.keys.pki.intake()])


@attack("void-signed-with-unregistered-client-certificate", "frontdesk", "roles", HALF, "role.void-by-client")
def _(s):
    cert, key = s.keys.one_time(CLIENT, HALF, "client")
    forge(s.folder(HALF), "void", void_body(), cert, key, [s.keys.pki.intake()])


@attack("void-as-administrator-with-guardian-certificate", "frontdesk", "roles", HALF, "role.void-by-client")
def _(s):
    cert, key = s.keys.one_time("Pat Admin", HALF, "guardian")
    kit.register(s.archive, cert, "guardian", s.keys.pki.intake(), utcnow(), agreement_id=HALF)
    forge(s.folder(HALF), "void", void_body("admin", "administrator"), cert, key, [s.keys.pki.intake()])


@attack("unvoid-delete-void-record", "forger", "roles", VOIDED, "void.undone")
def _(s):
    for name in ("02-void.json", "02-void.json.p7s"):
        (s.folder(VOIDED) / name).unlink()


@attack("unvoid-delete-void-and-its-ledger-line", "therapist", "roles", VOIDED, "ledger.deleted",
        audit_expect="ledger")
def _(s):
    for name in ("02-void.json", "02-void.json.p7s"):
        (s.folder(VOIDED) / name).unlink()
    i = ledger_index(s, event="void", agreement_id=VOIDED)
    lines = kit.ledger_lines(s.archive)
    del lines[i]
    kit.rewrite(s.archive / "ledger.jsonl", b"".join(x + b"\n" for x in lines))


@attack("client-record-in-another-name", "frontdesk", "roles", FRESH, "role.not-the-client")
def _(s):
    intake_sign(s, FRESH, "John Smith")


@attack("client-record-with-lookalike-name", "frontdesk", "roles", FRESH, "role.not-the-client")
def _(s):
    intake_sign(s, FRESH, "J\u0430ne Q. Doe")  # a Cyrillic a


@attack("client-record-signed-by-therapist", "therapist", "roles", FRESH, "role.not-intake")
def _(s):
    kit.admit(s.root, FRESH)
    cert, key = s.keys.therapist("lee")
    forge(s.folder(FRESH), "client", client_body(CLIENT, s.folder(FRESH)), cert, key, s.keys.chain(cert))


@attack("countersignature-with-client-certificate", "frontdesk", "roles", HALF, "role.wrong-certificate")
def _(s):
    cert, key = s.keys.one_time("Dr. Robin Lee", HALF, "client")
    kit.register(s.archive, cert, "client", s.keys.pki.intake(), utcnow(), agreement_id=HALF)
    forge(s.folder(HALF), "therapist", therapist_body("lee"), cert, key, [s.keys.pki.intake()])


@attack("client-record-with-guardian-certificate", "frontdesk", "roles", FRESH, "role.wrong-certificate")
def _(s):
    intake_sign(s, FRESH, cert_role="guardian")


@attack("record-dated-in-the-future", "therapist", "revocation", HALF, "time.future")
def _(s):
    countersign(s, HALF, signed_at=utcnow() + dt.timedelta(days=30))


@attack("cms-signing-time-differs-from-record", "therapist", "revocation", HALF, "time.cms-mismatch")
def _(s):
    countersign(s, HALF, cms_time=utcnow() + dt.timedelta(days=1))


@attack("record-with-stale-ledger-head", "therapist", "parsing", HALF, "ledger.head-mismatch")
def _(s):
    countersign(s, HALF, edit=lambda d: d.update(ledger_head=kit.sha(kit.ledger_lines(s.archive)[0])))


@attack("records-renumbered", "forger", "two-paths", VALID, "records.renamed")
def _(s):
    for suffix in ("", ".p7s"):
        os.rename(s.folder(VALID) / f"{THERAPIST_REC}{suffix}", s.folder(VALID) / f"03-therapist.json{suffix}")


# --- certificates and names

@attack("root-minted-therapist-unregistered", "frontdesk", "certificates", HALF, "register.unregistered")
def _(s):
    cert, key = root_minted_therapist(s)
    forge(s.folder(HALF), "therapist", therapist_body("lee"), cert, key)


@attack("root-minted-therapist-registered-after-use", "frontdesk", "certificates", HALF, "register.late")
def _(s):
    cert, key = root_minted_therapist(s)
    forge(s.folder(HALF), "therapist", therapist_body("lee"), cert, key)
    kit.register(s.archive, cert, "therapist", s.keys.pki.root(), utcnow(), therapist_id="lee")


@attack("root-minted-intake-ca-unregistered", "frontdesk", "certificates", FRESH, "register.unregistered-ca")
def _(s):
    """A second intake CA minted with the root key; the client certificate it issues is registered, it is not."""
    pki = s.keys.pki
    ca, ca_key = kit.mint(kit.name("Test Practice Intake CA", "agreements-kit intake"), pki.root(), s.keys.root_key(),
                          ca=True)
    kit.admit(s.root, FRESH)
    cert, key = kit.mint(kit.name(CLIENT, "client"), ca, ca_key, uri=f"urn:agreements-kit:agreement:{FRESH}:client",
                         not_before=utcnow() - dt.timedelta(minutes=5), days=1)
    kit.register(s.archive, cert, "client", ca, utcnow(), agreement_id=FRESH)
    forge(s.folder(FRESH), "client", client_body(CLIENT, s.folder(FRESH)), cert, key, [ca])


@attack("record-names-lee-signed-by-ortiz", "therapist", "certificates", HALF, "register.wrong-person")
def _(s):
    countersign(s, HALF, "ortiz", body=therapist_body("lee"))


@attack("record-names-lees-certificate-signed-by-ortiz", "therapist", "certificates", HALF,
        "certificate.not-named")
def _(s):
    lee = load_cert(s.keys.pki.therapist_cert("lee"), "lee")
    countersign(s, HALF, "ortiz", body=therapist_body("lee"),
                edit=lambda d: d.update(certificate=kit._cert_fields(lee)))


@attack("ortiz-name-with-lee-id", "therapist", "certificates", HALF, "register.wrong-person")
def _(s):
    countersign(s, HALF, "ortiz", body=therapist_body("lee", "Sam Ortiz"))


@attack("client-certificate-of-another-agreement", "frontdesk", "certificates", FRESH, "role.wrong-agreement")
def _(s):
    intake_sign(s, FRESH, cert_for=OTHER, register_for=OTHER)


@attack("client-certificate-of-another-agreement-registered-here", "frontdesk", "certificates", FRESH,
        "role.wrong-agreement")
def _(s):
    intake_sign(s, FRESH, cert_for=OTHER)


@attack("client-certificate-registered-for-another-agreement", "frontdesk", "certificates", FRESH,
        "register.wrong-agreement")
def _(s):
    intake_sign(s, FRESH, register_for=OTHER)


@attack("client-certificate-unregistered", "frontdesk", "certificates", FRESH, "register.unregistered")
def _(s):
    intake_sign(s, FRESH, register_for=None)


@attack("record-moved-from-another-agreement", "forger", "certificates", HALF, "records.wrong-agreement")
def _(s):
    for name in (THERAPIST_REC, f"{THERAPIST_REC}.p7s"):
        shutil.copy(s.folder(OTHER) / name, s.folder(HALF) / name)


# --- two paths: what verify refused and audit passed

@attack("countersignature-erased", "forger", "two-paths", VALID, "ledger.record-erased")
def _(s):
    for name in (THERAPIST_REC, f"{THERAPIST_REC}.p7s", "completion.pdf"):
        (s.folder(VALID) / name).unlink()


@attack("countersignature-erased-signature-kept", "forger", "two-paths", VALID, "layout.orphan-signature")
def _(s):
    (s.folder(VALID) / THERAPIST_REC).unlink()


@attack("manifest-differs-from-embedded", "forger", "two-paths", VALID, "manifest.embedded-mismatch")
def _(s):
    path = s.folder(VALID) / "manifest.json"
    data = json.loads(path.read_bytes())
    data["agreement"]["client"]["name"] = "John Smith"
    kit.rewrite(path, canonical_json(data))


@attack("cms-two-message-digest-attributes", "therapist", "two-paths", HALF, "cms.attributes")
def _(s):
    rec = countersign(s, HALF)
    cert, key = s.keys.therapist("lee")
    other = (s.folder(OTHER) / THERAPIST_REC).read_bytes()
    p7s = kit.build_cms(rec.raw, cert, key, digests=[kit.hashlib.sha256(rec.raw).digest(),
                                                     kit.hashlib.sha256(other).digest()])
    kit.rewrite(s.folder(HALF) / f"{rec.name}.p7s", p7s)


@attack("cms-message-digest-with-two-values", "therapist", "two-paths", HALF, "cms.attributes")
def _(s):
    rec = countersign(s, HALF)
    cert, key = s.keys.therapist("lee")
    other = (s.folder(OTHER) / THERAPIST_REC).read_bytes()
    p7s = kit.build_cms(rec.raw, cert, key, two_values=True,
                        digests=[kit.hashlib.sha256(other).digest(), kit.hashlib.sha256(rec.raw).digest()])
    kit.rewrite(s.folder(HALF) / f"{rec.name}.p7s", p7s)


@attack("void-signed-by-client-after-countersignature", "frontdesk", "two-paths", ORTIZ, "role.void-by-client")
def _(s):
    cert, key = s.keys.one_time(CLIENT, ORTIZ, "client")
    kit.register(s.archive, cert, "client", s.keys.pki.intake(), utcnow(), agreement_id=ORTIZ)
    forge(s.folder(ORTIZ), "void", void_body("ortiz"), cert, key, [s.keys.pki.intake()])


# --- robustness: never hang, never exhaust memory, never a traceback

@attack("fifo-as-record", "forger", "robustness", HALF, "format.not-regular", isolate=True)
def _(s):
    os.mkfifo(s.folder(HALF) / THERAPIST_REC)


@attack("fifo-as-pdf", "forger", "robustness", VALID, "format.not-regular", isolate=True)
def _(s):
    (s.folder(VALID) / "agreement.pdf").unlink()
    os.mkfifo(s.folder(VALID) / "agreement.pdf")


@attack("fifo-as-signature", "forger", "robustness", VALID, "format.not-regular", isolate=True)
def _(s):
    (s.folder(VALID) / f"{THERAPIST_REC}.p7s").unlink()
    os.mkfifo(s.folder(VALID) / f"{THERAPIST_REC}.p7s")


@attack("fifo-as-ledger", "forger", "robustness", VALID, "format.not-regular", isolate=True)
def _(s):
    (s.archive / "ledger.jsonl").unlink()
    os.mkfifo(s.archive / "ledger.jsonl")


@attack("dev-zero-as-pdf", "forger", "robustness", VALID, "format.link", isolate=True)
def _(s):
    (s.folder(VALID) / "agreement.pdf").unlink()
    os.symlink("/dev/zero", s.folder(VALID) / "agreement.pdf")


@attack("dev-zero-as-record", "forger", "robustness", VALID, "format.link", isolate=True)
def _(s):
    (s.folder(VALID) / THERAPIST_REC).unlink()
    os.symlink("/dev/zero", s.folder(VALID) / THERAPIST_REC)


@attack("dev-zero-as-ledger", "forger", "robustness", VALID, "format.link", isolate=True)
def _(s):
    (s.archive / "ledger.jsonl").unlink()
    os.symlink("/dev/zero", s.archive / "ledger.jsonl")


@attack("symlinked-record", "forger", "robustness", HALF, "format.link")
def _(s):
    os.symlink(s.folder(OTHER) / THERAPIST_REC, s.folder(HALF) / THERAPIST_REC)
    os.symlink(s.folder(OTHER) / f"{THERAPIST_REC}.p7s", s.folder(HALF) / f"{THERAPIST_REC}.p7s")


@attack("symlinked-manifest", "forger", "robustness", VALID, "format.link")
def _(s):
    outside = s.root / "manifest-copy.json"
    shutil.copy(s.folder(VALID) / "manifest.json", outside)
    (s.folder(VALID) / "manifest.json").unlink()
    os.symlink(outside, s.folder(VALID) / "manifest.json")


@attack("symlinked-agreement-folder", "forger", "robustness", VALID, "format.not-regular", audit_expect="missing")
def _(s):
    moved = s.root / "elsewhere"
    shutil.move(str(s.folder(VALID)), moved)
    os.symlink(moved, s.folder(VALID))


@attack("directory-as-record", "forger", "robustness", HALF, "format.not-regular")
def _(s):
    (s.folder(HALF) / THERAPIST_REC).mkdir()


@attack("truncated-pdf", "forger", "robustness", VALID, "pdf.hash-mismatch")
def _(s):
    path = s.folder(VALID) / "agreement.pdf"
    kit.rewrite(path, path.read_bytes()[:5000])


@attack("damaged-pdf", "forger", "robustness", VALID, "pdf.hash-mismatch")
def _(s):
    path = s.folder(VALID) / "agreement.pdf"
    data = bytearray(path.read_bytes())
    data[len(data) // 2:len(data) // 2 + 4096] = b"\0" * 4096
    kit.rewrite(path, bytes(data))


@attack("sparse-huge-pdf", "forger", "robustness", VALID, "format.too-large", isolate=True)
def _(s):
    with open(s.folder(VALID) / "agreement.pdf", "r+b") as fh:
        fh.truncate(100 << 30)


@attack("truncated-signature", "forger", "robustness", VALID, "cms.structure")
def _(s):
    path = s.folder(VALID) / f"{THERAPIST_REC}.p7s"
    kit.rewrite(path, path.read_bytes()[:300])


@attack("garbage-signature", "forger", "robustness", VALID, "cms.structure")
def _(s):
    kit.rewrite(s.folder(VALID) / f"{THERAPIST_REC}.p7s", os.urandom(700))


@attack("signature-with-trailing-bytes", "forger", "robustness", VALID, "cms.structure")
def _(s):
    path = s.folder(VALID) / f"{THERAPIST_REC}.p7s"
    kit.rewrite(path, path.read_bytes() + b"\0" * 16)


@attack("ledger-deleted", "forger", "robustness", VALID, "ledger.missing")
def _(s):
    (s.archive / "ledger.jsonl").unlink()


# --- times: the record's claim against the ledger's order

@attack("countersign-signed-at-set-back-an-hour", "therapist", "revocation", HALF, "time.ledger-mismatch")
def _(s):
    countersign(s, HALF, signed_at=utcnow() - dt.timedelta(hours=1))


@attack("ledger-entry-backdated-before-the-line-above", "therapist", "revocation", HALF, "ledger.backdated",
        audit_expect="ledger")
def _(s):
    when = utcnow() - dt.timedelta(days=3)
    countersign(s, HALF, signed_at=when, ledger_time=when)


# --- record content: what a record attests must be what the tool has signers attest

@attack("client-record-without-initials", "frontdesk", "roles", FRESH, "records.initials")
def _(s):
    intake_sign(s, FRESH, edit=lambda d: d.update(initials={}))


@attack("client-intent-statement-rewritten", "frontdesk", "roles", FRESH, "records.intent")
def _(s):
    intake_sign(s, FRESH, edit=lambda d: d["intent"].update(statement="I have glanced at this."))


@attack("typed-name-differs-from-signer", "frontdesk", "roles", FRESH, "records.typed-name")
def _(s):
    intake_sign(s, FRESH, edit=lambda d: d["method"].update(typed_name="Someone Else"))


@attack("therapist-typed-name-differs", "therapist", "roles", HALF, "records.typed-name")
def _(s):
    countersign(s, HALF, edit=lambda d: d["method"].update(typed_name="Dr. Nobody"))


@attack("esign-disclosure-never-published", "frontdesk", "roles", FRESH, "records.disclosure")
def _(s):
    intake_sign(s, FRESH, edit=lambda d: d["esign"].update(disclosure_version="0-draft"))


@attack("drawn-signature-named-but-missing", "frontdesk", "roles", FRESH, "records.drawn-missing")
def _(s):
    intake_sign(s, FRESH, edit=lambda d: d["method"].update(drawn_signature_file="01-client.png",
                                                           drawn_signature_png_sha256="cd" * 32))


@attack("stray-drawn-signature-added", "forger", "robustness", VALID, "folder.unexpected-file")
def _(s):
    (s.folder(VALID) / "01-client.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"0" * 32)


@attack("void-without-reason", "therapist", "roles", HALF, "records.void-reason")
def _(s):
    cert, key = s.keys.therapist("lee")
    body = void_body("lee")
    body["reason"] = " "
    forge(s.folder(HALF), "void", body, cert, key, s.keys.chain(cert))



@pytest.mark.parametrize("attack", ATTACKS, ids=lambda a: f"{a.adversary}-{a.name}")
def test_attack_refused(attack: Attack, scene: Scene) -> None:
    attack.mutate(scene)
    got = kit.judge_isolated(scene, attack.target) if attack.isolate else scene.judge(attack.target)
    v, a = got["verify"], got["audit"]
    detail = json.dumps(got, indent=1)
    assert v["status"] == "invalid", f"verify called it {v['status']}:\n{detail}"
    assert attack.code in v["codes"], f"verify did not give {attack.code}:\n{detail}"
    assert not a["ok"], f"audit found no problem:\n{detail}"
    if attack.audit_expect == "row":
        assert attack.code not in _ARCHIVE_WIDE
        assert a["status"] == "invalid", f"audit called it {a['status']}:\n{detail}"
        assert attack.code in a["codes"], f"audit did not give {attack.code}:\n{detail}"
    elif attack.audit_expect == "ledger":
        assert attack.code in a["ledger_codes"], f"audit's summary does not give {attack.code}:\n{detail}"
    else:
        assert attack.target in a["missing"], f"audit does not name {attack.target} as missing:\n{detail}"


def test_corpus_covers_every_class_and_adversary() -> None:
    names = [a.name for a in ATTACKS]
    assert len(set(names)) == len(names) >= 50
    assert {a.klass for a in ATTACKS} == {"parsing", "trust", "revocation", "roles", "certificates", "two-paths",
                                          "robustness"}
    assert {a.adversary for a in ATTACKS} == {"forger", "therapist", "frontdesk"}


# ----------------------------------------------------------------------------- controls


def test_pristine_practice_passes_both(scene: Scene) -> None:
    for aid, status in kit.EXPECTED_STATUS.items():
        got = scene.judge(aid)
        assert got["verify"]["status"] == status, json.dumps(got, indent=1)
        assert got["verify"]["codes"] == [], json.dumps(got, indent=1)
        assert got["audit"]["status"] == status and got["audit"]["codes"] == []
        assert got["audit"]["ok"] and got["audit"]["ledger_codes"] == [] and got["audit"]["missing"] == []


@pytest.mark.parametrize("act", ["therapist-countersigns", "frontdesk-intake", "therapist-voids"])
def test_attack_tools_used_honestly_give_valid_signatures(act: str, scene: Scene) -> None:
    """The hand-made CMS, records and ledger entries are right: used honestly, both verifiers accept them."""
    if act == "therapist-countersigns":
        countersign(scene, HALF)
        target, status = HALF, "valid"
    elif act == "frontdesk-intake":
        intake_sign(scene, FRESH)
        target, status = FRESH, "incomplete"
    else:
        cert, key = scene.keys.therapist("lee")
        forge(scene.folder(HALF), "void", void_body(), cert, key, scene.keys.chain(cert))
        target, status = HALF, "voided"
    got = scene.judge(target)
    assert got["verify"]["status"] == status and got["verify"]["codes"] == [], json.dumps(got, indent=1)
    assert got["audit"]["status"] == status and got["audit"]["codes"] == [] and got["audit"]["ok"]


def test_a_record_that_accepted_an_earlier_published_disclosure_still_verifies(scene: Scene) -> None:
    """The ESIGN disclosure's wording changes by new versions; records that accepted an earlier one (kept
    byte for byte in templates/esign-disclosure-history) stay valid, and the current one is newer."""
    from agreements_kit.formats.record import load_disclosure
    from agreements_kit.resources import templates_dir

    first = load_disclosure(templates_dir() / "esign-disclosure-history" / "1.txt")
    assert first.version == "1" and load_disclosure().version != "1"
    assert first.sha256 != load_disclosure().sha256
    intake_sign(scene, FRESH, edit=lambda d: d["esign"].update(disclosure_version="1",
                                                               disclosure_sha256=first.sha256))
    got = scene.judge(FRESH)
    assert got["verify"]["status"] == "incomplete" and got["verify"]["codes"] == [], json.dumps(got, indent=1)


# ----------------------------------------------------------------------------- trust taken from the archive


def _fake_pki(s: Scene) -> str:
    """A self-made root and CRL dropped into the archive copy's pki/; returns the fake root's SHA-256."""
    real = s.keys.pki.root()
    key = kit.ec.generate_private_key(kit.ec.SECP256R1())
    fake, _ = kit.mint(real.subject, real.subject, key, ca=True, uri="root")
    kit.rewrite(s.root / "pki" / "root.pem", fake.public_bytes(kit.serialization.Encoding.PEM))
    kit.rewrite(s.root / "pki" / "crl.pem", kit.crl_set([(fake, key)], 7))
    return fingerprint(fake)


def run_cli(*args: object) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).parent / "agreements"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGREEMENTS_")}
    return subprocess.run([str(exe), *map(str, args)], capture_output=True, text=True, timeout=120, env=env,
                          cwd="/")


def test_trust_self_made_root_in_archive_copy_decides_nothing(scene: Scene) -> None:
    fp = _fake_pki(scene)
    with pytest.raises(NotVerified) as info:
        resolve_trust(archive=scene.archive)
    assert info.value.code == "invalid.no-trusted-root" and fp in info.value.message
    for command in (["verify", scene.folder(VALID)], ["audit", scene.archive, "--workers", "1"]):
        res = run_cli(*command)
        assert res.returncode == 1, (command, res.stdout, res.stderr)
        assert "Traceback" not in res.stderr and "no trusted root" in res.stdout + res.stderr
        assert fp in res.stdout + res.stderr


def test_trust_pinned_fingerprint_ignores_a_self_made_root_beside_the_archive(scene: Scene) -> None:
    real = fingerprint(scene.keys.pki.root())
    _fake_pki(scene)
    with pytest.raises(NotVerified):
        resolve_trust(trust_sha256=real, archive=scene.archive)
    res = run_cli("verify", "--trust-sha256", real, scene.folder(VALID))
    assert res.returncode == 1 and "Traceback" not in res.stderr, (res.stdout, res.stderr)


def test_trust_real_root_refuses_chain_to_self_made_root_via_cli(scene: Scene) -> None:
    [case] = [a for a in ATTACKS if a.name == "fake-root-chain-with-real-trust"]
    case.mutate(scene)
    res = run_cli("verify", "--trust", scene.pristine.auditor / "root.pem", scene.folder(VALID))
    assert res.returncode == 1 and "Traceback" not in res.stderr, (res.stdout, res.stderr)
    assert "[chain.untrusted]" in res.stdout


# ----------------------------------------------------------------------------- through the CLI

CLI_CASES = ["dup-signed-at-backdated-first", "older-crl-substituted", "unvoid-delete-void-record",
             "fifo-as-record", "damaged-pdf", "root-minted-therapist-unregistered", "cms-two-message-digest-attributes",
             "ledger-line-utf16"]


@pytest.mark.parametrize("name", CLI_CASES)
def test_attack_refused_by_the_cli(name: str, scene: Scene) -> None:
    [case] = [a for a in ATTACKS if a.name == name]
    case.mutate(scene)
    trust = scene.pristine.auditor / "root.pem"
    res = run_cli("verify", "--trust", trust, scene.folder(case.target))
    assert res.returncode == 1, (res.returncode, res.stdout, res.stderr)
    assert "Traceback" not in res.stdout + res.stderr
    assert f"[{case.code}]" in res.stdout, res.stdout
    res = run_cli("audit", "--trust", trust, "--workers", "1", scene.archive)
    assert res.returncode == 1, (res.returncode, res.stdout, res.stderr)
    assert "Traceback" not in res.stdout + res.stderr
    assert res.stdout.startswith("PROBLEMS"), res.stdout


def test_a_covering_therapist_may_countersign_and_is_named(scene: Scene) -> None:
    """Policy, not a hole: another therapist of the practice may countersign (cover); the verdict names them."""
    countersign(scene, HALF, tid="ortiz")
    got = scene.judge(HALF)
    assert got["verify"]["status"] == "valid", json.dumps(got, indent=1)
    assert got["audit"]["status"] == "valid", json.dumps(got, indent=1)
    trust = resolve_trust(trust_file=scene.pristine.auditor / "root.pem", archive=scene.archive)
    v = verify_folder(scene.folder(HALF), trust, ledger=scene.archive / "ledger.jsonl")
    assert "Sam Ortiz (therapist)" in v.headline()
