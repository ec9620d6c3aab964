"""Re-render an agreement from its manifest and compare bytes with the signed PDF.

The manifest records the exact inputs, the practice and therapist details as
they were, every clause's hash and the template's hash. Re-rendering with the
clause library and templates under version control proves exactly what text was
agreed to: if the bytes match, the PDF says what the library said. When they do
not, the report names the first difference found (a clause, the template, the
software) instead of only "different".
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agreements_kit.authoring.agreement import Agreement
from agreements_kit.authoring.html import template_digest
from agreements_kit.authoring.library import Library, load_library
from agreements_kit.authoring.practice import Practice, Therapist
from agreements_kit.authoring.professions import PROFESSION_VALUE, profession_code
from agreements_kit.authoring.render import Renderer
from agreements_kit.authoring.spec import Spec, make_spec
from agreements_kit.errors import AgreementsError
from agreements_kit.store.archive import AgreementFolder


@dataclass
class Reproduction:
    identical: bool
    signed_sha256: str
    rendered_sha256: str
    differences: list[str] = field(default_factory=list)


def practice_as_recorded(manifest: dict[str, Any], root: Path, clauses: Path, templates: Path) -> Practice:
    """The practice and therapist exactly as the manifest recorded them (settings may have changed since)."""
    a = manifest["agreement"]
    t = a["therapist"]
    given = set(manifest["inputs"].get("variables") or {})
    return Practice(root=root, name=a["practice"]["name"], phone=a["practice"]["phone"],
                    address=a["practice"]["address"], email=a["practice"]["email"],
                    jurisdiction=a["jurisdiction"],
                    therapists={t["id"]: Therapist(t["id"], t["name"], t["credentials"])},
                    variables={k: v for k, v in manifest["variables"].items() if k not in given},
                    clauses_dir=clauses, templates_dir=templates)


def profession_as_recorded(manifest: dict[str, Any]) -> str | None:
    """The therapist's profession the agreement was rendered for (``therapist_profession`` in the
    manifest's values), which picked its profession-specific texts; None if none was recorded."""
    values = manifest.get("variables")
    recorded = values.get(PROFESSION_VALUE) if isinstance(values, dict) else None
    return profession_code(recorded) if isinstance(recorded, str) else None


def agreement_from_manifest(manifest: dict[str, Any], root: Path, library: Library,
                            templates: Path) -> tuple[Spec, Practice, Agreement]:
    """The Agreement a manifest describes, rebuilt with ``library`` (check clause hashes after)."""
    from agreements_kit.authoring.agreement import build

    inputs = manifest["inputs"]
    spec = make_spec(client=inputs["client"], therapist=inputs["therapist"], id=inputs["id"], date=inputs["date"],
                     jurisdiction=inputs["jurisdiction"], clauses=inputs["clauses"],
                     variables=inputs.get("variables") or {}, text_values=True, origin="manifest",
                     guardian=inputs.get("guardian"), relation=inputs.get("relation"),
                     language=inputs.get("language"))
    practice = practice_as_recorded(manifest, root, library.root, templates)
    return spec, practice, build(spec, practice, library)


def clauses_as_signed(folder: AgreementFolder, practice: Practice) -> list[dict[str, Any]]:
    """The clauses of an agreement exactly as rendered in its PDF, for showing to a signer.

    Rebuilt from the manifest with the practice's clause library; if any clause's text
    no longer has the hash the manifest recorded, the library changed since rendering
    and what would be shown is not what the PDF says: refuse.
    """
    from agreements_kit.authoring.html import render_clauses

    library = load_library(practice.library_dir())
    _, _, agreement = agreement_from_manifest(folder.manifest, folder.path, library, practice.template_dir())
    recorded = {c["id"]: c["sha256"] for c in folder.manifest["clauses"]}
    if [c.id for c in agreement.clauses] != list(recorded) or \
            any(recorded[c.id] != c.sha256() for c in agreement.clauses):
        raise AgreementsError(f"the clause library changed since agreement {folder.id} was rendered; "
                              "render it again before it is signed")
    return render_clauses(agreement, practice.template_dir())


def reproduce(folder: Path, clauses: Path, templates: Path) -> Reproduction:
    try:
        manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
        signed = (folder / "agreement.pdf").read_bytes()
        manifest["library"]["name"], manifest["clauses"], manifest["inputs"], manifest["template"]["sha256"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise AgreementsError(f"{folder}: cannot read the agreement's manifest ({type(exc).__name__}: {exc})") from None
    differences = []
    library = load_library(clauses)
    if (library.name, library.version) != (manifest["library"]["name"], manifest["library"]["version"]):
        differences.append(f"the clause library is {library.name} v{library.version}, the agreement used "
                           f"{manifest['library']['name']} v{manifest['library']['version']}")
    jurisdiction = manifest["agreement"]["jurisdiction"]
    # The texts as chosen for the therapist's profession: without it, a clause written per
    # profession would be compared with the jurisdiction's general text and wrongly named.
    profession = profession_as_recorded(manifest)
    for entry in manifest["clauses"]:
        if entry["id"] not in library.clauses:
            differences.append(f"clause {entry['id']} is not in the library any more")
        elif library.clause(entry["id"], jurisdiction, profession).sha256() != entry["sha256"]:
            differences.append(f"clause {entry['id']} differs from the text that was signed (v{entry['version']})")
    if template_digest(templates)["sha256"] != manifest["template"]["sha256"]:
        differences.append("the template files differ from the ones used")
    import weasyprint

    recorded = manifest.get("software") if isinstance(manifest.get("software"), dict) else {}
    if weasyprint.__version__ != recorded.get("weasyprint"):
        differences.append(f"WeasyPrint {weasyprint.__version__} is installed; the agreement was rendered with "
                           f"{recorded.get('weasyprint')} (the layout engine decides the bytes)")
    try:
        spec, practice, _ = agreement_from_manifest(manifest, folder, library, templates)
        renderer = Renderer(practice, library, templates, template_digest(templates))
        pdf, _ = renderer.render_bytes(spec, software=recorded)  # versions as recorded: they are only labels
    except AgreementsError as exc:
        differences.append(f"re-rendering failed: {exc}")
        pdf = b""
    same = pdf == signed
    if not same and not differences:
        differences.append("the inputs and hashes match but the bytes differ (fonts or system libraries changed)")
    return Reproduction(same, hashlib.sha256(signed).hexdigest(), hashlib.sha256(pdf).hexdigest(),
                        [] if same else differences)
