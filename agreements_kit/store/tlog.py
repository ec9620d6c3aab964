"""The transparency log over an archive's ledger: its key, its signed checkpoints, its proofs.

Leaf ``i`` of the log is line ``i + 1`` of ``signed/ledger.jsonl`` (its bytes without
the newline), hashed as RFC 9162 says (:mod:`agreements_kit.formats.merkle`). A
checkpoint (:mod:`agreements_kit.formats.checkpoint`) signs the tree's size and root
with the log key, which is no CA key and has its own passphrase: whoever can sign
agreements cannot sign checkpoints with it, and the reverse.

Layout::

    PRACTICE/pki/log.key.pem      Ed25519 private key, PKCS#8, encrypted with its own passphrase (0600)
    PRACTICE/pki/log.pub          its verifier key, NAME+KEYID+BASE64 (give this to auditors and witnesses)
    signed/log/checkpoint         the latest signed checkpoint (replaced atomically)
    signed/log/checkpoints/NNNNNNNN.txt   every checkpoint ever signed, by tree size (never replaced)

A log never signs a checkpoint inconsistent with one it signed before
(tlog-checkpoint): :func:`sign_checkpoint` refuses, with ``conflict.log-inconsistent``,
when the ledger no longer holds the tree of the last checkpoint (its tail erased,
or a line rewritten with the chain recomputed).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from filelock import FileLock, Timeout

from agreements_kit.errors import AgreementsError, InvalidFormat, LogError
from agreements_kit.formats import checkpoint as cpf
from agreements_kit.formats import merkle
from agreements_kit.formats.checkpoint import Checkpoint, InclusionEntry, VerifierKey
from agreements_kit.formats.ledger import parse_entry
from agreements_kit.store.files import make_private_dir, replace_file, write_new
from agreements_kit.store.ledger import Ledger

KEY_NAME = "agreements-kit-log"
KEY_FILE = "log.key.pem"
PUB_FILE = "log.pub"
LOG_DIR = "log"
LATEST = "checkpoint"
HISTORY = "checkpoints"
LOCK_TIMEOUT = 60.0


@dataclass(frozen=True)
class LogKey:
    name: str
    private_key: Ed25519PrivateKey

    @property
    def public_bytes(self) -> bytes:
        return self.private_key.public_key().public_bytes_raw()

    @property
    def verifier(self) -> VerifierKey:
        return cpf.vkey_for(self.name, self.private_key)

    @property
    def origin(self) -> str:
        return cpf.log_origin(self.public_bytes)


def _new_key(folder: Path, key_file: str, pub_file: str, name: str, passphrase: bytes, what: str,
             exists: str, sig_type: int = cpf.ED25519) -> Ed25519PrivateKey:
    """A new Ed25519 key in ``folder``: encrypted PEM (0600) and its verifier-key line beside it."""
    try:
        cpf.check_name(name)
    except InvalidFormat as exc:
        raise LogError(f"the {what} name {exc.message}", code="usage.log-key-name") from None
    if not passphrase:
        raise LogError(f"the {what} needs a passphrase of its own", code="usage.log-passphrase")
    if (folder / key_file).exists() or (folder / pub_file).exists():
        raise LogError(f"{folder / key_file} already exists{exists}", path=folder / key_file,
                       code="conflict.log-key-exists")
    make_private_dir(folder, exist_ok=True)
    private = Ed25519PrivateKey.generate()
    write_new(folder / key_file, private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                       serialization.BestAvailableEncryption(passphrase)))
    write_new(folder / pub_file, (cpf.vkey_for(name, private, sig_type).text + "\n").encode("ascii"))
    return private


def _load_key(key_path: Path, pub_path: Path, passphrase: bytes, what: str, missing: str, wrong: str,
              sig_type: int = cpf.ED25519) -> tuple[str, Ed25519PrivateKey]:
    """(name, private key) of a key made by :func:`_new_key`, checked against its verifier key."""
    try:
        data = key_path.read_bytes()
    except FileNotFoundError:
        raise LogError(missing, path=key_path, code="not-found.log-key") from None
    vkey = read_verifier(pub_path)
    try:
        private = serialization.load_pem_private_key(data, password=passphrase)
    except (ValueError, TypeError):
        raise LogError(wrong, path=key_path, code="denied.log-passphrase") from None
    if not isinstance(private, Ed25519PrivateKey):
        raise LogError(f"the {what} is not an Ed25519 key", path=key_path, code="format.log-key")
    if cpf.vkey_for(vkey.name, private, sig_type) != vkey:
        raise LogError(f"{pub_path.name} is not the public half of {key_path.name}", path=pub_path,
                       code="format.log-key")
    return vkey.name, private


def create_log_key(pki_dir: Path, name: str = KEY_NAME, *, passphrase: bytes) -> LogKey:
    """A new log key in ``pki_dir`` (refuses if one exists: a log keeps its key, or it is a new log)."""
    pki_dir = Path(pki_dir)
    key = LogKey(name, _new_key(pki_dir, KEY_FILE, PUB_FILE, name, passphrase, "log key",
                                ": a log keeps its key (a new key makes a new log)"))
    _enter_key(pki_dir.parent / "signed", key)
    return key


def _enter_key(archive_root: Path, key: LogKey) -> None:
    """Enter the new log key in the practice's ledger (rotation of any key is recorded there)."""
    import datetime as dt

    from agreements_kit.formats.certprofile import iso
    from agreements_kit.store.archive import Archive

    if not (archive_root / "ledger.jsonl").exists() and not archive_root.is_dir():
        return  # a log key made outside a practice (tests, a witness's tools): nothing to record it in
    archive = Archive(archive_root)
    with archive.locked():
        archive.log({"event": "log-key", "verifier_key": key.verifier.text, "action": "created",
                     "time": iso(dt.datetime.now(dt.UTC).replace(microsecond=0))})


def read_verifier(path: Path) -> VerifierKey:
    """A verifier key from a file (or the text itself when ``path`` names no file)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8").strip() if p.is_file() else str(path).strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise LogError(f"cannot read the verifier key {p}: {exc}", path=p, code="usage.log-key") from None
    return cpf.parse_vkey(text, str(p))


def load_log_key(pki_dir: Path, passphrase: bytes) -> LogKey:
    pki_dir = Path(pki_dir)
    return LogKey(*_load_key(pki_dir / KEY_FILE, pki_dir / PUB_FILE, passphrase, "log key",
                             f"no log key in {pki_dir}: create one with 'agreements log key init'",
                             "wrong passphrase for the log key (it has its own, not the practice's)"))


# ----------------------------------------------------------------------------- reading the ledger


def ledger_path(archive_root: Path) -> Path:
    return Path(archive_root) / "ledger.jsonl"


def log_dir(archive_root: Path) -> Path:
    return Path(archive_root) / LOG_DIR


def ledger_lines(archive_root: Path) -> Iterator[bytes]:
    for _, line in Ledger(ledger_path(archive_root)).lines():
        yield line


def build_tree(lines: Iterator[bytes], limit: int | None = None) -> merkle.Tree:
    """The tree of the ledger's lines (the first ``limit`` only, if given), streamed."""
    tree = merkle.Tree()
    for line in lines:
        if limit is not None and tree.size >= limit:
            break
        tree.append(merkle.leaf_hash(line))
    return tree


def read_checkpoint_file(path: Path) -> tuple[Checkpoint, bytes]:
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise LogError(f"no checkpoint at {path}", path=path, code="not-found.log-checkpoint") from None
    except OSError as exc:
        raise LogError(f"cannot read {path}: {exc.strerror}", path=path, code="usage.log") from None
    return cpf.parse_checkpoint(data, str(path)), data


def latest_checkpoint(archive_root: Path) -> tuple[Checkpoint, bytes]:
    path = log_dir(archive_root) / LATEST
    if not path.exists():
        raise LogError(f"the archive {archive_root} has no signed checkpoint yet: run 'agreements log checkpoint'",
                       path=path, code="not-found.log-checkpoint")
    return read_checkpoint_file(path)


def _verified(cp: Checkpoint, key: VerifierKey, path: Path) -> None:
    if not cpf.verify_note(cp.note, key):
        raise LogError(f"{path} is not signed by the log key {key.name}+{key.key_id.hex()}", path=path,
                       code="conflict.log-signature")
    if cp.origin != cpf.log_origin(key.public_key):
        raise LogError(f"{path} is a checkpoint of another log ({cp.origin})", path=path,
                       code="conflict.log-origin")


def mismatch(tree: merkle.Tree, cp: Checkpoint, what: str) -> str | None:
    """Why the ledger (as ``tree``) does not hold the tree ``cp`` signed, in words; None when it does."""
    if cp.size > tree.size:
        return (f"the ledger has {tree.size} entries but {what} covers {cp.size}: entries were erased from its end")
    if tree.root(cp.size) != cp.root_hash:
        return (f"the first {cp.size} ledger entries do not hash to the root {what} signed: the ledger was "
                "rewritten")
    return None


# ----------------------------------------------------------------------------- signing


@dataclass
class _LogLock:
    path: Path

    def __enter__(self) -> None:
        make_private_dir(self.path.parent, exist_ok=True)
        self.lock = FileLock(str(self.path), timeout=LOCK_TIMEOUT, mode=0o600)
        try:
            self.lock.acquire()
        except Timeout:
            raise LogError(f"the log {self.path.parent} is busy (another checkpoint is being signed); try again",
                           code="conflict.log-busy") from None

    def __exit__(self, *exc: object) -> None:
        self.lock.release()


def sign_checkpoint(archive_root: Path, key: LogKey) -> tuple[Checkpoint, bytes]:
    """Sign a checkpoint of the whole ledger; refuse one inconsistent with the last signed (conflict.log-inconsistent).

    Holds the log's own lock (``signed/log/.lock``), not the archive's, so it can be
    called right after a signature while or after the archive lock is held.
    """
    archive_root = Path(archive_root)
    folder = log_dir(archive_root)
    with _LogLock(folder / ".lock"):
        make_private_dir(folder / HISTORY, exist_ok=True)
        tree = build_tree(ledger_lines(archive_root))
        latest = folder / LATEST
        if latest.exists():
            prev, _ = read_checkpoint_file(latest)
            _verified(prev, key.verifier, latest)
            why = mismatch(tree, prev, f"the last checkpoint ({latest})")
            if why:
                raise LogError(f"refusing to sign a new checkpoint: {why}", path=ledger_path(archive_root),
                               code="conflict.log-inconsistent")
        data = cpf.sign_checkpoint(key.origin, tree.size, tree.root(), key.name, key.private_key)
        cp = cpf.parse_checkpoint(data, "new checkpoint")
        history = folder / HISTORY / f"{tree.size:08d}.txt"
        try:
            write_new(history, data)
        except FileExistsError:
            old = history.read_bytes()
            if old != data:
                try:
                    kept = cpf.parse_checkpoint(old, str(history))
                except InvalidFormat:
                    kept = None
                if kept is None or kept.body != cp.body:
                    raise LogError(f"{history} holds another checkpoint for the same size: the ledger was "
                                   "rewritten since it was signed", path=history,
                                   code="conflict.log-inconsistent") from None
        replace_file(latest, data)
        return cp, data


# ----------------------------------------------------------------------------- proofs


def _tree_for(archive_root: Path, cp: Checkpoint, what: str) -> merkle.Tree:
    tree = build_tree(ledger_lines(archive_root), cp.size)
    why = mismatch(tree, cp, what)
    if why:
        raise LogError(why, path=ledger_path(archive_root), code="conflict.log-inconsistent")
    return tree


def inclusion(archive_root: Path, agreement_id: str, checkpoint: Checkpoint) -> list[dict[str, Any]]:
    """For each ledger entry of the agreement within the checkpoint: seq, leaf index, line, leaf hash, proof.

    Hashes are hex in the dicts; :func:`inclusion_entries` gives the typed form.
    """
    return [{"seq": e.seq, "leaf_index": e.leaf_index, "line": e.line.decode("utf-8"),
             "leaf_hash": e.leaf_hash.hex(), "proof": [h.hex() for h in e.proof]}
            for e in inclusion_entries(archive_root, agreement_id, checkpoint)]


def inclusion_entries(archive_root: Path, agreement_id: str, checkpoint: Checkpoint) -> list[InclusionEntry]:
    archive_root = Path(archive_root)
    needle = f'"agreement_id":"{agreement_id}"'.encode()
    tree = merkle.Tree()
    found: list[tuple[int, bytes]] = []
    where = str(ledger_path(archive_root))
    for line in ledger_lines(archive_root):
        if tree.size >= checkpoint.size:
            break
        index = tree.append(merkle.leaf_hash(line))
        if needle in line:  # cheap filter; the parse below decides
            try:
                entry = parse_entry(line, where, index + 1)
            except AgreementsError:
                continue
            if entry.agreement_id == agreement_id:
                found.append((index, line))
    why = mismatch(tree, checkpoint, "the checkpoint")
    if why:
        raise LogError(why, path=ledger_path(archive_root), code="conflict.log-inconsistent")
    if not found:
        raise LogError(f"the agreement {agreement_id} has no entry among the {checkpoint.size} ledger entries the "
                       "checkpoint covers (signed after it? sign a new checkpoint)", code="not-found.log-entry")
    return [InclusionEntry(index + 1, index, line, tree.leaf(index), tree.inclusion_proof(index, checkpoint.size))
            for index, line in found]


def inclusion_document(archive_root: Path, agreement_id: str, checkpoint_bytes: bytes) -> bytes:
    """The JSON proof document (formats.checkpoint.parse_proof) of an agreement's entries."""
    cp = cpf.parse_checkpoint(checkpoint_bytes)
    return cpf.inclusion_document(agreement_id, checkpoint_bytes, inclusion_entries(archive_root, agreement_id, cp))


def consistency(archive_root: Path, old_checkpoint: Checkpoint, new_checkpoint: Checkpoint) -> list[bytes]:
    """The RFC 9162 consistency proof from the old checkpoint's tree to the new one's, from the ledger.

    Raises LogError (conflict.log-inconsistent) when the ledger holds the tree of
    neither, or the old checkpoint is larger than the new.
    """
    if old_checkpoint.size > new_checkpoint.size:
        raise LogError(f"the old checkpoint covers {old_checkpoint.size} entries, more than the new one's "
                       f"{new_checkpoint.size}: give them oldest first", code="usage.log-order")
    tree = _tree_for(archive_root, new_checkpoint, "the new checkpoint")
    why = mismatch(tree, old_checkpoint, "the old checkpoint")
    if why:
        raise LogError(why, path=ledger_path(archive_root), code="conflict.log-inconsistent")
    return tree.consistency_proof(old_checkpoint.size, new_checkpoint.size)


def consistency_document(archive_root: Path, old_bytes: bytes, new_bytes: bytes) -> bytes:
    old, new = cpf.parse_checkpoint(old_bytes, "old checkpoint"), cpf.parse_checkpoint(new_bytes, "new checkpoint")
    return cpf.consistency_document(old_bytes, new_bytes, consistency(archive_root, old, new))


# ----------------------------------------------------------------------------- witness

WITNESS_NAME = "agreements-kit-witness"
WITNESS_KEY_FILE = "witness.key.pem"
WITNESS_PUB_FILE = "witness.pub"


@dataclass(frozen=True)
class WitnessKey:
    name: str
    private_key: Ed25519PrivateKey

    @property
    def verifier(self) -> VerifierKey:
        return cpf.vkey_for(self.name, self.private_key, cpf.COSIGNATURE_V1)


def create_witness_key(state_dir: Path, name: str = WITNESS_NAME, *, passphrase: bytes) -> WitnessKey:
    """A witness's own Ed25519 key in its state folder (outside any archive), with its own passphrase."""
    return WitnessKey(name, _new_key(Path(state_dir), WITNESS_KEY_FILE, WITNESS_PUB_FILE, name, passphrase,
                                     "witness key", "", cpf.COSIGNATURE_V1))


def load_witness_key(key_path: Path, passphrase: bytes) -> WitnessKey:
    """The witness key at ``key_path`` (its name from the ``witness.pub`` beside it)."""
    key_path = Path(key_path)
    return WitnessKey(*_load_key(key_path, key_path.with_name(WITNESS_PUB_FILE), passphrase, "witness key",
                                 f"no witness key at {key_path}: create one with 'agreements log witness-key init'",
                                 "wrong passphrase for the witness key", cpf.COSIGNATURE_V1))


def witness_log_dir(state_dir: Path, origin: str) -> Path:
    safe = "".join(ch if ch.isalnum() or ch in "-._" else "_" for ch in origin)
    return Path(state_dir) / "logs" / safe


def witness(state_dir: Path, key: WitnessKey, log_key: VerifierKey, checkpoint_bytes: bytes, *,
            ledger: Iterator[bytes] | None = None, proof: list[bytes] | None = None,
            now: int | None = None) -> tuple[bytes, Checkpoint | None]:
    """Check a new checkpoint against the last one this witness cosigned, then cosign it.

    Consistency is shown by an RFC 9162 proof: ``proof`` as given (from the log),
    or one computed from the archive's ``ledger`` lines, which must also hold the
    new checkpoint's tree. Refuses (LogError, code ``invalid.witness-*``, exit 1)
    a checkpoint not signed by ``log_key``, from another log, older than the last
    seen, or not consistent with it. Returns (the cosigned checkpoint, the previous).
    """
    cp = cpf.parse_checkpoint(checkpoint_bytes, "checkpoint")
    if not cpf.verify_note(cp.note, log_key):
        raise LogError(f"the checkpoint is not signed by the log key {log_key.name}+{log_key.key_id.hex()}",
                       code="invalid.witness-signature")
    if cp.origin != cpf.log_origin(log_key.public_key):
        raise LogError(f"the checkpoint's origin {cp.origin!r} is not the log key's", code="invalid.witness-origin")
    folder = witness_log_dir(state_dir, cp.origin)
    with _LogLock(Path(state_dir) / ".lock"):
        make_private_dir(folder / "cosigned", exist_ok=True)
        prev: Checkpoint | None = None
        if (folder / LATEST).exists():
            prev, _ = read_checkpoint_file(folder / LATEST)
        old_size = prev.size if prev else 0
        old_root = prev.root_hash if prev else merkle.EMPTY_ROOT
        if cp.size < old_size:
            raise LogError(f"the checkpoint covers {cp.size} entries but this witness already cosigned {old_size}: "
                           "the log went back (entries erased?)", code="invalid.witness-rollback")
        if ledger is not None:
            tree = build_tree(ledger, cp.size)
            why = mismatch(tree, cp, "the checkpoint")
            if why:
                raise LogError(f"refusing to cosign: {why}", code="invalid.witness-ledger")
            proof = tree.consistency_proof(old_size, cp.size)
        if proof is None:
            raise LogError("a consistency proof or the archive's ledger is needed", code="usage.log")
        consistent = (old_size == 0 and not proof) or \
            merkle.verify_consistency(old_size, cp.size, old_root, cp.root_hash, proof)
        if not consistent:
            raise LogError(f"refusing to cosign: the checkpoint ({cp.describe()}) is not consistent with the last one "
                           f"this witness cosigned (size {old_size}, root {old_root.hex()}): the log's history was "
                           "rewritten", code="invalid.witness-inconsistent")
        cosigned = cpf.cosign(cp, key.name, key.private_key, int(time.time()) if now is None else now)
        target = folder / "cosigned" / f"{cp.size:08d}.txt"
        if target.exists():
            replace_file(target, cosigned)  # a later cosignature of the same tree head
        else:
            write_new(target, cosigned)
        replace_file(folder / LATEST, cosigned)
        return cosigned, prev
