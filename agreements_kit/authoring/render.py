"""Spec -> draft folder (``agreement.pdf`` + ``manifest.json``), one or many.

Every spec of a batch is checked against the practice and library before the
first PDF is rendered, so bad input writes nothing. Each draft is written into a
private temporary folder and renamed into place in one step: a draft folder
either is complete or does not exist, and an existing folder is never touched.
Batches use one worker process per core, each importing WeasyPrint and building
its font configuration once.
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agreements_kit.authoring.agreement import Agreement, build
from agreements_kit.authoring.documents import load_document
from agreements_kit.authoring.glyphs import check_values
from agreements_kit.authoring.html import render_html, template_digest
from agreements_kit.authoring.library import Library
from agreements_kit.authoring.manifest import build_manifest, with_document
from agreements_kit.authoring.practice import Practice, load_practice
from agreements_kit.authoring.spec import Spec
from agreements_kit.authoring.translation import translate
from agreements_kit.errors import AgreementsError, RenderError, SpecError
from agreements_kit.formats.jsonio import canonical_json
from agreements_kit.store.files import fsync_dir, make_private_dir, rename_noreplace, write_new


@dataclass(frozen=True)
class Job:
    """What a worker needs to render one agreement: everything is picklable."""

    spec: Spec
    out_dir: Path


@dataclass
class Renderer:
    """A practice, its library and template, loaded once and reused for many agreements."""

    practice: Practice
    library: Library
    template_dir: Path
    template: dict[str, Any]
    document: str | None = None  # a document library's name (authoring/documents.py); None: the agreement
    # The library in other languages (its translations/LANG/ folders), loaded on first use.
    translations: dict[str, Library] = field(default_factory=dict)

    @classmethod
    def load(cls, practice_root: Path, document: str | None = None) -> Renderer:
        practice = load_practice(practice_root)
        template_dir = practice.template_dir()
        library, practice = load_document(practice, document)
        return cls(practice, library, template_dir, template_digest(template_dir), document)

    def library_in(self, language: str | None) -> Library:
        """The library in ``language`` (None: its own); LibraryError when it has no such translation."""
        if language is None or language == self.library.language:
            return self.library
        if language not in self.translations:
            self.translations[language] = translate(self.library, language)
        return self.translations[language]

    def prepare(self, spec: Spec) -> Agreement:
        agreement = build(spec, self.practice, self.library_in(spec.language))
        check_values(drawn_values(agreement, spec))
        return agreement

    def render_bytes(self, spec: Spec, software: dict[str, Any] | None = None) -> tuple[bytes, bytes]:
        """(PDF bytes, manifest.json bytes) for one spec. Imports WeasyPrint on first use.

        ``software`` replaces the recorded software versions (``reproduce`` passes the
        ones recorded at rendering, so that a Python patch release changes nothing)."""
        from agreements_kit.authoring import pdf

        agreement = self.prepare(spec)
        html = render_html(agreement, self.template_dir)
        embedded = build_manifest(agreement, spec, self.template, pdf.PDF_VARIANT, pdf.WEASYPRINT_VERSION)
        if agreement.library.language != self.library.language:
            # Only for a translation: an agreement in the library's own language keeps its earlier bytes.
            embedded["library"]["language"] = agreement.library.language
            embedded["inputs"]["language"] = spec.language
        if software is not None:
            embedded["software"] = software
        embedded_bytes = canonical_json(embedded)
        pdf_bytes = pdf.write_pdf(html, self.template_dir, embedded_bytes, agreement.date)
        return pdf_bytes, canonical_json(with_document(embedded, embedded_bytes, pdf_bytes))

    def render_to(self, job: Job) -> Path:
        pdf_bytes, manifest_bytes = self.render_bytes(job.spec)
        return write_draft(job.out_dir, job.spec.id, pdf_bytes, manifest_bytes)


def drawn_values(agreement: Agreement, spec: Spec) -> list[tuple[str, str]]:
    """(label, text) of every value people typed that the page prints, labelled for a refusal."""
    settings = agreement.practice.settings_path
    out = [(f"{spec.where('client')}: client name", agreement.client_name)]
    if agreement.guardian:
        out += [(f"{spec.where('guardian')}: guardian name", agreement.guardian["name"]),
                (f"{spec.where('relation')}: guardian relation", agreement.guardian["relation"])]
    therapist = agreement.therapist
    out += [(f"{settings}: therapist '{therapist.id}' name", therapist.name),
            (f"{settings}: therapist '{therapist.id}' credentials", therapist.credentials or "")]
    out += [(f"{settings}: practice {key}", str(getattr(agreement.practice, key) or ""))
            for key in ("name", "address", "phone", "email")]
    for name, value in agreement.values.items():
        if not isinstance(value, str):
            continue
        if name in spec.variables:
            where = spec.where("variables." + name)
        elif name in agreement.practice.variables:
            where = f"{settings}:{agreement.practice.variable_lines.get(name, 1)}"
        else:
            where = "the clause library's default"
        out.append((f"{where}: variable '{name}'", value))
    return out


def check_out_parent(out: str | Path) -> Path:
    """An output parent folder given by a person: no '..' tricks."""
    path = Path(out)
    if ".." in path.parts:
        raise SpecError(f"output path '{out}' contains '..'; give a plain relative or absolute folder")
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise SpecError(f"output path '{out}' is not a folder ({existing} is a file)")
    return path


def write_draft(parent: Path, agreement_id: str, pdf_bytes: bytes, manifest_bytes: bytes) -> Path:
    """Write both files to a temporary folder, then rename it to ``parent/id`` (never replacing)."""
    make_private_dir(parent, exist_ok=True)
    final = parent / agreement_id
    tmp = parent / f".{agreement_id}.{secrets.token_hex(6)}.partial"
    make_private_dir(tmp)
    try:
        write_new(tmp / "agreement.pdf", pdf_bytes)
        write_new(tmp / "manifest.json", manifest_bytes)
        try:
            rename_noreplace(tmp, final)
        except FileExistsError:
            raise RenderError(f"output folder {final} already exists; nothing was written") from None
        fsync_dir(parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def plan(renderer: Renderer, specs: list[Spec], out_parent: Path) -> list[Job]:
    """Check every spec and every output folder before anything is rendered."""
    seen: dict[str, str] = {}
    jobs = []
    for spec in specs:
        renderer.prepare(spec)
        if spec.id in seen:
            raise SpecError(f"{spec.origin}: agreement id '{spec.id}' is also used at {seen[spec.id]}")
        seen[spec.id] = spec.origin
        target = out_parent / spec.id
        if os.path.lexists(target):
            raise RenderError(f"output folder {target} already exists; nothing was written")
        jobs.append(Job(spec, out_parent))
    return jobs


# ----------------------------------------------------------------- worker processes

_worker: Renderer | None = None


def _init_worker(practice_root: Path, document: str | None = None) -> None:
    global _worker
    _worker = Renderer.load(practice_root, document)
    from agreements_kit.authoring import pdf

    pdf.font_config()


def _work(job: Job) -> Path:
    assert _worker is not None
    return _worker.render_to(job)


def render_many(renderer: Renderer, jobs: list[Job], workers: int | None = None,
                progress: Callable[[Path], None] | None = None) -> list[Path]:
    """Render jobs, in worker processes when there are several; returns folders in job order.

    A failure in one agreement does not lose the others: completed drafts stay
    (each complete), and the first error is raised after all workers finish.
    """
    workers = max(1, min(workers or os.cpu_count() or 1, len(jobs)))
    if workers == 1:
        out = []
        for job in jobs:
            out.append(renderer.render_to(job))
            if progress:
                progress(out[-1])
        return out
    results: dict[int, Path] = {}
    first_error: BaseException | None = None
    with ProcessPoolExecutor(max_workers=workers, initializer=_init_worker,
                             initargs=(renderer.practice.root, renderer.document)) as pool:
        futures = {pool.submit(_work, job): i for i, job in enumerate(jobs)}
        for fut in as_completed(futures):
            try:
                results[futures[fut]] = fut.result()
            except AgreementsError as exc:
                first_error = first_error or exc
                continue
            if progress:
                progress(results[futures[fut]])
    if first_error is not None:
        raise first_error
    return [results[i] for i in range(len(jobs))]


