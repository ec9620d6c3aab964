"""Rendering end to end, read back with a person's tools (poppler) and hashes.

The demo runs through the installed console script from an empty folder, so
these tests also prove that the clause library and templates ship with the
package.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from agreements_kit.authoring.html import template_digest
from agreements_kit.authoring.library import load_library
from agreements_kit.formats.jsonio import canonical_json
from agreements_kit.resources import clauses_dir, templates_dir

needs_poppler = pytest.mark.requires_tool("pdftotext")
pytestmark = needs_poppler


def pdftext(pdf: Path) -> str:
    return subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True, check=True).stdout


def flat(text: str) -> str:
    return " ".join(text.split())


@pytest.fixture(scope="module")
def demo(tmp_path_factory, agreements_bin) -> Path:
    """`agreements demo DIR` run once, from an empty folder; returns the draft folder."""
    base = tmp_path_factory.mktemp("demo")
    cwd = base / "elsewhere"
    cwd.mkdir()
    proc = subprocess.run([agreements_bin, "demo", str(base / "practice")], capture_output=True, text=True,
                          cwd=cwd, timeout=300)
    assert proc.returncode == 0, proc.stderr
    match = re.search(r"draft:\s+(\S+)/agreement\.pdf", proc.stdout)
    assert match, proc.stdout
    return Path(match.group(1))


def test_demo_pdf_shows_every_commitment_names_and_page_numbers(demo: Path):
    text = pdftext(demo / "agreement.pdf")
    flat_text = flat(text)
    assert "Jane Q. Doe" in flat_text
    assert "Dr. Robin Lee" in flat_text
    pages = int(re.search(r"Pages:\s+(\d+)", subprocess.run(["pdfinfo", str(demo / "agreement.pdf")],
                                                            capture_output=True, text=True).stdout).group(1))
    assert pages >= 2
    for page in range(1, pages + 1):
        assert f"Page {page} of {pages}" in flat_text
    lib = load_library(clauses_dir())
    # Clause ids are for the manifest, not for the client (test_print_quality.py checks more).
    assert not any(cid in flat_text for cid in lib.clauses)
    for cid in lib.clauses:
        assert flat(lib.clause(cid, "US-MT").title) in flat_text, cid
    for commitment in lib.commitments:
        covering = [c for c in lib.clauses.values() if commitment.id in c.covers]
        assert covering, commitment.id
        for clause in covering:
            shown = lib.clause(clause.id, "US-MT")
            assert flat(shown.title) in flat_text, (commitment.id, shown.title)
            # The plain-language summary is printed as written.
            assert flat(shown.summary)[:60] in flat_text, (commitment.id, clause.id)
    assert flat_text.count("Client's initials") == sum(c.initials for c in lib.clauses.values())
    # Montana practice: the Montana text of the confidentiality exceptions.
    exceptions = lib.clause("confidentiality.exceptions", "US-MT")
    assert exceptions.jurisdiction == "US-MT" and flat(exceptions.summary)[:60] in flat_text


def test_demo_pdf_is_pdfa3_with_title_language_and_embedded_manifest(demo: Path):
    pdf = demo / "agreement.pdf"
    meta = subprocess.run(["pdfinfo", "-meta", str(pdf)], capture_output=True, text=True, check=True).stdout
    assert re.search(r"pdfaid:part(=\"|>)3", meta), meta
    assert re.search(r"pdfaid:conformance(=\"|>)[BU]", meta), meta
    info = subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True, check=True).stdout
    assert re.search(r"Title:\s+.*treatment agreement agr-", info)
    assert "Jane" not in info  # no client data in the document metadata
    import pypdf

    catalog = pypdf.PdfReader(pdf).trailer["/Root"]
    assert catalog["/Lang"] == "en"
    assert "/AF" in catalog  # the manifest is an associated file (PDF/A-3)
    listing = subprocess.run(["pdfdetach", "-list", str(pdf)], capture_output=True, text=True, check=True).stdout
    assert "manifest.json" in listing


def test_embedded_manifest_is_manifest_json_without_the_pdf_hash(demo: Path, tmp_path: Path):
    pdf = demo / "agreement.pdf"
    subprocess.run(["pdfdetach", "-save", "1", "-o", str(tmp_path / "embedded.json"), str(pdf)], check=True)
    embedded_bytes = (tmp_path / "embedded.json").read_bytes()
    manifest = json.loads((demo / "manifest.json").read_text())
    document = manifest.pop("document")
    assert canonical_json(manifest) == embedded_bytes
    assert document["embedded_manifest_sha256"] == hashlib.sha256(embedded_bytes).hexdigest()
    assert document["sha256"] == hashlib.sha256(pdf.read_bytes()).hexdigest()
    assert document["bytes"] == pdf.stat().st_size


def test_manifest_records_inputs_clause_and_template_hashes(demo: Path):
    manifest = json.loads((demo / "manifest.json").read_text())
    lib = load_library(clauses_dir())
    assert manifest["agreement"]["id"] == demo.name
    assert manifest["agreement"]["client"]["name"] == "Jane Q. Doe"
    assert manifest["inputs"]["therapist"] == "lee"
    assert manifest["library"] == {"name": lib.name, "version": lib.version}
    assert [c["id"] for c in manifest["clauses"]] == list(lib.clauses)
    for entry in manifest["clauses"]:
        clause = lib.clause(entry["id"], "US-MT")
        assert entry["sha256"] == clause.sha256()
        assert entry["version"] == clause.version
    assert manifest["template"] == template_digest(templates_dir())
    import weasyprint

    assert manifest["software"]["weasyprint"] == weasyprint.__version__
    assert manifest["variables"]["cancel_notice_hours"] == 24
    assert manifest["variables"]["phone_support_hours"] == "on weekdays from 9 am to 5 pm"  # from practice.yaml


def test_draft_files_are_private(demo: Path):
    assert stat.S_IMODE(demo.stat().st_mode) == 0o700
    for name in ("agreement.pdf", "manifest.json"):
        assert stat.S_IMODE((demo / name).stat().st_mode) == 0o600
    assert stat.S_IMODE((demo.parent.parent / "practice.yaml").stat().st_mode) == 0o600


def test_same_inputs_in_two_processes_give_identical_pdfs(practice: Path, tmp_path: Path, run_bin):
    digests = []
    for n in (1, 2):
        out = tmp_path / f"out{n}"
        res = run_bin("render", "--practice", practice, "--client", "Ana María Núñez-O'Brien", "--therapist", "lee",
                      "--id", "agr-repro-1", "--date", "2026-03-04", "--set", "cancel_notice_hours=48", "--out", out)
        assert res.exit_code == 0, res.stderr
        assert res.stdout.strip() == str(out / "agr-repro-1")
        digests.append(hashlib.sha256((out / "agr-repro-1" / "agreement.pdf").read_bytes()).hexdigest())
    assert digests[0] == digests[1]
    other = tmp_path / "out3"
    res = run_bin("render", "--practice", practice, "--client", "Ana María Núñez-O'Brien", "--therapist", "lee",
                  "--id", "agr-repro-1", "--date", "2026-03-05", "--set", "cancel_notice_hours=48", "--out", other)
    assert res.exit_code == 0, res.stderr
    assert hashlib.sha256((other / "agr-repro-1" / "agreement.pdf").read_bytes()).hexdigest() != digests[0]
    assert "Ana María Núñez-O'Brien" in flat(pdftext(other / "agr-repro-1" / "agreement.pdf"))


def test_jurisdiction_variants_are_chosen(practice: Path, cli):
    ny = cli("render", "--practice", practice, "--client", "Jane Q. Doe", "--therapist", "lee", "--id", "agr-ny-1")
    us = cli("render", "--practice", practice, "--client", "Jane Q. Doe", "--therapist", "lee", "--id", "agr-us-1",
             "--jurisdiction", "US")
    assert ny.exit_code == 0 and us.exit_code == 0, (ny.stderr, us.stderr)
    lib = load_library(clauses_dir())
    ny_text = flat(pdftext(Path(ny.stdout.strip()) / "agreement.pdf"))
    us_text = flat(pdftext(Path(us.stdout.strip()) / "agreement.pdf"))
    ny_summary = flat(lib.clause("confidentiality.exceptions", "US-NY").summary)
    us_summary = flat(lib.clause("confidentiality.exceptions", "US").summary)
    assert ny_summary != us_summary
    assert ny_summary[:50] in ny_text and ny_summary[:50] not in us_text
    assert us_summary[:50] in us_text
    manifest = json.loads((Path(ny.stdout.strip()) / "manifest.json").read_text())
    exceptions = next(c for c in manifest["clauses"] if c["id"] == "confidentiality.exceptions")
    assert exceptions["jurisdiction"] == "US-NY"


def test_clause_selection_keeps_library_order(practice: Path, cli):
    res = cli("render", "--practice", practice, "--client", "Jane Q. Doe", "--therapist", "ortiz",
              "--clause", "limits.rescue", "--clause", "competence.scope")
    assert res.exit_code == 0, res.stderr
    manifest = json.loads((Path(res.stdout.strip()) / "manifest.json").read_text())
    assert [c["id"] for c in manifest["clauses"]] == ["competence.scope", "limits.rescue"]
    assert manifest["agreement"]["therapist"]["name"] == "Sam Ortiz"


def test_batch_from_yaml_and_csv_specs(practice: Path, tmp_path: Path, cli):
    yaml_spec = tmp_path / "batch.yaml"
    yaml_spec.write_text("- {client: Jane Q. Doe, therapist: lee, id: agr-b-1, date: 2026-01-02}\n"
                         "- {client: John Roe, therapist: ortiz, id: agr-b-2, variables: {cancel_notice_hours: 12}}\n")
    csv_spec = tmp_path / "batch.csv"
    csv_spec.write_text("client,therapist,id,date,jurisdiction,cancel_notice_hours\n"
                        "Mary Major,lee,agr-b-3,2026-01-03,US-MT,36\n"
                        "Richard Miles,lee,agr-b-4,,,\n")
    out = tmp_path / "batch-out"
    res = cli("render", "--practice", practice, "--spec", yaml_spec, "--spec", csv_spec, "--out", out, "--workers", "2")
    assert res.exit_code == 0, res.stderr
    folders = [Path(line) for line in res.stdout.split()]
    assert [f.name for f in folders] == ["agr-b-1", "agr-b-2", "agr-b-3", "agr-b-4"]
    manifests = [json.loads((f / "manifest.json").read_text()) for f in folders]
    assert [m["variables"]["cancel_notice_hours"] for m in manifests] == [24, 12, 36, 24]
    assert manifests[2]["agreement"]["jurisdiction"] == "US-MT"
    assert manifests[3]["agreement"]["jurisdiction"] == "US-NY"  # the practice's
    for f in folders:
        doc = json.loads((f / "manifest.json").read_text())["document"]
        assert doc["sha256"] == hashlib.sha256((f / "agreement.pdf").read_bytes()).hexdigest()
    assert sorted(p.name for p in out.iterdir()) == ["agr-b-1", "agr-b-2", "agr-b-3", "agr-b-4"]


def _practice_with_templates(practice: Path, css_extra: str) -> None:
    tdir = practice / "my-templates"
    shutil.copytree(templates_dir(), tdir)
    with open(tdir / "agreement.css", "a") as fh:
        fh.write(css_extra)
    settings = practice / "practice.yaml"
    settings.write_text(settings.read_text() + "templates: my-templates\n")


@pytest.mark.parametrize("url", ["http://127.0.0.1:9/x.png", "file:///etc/hostname", "../../outside.png"])
def test_templates_cannot_reach_the_network_or_other_files(practice: Path, tmp_path: Path, cli, url: str):
    (tmp_path / "outside.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    _practice_with_templates(practice, f'\nbody {{ background: url("{url}"); }}\n')
    res = cli("render", "--practice", practice, "--client", "Jane Q. Doe", "--therapist", "lee")
    assert res.exit_code == 2
    assert "refused to fetch" in res.stderr
    assert list((practice / "drafts").iterdir()) == []


def test_templates_may_use_files_of_their_own_folder(practice: Path, cli):
    _practice_with_templates(practice, "\n")
    css = practice / "my-templates" / "agreement-extra.css"
    css.write_text(".practice-name { color: #000; }\n")
    html = practice / "my-templates" / "agreement.html.j2"
    html.write_text(html.read_text().replace('<link rel="stylesheet" href="agreement.css">',
                                             '<link rel="stylesheet" href="agreement.css">\n'
                                             '<link rel="stylesheet" href="agreement-extra.css">'))
    res = cli("render", "--practice", practice, "--client", "Jane Q. Doe", "--therapist", "lee")
    assert res.exit_code == 0, res.stderr
    manifest = json.loads((Path(res.stdout.strip()) / "manifest.json").read_text())
    assert "agreement-extra.css" in manifest["template"]["files"]


def test_environment_variable_and_current_folder_find_the_practice(practice: Path, run_bin):
    by_env = run_bin("render", "--client", "Jane Q. Doe", "--therapist", "lee",
                     env={"AGREEMENTS_PRACTICE": str(practice)})
    assert by_env.exit_code == 0, by_env.stderr
    by_cwd = run_bin("render", "--client", "Jane Q. Doe", "--therapist", "lee", cwd=practice)
    assert by_cwd.exit_code == 0, by_cwd.stderr
    assert Path(by_env.stdout.strip()).parent == practice / "drafts"
    assert len(list((practice / "drafts").iterdir())) == 2


def test_wheel_ships_clause_library_and_templates(tmp_path: Path):
    repo = Path(__file__).resolve().parent.parent
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(repo)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    wheel = next(tmp_path.glob("agreements_kit-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for path in sorted((repo / "clauses").rglob("*.yaml")):
        assert f"agreements_kit/_data/clauses/{path.relative_to(repo / 'clauses').as_posix()}" in names
    templates = [p for p in sorted((repo / "templates").rglob("*")) if p.is_file()]
    assert any(p.name == "signature.js" for p in templates)  # the intake pages' files too
    for path in templates:
        assert f"agreements_kit/_data/templates/{path.relative_to(repo / 'templates').as_posix()}" in names
