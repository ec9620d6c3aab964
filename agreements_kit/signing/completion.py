"""The certificate of completion: the receipt signers and auditors expect.

One PDF page (PDF/A-3u, same renderer as agreements) listing every signer, when
they signed, how their identity was checked, their certificate, and the hashes
of the PDF, manifest and records. It is derived from the signed records and
written once, when the agreement is complete; the records stay the evidence.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from agreements_kit.authoring.html import _environment
from agreements_kit.formats.jsonio import canonical_json
from agreements_kit.resources import templates_dir
from agreements_kit.store.archive import AgreementFolder, sha256_file
from agreements_kit.store.files import write_new

TEMPLATE = "completion.html.j2"


def _anchor(checkpoint: bytes | None) -> dict[str, object] | None:
    """The transparency-log checkpoint to print (as text and as a QR code) so the paper proves inclusion."""
    if checkpoint is None:
        return None
    import base64

    import segno
    from markupsafe import Markup

    from agreements_kit.formats.checkpoint import parse_checkpoint

    cp = parse_checkpoint(checkpoint, "checkpoint")
    qr = segno.make(checkpoint.decode("utf-8"), error="m")
    return {"origin": cp.origin, "size": cp.size, "root": base64.b64encode(cp.root_hash).decode("ascii"),
            "text": checkpoint.decode("utf-8"), "qr": Markup(qr.svg_inline(scale=2, dark="#000", light="#fff"))}


def completion_pdf(folder: AgreementFolder, template_dir: Path | None = None, checkpoint: bytes | None = None) -> bytes:
    from agreements_kit.authoring import pdf

    template_dir = template_dir or templates_dir()
    records = []
    for name, rec in folder.records:
        records.append(dict(rec, file=name, record_sha256=sha256_file(folder.path / name)))
    completed_at = max(r["signed_at"] for r in records)
    html = _environment(str(template_dir)).get_template(TEMPLATE).render(
        agreement=folder.manifest["agreement"], practice=folder.manifest["agreement"]["practice"],
        records=records, pdf_sha256=sha256_file(folder.pdf), manifest_sha256=sha256_file(folder.manifest_path),
        completed_at=completed_at, complete=folder.complete, anchor=_anchor(checkpoint))
    summary = canonical_json({"agreement": folder.id, "records": {r["file"]: r["record_sha256"] for r in records}})
    day = dt.date.fromisoformat(completed_at[:10])
    return pdf.write_pdf(html, template_dir, summary, day, attachment_name="completion.json")


def write_completion(folder: AgreementFolder, checkpoint: bytes | None = None) -> Path:
    """Write completion.pdf once; ``checkpoint``: the log's signed checkpoint that includes every signature."""
    path = folder.path / "completion.pdf"
    if not path.exists():
        write_new(path, completion_pdf(folder, checkpoint=checkpoint))
    return path



