"""The client's own DBT agreement (clauses/documents/dbt-client-agreement), beside the therapists'.

A document library of its own, in the first person ("I will come to each session"):
the commitments a client makes in standard DBT, each covered by a clause (the
checklist below), every body easy to read, and the values a practice sets (term,
missed-weeks count, coaching hours, fees, notice) typed variables with defaults.
It renders through its own page (templates/agreement-client.html.j2), every clause
is found again in the PDF with pdftotext, and it is signed at intake in the same
visit as the consent to electronic records and the therapists' agreement: one link,
one consent, three documents each read, initialled and signed on its own pages,
countersigned, and `agreements verify` and `audit` pass for all three.
"""

from __future__ import annotations

import datetime as dt
import html
import itertools
import json
import re
import subprocess
from pathlib import Path

import pytest
from helpers import cheap_hasher, ledger_entries
from test_intake import CHECKED_BY, IDENTITY, Tablet, as_staff, copy_practice, one_error_line, text
from test_intake import new_app as intake_app
from test_packet import CLINICIAN_PASS, LEE_PASS, PASS, ROOT_PASS, STAFF_FULL, STAFF_NAME, STAFF_PASS, sign_current

from agreements_kit.authoring.documents import ESIGN_DISCLOSURE, document_dirs
from agreements_kit.authoring.html import render_clauses
from agreements_kit.authoring.library import Library, load_library
from agreements_kit.authoring.practice import load_practice
from agreements_kit.authoring.professions import PROFESSION_VALUE
from agreements_kit.authoring.render import Job, Renderer
from agreements_kit.authoring.spec import make_spec
from agreements_kit.intake.staff import StaffStore
from agreements_kit.signing.pki import PKI
from agreements_kit.signing.renders import log_renders
from agreements_kit.signing.setup import init_practice
from agreements_kit.signing.sign import sign_therapist

pytestmark = pytest.mark.requires_tool("pdftotext", "pdfinfo", "openssl")

CLIENT_DOC = "dbt-client-agreement"
TITLE = "What I agree to as a client"
CLIENT = "Jane Q. Doe"
DATE = dt.date(2026, 12, 3)
AGREEMENT = "agr-ca-agreement"  # the therapists' agreement
CLIENTS = "agr-ca-client"  # the client's agreement
CONSENT = "agr-ca-consent"  # the consent to electronic records
LINK_RE = re.compile(r"/i/([A-Za-z0-9_-]{43,})")

# The coverage checklist: what a client agrees to in standard DBT (Linehan's model), by commitment id.
# The library must hold exactly these commitments, and each must be covered by a clause.
CHECKLIST = {
    "term.length": "individual therapy and skills group for the agreed term, usually a year",
    "term.both-modes": "both modes of treatment, individual and group, for the whole term",
    "term.renewal": "deciding together at the end of the term whether to go on",
    "attendance.attend": "coming to scheduled sessions and skills group",
    "attendance.notice": "telling the therapist ahead when unable to come",
    "attendance.missed-weeks": "missing the set number of consecutive weeks of either ends the term",
    "attendance.after-the-term-ends": "talking about starting again after the term ends that way",
    "targets.life-threatening": "suicidal and self-harm behaviour, first",
    "targets.therapy-interfering": "therapy-interfering behaviour, next",
    "targets.quality-of-life": "quality-of-life behaviour, then",
    "homework.diary-card": "filling in diary cards",
    "homework.skills-practice": "practising skills between sessions",
    "coaching.purpose": "phone coaching for skills in a crisis or before one",
    "coaching.repair": "calls to repair the relationship",
    "coaching.brief": "short calls, not sessions",
    "coaching.hours": "the hours the practice sets, crisis services outside them",
    "coaching.after-self-harm": "calling before, not after, self-harm; the 24-hour rule if the practice uses it",
    "assessment.questionnaires": "progress questionnaires, if the practice uses them",
    "assessment.research-choice": "research only with written consent",
    "fees.session-fee": "the fee per session the practice sets",
    "fees.late-cancel": "late-cancellation notice and fee",
    "records.who-keeps": "who keeps the records, and how long",
    "records.copy": "how the client gets a copy",
}
# What a practice sets, and the types it sets them with.
PRACTICE_SET = {"term_months": "integer", "missed_weeks_limit": "integer", "phone_support_hours": "string",
                "offers_phone_coaching": "boolean", "uses_24_hour_rule": "boolean", "progress_forms": "boolean",
                "individual_session_fee": "integer", "group_session_fee": "integer", "late_cancel_hours": "integer",
                "late_cancel_fee": "integer", "clinical_record_years": "integer", "records_copy_days": "integer",
                "crisis_line": "name"}
FIRST_PERSON_RE = re.compile(r"\b(I|my|me)\b")
SECOND_PERSON_RE = re.compile(r"\b(you|your)\b", re.I)


def client_library() -> Library:
    return load_library(Path(__file__).resolve().parent.parent / "clauses" / "documents" / CLIENT_DOC)


def words(path: Path) -> str:
    """The PDF's text, whitespace folded, without the running footer (it interrupts paragraphs at page breaks)."""
    raw = subprocess.run(["pdftotext", str(path), "-"], capture_output=True, text=True, check=True).stdout
    kept = [ln for ln in raw.splitlines()
            if not re.fullmatch(r"\s*(Page \d+ of \d+|(Agreement )?agr-[\w-]+|" + re.escape(CLIENT) + r")\s*", ln)]
    return " ".join(" ".join(kept).split())


def plain(fragment: str) -> list[str]:
    """The paragraphs and list items of a rendered body, as text."""
    parts = re.findall(r"<(?:p|li)>(.*?)</(?:p|li)>", fragment, re.S)
    return [" ".join(html.unescape(re.sub(r"<[^>]+>", "", p)).split()) for p in parts]


def grade(text_: str) -> float:
    import textstat

    return float(textstat.flesch_kincaid_grade(text_))


# --------------------------------------------------------------------------- the library


def test_every_dbt_client_commitment_is_in_the_library_and_covered_by_a_clause():
    library = client_library()  # loading also refuses an uncovered commitment
    assert library.name == CLIENT_DOC and library.title == TITLE and library.page == "agreement-client.html.j2"
    assert [c.id for c in library.commitments] == list(CHECKLIST)
    covered = {cid: [c.id for c in library.clauses.values() if cid in c.covers] for cid in CHECKLIST}
    assert all(covered.values()), [cid for cid, clauses in covered.items() if not clauses]
    assert {cid for c in library.clauses.values() for cid in c.covers} == set(CHECKLIST)
    # Its own ids: none shared with the therapists' agreement, whose library sits beside it.
    main = load_library(Path(__file__).resolve().parent.parent / "clauses")
    assert not set(main.clauses) & set(library.clauses)
    assert not {c.id for c in main.commitments} & set(CHECKLIST)


def test_the_library_lints_clean_and_renders_in_every_jurisdiction_of_the_therapists_library():
    from agreements_kit.authoring.lint import lint_library

    library = client_library()
    report = lint_library(library.root)
    assert report.ok, [str(p) for p in report.problems] + [g.label for g in report.too_hard]
    main = load_library(Path(__file__).resolve().parent.parent / "clauses")
    assert set(main.jurisdictions) <= set(library.jurisdictions)


def test_practice_set_values_are_typed_variables_with_defaults():
    declared = client_library().variables()
    assert {n: v.type for n, v in declared.items()} == PRACTICE_SET
    assert all(v.has_default for v in declared.values())
    defaults = {n: v.default for n, v in declared.items()}
    assert defaults["term_months"] == 12 and defaults["missed_weeks_limit"] == 4  # standard DBT
    assert defaults["uses_24_hour_rule"] is True and defaults["late_cancel_hours"] == 24
    # Records kept at least 6 years (HIPAA's documentation, New York; California and Texas 7 for adults),
    # copies within 15 days by default (California, Health and Safety Code 123110; HIPAA allows 30).
    assert defaults["clinical_record_years"] == 7 and declared["clinical_record_years"].min == 6
    assert defaults["records_copy_days"] == 15 and declared["records_copy_days"].max == 30
    assert declared["missed_weeks_limit"].min == 2  # one missed week never ends a term
    assert declared["late_cancel_hours"].min == 1  # never "at least 0 hours ahead"
    for name, var in declared.items():
        if var.type == "integer":  # a range, so a negative fee or notice is refused where it is typed
            assert var.min is not None and var.max is not None and var.min >= 0 and var.unit, name
    # The same settings as the therapists' agreement, with the same types: one value says the same in both.
    main = load_library(Path(__file__).resolve().parent.parent / "clauses").variables()
    for name in ("phone_support_hours", "offers_phone_coaching", "crisis_line"):
        assert (main[name].type, main[name].max_length) == (declared[name].type, declared[name].max_length), name


def every_text(library: Library):
    """(clause, body text) for each clause under each way its variables can switch it (booleans, a zero fee)."""
    from jinja2.sandbox import SandboxedEnvironment

    env = SandboxedEnvironment(autoescape=False)
    context = {"client": {"name": CLIENT}, "therapist": {"id": "lee", "name": "Dr. Robin Lee", "credentials": "PhD"},
               "practice": {"name": "Riverbend DBT Collaborative", "phone": "(406) 555-0142", "address": "",
                            "email": ""},
               "agreement": {"id": "agr-x", "date": "2026-12-03", "jurisdiction": "US", "jurisdiction_name": "US"}}
    for clause in library.clauses.values():
        choices = {n: ([True, False] if v.type == "boolean" else [v.default, v.min] if v.type == "integer"
                       else [v.default]) for n, v in clause.variables.items()}
        for combo in itertools.product(*choices.values()):
            values = dict(zip(choices, combo, strict=True))
            body = env.from_string(clause.body).render(dict(context, **values))
            yield clause, body, values


def test_every_body_is_easy_to_read_in_the_first_person_and_as_strong_as_its_summary():
    """Each way a body can render, read as `agreements lint` reads text (authoring/readability.py)."""
    from agreements_kit.authoring import readability

    library = client_library()
    whole = []
    for clause, body, values in every_text(library):
        where = f"{clause.id} with {values}"
        plain_body = readability.plain_text(body)
        assert readability.grade(plain_body) <= 8, where
        for text_ in (plain_body, readability.plain_text(clause.summary)):
            longest = max(readability.sentences(text_), key=readability.word_count)
            assert readability.word_count(longest) <= 20, f"{where}: {longest}"
        # The summary promises no more and no less than the body: the same modal verbs, whichever branch.
        assert readability.modals(body) == readability.modals(clause.summary), where
        assert readability.modal_mismatch(clause.summary, plain_body) is None, where
        assert FIRST_PERSON_RE.search(body) and FIRST_PERSON_RE.search(clause.summary), where
        assert not SECOND_PERSON_RE.search(body) and not SECOND_PERSON_RE.search(clause.summary), where
        whole += [readability.plain_text(clause.summary), plain_body]
    assert readability.grade("\n".join(whole)) <= 7
    assert grade(" ".join(whole)) <= 7  # and as textstat itself splits the sentences


# What each coaching commitment looks like in a body, in either branch of offers_phone_coaching: the
# clauses that claim these commitments must say them whether or not the therapist offers coaching.
COACHING_SAID = {
    "coaching.purpose": [r"help (using|with) my skills"],
    "coaching.repair": [r"our work together has been hurt"],
    "coaching.brief": [r"is short", r"not a therapy session"],
    "coaching.hours": [r"I can call 555-0100 HOURS\.", r"cannot reach anyone, I will contact CRISIS"],
    "coaching.after-self-harm": [r"(?i)before I (harm myself|act)", r"911"],
}


def coaching_bodies():
    """(clause, values, body text) of every coaching clause under each combination of its switches."""
    from jinja2.sandbox import SandboxedEnvironment

    env = SandboxedEnvironment(autoescape=False, trim_blocks=True)
    library = client_library()
    for clause in library.clauses.values():
        if clause.area != "coaching":
            continue
        switches = [n for n, v in clause.variables.items() if v.type == "boolean"]
        for combo in itertools.product([True, False], repeat=len(switches)):
            values = dict(zip(switches, combo, strict=True), phone_support_hours="HOURS", crisis_line="CRISIS")
            body = env.from_string(clause.body).render(practice={"phone": "555-0100"}, **values)
            yield clause, values, " ".join(body.split())


def test_coaching_commitments_hold_with_and_without_coaching_calls():
    seen = set()
    for clause, values, body in coaching_bodies():
        for cid in clause.covers:
            for pattern in COACHING_SAID[cid]:
                assert re.search(pattern, body), f"{clause.id} with {values}: {cid} not said ({pattern})"
            seen.add((cid, values["offers_phone_coaching"]))
        if not values["offers_phone_coaching"]:
            # No coaching: no promise to call for it, no 24-hour rule; what the client does instead.
            if clause.id == "coaching.calls":
                assert "does not offer coaching calls" in body, body
            assert not re.search(r"call (my therapist )?for (coaching|short help)|24 hours|I can still call for",
                                 body), f"{clause.id} with {values}: {body}"
            assert "CRISIS" in body and "next session" in body, f"{clause.id} with {values}: {body}"
        elif clause.id == "coaching.after-self-harm":
            assert ("I will wait 24 hours" in body) == values["uses_24_hour_rule"], body
    assert seen == {(cid, on) for cid in COACHING_SAID for on in (True, False)}


def test_late_cancel_notice_of_one_hour_reads_as_one_hour():
    from jinja2.sandbox import SandboxedEnvironment

    clause = client_library().clauses["fees.late-cancel"]
    env = SandboxedEnvironment(autoescape=False, trim_blocks=True)
    for hours, said in ((1, "at least 1 hour ahead."), (24, "at least 24 hours ahead.")):
        assert said in env.from_string(clause.body).render(late_cancel_hours=hours, late_cancel_fee=75)


# --------------------------------------------------------------------------- rendering


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    """A practice in New York with its PKI, a staff account, and Jane's three documents awaiting her signature."""
    root = tmp_path_factory.mktemp("client-agreement") / "practice"
    init_practice(root, name="Test Practice", jurisdiction="US-NY", phone="(212) 555-0100",
                  address="1 Test Street, New York, NY", therapists={"lee": ("Dr. Robin Lee", "PhD", "psychologist")},
                  passphrase=ROOT_PASS.encode(), intake_passphrase=PASS.encode(),
                  clinician_passphrase=CLINICIAN_PASS)
    practice = load_practice(root)
    PKI(root / "pki").issue_clinician("lee", "Dr. Robin Lee", practice.name, CLINICIAN_PASS, LEE_PASS)
    drafts = [Renderer.load(root, document).render_to(Job(make_spec(client=CLIENT, therapist="lee", id=aid, date=DATE),
                                                          practice.drafts))
              for aid, document in ((AGREEMENT, None), (CLIENTS, CLIENT_DOC), (CONSENT, ESIGN_DISCLOSURE))]
    log_renders(practice, drafts)
    StaffStore(root, cheap_hasher()).add(STAFF_NAME, STAFF_FULL, STAFF_PASS)
    return root


def test_the_client_agreement_renders_every_clause_on_its_own_page(base: Path, cli):
    folder = base / "drafts" / CLIENTS
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["library"]["name"] == CLIENT_DOC
    assert set(manifest["variables"]) - {PROFESSION_VALUE} == set(PRACTICE_SET)  # and the therapist's profession
    assert manifest["variables"]["term_months"] == 12
    meta = subprocess.run(["pdfinfo", "-meta", str(folder / "agreement.pdf")], capture_output=True, text=True,
                          check=True).stdout
    assert re.search(r"pdfaid:part(=\"|>)3", meta), meta
    renderer = Renderer.load(base, CLIENT_DOC)
    agreement = renderer.prepare(make_spec(client=CLIENT, therapist="lee", id=CLIENTS, date=DATE))
    found = words(folder / "agreement.pdf")
    assert found.startswith("Test Practice") and TITLE in found and CLIENT in found
    assert "What my therapists promise me is in a separate agreement." in found
    for clause in render_clauses(agreement, renderer.template_dir):  # each clause: title, summary, every paragraph
        assert f"{clause['number']}. {clause['title']}" in found, clause["id"]
        assert f"In plain words: {clause['summary']}" in found, clause["id"]
        for paragraph in plain(str(clause["body"])):
            assert paragraph in found, f"{clause['id']}: {paragraph}"
        assert clause["id"] not in found  # internal codes stay in the manifest
    assert found.count("Initials required Client's initials") == sum(c.initials for c in agreement.clauses) >= 4
    assert "Client: Jane Q. Doe" in found and "Therapist: Dr. Robin Lee, PhD" in found
    assert found.index("Client: Jane Q. Doe") < found.index("Therapist: Dr. Robin Lee, PhD")
    assert "12 months" in found and "miss 4 weeks in a row" in found and "$150" in found and "$75" in found
    assert "DBT has two parts I attend each week" in found
    assert "for at least 7 years" not in found and "at least 7 years after my treatment ends, or longer" in found
    assert "within 15 days, or sooner if the law of my state requires" in found
    assert "called psychotherapy notes. Federal law does not give me a right to a copy of these notes." in found
    res = cli("reproduce", CLIENTS, "--practice", base)
    assert res.exit_code == 0 and res.stdout.startswith("identical"), res.stdout + res.stderr


@pytest.mark.parametrize("jurisdiction", ["US", "US-CA", "US-MT", "US-NY", "US-TX"])
def test_the_client_agreement_renders_in_each_jurisdiction(base: Path, tmp_path: Path, jurisdiction: str):
    renderer = Renderer.load(base, CLIENT_DOC)
    folder = renderer.render_to(Job(make_spec(client=CLIENT, therapist="lee", id="agr-ca-j", date=DATE,
                                              jurisdiction=jurisdiction), tmp_path))
    found = words(folder / "agreement.pdf")
    assert f"({jurisdiction})" in found and "The missed-weeks rule" in found


def test_practice_values_change_the_text_and_bad_ones_are_refused_with_file_and_line(tmp_path: Path, cli):
    root = tmp_path / "practice"
    settings = {"term_months": 6, "missed_weeks_limit": 3, "offers_phone_coaching": False,
                "uses_24_hour_rule": False, "progress_forms": False, "individual_session_fee": 180,
                "group_session_fee": 70, "late_cancel_hours": 48, "late_cancel_fee": 0,
                "phone_support_hours": "on weekdays from 9 am to 5 pm"}
    init_practice(root, name="Test Practice", jurisdiction="US-MT", phone="(406) 555-0142",
                  therapists={"lee": ("Dr. Robin Lee", "PhD", "psychologist")}, variables=settings)
    res = cli("render", "--client", CLIENT, "--therapist", "lee", "--id", "agr-ca-set", "--document", CLIENT_DOC,
              "--set", "late_cancel_hours=72", "--practice", root)
    assert res.exit_code == 0, res.stderr
    found = words(root / "drafts" / "agr-ca-set" / "agreement.pdf")
    for phrase in ("for 6 months from today", "miss 3 weeks in a row", "does not offer coaching calls",
                   "If I need help with my skills, or cannot reach anyone, I will contact 988",
                   "If I do harm myself, I will tell my therapist at my next session",
                   "does not use regular forms about my progress",
                   "$180", "$70", "at least 72 hours ahead", "There is no fee if I cancel later",
                   "(406) 555-0142 on weekdays from 9 am to 5 pm"):
        assert phrase in found, phrase
    assert "24 hours" not in found and "$0" not in found
    assert "I can still call for short help" not in found and "I will call for coaching" not in found
    # The therapists' agreement renders from the same practice.yaml: the client's values are not misspelt ones.
    res = cli("render", "--client", CLIENT, "--therapist", "lee", "--id", "agr-ca-main", "--practice", root)
    assert res.exit_code == 0, res.stderr
    assert "on weekdays from 9 am to 5 pm" in words(root / "drafts" / "agr-ca-main" / "agreement.pdf")
    # A value no library declares is still a mistake, in either document.
    yaml_path = root / "practice.yaml"
    yaml_path.write_text(yaml_path.read_text().replace("  term_months: 6", "  term_month: 6"))
    line = one_error_line(cli("render", "--client", CLIENT, "--therapist", "lee", "--practice", root),
                          "unknown variable 'term_month'", "practice.yaml:")
    assert CLIENT not in line
    yaml_path.write_text(yaml_path.read_text().replace("  term_month: 6", "  term_months: -2"))
    one_error_line(cli("render", "--client", CLIENT, "--therapist", "lee", "--document", CLIENT_DOC, "--practice",
                       root), "term_months", "at least 1", "practice.yaml:")
    yaml_path.write_text(yaml_path.read_text().replace("  term_months: -2", "  term_months: 6"))
    for name, low, floor in (("clinical_record_years", 5, "at least 6"), ("missed_weeks_limit", 1, "at least 2"),
                             ("late_cancel_hours", 0, "at least 1")):
        one_error_line(cli("render", "--client", CLIENT, "--therapist", "lee", "--document", CLIENT_DOC, "--set",
                           f"{name}={low}", "--practice", root), name, floor)


@pytest.mark.parametrize("document", [CLIENT_DOC, ESIGN_DISCLOSURE, None])
def test_a_misspelt_variable_is_refused_when_any_document_is_rendered(tmp_path: Path, cli, document):
    """A document keeps only the values its library declares: a name no library declares (a misspelt
    fee meant for the client's agreement) is refused with its line, not dropped for the default."""
    root = tmp_path / "practice"
    init_practice(root, name="Test Practice", jurisdiction="US-MT",
                  therapists={"lee": ("Dr. Robin Lee", "PhD", "psychologist")},
                  variables={"backup_coverage": "Sam Ortiz, LCSW", "individual_session_fees": 200})
    line_no = next(n for n, ln in enumerate((root / "practice.yaml").read_text().splitlines(), start=1)
                   if ln.strip().startswith("individual_session_fees:"))
    args = ["render", "--client", CLIENT, "--therapist", "lee", "--id", "agr-ca-typo", "--practice", root]
    res = cli(*args, *(["--document", document] if document else []))
    line = one_error_line(res, "unknown variable 'individual_session_fees'", f"practice.yaml:{line_no}:")
    assert CLIENT not in line
    assert not (root / "drafts" / "agr-ca-typo").exists()
    # Spelt right, it is the client's agreement's value, and each document renders (the therapists' own
    # backup_coverage is not a mistake for the client's agreement either).
    yaml_path = root / "practice.yaml"
    yaml_path.write_text(yaml_path.read_text().replace("individual_session_fees:", "individual_session_fee:"))
    res = cli(*args, *(["--document", document] if document else []))
    assert res.exit_code == 0, res.stderr
    if document == CLIENT_DOC:
        assert "$200 for each session" in words(root / "drafts" / "agr-ca-typo" / "agreement.pdf")


def test_a_guardian_signs_the_client_agreement_in_their_own_voice(base: Path, tmp_path: Path):
    """A parent signing for a minor says so: the client's first-person text is the client's, not the parent's."""
    renderer = Renderer.load(base, CLIENT_DOC)
    folder = renderer.render_to(Job(make_spec(client=CLIENT, therapist="lee", id="agr-ca-minor", date=DATE,
                                              guardian="Mary Doe", relation="parent"), tmp_path))
    found = words(folder / "agreement.pdf")
    assert "Signed for the client by Mary Doe (parent)" in found
    assert "I, Mary Doe, agree for Jane Q. Doe, and Jane Q. Doe agrees, to what this agreement says." in found
    assert 'so each "I" in it means Jane Q. Doe.' in found
    assert "By signing, I, Mary Doe, agree for Jane Q. Doe, and Jane Q. Doe agrees, to take part in DBT" in found
    assert "Parent: Mary Doe, for Jane Q. Doe" in found and "Client: Jane Q. Doe" not in found
    for own_voice in ("What my therapists promise me", "By signing, I agree", "Client's initials"):
        assert own_voice not in found, own_voice
    manifest = json.loads((folder / "manifest.json").read_text())
    assert found.count("Initials required Parent's initials") == sum(c["initials"] for c in manifest["clauses"]) >= 4
    assert found.index("Parent: Mary Doe") < found.index("Therapist: Dr. Robin Lee, PhD")


# --------------------------------------------------------------------------- one visit, three documents


@pytest.fixture(scope="module")
def visit(base: Path, tmp_path_factory):
    """One link for three documents, opened on the command line in staff's order; the client signs all three."""
    from click.testing import CliRunner

    from agreements_kit.cli.commands import main

    root = copy_practice(base, tmp_path_factory.mktemp("client-visit") / "practice")
    res = CliRunner().invoke(main, ["intake", "open", AGREEMENT, CLIENTS, CONSENT, "--identity", IDENTITY,
                                    "--checked-by", CHECKED_BY, "--practice", str(root), *map(str, as_staff(root))],
                             catch_exceptions=False)
    assert res.exit_code == 0, res.stderr
    token = LINK_RE.search(res.stdout).group(1)
    t = Tablet(intake_app(root))
    pages: dict[str, object] = {"claim": t.claim(token), "consent": t.get("/sign/consent")}
    pages["consent_post"] = t.post("/sign/consent", {"csrf": t.csrf, "consent": "yes"})
    for n in (1, 2, 3):
        pages[f"review{n}"] = t.get("/sign/agreement")
        pages[f"sign{n}"] = sign_current(t)
    pages["done"] = t.get("/sign/done")
    pages["receipt"] = t.get("/sign/copy/receipt.pdf")
    return {"root": root, "pages": pages, "open": res.stdout}


def test_the_client_agreement_is_signed_in_the_same_visit_as_the_therapists(visit):
    root, pages = visit["root"], visit["pages"]
    consent = text(pages["consent"])
    assert TITLE in consent and "Our commitments to you" in consent  # what the client will sign today
    titles = [re.search(r"Document (\d) of 3: ([^<]+)<", text(pages[f"review{n}"])).groups() for n in (1, 2, 3)]
    # The consent to electronic records first, then staff's order: the therapists' agreement, the client's.
    assert titles == [("1", "Consent to electronic records and signatures"), ("2", "Our commitments to you"),
                      ("3", TITLE)]
    assert CLIENTS in text(pages["review3"])
    assert pages["sign3"].headers["Location"].endswith("/sign/done")
    assert "You signed 3 documents" in text(pages["done"])
    records = {aid: json.loads((root / "signed" / aid / "01-client.json").read_bytes())
               for aid in (CONSENT, AGREEMENT, CLIENTS)}
    manifest = json.loads((root / "signed" / CLIENTS / "manifest.json").read_text())
    assert set(records[CLIENTS]["initials"]) == {c["id"] for c in manifest["clauses"] if c["initials"]}
    assert records[CLIENTS]["esign"] == records[CONSENT]["esign"]  # one consent, for the whole visit
    entries = [e for e, _ in ledger_entries(root / "signed" / "ledger.jsonl")]
    assert [e["agreement_id"] for e in entries if e.get("event") == "sign" and e.get("role") == "client"] == \
        [CONSENT, AGREEMENT, CLIENTS]


def test_all_three_verify_and_audit_after_countersigning(visit, run_bin, tmp_path: Path):
    root = visit["root"]
    receipt = tmp_path / "receipt.pdf"
    receipt.write_bytes(visit["pages"]["receipt"].data)
    listed = words(receipt)
    assert all(aid in listed for aid in (CONSENT, AGREEMENT, CLIENTS))  # one receipt names all three
    practice = load_practice(root)
    for aid in (CONSENT, AGREEMENT, CLIENTS):
        sign_therapist(practice, aid, LEE_PASS)
    for aid in (CONSENT, AGREEMENT, CLIENTS):
        res = run_bin("verify", root / "signed" / aid, "--trust", root / "pki" / "root.pem")
        assert res.exit_code == 0, res.stdout + res.stderr
        assert res.stdout.startswith(f"valid: {aid} signed by {CLIENT} (client)"), res.stdout
    res = run_bin("audit", root / "signed", "--trust", root / "pki" / "root.pem")
    assert res.exit_code == 0, res.stdout + res.stderr
    res = run_bin("reproduce", CLIENTS, "--practice", root)
    assert res.exit_code == 0 and res.stdout.startswith("identical"), res.stdout + res.stderr


def test_the_client_agreement_library_is_found_as_a_document(base: Path):
    assert CLIENT_DOC in document_dirs(load_practice(base))
