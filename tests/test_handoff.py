"""The client's copy after intake, by email, print or phone, with a real SMTP server (aiosmtpd).

The mail server is aiosmtpd on 127.0.0.1 with STARTTLS required and a certificate from a
test CA made here (the practice names it in ``ca_bundle``), and a sign-in whose password
the practice reads from a file. The intake app is the real one, through Flask's test
client; its pages are asked for over https (``base_url``), as ``intake serve --tls``
serves them, except where a test checks what plain HTTP is refused. The client's session
is the one signing leaves behind (the agreements are signed with the library, as the
intake's signature page does; the whole flow in a browser is tests/test_handoff_browser.py).
Countersigning is the real ``agreements sign --as therapist``. Link expiry is reached by
moving ``delivery._now``, never by sleeping.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import re
import secrets
import shutil
import stat
from pathlib import Path

import pytest
from helpers import FakeClock, cheap_hasher, ok
from mailserver import MAIL_PASS, MAIL_USER, MailServer, attachments, body_text, free_port, make_mail_ca

from agreements_kit.authoring.practice import load_practice
from agreements_kit.authoring.render import Job, Renderer
from agreements_kit.authoring.spec import make_spec
from agreements_kit.errors import MailError, PracticeError
from agreements_kit.intake import app as web
from agreements_kit.intake import delivery, mailer
from agreements_kit.intake.app import create_app
from agreements_kit.intake.staff import StaffStore
from agreements_kit.intake.tickets import Session, Ticket
from agreements_kit.signing.pki import PKI
from agreements_kit.signing.setup import init_practice
from agreements_kit.signing.sign import ClientSigning, sign_client

PASS = b"handoff-intake-pass"
ROOT_PASS = b"handoff-root-pass"
CLINICIAN_PASS = b"handoff-clinician-pass"
LEE_PASS = "handoff-lee-pass"
STAFF = ("pat.kim", "Pat Kim", "the front desk's long password")
PRACTICE_NAME = "Handoff Test Practice"
CLIENTS = {"agr-hand-0001": "Jane Q. Doe", "agr-hand-0002": "John Roe", "agr-hand-0003": "Mary Major"}
ADDRESS = "client.person@example.org"
HTTPS = "https://localhost"
LINK_RE = re.compile(r"https://localhost/h/([A-Za-z0-9_-]{43,})")


# --------------------------------------------------------------------------- a real SMTP server


@pytest.fixture(scope="module")
def mail_ca(tmp_path_factory) -> dict[str, Path]:
    return make_mail_ca(tmp_path_factory.mktemp("mail-ca"))


@pytest.fixture
def smtp(mail_ca):
    server = MailServer(mail_ca)
    yield server
    server.stop()


# --------------------------------------------------------------------------- the practice


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    """A practice whose three agreements the clients signed (with signed copies), a therapist, a staff account."""
    root = tmp_path_factory.mktemp("handoff") / "practice"
    init_practice(root, name=PRACTICE_NAME, jurisdiction="US-NY", phone="(212) 555-0100",
                  therapists={"lee": ("Dr. Robin Lee", "PhD", "psychologist")}, passphrase=ROOT_PASS,
                  intake_passphrase=PASS,
                  clinician_passphrase=CLINICIAN_PASS)
    practice = load_practice(root)
    PKI(root / "pki").issue_clinician("lee", "Dr. Robin Lee", practice.name, CLINICIAN_PASS, LEE_PASS.encode())
    renderer = Renderer.load(root)
    for aid, name in CLIENTS.items():
        folder = renderer.render_to(Job(make_spec(client=name, therapist="lee", id=aid), practice.drafts))
        manifest = json.loads((folder / "manifest.json").read_text())
        initials = {c["id"]: "JQD" for c in manifest["clauses"] if c["initials"]}
        sign_client(practice, aid, ClientSigning(name=name, consent=True, initials=initials, intent=True,
                                                 identity_method="photo ID", identity_checked_by="Desk"), PASS)
    StaffStore(root, cheap_hasher()).add(*STAFF)
    (root.parent / "mail-password.txt").write_text(MAIL_PASS + "\n")
    return root


@pytest.fixture
def pr(base: Path, tmp_path: Path, monkeypatch) -> Path:
    for key in ("AGREEMENTS_PASSPHRASE", "AGREEMENTS_INTAKE_PASSPHRASE", "AGREEMENTS_PRACTICE"):
        monkeypatch.delenv(key, raising=False)
    root = tmp_path / "practice"
    shutil.copytree(base, root)
    shutil.copy(base.parent / "mail-password.txt", tmp_path / "mail-password.txt")
    return root


def with_mail(root: Path, certs: dict[str, Path], port: int, **over: object) -> None:
    """Add ``handoff: mail:`` to practice.yaml (STARTTLS to 127.0.0.1:port, the test CA, a password file)."""
    settings = {"host": "127.0.0.1", "port": port, "security": "starttls",
                "from": f'"{PRACTICE_NAME}" <desk@handoff-practice.example>', "username": MAIL_USER,
                "password_file": "../mail-password.txt", "ca_bundle": str(certs["ca"]), "delivery": "attach",
                "timeout": 10}
    settings.update(over)
    lines = ["handoff:", "  link_hours: 72", "  mail:"]
    lines += [f"    {k}: {json.dumps(v)}" for k, v in settings.items() if v is not None]
    path = root / "practice.yaml"
    path.write_text(path.read_text() + "\n".join(lines) + "\n")


class Tablet:
    """The tablet's browser after the client signed ``agreement_id``: the session signing leaves, over https."""

    def __init__(self, app, agreement_id: str, secure: bool = True, packet: list[str] | None = None):
        self.app = app
        self.c = app.test_client()
        self.base = HTTPS if secure else "http://localhost"
        archive = load_practice(app.extensions["agreements"]["practice"].root).archive
        folder = archive / agreement_id
        ticket = Ticket(agreement_id, "client", "photo ID", "Desk", dt.datetime.now(dt.UTC) + dt.timedelta(hours=1))
        result = {"folder": str(folder), "signed_at": "2026-12-03T10:00:00Z"}
        if packet:
            result["folders"] = [str(archive / aid) for aid in packet]
        s = Session(secrets.token_urlsafe(32), ticket, secrets.token_urlsafe(32), signed=True, result=result)
        app.extensions["agreements"]["sessions"].add(s)
        self.csrf = s.csrf
        self.c.set_cookie(web.COOKIE, s.id, domain="localhost")

    def get(self, path: str, **kw):
        return self.c.get(path, base_url=self.base, **kw)

    def post(self, path: str, data: dict | None = None, **kw):
        return self.c.post(path, data={"csrf": self.csrf, **(data or {})}, base_url=self.base, **kw)

    def choose(self, channel: str):
        return self.post("/sign/handoff", {"channel": channel})


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def new_app(root: Path, clock: FakeClock):
    return create_app(root, PASS, clock=clock, staff_hasher=cheap_hasher())


def countersign(cli, root: Path, monkeypatch, agreement_id: str):
    monkeypatch.setenv("AGREEMENTS_PASSPHRASE", LEE_PASS)
    return cli("sign", agreement_id, "--practice", root, "--as", "therapist")


def text(resp) -> str:
    return resp.get_data(as_text=True)


def handoff_lines(stderr: str) -> list[str]:
    """stderr without the countersignature's own warning (this practice has no TSA)."""
    return [line for line in stderr.splitlines() if not line.startswith("warning: no time-stamp token")]


def ours(caplog) -> str:
    """What agreements-kit logged (not the test's mail server, which logs every recipient)."""
    return "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("agreements_kit"))


# --------------------------------------------------------------------------- settings


GOOD_MAIL = {"host": "mail.example.org", "from": "Practice <desk@example.org>"}


def practice_with(tmp_path: Path, mail_lines: list[str]) -> Path:
    root = tmp_path / "p"
    init_practice(root, name="Settings Practice", jurisdiction="US",
                  therapists={"lee": ("Dr. Robin Lee", "PhD", "psychologist")})
    path = root / "practice.yaml"
    path.write_text(path.read_text() + "handoff:\n  mail:\n" + "".join(f"    {line}\n" for line in mail_lines))
    return root


@pytest.mark.parametrize(("lines", "key", "words"), [
    (["host: mail.example.org", "from: desk@example.org", "username: desk", "password: hunter2-long"],
     "password", "never goes in practice.yaml"),
    (["host: mail.example.org", "from: desk@example.org", "security: none"], "security", "only for a mail server"),
    (["host: mail.example.org", "from: desk@example.org", "security: plain"], "security", "starttls"),
    (["host: localhost", "from: desk@example.org", "security: none", "username: desk", "password_env: X_PASS"],
     "security", "never sent without TLS"),
    (["host: mail.example.org", "from: desk@example.org", "delivery: link"], "delivery", "link_url"),
    (["host: mail.example.org", "from: desk@example.org", "delivery: link", "link_url: http://intake.example"],
     "link_url", "https://"),
    (["host: mail.example.org", "from: desk@example.org", "username: desk"], "username", "both"),
    (["host: mail.example.org", "from: not an address"], "from", "an address"),
    (["host: mail.example.org", "from: desk@example.org", "ca_bundle: missing.pem"], "ca_bundle", "not found"),
    (["host: mail.example.org", "from: desk@example.org", "port: 70000"], "port", "port number"),
    (["host: mail.example.org", "from: desk@example.org", 'subject: "a\\nb"'], "subject", "one line"),
    (["host: mail.example.org", "from: desk@example.org", "sender: x"], "sender", "unknown key"),
    (["host: mail.example.org", "from: desk@example.org", "password_env: 1bad"], "password_env", "name"),
])
def test_mail_settings_are_refused_with_their_file_and_line(tmp_path: Path, lines, key, words):
    root = practice_with(tmp_path, lines)
    with pytest.raises(PracticeError) as err:
        load_practice(root)
    settings = (root / "practice.yaml").read_text().splitlines()
    line = next(n for n, text in enumerate(settings, start=1) if text.strip().startswith(f"{key}:"))
    assert err.value.path == root / "practice.yaml" and err.value.line == line, (str(err.value), line)
    assert words in err.value.message, err.value.message
    assert "hunter2" not in str(err.value)


def test_mail_settings_defaults_and_a_local_relay_without_tls(tmp_path: Path):
    mail = load_practice(practice_with(tmp_path, ["host: mail.example.org", "from: Practice <desk@example.org>"])
                         ).handoff.mail
    assert (mail.port, mail.security, mail.delivery, mail.subject) == (587, "starttls", "attach",
                                                                       "Your signed document from {practice}")
    assert mail.sender_address == "desk@example.org"
    local = load_practice(practice_with(tmp_path / "2", ["host: localhost", "from: desk@example.org",
                                                         "security: none"])).handoff
    assert (local.mail.port, local.mail.security, local.phone_minutes) == (25, "none", 10)
    tls = load_practice(practice_with(tmp_path / "3", ["host: mail.example.org", "from: desk@example.org",
                                                       "security: tls"])).handoff.mail
    assert tls.port == 465


# --------------------------------------------------------------------------- email: attached


def test_email_attaches_the_signed_copy_and_the_subject_names_no_client(pr: Path, mail_ca, smtp, clock, caplog):
    with_mail(pr, mail_ca, smtp.port)
    caplog.set_level(logging.INFO)
    app = new_app(pr, clock)
    t = Tablet(app, "agr-hand-0001")
    done = t.get("/sign/done")
    assert done.status_code == 200 and 'value="email"' in text(done) and 'id="by-email" name="channel" value="email">' \
        in text(done)  # offered (not disabled)
    r = t.choose("email")
    assert r.status_code == 302 and r.headers["Location"].endswith("/sign/handoff/email")
    form = t.get("/sign/handoff/email")
    assert form.status_code == 200 and 'type="email"' in text(form) and '<label for="address">' in text(form)
    r = t.post("/sign/handoff/email", {"address": f"  {ADDRESS} "})
    assert r.status_code == 200 and "Sent." in text(r), text(r)
    assert len(smtp.inbox.messages) == 1 and smtp.inbox.tls == [True]  # delivered after STARTTLS
    sender, recipients, raw = smtp.inbox.messages[0]
    assert sender == "desk@handoff-practice.example" and recipients == [ADDRESS]
    assert smtp.inbox.logins == [(MAIL_USER.encode(), MAIL_PASS.encode())]  # the password from its file
    msg = smtp.inbox.parsed()
    assert msg["Subject"] == f"Your signed document from {PRACTICE_NAME}"
    folder = pr / "signed" / "agr-hand-0001"
    files = attachments(msg)
    assert set(files) == {"signed-agreement.pdf", "receipt-of-signing.pdf"}
    assert files["signed-agreement.pdf"] == (folder / "01-client.copy.pdf").read_bytes()
    assert files["signed-agreement.pdf"].startswith((folder / "agreement.pdf").read_bytes())
    assert files["receipt-of-signing.pdf"].startswith(b"%PDF-")
    headers = "\n".join(f"{k}: {v}" for k, v in msg.items())
    for secret in ("Jane", "Doe", "agr-hand-0001"):
        assert secret not in headers and secret not in body_text(msg), secret
    # The choice is kept outside the archive, owner-only, until the completed copy is mailed.
    choice_file = pr / "intake" / "handoff" / "choices" / "agr-hand-0001.json"
    assert stat.S_IMODE(choice_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(choice_file.parent.stat().st_mode) == 0o700
    assert json.loads(choice_file.read_text())["email"] == ADDRESS
    assert not (folder / "handoff").exists() and "handoff" not in {p.name for p in (pr / "signed").iterdir()}
    for secret in (ADDRESS, "Jane", "agr-hand-0001", MAIL_PASS):
        assert secret not in ours(caplog), secret


def test_a_mistyped_address_is_refused_without_mail_or_record(pr: Path, mail_ca, smtp, clock):
    with_mail(pr, mail_ca, smtp.port)
    t = Tablet(new_app(pr, clock), "agr-hand-0001")
    for typed in ("", "jane.example.org", "jane@", "a@b@example.org", "jane@example.org, other@example.org",
                  "jane doe@example.org"):
        r = t.post("/sign/handoff/email", {"address": typed})
        assert r.status_code == 422 and "Please check:" in text(r), (typed, text(r))
    assert smtp.inbox.messages == [] and not (pr / "intake" / "handoff" / "choices" / "agr-hand-0001.json").exists()


def test_email_is_not_offered_without_mail_settings(pr: Path, clock):
    t = Tablet(new_app(pr, clock), "agr-hand-0001")
    assert 'id="by-email" name="channel" value="email" disabled' in text(t.get("/sign/done"))
    assert t.choose("email").status_code == 409
    assert t.get("/sign/handoff/email").status_code == 409


def test_a_certificate_the_practice_does_not_trust_sends_nothing(pr: Path, mail_ca, smtp, clock, caplog):
    with_mail(pr, mail_ca, smtp.port, ca_bundle=None)  # the system's CAs: they do not know the test CA
    caplog.set_level(logging.INFO)
    t = Tablet(new_app(pr, clock), "agr-hand-0001")
    r = t.post("/sign/handoff/email", {"address": ADDRESS})
    assert r.status_code == 503 and "your copy was not sent" in text(r) and "print or phone" in text(r)
    assert smtp.inbox.messages == [] and smtp.inbox.logins == []  # the password never left
    assert "certificate that is not trusted" in ours(caplog) and ADDRESS not in ours(caplog)
    assert not (pr / "intake" / "handoff" / "choices" / "agr-hand-0001.json").exists()


def test_a_server_without_starttls_gets_no_mail(pr: Path, mail_ca):
    plain = MailServer(mail_ca, mode="none")
    try:
        with_mail(pr, mail_ca, plain.port)
        with pytest.raises(MailError) as err:
            delivery.send_documents(load_practice(pr), ["agr-hand-0001"], ADDRESS, delivery.SIGNED)
        assert "does not offer STARTTLS" in err.value.message and ADDRESS not in err.value.message
        assert plain.inbox.messages == [] and plain.inbox.logins == []
    finally:
        plain.stop()


def test_tls_from_the_first_byte(pr: Path, mail_ca):
    server = MailServer(mail_ca, mode="tls")
    try:
        with_mail(pr, mail_ca, server.port, security="tls")
        delivery.send_documents(load_practice(pr), ["agr-hand-0002"], ADDRESS, delivery.SIGNED)
        assert len(server.inbox.messages) == 1 and server.inbox.tls == [True]
        assert attachments(server.inbox.parsed())["signed-agreement.pdf"] == \
            (pr / "signed" / "agr-hand-0002" / "01-client.copy.pdf").read_bytes()
    finally:
        server.stop()


def test_a_password_from_the_environment_and_a_wrong_one(pr: Path, mail_ca, smtp, monkeypatch):
    with_mail(pr, mail_ca, smtp.port, password_file=None, password_env="HANDOFF_TEST_MAIL_PASS")
    practice = load_practice(pr)
    monkeypatch.delenv("HANDOFF_TEST_MAIL_PASS", raising=False)
    with pytest.raises(MailError, match=r"\$HANDOFF_TEST_MAIL_PASS is empty or missing"):
        delivery.send_documents(practice, ["agr-hand-0001"], ADDRESS, delivery.SIGNED)
    monkeypatch.setenv("HANDOFF_TEST_MAIL_PASS", "not the password at all")
    with pytest.raises(MailError, match="refused the practice's sign-in") as err:
        delivery.send_documents(practice, ["agr-hand-0001"], ADDRESS, delivery.SIGNED)
    assert "not the password" not in str(err.value)
    monkeypatch.setenv("HANDOFF_TEST_MAIL_PASS", MAIL_PASS)
    delivery.send_documents(practice, ["agr-hand-0001"], ADDRESS, delivery.SIGNED)
    assert len(smtp.inbox.messages) == 1


# --------------------------------------------------------------------------- email: a single-use link


def link_mode(pr: Path, mail_ca, smtp) -> None:
    with_mail(pr, mail_ca, smtp.port, delivery="link", link_url=HTTPS, subject="Documents from {practice}")


def test_link_mode_mails_a_link_that_downloads_once(pr: Path, mail_ca, smtp, clock, caplog):
    link_mode(pr, mail_ca, smtp)
    caplog.set_level(logging.INFO)
    app = new_app(pr, clock)
    t = Tablet(app, "agr-hand-0001")
    assert t.post("/sign/handoff/email", {"address": ADDRESS}).status_code == 200
    msg = smtp.inbox.parsed()
    assert msg["Subject"] == f"Documents from {PRACTICE_NAME}" and list(msg.iter_attachments()) == []
    token = LINK_RE.search(body_text(msg)).group(1)
    phone = app.test_client()
    url = f"/h/{token}"
    # Looking never uses it: HEAD, GET (twice), a browser's prefetch.
    assert phone.head(url, base_url=HTTPS).status_code == 200
    assert phone.get(url, base_url=HTTPS, headers={"Sec-Purpose": "prefetch"}).status_code == 503
    page = phone.get(url, base_url=HTTPS)
    assert page.status_code == 200 and 'id="open-documents"' in text(page)
    page = phone.get(url, base_url=HTTPS)
    csrf = re.search(r'name="csrf" value="([^"]+)"', text(page)).group(1)
    # A form from elsewhere (no matching cookie) uses nothing up.
    stranger = app.test_client()
    assert stranger.post(url, data={"csrf": csrf}, base_url=HTTPS).status_code == 400
    # A second browser that opened the page too, before the link was used.
    other = app.test_client()
    other_csrf = re.search(r'name="csrf" value="([^"]+)"', text(other.get(url, base_url=HTTPS))).group(1)
    r = phone.post(url, data={"csrf": csrf}, base_url=HTTPS)
    assert r.status_code == 302 and r.headers["Location"].endswith("/h/files")
    assert "Secure" in r.headers["Set-Cookie"] and "HttpOnly" in r.headers["Set-Cookie"]
    listing = phone.get("/h/files", base_url=HTTPS)
    assert listing.status_code == 200 and "signed-agreement.pdf" in text(listing)
    copy = phone.get("/h/files/signed-agreement.pdf", base_url=HTTPS)
    assert copy.status_code == 200 and copy.mimetype == "application/pdf"
    assert copy.data == (pr / "signed" / "agr-hand-0001" / "01-client.copy.pdf").read_bytes()
    assert phone.get("/h/files/receipt-of-signing.pdf", base_url=HTTPS).data.startswith(b"%PDF-")
    # The link is used: a second use is refused, by this browser or another; the files only for this one.
    again = phone.get(url, base_url=HTTPS)
    assert again.status_code == 410 and "already used" in text(again)
    second = other.post(url, data={"csrf": other_csrf}, base_url=HTTPS)
    assert second.status_code == 410 and "already used" in text(second)
    assert stranger.get("/h/files/signed-agreement.pdf", base_url=HTTPS).status_code == 401
    # The grant ends after 10 minutes.
    clock.advance(delivery_grant_seconds())
    assert phone.get("/h/files/signed-agreement.pdf", base_url=HTTPS).status_code == 401
    stored = list((pr / "intake" / "handoff" / "links").rglob("*.json"))
    assert stored and all(token not in p.name and token not in p.read_text() for p in stored)
    for secret in (token, ADDRESS, "agr-hand-0001"):
        assert secret not in ours(caplog)


def delivery_grant_seconds() -> int:
    from agreements_kit.intake.handoff import GRANT_MINUTES

    return GRANT_MINUTES * 60


def test_an_expired_link_is_refused(pr: Path, mail_ca, smtp, clock, monkeypatch):
    link_mode(pr, mail_ca, smtp)
    app = new_app(pr, clock)
    assert Tablet(app, "agr-hand-0001").post("/sign/handoff/email", {"address": ADDRESS}).status_code == 200
    token = LINK_RE.search(body_text(smtp.inbox.parsed())).group(1)
    later = dt.datetime.now(dt.UTC) + dt.timedelta(hours=72, minutes=1)
    monkeypatch.setattr(delivery, "_now", lambda: later)
    phone = app.test_client()
    r = phone.get(f"/h/{token}", base_url=HTTPS)
    assert r.status_code == 410 and "expired" in text(r)
    assert phone.post(f"/h/{token}", data={"csrf": "x" * 43}, base_url=HTTPS).status_code in (400, 410)


@pytest.mark.parametrize("bad", ["x", "a" * 43, "a" * 129, "..%2Fpending", "tok.en"])
def test_wrong_links_are_not_found(pr: Path, clock, bad: str):
    r = new_app(pr, clock).test_client().get(f"/h/{bad}", base_url=HTTPS)
    assert r.status_code == 404 and ("link is not valid" in text(r) or "page is not available" in text(r))


def test_downloads_and_phone_codes_are_refused_over_plain_http(pr: Path, clock):
    app = new_app(pr, clock)
    t = Tablet(app, "agr-hand-0001", secure=False)
    done = text(t.get("/sign/done"))
    assert 'id="by-phone" name="channel" value="phone" disabled' in done and "needs a secure connection" in done
    r = t.choose("phone")
    assert r.status_code == 403 and "secure (https) connection" in text(r) and "--tls" in text(r)
    assert not (pr / "intake" / "handoff" / "links" / "pending").exists()
    token, _ = delivery.links(load_practice(pr)).open(delivery.documents(load_practice(pr), ["agr-hand-0001"]), 10,
                                                      "phone")
    plain = app.test_client().get(f"/h/{token}", base_url="http://localhost")
    assert plain.status_code == 403 and "secure (https) connection" in text(plain)
    assert (pr / "intake" / "handoff" / "links" / "pending").is_dir() and \
        len(list((pr / "intake" / "handoff" / "links" / "pending").iterdir())) == 1  # still unused


# --------------------------------------------------------------------------- phone and print


def test_phone_code_is_a_single_use_link_bound_to_the_agreement(pr: Path, clock, monkeypatch):
    app = new_app(pr, clock)
    t = Tablet(app, "agr-hand-0002")
    r = t.choose("phone")
    assert r.status_code == 302 and r.headers["Location"].endswith("/sign/handoff/phone")
    page = text(t.get("/sign/handoff/phone"))
    link = re.search(r'<span id="download-link">([^<]+)</span>', page).group(1)
    assert link.startswith("https://localhost/h/") and str(web.qr_data_uri(link)) in page
    assert "10 minutes" in page
    token = link.rsplit("/", 1)[1]
    stored = delivery.links(load_practice(pr)).check(token)
    assert stored.agreements == ("agr-hand-0002",) and stored.purpose == "phone"
    assert stored.documents[0].sha256 == hashlib.sha256(
        (pr / "signed" / "agr-hand-0002" / "01-client.copy.pdf").read_bytes()).hexdigest()
    phone = app.test_client()
    csrf = re.search(r'name="csrf" value="([^"]+)"', text(phone.get(link))).group(1)
    assert phone.post(link, data={"csrf": csrf}).status_code == 302
    assert phone.get("/h/files/signed-agreement.pdf", base_url=HTTPS).data == \
        (pr / "signed" / "agr-hand-0002" / "01-client.copy.pdf").read_bytes()
    assert phone.get(link).status_code == 410
    assert "This code was used" in text(t.get("/sign/handoff/phone"))
    # A new code expires after 10 minutes.
    t.choose("phone")
    fresh = re.search(r'<span id="download-link">([^<]+)</span>', text(t.get("/sign/handoff/phone"))).group(1)
    later = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=10, seconds=1)
    monkeypatch.setattr(delivery, "_now", lambda: later)
    assert app.test_client().get(fresh).status_code == 410
    assert "This code has expired" in text(t.get("/sign/handoff/phone"))
    choice = delivery.read_choice(load_practice(pr), "agr-hand-0002")
    assert choice.front_desk == ["phone"] and choice.email is None


def test_a_changed_copy_is_not_served_by_an_old_link(pr: Path, clock):
    app = new_app(pr, clock)
    practice = load_practice(pr)
    token, _ = delivery.links(practice).open(delivery.documents(practice, ["agr-hand-0003"]), 10, "phone")
    phone = app.test_client()
    csrf = re.search(r'name="csrf" value="([^"]+)"', text(phone.get(f"/h/{token}", base_url=HTTPS))).group(1)
    phone.post(f"/h/{token}", data={"csrf": csrf}, base_url=HTTPS)
    copy = pr / "signed" / "agr-hand-0003" / "01-client.copy.pdf"
    copy.chmod(0o600)
    copy.write_bytes(copy.read_bytes() + b"\n% appended\n")
    r = phone.get("/h/files/signed-agreement.pdf", base_url=HTTPS)
    assert r.status_code == 409 and "changed after the link was made" in text(r)


def test_print_opens_the_copy_and_receipt_and_puts_the_completed_copy_on_the_front_desk_list(
        pr: Path, clock, cli, monkeypatch):
    app = new_app(pr, clock)
    t = Tablet(app, "agr-hand-0003")
    r = t.choose("print")
    assert r.status_code == 302 and r.headers["Location"].endswith("/sign/handoff/print")
    page = text(t.get("/sign/handoff/print"))
    assert "For the front desk" in page and 'target="_blank"' in page
    copy = t.get("/sign/handoff/print/signed-agreement.pdf")
    assert copy.headers["Content-Disposition"].startswith("inline")
    assert copy.data == (pr / "signed" / "agr-hand-0003" / "01-client.copy.pdf").read_bytes()
    assert t.get("/sign/handoff/print/receipt-of-signing.pdf").data.startswith(b"%PDF-")
    assert t.get("/sign/handoff/print/agreement.pdf").status_code == 404
    listed = ok(cli("handoff", "list", "--practice", pr)).stdout
    assert "agr-hand-0003 (Mary Major): print: waiting for the countersignature" in listed
    res = ok(countersign(cli, pr, monkeypatch, "agr-hand-0003"))
    assert "handoff: agr-hand-0003: the completed copy is on the front desk's list, to be printed" in res.stdout
    listed = ok(cli("handoff", "list", "--practice", pr)).stdout
    assert "ready to hand over (print)" in listed and "02-therapist.copy.pdf" in listed
    # The front desk's page lists it (signed in), opens it to print, and marks it handed over.
    staff = app.test_client()
    login = staff.get("/staff", base_url=HTTPS)
    csrf = re.search(r'name="csrf" value="([^"]+)"', text(login)).group(1)
    staff.post("/staff/login", data={"csrf": csrf, "name": STAFF[0], "password": STAFF[2]}, base_url=HTTPS)
    listing = staff.get("/staff/handoff", base_url=HTTPS)
    assert listing.status_code == 200 and "Mary Major" in text(listing) and "ready to hand over" in text(listing)
    completed = staff.get("/staff/handoff/agr-hand-0003/signed-agreement.pdf", base_url=HTTPS)
    assert completed.data == (pr / "signed" / "agr-hand-0003" / "02-therapist.copy.pdf").read_bytes()
    assert app.test_client().get("/staff/handoff", base_url=HTTPS).status_code == 302  # not signed in
    staff_csrf = re.search(r'name="csrf" value="([^"]+)"', text(listing)).group(1)
    assert staff.post("/staff/handoff/agr-hand-0003/done", data={"csrf": staff_csrf},
                      base_url=HTTPS).status_code == 302
    assert delivery.read_choice(load_practice(pr), "agr-hand-0003") is None
    assert ok(cli("handoff", "list", "--practice", pr)).stdout.strip() == "nothing to hand over"


def staff_signed_in(app):
    """The front desk's browser, signed in over https: the client and the CSRF token of its pages."""
    staff = app.test_client()
    login = staff.get("/staff", base_url=HTTPS)
    csrf = re.search(r'name="csrf" value="([^"]+)"', text(login)).group(1)
    r = staff.post("/staff/login", data={"csrf": csrf, "name": STAFF[0], "password": STAFF[2]}, base_url=HTTPS)
    assert r.status_code == 302, text(r)
    home = staff.get("/staff", base_url=HTTPS)  # the session's token, on every staff page with a form
    return staff, re.search(r'name="csrf" value="([^"]+)"', text(home)).group(1)


def test_odd_agreement_ids_and_a_damaged_record_are_refused_without_a_traceback(pr: Path, clock, caplog):
    app = new_app(pr, clock)
    assert Tablet(app, "agr-hand-0003").choose("print").status_code == 302  # one good record on the list
    choices = delivery.handoff_dir(load_practice(pr)) / "choices"
    (choices / "agr-hand-0002.json").write_bytes(b"{damaged")  # a hand-off record no longer readable
    (choices / "a.b.json").write_bytes(b"{}")  # a file whose name is no agreement id
    staff, csrf = staff_signed_in(app)
    caplog.clear()
    caplog.set_level(logging.DEBUG)
    # One damaged record does not take the whole list down: it is skipped, and the others are listed.
    listing = staff.get("/staff/handoff", base_url=HTTPS)
    assert listing.status_code == 200 and "Mary Major" in text(listing)
    for method, path, status in (
            ("GET", "/staff/handoff/a.b/signed-agreement.pdf", 404),
            ("GET", "/staff/handoff/log/signed-agreement.pdf", 404),
            ("GET", "/staff/handoff/.hidden/signed-agreement.pdf", 404),
            ("POST", "/staff/handoff/a.b/qr", 404),
            ("POST", "/staff/handoff/log/qr", 404),
            ("POST", "/staff/handoff/a.b/done", 404),
            ("GET", "/staff/handoff/agr-hand-0002/signed-agreement.pdf", 400),  # the damaged record: format.*
            ("POST", "/staff/handoff/agr-hand-0002/qr", 400)):
        r = staff.open(path, method=method, data={"csrf": csrf} if method == "POST" else None, base_url=HTTPS)
        assert r.status_code == status, (method, path, r.status_code)
        assert r.mimetype == "text/html" and "Traceback" not in text(r) and "agr-hand-0002" not in text(r)
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR and r.name.startswith("flask")]
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "Traceback" not in logged and "Exception on" not in logged
    assert "agr-hand" not in logged and "a.b" not in logged and "/staff/handoff/" not in logged
    assert "hand-off record skipped: format.handoff" in logged and "request refused: format.handoff" in logged


# --------------------------------------------------------------------------- the follow-up at countersigning


def test_countersigning_mails_the_completed_copy_and_erases_the_address(pr: Path, mail_ca, smtp, clock, cli,
                                                                          monkeypatch):
    with_mail(pr, mail_ca, smtp.port)
    t = Tablet(new_app(pr, clock), "agr-hand-0001")
    assert t.post("/sign/handoff/email", {"address": ADDRESS}).status_code == 200
    res = ok(countersign(cli, pr, monkeypatch, "agr-hand-0001"))
    assert "handoff: agr-hand-0001: the completed copy was mailed (attached)" in res.stdout
    assert handoff_lines(res.stderr) == []
    assert len(smtp.inbox.messages) == 2 and smtp.inbox.messages[1][1] == [ADDRESS]
    msg = smtp.inbox.parsed(1)
    folder = pr / "signed" / "agr-hand-0001"
    files = attachments(msg)
    assert files["signed-agreement.pdf"] == (folder / "02-therapist.copy.pdf").read_bytes()
    assert files["signed-agreement.pdf"].startswith((folder / "01-client.copy.pdf").read_bytes())
    assert "countersigned" in body_text(msg) and "Jane" not in body_text(msg) and "Jane" not in msg["Subject"]
    assert not (pr / "intake" / "handoff" / "choices" / "agr-hand-0001.json").exists()  # the address is gone
    assert ADDRESS.encode() not in b"".join(p.read_bytes() for p in (pr / "intake").rglob("*") if p.is_file())


def test_a_mail_server_that_is_down_at_countersigning_queues_the_mail(pr: Path, mail_ca, smtp, clock, cli,
                                                                      monkeypatch):
    with_mail(pr, mail_ca, smtp.port, delivery="link", link_url=HTTPS)
    t = Tablet(new_app(pr, clock), "agr-hand-0002")
    assert t.post("/sign/handoff/email", {"address": ADDRESS}).status_code == 200
    smtp.stop()
    down = smtp.port
    res = countersign(cli, pr, monkeypatch, "agr-hand-0002")
    assert res.exit_code == 0 and "signed agr-hand-0002 as therapist" in res.stdout  # the countersignature stands
    lines = handoff_lines(res.stderr)
    assert len(lines) == 1, res.stderr
    assert lines[0] == (f"warning: the completed copy of agr-hand-0002 was not mailed: the mail server "
                        f"127.0.0.1:{down} could not be reached (Connection refused); the countersignature stands "
                        "and the mail stays queued: send it with 'agreements handoff send'")
    assert (pr / "signed" / "agr-hand-0002" / "02-therapist.json").is_file()
    choice = delivery.read_choice(load_practice(pr), "agr-hand-0002")
    assert choice.email == ADDRESS and "could not be reached" in choice.mail_error
    assert "email queued: the mail server" in ok(cli("handoff", "list", "--practice", pr)).stdout
    failed = cli("handoff", "send", "--practice", pr)
    assert failed.exit_code == 3 and "stays queued" in failed.stderr
    # The server is back: 'agreements handoff send' mails a fresh single-use link to the completed copy.
    back = MailServer(mail_ca, port=down)
    try:
        sent = ok(cli("handoff", "send", "--practice", pr))
        assert "handoff: agr-hand-0002: the completed copy was mailed (as a single-use download link)" in sent.stdout
        assert len(back.inbox.messages) == 1 and ADDRESS not in sent.stdout
        token = LINK_RE.search(body_text(back.inbox.parsed())).group(1)
        link = delivery.links(load_practice(pr)).check(token)
        assert [d.file for d in link.documents] == ["02-therapist.copy.pdf", None]
        assert delivery.read_choice(load_practice(pr), "agr-hand-0002") is None
        assert ok(cli("handoff", "send", "--practice", pr)).stdout.strip() == \
            "no completed copy is waiting to be mailed"
    finally:
        back.stop()


def test_countersigning_without_a_choice_says_nothing_of_handoff(pr: Path, cli, monkeypatch):
    res = ok(countersign(cli, pr, monkeypatch, "agr-hand-0001"))
    assert "handoff" not in res.stdout + res.stderr and not (pr / "intake" / "handoff" / "choices").exists()


def test_check_address():
    assert mailer.check_address(" a.b+c@example.org ") == "a.b+c@example.org"
    for bad in ("a@b", "<a@example.org>", "a@example.org\r\nBcc: x@example.org", "é@example.org", "a" * 65 +
                "@example.org"):
        with pytest.raises(Exception, match="email address"):
            mailer.check_address(bad)


def test_the_access_log_shows_no_download_token_nor_agreement(caplog):
    caplog.set_level(logging.INFO)
    quiet = web.quiet_request_handler()
    handler = quiet.__new__(quiet)
    token = secrets.token_urlsafe(32)
    for method, path in (("GET", f"/h/{token}"), ("POST", f"/h/{token}"), ("GET", "/h/files/signed-agreement.pdf"),
                         ("GET", "/sign/handoff/print/receipt-of-signing.pdf"), ("GET", "/h/files"),
                         ("POST", "/staff/handoff/agr-hand-0001/done"), ("GET", "/sign/handoff/email")):
        handler.command, handler.path = method, path
        handler.log_request(200)
    logged = ours(caplog)
    assert token not in logged and "agr-hand-0001" not in logged and "signed-agreement" not in logged
    for line in ("GET /h/… 200", "POST /h/… 200", "GET /h/files/… 200", "GET /sign/handoff/… 200",
                 "GET /h/files 200", "POST /staff/handoff/… 200", "GET /sign/handoff/email 200"):
        assert line in logged, (line, logged)


def test_a_voided_agreement_erases_the_address_it_was_waiting_with(pr: Path, mail_ca, cli):
    from agreements_kit.signing.sign import void

    with_mail(pr, mail_ca, free_port())
    practice = load_practice(pr)
    delivery.record_choice(practice, ["agr-hand-0003"], "email", ADDRESS)
    void(practice, "agr-hand-0003", "client withdrew", LEE_PASS.encode())
    res = ok(cli("handoff", "send", "--practice", pr))
    assert "agr-hand-0003: the agreement was voided" in res.stdout and ADDRESS not in res.stdout
    assert delivery.read_choice(practice, "agr-hand-0003") is None


# --------------------------------------------------------------------------- a tablet left signed in


OTHER = "someone.else@example.net"


def test_a_second_different_address_is_refused_and_the_completed_copy_goes_to_the_first(
        pr: Path, mail_ca, smtp, clock, cli, monkeypatch):
    with_mail(pr, mail_ca, smtp.port)
    t = Tablet(new_app(pr, clock), "agr-hand-0001")
    sent = t.post("/sign/handoff/email", {"address": ADDRESS})
    assert sent.status_code == 200 and "Sent." in text(sent)
    # After a send the page offers only Finish: no way back to another address from here.
    assert 'id="finish"' in text(sent) and "another way" not in text(sent) and ADDRESS not in text(sent)
    refused = t.post("/sign/handoff/email", {"address": OTHER})
    assert refused.status_code == 409 and "cannot be changed here" in text(refused) and "front desk" in text(refused)
    assert "Nothing was sent" in text(refused) and OTHER not in text(refused) and ADDRESS not in text(refused)
    assert len(smtp.inbox.messages) == 1 and smtp.inbox.messages[0][1] == [ADDRESS]
    assert delivery.read_choice(load_practice(pr), "agr-hand-0001").email == ADDRESS
    form = text(t.get("/sign/handoff/email"))
    assert 'name="address"' not in form and 'name="again"' in form and "c…@example.org" in form
    # Another session of the same visit (the tablet reloaded) is refused too: the address is on record.
    t2 = Tablet(t.app, "agr-hand-0001")
    assert t2.post("/sign/handoff/email", {"address": OTHER}).status_code == 409
    assert len(smtp.inbox.messages) == 1
    res = ok(countersign(cli, pr, monkeypatch, "agr-hand-0001"))
    assert "the completed copy was mailed (attached)" in res.stdout
    assert [m[1] for m in smtp.inbox.messages] == [[ADDRESS], [ADDRESS]]
    assert "countersigned" in body_text(smtp.inbox.parsed(1))


def test_a_client_may_send_again_to_the_same_address_at_most_three_times(pr: Path, mail_ca, smtp, clock):
    with_mail(pr, mail_ca, smtp.port)
    t = Tablet(new_app(pr, clock), "agr-hand-0002")
    assert t.post("/sign/handoff/email", {"address": ADDRESS}).status_code == 200
    assert t.post("/sign/handoff/email", {"address": ADDRESS}).status_code == 200  # a double submit: sent once
    assert len(smtp.inbox.messages) == 1
    clock.advance(60)
    again = t.post("/sign/handoff/email", {"again": "1"})  # the mail never arrived: the button on the form
    assert again.status_code == 200 and "Sent." in text(again)
    clock.advance(60)
    assert t.post("/sign/handoff/email", {"address": ADDRESS}).status_code == 200  # typed again: the same
    assert [m[1] for m in smtp.inbox.messages] == [[ADDRESS]] * 3
    clock.advance(60)
    capped = t.post("/sign/handoff/email", {"again": "1"})
    assert capped.status_code == 429 and "3 times" in text(capped) and len(smtp.inbox.messages) == 3
    assert 'name="again"' not in text(t.get("/sign/handoff/email"))


def test_choosing_email_after_the_countersignature_mails_the_completed_copy_at_once(
        pr: Path, mail_ca, smtp, clock, cli, monkeypatch):
    with_mail(pr, mail_ca, smtp.port)
    ok(countersign(cli, pr, monkeypatch, "agr-hand-0001"))
    t = Tablet(new_app(pr, clock), "agr-hand-0001")
    r = t.post("/sign/handoff/email", {"address": ADDRESS})
    assert r.status_code == 200 and "already countersigned: this is the completed copy" in text(r)
    assert len(smtp.inbox.messages) == 1 and smtp.inbox.messages[0][1] == [ADDRESS]
    msg = smtp.inbox.parsed()
    folder = pr / "signed" / "agr-hand-0001"
    assert attachments(msg)["signed-agreement.pdf"] == (folder / "02-therapist.copy.pdf").read_bytes()
    assert "countersigned" in body_text(msg)
    assert delivery.read_choice(load_practice(pr), "agr-hand-0001") is None  # the address is erased
    assert ADDRESS.encode() not in b"".join(p.read_bytes() for p in (pr / "intake").rglob("*") if p.is_file())
    assert ok(cli("handoff", "send", "--practice", pr)).stdout.strip() == "no completed copy is waiting to be mailed"


def test_choosing_print_after_the_countersignature_is_ready_at_once(pr: Path, clock, cli, monkeypatch):
    ok(countersign(cli, pr, monkeypatch, "agr-hand-0003"))
    t = Tablet(new_app(pr, clock), "agr-hand-0003")
    assert t.choose("print").status_code == 302
    assert delivery.read_choice(load_practice(pr), "agr-hand-0003").ready
    assert "ready to hand over (print)" in ok(cli("handoff", "list", "--practice", pr)).stdout


def test_handoff_send_readies_completed_print_choices_and_erases_voided_ones(pr: Path, cli, monkeypatch):
    from agreements_kit.signing.sign import void

    practice = load_practice(pr)
    ok(countersign(cli, pr, monkeypatch, "agr-hand-0002"))
    delivery.record_choice(practice, ["agr-hand-0002"], "phone", follow=False)  # as a choice left behind
    delivery.record_choice(practice, ["agr-hand-0003"], "print")
    void(practice, "agr-hand-0003", "client withdrew", LEE_PASS.encode())
    listed = ok(cli("handoff", "list", "--practice", pr)).stdout
    assert "agr-hand-0003 (Mary Major): voided: nothing will follow" in listed
    assert "agr-hand-0002 (John Roe): ready to hand over (phone)" in listed
    res = ok(cli("handoff", "send", "--practice", pr))
    assert "handoff: agr-hand-0002: the completed copy is on the front desk's list" in res.stdout
    assert "handoff: agr-hand-0003: the agreement was voided: nothing will follow" in res.stdout
    assert delivery.read_choice(practice, "agr-hand-0002").ready
    assert delivery.read_choice(practice, "agr-hand-0003") is None


def test_a_busy_lock_is_a_clear_error(pr: Path, monkeypatch):
    from filelock import FileLock

    from agreements_kit.errors import HandoffError

    practice = load_practice(pr)
    delivery.private_dirs(pr / "intake", "handoff", "choices")
    monkeypatch.setattr(delivery, "LOCK_SECONDS", 0.05)
    with FileLock(str(delivery.handoff_dir(practice) / ".lock")), \
            pytest.raises(HandoffError, match="hand-off records are busy"):
        delivery.record_choice(practice, ["agr-hand-0001"], "print")


def test_a_packets_mail_and_receipt_name_the_real_files(pr: Path, mail_ca, smtp, clock):
    import subprocess

    with_mail(pr, mail_ca, smtp.port)
    practice = load_practice(pr)  # a second agreement of Jane's: the packet of her visit
    renderer = Renderer.load(pr)
    folder = renderer.render_to(Job(make_spec(client=CLIENTS["agr-hand-0001"], therapist="lee", id="agr-hand-0004"),
                                    practice.drafts))
    manifest = json.loads((folder / "manifest.json").read_text())
    sign_client(practice, "agr-hand-0004", ClientSigning(
        name=CLIENTS["agr-hand-0001"], consent=True, initials={c["id"]: "JQD" for c in manifest["clauses"]
                                                               if c["initials"]},
        intent=True, identity_method="photo ID", identity_checked_by="Desk"), PASS)
    ids = ["agr-hand-0001", "agr-hand-0004"]
    t = Tablet(new_app(pr, clock), "agr-hand-0001", packet=ids)
    assert t.post("/sign/handoff/email", {"address": ADDRESS}).status_code == 200
    msg = smtp.inbox.parsed()
    files = attachments(msg)
    assert set(files) == {"signed-document-1.pdf", "signed-document-2.pdf", "receipt-of-signing.pdf"}
    body = body_text(msg)
    assert "signed-document-1.pdf, signed-document-2.pdf" in body and "signed-agreement.pdf" not in body
    receipt = pr.parent / "receipt.pdf"
    receipt.write_bytes(files["receipt-of-signing.pdf"])
    got = " ".join(subprocess.run(["pdftotext", "-layout", str(receipt), "-"], capture_output=True, text=True,
                                  check=True).stdout.split())
    assert "SIZE" not in got and "signed-agreement.pdf" not in got
    for n, aid in enumerate(ids, start=1):
        size = (pr / "signed" / aid / "agreement.pdf").stat().st_size
        assert f"head -c {size} signed-document-{n}.pdf | sha256sum" in got
        assert hashlib.sha256(files[f"signed-document-{n}.pdf"][:size]).hexdigest() == \
            hashlib.sha256((pr / "signed" / aid / "agreement.pdf").read_bytes()).hexdigest()
