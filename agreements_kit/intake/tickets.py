"""Intake sessions: one-time links that open one agreement, for one signer, briefly.

Staff open an intake (``agreements intake open`` or the staff page); the link's
token is 256 random bits. Only its SHA-256 is stored, in ``PRACTICE/intake/``,
with the agreement, the role, how the signer's identity was checked, and an
expiry (15 minutes by default). The first visit claims it with an atomic rename,
so a token works once, in one browser, even across processes; the browser then
holds a server-side session bound to that agreement and role, and nothing in any
URL names an agreement or a client. Tokens and names are never logged.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agreements_kit.errors import IntakeError
from agreements_kit.formats.record import CLIENT_ROLES
from agreements_kit.formats.text import check_text
from agreements_kit.store.files import make_private_dir, write_new

TOKEN_MINUTES = 15
SESSION_MINUTES = 45


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("ascii", "replace")).hexdigest()


@dataclass(frozen=True)
class Ticket:
    """What an intake link grants: one agreement, one role, until ``expires``."""

    agreement_id: str
    role: str
    identity_method: str
    identity_checked_by: str
    expires: dt.datetime

    def as_json(self) -> bytes:
        return json.dumps({"agreement_id": self.agreement_id, "role": self.role,
                           "identity_method": self.identity_method, "identity_checked_by": self.identity_checked_by,
                           "expires": self.expires.isoformat()}, sort_keys=True).encode()

    @classmethod
    def from_json(cls, data: bytes) -> Ticket:
        d = json.loads(data)
        return cls(d["agreement_id"], d["role"], d["identity_method"], d["identity_checked_by"],
                   dt.datetime.fromisoformat(d["expires"]))


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

    def open(self, agreement_id: str, role: str, identity_method: str, identity_checked_by: str,
             minutes: int = TOKEN_MINUTES) -> tuple[str, Ticket]:
        """A new token (returned once, never stored) and its ticket."""
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
        make_private_dir(self.pending, exist_ok=True)
        make_private_dir(self.claimed, exist_ok=True)
        token = secrets.token_urlsafe(32)
        ticket = Ticket(agreement_id, role, identity_method.strip(), identity_checked_by.strip(),
                        _now() + dt.timedelta(minutes=minutes))
        write_new(self.pending / f"{_digest(token)}.json", ticket.as_json())
        return token, ticket

    def claim(self, token: str) -> Ticket:
        """Use a token: exactly once, before it expires. Raises IntakeError otherwise."""
        if not token or len(token) > 128 or not all(c.isalnum() or c in "-_" for c in token):
            raise IntakeError("this link is not valid", code="not-found.link")
        name = f"{_digest(token)}.json"
        source, target = self.pending / name, self.claimed / name
        try:
            os.rename(source, target)  # atomic: of two concurrent claims, one wins
        except FileNotFoundError:
            if target.exists():
                raise IntakeError("this link was already used; ask the front desk for a new one",
                                  code="gone.link-used") from None
            raise IntakeError("this link is not valid", code="not-found.link") from None
        ticket = Ticket.from_json(target.read_bytes())
        if ticket.expires <= _now():
            raise IntakeError("this link has expired; ask the front desk for a new one", code="gone.link-expired")
        return ticket

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


@dataclass
class Session:
    """One browser's signing session (server-side; the cookie holds only its random id)."""

    id: str
    ticket: Ticket
    csrf: str
    expires: dt.datetime
    consent: bool = False
    signed: bool = False
    result: dict[str, Any] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


class Sessions:
    def __init__(self) -> None:
        self._items: dict[str, Session] = {}
        self._lock = threading.Lock()

    def create(self, ticket: Ticket, minutes: int = SESSION_MINUTES) -> Session:
        session = Session(secrets.token_urlsafe(32), ticket, secrets.token_urlsafe(32),
                          _now() + dt.timedelta(minutes=minutes))
        with self._lock:
            self._purge()
            self._items[session.id] = session
        return session

    def get(self, session_id: str | None) -> Session | None:
        if not session_id:
            return None
        with self._lock:
            session = self._items.get(session_id)
            if session is not None and session.expires <= _now():
                del self._items[session_id]
                return None
            return session

    def close(self, session_id: str) -> None:
        with self._lock:
            self._items.pop(session_id, None)

    def _purge(self) -> None:
        now = _now()
        for key in [k for k, s in self._items.items() if s.expires <= now]:
            del self._items[key]


class RateLimiter:
    """At most ``limit`` failures per ``window`` seconds per address (token guesses, staff logins)."""

    def __init__(self, limit: int = 10, window: float = 600.0):
        self.limit = limit
        self.window = window
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def blocked(self, address: str) -> bool:
        with self._lock:
            q = self._failures.get(address)
            if not q:
                return False
            cutoff = time.monotonic() - self.window
            while q and q[0] < cutoff:
                q.popleft()
            return len(q) >= self.limit

    def fail(self, address: str) -> None:
        with self._lock:
            self._failures.setdefault(address, deque()).append(time.monotonic())
