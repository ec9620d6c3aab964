"""RFC 9162 (Certificate Transparency 2.0) Merkle tree hashing, proofs and their verification.

Why: the ledger's hash chain shows a change in the middle, but not a cut at the end,
nor a whole ledger rewritten with its chain recomputed. A Merkle tree over the
ledger's lines, whose root is signed in checkpoints that leave the practice (on the
client's receipt, with a witness), turns both into something a third party can
prove: an *inclusion proof* shows a line is in the tree a checkpoint signed; a
*consistency proof* shows an older checkpoint's tree is a prefix of a newer one's.

Hashing (RFC 9162 section 2.1.1): ``leaf_hash(d) = SHA-256(0x00 || d)``,
``node_hash(l, r) = SHA-256(0x01 || l || r)``, the empty tree's root is
``SHA-256("")``, and a tree of ``n > 1`` leaves splits at ``k``, the largest power of
two below ``n``. Proofs are lists of 32-byte hashes, bottom-up, exactly as RFC 9162
sections 2.1.3.1 and 2.1.4.1 produce them; the verifiers are the algorithms of
sections 2.1.3.2 and 2.1.4.2 (with transparency-dev/merkle's handling of the edge
cases: equal sizes need an empty proof and equal roots; a proof from size 0 is
refused as meaningless).

:class:`Tree` keeps every complete subtree's hash, so appending is O(1) amortized,
a root of any size costs O(log n) and a proof O(log n) hashes after the O(n) build.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Sequence

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()
MAX_PROOF = 128  # 2 * 64: a proof in any tree of fewer than 2**64 leaves is shorter


def leaf_hash(data: bytes) -> bytes:
    """The hash of one leaf (RFC 9162 2.1.1): SHA-256(0x00 || data)."""
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """The hash of an interior node: SHA-256(0x01 || left || right)."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two smaller than ``n`` (n >= 2): the size of the left subtree."""
    return 1 << ((n - 1).bit_length() - 1)


class Tree:
    """An append-only Merkle tree of leaf hashes.

    ``_levels[h][i]`` is the hash of the complete subtree of ``2**h`` leaves that
    starts at leaf ``i * 2**h``; only complete subtrees are kept, so every hash is
    computed once, when its last leaf arrives.
    """

    def __init__(self, leaf_hashes: Iterable[bytes] = ()) -> None:
        self._levels: list[list[bytes]] = [[]]
        for h in leaf_hashes:
            self.append(h)

    @property
    def size(self) -> int:
        return len(self._levels[0])

    def append(self, leaf: bytes) -> int:
        """Add a leaf hash; returns its index (0-based)."""
        if len(leaf) != HASH_SIZE:
            raise ValueError("a leaf hash has 32 bytes")
        index = len(self._levels[0])
        self._levels[0].append(leaf)
        level, position = 0, index
        while position & 1:  # this node completed its parent: a right child
            row = self._levels[level]
            parent = node_hash(row[position - 1], row[position])
            level += 1
            position >>= 1
            if len(self._levels) == level:
                self._levels.append([])
            self._levels[level].append(parent)
        return index

    def append_data(self, data: bytes) -> int:
        return self.append(leaf_hash(data))

    def leaf(self, index: int) -> bytes:
        return self._levels[0][index]

    def _subtree(self, start: int, n: int) -> bytes:
        """MTH(D[start:start+n]) for a range the tree's splits produce (``start`` a multiple of ``_split``)."""
        if n == 0:
            return EMPTY_ROOT
        if n & (n - 1) == 0:  # complete: stored
            return self._levels[n.bit_length() - 1][start // n]
        k = _split(n)
        return node_hash(self._subtree(start, k), self._subtree(start + k, n - k))

    def root(self, size: int | None = None) -> bytes:
        """The root of the first ``size`` leaves (all of them by default)."""
        size = self.size if size is None else size
        self._check_size(size)
        return self._subtree(0, size)

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """RFC 9162 2.1.3.1 PATH(index, D[0:size])."""
        size = self.size if size is None else size
        self._check_size(size)
        if not 0 <= index < size:
            raise ValueError(f"leaf {index} is not in a tree of {size} leaves")
        siblings: list[bytes] = []
        start, n, m = 0, size, index
        while n > 1:
            k = _split(n)
            if m < k:
                siblings.append(self._subtree(start + k, n - k))
                n = k
            else:
                siblings.append(self._subtree(start, k))
                start, n, m = start + k, n - k, m - k
        siblings.reverse()
        return siblings

    def consistency_proof(self, old_size: int, new_size: int | None = None) -> list[bytes]:
        """RFC 9162 2.1.4.1 PROOF(old_size, D[0:new_size]); empty when the sizes are equal or old is 0."""
        new_size = self.size if new_size is None else new_size
        self._check_size(new_size)
        if not 0 <= old_size <= new_size:
            raise ValueError(f"no consistency proof from {old_size} to {new_size} leaves")
        if old_size in (0, new_size):
            return []
        siblings: list[bytes] = []
        start, n, m, whole = 0, new_size, old_size, True
        while m != n:
            k = _split(n)
            if m <= k:
                siblings.append(self._subtree(start + k, n - k))
                n = k
            else:
                siblings.append(self._subtree(start, k))
                start, n, m, whole = start + k, n - k, m - k, False
        siblings.reverse()
        return siblings if whole else [self._subtree(start, n), *siblings]

    def _check_size(self, size: int) -> None:
        if not 0 <= size <= self.size:
            raise ValueError(f"the tree has {self.size} leaves, not {size}")


def root(leaf_hashes: Sequence[bytes]) -> bytes:
    """MTH of these leaf hashes, in O(n) hashes."""
    return Tree(leaf_hashes).root()


def inclusion_proof(index: int, leaf_hashes: Sequence[bytes]) -> list[bytes]:
    return Tree(leaf_hashes).inclusion_proof(index)


def consistency_proof(old_size: int, leaf_hashes: Sequence[bytes]) -> list[bytes]:
    return Tree(leaf_hashes).consistency_proof(old_size)


def _same(a: bytes, b: bytes) -> bool:
    return hmac.compare_digest(a, b)


def _well_formed(hashes: Sequence[bytes]) -> bool:
    return len(hashes) <= MAX_PROOF and all(isinstance(h, bytes) and len(h) == HASH_SIZE for h in hashes)


def verify_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes], root_hash: bytes) -> bool:
    """RFC 9162 2.1.3.2: does ``proof`` show leaf ``index`` (0-based) with hash ``leaf`` in the tree of ``size``?"""
    if not 0 <= index < size or not _well_formed([leaf, *proof]):
        return False
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and _same(r, root_hash)


def verify_consistency(old_size: int, new_size: int, old_root: bytes, new_root: bytes,
                       proof: Sequence[bytes]) -> bool:
    """RFC 9162 2.1.4.2: is the tree of ``old_size`` leaves with ``old_root`` a prefix of the newer one?"""
    if old_size < 0 or new_size < old_size:
        return False
    if old_size == new_size:
        return old_size > 0 and not proof and _same(old_root, new_root)
    if old_size == 0 or not proof or not _well_formed([old_root, *proof]):
        return False
    path = list(proof)
    if old_size & (old_size - 1) == 0:  # a complete left subtree: its root is the proof's start
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return sn == 0 and _same(fr, old_root) and _same(sr, new_root)
