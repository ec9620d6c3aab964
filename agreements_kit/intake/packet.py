"""Intake packets: several documents of one client, signed in one visit.

Staff open one link for a packet (``agreements intake open A B``, or several
documents ticked on /staff). Each document stays its own agreement folder, with its
own signing record, CMS signature and signed copy, made by the same
:func:`~agreements_kit.signing.sign.sign_client` as a single agreement; the packet is
only the ticket's list and the one receipt that names them all.

The client consents to electronic records once, for the visit, then reads, initials
and signs each document on its own pages, in turn: each signature is a separate act
over one document, and its record names exactly that document (its id and the
SHA-256 of its PDF and manifest). A client who leaves half way leaves the documents
signed so far signed and the rest awaiting signature, as the staff page shows.

Before any link is made, every document is checked: it exists, awaits the client's
signature, still matches its manifest, admits the role, and is the same client's (and,
for a guardian, names the same guardian). The consent to electronic records, when the
packet has it, is signed first (authoring/documents.SIGN_FIRST); the others keep the
order staff gave. A later kind of document needs nothing here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from agreements_kit.authoring.documents import document_title, library_dir_for, sign_first
from agreements_kit.authoring.practice import Practice
from agreements_kit.errors import AgreementsError, IntakeError
from agreements_kit.formats.text import same_name
from agreements_kit.intake.tickets import MAX_PACKET, Ticket
from agreements_kit.store.archive import AgreementFolder


def check_packet(practice: Practice, refs: Sequence[str], role: str) -> list[AgreementFolder]:
    """The folders of an intake for ``refs`` (one or more), in signing order; IntakeError (one line) if any is wrong."""
    from agreements_kit.signing.sign import check_intake_role, find_agreement

    if not refs:
        raise IntakeError("name at least one agreement for the intake", code="usage.packet")
    if len(refs) > MAX_PACKET:
        raise IntakeError(f"an intake covers at most {MAX_PACKET} agreements", code="usage.packet")
    folders: list[AgreementFolder] = []
    for ref in refs:
        folder = find_agreement(practice, ref)
        if any(f.id == folder.id for f in folders):
            raise IntakeError(f"agreement {folder.id} is named twice", code="usage.packet")
        check_intake_role(folder, role)
        if not folder.awaiting_client:
            raise AgreementsError(f"agreement {folder.id} is not awaiting a client signature",
                                  code="conflict.not-awaiting")
        folder.check_pdf()
        folders.append(folder)
    first = folders[0]
    for folder in folders[1:]:
        if not same_name(folder.client_name, first.client_name):
            raise IntakeError(f"agreements {first.id} and {folder.id} are for different clients: a packet holds "
                              "one client's documents", code="usage.packet-clients")
        if role == "guardian" and not same_name(_guardian(folder), _guardian(first)):
            raise IntakeError(f"agreements {first.id} and {folder.id} name different guardians: a packet is signed "
                              "by one person", code="usage.packet-clients")
    return sorted(folders, key=lambda f: 0 if sign_first(f.manifest) else 1)  # stable: staff's order otherwise


def _guardian(folder: AgreementFolder) -> str:
    return str((folder.manifest["agreement"].get("guardian") or {}).get("name", ""))


def describe(practice: Practice, folder: AgreementFolder) -> dict[str, Any]:
    """What pages show of a document: its id, heading (its library's title), client and date, and whether it is
    the therapists' agreement (from the practice's own clause library) or another kind of document."""
    return {"id": folder.id, "title": document_title(practice, folder.manifest), "client": folder.client_name,
            "date": folder.manifest["agreement"]["date"],
            "agreement": library_dir_for(practice, folder.manifest) == practice.library_dir()}


def status(practice: Practice, ticket: Ticket, used: bool) -> dict[str, Any]:
    """A packet as the staff page shows it: each document and whether the client signed it yet."""
    from agreements_kit.signing.sign import find_agreement

    documents = []
    for aid in ticket.agreement_ids:
        try:
            folder = find_agreement(practice, aid)
        except AgreementsError:
            documents.append({"id": aid, "title": "(not found)", "state": "missing"})
            continue
        state = "voided" if folder.voided else "signed" if folder.client_signed else "waiting"
        documents.append({**describe(practice, folder), "state": state})
    client = next((d["client"] for d in documents if "client" in d), "")
    return {"client": client, "used": used, "expires": ticket.expires, "opened_by": ticket.opened_by,
            "documents": documents, "half": any(d["state"] == "signed" for d in documents)
            and any(d["state"] == "waiting" for d in documents)}
