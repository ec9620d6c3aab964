"""The rules ``agreements lint`` holds a clause library to, beyond loading: law, strength, reading, typing.

Each test breaks one thing in a copy of the default library (which lints clean) and
checks that lint fails (exit 1) or warns (exit 0) with the file and line of the text at
fault; loading problems (a bad declaration, a clause requiring an unknown one) are also
refused by every command that loads the library.
"""

from __future__ import annotations

import datetime as dt
import re
import shutil
from pathlib import Path

import pytest

from agreements_kit.authoring import readability
from agreements_kit.authoring.library import load_library
from agreements_kit.authoring.lint import lint_library
from agreements_kit.errors import LibraryProblems
from agreements_kit.resources import clauses_dir


def edit(path: Path, old: str, new: str, count: int = 1) -> int:
    """Replace ``old`` (found ``count`` times) in a file; return the 1-based line of its first place."""
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == count, (old, text.count(old))
    line = text[:text.index(old)].count("\n") + 1
    path.write_text(text.replace(old, new), encoding="utf-8")
    return line


def line_of(path: Path, needle: str) -> int:
    lines = path.read_text(encoding="utf-8").splitlines()
    return next(i for i, ln in enumerate(lines, 1) if needle in ln)


def lint(cli, lib: Path, *args: str):
    res = cli("lint", lib, *args)
    assert "Traceback" not in res.stdout + res.stderr
    return res


def failed_with(res, where: str, *words: str) -> str:
    assert res.exit_code == 1, res.stdout + res.stderr
    found = [ln for ln in res.stdout.splitlines() if ln.startswith(where + ": ") and all(w in ln for w in words)]
    assert found, f"no problem at {where} with {words} in:\n{res.stdout}"
    return found[0]


# --------------------------------------------------------------------------- law


def test_variant_without_citation_fails(cli, library_copy):
    path = library_copy / "jurisdictions" / "us-tx.yaml"
    text = path.read_text(encoding="utf-8")
    text = re.sub(r"    citations:\n      - \"Thapar.*\n      - \"Tex. Health & Safety Code 611.004\(a\)\(2\).*\n", "",
                  text, count=1)
    path.write_text(text, encoding="utf-8")
    load_library(library_copy)  # a lint rule: the library still loads
    res = lint(cli, library_copy)
    failed_with(res, f"{path}:{line_of(path, '- clause: confidentiality.exceptions')}",
                "the US-TX variant of 'confidentiality.exceptions' cites no statute or case")


def test_variant_without_review_dates_fails(cli, library_copy):
    path = library_copy / "jurisdictions" / "us-ca.yaml"
    edit(path, "    reviewed_on: 2026-12-01\n    review_by: 2027-12-01\n", "", count=3)
    res = lint(cli, library_copy)
    failed_with(res, f"{path}:{line_of(path, '- clause: confidentiality.reports')}",
                "the US-CA variant of 'confidentiality.reports' has no 'reviewed_on' or 'review_by'")


def test_general_text_of_a_varied_clause_must_cite_too(cli, library_copy):
    path = library_copy / "confidentiality.yaml"
    edit(path, '    citations:\n      - "45 CFR 164.512(j) (HIPAA: sharing to prevent a serious threat to health or '
               'safety)"\n', "")
    res = lint(cli, library_copy)
    failed_with(res, f"{path}:{line_of(path, '- id: confidentiality.exceptions')}",
                "clause 'confidentiality.exceptions' (its general text; it has jurisdiction variants) cites no")


def test_review_past_its_date_warns_but_passes(cli, library_copy):
    path = library_copy / "jurisdictions" / "us-mt.yaml"
    edit(path, "    reviewed_on: 2026-12-01\n    review_by: 2027-12-01\n",
         "    reviewed_on: 2024-01-15\n    review_by: 2025-01-15\n", count=3)
    line = line_of(path, "- clause: confidentiality.exceptions")
    res = lint(cli, library_copy)
    assert res.exit_code == 0, res.stdout + res.stderr
    warnings = [ln for ln in res.stdout.splitlines() if ln.startswith("warning: ")]
    assert len(warnings) == 3
    assert warnings[0].startswith(f"warning: {path}:{line}: the US-MT variant of 'confidentiality.exceptions' "
                                  "was due for legal review by 2025-01-15 (last reviewed 2024-01-15)")
    assert res.stdout.splitlines()[-1].endswith("no problems, 3 warnings")
    # The same library a year before the date: no warning.
    report = lint_library(library_copy, today=dt.date(2025, 1, 1))
    assert report.ok and report.warnings == []


def test_review_by_must_follow_reviewed_on(cli, library_copy):
    path = library_copy / "jurisdictions" / "us-ny.yaml"
    line = edit(path, "    review_by: 2027-12-01\n", "    review_by: 2026-01-01\n", count=5) - 1
    res = lint(cli, library_copy)
    failed_with(res, f"{path}:{line + 1}", "'review_by' of the US-NY variant of 'confidentiality.exceptions'",
                "must come after its 'reviewed_on'")


def test_unknown_profession_in_a_variant_fails_to_load(cli, library_copy):
    path = library_copy / "jurisdictions" / "us-ny.yaml"
    line = edit(path, "professions: [lpc, lmft, lmsw]", "professions: [lpc, astrologer, lmsw]")
    res = lint(cli, library_copy)
    failed_with(res, f"{path}:{line}", "'professions' of the US-NY variant", "psychologist")
    with pytest.raises(LibraryProblems):
        load_library(library_copy)


def test_two_variants_for_one_profession_fail(cli, library_copy):
    path = library_copy / "jurisdictions" / "us-ny.yaml"
    edit(path, "professions: [lpc, lmft, lmsw]", "professions: [lpc, lcsw]")
    res = lint(cli, library_copy)
    failed_with(res, f"{path}:{line_of(path, 'professions: [lpc, lcsw]') - 2}",
                "duplicate variant of 'confidentiality.exceptions' for US-NY and lcsw (first at us-ny.yaml:")


# --------------------------------------------------------------------------- dependencies


def test_clause_requiring_a_missing_clause_fails(cli, library_copy):
    path = library_copy / "confidentiality.yaml"
    edit(path, "requires: [confidentiality.exceptions, confidentiality.reports]",
         "requires: [confidentiality.exceptions, confidentiality.warnings]")
    res = lint(cli, library_copy)
    failed_with(res, f"{path}:{line_of(path, '- id: confidentiality.privacy')}",
                "clause 'confidentiality.privacy' requires clause 'confidentiality.warnings', which the library "
                "does not have")
    with pytest.raises(LibraryProblems):
        load_library(library_copy)


def test_library_without_the_exceptions_its_privacy_clause_requires_fails(cli, library_copy):
    """Taking the exceptions out of a library leaves privacy promising limits that are not there."""
    path = library_copy / "confidentiality.yaml"
    text = path.read_text(encoding="utf-8")
    start = text.index("  - id: confidentiality.reports")
    path.write_text(text[:start].rstrip() + "\n", encoding="utf-8")
    for name in ("us-mt", "us-ny", "us-ca", "us-tx"):  # the variants of the removed clause go with it
        jpath = library_copy / "jurisdictions" / f"{name}.yaml"
        jtext = jpath.read_text(encoding="utf-8")
        jtext = re.sub(r"(?ms)^  - clause: confidentiality\.reports\n.*?(?=^  - clause: |\Z)", "", jtext)
        jpath.write_text(jtext, encoding="utf-8")
    lib_yaml = library_copy / "library.yaml"
    res = lint(cli, library_copy)
    failed_with(res, f"{path}:{line_of(path, '- id: confidentiality.privacy')}",
                "requires clause 'confidentiality.reports', which the library does not have")
    failed_with(res, f"{lib_yaml}:{line_of(lib_yaml, '- id: confidentiality.mandated-reports')}",
                "source commitment 'confidentiality.mandated-reports' is covered by no clause")


def test_a_variant_can_require_more(cli, library_copy):
    path = library_copy / "jurisdictions" / "us-tx.yaml"
    line = edit(path, "  - clause: confidentiality.team\n    version: 2\n",
                "  - clause: confidentiality.team\n    version: 2\n    requires: [confidentiality.nope]\n")
    res = lint(cli, library_copy)
    failed_with(res, f"{path}:{line}", "the US-TX variant of 'confidentiality.team' requires clause "
                                       "'confidentiality.nope'")


# --------------------------------------------------------------------------- strength


def test_summary_stronger_than_its_body_fails(cli, library_copy):
    path = library_copy / "confidentiality.yaml"
    edit(path, "We may share what you tell us when your life or someone else's life is\n      in danger.",
         "We must share what you tell us when your life or someone else's life is\n      in danger.")
    res = lint(cli, library_copy)
    failed_with(res, f"{path}:{line_of(path, '- id: confidentiality.exceptions')}",
                "clause 'confidentiality.exceptions': the summary says 'must' but its body never does")


def test_summary_weaker_than_its_body_fails(cli, library_copy):
    path = library_copy / "jurisdictions" / "us-ca.yaml"
    edit(path, "we can identify, we must\n      warn them and the police.",
         "we can identify, we may\n      warn them and the police.")
    res = lint(cli, library_copy)
    failed_with(res, f"{path}:{line_of(path, '- clause: confidentiality.exceptions')}",
                "the US-CA variant of 'confidentiality.exceptions': the summary is weaker than its body: the body "
                "says 'must'")


def test_modal_verbs_as_read():
    assert readability.modals("We cannot and won't; you can\u2019t; it shall.") == {"cannot", "will not", "must"}
    assert readability.modals("We must not, shall not, will not, may not, can not.") == {
        "must not", "will not", "may not", "cannot"}
    assert readability.modal_mismatch("We may help.", "We may help, and we can.") is None
    assert readability.modal_mismatch("We can help.", "We may help.") is None  # one strength: permission, ability
    assert readability.modal_mismatch("We will help.", "We may help.") == (
        "the summary says 'will' but its body never does (the body says: may)")
    assert "weaker" in readability.modal_mismatch("Help is here.", "We will help.")


@pytest.mark.parametrize(("summary", "body", "said"), [
    ("We will share your notes.", "We will not share your notes.", "will"),
    ("We won't share your notes.", "We will share your notes.", "will not"),
    ("We can call you.", "We cannot call you.", "can"),
    ("We must tell them.", "We must not tell them.", "must"),
    ("We must not tell them.", "We must tell them.", "must not"),
    ("We may not call.", "We may call.", "may not"),
])
def test_a_negated_modal_is_a_kind_of_its_own(summary, body, said):
    assert readability.modal_mismatch(summary, body) == (
        f"the summary says '{said}' but its body never does (the body says: {readability.modals(body).pop()})")


def test_negation_summed_up_as_negation_passes():
    assert readability.modal_mismatch("We will not share your notes.", "We won't share. We will keep them.") is None
    assert readability.modal_mismatch("We cannot call.", "We can\u2019t call you.") is None
    assert readability.modal_mismatch("We may not call.", "We cannot call you.") is None  # one kind, negated


def test_summary_we_will_share_over_a_body_we_will_not_share_fails_lint(cli, library_copy):
    path = library_copy / "helpfulness.yaml"
    edit(path, "We will treat you with respect and listen without judging you.",
         "We will share what you say.")
    edit(path, "We will listen without judging you. We will take your feelings seriously and point out what "
               "makes sense in them.", "We will not share what you say.")
    edit(path, "Both are true at the same time, and we will keep both in mind.", "Both are true at the same time.")
    res = lint(cli, library_copy)
    failed_with(res, f"{path}:{line_of(path, '- id: helpfulness.respect-validation')}",
                "the summary says 'will' but its body never does (the body says: will not, can)")


# --------------------------------------------------------------------------- reading


LONG = ("We will look at every part of your plan with you and with the team, and we will change it "
        "whenever it stops helping you.")  # 25 words


def test_sentence_over_twenty_words_fails(cli, library_copy):
    path = library_copy / "consultation.yaml"
    edit(path, "Consultation is a core part of DBT.", LONG)
    res = lint(cli, library_copy)
    failed_with(res, f"{path}:{line_of(path, '- id: consultation.team-meetings')}",
                "a sentence of 25 words in the body of clause 'consultation.team-meetings' (at most 20)",
                '"We will look at every part of your ..."')


def test_abbreviations_end_no_sentence():
    text = readability.plain_text("Call Dr. Kim or Ms. Ruiz at 9 a.m. on Monday, e.g. by phone. U.S. law and "
                                  "i.e. the rules of No. 5 St. Mark Street apply. Then rest.")
    assert readability.sentences(text) == [
        "Call Dr. Kim or Ms. Ruiz at 9 a.m. on Monday, e.g. by phone.",
        "U.S. law and i.e. the rules of No. 5 St. Mark Street apply.", "Then rest."]
    assert "." not in readability.SAMPLES["therapist.name"]
    assert readability.plain_text("{{ therapist.name }} will call.") == "Robin Lee will call."


def test_list_items_are_sentences_of_their_own():
    text = readability.plain_text("We will:\n\n- Help you\n- Teach you new skills, step by step\n")
    assert readability.sentences(text) == ["We will.", "Help you.", "Teach you new skills, step by step."]
    assert readability.long_sentences(text, 5) == [(7, "Teach you new skills, step by step.")]


HARD = ("Interdisciplinary psychotherapeutic methodologies will necessitate comprehensive deliberation. "
        "Institutional responsibilities characterize contemporary dialectical interventions.")


def test_body_too_hard_fails(cli, library_copy):
    path = library_copy / "consultation.yaml"
    edit(path, "Consultation is a core part of DBT.", HARD)
    res = lint(cli, library_copy)
    line = failed_with(res, f"{path}:{line_of(path, '- id: consultation.team-meetings')}", "(TOO HARD)",
                       "body of consultation.team-meetings")
    assert float(re.search(r"reading grade (\d+\.\d)", line).group(1)) > 8


def test_whole_agreement_above_grade_seven_fails_even_when_each_clause_passes(tmp_path):
    report = lint_library(clauses_dir())
    agreements = [g for g in report.grades if g.label.startswith("the whole agreement")]
    assert agreements and all(g.grade <= 7 for g in agreements)
    assert all(g.limit == 8 for g in report.grades if not g.label.startswith("the whole agreement"))
    hardest = max(g.grade for g in agreements)
    # A lower limit for the whole agreement alone fails every agreement above it, nothing else.
    strict = lint_library(clauses_dir(), max_agreement_grade=hardest - 0.1)
    assert strict.too_hard and all(g.label.startswith("the whole agreement") for g in strict.too_hard)
    assert not strict.ok and strict.problems == []


def test_every_jurisdiction_and_profession_agreement_is_graded():
    report = lint_library(clauses_dir())
    labels = {g.label for g in report.grades if g.label.startswith("the whole agreement")}
    for j in ("US", "US-MT", "US-NY", "US-CA", "US-TX"):
        assert f"the whole agreement ({j})" in labels
    for p in ("psychologist", "lcsw", "psychiatrist", "psychiatric-nurse-practitioner", "lpc", "lmft"):
        assert f"the whole agreement (US-NY, {p})" in labels


# --------------------------------------------------------------------------- typed variables


@pytest.mark.parametrize(("decl", "words"), [
    ("        min: 0\n        max: 168\n", None),  # as shipped: fine
    ("        max: 168\n", ["is an integer and must declare 'min' (its range)"]),
    ("        min: 0\n", ["is an integer and must declare 'max' (its range)"]),
    ("        min: 200\n        max: 168\n",
     ["'min' of variable 'cancel_notice_hours'", "(200) is above its 'max' (168)"]),
    ("        min: -1\n        max: 1000000\n",
     ["'max' of variable 'cancel_notice_hours'", "between -100000 and 100000"]),
    ("        min: 0\n        max: 12\n",
     ["'default' of variable 'cancel_notice_hours'", "must be at most 12 hours, not 24"]),
    ("        min: 0\n        max: 168\n        other_than: therapist\n",
     ["'other_than' does not apply to variable 'cancel_notice_hours'", "an integer"]),
], ids=["ok", "no-min", "no-max", "min-above-max", "huge-bound", "default-out-of-range", "other-than-on-integer"])
def test_integer_declarations(cli, library_copy, decl, words):
    path = library_copy / "availability.yaml"
    line = edit(path, "        min: 0\n        max: 168\n", decl)
    res = lint(cli, library_copy)
    if words is None:
        assert res.exit_code == 0, res.stdout
        return
    assert res.exit_code == 1, res.stdout
    problems = [ln for ln in res.stdout.splitlines() if all(w in ln for w in words)]
    assert problems, res.stdout
    # file:line of the declaration (or the key at fault in it), and no cascade of "undeclared variable".
    assert re.match(rf"{re.escape(str(path))}:({'|'.join(str(n) for n in range(line - 3, line + 6))}): ", problems[0])
    assert "undeclared variable" not in res.stdout


@pytest.mark.parametrize(("old", "new", "words"), [
    ('default: "the on-call clinician of our DBT team"', 'default: "<b>nobody</b>"',
     ["'default' of variable 'backup_coverage'", "must name a person or service", "'<'"]),
    ("other_than: therapist", "other_than: client", ["'other_than' of variable 'backup_coverage'", "therapist"]),
    ("        type: name\n        other_than: therapist\n", "        type: phone\n        other_than: therapist\n",
     ["'other_than' does not apply to variable 'backup_coverage'", "a phone"]),
], ids=["name-default-with-markup", "other-than-client", "other-than-on-phone"])
def test_name_declarations(cli, library_copy, old, new, words):
    path = library_copy / "availability.yaml"
    edit(path, old, new)
    res = lint(cli, library_copy)
    assert res.exit_code == 1
    assert any(ln.startswith(f"{path}:") and all(w in ln for w in words) for ln in res.stdout.splitlines()), res.stdout


def test_phone_variables(library_copy):
    from agreements_kit.authoring.library import Variable

    phone = Variable("crisis_phone", "phone", "A number to call")
    for good in ("988", "(406) 555-0142", "+1 406 555 0142", "406.555.0142"):
        assert phone.problem(good) is None, good
    for bad in ("call us", "12", "+1 406 555 0142 0000 0000", "555-0142 ext", 5550142):
        assert phone.problem(bad), bad


# --------------------------------------------------------------------------- document libraries


def test_lint_checks_a_document_library_by_name(cli, tmp_path):
    """A document library (clauses/documents/NAME) is held to the same rules, found by --document."""
    lib = tmp_path / "library"
    shutil.copytree(clauses_dir(), lib, ignore=shutil.ignore_patterns("documents"))
    doc = lib / "documents" / "house-rules"
    (doc).mkdir(parents=True)
    (doc / "library.yaml").write_text(
        "library: house-rules\nversion: 1\ntitle: House rules\nlanguage: en\ndefault_jurisdiction: US\n"
        "jurisdictions: {US: United States}\nareas: [{id: rules, title: Rules}]\n"
        "source: {title: Rules, origin: Test, commitments: [{id: rules.quiet, paragraph: 1, text: Be quiet.}]}\n",
        encoding="utf-8")
    (doc / "rules.yaml").write_text(
        "area: rules\nclauses:\n  - id: rules.quiet\n    version: 1\n    title: Quiet\n    initials: false\n"
        "    covers: [rules.quiet]\n    summary: You must keep the waiting room quiet.\n"
        "    body: |\n      You may keep the waiting room quiet.\n", encoding="utf-8")
    res = lint(cli, lib, "--document", "house-rules")
    failed_with(res, f"{doc / 'rules.yaml'}:3", "clause 'rules.quiet': the summary says 'must' but its body never does")
    refused = cli("lint", lib, "--document", "nope")
    assert refused.exit_code == 2 and "no document library 'nope'" in refused.stderr
