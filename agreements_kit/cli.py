"""The ``agreements`` command: parses arguments, calls the library, prints.

Every module is imported inside the command that needs it, so ``--help`` and
the commands that never render stay quick (WeasyPrint alone takes most of a
second to import). A user error is one line on stderr and exit code 2 (1 for a
lint that found problems); a traceback means a bug.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from . import __version__
from .errors import AgreementsError


def _fail(exc: AgreementsError) -> None:
    click.echo(f"error: {exc}", err=True)
    sys.exit(exc.exit_code)


class _Group(click.Group):
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

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except AgreementsError as exc:
            _fail(exc)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="agreements")
def main() -> None:
    """Generate, sign and audit DBT treatment agreements."""


practice_option = click.option(
    "--practice", "practice_dir", type=click.Path(file_okay=False, path_type=Path),
    help="Practice folder (default: $AGREEMENTS_PRACTICE, else the current folder).")


@main.command()
@click.argument("directory", type=click.Path(path_type=Path))
@click.option("--name", default="My DBT Practice", show_default=True, help="The practice's name.")
@click.option("--jurisdiction", default="US", show_default=True, help="US, US-MT or US-NY.")
@click.option("--phone", default="", help="Practice phone number.")
@click.option("--address", default="", help="Practice address.")
@click.option("--email", default="", help="Practice e-mail address.")
def init(directory: Path, name: str, jurisdiction: str, phone: str, address: str, email: str) -> None:
    """Create a practice folder: settings, drafts/ and the signed/ archive."""
    from .library import load_library
    from .practice import init_practice
    from .resources import clauses_dir

    known = load_library(clauses_dir()).jurisdictions
    if jurisdiction not in known:
        raise AgreementsError(f"unknown jurisdiction '{jurisdiction}' (choose from: {', '.join(known)})")
    root = init_practice(directory, name=name, jurisdiction=jurisdiction, phone=phone, address=address,
                         email=email)
    click.echo(f"created practice folder {root}")
    click.echo(f"edit {root / 'practice.yaml'} to list your therapists, then run 'agreements render'")


@main.command()
@practice_option
@click.option("--client", help="The client's full name.")
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
def render(practice_dir, client, therapist, spec_files, agreement_id, date, jurisdiction, clauses, sets, out,
           workers) -> None:
    """Render draft agreements (agreement.pdf + manifest.json), one folder each."""
    from .errors import SpecError
    from .practice import locate
    from .render import Renderer, check_out_parent, plan, render_many
    from .spec import load_spec_file, make_spec, parse_set

    given = [v for v in (client, therapist, agreement_id, date, jurisdiction) if v is not None] + list(clauses + sets)
    if spec_files and given:
        raise SpecError("give either --spec files or --client/--therapist options, not both")
    if not spec_files and (client is None or therapist is None):
        raise SpecError("give --client NAME and --therapist ID, or --spec FILE")
    renderer = Renderer.load(locate(practice_dir))
    if spec_files:
        specs = [s for f in spec_files for s in load_spec_file(f)]
    else:
        specs = [make_spec(client=client, therapist=therapist, id=agreement_id, date=date,
                           jurisdiction=jurisdiction, clauses=list(clauses) or None, variables=parse_set(sets),
                           text_values=True)]
    parent = check_out_parent(out) if out else renderer.practice.drafts
    jobs = plan(renderer, specs, parent)
    if len(jobs) > 1 and sys.stderr.isatty():
        with click.progressbar(length=len(jobs), label="rendering", file=sys.stderr) as bar:
            folders = render_many(renderer, jobs, workers, progress=lambda _: bar.update(1))
    else:
        folders = render_many(renderer, jobs, workers)
    for folder in folders:
        click.echo(folder)


def _library_dir(directory: Path | None, practice_dir: Path | None) -> Path:
    from .practice import SETTINGS, load_practice, locate
    from .resources import clauses_dir

    if directory is not None:
        return directory
    root = locate(practice_dir)
    if (root / SETTINGS).is_file():
        return load_practice(root).library_dir()
    return clauses_dir()


@main.command()
@click.argument("directory", required=False, type=click.Path(file_okay=False, path_type=Path))
@practice_option
@click.option("--max-grade", default=8.0, show_default=True, help="Highest reading grade allowed for summaries.")
def lint(directory: Path | None, practice_dir: Path | None, max_grade: float) -> None:
    """Check a clause library (default: the practice's, else the built-in one)."""
    from .errors import LintFailure
    from .lint import lint_library

    report = lint_library(_library_dir(directory, practice_dir), max_grade)
    for problem in report.problems:
        click.echo(str(problem))
    for item in report.grades:
        status = "ok" if item.grade <= max_grade else "TOO HARD"
        click.echo(f"{item.where}: reading grade {item.grade:.1f} ({status}) {item.label}")
    if not report.ok:
        raise LintFailure(f"{report.count} problem{'s' if report.count != 1 else ''} found")
    click.echo(f"ok: {len(report.grades)} summaries at grade {max_grade:g} or lower, no problems")


@main.group(invoke_without_command=True)
@click.option("--library", "directory", type=click.Path(file_okay=False, path_type=Path),
              help="Clause library folder (default: the practice's, else the built-in one).")
@practice_option
@click.pass_context
def clauses(ctx: click.Context, directory: Path | None, practice_dir: Path | None) -> None:
    """List the clause library; 'clauses show ID' prints one clause."""
    from .library import load_library

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
            variants = [j for (j, cid) in lib.variants if cid == c.id]
            if variants:
                flags += f" (variants: {', '.join(sorted(variants))})"
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
@click.pass_obj
def clauses_show(lib, clause_id: str, jurisdiction: str | None) -> None:
    """Print one clause: metadata, summary and body."""
    if clause_id not in lib.clauses:
        raise AgreementsError(f"unknown clause '{clause_id}' ('agreements clauses' lists them)")
    if jurisdiction is not None and jurisdiction not in lib.jurisdictions:
        raise AgreementsError(f"unknown jurisdiction '{jurisdiction}' (the library has: "
                              f"{', '.join(lib.jurisdictions)})")
    c = lib.clause(clause_id, jurisdiction)
    commitments = {x.id: x.text for x in lib.commitments}
    click.echo(f"{c.id} v{c.version}: {c.title}")
    click.echo(f"area: {c.area}    initials: {'yes' if c.initials else 'no'}    sha256: {c.sha256()}")
    if c.jurisdiction:
        click.echo(f"jurisdiction: {c.jurisdiction} (variant v{c.variant_version}): {c.note or ''}".rstrip())
    click.echo(f"source: {c.path}:{c.line}")
    click.echo("covers:")
    for cid in c.covers:
        click.echo(f"  {cid}: {commitments.get(cid, '?')}")
    for name, var in c.variables.items():
        default = f" [default: {var.default!r}]" if var.has_default else ""
        click.echo(f"variable {name} ({var.type}): {var.description}{default}")
    click.echo(f"\nsummary: {c.summary}\n")
    click.echo(c.body.rstrip())


@main.command()
@click.argument("directory", type=click.Path(path_type=Path))
def demo(directory: Path) -> None:
    """Create a fictional practice in DIRECTORY and render an agreement for a fictional client."""
    from .demo import run_demo

    result = run_demo(directory)
    for line in result.lines:
        click.echo(line)


if __name__ == "__main__":  # pragma: no cover
    main()
