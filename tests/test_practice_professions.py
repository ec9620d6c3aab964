"""A therapist's profession, from ``init_practice`` to ``reproduce``.

``init_practice`` (and so ``agreements demo``) writes each therapist's profession to
practice.yaml, where it picks the texts of duties that bind some professions only (New
York's SAFE Act report). ``reproduce`` re-renders from the manifest, which records that
profession (``therapist_profession``); when the bytes differ for another reason, its
clause-by-clause report compares each clause with the text chosen for that profession,
so it names the clause that changed and not the profession-specific ones.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from agreements_kit.authoring.library import load_library
from agreements_kit.authoring.practice import load_practice
from agreements_kit.authoring.professions import PROFESSION_VALUE
from agreements_kit.errors import PracticeError
from agreements_kit.resources import clauses_dir, templates_dir
from agreements_kit.signing.setup import init_practice
from agreements_kit.verification.reproduce import reproduce

THERAPISTS = {
    "lee": ("Dr. Robin Lee", "PhD", "psychologist"),  # the SAFE Act report binds psychologists
    "kim": ("Alex Kim", "LMHC", "LMHC"),  # ... and not mental health counselors (as typed: lpc's other name)
    "park": ("Jo Park", "MA"),  # no profession given
}


@pytest.fixture
def practice(tmp_path: Path) -> Path:
    return init_practice(tmp_path / "practice", name="Profession Practice", jurisdiction="US-NY",
                         phone="(212) 555-0100", therapists=THERAPISTS)


def test_init_practice_writes_each_profession(practice: Path):
    loaded = load_practice(practice)
    assert {tid: t.profession for tid, t in loaded.therapists.items()} == {"lee": "psychologist", "kim": "lpc",
                                                                           "park": None}
    text = (practice / "practice.yaml").read_text(encoding="utf-8")
    assert "US (general), US-CA, US-MT, US-NY or US-TX" in text  # the comment names the five jurisdictions
    assert text.count("profession:") == 2


def test_init_practice_refuses_an_unknown_profession_and_creates_nothing(tmp_path: Path):
    root = tmp_path / "practice"
    with pytest.raises(PracticeError) as caught:
        init_practice(root, name="P", jurisdiction="US", therapists={"lee": ("Dr. Robin Lee", "PhD", "astrologer")})
    assert "'profession' of therapist 'lee' must be one of" in str(caught.value) and "astrologer" in str(caught.value)
    assert not root.exists() and not list(tmp_path.iterdir())


def _render(cli, practice: Path, therapist: str) -> Path:
    res = cli("render", "--practice", practice, "--client", "Jane Q. Doe", "--therapist", therapist,
              "--id", f"agr-prof-{therapist}", "--date", "2026-12-03")
    assert res.exit_code == 0, res.stderr
    return Path(res.stdout.strip())


def _library_with_edited_rescue(tmp_path: Path) -> Path:
    """The shipped library with one general clause (limits.rescue) reworded."""
    library = tmp_path / "edited-clauses"
    shutil.copytree(clauses_dir(), library)
    limits = library / "limits.yaml"
    text = limits.read_text(encoding="utf-8")
    assert "- We cannot rescue you." in text
    limits.write_text(text.replace("- We cannot rescue you.", "- We can rescue you."), encoding="utf-8")
    return library


def test_new_york_refuses_a_therapist_without_profession(cli, practice: Path):
    """In New York the safety text depends on the profession: without one, no agreement is rendered."""
    res = cli("render", "--practice", practice, "--client", "Jane Q. Doe", "--therapist", "park",
              "--id", "agr-prof-park", "--date", "2026-12-03")
    assert res.exit_code == 2
    assert "therapist 'park'" in res.stderr and "has no 'profession'" in res.stderr


@pytest.mark.parametrize("therapist", ["lee", "kim"])
def test_reproduce_names_only_the_changed_clause_whatever_the_profession(cli, practice: Path, tmp_path: Path,
                                                                         therapist: str):
    folder = _render(cli, practice, therapist)
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    profession = load_practice(practice).therapists[therapist].profession
    assert manifest["variables"].get(PROFESSION_VALUE) == profession  # recorded, and None: not recorded
    # The profession picked a text of its own in New York: the test means something only if it did.
    exceptions = next(c for c in manifest["clauses"] if c["id"] == "confidentiality.exceptions")
    general = load_library(clauses_dir()).clause("confidentiality.exceptions", "US-NY")
    assert exceptions["sha256"] != general.sha256()

    # Unchanged library: identical.
    assert reproduce(folder, clauses_dir(), templates_dir()).identical
    # One general clause reworded: the bytes differ, and the report names that clause alone.
    result = reproduce(folder, _library_with_edited_rescue(tmp_path), templates_dir())
    assert not result.identical
    version = load_library(clauses_dir()).clauses["limits.rescue"].version
    assert result.differences == [f"clause limits.rescue differs from the text that was signed (v{version})"], \
        result.differences
