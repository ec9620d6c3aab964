"""The therapists' agreement in Spanish: the same clauses and commitment ids, other words.

Renders are real PDFs read back with pdftotext, as a client would read them: five
jurisdictions by three professions, each Spanish render showing every clause in Spanish
and covering the same commitment ids as the English library. The translation's
loader refuses a translation that drifts from the English (another version, other
commitments, a missing clause) with its file and line, and lint holds Spanish texts
to Fernandez Huerta reading ease 70 or more.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import yaml
from helpers import refused
from test_law import JURISDICTIONS, flat, make_law_practice, pdftext

from agreements_kit.authoring import readability
from agreements_kit.authoring.library import load_library
from agreements_kit.authoring.lint import lint_library
from agreements_kit.authoring.professions import PROFESSION_VALUE
from agreements_kit.errors import LibraryProblems
from agreements_kit.formats.record import load_disclosure
from agreements_kit.resources import clauses_dir, templates_dir

PROFESSIONS = {"lee": "psychologist", "kim": "lpc", "ortiz": "lcsw"}


@pytest.fixture
def law_practice(tmp_path: Path) -> Path:
    """test_law's practice: therapists of three professions (and one without), in New York."""
    return make_law_practice(tmp_path / "practice")


def library_copy(tmp_path: Path) -> Path:
    """The default library without its document libraries (other helpers' folders), to break on purpose."""
    root = tmp_path / "clauses"
    shutil.copytree(clauses_dir(), root, ignore=shutil.ignore_patterns("documents"))
    return root


def edit(path: Path, old: str, new: str) -> int:
    """Replace ``old`` (once) in ``path``; the 1-based line where it was."""
    text = path.read_text(encoding="utf-8")
    assert text.count(old) >= 1, old
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return text[:text.index(old)].count("\n") + 1


@pytest.mark.requires_tool("pdftotext")
def test_five_jurisdictions_by_three_professions_render_in_spanish_covering_the_same_ids(cli, law_practice,
                                                                                          tmp_path):
    english, spanish = load_library(clauses_dir()), load_library(clauses_dir(), "es")
    specs = [{"client": "Jane Q. Doe", "therapist": t, "jurisdiction": j, "language": "es", "date": "2026-12-03",
              "id": f"agr-es-{t}-{j.lower()}"} for j in JURISDICTIONS for t in PROFESSIONS]
    spec_file = tmp_path / "specs.yaml"
    spec_file.write_text(yaml.safe_dump(specs), encoding="utf-8")
    res = cli("render", "--practice", law_practice, "--spec", spec_file, "--out", tmp_path / "out")
    assert res.exit_code == 0, res.stderr
    folders = [Path(line) for line in res.stdout.split()]
    assert len(folders) == 15
    safe_act = {}
    for spec, folder in zip(specs, folders, strict=True):
        jurisdiction, therapist = spec["jurisdiction"], spec["therapist"]
        profession = PROFESSIONS[therapist]
        # Without the page footers (client, agreement id, page number), which break a text read across pages.
        text = re.sub(r" ?Jane Q\. Doe Acuerdo \S+ \S+ \d+ \S+ \d+ ?", " ", pdftext(folder / "agreement.pdf"))
        manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
        assert manifest["library"]["language"] == "es" and manifest["inputs"]["language"] == "es"
        assert manifest["variables"][PROFESSION_VALUE] == profession
        # The same clauses, in the same order, as the English agreement.
        assert [c["id"] for c in manifest["clauses"]] == list(english.clauses)
        # Every source commitment is covered by a clause the Spanish render shows, in Spanish.
        for commitment in english.commitments:
            covering = [c for c in spanish.clauses.values() if commitment.id in c.covers]
            assert covering and {c.id for c in covering} == {
                c.id for c in english.clauses.values() if commitment.id in c.covers}, commitment.id
            for clause in covering:
                shown = spanish.clause(clause.id, jurisdiction, profession)
                original = english.clause(clause.id, jurisdiction, profession)
                assert shown.covers == original.covers
                assert shown.summary != original.summary
                assert flat(shown.title) in text, (jurisdiction, therapist, shown.title)
                assert flat(shown.summary)[:60] in text, (jurisdiction, therapist, clause.id)
        # The page's own words are Spanish, the date is written by Babel, no English is left.
        for words in ("Nuestros compromisos con usted", "En pocas palabras:", "Firmas", "Cliente: Jane Q. Doe",
                      "3 de diciembre de 2026", "Anexo: las leyes detrás de este acuerdo",
                      spanish.jurisdictions[jurisdiction]):
            assert words in text, (jurisdiction, words)
        for words in ("In plain words", "Signatures", "Appendix", "We will", "Initials required"):
            assert words not in text, (jurisdiction, words)
        # The appendix lists the law (citations stay as the statutes are named).
        appendix = text[text.index("Anexo: las leyes"):]
        for clause in (spanish.clause(cid, jurisdiction, profession) for cid in spanish.clauses):
            for citation in clause.citations:
                assert flat(citation) in appendix
        safe_act[jurisdiction, therapist] = ("La ley SAFE de Nueva York se aplica a la profesión" in text,
                                             "no se aplica a la profesión de su terapeuta" in text)
    assert safe_act["US-NY", "lee"] == (True, False)
    assert safe_act["US-NY", "ortiz"] == (True, False)
    assert safe_act["US-NY", "kim"] == (False, True)
    assert all(not any(v) for (j, _), v in safe_act.items() if j != "US-NY")


def test_english_render_is_unchanged_by_the_translation(cli, law_practice, tmp_path):
    res = cli("render", "--practice", law_practice, "--client", "Jane Q. Doe", "--therapist", "lee", "--id",
              "agr-en-1", "--date", "2026-12-03", "--out", tmp_path / "out")
    assert res.exit_code == 0, res.stderr
    manifest = json.loads((Path(res.stdout.strip()) / "manifest.json").read_text(encoding="utf-8"))
    # Only a translation is recorded: an English manifest keeps the fields (and bytes) it had.
    assert "language" not in manifest["library"] and "language" not in manifest["inputs"]
    assert "strings/agreement.es.yaml" in manifest["template"]["files"]


def test_an_unknown_language_is_refused_in_one_line(cli, law_practice, tmp_path):
    res = cli("render", "--practice", law_practice, "--client", "Jane Q. Doe", "--therapist", "lee",
              "--language", "de", "--out", tmp_path / "out")
    refused(res, "has no translation into 'de'", "en, es")
    assert not (tmp_path / "out").exists()
    res = cli("render", "--practice", law_practice, "--client", "Jane Q. Doe", "--therapist", "lee",
              "--language", "Spanish!", "--out", tmp_path / "out")
    refused(res, "language must be a language code")


@pytest.mark.parametrize(("file", "old", "new", "words"), [
    ("limits.yaml", "covers: [limits.guide]", "covers: [limits.guide, limits.cannot-save]",
     "'covers' of the translation of clause 'limits.guide-analogy'"),
    ("limits.yaml", "  - id: limits.guide-analogy\n    version: 2", "  - id: limits.guide-analogy\n    version: 1",
     "'version' of the translation of clause 'limits.guide-analogy' is 1 but the base library's is 2"),
    ("availability.yaml", "{{ cancel_notice_hours }} horas", "{{ notice }} horas",
     "uses undeclared variable 'notice'"),
    ("jurisdictions/us-ny.yaml", "professions: [lpc, lmft, lmsw]", "professions: [lpc, lmft]",
     "the base library has no such variant"),
])
def test_a_translation_that_drifts_from_the_english_is_refused_with_file_and_line(tmp_path, file, old, new, words):
    root = library_copy(tmp_path)
    path = root / "translations" / "es" / file
    line = edit(path, old, new)
    with pytest.raises(LibraryProblems) as caught:
        load_library(root, "es")
    found = [str(p) for p in caught.value.problems if words in str(p)]
    assert found, [str(p) for p in caught.value.problems]
    assert found[0].startswith(f"{path}:"), found[0]
    assert abs(int(found[0].split(":")[1]) - line) <= 3  # the clause's or the key's line
    load_library(root)  # the English library itself still loads


def test_every_clause_and_variant_must_be_translated(tmp_path):
    root = library_copy(tmp_path)
    (root / "translations" / "es" / "jurisdictions" / "us-tx.yaml").unlink()
    edit(root / "translations" / "es" / "limits.yaml", "  - id: limits.guide-analogy", "  - id: limits.guide-analogyx")
    with pytest.raises(LibraryProblems) as caught:
        load_library(root, "es")
    messages = [str(p) for p in caught.value.problems]
    assert any("translation of unknown clause 'limits.guide-analogyx'" in m for m in messages), messages
    assert any("clause 'limits.guide-analogy' (limits.yaml:" in m and "has no translation into es" in m
               for m in messages), messages
    for clause in ("confidentiality.exceptions", "confidentiality.reports", "confidentiality.team"):
        assert any(f"the US-TX variant of '{clause}'" in m and "has no translation" in m for m in messages)


def test_lint_holds_spanish_to_fernandez_huerta_70_and_20_words(tmp_path):
    assert lint_library(clauses_dir()).ok
    root = library_copy(tmp_path)
    path = root / "translations" / "es" / "competence.yaml"
    hard = ("La responsabilidad profesional institucionalizada necesariamente comprende consideraciones "
            "administrativas extraordinariamente complicadas.")
    edit(path, "Seguimos la ética de nuestra profesión\"\n    summary: >-\n      Seguiremos",
         f"Seguimos la ética de nuestra profesión\"\n    summary: >-\n      {hard} Seguiremos")
    long = " ".join(["Vamos a seguir las reglas"] * 5) + "."
    edit(path, "Vamos a seguir esas reglas en todo lo que hagamos con usted.", long)
    report = lint_library(root)
    assert not report.ok
    hard_ones = [g for g in report.too_hard if g.language == "es"]
    assert all(g.language == "es" for g in report.translated) and report.translated
    assert [g.label for g in hard_ones] == ["summary of clause 'competence.ethics' (es)"]
    assert hard_ones[0].grade < 70 and hard_ones[0].measure == "reading ease"
    assert any("a sentence of 25 words in the body of clause 'competence.ethics' (es)" in str(p)
               for p in report.problems)


def test_a_third_language_is_a_data_change_only(cli, law_practice, tmp_path):
    """French here is the Spanish text relabelled: what is tested is that no code knows the language."""
    library = library_copy(tmp_path)
    shutil.copytree(library / "translations" / "es", library / "translations" / "fr")
    edit(library / "translations" / "fr" / "library.yaml", "language: es", "language: fr")
    templates = tmp_path / "templates"
    shutil.copytree(templates_dir(), templates)
    strings = (templates / "strings" / "agreement.es.yaml").read_text(encoding="utf-8")
    (templates / "strings" / "agreement.fr.yaml").write_text(strings.replace("Firmas", "Signatures du client"),
                                                             encoding="utf-8")
    settings = law_practice / "practice.yaml"
    settings.write_text(settings.read_text(encoding="utf-8") + f"clauses: {library}\ntemplates: {templates}\n",
                        encoding="utf-8")
    res = cli("render", "--practice", law_practice, "--client", "Jane Q. Doe", "--therapist", "lee",
              "--language", "fr", "--date", "2026-12-03", "--out", tmp_path / "out")
    assert res.exit_code == 0, res.stderr
    folder = Path(res.stdout.strip())
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["library"]["language"] == "fr"
    text = pdftext(folder / "agreement.pdf")
    assert "Signatures du client" in text and "3 décembre 2026" in text  # Babel's French date
    report = lint_library(library)
    assert report.ok and any("no reading measure for the language 'fr'" in str(w) for w in report.warnings)


def test_the_spanish_disclosure_is_its_own_version_with_the_same_six_rights():
    english = load_disclosure()
    spanish = load_disclosure(templates_dir() / "esign-disclosure.es.txt")
    assert spanish.version == f"{english.version}-es" and spanish.sha256 != english.sha256
    numbered = [re.findall(r"(?m)^(\d)\. ", d.text) for d in (english, spanish)]
    assert numbered[0] == numbered[1] == ["1", "2", "3", "4", "5", "6"]
    plain = readability.plain_text(spanish.text.split("\n", 2)[2])
    assert readability.ease_es(plain) >= 70 and not readability.long_sentences(plain, 20)


@pytest.mark.requires_tool("pdftotext")
def test_spanish_footer_words_and_reproduce(cli, law_practice, tmp_path):
    """The footer's "Page X of Y" is the page's own words ("Página X de Y" in Spanish, English stays "Page X of
    Y"), and a Spanish agreement re-renders from its manifest to the same bytes (the manifest names its language)."""
    out = {}
    for language in ("es", "en"):
        res = cli("render", "--practice", law_practice, "--client", "Jane Q. Doe", "--therapist", "lee",
                  "--id", f"agr-foot-{language}", "--date", "2026-12-03", "--language", language,
                  "--out", tmp_path / "out")
        assert res.exit_code == 0, res.stderr
        out[language] = Path(res.stdout.split()[0])
    es, en = pdftext(out["es"] / "agreement.pdf"), pdftext(out["en"] / "agreement.pdf")
    pages = int(re.search(r"Página 1 de (\d+)", es).group(1))
    assert pages > 1 and f"Página {pages} de {pages}" in es and "Page 1 of" not in es
    assert re.search(r"Page 1 of \d+", en) and "Página" not in en
    res = cli("reproduce", out["es"], "--practice", law_practice)
    assert res.exit_code == 0, res.stdout + res.stderr
    assert res.stdout.startswith("identical"), res.stdout
