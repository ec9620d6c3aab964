"""Agreement -> HTML, through a sandboxed, autoescaping, strict Jinja2.

Clause bodies come from the library and values from clinicians and clients, so
rendering must never evaluate what people typed: values are plain data,
autoescaped on output, and a missing name is an error (``StrictUndefined``)
rather than an empty string in a legal document. The sandbox keeps a shared
clause library from reaching Python internals.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import FileSystemLoader, StrictUndefined, TemplateError, UndefinedError
from jinja2.sandbox import SandboxedEnvironment
from markupsafe import Markup

from agreements_kit.authoring.agreement import Agreement
from agreements_kit.errors import RenderError

PAGE_TEMPLATE = "agreement.html.j2"  # the default; a library may name another agreement* page (library.yaml 'page')


@lru_cache(maxsize=8)
def _environment(template_dir: str) -> SandboxedEnvironment:
    return SandboxedEnvironment(
        loader=FileSystemLoader(template_dir),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def template_files(template_dir: Path) -> list[Path]:
    """The files that shape an agreement's PDF, sorted: every file whose name starts with
    "agreement" (the page template, its CSS, and fonts or images named agreement-*).
    Other templates of the folder (the receipt, the audit report, the disclosure) do not
    change an agreement, so adding or editing them does not change its template hash."""
    return sorted(p for p in template_dir.rglob("agreement*") if p.is_file() and "__pycache__" not in p.parts)


def template_digest(template_dir: Path) -> dict[str, Any]:
    """SHA-256 of each template file, and one over all of them (name and hash per line)."""
    files = {p.relative_to(template_dir).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
             for p in template_files(template_dir)}
    combined = hashlib.sha256("".join(f"{n}\0{h}\n" for n, h in sorted(files.items())).encode()).hexdigest()
    return {"sha256": combined, "files": files}


def paragraphs(text: Markup) -> Markup:
    """Blank-line separated blocks become paragraphs; blocks of "- " lines become lists.

    ``text`` is already escaped, so wrapping it in tags cannot inject markup.
    """
    out = []
    for block in str(text).replace("\r\n", "\n").split("\n\n"):
        lines = [ln.strip() for ln in block.strip().split("\n") if ln.strip()]
        if not lines:
            continue
        if all(ln.startswith("- ") for ln in lines):
            out.append("<ul>" + "".join(f"<li>{ln[2:].strip()}</li>" for ln in lines) + "</ul>")
        else:
            out.append("<p>" + " ".join(lines) + "</p>")
    return Markup("\n".join(out))


def render_clauses(agreement: Agreement, template_dir: Path) -> list[dict]:
    """Each clause with its body rendered (escaped HTML paragraphs), in agreement order."""
    env = _environment(str(template_dir))
    base = agreement.context()
    clauses = []
    for number, clause in enumerate(agreement.clauses, start=1):
        context = dict(base, **agreement.values)
        try:
            body = env.from_string(clause.body).render(context)
        except (UndefinedError, TemplateError) as exc:
            raise RenderError(f"clause '{clause.id}' failed to render: {exc}", path=clause.path,
                              line=clause.line) from None
        clauses.append({
            "number": number, "id": clause.id, "version": clause.version, "title": clause.title,
            "area": clause.area, "summary": clause.summary, "initials": clause.initials,
            "jurisdiction": clause.jurisdiction, "body": paragraphs(Markup(body)),
        })
    return clauses


def render_html(agreement: Agreement, template_dir: Path) -> str:
    """The agreement's full HTML document."""
    env = _environment(str(template_dir))
    base = agreement.context()
    clauses = render_clauses(agreement, template_dir)
    areas = {a.id: a.title for a in agreement.library.areas}
    sections: list[dict[str, Any]] = []
    for clause in clauses:
        if not sections or sections[-1]["id"] != clause["area"]:
            sections.append({"id": clause["area"], "title": areas[clause["area"]], "clauses": []})
        sections[-1]["clauses"].append(clause)
    try:
        return env.get_template(agreement.library.page).render(
            base,
            title=agreement.library.title,
            language=agreement.library.language,
            guardian=agreement.guardian,
            sections=sections,
            needs_initials=any(c["initials"] for c in clauses),
            library={"name": agreement.library.name, "version": agreement.library.version},
            source={"title": agreement.library.source_title, "origin": agreement.library.source_origin},
        )
    except (UndefinedError, TemplateError) as exc:
        raise RenderError(f"template {agreement.library.page} failed to render: {exc}", path=template_dir) from None

