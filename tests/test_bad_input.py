"""Bad input to ``agreements render`` and ``agreements init``.

The README promises: bad input gives exactly one line on stderr naming the
problem (with file and line for YAML), exit code 2, no traceback, and writes
nothing. Every test here checks all four, plus the key words of the message.
Line numbers are never hard-coded: they are found in the text the test wrote.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
from helpers import refused, tree

from agreements_kit.authoring.render import write_draft
from agreements_kit.errors import RenderError

CLIENT = "Jane Q. Doe"
DATE = "2026-11-27"


# --------------------------------------------------------------------------- helpers


def line_of(text: str, needle: str) -> int:
    """1-based number of the only line of ``text`` containing ``needle``."""
    found = [i for i, ln in enumerate(text.splitlines(), start=1) if needle in ln]
    assert len(found) == 1, f"{needle!r} found on lines {found}"
    return found[0]


def settings(practice: Path) -> Path:
    return practice / "practice.yaml"


def with_top_level(practice: Path, key: str, block: str) -> str:
    """Rewrite practice.yaml with top-level ``key`` replaced by ``block`` (appended); return the text."""
    text = settings(practice).read_text(encoding="utf-8")
    # Drop the existing top-level key and its indented lines, if any.
    text = re.sub(rf"(?m)^{re.escape(key)}:.*\n(?:[ \t]+.*\n|[ \t]*\n)*", "", text)
    text = text.rstrip("\n") + "\n" + block
    settings(practice).write_text(text, encoding="utf-8")
    return text


@pytest.fixture
def render(cli, practice: Path):
    """``agreements render --practice PRACTICE ARGS`` in-process."""

    def run(*args):
        return cli("render", "--practice", practice, *args)

    return run


@pytest.fixture
def before(practice: Path, tmp_path: Path):
    """Snapshots of the practice folder and of tmp_path's top level before the test acts."""
    return {"practice": tree(practice), "top": sorted(os.listdir(tmp_path))}


def nothing_written(practice: Path, tmp_path: Path, before: dict) -> None:
    assert os.listdir(practice / "drafts") == [], "the drafts folder must stay empty (no .partial folders either)"
    assert tree(practice) == before["practice"], "the practice folder must not change"
    assert sorted(os.listdir(tmp_path)) == before["top"], "no new folder may appear next to the practice"


# --------------------------------------------------------------------------- YAML and CSV spec files


def test_malformed_yaml_spec_names_file_and_line(render, practice, tmp_path, before):
    text = f"client: {CLIENT}\ntherapist: lee\nid: agr: broken\n"
    spec = tmp_path / "spec.yaml"
    spec.write_text(text, encoding="utf-8")
    before["top"] = sorted(os.listdir(tmp_path))
    line = refused(render("--spec", spec), "invalid YAML", f"{spec}:{line_of(text, 'agr: broken')}:")
    assert "mapping values are not allowed" in line
    nothing_written(practice, tmp_path, before)


def test_malformed_practice_yaml_names_file_and_line(render, practice, tmp_path):
    text = settings(practice).read_text(encoding="utf-8")
    phone = next(ln for ln in text.splitlines() if ln.startswith("  phone:"))
    text = text.replace(phone + "\n", "  phone: call: us\n")
    settings(practice).write_text(text, encoding="utf-8")
    before = tree(practice)
    refused(render("--client", CLIENT, "--therapist", "lee"),
            "invalid YAML", f"{settings(practice)}:{line_of(text, 'call: us')}:")
    assert tree(practice) == before


def test_unknown_key_in_yaml_spec_names_line(render, practice, tmp_path, before):
    text = f"client: {CLIENT}\ntherapist: lee\ncolour: red\nid: agr-0001\n"
    spec = tmp_path / "spec.yaml"
    spec.write_text(text, encoding="utf-8")
    before["top"] = sorted(os.listdir(tmp_path))
    refused(render("--spec", spec), f"{spec}:{line_of(text, 'colour')}:", "unknown key 'colour'")
    nothing_written(practice, tmp_path, before)


@pytest.mark.parametrize(("second", "field", "words"), [
    ("  therapist: nobody\n", "therapist: nobody", ["unknown therapist 'nobody'"]),
    ("  therapist: lee\n  variables:\n    cancel_notice_hours: soon\n", "cancel_notice_hours: soon",
     ["variable 'cancel_notice_hours' must be an integer"]),
], ids=["unknown-therapist", "wrong-type"])
def test_bad_second_spec_in_list_writes_nothing_for_the_first(render, practice, tmp_path, before, second, field,
                                                              words):
    """The message names the line of the offending field, and the first spec is not rendered either."""
    text = (f"- client: {CLIENT}\n  therapist: lee\n  id: agr-first\n  date: {DATE}\n"
            f"- client: John Roe\n  id: agr-second\n" + second)
    spec = tmp_path / "batch.yaml"
    spec.write_text(text, encoding="utf-8")
    before["top"] = sorted(os.listdir(tmp_path))
    refused(render("--spec", spec), f"{spec}:{line_of(text, field)}:", *words)
    assert not (practice / "drafts" / "agr-first").exists()
    nothing_written(practice, tmp_path, before)


def test_csv_spec_bad_row_names_its_line(render, practice, tmp_path, before):
    text = ("client,therapist,id,cancel_notice_hours\n"
            f"{CLIENT},lee,agr-csv-1,48\n"
            "John Roe,lee,agr-csv-2,soon\n"
            "Ann Poe,lee,agr-csv-3,12\n")
    spec = tmp_path / "intake.csv"
    spec.write_text(text, encoding="utf-8")
    before["top"] = sorted(os.listdir(tmp_path))
    refused(render("--spec", spec), f"{spec}:{line_of(text, 'John Roe')}:",
            "variable 'cancel_notice_hours' must be an integer")
    nothing_written(practice, tmp_path, before)


def test_csv_spec_bad_name_names_its_line(render, practice, tmp_path, before):
    text = f"client,therapist\n{CLIENT},lee\nJohn <b>Roe</b>,lee\n"
    spec = tmp_path / "intake.csv"
    spec.write_text(text, encoding="utf-8")
    before["top"] = sorted(os.listdir(tmp_path))
    refused(render("--spec", spec), f"{spec}:{line_of(text, 'John')}:", "client name contains '<'")
    nothing_written(practice, tmp_path, before)


def test_impossible_date_in_yaml_spec(render, practice, tmp_path, before):
    text = f"client: {CLIENT}\ntherapist: lee\ndate: 2026-13-01\n"
    spec = tmp_path / "spec.yaml"
    spec.write_text(text, encoding="utf-8")
    before["top"] = sorted(os.listdir(tmp_path))
    refused(render("--spec", spec), f"{spec}:{line_of(text, 'date:')}:", "2026-13-01")
    nothing_written(practice, tmp_path, before)


# --------------------------------------------------------------------------- unknown names


def test_unknown_therapist(render, practice, tmp_path, before):
    refused(render("--client", CLIENT, "--therapist", "nobody"), "unknown therapist 'nobody'", "lee", "ortiz")
    nothing_written(practice, tmp_path, before)


def test_unknown_therapist_with_out_folder_creates_nothing(render, practice, tmp_path, before):
    out = tmp_path / "out"
    refused(render("--client", CLIENT, "--therapist", "nobody", "--out", out), "unknown therapist 'nobody'")
    assert not out.exists()
    nothing_written(practice, tmp_path, before)


def test_unknown_clause(render, practice, tmp_path, before):
    refused(render("--client", CLIENT, "--therapist", "lee", "--clause", "nope"), "unknown clause 'nope'")
    nothing_written(practice, tmp_path, before)


def test_unknown_jurisdiction_option(render, practice, tmp_path, before):
    refused(render("--client", CLIENT, "--therapist", "lee", "--jurisdiction", "XX-YY"),
            "unknown jurisdiction 'XX-YY'", "US-NY")
    nothing_written(practice, tmp_path, before)


def _bad_practice_jurisdiction(practice: Path) -> str:
    text = settings(practice).read_text(encoding="utf-8")
    text, n = re.subn(r'(?m)^jurisdiction:.*$', 'jurisdiction: "XX-YY"', text)
    assert n == 1
    settings(practice).write_text(text, encoding="utf-8")
    return text


def test_unknown_jurisdiction_in_practice_yaml(render, practice, tmp_path):
    _bad_practice_jurisdiction(practice)
    before = tree(practice)
    refused(render("--client", CLIENT, "--therapist", "lee"), "practice.yaml", "unknown jurisdiction 'XX-YY'")
    assert tree(practice) == before


def test_unknown_jurisdiction_in_practice_yaml_names_line(render, practice, tmp_path):
    text = _bad_practice_jurisdiction(practice)
    refused(render("--client", CLIENT, "--therapist", "lee"),
            f"{settings(practice)}:{line_of(text, 'XX-YY')}:", "unknown jurisdiction 'XX-YY'")


def test_unknown_variable_option(render, practice, tmp_path, before):
    refused(render("--client", CLIENT, "--therapist", "lee", "--set", "nope=1"), "unknown variable 'nope'")
    nothing_written(practice, tmp_path, before)


def test_unknown_variable_in_practice_yaml(render, practice, tmp_path):
    text = with_top_level(practice, "variables", "variables:\n  cancel_notice_hours: 48\n  nope: 1\n")
    before = tree(practice)
    refused(render("--client", CLIENT, "--therapist", "lee"),
            f"{settings(practice)}:{line_of(text, 'nope: 1')}:", "unknown variable 'nope'")
    assert tree(practice) == before


# --------------------------------------------------------------------------- variables


def test_missing_variable_from_practice_library(render, practice, tmp_path, library_copy):
    # Take the default away from backup_coverage in a copy of the library the practice uses.
    path = library_copy / "availability.yaml"
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    start = next(i for i, ln in enumerate(lines) if ln.strip() == "backup_coverage:")
    indent = len(lines[start]) - len(lines[start].lstrip())
    end = next((i for i in range(start + 1, len(lines))
                if lines[i].strip() and len(lines[i]) - len(lines[i].lstrip()) <= indent), len(lines))
    default = [i for i in range(start + 1, end) if lines[i].strip().startswith("default:")]
    assert len(default) == 1
    del lines[default[0]]
    path.write_text("".join(lines), encoding="utf-8")
    with_top_level(practice, "clauses", f"clauses: {os.path.relpath(library_copy, practice)}\n")
    before = {"practice": tree(practice), "top": sorted(os.listdir(tmp_path))}
    refused(render("--client", CLIENT, "--therapist", "lee"),
            "clause 'availability.coverage' needs variable 'backup_coverage'", "--set backup_coverage=VALUE")
    nothing_written(practice, tmp_path, before)


def test_wrong_typed_variable_option(render, practice, tmp_path, before):
    refused(render("--client", CLIENT, "--therapist", "lee", "--set", "cancel_notice_hours=soon"),
            "variable 'cancel_notice_hours' must be an integer, not a string")
    nothing_written(practice, tmp_path, before)


def test_wrong_typed_variable_in_practice_yaml(render, practice, tmp_path):
    text = with_top_level(practice, "variables", 'variables:\n  cancel_notice_hours: "soon"\n')
    before = tree(practice)
    refused(render("--client", CLIENT, "--therapist", "lee"),
            f"{settings(practice)}:{line_of(text, 'cancel_notice_hours')}:",
            "variable 'cancel_notice_hours' must be an integer, not a string")
    assert tree(practice) == before


def test_direction_control_in_variable_value(render, practice, tmp_path, before):
    line = refused(render("--client", CLIENT, "--therapist", "lee", "--set", "backup_coverage=Dr. \u202eX"),
                   "variable 'backup_coverage'", "U+202E")
    assert "\u202e" not in line
    nothing_written(practice, tmp_path, before)


@pytest.mark.requires_tool("pdftotext")
def test_markup_in_variable_value_is_printed_literally(render, practice, tmp_path):
    literal = "<b>{{ 7*7 }}</b>"
    out = tmp_path / "out"
    res = render("--client", CLIENT, "--therapist", "lee", "--id", "agr-literal", "--date", DATE,
                 "--set", f"phone_support_hours={literal}", "--out", out)  # free text (a name refuses markup)
    assert res.exit_code == 0, res.stderr
    pdf = out / "agr-literal" / "agreement.pdf"
    assert res.stdout.strip() == str(out / "agr-literal")
    text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    flat = " ".join(text.split())
    assert literal in flat
    assert not re.search(r"\b49\b", flat), "the template in the value was evaluated"


# --------------------------------------------------------------------------- client names


@pytest.mark.parametrize(("name", "words"), [
    ("{{ 7*7 }}", ["client name contains '{'"]),
    ("<script>alert(1)</script>", ["client name contains '<'"]),
    ("Jane \u202eeoD", ["client name contains a text-direction control character", "U+202E"]),
    ("   ", ["client name is empty"]),
    ("J" * 500, ["client name is longer than 200 characters"]),
    ("Jane\nDoe", ["client name contains a line break"]),
], ids=["template", "script", "rtl-override", "blank", "500-chars", "newline"])
def test_bad_client_name(render, practice, tmp_path, before, name, words):
    line = refused(render("--client", name, "--therapist", "lee"), *words)
    assert "49" not in line
    nothing_written(practice, tmp_path, before)


def test_rtl_name_is_not_echoed(render, practice, tmp_path, before):
    res = render("--client", "Jane \u202eeoD", "--therapist", "lee")
    refused(res, "U+202E")
    assert "\u202e" not in res.stderr and "eoD" not in res.stderr
    nothing_written(practice, tmp_path, before)


def test_long_name_is_not_echoed(render, practice, tmp_path, before):
    res = render("--client", "J" * 500, "--therapist", "lee")
    refused(res, "longer than 200")
    assert "J" * 201 not in res.stderr


def test_empty_name_in_spec_file(render, practice, tmp_path, before):
    text = 'client: ""\ntherapist: lee\n'
    spec = tmp_path / "spec.yaml"
    spec.write_text(text, encoding="utf-8")
    before["top"] = sorted(os.listdir(tmp_path))
    refused(render("--spec", spec), f"{spec}:", "client name is empty")
    nothing_written(practice, tmp_path, before)


def test_empty_client_option_says_name_is_empty(render, practice, tmp_path, before):
    refused(render("--client", "", "--therapist", "lee"), "client name is empty")
    nothing_written(practice, tmp_path, before)


# --------------------------------------------------------------------------- ids and output paths


@pytest.mark.parametrize("agreement_id", ["../x", "a/b", "..", "agr/../../x"])
def test_id_with_path_characters(render, practice, tmp_path, before, agreement_id):
    refused(render("--client", CLIENT, "--therapist", "lee", "--id", agreement_id),
            f"agreement id {agreement_id!r}", "may only use letters, digits")
    nothing_written(practice, tmp_path, before)
    assert not (practice / "x").exists() and not (tmp_path / "x").exists()


def test_out_with_dotdot(render, practice, tmp_path, before):
    out = f"{tmp_path}/out/../elsewhere"
    refused(render("--client", CLIENT, "--therapist", "lee", "--out", out), "contains '..'", out)
    assert not (tmp_path / "out").exists() and not (tmp_path / "elsewhere").exists()
    nothing_written(practice, tmp_path, before)


def test_out_that_is_a_file(render, practice, tmp_path):
    out = tmp_path / "afile"
    out.write_bytes(b"keep me")
    refused(render("--client", CLIENT, "--therapist", "lee", "--out", out), "is not a folder")
    assert out.read_bytes() == b"keep me"


def test_existing_output_folder_is_refused_and_untouched(render, practice, tmp_path):
    args = ("--client", CLIENT, "--therapist", "lee", "--id", "agr-twice", "--date", DATE)
    first = render(*args)
    assert first.exit_code == 0, first.stderr
    folder = practice / "drafts" / "agr-twice"
    assert first.stdout.strip() == str(folder)
    files = {p.name: p.read_bytes() for p in folder.iterdir()}
    assert set(files) == {"agreement.pdf", "manifest.json"}
    stats = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
    snapshot = tree(practice)

    line = refused(render(*args), "already exists", str(folder))
    assert "nothing was written" in line
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == files
    assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} == stats
    assert tree(practice) == snapshot
    assert os.listdir(practice / "drafts") == ["agr-twice"]  # no hidden .partial folder left


def test_existing_folder_at_write_time_is_refused(tmp_path):
    """The last line of defence (a folder appearing between the check and the rename)."""
    parent = tmp_path / "drafts"
    existing = parent / "agr-race"
    existing.mkdir(parents=True)
    (existing / "agreement.pdf").write_bytes(b"first")
    with pytest.raises(RenderError, match="already exists"):
        write_draft(parent, "agr-race", b"second pdf", b"{}")
    assert os.listdir(parent) == ["agr-race"]
    assert os.listdir(existing) == ["agreement.pdf"]
    assert (existing / "agreement.pdf").read_bytes() == b"first"


# --------------------------------------------------------------------------- other options


def test_date_that_is_not_a_date(render, practice, tmp_path, before):
    refused(render("--client", CLIENT, "--therapist", "lee", "--date", "2026-13-01"),
            "date '2026-13-01' is not a date", "YYYY-MM-DD")
    nothing_written(practice, tmp_path, before)


def test_set_without_equals(render, practice, tmp_path, before):
    refused(render("--client", CLIENT, "--therapist", "lee", "--set", "cancel_notice_hours"),
            "--set 'cancel_notice_hours'", "expected name=value")
    nothing_written(practice, tmp_path, before)


@pytest.mark.parametrize("args", [(), ("--client", CLIENT), ("--therapist", "lee")],
                         ids=["nothing", "client-only", "therapist-only"])
def test_neither_client_nor_spec(render, practice, tmp_path, before, args):
    refused(render(*args), "give --client NAME and --therapist ID, or --spec FILE")
    nothing_written(practice, tmp_path, before)


def test_spec_together_with_client(render, practice, tmp_path, before):
    spec = tmp_path / "spec.yaml"
    spec.write_text(f"client: {CLIENT}\ntherapist: lee\n", encoding="utf-8")
    before["top"] = sorted(os.listdir(tmp_path))
    refused(render("--spec", spec, "--client", CLIENT), "either --spec files or --client/--therapist", "not both")
    nothing_written(practice, tmp_path, before)


def test_no_practice_folder(cli, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    refused(cli("render", "--practice", empty, "--client", CLIENT, "--therapist", "lee"),
            "no practice.yaml", str(empty), "agreements init")
    assert os.listdir(empty) == []


# --------------------------------------------------------------------------- init


def test_init_into_non_empty_folder(cli, practice):
    before = tree(practice)
    refused(cli("init", practice, "--name", "Other Practice"), str(practice), "already exists and is not empty")
    assert tree(practice) == before


def test_init_into_folder_with_an_unrelated_file(cli, tmp_path):
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "notes.txt").write_bytes(b"my notes\n")
    refused(cli("init", folder), "already exists and is not empty")
    assert os.listdir(folder) == ["notes.txt"]
    assert (folder / "notes.txt").read_bytes() == b"my notes\n"


def test_init_unknown_jurisdiction(cli, tmp_path):
    target = tmp_path / "new-practice"
    refused(cli("init", target, "--jurisdiction", "XX-YY"), "unknown jurisdiction 'XX-YY'", "US-MT", "US-NY")
    assert not target.exists()


BAD_INIT = pytest.mark.parametrize(("args", "words"), [
    (["--name", ""], ["'name' of 'practice' must not be empty"]),
    (["--name", "Evil \u202eCorp"], ["'name' of 'practice' contains a text-direction control character"]),
], ids=["empty-name", "rtl-name"])


@BAD_INIT
def test_init_bad_practice_details_are_refused(cli, tmp_path, args, words):
    refused(cli("init", tmp_path / "new-practice", *args), *words)


@BAD_INIT
def test_init_bad_practice_details_write_nothing(cli, tmp_path, args, words):
    target = tmp_path / "new-practice"
    refused(cli("init", target, *args), *words)
    assert not target.exists()


# --------------------------------------------------------------------------- the installed script


def test_installed_script_unknown_therapist(run_bin, practice, tmp_path):
    before = tree(practice)
    res = run_bin("render", "--practice", practice, "--client", CLIENT, "--therapist", "nobody")
    refused(res, "unknown therapist 'nobody'")
    assert tree(practice) == before


def test_installed_script_malformed_spec(run_bin, practice, tmp_path):
    text = f"client: {CLIENT}\ntherapist: [lee\n"
    spec = tmp_path / "spec.yaml"
    spec.write_text(text, encoding="utf-8")
    before = tree(practice)
    res = run_bin("render", "--spec", spec, env={"AGREEMENTS_PRACTICE": str(practice)})
    line = refused(res, "invalid YAML", f"{spec}:")
    assert re.search(rf"{re.escape(str(spec))}:\d+: ", line)
    assert tree(practice) == before


def test_option_errors_from_click_are_one_line(run_bin):
    """click's own usage errors (bad option value, unknown command) follow the one-line rule too."""
    for args, words in ((["render", "--workers", "0"], "--workers"), (["frobnicate"], "No such command")):
        res = run_bin(*args)
        refused(res, words)
        assert "--help" in res.stderr
