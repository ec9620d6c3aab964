"""`agreements intake serve` as a clinic runs it: a real process, HTTP and HTTPS on loopback.

The server is started as a subprocess on a free port; the tests wait for its
"intake server on" line (printed once the socket listens), then talk to it over
127.0.0.1 only.
"""

from __future__ import annotations

import os
import select
import signal
import socket
import ssl
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from agreements_kit.authoring.render import Job, Renderer
from agreements_kit.authoring.spec import make_spec
from agreements_kit.intake.app import intake_link
from agreements_kit.intake.tickets import TicketStore
from agreements_kit.signing.setup import init_practice

PASS = "serve-test-passphrase"  # the intake CA's: all the intake server holds


@pytest.fixture(scope="module")
def practice(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("serve") / "practice"
    init_practice(root, name="Serve Test Practice", jurisdiction="US", passphrase=b"serve-root-pass",
                  intake_passphrase=PASS.encode(), clinician_passphrase=b"serve-clinician-pass",
                  therapists={"lee": ("Dr. Robin Lee", "PhD")})
    renderer = Renderer.load(root)
    renderer.render_to(Job(make_spec(client="Jane Q. Doe", therapist="lee", id="agr-serve-1"), root / "drafts"))
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
        os.killpg(self.proc.pid, signal.SIGINT)
        try:
            _, err = self.proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            _, err = self.proc.communicate()
        return "".join(self.banner) + err


def test_serves_http_on_loopback_by_default_and_logs_no_token(practice: Path):
    server = Served(practice)
    try:
        assert "127.0.0.1" in "".join(server.banner) and "warning" not in "".join(server.banner)
        token, _ = TicketStore(practice / "intake").open("agr-serve-1", "client", "photo ID", "Desk")
        url = intake_link(f"http://127.0.0.1:{server.port}", token)
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor())
        with opener.open(url) as response:
            assert response.status == 200 and response.url.endswith("/sign/consent")
            assert "Content-Security-Policy" in response.headers
    finally:
        log = server.stop()
    assert token not in log and "Jane" not in log
    assert "GET /i/… 302" in log


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
        with https.open(intake_link(f"https://127.0.0.1:{server.port}", token)) as response:
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
