"""Intake links and sessions: one-time links that open one agreement, for one signer, briefly.

Staff open an intake (``agreements intake open`` or the staff page) for one
agreement or for a packet: several documents of one client, signed in one visit,
one after the other (intake/packet.py checks them). The link's token is 256
random bits. Only its SHA-256 is stored, in ``PRACTICE/intake/``,
with the agreement, the role, how the signer's identity was checked and by whom,
and an expiry (15 minutes by default). Looking at a link (GET, HEAD, a mail
scanner, a browser's prefetch) only reads its ticket; the client's own "Start"
(a POST) claims it with an atomic rename, so a token works once, in one browser,
even across processes. The browser then holds a server-side session bound to
that agreement and role, which ends after an idle time and an absolute time;
nothing in any URL names an agreement or a client. Tokens and names are never
logged.

Failed guesses (of a link or a staff password) are slowed by :class:`RateLimiter`:
exponential waits after a few free failures, never a lockout.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

from agreements_kit.errors import IntakeError
from agreements_kit.formats.ids import ID_RE, LANGUAGE_RE
from agreements_kit.formats.record import CLIENT_ROLES
from agreements_kit.formats.text import check_text
from agreements_kit.store.files import make_private_dir, write_new

TOKEN_MINUTES = 15
IDLE_MINUTES = 15  # a session untouched this long ends (client and staff)
CLIENT_HOURS = 1  # a client's session ends this long after the link was started, whatever happens
MAX_PACKET = 8  # documents one intake link may cover
STAFF_HOURS = 8  # a staff session ends after a working day, whatever happens

Clock = Callable[[], float]  # seconds, monotonic: sessions and rate limits (tests pass their own)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def token_digest(token: str) -> str:
    """What is stored of a one-time token (an intake link's, a download link's): its SHA-256, never the token."""
    return hashlib.sha256(token.encode("ascii", "replace")).hexdigest()


@dataclass(frozen=True)
class Ticket:
    """What an intake link grants: one agreement (or a packet of them, signed in turn), one role, until ``expires``.

    ``identity_checked_by`` is who checked the signer's identity; ``opened_by`` is the
    staff account that opened the link (on the staff page, or ``agreements intake open --staff``);
    None only for a ticket opened without one (:meth:`TicketStore.open` called without ``opened_by``).
    ``others`` are the packet's further documents, in signing order, after ``agreement_id``.
    """

    agreement_id: str
    role: str
    identity_method: str
    identity_checked_by: str
    expires: dt.datetime
    opened_by: str | None = None
    others: tuple[str, ...] = ()
    language: str | None = None  # the pages' language chosen by staff (None: the first document's own)

    @property
    def agreement_ids(self) -> tuple[str, ...]:
        """Every document this link lets the client sign, in order (one, or a packet)."""
        return (self.agreement_id, *self.others)

    def as_json(self) -> bytes:
        d: dict[str, Any] = {
            "agreement_id": self.agreement_id, "role": self.role, "identity_method": self.identity_method,
            "identity_checked_by": self.identity_checked_by, "expires": self.expires.isoformat(),
            "opened_by": self.opened_by}
        if self.others:  # a one-document ticket keeps the form it always had
            d["packet"] = list(self.agreement_ids)
        if self.language:  # likewise: only a ticket opened with a language names one
            d["language"] = self.language
        return json.dumps(d, sort_keys=True).encode()

    @classmethod
    def from_json(cls, data: bytes) -> Ticket:
        d = json.loads(data)
        packet = d.get("packet") or [d["agreement_id"]]
        if not isinstance(packet, list) or packet[0] != d["agreement_id"] or \
                not all(isinstance(i, str) and ID_RE.match(i) for i in packet):
            raise ValueError("a ticket's packet must start with its agreement")
        language = d.get("language")
        if language is not None and not (isinstance(language, str) and LANGUAGE_RE.match(language)):
            raise ValueError("a ticket's language is a language code")
        return cls(d["agreement_id"], d["role"], d["identity_method"], d["identity_checked_by"],
                   dt.datetime.fromisoformat(d["expires"]), d.get("opened_by"), tuple(packet[1:]), language)


def _well_formed(token: str) -> None:
    if not token or len(token) > 128 or not all(c.isascii() and (c.isalnum() or c in "-_") for c in token):
        raise IntakeError("this link is not valid", code="not-found.link")


def _expired() -> IntakeError:
    return IntakeError("this link has expired; ask the front desk for a new one", code="gone.link-expired")


def _used() -> IntakeError:
    return IntakeError("this link was already used; ask the front desk for a new one", code="gone.link-used")


def _read_ticket(path: Path) -> Ticket:
    """A ticket file, or IntakeError (not-found.link) when it is damaged: never a traceback to the tablet."""
    data = path.read_bytes()  # FileNotFoundError goes to the caller, which tells used from unknown
    try:
        return Ticket.from_json(data)
    except (ValueError, KeyError, TypeError):
        raise IntakeError("this link is not valid", code="not-found.link") from None


class TicketStore:
    """Tickets on disk: ``pending/SHA256.json`` until claimed, then moved to ``claimed/``."""

    def __init__(self, root: Path):
        self.root = Path(root)

    @property
    def pending(self) -> Path:
        return self.root / "pending"

    @property
    def claimed(self) -> Path:
        return self.root / "claimed"

    def open(self, agreement_id: str | Sequence[str], role: str, identity_method: str, identity_checked_by: str,
             minutes: int = TOKEN_MINUTES, opened_by: str | None = None,
             language: str | None = None) -> tuple[str, Ticket]:
        """A new token (returned once, never stored) and its ticket, for one agreement or a packet of them
        (in signing order; intake/packet.py checks that they are one client's and awaiting signature)."""
        ids = (agreement_id,) if isinstance(agreement_id, str) else tuple(agreement_id)
        if not ids or len(ids) > MAX_PACKET:
            raise IntakeError(f"an intake covers 1 to {MAX_PACKET} agreements", code="usage.packet")
        if len(set(ids)) != len(ids):
            raise IntakeError(f"agreement {next(i for i in ids if ids.count(i) > 1)} is named twice",
                              code="usage.packet")
        if not all(ID_RE.match(i) for i in ids):
            raise IntakeError("an agreement id may only use letters, digits, '-' and '_'", code="usage.packet")
        if role not in CLIENT_ROLES:
            raise IntakeError(f"an intake is for a client or guardian, not '{role}'")
        for label, value in (("identity check method", identity_method), ("identity checked by", identity_checked_by)):
            if not value or not value.strip():
                raise IntakeError(f"{label} is required: staff check the signer's identity before the intake")
            problem = check_text(value, 200)
            if problem:
                raise IntakeError(f"{label} {problem}")
        if not 1 <= minutes <= 240:
            raise IntakeError("an intake link lasts between 1 and 240 minutes")
        if language is not None and not LANGUAGE_RE.match(language):
            raise IntakeError("an intake's language is a code such as 'en' or 'es'", code="usage.language")
        make_private_dir(self.pending, exist_ok=True)
        make_private_dir(self.claimed, exist_ok=True)
        token = secrets.token_urlsafe(32)
        ticket = Ticket(ids[0], role, identity_method.strip(), identity_checked_by.strip(),
                        _now() + dt.timedelta(minutes=minutes), opened_by, ids[1:], language)
        write_new(self.pending / f"{token_digest(token)}.json", ticket.as_json())
        return token, ticket

    def check(self, token: str) -> Ticket:
        """The ticket of a token that can still be claimed, without claiming it (a look, not a use).

        Raises the same IntakeError as :meth:`claim` would."""
        _well_formed(token)
        name = f"{token_digest(token)}.json"
        try:
            ticket = _read_ticket(self.pending / name)
        except FileNotFoundError:
            if (self.claimed / name).exists():
                raise _used() from None
            raise IntakeError("this link is not valid", code="not-found.link") from None
        if ticket.expires <= _now():
            raise _expired()
        return ticket

    def claim(self, token: str) -> Ticket:
        """Use a token: exactly once, before it expires. Raises IntakeError otherwise."""
        _well_formed(token)
        name = f"{token_digest(token)}.json"
        source, target = self.pending / name, self.claimed / name
        try:
            if _read_ticket(source).expires <= _now():
                raise _expired()  # left where it is: an expired link stays "expired", never "used"
            os.rename(source, target)  # atomic: of two concurrent claims, one wins
        except FileNotFoundError:
            if target.exists():
                raise _used() from None
            raise IntakeError("this link is not valid", code="not-found.link") from None
        return _read_ticket(target)

    def packets(self) -> list[tuple[Ticket, bool]]:
        """The packets (tickets of several documents) still on file, newest first, each with whether its link
        was used: for staff, who see which of a packet's documents were signed (a client may leave half way)."""
        out = []
        for folder, used in ((self.claimed, True), (self.pending, False)):
            if not folder.is_dir():
                continue
            for path in folder.glob("*.json"):
                try:
                    ticket = _read_ticket(path)
                except (OSError, IntakeError):
                    continue
                if ticket.others:
                    out.append((ticket, used))
        return sorted(out, key=lambda item: item[0].expires, reverse=True)

    def sweep(self, keep_days: int = 1) -> None:
        """Remove expired pending tickets and old claimed ones (they hold no client data)."""
        cutoff = time.time() - keep_days * 86400
        for folder in (self.pending, self.claimed):
            if not folder.is_dir():
                continue
            for path in folder.glob("*.json"):
                try:
                    expired = Ticket.from_json(path.read_bytes()).expires <= _now()
                    if (folder == self.pending and expired) or path.stat().st_mtime < cutoff:
                        path.unlink()
                except (OSError, ValueError, KeyError):
                    continue


# --------------------------------------------------------------------------- sessions


@dataclass
class Session:
    """One browser's signing session (server-side; the cookie holds only its random id).

    The client consents once, then reads, initials and signs each document of the ticket
    in turn: ``done`` holds the ids signed so far, ``signed`` is set when every one is.
    """

    id: str
    ticket: Ticket
    csrf: str
    started: float = 0.0
    seen: float = 0.0
    consent: bool = False
    signed: bool = False
    result: dict[str, Any] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    done: list[str] = field(default_factory=list)

    @property
    def current_id(self) -> str | None:
        """The document being read and signed now (None once all are signed)."""
        ids = self.ticket.agreement_ids
        return ids[len(self.done)] if len(self.done) < len(ids) else None


@dataclass
class StaffSession:
    """One staff member signed in on one browser."""

    id: str
    account: str
    name: str  # the person's full name, as their account has it: what the records say checked identity
    csrf: str
    started: float = 0.0
    seen: float = 0.0


def client_session(ticket: Ticket) -> Session:
    """A new client session for a claimed ticket (random id and CSRF token)."""
    return Session(secrets.token_urlsafe(32), ticket, secrets.token_urlsafe(32))


def staff_session(account: str, name: str) -> StaffSession:
    return StaffSession(secrets.token_urlsafe(32), account, name, secrets.token_urlsafe(32))


S = TypeVar("S", Session, StaffSession)

ENDED_IDLE = "idle"
ENDED_LIMIT = "limit"


class Sessions(Generic[S]):
    """Sessions in memory that end after ``idle`` seconds untouched, or ``absolute`` seconds after they began.

    Every successful :meth:`get` counts as activity. The reason a session ended is kept
    for a while (bounded), so its browser can be told why rather than "never opened".
    """

    KEEP_ENDED = 1000

    def __init__(self, idle: float = IDLE_MINUTES * 60, absolute: float = CLIENT_HOURS * 3600,
                 clock: Clock = time.monotonic) -> None:
        if not 0 < idle <= absolute:
            raise ValueError("a session's idle time must be positive and at most its absolute time")
        self.idle = idle
        self.absolute = absolute
        self.clock = clock
        self._items: dict[str, S] = {}
        self._ended: dict[str, str] = {}
        self._lock = threading.Lock()

    def add(self, session: S) -> S:
        now = self.clock()
        session.started = session.seen = now
        with self._lock:
            self._purge(now)
            self._items[session.id] = session
        return session

    def get(self, session_id: str | None) -> S | None:
        return self.lookup(session_id)[0]

    def lookup(self, session_id: str | None) -> tuple[S | None, str | None]:
        """The live session and None, or None and why it ended (``idle``, ``limit``, or None: unknown)."""
        if not session_id:
            return None, None
        now = self.clock()
        with self._lock:
            session = self._items.get(session_id)
            if session is None:
                return None, self._ended.get(session_id)
            why = self._why_over(session, now)
            if why is not None:
                self._end(session_id, why)
                return None, why
            session.seen = now
            return session, None

    def close(self, session_id: str) -> None:
        with self._lock:
            self._items.pop(session_id, None)

    def close_where(self, predicate: Callable[[S], bool]) -> None:
        """End every session ``predicate`` picks (a staff account removed)."""
        with self._lock:
            for key in [k for k, s in self._items.items() if predicate(s)]:
                del self._items[key]

    def _why_over(self, session: S, now: float) -> str | None:
        if now - session.started >= self.absolute:
            return ENDED_LIMIT
        if now - session.seen >= self.idle:
            return ENDED_IDLE
        return None

    def _end(self, key: str, why: str) -> None:
        del self._items[key]
        if len(self._ended) >= self.KEEP_ENDED:
            self._ended.pop(next(iter(self._ended)))
        self._ended[key] = why

    def _purge(self, now: float) -> None:
        over = [(k, why) for k, s in self._items.items() if (why := self._why_over(s, now)) is not None]
        for key, why in over:
            self._end(key, why)


# --------------------------------------------------------------------------- rate limits


@dataclass
class _Failures:
    count: int = 0
    last: float = 0.0
    until: float = 0.0  # no attempt is judged before this time


class RateLimiter:
    """Slows failed attempts per key (a source address, a name, or one key for everyone).

    The first ``free`` failures cost nothing; each further one doubles the wait before
    the next attempt is judged, from ``base`` seconds up to ``cap``: a wait, never a
    lockout, and a key's failures are forgotten ``forget`` seconds after its last one.
    Only failures are counted; the caller decides what a wait holds back (the intake
    app never holds back a valid link, and never a staff member's browser that signed
    in before).
    """

    MAX_KEYS = 10_000

    def __init__(self, free: int = 5, base: float = 1.0, cap: float = 60.0, forget: float = 900.0,
                 clock: Clock = time.monotonic):
        self.free = free
        self.base = base
        self.cap = cap
        self.forget = forget
        self.clock = clock
        self._keys: dict[str, _Failures] = {}
        self._lock = threading.Lock()

    def retry_after(self, key: str) -> float:
        """Seconds before an attempt under ``key`` will be judged (0: now)."""
        now = self.clock()
        with self._lock:
            entry = self._live(key, now)
            return max(0.0, entry.until - now) if entry else 0.0

    def fail(self, key: str) -> float:
        """Count a failure; returns the wait it sets (0 while failures are still free)."""
        now = self.clock()
        with self._lock:
            entry = self._live(key, now)
            if entry is None:
                if len(self._keys) >= self.MAX_KEYS:
                    self._prune(now)
                entry = self._keys[key] = _Failures()
            entry.count += 1
            entry.last = now
            over = entry.count - self.free
            wait = 0.0 if over <= 0 else min(self.cap, self.base * 2 ** min(over - 1, 30))
            entry.until = max(entry.until, now + wait)
            return wait

    def succeed(self, key: str) -> None:
        """Forget ``key``'s failures (its holder proved who they are)."""
        with self._lock:
            self._keys.pop(key, None)

    def _live(self, key: str, now: float) -> _Failures | None:
        entry = self._keys.get(key)
        if entry is not None and now - entry.last >= self.forget and now >= entry.until:
            del self._keys[key]
            return None
        return entry

    def _prune(self, now: float) -> None:
        for key in [k for k, e in self._keys.items() if now - e.last >= self.forget and now >= e.until]:
            del self._keys[key]
        while len(self._keys) >= self.MAX_KEYS:  # still full: the oldest go first
            self._keys.pop(next(iter(self._keys)))
