"""The tests' S3 store: scripts/rgwcluster.py (a real one-node Ceph RGW) loaded by path, and boto3 clients for it.

The fixtures (conftest.py: ``rgw``, ``rgw_env``, ``s3_client``, ``s3_bucket_name``) are built
from these. Clients are made from the cluster's values, never from the environment the tests
run in, so a developer's ~/.aws or AWS_* variables cannot point a test at another store.
"""

from __future__ import annotations

import importlib.util
import re
import sys
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent


def _load_rgwcluster() -> Any:
    name = "rgwcluster"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / "rgwcluster.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # before exec: its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


rgwcluster = _load_rgwcluster()
Cluster = rgwcluster.Cluster
ClusterError = rgwcluster.ClusterError
missing_programs = rgwcluster.missing_programs
RGW = rgwcluster.RGW


def client_env(cluster: Any, *, tls: bool = False) -> dict[str, str]:
    """The AWS_* variables a subprocess needs to reach ``cluster`` as its S3 user, and nothing of this machine's.

    Shared config and credential files point at nothing (a developer's ~/.aws stays out) and
    the EC2 metadata lookup is off (a missing credential fails at once instead of after a timeout).
    Merge it over an environment with the AWS_* variables removed: an inherited AWS_PROFILE
    would still name a profile, and fail.
    """
    nowhere = str(cluster.root / "no-such-aws-file")
    return {**cluster.env(tls=tls), "AWS_CONFIG_FILE": nowhere, "AWS_SHARED_CREDENTIALS_FILE": nowhere,
            "AWS_EC2_METADATA_DISABLED": "true"}


def s3_client(cluster: Any, *, tls: bool = False, **config: Any) -> Any:
    """A boto3 S3 client for ``cluster``'s user: path-style, checksums only when required, two attempts.

    ``config`` overrides botocore Config options (``retries={"max_attempts": 1}`` for a test
    that expects a failure fast, ``request_checksum_calculation="when_supported"`` for boto3's default).
    """
    import boto3
    import botocore.session
    from botocore.config import Config

    options: dict[str, Any] = dict(s3={"addressing_style": "path"}, request_checksum_calculation="when_required",
                                   response_checksum_validation="when_required",
                                   retries={"max_attempts": 2, "mode": "standard"}, connect_timeout=5, read_timeout=60)
    options.update(config)
    nowhere = str(cluster.root / "no-such-aws-file")
    # this machine's AWS_PROFILE, AWS_CONFIG_FILE and ~/.aws play no part (read from no variable, default nowhere)
    core = botocore.session.Session(session_vars={"profile": (None, None, None, None),
                                                  "config_file": (None, None, nowhere, None),
                                                  "credentials_file": (None, None, nowhere, None)})
    session = boto3.session.Session(botocore_session=core, aws_access_key_id=cluster.access_key,
                                    aws_secret_access_key=cluster.secret_key, region_name=cluster.region)
    return session.client("s3", endpoint_url=cluster.tls_endpoint if tls else cluster.endpoint,
                          verify=str(cluster.ca_bundle) if tls else None, config=Config(**options))


def bucket_name(test_name: str) -> str:
    """A new valid bucket name (3-63 of a-z, 0-9, '-') that says which test made it."""
    stem = re.sub(r"[^a-z0-9]+", "-", test_name.lower()).strip("-")[:40].strip("-") or "t"
    return f"{stem}-{uuid.uuid4().hex[:12]}"
