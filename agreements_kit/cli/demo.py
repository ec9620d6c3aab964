"""``agreements demo DIR``: the whole job on fictional people, in one command.

It creates a fictional practice with its PKI, issues the therapist's
certificate, renders an agreement for a fictional client, signs it as the client
(one-time certificate) and countersigns it as the therapist, then prints where
everything is and the OpenSSL command an auditor would run. The client's own DBT
agreement is rendered too and left awaiting signature, as for an intake visit.
Every key has a passphrase of its own (keys in separate hands): the root's, the intake CA's, the
clinician CA's, the therapist's and the log key's, each random and written to
DIR/demo-*passphrase.txt (owner-only): fine for fictional data, never for a real
practice.

Every signature is time-stamped by a real RFC 3161 TSA: a local one
(``agreements tsa``, ``openssl ts -reply`` with its own key and root) in
DIR/demo-tsa, run as its own process for the length of the demo. It stands in
for the public or commercial TSA a practice would use.
"""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agreements_kit.authoring.documents import CLIENT_AGREEMENT
from agreements_kit.authoring.practice import load_practice
from agreements_kit.authoring.render import Job, Renderer
from agreements_kit.authoring.spec import make_spec
from agreements_kit.signing.pki import PKI
from agreements_kit.signing.renders import log_renders
from agreements_kit.signing.setup import configure_timestamping, init_practice
from agreements_kit.signing.sign import ClientSigning, sign_client, sign_therapist
from agreements_kit.store.files import write_new
from agreements_kit.verification.steps import Verdict

#: Keyword arguments for init_practice (also used by the benchmarks).
DEMO_PRACTICE: dict[str, Any] = {
    "name": "Riverbend DBT Collaborative (fictional)",
    "jurisdiction": "US-MT",
    "phone": "(406) 555-0142",
    "address": "12 Example Street, Missoula, MT",
    "email": "intake@riverbend.example",
    "therapists": {"lee": ("Dr. Robin Lee", "PhD, Licensed Clinical Psychologist", "psychologist"),
                   "ortiz": ("Sam Ortiz", "LCSW", "lcsw")},
    "variables": {"phone_support_hours": "on weekdays from 9 am to 5 pm",
                  "backup_coverage": "Sam Ortiz, LCSW, or another clinician on our DBT team"},
}
DEMO_CLIENT = "Jane Q. Doe"


@dataclass
class DemoResult:
    practice: Path
    draft: Path
    archived: Path
    records: list[Path] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)
    verdict: Verdict | None = None
    copy: Path | None = None  # the signed copy (02-therapist.copy.pdf), both signatures
    receipts: list[Path] = field(default_factory=list)  # the client's receipt, in English and Spanish


def run_demo(directory: str | Path) -> DemoResult:
    from agreements_kit import localtsa

    directory = Path(directory)
    keys = DemoPassphrases.random()
    init_practice(directory, passphrase=keys.root, intake_passphrase=keys.intake,
                  clinician_passphrase=keys.clinicians, **DEMO_PRACTICE)
    for name, value in (("demo-passphrase.txt", keys.root), ("demo-intake-passphrase.txt", keys.intake),
                        ("demo-clinician-ca-passphrase.txt", keys.clinicians),
                        ("demo-lee-passphrase.txt", keys.therapist)):
        write_new(directory / name, value + b"\n")
    tsa_folder = localtsa.create(directory / "demo-tsa", "Riverbend demo TSA (fictional)")
    with localtsa.start(tsa_folder.path) as tsa:
        configure_timestamping(directory, [tsa.url], tsa_folder.root.read_bytes())
        return _run(directory, keys, tsa.url)


@dataclass(frozen=True)
class DemoPassphrases:
    """One passphrase per key: the root's, the intake CA's, the clinician CA's, the therapist's."""

    root: bytes
    intake: bytes
    clinicians: bytes
    therapist: bytes

    @classmethod
    def random(cls) -> DemoPassphrases:
        return cls(*(secrets.token_urlsafe(18).encode() for _ in range(4)))


def _run(directory: Path, keys: DemoPassphrases, tsa_url: str) -> DemoResult:
    from agreements_kit.store import tlog

    practice = load_practice(directory)
    # The log key is no CA key and has a passphrase of its own (keys in separate hands).
    log_passphrase = secrets.token_urlsafe(18).encode()
    log_key = tlog.create_log_key(directory / "pki", passphrase=log_passphrase)
    write_new(directory / "demo-log-passphrase.txt", log_passphrase + b"\n")
    PKI(directory / "pki").issue_clinician("lee", "Dr. Robin Lee", practice.name, keys.clinicians, keys.therapist)

    renderer = Renderer.load(directory)
    spec = make_spec(client=DEMO_CLIENT, therapist="lee", date=dt.date.today())  # noqa: DTZ011 (local calendar day, as in make_spec)
    draft = renderer.render_to(Job(spec, renderer.practice.drafts))
    # The client's own agreement, beside the therapists': left awaiting the client, for an intake visit (a packet).
    client_spec = make_spec(client=DEMO_CLIENT, therapist="lee", date=spec.date)
    client_draft = Renderer.load(directory, CLIENT_AGREEMENT).render_to(Job(client_spec, renderer.practice.drafts))
    log_renders(practice, [draft, client_draft])

    initials = {c.id: "JQD" for c in renderer.prepare(spec).clauses if c.initials}
    client = sign_client(practice, draft, ClientSigning(
        name=DEMO_CLIENT, consent=True, initials=initials, intent=True,
        identity_method="photo ID checked in person (fictional)", identity_checked_by="Front desk (fictional)"),
        keys.intake, log_key=log_key)
    therapist = sign_therapist(practice, spec.id, keys.therapist, log_key=log_key)
    # A second party (another clinic, the practice's lawyer) witnesses the log: it checks the new
    # checkpoint is consistent with the last one it saw and cosigns it, in a folder of its own.
    witness_passphrase = secrets.token_urlsafe(18).encode()
    witness_dir = directory / "demo-witness"
    witness_key = tlog.create_witness_key(witness_dir, passphrase=witness_passphrase)
    assert therapist.checkpoint is not None
    tlog.witness(witness_dir, witness_key, log_key.verifier, therapist.checkpoint,
                 ledger=tlog.ledger_lines(practice.archive))
    cosigned = tlog.witness_log_dir(witness_dir, log_key.origin) / tlog.LATEST
    write_new(witness_dir / "demo-witness-passphrase.txt", witness_passphrase + b"\n")
    archived = therapist.folder.path
    result = DemoResult(directory, draft, archived, [client.record_path, therapist.record_path])
    result.receipts = _receipts(directory, therapist.folder)
    root = directory / "pki" / "root.pem"
    result.lines += [
        f"practice:   {directory} ({DEMO_PRACTICE['name']}, {DEMO_PRACTICE['jurisdiction']})",
        f"client:     {DEMO_CLIENT} (fictional), therapist: Dr. Robin Lee (fictional)",
        f"agreement:  {spec.id}",
        f"draft:      {draft / 'agreement.pdf'}",
        f"signed:     {archived}/ (agreement.pdf, manifest.json, records, signatures)",
        f"  client    {client.record_path.name} + .p7s at {client.record['signed_at']}",
        f"  therapist {therapist.record_path.name} + .p7s at {therapist.record['signed_at']}",
        f"  complete  {therapist.completion} (certificate of completion)",
        f"  receipt   {', '.join(str(p) for p in result.receipts)} (the client's one page, in English and Spanish)",
        f"client's agreement: {client_draft / 'agreement.pdf'} (what the client agrees to; awaiting signature: "
        f"'agreements intake open {client_spec.id} ...' signs it at intake, several ids make one visit's packet)",
        f"time:       every signature time-stamped by the local TSA at {tsa_url} ({directory / 'demo-tsa'}; "
        f"restart it with 'agreements tsa serve {directory / 'demo-tsa'} --port {_port(tsa_url)}')",
        f"ledger:     {practice.archive / 'ledger.jsonl'}",
        f"log:        {practice.archive / 'log' / 'checkpoint'} (signed checkpoint of the ledger's Merkle tree, "
        f"key {directory / 'pki' / 'log.pub'}); also printed on the certificate of completion",
        f"witness:    {witness_dir} (its cosigned copy of that checkpoint, kept outside the archive)",
        f"passphrases: {directory}/demo-*passphrase.txt, one per key: root, intake CA, clinician CA, therapist, "
        "log (demo only)",
        "",
        "verify each signature with OpenSSL alone:",
    ]
    for rec in result.records:
        result.lines.append(f"  openssl cms -verify -binary -inform DER -in {rec}.p7s -content {rec} "
                            f"-CAfile {root} -purpose any -out /dev/null")
    result.lines.append("  (years later, add -attime SECONDS: the signing time as seconds since 1970, "
                        "because certificates are checked as of the signature; see the README)")
    result.lines.append(f"  sha256sum {archived / 'agreement.pdf'}   # = document.sha256 in every record")
    copy = archived / "02-therapist.copy.pdf"
    result.copy = copy if copy.is_file() else None
    size = (archived / "agreement.pdf").stat().st_size
    result.lines += [
        "the signed copy for the client (PAdES, both signatures; the archived PDF is its exact prefix):",
        f"  {copy}",
        f"  cmp -n {size} {archived / 'agreement.pdf'} {copy}   # no output: same first {size} bytes",
        f"  pyhanko sign validate --trust {root} --trust {directory / 'pki' / 'tsa-roots.pem'} --trust-replace "
        f"--pretty-print {copy}",
        f"  agreements verify {copy} --trust {root}",
        "  pdfsig (poppler) with the root in an NSS database of its own: see docs/copy.md",
    ]
    result.lines.append("and each signature's time-stamp token (the README's check-token.sh, OpenSSL alone):")
    for rec in result.records:
        result.lines.append(f"  bash check-token.sh {rec}.p7s {directory / 'pki' / 'tsa-roots.pem'}")

    from agreements_kit.verification.trust import load_trust
    from agreements_kit.verification.verify import verify_folder

    verdict = verify_folder(archived, load_trust(root), ledger=practice.archive / "ledger.jsonl")
    result.verdict = verdict
    result.lines += ["", "agreements verify (CMS, time-stamp tokens, path to the root, CRL, register, ledger):",
                     f"  {verdict.headline()}"]
    result.lines += [f"  time of {s['record']}: {s['time_source']}" for s in verdict.signers]
    result.lines += [f"  FAIL {c.step} {c.name} [{c.subject}]: {c.detail} [{c.code}]" for c in verdict.failures]
    result.lines += ["", "an auditor holding the receipt's or the witness's checkpoint checks the archive against it:",
                     f"  agreements audit --trust {root} --checkpoint {cosigned} "
                     f"--witness-key {witness_dir / 'witness.pub'} {practice.archive}"]
    return result


def _receipts(directory: Path, folder) -> list[Path]:
    """The client's receipt (agreements receipt), beside the demo's files: never in the archive."""
    from agreements_kit.signing.receipt import client_checkpoint, receipt_pdf

    checkpoint = client_checkpoint([folder])
    paths = []
    for language, name in (("en", "demo-receipt.pdf"), ("es", "demo-receipt-es.pdf")):
        write_new(directory / name, receipt_pdf([folder], checkpoint=checkpoint, language=language))
        paths.append(directory / name)
    return paths


def _port(url: str) -> str:
    return url.rsplit(":", 1)[1].strip("/")
