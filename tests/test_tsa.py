"""The local TSA (a real ``openssl ts -reply`` process) and the RFC 3161 client that adds tokens to signatures.

Everything is real: the TSA runs as its own process, signatures are made by the
project's CMS signer, and OpenSSL (``cms -verify``, ``ts -verify``, the README's
recipe) judges the results independently of the code that made them.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import re
import socket
import stat
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import rfc3161_client
from asn1crypto import cms, tsp
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from agreements_kit.cli.tsa import tsa as tsa_group
from agreements_kit.errors import AgreementsError, InvalidFormat, SigningError, TimestampError
from agreements_kit.localtsa import LocalTsa, TsaFolder, create, start
from agreements_kit.signing.cms import sign_detached
from agreements_kit.signing.timestamp import (
    TOKEN_ATTRIBUTE,
    Timestamper,
    add_token,
    signature_value,
    timestamp_signature,
)

REPO = Path(__file__).resolve().parent.parent
RECIPE_HEADING = "### Check a time-stamp token with OpenSSL"


# ----------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def tsa_folder(tmp_path_factory: pytest.TempPathFactory) -> TsaFolder:
    return create(tmp_path_factory.mktemp("tsa") / "tsa")


@pytest.fixture(scope="module")
def tsa_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("tsa-log") / "stderr.log"


@pytest.fixture(scope="module")
def local_tsa(tsa_folder: TsaFolder, tsa_log: Path) -> Iterator[LocalTsa]:
    with open(tsa_log, "wb") as log, start(tsa_folder.path, stderr=log) as running:
        yield running
    assert running.process.poll() is not None, "leaving start() stops the TSA process"


@pytest.fixture(scope="module")
def signer(tmp_path_factory: pytest.TempPathFactory) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey, Path]:
    """A self-signed ECDSA P-256 signer (the practice PKI is not what is tested here) and its PEM file."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test signer")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    pem = tmp_path_factory.mktemp("signer") / "signer.pem"
    pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert, key, pem


def _sign(signer, record: bytes) -> bytes:
    cert, key, _ = signer
    return sign_detached(record, cert, key)


def _openssl(*args: str | Path, check: bool = True, stdin: bytes | None = None) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(["openssl", *map(str, args)], input=stdin.decode("latin-1") if stdin else None,
                          capture_output=True, text=True, check=False)
    if check:
        assert done.returncode == 0, f"openssl {' '.join(map(str, args))}: {done.stderr}"
    return done


def _tst_info(token: bytes) -> tsp.TSTInfo:
    content = cms.ContentInfo.load(token)["content"]["encap_content_info"]["content"]
    return tsp.TSTInfo.load(content.native if isinstance(content.native, bytes) else content.contents)


def _as_response(token: bytes) -> bytes:
    """A granted TimeStampResp around a token (the form rfc3161-client's verifier reads)."""
    return tsp.TimeStampResp({"status": {"status": "granted"},
                              "time_stamp_token": cms.ContentInfo.load(token)}).dump()


class _Canned(BaseHTTPRequestHandler):
    """Answers every POST with 200 and the server's canned bytes (junk, or a real reply for another query)."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        body: bytes = self.server.canned  # type: ignore[attr-defined]
        status: int = getattr(self.server, "status", 200)
        self.send_response(status)
        if 300 <= status < 400:
            self.send_header("Location", "http://127.0.0.1:1/elsewhere")
        self.send_header("Content-Type", "application/timestamp-reply")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


@pytest.fixture
def canned() -> Iterator[tuple[str, ThreadingHTTPServer]]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Canned)
    server.canned = b"junk"  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/", server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def closed_url() -> Iterator[str]:
    """A port that refuses connections: bound (so nobody else takes it) but not listening."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/"
    finally:
        sock.close()


def _post(url: str, body: bytes, ctype: str = "application/timestamp-query", method: str = "POST",
          headers: dict[str, str] | None = None) -> tuple[int, bytes, str]:
    req = urllib.request.Request(url, data=body if method == "POST" else None, method=method,
                                 headers={"Content-Type": ctype, **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=10) as answer:
            return answer.status, answer.read(), answer.headers.get("Content-Type", "")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), exc.headers.get("Content-Type", "")


def _query(data: bytes, digest: str = "-sha256") -> bytes:
    """A TimeStampReq made by OpenSSL itself (so the server is not only ever fed our client's queries)."""
    done = subprocess.run(["openssl", "ts", "-query", digest, "-cert", "-no_nonce"], input=data,
                          capture_output=True, check=True)
    return done.stdout


# ----------------------------------------------------------------------------- the TSA folder

def test_create_makes_a_tsa_with_a_critical_timestamping_certificate(tsa_folder: TsaFolder):
    root, cert = tsa_folder.root_certificate(), tsa_folder.certificate()
    cert.verify_directly_issued_by(root)
    root.verify_directly_issued_by(root)
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    assert eku.critical and list(eku.value) == [ExtendedKeyUsageOID.TIME_STAMPING]
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.digital_signature and usage.content_commitment and not usage.key_cert_sign
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert root.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert isinstance(cert.public_key(), ec.EllipticCurvePublicKey) and cert.public_key().curve.name == "secp256r1"
    # The key is encrypted at rest, under the passphrase in tsa.pass, and is the certificate's.
    pem = tsa_folder.key.read_bytes()
    with pytest.raises(TypeError):
        serialization.load_pem_private_key(pem, password=None)
    key = serialization.load_pem_private_key(pem, password=tsa_folder.passfile.read_bytes().strip())
    assert key.public_key() == cert.public_key()
    # Owner-only, like every key and record of the project; no root key is kept anywhere.
    assert stat.S_IMODE(tsa_folder.path.stat().st_mode) == 0o700
    for path in tsa_folder.path.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert sorted(p.name for p in tsa_folder.path.iterdir()) == [
        "openssl.cnf", "tsa-root.pem", "tsa.key.pem", "tsa.pass", "tsa.pem", "tsaserial"]


def test_create_refuses_a_folder_that_is_not_empty(tsa_folder: TsaFolder):
    before = tsa_folder.key.read_bytes()
    with pytest.raises(AgreementsError) as info:
        create(tsa_folder.path)
    assert info.value.code == "conflict.tsa-folder" and str(tsa_folder.path) in str(info.value)
    assert tsa_folder.key.read_bytes() == before


# ----------------------------------------------------------------------------- the client: tokens

def test_token_covers_the_right_bytes_and_verifies(local_tsa: LocalTsa, tsa_folder: TsaFolder, tmp_path: Path):
    data = b"the bytes to time-stamp\n"
    before = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(seconds=2)
    token = Timestamper((local_tsa.url,)).token(data)
    info = _tst_info(token)
    assert info["message_imprint"]["hash_algorithm"]["algorithm"].native == "sha256"
    assert info["message_imprint"]["hashed_message"].native == hashlib.sha256(data).digest()
    assert info["policy"].dotted == "2.25.176284631859908745650185468624739903599"
    assert before <= info["gen_time"].native <= dt.datetime.now(dt.UTC) + dt.timedelta(seconds=2)
    # rfc3161-client's verifier (what `verify` uses) and OpenSSL's both accept it over these bytes...
    verifier = rfc3161_client.VerifierBuilder().add_root_certificate(tsa_folder.root_certificate()).build()
    response = rfc3161_client.decode_timestamp_response(_as_response(token))
    assert verifier.verify_message(response, data)
    (tmp_path / "token.der").write_bytes(token)
    (tmp_path / "data").write_bytes(data)
    _openssl("ts", "-verify", "-in", tmp_path / "token.der", "-token_in", "-data", tmp_path / "data",
             "-CAfile", tsa_folder.root)
    # ...and both refuse it over other bytes.
    (tmp_path / "other").write_bytes(data + b"!")
    done = _openssl("ts", "-verify", "-in", tmp_path / "token.der", "-token_in", "-data", tmp_path / "other",
                    "-CAfile", tsa_folder.root, check=False)
    assert done.returncode != 0 and "FAILED" in done.stdout + done.stderr
    with pytest.raises(rfc3161_client.VerificationError):
        verifier.verify_message(response, data + b"!")


def test_concurrent_queries_get_distinct_serial_numbers(local_tsa: LocalTsa):
    stamper = Timestamper((local_tsa.url,))
    with ThreadPoolExecutor(max_workers=8) as pool:
        tokens = list(pool.map(stamper.token, [f"record {i}".encode() for i in range(24)]))
    serials = [_tst_info(t)["serial_number"].native for t in tokens]
    assert len(set(serials)) == len(serials)
    for i, token in enumerate(tokens):
        assert _tst_info(token)["message_imprint"]["hashed_message"].native == \
            hashlib.sha256(f"record {i}".encode()).digest()


# ----------------------------------------------------------------------------- the client: signatures

def test_timestamp_signature_adds_a_token_openssl_accepts(local_tsa: LocalTsa, tsa_folder: TsaFolder, signer,
                                                          tmp_path: Path):
    record = b'{"role":"client","signed_at":"2025-01-01T00:00:00Z"}\n'
    p7s = _sign(signer, record)
    stamped, token = timestamp_signature(p7s, Timestamper((local_tsa.url,)))
    # The token is over SHA-256 of the signature value (CAdES-T), not over the record.
    assert _tst_info(token)["message_imprint"]["hashed_message"].native == \
        hashlib.sha256(signature_value(p7s)).digest()
    assert signature_value(stamped) == signature_value(p7s)

    # Byte-for-byte, only the unsigned attributes were added: the old SignerInfo's contents are a prefix of
    # the new one's, and the signed attributes, signature, certificates and content info keep their bytes.
    old = cms.ContentInfo.load(p7s)["content"]
    new = cms.ContentInfo.load(stamped)["content"]
    old_si, new_si = old["signer_infos"][0], new["signer_infos"][0]
    assert new_si.contents.startswith(old_si.contents) and len(new_si.contents) > len(old_si.contents)
    assert new_si["signed_attrs"].dump() == old_si["signed_attrs"].dump()
    assert new_si["signature"].dump() == old_si["signature"].dump()
    for part in ("digest_algorithms", "encap_content_info", "certificates"):
        assert new[part].dump() == old[part].dump(), part
    attrs = list(new_si["unsigned_attrs"])
    assert [a["type"].dotted for a in attrs] == [TOKEN_ATTRIBUTE]
    assert attrs[0]["values"][0].dump() == token

    (tmp_path / "record.json").write_bytes(record)
    (tmp_path / "record.json.p7s").write_bytes(stamped)
    printed = _openssl("cms", "-cmsout", "-print", "-inform", "DER", "-in", tmp_path / "record.json.p7s").stdout
    assert "unsignedAttrs:" in printed and "id-smime-aa-timeStampToken" in printed
    _openssl("cms", "-verify", "-binary", "-inform", "DER", "-in", tmp_path / "record.json.p7s",
             "-content", tmp_path / "record.json", "-CAfile", signer[2], "-purpose", "any", "-out", os.devnull)
    # The signature still fails for other content: cms -verify really looked.
    (tmp_path / "other.json").write_bytes(record.replace(b"client", b"clienT"))
    done = _openssl("cms", "-verify", "-binary", "-inform", "DER", "-in", tmp_path / "record.json.p7s",
                    "-content", tmp_path / "other.json", "-CAfile", signer[2], "-purpose", "any",
                    "-out", os.devnull, check=False)
    assert done.returncode != 0


def test_add_token_refuses_a_second_token(local_tsa: LocalTsa, signer):
    p7s = _sign(signer, b"record\n")
    stamped, token = timestamp_signature(p7s, Timestamper((local_tsa.url,)))
    with pytest.raises(SigningError) as info:
        add_token(stamped, token)
    assert info.value.code == "conflict.timestamped"


def test_damaged_inputs_are_format_errors(signer):
    with pytest.raises(InvalidFormat) as info:
        signature_value(b"\x30\x03\x02\x01\x00")
    assert info.value.code == "format.cms"
    with pytest.raises(InvalidFormat) as info:
        add_token(_sign(signer, b"record\n"), b"not a token")
    assert info.value.code == "format.tsa-token"


# ----------------------------------------------------------------------------- the client: failures

def test_closed_port_is_unavailable(closed_url: str):
    with pytest.raises(TimestampError) as info:
        Timestamper((closed_url,), timeout=5).token(b"data")
    assert info.value.code == "unavailable.tsa" and info.value.exit_code == 3
    assert closed_url in info.value.message and "refused" in info.value.message.lower()


def test_garbage_reply_is_refused(canned):
    url, server = canned
    server.canned = b"<html>this is not a time-stamp reply</html>"
    with pytest.raises(TimestampError) as info:
        Timestamper((url,)).token(b"data")
    assert info.value.code == "unavailable.tsa-reply" and url in info.value.message


@pytest.mark.parametrize("status", [302, 307, 503])
def test_redirects_and_http_errors_are_unavailable(canned, status: int):
    url, server = canned
    server.status = status
    with pytest.raises(TimestampError) as info:
        Timestamper((url,)).token(b"data")
    assert info.value.code == "unavailable.tsa" and f"HTTP {status}" in info.value.message


def test_granted_reply_for_other_data_is_refused(local_tsa: LocalTsa, canned):
    url, server = canned
    # A real, granted reply from the real TSA, but for another query: replayed to us by a man in the middle.
    status, reply, _ = _post(local_tsa.url, _query(b"other data"))
    assert status == 200 and rfc3161_client.decode_timestamp_response(reply).status == 0
    server.canned = reply
    with pytest.raises(TimestampError) as info:
        Timestamper((url,)).token(b"data")
    assert info.value.code == "unavailable.tsa-refused" and "other data" in info.value.message


def test_replayed_reply_for_the_same_data_fails_the_nonce(local_tsa: LocalTsa, canned):
    url, server = canned
    status, reply, _ = _post(local_tsa.url, _query(b"data"))  # same digest, but no nonce of ours
    assert status == 200
    server.canned = reply
    with pytest.raises(TimestampError) as info:
        Timestamper((url,)).token(b"data")
    assert info.value.code == "unavailable.tsa-refused" and "nonce" in info.value.message


def test_rejected_query_is_refused(local_tsa: LocalTsa, canned):
    url, server = canned
    status, reply, _ = _post(local_tsa.url, _query(b"data", "-sha1"))  # the TSA accepts SHA-2 digests only
    assert status == 200 and rfc3161_client.decode_timestamp_response(reply).status == 2
    server.canned = reply
    with pytest.raises(TimestampError) as info:
        Timestamper((url,)).token(b"data")
    assert info.value.code == "unavailable.tsa-refused" and "refused the query" in info.value.message


def test_first_tsa_down_second_gives_the_token(local_tsa: LocalTsa, closed_url: str):
    data = b"data for two TSAs"
    token = Timestamper((closed_url, local_tsa.url), timeout=5).token(data)
    assert _tst_info(token)["message_imprint"]["hashed_message"].native == hashlib.sha256(data).digest()


def test_all_tsas_down_names_each(closed_url: str, canned):
    url, _server = canned
    with pytest.raises(TimestampError) as info:
        Timestamper((closed_url, url), timeout=5).token(b"data")
    message = info.value.message
    assert message.startswith("no TSA gave a time-stamp token") and closed_url in message and url in message
    assert info.value.code == "unavailable.tsa"  # different failures: the general code


@pytest.mark.parametrize("urls", [(), ("ftp://tsa.example/",), ("file:///etc/passwd",), ("http:///",)])
def test_bad_tsa_urls_are_usage_errors(urls):
    with pytest.raises(TimestampError) as info:
        Timestamper(urls)
    assert info.value.code == "usage.tsa-url"


# ----------------------------------------------------------------------------- the server

def test_server_refuses_what_is_not_a_query(local_tsa: LocalTsa, tsa_log: Path):
    url = local_tsa.url
    assert _post(url, b"", method="GET")[0] == 405
    assert _post(url, _query(b"x"), ctype="application/octet-stream")[0] == 415
    assert _post(url + "other", _query(b"x"))[0] == 404
    assert _post(url, b"\x30" * (16 * 1024 + 1))[0] == 413
    # Junk of the right type: OpenSSL answers it with a rejection (badDataFormat), as RFC 3161 says.
    marker = b"\x30\x10" + bytes.fromhex("c0ffee5eed5c0ffee5eed5c0ffee5eed")
    status, body, ctype = _post(url, marker)
    assert status == 200 and ctype == "application/timestamp-reply"
    assert rfc3161_client.decode_timestamp_response(body).status == 2
    # Nothing about the request reaches the TSA's log (its contents, in any spelling, or who asked).
    log = tsa_log.read_bytes()
    assert b"c0ffee5eed" not in log.lower() and marker not in log and b"127.0.0.1" not in log
    # And the server keeps serving.
    status, reply, ctype = _post(url, _query(b"after junk"))
    assert status == 200 and ctype == "application/timestamp-reply"
    assert rfc3161_client.decode_timestamp_response(reply).status == 0


def test_openssl_failure_is_a_plain_500(tmp_path: Path):
    broken = create(tmp_path / "broken")
    with open(broken.passfile, "wb") as fh:  # the wrong passphrase: openssl ts -reply cannot load the key
        fh.write(b"not the passphrase\n")
    query = _query(b"data")
    with open(tmp_path / "err.log", "wb") as log, start(broken.path, stderr=log) as running:
        status, body, ctype = _post(running.url, query)
        assert status == 500 and ctype.startswith("text/plain")
        assert b"Traceback" not in body and b"openssl" not in body.lower() and len(body) < 200
        assert _post(running.url, query)[0] == 500  # still answering
    log = (tmp_path / "err.log").read_text()
    assert "openssl ts -reply failed" in log and "Traceback" not in log
    assert query.hex() not in log and hashlib.sha256(b"data").hexdigest() not in log.lower().replace(":", "")


def test_start_on_a_folder_that_is_no_tsa_fails_cleanly(tmp_path: Path):
    with open(tmp_path / "err.log", "wb") as log, pytest.raises(AgreementsError) as info, \
            start(tmp_path, stderr=log):
        pass
    assert info.value.code == "unavailable.tsa-start"
    assert "is not a TSA folder" in (tmp_path / "err.log").read_text()


def test_serve_on_a_port_in_use_is_one_line(tsa_folder: TsaFolder, local_tsa: LocalTsa):
    port = local_tsa.url.rsplit(":", 1)[1].strip("/")
    done = subprocess.run([sys.executable, "-m", "agreements_kit.localtsa", "serve", str(tsa_folder.path),
                           "--port", port], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2 and done.stdout == ""
    assert re.fullmatch(r"error: cannot listen on 127\.0\.0\.1:\d+: .+\n", done.stderr), done.stderr


# ----------------------------------------------------------------------------- the CLI group

def test_cli_init_and_its_errors(tmp_path: Path):
    runner = CliRunner()
    res = runner.invoke(tsa_group, ["init", str(tmp_path / "t")], catch_exceptions=False)
    assert res.exit_code == 0 and (tmp_path / "t" / "tsa-root.pem").is_file()
    assert "tsa-root.pem" in res.stdout
    res = runner.invoke(tsa_group, ["init", str(tmp_path / "t")], catch_exceptions=False)
    assert res.exit_code == 2
    assert res.stderr.startswith("error: ") and res.stderr.count("\n") == 1 and "new folder" in res.stderr
    res = runner.invoke(tsa_group, ["serve", str(tmp_path / "missing")], catch_exceptions=False)
    assert res.exit_code == 2 and "is not a TSA folder" in res.stderr and res.stderr.count("\n") == 1


# ----------------------------------------------------------------------------- the README's OpenSSL recipe

def _readme_recipe() -> str:
    """The first bash block under the README's recipe heading (the test fails if the section is missing)."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    start_at = text.find("\n" + RECIPE_HEADING + "\n")
    assert start_at >= 0, f"README.md has no section '{RECIPE_HEADING}'"
    section = text[start_at + len(RECIPE_HEADING) + 2:]
    block = re.search(r"^```bash\n(.*?)^```", section, flags=re.MULTILINE | re.DOTALL)
    assert block and not re.search(r"^#{1,3} ", section[:block.start()], flags=re.MULTILINE), \
        f"the README section '{RECIPE_HEADING}' has no ```bash block"
    return block.group(1)


def _run_recipe(recipe: str, folder: Path, p7s: Path, root: Path) -> subprocess.CompletedProcess[str]:
    script = folder / "check-token.sh"
    script.write_text(recipe, encoding="utf-8")
    return subprocess.run(["bash", str(script), str(p7s), str(root)], capture_output=True, text=True,
                          cwd=folder, timeout=60, check=False)


def test_readme_recipe_accepts_a_token_and_refuses_a_grafted_one(local_tsa: LocalTsa, tsa_folder: TsaFolder,
                                                                 signer, tmp_path: Path):
    recipe = _readme_recipe()
    stamper = Timestamper((local_tsa.url,))
    client_plain = _sign(signer, b'{"role":"client"}\n')
    client, _ = timestamp_signature(client_plain, stamper)
    therapist_plain = _sign(signer, b'{"role":"therapist"}\n')
    therapist, therapist_token = timestamp_signature(therapist_plain, stamper)
    (tmp_path / "01-client.json.p7s").write_bytes(client)
    (tmp_path / "02-therapist.json.p7s").write_bytes(therapist)

    for name in ("01-client.json.p7s", "02-therapist.json.p7s"):
        done = _run_recipe(recipe, tmp_path, tmp_path / name, tsa_folder.root)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "Verification: OK" in done.stdout and re.search(r"^Time stamp: .+ GMT$", done.stdout, re.MULTILINE)

    # The therapist's token grafted onto the client's signature: a token over other bytes.
    grafted = add_token(client_plain, therapist_token)
    (tmp_path / "grafted.p7s").write_bytes(grafted)
    done = _run_recipe(recipe, tmp_path, tmp_path / "grafted.p7s", tsa_folder.root)
    assert done.returncode != 0 and "Verification: OK" not in done.stdout

    # A TSA root the token does not lead to, and a signature without any token: refused too.
    done = _run_recipe(recipe, tmp_path, tmp_path / "01-client.json.p7s", signer[2])
    assert done.returncode != 0 and "Verification: OK" not in done.stdout
    (tmp_path / "plain.p7s").write_bytes(therapist_plain)
    done = _run_recipe(recipe, tmp_path, tmp_path / "plain.p7s", tsa_folder.root)
    assert done.returncode != 0 and "no time-stamp token" in done.stderr
