"""Law by state and profession: which text a therapist's agreement gets, what it cites, what it refuses.

The texts are rendered to real PDFs and read back with pdftotext, as a client or a
lawyer would read them: five jurisdictions, three professions, each render covering
every commitment of the source agreement, with the citations in the appendix.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
from helpers import refused

from agreements_kit.authoring.agreement import _names
from agreements_kit.authoring.library import load_library
from agreements_kit.authoring.practice import Therapist
from agreements_kit.authoring.professions import PROFESSION_VALUE, profession_code
from agreements_kit.resources import clauses_dir, templates_dir
from agreements_kit.signing.setup import init_practice
from agreements_kit.verification.reproduce import reproduce

JURISDICTIONS = ("US", "US-MT", "US-NY", "US-CA", "US-TX")
# therapist id -> (name, credentials, profession as typed in practice.yaml)
THERAPISTS = {
    "lee": ("Dr. Robin Lee", "PhD", "psychologist"),
    "kim": ("Alex Kim", "LMHC", "LMHC"),
    "ortiz": ("Sam Ortiz", "LCSW", "lcsw"),
    "noprof": ("Jo Park", "MA", None),
}
SAFE_ACT_BINDS = "New York's SAFE Act applies to your therapist's profession"
SAFE_ACT_SPARES = "New York's SAFE Act report does not apply to your therapist's profession"


def flat(text: str) -> str:
    return " ".join(text.split())


def pdftext(pdf: Path) -> str:
    return flat(subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True).stdout)


def with_professions(root: Path) -> None:
    """Give each therapist of practice.yaml the profession THERAPISTS names (a line after its credentials)."""
    path = root / "practice.yaml"
    text = path.read_text(encoding="utf-8")
    for _, (_, credentials, profession) in THERAPISTS.items():
        if profession:
            text, n = re.subn(rf'(?m)^(    credentials: "{credentials}"\n)', rf"\1    profession: {profession}\n", text)
            assert n == 1
    path.write_text(text, encoding="utf-8")


def make_law_practice(root: Path) -> Path:
    """A New York practice whose therapists are of the professions THERAPISTS names (and one of none)."""
    init_practice(root, name="Law Practice", jurisdiction="US-NY", phone="(212) 555-0100",
                  therapists={tid: (n, c) for tid, (n, c, _) in THERAPISTS.items()})
    with_professions(root)
    return root


@pytest.fixture
def law_practice(tmp_path: Path) -> Path:
    return make_law_practice(tmp_path / "practice")


def render(cli, practice: Path, therapist: str, jurisdiction: str, out: Path, *extra: str) -> Path:
    agreement_id = f"agr-{therapist}-{jurisdiction.lower()}"
    res = cli("render", "--practice", practice, "--client", "Jane Q. Doe", "--therapist", therapist,
              "--jurisdiction", jurisdiction, "--id", agreement_id, "--date", "2026-12-03", "--out", out, *extra)
    assert res.exit_code == 0, res.stderr
    return Path(res.stdout.strip())


@pytest.mark.requires_tool("pdftotext")
def test_five_jurisdictions_by_three_professions_render_and_cover_every_commitment(cli, law_practice, tmp_path):
    lib = load_library(clauses_dir())
    out = tmp_path / "out"
    safe_act = {}
    for jurisdiction in JURISDICTIONS:
        for therapist in ("lee", "kim", "ortiz"):
            folder = render(cli, law_practice, therapist, jurisdiction, out)
            text = pdftext(folder / "agreement.pdf")
            profession = {"lee": "psychologist", "kim": "lpc", "ortiz": "lcsw"}[therapist]
            manifest = json.loads((folder / "manifest.json").read_text())
            assert manifest["variables"][PROFESSION_VALUE] == profession
            for commitment in lib.commitments:
                clauses = [c for c in lib.clauses.values() if commitment.id in c.covers]
                assert clauses, commitment.id
                for clause in clauses:
                    shown = lib.clause(clause.id, jurisdiction, profession)
                    assert flat(shown.title) in text, (jurisdiction, therapist, shown.title)
                    assert flat(shown.summary)[:60] in text, (jurisdiction, therapist, clause.id)
            # The appendix lists every citation of the texts used, under the clause's number and title.
            appendix = text[text.index("Appendix: the law behind this agreement"):]
            for number, clause in enumerate((lib.clause(cid, jurisdiction, profession) for cid in lib.clauses), 1):
                for citation in clause.citations:
                    assert flat(citation) in appendix, (jurisdiction, citation)
                if clause.citations:
                    assert f"{number}. {clause.title}:" in appendix
            safe_act[jurisdiction, therapist] = (SAFE_ACT_BINDS in text, SAFE_ACT_SPARES in text)
    # The SAFE Act report is described as binding only the professions it names.
    assert safe_act["US-NY", "lee"] == (True, False)
    assert safe_act["US-NY", "ortiz"] == (True, False)
    assert safe_act["US-NY", "kim"] == (False, True)
    assert all(not any(v) for (j, _), v in safe_act.items() if j != "US-NY")


@pytest.mark.requires_tool("pdftotext")
def test_state_texts_say_what_each_state_requires(cli, law_practice, tmp_path):
    out = tmp_path / "out"
    texts = {j: pdftext(render(cli, law_practice, "lee", j, out) / "agreement.pdf") for j in JURISDICTIONS}
    # Texas: no duty to warn, disclosure only to medical or law enforcement personnel (611.004).
    assert "Texas law does not give therapists a duty to warn" in texts["US-TX"]
    assert "we may tell medical staff or the police, and only them" in texts["US-TX"]
    assert "Thapar v. Zezulka, 994 S.W.2d 635 (Tex. 1999)" in texts["US-TX"]
    assert "people you live with" not in texts["US-TX"]
    # Texas: the team hears of the client under 611.004(a)(7), not by a consent the client could revoke.
    assert "Tex. Health & Safety Code 611.004(a)(7)" in texts["US-TX"]
    assert "Your initials on this part give that consent" not in texts["US-TX"]
    # California: duty to protect, and the 24-hour report to the local police (who tell the Department of Justice).
    assert "California law gives therapists a duty to protect" in texts["US-CA"]
    assert "We must also report the threat to the local police within 24 hours" in texts["US-CA"]
    assert "You may ask a court to give that right back" in texts["US-CA"]
    assert "tell the police" not in texts["US-CA"]  # the police hear of it once: the warning is the report
    for citation in ("Cal. Civ. Code 43.92", "Cal. Welf. & Inst. Code 8105(c)", "Tarasoff v. Regents",
                     "Cal. Welf. & Inst. Code 8100(b)(1)"):
        assert citation in texts["US-CA"]
    assert "8103(f)" not in texts["US-CA"]
    # The summaries state a duty to warn with its conditions, not for any threat.
    assert "If you make a serious threat to hurt a person we can identify, we must warn them" in texts["US-CA"]
    assert "a real threat of violence against a person we can identify, and say how" in texts["US-MT"]
    # Montana: the duty to warn.
    assert "Montana law gives mental health workers a duty to warn" in texts["US-MT"]
    assert "Mont. Code Ann. 27-1-1102" in texts["US-MT"]
    # New York: adult abuse reports are allowed, not required; Mental Hygiene Law 33.13 is not relied on.
    assert "New York law allows this report, but it does not require it of us" in texts["US-NY"]
    # Child abuse: a must for a child (or a parent's account) before us in our work (SSL 413), else a may (414).
    assert "we must report the abuse of a child we see in our work" in texts["US-NY"]
    assert "If we learn of a child's abuse in other ways, we may report it" in texts["US-NY"]
    # The SAFE Act report: required, but not a step that would increase the danger (9.46(c)).
    assert "not a choice" not in texts["US-NY"]
    assert "The law does not require a step that would put anyone in more danger" in texts["US-NY"]
    assert "33.13" not in texts["US-NY"]
    for j in ("US-MT", "US-CA", "US-TX"):
        assert "we must report it" in texts[j]
    assert "45 CFR 164.512(j)" in texts["US"]


def test_a_therapist_without_profession_is_refused_where_a_text_depends_on_it(cli, law_practice, tmp_path):
    """New York's safety text differs by profession: without one, the client could not tell whether the
    SAFE Act binds their therapist, even when the credentials say LCSW. Montana's text is one for all."""
    path = law_practice / "practice.yaml"
    text = path.read_text(encoding="utf-8").replace('credentials: "MA"', 'credentials: "LCSW"')
    path.write_text(text, encoding="utf-8")
    line = text.splitlines().index("  noprof:") + 1
    out = tmp_path / "out"
    res = cli("render", "--practice", law_practice, "--client", "Jane Q. Doe", "--therapist", "noprof",
              "--jurisdiction", "US-NY", "--out", out)
    refused(res, f"{path}:{line}: therapist 'noprof' (Jo Park) has no 'profession'",
            "in US-NY the text of clause 'confidentiality.exceptions' depends on it", "psychologist", "lmsw")
    assert not out.exists()
    # A New York agreement without the clauses that vary by profession needs none.
    spec = tmp_path / "spec.yaml"
    spec.write_text("client: Jane Q. Doe\ntherapist: noprof\njurisdiction: US-NY\n"
                    "clauses: [confidentiality.team]\n", encoding="utf-8")
    assert cli("render", "--practice", law_practice, "--spec", spec, "--out", out).exit_code == 0
    folder = render(cli, law_practice, "noprof", "US-MT", out)
    manifest = json.loads((folder / "manifest.json").read_text())
    assert PROFESSION_VALUE not in manifest["variables"]


def test_profession_variants_reproduce_from_the_manifest(cli, law_practice, tmp_path):
    """Re-rendering from the manifest alone (the practice may have changed since) picks the same texts."""
    out = tmp_path / "out"
    for therapist in ("lee", "kim"):
        folder = render(cli, law_practice, therapist, "US-NY", out)
        result = reproduce(folder, clauses_dir(), templates_dir())
        assert result.identical, result.differences


def test_render_without_a_required_clause_is_refused(cli, law_practice, tmp_path):
    out = tmp_path / "out"
    res = cli("render", "--practice", law_practice, "--out", out, "--spec",
              _spec(tmp_path, ["confidentiality.privacy", "confidentiality.exceptions"]))
    line = refused(res, "clause 'confidentiality.privacy' cannot stand without clause 'confidentiality.reports'")
    assert res.exit_code == 2 and line.count("\n") == 0
    assert not out.exists()
    # With what it requires, it renders.
    res = cli("render", "--practice", law_practice, "--out", out, "--spec",
              _spec(tmp_path, ["confidentiality.privacy", "confidentiality.exceptions", "confidentiality.reports"]))
    assert res.exit_code == 0, res.stderr


def _spec(tmp_path: Path, clauses: list[str]) -> Path:
    path = tmp_path / f"spec-{len(clauses)}.yaml"
    path.write_text(f"client: Jane Q. Doe\ntherapist: lee\nclauses: [{', '.join(clauses)}]\n", encoding="utf-8")
    return path


@pytest.mark.parametrize("value", ["Dr. Robin Lee", "dr. robin  lee", "lee", "Dr. Robin Lee, by phone", "Dr. Lee",
                                   "Robin", "LEE by phone", "your therapist", "me", "Myself", "I"])
def test_coverage_cannot_name_the_absent_therapist(cli, law_practice, tmp_path, value):
    res = cli("render", "--practice", law_practice, "--client", "Jane Q. Doe", "--therapist", "lee",
              "--set", f"backup_coverage={value}", "--out", tmp_path / "out")
    refused(res, "variable 'backup_coverage' must name someone other than the therapist (Dr. Robin Lee)")
    assert not (tmp_path / "out").exists()
    # Another therapist's agreement may name Dr. Lee as cover.
    res = cli("render", "--practice", law_practice, "--client", "Jane Q. Doe", "--therapist", "kim",
              "--set", "backup_coverage=Dr. Robin Lee", "--out", tmp_path / "out")
    assert res.exit_code == 0, res.stderr


def test_coverage_names_compare_after_normalising_and_case_folding():
    therapist = Therapist("nunez", "Dr. Jos\u00e9 N\u00fa\u00f1ez", "PhD", "psychologist")
    for value in ("Dr. Nu\u0301n\u0303ez", "JOSE\u0301", "N\u00da\u00d1EZ on call", "Straße für Dich, I"):
        assert _names(value, therapist), value
    for value in ("Dr. Sam Ortiz", "the on-call clinician of our DBT team", "Jo Nunes", "Lee Crisis Line",
                  "Mercy Hospital"):
        assert not _names(value, therapist), value
    # A title is no part of the name: another doctor may cover.
    assert not _names("Dr. Kim", Therapist("lee", "Dr. Robin Lee", "PhD"))


def test_coverage_named_in_practice_yaml_as_the_therapist_is_refused_with_its_line(cli, law_practice, tmp_path):
    path = law_practice / "practice.yaml"
    text = path.read_text(encoding="utf-8").replace("variables:\n  {}\n", 'variables:\n  backup_coverage: "Alex Kim"\n')
    path.write_text(text, encoding="utf-8")
    line = text.splitlines().index('  backup_coverage: "Alex Kim"') + 1
    res = cli("render", "--practice", law_practice, "--client", "Jane Q. Doe", "--therapist", "kim",
              "--out", tmp_path / "out")
    refused(res, f"{path}:{line}:", "must name someone other than the therapist (Alex Kim)")


@pytest.mark.parametrize(("given", "words"), [
    ("cancel_notice_hours=-5", ["variable 'cancel_notice_hours' must be at least 0 hours, not -5"]),
    ("cancel_notice_hours=500", ["variable 'cancel_notice_hours' must be at most 168 hours, not 500"]),
    ("crisis_line=<script>", ["variable 'crisis_line' must name a person or service", "'<'"]),
    ("crisis_line=12345", ["variable 'crisis_line' must name a person or service", "no letters"]),
])
def test_typed_variables_refuse_bad_values_from_the_command_line(cli, law_practice, tmp_path, given, words):
    res = cli("render", "--practice", law_practice, "--client", "Jane Q. Doe", "--therapist", "lee",
              "--set", given, "--out", tmp_path / "out")
    refused(res, "command line", *words)


def test_typed_variables_refuse_bad_values_in_a_spec_file_with_its_line(cli, law_practice, tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text("client: Jane Q. Doe\ntherapist: lee\nvariables:\n  offers_phone_coaching: true\n"
                    "  cancel_notice_hours: -1\n", encoding="utf-8")
    res = cli("render", "--practice", law_practice, "--spec", spec, "--out", tmp_path / "out")
    refused(res, f"{spec}:5:", "variable 'cancel_notice_hours' must be at least 0 hours, not -1")


def test_unknown_profession_in_practice_yaml_names_its_line(cli, law_practice, tmp_path):
    path = law_practice / "practice.yaml"
    text = path.read_text(encoding="utf-8").replace("profession: psychologist", "profession: astrologer")
    path.write_text(text, encoding="utf-8")
    line = text.splitlines().index("    profession: astrologer") + 1
    res = cli("render", "--practice", law_practice, "--client", "Jane Q. Doe", "--therapist", "lee",
              "--out", tmp_path / "out")
    refused(res, f"{path}:{line}:", "'profession' of therapist 'lee' must be one of", "psychologist", "lmft",
            "astrologer")


def test_profession_is_not_a_practice_variable(cli, law_practice, tmp_path):
    path = law_practice / "practice.yaml"
    text = path.read_text(encoding="utf-8").replace("variables:\n  {}\n", f"variables:\n  {PROFESSION_VALUE}: lcsw\n")
    path.write_text(text, encoding="utf-8")
    res = cli("render", "--practice", law_practice, "--client", "Jane Q. Doe", "--therapist", "noprof",
              "--out", tmp_path / "out")
    refused(res, f"'{PROFESSION_VALUE}' is not a variable", "give each therapist a 'profession'")


@pytest.mark.parametrize(("typed", "code"), [
    ("LCPC", "lpc"), ("LCMHC", "lpc"), ("LCSW-R", "lcsw"), ("licensed psychologist", "psychologist"),
    ("MD", "psychiatrist"), ("PMHNP-BC", "psychiatric-nurse-practitioner"), ("RN", "rn"),
    ("registered nurse", "rn"), ("LMSW", "lmsw"), ("astrologer", None),
])
def test_profession_titles_as_practices_write_them(typed, code):
    assert profession_code(typed) == code


def test_new_york_safe_act_variants_bind_registered_nurses_not_master_social_workers():
    lib = load_library(clauses_dir())
    rn, lmsw = (lib.clause("confidentiality.exceptions", "US-NY", p).body for p in ("rn", "lmsw"))
    assert "SAFE Act applies to your therapist's profession" in rn
    assert "does not apply to your therapist's profession" in lmsw


def test_clauses_show_by_profession(cli):
    res = cli("clauses", "--library", clauses_dir(), "show", "confidentiality.exceptions", "--jurisdiction",
              "US-NY", "--profession", "LMFT")
    assert res.exit_code == 0, res.stderr
    assert "professions: lpc, lmft, lmsw" in res.stdout
    assert "cites: N.Y. Mental Hygiene Law 9.46" in res.stdout
    assert "reviewed: 2026-12-01, next review by 2027-12-01" in res.stdout
    refused(cli("clauses", "--library", clauses_dir(), "show", "confidentiality.exceptions", "--profession", "x"),
            "unknown profession 'x'", "psychologist")
