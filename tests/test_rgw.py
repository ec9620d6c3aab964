"""The test RGW itself (scripts/rgwcluster.py) and what Ceph RGW 16.2 really does with Object Lock.

Answers these tests hold (RGW 16.2.15 from Debian 12, boto3 1.44); the store is built on them:

- Start to first S3 answer: ~1.6-2 s; stopping the whole cluster ~0.5 s; radosgw alone restarts in ~0.2 s.
- Latency: beast without ``tcp_nodelay=1`` holds every GET and listing ~40 ms (Nagle against the
  client's delayed ACK): ~45 ms instead of ~2.5 ms. The harness sets it; a practice's RGW should too.
- Region: ``default`` (the default zonegroup's api_name) or ``us-east-1`` both work; any other
  region's CreateBucket fails InvalidLocationConstraint. An IP endpoint makes boto3 use path-style
  addressing; a name (``localhost``) needs ``s3={"addressing_style": "path"}``.
- COMPLIANCE: deleting a locked version is AccessDenied (403), with BypassGovernanceRetention too;
  shortening the retain-until date is AccessDenied, extending it works, COMPLIANCE -> GOVERNANCE is
  AccessDenied. A delete without a VersionId is allowed: it adds a delete marker (the key then
  reads NoSuchKey) while the locked version stays readable by its VersionId.
- A bucket without Object Lock: get_object_lock_configuration raises ClientError code
  ``ObjectLockConfigurationNotFoundError`` (HTTP 404); a put with lock headers there is ``InvalidRequest`` (400).
- The gateway stopped: a request fails with ``botocore.exceptions.EndpointConnectionError``
  (a ``botocore.exceptions.ConnectionError``) once the client's retries are spent.
- Conditional writes: NOT usable on a versioned (so on any Object Lock) bucket. ``IfNoneMatch='*'``
  is ignored there (a second put to the key succeeds and makes a second version), and ``IfMatch``
  fails PreconditionFailed (412) even with the current ETag. On an unversioned bucket
  ``IfNoneMatch='*'`` is honoured (412 on an existing key).
- Additional checksums: not supported. ``ChecksumAlgorithm='SHA256'`` over HTTP sends an
  x-amz-checksum-sha256 header that RGW ignores (a wrong value is stored), head_object with
  ChecksumMode=ENABLED returns no checksum; over HTTPS boto3 sends it as an aws-chunked trailer and
  RGW refuses the upload (MissingContentLength, 411). What RGW does check: Content-MD5 (BadDigest)
  and the SigV4 payload hash (XAmzContentSHA256Mismatch).
- boto3's default checksums (``when_supported``, boto3 >= 1.36): harmless over HTTP, but over HTTPS
  every upload fails MissingContentLength (411); with ``when_required`` (the AWS_REQUEST_CHECKSUM_CALCULATION
  / AWS_RESPONSE_CHECKSUM_VALIDATION in s3.env, or botocore Config) everything works.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import os
import re
import stat
import time
import urllib.error
import urllib.request

import botocore.exceptions
import pytest
import rgw as rgwlib
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

RETENTION = {"ObjectLockEnabled": "Enabled", "Rule": {"DefaultRetention": {"Mode": "COMPLIANCE", "Days": 1}}}


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def error_of(call) -> tuple[str, int]:
    """The S3 error code and HTTP status of a call that must fail."""
    with pytest.raises(botocore.exceptions.ClientError) as info:
        call()
    return info.value.response["Error"]["Code"], info.value.response["ResponseMetadata"]["HTTPStatusCode"]


def locked_bucket(s3, name: str, default_rule: bool = True) -> str:
    s3.create_bucket(Bucket=name, ObjectLockEnabledForBucket=True)
    if default_rule:
        s3.put_object_lock_configuration(Bucket=name, ObjectLockConfiguration=RETENTION)
    return name


def compliance(until: dt.datetime) -> dict:
    return {"ObjectLockMode": "COMPLIANCE", "ObjectLockRetainUntilDate": until}


# --- the harness --------------------------------------------------------------------------------

def test_cluster_answers_s3_and_keeps_everything_in_its_folder(rgw, s3_client):
    print(f"\nRGW start to first S3 answer: {rgw.start_seconds:.2f} s; RSS KiB {rgw.rss_kib()}")
    assert rgw.start_seconds < 60
    assert s3_client().list_buckets()["Owner"]["ID"] == rgwlib.rgwcluster.S3_USER
    assert s3_client(tls=True).list_buckets()["Owner"]["ID"] == rgwlib.rgwcluster.S3_USER
    assert all(pid is not None and os.path.exists(f"/proc/{pid}") for pid in rgw.pids.values()), rgw.pids
    assert stat.S_IMODE(rgw.root.stat().st_mode) == 0o700
    assert stat.S_IMODE(rgw.env_file.stat().st_mode) == 0o600
    conf = rgw.conf.read_text()
    # nothing outside the folder: every path the configuration names is under it
    assert all(p.startswith(str(rgw.root)) for p in re.findall(r"= (/\S+)", conf)), conf
    assert "memstore" in conf and "paxos propose interval = 0.05" in conf
    env = dict(line.split("=", 1) for line in rgw.env_file.read_text().splitlines())
    assert env["AWS_ENDPOINT_URL"] == rgw.tls_endpoint and env["AWS_SECRET_ACCESS_KEY"] == rgw.secret_key
    assert env["AWS_CA_BUNDLE"] == str(rgw.ca_bundle)
    assert env["AWS_REQUEST_CHECKSUM_CALCULATION"] == "when_required"
    assert "tcp_nodelay=1" in conf
    admin_key = re.search(r"\[client\.admin\]\s+key = (\S+)", (rgw.root / "keyring").read_text()).group(1)
    assert admin_key not in rgw.env_file.read_text()


def test_reads_do_not_wait_for_delayed_acks(s3_client, s3_bucket_name):
    """Without beast's tcp_nodelay=1 each GET and listing takes ~40 ms on loopback (Nagle); with it ~2-3 ms."""
    s3 = s3_client()
    s3.create_bucket(Bucket=s3_bucket_name)
    s3.put_object(Bucket=s3_bucket_name, Key="a", Body=b"x" * 5000)
    times = []
    for _ in range(11):
        began = time.perf_counter()
        s3.get_object(Bucket=s3_bucket_name, Key="a")["Body"].read()
        s3.list_objects_v2(Bucket=s3_bucket_name)
        times.append(time.perf_counter() - began)
    median = sorted(times)[len(times) // 2]
    print(f"\nGET + LIST median {median * 1000:.1f} ms")
    assert median < 0.040, f"a GET and a LIST took {median * 1000:.0f} ms (40 ms each is the Nagle stall)"


def test_s3_user_cannot_use_the_admin_api(rgw):
    """The application's keys are an ordinary user's: RGW's admin API (users, buckets, purges) refuses them."""
    request = AWSRequest(method="GET", url=f"{rgw.endpoint}/admin/user?uid={rgwlib.rgwcluster.S3_USER}&format=json")
    S3SigV4Auth(Credentials(rgw.access_key, rgw.secret_key), "s3", rgw.region).add_auth(request)
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(urllib.request.Request(request.url, headers=dict(request.headers)), timeout=10)
    assert info.value.code == 403
    assert b"AccessDenied" in info.value.read()  # signed correctly (not SignatureDoesNotMatch), just not allowed


def test_subprocess_environment_reaches_the_store(rgw, rgw_env, tmp_path):
    """The variables handed to a subprocess are enough for boto3's standard chain (no ~/.aws, no AWS_PROFILE)."""
    import subprocess
    import sys
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")} | rgw_env
    code = "import boto3; print(boto3.client('s3').list_buckets()['Owner']['ID'])"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60,
                         cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == rgwlib.rgwcluster.S3_USER


# --- Object Lock as the store relies on it ----------------------------------------------------------

def test_locked_bucket_with_default_compliance_rule(s3_client, s3_bucket_name):
    s3 = s3_client()
    locked_bucket(s3, s3_bucket_name)
    assert s3.get_object_lock_configuration(Bucket=s3_bucket_name)["ObjectLockConfiguration"] == RETENTION
    assert s3.get_bucket_versioning(Bucket=s3_bucket_name)["Status"] == "Enabled"
    before = now()
    s3.put_object(Bucket=s3_bucket_name, Key="a", Body=b"no retention asked for")
    head = s3.head_object(Bucket=s3_bucket_name, Key="a")
    assert head["ObjectLockMode"] == "COMPLIANCE"
    until = head["ObjectLockRetainUntilDate"]
    assert before + dt.timedelta(days=1) - dt.timedelta(minutes=5) < until < now() + dt.timedelta(days=1, minutes=5)


def test_compliance_version_cannot_be_deleted(s3_client, s3_bucket_name):
    s3 = s3_client()
    locked_bucket(s3, s3_bucket_name)
    version = s3.put_object(Bucket=s3_bucket_name, Key="a", Body=b"kept",
                            **compliance(now() + dt.timedelta(hours=1)))["VersionId"]
    assert error_of(lambda: s3.delete_object(Bucket=s3_bucket_name, Key="a", VersionId=version)) == (
        "AccessDenied", 403)
    assert error_of(lambda: s3.delete_object(Bucket=s3_bucket_name, Key="a", VersionId=version,
                                             BypassGovernanceRetention=True)) == ("AccessDenied", 403)
    # a delete without a version only adds a delete marker: the key looks gone, the version is not
    marker = s3.delete_object(Bucket=s3_bucket_name, Key="a")
    assert marker["DeleteMarker"] is True
    assert error_of(lambda: s3.get_object(Bucket=s3_bucket_name, Key="a"))[0] == "NoSuchKey"
    assert s3.get_object(Bucket=s3_bucket_name, Key="a", VersionId=version)["Body"].read() == b"kept"
    listing = s3.list_object_versions(Bucket=s3_bucket_name, Prefix="a")
    assert [v["VersionId"] for v in listing["Versions"]] == [version]
    assert [m["VersionId"] for m in listing["DeleteMarkers"]] == [marker["VersionId"]]


def test_retention_can_be_extended_never_shortened(s3_client, s3_bucket_name):
    s3 = s3_client()
    locked_bucket(s3, s3_bucket_name)
    until = (now() + dt.timedelta(hours=2)).replace(microsecond=0)
    version = s3.put_object(Bucket=s3_bucket_name, Key="a", Body=b"x", **compliance(until))["VersionId"]

    def retain(mode: str, date: dt.datetime):
        return s3.put_object_retention(Bucket=s3_bucket_name, Key="a", VersionId=version,
                                       Retention={"Mode": mode, "RetainUntilDate": date})

    assert error_of(lambda: retain("COMPLIANCE", until - dt.timedelta(hours=1))) == ("AccessDenied", 403)
    assert error_of(lambda: retain("GOVERNANCE", until + dt.timedelta(hours=1))) == ("AccessDenied", 403)
    retain("COMPLIANCE", until + dt.timedelta(days=1))
    got = s3.get_object_retention(Bucket=s3_bucket_name, Key="a", VersionId=version)["Retention"]
    assert got["Mode"] == "COMPLIANCE" and got["RetainUntilDate"] == until + dt.timedelta(days=1)


def test_second_put_makes_a_second_version_and_keeps_the_first(s3_client, s3_bucket_name):
    s3 = s3_client()
    locked_bucket(s3, s3_bucket_name)
    first = s3.put_object(Bucket=s3_bucket_name, Key="a", Body=b"first")["VersionId"]
    second = s3.put_object(Bucket=s3_bucket_name, Key="a", Body=b"second")["VersionId"]
    assert first != second
    versions = s3.list_object_versions(Bucket=s3_bucket_name, Prefix="a")["Versions"]
    assert {v["VersionId"]: v["IsLatest"] for v in versions} == {first: False, second: True}
    assert s3.get_object(Bucket=s3_bucket_name, Key="a", VersionId=first)["Body"].read() == b"first"
    assert s3.get_object(Bucket=s3_bucket_name, Key="a")["Body"].read() == b"second"


def test_legal_hold_on_and_off(s3_client, s3_bucket_name):
    s3 = s3_client()
    locked_bucket(s3, s3_bucket_name, default_rule=False)  # no retention: only the hold keeps it
    version = s3.put_object(Bucket=s3_bucket_name, Key="a", Body=b"held")["VersionId"]
    assert "ObjectLockMode" not in s3.head_object(Bucket=s3_bucket_name, Key="a")

    def hold(status: str):
        s3.put_object_legal_hold(Bucket=s3_bucket_name, Key="a", VersionId=version, LegalHold={"Status": status})

    hold("ON")
    assert s3.get_object_legal_hold(Bucket=s3_bucket_name, Key="a", VersionId=version)["LegalHold"]["Status"] == "ON"
    assert error_of(lambda: s3.delete_object(Bucket=s3_bucket_name, Key="a", VersionId=version)) == (
        "AccessDenied", 403)
    hold("OFF")
    assert s3.get_object_legal_hold(Bucket=s3_bucket_name, Key="a", VersionId=version)["LegalHold"]["Status"] == "OFF"
    s3.delete_object(Bucket=s3_bucket_name, Key="a", VersionId=version)  # neither held nor retained: it goes
    assert "Versions" not in s3.list_object_versions(Bucket=s3_bucket_name, Prefix="a")


def test_bucket_without_object_lock_says_so(s3_client, s3_bucket_name):
    s3 = s3_client()
    s3.create_bucket(Bucket=s3_bucket_name)
    assert error_of(lambda: s3.get_object_lock_configuration(Bucket=s3_bucket_name)) == (
        "ObjectLockConfigurationNotFoundError", 404)
    assert error_of(lambda: s3.put_object(Bucket=s3_bucket_name, Key="a", Body=b"x",
                                          **compliance(now() + dt.timedelta(hours=1)))) == ("InvalidRequest", 400)


# --- the store stopped and started -----------------------------------------------------------

def test_gateway_stopped_and_started_keeps_objects(rgw, s3_client, s3_bucket_name):
    s3 = s3_client()
    fast_fail = s3_client(retries={"max_attempts": 1, "mode": "standard"}, connect_timeout=2)
    locked_bucket(s3, s3_bucket_name)
    version = s3.put_object(Bucket=s3_bucket_name, Key="a", Body=b"before the stop")["VersionId"]
    old_pid = rgw.pids[rgwlib.RGW]
    rgw.stop_gateway()
    try:
        assert rgw.pids[rgwlib.RGW] is None and not os.path.exists(f"/proc/{old_pid}/cmdline")
        with pytest.raises(botocore.exceptions.EndpointConnectionError):
            fast_fail.put_object(Bucket=s3_bucket_name, Key="b", Body=b"while stopped")
    finally:
        began = time.monotonic()
        rgw.start_gateway()
        print(f"\nradosgw restarted in {time.monotonic() - began:.2f} s")
    assert rgw.pids[rgwlib.RGW] not in (None, old_pid)
    assert s3.get_object(Bucket=s3_bucket_name, Key="a")["Body"].read() == b"before the stop"
    assert s3.head_object(Bucket=s3_bucket_name, Key="a")["VersionId"] == version
    assert "Versions" not in s3.list_object_versions(Bucket=s3_bucket_name, Prefix="b")  # the failed put left nothing
    s3.put_object(Bucket=s3_bucket_name, Key="b", Body=b"after")  # and the same client works again


# --- what RGW 16 does not do (the store must not rely on it) ----------------------------------------

def test_conditional_put_is_not_honoured_on_a_versioned_bucket(s3_client, s3_bucket_name):
    s3 = s3_client()
    locked_bucket(s3, s3_bucket_name)
    s3.put_object(Bucket=s3_bucket_name, Key="a", Body=b"1", IfNoneMatch="*")
    s3.put_object(Bucket=s3_bucket_name, Key="a", Body=b"2", IfNoneMatch="*")  # AWS would answer 412 here
    assert len(s3.list_object_versions(Bucket=s3_bucket_name, Prefix="a")["Versions"]) == 2
    etag = s3.head_object(Bucket=s3_bucket_name, Key="a")["ETag"]
    assert error_of(lambda: s3.put_object(Bucket=s3_bucket_name, Key="a", Body=b"3", IfMatch=etag)) == (
        "PreconditionFailed", 412)  # even the right ETag
    # on an unversioned bucket If-None-Match works
    plain = s3_bucket_name + "-plain"
    s3.create_bucket(Bucket=plain)
    s3.put_object(Bucket=plain, Key="a", Body=b"1", IfNoneMatch="*")
    assert error_of(lambda: s3.put_object(Bucket=plain, Key="a", Body=b"2", IfNoneMatch="*")) == (
        "PreconditionFailed", 412)


def test_additional_checksums_are_ignored_but_md5_and_payload_hash_are_checked(s3_client, s3_bucket_name):
    s3 = s3_client()
    s3.create_bucket(Bucket=s3_bucket_name)
    body = b"an agreement"
    s3.put_object(Bucket=s3_bucket_name, Key="c", Body=body, ChecksumAlgorithm="SHA256")
    head = s3.head_object(Bucket=s3_bucket_name, Key="c", ChecksumMode="ENABLED")
    assert "ChecksumSHA256" not in head
    assert not [h for h in head["ResponseMetadata"]["HTTPHeaders"] if h.startswith("x-amz-checksum")]
    wrong = base64.b64encode(hashlib.sha256(b"something else").digest()).decode()
    s3.put_object(Bucket=s3_bucket_name, Key="w", Body=body, ChecksumSHA256=wrong)  # accepted: never checked
    assert s3.get_object(Bucket=s3_bucket_name, Key="w")["Body"].read() == body

    wrong_md5 = base64.b64encode(hashlib.md5(b"something else").digest()).decode()
    assert error_of(lambda: s3.put_object(Bucket=s3_bucket_name, Key="m", Body=body, ContentMD5=wrong_md5)) == (
        "BadDigest", 400)
    right_md5 = base64.b64encode(hashlib.md5(body).digest()).decode()
    s3.put_object(Bucket=s3_bucket_name, Key="m", Body=body, ContentMD5=right_md5)

    swapped = s3_client()  # bytes changed after signing: the signed payload hash no longer matches

    def swap(request, **_):
        request.body = b"tampered in transit"
    swapped.meta.events.register("before-send.s3.PutObject", swap)
    assert error_of(lambda: swapped.put_object(Bucket=s3_bucket_name, Key="t", Body=body)) == (
        "XAmzContentSHA256Mismatch", 400)


def test_boto3_default_checksums_break_uploads_over_https(s3_client, s3_bucket_name):
    defaults = {"request_checksum_calculation": "when_supported", "response_checksum_validation": "when_supported"}
    s3 = s3_client(tls=True)
    s3.create_bucket(Bucket=s3_bucket_name)
    s3.put_object(Bucket=s3_bucket_name, Key="ok", Body=b"x")  # when_required (s3.env's setting): works
    assert error_of(lambda: s3_client(tls=True, **defaults).put_object(Bucket=s3_bucket_name, Key="d", Body=b"x")) == (
        "MissingContentLength", 411)
    assert error_of(lambda: s3.put_object(Bucket=s3_bucket_name, Key="s", Body=b"x", ChecksumAlgorithm="SHA256")) == (
        "MissingContentLength", 411)
    s3_client(**defaults).put_object(Bucket=s3_bucket_name, Key="h", Body=b"x")  # over plain HTTP they pass
    assert s3.get_object(Bucket=s3_bucket_name, Key="h")["Body"].read() == b"x"
