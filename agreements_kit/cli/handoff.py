"""``agreements handoff``: the completed copies owed to clients, by the way each chose at intake.

``list`` is the front desk's list (the same as the staff page /staff/handoff): completed
copies to print or to show as a QR code at the next visit, mails still queued, and
choices waiting for a countersignature; ``send`` mails the queued completed copies (after
a mail server was down at countersigning); ``done`` records that the front desk handed a
completed copy over. Nothing printed here shows a client's email address.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from agreements_kit.cli.groups import OneLineGroup

practice_option = click.option(
    "--practice", "practice_dir", type=click.Path(file_okay=False, path_type=Path),
    help="Practice folder (default: $AGREEMENTS_PRACTICE, else the current folder).")


def _practice(practice_dir: Path | None):
    from agreements_kit.authoring.practice import load_practice, locate

    return load_practice(locate(practice_dir))


def say_outcome(outcome) -> None:
    """One line per agreement: on stdout when it went well, a warning on stderr when not."""
    if outcome.ok:
        click.echo(f"handoff: {outcome.agreement_id}: {outcome.text}")
    else:
        click.echo(f"warning: {outcome.text}", err=True)


@click.group(cls=OneLineGroup)
def handoff() -> None:
    """The client's copy after intake: what the front desk owes, and queued mail."""


@handoff.command("list")
@practice_option
def handoff_list(practice_dir: Path | None) -> None:
    """Completed copies to hand over, queued mails, and choices awaiting a countersignature."""
    from agreements_kit.errors import AgreementsError
    from agreements_kit.intake import delivery

    practice = _practice(practice_dir)
    found = delivery.choices(practice)
    if not found:
        click.echo("nothing to hand over")
        return
    for c in found:
        try:
            folder = delivery._folder(practice, c.agreement_id)
        except AgreementsError as exc:
            click.echo(f"{c.agreement_id}: {exc.message}")
            continue
        parts = []
        if folder.voided:
            click.echo(f"{c.agreement_id} ({folder.client_name}): voided: nothing will follow ('agreements handoff "
                       "send' erases this choice" + (", and the client's address)" if c.email is not None else ")"))
            continue
        if c.front_desk:
            ways = " or ".join(c.front_desk)
            if c.ready or folder.complete:
                name = delivery._newest_copy(folder)[0]
                parts.append(f"ready to hand over ({ways}): {folder.path / name}")
            else:
                parts.append(f"{ways}: waiting for the countersignature")
        if c.email is not None:
            if c.mail_error:
                parts.append(f"email queued: {c.mail_error} (agreements handoff send)")
            elif folder.complete:
                parts.append("email: countersigned, not mailed yet (agreements handoff send)")
            else:
                parts.append("email: after the countersignature")
        click.echo(f"{c.agreement_id} ({folder.client_name}): {'; '.join(parts)}")


@handoff.command("send")
@click.argument("agreement", required=False)
@practice_option
def handoff_send(agreement: str | None, practice_dir: Path | None) -> None:
    """Mail the completed copies still owed by email (all, or AGREEMENT's), put completed print and phone
    choices on the front desk's list, and erase the choices of voided agreements; exit 3 if a mail cannot be sent."""
    from agreements_kit.intake import delivery

    practice = _practice(practice_dir)
    outcomes = delivery.send_queued(practice, agreement)
    if not outcomes:
        click.echo("no completed copy is waiting to be mailed")  # nor to be listed, nor a voided choice
    for outcome in outcomes:
        say_outcome(outcome)
    if any(not o.ok for o in outcomes):
        sys.exit(3)


@handoff.command("done")
@click.argument("agreement")
@practice_option
def handoff_done(agreement: str, practice_dir: Path | None) -> None:
    """The front desk handed AGREEMENT's completed copy to the client (printed, or by a QR code)."""
    from agreements_kit.errors import HandoffError
    from agreements_kit.intake import delivery

    practice = _practice(practice_dir)
    if not delivery.handed_over(practice, agreement):
        raise HandoffError(f"agreement {agreement} has no copy waiting for the front desk ('agreements handoff "
                           "list' shows what does)", code="not-found.handoff")
    click.echo(f"handoff: {agreement}: handed over")
