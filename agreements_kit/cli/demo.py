"""``agreements demo DIR``: the whole job on fictional people, in one command.

It creates a fictional practice with its PKI, issues the therapist's
certificate, renders an agreement for a fictional client, signs it as the client
(one-time certificate) and countersigns it as the therapist, then prints where
everything is and the OpenSSL command an auditor would run. The demo's
passphrase is random and written to DIR/demo-passphrase.txt (owner-only): fine
for fictional data, never for a real practice.
"""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agreements_kit.authoring.practice import load_practice
from agreements_kit.authoring.render import Job, Renderer
from agreements_kit.authoring.spec import make_spec
from agreements_kit.signing.pki import PKI
from agreements_kit.signing.renders import log_renders
from agreements_kit.signing.setup import init_practice
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
    "therapists": {"lee": ("Dr. Robin Lee", "PhD, Licensed Clinical Psychologist"),
                   "ortiz": ("Sam Ortiz", "LCSW")},
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


def run_demo(directory: str | Path) -> DemoResult:
    directory = Path(directory)
    passphrase = secrets.token_urlsafe(18).encode()
    init_practice(directory, passphrase=passphrase, **DEMO_PRACTICE)
    write_new(directory / "demo-passphrase.txt", passphrase + b"\n")
    practice = load_practice(directory)
    PKI(directory / "pki").issue_clinician("lee", "Dr. Robin Lee", practice.name, passphrase, passphrase)

    renderer = Renderer.load(directory)
    spec = make_spec(client=DEMO_CLIENT, therapist="lee", date=dt.date.today())  # noqa: DTZ011 (local calendar day, as in make_spec)
    draft = renderer.render_to(Job(spec, renderer.practice.drafts))
    log_renders(practice, [draft])

    initials = {c.id: "JQD" for c in renderer.prepare(spec).clauses if c.initials}
    client = sign_client(practice, draft, ClientSigning(
        name=DEMO_CLIENT, consent=True, initials=initials, intent=True,
        identity_method="photo ID checked in person (fictional)", identity_checked_by="Front desk (fictional)"),
        passphrase)
    therapist = sign_therapist(practice, spec.id, passphrase)
    archived = therapist.folder.path
    result = DemoResult(directory, draft, archived, [client.record_path, therapist.record_path])
    root = directory / "pki" / "root.pem"
    result.lines += [
        f"practice:   {directory} ({DEMO_PRACTICE['name']}, {DEMO_PRACTICE['jurisdiction']})",
        f"client:     {DEMO_CLIENT} (fictional), therapist: Dr. Robin Lee (fictional)",
        f"agreement:  {spec.id}",
        f"draft:      {draft / 'agreement.pdf'}",
        f"signed:     {archived}/ (agreement.pdf, manifest.json, records, signatures)",
        f"  client    {client.record_path.name} + .p7s at {client.record['signed_at']}",
        f"  therapist {therapist.record_path.name} + .p7s at {therapist.record['signed_at']}",
        f"  receipt   {therapist.completion}",
        f"ledger:     {practice.archive / 'ledger.jsonl'}",
        f"passphrase: {directory / 'demo-passphrase.txt'} (demo only)",
        "",
        "verify each signature with OpenSSL alone:",
    ]
    for rec in result.records:
        result.lines.append(f"  openssl cms -verify -binary -inform DER -in {rec}.p7s -content {rec} "
                            f"-CAfile {root} -purpose any -out /dev/null")
    result.lines.append("  (years later, add -attime SECONDS: the signing time as seconds since 1970, "
                        "because certificates are checked as of the signature; see the README)")
    result.lines.append(f"  sha256sum {archived / 'agreement.pdf'}   # = document.sha256 in every record")

    from agreements_kit.verification.trust import load_trust
    from agreements_kit.verification.verify import verify_folder

    verdict = verify_folder(archived, load_trust(root), ledger=practice.archive / "ledger.jsonl")
    result.verdict = verdict
    result.lines += ["", "agreements verify (CMS, path to the root, CRL, register, ledger):", f"  {verdict.headline()}"]
    result.lines += [f"  FAIL {c.step} {c.name} [{c.subject}]: {c.detail} [{c.code}]" for c in verdict.failures]
    return result
