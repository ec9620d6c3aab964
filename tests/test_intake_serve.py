"""`agreements intake serve` as a clinic runs it: a real process, HTTP and HTTPS on loopback.

The server is started as a subprocess on a free port; the tests wait for its
"intake server on" line (printed once the socket listens), then talk to it over
127.0.0.1 only.
"""

from __future__ import annotations

import http.cookiejar
import os
import re
import select
import signal
import socket
import ssl
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from agreements_kit.authoring.render import Job, Renderer
from agreements_kit.authoring.spec import make_spec
from agreements_kit.intake.app import intake_link
from agreements_kit.intake.tickets import TicketStore
from agreements_kit.signing.setup import init_practice

PASS = "serve-test-passphrase"  # the intake CA's: all the intake server holds
STAFF_PASS = "the front desk's own long password"


@pytest.fixture(scope="module")
def practice(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("serve") / "practice"
    init_practice(root, name="Serve Test Practice", jurisdiction="US", passphrase=b"serve-root-pass",
                  intake_passphrase=PASS.encode(), clinician_passphrase=b"serve-clinician-pass",
                  therapists={"lee": ("Dr. Robin Lee", "PhD", "psychologist")})
    renderer = Renderer.load(root)
    renderer.render_to(Job(make_spec(client="Jane Q. Doe", therapist="lee", id="agr-serve-1"), root / "drafts"))
    secret = root.parent / "staff-password.txt"
    secret.write_text(STAFF_PASS + "\n")
    agreements = Path(sys.executable).parent / "agreements"
    subprocess.run([str(agreements), "staff", "add", "pat.kim", "--full-name", "Pat Kim", "--practice", str(root),
                    "--password-file", str(secret)], check=True, capture_output=True, stdin=subprocess.DEVNULL)
    return root


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Served:
    def __init__(self, practice: Path, *args: str):
        self.port = free_port()
        agreements = Path(sys.executable).parent / "agreements"
        env = dict(os.environ, AGREEMENTS_INTAKE_PASSPHRASE=PASS)
        self.proc = subprocess.Popen([str(agreements), "intake", "serve", "--practice", str(practice),
                                      "--port", str(self.port), *args], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                                     start_new_session=True)
        self.banner: list[str] = []
        while True:  # until the server says it listens (or dies)
            ready, _, _ = select.select([self.proc.stderr], [], [], 60)
            assert ready, "the server printed nothing within 60 s"
            line = self.proc.stderr.readline()
            assert line, f"the server exited: {self.proc.wait()}"
            self.banner.append(line)
            if "intake server on" in line:
                break

    def stop(self) -> str:
        """Stop the server; everything it wrote on stderr (read through the same buffered reader as the
        banner, so lines it had already read ahead are not lost)."""
        os.killpg(self.proc.pid, signal.SIGINT)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        return "".join(self.banner) + self.proc.stderr.read()


def csrf_of(body: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', body).group(1)


def test_serves_http_on_loopback_by_default_and_logs_no_token(practice: Path):
    server = Served(practice)
    try:
        assert "127.0.0.1" in "".join(server.banner) and "warning" not in "".join(server.banner)
        token, _ = TicketStore(practice / "intake").open("agr-serve-1", "client", "photo ID", "Desk")
        url = intake_link(f"http://127.0.0.1:{server.port}", token)
        # A link scanner's HEAD and GET use nothing up.
        with urllib.request.urlopen(urllib.request.Request(url, method="HEAD")) as response:
            assert response.status == 200
        with urllib.request.urlopen(url) as response:
            assert response.status == 200
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor())
        with opener.open(url) as response:
            assert response.status == 200 and response.url == url
            assert "Content-Security-Policy" in response.headers
            csrf = csrf_of(response.read().decode())
        with opener.open(url, data=urllib.parse.urlencode({"csrf": csrf}).encode()) as response:
            assert response.status == 200 and response.url.endswith("/sign/consent")
    finally:
        log = server.stop()
    assert token not in log and "Jane" not in log and csrf not in log
    for line in ("HEAD /i/… 200", "GET /i/… 200", "POST /i/… 302", "GET /sign/consent 200"):
        assert line in log, (line, log)


def test_staff_sign_in_with_their_own_account_at_the_real_server(practice: Path):
    server = Served(practice, "--idle-minutes", "30")
    base = f"http://127.0.0.1:{server.port}"
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    try:
        with opener.open(f"{base}/staff") as response:
            csrf = csrf_of(response.read().decode())

        def sign_in(name: str, password: str):
            form = urllib.parse.urlencode({"csrf": csrf, "name": name, "password": password}).encode()
            try:
                with opener.open(f"{base}/staff/login", data=form) as response:
                    return response.status, response.read().decode()
            except urllib.error.HTTPError as exc:
                return exc.code, exc.read().decode()

        assert sign_in("pat.kim", PASS)[0] == 403  # the intake CA's passphrase signs no one in
        status, body = sign_in("pat.kim", STAFF_PASS)  # the real argon2id parameters
        assert status == 200 and "Signed in as Pat Kim" in body and "agr-serve-1" in body
        assert {c.name for c in jar} >= {"intake_staff", "intake_device"}
    finally:
        log = server.stop()
    assert STAFF_PASS not in log and "pat.kim" not in log
    assert "POST /staff/login 403" in log and "POST /staff/login 302" in log


def test_serve_warns_when_no_one_can_sign_in_at_staff(practice: Path, tmp_path: Path):
    import shutil

    bare = Path(shutil.copytree(practice, tmp_path / "bare"))
    (bare / "staff.json").unlink()
    server = Served(bare)
    with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/staff") as response:
        assert b"no staff accounts yet" in response.read()
    assert "warning: no staff accounts" in server.stop()


def test_the_idle_time_is_bounded(practice: Path):
    agreements = Path(sys.executable).parent / "agreements"
    env = dict(os.environ, AGREEMENTS_INTAKE_PASSPHRASE=PASS)
    proc = subprocess.run([str(agreements), "intake", "serve", "--practice", str(practice), "--port",
                           str(free_port()), "--idle-minutes", "0"], capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=120, env=env)
    assert proc.returncode == 2 and "--idle-minutes" in proc.stderr and "Traceback" not in proc.stderr


def test_tls_uses_a_certificate_from_the_practice_ca(practice: Path):
    server = Served(practice, "--tls")
    try:
        assert f"https://127.0.0.1:{server.port}" in "".join(server.banner)
        context = ssl.create_default_context(cafile=str(practice / "pki" / "root.pem"))
        with urllib.request.urlopen(f"https://127.0.0.1:{server.port}/", context=context) as response:
            assert response.status == 200
        untrusting = ssl.create_default_context()  # the system store does not know the practice root
        with pytest.raises(urllib.error.URLError) as err:
            urllib.request.urlopen(f"https://127.0.0.1:{server.port}/", context=untrusting)
        assert isinstance(err.value.reason, ssl.SSLCertVerificationError)
        token, _ = TicketStore(practice / "intake").open("agr-serve-1", "client", "photo ID", "Desk")
        https = urllib.request.build_opener(urllib.request.HTTPSHandler(context=context),
                                            urllib.request.HTTPCookieProcessor())  # the cookie is Secure
        link = intake_link(f"https://127.0.0.1:{server.port}", token)
        with https.open(link) as response:
            csrf = csrf_of(response.read().decode())
        with https.open(link, data=urllib.parse.urlencode({"csrf": csrf}).encode()) as response:
            assert response.url.endswith("/sign/consent")
    finally:
        server.stop()


def test_serving_on_the_network_without_tls_warns(practice: Path):
    server = Served(practice, "--host", "0.0.0.0")
    try:
        banner = "".join(server.banner)
        assert "warning: serving on the network without --tls" in banner
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/") as response:
            assert response.status == 200
    finally:
        server.stop()


def test_a_wrong_passphrase_stops_the_server_before_it_listens(practice: Path, tmp_path: Path):
    wrong = tmp_path / "wrong.txt"
    wrong.write_text("not-the-passphrase\n")
    agreements = Path(sys.executable).parent / "agreements"
    proc = subprocess.run([str(agreements), "intake", "serve", "--practice", str(practice), "--port",
                           str(free_port()), "--passphrase-file", str(wrong)], capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [proc.stderr.strip()] and "wrong passphrase" in proc.stderr


def _public_ca_certificate(tmp_path: Path, key_mode: int = 0o600, passphrase: bytes | None = None):
    """A CA of its own (standing in for a public one) and a server certificate from it for 127.0.0.1."""
    import datetime as dt
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Stand-in Public CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(hours=1))
          .not_valid_after(now + dt.timedelta(days=30))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "intake.example")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    (tmp_path / "ca.pem").write_bytes(ca.public_bytes(pem))
    (tmp_path / "chain.pem").write_bytes(cert.public_bytes(pem) + ca.public_bytes(pem))
    encryption = (serialization.BestAvailableEncryption(passphrase) if passphrase
                  else serialization.NoEncryption())
    key_path = tmp_path / "key.pem"
    key_path.write_bytes(key.private_bytes(pem, serialization.PrivateFormat.PKCS8, encryption))
    key_path.chmod(key_mode)
    return tmp_path / "ca.pem", tmp_path / "chain.pem", key_path


def test_tls_with_the_practices_own_certificate_for_clients_phones(practice: Path, tmp_path: Path, monkeypatch):
    """A certificate from a CA the clients' phones trust (here a stand-in), not the practice root."""
    ca, chain, key = _public_ca_certificate(tmp_path, passphrase=b"tls key pass")
    monkeypatch.setenv("AGREEMENTS_TLS_KEY_PASSPHRASE", "tls key pass")
    server = Served(practice, "--tls-cert", str(chain), "--tls-key", str(key))
    try:
        assert f"https://127.0.0.1:{server.port}" in "".join(server.banner)
        phone = ssl.create_default_context(cafile=str(ca))  # trusts the public CA, knows nothing of the practice
        with urllib.request.urlopen(f"https://127.0.0.1:{server.port}/", context=phone) as response:
            assert response.status == 200
    finally:
        server.stop()


@pytest.mark.parametrize("problem", ["readable key", "key alone", "wrong key"])
def test_a_bad_own_certificate_stops_the_server_with_one_line(practice: Path, tmp_path: Path, problem: str):
    ca, chain, key = _public_ca_certificate(tmp_path, key_mode=0o644 if problem == "readable key" else 0o600)
    args = ["--tls-cert", str(chain), "--tls-key", str(key)]
    if problem == "key alone":
        args = ["--tls-key", str(key)]
    if problem == "wrong key":
        (tmp_path / "other").mkdir()
        other = _public_ca_certificate(tmp_path / "other")[2]  # a key of another certificate
        args = ["--tls-cert", str(chain), "--tls-key", str(other)]
    env = dict(os.environ, AGREEMENTS_INTAKE_PASSPHRASE=PASS)
    env.pop("AGREEMENTS_TLS_KEY_PASSPHRASE", None)
    agreements = Path(sys.executable).parent / "agreements"
    proc = subprocess.run([str(agreements), "intake", "serve", "--practice", str(practice), "--port", str(free_port()),
                           *args], capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=120, env=env)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert {"readable key": "chmod 600", "key alone": "go together", "wrong key": "cannot be used together"}[problem] \
        in proc.stderr
