"""The ``agreements`` command: parses arguments, calls the library, prints.

Every module is imported inside the command that needs it, so ``--help`` and
the commands that never render stay quick (WeasyPrint alone takes most of a
second to import). A user error is one line on stderr and exit code 2 (1 for a
lint that found problems); a traceback means a bug.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import Any

import click

from agreements_kit import __version__
from agreements_kit.cli.groups import OneLineGroup
from agreements_kit.errors import AgreementsError


def _tty(stream) -> bool:
    """Is ``stream`` an interactive terminal? (False when it is closed or missing.)"""
    return stream is not None and not getattr(stream, "closed", False) and stream.isatty()


class _Group(OneLineGroup):
    """Turns user errors, click's usage errors included, into one line and an exit code."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.UsageError as exc:
            command = exc.ctx.command_path if exc.ctx else "agreements"
            click.echo(f"error: {exc.format_message()} (see '{command} --help')", err=True)
            sys.exit(2)
        except click.ClickException as exc:
            click.echo(f"error: {exc.format_message()}", err=True)
            sys.exit(exc.exit_code)
        except click.Abort:
            click.echo("error: aborted", err=True)
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="agreements")
def main() -> None:
    """Generate, sign and audit DBT treatment agreements."""


PASSPHRASE_ENV = "AGREEMENTS_PASSPHRASE"  # the root CA's (and, for 'sign --as therapist' and 'void', the therapist's)
KEY_PASSPHRASE_ENV = "AGREEMENTS_KEY_PASSPHRASE"
INTAKE_PASSPHRASE_ENV = "AGREEMENTS_INTAKE_PASSPHRASE"  # the intake CA's: client signatures, the intake server
CLINICIAN_PASSPHRASE_ENV = "AGREEMENTS_CLINICIAN_CA_PASSPHRASE"  # the clinician CA's: issuing and revoking therapists


def _passphrase(file: Path | None, env: str, prompt: str, confirm: bool = False,
                option: str = "--passphrase-file") -> bytes:
    """A passphrase from a file, the environment, or a hidden prompt: never from the command line."""
    if file is not None:
        try:
            text = file.read_text(encoding="utf-8")
        except OSError as exc:
            raise AgreementsError(f"cannot read passphrase file {file}: {exc.strerror}") from None
        value = text.rstrip("\r\n")
    elif os.environ.get(env):
        value = os.environ[env]
    elif _tty(sys.stdin):
        value = click.prompt(prompt, hide_input=True, confirmation_prompt=confirm, err=True)
    else:
        raise AgreementsError(f"{prompt[:1].lower() + prompt[1:]} needed: use {option} FILE or set {env} "
                              "(it is never read from the command line)")
    if not value:
        raise AgreementsError(f"{prompt[:1].lower() + prompt[1:]} is empty")
    return value.encode("utf-8")


passphrase_option = click.option(
    "--passphrase-file", type=click.Path(dir_okay=False, path_type=Path),
    help=f"Read the passphrase from this file (else ${PASSPHRASE_ENV}, else a prompt).")


def _file_option(name: str, help: str):
    return click.option(name, type=click.Path(dir_okay=False, path_type=Path), help=help)


intake_passphrase_option = _file_option(
    "--passphrase-file", f"The intake CA's passphrase, from this file (else ${INTAKE_PASSPHRASE_ENV}, else a prompt).")
clinician_passphrase_option = _file_option(
    "--passphrase-file",
    f"The clinician CA's passphrase, from this file (else ${CLINICIAN_PASSPHRASE_ENV}, else a prompt).")
root_key_option = click.option(
    "--root-key", "root_key", type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="The root CA's key file, where it was exported to (removable media); default: pki/root.key.pem.")

practice_option = click.option(
    "--practice", "practice_dir", type=click.Path(file_okay=False, path_type=Path),
    help="Practice folder (default: $AGREEMENTS_PRACTICE, else the current folder).")


@main.command()
@click.argument("directory", type=click.Path(path_type=Path))
@click.option("--name", default="My DBT Practice", show_default=True, help="The practice's name.")
@click.option("--jurisdiction", default="US", show_default=True,
              help="US, US-CA, US-MT, US-NY or US-TX (the clause library's jurisdictions).")
@click.option("--phone", default="", help="Practice phone number.")
@click.option("--address", default="", help="Practice address.")
@click.option("--email", default="", help="Practice e-mail address.")
@click.option("--tsa", "tsa_urls", multiple=True, metavar="URL",
              help="An RFC 3161 time-stamp authority to time-stamp every signature (repeatable; tried in order).")
@click.option("--passphrase-file", type=click.Path(dir_okay=False, path_type=Path),
              help=f"The root CA's passphrase, from this file (else ${PASSPHRASE_ENV}, else a prompt).")
@_file_option("--intake-passphrase-file", f"The intake CA's passphrase, from this file (else ${INTAKE_PASSPHRASE_ENV}, "
              "else a prompt).")
@_file_option("--clinician-passphrase-file", "The clinician CA's passphrase, from this file (else "
              f"${CLINICIAN_PASSPHRASE_ENV}, else a prompt).")
def init(directory: Path, name: str, jurisdiction: str, phone: str, address: str, email: str,
         tsa_urls: tuple[str, ...], passphrase_file: Path | None, intake_passphrase_file: Path | None,
         clinician_passphrase_file: Path | None) -> None:
    """Create a practice folder: settings, drafts/, the signed/ archive and the practice PKI.

    Each CA key has a passphrase of its own, all three different: the root's
    (needed only to issue or revoke a CA: export the key to removable media with
    'agreements pki export-root-key'), the intake CA's (front desk: clients sign
    with it) and the clinician CA's (whoever issues and revokes therapists).
    """
    from agreements_kit.authoring.library import load_library
    from agreements_kit.resources import clauses_dir
    from agreements_kit.signing.setup import init_practice

    known = load_library(clauses_dir()).jurisdictions
    if jurisdiction not in known:
        raise AgreementsError(f"unknown jurisdiction '{jurisdiction}' (choose from: {', '.join(known)})")
    root = init_practice(directory, name=name, jurisdiction=jurisdiction, phone=phone, address=address,
                         email=email,
                         passphrase=lambda: _passphrase(passphrase_file, PASSPHRASE_ENV, "Root CA passphrase",
                                                        confirm=True),
                         intake_passphrase=lambda: _passphrase(intake_passphrase_file, INTAKE_PASSPHRASE_ENV,
                                                               "Intake CA passphrase", confirm=True,
                                                               option="--intake-passphrase-file"),
                         clinician_passphrase=lambda: _passphrase(clinician_passphrase_file, CLINICIAN_PASSPHRASE_ENV,
                                                                  "Clinician CA passphrase", confirm=True,
                                                                  option="--clinician-passphrase-file"),
                         tsa_urls=list(tsa_urls) or None)
    click.echo(f"created practice folder {root}")
    click.echo(f"publish {root / 'pki' / 'root.pem'} and {root / 'pki' / 'crl.pem'}: auditors verify against them")
    click.echo("then move the root key offline: 'agreements pki export-root-key --to DIR' (removable media)")
    click.echo(f"edit {root / 'practice.yaml'} to list your therapists, then 'agreements pki issue --therapist ID'")
    if tsa_urls:
        click.echo(f"put the TSA's root certificate in {root / 'pki' / 'tsa-roots.pem'} (and publish it) so "
                   "verifiers trust its time-stamps")


@main.command()
@practice_option
@click.option("--client", help="The client's full name.")
@click.option("--guardian", help="For a minor or represented client: the full name of who signs for them.")
@click.option("--relation", help="The guardian's relation: parent, legal guardian, conservator, health care agent, "
                                 "other legal representative.")
@click.option("--therapist", help="Therapist id from practice.yaml.")
@click.option("--spec", "spec_files", multiple=True, type=click.Path(dir_okay=False, path_type=Path),
              help="YAML or CSV spec file (repeatable); one or many agreements.")
@click.option("--id", "agreement_id", help="Agreement id (default: a new random id).")
@click.option("--date", help="Agreement date, YYYY-MM-DD (default: today).")
@click.option("--jurisdiction", help="Override the practice's jurisdiction.")
@click.option("--clause", "clauses", multiple=True, help="Include only these clause ids (repeatable).")
@click.option("--set", "sets", multiple=True, metavar="NAME=VALUE", help="Set a clause variable (repeatable).")
@click.option("--out", type=click.Path(path_type=Path), help="Parent folder for drafts (default: PRACTICE/drafts).")
@click.option("--workers", type=click.IntRange(1, 64), help="Worker processes for batches (default: all cores).")
@click.option("--document", help="Render another kind of document from its own library (e.g. esign-disclosure, the "
                                 "consent to electronic records); default: the therapists' agreement.")
@click.option("--language", help="Write it in this language (es...): the library's translation (translations/LANG/); "
                                 "default: the library's own language.")
def render(practice_dir, client, guardian, relation, therapist, spec_files, agreement_id, date, jurisdiction, clauses,
           sets, out, workers, document, language) -> None:
    """Render draft agreements (agreement.pdf + manifest.json), one folder each."""
    from agreements_kit.authoring.practice import locate
    from agreements_kit.authoring.render import Renderer, check_out_parent, plan, render_many
    from agreements_kit.authoring.spec import load_spec_file, make_spec, parse_set
    from agreements_kit.errors import SpecError
    from agreements_kit.signing.renders import log_renders

    given = [v for v in (client, guardian, relation, therapist, agreement_id, date, jurisdiction, language)
             if v is not None] + list(clauses + sets)
    if spec_files and given:
        raise SpecError("give either --spec files or --client/--therapist options, not both")
    if not spec_files and (client is None or therapist is None):
        raise SpecError("give --client NAME and --therapist ID, or --spec FILE")
    renderer = Renderer.load(locate(practice_dir), document)
    if spec_files:
        specs = [s for f in spec_files for s in load_spec_file(f)]
    else:
        specs = [make_spec(client=client, therapist=therapist, id=agreement_id, date=date,
                           jurisdiction=jurisdiction, clauses=list(clauses) or None, variables=parse_set(sets),
                           text_values=True, guardian=guardian, relation=relation, language=language)]
    parent = check_out_parent(out) if out else renderer.practice.drafts
    jobs = plan(renderer, specs, parent)
    if len(jobs) > 1 and _tty(sys.stderr):
        with click.progressbar(length=len(jobs), label="rendering", file=sys.stderr) as bar:
            folders = render_many(renderer, jobs, workers, progress=lambda _: bar.update(1))
    else:
        folders = render_many(renderer, jobs, workers)
    log_renders(renderer.practice, folders)
    for folder in folders:
        click.echo(folder)


def _library_dir(directory: Path | None, practice_dir: Path | None) -> Path:
    from agreements_kit.authoring.practice import SETTINGS, load_practice, locate
    from agreements_kit.resources import clauses_dir

    if directory is not None:
        return directory
    root = locate(practice_dir)
    if (root / SETTINGS).is_file():
        return load_practice(root).library_dir()
    return clauses_dir()


@main.command()
@click.argument("directory", required=False, type=click.Path(file_okay=False, path_type=Path))
@practice_option
@click.option("--max-grade", default=8.0, show_default=True,
              help="Highest reading grade allowed for each summary and body.")
@click.option("--max-agreement-grade", default=7.0, show_default=True,
              help="Highest reading grade allowed for a whole agreement.")
@click.option("--document", help="Lint this document library (clauses/documents/NAME) instead.")
def lint(directory: Path | None, practice_dir: Path | None, max_grade: float, max_agreement_grade: float,
         document: str | None) -> None:
    """Check a clause library (default: the practice's, else the built-in one)."""
    from agreements_kit.authoring.lint import lint_library
    from agreements_kit.errors import LintFailure

    folder = _library_dir(directory, practice_dir)
    if document is not None:
        folder = _document_dir(folder, document)
    report = lint_library(folder, max_grade, max_agreement_grade=max_agreement_grade)
    for problem in report.problems:
        click.echo(str(problem))
    for item in [*report.grades, *report.translated]:
        status = "ok" if item.ok else "TOO HARD"
        click.echo(f"{item.where}: {item.measure} {item.grade:.1f} ({status}) {item.label}")
    for warning in report.warnings:
        click.echo(f"warning: {warning}")
    if not report.ok:
        raise LintFailure(f"{report.count} problem{'s' if report.count != 1 else ''} found")
    warned = f", {len(report.warnings)} warning{'s' if len(report.warnings) != 1 else ''}" if report.warnings else ""
    click.echo(f"ok: {len(report.grades) + len(report.translated)} texts within their reading grades, no "
               f"problems{warned}")


def _document_dir(library: Path, document: str) -> Path:
    """A document library by name: in the library folder's documents/, else the built-in one."""
    from agreements_kit.authoring.documents import DOCUMENTS
    from agreements_kit.resources import clauses_dir

    if not re.fullmatch(r"[a-z0-9][a-z0-9-]{0,63}", document):
        raise AgreementsError(f"--document {document!r}: a document library's name is lowercase letters, digits "
                              "and '-'")
    for base in (library, clauses_dir()):
        if (base / DOCUMENTS / document / "library.yaml").is_file():
            return base / DOCUMENTS / document
    raise AgreementsError(f"no document library '{document}' in {library / DOCUMENTS} or the built-in one")


@main.group(invoke_without_command=True)
@click.option("--library", "directory", type=click.Path(file_okay=False, path_type=Path),
              help="Clause library folder (default: the practice's, else the built-in one).")
@practice_option
@click.pass_context
def clauses(ctx: click.Context, directory: Path | None, practice_dir: Path | None) -> None:
    """List the clause library; 'clauses show ID' prints one clause."""
    from agreements_kit.authoring.library import load_library

    lib = load_library(_library_dir(directory, practice_dir))
    ctx.obj = lib
    if ctx.invoked_subcommand is not None:
        return
    click.echo(f"{lib.name} version {lib.version}: {len(lib.clauses)} clauses, jurisdictions "
               f"{', '.join(lib.jurisdictions)}")
    for area in lib.areas:
        click.echo(f"\n{area.title} [{area.id}]")
        for c in (c for c in lib.clauses.values() if c.area == area.id):
            flags = " (initials)" if c.initials else ""
            variants = {v.jurisdiction for v in lib.all_variants() if v.clause == c.id}
            if variants:
                flags += f" (variants: {', '.join(sorted(variants))})"
            by_profession = sorted({j for (j, cid, _) in lib.profession_variants if cid == c.id})
            if by_profession:
                flags += f" (by profession in {', '.join(by_profession)})"
            click.echo(f"  {c.id} v{c.version}: {c.title}{flags}")
    variables = lib.variables()
    if variables:
        click.echo("\nVariables (set with --set NAME=VALUE or under 'variables' in practice.yaml):")
        for name, var in sorted(variables.items()):
            default = f" [default: {var.default!r}]" if var.has_default else " [required]"
            click.echo(f"  {name} ({var.type}): {var.description}{default}")


@clauses.command("show")
@click.argument("clause_id")
@click.option("--jurisdiction", help="Show the text used in this jurisdiction.")
@click.option("--profession", help="Show the text used for a therapist of this profession (psychologist, lcsw, ...).")
@click.pass_obj
def clauses_show(lib, clause_id: str, jurisdiction: str | None, profession: str | None) -> None:
    """Print one clause: metadata, summary and body."""
    if clause_id not in lib.clauses:
        raise AgreementsError(f"unknown clause '{clause_id}' ('agreements clauses' lists them)")
    if jurisdiction is not None and jurisdiction not in lib.jurisdictions:
        raise AgreementsError(f"unknown jurisdiction '{jurisdiction}' (the library has: "
                              f"{', '.join(lib.jurisdictions)})")
    from agreements_kit.authoring.professions import known, profession_code

    code = profession_code(profession) if profession is not None else None
    if profession is not None and code is None:
        raise AgreementsError(f"unknown profession '{profession}' (known: {known()})")
    c = lib.clause(clause_id, jurisdiction, code)
    commitments = {x.id: x.text for x in lib.commitments}
    click.echo(f"{c.id} v{c.version}: {c.title}")
    click.echo(f"area: {c.area}    initials: {'yes' if c.initials else 'no'}    sha256: {c.sha256()}")
    if c.jurisdiction:
        click.echo(f"jurisdiction: {c.jurisdiction} (variant v{c.variant_version}): {c.note or ''}".rstrip())
    if c.professions:
        click.echo(f"professions: {', '.join(c.professions)}")
    for citation in c.citations:
        click.echo(f"cites: {citation}")
    if c.reviewed_on and c.review_by:
        click.echo(f"reviewed: {c.reviewed_on.isoformat()}, next review by {c.review_by.isoformat()}")
    if c.requires:
        click.echo(f"requires: {', '.join(c.requires)}")
    click.echo(f"source: {c.path}:{c.line}")
    click.echo("covers:")
    for cid in c.covers:
        click.echo(f"  {cid}: {commitments.get(cid, '?')}")
    for name, var in c.variables.items():
        default = f" [default: {var.default!r}]" if var.has_default else ""
        click.echo(f"variable {name} ({var.type}): {var.description}{default}")
    click.echo(f"\nsummary: {c.summary}\n")
    click.echo(c.body.rstrip())


def _practice(practice_dir: Path | None):
    from agreements_kit.authoring.practice import load_practice, locate

    return load_practice(locate(practice_dir))


@main.group()
def archive() -> None:
    """Maintain the archive (format migration, archive time-stamps)."""


@archive.command("migrate")
@practice_option
def archive_migrate(practice_dir) -> None:
    """Bring a legacy (format 1) archive under format 2's checks, recording it in the ledger.

    Nothing is rewritten: the ledger gains the register of every certificate that
    signed, the current CRL set, and a migrate entry.
    """
    from agreements_kit.signing.migrate import migrate

    result = migrate(_practice(practice_dir))
    click.echo(f"migrated {result.agreements} agreements: {result.certificates} certificates registered, "
               f"CRL set {result.crl_number} entered in the ledger")


@archive.command("renew")
@practice_option
def archive_renew(practice_dir) -> None:
    """Add an archive time-stamp (renewal-NN.json and .tsr) to every agreement folder.

    Each covers the SHA-256 of every file in its folder, earlier renewals included, with a
    token from the practice's TSA, and is entered in the ledger. A folder unchanged since
    its last renewal, which is not yet due, is skipped; one that differs from the ledger is
    refused (exit 1). A TSA failure stops the run (exit 3). See docs/archive.md.
    """
    from agreements_kit.signing.renew import renew_archive

    outcomes = renew_archive(_practice(practice_dir))
    for outcome in outcomes:
        click.echo(f"{outcome.action} {outcome.agreement_id}: {outcome.detail}")
    count = {a: sum(1 for o in outcomes if o.action == a) for a in ("renewed", "skipped", "refused")}
    click.echo(f"{count['renewed']} renewed, {count['skipped']} skipped (unchanged, not due), "
               f"{count['refused']} refused")
    sys.exit(1 if count["refused"] else 0)


@main.group()
def pki() -> None:
    """The practice's certificate authorities: issue, revoke, list, rotate; the root offline."""


@pki.command("issue")
@practice_option
@click.option("--therapist", "therapist_id", required=True, help="Therapist id from practice.yaml.")
@clinician_passphrase_option
@click.option("--key-passphrase-file", type=click.Path(dir_okay=False, path_type=Path),
              help=f"The therapist's own passphrase for the new key (else ${KEY_PASSPHRASE_ENV}, else a prompt).")
@click.option("--days", type=click.IntRange(1, 3650), default=730, show_default=True, help="Validity in days.")
def pki_issue(practice_dir, therapist_id, passphrase_file, key_passphrase_file, days) -> None:
    """Issue a therapist's certificate (from the clinician CA) and encrypted key."""
    from agreements_kit.signing.pki import NO_CLINICIAN_CA, PKI

    practice = _practice(practice_dir)
    therapist = practice.therapists.get(therapist_id)
    if therapist is None:
        raise AgreementsError(f"unknown therapist '{therapist_id}' (practice.yaml lists: "
                              f"{', '.join(sorted(practice.therapists))})")
    store = PKI(practice.root / "pki")
    if not store.has_clinician_ca():
        raise AgreementsError(NO_CLINICIAN_CA)
    ca = _passphrase(passphrase_file, CLINICIAN_PASSPHRASE_ENV, "Clinician CA passphrase")
    key = _passphrase(key_passphrase_file, KEY_PASSPHRASE_ENV, f"New passphrase for {therapist_id}'s key",
                      confirm=True, option="--key-passphrase-file")
    cert = store.issue_clinician(therapist_id, therapist.name, practice.name, ca, key, days=days)
    click.echo(f"issued certificate {cert.serial_number:x} for {therapist.name} ({therapist_id}), "
               f"valid until {cert.not_valid_after_utc:%Y-%m-%d}")


@pki.command("revoke")
@practice_option
@click.option("--therapist", "therapist_id", required=True, help="Revoke this therapist's current certificate.")
@clinician_passphrase_option
@root_key_option
def pki_revoke(practice_dir, therapist_id, passphrase_file, root_key) -> None:
    """Revoke a therapist's certificate: the clinician CA's CRL (in crl.pem, beside root.pem) lists it from now on.

    A certificate the root issued, before the practice had a clinician CA, is
    revoked by the root: then the passphrase is the root's ($AGREEMENTS_PASSPHRASE).
    """
    from agreements_kit.signing.pki import PKI, load_cert

    practice = _practice(practice_dir)
    store = PKI(practice.root / "pki")
    cert = load_cert(store.therapist_cert(therapist_id), f"therapist '{therapist_id}'")
    if store.issuer_of(cert) == store.root():
        click.echo(f"note: {therapist_id}'s certificate was issued by the root (before the clinician CA): the root "
                   "revokes it", err=True)
        passphrase = _passphrase(passphrase_file, PASSPHRASE_ENV, "Root CA passphrase")
    else:
        passphrase = _passphrase(passphrase_file, CLINICIAN_PASSPHRASE_ENV, "Clinician CA passphrase")
    store.revoke(cert, passphrase, root_key_file=root_key)
    click.echo(f"revoked certificate {cert.serial_number:x} of {therapist_id}; published in {store.crl}")


@pki.command("list")
@practice_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def pki_list(practice_dir, as_json) -> None:
    """List the practice's certificates, their expiry and status."""
    import json

    from agreements_kit.signing.pki import PKI

    rows = PKI(_practice(practice_dir).root / "pki").inventory()
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for r in rows:
        click.echo(f"{r['role']:<12} {r['subject']:<40} serial {r['serial'][:16]:<16} "
                   f"expires {r['not_after'][:10]}  {r['status']}")


@pki.command("add-clinician-ca")
@practice_option
@click.option("--passphrase-file", type=click.Path(dir_okay=False, path_type=Path),
              help=f"The root CA's passphrase, from this file (else ${PASSPHRASE_ENV}, else a prompt).")
@_file_option("--clinician-passphrase-file", "The new clinician CA's own passphrase, from this file (else "
              f"${CLINICIAN_PASSPHRASE_ENV}, else a prompt).")
@root_key_option
def pki_add_clinician_ca(practice_dir, passphrase_file, clinician_passphrase_file, root_key) -> None:
    """Give a practice made before keys were separated its clinician CA (the root issues it).

    From then on 'pki issue' and 'pki revoke' need only the clinician CA's passphrase;
    therapists' certificates the root issued earlier stay valid until revoked or expired.
    """
    from agreements_kit.signing.pki import PKI

    store = PKI(_practice(practice_dir).root / "pki")
    root = _passphrase(passphrase_file, PASSPHRASE_ENV, "Root CA passphrase")
    ca = _passphrase(clinician_passphrase_file, CLINICIAN_PASSPHRASE_ENV, "New clinician CA passphrase", confirm=True,
                     option="--clinician-passphrase-file")
    cert = store.add_clinician_ca(root, ca, root_key_file=root_key)
    click.echo(f"created the clinician CA {cert.serial_number:x} ({store.clinician_cert}); entered in the register")
    click.echo("issue therapists' certificates with 'agreements pki issue' (with the clinician CA's passphrase, "
               f"${CLINICIAN_PASSPHRASE_ENV})")


@pki.command("rotate")
@practice_option
@click.option("--intake", "which", flag_value="intake", help="Replace the intake CA.")
@click.option("--clinician-ca", "which", flag_value="clinician-ca", help="Replace the clinician CA.")
@click.option("--passphrase-file", type=click.Path(dir_okay=False, path_type=Path),
              help=f"The root CA's passphrase, from this file (else ${PASSPHRASE_ENV}, else a prompt).")
@_file_option("--new-passphrase-file", "The new CA key's passphrase, from this file (else "
              f"${INTAKE_PASSPHRASE_ENV} or ${CLINICIAN_PASSPHRASE_ENV}, else a prompt).")
@root_key_option
def pki_rotate(practice_dir, which, passphrase_file, new_passphrase_file, root_key) -> None:
    """Replace the intake CA or the clinician CA with a new key and certificate (the root issues it).

    The old CA certificate is revoked in the root's CRL (superseded) from now on, so what its key
    signed before stays valid and nothing it signs later does; its key is deleted. Both are
    entered in the ledger. After '--clinician-ca', issue every therapist a new certificate.
    """
    from agreements_kit.signing.pki import CA_KINDS, PKI

    if which is None:
        raise AgreementsError("say which CA to replace: --intake or --clinician-ca")
    kind = CA_KINDS[which]
    store = PKI(_practice(practice_dir).root / "pki")
    root = _passphrase(passphrase_file, PASSPHRASE_ENV, "Root CA passphrase")
    new = _passphrase(new_passphrase_file, kind.env, f"New {kind.label} passphrase", confirm=True,
                      option="--new-passphrase-file")
    old, cert = store.rotate(kind, root, new, root_key_file=root_key)
    click.echo(f"replaced the {kind.label} {old.serial_number:x} by {cert.serial_number:x}: the old one is revoked "
               f"(superseded) in the root's CRL, its key deleted; both entered in the ledger")
    if kind.role == "clinician-ca":
        click.echo("therapists' certificates from the old clinician CA no longer sign: issue each a new one with "
                   "'agreements pki issue --therapist ID'")


@pki.command("export-root-key")
@practice_option
@click.option("--to", "destination", required=True, type=click.Path(file_okay=False, exists=True, path_type=Path),
              help="A folder on removable media for root.key.pem.")
@click.option("--passphrase-file", type=click.Path(dir_okay=False, path_type=Path),
              help=f"The root CA's passphrase, from this file (else ${PASSPHRASE_ENV}, else a prompt).")
def pki_export_root_key(practice_dir, destination, passphrase_file) -> None:
    """Move the root CA's key out of pki/ to DIR (removable media), checked before it is removed.

    Daily work never needs it; to issue or revoke a CA later (pki rotate, pki
    add-clinician-ca) give it back with --root-key FILE.
    """
    from agreements_kit.signing.pki import PKI

    store = PKI(_practice(practice_dir).root / "pki")
    target = store.export_root_key(destination, _passphrase(passphrase_file, PASSPHRASE_ENV, "Root CA passphrase"))
    click.echo(f"exported the root key to {target} (checked: it decrypts with the root passphrase and matches "
               f"{store.root_cert}); removed it from {store.root_dir}")
    click.echo("keep the medium offline and safe: it is needed only to issue or revoke a CA (--root-key FILE)")


def _ask_client(practice, folder, role: str, name, initials, consent, agree, identity, checked_by):
    """Walk a client through signing at the terminal, asking only what options did not give."""
    from agreements_kit.formats.record import INTENT, load_disclosure
    from agreements_kit.verification.reproduce import clauses_as_signed

    interactive = _tty(sys.stdin)
    if not consent and interactive:
        click.echo(load_disclosure().text)
        consent = click.confirm("Do you agree to use electronic records and signatures?", default=False)
    needed = [c["id"] for c in folder.manifest["clauses"] if c.get("initials")]
    given: dict[str, str] = {}
    if initials:
        given = dict.fromkeys(needed, initials)
    elif interactive and consent:
        from agreements_kit.authoring.documents import practice_for

        # The text of the PDF (from the library its manifest names), not of today's library.
        for clause in clauses_as_signed(folder, practice_for(practice, folder.manifest)):
            if clause["initials"]:
                click.echo(f"\n{clause['number']}. {clause['title']}\n{clause['summary']}")
                given[clause["id"]] = click.prompt("Your initials for this part", default="", show_default=False)
    if name is None and interactive and consent:
        name = click.prompt("Type your full name" if role == "client" else "Type your full name (guardian)")
    if not agree and interactive and consent:
        click.echo(f"\n{INTENT}")
        agree = click.confirm("Do you adopt this statement and sign?", default=False)
    if identity is None and interactive and consent:
        identity = click.prompt("Staff: how was the signer's identity checked (e.g. photo ID)")
    if checked_by is None and interactive and consent:
        checked_by = click.prompt("Staff: your name")
    return name or "", given, consent, agree, identity or "", checked_by or ""


@main.command()
@click.argument("agreement")
@practice_option
@click.option("--as", "role", type=click.Choice(["client", "guardian", "therapist"]), required=True,
              help="Who signs.")
@click.option("--name", help="Client or guardian: the typed full name (adopted as the signature).")
@click.option("--initials", help="Client or guardian: initials for every clause that needs them.")
@click.option("--consent", is_flag=True, help="The signer accepted the ESIGN disclosure and electronic records.")
@click.option("--agree", is_flag=True, help="The signer adopted the intent statement.")
@click.option("--identity", help="How the signer's identity was checked (e.g. 'photo ID').")
@click.option("--checked-by", help="Who checked the signer's identity.")
@click.option("--drawn-signature", type=click.Path(dir_okay=False, path_type=Path),
              help="PNG of a drawn signature (optional).")
@click.option("--therapist", "therapist_id", help="Therapist: sign as this therapist (default: the agreement's).")
@_file_option("--passphrase-file", "The passphrase of the key this signature needs, from this file: the intake CA's "
              f"for a client or guardian (else ${INTAKE_PASSPHRASE_ENV}), the therapist's own (else "
              f"${PASSPHRASE_ENV}); else a prompt.")
@click.option("--log-passphrase-file", type=click.Path(dir_okay=False, path_type=Path),
              help="Unlock the transparency log's key (else $AGREEMENTS_LOG_PASSPHRASE) to sign a checkpoint that "
                   "includes this signature.")
def sign(agreement, practice_dir, role, name, initials, consent, agree, identity, checked_by, drawn_signature,
         therapist_id, passphrase_file, log_passphrase_file) -> None:
    """Sign AGREEMENT (an id or a folder) as the client, a guardian, or the therapist.

    A client signs with a one-time certificate from the intake CA (its own
    passphrase unlocks it: --passphrase-file or $AGREEMENTS_INTAKE_PASSPHRASE); the
    therapist countersigns afterwards with their own key (--passphrase-file or
    $AGREEMENTS_PASSPHRASE). Without a terminal every answer must come from the options.
    """
    from agreements_kit.signing.sign import (
        ClientSigning,
        check_client_request,
        find_agreement,
        sign_client,
        sign_therapist,
    )

    practice = _practice(practice_dir)
    log_key = _log_key(practice, log_passphrase_file)
    if role == "therapist":
        result = sign_therapist(practice, agreement,
                                _passphrase(passphrase_file, PASSPHRASE_ENV, "Therapist key passphrase"),
                                therapist_id, log_key=log_key)
    else:
        folder = find_agreement(practice, agreement)
        png = None
        if drawn_signature is not None:
            from agreements_kit.intake.drawing import clean_png

            try:
                png = clean_png(drawn_signature.read_bytes())  # checked and redrawn, as the intake pages do
            except OSError as exc:
                raise AgreementsError(f"cannot read {drawn_signature}: {exc.strerror}") from None
        typed, given, consent, agree, identity, checked_by = _ask_client(
            practice, folder, role, name, initials, consent, agree, identity, checked_by)
        request = ClientSigning(name=typed, consent=consent, initials=given, intent=agree, role=role,
                                identity_method=identity, identity_checked_by=checked_by, drawn_png=png)
        check_client_request(folder, request)  # before asking for the intake CA's passphrase
        result = sign_client(practice, agreement, request,
                             _passphrase(passphrase_file, INTAKE_PASSPHRASE_ENV, "Intake CA passphrase"),
                             log_key=log_key)
    signer = result.record["signer"]
    click.echo(f"signed {result.folder.id} as {signer['role']} ({signer['name']}) at {result.record['signed_at']}")
    _say_time(result)
    click.echo(f"record:    {result.record_path}")
    click.echo(f"signature: {result.signature_path}")
    if result.completion:
        click.echo(f"complete:  {result.completion}")
    if role == "therapist":
        _follow_up(practice, result.folder.id)


def _follow_up(practice, agreement_id: str) -> None:
    """The completed copy goes to the client the way they chose at intake (intake/delivery.py). Any failure
    is a warning: the countersignature is committed, and a mail that could not go stays queued."""
    from agreements_kit.cli.handoff import say_outcome
    from agreements_kit.intake.delivery import QUEUED, follow_up

    try:
        outcome = follow_up(practice, agreement_id)
    except AgreementsError as exc:
        click.echo(f"warning: the completed copy was not handed over: {exc.message}; {QUEUED}", err=True)
        return
    if outcome is not None:
        say_outcome(outcome)


@main.command()
@click.argument("agreement")
@practice_option
@click.option("--reason", required=True, help="Why the agreement is voided (kept in the signed record).")
@click.option("--therapist", "therapist_id", help="Therapist who voids it (default: the agreement's).")
@passphrase_option
@click.option("--log-passphrase-file", type=click.Path(dir_okay=False, path_type=Path),
              help="Unlock the transparency log's key (else $AGREEMENTS_LOG_PASSPHRASE) to sign a checkpoint.")
def void(agreement, practice_dir, reason, therapist_id, passphrase_file, log_passphrase_file) -> None:
    """Close AGREEMENT with a signed void record; it can no longer be signed."""
    from agreements_kit.signing.sign import find_agreement
    from agreements_kit.signing.sign import void as void_agreement

    practice = _practice(practice_dir)
    find_agreement(practice, agreement)  # an unknown agreement is said before any passphrase is asked
    result = void_agreement(practice, agreement, reason,
                            _passphrase(passphrase_file, PASSPHRASE_ENV, "Therapist key passphrase"), therapist_id,
                            log_key=_log_key(practice, log_passphrase_file))
    click.echo(f"voided {result.folder.id}: {result.record_path}")
    _say_time(result)


LOG_PASSPHRASE_ENV = "AGREEMENTS_LOG_PASSPHRASE"


def _log_key(practice, passphrase_file: Path | None):
    """The log key, when the practice has one and its own passphrase is given (file or environment)."""
    import os

    from agreements_kit.store import tlog

    pki_dir = practice.root / "pki"
    if not (pki_dir / tlog.KEY_FILE).exists():
        return None
    if passphrase_file is None and not os.environ.get(LOG_PASSPHRASE_ENV):
        return None
    return tlog.load_log_key(pki_dir, _passphrase(passphrase_file, LOG_PASSPHRASE_ENV, "Log key passphrase"))


def _read_small(path: Path, what: str, limit: int = 64 * 1024) -> bytes:
    try:
        with open(path, "rb") as fh:
            data = fh.read(limit + 1)
    except OSError as exc:
        raise AgreementsError(f"cannot read the {what} {path}: {exc.strerror}") from None
    if len(data) > limit:
        raise AgreementsError(f"the {what} {path} is larger than {limit // 1024} KiB")
    return data


def _say_time(result) -> None:
    if result.checkpoint is not None:
        lines = result.checkpoint.decode("utf-8").splitlines()
        click.echo(f"checkpoint: the log's tree of {lines[1]} entries, root {lines[2]}, includes it")
    if result.untimestamped:
        click.echo(f"warning: no time-stamp token: {result.untimestamped}; the signing time is the signer's claim "
                   "only", err=True)
    else:
        click.echo(f"time-stamp: {result.signature_path.name} carries a TSA's time-stamp token")


def _cwd_practice(practice_dir: Path | None) -> Path | None:
    """The current folder when it is a practice: where to look a PDF's agreement up (never whom to trust)."""
    root = practice_dir or Path.cwd()
    return root if (root / "practice.yaml").is_file() else None


def _trust(trust_path: Path | None, trust_sha256: str | None, crl: Path | None, archive: Path | None,
           practice_dir: Path | None, tsa_trust: Path | None = None, log_key: str | None = None):
    """The trust roots, decided by the library's rules (verification.trust), never by files in the archive."""
    from agreements_kit.verification.target import explicit_practice
    from agreements_kit.verification.trust import resolve_trust

    return resolve_trust(trust_file=trust_path, trust_sha256=trust_sha256, crl=crl,
                         practice=explicit_practice(practice_dir), archive=archive, tsa_trust=tsa_trust,
                         log_key=log_key)


trust_options = [
    click.option("--trust", "trust_path", type=click.Path(dir_okay=False, path_type=Path),
                 help="The practice root certificate to trust (default: $AGREEMENTS_TRUST, or the pki/root.pem of "
                      "the practice named with --practice or $AGREEMENTS_PRACTICE)."),
    click.option("--trust-sha256", "trust_sha256", metavar="HEX",
                 help="Trust the root certificate with this SHA-256 fingerprint (or $AGREEMENTS_TRUST_SHA256), "
                      "wherever its file is found."),
    click.option("--crl", type=click.Path(dir_okay=False, path_type=Path),
                 help="CRL file (default: crl.pem beside the trust root)."),
    click.option("--tsa-trust", "tsa_trust", type=click.Path(dir_okay=False, path_type=Path),
                 help="PEM file of the TSA root certificates to trust for time-stamp tokens (default: "
                      "$AGREEMENTS_TSA_TRUST, or tsa-roots.pem beside the trust root)."),
    click.option("--require-timestamps", is_flag=True,
                 help="Fail every signature without a verified time-stamp token (the signer's claim only)."),
]


def _with(options):
    def wrap(fn):
        for option in reversed(options):
            fn = option(fn)
        return fn
    return wrap


class PathOrStore(click.ParamType):
    """An S3 URL (kept as text), or an existing local path checked as ``click.Path(**path_options)``."""

    def __init__(self, name: str, **path_options: Any):
        self.name = name
        self.path = click.Path(exists=True, path_type=Path, **path_options)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        text = str(value)
        return text if text.startswith("s3://") else self.path.convert(value, param, ctx)


@main.command()
@click.argument("path", type=PathOrStore("PATH|s3://BUCKET/PREFIX/agreements/ID"))
@practice_option
@click.option("--archive", type=click.Path(file_okay=False, path_type=Path),
              help="Archive to look the agreement up in (for a PDF; default: the practice's signed/).")
@_with(trust_options)
@click.option("--cache", "cache", type=click.Path(file_okay=False, path_type=Path),
              help="For an agreement in S3: where the mirror is kept (default: ~/.cache/agreements-kit/store/...).")
@click.option("--ca-bundle", "ca_bundle", type=click.Path(dir_okay=False, exists=True),
              help="For an agreement in S3: the CA of the store's TLS certificate (default: $AWS_CA_BUNDLE).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable verdict.")
@click.option("-v", "--verbose", is_flag=True, help="List every check, not only failures.")
@click.option("--no-ledger", is_flag=True, help="Verify a folder given without its archive's ledger (noted).")
def verify(path, practice_dir, archive, trust_path, trust_sha256, crl, tsa_trust, require_timestamps, cache, ca_bundle,
           as_json, verbose, no_ledger) -> None:
    """Verify an agreement folder, or any PDF (a signed copy too), against the archive.

    A signed copy (NN-ROLE.copy.pdf, as the client was given it) is checked as well:
    its prefix must be the archived PDF, its signers the records', nothing changed after.
    Exit code 0: valid; 1: not valid (invalid, incomplete or voided, or no trusted
    root); 2: could not check (bad arguments, unreadable files).
    """
    import json

    from agreements_kit.errors import CannotCheck

    if isinstance(path, str):  # s3://BUCKET/PREFIX/agreements/ID
        from agreements_kit.cli.store import default_cache, open_store
        from agreements_kit.verification.storeaudit import verify_in_store

        url, sep, agreement_id = path.rstrip("/").rpartition("/agreements/")
        if not sep or "/" in agreement_id or no_ledger:
            raise CannotCheck(f"{path}: give one agreement in a bucket as s3://BUCKET/PREFIX/agreements/ID "
                              "(its ledger is the bucket's)")
        trust = _trust(trust_path, trust_sha256, crl, None, practice_dir, tsa_trust)
        target_store = open_store(url, ca_bundle)
        verdict = verify_in_store(target_store, cache or default_cache(str(target_store.url)), agreement_id, trust,
                                  require_timestamps=require_timestamps)
    else:
        verdict = _verify_path(path, practice_dir, archive, trust_path, trust_sha256, crl, tsa_trust,
                               require_timestamps, no_ledger)
    if as_json:
        click.echo(json.dumps(verdict.as_dict(), indent=2))
    else:
        click.echo(verdict.headline())
        for signer in verdict.signers:
            click.echo(f"  time of {signer['record']}: {signer.get('time_source')}")
        for check in (verdict.checks if verbose else verdict.failures):
            mark = "ok  " if check.ok else "FAIL"
            subject = f" [{check.subject}]" if check.subject else ""
            click.echo(f"  {mark} {check.step:>2} {check.name}{subject}: {check.detail} [{check.code}]")
        for note in verdict.notes:
            click.echo(f"  note: {note}")
    sys.exit(0 if verdict.valid else 1)


def _verify_path(path: Path, practice_dir, archive, trust_path, trust_sha256, crl, tsa_trust, require_timestamps,
                 no_ledger):
    """A local folder or PDF, with the archive beside it (or the one named)."""
    from agreements_kit.errors import CannotCheck
    from agreements_kit.verification.copycheck import check_given_copy, given_copy
    from agreements_kit.verification.target import explicit_practice, resolve_target
    from agreements_kit.verification.verify import verify_folder

    target = resolve_target(path, archive, explicit_practice(practice_dir) or _cwd_practice(practice_dir))
    trust = _trust(trust_path, trust_sha256, crl, target.archive, practice_dir, tsa_trust)
    if no_ledger and target.in_archive:
        raise CannotCheck("--no-ledger is for a folder outside its archive; this one has its archive beside it")
    copy = given_copy(target.pdf_path, target.folder) if target.pdf_path is not None else None
    verdict = verify_folder(target.folder, trust, pdf_path=None if copy is not None else target.pdf_path,
                            ledger=None if no_ledger else target.ledger, require_timestamps=require_timestamps)
    if copy is not None and target.pdf_path is not None:
        check_given_copy(verdict, target.folder, copy, target.pdf_path.name, trust)
    return verdict


@main.command()
@click.argument("archive", required=False, type=PathOrStore("ARCHIVE|s3://BUCKET/PREFIX", file_okay=False))
@practice_option
@_with(trust_options)
@click.option("--cache", "cache", type=click.Path(file_okay=False, path_type=Path),
              help="For an archive in S3: where its mirror is kept (default: ~/.cache/agreements-kit/store/...). "
                   "Never trusted: each file is checked against the bucket's listing.")
@click.option("--retention-years", "retention_years", type=click.IntRange(1, 100),
              help="For an archive in S3: the retention every object must be locked for (default: the store's).")
@click.option("--ca-bundle", "ca_bundle", type=click.Path(dir_okay=False, exists=True),
              help="For an archive in S3: the CA of the store's TLS certificate (default: $AWS_CA_BUNDLE).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output (summary and every verdict).")
@click.option("--report", type=click.Path(dir_okay=False, path_type=Path), help="Write FILE.html or FILE.pdf.")
@click.option("--workers", type=click.IntRange(1, 64), help="Worker processes (default: all cores).")
@click.option("--log-key", "log_key", metavar="FILE|KEY",
              help="The transparency log's verifier key (default: $AGREEMENTS_LOG_KEY, or log.pub beside the "
                   "trust root).")
@click.option("--checkpoint", "checkpoint_files", multiple=True, type=click.Path(dir_okay=False, path_type=Path),
              help="A signed checkpoint kept outside the archive (a receipt's, a witness's): the ledger must still "
                   "hold its tree. Repeatable.")
@click.option("--witness-key", "witness_key", metavar="FILE|KEY",
              help="With --checkpoint: the witness's verifier key; its cosignature must be on each checkpoint.")
def audit(archive, practice_dir, trust_path, trust_sha256, crl, tsa_trust, require_timestamps, cache, retention_years,
          ca_bundle, as_json, report, workers, log_key, checkpoint_files, witness_key) -> None:
    """Check every agreement of an archive and its whole ledger.

    Exit code 0: no problems (incomplete and voided agreements are listed, not
    problems); 1: problems found; 2: could not check.
    """
    import json

    from agreements_kit.authoring.practice import locate
    from agreements_kit.verification.audit import audit as run_audit
    from agreements_kit.verification.audit import count_folders, results

    store_url = archive if isinstance(archive, str) else None
    archive = None if store_url else (archive or locate(practice_dir) / "signed")
    trust = _trust(trust_path, trust_sha256, crl, archive, practice_dir, tsa_trust, log_key)
    checkpoints = [(str(p), _read_small(p, "checkpoint")) for p in checkpoint_files]
    from agreements_kit.verification.trust import verifier_key_text

    witness_text = verifier_key_text(witness_key, "witness key")[0] if witness_key else None
    if report is not None and report.exists():
        raise AgreementsError(f"{report} already exists; choose a new report file")
    if report is not None and report.suffix.lower() not in (".html", ".htm", ".pdf"):
        raise AgreementsError(f"report {report}: the name must end in .html or .pdf")
    if store_url is not None:
        from agreements_kit.cli.store import default_cache, open_store
        from agreements_kit.verification.storeaudit import audit_store

        target = open_store(store_url, ca_bundle)
        if _tty(sys.stderr) and not as_json:
            click.echo(f"reading {target.url} into its mirror", err=True)
        summary, db, mirrored = audit_store(target, cache or default_cache(str(target.url)), trust,
                                            years=retention_years, workers=workers,
                                            require_timestamps=require_timestamps, checkpoints=checkpoints,
                                            witness_key=witness_text)
        import shutil

        shutil.rmtree(mirrored.archive, ignore_errors=True)  # the view; the cache stays
    elif _tty(sys.stderr) and not as_json:
        with click.progressbar(length=count_folders(archive), label="auditing", file=sys.stderr) as bar:
            summary, db = run_audit(archive, trust, workers=workers, progress=bar.update,
                                    require_timestamps=require_timestamps, checkpoints=checkpoints,
                                    witness_key=witness_text)
    else:
        summary, db = run_audit(archive, trust, workers=workers, require_timestamps=require_timestamps,
                                checkpoints=checkpoints, witness_key=witness_text)
    try:
        if report is not None:
            from agreements_kit.verification.report import write_report

            write_report(report, summary, db, trust.root_path)
        if as_json:
            click.echo(json.dumps({"summary": summary.as_dict(), "agreements": list(results(db))}, indent=2))
        else:
            c = summary.counts
            click.echo(f"{'ok' if summary.ok else 'PROBLEMS'}: {summary.agreements} agreements: {c['valid']} valid, "
                       f"{c['invalid']} invalid, {c['incomplete']} incomplete, {c['voided']} voided; "
                       f"ledger {summary.ledger_entries} entries, {len(summary.ledger_problems)} problem(s)")
            click.echo(f"  {trust.describe()}")
            for problem, code in zip(summary.ledger_problems, summary.ledger_codes, strict=False):
                click.echo(f"  ledger: {problem} [{code}]")
            for note in summary.notes:
                click.echo(f"  note: {note}")
            for code, problem in summary.store_problems:
                click.echo(f"  store: {problem} [{code}]")
            for agreement_id in summary.missing_from_archive:
                click.echo(f"  missing: {agreement_id} is in the ledger but not in the archive")
            for row in results(db):
                if row["status"] == "valid":
                    break
                click.echo(f"  {row['headline']}")
                for f in row["failures"]:
                    subject = f" [{f['subject']}]" if f["subject"] else ""
                    click.echo(f"    {f['step']:>2} {f['name']}{subject}: {f['detail']} [{f['code']}]")
            if report is not None:
                click.echo(f"report: {report}")
    finally:
        import shutil

        shutil.rmtree(db.parent, ignore_errors=True)
    sys.exit(0 if summary.ok else 1)


@main.command()
@click.argument("agreement")
@practice_option
@click.option("--library", "library_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Clause library to render with (default: the one the manifest names, the practice's or a "
                   "document library).")
@click.option("--templates", "templates_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Template folder (default: the practice's).")
def reproduce(agreement, practice_dir, library_dir, templates_dir) -> None:
    """Re-render AGREEMENT from its manifest and compare bytes with the signed PDF."""
    from agreements_kit.signing.sign import find_agreement
    from agreements_kit.verification.reproduce import reproduce as run

    practice = _practice(practice_dir)
    folder = find_agreement(practice, agreement)
    from agreements_kit.authoring.documents import library_dir_for

    result = run(folder.path, library_dir or library_dir_for(practice, folder.manifest),
                 templates_dir or practice.template_dir())
    if result.identical:
        click.echo(f"identical: re-rendering {folder.id} gives the signed PDF byte for byte "
                   f"(sha256 {result.signed_sha256})")
        sys.exit(0)
    click.echo(f"different: re-rendering {folder.id} gives sha256 {result.rendered_sha256[:16]}..., "
               f"the signed PDF is {result.signed_sha256[:16]}...")
    for d in result.differences:
        click.echo(f"  {d}")
    sys.exit(1)


@main.command()
@click.argument("agreements", nargs=-1, required=True, metavar="AGREEMENT...")
@practice_option
@click.option("--language", help="Write it in this language (en, es...; default: the agreement's, from its library).")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The PDF to write (a new file: never overwritten).")
def receipt(agreements, practice_dir, language, out: Path) -> None:
    """Write the client's one-page receipt of AGREEMENT (several: one receipt for a packet).

    With the log's latest signed checkpoint when it includes the client's signature."""
    from agreements_kit.signing.receipt import client_checkpoint, receipt_pdf
    from agreements_kit.signing.sign import find_agreement
    from agreements_kit.store.files import write_new

    if os.path.lexists(out):
        raise AgreementsError(f"{out} already exists; choose a new file for the receipt", code="conflict.exists")
    practice = _practice(practice_dir)
    folders = [find_agreement(practice, ref) for ref in agreements]
    checkpoint = client_checkpoint(folders)
    data = receipt_pdf(folders, checkpoint=checkpoint, language=language)
    try:
        write_new(out, data)
    except FileExistsError:
        raise AgreementsError(f"{out} already exists; choose a new file for the receipt",
                              code="conflict.exists") from None
    except OSError as exc:
        raise AgreementsError(f"cannot write {out}: {exc.strerror}") from None
    click.echo(f"receipt: {out}")
    if checkpoint is None:
        click.echo("note: no signed checkpoint of the log includes the client's signature yet, so the receipt "
                   "has none ('agreements log checkpoint' signs one)", err=True)


@main.group()
def intake() -> None:
    """In-person signing on a clinic device: a local web app and one-time links."""


@intake.command("open")
@click.argument("agreements", nargs=-1, required=True, metavar="AGREEMENT...")
@practice_option
@click.option("--role", type=click.Choice(["client", "guardian"]), default="client", show_default=True)
@click.option("--identity", required=True, help="How staff checked the signer's identity (e.g. 'photo ID').")
@click.option("--checked-by", required=True, help="Who checked it.")
@click.option("--staff", "staff_name", required=True,
              help="Your staff account (as at /staff; 'agreements staff add NAME'): the signing record names it.")
@click.option("--staff-password-file", type=click.Path(dir_okay=False, path_type=Path),
              help="Read your staff password from this file's first line (else a hidden prompt).")
@click.option("--minutes", type=click.IntRange(1, 240), default=15, show_default=True, help="How long the link works.")
@click.option("--url", "base_url", default="http://127.0.0.1:8765", show_default=True,
              help="The intake server's address as the tablet reaches it.")
@click.option("--qr", "qr_file", type=click.Path(dir_okay=False, path_type=Path), help="Also write the QR code as SVG.")
@click.option("--language", help="The client's pages and ESIGN disclosure in this language (e.g. es; default: the "
              "first agreement's own).")
def intake_open(agreements, practice_dir, role, identity, checked_by, staff_name, staff_password_file, minutes,
                base_url, qr_file, language) -> None:
    """Open a one-time intake link for AGREEMENT (prints the link and a QR code).

    Several agreements make a packet: one client's documents, signed one after the
    other in one visit (the consent to electronic records first). You sign in with
    your own staff account, as at /staff, and the signing record and the ledger name it."""
    from agreements_kit.cli.staff import read_password
    from agreements_kit.intake.app import intake_link
    from agreements_kit.intake.packet import check_packet
    from agreements_kit.intake.staff import StaffStore
    from agreements_kit.intake.tickets import TicketStore
    from agreements_kit.intake.words import check_language

    practice = _practice(practice_dir)
    language = check_language(language) if language else None  # before the password prompt
    password = read_password(staff_password_file, option="--staff-password-file", prompt="Staff password",
                             confirm=False)
    account = StaffStore(practice.root).sign_in(staff_name, password)  # who runs it, before anything else
    folders = check_packet(practice, list(agreements), role)  # one client's, each awaiting the client
    store = TicketStore(practice.root / "intake")
    store.sweep()  # expired links go, with the hashes of used ones older than a day
    token, ticket = store.open([f.id for f in folders], role, identity, checked_by, minutes, opened_by=account.name,
                               language=language)
    link = intake_link(base_url, token)
    import segno

    qr = segno.make(link, error="m")
    if qr_file is not None:
        import io

        from agreements_kit.store.files import write_new

        buffer = io.BytesIO()
        qr.save(buffer, kind="svg", scale=6)
        write_new(qr_file, buffer.getvalue())
    click.echo(f"one-time link for {', '.join(ticket.agreement_ids)} ({role}), valid until {ticket.expires:%H:%M} UTC:")
    click.echo(link)
    if _tty(sys.stdout):
        qr.terminal(compact=True)


def _own_tls_context(cert: Path, key: Path):
    """An HTTPS context from the practice's own certificate chain and key (files, checked first)."""
    import ssl
    import stat

    for path, what in ((cert, "--tls-cert"), (key, "--tls-key")):
        if not path.is_file():
            raise AgreementsError(f"{what} {path}: no such file")
    if stat.S_IMODE(key.stat().st_mode) & 0o077:
        raise AgreementsError(f"--tls-key {key}: others can read this private key: chmod 600 {key}")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    secret = os.environ.get("AGREEMENTS_TLS_KEY_PASSPHRASE", "")
    try:
        context.load_cert_chain(cert, key, password=lambda: secret.encode())
    except OSError as exc:
        if not isinstance(exc, ssl.SSLError):
            raise AgreementsError(f"cannot read {exc.filename or key}: {exc.strerror}") from None
        raise AgreementsError(f"--tls-cert {cert} and --tls-key {key} cannot be used together ({exc.reason or exc}): "
                              "a PEM chain and its own key, the key's passphrase in "
                              "$AGREEMENTS_TLS_KEY_PASSPHRASE if it is encrypted") from None
    return context


@intake.command("serve")
@practice_option
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(1, 65535), default=8765, show_default=True)
@click.option("--tls", is_flag=True, help="Serve HTTPS with a certificate from the practice's intake CA.")
@click.option("--tls-cert", type=click.Path(dir_okay=False, path_type=Path),
              help="Serve HTTPS with this certificate chain (PEM) instead: one clients' own phones trust, issued "
                   "for the server's host name by a public CA. Needs --tls-key.")
@click.option("--tls-key", type=click.Path(dir_okay=False, path_type=Path),
              help="The private key (PEM) of --tls-cert: readable by its owner only; if encrypted, its passphrase "
                   "from $AGREEMENTS_TLS_KEY_PASSPHRASE.")
@click.option("--idle-minutes", type=click.IntRange(1, 120), default=15, show_default=True,
              help="End a client's or staff session left this long without activity.")
@intake_passphrase_option
def intake_serve(practice_dir, host, port, tls, tls_cert, tls_key, idle_minutes, passphrase_file) -> None:
    """Serve the intake pages (client signing, and /staff to open intakes).

    The intake CA's passphrase unlocks its key for client signatures; no other key
    is needed, and no one signs in with it: staff sign in at /staff with their own
    accounts ('agreements staff add NAME')."""
    import ipaddress
    import logging
    import ssl
    import tempfile

    from cryptography.hazmat.primitives import serialization
    from werkzeug.serving import make_server

    from agreements_kit.intake.app import create_app, quiet_request_handler
    from agreements_kit.signing.pki import PKI, load_key

    practice = _practice(practice_dir)
    passphrase = _passphrase(passphrase_file, INTAKE_PASSPHRASE_ENV, "Intake CA passphrase")
    pki_dir = PKI(practice.root / "pki")
    load_key(pki_dir.intake_key, passphrase, "intake CA")  # fail now, not at the first signature
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if (tls_cert is None) != (tls_key is None):
        raise AgreementsError("--tls-cert and --tls-key go together: the certificate chain and its private key")
    if tls_cert is not None and tls:
        raise AgreementsError("choose --tls (a certificate from the intake CA) or --tls-cert/--tls-key, not both")
    own_certificate = tls_cert is not None
    tls = tls or own_certificate
    if tls and not own_certificate and host in ("0.0.0.0", "::", ""):
        raise AgreementsError("--tls needs the address tablets use (--host 192.168.1.20, say), not a wildcard: "
                              "the certificate is issued for it")
    if not loopback and not tls:
        click.echo("warning: serving on the network without --tls: names and signatures cross the network "
                   "unencrypted", err=True)
    context = None
    if own_certificate:
        context = _own_tls_context(tls_cert, tls_key)
    elif tls:
        cert, key = pki_dir.server_certificate([host], passphrase)
        with tempfile.TemporaryDirectory() as tmp:
            cert_path, key_path = Path(tmp) / "cert.pem", Path(tmp) / "key.pem"
            cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM) +
                                  pki_dir.intake().public_bytes(serialization.Encoding.PEM))
            # ssl wants files; the key touches the disk only encrypted, with a password kept in memory.
            secret = os.urandom(32).hex().encode()
            key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                   serialization.BestAvailableEncryption(secret)))
            key_path.chmod(0o600)
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.minimum_version = ssl.TLSVersion.TLSv1_2
            context.load_cert_chain(cert_path, key_path, password=secret)
    scheme = "https" if tls else "http"
    # On a wildcard address the links must use the address the staff page was reached at.
    wildcard = host in ("0.0.0.0", "::", "")
    from agreements_kit.intake.tickets import TicketStore

    TicketStore(practice.root / "intake").sweep()
    from agreements_kit.intake.staff import StaffStore

    no_staff = not StaffStore(practice.root).accounts()  # read now: a damaged file stops the server here
    app = create_app(practice.root, passphrase, secure_cookies=tls, idle_minutes=idle_minutes,
                     base_url=None if wildcard else f"{scheme}://{host}:{port}",
                     log_key=_log_key(practice, None))  # with $AGREEMENTS_LOG_PASSPHRASE: anchor each signature
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = make_server(host, port, app, threaded=True, ssl_context=context,
                         request_handler=quiet_request_handler())
    click.echo(f"intake server on {scheme}://{host}:{port}/ (staff page: /staff); Ctrl-C to stop", err=True)
    if tls and not own_certificate:
        click.echo(f"tablets must trust {pki_dir.root_cert} (the practice root) to open it without warnings; "
                   "clients' own phones will not (the phone hand-off): serve with --tls-cert/--tls-key for that",
                   err=True)
    if no_staff:
        click.echo("warning: no staff accounts, so no one can sign in at /staff: add them with "
                   "'agreements staff add NAME'", err=True)
    import contextlib

    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()


@main.command()
@click.argument("directory", type=click.Path(path_type=Path))
def demo(directory: Path) -> None:
    """Create a fictional practice in DIRECTORY and render an agreement for a fictional client."""
    from agreements_kit.cli.demo import run_demo

    result = run_demo(directory)
    for line in result.lines:
        click.echo(line)
    if result.verdict is None or not result.verdict.valid:
        sys.exit(1)


def _register_groups() -> None:
    """Command groups that live in their own modules."""
    from agreements_kit.cli.handoff import handoff
    from agreements_kit.cli.log import log
    from agreements_kit.cli.staff import staff
    from agreements_kit.cli.store import store
    from agreements_kit.cli.tsa import tsa

    main.add_command(tsa)
    main.add_command(log)
    main.add_command(staff)
    main.add_command(store)
    main.add_command(handoff)


_register_groups()

if __name__ == "__main__":  # pragma: no cover - after the groups: python -m agreements_kit.cli.commands staff ...
    main()
