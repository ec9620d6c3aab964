"""Trusted time end to end: a real RFC 3161 TSA process, a timestamped practice, and the attacks it stops.

One local TSA (``agreements_kit.localtsa``, ``openssl ts -reply`` as its own process) serves
the module; a second TSA, whose root no auditor trusts, stands for a TSA the attacker runs.
A practice is set up with ``timestamping`` pointing at the first one, so every signature the
real signing code makes carries a token. Each case works on its own copy of that practice and
asks BOTH verifiers (``verify_folder`` with the archive's ledger, and ``audit`` of the whole
archive), with the trust an auditor holds outside the archive: the practice root and the TSA
root, in a folder of their own. OpenSSL (``cms -cmsout -print``, the README's ``ts -verify``
recipe) judges the tokens independently of our code.

What the time-stamp must catch, because the signer's own clock is the attacker's to set:
a revoked or expired therapist's backdated countersignature (judged at the TSA's time), a CRL
rolled back or deleted, a token grafted from another signature, a token from an untrusted TSA or
with no TSA trusted at all, a signing time outside the tolerance, a client's token replaced by a
later one (the countersignature then precedes it), and a damaged token.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import shutil
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from asn1crypto import cms as acms
from asn1crypto import tsp
from attack_kit import client_signing, forge, ledger_append, rewrite, sha, therapist_body
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID
from helpers import describe_failures

from agreements_kit import localtsa
from agreements_kit.authoring.practice import load_practice
from agreements_kit.authoring.render import Job, Renderer
from agreements_kit.authoring.spec import make_spec
from agreements_kit.errors import TimestampError
from agreements_kit.signing.pki import PKI, fingerprint, iso, load_cert, load_key, utcnow
from agreements_kit.signing.renders import log_renders
from agreements_kit.signing.setup import configure_timestamping, init_practice
from agreements_kit.signing.sign import sign_client, sign_therapist
from agreements_kit.signing.timestamp import TOKEN_ATTRIBUTE, Timestamper, add_token, timestamp_signature
from agreements_kit.verification.audit import audit, results
from agreements_kit.verification.steps import SIGNER_CLAIM, Verdict
from agreements_kit.verification.trust import resolve_trust
from agreements_kit.verification.verify import verify_folder

REPO = Path(__file__).resolve().parent.parent
RECIPE_HEADING = "### Check a time-stamp token with OpenSSL"

PASS = b"practice-pass-1"  # the root's
INTAKE_PASS = b"intake-pass-1"
CLINICIAN_PASS = b"clinician-ca-pass-1"
KEY_PASS = {"lee": b"lee-key-pass-1", "kim": b"kim-key-pass-1", "park": b"park-key-pass-1"}
PRACTICE_NAME = "Trusted Time Practice"
CLIENT = "Jane Q. Doe"
THERAPISTS = {"lee": ("Dr. Robin Lee", "PhD", "psychologist"), "kim": ("Alex Kim", "LMHC", "lpc"),
              "park": ("Jo Park", "PsyD", "psychologist")}
TSA_NAME = "Trusted Test TSA"
ROGUE_NAME = "Rogue Test TSA"

VALID = "agr-tt-valid"   # client, then lee, both time-stamped in the fixture: valid
KIMS = "agr-tt-kim"      # a draft for kim, signed in case 1
PARKS = "agr-tt-park"    # a draft for park, dated 40 days back, signed in case 2
TOL = "agr-tt-tol"       # a draft signed in case 6
PLAIN = "agr-tt-plain"   # the untimestamped practice's agreement: client, then lee
SPARE = "agr-tt-spare"   # the untimestamped practice's draft, for the dead-TSA cases

AGREEMENT_VARIABLES = ("AGREEMENTS_PRACTICE", "AGREEMENTS_TRUST", "AGREEMENTS_TRUST_SHA256", "AGREEMENTS_TSA_TRUST",
                       "AGREEMENTS_LOG_KEY", "AGREEMENTS_PASSPHRASE", "AGREEMENTS_KEY_PASSPHRASE",
                       "AGREEMENTS_FAULT")


def no_signed_copy(monkeypatch) -> None:
    """A forger who sets the clock back writes no signed copy (pyHanko will not sign one at such a time)."""
    from agreements_kit.signing import sign as sign_module

    monkeypatch.setattr(sign_module, "signed_copy", lambda *a, **k: {})


# ----------------------------------------------------------------------------- fixtures

@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Trust comes only from what each test names: never from the environment the suite runs in."""
    for key in AGREEMENT_VARIABLES:
        monkeypatch.delenv(key, raising=False)


@pytest.fixture(scope="module")
def tsa_folder(tmp_path_factory: pytest.TempPathFactory) -> localtsa.TsaFolder:
    return localtsa.create(tmp_path_factory.mktemp("tsa") / "tsa", TSA_NAME)


@pytest.fixture(scope="module")
def rogue_folder(tmp_path_factory: pytest.TempPathFactory) -> localtsa.TsaFolder:
    return localtsa.create(tmp_path_factory.mktemp("rogue") / "tsa", ROGUE_NAME)


@pytest.fixture(scope="module")
def tsa(tsa_folder: localtsa.TsaFolder, tmp_path_factory: pytest.TempPathFactory) -> Iterator[localtsa.LocalTsa]:
    log = tmp_path_factory.mktemp("tsa-log") / "stderr.log"
    with open(log, "wb") as err, localtsa.start(tsa_folder.path, stderr=err) as running:
        yield running


@pytest.fixture(scope="module")
def rogue(rogue_folder: localtsa.TsaFolder, tmp_path_factory: pytest.TempPathFactory
          ) -> Iterator[localtsa.LocalTsa]:
    log = tmp_path_factory.mktemp("rogue-log") / "stderr.log"
    with open(log, "wb") as err, localtsa.start(rogue_folder.path, stderr=err) as running:
        yield running


@dataclass(frozen=True)
class Pristine:
    root: Path          # the timestamped practice
    auditor: Path       # outside any archive: root.pem and tsa-roots.pem (the trusted TSA's root)
    bare: Path          # outside any archive: root.pem only (no TSA trusted)
    tsa: localtsa.TsaFolder
    early: dt.datetime  # when the PKI (and park's one-day certificate) was made


def _render(root: Path, drafts: dict[str, tuple[str, dt.date]]) -> None:
    practice = load_practice(root)
    renderer = Renderer.load(root)
    made = [renderer.render_to(Job(make_spec(client=CLIENT, therapist=tid, id=aid, date=date), practice.drafts))
            for aid, (tid, date) in drafts.items()]
    log_renders(practice, made)


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory, tsa: localtsa.LocalTsa,
             tsa_folder: localtsa.TsaFolder) -> Pristine:
    base = tmp_path_factory.mktemp("pristine")
    root = base / "practice"
    now = utcnow()
    early = now - dt.timedelta(days=40)
    init_practice(root, name=PRACTICE_NAME, jurisdiction="US-NY", phone="(212) 555-0100", therapists=THERAPISTS)
    pki = PKI(root / "pki")
    pki.create(PRACTICE_NAME, PASS, INTAKE_PASS, CLINICIAN_PASS, now=early)
    configure_timestamping(root, [tsa.url], tsa_folder.root.read_bytes())
    pki.issue_clinician("park", THERAPISTS["park"][0], PRACTICE_NAME, CLINICIAN_PASS, KEY_PASS["park"], now=early,
                        days=1)
    for tid in ("lee", "kim"):
        pki.issue_clinician(tid, THERAPISTS[tid][0], PRACTICE_NAME, CLINICIAN_PASS, KEY_PASS[tid])
    today = now.date()
    _render(root, {VALID: ("lee", today)})
    practice = load_practice(root)
    assert practice.timestamping is not None and practice.timestamping.urls == (tsa.url,)
    client = sign_client(practice, VALID, client_signing(root / "drafts" / VALID), INTAKE_PASS)
    therapist = sign_therapist(practice, VALID, KEY_PASS["lee"])
    assert client.untimestamped is None and therapist.untimestamped is None
    # Rendered after VALID was countersigned: whole seconds pass before any case re-stamps its client (case 7).
    _render(root, {KIMS: ("kim", today), PARKS: ("park", early.date()), TOL: ("lee", today)})
    auditor = base / "auditor"
    auditor.mkdir()
    shutil.copy(root / "pki" / "root.pem", auditor / "root.pem")
    shutil.copy(tsa_folder.root, auditor / "tsa-roots.pem")
    bare = base / "bare-auditor"
    bare.mkdir()
    shutil.copy(root / "pki" / "root.pem", bare / "root.pem")
    return Pristine(root, auditor, bare, tsa_folder, early)


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A practice without timestamping: its signatures' times are the signer's claim only."""
    root = tmp_path_factory.mktemp("plain") / "practice"
    init_practice(root, name=PRACTICE_NAME, jurisdiction="US-NY", phone="(212) 555-0100",
                  therapists={"lee": THERAPISTS["lee"]}, passphrase=PASS,
                  intake_passphrase=INTAKE_PASS, clinician_passphrase=CLINICIAN_PASS)
    PKI(root / "pki").issue_clinician("lee", THERAPISTS["lee"][0], PRACTICE_NAME, CLINICIAN_PASS, KEY_PASS["lee"])
    today = utcnow().date()
    _render(root, {PLAIN: ("lee", today), SPARE: ("lee", today)})
    practice = load_practice(root)
    assert practice.timestamping is None
    sign_client(practice, PLAIN, client_signing(root / "drafts" / PLAIN), INTAKE_PASS)
    sign_therapist(practice, PLAIN, KEY_PASS["lee"])
    return root


@pytest.fixture
def copy(pristine: Pristine, tmp_path: Path) -> Path:
    dest = tmp_path / "practice"
    shutil.copytree(pristine.root, dest)
    return dest


@pytest.fixture
def dead_url() -> str:
    """A loopback URL on which nothing listens (bound for a free port, then closed)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


# ----------------------------------------------------------------------------- judging


@dataclass
class Judged:
    verdict: Verdict
    row: dict[str, Any] | None
    summary: Any

    @property
    def audit_codes(self) -> set[str]:
        return {f["code"] for f in self.row["failures"]} if self.row else set()

    def failures(self, code: str) -> list[Any]:
        return [c for c in self.verdict.failures if c.code == code]


def judge(root: Path, auditor: Path, target: str, *, tsa_trust: Path | None = None,
          require_timestamps: bool = False) -> Judged:
    """``verify_folder`` (with the archive's ledger) and ``audit`` of the whole archive, as an auditor runs them."""
    archive = root / "signed"
    trust = resolve_trust(trust_file=auditor / "root.pem", archive=archive, tsa_trust=tsa_trust)
    verdict = verify_folder(archive / target, trust, ledger=archive / "ledger.jsonl",
                            require_timestamps=require_timestamps)
    summary, db = audit(archive, trust, workers=1, require_timestamps=require_timestamps)
    try:
        rows = {r["id"]: r for r in results(db)}
    finally:
        shutil.rmtree(db.parent, ignore_errors=True)
    return Judged(verdict, rows.get(target), summary)


def assert_rejected(j: Judged, *codes: str) -> None:
    """Both verifiers say not valid, each naming every one of ``codes``."""
    why = describe_failures(j.verdict)
    assert j.verdict.status == "invalid", why
    assert j.row is not None, "audit never saw the agreement"
    assert j.row["status"] == "invalid", j.row
    assert not j.summary.ok
    for code in codes:
        assert code in j.verdict.codes, f"verify does not name {code}:\n{why}"
        assert code in j.audit_codes, f"audit does not name {code}: {sorted(j.audit_codes)}"


def signer_of(j: Judged, record: str) -> dict[str, Any]:
    return next(s for s in j.verdict.signers if s["record"] == record)


def tsa_time(j: Judged, record: str) -> dt.datetime:
    stamped = signer_of(j, record).get("timestamped_at")
    assert stamped, f"{record} has no verified TSA time: {signer_of(j, record)}"
    return dt.datetime.strptime(stamped, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)


def signed_at(folder: Path, record: str) -> dt.datetime:
    text = json.loads((folder / record).read_bytes())["signed_at"]
    return dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)


# ----------------------------------------------------------------------------- tokens by hand


def strip_token(p7s: bytes) -> tuple[bytes, bytes]:
    """(``p7s`` without its time-stamp token, the token): only the unsigned attributes change."""
    info = acms.ContentInfo.load(p7s)
    signer = info["content"]["signer_infos"][0]
    attributes = list(signer["unsigned_attrs"])
    tokens = [a for a in attributes if a["type"].dotted == TOKEN_ATTRIBUTE]
    assert len(tokens) == 1, "the signature should carry exactly one time-stamp token"
    rest = [a for a in attributes if a["type"].dotted != TOKEN_ATTRIBUTE]
    if rest:
        signer["unsigned_attrs"] = acms.CMSAttributes(rest)
    else:
        del signer["unsigned_attrs"]
    stripped = info.dump(force=False)
    return stripped, tokens[0]["values"][0].dump()


def token_of(p7s: bytes) -> bytes:
    return strip_token(p7s)[1]


def gen_time(token: bytes) -> dt.datetime:
    content = acms.ContentInfo.load(token)["content"]["encap_content_info"]["content"]
    info = tsp.TSTInfo.load(content.native if isinstance(content.native, bytes) else content.contents)
    return info["gen_time"].native


def tsa_fingerprint(folder: localtsa.TsaFolder) -> tuple[str, str]:
    cert = folder.certificate()
    name = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    return str(name), hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


# ----------------------------------------------------------------------------- OpenSSL


def readme_recipe() -> str:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    start_at = text.find("\n" + RECIPE_HEADING + "\n")
    assert start_at >= 0, f"README.md has no section '{RECIPE_HEADING}'"
    section = text[start_at + len(RECIPE_HEADING) + 2:]
    block = re.search(r"^```bash\n(.*?)^```", section, flags=re.MULTILINE | re.DOTALL)
    assert block and not re.search(r"^#{1,3} ", section[:block.start()], flags=re.MULTILINE), \
        f"the README section '{RECIPE_HEADING}' has no ```bash block"
    return block.group(1)


def run_recipe(workdir: Path, p7s: Path, tsa_root: Path) -> subprocess.CompletedProcess[str]:
    script = workdir / "check-token.sh"
    script.write_text(readme_recipe(), encoding="utf-8")
    return subprocess.run(["bash", str(script), str(p7s), str(tsa_root)], capture_output=True, text=True,
                          cwd=workdir, timeout=60, check=False)


# ----------------------------------------------------------------------------- 1. revoked, backdated


def test_revoked_therapist_backdated_countersignature_is_revoked_at_the_tsa_time(copy: Path, pristine: Pristine):
    practice = load_practice(copy)
    pki = PKI(copy / "pki")
    start = utcnow()
    sign_client(practice, KIMS, client_signing(copy / "drafts" / KIMS), INTAKE_PASS,
                now=start - dt.timedelta(seconds=60))
    before_revocation = (copy / "pki" / "crl.pem").read_bytes()
    revoked_at = start - dt.timedelta(seconds=30)
    pki.revoke(load_cert(pki.therapist_cert("kim"), "kim"), CLINICIAN_PASS, now=revoked_at)
    after_revocation = (copy / "pki" / "crl.pem").read_bytes()
    # The dishonest therapist puts the older CRL back for the signing tool, signs with the clock set back
    # to before the revocation, then restores the current CRL so nothing looks rolled back.
    rewrite(copy / "pki" / "crl.pem", before_revocation)
    claimed = revoked_at - dt.timedelta(seconds=15)
    sign_therapist(practice, KIMS, KEY_PASS["kim"], now=claimed)
    rewrite(copy / "pki" / "crl.pem", after_revocation)
    folder = copy / "signed" / KIMS
    assert signed_at(folder, "02-therapist.json") == claimed < revoked_at, "the record claims a pre-revocation time"

    j = judge(copy, pristine.auditor, KIMS)
    assert_rejected(j, "revocation.revoked")
    assert tsa_time(j, "02-therapist.json") > revoked_at, "the TSA dates the countersignature after the revocation"
    revoked = j.failures("revocation.revoked")
    assert [c.subject for c in revoked] == ["02-therapist.json"], describe_failures(j.verdict)
    assert "TSA's time" in revoked[0].detail, revoked[0].detail
    row = [f for f in j.row["failures"] if f["code"] == "revocation.revoked"]
    assert row and "TSA's time" in row[0]["detail"]
    # The client signed before the revocation: nothing is held against the client's signature.
    assert not [c for c in j.verdict.failures if c.subject == "01-client.json"], describe_failures(j.verdict)


# ----------------------------------------------------------------------------- 2. expired, backdated


def test_expired_therapist_backdated_into_validity_fails_the_path_at_the_tsa_time(copy: Path, pristine: Pristine,
                                                                                   monkeypatch):
    no_signed_copy(monkeypatch)
    practice = load_practice(copy)
    cert = load_cert(PKI(copy / "pki").therapist_cert("park"), "park")
    assert cert.not_valid_after_utc < utcnow(), "park's one-day certificate has expired"
    sign_client(practice, PARKS, client_signing(copy / "drafts" / PARKS), INTAKE_PASS)
    claimed = pristine.early + dt.timedelta(hours=12)  # inside the certificate's day of validity
    assert cert.not_valid_before_utc <= claimed <= cert.not_valid_after_utc
    sign_therapist(practice, PARKS, KEY_PASS["park"], now=claimed)

    j = judge(copy, pristine.auditor, PARKS)
    assert_rejected(j, "validity.expired", "time.outside-tolerance")
    when = tsa_time(j, "02-therapist.json")
    expired = j.failures("validity.expired")
    assert [(c.name, c.subject) for c in expired] == [("path", "02-therapist.json")], describe_failures(j.verdict)
    assert f"{when:%Y-%m-%d %H:%M}" in expired[0].detail, f"not judged at the TSA's time {when}: {expired[0].detail}"
    outside = j.failures("time.outside-tolerance")
    assert [c.subject for c in outside] == ["02-therapist.json"]
    assert f"{when:%Y-%m-%dT%H:%M:%SZ}" in outside[0].detail and TSA_NAME in outside[0].detail


def test_expired_therapist_backdating_every_clock_by_hand_is_caught_by_the_tsa_alone(copy: Path, pristine: Pristine,
                                                                                     tsa: localtsa.LocalTsa):
    """The same attack without the signing tool: the record, the CMS signingTime and the ledger entry all
    claim the backdated time, so no clock the signer controls disagrees with another; the token (asked for
    afterwards, from the real TSA) dates the signature, and the path is judged then."""
    practice = load_practice(copy)
    pki = PKI(copy / "pki")
    sign_client(practice, PARKS, client_signing(copy / "drafts" / PARKS), INTAKE_PASS)
    folder = copy / "signed" / PARKS
    cert = load_cert(pki.therapist_cert("park"), "park")
    key = load_key(pki.therapist_key("park"), KEY_PASS["park"], "park")
    claimed = pristine.early + dt.timedelta(hours=12)  # inside the certificate's day of validity
    assert cert.not_valid_before_utc <= claimed <= cert.not_valid_after_utc < utcnow()
    forged = forge(folder, "therapist", therapist_body("park"), cert, key, [pki.clinician_ca()], signed_at=claimed,
                   ledger=False)
    stamped, _ = timestamp_signature((folder / f"{forged.name}.p7s").read_bytes(), Timestamper((tsa.url,)))
    rewrite(folder / f"{forged.name}.p7s", stamped)
    ledger_append(copy / "signed", {
        "event": "sign", "agreement_id": PARKS, "time": iso(claimed), "role": "therapist",
        "certificate_sha256": fingerprint(cert), "pdf_sha256": forged.data["document"]["sha256"],
        "record": forged.name, "files": {forged.name: sha(forged.raw), f"{forged.name}.p7s": sha(stamped)}})

    j = judge(copy, pristine.auditor, PARKS)
    assert_rejected(j, "validity.expired", "time.outside-tolerance")
    assert "time.cms-mismatch" not in j.verdict.codes, describe_failures(j.verdict)
    when = tsa_time(j, forged.name)
    expired = j.failures("validity.expired")
    assert [c.subject for c in expired] == [forged.name] and f"{when:%Y-%m-%d %H:%M}" in expired[0].detail


# ----------------------------------------------------------------------------- 3. CRL rolled back, deleted


def test_crl_rolled_back_in_a_timestamped_practice(copy: Path, pristine: Pristine):
    pki = PKI(copy / "pki")
    older = (copy / "pki" / "crl.pem").read_bytes()
    pki.revoke(load_cert(pki.therapist_cert("kim"), "kim"), CLINICIAN_PASS)
    assert (copy / "pki" / "crl.pem").read_bytes() != older
    rewrite(copy / "pki" / "crl.pem", older)  # the set from before kim's revocation, put back
    j = judge(copy, pristine.auditor, VALID)
    assert_rejected(j, "revocation.rollback")
    assert signer_of(j, "02-therapist.json")["time_source"].startswith(f"TSA '{TSA_NAME}'")


def test_crl_deleted_in_a_timestamped_practice(copy: Path, pristine: Pristine):
    (copy / "pki" / "crl.pem").unlink()
    assert not (pristine.auditor / "crl.pem").exists()
    j = judge(copy, pristine.auditor, VALID)
    # Each signature carries the CRL set in force at signing (docs/archive.md, long-term evidence): revocation
    # is judged from it, and says so; nothing was revoked since (tests/test_renew.py has the refusals).
    assert j.verdict.status == "valid", describe_failures(j.verdict)
    assert "revocation judged from the CRLs embedded at signing" in j.verdict.notes
    assert {c.subject for c in j.verdict.checks if c.name == "revocation" and c.ok} == {"01-client.json",
                                                                                     "02-therapist.json"}


# ----------------------------------------------------------------------------- 4. a token over other bytes


def test_token_grafted_from_the_clients_signature_is_over_other_bytes(copy: Path, pristine: Pristine,
                                                                       tmp_path: Path, cli):
    folder = copy / "signed" / VALID
    client_token = token_of((folder / "01-client.json.p7s").read_bytes())
    bare_therapist, own_token = strip_token((folder / "02-therapist.json.p7s").read_bytes())
    assert client_token != own_token
    with pytest.raises(Exception, match="already has a time-stamp token"):
        add_token((folder / "02-therapist.json.p7s").read_bytes(), client_token)  # the strip was needed
    rewrite(folder / "02-therapist.json.p7s", add_token(bare_therapist, client_token))

    j = judge(copy, pristine.auditor, VALID)
    assert_rejected(j, "time.token-imprint")
    assert [c.subject for c in j.failures("time.token-imprint")] == ["02-therapist.json"]
    assert signer_of(j, "02-therapist.json")["time_source"] == "a time-stamp token that did not verify"

    done = run_recipe(tmp_path, folder / "02-therapist.json.p7s", pristine.tsa.root)
    assert done.returncode != 0, done.stdout + done.stderr
    assert "Verification: OK" not in done.stdout
    # The same recipe accepts the untouched client signature beside it: it is the graft it refuses.
    done = run_recipe(tmp_path, folder / "01-client.json.p7s", pristine.tsa.root)
    assert done.returncode == 0 and "Verification: OK" in done.stdout, done.stdout + done.stderr

    res = cli("verify", folder, "--trust", pristine.auditor / "root.pem")
    assert res.exit_code == 1, res.stdout + res.stderr
    assert "[time.token-imprint]" in res.stdout and "not valid" in res.stdout


# ----------------------------------------------------------------------------- 5. untrusted TSA, no TSA trust


def test_token_from_an_untrusted_tsa(copy: Path, pristine: Pristine, rogue: localtsa.LocalTsa,
                                     rogue_folder: localtsa.TsaFolder, cli):
    folder = copy / "signed" / VALID
    bare_client, _ = strip_token((folder / "01-client.json.p7s").read_bytes())
    stamped, token = timestamp_signature(bare_client, Timestamper((rogue.url,)))
    rewrite(folder / "01-client.json.p7s", stamped)
    j = judge(copy, pristine.auditor, VALID)
    assert_rejected(j, "time.untrusted-tsa")
    untrusted = j.failures("time.untrusted-tsa")
    assert [c.subject for c in untrusted] == ["01-client.json"] and ROGUE_NAME in untrusted[0].detail
    # The therapist's token, from the trusted TSA, still verifies.
    assert signer_of(j, "02-therapist.json")["time_source"].startswith(f"TSA '{TSA_NAME}'")

    # An auditor who trusts the rogue TSA's root instead: now the practice's own TSA is the untrusted one.
    res = cli("verify", folder, "--trust", pristine.bare / "root.pem", "--tsa-trust", rogue_folder.root)
    assert res.exit_code == 1, res.stdout + res.stderr
    assert re.search(r"FAIL +6 time \[02-therapist\.json\]: .*" + TSA_NAME + r".*\[time\.untrusted-tsa\]",
                     res.stdout), res.stdout


def test_no_tsa_trusted_at_all(copy: Path, pristine: Pristine, cli):
    assert (copy / "pki" / "tsa-roots.pem").is_file(), "the TSA root beside the archive proves nothing"
    j = judge(copy, pristine.bare, VALID)
    assert_rejected(j, "time.no-trusted-tsa")
    assert {c.subject for c in j.failures("time.no-trusted-tsa")} == {"01-client.json", "02-therapist.json"}
    assert "--tsa-trust" in j.failures("time.no-trusted-tsa")[0].detail

    res = cli("audit", copy / "signed", "--trust", pristine.bare / "root.pem", "--workers", "1")
    assert res.exit_code == 1, res.stdout + res.stderr
    assert res.stdout.startswith("PROBLEMS:")
    assert "[time.no-trusted-tsa]" in res.stdout and VALID in res.stdout


# ----------------------------------------------------------------------------- 6. outside the tolerance


def test_client_signing_time_an_hour_back_is_outside_the_tolerance(copy: Path, pristine: Pristine, monkeypatch):
    no_signed_copy(monkeypatch)
    practice = load_practice(copy)
    claimed = utcnow() - dt.timedelta(hours=1)
    result = sign_client(practice, TOL, client_signing(copy / "drafts" / TOL), INTAKE_PASS, now=claimed)
    assert result.untimestamped is None
    j = judge(copy, pristine.auditor, TOL)
    assert_rejected(j, "time.outside-tolerance")
    outside = j.failures("time.outside-tolerance")
    assert [c.subject for c in outside] == ["01-client.json"]
    when = tsa_time(j, "01-client.json")
    assert when - claimed >= dt.timedelta(minutes=55)
    assert f"{when:%Y-%m-%dT%H:%M:%SZ}" in outside[0].detail and "set back or forward" in outside[0].detail


# ----------------------------------------------------------------------------- 7. a later token for the client


def test_clients_token_replaced_by_a_later_one_puts_the_countersignature_first(copy: Path, pristine: Pristine,
                                                                               tsa: localtsa.LocalTsa):
    folder = copy / "signed" / VALID
    therapist_time = gen_time(token_of((folder / "02-therapist.json.p7s").read_bytes()))
    bare_client, _ = strip_token((folder / "01-client.json.p7s").read_bytes())
    stamped, token = timestamp_signature(bare_client, Timestamper((tsa.url,)))
    assert gen_time(token) > therapist_time, "the fixture left whole seconds between the two"
    rewrite(folder / "01-client.json.p7s", stamped)
    j = judge(copy, pristine.auditor, VALID)
    assert_rejected(j, "time.tsa-out-of-order", "ledger.files-differ")
    assert [c.subject for c in j.failures("time.tsa-out-of-order")] == ["02-therapist.json"]
    assert [c.subject for c in j.failures("ledger.files-differ")] == ["01-client.json"]
    # The new token itself is genuine: the client's time is the trusted TSA's.
    assert signer_of(j, "01-client.json")["time_source"].startswith(f"TSA '{TSA_NAME}'")


# ----------------------------------------------------------------------------- 8. a damaged token


def _token_span(p7s: bytes) -> tuple[int, bytes]:
    token = token_of(p7s)
    at = p7s.find(token)
    assert at > 0 and p7s.count(token) == 1
    return at, token


def _gen_time_offset(token: bytes) -> int:
    """Where the last digit of the token's genTime (GeneralizedTime, tag 0x18) lies in the token."""
    text = gen_time(token).strftime("%Y%m%d%H%M%S").encode()
    found = [m.start() for m in re.finditer(re.escape(b"\x18" + bytes([len(text) + 1]) + text), token)]
    assert len(found) == 1, found
    return found[0] + 2 + len(text) - 1


@pytest.mark.parametrize("where", ["tsa-signature", "gen-time", "token-length"])
def test_damaged_token_is_refused(copy: Path, pristine: Pristine, where: str):
    path = copy / "signed" / VALID / "01-client.json.p7s"
    p7s = bytearray(path.read_bytes())
    at, token = _token_span(bytes(p7s))
    offset = {"tsa-signature": len(token) - 1, "gen-time": _gen_time_offset(token), "token-length": 1}[where]
    p7s[at + offset] ^= 0x01
    rewrite(path, bytes(p7s))
    j = judge(copy, pristine.auditor, VALID)
    why = describe_failures(j.verdict)
    assert_rejected(j)
    about = [c for c in j.verdict.failures if c.subject == "01-client.json" and c.code != "ledger.files-differ"]
    assert about, why
    assert all(c.name in ("time", "signature") for c in about), why
    assert all(c.code.startswith(("time.token-", "cms.", "format.")) for c in about), why
    assert {c.code for c in about} <= j.audit_codes
    if where in ("tsa-signature", "gen-time"):
        # The token still parses and covers this signature: it is its TSA signature that fails.
        assert {c.code for c in about} == {"time.token-invalid"}, why


# ----------------------------------------------------------------------------- 9. controls


def test_pristine_timestamped_practice_is_valid_and_names_its_tsa(pristine: Pristine, tmp_path: Path, cli):
    j = judge(pristine.root, pristine.auditor, VALID)
    assert j.verdict.status == "valid", describe_failures(j.verdict)
    assert j.row is not None and j.row["status"] == "valid", j.row
    assert j.summary.ok, (j.summary.ledger_problems, j.summary.counts)
    name, fp = tsa_fingerprint(pristine.tsa)
    assert name == TSA_NAME
    expected = f"TSA '{TSA_NAME}' (certificate SHA-256 {fp})"
    assert [s["time_source"] for s in j.verdict.signers] == [expected, expected]
    assert [s["time_source"] for s in j.row["signers"]] == [expected, expected]
    for s in j.verdict.signers:  # the TSA's time agrees with the signer's claim
        assert abs(tsa_time(j, s["record"]) - signed_at(pristine.root / "signed" / VALID, s["record"])) \
            <= dt.timedelta(minutes=5)

    signatures = sorted((pristine.root / "signed").glob("*/*.p7s"))
    assert [p.name for p in signatures] == ["01-client.json.p7s", "02-therapist.json.p7s"]
    for p7s in signatures:
        printed = subprocess.run(["openssl", "cms", "-cmsout", "-print", "-inform", "DER", "-in", str(p7s)],
                                 capture_output=True, text=True, check=False, timeout=60)
        assert printed.returncode == 0, printed.stderr
        assert "id-smime-aa-timeStampToken" in printed.stdout, p7s
        done = run_recipe(tmp_path, p7s, pristine.tsa.root)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "Verification: OK" in done.stdout and TSA_NAME in done.stdout

    res = cli("verify", pristine.root / "signed" / VALID, "--trust", pristine.auditor / "root.pem",
              "--require-timestamps")
    assert res.exit_code == 0, res.stdout + res.stderr
    assert res.stdout.startswith(f"valid: {VALID}")
    assert f"time of 01-client.json: {expected}" in res.stdout
    assert f"time of 02-therapist.json: {expected}" in res.stdout


def test_untimestamped_signature_is_the_signers_claim_and_fails_when_tokens_are_required(plain: Path, cli):
    auditor = plain.parent / "auditor"
    if not auditor.exists():
        auditor.mkdir()
        shutil.copy(plain / "pki" / "root.pem", auditor / "root.pem")
    j = judge(plain, auditor, PLAIN)
    assert j.verdict.status == "valid", describe_failures(j.verdict)
    assert j.row is not None and j.row["status"] == "valid" and j.summary.ok
    assert [s["time_source"] for s in j.verdict.signers] == [SIGNER_CLAIM, SIGNER_CLAIM]
    assert [s["time_source"] for s in j.row["signers"]] == [SIGNER_CLAIM, SIGNER_CLAIM]
    assert SIGNER_CLAIM == "the signer's claim only"
    claims = [c for c in j.verdict.checks if c.code == "time.signer-claim-only"]
    assert {c.subject for c in claims} == {"01-client.json", "02-therapist.json"} and all(c.ok for c in claims)

    j = judge(plain, auditor, PLAIN, require_timestamps=True)
    assert_rejected(j, "time.untimestamped")
    assert {c.subject for c in j.failures("time.untimestamped")} == {"01-client.json", "02-therapist.json"}

    res = cli("verify", plain / "signed" / PLAIN, "--trust", auditor / "root.pem")
    assert res.exit_code == 0 and f"time of 01-client.json: {SIGNER_CLAIM}" in res.stdout, res.stdout
    res = cli("verify", plain / "signed" / PLAIN, "--trust", auditor / "root.pem", "--require-timestamps")
    assert res.exit_code == 1 and "[time.untimestamped]" in res.stdout, res.stdout


def test_dead_tsa_archives_untimestamped_only_where_the_practice_allows_it(plain: Path, tmp_path: Path,
                                                                          dead_url: str):
    allowed = tmp_path / "allowed"
    shutil.copytree(plain, allowed)
    configure_timestamping(allowed, [dead_url], on_failure="archive-untimestamped")
    practice = load_practice(allowed)
    assert practice.timestamping is not None and practice.timestamping.on_failure == "archive-untimestamped"
    result = sign_client(practice, SPARE, client_signing(allowed / "drafts" / SPARE), INTAKE_PASS)
    assert result.untimestamped and "no TSA answered" in result.untimestamped, result.untimestamped
    assert result.signature_path.is_file()
    auditor = tmp_path / "auditor"
    auditor.mkdir()
    shutil.copy(allowed / "pki" / "root.pem", auditor / "root.pem")
    j = judge(allowed, auditor, SPARE)
    assert j.verdict.status == "incomplete", describe_failures(j.verdict)  # the therapist has not signed yet
    assert [s["time_source"] for s in j.verdict.signers] == [SIGNER_CLAIM]
    assert j.row is not None and [s["time_source"] for s in j.row["signers"]] == [SIGNER_CLAIM]
    j = judge(allowed, auditor, SPARE, require_timestamps=True)
    assert_rejected(j, "time.untimestamped")

    stopped = tmp_path / "stopped"
    shutil.copytree(plain, stopped)
    configure_timestamping(stopped, [dead_url])
    practice = load_practice(stopped)
    assert practice.timestamping is not None and practice.timestamping.on_failure == "stop"
    ledger_before = (stopped / "signed" / "ledger.jsonl").read_bytes()
    with pytest.raises(TimestampError) as caught:
        sign_client(practice, SPARE, client_signing(stopped / "drafts" / SPARE), INTAKE_PASS)
    assert caught.value.code == "unavailable.tsa"
    assert "nothing was signed" in caught.value.message and dead_url in caught.value.message
    folder = stopped / "signed" / SPARE
    records = sorted(p.name for p in folder.glob("[0-9][0-9]-*")) if folder.exists() else []
    assert records == [], f"a record was left in the archive: {records}"
    ledger = (stopped / "signed" / "ledger.jsonl").read_bytes()
    assert ledger.startswith(ledger_before)
    added = [json.loads(line) for line in ledger[len(ledger_before):].splitlines()]
    assert not [e for e in added if e["event"] in ("sign", "void")], added
