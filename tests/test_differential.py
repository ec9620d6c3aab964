"""Differential tests: our own code on the security path against reference implementations.

The developers' guide requires that code of our own in a security path be proven equal
to a reference. Ours, for one detached signature over one record, checked at a time T:

- ``verification/cms.py`` ``check_signature`` (CMS structure, signed attributes, signature),
- ``verification/chain.py`` ``PathValidator.validate`` (the path to the trusted root at T),
- ``verification/steps.py`` ``step_revocation`` (the CRL signed by the certificate's issuer,
  no certificate of the path revoked at or before T),

against OpenSSL (``openssl cms -verify -binary ... -CAfile root+CRLs -purpose any -attime T
-crl_check_all``) and pyHanko (``async_validate_detached_cms`` with a certvalidator context
holding only the root and the CRLs, revocation information required). Over a generated corpus
(tests/diff_corpus.py) of valid and damaged signatures, ours == OpenSSL == pyHanko on every
case, except the policy differences listed in :data:`POLICY`, where the exact expected triple is
asserted, each with the reason we differ.

Also ``formats/pdfattach.py``: the fast scan ``manifest_attachments`` against the reference
reader ``embedded_manifest`` on a rendered PDF and mutations of it, on the question the
verifier asks: "exactly one manifest, equal to X".
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import subprocess
import types
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from asn1crypto import cms as acms
from asn1crypto import x509 as ax
from cryptography.hazmat.primitives import serialization
from diff_corpus import Case, PdfCase, World, build_world, pdf_mutations, signature_cases

from agreements_kit.formats.crlset import parse_crl_set
from agreements_kit.formats.pdfattach import embedded_manifest, manifest_attachments, scan_manifests
from agreements_kit.signing.pki import fingerprint
from agreements_kit.verification.chain import ChainProblem, PathValidator
from agreements_kit.verification.cms import CertCache, CmsProblem, check_signature
from agreements_kit.verification.steps import Context, Signature, Verdict, step_revocation
from agreements_kit.verification.trust import Trust

# Each policy difference: (ours, OpenSSL, pyHanko) and why. A case marked with a policy must give exactly
# that triple; every other case must give three equal verdicts.
POLICY: dict[str, tuple[tuple[bool, bool, bool], str]] = {
    # ---- CMS: our signer writes one shape, and we accept only that shape
    "signing-time-required": ((False, True, True), "we require signingTime: the record's signing time is compared "
                              "with it (step 5); RFC 5652 makes it optional"),
    "signing-time-a-time": ((False, True, False), "a signingTime that is not a Time is refused (pyHanko too); "
                            "OpenSSL never reads it"),
    "attribute-once": ((False, False, True), "each signed attribute at most once (two signingTimes could say two "
                       "times; OpenSSL 3 agrees); pyHanko looks only at the ones it uses"),
    "content-type-data": ((False, True, False), "the signed contentType must be id-data (pyHanko agrees); OpenSSL "
                          "does not compare it with the content's type"),
    "only-known-attributes": ((False, True, True), "we accept only the signed attributes our signer writes"),
    "only-token-unsigned": ((False, True, True), "the one unsigned attribute accepted is the signature time-stamp "
                            "token (step 6): anything else there is unsigned text a reader might take for evidence"),
    "signed-attrs-required": ((False, True, True), "without signed attributes there is no signing time"),
    "one-signer": ((False, True, False), "exactly one SignerInfo: a record has one signer (pyHanko agrees); "
                   "OpenSSL verifies every signer and accepts when all verify"),
    "issuer-serial-sid": ((False, True, True), "the signer is named by issuer and serial number (what our signer "
                          "writes); a subjectKeyIdentifier is refused"),
    "ecdsa-sha256-only": ((False, True, True), "SHA-256 alone and ECDSA with SHA-256: our signer's algorithms"),
    "ecdsa-only": ((False, True, True), "an RSA signature is refused: our PKI issues ECDSA P-256 keys only, "
                   "though the RSA signature itself is sound"),
    "unsigned-digest-set": ((False, False, True), "SignedData.digestAlgorithms (not signed, advisory) must be "
                            "exactly SHA-256 and well formed: OpenSSL reads it too; pyHanko never parses it"),
    "signature-alg-read": ((False, True, False), "the SignerInfo's signatureAlgorithm must be ecdsa-with-SHA256 "
                           "(pyHanko agrees); OpenSSL goes by the key type and ignores a wrong or damaged OID"),
    "econtent-type-read": ((False, True, False), "the encapsulated content type must be id-data (pyHanko agrees); "
                           "OpenSSL, given the content, ignores it"),
    "detached-only": ((False, True, False), "a record's signature is detached; one that carries content is "
                      "refused (pyHanko too); OpenSSL verifies the content given with -content"),
    "data-only": ((False, True, True), "the signed content type must be id-data, not another type"),
    "trailing-bytes": ((False, True, True), "no bytes may follow the DER signature; OpenSSL and asn1crypto's "
                       "non-strict load (as pyHanko is given it) stop after the first object"),
    "version-tag": ((False, False, True), "a SignerInfo whose version is not an INTEGER is refused (OpenSSL "
                    "too); pyHanko never reads it. (No reader checks the version's value: 3 and 5 pass all three.)"),
    "algorithm-parameters": ((False, True, True), "the signer's digest algorithm parameters must be absent or "
                             "NULL, as asn1crypto reads SHA-256's; OpenSSL and pyHanko ignore what is there"),
    "sid-name-case": ((False, True, True), "the signer's issuer name in the SignerInfo must be byte for byte the "
                      "certificate's; OpenSSL and pyHanko compare names case-insensitively (RFC 5280 7.1)"),
    "sid-constructed-bit": ((False, True, False), "a damaged tag in the signer's issuer name is refused (pyHanko "
                            "too); OpenSSL's decoder ignores the constructed bit there"),
    "ambiguous-signer-twin-first": ((False, False, True), "two different certificates match the signer's issuer and "
                                    "serial: refused (our rule). OpenSSL takes the first (a look-alike: fails), "
                                    "pyHanko the last (the real one: passes)"),
    "ambiguous-signer-twin-last": ((False, True, False), "the same ambiguity, real certificate first: OpenSSL "
                                   "passes, pyHanko takes the look-alike and fails"),
    "ber-in-signer-info": ((False, True, False), "indefinite lengths inside the SignerInfo: pyHanko's parser "
                           "(asn1crypto) cannot read them there; OpenSSL reads BER; ours reads DER only"),
    "der-only": ((False, True, True), "indefinite lengths outside the signed attributes: OpenSSL and pyHanko read BER; "
                 "ours (formats/cmsder, cryptography's DER reader) reads DER only, as our signer and RFC 3161 TSAs "
                 "write it, so one signature's bytes read one way only"),
    "signer-cert-bitstring-padding": ((False, False, True), "the signer's certificate re-encoded (its signature "
                                      "BIT STRING claims an unused bit): cryptography and asn1crypto still read "
                                      "the same signature, OpenSSL refuses; ours refuses because the record names "
                                      "the certificate by the SHA-256 of its DER (step 5)"),
    "ca-cert-bitstring-padding": ((True, False, True), "the intake CA's certificate re-encoded the same way: "
                                  "the signed bytes are unchanged and cryptography verifies them (pyHanko too); "
                                  "OpenSSL refuses. Step 6 (register) refuses an intake certificate whose SHA-256 "
                                  "the practice never registered"),
    # ---- path policy (chain.py)
    "email-protection-eku": ((False, True, True), "a signer's certificate must carry the emailProtection EKU; "
                             "OpenSSL runs with -purpose any (the README's command), pyHanko checks no EKU"),
    "key-usage-present": ((False, True, False), "keyUsage must be present (pyHanko's default policy also wants "
                          "nonRepudiation); OpenSSL with -purpose any does not look"),
    "key-usage-critical": ((False, True, True), "keyUsage must be critical (the WebPKI end-entity rule)"),
    "key-usage-signature": ((False, True, False), "keyUsage must include digitalSignature (pyHanko wants "
                            "nonRepudiation); OpenSSL with -purpose any does not look"),
    "leaf-not-ca": ((False, True, True), "a CA certificate may not sign a record (WebPKI end-entity rule)"),
    "ca-eku-client-auth": ((False, True, True), "a CA certificate with an EKU must allow clientAuth: chain.py "
                           "builds cryptography's client verifier, whose CA rule this is; our PKI's CAs carry no "
                           "EKU, so an S/MIME CA limited to emailProtection is refused"),
    # ---- revocation (steps.py step_revocation)
    "revoked-at-signing-time": ((False, False, True), "revoked at the very second of the signature counts as "
                                "revoked before it (the safe side of a tie); pyHanko needs revocation < T"),
    "revoked-after-signing": ((True, False, True), "a certificate revoked after T does not spoil a signature made "
                              "at T (RFC 5280 revocation date; pyHanko agrees); OpenSSL -attime T treats the CRL "
                              "issued after T as not yet valid and any listed serial as revoked"),
    "crl-issued-later": ((True, False, True), "a CRL issued after T is used, it is the newest word (pyHanko with "
                         "retroactive_revinfo agrees); OpenSSL -attime T calls it not yet valid"),
}


# =============================================================================== the judges

def ours(case: Case, w: World, validator: PathValidator | None = None) -> tuple[bool, str]:
    """check_signature (and step 5's rule that the signer's certificate is the one the record names), then
    PathValidator.validate at T, then step_revocation: ok and the first reason code."""
    root = w.roots[case.root]
    cache = CertCache()
    try:
        facts = check_signature(case.record, case.p7s, cache)
    except CmsProblem as exc:
        return False, exc.code
    if facts.signer_sha256 != fingerprint(w.parties[case.signer].cert):  # step 5: the record names its certificate
        return False, "certificate.not-named"
    validator = validator or PathValidator(root)
    others = facts.certificates + [_CARRY[c](w) for c in case.carry]
    try:
        path = validator.validate(facts.signer, facts.signer_sha256, others, case.at)
    except ChainProblem as exc:
        return False, exc.code
    trust = Trust(root, None, "differential test", crls=parse_crl_set(w.crls[case.crls], case.crls))
    ctx = Context(folder="differential", files=None, trust=trust, validator=validator, cache=cache,  # type: ignore
                  ledger=None, now=case.at)
    sig = Signature(files=types.SimpleNamespace(name="record"),  # type: ignore[arg-type]
                    record=types.SimpleNamespace(signed_at=case.at), facts=facts, path=path)  # type: ignore
    verdict = Verdict("differential", "differential")
    step_revocation(verdict, ctx, sig)
    if verdict.failures:
        return False, verdict.failures[0].code
    return True, "ok"


_CARRY = {"intake": lambda w: w.intake}


def openssl_all(cases: list[Case], w: World, folder: Path) -> list[tuple[bool, str]]:
    """OpenSSL's verdict on every case (a few processes at a time)."""
    folder.mkdir(parents=True, exist_ok=True)
    cafiles: dict[tuple[str, str, tuple[str, ...]], Path] = {}

    def cafile(case: Case) -> Path:
        """The root, the CRL set and any carried CA certificate: ``cms -verify`` takes intermediates only from
        the signature or the trust store (``-certfile`` serves to find the signer), and a CA certificate in
        the store still has to chain to the root, which is self-signed."""
        key = (case.root, case.crls, tuple(case.carry))
        if key not in cafiles:
            path = folder / f"ca-{len(cafiles)}.pem"
            path.write_bytes(w.pem(case.root) + w.crls[case.crls]
                             + b"".join(_CARRY[c](w).public_bytes(serialization.Encoding.PEM) for c in case.carry))
            cafiles[key] = path
        return cafiles[key]

    for case in cases:
        cafile(case)

    def one(n: int) -> tuple[bool, str]:
        case = cases[n]
        rec, p7s = folder / f"{n}.rec", folder / f"{n}.p7s"
        rec.write_bytes(case.record)
        p7s.write_bytes(case.p7s)
        args = ["openssl", "cms", "-verify", "-binary", "-inform", "DER", "-in", str(p7s), "-content", str(rec),
                "-CAfile", str(cafile(case)), "-purpose", "any",
                "-attime", str(int(case.at.timestamp())), "-crl_check_all", "-out", "/dev/null"]
        proc = subprocess.run(args, capture_output=True, text=True, timeout=60)
        ok = proc.returncode == 0 and "Verification successful" in proc.stderr
        reason = "ok" if ok else _openssl_reason(proc.stderr)
        return ok, reason

    with ThreadPoolExecutor(max_workers=4) as pool:
        return list(pool.map(one, range(len(cases))))


def _openssl_reason(stderr: str) -> str:
    for line in stderr.splitlines():
        if "Verify error:" in line:
            return line.split("Verify error:", 1)[1].strip()[:60]
    for line in stderr.splitlines():
        if ":error:" in line:
            return line.rsplit(":", 1)[-1].strip()[:60] or line[-60:]
    return (stderr.strip().splitlines() or ["?"])[-1][:60]


def pyhanko_all(cases: list[Case], w: World) -> list[tuple[bool, str]]:
    from pyhanko.sign.validation.generic_cms import async_validate_detached_cms
    from pyhanko_certvalidator import ValidationContext

    roots = {name: ax.Certificate.load(cert.public_bytes(serialization.Encoding.DER))
             for name, cert in w.roots.items()}
    crls = {name: [c.public_bytes(serialization.Encoding.DER) for c in parse_crl_set(pem, name).crls]
            for name, pem in w.crls.items()}
    carry = {name: ax.Certificate.load(get(w).public_bytes(serialization.Encoding.DER))
             for name, get in _CARRY.items()}

    async def one(case: Case) -> tuple[bool, str]:
        try:
            signed_data = acms.ContentInfo.load(case.p7s)["content"]
            context = ValidationContext(trust_roots=[roots[case.root]], crls=crls[case.crls], allow_fetching=False,
                                        moment=case.at, revocation_mode="require", retroactive_revinfo=True,
                                        other_certs=[carry[c] for c in case.carry])
            status = await async_validate_detached_cms(case.record, signed_data,
                                                       signer_validation_context=context)
        except Exception as exc:  # pyHanko refuses damaged input by raising
            return False, f"raised {type(exc).__name__}"
        if status.bottom_line:
            return True, "ok"
        why = [k for k in ("intact", "valid", "trusted") if not getattr(status, k)]
        return False, "not " + "/".join(why) if why else "bottom_line False"

    async def every() -> list[tuple[bool, str]]:
        return [await one(c) for c in cases]

    # pyHanko logs every refusal with a traceback; the verdicts are what counts here.
    loggers = [logging.getLogger(name) for name in ("pyhanko", "pyhanko_certvalidator")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.CRITICAL)
    try:
        return asyncio.run(every())
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


# =============================================================================== the corpus, judged once

@pytest.fixture(scope="module")
def world(tmp_path_factory) -> World:
    return build_world(tmp_path_factory.mktemp("differential"))


@pytest.fixture(scope="module")
def corpus(world: World) -> list[Case]:
    return signature_cases(world)


@pytest.fixture(scope="module")
def verdicts(world: World, corpus: list[Case], tmp_path_factory) -> list[dict]:
    folder = tmp_path_factory.mktemp("openssl")
    mine = [ours(c, world) for c in corpus]
    theirs = openssl_all(corpus, world, folder)
    hanko = pyhanko_all(corpus, world)
    return [{"case": c, "ours": o, "openssl": s, "pyhanko": h}
            for c, o, s, h in zip(corpus, mine, theirs, hanko, strict=True)]


def _table(rows: list[dict], title: str) -> str:
    lines = [title, f"{'case':70} {'policy':24} {'ours':22} {'openssl':30} pyhanko"]
    for r in rows:
        c = r["case"]
        cell = lambda v: f"{'OK' if v[0] else 'no'} {v[1]}"  # noqa: E731
        lines.append(f"{c.name[:70]:70} {c.policy[:24]:24} {cell(r['ours'])[:22]:22} {cell(r['openssl'])[:30]:30} "
                     f"{cell(r['pyhanko'])}")
    return "\n".join(lines)


def test_every_case_agrees_with_openssl_and_pyhanko_or_is_a_listed_policy_difference(verdicts: list[dict]):
    wrong = []
    for r in verdicts:
        c = r["case"]
        triple = (r["ours"][0], r["openssl"][0], r["pyhanko"][0])
        if c.policy:
            assert c.policy in POLICY, f"{c.name}: policy {c.policy!r} is not in the POLICY table"
            if triple != POLICY[c.policy][0]:
                wrong.append(r)
        elif len(set(triple)) != 1:
            wrong.append(r)
    assert not wrong, "\n" + _table(wrong, f"{len(wrong)} of {len(verdicts)} cases disagree:")


def test_corpus_is_large_and_covers_both_outcomes(verdicts: list[dict]):
    families = {r["case"].family for r in verdicts}
    assert {"valid", "record-flip", "p7s-flip", "p7s-truncated", "attrs", "signers", "certs", "time", "crl",
            "path", "alg", "content", "ber"} <= families
    assert len(verdicts) >= 400
    accepted = sum(r["ours"][0] for r in verdicts)
    refused = len(verdicts) - accepted
    assert accepted >= 30 and refused >= 300, (accepted, refused)
    for r in verdicts:
        if r["case"].family == "valid":
            assert r["ours"] == (True, "ok") and r["openssl"][0] and r["pyhanko"][0], _table([r], "valid case")


def test_every_policy_difference_is_exercised(verdicts: list[dict]):
    used = {r["case"].policy for r in verdicts} - {""}
    assert used == set(POLICY), f"POLICY entries without a case: {set(POLICY) - used}"


def test_our_refusals_name_the_step_that_refused(verdicts: list[dict]):
    """Each refusal carries a reason code of its step; damage to the signature file is never a path problem."""
    prefixes = ("cms.", "certificate.not-named", "chain.", "validity.", "revocation.")
    for r in verdicts:
        ok, code = r["ours"]
        assert ok or code.startswith(prefixes), (r["case"].name, code)
        if r["case"].family in ("p7s-truncated", "record-flip"):
            assert code.startswith("cms."), (r["case"].name, code)


def test_a_shared_validator_gives_the_same_verdicts_in_any_order(world: World, corpus: list[Case],
                                                                 verdicts: list[dict]):
    """An audit reuses one PathValidator (and its path cache) across every signature: the order in which
    signatures come must not change any verdict."""
    fresh = {r["case"].name: r["ours"] for r in verdicts}
    for order in (corpus, corpus[::-1]):
        validators = {name: PathValidator(root) for name, root in world.roots.items()}
        differ = [(c.name, fresh[c.name], got) for c in order
                  if (got := ours(c, world, validators[c.root])) != fresh[c.name]]
        assert not differ, differ


# =============================================================================== the PDF attachment scan

@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> tuple[bytes, bytes, bytes]:
    """A rendered agreement PDF, its embedded manifest, and a PDF of the renderer with a JPEG image."""
    from agreements_kit.authoring.render import Renderer
    from agreements_kit.authoring.spec import make_spec
    from agreements_kit.signing.setup import init_practice

    root = tmp_path_factory.mktemp("pdf") / "practice"
    init_practice(root, name="Scan Practice", jurisdiction="US-NY", phone="(212) 555-0100",
                  therapists={"lee": ("Dr. Robin Lee", "PhD", "psychologist")})
    pdf, manifest_json = Renderer.load(root).render_bytes(
        make_spec(client="Jane Q. Doe", therapist="lee", id="agr-scan-0001", date=dt.date(2025, 3, 14)))
    from PIL import Image

    from agreements_kit.authoring.pdf import write_pdf
    from agreements_kit.formats.manifest import parse_manifest

    embedded = parse_manifest(manifest_json, "manifest.json").embedded_bytes()
    template = tmp_path_factory.mktemp("template")
    Image.new("RGB", (40, 30), (200, 30, 30)).save(template / "logo.jpg", "JPEG")
    with_image = write_pdf('<html><body><p>Agreement</p><img src="logo.jpg"></body></html>', template, embedded,
                           dt.date(2025, 3, 14))
    assert b"/DCTDecode" in with_image
    return pdf, embedded, with_image


def test_attachment_scan_agrees_with_the_reference_reader(rendered: tuple[bytes, bytes, bytes]):
    """For every PDF: does it carry exactly one manifest, equal to the expected one? The fast path
    (``manifest_attachments``: the scan, or the reference when the scan cannot decide) must answer as the
    reference reader does, with one deliberate difference: a second manifest-bearing stream that nothing
    refers to is refused by ours (it counts every stream) while the reference, following the name tree,
    shows the first; and a manifest stored in a way the scan does not read (an ASCIIHex filter, a filter
    chain, an indirect length: the renderer writes none of these) is refused, since a second manifest could
    hide the same way. Where a case's answer is known by construction, the reference must give it too."""
    pdf, want, with_image = rendered
    cases = [*pdf_mutations(pdf, want), PdfCase("rendered-with-a-jpeg-image", with_image, True)]
    assert len(cases) >= 25
    rows, wrong = [], []
    for case in cases:
        ok_ref = embedded_manifest(case.pdf) == want
        fast = manifest_attachments(case.pdf)
        ok_fast = fast is not None and len(fast) == 1 and fast[0] == want
        via = "scan" if scan_manifests(case.pdf) is not None else "reference"
        if case.hidden or case.unread:
            good = ok_ref and not ok_fast
        else:
            good = ok_fast == ok_ref and case.expected_ok in (None, ok_ref)
        row = (f"{case.name:42} expected={case.expected_ok!s:5} hidden={case.hidden!s:5} reference={ok_ref!s:5} "
               f"ours={ok_fast!s:5} via={via:9} found={None if fast is None else len(fast)}")
        rows.append(row)
        if not good:
            wrong.append(row)
    assert not wrong, f"\n{len(wrong)} PDF case(s) disagree:\n" + "\n".join(wrong) + "\n\nall:\n" + "\n".join(rows)
    for name in ("rendered", "rendered-with-a-jpeg-image"):
        assert scan_manifests(next(c.pdf for c in cases if c.name == name)) is not None, \
            f"{name}: the scan must read every stream the renderer writes"
