"""The signed copy (NN-ROLE.copy.pdf, signing/copy.py) checked against the evidence of record.

The copy is for readers (pdfsig, pyHanko, Acrobat); the detached CMS signatures stay
the evidence. So a copy is good only if it can never say something else than they
do. :func:`check_copy` returns one (code, sentence) per problem found, none when the
copy is good:

- ``copy.prefix``: the copy does not start with the archived PDF's exact bytes (or
  adds nothing to them), or the records signed another PDF;
- ``copy.unreadable``: pyHanko cannot read the copy as a PDF with signatures;
- ``copy.signers``: its PAdES signers are not exactly the certificates of the CMS
  signatures, in the same order (a signature by another key, one missing or added);
- ``copy.signature``: a PAdES signature does not verify (its bytes changed), its
  certificate does not lead to the trusted practice root (checked with pyHanko, trusting
  only that root and the CRL set given, never fetching), or its time-stamp is broken;
- ``copy.modified``: an update that is not the next signature sits between two
  signatures, or an update after a signature changes content (pyHanko's difference
  analysis: after the last signature only validation data, DSS or document time-stamps,
  may follow; after an earlier one only the next signature's form filling).

A folder's copies are optional (archives from before the copy lack them); when there,
:func:`step_copies` checks each one against the records up to it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import io
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from agreements_kit.formats.folder import COPY_RE
from agreements_kit.signing.copy import outside_event_loop
from agreements_kit.verification.trust import Trust

# pyHanko logs what its difference analysis finds; the verdict says it in words. Without this, Python's
# last-resort handler would print those warnings on stderr (an application's own logging still gets them).
logging.getLogger("pyhanko").addHandler(logging.NullHandler())

ROLE_OF = {"client": "the client's", "guardian": "the guardian's", "therapist": "the therapist's"}


@dataclass(frozen=True)
class SignedRecord:
    """What a verified CMS signature establishes, which its copy must repeat."""

    record: str                       # its record's file name, 01-client.json
    role: str                         # client, guardian or therapist
    certificate: x509.Certificate     # the certificate that made the CMS signature
    document_sha256: str              # the PDF the record signed
    when: dt.datetime                 # the time the signature is judged at (its TSA's, else the signer's claim)


def _der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def _asn1(cert: x509.Certificate) -> Any:
    from asn1crypto import x509 as ax509

    return ax509.Certificate.load(_der(cert))


def _contexts(trust: Trust, moment: dt.datetime) -> tuple[Any, Any]:
    """Validation contexts trusting only the practice root (and the TSA roots for time-stamps), offline."""
    from asn1crypto import crl as acrl
    from pyhanko_certvalidator import ValidationContext

    crls = [acrl.CertificateList.load(c.public_bytes(serialization.Encoding.DER))
            for c in (trust.crls.crls if trust.crls is not None else ())]
    signer = ValidationContext(trust_roots=[_asn1(trust.root)], crls=crls, allow_fetching=False, moment=moment,
                               revocation_mode="require" if crls else "soft-fail", retroactive_revinfo=True)
    tsa = None
    if trust.tsa_roots:
        tsa = ValidationContext(trust_roots=[_asn1(c) for c in trust.tsa_roots], allow_fetching=False,
                                revocation_mode="soft-fail")
    return signer, tsa


def _revisions(pdf: bytes) -> int:
    from pyhanko.pdf_utils.reader import PdfFileReader

    revisions: int = PdfFileReader(io.BytesIO(pdf)).xrefs.total_revisions
    return revisions


def signature_count(copy: bytes) -> int:
    """How many signatures a PDF carries (0 when pyHanko cannot read it as a PDF)."""
    from pyhanko.pdf_utils.reader import PdfFileReader

    try:
        return len(PdfFileReader(io.BytesIO(copy)).embedded_signatures)
    except Exception:  # pyHanko raises many kinds on damaged input
        return 0


_NOT_EXTENDING = ("the copy does not start with the archived agreement.pdf byte for byte (cmp -n {size} shows "
                  "where): it is not a signed copy of this agreement")


def _extends(copy: bytes, pdf: bytes) -> bool:
    """Whether ``copy`` (or its first len(pdf) + 1 bytes) is ``pdf`` followed by something."""
    return len(copy) > len(pdf) and copy[:len(pdf)] == pdf


def check_copy(copy: bytes, archived_pdf: bytes, facts: Sequence[SignedRecord], trust: Trust) -> list[tuple[str, str]]:
    """Problems of ``copy`` as the signed copy of ``archived_pdf`` carrying exactly ``facts``' signatures."""
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.sign.diff_analysis import ModificationLevel

    digest = hashlib.sha256(archived_pdf).hexdigest()
    if not _extends(copy, archived_pdf):
        return [("copy.prefix", _NOT_EXTENDING.format(size=len(archived_pdf)))]
    wrong = [f.record for f in facts if f.document_sha256 != digest]
    if wrong:
        return [("copy.prefix", f"{', '.join(wrong)} signed another PDF than the copy's prefix")]
    try:
        base = _revisions(archived_pdf)
        reader = PdfFileReader(io.BytesIO(copy))
        signatures = sorted(reader.embedded_signatures, key=lambda s: s.signed_revision)
        certs = [s.signer_cert.dump() for s in signatures]
    except Exception as exc:  # pyHanko raises many kinds on damaged input
        return [("copy.unreadable", f"the copy cannot be read as a signed PDF ({type(exc).__name__})")]
    expected = [_der(f.certificate) for f in facts]
    if certs != expected:
        return [("copy.signers", _signers_sentence(certs, expected, facts))]
    problems: list[tuple[str, str]] = []
    for index, (sig, fact) in enumerate(zip(signatures, facts, strict=True)):
        who = f"{ROLE_OF.get(fact.role, fact.role)} signature ({sig.field_name})"
        if sig.signed_revision != base + index:
            problems.append(("copy.modified", f"an update that is not a signature comes before {who}"))
            continue
        status = _validate(sig, trust, fact.when)
        if isinstance(status, str):
            problems.append(("copy.signature", f"{who} cannot be checked ({status})"))
            continue
        if not (status.intact and status.valid):
            problems.append(("copy.signature", f"{who} does not verify: the bytes it covers were changed"))
        elif not status.trusted:
            problems.append(("copy.signature", f"{who} does not lead to the trusted practice root at "
                             f"{fact.when:%Y-%m-%d %H:%M:%S} UTC"))
        ts = status.timestamp_validity
        if ts is not None and (not (ts.intact and ts.valid) or (trust.tsa_roots and not ts.trusted)):
            problems.append(("copy.signature", f"the time-stamp of {who} does not verify against the trusted "
                             "TSA roots"))
        last = index == len(signatures) - 1
        allowed = ModificationLevel.LTA_UPDATES if last else ModificationLevel.FORM_FILLING
        level = status.modification_level
        if level is None or level > allowed or status.docmdp_ok is False:
            what = "changes the document's content" if level is None or level > ModificationLevel.FORM_FILLING \
                else "adds or fills form fields"
            problems.append(("copy.modified", f"an update after {who} {what} ({_level(status)}): "
                             "the copy was changed after it was signed"))
    return problems


def _level(status: Any) -> str:
    level = status.modification_level
    diff = status.diff_result
    text = "pyHanko's difference analysis: " + (level.name.lower().replace("_", " ") if level is not None
                                                  else "not determined")
    if diff is not None and not hasattr(diff, "modification_level"):
        text += f"; {str(diff)[:160]}"
    return text


def _signers_sentence(certs: list[bytes], expected: list[bytes], facts: Sequence[SignedRecord]) -> str:
    if len(certs) != len(expected):
        return (f"the copy carries {len(certs)} signature(s) where the records hold {len(expected)}: it does not "
                "repeat exactly the signatures of record")
    first = next(i for i, (a, b) in enumerate(zip(certs, expected, strict=True)) if a != b)
    return (f"signature {first + 1} of the copy is made with another certificate than the CMS signature of "
            f"{facts[first].record}: a different key signed it")


def _validate(sig: Any, trust: Trust, moment: dt.datetime) -> Any:
    """pyHanko's status of one embedded signature, or a sentence saying why it could not be had."""
    from pyhanko.sign.validation import async_validate_pdf_signature

    signer, tsa = _contexts(trust, moment)
    try:
        return outside_event_loop(lambda: asyncio.run(async_validate_pdf_signature(
            sig, signer_validation_context=signer, ts_validation_context=tsa)))
    except Exception as exc:  # pyHanko raises many kinds on damaged input
        return f"{type(exc).__name__}: {str(exc)[:160]}"


# ----------------------------------------------------------------------------- the records' side


def facts_for(signatures: Sequence[Any], upto: int | None = None) -> list[SignedRecord]:
    """The SignedRecords of the verifier's signatures (steps.Signature) that checked out, signing records
    only (a void signs no copy), up to record number ``upto``."""
    out = []
    for sig in signatures:
        rec, facts = sig.record, sig.facts
        if rec is None or facts is None or rec.is_void or (upto is not None and rec.sequence > upto):
            continue
        out.append(SignedRecord(sig.files.name, rec.role, facts.signer, rec.document_sha256, sig.when))
    return out


def step_copies(v: Any, ctx: Any, deep: bool = True) -> None:
    """Check each signed copy in the folder (verification step 'copy'), against the records up to it.

    ``v`` is the steps.Verdict, ``ctx`` the steps.Context of the folder's verification; a
    folder without copies (older archives) passes without a check. Not ``deep`` (audit):
    only that each copy starts with the archived PDF byte for byte (its bytes are held to
    its ledger entry in step 12); pyHanko's reading of its signatures, ~0.1 s a copy, is
    left to ``verify``."""
    from agreements_kit.errors import InvalidFormat
    from agreements_kit.formats.folder import limit_for, open_regular, read_file

    names = sorted(getattr(ctx.files, "copies", ()))
    if not names or ctx.files.pdf is None:
        return
    pdf = ctx.files.pdf
    if pdf == b"":  # the folder reader did not read the PDF (a PDF given on the command line instead)
        return
    for name in names:
        m = COPY_RE.match(name)
        assert m is not None
        sequence, role = int(m.group(1)), m.group(2)
        record = next((s for s in ctx.signatures if s.files.sequence == sequence), None)
        if record is None or record.record is None or record.record.kind != role:
            v.fail("copy", "copy.orphan", f"{name} belongs to no signing record of this agreement", name)
            continue
        if not deep:
            try:
                with open_regular(os.path.join(ctx.folder, name), name) as fh:
                    head = fh.read(len(pdf) + 1)
            except InvalidFormat as exc:
                v.fail("copy", exc.code, f"{name} {exc.message}", name)
                continue
            if not _extends(head, pdf):
                v.fail("copy", "copy.prefix", _NOT_EXTENDING.format(size=len(pdf)), name)
            else:
                v.add("copy", True, "starts with the archived PDF byte for byte (its signatures: agreements verify "
                      "COPY)", name, "copy.prefix-ok")
            continue
        unchecked = [s.files.name for s in ctx.signatures if s.files.sequence <= sequence and s.record is not None
                     and not s.record.is_void and s.facts is None]
        if unchecked:  # the copy repeats signatures that did not verify: they fail already, in their own steps
            v.notes.append(f"{name} was not read: {', '.join(unchecked)} did not verify, so there is nothing it "
                           "could be held to")
            continue
        try:
            data = read_file(os.path.join(ctx.folder, name), limit_for(name), name)
        except InvalidFormat as exc:
            v.fail("copy", exc.code, f"{name} {exc.message}", name)
            continue
        facts = facts_for(ctx.signatures, sequence)
        problems = check_copy(data, pdf, facts, ctx.trust)
        for code, sentence in problems:
            v.fail("copy", code, sentence, name)
        if not problems:
            v.add("copy", True, f"the archived PDF plus {len(facts)} PAdES signature(s) by the records' own "
                  "certificates, unchanged since", name, "copy.ok")


# ----------------------------------------------------------------------------- a copy given to verify


def record_facts(folder: str, verdict: Any = None) -> list[SignedRecord]:
    """The SignedRecords of a folder's signing records whose CMS signature covers them, read afresh.

    Each is judged at the time the folder's ``verdict`` found for it (its TSA's), else at the
    signer's claim; whether the signature is otherwise good is the verdict's business."""
    from agreements_kit.errors import InvalidFormat
    from agreements_kit.formats.folder import read_folder
    from agreements_kit.formats.record import parse_record
    from agreements_kit.formats.shape import parse_time
    from agreements_kit.verification.cms import CertCache, CmsProblem, check_signature

    times = {s["record"]: s.get("timestamped_at") for s in (verdict.signers if verdict is not None else ())}
    cache = CertCache()
    out = []
    for rf in read_folder(folder, read_pdf=False).records:
        if rf.p7s is None:
            continue
        try:
            rec = parse_record(rf.raw, rf.name)
            facts = check_signature(rf.raw, rf.p7s, cache)
        except (InvalidFormat, CmsProblem):
            continue
        if rec.is_void:
            continue
        stamped = times.get(rf.name)
        when = parse_time(stamped) if stamped else rec.signed_at
        out.append(SignedRecord(rf.name, rec.role, facts.signer, rec.document_sha256, when))
    return out


def given_copy(path: Any, folder: Any) -> bytes | None:
    """The bytes of the PDF ``path`` when it is a signed copy (other bytes than the archived PDF, and
    signatures in it), else None: then it is checked as the PDF itself."""
    from agreements_kit.errors import CannotCheck, InvalidFormat
    from agreements_kit.formats.folder import limit_for, read_file

    try:
        data = read_file(str(path), limit_for("01-client.copy.pdf"), os.path.basename(str(path)))
        archived = read_file(os.path.join(str(folder), "agreement.pdf"), limit_for("agreement.pdf"), "agreement.pdf")
    except FileNotFoundError:
        return None
    except InvalidFormat as exc:
        raise CannotCheck(f"{path}: {exc.message}") from None
    if data == archived or signature_count(data) == 0:
        return None
    return data


def check_given_copy(v: Any, folder: Any, copy: bytes, name: str, trust: Trust) -> None:
    """Add the checks of a signed copy given to ``agreements verify`` to the folder's verdict ``v``.

    A copy made before the agreement was complete (the client's, before countersigning)
    carries the first signatures only; it is checked against those, and a note says so."""
    from agreements_kit.formats.folder import limit_for, read_file

    archived = read_file(os.path.join(str(folder), "agreement.pdf"), limit_for("agreement.pdf"), "agreement.pdf")
    facts = record_facts(str(folder), v)
    count = signature_count(copy)
    used = facts[:count] if 0 < count < len(facts) else facts
    problems = check_copy(copy, archived, used, trust)
    for code, sentence in problems:
        v.fail("copy", code, sentence, name)
    if problems:
        v.status = "invalid"
        return
    v.add("copy", True, f"the archived PDF plus {len(used)} PAdES signature(s) by the records' own certificates, "
          "unchanged since", name, "copy.ok")
    v.notes.append(f"signed copy {name}: its prefix is the archived agreement.pdf; it carries the signature(s) of "
                   + ", ".join(f.record for f in used) + ", each intact, by the same certificate, with no change after")
    if len(used) < len(facts):
        v.notes.append(f"signed copy {name} was made before {', '.join(f.record for f in facts[len(used):])}: "
                       "the folder's latest NN-ROLE.copy.pdf carries every signature")
