"""Creating a practice folder: settings, drafts, archive and its certificate authority."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from agreements_kit.authoring import yamlfile
from agreements_kit.authoring.practice import SETTINGS, parse_practice
from agreements_kit.errors import PracticeError
from agreements_kit.store.files import make_private_dir, write_new

INIT_TEMPLATE = """\
# Practice settings for agreements-kit. Edit, then run 'agreements render'.
practice:
  name: {name}
  phone: {phone}
  address: {address}
  email: {email}

# Default jurisdiction for the confidentiality exceptions: US, US-MT or US-NY
# (an agreement may override it with --jurisdiction or in its spec).
jurisdiction: {jurisdiction}

# Therapists who sign agreements: id -> name and credentials.
therapists:
{therapists}
# Practice-wide values for clause variables ('agreements clauses' lists them).
variables:
{variables}
# Optional: a clause library or template folder of your own, relative to this file.
# clauses: my-clauses
# templates: my-templates
"""


def init_practice(root: str | Path, *, name: str, jurisdiction: str, phone: str = "", address: str = "",
                  email: str = "", therapists: dict[str, tuple[str, str]] | None = None,
                  variables: dict[str, Any] | None = None,
                  passphrase: bytes | Callable[[], bytes] | None = None) -> Path:
    """Create a practice folder, with its PKI when a passphrase is given.

    ``passphrase`` may be a function, called only once everything else is checked, so
    that nobody is asked for a passphrase for a folder that cannot be created.

    Everything is built in a temporary sibling folder and renamed into place, so a
    failure leaves nothing behind; an existing non-empty folder is refused.
    """
    import json
    import secrets

    from agreements_kit.signing.pki import PKI, check_passphrase
    from agreements_kit.store.files import rename_noreplace

    root = Path(root)
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise PracticeError(f"{root} already exists and is not empty; choose a new folder")
    therapists = therapists or {"example": ("Dr. Example Therapist", "PhD, Licensed Psychologist")}
    q = json.dumps  # YAML accepts JSON strings: a safe way to quote any value
    text = INIT_TEMPLATE.format(
        name=q(name), phone=q(phone), address=q(address), email=q(email), jurisdiction=q(jurisdiction),
        therapists="".join(f"  {tid}:\n    name: {q(n)}\n    credentials: {q(c)}\n"
                           for tid, (n, c) in therapists.items()),
        variables="".join(f"  {k}: {q(v)}\n" for k, v in (variables or {}).items()) or "  {}\n",
    )
    practice = parse_practice(yamlfile.parse(text, root / SETTINGS, PracticeError), root)  # check first
    if callable(passphrase):
        passphrase = passphrase()
    if passphrase is not None:
        check_passphrase(passphrase)
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = root.parent / f".{root.name}.{secrets.token_hex(6)}.partial"
    make_private_dir(tmp)
    try:
        for sub in ("drafts", "signed", "signed/.work"):
            make_private_dir(tmp / sub)
        write_new(tmp / SETTINGS, text.encode("utf-8"))
        if passphrase is not None:
            PKI(tmp / "pki").create(practice.name, passphrase)
        if root.exists():
            root.rmdir()  # empty, checked above
        rename_noreplace(tmp, root)
    except BaseException:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return root
