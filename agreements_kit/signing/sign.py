"""Signing: a client at intake, the therapist's countersignature, and voiding.

One function per act, each doing the same steps under the archive lock: find
the agreement (admitting a draft into the archive on its first signature),
check that its PDF still matches its manifest and that this act is allowed now,
write the signing record, sign it (detached CMS), commit record and signature
with a ledger entry, and, once the agreement is complete, write its certificate
of completion. The terminal prompts and the web intake both call these
functions: there is one implementation of signing.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509

from agreements_kit.authoring.practice import Practice, Timestamping
from agreements_kit.errors import SigningError, TimestampError
from agreements_kit.formats import record
from agreements_kit.formats.ids import ID_RE
from agreements_kit.formats.record import INITIALS_RE  # noqa: F401 - one definition; verifiers check records with it
from agreements_kit.formats.text import check_name, check_text, nfc, same_name
from agreements_kit.signing import cms
from agreements_kit.signing.copy import signed_copy
from agreements_kit.signing.evidence import embed_practice_evidence
from agreements_kit.signing.pki import PKI, PKIError, common_name, fingerprint, iso, load_cert, load_key, utcnow
from agreements_kit.store.archive import AgreementFolder, Archive, ArchiveError, _crashpoint, load_folder, sha256_file
from agreements_kit.store.tlog import LogKey

MAX_PNG = 512 * 1024
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@dataclass
class ClientSigning:
    """What a client (or guardian) provides when signing at intake."""

    name: str
    consent: bool
    initials: dict[str, str]
    intent: bool
    identity_method: str
    identity_checked_by: str
    role: str = "client"
    drawn_png: bytes | None = None
    staff_account: str | None = None  # the intake server's staff account that opened the intake, if one did
    language: str | None = None  # the ESIGN disclosure's language the signer was shown and accepted (None: English)


@dataclass
class SignResult:
    folder: AgreementFolder
    record_path: Path
    signature_path: Path
    record: dict[str, Any]
    completion: Path | None = None
    files: list[Path] = field(default_factory=list)
    untimestamped: str | None = None  # why the signature has no time-stamp token (None: it has one)
    checkpoint: bytes | None = None  # the transparency log's signed checkpoint that includes this signature


def find_agreement(practice: Practice, ref: str | Path) -> AgreementFolder:
    """An agreement by id (the archive first, then the drafts) or, failing that, by folder path.

    Ids are looked up in the practice only, so what an id means never depends on the
    current folder (the intake server passes ids)."""
    ref_text = str(ref)
    if ID_RE.match(ref_text):
        for base in (practice.archive, practice.drafts):
            if (base / ref_text).is_dir():
                return load_folder(base / ref_text)
    path = Path(ref)
    if not ID_RE.match(ref_text) and path.is_dir():
        return load_folder(path)
    raise ArchiveError(f"no agreement '{ref_text}' in {practice.archive} or {practice.drafts}")


def _in_archive(archive: Archive, folder: AgreementFolder, now: dt.datetime) -> AgreementFolder:
    """The archived copy of ``folder`` (admitting a draft on its first signature), recovered."""
    if folder.path.resolve().parent != archive.root.resolve():
        if folder.path.name != folder.id:
            raise ArchiveError(f"{folder.path} is named differently from its agreement id '{folder.id}'")
        archived = archive.root / folder.id
        if not archived.exists():
            return archive.admit(folder, iso(now))
        # The draft and the archived copy must be the same document.
        if sha256_file(folder.pdf) != sha256_file(archived / "agreement.pdf"):
            raise ArchiveError(f"the archive already holds a different agreement.pdf for '{folder.id}'")
        folder = load_folder(archived)
    archive.recover(folder.path)
    folder = load_folder(folder.path)
    _finish(folder)
    return folder


def _finish(folder: AgreementFolder) -> Path | None:
    """Write the certificate of completion of a complete agreement that lacks one (after a crash)."""
    from agreements_kit.signing.completion import write_completion

    if folder.complete and not (folder.path / "completion.pdf").exists():
        return write_completion(folder)
    return None


def finish_recovered(archive: Archive, folders: list[Path]) -> None:
    """After the lock's recovery: complete what the interrupted commits left to do."""
    for path in folders:
        folder = load_folder(path)
        _finish(folder)
        archive.settled(folder)


def _check_open(folder: AgreementFolder) -> None:
    if folder.voided:
        raise SigningError(f"agreement {folder.id} was voided; it cannot be signed")


def _documents(folder: AgreementFolder) -> dict[str, Any]:
    return {
        "document": {"file": "agreement.pdf", "sha256": folder.check_pdf()},
        "manifest": {"file": "manifest.json", "sha256": sha256_file(folder.manifest_path)},
    }


def _certificate(cert: x509.Certificate) -> dict[str, Any]:
    return {"sha256": fingerprint(cert), "subject": cert.subject.rfc4514_string(),
            "issuer": cert.issuer.rfc4514_string(), "serial": f"{cert.serial_number:x}"}


def _stamp(signature: bytes, timestamping: Timestamping | None) -> tuple[bytes, str | None]:
    """The signature with a TSA's time-stamp token over its value, or why it has none.

    A TSA failure stops the signature unless the practice allows archiving it
    untimestamped; either way no local clock ever stands in for the TSA's time."""
    if timestamping is None:
        return signature, "the practice configures no TSA (practice.yaml 'timestamping')"
    from agreements_kit.signing.timestamp import Timestamper, timestamp_signature

    try:
        stamped, _token = timestamp_signature(signature, Timestamper(timestamping.urls, timestamping.timeout))
    except TimestampError as exc:
        if timestamping.on_failure != "archive-untimestamped":
            raise TimestampError(f"nothing was signed: {exc.message}", code=exc.code) from None
        return signature, f"no TSA answered ({exc.message})"
    return stamped, None


def _commit(archive: Archive, folder: AgreementFolder, kind: str, body: dict[str, Any], cert: x509.Certificate,
            key, intermediates: list[x509.Certificate], now: dt.datetime, extra: dict[str, bytes] | None = None,
            keep_marker: bool = False, timestamping: Timestamping | None = None) -> SignResult:
    sequence = len(folder.records) + 1
    name = record.record_name(sequence, kind)
    data = dict(body, format=record.FORMAT, format_version=record.FORMAT_VERSION, agreement_id=folder.id,
                sequence=sequence, ledger_head=archive.ledger.head(), certificate=_certificate(cert),
                signed_at=iso(now), **_documents(folder))
    record_bytes = record.encode(data)
    signature, untimestamped = _stamp(cms.sign_detached(record_bytes, cert, key, intermediates), timestamping)
    # Long-term evidence: the whole chain and the CRLs in force travel in the signature (unsigned parts).
    signature = embed_practice_evidence(signature, archive.root.parent / "pki")
    files = {name: record_bytes, f"{name}.p7s": signature, **(extra or {})}
    archive.commit(folder, name, files, {
        "event": "void" if kind == "void" else "sign", "agreement_id": folder.id, "time": iso(now),
        "role": data.get("signer", {}).get("role"), "certificate_sha256": fingerprint(cert),
        "pdf_sha256": data["document"]["sha256"],
        **({"staff_account": staff} if (staff := data.get("identity", {}).get("staff_account")) else {}),
    }, keep_marker=keep_marker)
    folder = load_folder(folder.path)
    return SignResult(folder, folder.path / name, folder.path / f"{name}.p7s", data,
                      files=[folder.path / n for n in files], untimestamped=untimestamped)


def check_intake_role(folder: AgreementFolder, role: str) -> None:
    """Whether an intake for ``role`` can lead to a signature: a guardian only where the agreement names one."""
    if role == "guardian" and not folder.manifest["agreement"].get("guardian"):
        raise SigningError(f"agreement {folder.id} names no guardian: render it with --guardian NAME --relation "
                           "RELATION before a guardian can sign it")


def check_client_request(folder: AgreementFolder, s: ClientSigning) -> dict[str, str]:
    if s.role not in record.CLIENT_ROLES:
        raise SigningError(f"role must be one of {', '.join(record.CLIENT_ROLES)}")
    if not s.consent:
        raise SigningError("no consent given: the signer must accept the ESIGN disclosure and agree to "
                           "electronic records before signing")
    problem = check_name(s.name)
    if problem:
        raise SigningError(f"typed {problem}")
    if s.role == "client" and not same_name(s.name, folder.client_name):
        raise SigningError("the typed name does not match the client's name on the agreement",
                           code="usage.signing-name")
    if s.role == "guardian":
        guardian = folder.manifest["agreement"].get("guardian")
        if not guardian:
            raise SigningError("this agreement names no guardian: render it with --guardian NAME --relation "
                               "RELATION, so the guardian is part of the document they sign")
        if not same_name(s.name, guardian["name"]):
            raise SigningError("the typed name does not match the guardian named on the agreement",
                               code="usage.signing-name")
    needed = [c["id"] for c in folder.manifest["clauses"] if c.get("initials")]
    initials = {}
    for cid in needed:
        value = (s.initials.get(cid) or "").strip().replace(".", "")
        if not value:
            raise SigningError(f"initials missing for clause {cid}, which the signer must initial")
        if not INITIALS_RE.match(value):
            raise SigningError(f"initials for clause {cid} must be 1 to 5 letters")
        initials[cid] = value
    unknown = set(s.initials) - set(needed)
    if unknown:
        raise SigningError(f"initials given for clause {sorted(unknown)[0]}, which takes none in this agreement")
    if not s.intent:
        raise SigningError("the signer did not adopt the intent statement; nothing was signed")
    for label, value in (("identity check method", s.identity_method), ("identity checked by", s.identity_checked_by)):
        if not value or not value.strip():
            raise SigningError(f"{label} is required: say how and by whom the signer's identity was checked")
        problem = check_text(value, 200)
        if problem:
            raise SigningError(f"{label} {problem}")
    if s.staff_account is not None and not record.STAFF_ACCOUNT_RE.match(s.staff_account):
        raise SigningError("the staff account that opened the intake has a malformed name")
    if s.drawn_png is not None:
        if len(s.drawn_png) > MAX_PNG:
            raise SigningError(f"drawn signature is larger than {MAX_PNG // 1024} KiB")
        if not s.drawn_png.startswith(PNG_MAGIC):
            raise SigningError("drawn signature is not a PNG image")
    return initials


def _anchor(archive: Archive, result: SignResult, log_key: LogKey | None) -> SignResult:
    """Sign a new checkpoint of the transparency log over the ledger, now holding this signature."""
    if log_key is not None:
        from agreements_kit.store import tlog

        result.checkpoint = tlog.sign_checkpoint(archive.root, log_key)[1]
    return result


def sign_client(practice: Practice, ref: str | Path, s: ClientSigning, ca_passphrase: bytes,
                now: dt.datetime | None = None, log_key: LogKey | None = None) -> SignResult:
    """Sign as the client (or guardian) with a one-time certificate from the intake CA
    (``ca_passphrase`` is the intake CA's own passphrase)."""
    now = now or utcnow()
    pki = PKI(practice.root / "pki")
    intake_key = load_key(pki.intake_key, ca_passphrase, "intake CA")
    archive = Archive(practice.archive)
    draft = find_agreement(practice, ref)
    initials = check_client_request(draft, s)
    # The words the signer was shown and accepted, both found before anything is written: a language
    # without them stops here, not after the agreement was admitted and a certificate issued.
    disclosure = record.load_disclosure(language=s.language)
    intent = record.intent_statement(s.language)
    with archive.locked() as recovered:
        finish_recovered(archive, recovered)
        folder = _in_archive(archive, draft, now)
        _check_open(folder)
        done = [r for r in folder.signed_roles() if r in record.CLIENT_ROLES]
        if done:
            raise SigningError(f"agreement {folder.id} is already signed on the client's side ({done[0]})")
        name = nfc(s.name)
        cert, key = pki.one_time_client(name, practice.name, intake_key, now, folder.id, s.role)
        intake = pki.intake()
        archive.log(pki.register_fields(cert, s.role, intake, now, agreement_id=folder.id))
        extra: dict[str, bytes] = {}
        png_sha = None
        sequence = len(folder.records) + 1
        if s.drawn_png is not None:
            png_sha = hashlib.sha256(s.drawn_png).hexdigest()
            extra[f"{sequence:02d}-{s.role}.png"] = s.drawn_png
        body = {
            "kind": "signature",
            "signer": {"role": s.role, "name": name,
                       **({"on_behalf_of": folder.client_name,
                           "relation": folder.manifest["agreement"]["guardian"]["relation"]}
                          if s.role == "guardian" else {})},
            "intent": {"statement": intent, "adopted": True},
            "esign": {"disclosure_version": disclosure.version, "disclosure_sha256": disclosure.sha256,
                      "disclosure_accepted": True, "consent_to_electronic_records": True},
            "initials": initials,
            "method": {"typed_name": name, "drawn_signature_png_sha256": png_sha,
                       "drawn_signature_file": next(iter(extra), None)},
            "identity": {"method": s.identity_method.strip(), "checked_by": s.identity_checked_by.strip(),
                         **({"staff_account": s.staff_account} if s.staff_account else {})},
        }
        # The signed copy (PAdES) with the same one-time key, while it exists; committed with the record.
        extra.update(signed_copy(practice, folder, sequence, s.role, name, key, cert, [intake], now))
        return _anchor(archive, _commit(archive, folder, s.role, body, cert, key, [intake], now, extra,
                                        timestamping=practice.timestamping), log_key)


def _therapist_credentials(pki: PKI, tid: str, passphrase: bytes, now: dt.datetime):
    cert = load_cert(pki.therapist_cert(tid), f"therapist '{tid}'")
    issuer = pki.issuer_of(cert)  # the clinician CA (or, for a certificate from before it, the root)
    revoked = pki.revoked()
    if cert.serial_number in revoked:
        raise PKIError(f"the certificate of therapist '{tid}' was revoked on {revoked[cert.serial_number]:%Y-%m-%d}; "
                       f"issue a new one with 'agreements pki issue --therapist {tid}'")
    if cert.not_valid_after_utc <= now:
        raise PKIError(f"the certificate of therapist '{tid}' expired on {cert.not_valid_after_utc:%Y-%m-%d}; "
                       f"issue a new one with 'agreements pki issue --therapist {tid}'")
    if cert.not_valid_before_utc > now:
        raise PKIError(f"the certificate of therapist '{tid}' is not valid before "
                       f"{cert.not_valid_before_utc:%Y-%m-%d %H:%M} UTC")
    key = load_key(pki.therapist_key(tid), passphrase, f"therapist '{tid}'")
    # The clinician CA travels in the signature, so a verifier (OpenSSL too) needs only the root.
    return cert, key, [] if issuer == pki.root() else [issuer]


def sign_therapist(practice: Practice, ref: str | Path, passphrase: bytes, therapist_id: str | None = None,
                   now: dt.datetime | None = None, completion: bool = True,
                   log_key: LogKey | None = None) -> SignResult:
    """Countersign as the therapist, after the client, with the therapist's own key.

    ``completion=False`` skips the certificate of completion (a PDF render): only
    for building large synthetic archives in benchmarks.
    """
    from agreements_kit.signing.completion import write_completion

    now = now or utcnow()
    archive = Archive(practice.archive)
    draft = find_agreement(practice, ref)
    tid = therapist_id or draft.therapist_id
    if tid not in practice.therapists:
        raise SigningError(f"unknown therapist '{tid}' (practice.yaml lists: {', '.join(sorted(practice.therapists))})")
    if not (archive.root / draft.id).is_dir():
        raise SigningError(f"the therapist countersigns only after the client: agreement {draft.id} "
                           "has no client signature yet")
    pki = PKI(practice.root / "pki")
    cert, key, chain = _therapist_credentials(pki, tid, passphrase, now)
    with archive.locked() as recovered:
        finish_recovered(archive, recovered)
        folder = _in_archive(archive, draft, now)
        _check_open(folder)
        roles = folder.signed_roles()
        if "therapist" in roles:
            raise SigningError(f"agreement {folder.id} is already countersigned by the therapist")
        if not any(r in record.CLIENT_ROLES for r in roles):
            raise SigningError(f"the therapist countersigns only after the client: agreement {folder.id} "
                               "has no client signature yet")
        therapist = practice.therapists[tid]
        body = {
            "kind": "signature",
            "signer": {"role": "therapist", "name": therapist.name, "therapist_id": tid},
            "intent": {"statement": record.INTENT, "adopted": True},
            "esign": None,
            "initials": {},
            "method": {"typed_name": therapist.name, "drawn_signature_png_sha256": None,
                       "drawn_signature_file": None},
            "identity": {"method": "the therapist's own certificate key, unlocked with its passphrase",
                         "checked_by": f"{common_name(cert)} (certificate holder)"},
        }
        copies = signed_copy(practice, folder, len(folder.records) + 1, "therapist", therapist.name, key, cert, chain,
                             now)  # extends the client's signed copy, when there is one
        result = _anchor(archive, _commit(archive, folder, "therapist", body, cert, key, chain, now, copies,
                                          keep_marker=True, timestamping=practice.timestamping), log_key)
        _crashpoint("before-completion")
        if completion:
            result.completion = write_completion(result.folder, result.checkpoint)
        archive.settled(result.folder)
    return result


def void(practice: Practice, ref: str | Path, reason: str, passphrase: bytes, therapist_id: str | None = None,
         now: dt.datetime | None = None, log_key: LogKey | None = None) -> SignResult:
    """Close an agreement with a void record signed by a therapist."""
    now = now or utcnow()
    reason = (reason or "").strip()
    if not reason:
        raise SigningError("a reason is required to void an agreement")
    problem = check_text(reason, 500)
    if problem:
        raise SigningError(f"reason {problem}")
    archive = Archive(practice.archive)
    draft = find_agreement(practice, ref)
    tid = therapist_id or draft.therapist_id
    if tid not in practice.therapists:
        raise SigningError(f"unknown therapist '{tid}'")
    cert, key, chain = _therapist_credentials(PKI(practice.root / "pki"), tid, passphrase, now)
    with archive.locked() as recovered:
        finish_recovered(archive, recovered)
        folder = _in_archive(archive, draft, now)
        _check_open(folder)
        body = {
            "kind": "void",
            "signer": {"role": "therapist", "name": practice.therapists[tid].name, "therapist_id": tid},
            "intent": {"statement": record.VOID_INTENT, "adopted": True},
            "reason": reason,
        }
        return _anchor(archive, _commit(archive, folder, "void", body, cert, key, chain, now,
                                        timestamping=practice.timestamping), log_key)
