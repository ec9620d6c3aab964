"""`agreements sign --as client` at a terminal: the walk-through shows the agreement's own text.

The prompts run when stdin is a terminal; here ``cli._tty`` is patched to say so and
the answers come through click's runner, as a person would type them.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from agreements_kit.authoring.render import Job, Renderer
from agreements_kit.authoring.spec import make_spec
from agreements_kit.cli import commands as cli
from agreements_kit.resources import clauses_dir
from agreements_kit.signing.pki import PKI
from agreements_kit.signing.setup import init_practice

PASS = "terminal-test-passphrase"  # the intake CA's
ROOT_PASS = "terminal-root-pass"
CLINICIAN_PASS = "terminal-clinician-pass"
LEE_PASS = "terminal-lee-pass"
SUMMARY = "Our own plain words about what therapy cannot do for you."


@pytest.fixture
def pr(tmp_path: Path) -> Path:
    root = tmp_path / "practice"
    init_practice(root, name="Terminal Practice", jurisdiction="US", passphrase=ROOT_PASS.encode(),
                  intake_passphrase=PASS.encode(), clinician_passphrase=CLINICIAN_PASS.encode(),
                  therapists={"lee": ("Dr. Robin Lee", "PhD", "psychologist")})
    library = root / "my-clauses"
    shutil.copytree(clauses_dir(), library)
    limits = yaml.safe_load((library / "limits.yaml").read_text())
    text = (library / "limits.yaml").read_text()
    (library / "limits.yaml").write_text(text.replace(limits["clauses"][0]["summary"].split("\n")[0][:40],
                                                      SUMMARY[:-1] + " ", 1))
    settings = root / "practice.yaml"
    settings.write_text(settings.read_text() + "clauses: my-clauses\n")
    PKI(root / "pki").issue_clinician("lee", "Dr. Robin Lee", "Terminal Practice", CLINICIAN_PASS.encode(),
                                      LEE_PASS.encode())
    Renderer.load(root).render_to(Job(make_spec(client="Jane Q. Doe", therapist="lee", id="agr-term-1"),
                                      root / "drafts"))
    return root


def run_interactive(monkeypatch, pr: Path, answers: list[str]):
    monkeypatch.setattr(cli, "_tty", lambda stream: stream is not None)
    runner = CliRunner()
    return runner.invoke(cli.main, ["sign", "agr-term-1", "--practice", str(pr), "--as", "client"],
                         input="\n".join(answers) + "\n", env={"AGREEMENTS_INTAKE_PASSPHRASE": PASS},
                         catch_exceptions=False)


def initialled(pr: Path) -> int:
    import json

    manifest = json.loads((pr / "drafts" / "agr-term-1" / "manifest.json").read_text())
    return sum(c["initials"] for c in manifest["clauses"])


def test_the_walk_through_shows_the_practices_own_summaries_and_signs(monkeypatch, pr: Path):
    answers = ["y"] + ["JQD"] * initialled(pr) + ["Jane Q. Doe", "y", "photo ID", "Front desk"]
    res = run_interactive(monkeypatch, pr, answers)
    assert res.exit_code == 0, res.output
    assert "Consent to use electronic records" in res.output
    assert SUMMARY[:30] in res.output  # the practice's library, as rendered, not the built-in one
    assert (pr / "signed" / "agr-term-1" / "01-client.json").is_file()


def test_the_walk_through_refuses_when_the_library_changed_since_rendering(monkeypatch, pr: Path):
    limits = pr / "my-clauses" / "limits.yaml"
    limits.write_text(limits.read_text().replace("Our own plain words", "Other plain words", 1))
    res = run_interactive(monkeypatch, pr, ["y"] + ["JQD"] * initialled(pr))
    assert res.exit_code == 2
    assert "changed since agreement agr-term-1 was rendered" in res.output
    assert not (pr / "signed" / "agr-term-1").exists()


def test_declining_consent_signs_nothing(monkeypatch, pr: Path):
    res = run_interactive(monkeypatch, pr, ["n"])
    assert res.exit_code == 2
    assert "no consent given" in res.output
    assert not (pr / "signed" / "agr-term-1").exists()
