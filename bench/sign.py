"""Signing benchmark: signatures per second beside the raw ECDSA P-256 rate, with and without a TSA.

    python bench/sign.py [--crypto 500] [--tokens 100] [--full 20]

All in one run, on one core:
- floor: raw ECDSA P-256 / SHA-256 signatures through ``cryptography``;
- crypto path, client: one-time key + certificate from the intake CA and the detached
  CMS signature over a record (what a client signature costs before any disk write);
- crypto path, therapist: the CMS signature with the therapist's key;
- TSA round trip on loopback: one RFC 3161 token from the local TSA (``agreements tsa``:
  ``openssl ts -reply`` behind HTTP, its own process), request built and reply checked;
- full path: ``sign_client`` and ``sign_therapist`` as the CLI calls them (lock, PDF hash
  check, pending files, fsync, ledger append, rename; the therapist's includes the
  certificate of completion, a PDF), in a practice without a TSA and in one whose
  practice.yaml points at the local TSA (two tokens per agreement).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cryptography.hazmat.primitives import hashes  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402

from agreements_kit import localtsa  # noqa: E402
from agreements_kit.authoring.practice import load_practice  # noqa: E402
from agreements_kit.authoring.render import Job, Renderer, render_many  # noqa: E402
from agreements_kit.authoring.spec import make_spec  # noqa: E402
from agreements_kit.cli.demo import DEMO_PRACTICE  # noqa: E402
from agreements_kit.formats.jsonio import jcs  # noqa: E402
from agreements_kit.signing import cms  # noqa: E402
from agreements_kit.signing.pki import PKI, load_cert, load_key, utcnow  # noqa: E402
from agreements_kit.signing.setup import configure_timestamping, init_practice  # noqa: E402
from agreements_kit.signing.sign import ClientSigning, sign_client, sign_therapist  # noqa: E402
from agreements_kit.signing.timestamp import Timestamper  # noqa: E402

PASS = b"bench-passphrase"  # the root's; every key has its own
INTAKE_PASS = b"bench-intake-passphrase"
CLINICIAN_PASS = b"bench-clinician-passphrase"
LEE_PASS = b"bench-lee-passphrase"


def rate(n: int, fn: Callable[[int], object]) -> float:
    t0 = time.perf_counter()
    for i in range(n):
        fn(i)
    return n / (time.perf_counter() - t0)


def practice_at(folder: Path):
    root = init_practice(folder, passphrase=PASS, intake_passphrase=INTAKE_PASS,
                         clinician_passphrase=CLINICIAN_PASS, **DEMO_PRACTICE)
    practice = load_practice(root)
    PKI(root / "pki").issue_clinician("lee", "Dr. Robin Lee", practice.name, CLINICIAN_PASS, LEE_PASS)
    return root


def full_path(root: Path, n: int, prefix: str) -> tuple[float, float]:
    """(client signatures/s, therapist countersignatures/s) through the library calls the CLI makes."""
    practice = load_practice(root)
    renderer = Renderer.load(root)
    specs = [make_spec(client=f"Client Number{i}", therapist="lee", id=f"agr-{prefix}-{i:04d}") for i in range(n)]
    drafts = render_many(renderer, [Job(s, practice.drafts) for s in specs])
    initials = {c.id: "CN" for c in renderer.prepare(specs[0]).clauses if c.initials}
    client = rate(n, lambda i: sign_client(practice, drafts[i], ClientSigning(
        name=specs[i].client, consent=True, initials=initials, intent=True, identity_method="photo ID",
        identity_checked_by="bench"), INTAKE_PASS))
    therapist = rate(n, lambda i: sign_therapist(practice, specs[i].id, LEE_PASS))
    return client, therapist


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--crypto", type=int, default=500, help="signatures for the floor and the crypto paths")
    ap.add_argument("--tokens", type=int, default=100, help="TSA round trips on loopback")
    ap.add_argument("--full", type=int, default=20, help="agreements signed through the full path, per practice")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="agreements-bench-") as tmp:
        root = practice_at(Path(tmp) / "practice")
        practice = load_practice(root)
        pki = PKI(root / "pki")
        intake_key = load_key(pki.intake_key, INTAKE_PASS, "intake CA")
        intake = pki.intake()
        t_cert = load_cert(pki.therapist_cert("lee"), "therapist")
        t_key = load_key(pki.therapist_key("lee"), LEE_PASS, "therapist")
        data = jcs({"format": "agreements-kit/record", "example": "x" * 1500})

        raw_key = ec.generate_private_key(ec.SECP256R1())
        floor = rate(args.crypto, lambda i: raw_key.sign(data, ec.ECDSA(hashes.SHA256())))
        now = utcnow()

        def client(i: int) -> None:
            cert, key = pki.one_time_client(f"Client {i}", practice.name, intake_key, now, f"agr-bench-{i:04d}")
            cms.sign_detached(data, cert, key, [intake])

        c_rate = rate(args.crypto, client)
        chain = [pki.clinician_ca()]
        t_rate = rate(args.crypto, lambda i: cms.sign_detached(data, t_cert, t_key, chain))
        plain_c, plain_t = full_path(root, args.full, "plain")

        tsa_folder = localtsa.create(Path(tmp) / "tsa", "bench TSA")
        with localtsa.start(tsa_folder.path) as tsa:
            stamper = Timestamper((tsa.url,))
            token_rate = rate(args.tokens, lambda i: stamper.token(i.to_bytes(8, "big") + data[:56]))
            stamped = practice_at(Path(tmp) / "stamped")
            configure_timestamping(stamped, [tsa.url], tsa_folder.root.read_bytes())
            tsa_c, tsa_t = full_path(stamped, args.full, "tsa")

    print(f"floor: raw ECDSA P-256 sign             {floor:9.0f}/s")
    print(f"client, crypto path (cert + CMS)        {c_rate:9.0f}/s  ({floor / c_rate:.1f}x the floor's cost)")
    print(f"therapist, crypto path (CMS)            {t_rate:9.0f}/s  ({floor / t_rate:.1f}x the floor's cost)")
    print(f"TSA round trip on loopback (one token)  {token_rate:9.1f}/s  ({floor / token_rate:.0f}x the floor's cost)")
    print(f"client, full path, no TSA               {plain_c:9.1f}/s")
    print(f"client, full path, TSA on loopback      {tsa_c:9.1f}/s  ({plain_c / tsa_c:.2f}x the time without)")
    print(f"therapist, full path (+ completion PDF) {plain_t:9.1f}/s without a TSA, {tsa_t:.1f}/s with it "
          f"({plain_t / tsa_t:.2f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
