"""Legacy (format 1) archives: named as legacy, migrated with a ledger record, then verified under format 2."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from agreements_kit.cli.commands import main
from agreements_kit.formats.jsonio import canonical_json
from agreements_kit.verification.audit import audit, results
from agreements_kit.verification.trust import load_trust
from agreements_kit.verification.verify import verify_folder

VECTOR = Path(__file__).parent / "vectors" / "legacy-v1"
AGREEMENT = "agr-a8e9f23ce3aee920"


@pytest.fixture
def legacy(tmp_path: Path) -> Path:
    root = tmp_path / "practice"
    shutil.copytree(VECTOR, root)
    return root


def _verify(root: Path):
    return verify_folder(root / "signed" / AGREEMENT, load_trust(root / "pki" / "root.pem"),
                         ledger=root / "signed" / "ledger.jsonl")


def _migrate(root: Path) -> str:
    res = CliRunner().invoke(main, ["archive", "migrate", "--practice", str(root)])
    assert res.exit_code == 0, res.output
    return res.output


def test_a_legacy_archive_is_named_as_such_not_reinterpreted(legacy: Path):
    v = _verify(legacy)
    assert v.status == "invalid"
    assert "ledger.legacy" in v.codes
    assert "register.unregistered" in v.codes  # format 1 kept no register: nothing vouches for its certificates
    assert any("agreements archive migrate" in c.detail for c in v.failures)


def test_migration_is_recorded_in_the_ledger_and_changes_no_file(legacy: Path):
    before = {p.relative_to(legacy): p.read_bytes() for p in (legacy / "signed" / AGREEMENT).iterdir()}
    ledger_before = (legacy / "signed" / "ledger.jsonl").read_bytes()
    assert "migrated 1 agreements" in _migrate(legacy)
    after = {p.relative_to(legacy): p.read_bytes() for p in (legacy / "signed" / AGREEMENT).iterdir()}
    assert before == after
    ledger_after = (legacy / "signed" / "ledger.jsonl").read_bytes()
    assert ledger_after.startswith(ledger_before)  # appended to, never rewritten
    added = [json.loads(line) for line in ledger_after[len(ledger_before):].splitlines()]
    events = [e["event"] for e in added]
    assert events[-1] == "migrate" and "crl" in events and events.count("certificate") == 4
    assert all(e["source"] == "migration" for e in added if e["event"] == "certificate")
    assert not any("Jane" in json.dumps(e) for e in added)  # the ledger never holds a client's name


def test_after_migration_verify_and_audit_pass(legacy: Path):
    _migrate(legacy)
    assert _verify(legacy).status == "valid"
    summary, db = audit(legacy / "signed", load_trust(legacy / "pki" / "root.pem"), workers=1)
    try:
        assert summary.ok and summary.counts["valid"] == 1, summary.as_dict()
    finally:
        shutil.rmtree(db.parent, ignore_errors=True)


def test_migration_twice_is_refused(legacy: Path):
    _migrate(legacy)
    res = CliRunner().invoke(main, ["archive", "migrate", "--practice", str(legacy)])
    assert res.exit_code == 2 and "already migrated" in res.output


def test_a_legacy_record_added_after_migration_is_refused(legacy: Path):
    """Format 1 records have no agreement binding in their certificates: none may appear after migrating."""
    _migrate(legacy)
    folder = legacy / "signed" / AGREEMENT
    ledger = legacy / "signed" / "ledger.jsonl"
    # Move the therapist's record behind the migration, as a therapist with write access could try.
    lines = ledger.read_bytes().splitlines()
    sign = next(i for i, line in enumerate(lines) if b'"record":"02-therapist.json"' in line)
    moved = lines[:sign] + lines[sign + 1:] + [lines[sign]]
    ledger.write_bytes(b"\n".join(moved) + b"\n")
    v = _verify(legacy)
    assert v.status == "invalid"
    assert v.codes & {"ledger.chain", "ledger.reordered", "records.legacy-after-migration"}
    assert (folder / "02-therapist.json").exists()


def test_signing_into_an_unmigrated_legacy_archive_is_refused(legacy: Path):
    from agreements_kit.errors import ArchiveError
    from agreements_kit.store.archive import Archive

    with pytest.raises(ArchiveError) as info, Archive(legacy / "signed").locked():
        pass
    assert info.value.code == "conflict.legacy-archive"
    assert "archive migrate" in info.value.message


def test_legacy_records_are_held_to_their_own_canonical_form(legacy: Path):
    """A legacy record is accepted only as the exact pretty-printed bytes format 1 signed."""
    from agreements_kit.errors import InvalidFormat
    from agreements_kit.formats.record import parse_record

    raw = (legacy / "signed" / AGREEMENT / "01-client.json").read_bytes()
    rec = parse_record(raw, "01-client.json")
    assert rec.version == 1 and canonical_json(rec.data) == raw
    with pytest.raises(InvalidFormat) as info:
        parse_record(raw.replace(b'  "kind"', b'   "kind"'), "x")
    assert info.value.code == "format.not-canonical"


def test_audit_of_a_legacy_archive_names_it(legacy: Path):
    summary, db = audit(legacy / "signed", load_trust(legacy / "pki" / "root.pem"), workers=1)
    try:
        assert not summary.ok
        assert "ledger.legacy" in summary.ledger_codes
        rows = list(results(db))
        assert {f["code"] for f in rows[0]["failures"]} >= {"register.unregistered"}
    finally:
        shutil.rmtree(db.parent, ignore_errors=True)
