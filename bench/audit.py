"""Audit benchmark: a synthetic archive of signed agreements, audited, beside its floor.

    python bench/audit.py [--n 10000] [--small 1000] [--samples 200] [--runs 3]

Builds (once; cached in bench/out/) archives of N and of SMALL signed agreements
(client + therapist) through the real code: each agreement rendered (with a
one-page template, to keep building 10,000 affordable), archived, signed with a
one-time client certificate and countersigned (the certificate-of-completion PDF
is skipped). The audit checks them exactly as it checks real ones.

Then, in the same run:
- ``agreements audit --trust PRACTICE/pki/root.pem`` of the SMALL archive and of the
  N archive (best of ``--runs``, after one untimed read of the N archive's files, whose time
  is printed: a cold disk is measured apart from the checking): exit code, summary line, wall time, CPU time (both
  cores?) and peak RSS of the largest process. Every agreement must come out valid
  (exit 0); otherwise the first failures are printed and the benchmark exits 1;
- floor: raw ECDSA P-256 verifications through ``cryptography`` on one core (timed beside each
  audit and after them; the best rate kept, as the best audit time is), counting
  every signature the audit checks per agreement: the client's and the therapist's
  CMS signatures, the intake CA's signature on the client's new one-time certificate,
  and (where the archive is time-stamped) the TSA's signature on each of the two
  tokens: five per agreement (three without tokens). The TSA's, the therapists' and
  the CAs' certificates recur and need checking once for the whole archive, as does
  a checkpoint's signature. The ratio to two per agreement (the CMS signatures
  alone) is printed too;
- ``openssl cms -verify`` per signature (a sample, extrapolated to 2N);
- pyHanko's ``async_validate_detached_cms`` per signature (trust root only, no
  fetching, at the signing time; a sample, extrapolated).
Goals: audit wall time <= 4x the floor's time (issue 9); peak memory at N within 1.3x of SMALL.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from agreements_kit.authoring.practice import load_practice  # noqa: E402
from agreements_kit.authoring.render import Job, Renderer  # noqa: E402
from agreements_kit.authoring.spec import make_spec  # noqa: E402
from agreements_kit.cli.demo import DEMO_PRACTICE  # noqa: E402
from agreements_kit.signing.pki import PKI  # noqa: E402
from agreements_kit.signing.setup import init_practice  # noqa: E402
from agreements_kit.signing.sign import ClientSigning, sign_client, sign_therapist  # noqa: E402

PASS = b"bench-passphrase"  # the root's; every key has its own
INTAKE_PASS = b"bench-intake-passphrase"
CLINICIAN_PASS = b"bench-clinician-passphrase"
LEE_PASS = b"bench-lee-passphrase"
OUT = REPO / "bench" / "out"
# Bumped whenever the archive format changes, so cached archives are rebuilt
# (3: certificate register and CRL entries in the ledger, role-bound one-time certificates;
#  4: every signature carries an RFC 3161 time-stamp token from a local TSA process;
#  5: therapists' certificates from the clinician CA, per-issuer CRL numbers, evidence in each CMS).
FORMAT = 5


TINY_TEMPLATE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Agreement {{ agreement.id }}</title>
<meta name="dcterms.created" content="{{ agreement.date }}T00:00:00Z">
<meta name="dcterms.modified" content="{{ agreement.date }}T00:00:00Z">
<link rel="stylesheet" href="agreement.css"></head>
<body><h1>{{ title }}</h1><p>{{ practice.name }}: agreement {{ agreement.id }} between {{ client.name }}
and {{ therapist.name }}, {{ agreement.date }}.</p>
{% for section in sections %}{% for c in section.clauses %}<h2>{{ c.number }}. {{ c.title }}</h2>
<p>{{ c.summary }}</p>{% endfor %}{% endfor %}</body></html>
"""


def tsa_folder() -> Path | None:
    """The bench's local TSA (created once, in bench/out/tsa), or None where localtsa is not there."""
    try:
        from agreements_kit.localtsa import create
    except ImportError:
        return None
    folder = OUT / "tsa"
    if not (folder / "tsa-root.pem").is_file():
        shutil.rmtree(folder, ignore_errors=True)
        create(folder, name="agreements-kit bench TSA")
    return folder


def build(root: Path, n: int) -> Path:
    """A practice whose archive holds n agreements signed by client and therapist.

    Every agreement is rendered for real (a one-page template: clause titles and
    summaries, so building 10,000 stays affordable) and signed through the real code,
    every signature time-stamped by a local TSA process (its root in pki/tsa-roots.pem,
    where verifiers of this machine look for it).
    """
    done = root / "built.json"
    if done.exists() and json.loads(done.read_text()) == {"n": n, "format": FORMAT}:
        return root
    tsa = tsa_folder()
    if tsa is None:
        return _build(root, n, None)
    from agreements_kit.localtsa import start

    with start(tsa) as running:
        return _build(root, n, running.url, tsa / "tsa-root.pem")


def _build(root: Path, n: int, tsa_url: str | None, tsa_root: Path | None = None) -> Path:
    from agreements_kit.authoring.render import render_many
    from agreements_kit.signing.renders import log_renders

    done = root / "built.json"
    shutil.rmtree(root, ignore_errors=True)
    init_practice(root, passphrase=PASS, intake_passphrase=INTAKE_PASS, clinician_passphrase=CLINICIAN_PASS,
                  **DEMO_PRACTICE, tsa_urls=[tsa_url] if tsa_url else None)
    if tsa_root is not None:
        shutil.copyfile(tsa_root, root / "pki" / "tsa-roots.pem")
    tiny = root / "bench-templates"
    tiny.mkdir()
    (tiny / "agreement.html.j2").write_text(TINY_TEMPLATE)
    (tiny / "agreement.css").write_text("body { font: 10pt 'DejaVu Sans', sans-serif; }\n")
    settings = root / "practice.yaml"
    settings.write_text(settings.read_text() + "templates: bench-templates\n")
    practice = load_practice(root)
    PKI(root / "pki").issue_clinician("lee", "Dr. Robin Lee", practice.name, CLINICIAN_PASS, LEE_PASS)
    renderer = Renderer.load(root)
    t0 = time.perf_counter()
    specs = [make_spec(client=f"Client Number{i} Example", therapist="lee", id=f"agr-syn-{i:06d}",
                       date="2026-11-27") for i in range(n)]
    drafts = render_many(renderer, [Job(s, practice.drafts) for s in specs])
    log_renders(practice, drafts)
    print(f"  rendered {n} ({n / (time.perf_counter() - t0):.0f}/s)", file=sys.stderr)
    initials = {c.id: "CX" for c in renderer.prepare(specs[0]).clauses if c.initials}
    t0 = time.perf_counter()
    for i, (spec, draft) in enumerate(zip(specs, drafts, strict=True)):
        sign_client(practice, draft, ClientSigning(name=spec.client, consent=True, initials=initials, intent=True,
                                                   identity_method="photo ID", identity_checked_by="bench"),
                    INTAKE_PASS)
        sign_therapist(practice, spec.id, LEE_PASS, completion=False)
        shutil.rmtree(draft)
        if (i + 1) % 1000 == 0 or i + 1 == n:
            print(f"  signed {i + 1}/{n} ({(i + 1) / (time.perf_counter() - t0):.1f}/s"
                  + (", each signature time-stamped" if tsa_url else "") + ")", file=sys.stderr)
    done.write_text(json.dumps({"n": n, "format": FORMAT}))
    return root


def records(archive: Path, k: int) -> list[tuple[Path, Path]]:
    folders = sorted(p for p in archive.iterdir() if p.is_dir())
    rng = random.Random(1)
    picks = rng.sample(folders, min(k // 2, len(folders)))
    return [(f / name, f / f"{name}.p7s") for f in picks for name in ("01-client.json", "02-therapist.json")]


def floor_rate(seconds: float = 2.0) -> float:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    data = b"x" * 1800
    sig = key.sign(data, ec.ECDSA(hashes.SHA256()))
    pub = key.public_key()
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        for _ in range(500):
            pub.verify(sig, data, ec.ECDSA(hashes.SHA256()))
        n += 500
    return n / (time.perf_counter() - t0)


def warm_up(archive: Path, threads: int = 16) -> float:
    """Read every file of the archive once (in parallel: a cold disk answers more at once); the time taken."""
    from concurrent.futures import ThreadPoolExecutor

    def read(folder: str) -> None:
        with os.scandir(folder) as it:
            for entry in it:
                if entry.is_file(follow_symlinks=False):
                    with open(entry.path, "rb") as fh:
                        while fh.read(1 << 20):
                            pass

    t0 = time.perf_counter()
    folders = [e.path for e in os.scandir(archive) if e.is_dir(follow_symlinks=False) and e.name.startswith("agr-")]
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(read, folders))
    (archive / "ledger.jsonl").read_bytes()
    return time.perf_counter() - t0


def openssl_per_sig(pairs, root: Path) -> float:
    t0 = time.perf_counter()
    for rec, sig in pairs:
        subprocess.run(["openssl", "cms", "-verify", "-binary", "-inform", "DER", "-in", str(sig), "-content",
                        str(rec), "-CAfile", str(root), "-purpose", "any", "-out", "/dev/null"], check=True,
                       capture_output=True)
    return (time.perf_counter() - t0) / len(pairs)


def pyhanko_per_sig(pairs, root: Path, tsa_roots: Path | None = None) -> float:
    """pyHanko's own CMS validation per signature: trust root only, no fetching, at the signing time.

    With ``tsa_roots`` (a time-stamped archive) they are trusted too: pyHanko then validates each
    signature's time-stamp token as well, as the audit does."""
    import asyncio

    from asn1crypto import cms as acms
    from asn1crypto import pem
    from asn1crypto import x509 as ax509
    from pyhanko.sign.validation.generic_cms import async_validate_detached_cms
    from pyhanko_certvalidator import ValidationContext

    der = root.read_bytes()
    if pem.detect(der):
        _, _, der = pem.unarmor(der)
    anchor = ax509.Certificate.load(der)
    anchors = [anchor]
    if tsa_roots is not None and tsa_roots.is_file():
        anchors += [ax509.Certificate.load(block) for _, _, block in pem.unarmor(tsa_roots.read_bytes(), multiple=True)]

    async def one(data: bytes, p7s: bytes, when: dt.datetime) -> bool:
        signed_data = acms.ContentInfo.load(p7s)["content"]
        vc = ValidationContext(trust_roots=anchors, allow_fetching=False, moment=when)
        status = await async_validate_detached_cms(data, signed_data, signer_validation_context=vc)
        return bool(status.bottom_line)

    t0 = time.perf_counter()
    for rec, sig in pairs:
        data = rec.read_bytes()
        when = dt.datetime.fromisoformat(json.loads(data)["signed_at"].replace("Z", "+00:00"))
        assert asyncio.run(one(data, sig.read_bytes(), when)), f"pyHanko does not validate {sig}"
    return (time.perf_counter() - t0) / len(pairs)


SUMMARY_RE = re.compile(r"^(ok|PROBLEMS): (\d+) agreements: (\d+) valid, (\d+) invalid, (\d+) incomplete, "
                        r"(\d+) voided")


def run_audit(practice: Path) -> dict[str, Any]:
    """`agreements audit --trust ROOT` in a fresh process that reports its children's peak memory and CPU.

    The trust root is given explicitly (the audit never trusts the root beside the
    archive). Peak RSS is ru_maxrss of RUSAGE_CHILDREN: the largest single process
    (the audit's main process or one of its workers), not their sum.
    """
    probe = (
        "import resource, subprocess, sys, time\n"
        "t0 = time.perf_counter()\n"
        "p = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
        "wall = time.perf_counter() - t0\n"
        "u = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
        "print(p.returncode, wall, u.ru_utime + u.ru_stime, u.ru_maxrss)\n"
        "sys.stderr.write(p.stdout[:6000] + ('\\n' + p.stderr[-3000:] if p.stderr.strip() else ''))\n"
    )
    cli = [sys.executable, "-m", "agreements_kit.cli.commands", "audit", str(practice / "signed"),
           "--trust", str(practice / "pki" / "root.pem")]
    out = subprocess.run([sys.executable, "-c", probe, *cli], capture_output=True, text=True, cwd=REPO,
                         check=True)
    code, wall, cpu, rss = out.stdout.split()
    lines = out.stderr.strip().splitlines()
    summary = lines[0] if lines else ""
    m = SUMMARY_RE.match(summary)
    counts = dict(zip(("agreements", "valid", "invalid", "incomplete", "voided"),
                      (int(x) for x in m.groups()[1:]), strict=True)) if m else {}
    return {"code": int(code), "wall": float(wall), "cpu": float(cpu), "rss_mib": int(rss) / 1024,
            "summary": summary, "output": lines, "counts": counts}


def all_valid(result: dict[str, Any], n: int) -> bool:
    return result["code"] == 0 and result["counts"].get("valid") == n == result["counts"].get("agreements")


def show_failures(label: str, result: dict[str, Any], n: int, limit: int = 40) -> None:
    print(f"FAILED: audit of {label} exited {result['code']}, expected all {n} agreements valid (exit 0):")
    for line in result["output"][:limit] or ["(no output)"]:
        print(f"    {line}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=10000)
    ap.add_argument("--small", type=int, default=1000)
    ap.add_argument("--samples", type=int, default=200, help="signatures timed with openssl and pyHanko")
    ap.add_argument("--runs", type=int, default=3, help="audits of the N archive (best wall time kept)")
    args = ap.parse_args()
    OUT.mkdir(exist_ok=True)
    print(f"building archives of {args.small} and {args.n} signed agreements (cached in {OUT})", file=sys.stderr)
    small = build(OUT / f"archive-{args.small}", args.small)
    big = build(OUT / f"archive-{args.n}", args.n)
    root = big / "pki" / "root.pem"

    # The audits first: if the archive does not audit as all valid, no figure means anything.
    print("auditing", file=sys.stderr)
    a_small = run_audit(small)
    if not all_valid(a_small, args.small):
        show_failures(f"{args.small}", a_small, args.small)
        return 1
    # The archive's files into memory first, as any recent read of them leaves them: this machine's
    # memory is reclaimed by its host after about a minute unused, and an audit of a cold archive
    # measures the disk (its time is printed too), not the checking the floor is compared with.
    cold = warm_up(big / "signed")
    # Best of several: this machine is shared and noisy.
    # The floor is timed beside each audit (two seconds before it), and the best rate is kept, as the best
    # audit is: both at the machine's quietest moment of the run, so neither ratio is flattered by noise.
    runs, rates = [], []
    for _ in range(max(1, args.runs)):
        rates.append(floor_rate())
        runs.append(run_audit(big))
        if not all_valid(runs[-1], args.n):
            show_failures(f"{args.n}", runs[-1], args.n)
            return 1
    a_big = min(runs, key=lambda r: r["wall"])

    print("timing the floor, openssl and pyHanko", file=sys.stderr)
    rates.append(floor_rate())
    rate = max(rates)
    stamped = (big / "pki" / "tsa-roots.pem").is_file()
    per = 5 if stamped else 3
    floor3 = per * args.n / rate
    floor2 = 2 * args.n / rate
    pairs = records(big / "signed", args.samples)
    ossl = openssl_per_sig(pairs, root) * 2 * args.n
    ph = pyhanko_per_sig(pairs, root, big / "pki" / "tsa-roots.pem") * 2 * args.n
    cores = os.cpu_count() or 1
    wall = a_big["wall"]
    walls = ", ".join(f"{r['wall']:.1f}" for r in runs)
    print(f"archive: {args.n} agreements, {2 * args.n} signatures; {cores} cores; "
          f"audit run {len(runs)}x, best wall time kept ({walls} s)")
    print(f"reading the archive's files into memory first (untimed in the audits): {cold:.1f} s")
    print(f"raw ECDSA P-256 verify (cryptography, one core, best of {len(rates)} timings beside the audits: "
          f"{', '.join(f'{r:,.0f}' for r in rates)}): {rate:,.0f}/s")
    print(f"floor, {per} verifies per agreement:                         {floor3:8.2f} s")
    print("  = the 2 CMS signatures (client, therapist) + 1 certificate link: each agreement's one-time client")
    print("    certificate is new, so the intake CA's signature on it must be checked"
          + (" + the TSA's signature on each signature's time-stamp token (2)" if stamped else ""))
    print("    the therapists', the CAs' and the TSA's certificates recur and need checking once for the archive")
    print(f"floor, 2 verifies per agreement (the signatures only):   {floor2:8.2f} s")
    print(f"openssl cms -verify per signature (sample {len(pairs)}, extrapolated):        {ossl:8.2f} s")
    print(f"pyHanko async_validate_detached_cms per signature (sample {len(pairs)}, extrapolated): {ph:8.2f} s")
    print(f"agreements audit --trust (exit {a_big['code']}): {wall:.2f} s wall, {a_big['cpu']:.2f} s CPU "
          f"({a_big['cpu'] / wall:.2f} cores busy), peak RSS {a_big['rss_mib']:.0f} MiB")
    print(f"  {a_big['summary']}")
    print(f"  ratio to the {per}-per-agreement floor: {wall / floor3:.2f}x wall (goal <= 4x): "
          f"{'met' if wall <= 4 * floor3 else 'MISSED'}; {a_big['cpu'] / floor3:.2f}x in CPU time")
    print(f"  ratio to the 2-per-agreement floor: {wall / floor2:.2f}x wall; {a_big['cpu'] / floor2:.2f}x in CPU time")
    print(f"  ratio to openssl per signature: {wall / ossl:.3f}x; to pyHanko: {wall / ph:.3f}x")
    mem = a_big["rss_mib"] / a_small["rss_mib"]
    print(f"memory: audit of {args.small} (exit {a_small['code']}, {a_small['wall']:.2f} s): peak RSS "
          f"{a_small['rss_mib']:.0f} MiB; of {args.n}: {a_big['rss_mib']:.0f} MiB ({mem:.2f}x for "
          f"{args.n / args.small:.0f}x the agreements; goal <= 1.3x): {'met' if mem <= 1.3 else 'MISSED'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
