"""Staff accounts for the intake server's /staff page: one per person, passwords hashed with argon2id.

Who opened an intake goes into the client's signing record, so every person at the
front desk signs in with their own name and password; no one signs in with a CA's
passphrase (the intake server holds the intake CA's key, unlocked when it starts,
and no login ever touches it). Accounts live in ``PRACTICE/staff.json`` (owner-only,
replaced atomically under a lock); ``agreements staff add/remove/list`` manage them,
and the intake server re-reads the file when it changes, so a removed account is
signed out at its next request. Only argon2id hashes are stored (argon2-cffi's
defaults, RFC 9106's second recommended profile); a hash made with weaker parameters
is replaced at the next successful sign-in.

A browser that signed in before carries a *known-device* cookie for that account
(:class:`KnownDevices`, signed with a key that lives only in the server's memory):
the app lets it past the waits that wrong guesses from elsewhere, or from the same
address, have set off, so a guesser slows only themselves.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import hmac
import json
import os
import secrets
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from filelock import FileLock

from agreements_kit.errors import AgreementsError, StaffError
from agreements_kit.formats import jsonio, shape
from agreements_kit.formats.record import STAFF_ACCOUNT_RE
from agreements_kit.formats.text import check_name, nfc
from agreements_kit.store.files import FILE_MODE, replace_file

FILE = "staff.json"
FORMAT = "agreements-kit/staff-accounts"
FORMAT_VERSION = 1
MAX_BYTES = 1024 * 1024
MIN_PASSWORD = 15  # NIST SP 800-63B-4: at least 15 characters for a password that is the only factor
MAX_PASSWORD = 256


@dataclass(frozen=True)
class Account:
    """One person's account: sign-in name, full name (what signing records say), argon2id hash."""

    name: str
    full_name: str
    password_hash: str
    added: str

    def as_json(self) -> dict[str, str]:
        return {"name": self.name, "full_name": self.full_name, "password": self.password_hash, "added": self.added}


def account_name(text: str) -> str:
    """A sign-in name as stored: lower case, 1 to 32 of a-z 0-9 . _ - (StaffError otherwise)."""
    name = text.strip().lower()
    if not STAFF_ACCOUNT_RE.match(name):
        raise StaffError(f"staff name {text[:40]!r} must be 1 to 32 letters a-z, digits, '.', '_' or '-', "
                         "starting with a letter or digit (e.g. 'pat.kim')")
    return name


def check_password(password: str, name: str, full_name: str) -> None:
    """Why a new password is refused (StaffError), if it is: long enough to stand alone, not the person's name."""
    if len(password) < MIN_PASSWORD:
        raise StaffError(f"the password is shorter than {MIN_PASSWORD} characters: a phrase of several words "
                         "is long and easy to remember")
    if len(password) > MAX_PASSWORD:
        raise StaffError(f"the password is longer than {MAX_PASSWORD} characters")
    squeezed = "".join(password.split()).casefold()
    if squeezed in ("".join(name.split()).casefold(), "".join(full_name.split()).casefold()):
        raise StaffError("the password must not be the person's name")


def default_hasher() -> PasswordHasher:
    return PasswordHasher()  # argon2id, t=3, m=64 MiB, p=4 (RFC 9106, low-memory profile)


_ACCOUNT = shape.obj({"name": shape.string(32, STAFF_ACCOUNT_RE), "full_name": shape.string(200),
                      "password": shape.string(400), "added": shape.timestamp})


class StaffStore:
    """The accounts in ``PRACTICE/staff.json``.

    ``hasher`` is argon2-cffi's PasswordHasher with its default parameters; tests pass
    cheaper ones (the same to add and to sign in, or every sign-in would rehash).
    """

    def __init__(self, practice_root: Path, hasher: PasswordHasher | None = None):
        self.path = Path(practice_root) / FILE
        self.hasher = hasher or default_hasher()
        self._lock_path = Path(practice_root) / f".{FILE}.lock"
        self._cache: tuple[tuple[int, int, int], dict[str, Account]] | None = None
        self._cache_lock = threading.Lock()
        self._dummy: str | None = None

    # ------------------------------------------------------------------ reading

    def accounts(self) -> dict[str, Account]:
        """Every account by sign-in name (re-read only when the file changed)."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return {}
        stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
        with self._cache_lock:
            if self._cache is not None and self._cache[0] == stamp:
                return dict(self._cache[1])
        accounts = self._read()
        with self._cache_lock:
            self._cache = (stamp, accounts)
        return dict(accounts)

    def get(self, name: str) -> Account | None:
        return self.accounts().get(name.strip().lower())

    def _read(self) -> dict[str, Account]:
        where = str(self.path)
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise StaffError(f"cannot read {where}: {exc.strerror}") from None
        try:
            value = jsonio.parse(data, where, max_bytes=MAX_BYTES, max_depth=4)
            checked = shape.fields(value, where, {"format": shape.const(FORMAT),
                                                  "format_version": shape.integer(1, FORMAT_VERSION),
                                                  "accounts": shape.list_of(_ACCOUNT, 1000)})
        except AgreementsError as exc:
            raise StaffError(f"{where} is not a staff accounts file: {exc.message}") from None
        out: dict[str, Account] = {}
        for item in checked["accounts"]:
            if item["name"] in out:
                raise StaffError(f"{where} names staff account '{item['name']}' twice")
            if not item["password"].startswith("$argon2id$"):
                raise StaffError(f"{where}: staff account '{item['name']}' has no argon2id password hash")
            out[item["name"]] = Account(item["name"], item["full_name"], item["password"], item["added"])
        return out

    # ------------------------------------------------------------------ changing

    def add(self, name: str, full_name: str, password: str, now: dt.datetime | None = None) -> Account:
        """A new account (StaffError if the name is taken or the password is refused)."""
        name = account_name(name)
        problem = check_name(full_name)
        if problem:
            raise StaffError(f"full {problem}")
        full_name = nfc(full_name)
        check_password(password, name, full_name)
        account = Account(name, full_name, self.hasher.hash(password),
                          (now or dt.datetime.now(dt.UTC)).strftime(shape.TIME_FORMAT))
        with self._locked():
            accounts = self._read()
            if name in accounts:
                raise StaffError(f"there is already a staff account '{name}' (remove it first to replace it)")
            accounts[name] = account
            self._write(accounts)
        return account

    def remove(self, name: str) -> Account:
        name = account_name(name)
        with self._locked():
            accounts = self._read()
            if name not in accounts:
                raise StaffError(f"no staff account '{name}' in {self.path}", code="not-found.staff")
            gone = accounts.pop(name)
            self._write(accounts)
        return gone

    def _locked(self) -> FileLock:
        return FileLock(str(self._lock_path), timeout=30, mode=FILE_MODE)

    def _write(self, accounts: dict[str, Account]) -> None:
        """Replace the file atomically (temporary file, fsync, rename), owner-only."""
        document: dict[str, Any] = {"format": FORMAT, "format_version": FORMAT_VERSION,
                                    "accounts": [a.as_json() for _, a in sorted(accounts.items())]}
        replace_file(self.path, (json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n")
                     .encode("utf-8"))

    # ------------------------------------------------------------------ signing in

    def authenticate(self, name: str, password: str) -> Account | None:
        """The account when ``password`` is its password, else None.

        An unknown name costs the same argon2 work as a wrong password, so the time
        taken does not tell which names exist. A hash made with other parameters than
        the hasher's is replaced now that the password is known."""
        account = self.get(name) if STAFF_ACCOUNT_RE.match(name.strip().lower()) else None
        if len(password) > MAX_PASSWORD:
            return None
        if account is None:
            self._verify(self._dummy_hash(), password)
            return None
        if not self._verify(account.password_hash, password):
            return None
        if self.hasher.check_needs_rehash(account.password_hash):
            self._rehash(account, password)
        return account

    def sign_in(self, name: str, password: str) -> Account:
        """The account when ``password`` is its password, else StaffError (``denied.staff``).

        For ``agreements intake open``, which records who ran it as the /staff page does:
        an unknown name and a wrong password get the same one line, and neither the name
        typed nor the password is in it."""
        account = self.authenticate(name, password)
        if account is None:
            raise StaffError("that name and password do not match a staff account", code="denied.staff")
        return account

    def _verify(self, password_hash: str, password: str) -> bool:
        try:
            return bool(self.hasher.verify(password_hash, password))
        except (VerificationError, InvalidHashError):  # VerifyMismatchError is a VerificationError
            return False

    def _dummy_hash(self) -> str:
        if self._dummy is None:
            self._dummy = self.hasher.hash(secrets.token_urlsafe(24))
        return self._dummy

    def _rehash(self, account: Account, password: str) -> None:
        fresh = self.hasher.hash(password)
        with self._locked():
            accounts = self._read()
            current = accounts.get(account.name)
            if current is None or current.password_hash != account.password_hash:
                return  # removed or changed meanwhile: leave it
            accounts[account.name] = Account(account.name, account.full_name, fresh, account.added)
            self._write(accounts)


class KnownDevices:
    """Cookies that mark a browser where an account signed in before (``NAME.NONCE.MAC``).

    The key is random. Kept in ``key_file`` (owner-only, made once) it outlives a restart,
    so a guesser cannot hold staff back by waiting for one; without a file it lives in
    memory only. The cookie grants nothing by itself: its holder still needs the password.
    """

    def __init__(self, key_file: Path | None = None) -> None:
        self._key = _device_key(key_file) if key_file is not None else secrets.token_bytes(32)

    def issue(self, account: str) -> str:
        nonce = secrets.token_urlsafe(16)
        return f"{account}.{nonce}.{self._mac(account, nonce)}"

    def device(self, cookie: str | None, account: str) -> str | None:
        """The device's id (its nonce) when ``cookie`` was issued here for ``account``, else None."""
        if not cookie or cookie.count(".") < 2:
            return None
        name, nonce, mac = cookie.rsplit(".", 2)
        if name != account or not hmac.compare_digest(mac, self._mac(name, nonce)):
            return None
        return nonce

    def _mac(self, account: str, nonce: str) -> str:
        return hmac.new(self._key, f"{account}\n{nonce}".encode(), hashlib.sha256).hexdigest()


def _device_key(path: Path) -> bytes:
    """The known-device key in ``path``: made once (O_EXCL, 0600), then read; 32 random bytes, nothing else."""
    from agreements_kit.store.files import make_private_dir, write_new

    make_private_dir(path.parent, exist_ok=True)
    with contextlib.suppress(FileExistsError):  # made by an earlier start
        write_new(path, secrets.token_bytes(32))
    key = path.read_bytes()
    if len(key) != 32:
        raise StaffError(f"{path.name} is not a known-device key (32 bytes): remove it and restart the server")
    return key
