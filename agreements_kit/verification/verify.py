"""Verification of one agreement: every check by name, failures in plain words.

A verdict is ``valid`` (every check passed and the client and the therapist
signed), ``incomplete`` (nothing wrong, but a signature is still missing),
``voided`` (closed by a signed void record), or ``invalid`` (some check
failed). Checks, each reported by name:

- ``pdf``: the PDF's SHA-256 against the manifest (and the embedded manifest
  against manifest.json);
- ``record-id``, ``record-pdf``, ``record-manifest``: what each record says it
  signed;
- ``signature``: the detached CMS signature over the record's bytes;
- ``certificate``: the record names the certificate that signed it, and for a
  client, the certificate carries the signer's name;
- ``chain``: the certificate leads to the trusted practice root through
  certificate authorities allowed to issue it, and is meant for signing;
- ``role``: the certificate fits the role: a client's (or guardian's) is a
  one-time certificate from the intake CA in the name of the agreement's client;
  a therapist's is issued by the root to that therapist;
- ``validity``: every certificate of the chain was valid at the signing time;
- ``revocation``: no certificate of the chain was revoked before the signature;
- ``time``: signing times not in the future, not before the agreement date, and
  in the order of the records (client before therapist);
- ``signers``: the required signers, each once, records numbered in order;
- ``ledger``: the chain is intact and its entries for this agreement match the
  files (archive entry, one entry per record, the record's ledger head);
- ``pyhanko``: pyHanko's own judgement agrees (the default backend).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from agreements_kit.verification.cmscheck import CertCache, check_fast, check_pyhanko
from agreements_kit.errors import AgreementsError
from agreements_kit.verification.ledgercheck import ChainReport, entries_for
from agreements_kit.formats.record import CLIENT_ROLES
from agreements_kit.verification.trust import Trust
from agreements_kit.formats.pdfattach import embedded_manifest

CLOCK_SKEW = dt.timedelta(minutes=5)


class CannotCheck(AgreementsError):
    """The input cannot be checked at all (exit 2), as opposed to checked and found wanting."""


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    subject: str = ""  # the file the check is about, when there are several (records)

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "ok": self.ok, "subject": self.subject, "detail": self.detail}


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
    def valid(self) -> bool:
        return self.status == "valid"

    def add(self, name: str, ok: bool, detail: str, subject: str = "") -> bool:
        self.checks.append(Check(name, ok, detail, subject))
        return ok

    def headline(self) -> str:
        people = " and ".join(f"{s['name']} ({s['role']}) on {s['signed_at'].replace('T', ' ').replace('Z', ' UTC')}"
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


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _sub(d: dict[str, Any], key: str, field: str) -> Any:
    """``d[key][field]`` when both levels are what they should be, else None (edited records)."""
    inner = d.get(key)
    return inner.get(field) if isinstance(inner, dict) else None


def _time(value: Any) -> dt.datetime | None:
    if not isinstance(value, str):
        return None
    try:
        t = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return t if t.tzinfo else None


@dataclass
class _Record:
    name: str
    raw: bytes
    data: dict[str, Any] | None
    p7s: bytes | None


def _read(path: str) -> bytes:
    """A whole file (plain os paths: an audit reads five files per agreement)."""
    with open(path, "rb") as fh:
        return fh.read()


def _load_records(folder: Path, v: Verdict) -> list[_Record]:
    out = []
    names = set(os.listdir(folder))
    for name in sorted(n for n in names if len(n) > 8 and n[:2].isdigit() and n[2] == "-" and n.endswith(".json")):
        raw = _read(os.path.join(folder, name))
        try:
            data = json.loads(raw)
            if not isinstance(data, dict):
                raise ValueError
        except ValueError:
            v.add("record", False, "the record is not JSON: it was damaged or edited", name)
            data = None
        p7s = _read(os.path.join(folder, f"{name}.p7s")) if f"{name}.p7s" in names else None
        if p7s is None:
            v.add("signature", False, "the signature file (.p7s) of this record is missing", name)
        out.append(_Record(name, raw, data, p7s))
    for sig in sorted(n for n in names if n.endswith(".p7s")):
        if sig[:-4] not in names:
            v.add("signers", False, f"{sig} has no record beside it: a record was deleted", sig)
    return out


def _check_chain(v: Verdict, rec: _Record, signer: x509.Certificate, certs: list[x509.Certificate], trust: Trust,
                 when: dt.datetime, cache: CertCache) -> list[x509.Certificate] | None:
    """Chain to the trusted root through CA certificates, validity at the signing time, revocation before it.

    Returns the chain (signer first, root last) when it leads to the root."""
    _cn = cache.common_name
    chain = [signer]
    current = signer
    for _ in range(4):
        if current == trust.root:
            break
        if current.issuer == trust.root.subject and cache.issued_by(current, trust.root):
            chain.append(trust.root)
            break
        issuer = next((c for c in certs if c.subject == current.issuer and c is not current
                       and cache.issued_by(current, c)), None)
        if issuer is None:
            v.add("chain", False, f"the certificate of {_cn(signer)} does not lead to the trusted root "
                  f"'{_cn(trust.root)}' (its issuer is '{current.issuer.rfc4514_string()}')", rec.name)
            return None
        chain.append(issuer)
        current = issuer
    else:
        v.add("chain", False, "the certificate chain is too long", rec.name)
        return None
    if chain[-1] != trust.root:
        v.add("chain", False, f"the certificate of {_cn(signer)} does not lead to the trusted root", rec.name)
        return None
    # Every issuer must be a CA allowed to sign certificates, within its path length.
    for below, issuer in enumerate(chain[1:]):
        if not cache.can_issue(issuer, below):
            v.add("chain", False, f"'{_cn(issuer)}' issued a certificate in this chain but is not a certificate "
                  "authority allowed to: the chain was forged with an ordinary certificate", rec.name)
            return None
    try:
        usage = signer.extensions.get_extension_for_class(x509.KeyUsage).value
        signs = usage.digital_signature or usage.content_commitment
    except x509.ExtensionNotFound:
        signs = False
    if not signs:
        v.add("chain", False, f"the certificate of {_cn(signer)} is not meant for signatures (key usage)", rec.name)
        return None
    v.add("chain", True, " -> ".join(_cn(c) for c in chain), rec.name)
    bad = [c for c in chain if not (c.not_valid_before_utc <= when <= c.not_valid_after_utc)]
    if bad:
        c = bad[0]
        v.add("validity", False, f"the certificate '{_cn(c)}' was not valid at the signing time {when:%Y-%m-%d %H:%M} "
              f"UTC (valid {c.not_valid_before_utc:%Y-%m-%d} to {c.not_valid_after_utc:%Y-%m-%d})", rec.name)
    else:
        v.add("validity", True, "every certificate was valid at the signing time", rec.name)
    if not trust.crls:
        v.add("revocation", True, "not checked: no CRL was given with the trust root", rec.name)
        v.notes.append("revocation was not checked: no CRL beside the trust root")
        return chain
    for cert, issuer in zip(chain, chain[1:]):
        have, revoked_at = trust.revocation(cert, issuer)
        if not have:
            v.add("revocation", False, f"no valid CRL from '{_cn(issuer)}' to check '{_cn(cert)}' against", rec.name)
            return chain
        if revoked_at is not None and revoked_at <= when:
            v.add("revocation", False, f"the certificate of {_cn(cert)} was revoked on "
                  f"{revoked_at:%Y-%m-%d %H:%M} UTC, before this signature", rec.name)
            return chain
        if revoked_at is not None:
            v.notes.append(f"{rec.name}: the certificate of {_cn(cert)} was revoked later, on {revoked_at:%Y-%m-%d}")
    v.add("revocation", True, "no certificate of the chain was revoked before the signature", rec.name)
    return chain


def _check_role(v: Verdict, rec: _Record, role: str, signer: dict[str, Any], chain: list[x509.Certificate],
                manifest: dict[str, Any], cache: CertCache) -> None:
    """The certificate fits the role: a client's is a one-time certificate from the intake CA in
    the client's own name; a therapist's is issued by the root to that therapist."""
    from agreements_kit.signing.pki import OU_CLIENT, OU_INTAKE, OU_THERAPIST
    from agreements_kit.formats.text import same_name

    leaf = chain[0]
    name = str(signer.get("name", ""))
    agreement = manifest.get("agreement") if isinstance(manifest.get("agreement"), dict) else {}
    client = str(_sub(agreement, "client", "name") or "")
    if role in CLIENT_ROLES:
        if len(chain) != 3 or cache.unit(chain[1]) != OU_INTAKE or cache.unit(leaf) != OU_CLIENT:
            problem = "was not made with a one-time client certificate from the practice's intake CA"
        elif not same_name(cache.common_name(leaf), name[:64]):
            problem = "names a signer other than the one its certificate was issued to"
        elif role == "client" and not same_name(name, client):
            problem = "is signed in the name of someone other than the agreement's client"
        elif role == "guardian" and not same_name(str(signer.get("on_behalf_of", "")), client):
            problem = "is a guardian's signature for someone other than the agreement's client"
        else:
            problem = None
    elif role == "therapist":
        if len(chain) != 2 or cache.unit(leaf) != OU_THERAPIST:
            problem = "was not made with a therapist's certificate issued by the practice root"
        elif not same_name(cache.common_name(leaf), name):
            problem = "names a therapist other than the one its certificate was issued to"
        else:
            problem = None
    else:
        problem = f"has an unknown signer role {role!r}"
    v.add("role", problem is None, f"the {role}'s signature {problem}" if problem
          else f"the certificate fits the {role}'s role", rec.name)


def verify_folder(folder: Path, trust: Trust, **options: Any) -> Verdict:
    """Check one agreement folder (see ``_verify``); damaged files make it invalid, never a crash."""
    try:
        return _verify(Path(folder), trust, **options)
    except CannotCheck:
        raise
    except Exception as exc:  # edited JSON of the wrong shape, unreadable certificates, ...
        v = Verdict(Path(folder).name, str(folder), "invalid")
        v.add("folder", False, f"could not be checked ({type(exc).__name__}): its files are damaged or were edited")
        return v


def _verify(folder: Path, trust: Trust, *, pdf_path: Path | None = None, ledger: Path | None = None,
                  backend: str = "pyhanko", now: dt.datetime | None = None, cache: CertCache | None = None,
                  ledger_facts: tuple[ChainReport | None, list[dict[str, Any]]] | None = None,
                  deep: bool = True) -> Verdict:
    """Check one agreement folder. ``pdf_path`` checks another copy of the PDF against it.

    ``deep`` also compares manifest.json with the copy embedded in the PDF (it parses
    the PDF; audits skip it, since every record already binds both hashes).
    """
    folder = Path(folder)
    now = now or dt.datetime.now(dt.timezone.utc)
    cache = cache or CertCache()
    if id(trust.root) not in cache.der_of:
        cache.keep(trust.root, trust.root_der)
    try:
        manifest_bytes = _read(os.path.join(folder, "manifest.json"))
        manifest = json.loads(manifest_bytes)
        agreement_id = manifest["agreement"]["id"]
    except FileNotFoundError:
        raise CannotCheck(f"{folder} is not an agreement folder (no manifest.json)") from None
    except (ValueError, KeyError, TypeError):
        v = Verdict(folder.name, str(folder), "invalid")
        v.add("manifest", False, "manifest.json is not a valid manifest: it was edited or damaged")
        return v
    v = Verdict(agreement_id, str(folder))
    if agreement_id != folder.name:
        v.add("record-id", False, f"the folder is named '{folder.name}' but its manifest is for '{agreement_id}'")
    pdf_file = pdf_path or folder / "agreement.pdf"
    try:
        pdf = _read(str(pdf_file))
    except FileNotFoundError:
        v.add("pdf", False, f"{pdf_file.name} is missing")
        pdf = b""
    pdf_sha = _sha(pdf)
    expected = _sub(manifest, "document", "sha256")
    if pdf and v.add("pdf", pdf_sha == expected,
                     "the PDF is byte for byte the one rendered (SHA-256 matches the manifest)" if pdf_sha == expected
                     else f"the PDF's SHA-256 {pdf_sha[:16]}... is not the manifest's {str(expected)[:16]}...: "
                          "the PDF was changed, truncated or extended after rendering"):
        from agreements_kit.formats.jsonio import canonical_json

        # Audits skip this: archiving compared the two before anything was signed, and since then
        # every record and the ledger's archive entry bind manifest.json's hash.
        if deep:
            stripped = canonical_json({k: x for k, x in manifest.items() if k != "document"})
            same = embedded_manifest(pdf) == stripped
            v.add("manifest", same, "manifest.json matches the manifest embedded in the PDF" if same
                  else "manifest.json differs from the manifest embedded in the PDF: manifest.json was edited")
    manifest_sha = _sha(manifest_bytes)

    records = _load_records(folder, v)
    times: list[tuple[int, str, dt.datetime, str]] = []
    roles: dict[str, list[str]] = {}
    voided = False
    for index, rec in enumerate(records, start=1):
        d = rec.data
        if d is None:
            continue
        kind = d.get("kind")
        signer = d.get("signer") if isinstance(d.get("signer"), dict) else {}
        role = signer.get("role", "?") if isinstance(signer.get("role", "?"), str) else "?"
        if d.get("agreement_id") != agreement_id:
            v.add("record-id", False, f"the record is for agreement '{d.get('agreement_id')}', not this one: "
                  "it was moved here from another agreement", rec.name)
        else:
            v.add("record-id", True, "the record names this agreement", rec.name)
        doc = _sub(d, "document", "sha256")
        v.add("record-pdf", doc == pdf_sha, "the record signs this PDF" if doc == pdf_sha
              else "the record signs a different PDF (its SHA-256 differs)", rec.name)
        msha = _sub(d, "manifest", "sha256")
        v.add("record-manifest", msha == manifest_sha, "the record signs this manifest" if msha == manifest_sha
              else "the record signs a different manifest.json (its SHA-256 differs)", rec.name)
        expected_name = f"{d.get('sequence', 0):02d}-{'void' if kind == 'void' else role}.json" \
            if isinstance(d.get("sequence"), int) else None
        if d.get("sequence") != index or expected_name != rec.name:
            v.add("signers", False, f"the record is numbered {d.get('sequence')!r} for role {role!r} but stored as "
                  f"record {index} named {rec.name}: records were renamed, removed or duplicated", rec.name)
        when = _time(d.get("signed_at"))
        if when is None:
            v.add("time", False, "the record has no valid signing time", rec.name)
            when = now
        if kind == "void":
            voided = True
        elif kind == "signature":
            roles.setdefault(role, []).append(rec.name)
        times.append((index, role, when, rec.name))
        v.signers.append({"record": rec.name, "kind": kind, "name": signer.get("name"), "role": role,
                          "signed_at": d.get("signed_at"), "identity": d.get("identity"),
                          "certificate_sha256": _sub(d, "certificate", "sha256")})
        if rec.p7s is None:
            continue
        facts = check_fast(rec.raw, rec.p7s, cache)
        if backend == "pyhanko":
            ph = check_pyhanko(rec.raw, rec.p7s, trust, when)
            ph_intact = ph.intact and ph.valid
            intact = ph_intact and facts.intact  # both must accept it
            if ph_intact != facts.intact:
                v.add("pyhanko", False, f"pyHanko and the fast path disagree about this signature ({ph.summary})",
                      rec.name)
            detail = facts.problem or ("pyHanko: " + ph.summary if not intact else "")
        else:
            intact, detail, ph = facts.intact, facts.problem or "", None
        if not v.add("signature", intact, "the CMS signature over the record's bytes is intact" if intact
                     else f"the signature does not cover this record: {detail}", rec.name):
            continue
        signer_cert = facts.signer
        fp = signer_cert.fingerprint(hashes.SHA256()).hex()
        named = _sub(d, "certificate", "sha256")
        ok = named == fp
        if ok and role in CLIENT_ROLES and \
                cache.common_name(signer_cert) != " ".join(str(signer.get("name", "")).split())[:64]:
            ok = False
        v.add("certificate", ok, "the record names the certificate that signed it" if ok
              else "the certificate that signed the record is not the one the record names", rec.name)
        chain = _check_chain(v, rec, signer_cert, facts.certificates, trust, when, cache)
        if chain is not None:
            _check_role(v, rec, role, signer, chain, manifest, cache)
        if ph is not None:
            # pyHanko's verdict on trust must agree with ours (chain, validity, revocation).
            ours = all(c.ok for c in v.checks if c.subject == rec.name and c.name in ("chain", "validity", "revocation"))
            if ph.bottom_line != ours:
                v.add("pyhanko", False, f"pyHanko judges this signature {'valid' if ph.bottom_line else 'not valid'}: "
                      f"{ph.summary}", rec.name)
            else:
                v.add("pyhanko", True, f"pyHanko agrees ({ph.summary})", rec.name)
        if facts.signing_time is not None and abs(facts.signing_time - when) > CLOCK_SKEW:
            v.add("time", False, f"the record's signing time {d.get('signed_at')} differs from the signature's own "
                  f"signing time {facts.signing_time:%Y-%m-%dT%H:%M:%SZ}", rec.name)

    # Times: not in the future, not before the agreement date, in record order.
    try:
        agreement_date = dt.date.fromisoformat(manifest["agreement"]["date"])
    except (KeyError, TypeError, ValueError):
        agreement_date = None
        v.add("manifest", False, "the manifest's agreement date is not a date: manifest.json was edited")
    for index, role, when, name in times:
        if when > now + CLOCK_SKEW:
            v.add("time", False, f"signed at {when:%Y-%m-%d %H:%M} UTC, which is in the future", name)
        elif agreement_date and when.date() < agreement_date - dt.timedelta(days=1):
            v.add("time", False, f"signed at {when:%Y-%m-%d}, before the agreement's date {agreement_date}", name)
        else:
            v.add("time", True, f"signed at {when:%Y-%m-%d %H:%M:%S} UTC", name)
    for (_, r1, t1, n1), (_, r2, t2, n2) in zip(times, times[1:]):
        if t2 < t1:
            v.add("time", False, f"{n2} ({r2}) is dated before {n1} ({r1}): signatures are out of order", n2)
    client_side = [n for r in CLIENT_ROLES for n in roles.get(r, [])]
    therapist = roles.get("therapist", [])
    if len(client_side) > 1:
        v.add("signers", False, f"the client's side signed more than once ({', '.join(client_side)}): a duplicated signer")
    if len(therapist) > 1:
        v.add("signers", False, f"the therapist signed more than once ({', '.join(therapist)}): a duplicated signer")
    if therapist and client_side:
        t_idx = min(i for i, r, _, n in times if n in therapist)
        c_idx = min(i for i, r, _, n in times if n in client_side)
        if t_idx < c_idx:
            v.add("signers", False, "the therapist's signature comes before the client's")

    # Ledger.
    if ledger_facts is None and ledger is not None:
        ledger_facts = entries_for(ledger, agreement_id)
    ledger_signed_roles = _check_ledger(v, folder, records, ledger_facts, pdf_sha, manifest_sha)
    if not therapist and "therapist" in ledger_signed_roles:
        v.add("signers", False, "the ledger records a therapist signature whose record is missing")
    if not client_side and ledger_signed_roles & set(CLIENT_ROLES):
        v.add("signers", False, "the ledger records a client signature whose record is missing")

    if v.failures:
        v.status = "invalid"
    elif voided:
        v.status = "voided"
    elif not client_side or not therapist:
        v.status = "incomplete"
        v.add("signers", True, "missing: " + ", ".join(
            x for x, have in (("client", client_side), ("therapist", therapist)) if not have))
    else:
        v.add("signers", True, "client and therapist each signed once, in order")
    return v


def _check_ledger(v: Verdict, folder: Path, records: list[_Record],
                  facts: tuple[ChainReport | None, list[dict[str, Any]]] | None, pdf_sha: str,
                  manifest_sha: str) -> set[str]:
    """Compare the ledger's entries for this agreement with the files. Returns roles the ledger says signed."""
    if facts is None:
        v.notes.append("the ledger was not checked (no ledger given)")
        return set()
    chain, entries = facts
    if chain is not None:
        if chain.ok:
            v.add("ledger", True, f"the ledger's hash chain is intact ({chain.entries} entries)")
        for problem in chain.problems:
            v.add("ledger", False, problem)
        if chain.missing:
            return set()  # nothing to compare the files with
    archived = [e for e in entries if e.get("event") == "archive"]
    if not archived:
        v.add("ledger", False, "the ledger has no entry for this agreement entering the archive")
    elif archived[0].get("pdf_sha256") != pdf_sha:
        v.add("ledger", False, "the ledger recorded a different PDF when this agreement was archived")
    elif archived[0].get("manifest_sha256") != manifest_sha:
        v.add("ledger", False, "the ledger recorded a different manifest.json when this agreement was archived: "
              "manifest.json was edited")
    by_record = {e["record"]: e for e in entries
                 if e.get("event") in ("sign", "void") and isinstance(e.get("record"), str)}
    for e in entries:
        if e.get("event") in ("sign", "void") and not isinstance(e.get("record"), str):
            v.add("ledger", False, f"ledger line {e.get('_line')} names no record: it was edited")
    signed_roles = {e.get("role") for e in by_record.values() if e.get("event") == "sign"}
    names = {r.name for r in records}
    for rec in records:
        entry = by_record.get(rec.name)
        if entry is None:
            v.add("ledger", False, "the ledger has no entry for this record: it was added outside agreements-kit",
                  rec.name)
            continue
        files = entry.get("files") if isinstance(entry.get("files"), dict) else {}
        actual = {rec.name: _sha(rec.raw), rec.name + ".p7s": _sha(rec.p7s) if rec.p7s is not None else None}
        mismatched = [n for n, digest in actual.items() if files.get(n) != digest]
        data = rec.data or {}
        role = data.get("signer", {}).get("role") if isinstance(data.get("signer"), dict) else None
        if mismatched:
            v.add("ledger", False, f"{', '.join(mismatched)} differ(s) from what the ledger recorded at signing",
                  rec.name)
        elif entry.get("pdf_sha256") != pdf_sha or (entry.get("event") == "sign" and entry.get("role") != role) \
                or entry.get("certificate_sha256") != _sub(data, "certificate", "sha256"):
            v.add("ledger", False, f"ledger entry {entry.get('seq')} (line {entry.get('_line')}) does not describe "
                  "this signature (PDF, role or certificate differ): the ledger was edited", rec.name)
        elif rec.data is not None and rec.data.get("ledger_head") != entry.get("prev"):
            v.add("ledger", False, "the record's ledger head is not the ledger entry before its signature", rec.name)
        else:
            v.add("ledger", True, f"matches ledger entry {entry.get('seq')}", rec.name)
    for name in sorted(set(by_record) - names):
        v.add("ledger", False, f"the ledger records {name}, which is missing from the archive: it was deleted")
    return signed_roles
