"""``agreements staff``: the intake server's staff accounts, one per person (PRACTICE/staff.json).

A password is read from a hidden prompt (typed twice) or from the first line of
``--password-file``; never from the command line or the environment, where other
users and shell histories could see it (:func:`read_password`, which ``agreements
intake open --staff`` uses too). A password that unlocks one of the practice's
CA keys is refused: no one signs in with a CA's passphrase. The lead registers the
group in ``cli/commands.py`` (``main.add_command(staff)``).
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from agreements_kit.cli.groups import OneLineGroup
from agreements_kit.errors import StaffError

practice_option = click.option(
    "--practice", "practice_dir", type=click.Path(file_okay=False, path_type=Path),
    help="Practice folder (default: $AGREEMENTS_PRACTICE, else the current folder).")


def _store(practice_dir: Path | None):
    from agreements_kit.authoring.practice import load_practice, locate
    from agreements_kit.intake.staff import StaffStore

    return StaffStore(load_practice(locate(practice_dir)).root)


def read_password(file: Path | None, *, option: str = "--password-file", prompt: str = "New password",
                  confirm: bool = True) -> str:
    """A staff password: the first line of ``file`` (given as ``option``), else a hidden prompt when stdin is
    a terminal (typed twice when ``confirm``); never the command line or the environment (StaffError)."""
    if file is not None:
        try:
            text = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise StaffError(f"cannot read password file {file}: {getattr(exc, 'strerror', None) or exc}") from None
        return text.split("\n", 1)[0].rstrip("\r")
    stdin = sys.stdin
    if stdin is None or getattr(stdin, "closed", False) or not stdin.isatty():
        raise StaffError(f"a password is needed: type it at the prompt (a terminal) or use {option} FILE "
                         "(it is never read from the command line)")
    return str(click.prompt(prompt, hide_input=True, confirmation_prompt=confirm, err=True))


def _not_a_ca_passphrase(root: Path, password: str) -> None:
    """Refuse a password that unlocks a CA key of the practice (the root's, the intake CA's, the clinician CA's)."""
    from cryptography.hazmat.primitives import serialization

    from agreements_kit.signing.pki import PKI

    pki = PKI(root / "pki")
    for path, what in ((pki.intake_key, "the intake CA's"), (pki.root_key, "the root's"),
                       (pki.clinician_key, "the clinician CA's")):
        try:
            serialization.load_pem_private_key(path.read_bytes(), password=password.encode("utf-8"))
        except (OSError, ValueError, TypeError):
            continue
        raise StaffError(f"that password is {what} passphrase: each person needs their own password, shared "
                         "with no key")


@click.group(cls=OneLineGroup)
def staff() -> None:
    """Staff accounts for the intake server's /staff page: one per person, passwords hashed with argon2."""


@staff.command("add")
@click.argument("name")
@practice_option
@click.option("--full-name", help="The person's full name, as signing records will show it (default: NAME).")
@click.option("--password-file", type=click.Path(dir_okay=False, path_type=Path),
              help="Read the new password from this file's first line (else a hidden prompt, typed twice).")
def add(name: str, practice_dir: Path | None, full_name: str | None, password_file: Path | None) -> None:
    """Add a staff account NAME (their sign-in name, e.g. pat.kim)."""
    from agreements_kit.intake.staff import account_name, check_password

    store = _store(practice_dir)
    name = account_name(name)
    if store.get(name) is not None:
        raise StaffError(f"there is already a staff account '{name}' (remove it first to replace it)")
    full = full_name if full_name is not None else name
    password = read_password(password_file)
    check_password(password, name, full)
    _not_a_ca_passphrase(store.path.parent, password)
    account = store.add(name, full, password)
    click.echo(f"staff account '{account.name}' ({account.full_name}) added; they sign in at the intake "
               "server's /staff page")


@staff.command("remove")
@click.argument("name")
@practice_option
def remove(name: str, practice_dir: Path | None) -> None:
    """Remove the staff account NAME (signed out at its next request)."""
    gone = _store(practice_dir).remove(name)
    click.echo(f"staff account '{gone.name}' ({gone.full_name}) removed")


@staff.command("list")
@practice_option
def list_accounts(practice_dir: Path | None) -> None:
    """List the staff accounts: sign-in name, full name, when added (never a password or its hash)."""
    accounts = _store(practice_dir).accounts()
    if not accounts:
        click.echo("no staff accounts (add one with 'agreements staff add NAME')")
        return
    for account in accounts.values():
        click.echo(f"{account.name}\t{account.full_name}\tadded {account.added}")
