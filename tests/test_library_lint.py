"""The clause library: ``load_library``, ``agreements lint`` and ``agreements clauses``.

Each broken-library test starts from a copy of the default library, breaks one
thing, and checks both ``agreements lint DIR`` (exit 1, the problem printed as
"file:line: message") and ``load_library`` (raises LibraryError/LibraryProblems
carrying the same problem). Expected lines are found in the edited text, never
hard-coded, and clauses are chosen by structure, not by their wording, so the
tests survive edits to the library's prose.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from agreements_kit.authoring.library import load_library
from agreements_kit.errors import LibraryError, LibraryProblems
from agreements_kit.resources import clauses_dir

# Hard words in short sentences (none over 20 words), with the modal verb of the body it replaces the summary of.
HARD_PROSE = ("Interdisciplinary psychotherapeutic methodologies will necessitate comprehensive deliberation. "
              "Institutional responsibilities, epistemological uncertainties, and jurisdictional confidentiality "
              "obligations characterize contemporary dialectical interventions.")


# --------------------------------------------------------------------------- text helpers


def read_lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines(keepends=True)


def write_lines(path: Path, lines: list[str]) -> None:
    path.write_text("".join(lines), encoding="utf-8")


def indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def clause_ids(path: Path) -> list[str]:
    """Clause ids of an area file, in file order (from the text)."""
    return re.findall(r"(?m)^  - id: (\S+)\s*$", path.read_text(encoding="utf-8"))


def clause_span(lines: list[str], cid: str) -> tuple[int, int]:
    """0-based [start, end) of the clause whose item starts with '- id: CID'."""
    start = next(i for i, ln in enumerate(lines) if re.fullmatch(rf"  - id: {re.escape(cid)}\s*", ln))
    end = next((i for i in range(start + 1, len(lines)) if lines[i].strip() and indent(lines[i]) <= 2), len(lines))
    return start, end


def key_span(lines: list[str], cid: str, key: str) -> tuple[int, int]:
    """0-based [start, end) of a clause key and the lines nested under it (block scalars too)."""
    start, end = clause_span(lines, cid)
    k = next(i for i in range(start, end) if re.match(rf"(  - |    ){re.escape(key)}:", lines[i]))
    stop = k + 1
    while stop < end and (not lines[stop].strip() or indent(lines[stop]) > 4):
        stop += 1
    while stop > k + 1 and not lines[stop - 1].strip():  # trailing blank lines belong to no key
        stop -= 1
    return k, stop


def line_no(path: Path, needle: str) -> int:
    """1-based line of the only line of ``path`` containing ``needle``."""
    found = [i for i, ln in enumerate(read_lines(path), start=1) if needle in ln]
    assert len(found) == 1, f"{needle!r} found on lines {found} of {path}"
    return found[0]


def clause_data(path: Path) -> list[dict]:
    """The clauses of an area file as plain data (PyYAML, independent of the package's loader)."""
    return yaml.safe_load(path.read_text(encoding="utf-8"))["clauses"]


def clause_without_variables(path: Path) -> str:
    return next(c["id"] for c in clause_data(path) if not c.get("variables"))


def add_variable(path: Path, cid: str, name: str, decl: list[str], use: str | None) -> int:
    """Declare variable ``name`` in clause ``cid`` (which has none) and use it in the body.

    ``decl`` are the declaration's lines under the name. Returns the 1-based line of the name.
    """
    lines = read_lines(path)
    body, _ = key_span(lines, cid, "body")
    new = ["    variables:\n", f"      {name}:\n"] + [f"        {d}\n" for d in decl]
    lines[body:body] = new
    if use is not None:
        body += len(new)
        lines.insert(body + 1, f"      {use}\n")
    write_lines(path, lines)
    return line_no(path, f"      {name}:")


def insert_body_line(path: Path, cid: str, text: str) -> int:
    """Insert ``text`` as the first line of a clause body; return its 1-based line."""
    lines = read_lines(path)
    body, _ = key_span(lines, cid, "body")
    assert lines[body].rstrip().endswith("|"), "bodies are literal block scalars"
    lines.insert(body + 1, f"      {text}\n")
    write_lines(path, lines)
    return body + 2


# --------------------------------------------------------------------------- checking helpers


def lint_fails(cli, lib: Path, where: str | list[str] | re.Pattern, *words: str) -> str:
    """Lint must exit 1 and print a problem at ``where`` that has every word.

    ``where`` is "file:line" or a list of acceptable ones (then followed by ": "), or
    a regex matched at the start of the problem. ``load_library`` must raise with
    the same problem. Returns the printed line.
    """
    wheres = [where] if isinstance(where, (str, re.Pattern)) else where
    res = cli("lint", lib)
    assert res.exit_code == 1, f"exit {res.exit_code}\nstdout: {res.stdout}\nstderr: {res.stderr}"
    assert "Traceback" not in res.stdout + res.stderr
    problems = res.stdout.splitlines()
    n = len(problems)
    assert res.stderr == f"error: {n} problem{'s' if n != 1 else ''} found\n"

    def matches(text: str) -> bool:
        at = any(re.match(w, text) if isinstance(w, re.Pattern) else text.startswith(w + ": ") for w in wheres)
        return at and all(w in text for w in words)

    printed = [p for p in problems if matches(p)]
    assert printed, f"no problem at {wheres} with {words} in:\n{res.stdout}"

    with pytest.raises(LibraryError) as info:
        load_library(lib)
    raised = info.value.problems if isinstance(info.value, LibraryProblems) else [info.value]
    assert any(matches(str(p)) for p in raised), [str(p) for p in raised]
    assert [str(p) for p in raised] == problems, "lint prints exactly the problems load_library finds"
    return printed[0]


def loc(path: Path, line: int) -> str:
    return f"{path}:{line}"


# --------------------------------------------------------------------------- the default library


def test_default_library_lints_clean(cli):
    res = cli("lint", clauses_dir())
    assert res.exit_code == 0, res.stdout + res.stderr
    assert res.stderr == ""
    lines = res.stdout.splitlines()
    assert lines[-1].startswith("ok: ") and "no problems" in lines[-1]
    assert "TOO HARD" not in res.stdout
    lib = load_library(clauses_dir())
    grades = [ln for ln in lines if ": reading grade " in ln]
    variants = lib.all_variants()
    # A summary and a body of every clause and variant, and each whole agreement.
    agreements = [ln for ln in grades if "the whole agreement" in ln]
    assert len(grades) == 2 * (len(lib.clauses) + len(variants)) + len(agreements)
    for cid in lib.clauses:
        assert any(ln.endswith(f"summary of {cid}") for ln in grades), cid
        assert any(ln.endswith(f"body of {cid}") for ln in grades), cid
    for jurisdiction in lib.jurisdictions:
        assert any(ln.endswith(f"the whole agreement ({jurisdiction})") for ln in agreements), jurisdiction
    assert "warning:" not in res.stdout


def test_installed_script_lints_the_builtin_library_by_default(run_bin):
    res = run_bin("lint")  # from an empty folder: no practice, so the built-in library
    assert res.exit_code == 0, res.stdout + res.stderr
    assert "ok: " in res.stdout and "Traceback" not in res.stderr
    # The installed package's own copy (site-packages/.../_data/clauses in a wheel install,
    # the checkout's clauses/ in an editable one): read its path back and compare the files.
    match = re.search(r"^(/\S+)/competence\.yaml:\d+:", res.stdout, re.M)
    assert match, res.stdout
    shipped = Path(match.group(1))
    assert shipped.name == "clauses"
    assert (shipped / "competence.yaml").read_bytes() == (clauses_dir() / "competence.yaml").read_bytes()


def test_default_library_covers_every_commitment():
    lib = load_library(clauses_dir())
    assert lib.commitments
    covered = {cid for c in lib.clauses.values() for cid in c.covers}
    missing = [c.id for c in lib.commitments if c.id not in covered]
    assert missing == []
    # Every commitment written in library.yaml (read independently) is one the loader knows.
    raw = yaml.safe_load((clauses_dir() / "library.yaml").read_text(encoding="utf-8"))
    assert {c["id"] for c in raw["source"]["commitments"]} == {c.id for c in lib.commitments}


def test_default_library_initials_and_variants():
    lib = load_library(clauses_dir())
    assert lib.clauses["confidentiality.exceptions"].initials is True
    limits = [c for c in lib.clauses.values() if c.id.startswith("limits.")]
    assert limits, "the library has limits.* clauses"
    assert all(c.initials is True for c in limits), [c.id for c in limits if not c.initials]
    jurisdictions = {j for (j, _) in lib.variants}
    assert {"US-CA", "US-MT", "US-NY", "US-TX"} <= jurisdictions
    for jurisdiction in ("US-CA", "US-MT", "US-NY", "US-TX"):
        for clause in ("confidentiality.exceptions", "confidentiality.reports", "confidentiality.team"):
            assert (jurisdiction, clause) in lib.variants, (jurisdiction, clause)
    assert {"US", "US-CA", "US-MT", "US-NY", "US-TX"} <= set(lib.jurisdictions)


def test_clauses_lists_every_clause(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no practice here: the built-in library
    res = cli("clauses")
    assert res.exit_code == 0, res.stderr
    listed = re.findall(r"(?m)^  (\S+) v\d+: ", res.stdout)
    in_files = [cid for p in sorted(clauses_dir().glob("*.yaml")) if p.name != "library.yaml"
                for cid in clause_ids(p)]
    assert in_files and sorted(listed) == sorted(in_files)
    assert sorted(listed) == sorted(load_library(clauses_dir()).clauses)
    assert re.search(r"(?m)^  confidentiality\.exceptions v\d+: .*\(initials\).*variants: US-CA, US-MT, US-NY, US-TX\)"
                     r" \(by profession in US-NY\)$", res.stdout)
    assert "cancel_notice_hours (integer)" in res.stdout


def test_clauses_show_new_york_variant(cli):
    res = cli("clauses", "--library", clauses_dir(), "show", "confidentiality.exceptions", "--jurisdiction", "US-NY")
    assert res.exit_code == 0, res.stderr
    out = res.stdout
    assert out.startswith("confidentiality.exceptions v")
    note = next(ln for ln in out.splitlines() if ln.startswith("jurisdiction: "))
    assert note.startswith("jurisdiction: US-NY (variant v")
    assert "SAFE Act" in note and "9.46" in note
    assert "source: " + str(clauses_dir() / "jurisdictions" / "us-ny.yaml") in out
    assert "New York" in out and "initials: yes" in out
    plain = cli("clauses", "--library", clauses_dir(), "show", "confidentiality.exceptions")
    assert plain.exit_code == 0 and "SAFE Act" not in plain.stdout and "jurisdiction:" not in plain.stdout


def test_clauses_show_unknown_clause(cli):
    res = cli("clauses", "--library", clauses_dir(), "show", "nope")
    assert res.exit_code == 2
    assert res.stdout == ""
    assert res.stderr.splitlines() == [res.stderr.strip()]
    assert res.stderr.startswith("error: unknown clause 'nope'")


def test_clauses_show_unknown_jurisdiction(cli):
    res = cli("clauses", "--library", clauses_dir(), "show", "confidentiality.exceptions", "--jurisdiction", "XX")
    assert res.exit_code == 2
    assert res.stderr.startswith("error: unknown jurisdiction 'XX'") and res.stderr.count("\n") == 1


# --------------------------------------------------------------------------- broken libraries


def test_malformed_yaml(cli, library_copy):
    path = library_copy / "limits.yaml"
    cid = clause_ids(path)[0]
    lines = read_lines(path)
    k, _ = key_span(lines, cid, "title")
    lines[k] = "    title: What: broken\n"
    write_lines(path, lines)
    lint_fails(cli, library_copy, loc(path, line_no(path, "What: broken")),
               "invalid YAML", "mapping values are not allowed here")


def test_unknown_key_in_clause(cli, library_copy):
    path = library_copy / "limits.yaml"
    cid = clause_ids(path)[0]
    lines = read_lines(path)
    k, _ = key_span(lines, cid, "initials")
    lines.insert(k + 1, "    colour: red\n")
    write_lines(path, lines)
    lint_fails(cli, library_copy, loc(path, line_no(path, "colour: red")),
               f"unknown key 'colour' in clause '{cid}'", "allowed: body, citations, covers")


def test_missing_summary(cli, library_copy):
    path = library_copy / "competence.yaml"
    cid = clause_ids(path)[-1]
    lines = read_lines(path)
    k, stop = key_span(lines, cid, "summary")
    del lines[k:stop]
    write_lines(path, lines)
    lint_fails(cli, library_copy, loc(path, line_no(path, f"- id: {cid}")),
               f"missing key 'summary' in clause '{cid}'")


@pytest.mark.parametrize(("key", "value", "words"), [
    ("version", '"one"', ["'version' of clause", "must be an integer, not a string"]),
    ("initials", '"yes"', ["'initials' of clause", "must be true or false, not a string"]),
    ("title", "", ["'title' of clause", "must be a non-empty string, not empty"]),
])
def test_wrong_type(cli, library_copy, key, value, words):
    path = library_copy / "competence.yaml"
    cid = clause_ids(path)[-1]
    lines = read_lines(path)
    k, _ = key_span(lines, cid, key)
    lines[k] = f"    {key}: {value}  # broken\n"
    write_lines(path, lines)
    lint_fails(cli, library_copy, loc(path, line_no(path, "# broken")), f"clause '{cid}'", *words)


def test_duplicate_clause_id_in_one_file(cli, library_copy):
    path = library_copy / "helpfulness.yaml"
    first, second = clause_ids(path)[:2]
    lines = read_lines(path)
    start, _ = clause_span(lines, second)
    lines[start] = f"  - id: {first}\n"
    write_lines(path, lines)
    first_line = [i for i, ln in enumerate(read_lines(path), 1) if ln == f"  - id: {first}\n"]
    assert len(first_line) == 2
    lint_fails(cli, library_copy, loc(path, first_line[1]),
               f"duplicate clause id '{first}'", f"(first at {path.name}:{first_line[0]})")


def test_duplicate_clause_id_across_two_files(cli, library_copy):
    # Clause ids start with their area and each area has one file, so a second file
    # holding an existing clause must claim an existing area: that file is refused.
    original = library_copy / "competence.yaml"
    cid = clause_ids(original)[0]
    lines = read_lines(original)
    start, end = clause_span(lines, cid)
    extra = library_copy / "more-competence.yaml"  # sorts after competence.yaml
    write_lines(extra, ["area: competence\n", "clauses:\n", *lines[start:end]])
    lint_fails(cli, library_copy, loc(extra, line_no(extra, "area: competence")),
               "area 'competence' is already defined in competence.yaml")


def test_duplicate_key_in_mapping(cli, library_copy):
    path = library_copy / "competence.yaml"
    cid = clause_ids(path)[0]
    lines = read_lines(path)
    k, _ = key_span(lines, cid, "version")
    lines.insert(k + 1, "    version: 2  # again\n")
    write_lines(path, lines)
    lint_fails(cli, library_copy, loc(path, line_no(path, "# again")), "invalid YAML", "duplicate key 'version'")


def test_body_uses_undeclared_variable(cli, library_copy):
    path = library_copy / "competence.yaml"
    cid = clause_without_variables(path)
    used = insert_body_line(path, cid, "Call {{ hotline }} any time.")
    body = used - 1
    # The line of the body, or better the line that uses the variable.
    lint_fails(cli, library_copy, [loc(path, body), loc(path, used)],
               f"body of clause '{cid}' uses undeclared variable 'hotline'")


def test_declared_variable_never_used(cli, library_copy):
    path = library_copy / "competence.yaml"
    cid = clause_without_variables(path)
    decl = add_variable(path, cid, "hotline", ["type: string", 'description: "A phone line"'], use=None)
    lines = read_lines(path)
    body = key_span(lines, cid, "body")[0] + 1
    lint_fails(cli, library_copy, [loc(path, decl), loc(path, body)],
               f"variable 'hotline' of clause '{cid}' is declared but never used in its body")


def test_body_uses_client_address(cli, library_copy):
    path = library_copy / "competence.yaml"
    cid = clause_ids(path)[0]
    used = insert_body_line(path, cid, "We will write to {{ client.address }}.")
    lint_fails(cli, library_copy, loc(path, used),
               f"body of clause '{cid}' uses 'client.address'", "(allowed: name)")


def test_body_uses_client_address_by_subscript(cli, library_copy):
    path = library_copy / "competence.yaml"
    cid = clause_ids(path)[0]
    used = insert_body_line(path, cid, "We will write to {{ client['address'] }}.")
    lint_fails(cli, library_copy, loc(path, used), f"clause '{cid}'", "client")


def test_variant_for_unknown_clause(cli, library_copy):
    path = library_copy / "jurisdictions" / "us-mt.yaml"
    text = path.read_text(encoding="utf-8")
    text, n = re.subn(r"(?m)^(  - clause: )\S+", r"\1confidentiality.nope", text, count=1)
    assert n == 1
    path.write_text(text, encoding="utf-8")
    lint_fails(cli, library_copy, loc(path, line_no(path, "confidentiality.nope")),
               "variant for unknown clause 'confidentiality.nope'")


def test_variant_for_unknown_jurisdiction(cli, library_copy):
    path = library_copy / "jurisdictions" / "us-mt.yaml"
    text = path.read_text(encoding="utf-8")
    text, n = re.subn(r"(?m)^jurisdiction: .*$", "jurisdiction: US-ZZ", text)
    assert n == 1
    path.write_text(text, encoding="utf-8")
    lint_fails(cli, library_copy, loc(path, line_no(path, "US-ZZ")),
               "unknown jurisdiction 'US-ZZ'", "US-MT", "US-NY")


def test_covers_unknown_commitment(cli, library_copy):
    path = library_copy / "competence.yaml"
    cid = clause_ids(path)[0]
    lines = read_lines(path)
    k, _ = key_span(lines, cid, "covers")
    assert lines[k].rstrip().endswith("]")
    lines[k] = lines[k].rstrip()[:-1] + ", competence.nope]\n"
    write_lines(path, lines)
    lint_fails(cli, library_copy, [loc(path, line_no(path, f"- id: {cid}")), loc(path, k + 1)],
               f"clause '{cid}' covers unknown commitment 'competence.nope'")


def _uncover_one(lib: Path) -> tuple[Path, str]:
    """Drop a commitment that only one clause covers from that clause's covers list."""
    files = [p for p in sorted(lib.glob("*.yaml")) if p.name != "library.yaml"]
    count: dict[str, int] = {}
    for p in files:
        for c in clause_data(p):
            for x in c["covers"]:
                count[x] = count.get(x, 0) + 1
    for p in files:
        for c in clause_data(p):
            lonely = [x for x in c["covers"] if count[x] == 1]
            if len(c["covers"]) >= 2 and lonely:
                lines = read_lines(p)
                k, _ = key_span(lines, c["id"], "covers")
                rest = [x for x in c["covers"] if x != lonely[0]]
                lines[k] = f"    covers: [{', '.join(rest)}]\n"
                write_lines(p, lines)
                return p, lonely[0]
    pytest.fail("no clause covers two commitments, one of them alone")


def test_commitment_covered_by_no_clause(cli, library_copy):
    _, commitment = _uncover_one(library_copy)
    index = library_copy / "library.yaml"
    # Names library.yaml (with or without a line: the line is checked by the test below).
    lint_fails(cli, library_copy, re.compile(rf"{re.escape(str(index))}(:\d+)?: "),
               f"source commitment '{commitment}' is covered by no clause")


def test_commitment_covered_by_no_clause_names_its_line(cli, library_copy):
    _, commitment = _uncover_one(library_copy)
    index = library_copy / "library.yaml"
    lint_fails(cli, library_copy, loc(index, line_no(index, f"- id: {commitment}")),
               f"source commitment '{commitment}' is covered by no clause")


def test_same_variable_with_two_types(cli, library_copy):
    # Areas load in library order: competence comes before limits.
    first_path, second_path = library_copy / "competence.yaml", library_copy / "limits.yaml"
    first = clause_without_variables(first_path)
    second = clause_without_variables(second_path)
    add_variable(first_path, first, "team_size",
                 ["type: integer", "min: 1", "max: 50", 'description: "People on the team"', "default: 5"],
                 "We are {{ team_size }}.")
    second_decl = add_variable(second_path, second, "team_size",
                               ["type: string", 'description: "People on the team"', 'default: "five"'],
                               "We are {{ team_size }}.")
    first_id = line_no(first_path, f"- id: {first}")
    second_id = line_no(second_path, f"- id: {second}")
    lint_fails(cli, library_copy, [loc(second_path, second_id), loc(second_path, second_decl)],
               "variable 'team_size' is string here but integer at",
               f"competence.yaml:{first_id}")


def test_default_of_wrong_type(cli, library_copy):
    path = library_copy / "competence.yaml"
    cid = clause_without_variables(path)
    add_variable(path, cid, "wait_hours",
                 ["type: integer", "min: 0", "max: 72", 'description: "Hours to wait"', 'default: "soon"  # broken'],
                 "We wait {{ wait_hours }} hours.")
    lint_fails(cli, library_copy, loc(path, line_no(path, "# broken")),
               f"'default' of variable 'wait_hours' of clause '{cid}' must be an integer, not a string")


@pytest.mark.parametrize(("bad", "words"), [
    ("{% if %}", ["Expected an expression"]),
    ("Dear {{ client.name }.", ["unexpected '}'"]),
], ids=["empty-if", "unclosed-expression"])
def test_jinja_syntax_error_in_body(cli, library_copy, bad, words):
    path = library_copy / "competence.yaml"
    cid = clause_ids(path)[0]
    used = insert_body_line(path, cid, bad)
    lint_fails(cli, library_copy, loc(path, used), f"template error in body of clause '{cid}'", *words)


def test_jinja_syntax_error_on_a_later_body_line(cli, library_copy):
    path = library_copy / "competence.yaml"
    cid = clause_ids(path)[0]
    lines = read_lines(path)
    body, _ = key_span(lines, cid, "body")
    lines[body + 1:body + 1] = ["      Fine first line.\n", "\n", "      Then {{ client.name }.\n"]
    write_lines(path, lines)
    lint_fails(cli, library_copy, loc(path, line_no(path, "Then {{ client.name }.")),
               f"template error in body of clause '{cid}'")


def test_summary_too_hard_to_read(cli, library_copy):
    path = library_copy / "consultation.yaml"
    cid = clause_ids(path)[0]
    lines = read_lines(path)
    k, stop = key_span(lines, cid, "summary")
    lines[k:stop] = ["    summary: >-\n", f"      {HARD_PROSE}\n"]
    write_lines(path, lines)
    load_library(library_copy)  # readability is a lint check, not a load error

    res = cli("lint", library_copy)
    assert res.exit_code == 1, res.stdout + res.stderr
    # The summary, and the whole agreements that include it (at most grade 7), are too hard; nothing else.
    hard = [ln for ln in res.stdout.splitlines() if "TOO HARD" in ln]
    assert res.stderr == f"error: {len(hard)} problem{'s' if len(hard) > 1 else ''} found\n"
    hard = [ln for ln in hard if "the whole agreement" not in ln]
    assert len(hard) == 1
    m = re.fullmatch(r"(.+): reading grade (\d+\.\d) \(TOO HARD\) summary of (\S+)", hard[0])
    assert m, hard[0]
    assert m.group(1) == loc(path, line_no(path, f"- id: {cid}"))
    assert m.group(3) == cid
    assert float(m.group(2)) > 8
    assert "ok: " not in res.stdout

    # The same summary passes when the limit is raised above its grade.
    relaxed = cli("lint", library_copy, "--max-grade", str(float(m.group(2)) + 1), "--max-agreement-grade", "20")
    assert relaxed.exit_code == 0 and "TOO HARD" not in relaxed.stdout


def test_render_refuses_a_broken_practice_library(cli, practice, library_copy):
    """A practice whose own library is broken cannot render: exit 2, one line, the first problem."""
    path = library_copy / "limits.yaml"
    cid = clause_ids(path)[0]
    lines = read_lines(path)
    k, _ = key_span(lines, cid, "initials")
    lines.insert(k + 1, "    colour: red\n")
    write_lines(path, lines)
    settings = practice / "practice.yaml"
    settings.write_text(settings.read_text(encoding="utf-8") + f"clauses: {library_copy}\n", encoding="utf-8")
    res = cli("render", "--practice", practice, "--client", "Jane Doe", "--therapist", "lee")
    assert res.exit_code == 2
    assert res.stderr.count("\n") == 1
    assert res.stderr.startswith(f"error: {loc(path, line_no(path, 'colour: red'))}: unknown key 'colour'")
    assert "run 'agreements lint'" in res.stderr
    assert list((practice / "drafts").iterdir()) == []


def test_impossible_date_value_in_clause_file(cli, library_copy):
    path = library_copy / "competence.yaml"
    cid = clause_ids(path)[0]
    lines = read_lines(path)
    k, _ = key_span(lines, cid, "version")
    lines[k] = "    version: 2026-13-01\n"
    write_lines(path, lines)
    lint_fails(cli, library_copy, loc(path, line_no(path, "2026-13-01")), "2026-13-01")
