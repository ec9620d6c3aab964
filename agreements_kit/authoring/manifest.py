"""The manifest: everything needed to know, and reproduce, what a PDF says.

Two forms, documented in docs/manifest.md:
- embedded in the PDF as ``manifest.json`` (an associated file): inputs, clause
  ids, versions and SHA-256, template SHA-256, software versions;
- ``manifest.json`` beside the PDF: the same object plus a ``document`` member
  with the PDF's SHA-256 (which the embedded copy cannot hold: it is inside the
  PDF it would hash).

Both are canonical JSON (sorted keys, two-space indent, UTF-8, final newline)
so equal content always has equal bytes.
"""

from __future__ import annotations

import hashlib
import platform
from typing import Any

from agreements_kit import __version__
from agreements_kit.authoring.agreement import Agreement
from agreements_kit.authoring.spec import Spec

FORMAT = "agreements-kit/manifest"
FORMAT_VERSION = 1


def build_manifest(agreement: Agreement, spec: Spec, template: dict[str, Any], pdf_variant: str,
                   weasyprint_version: str) -> dict[str, Any]:
    """The embedded manifest (no PDF hash)."""
    lib = agreement.library
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "agreement": {
            "id": agreement.id,
            "date": agreement.date.isoformat(),
            "client": {"name": agreement.client_name},
            "therapist": {"id": agreement.therapist.id, "name": agreement.therapist.name,
                          "credentials": agreement.therapist.credentials},
            "practice": {"name": agreement.practice.name, "phone": agreement.practice.phone,
                         "address": agreement.practice.address, "email": agreement.practice.email},
            "jurisdiction": agreement.jurisdiction,
            # Only when there is one: manifests without a guardian keep their earlier bytes.
            **({"guardian": dict(agreement.guardian)} if agreement.guardian else {}),
        },
        "inputs": {
            "client": spec.client,
            "therapist": spec.therapist,
            "id": spec.id,
            "date": spec.date.isoformat(),
            "jurisdiction": spec.jurisdiction,
            "clauses": spec.clauses,
            "variables": spec.variables,
            **({"guardian": spec.guardian, "relation": spec.relation} if spec.guardian else {}),
        },
        "variables": dict(sorted(agreement.values.items())),
        "library": {"name": lib.name, "version": lib.version},
        "clauses": [
            {"id": c.id, "version": c.version, "jurisdiction": c.jurisdiction, "variant_version": c.variant_version,
             "initials": c.initials, "sha256": c.sha256()}
            for c in agreement.clauses
        ],
        "template": template,
        "software": {
            "agreements_kit": __version__,
            "weasyprint": weasyprint_version,
            "python": platform.python_version(),
        },
        "pdf": {"variant": pdf_variant, "file": "agreement.pdf"},
    }


def with_document(embedded: dict[str, Any], embedded_bytes: bytes, pdf: bytes) -> dict[str, Any]:
    """manifest.json: the embedded manifest plus the PDF's and the embedded copy's hashes."""
    out = dict(embedded)
    out["document"] = {
        "sha256": hashlib.sha256(pdf).hexdigest(),
        "bytes": len(pdf),
        "embedded_manifest_sha256": hashlib.sha256(embedded_bytes).hexdigest(),
    }
    return out
