"""Long-term evidence: the CRLs embedded at signing (step 9's fallback) and archive time-stamps (step 13).

**Embedded CRLs.** Each signature carries the CRL set in force when it was made
(``signing/evidence.py``). When the auditor has no CRL set (no ``crl.pem``),
:func:`judge_embedded_revocation` judges revocation by that set instead: each CRL
verified against its issuer on the path, each certificate checked against it at the
signature's time. With a ledger, the ledger's checks still apply: the embedded set
must be one the practice published (``revocation.unlogged``, ``revocation.substituted``),
not older than the set in force when the signature was entered (``revocation.rollback``),
and a certificate the ledger shows revoked before the signature is refused
(``revocation.revoked-by-ledger``). A certificate the ledger shows revoked only by a
later set needs that set, which alone says from when (``revocation.missing-crl``).

**Renewals** (``renewal-NN.json`` + ``.tsr``, :mod:`agreements_kit.formats.renewal`),
step 13, ``evidence``:

- ``evidence.renewal-mismatch``: a renewal does not list exactly the files that were
  in the folder before it (earlier renewals included) with their SHA-256 today: a file
  changed, vanished or was slipped in after it; or the ledger recorded other bytes;
- ``evidence.renewal-token``: its token is missing, unreadable, not over the JSON's
  SHA-256, or not from a trusted TSA (``TokenChecker``, as for signatures);
- ``evidence.renewal-order``: renewals out of order: each must be later by TSA time than
  the one before and than every signature token it covers;
- ``evidence.renewal-time``: its ``created`` is not within the tolerance of its TSA time;
- ``evidence.renewal-erased``: the ledger records a renewal that is gone (or numbers skip);
- ``evidence.renewal-unlogged``: a renewal the ledger does not record;
- ``evidence.renewal-due`` (a note, never a failure): the newest time-stamp protecting
  the folder is by a TSA certificate that expires within a year, or uses an algorithm
  the ageing policy (``formats.renewal.GOOD_UNTIL``) lists as ageing.
"""

from __future__ import annotations

import hashlib
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from agreements_kit.errors import InvalidFormat
from agreements_kit.formats.certprofile import common_name as cn
from agreements_kit.formats.certprofile import fingerprint as _fp
from agreements_kit.formats.crlset import CrlSet, parse_crl_set
from agreements_kit.formats.renewal import NAME_RE, Renewal, parse_renewal, record_name, renewal_due, token_name
from agreements_kit.verification.steps import Context, Signature, Verdict
from agreements_kit.verification.timestamps import TIME_TOLERANCE, TokenChecker, TokenProblem, TrustedTime

EMBEDDED_NOTE = "revocation judged from the CRLs embedded at signing"
NEVER_LISTED = ("completion.pdf",)  # derived, and written after the signatures (possibly after a renewal)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ----------------------------------------------------------------------------- embedded CRLs (step 9)


def embedded_crls(p7s: bytes) -> CrlSet | None:
    """The CRL set a signature carries (SignedData ``crls``), checked by crl.pem's rules; None if it has none."""
    from asn1crypto import cms, core

    try:
        field = cms.ContentInfo.load(p7s)["content"]["crls"]
        if isinstance(field, core.Void) or not len(field):
            return None
        ders = [choice.chosen.dump() for choice in field if choice.name == "crl"]
    except Exception:
        raise InvalidFormat("the CRLs inside the signature cannot be read", code="format.bad-crl") from None
    if not ders:
        return None
    pem = b"".join(x509.load_der_x509_crl(d).public_bytes(serialization.Encoding.PEM) for d in ders)
    return parse_crl_set(pem, "the CRLs embedded in the signature")


def judge_embedded_revocation(v: Verdict, ctx: Context, sig: Signature) -> bool:
    """Step 9 by the CRLs embedded at signing; False when the signature carries none (the caller refuses)."""
    assert sig.record is not None and sig.path is not None and sig.files.p7s is not None
    name = sig.files.name
    try:
        crls = embedded_crls(sig.files.p7s)
    except InvalidFormat as exc:
        v.fail("revocation", exc.code, f"{exc.message}: revocation cannot be checked", name)
        return True
    if crls is None:
        return False
    if EMBEDDED_NOTE not in v.notes:
        v.notes.append(EMBEDDED_NOTE)
    problems = _against_ledger(ctx, sig, crls)
    verified: dict[tuple[bytes, bytes], bool] = ctx.memo.setdefault("embedded-crl-verified", {})
    for cert, issuer in zip(sig.path, sig.path[1:], strict=False):
        crl = crls.for_issuer(issuer.subject)
        if crl is None:
            problems.append(("revocation.missing-crl", f"the CRLs embedded at signing hold none from '{cn(issuer)}' "
                             f"to check '{cn(cert)}' against"))
            continue
        key = (issuer.public_bytes(serialization.Encoding.DER), crl.public_bytes(serialization.Encoding.DER))
        if key not in verified:
            try:
                verified[key] = crl.is_signature_valid(issuer.public_key())  # type: ignore[arg-type]
            except (TypeError, ValueError):
                verified[key] = False
        if not verified[key]:
            problems.append(("revocation.missing-crl", f"the CRL from '{cn(issuer)}' embedded at signing is not "
                             "signed by it: it was forged or damaged"))
            continue
        revoked = crl.get_revoked_certificate_by_serial_number(cert.serial_number)
        if revoked is not None and revoked.revocation_date_utc <= sig.when:
            problems.append(("revocation.revoked", f"the certificate of {cn(cert)} was revoked on "
                             f"{revoked.revocation_date_utc:%Y-%m-%d %H:%M} UTC, before this signature"))
        elif ctx.ledger is not None and sig.entry is not None and not ctx.ledger.report.missing:
            at = ctx.ledger.revoked_at(_fp(cert))
            if at is not None and at[0] < sig.entry["seq"]:
                problems.append(("revocation.revoked-by-ledger", f"the certificate of {cn(cert)} was revoked "
                                 f"(ledger entry {at[0]}, {at[1]}) before this signature was entered (entry "
                                 f"{sig.entry['seq']}), whatever time the record claims"))
            elif at is not None and revoked is None:
                problems.append(("revocation.missing-crl", f"the ledger records that the certificate of {cn(cert)} "
                                 f"was revoked later (entry {at[0]}); only that CRL set says from when, and it is "
                                 "not available (crl.pem): give it to judge this signature"))
    for code, sentence in problems:
        v.fail("revocation", code, sentence, name)
    if not problems:
        v.add("revocation", True, f"no certificate of the path was revoked before the signature ({EMBEDDED_NOTE}, "
              f"CRL set {crls.number})", name)
    return True


def _against_ledger(ctx: Context, sig: Signature, crls: CrlSet) -> list[tuple[str, str]]:
    """The embedded set must be one the ledger recorded, and the one in force when the signature was entered."""
    if ctx.ledger is None or ctx.ledger.report.missing:
        return []
    # Issuer by issuer (each CA numbers its own CRL): recorded, the same bytes, and not older than the CRL
    # of that issuer in force when the signature was entered.
    if sig.entry is None:
        return ctx.ledger.crl_problems(crls, what=" embedded in the signature", rollback=False)
    return ctx.ledger.crl_problems(crls, before_seq=sig.entry["seq"], what=" embedded in the signature")


# ----------------------------------------------------------------------------- renewals (step 13)


def step_evidence(v: Verdict, ctx: Context) -> None:
    """Check every renewal of the folder, then say whether a new one is due (a note)."""
    before = len(v.failures)
    _ledger_renewals(v, ctx)
    numbers = sorted({int(m.group(1)) for n in ctx.files.renewals if (m := NAME_RE.match(n))})
    for expected, number in enumerate(numbers, start=1):
        if number != expected:
            v.fail("evidence", "evidence.renewal-erased", f"{record_name(expected)} is missing before "
                   f"{record_name(number)}: a renewal was deleted", record_name(expected))
            break
    parsed: list[Renewal] = []
    stamped: list[TrustedTime] = []  # the verified tokens, in order
    for number in numbers:
        renewal, trusted = _one(v, ctx, number, stamped[-1] if stamped else None, parsed)
        if renewal is not None:
            parsed.append(renewal)
        if trusted is not None:
            stamped.append(trusted)
    if len(v.failures) == before:
        what = (f"{len(parsed)} archive time-stamp(s) cover the folder, each over what was there before it"
                if parsed else "no archive time-stamp (renewal) yet")
        v.add("evidence", True, what, code="evidence.ok")
    _due(v, ctx, stamped)


def _one(v: Verdict, ctx: Context, number: int, previous: TrustedTime | None,
         earlier: list[Renewal]) -> tuple[Renewal | None, TrustedTime | None]:
    """Check one renewal; returns it parsed (or None) and what its verified token proves (or None)."""
    name, tsr_name = record_name(number), token_name(number)
    raw, tsr = ctx.files.renewals.get(name), ctx.files.renewals.get(tsr_name)
    if raw is None:
        v.fail("evidence", "evidence.renewal-erased", f"{tsr_name} has no {name} beside it: the renewal record "
               "was deleted", tsr_name)
        return None, None
    try:
        renewal = parse_renewal(raw, name)
    except InvalidFormat as exc:
        v.fail("evidence", exc.code, f"{name} is not a valid renewal record: {exc.message}", name)
        return None, None
    trusted = _token(v, ctx, renewal, tsr)
    ok = True
    if renewal.sequence != number or (ctx.manifest is not None and renewal.agreement_id != ctx.manifest.agreement_id):
        v.fail("evidence", "evidence.renewal-mismatch", f"{name} is renewal {renewal.sequence} of "
               f"'{renewal.agreement_id}': it was moved here or renamed", name)
        ok = False
    for sentence in _coverage(ctx, renewal, earlier, trusted):
        v.fail("evidence", "evidence.renewal-mismatch", sentence, name)
        ok = False
    if trusted is None:
        return renewal, None
    if abs(trusted.time - renewal.created) > TIME_TOLERANCE + trusted.accuracy:
        v.fail("evidence", "evidence.renewal-time", f"{name} says it was made at {renewal.created:%Y-%m-%dT%H:%M:%SZ}"
               f" but its {trusted.source()} dates it {trusted.time:%Y-%m-%dT%H:%M:%SZ}", name)
        ok = False
    if previous is not None and trusted.time < previous.time:
        v.fail("evidence", "evidence.renewal-order", f"{name} was time-stamped at {trusted.time:%Y-%m-%d %H:%M:%S} "
               f"UTC, before the renewal before it ({previous.time:%Y-%m-%d %H:%M:%S} UTC)", name)
        ok = False
    for sig in ctx.signatures:
        if sig.time is not None and f"{sig.files.name}.p7s" in renewal.files and trusted.time < sig.time.time:
            v.fail("evidence", "evidence.renewal-order", f"{name} was time-stamped before the signature it covers "
                   f"({sig.files.name}, {sig.time.time:%Y-%m-%d %H:%M:%S} UTC)", name)
            ok = False
    if ok:
        v.add("evidence", True, f"covers {len(renewal.files)} files; time-stamped {trusted.time:%Y-%m-%d %H:%M:%S} "
              f"UTC by {trusted.source()}", name)
    return renewal, trusted


def _present(ctx: Context) -> dict[str, bytes | None]:
    """The folder's files by name -> bytes (None: present but not read here, the PDF when not read)."""
    f = ctx.files
    out: dict[str, bytes | None] = {}
    if f.manifest is not None:
        out["manifest.json"] = f.manifest
    if f.pdf is not None:
        out["agreement.pdf"] = f.pdf or None
    for rec in f.records:
        out[rec.name] = rec.raw
        if rec.p7s is not None:
            out[f"{rec.name}.p7s"] = rec.p7s
    out.update(f.pngs)
    out.update(f.renewals)
    out.update(dict.fromkeys(f.copies))  # signed copies: present, streamed when a renewal lists them
    if f.has_completion:
        out["completion.pdf"] = None
    return out


def _coverage(ctx: Context, renewal: Renewal, earlier: list[Renewal], trusted: TrustedTime | None) -> list[str]:
    """Sentences for every way ``renewal``'s list differs from what was in the folder before it."""
    out: list[str] = []
    present = _present(ctx)
    listed = renewal.files
    for name in sorted(listed):
        if NAME_RE.match(name) and int(name[8:10]) >= renewal.sequence:
            out.append(f"{renewal.name} lists {name}, which cannot exist before it")
        elif name not in present:
            out.append(f"{name}, covered by {renewal.name}, is missing from the folder: it was deleted")
        else:
            data = present[name]
            actual = _file_sha(ctx, name) if data is None else _sha(data)
            if actual is not None and actual != listed[name]:
                out.append(f"{name} changed after {renewal.name} covered it (its SHA-256 differs)")
    needed = {"agreement.pdf", "manifest.json"}
    for prior in earlier:
        needed |= {prior.name, token_name(prior.sequence)}
    needed |= _ledger_before(ctx, renewal)
    for name in sorted(needed - set(listed)):
        out.append(f"{renewal.name} does not cover {name}, which was in the folder before it")
    for sig in ctx.signatures:
        if sig.time is None or sig.files.name in listed or trusted is None:
            continue
        if sig.time.time < trusted.time:
            out.append(f"{renewal.name} does not cover {sig.files.name}, time-stamped before it")
    return out


def _file_sha(ctx: Context, name: str) -> str | None:
    """SHA-256 of a file the folder reader did not keep (completion.pdf, a PDF not read), streamed."""
    import os

    from agreements_kit.formats.folder import limit_for, open_regular

    try:
        with open_regular(os.path.join(ctx.folder, name), name) as fh:
            h = hashlib.sha256()
            left = limit_for(name)
            while left > 0 and (chunk := fh.read(min(1 << 20, left))):
                h.update(chunk)
                left -= len(chunk)
    except (FileNotFoundError, InvalidFormat):
        return None
    return h.hexdigest()


def _ledger_before(ctx: Context, renewal: Renewal) -> set[str]:
    """Files the ledger committed to this folder before the renewal's own entry (empty without a ledger)."""
    entry = next((e for e in ctx.entries if e["event"] == "renew" and e["record"] == renewal.name), None)
    if entry is None:
        return set()
    names: set[str] = set()
    for e in ctx.entries:
        if e["seq"] >= entry["seq"]:
            break
        if e["event"] == "archive":
            names |= {"agreement.pdf", "manifest.json"}
        elif e["event"] in ("sign", "void", "renew"):
            names |= set(e["files"])
    return names


def _token(v: Verdict, ctx: Context, renewal: Renewal, tsr: bytes | None) -> TrustedTime | None:
    name = renewal.name
    if tsr is None:
        v.fail("evidence", "evidence.renewal-token", f"{name} has no time-stamp token ({token_name(renewal.sequence)} "
               "is missing)", name)
        return None
    checker = ctx.tokens or TokenChecker(ctx.trust.tsa_roots)
    ctx.tokens = checker
    try:
        trusted = checker.check(tsr, renewal.raw)
    except TokenProblem as exc:
        v.fail("evidence", "evidence.renewal-token", f"the time-stamp token of {name} does not prove it: "
               f"{exc.message} [{exc.code}]", name)
        return None
    return trusted


def _ledger_renewals(v: Verdict, ctx: Context) -> None:
    """The ledger's renew entries against the renewal files: erased, replaced, or never entered."""
    if ctx.ledger is None or ctx.ledger.report.missing:
        return
    logged: dict[str, dict[str, Any]] = {e["record"]: e for e in ctx.entries if e["event"] == "renew"}
    for entry in logged.values():
        for name, digest in sorted(entry["files"].items()):
            data = ctx.files.renewals.get(name)
            if data is None:
                v.fail("evidence", "evidence.renewal-erased", f"the ledger records {name} (entry {entry['seq']}), "
                       "which is missing from the folder: a renewal was deleted", name)
            elif _sha(data) != digest:
                v.fail("evidence", "evidence.renewal-mismatch", f"{name} differs from what the ledger recorded "
                       f"(entry {entry['seq']}): it was replaced", name)
    for name in sorted(ctx.files.renewals):
        if name.endswith(".json") and name not in logged:
            v.fail("evidence", "evidence.renewal-unlogged", f"the ledger has no entry for {name}: it was added "
                   "outside agreements-kit", name)


def _due(v: Verdict, ctx: Context, stamped: list[TrustedTime]) -> None:
    """The note that renewal is due, from the newest time-stamp(s) protecting the folder: the latest
    renewal's, else each signature's (a folder with no verified time-stamp has nothing that ages)."""
    newest = stamped[-1:] or [s.time for s in ctx.signatures if s.time is not None]
    known: dict[str, str | None] = ctx.memo.setdefault("renewal-due", {})  # by TSA certificate: one answer
    for t in newest:
        if t.tsa_sha256 not in known:
            known[t.tsa_sha256] = renewal_due(t.tsa, "sha256", ctx.now)
    reasons = [r for t in newest if (r := known[t.tsa_sha256]) is not None]
    if reasons:
        reason = "; ".join(dict.fromkeys(reasons))
        v.add("evidence", True, f"renewal due: {reason} (run 'agreements archive renew')", code="evidence.renewal-due")
        v.notes.append(f"renewal due (evidence.renewal-due): {reason}")


def renewal_is_due(v: Verdict) -> bool:
    return any(c.code == "evidence.renewal-due" for c in v.checks)

