"""One ledger in one bucket, appended to by several writers at once (store/s3ledger.py), on a real RGW.

Three writer processes append concurrently, one of them killed with SIGKILL in the middle
of its run: every entry a writer was told is committed is a line, exactly once; the lines
are one contiguous hash chain; a race lost for a line is a note of the audit, not a
problem, while a later version naming another place in the chain is ``store.rewritten``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner

from agreements_kit.cli.commands import main
from agreements_kit.formats import storekeys
from agreements_kit.formats.ledger import GENESIS, parse_entry
from agreements_kit.store.s3 import S3Store
from agreements_kit.store.s3ledger import S3Ledger

REPO = Path(__file__).resolve().parent.parent
WRITER = """
import datetime as dt, hashlib, sys
from agreements_kit.store.s3 import S3Store
from agreements_kit.store.s3ledger import S3Ledger
url, name, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
store = S3Store(url, connections=2)
store.open()
ledger = S3Ledger(store)
for i in range(count):
    agreement = f"agr-{name}-{i:04d}"
    digest = hashlib.sha256(agreement.encode()).hexdigest()
    done = ledger.append({"event": "render", "agreement_id": agreement, "time": "2026-12-03T10:00:00Z",
                          "pdf_sha256": digest, "manifest_sha256": digest})
    print(f"ok {done.number} {agreement} {done.raced}", flush=True)
"""


def _fields(agreement: str) -> dict:
    digest = hashlib.sha256(agreement.encode()).hexdigest()
    return {"event": "render", "agreement_id": agreement, "time": "2026-12-03T10:00:00Z", "pdf_sha256": digest,
            "manifest_sha256": digest}


@pytest.fixture
def store(rgw_env, s3_bucket_name, monkeypatch) -> S3Store:
    for name, value in rgw_env.items():
        monkeypatch.setenv(name, value)
    s = S3Store(f"s3://{s3_bucket_name}/site")
    s.init(7)
    return s


def _chain(store: S3Store) -> list[dict]:
    """Every line, first version of each key, checked as one contiguous chain."""
    ledger = S3Ledger(store)
    last, _ = ledger.tail()
    entries, prev = [], GENESIS
    for number in range(1, last + 1):
        line = ledger.line(number)
        entry = parse_entry(line, "ledger", number).data
        assert entry["seq"] == number and entry["prev"] == prev, f"line {number} breaks the chain"
        prev = hashlib.sha256(line).hexdigest()
        entries.append(entry)
    return entries


def test_three_writers_one_killed_mid_run_lose_duplicate_and_fork_nothing(store, rgw_env, tmp_path) -> None:
    env = {**os.environ, **rgw_env, "PYTHONPATH": str(REPO)}
    writers = {name: subprocess.Popen([sys.executable, "-c", WRITER, str(store.url), name, "25"], env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for name in ("a", "b", "c")}
    acked: dict[str, tuple[int, str]] = {}  # agreement -> (line, writer)
    races = 0
    # Kill writer c once it has committed a few entries: wherever it is then (listing, writing, checking).
    victim = writers["c"]
    assert victim.stdout is not None
    for _ in range(6):
        line = victim.stdout.readline()
        assert line.startswith("ok "), line + victim.stderr.read() if victim.stderr else ""
        _, number, agreement, _ = line.split()
        acked[agreement] = (int(number), "c")
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=60)
    for name in ("a", "b"):
        out, err = writers[name].communicate(timeout=300)
        assert writers[name].returncode == 0, err[-2000:]
        for line in out.splitlines():
            _, number, agreement, lost = line.split()
            acked[agreement] = (int(number), name)
            races += int(lost)
    entries = _chain(store)
    print(f"three writers: {len(entries)} lines, {races} races lost by the two survivors")
    ids = [e["agreement_id"] for e in entries]
    assert len(ids) == len(set(ids)), "an entry appears twice"
    for agreement, (number, _) in acked.items():
        assert entries[number - 1]["agreement_id"] == agreement, f"{agreement} was acknowledged at line {number}"
    assert sum(1 for a in ids if a.startswith(("agr-a-", "agr-b-"))) == 50  # both survivors: every entry
    # c's lines: those acknowledged, plus at most one more (committed as it was killed, never acknowledged).
    extra = [a for a in ids if a.startswith("agr-c-") and a not in acked]
    assert len(extra) <= 1, extra
    # The audit from the bucket sees one ledger: every lost race a note, no store problem.
    import json

    res = CliRunner().invoke(main, ["audit", str(store.url), "--trust", str(_any_root(tmp_path)), "--cache",
                                    str(tmp_path / "cache"), "--json"], catch_exceptions=False)
    summary = json.loads(res.stdout)["summary"]
    assert summary["ledger"]["problems"] == [] and summary["ledger"]["entries"] == len(entries), summary
    # The one thing the bucket may hold beyond the chain: the killed writer's append in flight, if it lost a race
    # (or several) and died before its retry; named store.race-unretried, line by line, and never anyone else's.
    abandoned = set()
    for problem in summary["store"]["problems"]:
        assert problem["code"] == "store.race-unretried", problem
        number = int(problem["detail"].split()[2])
        key = storekeys.ledger_key(number)
        for version in store.versions_of(key)[:-1]:  # the later versions (the first is the line)
            data, _ = store.get(key, version.version_id)
            later = parse_entry(data, "ledger", number).data["agreement_id"]
            if later not in ids:
                abandoned.add(later)
    assert len(abandoned) <= 1 and all(a.startswith("agr-c-") for a in abandoned), abandoned


def test_a_forced_race_is_won_by_the_first_version_and_audits_as_a_note(store, rgw_env, tmp_path) -> None:
    a, b = S3Ledger(store), S3Ledger(store)
    a.append(_fields("agr-first-0000"))
    # Both read the same tail, then both write line 2: the store keeps two versions of ledger/2.
    barrier = threading.Barrier(2, timeout=60)
    original = store.put_version

    def put_together(key: str, data: bytes, **kw):
        if key == storekeys.ledger_key(2):
            barrier.wait()
        return original(key, data, **kw)

    store.put_version = put_together  # type: ignore[method-assign]
    results: dict[str, object] = {}

    def run(name: str, ledger: S3Ledger) -> None:
        results[name] = ledger.append(_fields(f"agr-race-{name}"))

    threads = [threading.Thread(target=run, args=(n, w)) for n, w in (("a", a), ("b", b))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    store.put_version = original  # type: ignore[method-assign]
    numbers = sorted(r.number for r in results.values())  # type: ignore[attr-defined]
    assert numbers == [2, 3], numbers
    assert sum(r.raced for r in results.values()) == 1  # type: ignore[attr-defined]
    assert len(store.versions_of(storekeys.ledger_key(2))) == 2
    entries = _chain(store)
    assert [e["agreement_id"] for e in entries][0] == "agr-first-0000" and len(entries) == 3
    res = CliRunner().invoke(main, ["audit", str(store.url), "--trust", str(_any_root(tmp_path)), "--cache",
                                    str(tmp_path / "cache"), "--json"], catch_exceptions=False)
    import json

    summary = json.loads(res.stdout)["summary"]
    assert summary["store"]["problems"] == [], summary["store"]
    assert any("lost the race" in n for n in summary["notes"]), summary["notes"]
    # A later version of line 1 that names another place in the chain is a rewrite, not a race.
    store.put_version(storekeys.ledger_key(1), b'{"seq":1}')
    res = CliRunner().invoke(main, ["audit", str(store.url), "--trust", str(_any_root(tmp_path)), "--cache",
                                    str(tmp_path / "cache"), "--json"], catch_exceptions=False)
    problems = json.loads(res.stdout)["summary"]["store"]["problems"]
    assert [p["code"] for p in problems] == ["store.rewritten"], problems
    assert res.exit_code == 1


def test_a_retry_finds_its_entry_committed_and_does_not_append_it_twice(store) -> None:
    ledger = S3Ledger(store)
    ledger.append(_fields("agr-one-0000"))
    done = ledger.append(_fields("agr-two-0000"))
    # The writer died after its entry won line 2 but before it learned so; its retry says where it knew the tail.
    again = S3Ledger(store).append(_fields("agr-two-0000"), since=1)
    assert again.again and again.number == done.number == 2
    assert len(_chain(store)) == 2


def _any_root(tmp_path: Path) -> Path:
    """A root certificate for --trust (the ledger-only archive has no signature to check with it)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    path = tmp_path / "root.pem"
    if not path.exists():
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test root")])
        now = dt.datetime.now(dt.UTC)
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                .serial_number(1).not_valid_before(now).not_valid_after(now + dt.timedelta(days=1))
                .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                .sign(key, hashes.SHA256()))
        path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path
