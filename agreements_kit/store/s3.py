"""An archive in S3 with Object Lock: every object written once, under COMPLIANCE retention.

The bucket is the store of record; the objects are laid out as formats/storekeys says.
Nothing here overwrites or deletes: :meth:`S3Store.put_once` writes a key that is not
there, finds a key that holds the same bytes already (a retry: idempotent), and refuses
a key that holds other bytes. In a versioned bucket a second write to a key would keep
both versions; the audit names any key with more than one (an overwrite attempt).

Where the store is and who may write to it come from boto3's standard chain: the
endpoint (``AWS_ENDPOINT_URL``, or ``endpoint_url`` in the profile's shared config),
the region and the credentials (environment, shared config and credentials files,
``AWS_PROFILE``). None of them is ever written into the archive, the practice's
configuration or a log line. TLS is boto3's; a practice's own RGW with its own CA is
trusted with ``ca_bundle`` (or ``AWS_CA_BUNDLE``).

boto3 is imported on first use: no command that works on a local folder pays for it.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from agreements_kit.errors import StoreError
from agreements_kit.formats import storekeys

BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]\Z")
PREFIX_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}(?:/[A-Za-z0-9][A-Za-z0-9._-]{0,62}){0,7}\Z")
DEFAULT_YEARS = 7
MAX_YEARS = 100
STORE_FORMAT = "agreements-kit/store"
MAX_OBJECT = 68 * 1024 * 1024  # the largest file an agreement folder may hold (a signed copy)


@dataclass(frozen=True)
class StoreURL:
    """``s3://BUCKET/PREFIX``: the bucket and the prefix (without slashes at its ends) the archive lives under."""

    bucket: str
    prefix: str

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"

    def key(self, relative: str) -> str:
        return f"{self.prefix}/{relative}" if self.prefix else relative

    def relative(self, key: str) -> str | None:
        if not self.prefix:
            return key
        return key[len(self.prefix) + 1:] if key.startswith(self.prefix + "/") else None


def is_store_url(text: str) -> bool:
    return text.startswith("s3://")


def parse_url(text: str) -> StoreURL:
    """``s3://bucket`` or ``s3://bucket/prefix``; ``usage.store-url`` for anything else."""
    if not is_store_url(text):
        raise StoreError(f"{text!r} is not an S3 URL (s3://BUCKET/PREFIX)", code="usage.store-url")
    rest = text[len("s3://"):].rstrip("/")
    bucket, _, prefix = rest.partition("/")
    if not BUCKET_RE.match(bucket) or ".." in bucket:
        raise StoreError(f"{text!r}: {bucket!r} is not a bucket name (3-63 lowercase letters, digits, dots and "
                         "hyphens)", code="usage.store-url")
    if prefix and not PREFIX_RE.match(prefix):
        raise StoreError(f"{text!r}: the prefix {prefix!r} must be up to 8 parts of letters, digits, '.', '_' and "
                         "'-', separated by '/'", code="usage.store-url")
    return StoreURL(bucket, prefix)


@dataclass(frozen=True)
class ObjectVersion:
    """One version of one object, as the bucket lists it (a delete marker has no size or ETag)."""

    key: str  # relative to the prefix
    version_id: str
    is_latest: bool
    delete_marker: bool
    size: int = 0
    etag: str = ""  # without quotes; the MD5 (hex) of the bytes for a single-part upload
    last_modified: dt.datetime | None = None


@dataclass(frozen=True)
class Lock:
    """An object version's retention and legal hold, as the store reports it."""

    mode: str | None  # COMPLIANCE, GOVERNANCE or None
    retain_until: dt.datetime | None
    legal_hold: bool


def add_years(moment: dt.datetime, years: int) -> dt.datetime:
    """The same day and time ``years`` later (29 February becomes 28 February)."""
    try:
        return moment.replace(year=moment.year + years)
    except ValueError:
        return moment.replace(year=moment.year + years, day=28)


def md5_etag(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


class S3Store:
    """The archive's objects in one bucket, under one prefix."""

    def __init__(self, url: StoreURL | str, *, ca_bundle: str | None = None, connections: int = 16):
        self.url = parse_url(url) if isinstance(url, str) else url
        self.ca_bundle = ca_bundle
        self.connections = connections
        self._client: Any = None
        self.years = DEFAULT_YEARS

    # ------------------------------------------------------------------ connection

    @property
    def client(self) -> Any:
        if self._client is None:
            import boto3
            from botocore.config import Config

            config = Config(s3={"addressing_style": "path"}, max_pool_connections=self.connections,
                            retries={"mode": "standard", "max_attempts": 3}, connect_timeout=5, read_timeout=30,
                            request_checksum_calculation="when_required",
                            response_checksum_validation="when_required")
            try:
                self._client = boto3.session.Session().client("s3", config=config, verify=self.ca_bundle)
            except Exception as exc:  # no region, a broken profile: boto3 says which
                raise StoreError(f"the S3 client cannot be set up: {type(exc).__name__}: {_first_line(exc)}",
                                 code="usage.store-config") from None
        return self._client

    def _call(self, what: str, method: str, **kwargs: Any) -> Any:
        """One S3 request; botocore's failures become one StoreError naming what was being done."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return getattr(self.client, method)(**kwargs)
        except ClientError as exc:
            raise _client_error(self.url, what, exc) from None
        except BotoCoreError as exc:
            raise _unreachable(self.url, what, exc) from None

    # ------------------------------------------------------------------ the bucket

    def init(self, years: int = DEFAULT_YEARS) -> str:
        """Create the bucket with Object Lock and a default COMPLIANCE retention of ``years``, or check an
        existing one; then write the store marker once. Returns what was done (created, checked)."""
        if not 1 <= years <= MAX_YEARS:
            raise StoreError(f"retention of {years} years: give 1 to {MAX_YEARS}", code="usage.store-retention")
        from botocore.exceptions import ClientError

        created = False
        try:  # first asked, since some stores (RGW) answer a create of a bucket one owns already with success
            self.client.head_bucket(Bucket=self.url.bucket)
        except ClientError as exc:
            if _code(exc) not in ("404", "NoSuchBucket", "NotFound"):
                raise _client_error(self.url, "looking for the bucket", exc) from None
            self._call("creating the bucket", "create_bucket", Bucket=self.url.bucket,
                       ObjectLockEnabledForBucket=True)
            created = True
        except Exception as exc:
            self._call_failed("looking for the bucket", exc)
            raise
        if created:
            self._call("setting the bucket's default retention", "put_object_lock_configuration",
                       Bucket=self.url.bucket, ObjectLockConfiguration={
                           "ObjectLockEnabled": "Enabled",
                           "Rule": {"DefaultRetention": {"Mode": "COMPLIANCE", "Years": years}}})
        self.check_bucket(years)
        marker = json.dumps({"format": STORE_FORMAT, "format_version": 1, "retention_years": years},
                            sort_keys=True).encode()
        found = self.get_optional(storekeys.STORE_MARKER)
        if found is not None and found != marker:
            self.years = self.read_marker(found)
            raise StoreError(f"{self.url} is already an archive with a retention of {self.years} years; its "
                             "settings are written once and cannot be changed", code="conflict.store-exists")
        self.years = years
        self.put_once(storekeys.STORE_MARKER, marker)
        return "created" if created else "checked"

    def _call_failed(self, what: str, exc: Exception) -> None:
        from botocore.exceptions import BotoCoreError

        if isinstance(exc, BotoCoreError):
            raise _unreachable(self.url, what, exc) from None
        raise exc

    def check_bucket(self, years: int | None = None) -> None:
        """The bucket must keep versions and lock objects by default in COMPLIANCE mode (for at least
        ``years``, when given); ``conflict.store-unlocked`` names what it lacks."""
        from botocore.exceptions import ClientError

        try:
            config = self.client.get_object_lock_configuration(Bucket=self.url.bucket)["ObjectLockConfiguration"]
        except ClientError as exc:
            if _code(exc) in ("ObjectLockConfigurationNotFoundError", "ObjectLockConfigurationNotFound",
                              "InvalidRequest"):
                raise StoreError(f"{self.url.bucket} was created without Object Lock: its objects could be "
                                 "deleted or replaced; use a bucket created by 'agreements store init'",
                                 code="conflict.store-unlocked") from None
            raise _client_error(self.url, "reading the bucket's Object Lock configuration", exc) from None
        except Exception as exc:
            self._call_failed("reading the bucket's Object Lock configuration", exc)
            raise
        if config.get("ObjectLockEnabled") != "Enabled":
            raise StoreError(f"{self.url.bucket} does not have Object Lock enabled", code="conflict.store-unlocked")
        rule = (config.get("Rule") or {}).get("DefaultRetention") or {}
        if rule.get("Mode") != "COMPLIANCE":
            raise StoreError(f"{self.url.bucket} has no default COMPLIANCE retention (found {rule.get('Mode')!r}): "
                             "GOVERNANCE locks can be lifted by an administrator", code="conflict.store-unlocked")
        default_years = int(rule.get("Years") or 0) or int(rule.get("Days") or 0) // 365
        if years is not None and default_years < years:
            raise StoreError(f"{self.url.bucket} retains objects {default_years} years by default, less than the "
                             f"{years} asked for", code="conflict.store-unlocked")
        versioning = self._call("reading the bucket's versioning", "get_bucket_versioning", Bucket=self.url.bucket)
        if versioning.get("Status") != "Enabled":
            raise StoreError(f"{self.url.bucket} does not keep versions", code="conflict.store-unlocked")

    @staticmethod
    def read_marker(data: bytes) -> int:
        """The retention years a store marker gives; ``format.store-marker`` when it is not one."""
        try:
            value = json.loads(data)
            years = value["retention_years"]
            ok = value.get("format") == STORE_FORMAT and isinstance(years, int) and 1 <= years <= MAX_YEARS
        except (ValueError, KeyError, TypeError, AttributeError):
            ok = False
        if not ok:
            raise StoreError(f"{storekeys.STORE_MARKER} in the store is not an agreements-kit store marker",
                             code="format.store-marker")
        return int(years)

    def open(self) -> None:
        """Check the bucket and read its marker (the retention years every new object gets)."""
        self.check_bucket()
        data = self.get_optional(storekeys.STORE_MARKER)
        if data is None:
            raise StoreError(f"{self.url} is not an agreements-kit archive (no {storekeys.STORE_MARKER}): run "
                             "'agreements store init' first", code="not-found.store")
        self.years = self.read_marker(data)

    # ------------------------------------------------------------------ objects

    def put_once(self, key: str, data: bytes, *, now: dt.datetime | None = None) -> str:
        """Write ``data`` at ``key`` (relative to the prefix), locked in COMPLIANCE mode for the store's
        years. ``written``; ``present`` when the key holds these bytes already (a retry); StoreError
        ``conflict.store-exists`` when it holds other bytes (never replaced)."""
        full = self.url.key(key)
        etag = md5_etag(data)
        head = self._head(full)
        if head is not None:
            if head.get("ETag", "").strip('"') == etag and head.get("ContentLength") == len(data):
                return "present"
            raise StoreError(f"{self.url}/{key} already holds other bytes; objects are never replaced",
                             code="conflict.store-exists")
        until = add_years(now or dt.datetime.now(dt.UTC), self.years)
        response = self._call(f"writing {key}", "put_object", Bucket=self.url.bucket, Key=full, Body=data,
                              ContentMD5=base64.b64encode(bytes.fromhex(etag)).decode(),
                              ObjectLockMode="COMPLIANCE", ObjectLockRetainUntilDate=until,
                              Metadata={"sha256": hashlib.sha256(data).hexdigest()})
        if response.get("ETag", "").strip('"') != etag:
            raise StoreError(f"writing {key} in {self.url}: the store acknowledged other bytes than were sent",
                             code="unavailable.store")
        return "written"

    def put_version(self, key: str, data: bytes, *, now: dt.datetime | None = None) -> str:
        """Write ``data`` at ``key`` whether or not the key holds a version already (locked as put_once
        locks); the new version's id. Only for the ledger's appends, where two sites can race for one line
        and :func:`first_version` decides which one holds it (store/s3ledger.py)."""
        etag = md5_etag(data)
        until = add_years(now or dt.datetime.now(dt.UTC), self.years)
        response = self._call(f"writing {key}", "put_object", Bucket=self.url.bucket, Key=self.url.key(key),
                              Body=data, ContentMD5=base64.b64encode(bytes.fromhex(etag)).decode(),
                              ObjectLockMode="COMPLIANCE", ObjectLockRetainUntilDate=until,
                              Metadata={"sha256": hashlib.sha256(data).hexdigest()})
        version = response.get("VersionId")
        if response.get("ETag", "").strip('"') != etag or not version:
            raise StoreError(f"writing {key} in {self.url}: the store acknowledged other bytes than were sent, or "
                             "no version (is the bucket versioned?)", code="unavailable.store")
        return str(version)

    def versions_of(self, key: str) -> list[ObjectVersion]:
        """Every version of exactly ``key``, newest first, as the store orders them."""
        full = self.url.key(key)
        found: list[ObjectVersion] = []
        kwargs: dict[str, Any] = {"Bucket": self.url.bucket, "Prefix": full}
        while True:
            page = self._call(f"listing the versions of {key}", "list_object_versions", **kwargs)
            found += [v for v in _page_versions(self.url, page) if v.key == key]
            if not page.get("IsTruncated"):
                return found
            kwargs["KeyMarker"] = page.get("NextKeyMarker")
            kwargs["VersionIdMarker"] = page.get("NextVersionIdMarker")

    def keys_after(self, prefix: str, start_after: str | None) -> Iterator[str]:
        """The keys (relative) under ``prefix`` after ``start_after``, in order: a tail read without a full listing."""
        kwargs: dict[str, Any] = {"Bucket": self.url.bucket, "Prefix": self.url.key(prefix)}
        if start_after:
            kwargs["StartAfter"] = self.url.key(start_after)
        while True:
            page = self._call("listing the store", "list_objects_v2", **kwargs)
            for item in page.get("Contents", []):
                rel = self.url.relative(item["Key"])
                if rel is not None:
                    yield rel
            if not page.get("IsTruncated"):
                return
            kwargs["ContinuationToken"] = page.get("NextContinuationToken")

    def _head(self, full_key: str) -> dict[str, Any] | None:
        from botocore.exceptions import ClientError

        try:
            return dict(self.client.head_object(Bucket=self.url.bucket, Key=full_key))
        except ClientError as exc:
            if _code(exc) in ("404", "NoSuchKey", "NotFound"):
                return None
            raise _client_error(self.url, "reading an object's state", exc) from None
        except Exception as exc:
            self._call_failed("reading an object's state", exc)
            raise

    def get(self, key: str, version_id: str | None = None) -> tuple[bytes, Lock]:
        """An object's bytes (the given version, or the latest) and its lock, from the same response."""
        extra = {"VersionId": version_id} if version_id else {}
        response = self._call(f"reading {key}", "get_object", Bucket=self.url.bucket, Key=self.url.key(key), **extra)
        body = response["Body"]
        try:
            data = body.read(MAX_OBJECT + 1)
        except Exception as exc:
            raise StoreError(f"reading {key} from {self.url}: the transfer broke off ({type(exc).__name__})",
                             code="unavailable.store") from None
        finally:
            body.close()
        if len(data) > MAX_OBJECT:
            raise StoreError(f"{key} in {self.url} is larger than any archive file may be", code="format.too-large")
        return data, _lock(response)

    def get_optional(self, key: str) -> bytes | None:
        if self._head(self.url.key(key)) is None:
            return None
        return self.get(key)[0]

    def lock(self, key: str, version_id: str) -> Lock:
        """A version's retention and legal hold (HEAD: the bytes stay where they are)."""
        response = self._call(f"reading the lock of {key}", "head_object", Bucket=self.url.bucket,
                              Key=self.url.key(key), VersionId=version_id)
        return _lock(response)

    def versions(self) -> Iterator[ObjectVersion]:
        """Every version and delete marker under the prefix, page by page (memory flat), by key."""
        prefix = self.url.key("") if self.url.prefix else ""
        kwargs: dict[str, Any] = {"Bucket": self.url.bucket, "Prefix": prefix}
        while True:
            page = self._call("listing the store", "list_object_versions", **kwargs)
            yield from _page_versions(self.url, page)
            if not page.get("IsTruncated"):
                return
            kwargs["KeyMarker"] = page.get("NextKeyMarker")
            kwargs["VersionIdMarker"] = page.get("NextVersionIdMarker")

    def legal_hold(self, key: str, version_id: str, on: bool) -> None:
        """Place or lift a legal hold on one version of ``key`` (litigation: kept past its retention)."""
        self._call(f"setting the legal hold of {key}", "put_object_legal_hold", Bucket=self.url.bucket,
                   Key=self.url.key(key), VersionId=version_id, LegalHold={"Status": "ON" if on else "OFF"})


def _page_versions(url: StoreURL, page: dict[str, Any]) -> list[ObjectVersion]:
    """One listing page's versions and delete markers, by key: first a key's versions in the store's own
    order (newest first), then its delete markers. No timestamp reorders versions: two writes in the same
    millisecond are told apart only by the store's order."""
    items: list[tuple[str, int, ObjectVersion]] = []
    for kind, marker in (("Versions", False), ("DeleteMarkers", True)):
        for i, v in enumerate(page.get(kind, [])):
            rel = url.relative(v["Key"])
            if rel is None:
                continue
            items.append((rel, i, ObjectVersion(rel, v.get("VersionId") or "null", bool(v.get("IsLatest")), marker,
                                                int(v.get("Size", 0)), v.get("ETag", "").strip('"'),
                                                v.get("LastModified"))))
    items.sort(key=lambda t: (t[0], t[2].delete_marker, t[1]))
    return [t[2] for t in items]


def first_version(versions: list[ObjectVersion]) -> ObjectVersion | None:
    """The version written first (the store lists a key's versions newest first): the one that holds the key."""
    real = [v for v in versions if not v.delete_marker]
    return real[-1] if real else None


def _lock(response: dict[str, Any]) -> Lock:
    until = response.get("ObjectLockRetainUntilDate")
    if isinstance(until, str):
        until = dt.datetime.fromisoformat(until.replace("Z", "+00:00"))
    if isinstance(until, dt.datetime) and until.tzinfo is None:
        until = until.replace(tzinfo=dt.UTC)
    return Lock(response.get("ObjectLockMode"), until, response.get("ObjectLockLegalHoldStatus") == "ON")


def _code(exc: Any) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _first_line(exc: Exception) -> str:
    return (str(exc).splitlines() or [""])[0][:200]


def _unreachable(url: StoreURL, what: str, exc: Exception) -> StoreError:
    """The store did not answer (or could not be trusted to): nothing was stored, a retry may work."""
    from botocore.exceptions import NoCredentialsError, SSLError

    if isinstance(exc, SSLError):
        return StoreError(f"{what} in {url}: the store cannot be reached over TLS: its certificate is not trusted "
                          "(a practice's own RGW: give its CA with --ca-bundle or AWS_CA_BUNDLE)",
                          code="unavailable.store")
    if isinstance(exc, NoCredentialsError):
        return StoreError(f"{what} in {url}: no S3 credentials found (AWS_PROFILE, AWS_ACCESS_KEY_ID, or the shared "
                          "credentials file)", code="denied.store")
    return StoreError(f"{what} in {url}: the store cannot be reached ({type(exc).__name__}); nothing was recorded "
                      "as stored: try again when it answers", code="unavailable.store")


def _client_error(url: StoreURL, what: str, exc: Any) -> StoreError:
    code = _code(exc)
    if code in ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "Forbidden", "403"):
        return StoreError(f"{what} in {url}: the store refused it ({code}): check the credentials and the "
                          "bucket's policy", code="denied.store")
    if code in ("NoSuchBucket", "404", "NoSuchKey", "NotFound"):
        return StoreError(f"{what} in {url}: not found ({code})", code="not-found.store")
    if code.startswith("5") or code in ("ServiceUnavailable", "SlowDown", "InternalError", "RequestTimeout"):
        return StoreError(f"{what} in {url}: the store failed ({code}); nothing was recorded as stored: try "
                          "again", code="unavailable.store")
    return StoreError(f"{what} in {url}: the store answered {code or 'an error'}", code="unavailable.store")
