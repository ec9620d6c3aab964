"""The two document libraries in Spanish: the ESIGN consent and the client's DBT agreement.

Each is rendered in Spanish in the five jurisdictions and read back with pdftotext, as a
client would read it: every clause's Spanish title is there, the manifest names the same
clauses (so the same commitment ids) as the English render, and the page's own words
(headings, captions, the footer's "Página 1 de") come from the page's Spanish strings
(templates/strings/agreement-esign.es.yaml, agreement-client.es.yaml). The Spanish
renders reproduce byte for byte; the English pages keep their words.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import yaml
from test_law import JURISDICTIONS, flat, pdftext

from agreements_kit.authoring import pagestrings
from agreements_kit.authoring.documents import CLIENT_AGREEMENT, ESIGN_DISCLOSURE
from agreements_kit.authoring.library import load_library
from agreements_kit.authoring.lint import lint_library
from agreements_kit.errors import LibraryError
from agreements_kit.resources import clauses_dir, templates_dir

DOCUMENTS = (ESIGN_DISCLOSURE, CLIENT_AGREEMENT)
# Words each Spanish page shows (besides its clauses), and English words none may show.
SPANISH_WORDS = {
    ESIGN_DISCLOSURE: ("Consentimiento para registros y firmas electrónicas", "Por la consulta", "Documento",
                       "Antes de firmar documentos de Test Practice", "Por Test Practice: Dr. Robin Lee, PhD",
                       "Ley federal de los Estados Unidos"),
    CLIENT_AGREEMENT: ("Lo que acepto como cliente", "Terapeuta: Dr. Robin Lee, PhD", "Acuerdo",
                       "Este acuerdo dice lo que yo haré como cliente", "con nuestras propias palabras"),
}
ENGLISH_WORDS = ("In plain words", "Signatures", "Initials required", "Client's initials", "Page 1 of", "Date",
                 "Jurisdiction", "Clause library", "our own words")


def document_dir(name: str) -> Path:
    return clauses_dir() / "documents" / name


def render_specs(cli, practice: Path, tmp_path: Path, document: str, specs: list[dict]) -> list[Path]:
    spec_file = tmp_path / f"specs-{document}.yaml"
    spec_file.write_text(yaml.safe_dump(specs, allow_unicode=True), encoding="utf-8")
    res = cli("render", "--practice", practice, "--document", document, "--spec", spec_file,
              "--out", tmp_path / "out" / document)
    assert res.exit_code == 0, res.stderr
    folders = [Path(line) for line in res.stdout.split()]
    assert len(folders) == len(specs)
    return folders


@pytest.mark.requires_tool("pdftotext")
@pytest.mark.parametrize("document", DOCUMENTS)
def test_each_document_renders_in_spanish_in_five_jurisdictions(cli, practice, tmp_path, document):
    english, spanish = load_library(document_dir(document)), load_library(document_dir(document), "es")
    assert spanish.language == "es" and list(spanish.clauses) == list(english.clauses)
    specs = [{"client": "Jane Q. Doe", "therapist": "lee", "jurisdiction": j, "language": language,
              "date": "2026-12-03", "id": f"doc-{language}-{j.lower()}"}
             for language in ("es", "en") for j in JURISDICTIONS]
    folders = render_specs(cli, practice, tmp_path, document, specs)
    manifests = [json.loads((f / "manifest.json").read_text(encoding="utf-8")) for f in folders]
    by_spec = dict(zip([(s["language"], s["jurisdiction"]) for s in specs], zip(folders, manifests, strict=True),
                       strict=True))
    for jurisdiction in JURISDICTIONS:
        folder, manifest = by_spec["es", jurisdiction]
        english_manifest = by_spec["en", jurisdiction][1]
        assert manifest["library"]["name"] == document
        assert manifest["library"]["language"] == "es" and manifest["inputs"]["language"] == "es"
        assert "language" not in english_manifest["library"] and "language" not in english_manifest["inputs"]
        # The same clauses, versions and so the same commitment ids as the English render.
        ids = [(c["id"], c["version"]) for c in manifest["clauses"]]
        assert ids == [(c["id"], c["version"]) for c in english_manifest["clauses"]]
        assert [spanish.clauses[c].covers for c, _ in ids] == [english.clauses[c].covers for c, _ in ids]
        assert {cid for c, _ in ids for cid in spanish.clauses[c].covers} == {c.id for c in english.commitments}
        text = pdftext(folder / "agreement.pdf")
        for cid, _ in ids:
            shown = spanish.clause(cid, jurisdiction, None)
            assert shown.title != english.clauses[cid].title
            assert flat(shown.title) in text, (document, jurisdiction, shown.title)
            assert flat(shown.summary)[:50] in text, (document, jurisdiction, cid)
        for area in spanish.areas:
            assert flat(area.title) in text, (document, area.title)
        for words in (*SPANISH_WORDS[document], "En pocas palabras:", "Firmas", "Cliente: Jane Q. Doe",
                      "3 de diciembre de 2026", "Página 1 de", "Iniciales necesarias",
                      spanish.jurisdictions[jurisdiction]):
            assert words in text, (document, jurisdiction, words)
        assert re.search(r"Página \d+ de \d+", text)
        for words in ENGLISH_WORDS:
            assert words not in text, (document, jurisdiction, words)
        # The English render of the same document keeps its English page words.
        english_text = pdftext(by_spec["en", jurisdiction][0] / "agreement.pdf")
        for words in ("In plain words:", "Signatures", "Page 1 of", "2026-12-03", english.title):
            assert words in english_text, (document, jurisdiction, words)
        assert "En pocas palabras" not in english_text and "Página" not in english_text


@pytest.mark.requires_tool("pdftotext")
def test_a_guardian_signs_the_spanish_client_agreement_in_their_own_voice(cli, practice, tmp_path):
    [folder] = render_specs(cli, practice, tmp_path, CLIENT_AGREEMENT, [{
        "client": "Jane Q. Doe", "therapist": "lee", "guardian": "Sam Doe", "relation": "parent",
        "language": "es", "date": "2026-12-03", "id": "doc-es-guardian"}])
    text = pdftext(folder / "agreement.pdf")
    for words in ("Firma por el cliente Sam Doe (madre o padre)", "Yo, Sam Doe, acepto por Jane Q. Doe",
                  "cada «yo» del acuerdo es Jane Q. Doe", "Al firmar, yo, Sam Doe, acepto por Jane Q. Doe",
                  "Madre o padre: Sam Doe, por Jane Q. Doe", "Iniciales: Madre o padre", "para mostrar que la leímos"):
        assert words in text, words
    assert "(parent)" not in text and "Parent" not in text


def test_the_spanish_renders_reproduce_byte_for_byte(cli, practice, tmp_path):
    for document in DOCUMENTS:
        [folder] = render_specs(cli, practice, tmp_path, document, [{
            "client": "Jane Q. Doe", "therapist": "lee", "jurisdiction": "US-CA", "language": "es",
            "date": "2026-12-03", "id": f"doc-es-{document}"}])
        manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
        strings = f"strings/{pagestrings.page_name(load_library(document_dir(document)).page)}.es.yaml"
        assert strings in manifest["template"]["files"]  # the template hash covers the page's words
        res = cli("reproduce", "--practice", practice, folder)
        assert res.exit_code == 0, res.stderr
        assert res.stdout.startswith("identical:"), res.stdout


@pytest.mark.parametrize("document", DOCUMENTS)
def test_lint_passes_each_document_in_english_and_spanish(document):
    report = lint_library(document_dir(document))
    assert report.ok, [str(p) for p in report.problems] + [g.label for g in report.too_hard]
    spanish = [g for g in report.translated if g.language == "es"]
    clauses = load_library(document_dir(document)).clauses
    # Each clause's summary and body, and the whole document in each jurisdiction, held to Fernandez Huerta >= 70.
    assert len(spanish) == 2 * len(clauses) + len(JURISDICTIONS)
    assert all(g.grade >= 70 for g in spanish)


def test_each_page_has_the_same_messages_in_both_languages():
    for page in ("agreement", "agreement-esign", "agreement-client"):
        english = pagestrings.messages(templates_dir(), "en", page)
        spanish = pagestrings.messages(templates_dir(), "es", page)
        assert set(english) == set(spanish) and english != spanish
        assert {"page_word", "of_word", "meta_title", "provenance"} <= set(english)
        template = (templates_dir() / f"{page}.html.j2").read_text(encoding="utf-8")
        used = set(re.findall(r"page\.(\w+)", template))
        assert used - {"relation"} <= set(english), page  # 'relation' is the guardian's, filled in per agreement
        assert 'data-page-word="{{ page.page_word }}"' in template


def test_a_page_strings_file_missing_a_message_is_refused_with_its_file(tmp_path):
    folder = tmp_path / "templates"
    shutil.copytree(templates_dir() / "strings", folder / "strings")
    spanish = folder / "strings" / "agreement-client.es.yaml"
    spanish.write_text("\n".join(line for line in spanish.read_text(encoding="utf-8").splitlines()
                                 if not line.startswith("guardian_intro:")) + "\n", encoding="utf-8")
    with pytest.raises(LibraryError) as info:
        pagestrings.messages(folder, "es", "agreement-client")
    assert "message 'guardian_intro' is missing (agreement-client.en.yaml has it)" in str(info.value)
    assert str(spanish) in str(info.value)


def test_a_page_without_strings_of_its_own_uses_the_agreement_pages(tmp_path):
    """A practice's own page template (agreement-custom.html.j2) renders with agreement.LANG.yaml's words."""
    assert pagestrings.strings_path(tmp_path, "es", "agreement-custom").name == "agreement.es.yaml"
    with pytest.raises(LibraryError) as info:
        pagestrings.strings_path(tmp_path, "de", "agreement-client")
    assert "agreement-client.html.j2 has no words in 'de'" in str(info.value)
