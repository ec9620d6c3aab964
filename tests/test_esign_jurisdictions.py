"""The consent to electronic records renders wherever the therapists' agreement does.

ESIGN is federal law, so the consent's library has one general text, but a document
library must list the practice's jurisdiction: a practice in California or Texas (which
the therapists' agreement has variants for) must get its consent too, at intake or from
``agreements render --document esign-disclosure``.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from agreements_kit.authoring.documents import ESIGN_DISCLOSURE
from agreements_kit.authoring.library import load_library
from agreements_kit.resources import clauses_dir
from agreements_kit.signing.setup import init_practice


def test_the_consent_lists_every_jurisdiction_of_the_agreement():
    agreement = load_library(clauses_dir())
    consent = load_library(clauses_dir() / "documents" / ESIGN_DISCLOSURE)
    assert set(agreement.jurisdictions) <= set(consent.jurisdictions)
    assert {"US", "US-CA", "US-MT", "US-NY", "US-TX"} <= set(consent.jurisdictions)


@pytest.mark.parametrize("jurisdiction", ["US-CA", "US-TX"])
def test_the_consent_renders_for_a_practice_in(cli, tmp_path: Path, jurisdiction: str):
    practice = init_practice(tmp_path / "practice", name="Test Practice", jurisdiction=jurisdiction,
                             phone="(555) 555-0100", address="1 Test Street",
                             therapists={"lee": ("Dr. Robin Lee", "PhD", "psychologist")})
    res = cli("render", "--practice", practice, "--client", "Jane Q. Doe", "--therapist", "lee",
              "--id", "agr-consent-0001", "--date", "2026-12-03", "--document", ESIGN_DISCLOSURE)
    assert res.exit_code == 0, res.stderr
    folder = Path(res.stdout.strip())
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["library"]["name"] == ESIGN_DISCLOSURE and manifest["agreement"]["jurisdiction"] == jurisdiction
    text = " ".join(subprocess.run(["pdftotext", str(folder / "agreement.pdf"), "-"], capture_output=True,
                                   text=True, check=True).stdout.split())
    assert "Consent to electronic records and signatures" in text and "Withdrawing your consent" in text
    assert "You can also call us at (555) 555-0100." in text  # the practice's phone, in the withdrawal clause
