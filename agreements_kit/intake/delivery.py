"""The client's copy after intake: their choice, single-use download links, and the follow-up at countersigning.

Everything lives in ``PRACTICE/intake/handoff/`` (folders 0700, files 0600), outside the
archive: the archive is evidence, and none of this is.

- ``choices/ID.json``: how the client of agreement ID takes their copy: ``email`` (the
  address they typed, client data kept only until the completed copy is mailed, then
  erased), ``print`` or ``phone`` (the front desk hands the completed copy over).
- ``links/pending/SHA256.json``: a download link's grant, named by the SHA-256 of its
  token (256 random bits, never stored): which agreements' documents, the exact signed
  copy by name and SHA-256, and an expiry. Claiming moves it to ``links/used/`` with an
  atomic rename, so a link works once, even across processes.

Documents are the newest signed copy of each agreement (``01-client.copy.pdf`` after the
client signs, ``02-therapist.copy.pdf`` once countersigned) and one receipt
(signing/receipt.py's ``receipt_pdf``, in the language of the agreement).

The follow-up (:func:`follow_up`, run by ``agreements sign --as therapist`` after the
countersignature is committed, and by ``agreements handoff send``): an email choice gets the
completed copy by the same delivery (attached, or a fresh single-use link) and its
address is erased; when the mail cannot be sent the countersignature stands, the mail stays
queued with the reason, and ``agreements handoff send`` sends it later. A print or phone
choice puts the completed copy on the front desk's list (``agreements handoff list``, the
staff page ``/staff/handoff``): printed for the client, or shown as a fresh QR code for
their phone at the next visit, then marked handed over.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import secrets
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from agreements_kit.authoring.handoff import Handoff, Mail
from agreements_kit.authoring.practice import Practice
from agreements_kit.errors import AgreementsError, HandoffError, MailError
from agreements_kit.formats.ids import ID_RE
from agreements_kit.intake import mailer
from agreements_kit.intake.tickets import token_digest
from agreements_kit.store.archive import AgreementFolder, load_folder
from agreements_kit.store.files import make_private_dir, replace_file, write_new

CHANNELS = ("email", "print", "phone")
FRONT_DESK = ("print", "phone")
COPY_NAME = "signed-agreement.pdf"
RECEIPT_NAME = "receipt-of-signing.pdf"
SIGNED = "signed"  # the client's signature only
COMPLETED = "completed"  # countersigned
LOCK_SECONDS = 30.0  # how long a writer of the choices waits for another (never held during a mail)


def _now() -> dt.datetime:
    """Wall-clock time (links expire across restarts); tests replace it to move time."""
    return dt.datetime.now(dt.UTC)


def handoff_dir(practice: Practice) -> Path:
    return practice.root / "intake" / "handoff"


def private_dirs(top: Path, *parts: str) -> Path:
    """``top/parts...``, each level made owner-only (make_private_dir's parents would get the umask's mode)."""
    path = Path(top)
    for part in ("", *parts):
        path = path / part if part else path
        make_private_dir(path, exist_ok=True)
    return path


def settings(practice: Practice) -> Handoff:
    return practice.handoff or Handoff()


# --------------------------------------------------------------------------- documents


@dataclass(frozen=True)
class Document:
    """One file a client takes: an agreement's signed copy (bound to its bytes), or the receipt."""

    name: str  # the download's file name
    agreements: tuple[str, ...]  # one id for a copy; every id of the visit for the receipt
    file: str | None = None  # a copy: its name in the agreement folder
    sha256: str | None = None  # a copy: the bytes the link was made for

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "agreements": list(self.agreements), "file": self.file, "sha256": self.sha256}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Document:
        return cls(d["name"], tuple(d["agreements"]), d.get("file"), d.get("sha256"))


def _folder(practice: Practice, agreement_id: str) -> AgreementFolder:
    if not ID_RE.match(agreement_id) or not (practice.archive / agreement_id).is_dir():
        raise HandoffError(f"no signed agreement '{agreement_id}' in {practice.archive}", code="not-found.agreement")
    return load_folder(practice.archive / agreement_id)


def _newest_copy(folder: AgreementFolder) -> tuple[str, bytes]:
    from agreements_kit.signing.copy import latest_copy

    found = latest_copy(folder.path)
    if found is None:
        raise HandoffError(f"agreement {folder.id} has no signed copy to hand over", code="not-found.signed-copy")
    return found


def documents(practice: Practice, agreement_ids: Sequence[str]) -> list[Document]:
    """What the client takes now: each agreement's newest signed copy, and one receipt for them all."""
    out = []
    several = len(agreement_ids) > 1
    for n, aid in enumerate(agreement_ids, start=1):
        name, data = _newest_copy(_folder(practice, aid))
        out.append(Document(f"signed-document-{n}.pdf" if several else COPY_NAME, (aid,), name,
                            hashlib.sha256(data).hexdigest()))
    out.append(Document(RECEIPT_NAME, tuple(agreement_ids)))
    return out


def receipt_bytes(practice: Practice, agreement_ids: Sequence[str]) -> bytes:
    """The one-page receipt of these agreements (signing/receipt.py), with the log's checkpoint where one
    includes their client signatures."""
    from agreements_kit.signing.receipt import client_checkpoint, receipt_pdf

    folders = [_folder(practice, aid) for aid in agreement_ids]
    return receipt_pdf(folders, checkpoint=client_checkpoint(folders))


def read_document(practice: Practice, doc: Document) -> bytes:
    """The bytes of ``doc``; a signed copy must still be the one the link was made for."""
    if doc.file is None:
        return receipt_bytes(practice, doc.agreements)
    folder = _folder(practice, doc.agreements[0])
    from agreements_kit.formats.folder import COPY_RE

    if not COPY_RE.match(doc.file):
        raise HandoffError("this download names no signed copy", code="not-found.download")
    data = (folder.path / doc.file).read_bytes()
    if hashlib.sha256(data).hexdigest() != doc.sha256:
        raise HandoffError("this document changed after the link was made; ask the practice for a new link",
                           code="conflict.download-changed")
    return data


def materialize(practice: Practice, docs: Sequence[Document]) -> list[tuple[str, bytes]]:
    return [(d.name, read_document(practice, d)) for d in docs]


# --------------------------------------------------------------------------- download links


@dataclass(frozen=True)
class Link:
    """What a download link grants: these documents, until ``expires``; ``purpose`` is email or phone."""

    documents: tuple[Document, ...]
    expires: dt.datetime
    purpose: str

    def as_json(self) -> bytes:
        return json.dumps({"documents": [d.as_json() for d in self.documents], "expires": self.expires.isoformat(),
                           "purpose": self.purpose}, sort_keys=True).encode()

    @classmethod
    def from_json(cls, data: bytes) -> Link:
        d = json.loads(data)
        return cls(tuple(Document.from_json(x) for x in d["documents"]), dt.datetime.fromisoformat(d["expires"]),
                   d["purpose"])

    @property
    def agreements(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(a for d in self.documents for a in d.agreements))


def _bad_link() -> HandoffError:
    return HandoffError("this download link is not valid", code="not-found.download-link")


def _used_link() -> HandoffError:
    return HandoffError("this download link was already used; ask the practice for a new one",
                        code="gone.download-link-used")


def _expired_link() -> HandoffError:
    return HandoffError("this download link has expired; ask the practice for a new one",
                        code="gone.download-link-expired")


class LinkStore:
    """Single-use download links on disk, like intake tickets: only each token's SHA-256 is stored."""

    def __init__(self, root: Path):
        self.root = Path(root)

    @property
    def pending(self) -> Path:
        return self.root / "links" / "pending"

    @property
    def used(self) -> Path:
        return self.root / "links" / "used"

    def open(self, docs: Sequence[Document], minutes: int, purpose: str) -> tuple[str, Link]:
        """A new token (returned once, never stored) for ``docs``, valid ``minutes``."""
        if purpose not in ("email", "phone") or not docs or not 1 <= minutes <= 336 * 60:
            raise HandoffError("a download link is for email or phone, with documents, for 1 minute to 14 days")
        private_dirs(self.root.parent, self.root.name, "links", "pending")
        private_dirs(self.root.parent, self.root.name, "links", "used")
        token = secrets.token_urlsafe(32)
        link = Link(tuple(docs), _now() + dt.timedelta(minutes=minutes), purpose)
        write_new(self.pending / f"{token_digest(token)}.json", link.as_json())
        return token, link

    def _name(self, token: str) -> str:
        if not token or len(token) > 128 or not all(c.isascii() and (c.isalnum() or c in "-_") for c in token):
            raise _bad_link()
        return f"{token_digest(token)}.json"

    def _read(self, path: Path) -> Link:
        data = path.read_bytes()
        try:
            return Link.from_json(data)
        except (ValueError, KeyError, TypeError):
            raise _bad_link() from None

    def check(self, token: str) -> Link:
        """The link's grant, if it can still be used, without using it (a look: GET, HEAD, a scanner)."""
        name = self._name(token)
        try:
            link = self._read(self.pending / name)
        except FileNotFoundError:
            raise (_used_link() if (self.used / name).exists() else _bad_link()) from None
        if link.expires <= _now():
            raise _expired_link()
        return link

    def claim(self, token: str) -> Link:
        """Use the link: once, before it expires."""
        name = self._name(token)
        source, target = self.pending / name, self.used / name
        try:
            if self._read(source).expires <= _now():
                raise _expired_link()
            os.rename(source, target)  # atomic: of two concurrent claims, one wins
        except FileNotFoundError:
            raise (_used_link() if target.exists() else _bad_link()) from None
        return self._read(target)

    def sweep(self, keep_days: int = 1) -> None:
        """Expired pending links go, and used ones after ``keep_days`` (they name agreements, nothing else)."""
        cutoff = time.time() - keep_days * 86400
        for folder in (self.pending, self.used):
            if not folder.is_dir():
                continue
            for path in folder.glob("*.json"):
                try:
                    expired = Link.from_json(path.read_bytes()).expires <= _now()
                    if (folder == self.pending and expired) or path.stat().st_mtime < cutoff:
                        path.unlink()
                except (OSError, ValueError, KeyError, TypeError):
                    continue


def links(practice: Practice) -> LinkStore:
    return LinkStore(handoff_dir(practice))


def download_url(base: str, token: str) -> str:
    return f"{base.rstrip('/')}/h/{token}"


# --------------------------------------------------------------------------- choices


@dataclass
class Choice:
    """How one agreement's client takes their copies; kept until the completed copy has reached them."""

    agreement_id: str
    chosen_at: str
    email: str | None = None  # client data: erased once the completed copy is mailed
    delivery: str | None = None  # attach or link, as practice.yaml said when the client chose
    front_desk: list[str] = field(default_factory=list)  # print, phone: the front desk hands the completed copy over
    ready: bool = False  # countersigned: the front desk's list shows it
    mail_error: str | None = None  # why the last follow-up mail failed (never the address)

    def as_json(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True).encode()

    @classmethod
    def from_json(cls, data: bytes) -> Choice:
        d = json.loads(data)
        return cls(d["agreement_id"], d["chosen_at"], d.get("email"), d.get("delivery"), list(d.get("front_desk", [])),
                   bool(d.get("ready")), d.get("mail_error"))

    @property
    def empty(self) -> bool:
        return self.email is None and not self.front_desk


def _choice_path(practice: Practice, agreement_id: str) -> Path:
    if not ID_RE.match(agreement_id):
        raise HandoffError(f"'{agreement_id}' is not an agreement id", code="usage.agreement-id")
    return handoff_dir(practice) / "choices" / f"{agreement_id}.json"


@contextmanager
def _locked(practice: Practice) -> Iterator[None]:
    """One writer of the choices at a time (the intake server and a countersigning terminal)."""
    from filelock import FileLock, Timeout

    private_dirs(practice.root / "intake", "handoff", "choices")
    lock = FileLock(str(handoff_dir(practice) / ".lock"), timeout=LOCK_SECONDS, mode=0o600)
    try:
        lock.acquire()
    except Timeout:
        raise HandoffError(f"the hand-off records are busy (another process has held {lock.lock_file} for "
                           f"{LOCK_SECONDS:g} seconds); try again in a moment",
                           code="unavailable.handoff-busy") from None
    try:
        yield
    finally:
        lock.release()


def read_choice(practice: Practice, agreement_id: str) -> Choice | None:
    path = _choice_path(practice, agreement_id)
    try:
        return Choice.from_json(path.read_bytes())
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError):
        raise HandoffError(f"the hand-off record {path} is damaged", path=path, code="format.handoff") from None


def _save(practice: Practice, choice: Choice) -> None:
    path = _choice_path(practice, choice.agreement_id)
    if choice.empty:
        path.unlink(missing_ok=True)
    else:
        replace_file(path, choice.as_json())


def choices(practice: Practice) -> list[Choice]:
    folder = handoff_dir(practice) / "choices"
    if not folder.is_dir():
        return []
    out = []
    for path in sorted(folder.glob("*.json")):
        found = read_choice(practice, path.stem)
        if found is not None:
            out.append(found)
    return out


def recorded_address(practice: Practice, agreement_ids: Sequence[str]) -> str | None:
    """The address already recorded for these agreements (a visit's email choice), if any."""
    for aid in agreement_ids:
        choice = read_choice(practice, aid)
        if choice is not None and choice.email is not None:
            return choice.email
    return None


def record_choice(practice: Practice, agreement_ids: Sequence[str], channel: str, address: str | None = None,
                  *, follow: bool = True) -> list[Outcome]:
    """Remember, for each agreement, that its client chose ``channel`` (with the address, for email).

    An agreement already countersigned gets its follow-up at once (``follow``): the completed copy is mailed
    and the address erased, or it goes on the front desk's list. The choice is saved first, and the mail is
    sent after the records' lock is released: what is returned is one outcome per such agreement."""
    if channel not in CHANNELS:
        raise HandoffError(f"no hand-off by '{channel}'")
    mail = settings(practice).mail
    complete = []
    with _locked(practice):
        for aid in agreement_ids:
            choice = read_choice(practice, aid) or Choice(aid, _now().isoformat(timespec="seconds"))
            if channel == "email":
                if address is None or mail is None:
                    raise HandoffError("an email choice needs an address and the practice's mail settings")
                choice.email, choice.delivery, choice.mail_error = address, mail.delivery, None
            elif channel not in choice.front_desk:
                choice.front_desk.append(channel)
            _save(practice, choice)
            if _folder(practice, aid).complete:
                complete.append(aid)
    if not follow:
        return []
    return [o for o in (follow_up(practice, aid) for aid in complete) if o is not None]


def forget_address(practice: Practice, agreement_ids: Sequence[str], address: str) -> None:
    """Erase ``address`` from these agreements' choices (a first mail to it was refused: it may be mistyped)."""
    with _locked(practice):
        for aid in agreement_ids:
            choice = read_choice(practice, aid)
            if choice is not None and choice.email == address:
                choice.email = choice.delivery = choice.mail_error = None
                _save(practice, choice)


def handed_over(practice: Practice, agreement_id: str) -> bool:
    """The front desk gave the client their completed copy: the print and phone part of the choice ends."""
    with _locked(practice):
        choice = read_choice(practice, agreement_id)
        if choice is None or not choice.front_desk or not (choice.ready or _folder(practice, agreement_id).complete):
            return False
        choice.front_desk = []
        choice.ready = False
        _save(practice, choice)
        return True


# --------------------------------------------------------------------------- mail


def _practice_text(text: str, practice: Practice) -> str:
    return text.replace("{practice}", practice.name)  # never str.format on configured text


def _body(practice: Practice, mail: Mail, stage: str, url: str | None, expires: dt.datetime | None,
          copies: Sequence[str] = (COPY_NAME,)) -> str:
    if stage == COMPLETED:
        what = "Your therapist has countersigned your agreement. The completed copy, with both signatures,"
    else:
        what = "Thank you for signing. Your signed copy"
    if mail.body is not None:
        text = _practice_text(mail.body, practice).rstrip() + "\n"
    elif url is None:
        named = ", ".join(copies)
        if len(copies) > 1:
            what = what.replace("Your signed copy", "Your signed copies").replace("The completed copy",
                                                                                  "The completed copies")
            what = f"{what} are"
        else:
            what = f"{what} is"
        text = (f"Hello,\n\n{what} attached ({named}), with a receipt ({RECEIPT_NAME}).\n\n"
                "Any PDF reader shows the signatures in the document; the receipt says how to check them.\n")
    else:
        text = f"Hello,\n\n{what} and a receipt are ready for you to download.\n"
    if stage == SIGNED and mail.body is None:
        text += "When your therapist has countersigned it, the completed copy will follow by email.\n"
    if url is not None and expires is not None:
        text += (f"\nOpen this link and press the button on the page to download them. It works once, until "
                 f"{expires:%Y-%m-%d %H:%M} UTC:\n\n{url}\n\nIf it has expired or was already used, ask us for a "
                 "new one.\n")
    contact = ", ".join(x for x in (practice.phone, practice.email) if x)
    return text + f"\n{practice.name}" + (f"\n{contact}" if contact else "") + "\n"


def send_documents(practice: Practice, agreement_ids: Sequence[str], address: str, stage: str) -> None:
    """Mail these agreements' documents to ``address``, attached or as a single-use link, as practice.yaml says.

    MailError when the mail cannot be sent (nothing is recorded then); HandoffError when the practice has no
    mail settings."""
    hand = settings(practice)
    mail = hand.mail
    if mail is None:
        raise HandoffError("this practice has no mail settings (handoff: mail: in practice.yaml)",
                           code="usage.no-mail")
    to = mailer.check_address(address)
    docs = documents(practice, agreement_ids)
    url = expires = None
    attachments: list[tuple[str, bytes]] = []
    if mail.delivery == "link":
        token, link = links(practice).open(docs, hand.link_hours * 60, "email")
        url, expires = download_url(mail.link_url or "", token), link.expires
    else:
        attachments = materialize(practice, docs)
    msg = mailer.message(mail, to, _practice_text(mail.subject, practice),
                         _body(practice, mail, stage, url, expires, [d.name for d in docs if d.file is not None]),
                         attachments)
    mailer.send(mail, msg, to)


# --------------------------------------------------------------------------- the follow-up at countersigning


@dataclass(frozen=True)
class Outcome:
    """One line for the person countersigning; ``ok`` False: a warning (the countersignature stands)."""

    agreement_id: str
    text: str
    ok: bool = True
    error: AgreementsError | None = field(default=None, compare=False)  # why a mail was not sent


QUEUED = "the countersignature stands and the mail stays queued: send it with 'agreements handoff send'"


def follow_up(practice: Practice, agreement_id: str) -> Outcome | None:
    """After countersigning: the completed copy goes the way the client chose (None: they chose nothing here).

    The records' lock is held only to read and to save the choice, never while a mail is being sent."""
    if not _choice_path(practice, agreement_id).exists():
        return None
    with _locked(practice):
        choice = read_choice(practice, agreement_id)
        if choice is None:
            return None
        folder = _folder(practice, agreement_id)
        if not folder.complete:
            return Outcome(agreement_id, f"agreement {agreement_id} is not countersigned yet: nothing to hand over",
                           ok=False)
        if choice.front_desk and not choice.ready:
            choice.ready = True
            _save(practice, choice)
        address, how_sent, front_desk = choice.email, choice.delivery, list(choice.front_desk)
    said = []
    ok = True
    error: AgreementsError | None = None
    if address is not None:
        try:
            send_documents(practice, [agreement_id], address, COMPLETED)
        except (MailError, HandoffError) as exc:
            error = exc
            ok = False
            said.append(f"the completed copy of {agreement_id} was not mailed: {exc.message}; {QUEUED}")
        else:
            how = "as a single-use download link" if how_sent == "link" else "attached"
            said.append(f"the completed copy was mailed ({how}) to the address the client gave at intake, "
                        "which is now erased")
        with _locked(practice):
            choice = read_choice(practice, agreement_id)
            if choice is not None and choice.email == address:
                if error is None:
                    choice.email = choice.delivery = choice.mail_error = None
                else:
                    choice.mail_error = error.message
                _save(practice, choice)
    if front_desk:
        ways = " and ".join({"print": "printed", "phone": "shown as a QR code for their phone"}[c]
                            for c in front_desk)
        said.append(f"the completed copy is on the front desk's list, to be {ways} for the client "
                    "('agreements handoff list', /staff/handoff)")
    return Outcome(agreement_id, "; ".join(said), ok, error)


def erase_choice(practice: Practice, agreement_id: str) -> None:
    """Forget a choice entirely (its agreement was voided: nothing will follow)."""
    with _locked(practice):
        choice = read_choice(practice, agreement_id)
        if choice is not None:
            choice.email = choice.delivery = choice.mail_error = None
            choice.front_desk, choice.ready = [], False
            _save(practice, choice)


def send_queued(practice: Practice, agreement_id: str | None = None) -> list[Outcome]:
    """What ``handoff send`` does (for every choice, or only ``agreement_id``'s): mail every completed copy still
    owed by email, put completed print and phone choices on the front desk's list, and erase the choices of
    voided agreements (with their addresses)."""
    out = []
    for choice in choices(practice):
        if agreement_id is not None and choice.agreement_id != agreement_id:
            continue
        try:
            folder = _folder(practice, choice.agreement_id)
        except AgreementsError as exc:
            out.append(Outcome(choice.agreement_id, exc.message, ok=False))
            continue
        if folder.voided:  # no completed copy will ever follow: the address goes now
            erase_choice(practice, choice.agreement_id)
            erased = ", and the client's address is erased" if choice.email is not None else ""
            out.append(Outcome(choice.agreement_id, f"the agreement was voided: nothing will follow{erased}"))
        elif folder.complete and (choice.email is not None or (choice.front_desk and not choice.ready)):
            found = follow_up(practice, choice.agreement_id)
            if found is not None:
                out.append(found)
    return out
