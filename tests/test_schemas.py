"""The JSON Schemas in docs/schemas/ say exactly what the strict parsers accept.

A practice is built once with the library: an agreement signed by the client and
the therapist, one voided, one signed by the client only, and one signed by a
guardian; the legacy (format version 1) test vectors are read too. Every real
signing record, manifest.json, embedded manifest and ledger line must be valid
against its schema and accepted by its parser. Then every document is mutated
member by member (a member deleted, an unknown one added, each value replaced by
values of other types, lengths and forms) and the schema and the parser must give
the same verdict on every mutation. The few rules a schema cannot state (calendar
dates, canonical bytes, duplicate keys, sizes: docs/schemas/README.md) are tested
as such: the parser refuses what the schema, by its nature, lets through.

Schema patterns are read as JSON Schema specifies, with ECMA-262 semantics, where
``$`` is the end of the string (Python's ``re`` lets ``$`` match before a final
newline; ``ecma_validator`` corrects for that).
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from agreements_kit.authoring.practice import load_practice
from agreements_kit.authoring.render import Job, Renderer
from agreements_kit.authoring.spec import make_spec
from agreements_kit.errors import InvalidFormat
from agreements_kit.formats import jsonio
from agreements_kit.formats import ledger as ledger_format
from agreements_kit.formats import record as record_format
from agreements_kit.formats.ledger import parse_entry
from agreements_kit.formats.manifest import parse_manifest
from agreements_kit.formats.pdfattach import embedded_manifest
from agreements_kit.formats.record import parse_record
from agreements_kit.signing.pki import PKI, utcnow
from agreements_kit.signing.renders import log_renders
from agreements_kit.signing.setup import init_practice
from agreements_kit.signing.sign import ClientSigning, sign_client, sign_therapist, void

REPO = Path(__file__).resolve().parent.parent
SCHEMAS = REPO / "docs" / "schemas"
LEGACY = Path(__file__).resolve().parent / "vectors" / "legacy-v1" / "signed"
PASS = b"practice-pass-1"  # the root's
INTAKE_PASS = b"intake-pass-1"
CLINICIAN_PASS = b"clinician-ca-pass-1"
LEE_PASS = b"lee-key-pass-1"
PRACTICE_NAME = "Test Practice"
CLIENT = "Jane Q. Doe"
MINOR, GUARDIAN = "Kim Doe", "Pat Doe"
SIGNED, VOIDED, HALF, GUARDED = "agr-sch-signed", "agr-sch-void", "agr-sch-half", "agr-sch-guardian"


# --------------------------------------------------------------------------- the practice


def _client_signing(draft: Path, name: str, role: str = "client") -> ClientSigning:
    manifest = json.loads((draft / "manifest.json").read_text())
    return ClientSigning(name=name, consent=True, initials={c["id"]: "JQD" for c in manifest["clauses"]
                                                            if c["initials"]},
                         intent=True, identity_method="photo ID", identity_checked_by="Front desk", role=role)


def build_practice(root: Path) -> Path:
    """A practice with a signed (client + therapist), a voided, a client-only and a guardian's agreement."""
    t0 = utcnow() - dt.timedelta(seconds=90)
    init_practice(root, name=PRACTICE_NAME, jurisdiction="US-NY", phone="(212) 555-0100",
                  therapists={"lee": ("Dr. Robin Lee", "PhD", "psychologist")})
    PKI(root / "pki").create(PRACTICE_NAME, PASS, INTAKE_PASS, CLINICIAN_PASS, now=t0 - dt.timedelta(hours=1))
    practice = load_practice(root)
    PKI(root / "pki").issue_clinician("lee", "Dr. Robin Lee", practice.name, CLINICIAN_PASS, LEE_PASS,
                                      now=t0 - dt.timedelta(hours=1))
    renderer = Renderer.load(root)
    specs = [make_spec(client=CLIENT, therapist="lee", id=aid, date=t0.date()) for aid in (SIGNED, VOIDED, HALF)]
    specs.append(make_spec(client=MINOR, therapist="lee", id=GUARDED, date=t0.date(), guardian=GUARDIAN,
                           relation="parent"))
    drafts = [renderer.render_to(Job(spec, practice.drafts)) for spec in specs]
    log_renders(practice, drafts)
    for i, (spec, draft) in enumerate(zip(specs, drafts, strict=True)):
        signing = (_client_signing(draft, GUARDIAN, "guardian") if spec.id == GUARDED
                   else _client_signing(draft, CLIENT))
        sign_client(practice, spec.id, signing, INTAKE_PASS, now=t0 + dt.timedelta(seconds=i))
    sign_therapist(practice, SIGNED, LEE_PASS, now=t0 + dt.timedelta(seconds=10))
    sign_therapist(practice, GUARDED, LEE_PASS, now=t0 + dt.timedelta(seconds=11))
    void(practice, VOIDED, "Replaced by a newer agreement", LEE_PASS, now=t0 + dt.timedelta(seconds=20))
    return root


@dataclass(frozen=True)
class Corpus:
    records: dict[str, bytes]  # "agreement/file" -> bytes
    manifests: dict[str, bytes]
    embedded: dict[str, bytes]
    ledger_lines: list[bytes]


def corpus_of(signed_dirs: list[Path]) -> Corpus:
    records: dict[str, bytes] = {}
    manifests: dict[str, bytes] = {}
    embedded: dict[str, bytes] = {}
    lines: list[bytes] = []
    for signed in signed_dirs:
        for path in sorted(signed.glob("*/[0-9][0-9]-*.json")):
            records[f"{path.parent.name}/{path.name}"] = path.read_bytes()
        for path in sorted(signed.glob("*/manifest.json")):
            manifests[path.parent.name] = path.read_bytes()
            attached = embedded_manifest((path.parent / "agreement.pdf").read_bytes())
            assert attached is not None, f"{path.parent.name}: no manifest embedded in the PDF"
            embedded[path.parent.name] = attached
        lines += (signed / "ledger.jsonl").read_bytes().split(b"\n")[:-1]
    return Corpus(records, manifests, embedded, lines)


_BUILT: dict[int, Path] = {}


def shared_practice(tmp_path_factory) -> Path:
    """The practice, built once per test session (test_formats reads it too): never change it, copy it."""
    key = id(tmp_path_factory)
    if key not in _BUILT:
        _BUILT[key] = build_practice(tmp_path_factory.mktemp("formats-practice") / "practice")
    return _BUILT[key]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Corpus:
    return corpus_of([shared_practice(tmp_path_factory) / "signed", LEGACY])


# --------------------------------------------------------------------------- schemas


def _ecma_pattern(validator, pattern: str, instance: Any, schema: dict) -> Iterator[ValidationError]:
    """``pattern`` with ECMA-262 semantics: a final ``$`` is the end of the string (Python: ``\\Z``)."""
    if validator.is_type(instance, "string"):
        python = pattern[:-1] + r"\Z" if pattern.endswith("$") and not pattern.endswith(r"\$") else pattern
        if not re.search(python, instance):
            yield ValidationError(f"{instance!r} does not match {pattern!r}")


EcmaValidator = jsonschema.validators.extend(Draft202012Validator, {"pattern": _ecma_pattern})


def load_schema(name: str) -> dict:
    return json.loads((SCHEMAS / f"{name}.schema.json").read_text(encoding="utf-8"))


def inline(node: Any, defs: dict[str, Any]) -> Any:
    """``node`` with every ``{"$ref": "#/$defs/NAME"}`` replaced by its target (the schemas do not recurse)."""
    if isinstance(node, dict):
        if set(node) == {"$ref"}:
            return inline(defs[node["$ref"].removeprefix("#/$defs/")], defs)
        return {key: inline(value, defs) for key, value in node.items() if key != "$defs"}
    if isinstance(node, list):
        return [inline(value, defs) for value in node]
    return node


def ecma_validator(name: str, only: str | None = None, inlined: bool = False):
    """A validator (format checking off, the default) for a schema, or for one of its ``$defs``; ``inlined``:
    the same schema with its references replaced by their targets, a third faster to evaluate."""
    schema = load_schema(name)
    Draft202012Validator.check_schema(schema)
    if only is not None:
        assert only in schema["$defs"], only
        schema = dict(schema, oneOf=[{"$ref": f"#/$defs/{only}"}])
    if inlined:
        schema = inline(schema, schema["$defs"])
        assert "$ref" not in json.dumps(schema)
    return EcmaValidator(schema)


def _validators(inlined: bool) -> dict[str, Any]:
    return {
        "record": ecma_validator("signing-record", inlined=inlined),
        "manifest": ecma_validator("manifest", inlined=inlined),
        "manifest-file": ecma_validator("manifest", "manifest-file", inlined=inlined),
        "embedded": ecma_validator("manifest", "embedded", inlined=inlined),
        "ledger": ecma_validator("ledger-entry", inlined=inlined),
    }


@pytest.fixture(scope="module")
def validators() -> dict[str, Any]:
    """The schemas as written (real documents are checked with these)."""
    return _validators(inlined=False)


@pytest.fixture(scope="module")
def fast() -> dict[str, Any]:
    """The schemas with references inlined (thousands of mutations are checked with these)."""
    return _validators(inlined=True)


def test_schemas_are_valid_draft_2020_12_and_closed() -> None:
    """Every schema is a valid 2020-12 schema, and every object in it forbids members it does not name."""
    def objects(node: Any, where: str) -> Iterator[tuple[str, dict]]:
        if isinstance(node, dict):
            if node.get("type") == "object":
                yield where, node
            for key, value in node.items():
                yield from objects(value, f"{where}/{key}")
        elif isinstance(node, list):
            for i, value in enumerate(node):
                yield from objects(value, f"{where}/{i}")

    for name in ("signing-record", "manifest", "ledger-entry"):
        schema = load_schema(name)
        Draft202012Validator.check_schema(schema)
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        found = list(objects(schema, name))
        assert found
        for where, node in found:
            assert "additionalProperties" in node, f"{where}: an object schema without additionalProperties"
            if "properties" in node:
                assert node["additionalProperties"] is False, f"{where}: open to unknown members"
                assert set(node["required"]) <= set(node["properties"]), where


def test_schema_constants_are_the_parsers() -> None:
    """Enumerations in the schemas are the parsers' own lists (so neither can drift alone)."""
    rec = load_schema("signing-record")["$defs"]
    assert rec["guardian-signer"]["properties"]["relation"]["enum"] == list(record_format.RELATIONS)
    assert rec["client-signature"]["properties"]["format"]["const"] == record_format.FORMAT
    assert rec["therapist-void"]["properties"]["format_version"]["enum"] == sorted(record_format.CANONICAL_FORM)
    signers = {rec[k]["properties"]["signer"]["$ref"].split("/")[-1].removesuffix("-signer")
               for k in ("client-signature", "guardian-signature", "therapist-signature")}
    assert signers == set(record_format.ROLES)
    led = load_schema("ledger-entry")["$defs"]
    assert {k[3:] for k in led if k.startswith("v2-")} == set(ledger_format.EVENTS)
    assert {k[3:] for k in led if k.startswith("v1-")} == set(ledger_format.LEGACY_EVENTS)
    assert led["v2-certificate"]["properties"]["role"]["enum"] == list(ledger_format.CERT_ROLES)
    assert led["v2-render"]["properties"]["format"]["const"] == ledger_format.FORMAT


# --------------------------------------------------------------------------- real documents


def errors_of(validator, doc: Any) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message[:200]}" for e in validator.iter_errors(doc)]


def test_corpus_covers_every_kind(corpus: Corpus) -> None:
    kinds = {parse_record(raw, name).kind for name, raw in corpus.records.items()}
    versions = {parse_record(raw, name).version for name, raw in corpus.records.items()}
    assert kinds == {"client", "guardian", "therapist", "void"}, kinds
    assert versions == {1, 2}
    events = {(e.version, e.event) for e in (parse_entry(line, "ledger.jsonl", i)
                                              for i, line in enumerate(corpus.ledger_lines, 1))}
    assert {(2, ev) for ev in ("render", "archive", "sign", "void", "certificate", "crl")} <= events, events
    assert {(1, ev) for ev in ("render", "archive", "sign")} <= events, events
    assert any(parse_manifest(raw, name).guardian for name, raw in corpus.manifests.items())
    assert any(not parse_manifest(raw, name).guardian for name, raw in corpus.manifests.items())


def test_every_real_record_is_valid(corpus: Corpus, validators) -> None:
    for name, raw in corpus.records.items():
        parse_record(raw, name)
        assert not errors_of(validators["record"], json.loads(raw)), (name, errors_of(validators["record"],
                                                                                       json.loads(raw)))


def test_every_real_manifest_is_valid(corpus: Corpus, validators) -> None:
    for name, raw in corpus.manifests.items():
        parse_manifest(raw, name)
        doc = json.loads(raw)
        assert not errors_of(validators["manifest-file"], doc), (name, errors_of(validators["manifest-file"], doc))
        assert not errors_of(validators["manifest"], doc)
        assert errors_of(validators["embedded"], doc), f"{name}: manifest.json passes as an embedded manifest"
    for name, raw in corpus.embedded.items():
        parse_manifest(raw, name, embedded=True)
        doc = json.loads(raw)
        assert not errors_of(validators["embedded"], doc), (name, errors_of(validators["embedded"], doc))
        assert not errors_of(validators["manifest"], doc)
        assert errors_of(validators["manifest-file"], doc), f"{name}: the embedded copy passes as manifest.json"


def test_every_real_ledger_line_is_valid(corpus: Corpus, validators) -> None:
    for number, line in enumerate(corpus.ledger_lines, start=1):
        parse_entry(line, "ledger.jsonl", number)
        doc = json.loads(line)
        assert not errors_of(validators["ledger"], doc), (number, errors_of(validators["ledger"], doc))


# --------------------------------------------------------------------------- schema and parser agree


def encode_record(doc: dict) -> bytes:
    return jsonio.canonical_json(doc) if doc.get("format_version") == 1 else jsonio.jcs(doc)


def encode_line(doc: dict) -> bytes:
    return jsonio.jcs(doc) if "format_version" in doc else jsonio.compact_json(doc)


def encode_manifest(doc: dict) -> bytes:
    return jsonio.canonical_json(doc)


KINDS = {
    # validator, encoder, parser (raises InvalidFormat or returns)
    "record": ("record", encode_record, lambda data: parse_record(data, "r.json")),
    "manifest-file": ("manifest-file", encode_manifest, lambda data: parse_manifest(data, "manifest.json")),
    "embedded": ("embedded", encode_manifest, lambda data: parse_manifest(data, "embedded", embedded=True)),
    "ledger": ("ledger", encode_line, lambda data: parse_entry(data, "ledger.jsonl", 1)),
}

# Replacement values: one of every JSON type, then near-misses by the type of the value replaced.
ANY_TYPE: list[Any] = [None, True, 0, 1.5, "x", [], {"k": "v"}]
NEAR: dict[type, list[Any]] = {
    str: ["", "x" * 41, "x" * 2001, "0" * 64, "0" * 63, "0" * 64 + "\n", "A" * 64, "agr-x\n", "ab",
          "2026-12-03", "2026-12-03T07:44:15Z", "2026-12-03T07:44:15Z\n", "2026-12-03 07:44:15Z",
          "\u0662\u0660\u0662\u0666-12-03", "client", "therapist", "administrator", "void", "parent"],
    int: [False, -1, 1, 2, 100, 10**13],
    bool: [False, 1],
    dict: [{}, {"k": 1}, ["x"]],
    list: [["x"], [{}], {}],
    type(None): [False, ""],
}


def wrong_values(value: Any) -> list[Any]:
    return ANY_TYPE + NEAR[type(value)]


def paths(doc: Any, prefix: tuple = ()) -> Iterator[tuple]:
    """Every member path of ``doc`` (object keys and list indexes), containers before their members."""
    if isinstance(doc, dict):
        for key, value in doc.items():
            yield (*prefix, key)
            yield from paths(value, (*prefix, key))
    elif isinstance(doc, list):
        for i, value in enumerate(doc):
            yield (*prefix, i)
            yield from paths(value, (*prefix, i))


def container(doc: Any, path: tuple) -> Any:
    for step in path[:-1]:
        doc = doc[step]
    return doc


def mutations(doc: Any, seen: set[tuple] | None = None) -> Iterator[tuple[str, Any]]:
    """(label, mutated copy): each member deleted, replaced by values of other types and forms, and a sibling
    added to each object. With ``seen``, a member path gets near-misses only the first time (documents of one
    format share most members: the same checks need not run on each), values of each type every time."""
    seen_parents: set[tuple] = set()
    for path in paths(doc):
        if any(isinstance(step, int) and step > 1 for step in path):
            continue  # list items repeat one shape: the first two are enough
        parent_path = path[:-1]
        if parent_path not in seen_parents and isinstance(container(doc, path), dict):
            seen_parents.add(parent_path)
            for key, value in (("unknown_member", "x"), ("unknown_member", None)):
                new = copy.deepcopy(doc)
                container(new, path)[key] = value
                yield f"add {'.'.join(map(str, parent_path)) or '(top)'}.{key}={value!r}", new
        new = copy.deepcopy(doc)
        del container(new, path)[path[-1]]
        yield f"delete {'.'.join(map(str, path))}", new
        fresh = seen is None or path not in seen
        if seen is not None:
            seen.add(path)
        for value in wrong_values(container(doc, path)[path[-1]]) if fresh else ANY_TYPE:
            new = copy.deepcopy(doc)
            container(new, path)[path[-1]] = value
            yield f"set {'.'.join(map(str, path))}={value!r:.30}", new


def verdicts(kind: str, doc: Any, validators) -> tuple[bool, bool, str]:
    """(schema accepts, parser accepts, the parser's code) for ``doc`` written in its canonical form."""
    vname, encode, parse = KINDS[kind]
    schema_ok = validators[vname].is_valid(doc)
    try:
        data = encode(doc)
    except (ValueError, TypeError):  # no canonical form (cannot be written): nothing to compare
        return schema_ok, False, "unencodable"
    try:
        parse(data)
    except InvalidFormat as exc:
        return schema_ok, False, exc.code
    return schema_ok, True, ""


def assert_agree(kind: str, doc: Any, validators, label: str) -> tuple[bool, bool, str]:
    schema_ok, parser_ok, code = verdicts(kind, doc, validators)
    assert code != "unencodable", label
    assert schema_ok == parser_ok, (f"{kind}: {label}: the schema {'accepts' if schema_ok else 'refuses'} it, the "
                                    f"parser {'accepts' if parser_ok else 'refuses (' + code + ')'}: "
                                    f"{errors_of(validators[KINDS[kind][0]], doc)[:2]}")
    return schema_ok, parser_ok, code


def test_records_mutated_member_by_member(corpus: Corpus, fast) -> None:
    """Each kind of record, v2 and v1: every deletion, addition and replacement gets one verdict from both.
    """
    chosen = {parse_record(raw, name).kind + str(parse_record(raw, name).version): raw
              for name, raw in corpus.records.items()}
    assert set(chosen) >= {"client2", "guardian2", "therapist2", "void2", "client1", "therapist1"}
    accepted = refused = 0
    seen: set[tuple] = set()
    for label, raw in chosen.items():
        for what, doc in mutations(json.loads(raw), seen):
            schema_ok, _, _ = assert_agree("record", doc, fast, f"{label}: {what}")
            accepted += schema_ok
            refused += not schema_ok
    assert accepted > 50 and refused > 500, (accepted, refused)  # both verdicts well exercised


def test_manifests_mutated_member_by_member(corpus: Corpus, fast) -> None:
    """manifest.json and the embedded copy, with and without a guardian, v1 vector included. Clauses share one
    shape, so each manifest keeps two of them (one initialled, one with a jurisdiction variant): that keeps the
    schema validator's work, the bulk of this test's time, small."""
    legacy = next(name for name in corpus.manifests if name not in (SIGNED, VOIDED, HALF, GUARDED))
    seen: set[tuple] = set()
    for kind, items, name in (("manifest-file", corpus.manifests, SIGNED), ("embedded", corpus.embedded, GUARDED),
                              ("manifest-file", corpus.manifests, legacy), ("embedded", corpus.embedded, legacy)):
        doc = json.loads(items[name])
        initialled = next(c for c in doc["clauses"] if c["initials"])
        variant = next(c for c in doc["clauses"] if c["variant_version"] is not None)
        doc["clauses"] = [initialled, variant] if initialled is not variant else [initialled]
        assert_agree(kind, doc, fast, f"{name}: two clauses only")
        for what, mutated in mutations(doc, seen):
            assert_agree(kind, mutated, fast, f"{kind} {name}: {what}")


def test_ledger_lines_mutated_member_by_member(corpus: Corpus, fast) -> None:
    """A line of each shape (render is archive's, sign is void's) and version; a v2 line losing format_version
    becomes a v1 line, and so on."""
    chosen: dict[tuple[int, str], bytes] = {}
    for number, line in enumerate(corpus.ledger_lines, 1):
        entry = parse_entry(line, "ledger.jsonl", number)
        if entry.event not in ("archive", "void"):
            chosen.setdefault((entry.version, entry.event), line)
    assert set(chosen) == {(1, "render"), (1, "sign"), (2, "render"), (2, "sign"), (2, "certificate"), (2, "crl")}
    seen: set[tuple] = set()
    for (version, event), line in chosen.items():
        for what, doc in mutations(json.loads(line), seen):
            assert_agree("ledger", doc, fast, f"v{version} {event}: {what}")


def test_synthetic_variants_agree(corpus: Corpus, validators, fast) -> None:
    """The variants no practice writes today: an administrator's void, migrate entries, a v1 void line."""
    void_doc = json.loads(next(raw for name, raw in corpus.records.items() if name.endswith("-void.json")))
    admin = dict(void_doc, signer={"role": "administrator", "name": "Alex Admin", "administrator_id": "alex"})
    assert assert_agree("record", admin, validators, "administrator void")[0]
    assert not assert_agree("record", dict(admin, format_version=1), validators, "v1 administrator void")[0]
    guardian_doc = json.loads(next(raw for name, raw in corpus.records.items() if name.endswith("-guardian.json")))
    no_relation = dict(guardian_doc, signer={k: v for k, v in guardian_doc["signer"].items() if k != "relation"})
    assert assert_agree("record", no_relation, validators, "guardian without relation")[0]
    line = json.loads(corpus.ledger_lines[0])
    migrate = {"seq": 7, "prev": "0" * 64, "format": "agreements-kit/ledger", "format_version": 2, "event": "migrate",
               "time": line["time"], "from_version": 1, "to_version": 2, "agreements": 3}
    assert assert_agree("ledger", migrate, validators, "migrate")[0]
    for what, doc in mutations(migrate):
        assert_agree("ledger", doc, fast, f"migrate: {what}")
    sign_v1 = next(json.loads(x) for x in corpus.ledger_lines if b'"event":"sign"' in x and b"format_version" not in x)
    void_v1 = dict(sign_v1, event="void", record="03-void.json", role="therapist")
    assert assert_agree("ledger", void_v1, validators, "v1 void")[0]
    assert not assert_agree("ledger", dict(void_v1, format_version=1), validators, "explicit format_version 1")[0]


@pytest.mark.parametrize(("mutate", "code"), [
    (lambda d: d.update(comment="hi"), "format.unknown-key"),
    (lambda d: d["signer"].update(nickname="J"), "format.unknown-key"),
    (lambda d: d.pop("ledger_head"), "format.missing-key"),
    (lambda d: d["certificate"].pop("serial"), "format.missing-key"),
    (lambda d: d.update(sequence="1"), "format.bad-type"),
    (lambda d: d["intent"].update(statement=["I agree"]), "format.bad-type"),
    (lambda d: d["method"].update(drawn_signature_png_sha256=0), "format.bad-type"),
    (lambda d: d.update(signed_at="2026-12-03T07:44:15Z\n"), "format.bad-value"),
    (lambda d: d["signer"].update(role="therapist"), "format.missing-key"),
    (lambda d: d.update(esign=None), "format.bad-type"),
])
def test_handful_of_record_mutations(corpus: Corpus, validators, mutate, code: str) -> None:
    """Named cases: the schema refuses, and the parser refuses with the code that names the fault."""
    doc = json.loads(next(raw for name, raw in corpus.records.items()
                          if name.startswith(SIGNED) and name.endswith("-client.json")))
    mutate(doc)
    schema_ok, parser_ok, got = verdicts("record", doc, validators)
    assert (schema_ok, parser_ok, got) == (False, False, code)


@pytest.mark.parametrize(("kind", "mutate", "code"), [
    ("manifest-file", lambda d: d.update(notes="x"), "format.unknown-key"),
    ("manifest-file", lambda d: d.pop("document"), "format.missing-key"),
    ("manifest-file", lambda d: d["agreement"].update(id="../etc"), "format.bad-value"),
    ("manifest-file", lambda d: d["clauses"][0].update(initials="yes"), "format.bad-type"),
    ("manifest-file", lambda d: d["variables"].update(list_value=[1, 2]), "format.bad-type"),
    ("embedded", lambda d: d.update(document={"sha256": "0" * 64, "bytes": 1,
                                              "embedded_manifest_sha256": "0" * 64}), "format.unknown-key"),
    ("ledger", lambda d: d.pop("pdf_sha256"), "format.missing-key"),
    ("ledger", lambda d: d.update(seq=0), "format.bad-value"),
    ("ledger", lambda d: d.update(extra=True), "format.unknown-key"),
    ("ledger", lambda d: d.update(prev=None), "format.bad-type"),
])
def test_handful_of_other_mutations(corpus: Corpus, validators, kind: str, mutate, code: str) -> None:
    source = {"manifest-file": corpus.manifests[SIGNED], "embedded": corpus.embedded[SIGNED],
              "ledger": next(x for x in corpus.ledger_lines if b'"event":"render"' in x and b"format_version" in x)}
    doc = json.loads(source[kind])
    mutate(doc)
    assert verdicts(kind, doc, validators) == (False, False, code)


# --------------------------------------------------------------------------- what a schema cannot say


def test_what_the_schema_cannot_say(corpus: Corpus, validators) -> None:
    """docs/schemas/README.md's list: each is valid to the schema, and the parser refuses it."""
    raw = next(raw for name, raw in corpus.records.items() if name.startswith(SIGNED) and "client" in name)
    doc = json.loads(raw)
    record_schema = validators["record"]

    def refused(data: bytes, *codes: str) -> None:
        with pytest.raises(InvalidFormat) as info:
            parse_record(data, "r.json")
        assert info.value.code in codes, (info.value.code, info.value.message)

    # A time that the pattern admits but the calendar does not.
    for when in ("2026-02-30T10:00:00Z", "2025-02-29T10:00:00Z", "2026-04-31T00:00:00Z"):
        bad = dict(doc, signed_at=when)
        assert record_schema.is_valid(bad)
        refused(jsonio.jcs(bad), "format.bad-value")
    # A whole number written as 1.0 is the integer 1 to JSON Schema; the parser takes only integers.
    legacy = dict(doc, format_version=1, sequence=1.0)
    assert record_schema.is_valid(legacy)
    refused(jsonio.canonical_json(legacy), "format.bad-type")
    # The bytes: canonical form, duplicate keys, encodings, size, depth are not in the parsed value at all.
    assert record_schema.is_valid(json.loads(jsonio.canonical_json(doc)))
    refused(jsonio.canonical_json(doc), "format.not-canonical")  # v2 content in v1 layout
    refused(raw.replace(b"{", b'{"sequence":1,', 1), "format.duplicate-key")
    refused(b"\xef\xbb\xbf" + raw, "format.encoding")
    refused(raw.decode("utf-8").encode("utf-16"), "format.encoding")  # with its byte-order mark
    refused(raw.decode("utf-8").encode("utf-16-le"), "format.encoding", "format.not-json")  # ASCII: NULs are UTF-8
    refused(raw + b" " * (record_format.MAX_BYTES + 1 - len(raw)), "format.too-large")
    manifest_doc = json.loads(corpus.manifests[SIGNED])
    nested: Any = "deep"
    for _ in range(6):
        nested = [nested]
    manifest_doc["variables"]["deep"] = nested  # a list is not a variable value: both refuse, at different steps
    assert not validators["manifest-file"].is_valid(manifest_doc)
    with pytest.raises(InvalidFormat) as info:
        parse_manifest(jsonio.canonical_json(manifest_doc), "manifest.json")
    assert info.value.code == "format.too-deep"
