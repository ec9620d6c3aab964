"""Signing benchmark: signatures per second beside the raw ECDSA P-256 rate.

    python bench/sign.py [--crypto 500] [--full 20]

All in one run, on one core:
- floor: raw ECDSA P-256 / SHA-256 signatures through ``cryptography``;
- crypto path, client: one-time key + certificate from the intake CA, the
  record, and its detached CMS signature (what a client signature costs before
  any disk write);
- crypto path, therapist: the record and its CMS signature with the therapist's
  key;
- full path: ``sign_client`` and ``sign_therapist`` as the CLI calls them (lock,
  PDF hash check, pending files, fsync, ledger append, rename; the therapist's
  includes rendering the certificate of completion, a PDF).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cryptography.hazmat.primitives import hashes  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402

from agreements_kit import record  # noqa: E402
from agreements_kit.authoring.practice import load_practice  # noqa: E402
from agreements_kit.authoring.render import Job, Renderer, render_many  # noqa: E402
from agreements_kit.authoring.spec import make_spec  # noqa: E402
from agreements_kit.cli.demo import DEMO_PRACTICE  # noqa: E402
from agreements_kit.signing import cms
from agreements_kit.signing.pki import PKI, load_cert, load_key, utcnow  # noqa: E402
from agreements_kit.signing.setup import init_practice
from agreements_kit.signing.sign import ClientSigning, sign_client, sign_therapist  # noqa: E402

PASS = b"bench-passphrase"


def rate(n: int, fn) -> float:
    t0 = time.perf_counter()
    for i in range(n):
        fn(i)
    return n / (time.perf_counter() - t0)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--crypto", type=int, default=500, help="signatures for the floor and the crypto paths")
    ap.add_argument("--full", type=int, default=20, help="agreements signed through the full path")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="agreements-bench-") as tmp:
        root = init_practice(Path(tmp) / "practice", passphrase=PASS, **DEMO_PRACTICE)
        practice = load_practice(root)
        pki = PKI(root / "pki")
        pki.issue_clinician("lee", "Dr. Robin Lee", practice.name, PASS, PASS)
        intake_key = load_key(pki.intake_key, PASS, "intake CA")
        intake = pki.intake()
        t_cert = load_cert(pki.therapist_cert("lee"), "therapist")
        t_key = load_key(pki.therapist_key("lee"), PASS, "therapist")
        data = record.canonical({"format": record.FORMAT, "example": "x" * 1500})

        raw_key = ec.generate_private_key(ec.SECP256R1())
        floor = rate(args.crypto, lambda i: raw_key.sign(data, ec.ECDSA(hashes.SHA256())))
        now = utcnow()

        def client(i: int) -> None:
            cert, key = pki.one_time_client(f"Client {i}", practice.name, intake_key, now)
            cms.sign_detached(data, cert, key, [intake])

        c_rate = rate(args.crypto, client)
        t_rate = rate(args.crypto, lambda i: cms.sign_detached(data, t_cert, t_key))

        renderer = Renderer.load(root)
        specs = [make_spec(client=f"Client Number{i}", therapist="lee", id=f"agr-bench-{i:04d}")
                 for i in range(args.full)]
        drafts = render_many(renderer, [Job(s, practice.drafts) for s in specs])
        initials = {c.id: "CN" for c in renderer.prepare(specs[0]).clauses if c.initials}
        full_c = rate(args.full, lambda i: sign_client(practice, drafts[i], ClientSigning(
            name=specs[i].client, consent=True, initials=initials, intent=True, identity_method="photo ID",
            identity_checked_by="bench"), PASS))
        full_t = rate(args.full, lambda i: sign_therapist(practice, specs[i].id, PASS))

    print(f"floor: raw ECDSA P-256 sign            {floor:9.0f}/s")
    print(f"client, crypto path (cert + CMS)       {c_rate:9.0f}/s  ({floor / c_rate:.1f}x the floor's cost)")
    print(f"therapist, crypto path (CMS)           {t_rate:9.0f}/s  ({floor / t_rate:.1f}x the floor's cost)")
    print(f"client, full path (archive, fsync)     {full_c:9.1f}/s")
    print(f"therapist, full path (+ completion PDF) {full_t:8.1f}/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
