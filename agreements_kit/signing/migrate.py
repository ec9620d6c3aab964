"""``agreements archive migrate``: bring a legacy (format 1) archive under format 2's checks.

Format 1 archives have no register of issued certificates and no CRL entries in
their ledger, so format 2's verifier cannot tell their certificates from ones
minted later outside the practice. Migration does not rewrite anything (signed
records keep their exact signed bytes; every file and ledger line stays as it
was): under the archive lock it appends to the ledger

- a ``certificate`` entry (``"source": "migration"``) for every certificate the
  practice's PKI folder holds and every certificate that signed an archived record,
  with the role it signed in;
- a ``crl`` entry for the current CRL set, listing the certificates it revokes;
- one ``migrate`` entry saying how many agreements were migrated.

From then on, verification accepts a legacy record only if its ledger entry comes
before the migration, and its certificate only if the migration registered it.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass

from cryptography import x509

from agreements_kit.authoring.practice import Practice
from agreements_kit.errors import ArchiveError
from agreements_kit.formats.crlset import parse_crl_set
from agreements_kit.formats.folder import read_folder
from agreements_kit.formats.ids import ID_RE
from agreements_kit.formats.record import parse_record
from agreements_kit.signing.pki import PKI, fingerprint, iso, load_cert, utcnow
from agreements_kit.store.archive import Archive


@dataclass
class Migration:
    agreements: int
    certificates: int
    crl_number: int


def _signers(p7s: bytes) -> list[x509.Certificate]:
    from asn1crypto import cms

    sd = cms.ContentInfo.load(p7s)["content"]
    return [x509.load_der_x509_certificate(c.chosen.dump()) for c in sd["certificates"]]


def migrate(practice: Practice, now: dt.datetime | None = None) -> Migration:
    now = now or utcnow()
    pki = PKI(practice.root / "pki")
    archive = Archive(practice.archive)
    root, intake = pki.root(), pki.intake()
    with archive.locked(allow_legacy=True):
        versions = set()
        registered = set()
        for _, entry, _ in archive.ledger.entries():
            versions.add(entry.get("format_version", 1))
            if entry.get("event") == "migrate":
                raise ArchiveError(f"the archive {archive.root} was already migrated")
            if entry.get("event") == "certificate":
                registered.add(entry["certificate_sha256"])
        if 1 not in versions:
            raise ArchiveError(f"the archive {archive.root} is not in the legacy format: nothing to migrate")
        found: dict[str, tuple[x509.Certificate, str, x509.Certificate, dict[str, str]]] = {}
        found[fingerprint(root)] = (root, "root", root, {})
        found[fingerprint(intake)] = (intake, "intake", root, {})
        for path in sorted(pki.therapists.glob("*.pem")):
            if path.name.endswith(".key.pem"):
                continue
            cert = load_cert(path, "therapist")
            tid = path.stem.split("-")[0] if "-" in path.stem and path.stem.rsplit("-", 1)[-1] == \
                f"{cert.serial_number:x}" else path.stem
            found.setdefault(fingerprint(cert), (cert, "therapist", root, {"therapist_id": tid}))
        count = 0
        with os.scandir(archive.root) as it:
            folders = sorted(e.path for e in it if e.is_dir(follow_symlinks=False) and ID_RE.match(e.name))
        for folder in folders:
            files = read_folder(folder, read_pdf=False)
            count += 1
            for rf in files.records:
                if rf.p7s is None:
                    continue
                rec = parse_record(rf.raw, rf.name)
                certs = {fingerprint(c): c for c in _signers(rf.p7s)}
                signer = certs.get(rec.certificate_sha256)
                if signer is None:
                    continue  # verification will name it; migration registers only what signed
                cert = signer
                if rec.client_side:
                    found.setdefault(rec.certificate_sha256,
                                     (cert, rec.kind, intake, {"agreement_id": rec.agreement_id}))
                else:
                    tid = rec.signer.get("therapist_id") or rec.signer.get("administrator_id") or ""
                    found.setdefault(rec.certificate_sha256, (cert, "therapist", root, {"therapist_id": tid}))
        added = 0
        for fp, (cert, role, issuer, ids) in found.items():
            if fp in registered:
                continue
            archive.log(pki.register_fields(cert, role, issuer, now, source="migration", **ids))
            added += 1
        crls = parse_crl_set(pki.crl.read_bytes(), str(pki.crl))
        revoked = [fp for fp, (cert, _, issuer, _) in found.items()
                   if (crl := crls.for_issuer(issuer.subject)) is not None
                   and crl.get_revoked_certificate_by_serial_number(cert.serial_number) is not None]
        archive.log(dict(pki.crl_fields(crls, now, []), revoked=revoked))
        archive.log({"event": "migrate", "from_version": 1, "to_version": 2, "agreements": count,
                     "time": iso(now)})
    return Migration(count, added, crls.number)
