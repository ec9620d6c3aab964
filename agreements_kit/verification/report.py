"""The audit report a person can file: HTML, or PDF through the same renderer.

A summary table, the ledger's problems, and one row per agreement, problems
first. HTML is streamed row by row from the audit's SQLite file, so a report of
a large archive does not need memory for all of it; PDF needs the whole document
in WeasyPrint, so prefer HTML for very large archives.
"""

from __future__ import annotations

import datetime as dt
import io
from pathlib import Path

from agreements_kit import __version__
from agreements_kit.authoring.html import _environment
from agreements_kit.errors import AgreementsError
from agreements_kit.resources import templates_dir
from agreements_kit.store.files import NewFile, write_new
from agreements_kit.verification.audit import AuditSummary, results

TEMPLATE = "audit-report.html.j2"


def write_report(path: Path, summary: AuditSummary, db_path: Path, trust_root: Path) -> Path:
    path = Path(path)
    if path.exists():
        raise AgreementsError(f"{path} already exists; choose a new report file")
    if path.suffix.lower() not in (".html", ".htm", ".pdf"):
        raise AgreementsError(f"report {path}: the name must end in .html or .pdf")
    env = _environment(str(templates_dir()))
    stream = env.get_template(TEMPLATE).stream(
        summary=summary, rows=results(db_path), trust_root=str(trust_root),
        audited_at=dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"), version=__version__)
    if path.suffix.lower() != ".pdf":
        with NewFile(path, "w", encoding="utf-8") as fh:
            stream.dump(fh)
        return path
    from weasyprint import HTML

    from agreements_kit.authoring.pdf import TemplateFolderFetcher, font_config

    buffer = io.StringIO()
    stream.dump(buffer)  # type: ignore[arg-type]  # jinja2's stub says IO[bytes]; it writes str to text files
    write_new(path, HTML(string=buffer.getvalue(), base_url=templates_dir().as_uri() + "/",
                         url_fetcher=TemplateFolderFetcher(templates_dir())).write_pdf(font_config=font_config()))
    return path
