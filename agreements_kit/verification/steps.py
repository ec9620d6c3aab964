"""The verifier's steps, in the order they run, for one agreement folder.

Like sigstore-python's verifier, verification is a numbered sequence of small
steps. Each records :class:`Check` results: the step's number and name, a reason
code (``pdf.hash-mismatch``, ``revocation.rollback``...), and a sentence a person
can act on. ``verify`` and ``audit`` run exactly these steps (audit adds the
archive-wide ones in :mod:`agreements_kit.verification.audit`).

1. folder      read the folder: only regular files of the layout, within size limits
2. manifest    manifest.json parses strictly and names this folder's agreement
3. pdf         the PDF is byte for byte the one rendered; exactly one manifest is
               attached to it and it is manifest.json's
4. records     each record parses strictly (one kind, canonical bytes) and binds this
               agreement, this PDF and this manifest
5. signature   each detached CMS signature is well formed and covers its record
6. time        its RFC 3161 time-stamp token covers the signature value, comes from a
               trusted TSA, and agrees with the record's time within the tolerance;
               what follows judges the signature at the TSA's time (or, without a
               token, at the signer's claim only, and the verdict says so)
7. register    the signer's certificate (and its CA's) is in the practice's register,
               entered before it was used, for this role, person and agreement
8. path        the certificate leads to the trusted root at the signing time
9. revocation  the CRL set is present, signed, and not older than the ledger's
               newest; no certificate of the path was revoked before the signature,
               by the CRL's date or by the ledger's order
10. role       the certificate fits the record's role and names its signer
11. order      the signers each once, in order, in time; voids by staff only
12. ledger     the agreement's ledger entries match its files, and nothing the ledger
               records (a countersignature, a void) is missing
13. evidence   each archive time-stamp (renewal-NN.json/.tsr) covers exactly what was in
               the folder before it, by a trusted TSA, in order; a note when renewal is due
               (verification/evidence.py)
14. copy       each signed copy (NN-ROLE.copy.pdf), when there is one: the archived PDF as its
               prefix, the records' certificates as its PAdES signers, nothing changed after
               (verification/copycheck.py; older folders have no copies). In a folder (verify
               and audit alike) each copy's prefix is checked here and its bytes held to the
               SHA-256 its ledger entry recorded (step 12); ``agreements verify COPY.pdf`` reads
               a copy's signatures in full, with pyHanko
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from agreements_kit.errors import CannotCheck, InvalidFormat
from agreements_kit.formats.certprofile import OU_CLINICIANS, OU_INTAKE, agreement_uri, name_text
from agreements_kit.formats.certprofile import common_name as cn
from agreements_kit.formats.certprofile import fingerprint as _fp
from agreements_kit.formats.certprofile import unit as ou
from agreements_kit.formats.crlset import CrlSet
from agreements_kit.formats.folder import COPY_RE, FolderFiles, RecordFiles, open_regular
from agreements_kit.formats.manifest import Manifest, parse_manifest
from agreements_kit.formats.record import (
    INITIALS_RE,
    INTENT,
    VOID_INTENT,
    SigningRecord,
    intent_statements,
    load_disclosure,
    parse_record,
)
from agreements_kit.formats.shape import parse_time
from agreements_kit.formats.text import nfc
from agreements_kit.resources import templates_dir
from agreements_kit.verification.chain import ChainProblem, PathValidator
from agreements_kit.verification.cms import CertCache, CmsProblem, SignatureFacts, check_signature
from agreements_kit.verification.ledgerview import LEDGER_SKEW, LedgerIndex
from agreements_kit.verification.timestamps import TIME_TOLERANCE, TokenChecker, TokenProblem, TrustedTime
from agreements_kit.verification.trust import Trust

SIGNER_CLAIM = "the signer's claim only"

CLOCK_SKEW = dt.timedelta(minutes=5)
STEPS = ("folder", "manifest", "pdf", "records", "signature", "time", "register", "path", "revocation", "role",
         "order", "ledger", "evidence", "copy")
STEP_NUMBER = {name: i for i, name in enumerate(STEPS, start=1)}
STEP_NUMBER["store"] = len(STEPS) + 1  # 15: an agreement read from a bucket only (verification/storeaudit.py)
EXPECTED_CERT_ROLE = {"client": ("client",), "guardian": ("guardian",), "therapist": ("therapist",),
                      "void": ("therapist", "administrator")}


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    subject: str = ""  # the file the check is about, when there are several (records)
    code: str = ""

    @property
    def step(self) -> int:
        return STEP_NUMBER.get(self.name, 0)

    def as_dict(self) -> dict[str, Any]:
        return {"step": self.step, "name": self.name, "ok": self.ok, "code": self.code, "subject": self.subject,
                "detail": self.detail}


@dataclass
class Verdict:
    agreement_id: str
    path: str
    status: str = "valid"
    checks: list[Check] = field(default_factory=list)
    signers: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def failures(self) -> list[Check]:
        return [c for c in self.checks if not c.ok]

    @property
    def codes(self) -> set[str]:
        return {c.code for c in self.failures}

    @property
    def valid(self) -> bool:
        return self.status == "valid"

    def add(self, name: str, ok: bool, detail: str, subject: str = "", code: str = "") -> bool:
        self.checks.append(Check(name, ok, detail, subject, code or (f"{name}.ok" if ok else f"{name}.failed")))
        return ok

    def fail(self, name: str, code: str, detail: str, subject: str = "") -> None:
        self.checks.append(Check(name, False, detail, subject, code))

    def headline(self) -> str:
        people = " and ".join(
            f"{s['name']} ({s['role']}) on {str(s['signed_at']).replace('T', ' ').replace('Z', ' UTC')}"
            for s in self.signers if s.get("kind") == "signature")
        if self.status == "valid":
            return f"valid: {self.agreement_id} signed by {people}"
        if self.status == "incomplete":
            return f"incomplete: {self.agreement_id} is not fully signed" + (f" (signed by {people})" if people else "")
        if self.status == "voided":
            return f"voided: {self.agreement_id} was voided and is no longer in effect"
        return f"not valid: {self.agreement_id}: {len(self.failures)} check(s) failed"

    def as_dict(self) -> dict[str, Any]:
        return {"agreement_id": self.agreement_id, "path": self.path, "status": self.status,
                "headline": self.headline(), "signers": self.signers, "notes": self.notes,
                "checks": [c.as_dict() for c in self.checks]}


@dataclass
class Signature:
    """One record and what the steps learned of it."""

    files: RecordFiles
    record: SigningRecord | None = None
    facts: SignatureFacts | None = None
    path: list[x509.Certificate] | None = None
    entry: dict[str, Any] | None = None  # its ledger entry
    time: TrustedTime | None = None  # what its verified time-stamp token proves

    @property
    def when(self) -> dt.datetime:
        """The time the signature is judged at: the TSA's where a token verified, else the signer's claim."""
        assert self.record is not None
        return self.time.time if self.time is not None else self.record.signed_at


@dataclass
class Context:
    """Everything the steps share while checking one agreement."""

    folder: str
    files: FolderFiles
    trust: Trust
    validator: PathValidator
    cache: CertCache
    ledger: LedgerIndex | None
    now: dt.datetime
    check_embedded: bool = True
    manifest: Manifest | None = None
    pdf_sha256: str = ""
    manifest_sha256: str = ""
    signatures: list[Signature] = field(default_factory=list)
    entries: list[dict[str, Any]] = field(default_factory=list)
    crl_verified: dict[bytes, bool] = field(default_factory=dict)  # shared by one Verifier's agreements
    tokens: TokenChecker | None = None
    require_timestamps: bool = False
    memo: dict[str, Any] = field(default_factory=dict)  # answers that are the same for every agreement


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _file_sha256(folder: str, name: str) -> str:
    """The SHA-256 of a file of the folder too large to keep in memory (a signed copy), read in blocks."""
    digest = hashlib.sha256()
    with open_regular(os.path.join(folder, name), name) as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()



# ----------------------------------------------------------------------------- 1. folder

def step_folder(v: Verdict, ctx: Context) -> None:
    for name, code, sentence in ctx.files.problems:
        v.fail("folder", code, sentence, name)
    if ctx.files.pdf is None:
        v.fail("folder", "folder.missing-pdf", "agreement.pdf is missing")
    if not ctx.files.problems and ctx.files.pdf is not None:
        v.add("folder", True, "the folder holds only the files of an agreement")


# ----------------------------------------------------------------------------- 2. manifest

def step_manifest(v: Verdict, ctx: Context) -> bool:
    raw = ctx.files.manifest
    if raw is None:
        v.fail("manifest", "manifest.missing", "manifest.json is missing")
        return False
    try:
        ctx.manifest = parse_manifest(raw, "manifest.json")
    except InvalidFormat as exc:
        v.fail("manifest", exc.code, f"manifest.json is not a valid manifest: {exc.message}")
        return False
    ctx.manifest_sha256 = _sha(raw)
    v.agreement_id = ctx.manifest.agreement_id
    name = ctx.folder.rstrip("/").rsplit("/", 1)[-1]
    if ctx.manifest.agreement_id != name:
        v.fail("manifest", "manifest.wrong-folder", f"the folder is named '{name}' but its manifest is for "
               f"'{ctx.manifest.agreement_id}'")
    else:
        v.add("manifest", True, "manifest.json is a valid manifest of this agreement")
    return True


# ----------------------------------------------------------------------------- 3. pdf

def step_pdf(v: Verdict, ctx: Context, pdf: bytes | None) -> None:
    from agreements_kit.formats.pdfattach import manifest_attachments

    assert ctx.manifest is not None
    if pdf is None:
        return
    ctx.pdf_sha256 = _sha(pdf)
    expected = ctx.manifest.pdf_sha256
    if ctx.pdf_sha256 != expected:
        v.fail("pdf", "pdf.hash-mismatch", f"the PDF's SHA-256 {ctx.pdf_sha256[:16]}... is not the manifest's "
               f"{str(expected)[:16]}...: the PDF was changed, truncated or extended after rendering")
        return
    v.add("pdf", True, "the PDF is byte for byte the one rendered (SHA-256 matches the manifest)")
    if not ctx.check_embedded:
        return
    attached = manifest_attachments(pdf)
    want = ctx.manifest.embedded_bytes()
    if not attached:
        v.fail("pdf", "pdf.no-embedded-manifest", "the PDF carries no readable manifest: it is not an agreement "
               "rendered by agreements-kit, or it is damaged")
    elif len(attached) > 1:
        v.fail("pdf", "pdf.two-manifests", f"the PDF carries {len(attached)} manifests: a second one was hidden "
               "in it, and readers could show either")
    elif attached[0] != want or _sha(want) != ctx.manifest.data["document"]["embedded_manifest_sha256"]:
        v.fail("pdf", "manifest.embedded-mismatch", "manifest.json differs from the manifest embedded in the PDF: "
               "manifest.json was edited")
    else:
        v.add("pdf", True, "manifest.json matches the manifest embedded in the PDF")


# ----------------------------------------------------------------------------- 4. records

def step_records(v: Verdict, ctx: Context) -> None:
    assert ctx.manifest is not None
    for index, rf in enumerate(ctx.files.records, start=1):
        sig = Signature(rf)
        ctx.signatures.append(sig)
        if rf.p7s is None:
            v.fail("records", "records.missing-signature", "the signature file (.p7s) of this record is missing",
                   rf.name)
        try:
            rec = parse_record(rf.raw, rf.name)
        except InvalidFormat as exc:
            v.fail("records", exc.code, f"the record is not a valid signing record: {exc.message}", rf.name)
            continue
        sig.record = rec
        v.signers.append({"record": rf.name, "kind": "void" if rec.is_void else "signature", "name": rec.name,
                          "role": rec.role, "signed_at": rec.data["signed_at"],
                          "identity": rec.data.get("identity"), "certificate_sha256": rec.certificate_sha256,
                          "time_source": SIGNER_CLAIM})
        problems = []
        if rec.agreement_id != ctx.manifest.agreement_id:
            problems.append(("records.wrong-agreement", f"the record is for agreement '{rec.agreement_id}', not "
                             "this one: it was moved here from another agreement"))
        if rec.document_sha256 != ctx.pdf_sha256:
            problems.append(("records.wrong-pdf", "the record signs a different PDF (its SHA-256 differs)"))
        if rec.manifest_sha256 != ctx.manifest_sha256:
            problems.append(("records.wrong-manifest", "the record signs a different manifest.json (its SHA-256 "
                             "differs)"))
        if rec.sequence != index or rec.file_name != rf.name:
            problems.append(("records.renamed", f"the record is numbered {rec.sequence} as a {rec.kind} record but "
                             f"stored as record {index} named {rf.name}: records were renamed, removed or "
                             "duplicated"))
        problems += _content_problems(rec, ctx)
        for code, sentence in problems:
            v.fail("records", code, sentence, rf.name)
        if not problems:
            v.add("records", True, "the record is well formed and binds this agreement, PDF and manifest", rf.name)
    referenced = {s.record.data["method"]["drawn_signature_file"] for s in ctx.signatures
                  if s.record is not None and not s.record.is_void}
    for png in sorted(set(ctx.files.pngs) - referenced):
        v.fail("folder", "folder.unexpected-file", f"{png} is a drawn signature no record names (added by hand?)", png)


def _content_problems(rec: SigningRecord, ctx: Context) -> list[tuple[str, str]]:
    """What a record attests must be what the tool has the signer attest: the fixed texts, the initials the
    agreement asks for, the disclosure the practice publishes, the drawn signature beside it."""
    assert ctx.manifest is not None
    out: list[tuple[str, str]] = []
    d = rec.data
    if (d["intent"]["statement"] != VOID_INTENT) if rec.is_void else (
            d["intent"]["statement"] not in (intent_statements() if rec.client_side else {INTENT})):
        out.append(("records.intent", "the record's intent statement is not the one signers adopt: it was "
                    "rewritten"))
    if rec.is_void:
        if not d["reason"].strip():
            out.append(("records.void-reason", "the void gives no reason"))
        return out
    if d["method"]["typed_name"] != rec.name:
        out.append(("records.typed-name", "the typed name adopted as the signature is not the signer's name"))
    if rec.client_side:
        wanted = set(ctx.manifest.initialled_clauses)
        given = d["initials"]
        if set(given) != wanted or not all(INITIALS_RE.match(x) for x in given.values()):
            out.append(("records.initials", "the record's initials are not one set of 1 to 5 letters for each "
                        "clause the agreement asks the signer to initial"))
        disclosure = known_disclosures().get(d["esign"]["disclosure_version"])
        if disclosure != d["esign"]["disclosure_sha256"]:
            out.append(("records.disclosure", "the record names an ESIGN disclosure the practice never published "
                        "(unknown version or text)"))
        else:
            # One set of pages shows one language: the disclosure accepted and the intent adopted are in it.
            said, shown = intent_statements().get(d["intent"]["statement"]), \
                disclosure_language(d["esign"]["disclosure_version"])
            if said is not None and shown is not None and said != shown:
                out.append(("records.language-mix", f"the record's intent statement is in '{said}' but the "
                            f"disclosure it accepted is in '{shown}': no intake pages show both"))
    elif d["initials"]:
        out.append(("records.initials", "a therapist's record carries initials"))
    png_name, png_sha = d["method"]["drawn_signature_file"], d["method"]["drawn_signature_png_sha256"]
    if (png_name is None) != (png_sha is None) or (png_name is not None and not rec.client_side):
        out.append(("records.drawn-mismatch", "the record's drawn signature is half described"))
    elif png_name is not None:
        data = ctx.files.pngs.get(png_name)
        if png_name != f"{rec.sequence:02d}-{rec.kind}.png" or data is None:
            out.append(("records.drawn-missing", f"the drawn signature {png_name} the record names is missing"))
        elif _sha(data) != png_sha:
            out.append(("records.drawn-mismatch", f"{png_name} is not the drawn signature the record signed"))
    return out


_DISCLOSURES: dict[str, str] = {}
_DISCLOSURE_LANGUAGES: dict[str, str] = {}  # version -> the language of its text


def disclosure_language(version: str) -> str | None:
    """The language of a published disclosure version (None: never published)."""
    known_disclosures()
    return _DISCLOSURE_LANGUAGES.get(version)


def known_disclosures() -> dict[str, str]:
    """ESIGN disclosure versions -> SHA-256 of their text, as shipped: the current one in every language
    (templates/esign-disclosure.txt, esign-disclosure.LANG.txt, each with its own version: 2, 2-es), and
    every one published before them (templates/esign-disclosure-history/VERSION.txt, kept byte for byte),
    so that a client's record keeps verifying after a new version's wording, in any language."""
    from agreements_kit.formats.record import disclosure_languages

    if not _DISCLOSURES:
        found: dict[str, tuple[str, str, str]] = {}  # version -> (sha256, language, file)
        published = [(load_disclosure(path), "en", path.name)
                     for path in sorted((templates_dir() / "esign-disclosure-history").glob("*.txt"))]
        published += [(load_disclosure(language=lang), lang, f"the current {lang} disclosure")
                      for lang in disclosure_languages()]
        for d, language, where in published:
            seen = found.get(d.version)
            if seen is not None and seen[0] != d.sha256:
                # Two texts under one version: records naming it could be checked against either one.
                raise CannotCheck(f"the ESIGN disclosure version {d.version} is published twice with different "
                                  f"words ({seen[2]}, {where}): give the newer text a version of its own")
            found[d.version] = (d.sha256, language, where)
        _DISCLOSURE_LANGUAGES.update({v: lang for v, (_, lang, _) in found.items()})
        _DISCLOSURES.update({v: sha for v, (sha, _, _) in found.items()})
    return _DISCLOSURES


# ----------------------------------------------------------------------------- 5. signature

def step_signature(v: Verdict, ctx: Context, sig: Signature) -> bool:
    if sig.record is None or sig.files.p7s is None:
        return False
    try:
        sig.facts = check_signature(sig.files.raw, sig.files.p7s, ctx.cache)
    except CmsProblem as exc:
        v.fail("signature", exc.code, f"the signature does not cover this record: {exc.message}", sig.files.name)
        return False
    v.add("signature", True, "the CMS signature over the record's bytes is intact", sig.files.name)
    if sig.facts.signer_sha256 != sig.record.certificate_sha256:
        v.fail("signature", "certificate.not-named", "the certificate that signed the record is not the one the "
               "record names", sig.files.name)
        return False
    if abs(sig.facts.signing_time - sig.record.signed_at) > CLOCK_SKEW if sig.facts.signing_time else False:
        v.fail("order", "time.cms-mismatch", f"the record's signing time {sig.record.data['signed_at']} differs from "
               f"the signature's own signing time {sig.facts.signing_time:%Y-%m-%dT%H:%M:%SZ}", sig.files.name)
    return True


# ----------------------------------------------------------------------------- 6. time

def step_time(v: Verdict, ctx: Context, sig: Signature) -> None:
    assert sig.record is not None and sig.facts is not None
    rec, name = sig.record, sig.files.name
    if sig.facts.token is None:
        if ctx.require_timestamps:
            v.fail("time", "time.untimestamped", "the signature has no time-stamp token: its time is the signer's "
                   "claim only", name)
        else:
            v.add("time", True, "no time-stamp token: the signing time is the signer's claim only", name,
                  "time.signer-claim-only")
        return
    checker = ctx.tokens or TokenChecker(ctx.trust.tsa_roots)
    ctx.tokens = checker
    try:
        trusted = checker.check(sig.facts.token, sig.facts.signature_value)
    except TokenProblem as exc:
        v.fail("time", exc.code, exc.message, name)
        _signer(v, name)["time_source"] = "a time-stamp token that did not verify"
        return
    sig.time = trusted  # trusted whatever the record claims: the later steps judge at this time
    entry = _signer(v, name)
    entry["time_source"] = trusted.source()
    entry["timestamped_at"] = f"{trusted.time:%Y-%m-%dT%H:%M:%SZ}"
    apart = abs(rec.signed_at - trusted.time)
    if apart > TIME_TOLERANCE + trusted.accuracy:
        v.fail("time", "time.outside-tolerance", f"the record says it was signed at {rec.data['signed_at']}, but "
               f"the {trusted.source()} dates the signature {trusted.time:%Y-%m-%dT%H:%M:%SZ}, "
               f"{int(apart.total_seconds())} s apart (tolerance {int(TIME_TOLERANCE.total_seconds())} s): "
               "the signing time was set back or forward", name)
        return
    v.add("time", True, f"time-stamped {trusted.time:%Y-%m-%d %H:%M:%S} UTC by {trusted.source()}", name)


def _signer(v: Verdict, record_name: str) -> dict[str, Any]:
    return next(s for s in v.signers if s["record"] == record_name)


# ----------------------------------------------------------------------------- 7. register

def step_register(v: Verdict, ctx: Context, sig: Signature) -> None:
    assert sig.record is not None and sig.facts is not None
    rec, name = sig.record, sig.files.name
    if ctx.ledger is None:
        v.add("register", True, "not checked: no ledger given (--no-ledger)", name, "register.not-checked")
        return
    if ctx.ledger.report.missing:
        return  # the ledger itself is missing or unreadable: step 11 says so; the register cannot be read
    migrated = ctx.ledger.report.migrated_at
    entry_seq = sig.entry["seq"] if sig.entry else None
    found = ctx.ledger.certificate(sig.facts.signer_sha256)
    if found is None:
        v.fail("register", "register.unregistered", f"the certificate that signed it ({cn(sig.facts.signer)}, "
               f"SHA-256 {sig.facts.signer_sha256[:16]}...) is not in the practice's register of issued "
               "certificates: it was minted outside the practice's own issuing", name)
        return
    seq, reg = found
    late = entry_seq is not None and seq > entry_seq and not (
        reg.get("source") == "migration" and migrated is not None and entry_seq < migrated)
    problems = []
    if late:
        problems.append(("register.late", f"the certificate was entered in the register (ledger entry {seq}) only "
                         f"after it signed (entry {entry_seq})"))
    if reg["role"] not in EXPECTED_CERT_ROLE[rec.kind]:
        problems.append(("register.wrong-role", f"the register lists this certificate as a {reg['role']}'s, but it "
                         f"signed a {rec.kind} record"))
    if rec.role == "therapist" and reg.get("therapist_id") != rec.signer.get("therapist_id"):
        problems.append(("register.wrong-person", f"the record names therapist '{rec.signer.get('therapist_id')}' "
                         f"but the register issued this certificate to '{reg.get('therapist_id')}'"))
    if rec.client_side and reg.get("agreement_id") != rec.agreement_id:
        problems.append(("register.wrong-agreement", "the register issued this one-time certificate for another "
                         "agreement"))
    for cert in sig.facts.certificates:
        if cert is not sig.facts.signer and ou(cert) in (OU_INTAKE, OU_CLINICIANS) and \
                ctx.ledger.certificate(_fp(cert)) is None:
            what = "intake" if ou(cert) == OU_INTAKE else "clinician"
            problems.append(("register.unregistered-ca", f"the {what} CA certificate '{cn(cert)}' in the signature "
                             "is not in the practice's register"))
    for code, sentence in problems:
        v.fail("register", code, sentence, name)
    if not problems:
        v.add("register", True, f"the certificate is in the practice's register (ledger entry {seq})", name)


# ----------------------------------------------------------------------------- 8. path

def step_path(v: Verdict, ctx: Context, sig: Signature) -> None:
    assert sig.record is not None and sig.facts is not None
    try:
        sig.path = ctx.validator.validate(sig.facts.signer, sig.facts.signer_sha256, sig.facts.certificates,
                                          sig.when)
    except ChainProblem as exc:
        v.fail("path", exc.code, exc.message, sig.files.name)
        return
    v.add("path", True, " -> ".join(cn(c) for c in sig.path) + (" (valid at the TSA's time)" if sig.time else
                                                                " (valid at the signing time)"), sig.files.name)
    entry = sig.entry
    if entry is not None:
        logged = parse_time(entry["time"])  # checked by shape.timestamp when the ledger was read
        if abs(logged - sig.record.signed_at) > LEDGER_SKEW:
            v.fail("path", "time.ledger-mismatch", f"the record says it was signed at {sig.record.data['signed_at']} "
                   f"but the ledger entered it at {entry['time']}: the signing time was set back or forward",
                   sig.files.name)
        for cert in sig.path[:-1]:
            if logged > cert.not_valid_after_utc + LEDGER_SKEW:
                v.fail("path", "validity.expired-by-ledger", f"the ledger entered this signature on "
                       f"{entry['time']}, after the certificate '{cn(cert)}' expired "
                       f"({cert.not_valid_after_utc:%Y-%m-%d}), whatever time the record claims", sig.files.name)


# ----------------------------------------------------------------------------- 9. revocation

def step_revocation(v: Verdict, ctx: Context, sig: Signature) -> None:
    assert sig.record is not None and sig.path is not None
    name = sig.files.name
    crls = ctx.trust.crls
    if crls is None:
        from agreements_kit.verification.evidence import judge_embedded_revocation  # the CRLs in force at signing

        if ctx.trust.crl_problem is None and sig.files.p7s is not None and judge_embedded_revocation(v, ctx, sig):
            return
        v.fail("revocation", ctx.trust.crl_problem_code or "revocation.missing-crl",
               "no usable CRL set (crl.pem) was found beside the trust root or the "
               "archive: revocation cannot be checked" + (f" ({ctx.trust.crl_problem})" if ctx.trust.crl_problem
                                                          else ""), name)
        return
    # The CRL set against the ledger is the same question for every signature: answered once per verifier.
    if "crl-set" not in ctx.memo:
        ctx.memo["crl-set"] = _crl_set_problems(ctx, crls)
    problems: list[tuple[str, str]] = ctx.memo["crl-set"]
    for code, sentence in problems:
        v.fail("revocation", code, sentence, name)
    ok = not problems
    for cert, issuer in zip(sig.path, sig.path[1:], strict=False):
        crl, key = _crl_for(ctx, crls, issuer)
        if crl is not None and key not in ctx.crl_verified:
            try:
                ctx.crl_verified[key] = crl.is_signature_valid(issuer.public_key())  # type: ignore[arg-type]
            except (TypeError, ValueError):
                ctx.crl_verified[key] = False
        if crl is None or not ctx.crl_verified.get(key):
            v.fail("revocation", "revocation.missing-crl", f"no valid CRL from '{cn(issuer)}' to check '{cn(cert)}' "
                   "against", name)
            return
        revoked = crl.get_revoked_certificate_by_serial_number(cert.serial_number)
        if revoked is not None and revoked.revocation_date_utc <= sig.when:
            v.fail("revocation", "revocation.revoked", f"the certificate of {cn(cert)} was revoked on "
                   f"{revoked.revocation_date_utc:%Y-%m-%d %H:%M} UTC, before this signature"
                   + (" by the TSA's time" if sig.time else ""), name)
            ok = False
        elif revoked is not None:
            v.notes.append(f"{name}: the certificate of {cn(cert)} was revoked later, on "
                           f"{revoked.revocation_date_utc:%Y-%m-%d}")
        if ctx.ledger is not None and sig.entry is not None:
            at = ctx.ledger.revoked_at(_fp(cert))
            if at is not None and at[0] < sig.entry["seq"]:
                v.fail("revocation", "revocation.revoked-by-ledger", f"the certificate of {cn(cert)} was revoked "
                       f"(ledger entry {at[0]}, {at[1]}) before this signature was entered (entry "
                       f"{sig.entry['seq']}), whatever time the record claims", name)
                ok = False
    if ok:
        v.add("revocation", True, f"no certificate of the path was revoked before the signature (CRL set: "
              f"{crls.describe()})", name)


def _crl_for(ctx: Context, crls: CrlSet, issuer: x509.Certificate) -> tuple[x509.CertificateRevocationList | None,
                                                                            bytes]:
    """The set's CRL from ``issuer`` and the issuer's DER: the same answer for every signature under one CA."""
    memo: dict[x509.Certificate, tuple[CrlSet, x509.CertificateRevocationList | None, bytes]] = \
        ctx.memo.setdefault("crl-for", {})
    hit = memo.get(issuer)
    if hit is None or hit[0] is not crls:
        if len(memo) >= 64:
            memo.clear()
        hit = memo[issuer] = (crls, crls.for_issuer(issuer.subject), issuer.public_bytes(serialization.Encoding.DER))
    return hit[1], hit[2]


def _crl_set_problems(ctx: Context, crls: CrlSet) -> list[tuple[str, str]]:
    if ctx.ledger is None or ctx.ledger.report.missing:
        return []
    return ctx.ledger.crl_problems(crls)  # issuer by issuer: rollback, unlogged, substituted


# ----------------------------------------------------------------------------- 10. role

def step_role(v: Verdict, ctx: Context, sig: Signature) -> None:
    assert sig.record is not None and sig.path is not None and ctx.manifest is not None
    rec, leaf, name = sig.record, sig.path[0], sig.files.name
    uris = _uris(leaf)
    problem = None
    if rec.client_side:
        if len(sig.path) != 3 or ou(sig.path[1]) != OU_INTAKE:
            problem = ("role.not-intake", "was not made with a one-time certificate from the practice's intake CA")
        elif ou(leaf) not in ((rec.kind,) if rec.version >= 2 else ("client",)):
            problem = ("role.wrong-certificate", f"was made with a {ou(leaf) or 'unknown'} certificate, not a "
                       f"{rec.kind}'s")
        elif rec.version >= 2 and uris != [agreement_uri(rec.agreement_id, rec.kind)]:
            problem = ("role.wrong-agreement", "was made with a one-time certificate issued for another agreement "
                       "or role")
        elif cn(leaf) != name_text(nfc(rec.name)):
            problem = ("role.wrong-name", "names a signer other than the one its certificate was issued to")
        elif rec.kind == "client" and nfc(rec.name) != nfc(ctx.manifest.client_name):
            problem = ("role.not-the-client", "is signed in the name of someone other than the agreement's client")
        elif rec.kind == "guardian":
            guardian = ctx.manifest.guardian
            if guardian is None:
                problem = ("role.guardian-unnamed", "is a guardian's signature, but the agreement names no guardian: "
                           "anyone could have signed as one")
            elif nfc(rec.name) != nfc(guardian["name"]) or rec.signer.get("relation") != guardian["relation"]:
                problem = ("role.guardian-mismatch", "is signed by someone other than the guardian the agreement "
                           "names (name or relation differ)")
            elif nfc(str(rec.signer.get("on_behalf_of"))) != nfc(ctx.manifest.client_name):
                problem = ("role.guardian-mismatch", "is a guardian's signature for someone other than the "
                           "agreement's client")
    elif rec.kind in ("therapist", "void"):
        if ou(leaf) == "client" or ou(leaf) == "guardian":
            problem = ("role.void-by-client" if rec.is_void else "role.wrong-certificate",
                       f"was made with a {ou(leaf)}'s one-time certificate: only a therapist or the practice "
                       "administrator can sign this")
        elif not (len(sig.path) == 2 or (len(sig.path) == 3 and ou(sig.path[1]) == OU_CLINICIANS)) or \
                ou(leaf) not in EXPECTED_CERT_ROLE[rec.kind]:
            # The clinician CA issues therapists' certificates; practices made before it had them issued by
            # the root directly, and those paths (leaf, root) stay valid.
            problem = ("role.wrong-certificate", "was not made with a therapist's certificate issued by the "
                       "practice's clinician CA (or, before the practice had one, by its root)")
        elif rec.role != ou(leaf):
            problem = ("role.wrong-certificate", f"claims the role {rec.role} but its certificate is a {ou(leaf)}'s")
        elif cn(leaf) != rec.name:
            problem = ("role.wrong-name", "names a therapist other than the one its certificate was issued to")
    what = "void" if rec.is_void else f"{rec.kind}'s signature"
    if problem:
        v.fail("role", problem[0], f"the {what} {problem[1]}", name)
    else:
        v.add("role", True, f"the certificate fits the {what}", name)


def _uris(cert: x509.Certificate) -> list[str]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return [str(u) for u in san.get_values_for_type(x509.UniformResourceIdentifier)]


# ----------------------------------------------------------------------------- 11. order

def step_order(v: Verdict, ctx: Context) -> tuple[list[str], list[str], list[str]]:
    """Signers each once and in order; returns (client-side, therapist, void) record names."""
    assert ctx.manifest is not None
    recs = [s.record for s in ctx.signatures if s.record is not None]
    client = [r.file_name for r in recs if r.client_side]
    therapist = [r.file_name for r in recs if r.kind == "therapist"]
    voids = [r.file_name for r in recs if r.is_void]
    if len(client) > 1:
        v.fail("order", "order.duplicate-signer", f"the client's side signed more than once ({', '.join(client)})")
    if len(therapist) > 1:
        v.fail("order", "order.duplicate-signer", f"the therapist signed more than once ({', '.join(therapist)})")
    if len(voids) > 1:
        v.fail("order", "order.duplicate-void", f"the agreement was voided more than once ({', '.join(voids)})")
    if therapist and client and therapist[0] < client[0]:
        v.fail("order", "order.therapist-first", "the therapist's signature comes before the client's")
    if therapist and not client:
        v.fail("order", "order.therapist-first", "the therapist countersigned, but no client signature is there")
    if voids and recs and not recs[-1].is_void:
        v.fail("order", "order.after-void", "a record follows the void: nothing can be signed after a void")
    date = dt.date.fromisoformat(ctx.manifest.date)
    for prev, rec in zip([None, *recs], recs, strict=False):
        when = rec.signed_at
        if when > ctx.now + CLOCK_SKEW:
            v.fail("order", "time.future", f"signed at {when:%Y-%m-%d %H:%M} UTC, which is in the future",
                   rec.file_name)
        elif when.date() < date - dt.timedelta(days=1):
            v.fail("order", "time.before-agreement", f"signed at {when:%Y-%m-%d}, before the agreement's date {date}",
                   rec.file_name)
        elif prev is not None and when < prev.signed_at:
            v.fail("order", "time.out-of-order", f"{rec.file_name} ({rec.kind}) is dated before {prev.file_name} "
                   f"({prev.kind}): signatures are out of order", rec.file_name)
        else:
            v.add("order", True, f"signed at {when:%Y-%m-%d %H:%M:%S} UTC", rec.file_name)
    stamped = [s for s in ctx.signatures if s.record is not None and s.time is not None]
    for prev_sig, sig in zip(stamped, stamped[1:], strict=False):
        assert prev_sig.time is not None and sig.time is not None and sig.record is not None
        if sig.time.time < prev_sig.time.time:
            v.fail("order", "time.tsa-out-of-order", f"{sig.files.name} ({sig.record.kind}) was time-stamped at "
                   f"{sig.time.time:%Y-%m-%d %H:%M:%S} UTC, before {prev_sig.files.name} "
                   f"({prev_sig.time.time:%Y-%m-%d %H:%M:%S} UTC): by the TSA's time the signatures are out of "
                   "order", sig.files.name)
    return client, therapist, voids


# ----------------------------------------------------------------------------- 12. ledger

def attach_entries(ctx: Context) -> None:
    """Give each signature its ledger entry (before the steps that need it)."""
    if ctx.ledger is None or ctx.manifest is None:
        return
    ctx.entries = [e.data for e in ctx.ledger.entries_for(ctx.manifest.agreement_id)]
    by_record = {e["record"]: e for e in ctx.entries if e["event"] in ("sign", "void")}
    for sig in ctx.signatures:
        sig.entry = by_record.get(sig.files.name)


def _staff_account(rec: SigningRecord) -> str | None:
    identity = rec.data.get("identity") or {}
    return identity.get("staff_account") if isinstance(identity, dict) else None


def step_ledger(v: Verdict, ctx: Context) -> set[str]:
    """Compare the agreement's ledger entries with its files; returns the roles the ledger says signed."""
    assert ctx.manifest is not None
    if ctx.ledger is None:
        v.notes.append("the ledger was not checked (--no-ledger)")
        return set()
    report = ctx.ledger.report
    if report.missing:
        for p in report.problems:
            v.fail("ledger", p.code, p.message)
        return set()
    archived = [e for e in ctx.entries if e["event"] == "archive"]
    if not archived:
        v.fail("ledger", "ledger.not-archived", "the ledger has no entry for this agreement entering the archive")
    elif archived[0]["pdf_sha256"] != ctx.pdf_sha256:
        v.fail("ledger", "ledger.wrong-pdf", "the ledger recorded a different PDF when this agreement was archived")
    elif archived[0]["manifest_sha256"] != ctx.manifest_sha256:
        v.fail("ledger", "ledger.wrong-manifest", "the ledger recorded a different manifest.json when this "
               "agreement was archived: manifest.json was edited")
    names = {s.files.name for s in ctx.signatures}
    for sig in ctx.signatures:
        entry, name = sig.entry, sig.files.name
        if entry is None:
            v.fail("ledger", "ledger.unlogged-record", "the ledger has no entry for this record: it was added outside "
                   "agreements-kit", name)
            continue
        actual = {name: _sha(sig.files.raw), name + ".p7s": _sha(sig.files.p7s) if sig.files.p7s else None}
        for copy in (n for n in entry["files"] if COPY_RE.match(n)):  # its signed copy, entered with it
            actual[copy] = _file_sha256(ctx.folder, copy) if copy in ctx.files.copies else None
        mismatched = [n for n, digest in actual.items() if entry["files"].get(n) != digest]
        rec = sig.record
        if mismatched:
            v.fail("ledger", "ledger.files-differ", f"{', '.join(mismatched)} differ(s) from what the ledger "
                   "recorded at signing", name)
        elif rec is not None and (entry["pdf_sha256"] != rec.document_sha256 or entry["certificate_sha256"]
                                  != rec.certificate_sha256 or (entry["event"] == "sign" and entry["role"] != rec.kind)
                                  or (entry["event"] == "void") != rec.is_void
                                  or entry.get("staff_account") != _staff_account(rec)):
            v.fail("ledger", "ledger.entry-differs", f"ledger entry {entry['seq']} does not describe this signature "
                   "(PDF, role, certificate or staff account differ): the ledger was edited", name)
        elif rec is not None and rec.version == 1 and (report.legacy_lines == 0 or (
                report.migrated_at is not None and entry["seq"] > report.migrated_at)):
            v.fail("ledger", "records.legacy-after-migration", "the record is in the legacy format 1 but was entered "
                   "after the archive moved to format 2: no current tool writes it", name)
        elif rec is not None and rec.ledger_head != entry["prev"]:
            v.fail("ledger", "ledger.head-mismatch", "the record's ledger head is not the ledger entry before its "
                   "signature", name)
        else:
            v.add("ledger", True, f"matches ledger entry {entry['seq']}", name)
    entered = {n for e in ctx.entries if e["event"] in ("sign", "void") for n in e["files"]}
    for copy in ctx.files.copies:
        if copy not in entered:
            v.fail("ledger", "ledger.unlogged-file", f"{copy} is a signed copy no ledger entry records: it was put "
                   "in the folder outside agreements-kit", copy)
    for e in ctx.entries:
        if e["event"] in ("sign", "void") and e["record"] not in names:
            if e["event"] == "void":
                v.fail("ledger", "void.undone", f"the ledger records a void ({e['record']}) that is missing from the "
                       "archive: a void cannot be undone")
            else:
                v.fail("ledger", "ledger.record-erased", f"the ledger records {e['record']} ({e['role']}), which is "
                       "missing from the archive: it was deleted")
    if report.ok:
        v.add("ledger", True, f"the ledger's hash chain is intact ({report.entries} entries)")
    return {e["role"] for e in ctx.entries if e["event"] == "sign"}
