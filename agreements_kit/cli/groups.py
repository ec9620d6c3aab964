"""The one click group behaviour every command group shares: a user error is one line and its exit code."""

from __future__ import annotations

import sys
from typing import Any

import click

from agreements_kit.errors import AgreementsError


def fail(exc: AgreementsError) -> None:
    click.echo(f"error: {exc}", err=True)
    sys.exit(exc.exit_code)


class OneLineGroup(click.Group):
    """Prints an AgreementsError as one ``error:`` line and exits with its code, also when run on its own."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except AgreementsError as exc:
            fail(exc)
