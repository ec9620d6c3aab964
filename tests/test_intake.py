"""The intake web app and its one-time links, without a browser.

Everything goes through Flask's test client (or, for the access log, a real
werkzeug server spoken to over a raw socket) and the library: one-time tokens
(stored only as SHA-256, looked at freely by GET, HEAD, scanners and prefetches,
claimed once by the client's Start, atomically, before they expire), rate limits
that slow wrong links and passwords without locking anyone out, staff accounts
(each person's own, argon2id), idle and absolute session times, drawn signatures
checked and re-encoded, the
server-side session bound to one agreement, CSRF on every form, the security
headers of every page, bad input on every page, the full signing flow checked
with ``openssl cms -verify``, the logs (no token, no name), and the ``intake``
commands. Expiry is tested by moving the clock (``intake._now`` for links, the
app's injected clock for sessions and rate limits) or by editing a stored ticket,
never by sleeping.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import html
import io
import json
import logging
import os
import re
import secrets
import shutil
import socket
import stat
import struct
import subprocess
import threading
import xml.etree.ElementTree as ET
import zlib
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from helpers import FakeClock, cheap_hasher

from agreements_kit.authoring.practice import load_practice
from agreements_kit.authoring.render import Job, Renderer
from agreements_kit.authoring.spec import make_spec
from agreements_kit.errors import AgreementsError
from agreements_kit.intake import app as web
from agreements_kit.intake import drawing
from agreements_kit.intake import tickets as intake
from agreements_kit.intake.app import create_app
from agreements_kit.intake.staff import StaffStore
from agreements_kit.intake.tickets import IntakeError, TicketStore
from agreements_kit.signing.renders import log_renders
from agreements_kit.signing.setup import init_practice
from agreements_kit.signing.sign import ClientSigning, sign_client

PASS = "practice-pass-1"  # the intake CA's: the intake server signs with it; no one signs in with it
STAFF_NAME, STAFF_FULL, STAFF_PASS = "pat.kim", "Pat Kim", "front desk pass phrase one"
OTHER_NAME, OTHER_FULL, OTHER_PASS = "sam.ortiz", "Sam Ortiz", "another long pass phrase"
ROOT_PASS = "root-pass-1"
CLINICIAN_PASS = "clinician-ca-pass-1"
A_ID = "agr-web-alpha"
A_NAME = "Jane Q. Doe"
B_ID = "agr-web-bravo"
B_NAME = "Marisol Okonkwo"
IDENTITY = "driver licence checked in person"
CHECKED_BY = "Front desk: Pat Kim"
DATE = dt.date(2026, 11, 27)
SENSITIVE = (A_ID, A_NAME, B_ID, B_NAME)

TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{43,}$")
CSRF_RE = re.compile(r'name="csrf" value="([^"]*)"')
DOCUMENT_RE = re.compile(r'name="document" value="([^"]*)"')  # the review and signature forms' document
INITIALS_RE = re.compile(r'Initials needed: your initials for part (\d+)</label>\s*<input id="[^"]+" '
                         r'name="(initials\.[^"]+)"')
ERROR_RE = re.compile(r'<div class="error" role="alert" id="error"><strong>Please check:</strong> (.*?)</div>', re.S)
LEAD_RE = re.compile(r'<p class="lead">(.*?)</p>', re.S)

needs_openssl = pytest.mark.requires_tool("openssl")


# --------------------------------------------------------------------------- helpers


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def png(width: int = 3, height: int = 2) -> bytes:
    """A small valid RGB PNG."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    rows = b"".join(b"\x00" + b"\x10\x20\x30" * width for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def pixels(data: bytes) -> tuple[tuple[int, int], bytes]:
    """A picture's size and RGBA pixels, however it is encoded."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        return image.size, image.convert("RGBA").tobytes()


def data_url(data: bytes, kind: str = "image/png") -> str:
    return f"data:{kind};base64,{base64.b64encode(data).decode()}"


def text(resp) -> str:
    return resp.get_data(as_text=True)


def page_error(resp) -> str:
    """The 'Please check:' message of a form page (unescaped), or ''."""
    m = ERROR_RE.search(text(resp))
    return html.unescape(m.group(1)) if m else ""


def page_message(resp) -> str:
    """The lead paragraph of a message page (unescaped), or ''."""
    m = LEAD_RE.search(text(resp))
    return html.unescape(m.group(1)) if m else ""


def set_cookies(resp, name: str) -> list[str]:
    return [h for h in resp.headers.getlist("Set-Cookie") if h.startswith(f"{name}=")]


def cookie_attrs(header: str) -> set[str]:
    return {part.strip().split("=")[0].lower() for part in header.split(";")[1:]} | {
        part.strip().lower() for part in header.split(";")[1:]}


def client_records(root: Path) -> list[Path]:
    """Every client/guardian signing record anywhere under the archive."""
    signed = root / "signed"
    return sorted(p for p in signed.rglob("*.json") if re.fullmatch(r"\d\d-(client|guardian)\.json", p.name))


def nothing_signed(root: Path) -> None:
    assert client_records(root) == [], "a client record was written"
    assert not (root / "signed" / A_ID / "01-client.json").exists()


def ticket_path(root: Path, token: str, folder: str = "pending") -> Path:
    return root / "intake" / folder / f"{sha256(token.encode())}.json"


def check_response(resp) -> None:
    """What every response must satisfy: security headers, no inline script, no id or name in a redirect."""
    assert resp.headers.get("X-Frame-Options") == "DENY", resp.headers
    assert resp.headers.get("Cache-Control") == "no-store", resp.headers
    if resp.mimetype == "text/html":
        csp = resp.headers.get("Content-Security-Policy")
        assert csp, f"no Content-Security-Policy on an HTML response ({resp.status_code})"
        directives = {d.split()[0]: d.split()[1:] for d in csp.split(";") if d.strip()}
        assert directives.get("script-src") == ["'self'"], csp
        assert "'unsafe-inline'" not in csp and "'unsafe-eval'" not in csp, csp
        assert directives.get("frame-ancestors") == ["'none'"], csp
        page = Page(text(resp))
        for attrs, content in page.scripts:
            assert attrs.get("src"), f"inline <script> in page: {attrs!r}"
            assert not content.strip(), f"<script src> with inline content: {content[:80]!r}"
        assert not page.handlers, f"inline event handlers in page: {page.handlers}"
        assert not page.javascript_urls, page.javascript_urls
    location = resp.headers.get("Location")
    if location:
        for secret in SENSITIVE:
            assert secret.casefold() not in location.casefold(), f"redirect names {secret!r}: {location}"
        assert "/i/" not in location


class Page(HTMLParser):
    """What a page would run: its <script> elements, on* attributes and javascript: URLs."""

    def __init__(self, body: str):
        super().__init__(convert_charrefs=True)
        self.scripts: list[tuple[dict, str]] = []
        self.handlers: list[str] = []
        self.javascript_urls: list[str] = []
        self._script: dict | None = None
        self._content: list[str] = []
        self.feed(body)
        self.close()

    def handle_starttag(self, tag, attrs):
        d = {k.lower(): v or "" for k, v in attrs}
        self.handlers += [k for k in d if k.startswith("on")]
        self.javascript_urls += [v for k, v in d.items() if k in ("href", "src", "action", "formaction")
                                 and v.strip().lower().startswith("javascript:")]
        if tag == "script":
            self._script, self._content = d, []

    def handle_data(self, data):
        if self._script is not None:
            self._content.append(data)

    def handle_endtag(self, tag):
        if tag == "script" and self._script is not None:
            self.scripts.append((self._script, "".join(self._content)))
            self._script = None


class CheckedClient(FlaskClient):
    """A test client that checks every response (headers, inline scripts, redirect targets)."""

    def open(self, *args, **kwargs):
        resp = super().open(*args, **kwargs)
        check_response(resp)
        return resp


class Tablet:
    """One browser on the clinic tablet (its own cookies and address)."""

    def __init__(self, app, addr: str = "127.0.0.1"):
        self.c = app.test_client()
        self.env = {"REMOTE_ADDR": addr}
        self.csrf: str | None = None
        self.responses: list[tuple[str, str, object]] = []
        self.fields: list[tuple[str, str]] = []  # (part number, field name) of clauses needing initials
        self.document: str | None = None  # the document the last review or signature page was for

    def _seen(self, method: str, path: str, resp):
        self.responses.append((method, path, resp))
        if resp.mimetype == "text/html":
            m = CSRF_RE.search(text(resp))
            if m:
                self.csrf = m.group(1)
            d = DOCUMENT_RE.search(text(resp))
            if d:
                self.document = d.group(1)
        return resp

    def get(self, path: str, **kw):
        return self._seen("GET", path, self.c.get(path, environ_base=self.env, **kw))

    def post(self, path: str, data: dict | None = None, **kw):
        data = dict(data or {})
        if path in ("/sign/agreement", "/sign/signature") and self.document is not None:
            data.setdefault("document", self.document)  # as the browser sends the page's form
        return self._seen("POST", path, self.c.post(path, data=data, environ_base=self.env, **kw))

    def look(self, token: str):
        """Open a link: the Start page (nothing is used up)."""
        return self.get(f"/i/{token}")

    def start(self, token: str, csrf: str | None = None):
        """Press Start on a link's page (the POST that uses the link)."""
        return self.post(f"/i/{token}", {"csrf": self.csrf if csrf is None else csrf})

    def claim(self, token: str):
        """Open a link and press Start: the POST's response, or the link page's refusal."""
        r = self.look(token)
        if r.status_code != 200:
            return r
        return self.start(token)

    def consent(self):
        self.get("/sign/consent")
        r = self.post("/sign/consent", {"csrf": self.csrf, "consent": "yes"})
        assert r.status_code == 302 and r.headers["Location"].endswith("/sign/agreement"), text(r)
        return r

    def review(self):
        r = self.get("/sign/agreement")
        assert r.status_code == 200, text(r)
        self.fields = INITIALS_RE.findall(text(r))
        assert self.fields, "the agreement has no clause to initial"
        return r

    def initial(self, value: str = "JQD"):
        self.review()
        r = self.post("/sign/agreement", {"csrf": self.csrf, **{name: value for _, name in self.fields}})
        assert r.status_code == 302 and r.headers["Location"].endswith("/sign/signature"), text(r)
        return r

    def to_signature(self, token: str):
        r = self.claim(token)
        assert r.status_code == 302, text(r)
        self.consent()
        self.initial()
        r = self.get("/sign/signature")
        assert r.status_code == 200, text(r)
        return r

    def sign(self, name: str = A_NAME, intent: str | None = "yes", drawn: str = "", csrf: str | None = None):
        data = {"csrf": self.csrf if csrf is None else csrf, "name": name, "drawn": drawn}
        if intent is not None:
            data["intent"] = intent
        return self.post("/sign/signature", data)

    def staff_login(self, password: str = STAFF_PASS, name: str = STAFF_NAME):
        self.get("/staff")
        return self.post("/staff/login", {"csrf": self.csrf, "name": name, "password": password})


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    """A practice with its PKI and two rendered drafts, for two different clients."""
    root = tmp_path_factory.mktemp("intake-base") / "practice"
    init_practice(root, name="Test Practice", jurisdiction="US-NY", phone="(212) 555-0100",
                  therapists={"lee": ("Dr. Robin Lee", "PhD", "psychologist")}, passphrase=ROOT_PASS.encode(),
                  intake_passphrase=PASS.encode(), clinician_passphrase=CLINICIAN_PASS.encode())
    practice = load_practice(root)
    renderer = Renderer.load(root)
    drafts = [renderer.render_to(Job(make_spec(client=name, therapist="lee", id=aid, date=DATE), practice.drafts))
              for aid, name in ((A_ID, A_NAME), (B_ID, B_NAME))]
    log_renders(practice, drafts)
    accounts = StaffStore(root, cheap_hasher())
    accounts.add(STAFF_NAME, STAFF_FULL, STAFF_PASS)
    accounts.add(OTHER_NAME, OTHER_FULL, OTHER_PASS)
    return root


def copy_practice(base: Path, dest: Path) -> Path:
    shutil.copytree(base, dest)
    return dest


@pytest.fixture
def pr(base: Path, tmp_path: Path, monkeypatch) -> Path:
    for key in ("AGREEMENTS_PASSPHRASE", "AGREEMENTS_KEY_PASSPHRASE", "AGREEMENTS_INTAKE_PASSPHRASE",
                "AGREEMENTS_CLINICIAN_CA_PASSPHRASE", "AGREEMENTS_FAULT", "AGREEMENTS_PRACTICE"):
        monkeypatch.delenv(key, raising=False)
    return copy_practice(base, tmp_path / "practice")


def new_app(root: Path, **kw):
    """The app, with a clock that stands still (``kw['clock']`` to move it) and the tests' argon2 parameters."""
    kw.setdefault("clock", FakeClock())
    kw.setdefault("staff_hasher", cheap_hasher())
    app = create_app(root, PASS.encode(), **kw)
    app.test_client_class = CheckedClient
    return app


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def make_app(pr: Path, clock: FakeClock):
    return lambda **kw: new_app(pr, **{"clock": clock, **kw})


@pytest.fixture
def app(make_app):
    return make_app()


def open_ticket(root: Path, aid: str = A_ID, role: str = "client", minutes: int = 15) -> str:
    token, _ = TicketStore(root / "intake").open(aid, role, IDENTITY, CHECKED_BY, minutes)
    return token


def sign_with_library(root: Path, aid: str = A_ID, name: str = A_NAME):
    folder = root / "drafts" / aid
    manifest = json.loads((folder / "manifest.json").read_text())
    initials = {c["id"]: "JQD" for c in manifest["clauses"] if c["initials"]}
    return sign_client(load_practice(root), aid, ClientSigning(
        name=name, consent=True, initials=initials, intent=True, identity_method="photo ID",
        identity_checked_by="Desk"), PASS.encode())


# --------------------------------------------------------------------------- the full flow (run once)


PROBES_BEFORE = [
    f"/sign/{B_ID}", f"/sign/{B_ID}/document.pdf", f"/sign/document.pdf/{B_ID}", f"/sign/copy/{B_ID}",
    f"/drafts/{B_ID}/agreement.pdf", f"/signed/{B_ID}/agreement.pdf", f"/static/../drafts/{B_ID}/agreement.pdf",
    f"/static/..%2Fdrafts%2F{B_ID}%2Fagreement.pdf", f"/static/{B_ID}", f"/{B_ID}", f"/i/{B_ID}",
    f"/sign/copy/..%2F..%2Fdrafts%2F{B_ID}%2Fagreement.pdf",
]
QUERY_PROBES = [f"/sign/document.pdf?agreement={B_ID}", f"/sign/document.pdf?id={B_ID}",
                f"/sign/document.pdf?agreement_id={B_ID}&client={B_NAME}"]
PROBES_AFTER = [f"/sign/copy/{B_ID}", f"/sign/copy/{B_ID}.pdf", f"/sign/copy/agreement.pdf/{B_ID}"]


@dataclass
class Flow:
    root: Path
    token: str
    drawn: bytes
    tablet: Tablet
    r: dict[str, object] = field(default_factory=dict)
    probes: dict[str, object] = field(default_factory=dict)


def run_flow(root: Path, app) -> Flow:
    """The whole intake: link, consent, initials, sign (with a drawing), copies, finish."""
    token = open_ticket(root)
    t = Tablet(app)
    f = Flow(root, token, png(), t)
    f.r["index"] = t.get("/")
    f.r["claim"] = t.claim(token)
    f.r["consent"] = t.get("/sign/consent")
    f.r["consent_post"] = t.post("/sign/consent", {"csrf": t.csrf, "consent": "yes"})
    f.r["review"] = t.review()
    f.r["document"] = t.get("/sign/document.pdf")
    for path in PROBES_BEFORE + QUERY_PROBES:
        f.probes[path] = t.get(path)
    f.r["review_post"] = t.post("/sign/agreement", {"csrf": t.csrf, **{name: "J.Q.D." for _, name in t.fields}})
    f.r["signature"] = t.get("/sign/signature")
    f.r["mismatch"] = t.sign(name="John Smith", drawn=data_url(f.drawn))
    f.r["sign_post"] = t.sign(name=f"  {A_NAME.lower()}  ", drawn=data_url(f.drawn))
    f.r["done"] = t.get("/sign/done")
    f.r["copy_agreement"] = t.get("/sign/copy/agreement.pdf")
    f.r["copy_receipt"] = t.get("/sign/copy/receipt.pdf")
    for path in PROBES_AFTER:
        f.probes[path] = t.get(path)
    f.r["finish"] = t.post("/sign/finish", {"csrf": t.csrf})
    f.r["done_after_finish"] = t.get("/sign/done")
    f.r["copy_after_finish"] = t.get("/sign/copy/agreement.pdf")
    return f


@pytest.fixture(scope="module")
def flow(base: Path, tmp_path_factory) -> Flow:
    root = copy_practice(base, tmp_path_factory.mktemp("flow") / "practice")
    return run_flow(root, new_app(root))


def test_flow_steps_redirect_in_order(flow: Flow):
    r = flow.r
    assert r["claim"].status_code == 302 and r["claim"].headers["Location"].endswith("/sign/consent")
    assert r["consent"].status_code == 200
    assert r["consent_post"].status_code == 302 and r["consent_post"].headers["Location"].endswith("/sign/agreement")
    assert r["review_post"].status_code == 302
    assert r["review_post"].headers["Location"].endswith("/sign/signature")
    assert r["signature"].status_code == 200
    assert r["mismatch"].status_code == 422
    assert "does not match" in page_error(r["mismatch"])
    assert r["sign_post"].status_code == 302 and r["sign_post"].headers["Location"].endswith("/sign/done")
    assert r["done"].status_code == 200
    assert "You signed the agreement" in text(r["done"])


def test_flow_record_has_role_identity_and_drawing(flow: Flow):
    folder = flow.root / "signed" / A_ID
    assert client_records(flow.root) == [folder / "01-client.json"]
    rec = json.loads((folder / "01-client.json").read_bytes())
    assert rec["agreement_id"] == A_ID
    assert rec["signer"] == {"role": "client", "name": A_NAME.lower()}
    assert rec["identity"] == {"method": IDENTITY, "checked_by": CHECKED_BY}
    # What is stored (and hashed in the record) is the re-encoded picture, not the bytes the browser sent.
    stored = (folder / "01-client.png").read_bytes()
    assert rec["method"]["drawn_signature_file"] == "01-client.png"
    assert rec["method"]["drawn_signature_png_sha256"] == sha256(stored)
    assert stored == drawing.clean_png(flow.drawn) and stored != flow.drawn
    assert pixels(stored) == pixels(flow.drawn)
    assert rec["esign"]["consent_to_electronic_records"] is True
    assert rec["intent"]["adopted"] is True
    needed = {name.removeprefix("initials.") for _, name in flow.tablet.fields}
    assert rec["initials"] == dict.fromkeys(needed, "JQD")
    assert rec["document"]["sha256"] == sha256((folder / "agreement.pdf").read_bytes())


@needs_openssl
def test_flow_record_verifies_with_openssl(flow: Flow):
    record = flow.root / "signed" / A_ID / "01-client.json"
    proc = subprocess.run(["openssl", "cms", "-verify", "-binary", "-inform", "DER", "-in", f"{record}.p7s",
                           "-content", str(record), "-CAfile", str(flow.root / "pki" / "root.pem"),
                           "-purpose", "any", "-out", "/dev/null"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "Verification successful" in proc.stderr
    # and a changed record does not verify
    tampered = flow.root / "tampered.json"
    tampered.write_bytes(record.read_bytes().replace(b'"client"', b'"clienT"', 1))
    proc = subprocess.run(["openssl", "cms", "-verify", "-binary", "-inform", "DER", "-in", f"{record}.p7s",
                           "-content", str(tampered), "-CAfile", str(flow.root / "pki" / "root.pem"),
                           "-purpose", "any", "-out", "/dev/null"], capture_output=True, text=True)
    assert proc.returncode != 0


def test_flow_copies_are_the_signed_copy_and_a_receipt(flow: Flow):
    archived = (flow.root / "signed" / A_ID / "agreement.pdf").read_bytes()
    r = flow.r["copy_agreement"]
    assert r.status_code == 200 and r.mimetype == "application/pdf"
    # The client takes home the signed copy: the archived PDF plus their PAdES signature (found in review:
    # the unsigned PDF was served under the name signed-agreement.pdf).
    assert r.data == (flow.root / "signed" / A_ID / "01-client.copy.pdf").read_bytes()
    assert r.data.startswith(archived) and len(r.data) > len(archived)
    assert "attachment" in r.headers["Content-Disposition"]
    receipt = flow.r["copy_receipt"]
    assert receipt.status_code == 200 and receipt.mimetype == "application/pdf"
    assert receipt.data.startswith(b"%PDF-") and b"%%EOF" in receipt.data[-1024:]
    assert receipt.data != archived


def test_flow_document_is_this_agreements_pdf(flow: Flow):
    r = flow.r["document"]
    assert r.status_code == 200 and r.mimetype == "application/pdf"
    assert r.data == (flow.root / "drafts" / A_ID / "agreement.pdf").read_bytes()
    assert r.data != (flow.root / "drafts" / B_ID / "agreement.pdf").read_bytes()


def test_flow_finish_closes_the_session(flow: Flow):
    r = flow.r["finish"]
    assert r.status_code == 200
    assert "session is closed" in page_message(r)
    deleted = set_cookies(r, web.COOKIE)
    assert deleted and ("max-age=0" in deleted[0].lower() or "expires=thu, 01 jan 1970" in deleted[0].lower())
    for key in ("done_after_finish", "copy_after_finish"):
        assert flow.r[key].status_code == 401, key
        assert "session has ended" in page_message(flow.r[key])


def test_no_url_reaches_another_agreement(flow: Flow):
    b_pdf = (flow.root / "drafts" / B_ID / "agreement.pdf").read_bytes()
    a_pdf = (flow.root / "drafts" / A_ID / "agreement.pdf").read_bytes()
    for path, r in flow.probes.items():
        assert r.data != b_pdf, path
        if path in QUERY_PROBES:  # the query is ignored: still this session's agreement
            assert r.status_code == 200 and r.data == a_pdf, path
        else:
            assert r.status_code == 404, (path, r.status_code)
        if r.mimetype == "text/html":
            assert B_ID not in text(r) and B_NAME not in text(r), path


def test_no_client_page_names_another_agreement_or_client(flow: Flow):
    htmls = [(m, p, r) for m, p, r in flow.tablet.responses if r.mimetype == "text/html"]
    assert len(htmls) > 20
    for method, path, r in htmls:
        body = text(r)
        assert B_ID not in body, (method, path)
        assert B_NAME not in body and B_NAME.split()[-1] not in body, (method, path)
        assert flow.token not in body, (method, path)


def test_no_redirect_names_an_agreement_or_client(flow: Flow):
    redirects = [(p, r.headers["Location"]) for _, p, r in flow.tablet.responses if "Location" in r.headers]
    assert len(redirects) >= 4
    for path, location in redirects:
        assert location.startswith("/sign/"), (path, location)
        for secret in (*SENSITIVE, flow.token, A_NAME.lower()):
            assert secret not in location, (path, location)


def test_index_lists_nothing(flow: Flow, app):
    for r in (flow.r["index"], Tablet(app).get("/")):
        assert r.status_code == 200
        body = text(r)
        for secret in SENSITIVE:
            assert secret not in body
        assert not re.search(r"<(select|option|li|table|ul|ol)\b", body) and 'href="/sign' not in body
        assert "front desk" in page_message(r)


def test_every_flow_response_has_the_security_headers(flow: Flow):
    # CheckedClient asserted it on every response; make sure the kinds that matter were seen
    statuses = {r.status_code for _, _, r in flow.tablet.responses}
    assert {200, 302, 401, 404, 422} <= statuses
    pages = {p for _, p, r in flow.tablet.responses if r.mimetype == "text/html" and r.status_code == 200}
    assert {"/sign/consent", "/sign/agreement", "/sign/signature", "/sign/done"} <= pages
    signature_page = text(flow.r["signature"])
    assert re.search(r'<script src="/static/signature\.js"></script>', signature_page)


def test_static_script_is_served_without_inline_needs(app):
    r = Tablet(app).get("/static/signature.js")
    assert r.status_code == 200 and "javascript" in r.mimetype
    assert "toDataURL(\"image/png\")" in text(r)


# --------------------------------------------------------------------------- tokens: the library


def test_open_returns_long_urlsafe_token_and_stores_only_its_hash(pr: Path):
    store = TicketStore(pr / "intake")
    tokens = [store.open(A_ID, "client", IDENTITY, CHECKED_BY)[0] for _ in range(3)]
    assert len(set(tokens)) == 3
    for token in tokens:
        assert TOKEN_RE.match(token), token
    files = [p for p in (pr / "intake").rglob("*") if p.is_file()]
    assert sorted(p.name for p in files) == sorted(f"{sha256(t.encode())}.json" for t in tokens)
    store.claim(tokens[0])
    for p in (pr / "intake").rglob("*"):
        data = p.read_bytes() if p.is_file() else b""
        for token in tokens:
            assert token not in p.name and token.encode() not in data, p
            assert token[:20] not in p.name and token[:20].encode() not in data, p
    stored = json.loads(ticket_path(pr, tokens[1]).read_bytes())
    assert stored["agreement_id"] == A_ID and stored["role"] == "client"
    assert stored["identity_method"] == IDENTITY and stored["identity_checked_by"] == CHECKED_BY
    assert ticket_path(pr, tokens[0], "claimed").is_file() and not ticket_path(pr, tokens[0]).exists()


def test_ticket_files_are_private(pr: Path):
    token = open_ticket(pr)
    assert stat.S_IMODE(ticket_path(pr, token).stat().st_mode) == 0o600
    for d in (pr / "intake" / "pending", pr / "intake" / "claimed"):
        assert stat.S_IMODE(d.stat().st_mode) == 0o700


def test_claim_returns_the_ticket_once(pr: Path):
    store = TicketStore(pr / "intake")
    token, opened = store.open(A_ID, "guardian", IDENTITY, CHECKED_BY, minutes=30)
    ticket = store.claim(token)
    assert ticket == opened
    assert (ticket.agreement_id, ticket.role, ticket.identity_method) == (A_ID, "guardian", IDENTITY)
    with pytest.raises(IntakeError, match="already used"):
        store.claim(token)
    with pytest.raises(IntakeError, match="already used"):
        TicketStore(pr / "intake").claim(token)  # another process: same answer


def test_expired_token_is_refused(pr: Path, monkeypatch):
    store = TicketStore(pr / "intake")
    real_now = intake._now
    token, _ = store.open(A_ID, "client", IDENTITY, CHECKED_BY, minutes=15)
    fresh, _ = store.open(A_ID, "client", IDENTITY, CHECKED_BY, minutes=15)
    monkeypatch.setattr(intake, "_now", lambda: real_now() + dt.timedelta(minutes=14))
    assert store.claim(fresh).agreement_id == A_ID  # not yet expired
    monkeypatch.setattr(intake, "_now", lambda: real_now() + dt.timedelta(minutes=15, seconds=1))
    with pytest.raises(IntakeError, match="expired"):
        store.claim(token)


def test_expiry_edited_in_the_stored_ticket_is_honoured(pr: Path):
    store = TicketStore(pr / "intake")
    token, _ = store.open(A_ID, "client", IDENTITY, CHECKED_BY)
    path = ticket_path(pr, token)
    data = json.loads(path.read_bytes())
    data["expires"] = (dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)).isoformat()
    path.write_bytes(json.dumps(data).encode())
    with pytest.raises(IntakeError, match="expired"):
        store.claim(token)


def altered(token: str, position: int = 10) -> str:
    c = token[position]
    return token[:position] + ("A" if c != "A" else "B") + token[position + 1:]


@pytest.mark.parametrize("position", [0, 10, 42])
def test_altered_token_is_not_valid(pr: Path, position: int):
    store = TicketStore(pr / "intake")
    token, _ = store.open(A_ID, "client", IDENTITY, CHECKED_BY)
    with pytest.raises(IntakeError, match="not valid"):
        store.claim(altered(token, position))
    with pytest.raises(IntakeError, match="not valid"):
        store.claim(token + "x")
    with pytest.raises(IntakeError, match="not valid"):
        store.claim(token[:-1])
    assert store.claim(token).agreement_id == A_ID  # the real one still works


@pytest.mark.parametrize("bad", ["", "a" * 129, "../pending/x", "tok en", "tok%2Fen", "tok.en", "é" * 43])
def test_malformed_token_is_not_valid(pr: Path, bad: str):
    open_ticket(pr)
    with pytest.raises(IntakeError, match="not valid"):
        TicketStore(pr / "intake").claim(bad)


def test_concurrent_claims_exactly_one_wins(pr: Path):
    token = open_ticket(pr)
    n = 12
    barrier = threading.Barrier(n)
    results: list[object] = [None] * n

    def claim(i: int) -> None:
        store = TicketStore(pr / "intake")  # one store per thread, as if separate processes
        barrier.wait()
        try:
            results[i] = store.claim(token)
        except IntakeError as exc:
            results[i] = exc

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wins = [r for r in results if not isinstance(r, IntakeError)]
    losses = [r for r in results if isinstance(r, IntakeError)]
    assert len(wins) == 1 and wins[0].agreement_id == A_ID
    assert len(losses) == n - 1 and all("already used" in e.message for e in losses)


@pytest.mark.parametrize(("role", "identity", "checked_by", "minutes", "words"), [
    ("therapist", IDENTITY, CHECKED_BY, 15, "not 'therapist'"),
    ("admin", IDENTITY, CHECKED_BY, 15, "client or guardian"),
    ("client", "", CHECKED_BY, 15, "identity check method is required"),
    ("client", "   ", CHECKED_BY, 15, "identity check method is required"),
    ("client", IDENTITY, "", 15, "identity checked by is required"),
    ("client", IDENTITY, " \t ", 15, "identity checked by is required"),
    ("client", "photo\x00ID", CHECKED_BY, 15, "control character"),
    ("client", IDENTITY, "x" * 201, 15, "longer than 200"),
    ("client", IDENTITY, CHECKED_BY, 0, "between 1 and 240 minutes"),
    ("client", IDENTITY, CHECKED_BY, -5, "between 1 and 240 minutes"),
    ("client", IDENTITY, CHECKED_BY, 241, "between 1 and 240 minutes"),
])
def test_open_refuses_bad_requests(pr: Path, role, identity, checked_by, minutes, words):
    with pytest.raises(IntakeError) as info:
        TicketStore(pr / "intake").open(A_ID, role, identity, checked_by, minutes)
    assert words in info.value.message
    pending = pr / "intake" / "pending"
    assert not pending.exists() or not list(pending.iterdir())


@pytest.mark.parametrize("minutes", [1, 240])
def test_open_accepts_the_minute_bounds(pr: Path, minutes: int):
    before = dt.datetime.now(dt.UTC)
    _, ticket = TicketStore(pr / "intake").open(A_ID, "client", IDENTITY, CHECKED_BY, minutes)
    assert dt.timedelta(minutes=minutes) <= ticket.expires - before < dt.timedelta(minutes=minutes, seconds=30)


# --------------------------------------------------------------------------- tokens: through the app


def assert_claim_cookie(resp, secure: bool) -> None:
    headers = set_cookies(resp, web.COOKIE)
    assert len(headers) == 1, resp.headers
    attrs = cookie_attrs(headers[0])
    assert "httponly" in attrs
    assert "samesite=strict" in attrs
    assert ("secure" in attrs) is secure, headers[0]
    value = headers[0].split(";")[0].split("=", 1)[1]
    assert len(value) >= 43


@pytest.mark.parametrize("secure", [False, True])
def test_link_opens_a_session_with_a_strict_cookie(make_app, pr: Path, secure: bool):
    app = make_app(secure_cookies=secure)
    token = open_ticket(pr)
    t = Tablet(app)
    r = t.claim(token)
    assert r.status_code == 302
    assert r.headers["Location"] == "/sign/consent" or r.headers["Location"].endswith("//localhost/sign/consent")
    assert_claim_cookie(r, secure)
    assert token not in r.headers.get("Set-Cookie", "")
    assert t.get("/sign/consent").status_code == 200


def refused_link(resp, status: int, words: str) -> None:
    assert resp.status_code == status, (resp.status_code, text(resp))
    assert words in page_message(resp), page_message(resp)
    assert not set_cookies(resp, web.COOKIE), resp.headers.getlist("Set-Cookie")
    assert "Set-Cookie" not in resp.headers


def test_reused_link_is_gone_without_a_cookie(app, pr: Path):
    token = open_ticket(pr)
    assert Tablet(app).claim(token).status_code == 302
    other = Tablet(app)
    refused_link(other.claim(token), 410, "already used")
    assert other.get("/sign/consent").status_code == 401


def test_expired_link_is_gone_without_a_cookie(app, pr: Path):
    token = open_ticket(pr)
    path = ticket_path(pr, token)
    data = json.loads(path.read_bytes())
    data["expires"] = (dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)).isoformat()
    path.write_bytes(json.dumps(data).encode())
    t = Tablet(app)
    refused_link(t.claim(token), 410, "expired")
    assert t.get("/sign/consent").status_code == 401


def test_expired_link_by_the_clock_is_gone(app, pr: Path, monkeypatch):
    token = open_ticket(pr, minutes=5)
    real_now = intake._now
    monkeypatch.setattr(intake, "_now", lambda: real_now() + dt.timedelta(minutes=6))
    refused_link(Tablet(app).claim(token), 410, "expired")


@pytest.mark.parametrize("position", [0, 21, 42])
def test_altered_link_is_not_found_without_a_cookie(app, pr: Path, position: int):
    token = open_ticket(pr)
    refused_link(Tablet(app).claim(altered(token, position)), 404, "not valid")
    assert Tablet(app).claim(token).status_code == 302


# --------------------------------------------------------------------------- looking at a link uses nothing up


def still_pending(root: Path, token: str) -> bool:
    return ticket_path(root, token).is_file() and not ticket_path(root, token, "claimed").exists()


def test_the_link_page_only_looks_and_start_uses_the_link(app, pr: Path):
    token = open_ticket(pr)
    t = Tablet(app)
    r = t.look(token)
    assert r.status_code == 200 and r.mimetype == "text/html"
    assert re.search(r'<form method="post">\s*<input type="hidden" name="csrf" value="[^"]{43,}">', text(r))
    assert 'id="start"' in text(r)
    assert A_NAME not in text(r) and A_ID not in text(r)  # not even the page for this link names the client
    assert not set_cookies(r, web.COOKIE) and set_cookies(r, web.START_COOKIE)
    assert still_pending(pr, token)
    assert t.get("/sign/consent").status_code == 401  # no session yet
    r = t.start(token)
    assert r.status_code == 302 and r.headers["Location"].endswith("/sign/consent")
    assert set_cookies(r, web.COOKIE)
    assert not still_pending(pr, token)
    assert t.get("/sign/consent").status_code == 200


@pytest.mark.parametrize("how", ["GET", "HEAD", "GET twice", "scanner GET", "prefetch", "legacy prefetch",
                                 "prerender", "firefox prefetch", "safari preview"])
def test_looking_at_a_link_never_uses_it_up(app, pr: Path, how: str):
    token = open_ticket(pr)
    scanner = Tablet(app, addr="192.0.2.50")  # a mail scanner or a browser, on another machine or the same
    headers = {"prefetch": {"Sec-Purpose": "prefetch"}, "legacy prefetch": {"Purpose": "prefetch"},
               "prerender": {"Sec-Purpose": "prefetch;prerender"}, "firefox prefetch": {"X-Moz": "prefetch"},
               "safari preview": {"X-Purpose": "preview"}}.get(how, {})
    for _ in range(2 if how == "GET twice" else 1):
        if how == "HEAD":
            r = scanner.c.head(f"/i/{token}", environ_base=scanner.env)
            assert r.status_code == 200 and r.data == b""
        elif how == "scanner GET":
            r = app.test_client().get(f"/i/{token}", headers={"User-Agent": "LinkScanner/1.0"})
            assert r.status_code == 200
        else:
            r = scanner.get(f"/i/{token}", headers=headers)
            assert r.status_code == (503 if headers else 200), (how, r.status_code)
        assert not set_cookies(r, web.COOKIE)
        assert still_pending(pr, token), how
    if headers:  # a browser's speculative fetch is refused outright: no page, no cookie, no look at the ticket
        assert "Sec-Purpose" in r.headers["Vary"] and "Set-Cookie" not in r.headers
    client = Tablet(app)
    assert client.claim(token).status_code == 302  # the client's own Start still works
    assert client.get("/sign/consent").status_code == 200


def test_a_prefetch_of_a_wrong_link_reveals_nothing_and_counts_nothing(app, pr: Path):
    t = Tablet(app, addr="192.0.2.51")
    for _ in range(50):
        r = t.get(f"/i/{secrets.token_urlsafe(32)}", headers={"Sec-Purpose": "prefetch"})
        assert r.status_code == 503
    assert app.extensions["agreements"]["limits"].link_source.retry_after("192.0.2.51") == 0
    assert t.look(secrets.token_urlsafe(32)).status_code == 404  # not throttled: none of those counted


def test_start_needs_the_form_of_this_browser(app, pr: Path):
    token = open_ticket(pr)
    t = Tablet(app)
    t.look(token)
    other = Tablet(app)
    other.look(token)
    for csrf in ("", "x" * 43, other.csrf):
        r = t.start(token, csrf=csrf)
        assert r.status_code == 400 and "could not be accepted" in page_message(r)
    bare = Tablet(app)  # never loaded the page: no start cookie at all
    r = bare.post(f"/i/{token}", {"csrf": t.csrf})
    assert r.status_code == 400
    assert still_pending(pr, token)
    assert t.start(token).status_code == 302


def test_a_used_or_expired_link_page_says_so_and_offers_no_start(app, pr: Path, monkeypatch):
    used = open_ticket(pr)
    assert Tablet(app).claim(used).status_code == 302
    r = Tablet(app).look(used)
    refused_link(r, 410, "already used")
    assert 'id="start"' not in text(r)
    late = open_ticket(pr, minutes=5)
    t = Tablet(app)
    assert t.look(late).status_code == 200
    real_now = intake._now
    monkeypatch.setattr(intake, "_now", lambda: real_now() + dt.timedelta(minutes=6))
    refused_link(t.start(late), 410, "expired")  # expired between looking and pressing Start


# --------------------------------------------------------------------------- rate limits


def test_rate_limiter_lets_failures_through_free_then_doubles_the_wait_up_to_a_cap():
    clock = FakeClock()
    limiter = intake.RateLimiter(free=3, base=1.0, cap=60.0, forget=900.0, clock=clock)
    assert [limiter.fail("a") for _ in range(3)] == [0, 0, 0]
    assert limiter.retry_after("a") == 0
    waits = [limiter.fail("a") for _ in range(8)]
    assert waits == [1, 2, 4, 8, 16, 32, 60, 60]
    assert limiter.retry_after("a") == 60
    assert limiter.retry_after("b") == 0  # keys are separate
    clock.advance(59.5)
    assert limiter.retry_after("a") == pytest.approx(0.5)
    clock.advance(0.5)
    assert limiter.retry_after("a") == 0  # a wait, not a lockout
    assert limiter.fail("a") == 60  # the count is still remembered: the next failure waits as long
    clock.advance(900)
    assert limiter.retry_after("a") == 0 and limiter.fail("a") == 0  # forgotten after 15 quiet minutes


def test_rate_limiter_success_forgets_and_memory_is_bounded():
    clock = FakeClock()
    limiter = intake.RateLimiter(free=1, clock=clock)
    limiter.fail("a"), limiter.fail("a")
    assert limiter.retry_after("a") > 0
    limiter.succeed("a")
    assert limiter.retry_after("a") == 0
    limiter.MAX_KEYS = 50
    for i in range(200):
        limiter.fail(f"k{i}")
    assert len(limiter._keys) <= 50


def test_wrong_links_are_slowed_but_a_valid_link_from_the_same_address_always_works(app, pr: Path, clock):
    guesser = Tablet(app, addr="10.0.0.7")
    statuses = [guesser.claim(secrets.token_urlsafe(32)).status_code for _ in range(16)]
    assert statuses[:11] == [404] * 11  # 10 free failures, and the 11th sets the first wait (1 s)
    assert statuses[11:] == [429] * 5
    r = guesser.claim(secrets.token_urlsafe(32))
    assert r.status_code == 429 and "Too many links" in page_message(r)
    assert int(r.headers["Retry-After"]) == 60  # 1, 2, 4, ... 32, then the cap: doubling with each failure
    assert not set_cookies(r, web.COOKIE)
    # The holder of a valid link is never held back by those failures, on that device or another.
    for addr in ("10.0.0.7", "10.0.0.8"):
        t = Tablet(app, addr=addr)
        assert t.claim(open_ticket(pr)).status_code == 302, addr
        assert t.get("/sign/consent").status_code == 200
    # Waiting out Retry-After lets the next wrong link be judged as such again.
    clock.advance(int(r.headers["Retry-After"]))
    assert guesser.claim(secrets.token_urlsafe(32)).status_code == 404


def test_used_and_expired_links_count_as_failures_too(app, pr: Path):
    t = Tablet(app, addr="10.0.0.9")
    used = open_ticket(pr)
    assert Tablet(app, addr="10.0.0.10").claim(used).status_code == 302
    statuses = [t.look(used).status_code for _ in range(12)]
    assert statuses == [410] * 11 + [429]
    assert t.claim(open_ticket(pr)).status_code == 302


def test_wrong_links_from_many_addresses_are_slowed_overall(app, pr: Path):
    for i in range(101):  # one wrong link from each of 101 addresses: the 101st sets the first wait overall
        assert Tablet(app, addr=f"10.1.{i // 200}.{i % 200 + 1}").look("x" * 43).status_code == 404
    r = Tablet(app, addr="10.2.0.1").look("y" * 43)
    assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1
    assert Tablet(app, addr="10.2.0.2").claim(open_ticket(pr)).status_code == 302


def test_wrong_passwords_slow_that_address_never_lock_the_account(app, clock):
    t = Tablet(app, addr="10.0.1.1")
    statuses = [t.staff_login("not the password").status_code for _ in range(4)]
    assert statuses == [403] * 4  # 3 free; the 4th is judged too, and sets the first wait
    r = t.staff_login()  # now even the right password is not tried from this new browser
    assert r.status_code == 429 and "Wait 1 second," in page_error(r) and r.headers["Retry-After"] == "1"
    assert not set_cookies(r, web.STAFF_COOKIE)
    assert 'type="password"' in text(t.get("/staff"))  # still the sign-in form
    # Other addresses and other accounts are not held back.
    assert Tablet(app, addr="10.0.1.2").staff_login().status_code == 302
    assert Tablet(app, addr="10.0.1.1").staff_login(OTHER_PASS, OTHER_NAME).status_code == 302
    # After the wait, the right password works from that address too: a wait, never a lockout.
    clock.advance(1)
    assert t.staff_login().status_code == 302


def test_waits_for_wrong_passwords_double(app, clock):
    t = Tablet(app, addr="10.0.1.3")
    waits = []
    for _ in range(7):
        r = t.staff_login("not the password")
        assert r.status_code == 403, r.status_code
        waits.append(int(r.headers.get("Retry-After", 0)))
        clock.advance(waits[-1])
    assert waits == [0, 0, 0, 1, 2, 4, 8]


def test_a_browser_where_staff_signed_in_before_is_not_held_back_by_a_guesser(app):
    desk = Tablet(app, addr="10.0.1.5")
    assert desk.staff_login().status_code == 302
    assert set_cookies(desk.responses[-1][2], web.DEVICE_COOKIE)
    desk.get("/staff")
    desk.post("/staff/logout", {"csrf": desk.csrf})
    guesser = Tablet(app, addr="10.0.1.5")  # the same address: the same clinic network, say
    statuses = [guesser.staff_login(f"guess {i} guess guess guess").status_code for i in range(40)]
    assert statuses[:4] == [403] * 4 and set(statuses[4:]) == {429}
    assert guesser.staff_login().status_code == 429  # a new browser waits, even with the right password
    r = desk.staff_login()
    assert r.status_code == 302, page_error(r)  # the staff member's own browser goes straight in
    assert STAFF_FULL in text(desk.get("/staff"))


def test_guessers_from_many_addresses_slow_but_never_refuse_a_new_browser_untried(app, clock):
    """The overall count of wrong passwords answers each failure with a wait; it never refuses a staff member's
    attempt untried, so one remote guesser cannot keep every new browser out (found in review)."""
    for i in range(40):
        Tablet(app, addr=f"10.0.9.{i}").staff_login(f"guess {i} guess guess guess")
    r = Tablet(app, addr="10.0.8.1").staff_login()
    assert r.status_code == 302, page_error(r)


def test_the_known_device_key_outlives_a_restart(base: Path, tmp_path: Path, monkeypatch):
    from helpers import private_copy

    root = private_copy(base, tmp_path, monkeypatch)
    first = web.KnownDevices(root / "intake" / "device.key")
    cookie = first.issue(STAFF_NAME)
    assert oct((root / "intake" / "device.key").stat().st_mode & 0o777) == "0o600"
    assert web.KnownDevices(root / "intake" / "device.key").device(cookie, STAFF_NAME) is not None
    assert web.KnownDevices().device(cookie, STAFF_NAME) is None  # a key in memory only is another key


def test_a_known_device_cookie_is_for_one_account_and_cannot_be_forged(app):
    desk = Tablet(app, addr="10.0.1.6")
    desk.staff_login()
    desk.get("/staff")
    desk.post("/staff/logout", {"csrf": desk.csrf})
    device = desk.c.get_cookie(web.DEVICE_COOKIE).value
    assert device.startswith(f"{STAFF_NAME}.")
    for _ in range(4):
        desk.staff_login("wrong wrong wrong wrong", OTHER_NAME)  # the cookie is pat's, not sam's: slowed
    assert desk.staff_login(OTHER_PASS, OTHER_NAME).status_code == 429
    forged = Tablet(app, addr="10.0.1.6")
    forged.c.set_cookie(web.DEVICE_COOKIE, device[:-4] + ("0000" if not device.endswith("0000") else "1111"))
    for _ in range(4):
        forged.staff_login("wrong wrong wrong wrong")
    assert forged.staff_login().status_code == 429


def test_a_known_device_has_its_own_limit(app):
    desk = Tablet(app, addr="10.0.1.7")
    desk.staff_login()
    desk.get("/staff")
    desk.post("/staff/logout", {"csrf": desk.csrf})
    statuses = [desk.staff_login("wrong wrong wrong wrong").status_code for _ in range(8)]
    assert statuses == [403] * 6 + [429] * 2  # 5 free, the 6th sets a wait: a stolen cookie buys few guesses


def test_an_unknown_name_and_a_wrong_password_get_the_same_answer(app):
    a = Tablet(app, addr="10.0.1.8").staff_login("not the password")
    b = Tablet(app, addr="10.0.1.9").staff_login(STAFF_PASS, "no.such.person")
    c = Tablet(app, addr="10.0.1.10").staff_login(STAFF_PASS, "Pat Kim <script>")
    assert a.status_code == b.status_code == c.status_code == 403
    assert page_error(a) == page_error(b) == page_error(c) == "that name and password do not match a staff account."


def test_the_intake_ca_passphrase_signs_no_one_in(app):
    for name in (STAFF_NAME, "admin", ""):
        r = Tablet(app, addr="10.0.1.11").staff_login(PASS, name)
        assert r.status_code in (400, 403) and not set_cookies(r, web.STAFF_COOKIE)


# --------------------------------------------------------------------------- session times


def test_a_client_session_ends_after_15_idle_minutes(app, pr: Path, clock):
    t = Tablet(app)
    assert t.claim(open_ticket(pr)).status_code == 302
    for _ in range(3):  # activity keeps it open: 3 x 14 minutes
        clock.advance(14 * 60)
        assert t.get("/sign/consent").status_code == 200
    clock.advance(15 * 60)
    r = t.get("/sign/consent")
    assert r.status_code == 401
    assert "ended after 15 minutes without activity" in page_message(r)
    assert set_cookies(r, web.COOKIE)  # the dead cookie is removed
    assert t.get("/sign/consent").status_code == 401


def test_a_client_session_ends_after_an_hour_whatever_happens(app, pr: Path, clock):
    t = Tablet(app)
    t.claim(open_ticket(pr))
    for _ in range(5):
        clock.advance(11 * 60)
        assert t.get("/sign/consent").status_code == 200
    clock.advance(5 * 60)  # 60 minutes since Start
    r = t.get("/sign/consent")
    assert r.status_code == 401 and "time limit (1 hour)" in page_message(r)


def test_the_idle_time_is_the_servers_to_choose(make_app, pr: Path, clock):
    app = make_app(idle_minutes=5)
    t = Tablet(app)
    token = open_ticket(pr)
    assert "after 5 minutes without activity" in text(t.look(token))
    assert t.start(token).status_code == 302
    clock.advance(5 * 60)
    assert "after 5 minutes without activity" in page_message(t.get("/sign/consent"))
    with pytest.raises(IntakeError, match="between 1 and 120 minutes"):
        make_app(idle_minutes=0)


def test_a_staff_session_ends_after_15_idle_minutes_and_after_8_hours(app, clock):
    t = Tablet(app)
    t.staff_login()
    clock.advance(14 * 60 + 59)
    assert A_ID in text(t.get("/staff"))
    clock.advance(15 * 60)
    r = t.get("/staff")
    assert 'type="password"' in text(r) and "signed out after 15 minutes without activity" in text(r)
    t.staff_login()
    for _ in range(8 * 4):  # active all day: 32 x 14:59
        clock.advance(15 * 60 - 1)
        assert A_ID in text(t.get("/staff"))
    clock.advance(40)
    r = t.get("/staff")
    assert 'type="password"' in text(r) and "signed out after 8 hours" in text(r)


def test_a_removed_account_is_signed_out_at_its_next_request(app, pr: Path):
    t = Tablet(app)
    t.staff_login()
    t.get("/staff")
    csrf = t.csrf
    StaffStore(pr, cheap_hasher()).remove(STAFF_NAME)
    r = staff_open(t)
    assert r.status_code == 302 and r.headers["Location"].endswith("/staff")
    assert "account was removed" in text(t.get("/staff")) or 'type="password"' in text(t.get("/staff"))
    assert t.post("/staff/open", {"csrf": csrf, "agreement": A_ID, "identity": IDENTITY}).status_code == 302
    pending = pr / "intake" / "pending"
    assert not pending.exists() or not list(pending.iterdir())
    assert t.staff_login().status_code == 403


# --------------------------------------------------------------------------- sessions


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/sign/consent"), ("GET", "/sign/agreement"), ("GET", "/sign/signature"), ("GET", "/sign/done"),
    ("GET", "/sign/document.pdf"), ("GET", "/sign/copy/agreement.pdf"), ("GET", "/sign/copy/receipt.pdf"),
    ("POST", "/sign/consent"), ("POST", "/sign/agreement"), ("POST", "/sign/signature"), ("POST", "/sign/finish"),
])
@pytest.mark.parametrize("cookie", [None, "forged-session-id"])
def test_sign_pages_need_a_session(app, method: str, path: str, cookie: str | None):
    t = Tablet(app)
    if cookie:
        t.c.set_cookie(web.COOKIE, cookie)
    r = t.get(path) if method == "GET" else t.post(path, {"csrf": "x", "consent": "yes", "name": A_NAME})
    assert r.status_code == 401
    assert r.mimetype == "text/html"
    assert "session has ended or was never opened" in page_message(r)


def test_steps_cannot_be_skipped(app, pr: Path):
    t = Tablet(app)
    t.claim(open_ticket(pr))
    t.get("/sign/consent")
    csrf = t.csrf
    for path in ("/sign/agreement", "/sign/signature", "/sign/done"):
        r = t.get(path)
        assert r.status_code == 302 and r.headers["Location"].endswith("/sign/consent"), path
    r = t.post("/sign/signature", {"csrf": csrf, "name": A_NAME, "intent": "yes"})
    assert r.status_code == 302
    t.consent()
    r = t.get("/sign/signature")
    assert r.status_code == 302 and r.headers["Location"].endswith("/sign/agreement")
    r = t.post("/sign/signature", {"csrf": csrf, "name": A_NAME, "intent": "yes"})
    assert r.status_code == 302
    assert t.get("/sign/copy/agreement.pdf").status_code == 404
    nothing_signed(pr)


def test_a_new_link_replaces_the_browser_session(app, pr: Path):
    t = Tablet(app)
    t.claim(open_ticket(pr, A_ID))
    t.claim(open_ticket(pr, B_ID))
    r = t.get("/sign/document.pdf")
    assert r.data == (pr / "drafts" / B_ID / "agreement.pdf").read_bytes()


# --------------------------------------------------------------------------- staff


def test_staff_page_requires_a_staff_members_own_name_and_password(app):
    t = Tablet(app)
    r = t.get("/staff")
    assert r.status_code == 200
    body = text(r)
    assert 'type="password"' in body and 'name="name"' in body and 'autocomplete="username"' in body
    assert "no staff accounts yet" not in body
    for secret in SENSITIVE:
        assert secret not in body
    login_cookie = set_cookies(r, web.LOGIN_COOKIE)
    assert login_cookie and "httponly" in cookie_attrs(login_cookie[0])
    r = t.post("/staff/login", {"csrf": t.csrf, "name": STAFF_NAME, "password": STAFF_PASS + "x"})
    assert r.status_code == 403
    assert "do not match a staff account" in page_error(r)
    assert f'value="{STAFF_NAME}"' in text(r)  # the name is kept, never the password
    assert STAFF_PASS not in text(r)
    assert not set_cookies(r, web.STAFF_COOKIE)
    for secret in SENSITIVE:
        assert secret not in text(r)
    assert 'type="password"' in text(t.get("/staff"))
    r = t.post("/staff/login", {"csrf": t.csrf, "name": " Pat.Kim ", "password": STAFF_PASS})  # case and spaces
    assert r.status_code == 302 and r.headers["Location"].endswith("/staff")
    staff = set_cookies(r, web.STAFF_COOKIE)
    assert staff and {"httponly", "samesite=strict"} <= cookie_attrs(staff[0])
    device = set_cookies(r, web.DEVICE_COOKIE)
    assert device and {"httponly", "samesite=strict", "max-age"} <= cookie_attrs(device[0])
    home = t.get("/staff")
    assert home.status_code == 200
    assert f"Signed in as {STAFF_FULL}" in text(home)
    for secret in SENSITIVE:
        assert secret in text(home)


def test_a_damaged_accounts_file_makes_staff_sign_in_unavailable_not_a_crash(app, pr: Path):
    (pr / "staff.json").write_text("{not json")
    r = Tablet(app).get("/staff")
    assert r.status_code == 503 and "Staff sign-in is unavailable" in page_message(r)
    assert "Traceback" not in text(r)
    assert Tablet(app).claim(open_ticket(pr)).status_code == 302  # clients are not affected


def test_the_sign_in_page_says_when_there_are_no_accounts(app, pr: Path):
    (pr / "staff.json").unlink()
    r = Tablet(app).get("/staff")
    assert "no staff accounts yet" in text(r) and "agreements staff add NAME" in text(r)
    assert Tablet(app).staff_login().status_code == 403


def test_staff_cookie_is_secure_when_asked(make_app):
    t = Tablet(make_app(secure_cookies=True))
    r = t.get("/staff")
    assert "secure" in cookie_attrs(set_cookies(r, web.LOGIN_COOKIE)[0])
    r = t.post("/staff/login", {"csrf": t.csrf, "name": STAFF_NAME, "password": STAFF_PASS})
    assert "secure" in cookie_attrs(set_cookies(r, web.STAFF_COOKIE)[0])
    assert "secure" in cookie_attrs(set_cookies(r, web.DEVICE_COOKIE)[0])


def test_staff_list_drops_agreements_the_client_signed(app, pr: Path):
    sign_with_library(pr, A_ID)
    t = Tablet(app)
    t.staff_login()
    body = text(t.get("/staff"))
    assert B_ID in body and B_NAME in body
    assert A_ID not in body and A_NAME not in body


def staff_open(t: Tablet, agreement: str = A_ID, **extra):
    data = {"csrf": t.csrf, "agreement": agreement, "role": "client", "identity": IDENTITY}
    data.update(extra)
    return t.post("/staff/open", data)


def test_staff_opens_a_link_that_works_once(make_app, pr: Path):
    app = make_app(base_url="https://intake.test:8765/")
    desk = Tablet(app, addr="10.0.2.1")
    desk.staff_login()
    home = desk.get("/staff")
    assert "Identity checked by: <strong>Pat Kim</strong>" in text(home) and 'name="checked_by"' not in text(home)
    r = staff_open(desk, checked_by="Someone Else")  # a field the form has not: ignored
    assert r.status_code == 200
    m = re.search(r'<a href="(https://intake\.test:8765/i/([A-Za-z0-9_-]+))">', text(r))
    assert m, text(r)
    token = m.group(2)
    assert TOKEN_RE.match(token)
    assert re.search(r'<img src="data:image/svg\+xml', text(r))
    assert ticket_path(pr, token).is_file()
    tablet = Tablet(app, addr="10.0.2.2")
    assert tablet.claim(token).status_code == 302
    stored = TicketStore(pr / "intake")
    with pytest.raises(IntakeError, match="already used"):
        stored.claim(token)
    refused_link(Tablet(app, addr="10.0.2.3").claim(token), 410, "already used")
    tablet.consent()
    tablet.initial()
    tablet.get("/sign/signature")
    assert tablet.sign().status_code == 302
    # The record says who checked identity and which staff account opened the intake.
    rec = json.loads((pr / "signed" / A_ID / "01-client.json").read_bytes())
    assert rec["identity"] == {"method": IDENTITY, "checked_by": STAFF_FULL, "staff_account": STAFF_NAME}
    assert json.loads(ticket_path(pr, token, "claimed").read_bytes())["opened_by"] == STAFF_NAME
    from agreements_kit.formats.record import parse_record

    assert parse_record((pr / "signed" / A_ID / "01-client.json").read_bytes(), "r").data["identity"] == rec["identity"]
    # ...and so does the ledger entry of the signature, which verify holds to the record.
    entries = [json.loads(line) for line in (pr / "signed" / "ledger.jsonl").read_bytes().splitlines()]
    sign = next(e for e in entries if e["event"] == "sign" and e["agreement_id"] == A_ID)
    assert sign["staff_account"] == STAFF_NAME


def test_a_ticket_opened_without_a_staff_account_names_none(app, pr: Path):
    """A ticket with no opened_by (TicketStore.open without one, or one written before the CLI needed --staff)."""
    t = Tablet(app)
    t.to_signature(open_ticket(pr))
    assert t.sign().status_code == 302
    rec = json.loads((pr / "signed" / A_ID / "01-client.json").read_bytes())
    assert rec["identity"] == {"method": IDENTITY, "checked_by": CHECKED_BY}


@pytest.mark.parametrize(("agreement", "extra", "words"), [
    ("../drafts/" + A_ID, {}, "choose an agreement from the list"),
    ("no-such-agreement", {}, "choose an agreement from the list"),
    (A_ID, {"role": "therapist"}, "not 'therapist'"),
    (A_ID, {"identity": "  "}, "identity check method is required"),
])
def test_staff_open_refuses_bad_input(app, pr: Path, agreement, extra, words):
    t = Tablet(app)
    t.staff_login()
    t.get("/staff")
    r = staff_open(t, agreement, **extra)
    assert r.status_code == 422
    assert words in page_error(r)
    pending = pr / "intake" / "pending"
    assert not pending.exists() or not list(pending.iterdir())


def test_staff_cannot_open_an_intake_for_a_signed_agreement(app, pr: Path):
    sign_with_library(pr, A_ID)
    t = Tablet(app)
    t.staff_login()
    t.get("/staff")
    r = staff_open(t, A_ID)
    assert r.status_code == 422 and "choose an agreement from the list" in page_error(r)


def test_staff_logout_ends_the_staff_session(app):
    t = Tablet(app)
    t.staff_login()
    t.get("/staff")
    r = t.post("/staff/logout", {"csrf": t.csrf})
    assert r.status_code == 302
    assert 'type="password"' in text(t.get("/staff"))


def test_client_on_a_tablet_where_staff_opened_the_link_sees_no_other_client(app, pr: Path):
    t = Tablet(app)
    t.staff_login()
    t.get("/staff")
    r = staff_open(t, A_ID)
    token = re.search(r"/i/([A-Za-z0-9_-]+)", text(r)).group(1)
    assert t.claim(token).status_code == 302  # staff taps the link on the tablet, hands it over
    r = t.get("/staff")
    assert B_ID not in text(r) and B_NAME not in text(r)


# --------------------------------------------------------------------------- CSRF


def _consent_setup(app, pr):
    t = Tablet(app)
    t.claim(open_ticket(pr))
    t.get("/sign/consent")

    def nothing_happened():
        r = t.get("/sign/agreement")
        assert r.status_code == 302 and r.headers["Location"].endswith("/sign/consent")
    return t, "/sign/consent", {"consent": "yes"}, nothing_happened


def _agreement_setup(app, pr):
    t = Tablet(app)
    t.claim(open_ticket(pr))
    t.consent()
    t.review()

    def nothing_happened():
        r = t.get("/sign/signature")
        assert r.status_code == 302 and r.headers["Location"].endswith("/sign/agreement")
    return t, "/sign/agreement", {name: "JQD" for _, name in t.fields}, nothing_happened


def _signature_setup(app, pr):
    t = Tablet(app)
    t.to_signature(open_ticket(pr))

    def nothing_happened():
        nothing_signed(pr)
        assert t.get("/sign/done").status_code == 302
    return t, "/sign/signature", {"name": A_NAME, "intent": "yes", "drawn": data_url(png())}, nothing_happened


def _finish_setup(app, pr):
    t = Tablet(app)
    t.claim(open_ticket(pr))
    t.get("/sign/consent")

    def nothing_happened():
        assert t.get("/sign/consent").status_code == 200
    return t, "/sign/finish", {}, nothing_happened


def _login_setup(app, pr):
    t = Tablet(app)
    t.get("/staff")

    def nothing_happened():
        assert 'type="password"' in text(t.get("/staff"))
    return t, "/staff/login", {"name": STAFF_NAME, "password": STAFF_PASS}, nothing_happened


def _start_setup(app, pr):
    token = open_ticket(pr)
    t = Tablet(app)
    t.look(token)

    def nothing_happened():
        assert still_pending(pr, token)
        assert t.get("/sign/consent").status_code == 401
    return t, f"/i/{token}", {}, nothing_happened


def _open_setup(app, pr):
    t = Tablet(app)
    t.staff_login()
    t.get("/staff")

    def nothing_happened():
        pending = pr / "intake" / "pending"
        assert not pending.exists() or not list(pending.iterdir())
    return t, "/staff/open", {"agreement": A_ID, "role": "client", "identity": IDENTITY,
                              "checked_by": CHECKED_BY}, nothing_happened


def _logout_setup(app, pr):
    t = Tablet(app)
    t.staff_login()
    t.get("/staff")

    def nothing_happened():
        assert A_ID in text(t.get("/staff"))  # still signed in
    return t, "/staff/logout", {}, nothing_happened


CSRF_SETUPS = {"/sign/consent": _consent_setup, "/sign/agreement": _agreement_setup,
               "/sign/signature": _signature_setup, "/sign/finish": _finish_setup, "/staff/login": _login_setup,
               "/staff/open": _open_setup, "/staff/logout": _logout_setup, "/i/<token>": _start_setup}


@pytest.mark.parametrize("how", ["absent", "wrong", "other-session", "empty"])
@pytest.mark.parametrize("endpoint", list(CSRF_SETUPS))
def test_post_without_the_right_csrf_is_refused(app, pr: Path, endpoint: str, how: str):
    t, path, data, nothing_happened = CSRF_SETUPS[endpoint](app, pr)
    assert t.csrf
    data = dict(data)
    if how == "wrong":
        data["csrf"] = altered(t.csrf, 5)
    elif how == "empty":
        data["csrf"] = ""
    elif how == "other-session":
        other, *_ = CSRF_SETUPS[endpoint](app, pr)
        assert other.csrf != t.csrf
        data["csrf"] = other.csrf
    r = t.post(path, data)
    assert r.status_code == 400, (r.status_code, text(r))
    assert "could not be accepted" in page_message(r)
    assert not set_cookies(r, web.STAFF_COOKIE)
    nothing_happened()
    nothing_signed(pr)


def test_staff_login_csrf_cannot_be_guessed_without_the_login_cookie(app):
    t = Tablet(app)  # never loaded the login form: no intake_login cookie
    r = t.post("/staff/login", {"csrf": "missing", "name": STAFF_NAME, "password": STAFF_PASS})
    assert r.status_code == 400
    assert not set_cookies(r, web.STAFF_COOKIE)


# --------------------------------------------------------------------------- bad input on the pages


def test_consent_must_be_given(app, pr: Path):
    t = Tablet(app)
    t.claim(open_ticket(pr))
    t.get("/sign/consent")
    for data in ({}, {"consent": "no"}, {"consent": ""}, {"consent": "YES "}):
        r = t.post("/sign/consent", {"csrf": t.csrf, **data})
        assert r.status_code == 422, data
        assert "tick the box to agree" in page_error(r)
        assert 'role="alert"' in text(r)
    r = t.get("/sign/agreement")
    assert r.status_code == 302 and r.headers["Location"].endswith("/sign/consent")
    nothing_signed(pr)


def test_missing_initials_name_the_part(app, pr: Path):
    t = Tablet(app)
    t.claim(open_ticket(pr))
    t.consent()
    r = t.review()
    titles = dict(re.findall(r'<h2 id="t-\d+">(\d+)\. (.*?)</h2>', text(r)))
    assert len(t.fields) >= 2
    for skip in (0, len(t.fields) - 1):
        part, missing = t.fields[skip]
        data = {name: "JQD" for _, name in t.fields if name != missing}
        r = t.post("/sign/agreement", {"csrf": t.csrf, **data})
        assert r.status_code == 422
        message = page_error(r)
        assert "initials are needed" in message
        assert f"part {part}," in message and html.unescape(titles[part]) in message, message
        # what was typed is kept
        assert text(r).count('value="JQD"') == len(t.fields) - 1
    r = t.post("/sign/agreement", {"csrf": t.csrf})
    assert r.status_code == 422 and f"part {t.fields[0][0]}," in page_error(r)
    assert t.get("/sign/signature").status_code == 302
    nothing_signed(pr)


@pytest.mark.parametrize("value", ["12", "J1", "J-D", "ABCDEF", "<b>", "J Q", "{{7*7}}"])
def test_initials_must_be_letters(app, pr: Path, value: str):
    t = Tablet(app)
    t.claim(open_ticket(pr))
    t.consent()
    t.review()
    part, name = t.fields[1]
    data = {n: "JQD" for _, n in t.fields}
    data[name] = value
    r = t.post("/sign/agreement", {"csrf": t.csrf, **data})
    assert r.status_code == 422
    message = page_error(r)
    assert "1 to 5 letters" in message and f"part {part}," in message, message
    assert "<b>" not in text(r)
    assert t.get("/sign/signature").status_code == 302
    nothing_signed(pr)


@pytest.mark.parametrize("value", ["jqd", "J.Q.D.", "Zoë", " AB "])
def test_initials_in_any_case_with_dots_are_accepted(app, pr: Path, value: str):
    t = Tablet(app)
    t.claim(open_ticket(pr))
    t.consent()
    t.initial(value)


def chunk(kind: bytes, data: bytes, crc: int | None = None) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF if crc is None else crc
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def ihdr(width: int, height: int, depth: int = 8, colour: int = 6) -> bytes:
    return chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0))


def rgba_png(width: int, height: int, *extra: bytes) -> bytes:
    """A valid RGBA PNG (every pixel a dark grey, half opaque), with ``extra`` chunks before IDAT."""
    rows = b"".join(b"\x00" + b"\x20\x20\x20\x80" * width for _ in range(height))
    return drawing.PNG_MAGIC + ihdr(width, height) + b"".join(extra) + chunk(b"IDAT", zlib.compress(rows, 9)) \
        + chunk(b"IEND", b"")


def bomb(width: int = 30000, height: int = 30000) -> bytes:
    """A tiny PNG that claims (and would inflate to) a huge image: zeros compress 1000 to 1."""
    stream = zlib.compressobj(9)
    row = b"\x00" * (width * 4 + 1)
    body = b"".join(stream.compress(row) for _ in range(64)) + stream.flush()
    return drawing.PNG_MAGIC + ihdr(width, height) + chunk(b"IDAT", body) + chunk(b"IEND", b"")


def with_bad_crc(data: bytes) -> bytes:
    return data[:29] + bytes([data[29] ^ 1]) + data[30:]  # the IHDR chunk's CRC


BAD_DRAWINGS = {
    "not a data URL": "https://example.com/sig.png",
    "JPEG data URL": data_url(b"\xff\xd8\xff\xe0jpeg", "image/jpeg"),
    "bad base64": "data:image/png;base64,@@not base64@@",
    "GIF said to be PNG": data_url(b"GIF89a\x01\x00\x01\x00\x00\x00\x00;"),
    "SVG": data_url(b"<svg xmlns='http://www.w3.org/2000/svg'/>", "image/svg+xml"),
    "SVG said to be PNG": data_url(b"<svg xmlns='http://www.w3.org/2000/svg'/>"),
    "PNG with trailing data": data_url(rgba_png(20, 10) + b"<script>alert(1)</script>"),
    "PNG with a second PNG after it": data_url(rgba_png(20, 10) + rgba_png(20, 10)),
    "decompression bomb": data_url(bomb()),
    "wider than the limit": data_url(rgba_png(drawing.MAX_WIDTH + 1, 2)),
    "taller than the limit": data_url(rgba_png(2, drawing.MAX_HEIGHT + 1)),
    "zero width": data_url(rgba_png(0, 2)),
    "bad CRC": data_url(with_bad_crc(rgba_png(20, 10))),
    "truncated": data_url(rgba_png(20, 10)[:-12]),
    "no IHDR first": data_url(drawing.PNG_MAGIC + chunk(b"tEXt", b"a\x00b") + rgba_png(20, 10)[8:]),
    "only the signature": data_url(drawing.PNG_MAGIC),
    "IDAT that is not zlib": data_url(drawing.PNG_MAGIC + ihdr(20, 10) + chunk(b"IDAT", b"not zlib at all")
                                      + chunk(b"IEND", b"")),
    "more than 256 KiB": data_url(rgba_png(20, 10, chunk(b"zzZz", os.urandom(drawing.MAX_BYTES)))),
}


BAD_SIGNATURES = {
    "empty name": (dict(name=""), "name is empty"),
    "blank name": (dict(name="   "), "name is empty"),
    "500-character name": (dict(name="A" * 500), "longer than 200 characters"),
    "script markup": (dict(name="<script>alert(1)</script>"), "not part of a person's name"),
    "template markup": (dict(name="{{ 7*7 }}"), "not part of a person's name"),
    "a stranger's name": (dict(name="John Smith"), "does not match"),
    "name without letters": (dict(name="1234"), "no letters"),
    "direction control": (dict(name="Jane\u202eeoD"), "text-direction control"),
    "intent not ticked": (dict(intent=None), "tick the box to confirm"),
    "intent wrong value": (dict(intent="on"), "tick the box to confirm"),
    **{f"drawn: {case}": (dict(drawn=value), drawing.REFUSED) for case, value in BAD_DRAWINGS.items()},
}


@pytest.mark.parametrize("case", list(BAD_SIGNATURES))
def test_bad_signature_input_is_refused_on_the_page(app, pr: Path, case: str):
    changes, words = BAD_SIGNATURES[case]
    t = Tablet(app)
    t.to_signature(open_ticket(pr))
    args = dict(name=A_NAME, intent="yes", drawn=data_url(png()))
    args.update(changes)
    r = t.sign(**args)
    assert r.status_code == 422, (r.status_code, text(r)[:500])
    assert r.mimetype == "text/html"
    assert words in page_error(r), page_error(r)
    body = text(r)
    assert "<script>alert" not in body
    assert "Traceback" not in body
    nothing_signed(pr)
    assert t.get("/sign/done").status_code == 302  # not signed: back to the start


def test_markup_in_the_name_is_shown_escaped(app, pr: Path):
    t = Tablet(app)
    t.to_signature(open_ticket(pr))
    r = t.sign(name="<script>alert(1)</script>")
    body = text(r)
    assert r.status_code == 422
    assert "<script>alert" not in body
    assert 'value="&lt;script&gt;alert(1)&lt;/script&gt;"' in body
    r = t.sign(name="{{ 7*7 }}")
    assert r.status_code == 422
    assert 'value="{{ 7*7 }}"' in text(r)
    r = t.sign(name='"><img src=x onerror=alert(1)>')
    assert r.status_code == 422
    assert "<img src=x" not in text(r)
    nothing_signed(pr)


def test_the_page_keeps_only_200_characters_of_a_long_name(app, pr: Path):
    t = Tablet(app)
    t.to_signature(open_ticket(pr))
    r = t.sign(name="B" * 500)
    assert 'value="' + "B" * 200 + '"' in text(r)
    assert "B" * 201 not in text(r)


def test_a_huge_drawing_is_too_large(app, pr: Path):
    t = Tablet(app)
    t.to_signature(open_ticket(pr))
    r = t.sign(drawn="data:image/png;base64," + "A" * (web.MAX_BODY + 1024))
    assert r.status_code == 413
    assert r.mimetype == "text/html"
    assert "too large" in page_message(r)
    nothing_signed(pr)
    assert t.sign().status_code == 302  # the session still works after clearing the drawing
    assert len(client_records(pr)) == 1


def test_a_drawing_within_the_body_limit_but_over_the_png_limit_is_refused(app, pr: Path):
    t = Tablet(app)
    t.to_signature(open_ticket(pr))
    big = b"\x89PNG\r\n\x1a\n" + os.urandom(600 * 1024)
    r = t.sign(drawn=data_url(big))
    assert r.status_code == 422
    assert page_error(r) == f"{drawing.REFUSED}. Draw it again, or sign without a drawing."
    nothing_signed(pr)


# --------------------------------------------------------------------------- drawn signatures: the picture


def test_a_good_drawing_is_re_encoded_with_the_same_pixels_and_no_metadata():
    original = rgba_png(300, 90, chunk(b"tEXt", b"Comment\x00made elsewhere"), chunk(b"pHYs", b"\x00" * 9))
    clean = drawing.clean_png(original)
    assert clean != original and clean.startswith(drawing.PNG_MAGIC)
    assert pixels(clean) == pixels(original)
    assert b"tEXt" not in clean and b"made elsewhere" not in clean and b"pHYs" not in clean
    assert drawing.clean_png(clean) == clean  # re-encoding is stable: what is stored re-checks the same
    assert drawing.from_data_url(data_url(original)) == clean
    assert drawing.from_data_url("") is None


@pytest.mark.parametrize(("colour", "depth", "channels"), [(0, 8, 1), (0, 1, 1), (2, 16, 3), (4, 8, 2), (6, 16, 4)])
def test_every_plain_png_kind_becomes_rgba(colour: int, depth: int, channels: int):
    width, height = 16, 4
    stride = (width * channels * depth + 7) // 8
    rows = b"".join(b"\x00" + bytes(range(stride)) for _ in range(height))
    data = drawing.PNG_MAGIC + ihdr(width, height, depth, colour) + chunk(b"IDAT", zlib.compress(rows)) \
        + chunk(b"IEND", b"")
    size, rgba = pixels(drawing.clean_png(data))
    assert size == (width, height) and len(rgba) == width * height * 4


@pytest.mark.parametrize("case", list(BAD_DRAWINGS))
def test_anything_but_a_small_well_formed_png_is_refused_with_one_message(case: str, monkeypatch):
    from PIL import ImageFile

    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)  # as WeasyPrint sets it, process-wide
    with pytest.raises(AgreementsError) as info:
        drawing.from_data_url(BAD_DRAWINGS[case])
    assert info.value.message == drawing.REFUSED and info.value.code == "usage.drawing"


def test_a_decompression_bomb_is_never_inflated(monkeypatch):
    inflated: list[int] = []
    real = zlib.decompressobj

    class Counting:
        def __init__(self):
            self.inner = real()

        def decompress(self, data, max_length=0):
            out = self.inner.decompress(data, max_length)
            inflated.append(len(out))
            return out

        def __getattr__(self, name):
            return getattr(self.inner, name)

    monkeypatch.setattr(drawing.zlib, "decompressobj", Counting)
    small_claim = bomb(1000, 500)  # within the size limit: inflating stops one byte past 500 rows
    with pytest.raises(AgreementsError):
        drawing.clean_png(small_claim)
    assert sum(inflated) <= 500 * (1 + 4000) + 1
    with pytest.raises(AgreementsError):
        drawing.clean_png(bomb())  # claims 30000 x 30000: refused from its header, nothing inflated
    assert len(inflated) == 1


def test_an_animated_png_is_refused():
    frame = rgba_png(20, 10)
    actl = chunk(b"acTL", struct.pack(">II", 2, 0))
    fctl = chunk(b"fcTL", struct.pack(">IIIIIHHBB", 0, 20, 10, 0, 0, 1, 10, 0, 0))
    fctl2 = chunk(b"fcTL", struct.pack(">IIIIIHHBB", 1, 20, 10, 0, 0, 1, 10, 0, 0))
    rows = b"".join(b"\x00" + b"\x90\x10\x10\xff" * 20 for _ in range(10))
    fdat = chunk(b"fdAT", struct.pack(">I", 2) + zlib.compress(rows))
    apng = frame[:33] + actl + fctl + frame[33:-12] + fctl2 + fdat + frame[-12:]
    with pytest.raises(AgreementsError, match="could not be used"):
        drawing.clean_png(apng)


def test_the_stored_drawing_is_the_re_encoded_one_and_its_hash_is_in_the_record(app, pr: Path):
    t = Tablet(app)
    t.to_signature(open_ticket(pr))
    sent = rgba_png(600, 180, chunk(b"tEXt", b"Author\x00someone"))
    assert t.sign(drawn=data_url(sent)).status_code == 302
    folder = pr / "signed" / A_ID
    rec = json.loads((folder / "01-client.json").read_bytes())
    stored = (folder / rec["method"]["drawn_signature_file"]).read_bytes()
    assert stored == drawing.clean_png(sent) != sent
    assert rec["method"]["drawn_signature_png_sha256"] == sha256(stored)
    entry = next(json.loads(line) for line in (pr / "signed" / "ledger.jsonl").read_bytes().splitlines()
                 if json.loads(line).get("record") == "01-client.json")
    assert entry["files"]["01-client.png"] == sha256(stored)



def test_double_submitted_sign_form_signs_once(app, pr: Path):
    t = Tablet(app)
    t.to_signature(open_ticket(pr))
    csrf = t.csrf
    first = t.sign(csrf=csrf)
    second = t.sign(csrf=csrf)
    assert first.status_code == 302 and first.headers["Location"].endswith("/sign/done")
    assert second.status_code == 302 and second.headers["Location"].endswith("/sign/done")
    assert client_records(pr) == [pr / "signed" / A_ID / "01-client.json"]
    lines = (pr / "signed" / "ledger.jsonl").read_bytes().splitlines()
    assert sum(1 for line in lines if json.loads(line).get("event") == "sign") == 1


def test_concurrent_sign_posts_from_one_session_sign_once(app, pr: Path):
    t = Tablet(app)
    t.to_signature(open_ticket(pr))
    sid = t.c.get_cookie(web.COOKIE).value
    n = 4
    clients = []
    for _ in range(n):
        c = app.test_client()
        c.set_cookie(web.COOKIE, sid)
        clients.append(c)
    barrier = threading.Barrier(n)
    statuses: list[object] = [None] * n

    def post(i: int) -> None:
        barrier.wait()
        try:
            statuses[i] = clients[i].post("/sign/signature", data={"csrf": t.csrf, "name": A_NAME,
                                                                   "intent": "yes", "document": A_ID})
        except Exception as exc:  # noqa: BLE001 - reported below
            statuses[i] = exc

    threads = [threading.Thread(target=post, args=(i,)) for i in range(n)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert all(getattr(r, "status_code", None) == 302 for r in statuses), statuses
    assert all(r.headers["Location"].endswith("/sign/done") for r in statuses)
    assert client_records(pr) == [pr / "signed" / A_ID / "01-client.json"]


def test_two_links_for_one_agreement_sign_once(app, pr: Path):
    first, second = Tablet(app), Tablet(app)
    first.to_signature(open_ticket(pr))
    second.to_signature(open_ticket(pr))
    assert first.sign().status_code == 302
    r = second.sign()
    assert r.status_code == 422
    assert "already signed" in page_error(r)
    assert client_records(pr) == [pr / "signed" / A_ID / "01-client.json"]


def render_with_guardian(root: Path, aid: str, guardian: str, relation: str) -> None:
    """A draft for A_NAME that names who signs for them (and how they are related)."""
    practice = load_practice(root)
    draft = Renderer.load(root).render_to(Job(make_spec(client=A_NAME, therapist="lee", id=aid, date=DATE,
                                                        guardian=guardian, relation=relation), practice.drafts))
    log_renders(practice, [draft])


def test_guardian_signs_with_their_own_name(make_app, pr: Path):
    render_with_guardian(pr, "agr-web-ward", "Robert Doe", "parent")
    t = Tablet(make_app())
    t.to_signature(open_ticket(pr, "agr-web-ward", role="guardian"))
    assert "signing as guardian" in text(t.get("/sign/signature"))
    assert t.sign(name="Robert Doe").status_code == 302
    rec = json.loads((pr / "signed" / "agr-web-ward" / "01-guardian.json").read_bytes())
    assert rec["signer"] == {"role": "guardian", "name": "Robert Doe", "on_behalf_of": A_NAME, "relation": "parent"}


def test_guardian_must_be_the_one_the_agreement_names(make_app, pr: Path):
    render_with_guardian(pr, "agr-web-ward", "Robert Doe", "parent")
    app = make_app()
    for aid, name, words in (("agr-web-ward", "Roberta Doe", "does not match the guardian"),
                             (A_ID, "Robert Doe", "names no guardian")):
        t = Tablet(app)
        t.to_signature(open_ticket(pr, aid, role="guardian"))
        r = t.sign(name=name)
        assert r.status_code == 422, text(r)
        assert words in page_error(r)
    nothing_signed(pr)


# --------------------------------------------------------------------------- headers on every kind of page


def test_every_kind_of_html_response_has_the_headers(app, pr: Path):
    seen: dict[int, int] = {}

    def note(resp):
        check_response(resp)
        seen[resp.status_code] = seen.get(resp.status_code, 0) + 1
        return resp

    t = Tablet(app)
    note(t.get("/"))
    note(t.get("/no/such/page"))
    note(t.get("/sign/consent"))  # 401
    note(t.get("/sign/finish"))  # 405
    note(t.claim(secrets.token_urlsafe(32)))  # 404
    used = open_ticket(pr)
    note(Tablet(app).claim(used))  # 302
    note(t.claim(used))  # 410
    t.to_signature(open_ticket(pr))
    note(t.sign(intent=None))  # 422
    note(t.sign(csrf="nope"))  # 400
    note(t.sign(drawn="data:image/png;base64," + "A" * (web.MAX_BODY + 10)))  # 413
    staff = Tablet(app, addr="10.9.9.9")
    note(staff.get("/staff"))
    note(staff.post("/staff/login", {"csrf": staff.csrf, "passphrase": "wrong"}))  # 403
    note(staff.post("/staff/login", {"csrf": staff.csrf, "passphrase": PASS}))
    note(staff.get("/staff"))
    note(staff_open(staff))
    limited = Tablet(app, addr="10.9.9.10")
    for _ in range(11):
        limited.claim("x" * 43)
    note(limited.claim("x" * 43))  # 429
    assert {200, 302, 400, 401, 403, 404, 405, 410, 413, 422, 429} <= set(seen)
    for _, _, r in t.responses + staff.responses + limited.responses:
        check_response(r)


# --------------------------------------------------------------------------- logs


def test_logs_never_show_the_token_or_the_client_name(base: Path, tmp_path: Path, caplog):
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="werkzeug")
    caplog.set_level(logging.DEBUG, logger="agreements_kit.intake")
    root = copy_practice(base, tmp_path / "practice")
    app = new_app(root)
    app.logger.setLevel(logging.DEBUG)
    f = run_flow(root, app)
    assert f.r["done"].status_code == 200
    Tablet(app).claim(f.token)  # a reuse, logged as nothing more than a refusal
    messages = [r.getMessage() for r in caplog.records]
    assert "intake session opened" in messages and "intake signature recorded" in messages
    everything = "\n".join(messages + [caplog.text] + [repr(r.args) for r in caplog.records])
    for secret in (f.token, f.token[:16], A_NAME, A_NAME.lower(), B_NAME, "John Smith"):
        assert secret not in everything, secret


def quiet_handler(path: str, command: str = "GET"):
    cls = web.quiet_request_handler()
    handler = cls.__new__(cls)
    handler.path = path
    handler.command = command
    handler.request_version = "HTTP/1.1"
    handler.requestline = f"{command} {path} HTTP/1.1"
    handler.client_address = ("127.0.0.1", 5555)
    return handler


@pytest.mark.parametrize("suffix", ["", "?x=1", "/", "#frag"])
def test_access_log_line_hides_the_token(caplog, suffix: str):
    token = secrets.token_urlsafe(32)
    caplog.set_level(logging.DEBUG)
    quiet_handler(f"/i/{token}{suffix}").log_request(302)
    quiet_handler("/sign/consent").log_request(200)
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2
    assert token not in lines[0] and token[:8] not in lines[0]
    assert lines[0].startswith("GET /i/") and lines[0].endswith("302")
    assert lines[1] == "GET /sign/consent 200"


class Server:
    """The app behind werkzeug's real server with the quiet request handler, spoken to over raw sockets."""

    def __init__(self, app):
        from werkzeug.serving import make_server

        self.server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=web.quiet_request_handler())
        self.port = self.server.server_port
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def raw(self, target: str, method: str = "GET", headers: dict[str, str] | None = None, body: str = "") -> str:
        extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        if body:
            extra += f"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {len(body)}\r\n"
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as s:
            s.sendall(f"{method} {target} HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\n{extra}Connection: close\r\n"
                      f"\r\n{body}".encode())
            chunks = []
            while True:
                data = s.recv(65536)
                if not data:
                    break
                chunks.append(data)
        return b"".join(chunks).decode("latin-1")

    def close(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.fixture
def server(app):
    s = Server(app)
    yield s
    s.close()


RAW_FORMS = {"double slash": "//i/{t}", "percent-encoded": "/%69/{t}", "encoded slash": "/i%2F{t}",
             "absolute form": "http://127.0.0.1:{p}/i/{t}"}
LEAKY_FORMS = ["percent-encoded", "encoded slash", "absolute form"]


def test_real_server_access_log_hides_the_token(server: Server, pr: Path, caplog):
    caplog.set_level(logging.INFO)
    token = open_ticket(pr)
    assert server.raw(f"/i/{token}", "HEAD").startswith("HTTP/1.1 200")
    response = server.raw(f"/i/{token}")
    assert response.startswith("HTTP/1.1 200")
    start = re.search(rf"Set-Cookie: {web.START_COOKIE}=([^;]+);", response).group(1)
    response = server.raw(f"/i/{token}", "POST", {"Cookie": f"{web.START_COOKIE}={start}"}, f"csrf={start}")
    assert response.startswith("HTTP/1.1 302") and "Location: /sign/consent" in response
    bad = secrets.token_urlsafe(32)
    assert server.raw(f"/i/{bad}?q=1").startswith("HTTP/1.1 404")
    lines = [r.getMessage() for r in caplog.records if r.name == "agreements_kit.intake"]
    for expected in ("HEAD /i/… 200", "GET /i/… 200", "POST /i/… 302", "GET /i/… 404"):
        assert expected in lines, (expected, lines)
    for line in lines:
        assert token not in line and bad not in line


@pytest.mark.parametrize("form", list(RAW_FORMS))
def test_other_spellings_of_the_link_path_reach_the_link_page_and_use_nothing(server: Server, pr: Path, form: str):
    token = open_ticket(pr)
    for method in ("HEAD", "GET"):
        response = server.raw(RAW_FORMS[form].format(t=token, p=server.port), method)
        assert response.startswith("HTTP/1.1 200"), response[:200]
        assert f"Set-Cookie: {web.COOKIE}=" not in response
    assert 'id="start"' in response
    assert TicketStore(pr / "intake").claim(token).agreement_id == A_ID  # still unused until then


@pytest.mark.parametrize("form", LEAKY_FORMS)
def test_access_log_hides_the_token_in_every_spelling_of_the_path(server: Server, pr: Path, caplog, form: str):
    caplog.set_level(logging.INFO)
    token = open_ticket(pr)
    server.raw(RAW_FORMS[form].format(t=token, p=server.port))
    lines = [r.getMessage() for r in caplog.records if r.name == "agreements_kit.intake"]
    assert lines
    for line in lines:
        assert token not in line, line


# --------------------------------------------------------------------------- the commands


def one_error_line(res, *words: str) -> str:
    assert res.exit_code == 2, f"exit {res.exit_code}\nstdout: {res.stdout}\nstderr: {res.stderr}"
    assert "Traceback" not in res.stderr + res.stdout
    lines = res.stderr.splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got {res.stderr!r}"
    assert lines[0].startswith("error: "), lines[0]
    for word in words:
        assert word in lines[0], f"{word!r} not in {lines[0]!r}"
    return lines[0]


def as_staff(root: Path, name: str = STAFF_NAME, password: str = STAFF_PASS) -> list:
    """``--staff NAME --staff-password-file FILE`` for ``agreements intake open`` (the file beside the practice)."""
    file = root.parent / "staff-password"
    file.write_text(password + "\n", encoding="utf-8")
    return ["--staff", name, "--staff-password-file", file]


def test_cli_intake_open_prints_a_link_that_works_once(cli, pr: Path):
    res = cli("intake", "open", A_ID, "--identity", "photo ID", "--checked-by", "Desk", "--practice", pr, *as_staff(pr))
    assert res.exit_code == 0, res.stderr
    m = re.search(r"(\S+)/i/([A-Za-z0-9_-]+)\s*$", res.stdout, re.M)
    assert m, res.stdout
    assert m.group(1) == "http://127.0.0.1:8765"
    token = m.group(2)
    assert TOKEN_RE.match(token)
    assert A_NAME not in res.stdout
    app = new_app(pr)
    t = Tablet(app)
    assert t.claim(token).status_code == 302
    refused_link(Tablet(app).claim(token), 410, "already used")
    assert t.get("/sign/document.pdf").data == (pr / "drafts" / A_ID / "agreement.pdf").read_bytes()
    stored = json.loads(ticket_path(pr, token, "claimed").read_bytes())
    assert stored["agreement_id"] == A_ID and stored["role"] == "client"
    assert stored["identity_method"] == "photo ID" and stored["identity_checked_by"] == "Desk"


def test_cli_intake_open_refuses_a_guardian_for_an_agreement_naming_none(cli, pr: Path):
    res = cli("intake", "open", A_ID, "--identity", "photo ID", "--checked-by", "Desk", "--practice", pr, *as_staff(pr),
              "--role", "guardian")
    one_error_line(res, A_ID, "names no guardian")
    pending = pr / "intake" / "pending"
    assert not pending.exists() or not list(pending.iterdir())


def test_cli_intake_open_url_and_minutes(cli, pr: Path):
    render_with_guardian(pr, "agr-web-ward", "Robert Doe", "parent")
    res = cli("intake", "open", "agr-web-ward", "--identity", "photo ID", "--checked-by", "Desk", "--practice", pr,
              *as_staff(pr), "--url", "https://tablet.local:9000/", "--minutes", "3", "--role", "guardian")
    assert res.exit_code == 0, res.stderr
    token = re.search(r"https://tablet\.local:9000/i/([A-Za-z0-9_-]+)", res.stdout).group(1)
    stored = json.loads(ticket_path(pr, token).read_bytes())
    expires = dt.datetime.fromisoformat(stored["expires"])
    assert dt.timedelta(minutes=2) < expires - dt.datetime.now(dt.UTC) <= dt.timedelta(minutes=3)
    assert stored["role"] == "guardian"


def test_cli_intake_open_refuses_an_agreement_the_client_signed(cli, pr: Path):
    sign_with_library(pr, A_ID)
    res = cli("intake", "open", A_ID, "--identity", "photo ID", "--checked-by", "Desk", "--practice", pr, *as_staff(pr))
    one_error_line(res, A_ID, "not awaiting a client signature")
    assert res.stdout == ""
    pending = pr / "intake" / "pending"
    assert not pending.exists() or not list(pending.iterdir())


@pytest.mark.parametrize(("args", "words"), [
    (["--identity", "", "--checked-by", "Desk"], "identity check method is required"),
    (["--identity", "photo ID", "--checked-by", "  "], "identity checked by is required"),
    (["--identity", "photo ID", "--checked-by", "Desk", "--minutes", "0"], "0"),
    (["--identity", "photo ID", "--checked-by", "Desk", "--role", "therapist"], "therapist"),
])
def test_cli_intake_open_bad_options(cli, pr: Path, args, words):
    one_error_line(cli("intake", "open", A_ID, "--practice", pr, *as_staff(pr), *args), words)
    pending = pr / "intake" / "pending"
    assert not pending.exists() or not list(pending.iterdir())


def test_cli_intake_open_unknown_agreement(cli, pr: Path):
    one_error_line(cli("intake", "open", "agr-nope", "--identity", "photo ID", "--checked-by", "Desk",
                       "--practice", pr, *as_staff(pr)), "agr-nope")


def test_cli_intake_open_writes_a_qr_svg(cli, pr: Path, tmp_path: Path):
    svg = tmp_path / "link.svg"
    res = cli("intake", "open", A_ID, "--identity", "photo ID", "--checked-by", "Desk", "--practice", pr, *as_staff(pr),
              "--qr", svg)
    assert res.exit_code == 0, res.stderr
    root = ET.fromstring(svg.read_bytes())
    assert root.tag.endswith("svg")
    assert root.find(".//{http://www.w3.org/2000/svg}path") is not None
    assert stat.S_IMODE(svg.stat().st_mode) == 0o600


def test_cli_intake_open_records_the_staff_member_who_ran_it(cli, pr: Path):
    res = cli("intake", "open", A_ID, "--identity", "photo ID", "--checked-by", "Desk", "--practice", pr,
              *as_staff(pr, " Pat.Kim "))  # case and spaces, as at /staff
    assert res.exit_code == 0, res.stderr
    assert STAFF_PASS not in res.stdout + res.stderr
    token = re.search(r"/i/([A-Za-z0-9_-]+)\s*$", res.stdout, re.M).group(1)
    assert json.loads(ticket_path(pr, token).read_bytes())["opened_by"] == STAFF_NAME
    t = Tablet(new_app(pr))
    t.to_signature(token)
    assert t.sign().status_code == 302
    # The client's signed record names the staff account, and so does the ledger's sign entry.
    from agreements_kit.formats.record import parse_record

    data = (pr / "signed" / A_ID / "01-client.json").read_bytes()
    assert json.loads(data)["identity"] == {"method": "photo ID", "checked_by": "Desk", "staff_account": STAFF_NAME}
    assert parse_record(data, "r").data["identity"]["staff_account"] == STAFF_NAME
    entries = [json.loads(line) for line in (pr / "signed" / "ledger.jsonl").read_bytes().splitlines()]
    sign = next(e for e in entries if e["event"] == "sign" and e["agreement_id"] == A_ID)
    assert sign["staff_account"] == STAFF_NAME


@pytest.mark.parametrize(("name", "password"), [
    (STAFF_NAME, STAFF_PASS + "x"),  # a wrong password
    (STAFF_NAME, OTHER_PASS),  # another account's password
    ("no.such.person", STAFF_PASS),  # an unknown account: the same answer
    ("Pat Kim <b>", STAFF_PASS),  # not even a sign-in name
])
def test_cli_intake_open_refuses_a_wrong_password_or_an_unknown_account(cli, pr: Path, name, password):
    res = cli("intake", "open", A_ID, "--identity", "photo ID", "--checked-by", "Desk", "--practice", pr,
              *as_staff(pr, name, password))
    line = one_error_line(res, "do not match a staff account")
    assert res.stdout == ""
    assert password not in line and name not in line
    pending = pr / "intake" / "pending"
    assert not pending.exists() or not list(pending.iterdir())


def test_cli_intake_open_needs_the_staff_member_and_their_password(cli, pr: Path, monkeypatch):
    base = ["intake", "open", A_ID, "--identity", "photo ID", "--checked-by", "Desk", "--practice", pr]
    res = cli(*base)
    assert res.exit_code == 2 and "--staff" in res.stderr
    # never from the command line or the environment; without a terminal, one line naming the file option
    for option in ("--staff-password", "--password"):
        res = cli(*base, "--staff", STAFF_NAME, option, STAFF_PASS)
        assert res.exit_code == 2 and "no such option" in res.stderr.lower()
    monkeypatch.setenv("AGREEMENTS_PASSPHRASE", STAFF_PASS)
    one_error_line(cli(*base, "--staff", STAFF_NAME), "password is needed", "--staff-password-file")
    one_error_line(cli(*base, "--staff", STAFF_NAME, "--staff-password-file", pr.parent / "missing"),
                   "cannot read password file")
    pending = pr / "intake" / "pending"
    assert not pending.exists() or not list(pending.iterdir())


@pytest.fixture
def stdin_for_subprocesses(monkeypatch):
    """Make ``run_bin``'s subprocess start with stdin redirected from /dev/null, or closed."""
    original = subprocess.run

    def use(mode: str) -> None:
        def run(*args, **kwargs):
            if mode == "closed":
                kwargs["preexec_fn"] = lambda: os.close(0)
            else:
                kwargs["stdin"] = subprocess.DEVNULL
            return original(*args, **kwargs)
        monkeypatch.setattr(subprocess, "run", run)
    return use


def test_cli_intake_serve_without_passphrase_and_no_tty(run_bin, pr: Path, monkeypatch, stdin_for_subprocesses):
    monkeypatch.delenv("AGREEMENTS_INTAKE_PASSPHRASE", raising=False)
    monkeypatch.setenv("AGREEMENTS_PASSPHRASE", ROOT_PASS)  # the root's is never used in its place
    stdin_for_subprocesses("devnull")
    one_error_line(run_bin("intake", "serve", "--practice", pr, "--port", "1"), "intake CA passphrase",
                   "AGREEMENTS_INTAKE_PASSPHRASE")


def test_cli_intake_serve_with_stdin_closed(run_bin, pr: Path, monkeypatch, stdin_for_subprocesses):
    monkeypatch.delenv("AGREEMENTS_INTAKE_PASSPHRASE", raising=False)
    stdin_for_subprocesses("closed")
    one_error_line(run_bin("intake", "serve", "--practice", pr, "--port", "1"), "passphrase")


def test_cli_intake_serve_with_a_wrong_passphrase_fails_before_serving(run_bin, pr: Path, tmp_path: Path,
                                                                       stdin_for_subprocesses):
    stdin_for_subprocesses("devnull")
    wrong = tmp_path / "wrong.txt"
    wrong.write_text("not-the-passphrase\n")
    res = run_bin("intake", "serve", "--practice", pr, "--port", "1", "--passphrase-file", wrong)
    one_error_line(res)


def test_an_expired_link_stays_expired_and_a_damaged_ticket_is_not_a_traceback(tmp_path: Path, monkeypatch):
    """Found in review: an expired ticket was moved to claimed/ before its expiry was checked (so it read as
    "already used" next time), and a damaged ticket file escaped as a 500."""
    import datetime as dt

    from agreements_kit.intake import tickets

    store = TicketStore(tmp_path / "intake")
    token, _ = store.open(A_ID, "client", "photo ID", "Front desk", minutes=5)
    later = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=6)
    monkeypatch.setattr(tickets, "_now", lambda: later)
    for _ in range(2):
        with pytest.raises(IntakeError) as err:
            store.claim(token)
        assert "expired" in str(err.value), err.value
    token2, _ = store.open(A_ID, "client", "photo ID", "Front desk")
    (damaged,) = [p for p in store.pending.glob("*.json") if tickets.token_digest(token2) in p.name]
    damaged.chmod(0o600)
    damaged.write_bytes(damaged.read_bytes()[:20])
    for use in (store.check, store.claim):
        with pytest.raises(IntakeError) as err:
            use(token2)
        assert err.value.code == "not-found.link"
