"""Creating a practice folder: settings, drafts, archive and its certificate authority."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from agreements_kit.authoring import yamlfile
from agreements_kit.authoring.practice import SETTINGS, parse_practice
from agreements_kit.errors import PracticeError
from agreements_kit.store.files import make_private_dir, write_new

Secret = bytes | Callable[[], bytes] | None
#: A therapist for ``init_practice``: (name, credentials) or (name, credentials, profession).
TherapistEntry = tuple[str, str] | tuple[str, str, str | None]

INIT_TEMPLATE = """\
# Practice settings for agreements-kit. Edit, then run 'agreements render'.
practice:
  name: {name}
  phone: {phone}
  address: {address}
  email: {email}

# Default jurisdiction for the texts that follow the law (confidentiality exceptions and
# the like): US (general), US-CA, US-MT, US-NY or US-TX (an agreement may override it with
# --jurisdiction or in its spec).
jurisdiction: {jurisdiction}

# Therapists who sign agreements: id -> name, credentials and, optionally, profession
# (psychologist, psychiatrist, psychiatric-nurse-practitioner, lcsw, lpc, lmft), which picks
# the texts of duties that bind some professions only (New York's SAFE Act report).
therapists:
{therapists}
# Practice-wide values for clause variables ('agreements clauses' lists them).
variables:
{variables}
# Optional: a clause library or template folder of your own, relative to this file.
# clauses: my-clauses
# templates: my-templates
{timestamping}"""

TIMESTAMPING_NONE = """
# RFC 3161 time-stamp authorities (TSAs), tried in order, for a trusted time on every
# signature. Without them a signature's time is only what the signer's computer said.
# Put the TSAs' root certificates in pki/tsa-roots.pem for verifiers on this machine.
# timestamping:
#   tsa: [https://tsa.example.com/tsr]
#   on_failure: stop        # or archive-untimestamped (verdicts then say so)
"""
TIMESTAMPING = """
# RFC 3161 time-stamp authorities (TSAs), tried in order, for a trusted time on every
# signature. If none answers, nothing is signed ('on_failure: archive-untimestamped'
# archives it without a token instead, and every verdict says so).
timestamping:
  tsa: [{urls}]
  on_failure: stop
"""


def init_practice(root: str | Path, *, name: str, jurisdiction: str, phone: str = "", address: str = "",
                  email: str = "", therapists: dict[str, TherapistEntry] | None = None,
                  variables: dict[str, Any] | None = None,
                  passphrase: Secret = None, intake_passphrase: Secret = None,
                  clinician_passphrase: Secret = None, tsa_urls: list[str] | None = None) -> Path:
    """Create a practice folder, with its PKI when passphrases are given.

    ``passphrase`` is the root's; the intake CA and the clinician CA each need their own
    (``intake_passphrase``, ``clinician_passphrase``), all three different. Each may be a
    function, called only once everything else is checked (in that order), so that
    nobody is asked for a passphrase for a folder that cannot be created.

    A therapist's profession, when given, is written as given and checked as practice.yaml
    is (an unknown one is refused before anything is created).

    Everything is built in a temporary sibling folder and renamed into place, so a
    failure leaves nothing behind; an existing non-empty folder is refused.
    """
    import json
    import secrets

    from agreements_kit.signing.pki import PKI, check_distinct
    from agreements_kit.store.files import rename_noreplace

    root = Path(root)
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise PracticeError(f"{root} already exists and is not empty; choose a new folder")
    therapists = therapists or {"example": ("Dr. Example Therapist", "PhD, Licensed Psychologist")}
    q = json.dumps  # YAML accepts JSON strings: a safe way to quote any value
    text = INIT_TEMPLATE.format(
        name=q(name), phone=q(phone), address=q(address), email=q(email), jurisdiction=q(jurisdiction),
        therapists="".join(_therapist(tid, entry) for tid, entry in therapists.items()),
        variables="".join(f"  {k}: {q(v)}\n" for k, v in (variables or {}).items()) or "  {}\n",
        timestamping=TIMESTAMPING.format(urls=", ".join(q(u) for u in tsa_urls)) if tsa_urls else TIMESTAMPING_NONE,
    )
    practice = parse_practice(yamlfile.parse(text, root / SETTINGS, PracticeError), root)  # check first
    keys: tuple[bytes, bytes, bytes] | None = None
    if passphrase is not None:
        if intake_passphrase is None or clinician_passphrase is None:
            raise PracticeError("a practice's PKI needs three passphrases: the root's, the intake CA's and the "
                                "clinician CA's")
        root_pass = _given(passphrase)
        check_distinct(root=root_pass)
        intake_pass = _given(intake_passphrase)
        check_distinct(root=root_pass, intake_CA=intake_pass)
        clinician_pass = _given(clinician_passphrase)
        check_distinct(root=root_pass, intake_CA=intake_pass, clinician_CA=clinician_pass)
        keys = (root_pass, intake_pass, clinician_pass)
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = root.parent / f".{root.name}.{secrets.token_hex(6)}.partial"
    make_private_dir(tmp)
    try:
        for sub in ("drafts", "signed", "signed/.work"):
            make_private_dir(tmp / sub)
        write_new(tmp / SETTINGS, text.encode("utf-8"))
        if keys is not None:
            PKI(tmp / "pki").create(practice.name, *keys)
        if root.exists():
            root.rmdir()  # empty, checked above
        rename_noreplace(tmp, root)
    except BaseException:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return root


def _therapist(tid: str, entry: TherapistEntry) -> str:
    """One therapist's lines of practice.yaml (values JSON-quoted, which YAML reads as strings)."""
    import json

    name, credentials = entry[0], entry[1]
    profession = entry[2] if len(entry) > 2 else None
    lines = f"  {tid}:\n    name: {json.dumps(name)}\n    credentials: {json.dumps(credentials)}\n"
    return lines + (f"    profession: {json.dumps(profession)}\n" if profession is not None else "")


def _given(secret: bytes | Callable[[], bytes]) -> bytes:
    return secret() if callable(secret) else secret


def configure_timestamping(root: str | Path, urls: list[str], tsa_roots_pem: bytes | None = None,
                           on_failure: str = "stop") -> None:
    """Point an existing practice at its TSAs: the ``timestamping`` section of practice.yaml
    (replacing the commented example ``init`` writes, or appended), and the TSAs' root
    certificates in pki/tsa-roots.pem for verifiers on this machine.

    The new settings are parsed before anything is written; practice.yaml is replaced
    atomically, so a failure leaves the old one."""
    import json
    import os

    from cryptography import x509

    root = Path(root)
    path = root / SETTINGS
    text = path.read_text(encoding="utf-8")
    if "\ntimestamping:" in text:
        raise PracticeError(f"{path} already has a 'timestamping' section; edit it by hand")
    section = TIMESTAMPING.format(urls=", ".join(json.dumps(u) for u in urls)).replace(
        "on_failure: stop", f"on_failure: {on_failure}")
    new = text.replace(TIMESTAMPING_NONE, section) if TIMESTAMPING_NONE in text else text.rstrip("\n") + "\n" + section
    parse_practice(yamlfile.parse(new, path, PracticeError), root)  # check first
    if tsa_roots_pem is not None:
        try:
            x509.load_pem_x509_certificates(tsa_roots_pem)
        except ValueError:
            raise PracticeError("the TSA roots are not PEM certificates") from None
        target = root / "pki" / "tsa-roots.pem"
        if target.exists():
            raise PracticeError(f"{target} already exists; edit it by hand")
        write_new(target, tsa_roots_pem)
    tmp = path.with_name(f".{SETTINGS}.new")
    tmp.unlink(missing_ok=True)
    write_new(tmp, new.encode("utf-8"))
    os.replace(tmp, path)
