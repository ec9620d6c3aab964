"""Render entries in the ledger: a draft's hashes, logged when it is rendered."""

from __future__ import annotations

from pathlib import Path

from agreements_kit.authoring.practice import Practice


def log_renders(practice: Practice, folders: list[Path]) -> None:
    """Add a ``render`` entry per draft to the practice ledger (ids and hashes only)."""
    import json

    from agreements_kit.signing.pki import utcnow
    from agreements_kit.signing.sign import iso
    from agreements_kit.store.archive import Archive, sha256_file

    if not practice.archive.is_dir():
        return
    from agreements_kit.signing.sign import finish_recovered

    archive = Archive(practice.archive)
    with archive.locked() as recovered:
        finish_recovered(archive, recovered)
        for folder in folders:
            manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
            archive.log({"event": "render", "agreement_id": manifest["agreement"]["id"], "time": iso(utcnow()),
                         "pdf_sha256": manifest["document"]["sha256"],
                         "manifest_sha256": sha256_file(folder / "manifest.json")})
