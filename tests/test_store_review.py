"""A reviewer's failing tests for the S3 archive (store/s3.py, store/mirror.py, verification/storeaudit.py,
cli/store.py): ways the bucket's state and ``audit s3://...`` come apart, on a real Ceph RGW.

The adversaries are the developers' guide's: a dishonest therapist with the application's own S3
credentials (boto3 directly, below), and anyone who can write into the audit's local mirror
(``--cache``), which the docs call never trusted. Each test uses a bucket of its own; the demo
archive is built once per module.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from agreements_kit.cli.commands import main
from agreements_kit.cli.demo import run_demo
from agreements_kit.formats import storekeys

ENV = {"AGREEMENTS_PRACTICE": None, "AGREEMENTS_TRUST": None, "AGREEMENTS_TRUST_SHA256": None,
       "AGREEMENTS_TSA_TRUST": None, "AGREEMENTS_LOG_KEY": None, "AWS_CA_BUNDLE": None}
PREFIX = "clinic-a"


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("store-review") / "demo"
    result = run_demo(root)
    assert result.verdict is not None and result.verdict.valid
    return root


def _agreement_id(demo: Path) -> str:
    (name,) = [p.name for p in (demo / "signed").iterdir() if p.name.startswith("agr-")]
    return name


def _cli(rgw_env: dict[str, str], *args: str | Path, catch: bool = False):
    return CliRunner().invoke(main, [str(a) for a in args], env={**ENV, **rgw_env}, catch_exceptions=catch)


def _ok(res):
    assert res.exit_code == 0, f"exit {res.exit_code}\nstdout: {res.stdout}\nstderr: {res.stderr}"
    return res


def _no_traceback(res) -> None:
    """The command ended by its own exit (one line on error), not by an exception escaping it."""
    assert res.exception is None or isinstance(res.exception, SystemExit), \
        f"escaped: {type(res.exception).__name__}: {res.exception}\nstdout: {res.stdout}\nstderr: {res.stderr}"


def _pushed(demo: Path, rgw_env: dict[str, str], bucket: str, tmp_path: Path) -> str:
    url = f"s3://{bucket}/{PREFIX}"
    _ok(_cli(rgw_env, "store", "init", url, "--retention-years", "7"))
    res = _ok(_cli(rgw_env, "store", "push", demo / "signed", url, "--trust", demo / "pki" / "root.pem",
                   "--cache", tmp_path / "push-cache"))
    assert "ok: the copy matches" in res.stdout, res.stdout
    return url


def _audit(demo: Path, rgw_env: dict[str, str], url: str, cache: Path, *extra: str | Path, catch: bool = False):
    return _cli(rgw_env, "audit", url, "--trust", demo / "pki" / "root.pem", "--cache", cache, *extra, catch=catch)


def _store(rgw_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, url: str):
    """An S3Store for ``url`` in this process (init'ed, 7 years), with the test RGW's variables."""
    from agreements_kit.store.s3 import S3Store

    for name, value in rgw_env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_CA_BUNDLE", raising=False)
    store = S3Store(url)
    store.init(7)
    return store


def _folder_objects(demo: Path):
    """(key, bytes) of every object the demo archive has, as `store push` would write them."""
    from agreements_kit.store.folderobjects import FolderObjects

    source = FolderObjects(demo / "signed")
    for agreement_id in source.agreement_ids():
        yield from source.agreement_files(agreement_id)
    yield from source.ledger_lines()
    yield from source.checkpoints()


def _headline(res) -> tuple[int, str]:
    return res.exit_code, (res.stdout.splitlines() or [""])[0]


# ----------------------------------------------------------------------------- retention


def test_retention_is_checked_for_every_object_without_retention_years(demo, rgw_env, s3_bucket_name, s3_client,
                                                                       tmp_path) -> None:
    """The store marker (store.json) sorts after every other key, so it is fetched last; the mirror judges
    retention in batches of 4 x connections as fetches finish, with ``want = report.years`` still None for
    every batch before the marker's: those objects' retention is never compared with the due date."""
    s3 = s3_client()
    url = _pushed(demo, rgw_env, s3_bucket_name, tmp_path)
    soon = dt.datetime.now(dt.UTC) + dt.timedelta(days=2)  # COMPLIANCE, but for 2 days instead of 7 years
    short = [f"agreements/agr-short{i:06d}/agreement.pdf" for i in range(70)]
    for key in short:
        s3.put_object(Bucket=s3_bucket_name, Key=f"{PREFIX}/{key}", Body=b"%PDF-1.7 short",
                      ObjectLockMode="COMPLIANCE", ObjectLockRetainUntilDate=soon)
    res = _audit(demo, rgw_env, url, tmp_path / "cache", "--json")
    assert res.exit_code == 1, res.stdout + res.stderr
    store = json.loads(res.stdout)["summary"]["store"]
    problems = [p for p in store["problems"] if p["code"] == "store.retention-short"]
    named = [p["detail"] for p in problems if p["detail"].startswith("agreements/")]
    more = sum(int(p["detail"].rsplit("(and ", 1)[1].split()[0]) for p in problems if "(and " in p["detail"])
    assert any(d.startswith(short[0] + " is locked until") for d in named), named[:3]
    assert len(named) + more == len(short), (len(named), more)


# ----------------------------------------------------------------------------- delete markers


def test_an_object_deleted_from_the_bucket_is_not_audited_from_a_stale_mirror(demo, rgw_env, s3_bucket_name,
                                                                             s3_client, tmp_path,
                                                                             monkeypatch) -> None:
    """A key whose versions are all gone but for a delete marker (retention over, a GOVERNANCE lock lifted, an
    admin's removal): the mirror skips it (``chosen is None: continue``) but counts it as seen, so the file an
    earlier audit cached is never pruned and the verifier audits it as if the bucket held it; the delete
    marker is not named either. Here the audit says "ok" for a bucket that lost completion.pdf."""
    s3 = s3_client()
    url = f"s3://{s3_bucket_name}/{PREFIX}"
    store = _store(rgw_env, monkeypatch, url)
    agreement_id = _agreement_id(demo)
    victim = f"{PREFIX}/agreements/{agreement_id}/completion.pdf"
    until = dt.datetime.now(dt.UTC) + dt.timedelta(days=3)
    for key, data in _folder_objects(demo):
        if store.url.key(key) == victim:  # the one object whose lock can be lifted
            s3.put_object(Bucket=s3_bucket_name, Key=victim, Body=data, ObjectLockMode="GOVERNANCE",
                          ObjectLockRetainUntilDate=until)
        else:
            store.put_once(key, data)
    cache = tmp_path / "cache"
    first = _audit(demo, rgw_env, url, cache)
    assert first.exit_code == 1 and "[store.not-locked]" in first.stdout, first.stdout
    # The dishonest writer removes it: a delete marker, then the version itself (GOVERNANCE can be bypassed).
    version = s3.head_object(Bucket=s3_bucket_name, Key=victim)["VersionId"]
    s3.delete_object(Bucket=s3_bucket_name, Key=victim)
    s3.delete_object(Bucket=s3_bucket_name, Key=victim, VersionId=version, BypassGovernanceRetention=True)
    assert not s3.list_object_versions(Bucket=s3_bucket_name, Prefix=victim).get("Versions")
    through_stale = _audit(demo, rgw_env, url, cache)
    through_fresh = _audit(demo, rgw_env, url, tmp_path / "fresh")
    assert through_stale.exit_code != 0, "a bucket that lost an object passed its audit:\n" + through_stale.stdout
    assert "completion.pdf" in through_stale.stdout, through_stale.stdout
    assert _headline(through_stale) == _headline(through_fresh), (through_stale.stdout, through_fresh.stdout)


def test_a_delete_marker_over_a_ledger_line_that_has_no_version_is_one_line(demo, rgw_env, s3_bucket_name,
                                                                         s3_client, tmp_path) -> None:
    """Anyone with the application's credentials can put a delete marker at any key (a DELETE without a
    version id of a key that does not exist). For a ledger key the mirror lists the number as a line
    (``seen``), never fetches it, and _assemble_ledger reads a cache file that is not there:
    FileNotFoundError escapes the audit (a traceback, and no audit at all)."""
    s3 = s3_client()
    url = _pushed(demo, rgw_env, s3_bucket_name, tmp_path)
    s3.delete_object(Bucket=s3_bucket_name, Key=f"{PREFIX}/" + storekeys.ledger_key(40))
    res = _audit(demo, rgw_env, url, tmp_path / "cache", catch=True)
    _no_traceback(res)
    assert res.exit_code == 1, res.stdout + res.stderr
    assert storekeys.ledger_key(40) in res.stdout and "delete marker" in res.stdout, res.stdout


# ----------------------------------------------------------------------------- the mirror is never trusted


def test_an_agreement_planted_in_the_mirror_does_not_stand_in_for_one_the_bucket_lacks(demo, rgw_env,
                                                                                     s3_bucket_name, tmp_path,
                                                                                     monkeypatch) -> None:
    """The verifier reads the mirror folder as it is: files the bucket never listed (planted, or left from an
    index that was lost) are audited as the bucket's. A bucket whose ledger names an agreement it does not
    hold passes once that folder is copied into the cache."""
    url = f"s3://{s3_bucket_name}/{PREFIX}"
    store = _store(rgw_env, monkeypatch, url)
    for key, data in _folder_objects(demo):
        if not key.startswith(storekeys.AGREEMENTS):
            store.put_once(key, data)  # the ledger and checkpoints only: no agreement folder in the bucket
    fresh = _audit(demo, rgw_env, url, tmp_path / "fresh")
    assert fresh.exit_code == 1 and "is in the ledger but not in the archive" in fresh.stdout, fresh.stdout
    cache = tmp_path / "cache"
    _audit(demo, rgw_env, url, cache)
    agreement_id = _agreement_id(demo)
    shutil.copytree(demo / "signed" / agreement_id, cache / "archive" / agreement_id)
    planted = _audit(demo, rgw_env, url, cache)
    assert _headline(planted) == _headline(fresh), planted.stdout


def test_a_file_planted_in_a_mirrored_folder_does_not_change_the_verdict(demo, rgw_env, s3_bucket_name,
                                                                        tmp_path) -> None:
    url = _pushed(demo, rgw_env, s3_bucket_name, tmp_path)
    cache = tmp_path / "cache"
    _ok(_audit(demo, rgw_env, url, cache))
    # (the mirror's view is a new folder per audit: what can be planted is in the cache's objects and old views)
    (cache / "objects" / "notes.txt").write_bytes(b"planted")
    (cache / "view-old" / _agreement_id(demo)).mkdir(parents=True)
    (cache / "view-old" / _agreement_id(demo) / "notes.txt").write_bytes(b"planted")
    res = _audit(demo, rgw_env, url, cache)
    assert res.exit_code == 0 and res.stdout.startswith("ok: 1 agreements: 1 valid"), res.stdout


def test_a_link_planted_in_the_mirror_is_not_followed_to_write_elsewhere(demo, rgw_env, s3_bucket_name,
                                                                        tmp_path) -> None:
    """_assemble_ledger opens archive/.ledger.PID.tmp with O_CREAT|O_TRUNC and no O_NOFOLLOW/O_EXCL: a
    symbolic link planted at that name (the pid is guessable) makes the audit truncate and overwrite the
    link's target with the ledger."""
    url = _pushed(demo, rgw_env, s3_bucket_name, tmp_path)
    cache = tmp_path / "cache"
    _ok(_audit(demo, rgw_env, url, cache))
    precious = tmp_path / "precious.txt"
    precious.write_bytes(b"not the auditor's to overwrite\n")
    for cached in (cache / "objects").iterdir():  # every cached object a link to a file outside the cache
        cached.unlink()
        cached.symlink_to(precious)
    _ok(_audit(demo, rgw_env, url, cache))
    assert precious.read_bytes() == b"not the auditor's to overwrite\n"


def test_a_folder_link_planted_in_the_mirror_is_not_written_through_or_pruned_through(demo, rgw_env,
                                                                                     s3_bucket_name,
                                                                                     tmp_path) -> None:
    """archive/ID planted as a link to another folder (say the practice's own signed/ID): make_private_dir
    accepts it (and chmods its target), replace_file writes the bucket's files into the target, and _prune
    unlinks, through it, the file of any key the (equally untrusted) index names and the bucket does not."""
    url = _pushed(demo, rgw_env, s3_bucket_name, tmp_path)
    agreement_id = _agreement_id(demo)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "03-void.json").write_bytes(b"someone else's file")
    cache = tmp_path / "cache"
    (cache / "archive").mkdir(parents=True)
    (cache / "archive" / agreement_id).symlink_to(elsewhere, target_is_directory=True)
    index = sqlite3.connect(cache / "index.sqlite")
    index.execute("CREATE TABLE cached (key TEXT PRIMARY KEY, version_id TEXT, etag TEXT)")
    index.execute("INSERT INTO cached VALUES (?, 'v', 'e')", (f"agreements/{agreement_id}/03-void.json",))
    index.commit()
    index.close()
    _audit(demo, rgw_env, url, cache, catch=True)
    left = sorted(p.name for p in elsewhere.iterdir())
    assert left == ["03-void.json"], f"written or deleted through the link: {left}"
    assert (elsewhere / "03-void.json").read_bytes() == b"someone else's file"


@pytest.mark.parametrize("plant", ["garbage-index", "index-of-another-shape", "agreement-folder-is-a-file",
                                   "ledger-folder-is-a-file"])
def test_a_crafted_cache_is_one_line_or_ignored_never_a_traceback(plant, demo, rgw_env, s3_bucket_name,
                                                                   tmp_path) -> None:
    """The mirror's own files (index.sqlite, the folders it writes into) are used as found: a file that is not
    what the mirror expects ends the audit with an exception (sqlite3.DatabaseError / OperationalError,
    FileExistsError from make_private_dir) instead of being replaced, or refused in one line."""
    url = _pushed(demo, rgw_env, s3_bucket_name, tmp_path)
    cache = tmp_path / "cache"
    (cache / "archive").mkdir(parents=True)
    if plant == "garbage-index":
        (cache / "index.sqlite").write_bytes(b"this is not a database\n" * 200)
    elif plant == "index-of-another-shape":
        index = sqlite3.connect(cache / "index.sqlite")
        index.execute("CREATE TABLE cached (key TEXT PRIMARY KEY, sha256 TEXT)")
        index.commit()
        index.close()
    elif plant == "agreement-folder-is-a-file":
        (cache / "archive" / _agreement_id(demo)).write_bytes(b"")
    else:
        (cache / "ledger").write_bytes(b"")
    res = _audit(demo, rgw_env, url, cache, catch=True)
    _no_traceback(res)
    assert "Traceback" not in res.stdout + res.stderr


# ----------------------------------------------------------------------------- rewrites


def test_a_later_version_of_a_ledger_line_with_the_same_seq_and_prev_is_named(demo, rgw_env, s3_bucket_name,
                                                                             s3_client, tmp_path) -> None:
    """_lost_race counts any later version with the same seq and prev as a lost append (a note, no problem),
    without checking that its entry appears further on in the chain, as an append that lost a race must
    (docs/archive.md). A dishonest writer's rewrite of a line, made to look like that, passes unnamed; every
    reader of the key's latest version (any S3 tool) then sees the forged line."""
    s3 = s3_client()
    url = _pushed(demo, rgw_env, s3_bucket_name, tmp_path)
    line = (demo / "signed" / "ledger.jsonl").read_bytes().splitlines()[0]
    entry = json.loads(line)
    entry["time"] = "2020-01-01T00:00:00Z"
    forged = json.dumps(entry, sort_keys=True, separators=(",", ":")).encode()
    assert forged != line
    s3.put_object(Bucket=s3_bucket_name, Key=f"{PREFIX}/" + storekeys.ledger_key(1), Body=forged,
                  ObjectLockMode="COMPLIANCE",
                  ObjectLockRetainUntilDate=dt.datetime.now(dt.UTC) + dt.timedelta(days=365 * 8))
    res = _audit(demo, rgw_env, url, tmp_path / "cache")
    # Named as what it may be: an append that lost a race and was never retried, or an overwrite attempt.
    assert res.exit_code == 1 and "[store.race-unretried]" in res.stdout, res.stdout


# ----------------------------------------------------------------------------- legal hold


def test_the_legal_hold_is_on_the_versions_the_audit_holds(demo, rgw_env, s3_bucket_name, s3_client,
                                                           tmp_path) -> None:
    """store hold places the hold on each key's latest version (head_object without VersionId) and skips a
    key whose latest is a delete marker; the audit reads the first version. After a rewrite the forged
    version is held and the record of the agreement is not; under a delete marker nothing is held."""
    s3 = s3_client()
    url = _pushed(demo, rgw_env, s3_bucket_name, tmp_path)
    agreement_id = _agreement_id(demo)
    record = f"{PREFIX}/agreements/{agreement_id}/01-client.json"
    completion = f"{PREFIX}/agreements/{agreement_id}/completion.pdf"
    first = {key: s3.head_object(Bucket=s3_bucket_name, Key=key)["VersionId"] for key in (record, completion)}
    s3.put_object(Bucket=s3_bucket_name, Key=record, Body=b'{"forged": true}', ObjectLockMode="COMPLIANCE",
                  ObjectLockRetainUntilDate=dt.datetime.now(dt.UTC) + dt.timedelta(days=365 * 8))
    s3.delete_object(Bucket=s3_bucket_name, Key=completion)
    _ok(_cli(rgw_env, "store", "hold", url, agreement_id))
    for key, version in first.items():
        assert _held(s3, s3_bucket_name, key, version), f"{key}: the audited (first) version is not held"


def _held(s3, bucket: str, key: str, version: str) -> bool:
    from botocore.exceptions import ClientError

    try:
        return s3.get_object_legal_hold(Bucket=bucket, Key=key, VersionId=version)["LegalHold"]["Status"] == "ON"
    except ClientError as exc:  # RGW 16: a version that never had a hold answers ObjectLockConfigurationNotFoundError
        if exc.response["Error"]["Code"] == "ObjectLockConfigurationNotFoundError":
            return False
        raise


