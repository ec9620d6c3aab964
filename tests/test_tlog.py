"""The transparency log: RFC 9162 hashing held against pymerkle and published vectors, C2SP notes held
against Go's and sum.golang.org's bytes, strict checkpoint parsing, and the log over a real archive.

Vectors (tests/vectors/tlog/): ``rfc6962-transparency-dev.json`` is the certificate-transparency
reference tree (8 leaves, roots of sizes 0..8, every complete subtree) and transparency-dev/merkle's
196 inclusion and consistency probes (happy paths and mutations that must fail);
``signed-notes.json`` holds notes signed by Go's sumdb/note tests, by sum.golang.org itself, and the
C2SP specification's example. pymerkle 7 with its default ``security=True`` hashes exactly as RFC 9162
(0x00 leaf prefix, 0x01 node prefix, SHA-256 of "" for the empty tree, right-leaning split at the
largest power of two), which the vector test below shows on the RFC leaves. Its inclusion proofs are
RFC 9162's (its path is the leaf then the RFC siblings bottom-up), so they are checked both ways; its
consistency proofs decompose the tree differently (they go down to a leaf where RFC 9162 stops at a
subtree), so ours are checked against its roots and its proofs are converted to RFC form (each RFC
node hashed from the ranges pymerkle gives) and checked with our verifier.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import os
import shutil
import stat
import struct
from pathlib import Path

import click
import pymerkle
import pytest
from click.testing import CliRunner
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from helpers import jcs_line, ledger_entries
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pymerkle.core import _consistency_path_layout, _inclusion_path_layout

from agreements_kit.cli.commands import main
from agreements_kit.cli.log import log as log_group
from agreements_kit.errors import InvalidFormat, LogError
from agreements_kit.formats import checkpoint as cpf
from agreements_kit.formats import merkle
from agreements_kit.store import tlog
from agreements_kit.verification import anchors

VECTORS = Path(__file__).parent / "vectors" / "tlog"
RFC = json.loads((VECTORS / "rfc6962-transparency-dev.json").read_text())
NOTES = json.loads((VECTORS / "signed-notes.json").read_text())
RFC_LEAVES = [merkle.leaf_hash(bytes.fromhex(x)) for x in RFC["leaf_inputs"]]

if "log" not in main.commands:  # until cli/commands.py registers the group, as it will
    main.add_command(log_group)


def b64(s: str | None) -> bytes:
    return base64.b64decode(s) if s else b""


# --------------------------------------------------------------------------- RFC 6962/9162 vectors


def test_reference_roots_and_subtrees():
    tree = merkle.Tree(RFC_LEAVES)
    assert [tree.root(n).hex() for n in range(9)] == RFC["root_hashes"]
    assert merkle.root([]) == merkle.EMPTY_ROOT == bytes.fromhex(RFC["root_hashes"][0])
    for level, row in enumerate(RFC["node_hashes"]):
        width = 1 << level
        for i, want in enumerate(row):
            assert merkle.root(RFC_LEAVES[i * width:(i + 1) * width]).hex() == want


@pytest.mark.parametrize("probe", RFC["inclusion_probes"], ids=lambda p: p["file"])
def test_inclusion_probe(probe):
    ok = merkle.verify_inclusion(probe["leafIdx"], probe["treeSize"], b64(probe["leafHash"]),
                                 [b64(x) for x in probe["proof"] or []], b64(probe["root"]))
    assert ok is not probe["wantErr"], probe["desc"]


@pytest.mark.parametrize("probe", RFC["consistency_probes"], ids=lambda p: p["file"])
def test_consistency_probe(probe):
    ok = merkle.verify_consistency(probe["size1"], probe["size2"], b64(probe["root1"]), b64(probe["root2"]),
                                   [b64(x) for x in probe["proof"] or []])
    assert ok is not probe["wantErr"], probe["desc"]


def test_we_generate_the_reference_proofs():
    """Every happy-path probe over the reference leaves is exactly the proof we produce."""
    tree = merkle.Tree(RFC_LEAVES)
    inc = con = 0
    for p in RFC["inclusion_probes"]:
        if not p["wantErr"] and p["treeSize"] <= 8 and b64(p["root"]) == tree.root(p["treeSize"]):
            assert tree.inclusion_proof(p["leafIdx"], p["treeSize"]) == [b64(x) for x in p["proof"] or []]
            inc += 1
    for p in RFC["consistency_probes"]:
        if not p["wantErr"] and p["size1"] > 0 and p["size2"] <= 8 and b64(p["root2"]) == tree.root(p["size2"]):
            assert tree.consistency_proof(p["size1"], p["size2"]) == [b64(x) for x in p["proof"] or []]
            con += 1
    assert inc >= 5 and con >= 5


def test_pymerkle_hashes_as_rfc9162():
    """pymerkle's defaults (security on) give the RFC reference roots: no prefix or split difference."""
    ref = pymerkle.InmemoryTree(algorithm="sha256")
    assert ref.security and ref.leaf_prefix == b"\x00" and ref.node_prefix == b"\x01"
    for x in RFC["leaf_inputs"]:
        ref.append_entry(bytes.fromhex(x))
    assert [ref.get_root(n).hex() for n in range(9)] == RFC["root_hashes"]


# --------------------------------------------------------------------------- differential against pymerkle


def _rfc_consistency_ranges(m: int, n: int) -> list[tuple[int, int]]:
    """The leaf ranges of RFC 9162's PROOF(m, D[n]) nodes, bottom-up (an independent recursion)."""
    def sub(m: int, start: int, n: int, whole: bool) -> list[tuple[int, int]]:
        if m == n:
            return [] if whole else [(start, start + n)]
        k = 1 << ((n - 1).bit_length() - 1)
        if m <= k:
            return sub(m, start, k, whole) + [(start + k, start + n)]
        return sub(m - k, start + k, n - k, False) + [(start, start + k)]
    return sub(m, 0, n, True)


def _range_hash(known: dict[tuple[int, int], bytes], start: int, end: int) -> bytes:
    if (start, end) in known:
        return known[(start, end)]
    n = end - start
    k = 1 << ((n - 1).bit_length() - 1)
    return merkle.node_hash(_range_hash(known, start, start + k), _range_hash(known, start + k, end))


def _pymerkle_consistency_as_rfc(ref, m: int, n: int) -> list[bytes]:
    proof = ref.prove_consistency(m, n)
    _, _, ranges = _consistency_path_layout(m, n)
    known = dict(zip(ranges, proof.path, strict=True))
    return [_range_hash(known, a, b) for a, b in _rfc_consistency_ranges(m, n)]


leaf_sets = st.lists(st.binary(max_size=40), min_size=1, max_size=70)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=leaf_sets, picks=st.data())
def test_differential_pymerkle(data, picks):
    ref = pymerkle.InmemoryTree(algorithm="sha256")
    for d in data:
        ref.append_entry(d)
    tree = merkle.Tree(merkle.leaf_hash(d) for d in data)
    n = len(data)
    for size in range(n + 1):
        assert tree.root(size) == ref.get_root(size)
    size = picks.draw(st.integers(1, n), label="size")
    index = picks.draw(st.integers(0, size - 1), label="index")
    root = ref.get_root(size)
    ours = tree.inclusion_proof(index, size)
    # ours -> pymerkle's verifier
    rule, _ = _inclusion_path_layout(index + 1, size)
    pymerkle.verify_inclusion(tree.leaf(index), root,
                              pymerkle.InclusionProof("sha256", True, size, index + 1, rule, [tree.leaf(index), *ours]),
                              index=index + 1, size=size)
    # pymerkle's proof -> our verifier
    theirs = ref.prove_inclusion(index + 1, size)
    assert theirs.path[1:] == ours
    assert merkle.verify_inclusion(index, size, theirs.path[0], theirs.path[1:], root)
    assert not merkle.verify_inclusion(index, size, merkle.leaf_hash(b"other" + data[index]), ours, root)
    # consistency
    old = picks.draw(st.integers(1, size), label="old")
    old_root = ref.get_root(old)
    proof = tree.consistency_proof(old, size)
    assert merkle.verify_consistency(old, size, old_root, root, proof)
    pymerkle.verify_consistency(old_root, root, ref.prove_consistency(old, size), prior_size=old, later_size=size)
    assert _pymerkle_consistency_as_rfc(ref, old, size) == proof
    if old < size:
        assert not merkle.verify_consistency(old, size, merkle.leaf_hash(b"x"), root, proof)
        if proof:
            bad = [*proof[:-1], bytes(32)]
            assert not merkle.verify_consistency(old, size, old_root, root, bad)


def test_hundred_thousand_leaves():
    leaves = [merkle.leaf_hash(i.to_bytes(4, "big")) for i in range(100_000)]
    tree = merkle.Tree(leaves)
    ref = pymerkle.InmemoryTree(algorithm="sha256", disable_cache=True)
    for i in range(100_000):
        ref.append_entry(i.to_bytes(4, "big"))
    assert tree.root() == ref.get_root()
    assert tree.root(65_537) == ref.get_root(65_537)
    for index in (0, 1, 65_535, 65_536, 99_999):
        assert merkle.verify_inclusion(index, 100_000, leaves[index], tree.inclusion_proof(index), tree.root())
    assert merkle.verify_consistency(70_001, 100_000, tree.root(70_001), tree.root(),
                                     tree.consistency_proof(70_001))


# --------------------------------------------------------------------------- signed notes: others' bytes


@pytest.mark.parametrize("vector", NOTES["notes"], ids=lambda v: v["name"])
def test_notes_signed_by_others_verify(vector):
    key = cpf.parse_vkey(vector["vkey"])
    assert key.text == vector["vkey"]
    data = vector["signed"].encode("utf-8")
    note = cpf.parse_note(data)
    assert cpf.verify_note(note, key)
    changed = cpf.parse_note(data.replace(b"\n\n", b" \n\n", 1) if b" \n\n" not in data else data)
    assert not cpf.verify_note(changed, key)
    if vector["checkpoint"]:
        cp = cpf.parse_checkpoint(data)
        assert (cp.origin, cp.size, cpf.b64(cp.root_hash)) == (vector["origin"], vector["tree_size"],
                                                                vector["root_hash_base64"])


def test_we_sign_as_go_does():
    vector = NOTES["notes"][0]
    seed = base64.b64decode(vector["skey"].split("+", 4)[4])
    assert seed[0] == cpf.ED25519
    key = Ed25519PrivateKey.from_private_bytes(seed[1:])
    assert cpf.vkey_for("PeterNeumann", key).text == vector["vkey"]
    text = vector["text"].encode()
    assert cpf.format_note(text, [cpf.sign_note(text, "PeterNeumann", key)]) == vector["signed"].encode()


@pytest.mark.parametrize("text", [
    "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10T",  # cut
    "PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # wrong id
    "PeterNeumann+C74F20A3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # upper-case id
    "PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # unknown type
    "PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY==",  # long key
    "Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # space in name
    "PeterNeumann+c74f20a3",
])
def test_bad_verifier_keys(text):
    with pytest.raises(InvalidFormat) as exc:
        cpf.parse_vkey(text)
    assert exc.value.code.startswith("format.checkpoint-")


# --------------------------------------------------------------------------- checkpoint parsing negatives

KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
ROOT = hashlib.sha256(b"root").digest()
ORIGIN = cpf.log_origin(KEY.public_key().public_bytes_raw())
GOOD = cpf.sign_checkpoint(ORIGIN, 12, ROOT, "agreements-kit-log", KEY)
VKEY = cpf.vkey_for("agreements-kit-log", KEY)


def test_good_checkpoint_round_trip():
    cp = cpf.parse_checkpoint(GOOD)
    assert (cp.origin, cp.size, cp.root_hash, cp.extensions) == (ORIGIN, 12, ROOT, ())
    assert cp.body == f"{ORIGIN}\n12\n{cpf.b64(ROOT)}\n".encode()
    assert cpf.verify_note(cp.note, VKEY)
    sig = cp.note.signatures[0]
    assert sig.key_id == hashlib.sha256(b"agreements-kit-log\n\x01" + VKEY.public_key).digest()[:4]
    VKEY.ed25519().verify(sig.value, cp.body)  # by hand: Ed25519 over the note text


def _swap(old: bytes, new: bytes) -> bytes:
    assert old in GOOD
    return GOOD.replace(old, new, 1)


SIG_LINE = GOOD.split(b"\n\n")[1]
SIG_B64 = SIG_LINE.decode().split(" ")[2].strip()
ROOT_B64 = cpf.b64(ROOT).encode()


@pytest.mark.parametrize(("name", "data", "code", "line"), [
    ("missing blank line", _swap(b"\n\n", b"\n"), "no-signatures", None),
    ("no signatures", GOOD.split(b"\n\n")[0] + b"\n\n", "no-signatures", 4),
    ("bad base64 root", _swap(ROOT_B64, ROOT_B64[:-2] + b"!="), "root", 3),
    ("root not canonical", _swap(ROOT_B64, ROOT_B64[:-2] + b"J="), "root", 3),
    ("root of 31 bytes", _swap(ROOT_B64, cpf.b64(ROOT[:31]).encode()), "root", 3),
    ("bad base64 signature", _swap(SIG_B64.encode(), SIG_B64[:-3].encode() + b"*=="), "base64", 5),
    ("two spaces after dash", _swap("\u2014 ".encode(), "\u2014  ".encode()), "signature-line", 5),
    ("two spaces before sig", _swap(b"-log ", b"-log  "), "signature-line", 5),
    ("hyphen for em dash", _swap("\u2014".encode(), b"-"), "signature-line", 5),
    ("trailing space in size", _swap(b"\n12\n", b"\n12 \n"), "size", 2),
    ("CRLF", GOOD.replace(b"\n", b"\r\n"), "control", 1),
    ("tab", _swap(b"\n12\n", b"\n\t12\n"), "control", 2),
    ("hex size", _swap(b"\n12\n", b"\n0xc\n"), "size", 2),
    ("plus sign", _swap(b"\n12\n", b"\n+12\n"), "size", 2),
    ("fullwidth digits", _swap(b"\n12\n", "\n\uff11\uff12\n".encode()), "size", 2),
    ("negative", _swap(b"\n12\n", b"\n-12\n"), "size", 2),
    ("leading zero", _swap(b"\n12\n", b"\n012\n"), "size", 2),
    ("empty origin", b"\n" + GOOD.split(b"\n", 1)[1], "origin", 1),
    ("trailing data", GOOD + b"trailing\n", "signature-line", 6),
    ("no final newline", GOOD[:-1], "newline", 5),
    ("bytes after the last newline", GOOD + b"x", "newline", 6),
    ("short signature", _swap(SIG_B64.encode(), b"AAAA"), "signature-line", 5),
    ("not UTF-8", _swap(b"12", b"\xff2"), "encoding", None),
    ("two lines only", cpf.format_note(f"{ORIGIN}\n12\n".encode(), [SIG_LINE]), "short", 3),
    ("space in key name", _swap(b"agreements-kit-log ", b"agreements kit-log "), "signature-line", 5),
    ("plus in key name", _swap(b"agreements-kit-log ", b"agreements+kit-log "), "key-name", 5),
])
def test_checkpoint_negatives(name, data, code, line):
    with pytest.raises(InvalidFormat) as exc:
        cpf.parse_checkpoint(data, "cp.txt")
    assert exc.value.code == f"format.checkpoint-{code}", (name, exc.value)
    if line is not None:
        assert exc.value.line == line, (name, exc.value)
    assert "cp.txt" in str(exc.value)


def test_wrong_key_id_and_wrong_signature_do_not_verify():
    raw = base64.b64decode(SIG_B64)
    wrong_id = _swap(SIG_B64.encode(), cpf.b64(bytes([raw[0] ^ 1]) + raw[1:]).encode())
    wrong_sig = _swap(SIG_B64.encode(), cpf.b64(raw[:-1] + bytes([raw[-1] ^ 1])).encode())
    other_key = cpf.sign_checkpoint(ORIGIN, 12, ROOT, "agreements-kit-log", Ed25519PrivateKey.generate())
    for data in (wrong_id, wrong_sig, other_key, _swap(b"\n12\n", b"\n13\n")):
        assert not cpf.verify_note(cpf.parse_checkpoint(data).note, VKEY)
    # a bad signature by the right key fails the note even next to a good one
    both = GOOD + SIG_LINE.replace(SIG_B64.encode(), cpf.b64(raw[:-1] + bytes([raw[-1] ^ 1])).encode())
    assert not cpf.verify_note(cpf.parse_checkpoint(both).note, VKEY)
    # an unknown signer next to a good one is ignored
    extra = cpf.sign_note(cpf.parse_checkpoint(GOOD).body, "someone-else", Ed25519PrivateKey.generate())
    assert cpf.verify_note(cpf.parse_checkpoint(GOOD + extra).note, VKEY)


def test_cosignature_matches_the_specification():
    witness = Ed25519PrivateKey.generate()
    wkey = cpf.vkey_for("witness.example/w1", witness, cpf.COSIGNATURE_V1)
    assert wkey.text.startswith("witness.example/w1+") and base64.b64decode(wkey.text.split("+", 2)[2])[0] == 4
    cp = cpf.parse_checkpoint(GOOD)
    cosigned = cpf.cosign(cp, "witness.example/w1", witness, 1679315147)
    assert cosigned.startswith(GOOD)  # the log's signature stays first
    again = cpf.parse_checkpoint(cosigned)
    assert cpf.verify_note(again.note, VKEY) and cpf.verify_cosignature(again, wkey) == 1679315147
    sig = again.note.signatures[-1]
    assert sig.key_id == hashlib.sha256(b"witness.example/w1\n\x04" + wkey.public_key).digest()[:4]
    assert struct.unpack(">Q", sig.value[:8])[0] == 1679315147 and len(sig.value) == 72
    # by hand, from the spec's text: "cosignature/v1\ntime T\n" || checkpoint body
    message = b"cosignature/v1\ntime 1679315147\n" + cp.body
    wkey.ed25519().verify(sig.value[8:], message)
    with pytest.raises(InvalidSignature):
        wkey.ed25519().verify(sig.value[8:], cp.body)
    # another time in the signature's value -> invalid
    forged = sig.value[:7] + bytes([sig.value[7] ^ 1]) + sig.value[8:]
    lines = cosigned.split(b"\n")
    lines[-2] = cpf.signature_line(sig.name, sig.key_id, forged).rstrip(b"\n")
    assert cpf.verify_cosignature(cpf.parse_checkpoint(b"\n".join(lines)), wkey) is None
    assert anchors.check_cosignature(b"\n".join(lines), wkey.text)[0][0] == "checkpoint.cosignature"
    assert anchors.check_cosignature(cosigned, wkey.text) == []


# --------------------------------------------------------------------------- the log over a real archive

PASS = b"practice-pass-1"  # the root's
INTAKE_PASS = b"intake-pass-1"
CLINICIAN_PASS = b"clinician-ca-pass-1"
LEE_PASS = b"lee-key-pass-1"
LOG_PASS = b"log-key-pass-1"
WITNESS_PASS = b"witness-pass-1"
AGREEMENTS = ("agr-log-a", "agr-log-b", "agr-log-c")


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    """A practice with three agreements signed by their clients, and a log key."""
    from test_verify import client_signing

    from agreements_kit.authoring.practice import load_practice
    from agreements_kit.authoring.render import Job, Renderer
    from agreements_kit.authoring.spec import make_spec
    from agreements_kit.signing.pki import PKI, utcnow
    from agreements_kit.signing.renders import log_renders
    from agreements_kit.signing.setup import init_practice
    from agreements_kit.signing.sign import sign_client

    root = tmp_path_factory.mktemp("tlog") / "practice"
    t0 = utcnow() - dt.timedelta(seconds=60)
    init_practice(root, name="Log Practice", jurisdiction="US-NY", phone="(212) 555-0100",
                  therapists={"lee": ("Dr. Robin Lee", "PhD", "psychologist")})
    PKI(root / "pki").create("Log Practice", PASS, INTAKE_PASS, CLINICIAN_PASS, now=t0 - dt.timedelta(hours=1))
    practice = load_practice(root)
    PKI(root / "pki").issue_clinician("lee", "Dr. Robin Lee", practice.name, CLINICIAN_PASS, LEE_PASS,
                                      now=t0 - dt.timedelta(hours=1))
    renderer = Renderer.load(root)
    drafts = [renderer.render_to(Job(make_spec(client="Jane Q. Doe", therapist="lee", id=aid, date=t0.date()),
                                     practice.drafts)) for aid in AGREEMENTS]
    log_renders(practice, drafts)
    for i, (aid, draft) in enumerate(zip(AGREEMENTS, drafts, strict=True)):
        sign_client(practice, aid, client_signing(draft), INTAKE_PASS, now=t0 + dt.timedelta(seconds=i))
    tlog.create_log_key(root / "pki", passphrase=LOG_PASS)
    return root


@pytest.fixture
def pr(base: Path, tmp_path: Path, monkeypatch) -> Path:
    for var in ("AGREEMENTS_PRACTICE", "AGREEMENTS_LOG_PASSPHRASE", "AGREEMENTS_WITNESS_PASSPHRASE"):
        monkeypatch.delenv(var, raising=False)
    dest = tmp_path / "practice"
    shutil.copytree(base, dest)
    return dest


def run(*args, env: dict[str, str] | None = None):
    return CliRunner().invoke(main, [str(a) for a in args], env={"AGREEMENTS_LOG_PASSPHRASE": LOG_PASS.decode(),
                                                                 "AGREEMENTS_WITNESS_PASSPHRASE":
                                                                     WITNESS_PASS.decode(), **(env or {})},
                              catch_exceptions=False)


def codes(problems) -> list[str]:
    return [c for c, _ in problems]


def sign(pr: Path) -> tuple[cpf.Checkpoint, bytes]:
    return tlog.sign_checkpoint(pr / "signed", tlog.load_log_key(pr / "pki", LOG_PASS))


def vkey_text(pr: Path) -> str:
    return (pr / "pki" / "log.pub").read_text().strip()


def erase_tail(pr: Path, lines: int) -> None:
    path = pr / "signed" / "ledger.jsonl"
    data = path.read_bytes().split(b"\n")[:-1]
    path.write_bytes(b"\n".join(data[:-lines]) + b"\n")


def rewrite_middle(pr: Path) -> None:
    """Change one entry in the middle and recompute every later prev: the hash chain still links."""
    path = pr / "signed" / "ledger.jsonl"
    entries = [e for e, _ in ledger_entries(path)]
    middle = len(entries) // 2
    entries[middle]["time"] = "2020-01-01T00:00:00Z"
    prev = "0" * 64
    out = []
    for e in entries:
        e["prev"] = prev
        line = jcs_line(e)
        prev = hashlib.sha256(line).hexdigest()
        out.append(line)
    path.write_bytes(b"\n".join(out) + b"\n")
    ledger_entries(path)  # the chain is intact: only the log can tell


def test_key_files_and_passphrase(pr: Path):
    pki = pr / "pki"
    assert stat.S_IMODE(os.stat(pki / "log.key.pem").st_mode) == 0o600
    assert b"ENCRYPTED PRIVATE KEY" in (pki / "log.key.pem").read_bytes()
    key = cpf.parse_vkey(vkey_text(pr))
    assert key.name == "agreements-kit-log"
    with pytest.raises(LogError) as exc:
        tlog.load_log_key(pki, PASS)  # the practice passphrase does not open the log key
    assert exc.value.code == "denied.log-passphrase"
    with pytest.raises(LogError) as exc:
        tlog.create_log_key(pki, passphrase=LOG_PASS)
    assert exc.value.code == "conflict.log-key-exists"
    assert tlog.load_log_key(pki, LOG_PASS).origin == cpf.log_origin(key.public_key)


def test_sign_checkpoint_and_audit_clean(pr: Path):
    cp, data = sign(pr)
    lines = (pr / "signed" / "ledger.jsonl").read_bytes().split(b"\n")[:-1]
    assert cp.size == len(lines) > 6
    assert cp.root_hash == pymerkle.InmemoryTree.init_from_entries(lines).get_root()
    log = pr / "signed" / "log"
    assert (log / "checkpoint").read_bytes() == data == (log / "checkpoints" / f"{cp.size:08d}.txt").read_bytes()
    assert stat.S_IMODE(os.stat(log / "checkpoint").st_mode) == 0o600
    assert sign(pr)[1] == data  # same ledger: the same bytes, and no complaint
    assert anchors.check_checkpoint(pr / "signed" / "ledger.jsonl", data, vkey_text(pr)) == []
    assert anchors.check_archive_checkpoints(pr / "signed", vkey_text(pr)) == []


def test_truncated_ledger(pr: Path):
    _, receipt = sign(pr)
    erase_tail(pr, 2)
    problems = anchors.check_checkpoint(pr / "signed" / "ledger.jsonl", receipt, vkey_text(pr), "the receipt's "
                                        "checkpoint")
    assert codes(problems) == ["ledger.truncated"]
    n = cpf.parse_checkpoint(receipt).size
    assert f"the ledger has {n - 2} entries but the receipt's checkpoint covers {n}" in problems[0][1]
    assert "erased" in problems[0][1]
    assert codes(anchors.check_archive_checkpoints(pr / "signed", vkey_text(pr))) == ["ledger.truncated"] * 2
    with pytest.raises(LogError) as exc:
        sign(pr)
    assert exc.value.code == "conflict.log-inconsistent" and "erased" in exc.value.message


def test_rewritten_ledger(pr: Path):
    _, receipt = sign(pr)
    rewrite_middle(pr)
    problems = anchors.check_checkpoint(pr / "signed" / "ledger.jsonl", receipt, vkey_text(pr))
    assert codes(problems) == ["ledger.rewritten"] and "rewritten" in problems[0][1]
    with pytest.raises(LogError) as exc:
        sign(pr)
    assert exc.value.code == "conflict.log-inconsistent"


def test_tampered_checkpoint(pr: Path):
    cp, data = sign(pr)
    for forged in (data.replace(f"\n{cp.size}\n".encode(), f"\n{cp.size + 1}\n".encode()),
                   data.replace(cpf.b64(cp.root_hash).encode(), cpf.b64(hashlib.sha256(b"x").digest()).encode())):
        problems = anchors.check_checkpoint(pr / "signed" / "ledger.jsonl", forged, vkey_text(pr))
        assert codes(problems) == ["checkpoint.signature"]
    other = Ed25519PrivateKey.generate()
    stranger = cpf.sign_checkpoint(cp.origin, cp.size, cp.root_hash, "agreements-kit-log", other)
    assert codes(anchors.check_checkpoint(pr / "signed" / "ledger.jsonl", stranger, vkey_text(pr))) == \
        ["checkpoint.signature"]
    key = tlog.load_log_key(pr / "pki", LOG_PASS)
    elsewhere = cpf.sign_checkpoint("example.com/other-log", cp.size, cp.root_hash, key.name, key.private_key)
    assert codes(anchors.check_checkpoint(pr / "signed" / "ledger.jsonl", elsewhere, vkey_text(pr))) == \
        ["checkpoint.origin"]
    assert codes(anchors.check_checkpoint(pr / "signed" / "ledger.jsonl", b"junk", vkey_text(pr))) == \
        ["checkpoint.format"]
    (pr / "signed" / "log" / "checkpoint").write_bytes(forged)
    assert "checkpoint.signature" in codes(anchors.check_archive_checkpoints(pr / "signed", vkey_text(pr)))


def _countersign(pr: Path, aid: str) -> None:
    from agreements_kit.authoring.practice import load_practice
    from agreements_kit.signing.sign import sign_therapist

    sign_therapist(load_practice(pr), aid, LEE_PASS)


def test_inclusion_proofs(pr: Path, tmp_path: Path):
    cp, data = sign(pr)
    proofs = tlog.inclusion(pr / "signed", AGREEMENTS[1], cp)
    assert len(proofs) >= 2  # render, archive, sign...
    ref = pymerkle.InmemoryTree.init_from_entries((pr / "signed" / "ledger.jsonl").read_bytes().split(b"\n")[:-1])
    for p in proofs:
        assert AGREEMENTS[1] in p["line"] and p["leaf_index"] == p["seq"] - 1
        path = [bytes.fromhex(h) for h in p["proof"]]
        assert merkle.verify_inclusion(p["leaf_index"], cp.size, bytes.fromhex(p["leaf_hash"]), path, cp.root_hash)
        rule, _ = _inclusion_path_layout(p["seq"], cp.size)
        leaf = bytes.fromhex(p["leaf_hash"])
        pymerkle.verify_inclusion(leaf, ref.get_root(cp.size),
                                  pymerkle.InclusionProof("sha256", True, cp.size, p["seq"], rule, [leaf, *path]))
    out = tmp_path / "proof.json"
    res = run("log", "prove", AGREEMENTS[1], "--practice", pr, "--out", out)
    assert res.exit_code == 0, res.stderr
    doc = out.read_bytes()
    assert anchors.check_inclusion(doc, vkey_text(pr), AGREEMENTS[1]) == []
    assert isinstance(cpf.parse_proof(doc), cpf.InclusionProof)
    value = json.loads(doc)
    value["entries"][0]["proof"][0] = "00" * 32
    tampered = cpf.inclusion_document(value["agreement_id"], value["checkpoint"].encode(),
                                      [cpf.InclusionEntry(e["seq"], e["leaf_index"], e["line"].encode(),
                                                          bytes.fromhex(e["leaf_hash"]),
                                                          [bytes.fromhex(h) for h in e["proof"]])
                                       for e in value["entries"]])
    assert codes(anchors.check_inclusion(tampered, vkey_text(pr))) == ["proof.inclusion"]
    with pytest.raises(InvalidFormat):
        cpf.parse_proof(doc.replace(b'"kind":"inclusion"', b'"kind": "inclusion"'))
    # an agreement signed after the checkpoint is not in it yet
    _countersign(pr, AGREEMENTS[2])
    old = tmp_path / "old.txt"
    old.write_bytes(data)
    assert run("log", "prove", AGREEMENTS[2], "--practice", pr, "--checkpoint", old).exit_code == 0
    res = run("log", "prove", "agr-none", "--practice", pr)
    assert res.exit_code == 2 and "no entry" in res.stderr


def test_consistency_between_checkpoints(pr: Path, tmp_path: Path):
    _, first = sign(pr)
    _countersign(pr, AGREEMENTS[0])
    new_cp, second = sign(pr)
    old_file, new_file = tmp_path / "old.txt", tmp_path / "new.txt"
    old_file.write_bytes(first)
    new_file.write_bytes(second)
    old_cp = cpf.parse_checkpoint(first)
    proof = tlog.consistency(pr / "signed", old_cp, new_cp)
    assert anchors.check_consistency(first, second, proof, vkey_text(pr)) == []
    res = run("log", "consistency", old_file, new_file, "--practice", pr, "--out", tmp_path / "c.json")
    assert res.exit_code == 0 and "consistent" in res.stdout, res.stderr
    assert anchors.check_consistency_document((tmp_path / "c.json").read_bytes(), vkey_text(pr)) == []
    res = run("log", "consistency", new_file, old_file, "--practice", pr)
    assert res.exit_code == 1 and "checkpoint.inconsistent" in res.stderr

    # the practice rewrites its ledger and, with the log key, signs a fresh checkpoint over it
    shutil.rmtree(pr / "signed" / "log")
    rewrite_middle(pr)
    _countersign(pr, AGREEMENTS[1])
    forked_cp, forked = sign(pr)
    assert forked_cp.size > new_cp.size
    fork_file = tmp_path / "fork.txt"
    fork_file.write_bytes(forked)
    tree = tlog.build_tree(tlog.ledger_lines(pr / "signed"))
    problems = anchors.check_consistency(second, forked, tree.consistency_proof(new_cp.size), vkey_text(pr))
    assert codes(problems) == ["checkpoint.inconsistent"] and "rewritten" in problems[0][1]
    res = run("log", "consistency", new_file, fork_file, "--practice", pr)
    assert res.exit_code == 1 and "checkpoint.inconsistent" in res.stderr, res.stderr
    assert codes(anchors.check_checkpoint(pr / "signed" / "ledger.jsonl", second, vkey_text(pr))) == \
        ["ledger.rewritten"]


def test_witness(pr: Path, tmp_path: Path):
    state = tmp_path / "witness"
    res = run("log", "witness-key", "init", "--state", state, "--name", "clinic-b.example/witness")
    assert res.exit_code == 0, res.stderr
    wkey = (state / "witness.pub").read_text().strip()
    assert stat.S_IMODE(os.stat(state / "witness.key.pem").st_mode) == 0o600
    log_pub = pr / "pki" / "log.pub"
    assert run("log", "checkpoint", "--practice", pr).exit_code == 0
    res = run("log", "witness", pr, "--state", state, "--log-key", log_pub)
    assert res.exit_code == 0, res.stderr
    first = next((state / "logs").glob("*/checkpoint")).read_bytes()
    assert anchors.check_cosignature(first, wkey) == []
    assert anchors.check_checkpoint(pr / "signed" / "ledger.jsonl", first, vkey_text(pr)) == []

    _countersign(pr, AGREEMENTS[0])
    assert run("log", "checkpoint", "--practice", pr).exit_code == 0
    res = run("log", "witness", pr / "signed", "--state", state, "--log-key", log_pub)
    assert res.exit_code == 0 and "consistent with size" in res.stderr, res.stderr
    second = next((state / "logs").glob("*/checkpoint")).read_bytes()
    assert anchors.check_cosignature(second, wkey) == []
    assert cpf.parse_checkpoint(second).size > cpf.parse_checkpoint(first).size
    assert len(list((state / "logs").glob("*/cosigned/*.txt"))) == 2

    # a rewritten ledger with a fresh checkpoint: the witness refuses and keeps what it had
    shutil.rmtree(pr / "signed" / "log")
    rewrite_middle(pr)
    _countersign(pr, AGREEMENTS[1])
    assert run("log", "checkpoint", "--practice", pr).exit_code == 0
    res = run("log", "witness", pr, "--state", state, "--log-key", log_pub)
    assert res.exit_code == 1, (res.exit_code, res.stderr)
    assert "refusing to cosign" in res.stderr and "rewritten" in res.stderr
    assert next((state / "logs").glob("*/checkpoint")).read_bytes() == second
    # the witness's checkpoint, given to an auditor, reveals the rewrite
    assert codes(anchors.check_checkpoint(pr / "signed" / "ledger.jsonl", second, vkey_text(pr))) == \
        ["ledger.rewritten"]
    # and a checkpoint not signed by the log key is refused
    bogus = tmp_path / "bogus.txt"
    bogus.write_bytes(cpf.sign_checkpoint(cpf.parse_checkpoint(second).origin, 99, ROOT, "agreements-kit-log", KEY))
    res = run("log", "witness", bogus, "--archive", pr, "--state", state, "--log-key", log_pub)
    assert res.exit_code == 1 and "not signed by the log key" in res.stderr


def test_cli_show_and_errors(pr: Path):
    res = run("log", "show", pr)
    assert res.exit_code == 2 and "no signed checkpoint" in res.stderr and "Traceback" not in res.stderr
    res = run("log", "checkpoint", "--practice", pr, env={"AGREEMENTS_LOG_PASSPHRASE": "wrong"})
    assert res.exit_code == 2 and "wrong passphrase" in res.stderr
    assert run("log", "checkpoint", "--practice", pr).exit_code == 0
    res = run("log", "show", pr)
    assert res.exit_code == 0 and res.stdout == (pr / "signed" / "log" / "checkpoint").read_text()
    fresh = pr.parent / "fresh"
    fresh.mkdir()
    res = run("log", "key", "init", "--practice", fresh, "--name", "bad name")
    assert res.exit_code == 2 and "key name" in res.stderr
    res = run("log", "key", "init", "--practice", fresh)
    assert res.exit_code == 0 and "agreements-kit-log+" in res.stdout
    assert isinstance(log_group, click.Group)
