"""The archive in a write-once bucket on a real Ceph RGW: init, push, audit from the bucket, legal hold.

One demo practice is made per module; each test uses a bucket of its own (locked objects
can never be removed, so no test can clean up after itself). What a dishonest writer with
the application's own S3 credentials tries is done with boto3 directly: deleting a locked
version, shortening its retention, writing a key again, adding an object by hand. The
store refuses the first two; ``audit s3://...`` names the others.
"""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pytest
from botocore.exceptions import ClientError
from click.testing import CliRunner

from agreements_kit.cli.commands import main
from agreements_kit.cli.demo import run_demo
from agreements_kit.formats import storekeys

ENV = {"AGREEMENTS_PRACTICE": None, "AGREEMENTS_TRUST": None, "AGREEMENTS_TRUST_SHA256": None,
       "AGREEMENTS_TSA_TRUST": None, "AGREEMENTS_LOG_KEY": None, "AWS_CA_BUNDLE": None}


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("store") / "demo"
    result = run_demo(root)
    assert result.verdict is not None and result.verdict.valid
    return root


def _cli(rgw_env: dict[str, str], *args: str | Path):
    return CliRunner().invoke(main, [str(a) for a in args], env={**ENV, **rgw_env}, catch_exceptions=False)


def _ok(res):
    assert res.exit_code == 0, f"exit {res.exit_code}\nstdout: {res.stdout}\nstderr: {res.stderr}"
    assert "Traceback" not in res.stdout + res.stderr
    return res


def _one_error(res, exit_code: int, *words: str) -> str:
    assert res.exit_code == exit_code, f"exit {res.exit_code}\nstdout: {res.stdout}\nstderr: {res.stderr}"
    assert "Traceback" not in res.stdout + res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


def _pushed(demo: Path, rgw_env: dict[str, str], bucket: str, tmp_path: Path) -> str:
    url = f"s3://{bucket}/clinic-a"
    _ok(_cli(rgw_env, "store", "init", url, "--retention-years", "7"))
    res = _ok(_cli(rgw_env, "store", "push", demo / "signed", url, "--trust", demo / "pki" / "root.pem",
                   "--cache", tmp_path / "push-cache"))
    assert "ok: the copy matches" in res.stdout, res.stdout
    return url


def _audit(demo: Path, rgw_env: dict[str, str], url: str, cache: Path, *extra: str | Path):
    return _cli(rgw_env, "audit", url, "--trust", demo / "pki" / "root.pem", "--cache", cache, *extra)


def _keys(s3, bucket: str, prefix: str) -> list[str]:
    return [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])]


def test_init_makes_a_locked_bucket_and_refuses_one_without_lock(rgw_env, s3_bucket_name, s3_client) -> None:
    s3 = s3_client()
    url = f"s3://{s3_bucket_name}/p"
    res = _ok(_cli(rgw_env, "store", "init", url, "--retention-years", "6"))
    assert "created" in res.stdout
    config = s3.get_object_lock_configuration(Bucket=s3_bucket_name)["ObjectLockConfiguration"]
    assert config["ObjectLockEnabled"] == "Enabled"
    assert config["Rule"]["DefaultRetention"] == {"Mode": "COMPLIANCE", "Years": 6}
    # Again with the same years: checked, nothing changed; with other years: refused (the marker is written once).
    assert "checked" in _ok(_cli(rgw_env, "store", "init", url, "--retention-years", "6")).stdout
    _one_error(_cli(rgw_env, "store", "init", url, "--retention-years", "8"), 2, "6 years by default")
    _one_error(_cli(rgw_env, "store", "init", url, "--retention-years", "5"), 2, "retention of 6 years")
    # A bucket someone made without Object Lock is refused, by init and by every command that opens it.
    plain = s3_bucket_name + "-plain"
    s3.create_bucket(Bucket=plain)
    _one_error(_cli(rgw_env, "store", "init", f"s3://{plain}/p"), 2, "without Object Lock")
    _one_error(_cli(rgw_env, "audit", f"s3://{plain}/p", "--trust", __file__), 2)


def test_bad_urls_are_one_line(rgw_env) -> None:
    for url in ("s3://UPPER/x", "s3://ab", "s3://bucket/../x", "s3://bucket/a//b"):
        _one_error(_cli(rgw_env, "store", "init", url), 2, "s3://")


def test_push_proves_the_copy_and_the_audit_from_the_bucket_passes(demo, rgw_env, s3_bucket_name, s3_client,
                                                                      tmp_path) -> None:
    s3 = s3_client()
    url = _pushed(demo, rgw_env, s3_bucket_name, tmp_path)
    keys = _keys(s3, s3_bucket_name, "clinic-a/")
    (folder,) = [p for p in (demo / "signed").iterdir() if p.name.startswith("agr-")]
    for name in ("agreement.pdf", "manifest.json", "01-client.json", "01-client.json.p7s", "02-therapist.json"):
        assert f"clinic-a/agreements/{folder.name}/{name}" in keys
    lines = (demo / "signed" / "ledger.jsonl").read_bytes().splitlines()
    assert sum(k.startswith("clinic-a/ledger/") for k in keys) == len(lines)
    first = s3.get_object(Bucket=s3_bucket_name, Key="clinic-a/" + storekeys.ledger_key(1))
    assert first["Body"].read() == lines[0]
    assert first["ObjectLockMode"] == "COMPLIANCE"
    assert first["ObjectLockRetainUntilDate"] > dt.datetime.now(dt.UTC) + dt.timedelta(days=365 * 7 - 2)
    res = _ok(_audit(demo, rgw_env, url, tmp_path / "cache"))
    assert res.stdout.startswith("ok: 1 agreements: 1 valid"), res.stdout
    # A second push writes nothing: every object is there with the same bytes.
    again = _ok(_cli(rgw_env, "store", "push", demo / "signed", url, "--trust", demo / "pki" / "root.pem"))
    assert " 0 objects written" in again.stdout, again.stdout


def test_the_store_refuses_deletes_and_shorter_retention_by_our_own_credentials(demo, rgw_env, s3_bucket_name,
                                                                                  s3_client, tmp_path) -> None:
    s3 = s3_client()
    _pushed(demo, rgw_env, s3_bucket_name, tmp_path)
    key = "clinic-a/" + storekeys.ledger_key(1)
    version = s3.head_object(Bucket=s3_bucket_name, Key=key)["VersionId"]
    with pytest.raises(ClientError) as deleted:
        s3.delete_object(Bucket=s3_bucket_name, Key=key, VersionId=version, BypassGovernanceRetention=True)
    assert deleted.value.response["Error"]["Code"] == "AccessDenied"
    with pytest.raises(ClientError):
        s3.put_object_retention(Bucket=s3_bucket_name, Key=key, VersionId=version, Retention={
            "Mode": "COMPLIANCE", "RetainUntilDate": dt.datetime.now(dt.UTC) + dt.timedelta(days=1)})
    assert s3.get_object(Bucket=s3_bucket_name, Key=key, VersionId=version)["Body"].read() \
        == (demo / "signed" / "ledger.jsonl").read_bytes().splitlines()[0]


def test_an_overwrite_a_delete_marker_and_a_stray_object_are_named_by_audit(demo, rgw_env, s3_bucket_name,
                                                                             s3_client, tmp_path) -> None:
    s3 = s3_client()
    url = _pushed(demo, rgw_env, s3_bucket_name, tmp_path)
    (folder,) = [p.name for p in (demo / "signed").iterdir() if p.name.startswith("agr-")]
    record = f"clinic-a/agreements/{folder}/01-client.json"
    until = dt.datetime.now(dt.UTC) + dt.timedelta(days=365 * 8)
    # Written again (other bytes) under the same key: a second version; the first stays and is the one audited.
    s3.put_object(Bucket=s3_bucket_name, Key=record, Body=b'{"forged": true}', ObjectLockMode="COMPLIANCE",
                         ObjectLockRetainUntilDate=until)
    # A delete without a version id leaves a delete marker over the manifest.
    s3.delete_object(Bucket=s3_bucket_name, Key=f"clinic-a/agreements/{folder}/completion.pdf")
    s3.put_object(Bucket=s3_bucket_name, Key="clinic-a/notes.txt", Body=b"x", ObjectLockMode="COMPLIANCE",
                         ObjectLockRetainUntilDate=until)
    res = _audit(demo, rgw_env, url, tmp_path / "cache")
    assert res.exit_code == 1, res.stdout + res.stderr
    assert f"{record[len('clinic-a/'):]} holds 2 versions" in res.stdout and "[store.rewritten]" in res.stdout
    assert "completion.pdf holds 1 delete marker(s)" in res.stdout
    assert "notes.txt does not belong" in res.stdout and "[store.unexpected-object]" in res.stdout
    # The record audited is the first version: the agreement's own checks still pass on it.
    assert "1 valid" in res.stdout.splitlines()[0], res.stdout


def test_an_object_locked_too_briefly_or_not_in_compliance_mode_is_named(demo, rgw_env, s3_bucket_name, s3_client,
                                                                         tmp_path) -> None:
    s3 = s3_client()
    url = _pushed(demo, rgw_env, s3_bucket_name, tmp_path)
    res = _audit(demo, rgw_env, url, tmp_path / "cache", "--retention-years", "30")
    assert res.exit_code == 1 and "[store.retention-short]" in res.stdout, res.stdout
    n = len((demo / "signed" / "ledger.jsonl").read_bytes().splitlines())
    s3.put_object(Bucket=s3_bucket_name, Key="clinic-a/" + storekeys.ledger_key(n + 5), Body=b"{}",
                         ObjectLockMode="GOVERNANCE",
                         ObjectLockRetainUntilDate=dt.datetime.now(dt.UTC) + dt.timedelta(days=3000))
    res = _audit(demo, rgw_env, url, tmp_path / "cache")
    assert res.exit_code == 1
    assert "is not locked in COMPLIANCE mode (GOVERNANCE)" in res.stdout and "[store.not-locked]" in res.stdout
    assert f"ledger line {n + 1} has no object in the store [store.ledger-gap]" in res.stdout


def test_the_mirror_is_never_trusted(demo, rgw_env, s3_bucket_name, tmp_path) -> None:
    url = _pushed(demo, rgw_env, s3_bucket_name, tmp_path)
    cache = tmp_path / "cache"
    _ok(_audit(demo, rgw_env, url, cache))
    cached = sorted((cache / "objects").iterdir())
    assert len(cached) > 20  # every object of the demo archive, kept to save downloads
    for path in cached[::2]:
        path.write_bytes(b'{"changed in the cache": true}')
    for path in cached[1::4]:
        path.unlink()
    res = _ok(_audit(demo, rgw_env, url, cache))  # read again from the bucket, not from the changed cache
    assert res.stdout.startswith("ok: 1 agreements: 1 valid"), res.stdout


def test_legal_hold_on_every_object_of_an_agreement(demo, rgw_env, s3_bucket_name, s3_client, tmp_path) -> None:
    s3 = s3_client()
    url = _pushed(demo, rgw_env, s3_bucket_name, tmp_path)
    (folder,) = [p.name for p in (demo / "signed").iterdir() if p.name.startswith("agr-")]
    res = _ok(_cli(rgw_env, "store", "hold", url, folder))
    keys = _keys(s3, s3_bucket_name, f"clinic-a/agreements/{folder}/")
    assert f"placed on {len(keys)} objects" in res.stdout
    for key in keys:
        assert s3.get_object_legal_hold(Bucket=s3_bucket_name, Key=key)["LegalHold"]["Status"] == "ON"
    _ok(_cli(rgw_env, "store", "hold", url, folder, "--off"))
    assert s3.get_object_legal_hold(Bucket=s3_bucket_name, Key=keys[0])["LegalHold"]["Status"] == "OFF"
    _one_error(_cli(rgw_env, "store", "hold", url, "agr-nothing-here"), 2, "holds no agreement")


def test_a_stopped_store_is_one_clear_line_and_the_push_resumes_idempotently(demo, rgw, rgw_env, s3_bucket_name,
                                                                              tmp_path) -> None:
    url = f"s3://{s3_bucket_name}/clinic-a"
    _ok(_cli(rgw_env, "store", "init", url))
    rgw.stop_gateway()
    try:
        res = _cli(rgw_env, "store", "push", demo / "signed", url, "--trust", demo / "pki" / "root.pem")
        _one_error(res, 3, "cannot be reached")
    finally:
        rgw.start_gateway()
    res = _ok(_cli(rgw_env, "store", "push", demo / "signed", url, "--trust", demo / "pki" / "root.pem"))
    assert "ok: the copy matches" in res.stdout


def test_put_once_never_replaces_other_bytes(rgw_env, s3_bucket_name, monkeypatch) -> None:
    from agreements_kit.errors import StoreError
    from agreements_kit.store.s3 import S3Store

    for name, value in rgw_env.items():
        monkeypatch.setenv(name, value)
    store = S3Store(f"s3://{s3_bucket_name}/x")
    store.init(7)
    assert store.put_once("ledger/000000000001.json", b"one") == "written"
    assert store.put_once("ledger/000000000001.json", b"one") == "present"
    with pytest.raises(StoreError) as exc:
        store.put_once("ledger/000000000001.json", b"two")
    assert exc.value.code == "conflict.store-exists"
    assert [v.key for v in store.versions()].count("ledger/000000000001.json") == 1


def test_a_second_push_into_a_used_prefix_with_other_bytes_stops(demo, rgw_env, s3_bucket_name, tmp_path) -> None:
    url = _pushed(demo, rgw_env, s3_bucket_name, tmp_path)
    other = tmp_path / "other"
    shutil.copytree(demo / "signed", other)
    lines = (other / "ledger.jsonl").read_bytes().splitlines(keepends=True)
    lines[0] = lines[0].replace(b'"event"', b'"event" ', 1)
    (other / "ledger.jsonl").write_bytes(b"".join(lines))
    _one_error(_cli(rgw_env, "store", "push", other, url, "--trust", demo / "pki" / "root.pem"), 2,
               "already holds other bytes")


def test_tls_to_a_practices_own_rgw_with_its_ca_bundle(demo, rgw, s3_bucket_name, tmp_path) -> None:
    from rgw import client_env

    # the practice's CA is given by option (or AWS_CA_BUNDLE, below), not taken from the harness's variables
    env = {k: v for k, v in client_env(rgw, tls=True).items() if k != "AWS_CA_BUNDLE"}
    assert env["AWS_ENDPOINT_URL"].startswith("https://")
    url = f"s3://{s3_bucket_name}/tls"
    # Without the practice's CA the store's certificate is not trusted: one clear line, nothing written.
    _one_error(_cli(env, "store", "init", url), 3, "certificate is not trusted", "--ca-bundle")
    _ok(_cli(env, "store", "init", url, "--ca-bundle", rgw.ca_bundle))
    _ok(_cli({**env, "AWS_CA_BUNDLE": str(rgw.ca_bundle)}, "store", "push", demo / "signed", url, "--trust",
             demo / "pki" / "root.pem"))
    res = _ok(_audit(demo, env, url, tmp_path / "cache", "--ca-bundle", rgw.ca_bundle))
    assert res.stdout.startswith("ok: 1 agreements: 1 valid"), res.stdout


def test_missing_credentials_are_one_line_and_never_printed(rgw_env, s3_bucket_name) -> None:
    env = {**rgw_env, "AWS_ACCESS_KEY_ID": None, "AWS_SECRET_ACCESS_KEY": None}
    line = _one_error(_cli(env, "store", "init", f"s3://{s3_bucket_name}/p"), 2, "no S3 credentials")
    wrong = {**rgw_env, "AWS_SECRET_ACCESS_KEY": "not-the-secret"}
    line = _one_error(_cli(wrong, "store", "init", f"s3://{s3_bucket_name}/p"), 2, "refused")
    assert rgw_env["AWS_ACCESS_KEY_ID"] not in line and "not-the-secret" not in line


def test_the_readmes_demo_against_a_local_rgw(tmp_path) -> None:
    """README: `scripts/bootstrap --rgw && scripts/demo-s3 DIR` (bootstrap has run: the suite needs it too)."""
    import subprocess

    from helpers import clean_environ

    repo = Path(__file__).resolve().parent.parent
    readme = (repo / "README.md").read_text(encoding="utf-8")
    assert "scripts/bootstrap --rgw && scripts/demo-s3 demo-s3" in readme
    run = subprocess.run([str(repo / "scripts" / "demo-s3"), str(tmp_path / "demo-s3")], capture_output=True,
                         text=True, env=clean_environ(), timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "ok: the copy matches: 1 agreements (1 valid" in run.stdout
    assert "\nok: 1 agreements: 1 valid" in run.stdout
    # The cluster was stopped at the end: no daemon of it is left running.
    cluster = str(tmp_path / "demo-s3" / "rgw")
    left = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and cluster in (proc / "cmdline").read_bytes().decode(errors="replace"):
                left.append(proc.name)
        except OSError:
            continue  # gone while looked at
    assert not left, f"processes of the demo's cluster still running: {left}"


def test_verify_one_agreement_in_the_bucket_names_what_the_bucket_holds(demo, rgw_env, s3_bucket_name, s3_client,
                                                                        tmp_path) -> None:
    s3 = s3_client()
    url = _pushed(demo, rgw_env, s3_bucket_name, tmp_path)
    (folder,) = [p.name for p in (demo / "signed").iterdir() if p.name.startswith("agr-")]
    args = ["verify", f"{url}/agreements/{folder}", "--trust", demo / "pki" / "root.pem", "--cache", tmp_path / "c"]
    res = _ok(_cli(rgw_env, *args))
    assert res.stdout.startswith(f"valid: {folder} signed by"), res.stdout
    s3.put_object(Bucket=s3_bucket_name, Key=f"clinic-a/agreements/{folder}/02-therapist.json", Body=b"{}",
                  ObjectLockMode="COMPLIANCE", ObjectLockRetainUntilDate=dt.datetime.now(dt.UTC)
                  + dt.timedelta(days=3650))
    res = _cli(rgw_env, *args)
    assert res.exit_code == 1, res.stdout
    assert "FAIL 15 store: agreements/" in res.stdout and "02-therapist.json holds 2 versions" in res.stdout
    _one_error(_cli(rgw_env, "verify", f"{url}/agreements/agr-not-there", "--trust", demo / "pki" / "root.pem",
                    "--cache", tmp_path / "c"), 2, "holds no agreement")
    _one_error(_cli(rgw_env, "verify", url, "--trust", demo / "pki" / "root.pem"), 2, "/agreements/ID")
