"""What a verifier trusts, decided only from outside the archive being verified.

The trust root is the practice's root certificate, chosen by the auditor:

1. ``--trust ROOT.pem`` (or ``AGREEMENTS_TRUST``): that file;
2. ``--trust-sha256 HEX`` (or ``AGREEMENTS_TRUST_SHA256``): a pinned fingerprint; the
   root file may then come from anywhere (beside the archive, say), since it is
   accepted only if its SHA-256 is the pinned one;
3. the practice named explicitly (``--practice`` or ``AGREEMENTS_PRACTICE``): its own
   ``pki/root.pem``, on the practice's machine.

A root found only beside the material being checked (a copy of an archive with its
``pki/`` folder) decides nothing: anyone can put a self-made root there. Then the
verdict is "not verified: no trusted root", with that root's fingerprint, for the
auditor to compare with the one the practice published.

The transparency log's key (``--log-key``, ``AGREEMENTS_LOG_KEY``, or ``log.pub`` beside
the trusted root) and TSA roots (for the time-stamp tokens) follow the same rule: ``--tsa-trust FILE`` (or
``AGREEMENTS_TSA_TRUST``), else ``tsa-roots.pem`` beside a root the auditor named with
``--trust`` or in the practice named explicitly; never beside the archive alone.

CRLs need no such care: each is signed by its CA and each set the practice publishes
is entered in the ledger, so any copy will do; the newest found is used.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from agreements_kit.errors import InvalidFormat, NotVerified, TrustError
from agreements_kit.formats.crlset import CrlSet, parse_crl_set
from agreements_kit.formats.folder import read_file

MAX_PEM = 64 * 1024


@dataclass
class Trust:
    root: x509.Certificate
    root_path: Path | None
    source: str
    crls: CrlSet | None = None
    crl_path: Path | None = None
    crl_problem: str | None = None
    crl_problem_code: str | None = None  # the CRL file's format error, e.g. format.duplicate-crl
    tsa_roots: tuple[x509.Certificate, ...] = ()
    tsa_path: Path | None = None
    log_key: str | None = None  # the transparency log's verifier key (signed-note text), from outside the archive
    log_key_path: Path | None = None

    @property
    def root_der(self) -> bytes:
        return self.root.public_bytes(serialization.Encoding.DER)

    @property
    def root_fingerprint(self) -> bytes:
        return hashlib.sha256(self.root_der).digest()

    @property
    def fingerprint_hex(self) -> str:
        return self.root_fingerprint.hex()

    def describe(self) -> str:
        text = f"trust root: {self.root_path or '(pinned)'} ({self.source}), SHA-256 {self.fingerprint_hex}"
        if self.tsa_roots:
            text += f"; TSA roots: {self.tsa_path} ({len(self.tsa_roots)})"
        if self.log_key:
            text += f"; log key: {self.log_key.split('+')[0]}+{self.log_key.split('+')[1]}"
        return text


def load_tsa_roots(path: Path) -> tuple[x509.Certificate, ...]:
    """The TSA root certificates (PEM, one or more) an auditor trusts for time-stamp tokens."""
    data = _read_pem(path, "TSA roots")
    try:
        roots = tuple(x509.load_pem_x509_certificates(data))
    except ValueError:
        raise TrustError(f"{path} is not a file of PEM certificates (the TSA roots)") from None
    return roots


def _read_pem(path: Path, what: str) -> bytes:
    """A PEM file an auditor names, read within its size limit; one TrustError line otherwise."""
    try:
        return read_file(str(path), MAX_PEM)
    except FileNotFoundError:
        raise TrustError(f"{what} not found: {path}") from None
    except InvalidFormat as exc:
        raise TrustError(f"{what} {path} {exc.message}") from None


def _load_root(path: Path) -> x509.Certificate:
    data = _read_pem(path, "trust root")
    try:
        return x509.load_pem_x509_certificate(data)
    except ValueError:
        raise TrustError(f"{path} is not a PEM certificate") from None


def load_crls(path: Path) -> CrlSet:
    try:
        return parse_crl_set(read_file(str(path), 4 * 1024 * 1024), str(path))
    except FileNotFoundError:
        raise TrustError(f"CRL file not found: {path}") from None
    except InvalidFormat as exc:
        error = TrustError(f"{path}: {exc.message}", code="usage.trust")
        error.format_code = exc.code  # type: ignore[attr-defined]
        raise error from None


def load_trust(root: str | Path, crl: str | Path | None = None, source: str = "given with --trust") -> Trust:
    """A trust root from a file the auditor named, with the CRL set beside it (or ``crl``)."""
    root = Path(root)
    cert = _load_root(root)
    trust = Trust(cert, root, source)
    attach_crls(trust, [Path(crl)] if crl else [root.with_name("crl.pem")], required=crl is not None)
    _attach_beside_root(trust)
    return trust


def attach_crls(trust: Trust, candidates: list[Path], required: bool = False) -> None:
    """Use the CRL set with the highest number among ``candidates`` (damaged ones are noted)."""
    best: tuple[CrlSet, Path] | None = None
    for path in candidates:
        if not path.is_file():
            if required:
                raise TrustError(f"CRL file not found: {path}")
            continue
        try:
            crls = load_crls(path)
        except TrustError as exc:
            if required:
                raise
            trust.crl_problem = exc.message
            trust.crl_problem_code = getattr(exc, "format_code", None)
            continue
        if best is None or crls.number > best[0].number:
            best = (crls, path)
    if best is not None:
        trust.crls, trust.crl_path = best


def resolve_trust(*, trust_file: Path | None = None, trust_sha256: str | None = None, crl: Path | None = None,
                  practice: Path | None = None, archive: Path | None = None, tsa_trust: Path | None = None,
                  log_key: str | None = None) -> Trust:
    """The trust roots by the rules of the module docstring; NotVerified (exit 1) when there is none."""
    trust = _resolve_root(trust_file, trust_sha256, crl, practice, archive)
    tsa_trust = tsa_trust or (Path(os.environ["AGREEMENTS_TSA_TRUST"]) if os.environ.get("AGREEMENTS_TSA_TRUST")
                              else None)
    if tsa_trust is not None:
        trust.tsa_roots, trust.tsa_path = load_tsa_roots(tsa_trust), tsa_trust
    log_key = log_key or os.environ.get("AGREEMENTS_LOG_KEY") or None
    if log_key is not None:
        attach_log_key(trust, log_key)
    _attach_beside_root(trust)
    return trust


def _attach_beside_root(trust: Trust) -> None:
    """tsa-roots.pem and log.pub beside a root the auditor chose, unless given otherwise (never a pinned root's)."""
    if trust.root_path is None or trust.source.startswith("pinned"):
        return
    tsa_roots = trust.root_path.with_name("tsa-roots.pem")
    if trust.tsa_path is None and tsa_roots.is_file():
        trust.tsa_roots, trust.tsa_path = load_tsa_roots(tsa_roots), tsa_roots
    log_pub = trust.root_path.with_name("log.pub")
    if trust.log_key is None and log_pub.is_file():
        attach_log_key(trust, str(log_pub))


def attach_log_key(trust: Trust, value: str) -> None:
    """The log's verifier key: a file holding it, or the key text itself (NAME+KEYID+BASE64)."""
    trust.log_key, trust.log_key_path = verifier_key_text(value, "log key")


def verifier_key_text(value: str, what: str) -> tuple[str, Path | None]:
    """A signed-note verifier key given as a file or as its text: (the checked text, the file if any)."""
    from agreements_kit.formats.checkpoint import parse_vkey

    path = Path(value)
    given_as_file = "+" not in value or path.is_file()
    if given_as_file:
        try:
            text = read_file(str(path), MAX_PEM).decode("utf-8").strip()
        except FileNotFoundError:
            raise TrustError(f"{what} not found: {path}") from None
        except (InvalidFormat, UnicodeDecodeError):
            raise TrustError(f"{what} {path} is not a verifier key file") from None
    else:
        text = value.strip()
    try:
        parse_vkey(text, str(path) if given_as_file else what)
    except InvalidFormat as exc:
        raise TrustError(f"{what} {value[:60]!r}: {exc.message}") from None
    return text, path if given_as_file else None


def _resolve_root(trust_file: Path | None, trust_sha256: str | None, crl: Path | None, practice: Path | None,
                  archive: Path | None) -> Trust:
    trust_file = trust_file or (Path(os.environ["AGREEMENTS_TRUST"]) if os.environ.get("AGREEMENTS_TRUST") else None)
    trust_sha256 = trust_sha256 or os.environ.get("AGREEMENTS_TRUST_SHA256") or None
    beside = archive.resolve().parent / "pki" if archive is not None else None
    crl_candidates = [p for p in (crl,) if p is not None]
    if trust_file is not None:
        trust = load_trust(trust_file, crl, "given with --trust")
        if trust_sha256 and trust.fingerprint_hex != _pin(trust_sha256):
            raise NotVerified(f"not verified: the trust root {trust_file} has SHA-256 {trust.fingerprint_hex}, not "
                              f"the pinned {_pin(trust_sha256)}")
    elif trust_sha256:
        pin = _pin(trust_sha256)
        candidates = [p / "root.pem" for p in ((practice / "pki") if practice else None, beside) if p is not None]
        found_trust: Trust | None = None
        for path in candidates:
            if path.is_file():
                cert = _load_root(path)
                if hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest() == pin:
                    found_trust = Trust(cert, path, "pinned by --trust-sha256")
                    break
        if found_trust is None:
            raise NotVerified(f"not verified: no root certificate with the pinned SHA-256 {pin} was found "
                              f"(looked at {', '.join(str(p) for p in candidates) or 'nothing'}); give it with --trust")
        trust = found_trust
        crl_candidates += [trust.root_path.with_name("crl.pem")] if trust.root_path else []
    elif practice is not None and (practice / "pki" / "root.pem").is_file():
        trust = Trust(_load_root(practice / "pki" / "root.pem"), practice / "pki" / "root.pem",
                      "the practice's own, named with --practice or AGREEMENTS_PRACTICE")
        crl_candidates.append(practice / "pki" / "crl.pem")
    else:
        found = beside / "root.pem" if beside is not None and (beside / "root.pem").is_file() else None
        if found is not None:
            try:
                fp = hashlib.sha256(_load_root(found).public_bytes(serialization.Encoding.DER)).hexdigest()
            except TrustError:
                fp = "(unreadable)"
            raise NotVerified(f"not verified: no trusted root. {found} lies beside the archive, so it proves nothing; "
                              f"its SHA-256 is {fp}: if that is the root the practice published, pass "
                              f"--trust-sha256 {fp} (or --trust FILE)", code="invalid.no-trusted-root")
        raise NotVerified("not verified: no trusted root: give --trust ROOT.pem or --trust-sha256 HEX (the root "
                          "the practice published)", code="invalid.no-trusted-root")
    if crl is None:
        if beside is not None:
            crl_candidates.append(beside / "crl.pem")
        if trust.root_path is not None:
            crl_candidates.append(trust.root_path.with_name("crl.pem"))
        attach_crls(trust, list(dict.fromkeys(crl_candidates)))
    return trust


def _pin(value: str) -> str:
    pin = value.strip().lower().replace(":", "")
    if len(pin) != 64 or any(c not in "0123456789abcdef" for c in pin):
        raise TrustError(f"--trust-sha256 {value!r} is not a SHA-256 fingerprint (64 hex digits)")
    return pin
