"""``agreements store``: a write-once S3 bucket (Object Lock) as the archive's store of record.

Where the bucket is and who may write come from boto3's standard chain
(``AWS_ENDPOINT_URL``, ``AWS_PROFILE``, the shared config and credentials files, the
environment); nothing of it is written anywhere by these commands.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import click

from agreements_kit.cli.groups import OneLineGroup
from agreements_kit.errors import StoreError

ca_bundle_option = click.option(
    "--ca-bundle", "ca_bundle", type=click.Path(dir_okay=False, exists=True),
    help="PEM file of the CA that signed the store's TLS certificate (a practice's own RGW); default: "
         "$AWS_CA_BUNDLE, else the system's.")


def open_store(url: str, ca_bundle: str | None, *, check: bool = True) -> Any:
    from agreements_kit.store.s3 import S3Store

    store = S3Store(url, ca_bundle=ca_bundle or os.environ.get("AWS_CA_BUNDLE") or None)
    if check:
        store.open()
    return store


def default_cache(url: str) -> Path:
    """Where an audit of ``url`` keeps its mirror: the user's cache folder, one subfolder per URL."""
    import hashlib

    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "agreements-kit" / "store"
    return base / hashlib.sha256(url.encode()).hexdigest()[:16]


@click.group(cls=OneLineGroup)
def store() -> None:
    """Keep the archive in a write-once S3 bucket (Object Lock, COMPLIANCE mode)."""


@store.command("init")
@click.argument("url")
@click.option("--retention-years", "years", type=click.IntRange(1, 100), default=7, show_default=True,
              help="How long every object stays locked (HIPAA asks at least six years).")
@ca_bundle_option
def init_cmd(url: str, years: int, ca_bundle: str | None) -> None:
    """Create (or check) the bucket of URL (s3://BUCKET/PREFIX) with Object Lock and a default COMPLIANCE
    retention; refuses a bucket without Object Lock."""
    target = open_store(url, ca_bundle, check=False)
    done = target.init(years)
    click.echo(f"{target.url}: bucket {done}: Object Lock on, COMPLIANCE retention {years} years by default; "
               "nothing in it can be deleted or replaced, also not by this tool")


@store.command("push")
@click.argument("archive", type=click.Path(file_okay=False, exists=True, path_type=Path))
@click.argument("url")
@ca_bundle_option
@click.option("--trust", "trust_path", type=click.Path(dir_okay=False, exists=True, path_type=Path), required=True,
              help="The practice root certificate: the folder and the copy are both audited against it.")
@click.option("--log-key", "log_key", metavar="FILE|KEY", help="The log's verifier key (log.pub), if any.")
@click.option("--cache", "cache", type=click.Path(file_okay=False, path_type=Path),
              help="Where the copy is read back to (default: a temporary folder, removed afterwards).")
def push_cmd(archive: Path, url: str, ca_bundle: str | None, trust_path: Path, log_key: str | None,
             cache: Path | None) -> None:
    """Copy the local ARCHIVE (signed/) into the bucket of URL, then prove the copy: every object with
    the same SHA-256, and the same verdict for every agreement in both audits."""
    from agreements_kit.store.push import push
    from agreements_kit.verification.audit import audit
    from agreements_kit.verification.storeaudit import audit_store, prove_copy
    from agreements_kit.verification.trust import resolve_trust

    target = open_store(url, ca_bundle)
    trust = resolve_trust(trust_file=trust_path, log_key=log_key)
    report = push(archive, target)
    click.echo(f"pushed {report.agreements} agreements, {report.ledger_lines} ledger lines, {report.checkpoints} "
               f"checkpoints to {target.url}: {report.written} objects written, {report.present} already there")
    for name in report.skipped[:20]:
        click.echo(f"  skipped (not part of the archive's layout): {name}")
    work = Path(tempfile.mkdtemp(prefix="agreements-push-")) if cache is None else cache
    local_db = copy_db = None
    try:
        local, local_db = audit(archive, trust)
        copy, copy_db, mirrored = audit_store(target, work, trust)
        differences = prove_copy(archive, local_db, mirrored, copy_db)
        shutil.rmtree(mirrored.archive, ignore_errors=True)
        for code, message in copy.store_problems:
            differences.append(f"store: {message} [{code}]")
        if local.ok != copy.ok or local.counts != copy.counts:
            differences.append(f"the audits differ: folder {local.counts}, store {copy.counts}")
        if differences:
            click.echo(f"PROBLEMS: the copy in {target.url} does not match the folder:")
            for line in differences[:50]:
                click.echo(f"  {line}")
            sys.exit(1)
        c = copy.counts
        click.echo(f"ok: the copy matches: {copy.agreements} agreements ({c['valid']} valid, {c['invalid']} invalid, "
                   f"{c['incomplete']} incomplete, {c['voided']} voided) with the same verdicts and the same SHA-256 "
                   "for every object, each locked in COMPLIANCE mode")
    finally:
        for db in (local_db, copy_db):
            if db is not None:
                shutil.rmtree(db.parent, ignore_errors=True)
        if cache is None:
            shutil.rmtree(work, ignore_errors=True)


@store.command("hold")
@click.argument("url")
@click.argument("agreement_id")
@click.option("--off", "off", is_flag=True, help="Lift the hold (retention still applies).")
@ca_bundle_option
def hold_cmd(url: str, agreement_id: str, off: bool, ca_bundle: str | None) -> None:
    """Place (or lift, --off) a legal hold on every object of one agreement: kept even after its retention
    ends, for litigation."""
    from agreements_kit.formats import storekeys

    target = open_store(url, ca_bundle)
    # Every version of every object of the agreement: the first (the one the audit reads) and any written
    # after it, also under a delete marker.
    versions = [v for v in target.versions() if not v.delete_marker
                and v.key.startswith(f"{storekeys.AGREEMENTS}{agreement_id}/")]
    if not versions:
        raise StoreError(f"{target.url} holds no agreement {agreement_id}", code="not-found.store")
    for v in versions:
        target.legal_hold(v.key, v.version_id, not off)
    keys = len({v.key for v in versions})
    click.echo(f"legal hold {'lifted from' if off else 'placed on'} {keys} objects of {agreement_id} "
               f"({len(versions)} versions)")
