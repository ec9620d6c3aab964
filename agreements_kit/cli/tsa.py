"""``agreements tsa``: make and run a local RFC 3161 time-stamp authority (for demos and tests).

A practice in earnest points ``timestamping.tsa`` in practice.yaml at a public or
commercial TSA; this one runs on the same machine, with its own root that an
auditor is given as ``--tsa-trust``. The lead registers the group in
``cli/commands.py`` (``main.add_command(tsa)``); errors are one line either way.
"""

from __future__ import annotations

from pathlib import Path

import click

from agreements_kit.cli.groups import OneLineGroup


@click.group(cls=OneLineGroup)
def tsa() -> None:
    """A local time-stamp authority (RFC 3161, openssl ts -reply) for demos and tests."""


@tsa.command()
@click.argument("folder", type=click.Path(path_type=Path, file_okay=False))
@click.option("--name", default="agreements-kit local TSA", show_default=True, help="The TSA certificate's name.")
def init(folder: Path, name: str) -> None:
    """Make a new TSA in FOLDER (new or empty): its root, its certificate, its encrypted key."""
    from agreements_kit.localtsa import create

    made = create(folder, name)
    click.echo(f"TSA made in {made.path}")
    click.echo(f"auditors trust its root: {made.root}  (verify/audit --tsa-trust)")
    click.echo(f"run it with: agreements tsa serve {made.path}")


@tsa.command()
@click.argument("folder", type=click.Path(path_type=Path, file_okay=False))
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=0, type=click.IntRange(0, 65535), show_default=True,
              help="Port to listen on (0: any free port, printed on start).")
def serve(folder: Path, host: str, port: int) -> None:
    """Answer time-stamp queries for the TSA in FOLDER until stopped (prints 'listening on URL')."""
    from agreements_kit.localtsa.server import serve as run_server

    run_server(folder, host, port)
