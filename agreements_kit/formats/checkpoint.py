"""Signed checkpoints of the ledger's log: C2SP signed-note, tlog-checkpoint and tlog-cosignature/v1.

Why this format: it is what Go's checksum database, Sigstore and the witness
networks use, so a checkpoint from this archive can be read and checked by tools
that know nothing about agreements, and cosigned by a witness that speaks C2SP.

A checkpoint is a *signed note* (c2sp.org/signed-note)::

    agreements-kit/ledger/3f2a9c0d1b7e4a55     origin: which log
    42                                         tree size: decimal, no leading zeros
    CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=   root hash: base64 of 32 bytes
                                               blank line
    — agreements-kit-log Az3grlgtzPIC...=          one or more signature lines

Each signature line is an em dash (U+2014), a space, the key name, a space and
base64(key id (4 bytes) || signature). Ed25519 note signatures (type 0x01) sign the
note text (the body up to and including its final newline); the key id is
SHA-256(name || 0x0A || 0x01 || public key)[:4]. Witness cosignatures (type 0x04,
c2sp.org/tlog-cosignature) carry key id || 8-byte big-endian POSIX time || signature
over ``"cosignature/v1\\ntime <T>\\n" || body``. Verifier keys are Go's
``golang.org/x/mod/sumdb/note`` text: ``NAME+HEX8KEYID+BASE64(type || public key)``.

The parser is strict: anything that is not exactly this shape (CRLF, a missing
blank line, a size with a leading zero, base64 that is not canonical, trailing
bytes) is :class:`InvalidFormat` with a ``format.checkpoint-*`` code and the line.

The log's proofs (:func:`parse_proof`) are RFC 8785 JSON documents that carry the
signed checkpoint they prove against, so a proof file checks with the log's
public key alone.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import struct
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from agreements_kit.errors import InvalidFormat
from agreements_kit.formats import jsonio, merkle, shape

ED25519 = 0x01
COSIGNATURE_V1 = 0x04
DASH = "\u2014 "
MAX_NOTE = 64 * 1024
MAX_SIGNATURES = 64
MAX_SIZE = 2**63 - 1
ORIGIN_PREFIX = "agreements-kit/ledger/"
COSIGN_HEADER = b"cosignature/v1\n"
_SIZE_RE = re.compile(r"0|[1-9][0-9]{0,18}")
_HEX8_RE = re.compile(r"[0-9a-f]{8}")


def _fail(message: str, where: str, line: int | None, what: str) -> InvalidFormat:
    return InvalidFormat(message, path=where, line=line, code=f"format.checkpoint-{what}")


def b64decode(text: str, where: str, line: int | None, what: str = "base64") -> bytes:
    """Standard base64 (RFC 4648 section 4), padded, canonical: one spelling per value, or InvalidFormat."""
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise _fail(f"{text[:60]!r} is not base64", where, line, what) from None
    if base64.b64encode(raw).decode("ascii") != text:
        raise _fail(f"{text[:60]!r} is not canonical base64 (padding or unused bits)", where, line, what)
    return raw


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def check_name(name: str, where: str = "key", line: int | None = None) -> str:
    """Key names are non-empty, without Unicode spaces or '+' (signed-note)."""
    if not name or "+" in name or any(ch.isspace() for ch in name) or any(ord(ch) < 0x20 for ch in name):
        raise _fail(f"{name[:60]!r} is not a key name (non-empty, no spaces, no '+')", where, line, "key-name")
    return name


def key_id(name: str, sig_type: int, public_key: bytes) -> bytes:
    """SHA-256(name || 0x0A || type || public key)[:4] (signed-note, tlog-cosignature)."""
    return hashlib.sha256(name.encode("utf-8") + b"\n" + bytes([sig_type]) + public_key).digest()[:4]


def log_origin(public_key: bytes) -> str:
    """This project's origin line for a log key: distinct for every log, derived from its public key."""
    return ORIGIN_PREFIX + hashlib.sha256(public_key).hexdigest()[:16]


# ----------------------------------------------------------------------------- verifier keys


@dataclass(frozen=True)
class VerifierKey:
    name: str
    sig_type: int  # ED25519 for a log, COSIGNATURE_V1 for a witness
    public_key: bytes

    @property
    def key_id(self) -> bytes:
        return key_id(self.name, self.sig_type, self.public_key)

    @property
    def text(self) -> str:
        return f"{self.name}+{self.key_id.hex()}+{b64(bytes([self.sig_type]) + self.public_key)}"

    def ed25519(self) -> Ed25519PublicKey:
        return Ed25519PublicKey.from_public_bytes(self.public_key)


def parse_vkey(text: str, where: str = "verifier key", types: tuple[int, ...] = (ED25519, COSIGNATURE_V1)
               ) -> VerifierKey:
    """``NAME+HEX8+BASE64(type || key)``, as golang.org/x/mod/sumdb/note.NewVerifier reads it (no spaces)."""
    parts = text.split("+")
    if len(parts) < 3:
        raise _fail("a verifier key is NAME+KEYID+KEY (three parts separated by '+')", where, None, "vkey")
    # base64 may itself contain '+': the name has none, the key id is the second part.
    name, hex_id, key_text = parts[0], parts[1], "+".join(parts[2:])
    check_name(name, where)
    if not _HEX8_RE.fullmatch(hex_id):
        raise _fail(f"{hex_id[:20]!r} is not a key id (8 lowercase hex digits)", where, None, "vkey")
    raw = b64decode(key_text, where, None, "vkey")
    if len(raw) != 33 or raw[0] not in types:
        raise _fail("the key is not an Ed25519 note key (type 0x01) or cosignature key (type 0x04) of 32 bytes",
                    where, None, "vkey")
    key = VerifierKey(name, raw[0], raw[1:])
    if key.key_id.hex() != hex_id:
        raise _fail(f"the key id {hex_id} does not match the key (expected {key.key_id.hex()})", where, None,
                    "vkey")
    return key


def vkey_for(name: str, private_key: Ed25519PrivateKey, sig_type: int = ED25519) -> VerifierKey:
    return VerifierKey(check_name(name), sig_type, private_key.public_key().public_bytes_raw())


# ----------------------------------------------------------------------------- signed notes


@dataclass(frozen=True)
class NoteSignature:
    name: str
    key_id: bytes  # 4 bytes
    value: bytes  # what follows the key id
    line: int


@dataclass(frozen=True)
class Note:
    text: bytes  # the signed text, with its final newline
    signatures: tuple[NoteSignature, ...]


def parse_note(data: bytes, where: str = "checkpoint") -> Note:
    """A C2SP signed note, strictly: UTF-8, no control characters but newline, text, blank line, signatures."""
    if len(data) > MAX_NOTE:
        raise _fail(f"larger than {MAX_NOTE} bytes", where, None, "too-large")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise _fail("not UTF-8 text", where, None, "encoding") from None
    if text.startswith("\ufeff"):
        raise _fail("starts with a byte-order mark", where, 1, "encoding")
    for number, line in enumerate(text.split("\n"), start=1):
        bad = next((ch for ch in line if ord(ch) < 0x20 or ord(ch) == 0x7f), None)
        if bad is not None:
            what = "a carriage return (CRLF line ends?)" if bad == "\r" else f"the control character {bad!r}"
            raise _fail(f"holds {what}: a signed note has only newline-terminated lines", where, number,
                        "control")
    if not text.endswith("\n"):
        raise _fail("does not end with a newline (cut short, or trailing data)", where,
                    text.count("\n") + 1, "newline")
    lines = text[:-1].split("\n")
    try:
        blank = len(lines) - 1 - lines[::-1].index("")
    except ValueError:
        raise _fail("no blank line between the text and the signatures", where, None, "no-signatures") from None
    if blank == 0:
        raise _fail("the note text is empty", where, 1, "empty")
    sig_lines = lines[blank + 1:]
    if not sig_lines:
        raise _fail("no signature lines after the blank line", where, blank + 1, "no-signatures")
    if len(sig_lines) > MAX_SIGNATURES:
        raise _fail(f"more than {MAX_SIGNATURES} signatures", where, blank + 2, "too-large")
    signatures = []
    for offset, line in enumerate(sig_lines):
        number = blank + 2 + offset
        if not line.startswith(DASH):
            raise _fail("a signature line starts with an em dash (U+2014) and a space", where, number,
                        "signature-line")
        parts = line[len(DASH):].split(" ")
        if len(parts) != 2:
            raise _fail("a signature line is '\u2014 NAME BASE64', separated by single spaces", where, number,
                        "signature-line")
        name, value = parts
        check_name(name, where, number)
        raw = b64decode(value, where, number)
        if len(raw) < 5:
            raise _fail("a signature is a 4-byte key id and at least one byte", where, number, "signature-line")
        signatures.append(NoteSignature(name, raw[:4], raw[4:], number))
    body = "\n".join(lines[:blank]) + "\n"
    return Note(body.encode("utf-8"), tuple(signatures))


def signature_line(name: str, kid: bytes, value: bytes) -> bytes:
    return f"{DASH}{check_name(name)} {b64(kid + value)}\n".encode()


def format_note(text: bytes, signature_lines: list[bytes]) -> bytes:
    return text + b"\n" + b"".join(signature_lines)


def sign_note(text: bytes, name: str, private_key: Ed25519PrivateKey) -> bytes:
    """The Ed25519 (type 0x01) signature line over ``text``."""
    key = vkey_for(name, private_key)
    return signature_line(name, key.key_id, private_key.sign(text))


def verify_note(note: Note, key: VerifierKey) -> bool:
    """True when ``key`` signed the note: at least one signature by it (name and id), and none of its fail."""
    if key.sig_type != ED25519:
        return False
    mine = [s for s in note.signatures if s.name == key.name and s.key_id == key.key_id]
    if not mine:
        return False
    public = key.ed25519()
    for sig in mine:
        try:
            public.verify(sig.value, note.text)
        except InvalidSignature:
            return False
    return True


# ----------------------------------------------------------------------------- checkpoints


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root_hash: bytes
    extensions: tuple[str, ...]
    note: Note

    @property
    def body(self) -> bytes:
        return self.note.text

    def describe(self) -> str:
        return f"size {self.size}, root {self.root_hash.hex()}"


def checkpoint_body(origin: str, size: int, root_hash: bytes, extensions: tuple[str, ...] = ()) -> bytes:
    if not origin or "\n" in origin or any(not e or "\n" in e for e in extensions):
        raise ValueError("origin and extension lines are non-empty single lines")
    if len(root_hash) != merkle.HASH_SIZE or not 0 <= size <= MAX_SIZE:
        raise ValueError("bad tree size or root hash")
    return "".join(f"{line}\n" for line in (origin, str(size), b64(root_hash), *extensions)).encode("utf-8")


def parse_body(body: bytes, where: str, note: Note | None = None) -> Checkpoint:
    """The checkpoint fields of a note text (tlog-checkpoint): origin, size, root hash, extension lines."""
    lines = body.decode("utf-8")[:-1].split("\n")
    if len(lines) < 3:
        raise _fail("a checkpoint has an origin, a tree size and a root hash line", where, len(lines) + 1,
                    "short")
    origin, size_text, root_text, *extensions = lines
    if not origin:
        raise _fail("the origin line is empty", where, 1, "origin")
    if not _SIZE_RE.fullmatch(size_text):
        raise _fail(f"the tree size {size_text[:30]!r} is not a decimal number without leading zeros", where, 2,
                    "size")
    size = int(size_text)
    if size > MAX_SIZE:
        raise _fail("the tree size is too large", where, 2, "size")
    root_hash = b64decode(root_text, where, 3, "root")
    if len(root_hash) != merkle.HASH_SIZE:
        raise _fail(f"the root hash has {len(root_hash)} bytes, not 32", where, 3, "root")
    for offset, ext in enumerate(extensions):
        if not ext:
            raise _fail("extension lines must not be empty", where, 4 + offset, "extension")
    return Checkpoint(origin, size, root_hash, tuple(extensions), note or Note(body, ()))


def parse_checkpoint(data: bytes, where: str = "checkpoint") -> Checkpoint:
    """A signed checkpoint, strictly parsed (signatures are NOT verified here: see :func:`verify_note`)."""
    note = parse_note(data, where)
    return parse_body(note.text, where, note)


def sign_checkpoint(origin: str, size: int, root_hash: bytes, name: str, private_key: Ed25519PrivateKey) -> bytes:
    body = checkpoint_body(origin, size, root_hash)
    return format_note(body, [sign_note(body, name, private_key)])


# ----------------------------------------------------------------------------- cosignatures


def cosigned_message(body: bytes, timestamp: int) -> bytes:
    return COSIGN_HEADER + f"time {timestamp}\n".encode("ascii") + body


def cosign(checkpoint: Checkpoint, name: str, private_key: Ed25519PrivateKey, timestamp: int) -> bytes:
    """The checkpoint with a tlog-cosignature/v1 line (type 0x04) added after its signatures."""
    if not 0 <= timestamp <= MAX_SIZE:
        raise ValueError("timestamp out of range")
    key = vkey_for(name, private_key, COSIGNATURE_V1)
    value = struct.pack(">Q", timestamp) + private_key.sign(cosigned_message(checkpoint.body, timestamp))
    lines = [signature_line(s.name, s.key_id, s.value) for s in checkpoint.note.signatures
             if not (s.name == key.name and s.key_id == key.key_id)]
    return format_note(checkpoint.body, [*lines, signature_line(name, key.key_id, value)])


def verify_cosignature(checkpoint: Checkpoint, key: VerifierKey) -> int | None:
    """The time (POSIX seconds) of a valid cosignature by ``key``, or None."""
    if key.sig_type != COSIGNATURE_V1:
        return None
    found: int | None = None
    for sig in checkpoint.note.signatures:
        if sig.name != key.name or sig.key_id != key.key_id:
            continue
        if len(sig.value) != 8 + 64:
            return None
        (timestamp,) = struct.unpack(">Q", sig.value[:8])
        if timestamp > MAX_SIZE:
            return None
        try:
            key.ed25519().verify(sig.value[8:], cosigned_message(checkpoint.body, timestamp))
        except InvalidSignature:
            return None
        found = timestamp if found is None else max(found, timestamp)
    return found


# ----------------------------------------------------------------------------- proofs (JSON)

PROOF_FORMAT = "agreements-kit/log-proof"
PROOF_VERSION = 1
MAX_PROOF_DOC = 4 * 1024 * 1024
_HASH = shape.sha256
_HASHES = shape.list_of(_HASH, merkle.MAX_PROOF)
_ENTRY = shape.obj({"seq": shape.integer(1, MAX_SIZE), "leaf_index": shape.integer(0, MAX_SIZE),
                    "line": shape.string(64 * 1024), "leaf_hash": _HASH, "proof": _HASHES})
_NOTE_TEXT = shape.string(MAX_NOTE)


@dataclass(frozen=True)
class InclusionEntry:
    seq: int
    leaf_index: int
    line: bytes
    leaf_hash: bytes
    proof: list[bytes]


@dataclass(frozen=True)
class InclusionProof:
    """Every ledger line of one agreement, each with its RFC 9162 inclusion proof against one checkpoint."""

    agreement_id: str
    checkpoint: bytes
    entries: list[InclusionEntry]


@dataclass(frozen=True)
class ConsistencyProof:
    old_checkpoint: bytes
    new_checkpoint: bytes
    proof: list[bytes]


def inclusion_document(agreement_id: str, checkpoint: bytes, entries: list[InclusionEntry]) -> bytes:
    return jsonio.jcs({
        "format": PROOF_FORMAT, "format_version": PROOF_VERSION, "kind": "inclusion",
        "agreement_id": agreement_id, "checkpoint": checkpoint.decode("utf-8"),
        "entries": [{"seq": e.seq, "leaf_index": e.leaf_index, "line": e.line.decode("utf-8"),
                     "leaf_hash": e.leaf_hash.hex(), "proof": [h.hex() for h in e.proof]} for e in entries],
    }) + b"\n"


def consistency_document(old_checkpoint: bytes, new_checkpoint: bytes, proof: list[bytes]) -> bytes:
    return jsonio.jcs({
        "format": PROOF_FORMAT, "format_version": PROOF_VERSION, "kind": "consistency",
        "old_checkpoint": old_checkpoint.decode("utf-8"), "new_checkpoint": new_checkpoint.decode("utf-8"),
        "proof": [h.hex() for h in proof],
    }) + b"\n"


def parse_proof(data: bytes, where: str = "proof") -> InclusionProof | ConsistencyProof:
    """A proof document (RFC 8785 JSON and a final newline), strictly; the checkpoints in it are parsed too."""
    if not data.endswith(b"\n"):
        raise InvalidFormat("a proof document ends with a newline", path=where, code="format.proof-newline")
    value: Any = jsonio.parse(data[:-1], where, max_bytes=MAX_PROOF_DOC, max_depth=4, canonical_form="rfc8785")
    base = {"format": shape.const(PROOF_FORMAT), "format_version": shape.const(PROOF_VERSION),
            "kind": shape.string(20, choices=("inclusion", "consistency"))}
    kind = value.get("kind") if isinstance(value, dict) else None
    if kind == "consistency":
        d = shape.fields(value, where, {**base, "old_checkpoint": _NOTE_TEXT, "new_checkpoint": _NOTE_TEXT,
                                        "proof": _HASHES})
        old, new = d["old_checkpoint"].encode("utf-8"), d["new_checkpoint"].encode("utf-8")
        parse_checkpoint(old, f"{where}: old_checkpoint")
        parse_checkpoint(new, f"{where}: new_checkpoint")
        return ConsistencyProof(old, new, [bytes.fromhex(h) for h in d["proof"]])
    d = shape.fields(value, where, {**base, "agreement_id": shape.string(64), "checkpoint": _NOTE_TEXT,
                                    "entries": shape.list_of(_ENTRY, 10_000)})
    checkpoint = d["checkpoint"].encode("utf-8")
    parse_checkpoint(checkpoint, f"{where}: checkpoint")
    entries = []
    for i, e in enumerate(d["entries"]):
        line = e["line"].encode("utf-8")
        if merkle.leaf_hash(line).hex() != e["leaf_hash"]:
            raise InvalidFormat(f"entries[{i}]: leaf_hash is not the hash of its line", path=where,
                                code="format.proof-leaf")
        if e["leaf_index"] != e["seq"] - 1:
            raise InvalidFormat(f"entries[{i}]: leaf_index is not seq - 1", path=where, code="format.proof-leaf")
        entries.append(InclusionEntry(e["seq"], e["leaf_index"], line, bytes.fromhex(e["leaf_hash"]),
                                      [bytes.fromhex(h) for h in e["proof"]]))
    return InclusionProof(d["agreement_id"], checkpoint, entries)
