"""Anchors: what an auditor checks with a checkpoint from outside the archive.

A checkpoint from a client's receipt or a witness's state was signed when the
ledger had SIZE lines; the archive cannot take it back. Against it the ledger
shows whether its tail was erased (fewer lines than SIZE) or its history rewritten
(the first SIZE lines no longer hash to the signed root), even when the hash chain
was recomputed. Every function returns a list of ``(code, message)`` problems (empty
when all is well) rather than raising, so the archive-wide audit can report every
problem at once. Codes:

- ``checkpoint.format``: not a checkpoint at all;
- ``checkpoint.signature``: no valid signature by the given log key;
- ``checkpoint.origin``: a checkpoint of another log;
- ``checkpoint.inconsistent``: two checkpoints that cannot both be true;
- ``checkpoint.cosignature``: no valid cosignature by the given witness key;
- ``checkpoint.missing``: the archive has no stored checkpoint;
- ``ledger.truncated``: the checkpoint covers more entries than the ledger has;
- ``ledger.rewritten``: the ledger's first SIZE entries hash to another root;
- ``proof.inclusion``: an inclusion proof that does not prove what it says.

A verifier key that cannot be read is the auditor's error, not the archive's: it
raises InvalidFormat (exit 2, "could not check").
"""

from __future__ import annotations

from pathlib import Path

from agreements_kit.errors import InvalidFormat
from agreements_kit.formats import checkpoint as cpf
from agreements_kit.formats import merkle
from agreements_kit.formats.checkpoint import Checkpoint, ConsistencyProof, InclusionProof, VerifierKey
from agreements_kit.store import tlog
from agreements_kit.store.ledger import Ledger

Problem = tuple[str, str]


def _key(text: str | VerifierKey, types: tuple[int, ...] = (cpf.ED25519,)) -> VerifierKey:
    if isinstance(text, VerifierKey):
        return text
    return cpf.parse_vkey(text.strip(), "the verifier key", types)


def _parse(data: bytes, what: str) -> tuple[Checkpoint | None, list[Problem]]:
    try:
        return cpf.parse_checkpoint(data, what), []
    except InvalidFormat as exc:
        return None, [("checkpoint.format", f"{what} is not a signed checkpoint: {exc}")]


def _signed(cp: Checkpoint, key: VerifierKey, what: str) -> list[Problem]:
    if not cpf.verify_note(cp.note, key):
        names = ", ".join(f"{s.name}+{s.key_id.hex()}" for s in cp.note.signatures)
        return [("checkpoint.signature",
                 f"{what} has no valid signature by the log key {key.name}+{key.key_id.hex()} (it is signed by: "
                 f"{names}); it was altered or made by someone else, so its size and root prove nothing")]
    expected = cpf.log_origin(key.public_key)
    if cp.origin != expected:
        return [("checkpoint.origin", f"{what} is from the log {cp.origin!r}, not this log key's {expected!r}")]
    return []


def _against(tree: merkle.Tree, cp: Checkpoint, what: str) -> list[Problem]:
    if cp.size > tree.size:
        return [("ledger.truncated",
                 f"the ledger has {tree.size} entries but {what} covers {cp.size}: entries were erased from its end")]
    if tree.root(cp.size) != cp.root_hash:
        return [("ledger.rewritten",
                 f"the ledger's first {cp.size} entries do not hash to the root {what} signed "
                 f"({cp.root_hash.hex()[:16]}...): the ledger was rewritten after that checkpoint, even if its "
                 "hash chain still links")]
    return []


def _ledger_tree(ledger_path: Path, limit: int | None = None) -> merkle.Tree:
    return tlog.build_tree((line for _, line in Ledger(Path(ledger_path)).lines()), limit)


def check_checkpoint(ledger_path: Path, checkpoint_bytes: bytes, verifier_key_text: str | VerifierKey,
                     what: str = "the checkpoint") -> list[Problem]:
    """Is this a checkpoint signed by the log key, and does the ledger still hold its tree?"""
    key = _key(verifier_key_text)
    cp, problems = _parse(checkpoint_bytes, what)
    if cp is None:
        return problems
    problems = _signed(cp, key, what)
    if problems:
        return problems  # an unsigned size and root prove nothing about the ledger
    return _against(_ledger_tree(ledger_path, cp.size), cp, what)


def check_archive_checkpoints(archive_root: Path, verifier_key_text: str | VerifierKey) -> list[Problem]:
    """Every checkpoint stored in ``signed/log/`` verifies and agrees with the ledger (one pass over it)."""
    key = _key(verifier_key_text)
    folder = tlog.log_dir(archive_root)
    files = sorted((folder / tlog.HISTORY).glob("*.txt")) if (folder / tlog.HISTORY).is_dir() else []
    latest = folder / tlog.LATEST
    if latest.is_file():
        files.append(latest)
    if not files:
        return [("checkpoint.missing", f"the archive has no signed checkpoint in {folder}: its ledger is anchored "
                                       "to nothing (run 'agreements log checkpoint')")]
    tree = _ledger_tree(tlog.ledger_path(archive_root))
    problems: list[Problem] = []
    largest: Checkpoint | None = None
    latest_cp: Checkpoint | None = None
    for path in files:
        what = f"the stored checkpoint {path.relative_to(Path(archive_root))}"
        cp, found = _parse(path.read_bytes(), what)
        if cp is None:
            problems += found
            continue
        found = _signed(cp, key, what) or _against(tree, cp, what)
        if not found and path.parent.name == tlog.HISTORY and path.name != f"{cp.size:08d}.txt":
            found = [("checkpoint.format", f"{what} is named for another size than its {cp.size}")]
        problems += found
        if found:
            continue
        if path == latest:
            latest_cp = cp
        elif largest is None or cp.size > largest.size:
            largest = cp
    if latest_cp is not None and largest is not None and latest_cp.size < largest.size:
        problems.append(("checkpoint.inconsistent",
                         f"the latest checkpoint covers {latest_cp.size} entries but an earlier one covers "
                         f"{largest.size}: the latest was replaced by an older one"))
    return problems


def check_consistency(old_bytes: bytes, new_bytes: bytes, proof: list[bytes],
                      key: str | VerifierKey) -> list[Problem]:
    """Both checkpoints are the log's, and ``proof`` shows the old tree is a prefix of the new."""
    vkey = _key(key)
    old, problems = _parse(old_bytes, "the old checkpoint")
    new, more = _parse(new_bytes, "the new checkpoint")
    problems += more
    if old is None or new is None:
        return problems
    problems += _signed(old, vkey, "the old checkpoint") + _signed(new, vkey, "the new checkpoint")
    if problems:
        return problems
    if old.size > new.size:
        return [("checkpoint.inconsistent",
                 f"the old checkpoint covers {old.size} entries, the new one only {new.size}: the log shrank "
                 "(entries erased), or they were given in the wrong order")]
    if old.size == 0 and not proof and old.root_hash == merkle.EMPTY_ROOT:  # the empty tree is in every tree
        return []
    if not merkle.verify_consistency(old.size, new.size, old.root_hash, new.root_hash, proof):
        return [("checkpoint.inconsistent",
                 f"the checkpoint of {new.size} entries is not an extension of the one of {old.size} entries "
                 f"(root {old.root_hash.hex()[:16]}...): the log's history was rewritten between them, or the "
                 "proof is wrong")]
    return []


def check_consistency_document(data: bytes, key: str | VerifierKey) -> list[Problem]:
    try:
        doc = cpf.parse_proof(data, "the proof")
    except InvalidFormat as exc:
        return [("checkpoint.format", f"not a consistency proof: {exc}")]
    if not isinstance(doc, ConsistencyProof):
        return [("checkpoint.format", "this is an inclusion proof, not a consistency proof")]
    return check_consistency(doc.old_checkpoint, doc.new_checkpoint, doc.proof, key)


def check_cosignature(checkpoint_bytes: bytes, witness_key_text: str | VerifierKey) -> list[Problem]:
    """The checkpoint carries a valid tlog-cosignature/v1 by this witness."""
    wkey = _key(witness_key_text, (cpf.COSIGNATURE_V1,))
    cp, problems = _parse(checkpoint_bytes, "the checkpoint")
    if cp is None:
        return problems
    if cpf.verify_cosignature(cp, wkey) is None:
        return [("checkpoint.cosignature",
                 f"the checkpoint has no valid cosignature by the witness {wkey.name}+{wkey.key_id.hex()}: the "
                 "witness never saw this tree head, or it was altered after")]
    return []


def check_inclusion(data: bytes, key: str | VerifierKey, agreement_id: str | None = None) -> list[Problem]:
    """An inclusion proof document: its checkpoint is the log's, and every entry's proof reaches its root."""
    vkey = _key(key)
    try:
        doc = cpf.parse_proof(data, "the proof")
    except InvalidFormat as exc:
        return [("proof.inclusion", f"not an inclusion proof: {exc}")]
    if not isinstance(doc, InclusionProof):
        return [("proof.inclusion", "this is a consistency proof, not an inclusion proof")]
    cp = cpf.parse_checkpoint(doc.checkpoint, "the proof's checkpoint")
    problems = _signed(cp, vkey, "the proof's checkpoint")
    if problems:
        return problems
    if agreement_id is not None and doc.agreement_id != agreement_id:
        problems.append(("proof.inclusion", f"the proof is for {doc.agreement_id}, not {agreement_id}"))
    if not doc.entries:
        problems.append(("proof.inclusion", "the proof holds no ledger entry"))
    needle = f'"agreement_id":"{doc.agreement_id}"'.encode()
    for e in doc.entries:
        if needle not in e.line:
            problems.append(("proof.inclusion", f"ledger entry {e.seq} is not about {doc.agreement_id}"))
        if not merkle.verify_inclusion(e.leaf_index, cp.size, e.leaf_hash, e.proof, cp.root_hash):
            problems.append(("proof.inclusion",
                             f"ledger entry {e.seq} is not in the tree of {cp.size} entries the checkpoint signed "
                             "(the proof or the line was altered)"))
    return problems
