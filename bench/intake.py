"""Intake benchmark: concurrent clients signing over HTTP against a real ``agreements intake serve`` on loopback.

    python bench/intake.py [--clients 20] [--concurrency 4] [--time-limit 300] [--open staff|cli]
                           [--no-tsa] [--countersign] [--keep DIR]

Set-up (not timed): a practice in a temporary folder, its signatures time-stamped by
a local TSA process on loopback (``localtsa``; its root in pki/tsa-roots.pem, where
verifiers look), CLIENTS drafts rendered as ``agreements render`` renders them, a
staff account, and ``agreements intake serve`` started in its own process on a free
loopback port. Then one intake link per client, opened on the staff pages by the
signed-in staff member (``--open cli``: with ``agreements intake open --staff``, the
same account and its password from a file).

Timed: CLIENTS intakes, CONCURRENCY at a time, each the HTTP a browser sends: the
link's Start page (GET /i/<token>, which sets the ``intake_start`` cookie), Start (a
POST with that page's csrf field), then each page's form as the server serves it
(consent, read and initial with initials, sign with the typed name and intent),
following the server's redirects to the done page, the download of the signed copy,
and Finish. Each request and each whole intake is timed; no client starts after
``--time-limit`` seconds, and each request gives up after two minutes.

Printed: throughput (completed intakes per second of wall time) and p50 / p99
latency per request and for the whole intake (nearest rank: with fewer than 100
intakes, p99 is the slowest). Then checked, and the exit code is 1 if any fails:
every client's intake completed; each client that signed has exactly one client
signing record in its folder and exactly one client ``sign`` entry in the ledger,
and nothing else was signed; each download is that client's signed copy (the
archived PDF as its prefix); each record names the staff account that opened the
link; and ``agreements audit --trust PRACTICE/pki/root.pem`` passes on the archive.
Only loopback addresses are used. Keep sizes small on a shared machine.
"""

from __future__ import annotations

import argparse
import collections
import concurrent.futures
import html.parser
import http.client
import json
import math
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from agreements_kit.authoring.practice import load_practice  # noqa: E402
from agreements_kit.authoring.render import Job, Renderer, render_many  # noqa: E402
from agreements_kit.authoring.spec import make_spec  # noqa: E402
from agreements_kit.cli.demo import DEMO_PRACTICE  # noqa: E402
from agreements_kit.signing.pki import PKI  # noqa: E402
from agreements_kit.signing.renders import log_renders  # noqa: E402
from agreements_kit.signing.setup import init_practice  # noqa: E402

PASS = b"bench-passphrase"  # the root's; every key has its own
INTAKE_PASS = b"bench-intake-passphrase"
CLINICIAN_PASS = b"bench-clinician-passphrase"
LEE_PASS = b"bench-lee-passphrase"
STAFF = ("bench.desk", "Bench Front Desk", "a long password for the bench's front desk")
IDENTITY = "photo ID checked in person"
REQUEST_TIMEOUT = 120.0
MAX_PAGES = 30  # forms one intake may pass through before the done page (a packet has several)
AGREEMENTS_ENV = ("AGREEMENTS_PRACTICE", "AGREEMENTS_PASSPHRASE", "AGREEMENTS_KEY_PASSPHRASE",
                  "AGREEMENTS_INTAKE_PASSPHRASE", "AGREEMENTS_CLINICIAN_CA_PASSPHRASE", "AGREEMENTS_FAULT",
                  "AGREEMENTS_TRUST", "AGREEMENTS_TRUST_SHA256", "AGREEMENTS_TSA_TRUST", "AGREEMENTS_LOG_KEY",
                  "AGREEMENTS_LOG_PASSPHRASE")


class Failed(Exception):
    """One client's intake went wrong: at which request, and what the server answered."""


# ----------------------------------------------------------------------------- HTML forms, as a browser reads them


@dataclass
class Form:
    action: str
    method: str
    fields: list[dict[str, str]] = field(default_factory=list)  # input/select/textarea attributes (+ "tag")
    options: dict[str, list[str]] = field(default_factory=dict)  # a select's option values, by its name


class Page(html.parser.HTMLParser):
    """The forms, links and error message of one HTML page."""

    def __init__(self, text: str):
        super().__init__(convert_charrefs=True)
        self.forms: list[Form] = []
        self.links: list[str] = []
        self.error = ""
        self.title = ""
        self._form: Form | None = None
        self._select: str | None = None
        self._in: list[str] = []
        self.feed(text)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self._form = Form(a.get("action", ""), a.get("method", "get").lower())
            self.forms.append(self._form)
        elif tag in ("input", "select", "textarea") and self._form is not None:
            self._form.fields.append(dict(a, tag=tag))
            if tag == "select":
                self._select = a.get("name", "")
                self._form.options[self._select] = []
        elif tag == "option" and self._form is not None and self._select is not None:
            self._form.options[self._select].append(a.get("value", ""))
        elif tag == "a" and "href" in a:
            self.links.append(a["href"])
        if a.get("id") == "error":
            self._in.append("error")
        elif tag == "title":
            self._in.append("title")

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._form = None
        elif tag == "select":
            self._select = None
        elif tag in ("div", "title") and self._in:
            self._in.pop()

    def handle_data(self, data: str) -> None:
        if "error" in self._in:
            self.error += data
        elif "title" in self._in:
            self.title += data

    def form(self, action_ends: str | None = None) -> Form | None:
        for f in self.forms:
            if f.method == "post" and (action_ends is None or f.action.endswith(action_ends)):
                return f
        return None


def fill(form: Form, name: str, initials: str) -> dict[str, str]:
    """What a person sends with this form: hidden fields as served, every box ticked (consent, intent),
    initials where initials are asked, the typed name, a select's first choice, other fields as given."""
    out: dict[str, str] = {}
    for f in form.fields:
        key = f.get("name")
        if not key:
            continue
        kind = f.get("type", "text").lower()
        if f["tag"] == "select":
            choices = form.options.get(key) or [""]
            out[key] = choices[0]
        elif kind == "checkbox":
            out[key] = f.get("value", "on")
        elif kind == "hidden":
            out[key] = f.get("value", "")
        elif key.startswith("initials."):
            out[key] = initials
        elif key == "name":
            out[key] = name
        else:
            out[key] = f.get("value", "")
    return out


# ----------------------------------------------------------------------------- one browser's HTTP


@dataclass
class Answer:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    @property
    def location(self) -> str:
        return urllib.parse.urlsplit(self.headers.get("Location", "")).path

    def page(self) -> Page:
        return Page(self.body.decode("utf-8", "replace"))


class Browser:
    """Cookies and requests as one browser sends them (one connection a request: the server speaks HTTP/1.0)."""

    def __init__(self, base: str, timings: dict[str, list[float]] | None = None):
        parts = urllib.parse.urlsplit(base)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.cookies: dict[str, str] = {}
        self.timings = timings if timings is not None else collections.defaultdict(list)

    def request(self, method: str, path: str, form: dict[str, str] | None = None, label: str | None = None) -> Answer:
        headers = {"Host": f"{self.host}:{self.port}", "Accept": "text/html,application/pdf,*/*",
                   "User-Agent": "agreements-kit bench/intake.py"}
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        body = None
        if form is not None:
            body = urllib.parse.urlencode(form).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            headers["Origin"] = f"http://{self.host}:{self.port}"
        t0 = time.perf_counter()
        conn = http.client.HTTPConnection(self.host, self.port, timeout=REQUEST_TIMEOUT)
        try:
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            data = response.read()
        except OSError as exc:
            raise Failed(f"{method} {label or path}: {exc}") from None
        finally:
            conn.close()
        self.timings[f"{method} {label or path}"].append(time.perf_counter() - t0)
        for name, value in response.getheaders():
            if name.lower() == "set-cookie":
                self._set_cookie(value)
        return Answer(response.status, response.headers, data)

    def _set_cookie(self, header: str) -> None:
        jar: SimpleCookie = SimpleCookie()
        jar.load(header)
        for key, morsel in jar.items():
            if morsel["max-age"] == "0" or "1970" in morsel["expires"]:
                self.cookies.pop(key, None)
            else:
                self.cookies[key] = morsel.value


def expect(answer: Answer, status: int, what: str) -> Answer:
    if answer.status != status:
        page = answer.page() if answer.headers.get_content_type() == "text/html" else None
        detail = " ".join(((page.error or page.title) if page else answer.body[:120].decode("latin-1")).split())
        raise Failed(f"{what}: HTTP {answer.status}, not {status}: {detail}")
    return answer


@dataclass
class Intake:
    """What happened to one client."""

    agreement_id: str
    name: str
    link: str
    timings: dict[str, list[float]] = field(default_factory=lambda: collections.defaultdict(list))
    signed: bool = False
    done: bool = False
    seconds: float = 0.0
    copy: bytes = b""
    error: str = ""


def run_intake(base: str, intake: Intake) -> Intake:
    """The whole intake of one client, as a browser does it; records the outcome in ``intake``."""
    browser = Browser(base, intake.timings)
    t0 = time.perf_counter()
    try:
        path = urllib.parse.urlsplit(intake.link).path
        start = expect(browser.request("GET", path, label="/i/<token>"), 200, "the Start page").page()
        form = start.form()
        if form is None or "intake_start" not in browser.cookies:
            raise Failed("the Start page has no form, or set no intake_start cookie")
        answer = expect(browser.request("POST", path, fill(form, intake.name, ""), label="/i/<token>"), 302, "Start")
        initials = "".join(w[0] for w in intake.name.split() if w[0].isalpha())[:5] or "X"
        for _ in range(MAX_PAGES):
            where = answer.location
            if where.endswith("/sign/done"):
                break
            page = expect(browser.request("GET", where), 200, f"GET {where}").page()
            form = page.form()
            if form is None:
                raise Failed(f"{where} has no form to send")
            action = urllib.parse.urlsplit(form.action).path or where
            answer = expect(browser.request("POST", action, fill(form, intake.name, initials)), 302, f"POST {action}")
        else:
            raise Failed(f"no done page after {MAX_PAGES} forms")
        intake.signed = True  # redirected to the done page: the signature went through
        done = expect(browser.request("GET", "/sign/done"), 200, "the done page").page()
        copy = next((h for h in done.links if h.endswith("/agreement.pdf")), None)
        if copy is None:
            raise Failed("the done page offers no signed copy")
        answer = expect(browser.request("GET", urllib.parse.urlsplit(copy).path), 200, "the signed copy")
        intake.copy = answer.body
        finish = done.form("/sign/finish")
        if finish is not None:
            expect(browser.request("POST", urllib.parse.urlsplit(finish.action).path, fill(finish, "", "")), 200,
                   "Finish")
        intake.done = True
    except Failed as exc:
        intake.error = str(exc)
    intake.seconds = time.perf_counter() - t0
    return intake


# ----------------------------------------------------------------------------- set-up (not timed)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def environ() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in AGREEMENTS_ENV}


# The ``agreements`` command of this checkout, in its own process (its command groups, such as ``staff``,
# are registered by the package: ``python -m agreements_kit.cli.commands`` runs before they are).
AGREEMENTS = [sys.executable, "-c", "import sys; from agreements_kit.cli import main; sys.argv[0] = 'agreements'; "
              "main()"]


def agreements(*args: str | Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    """``agreements ARGS`` in its own process; a failure (with ``check``) stops the bench with its message."""
    proc = subprocess.run([*AGREEMENTS, *map(str, args)], cwd=REPO,
                          env=environ(), capture_output=True, text=True, timeout=600)
    if check and proc.returncode != 0:
        raise SystemExit(f"agreements {args[0]} {args[1] if len(args) > 1 else ''} failed (exit {proc.returncode}): "
                         f"{proc.stderr.strip()[-2000:]}")
    return proc


def staff_password_file(root: Path) -> Path:
    """The staff member's password, beside the practice (never on a command line)."""
    return root.parent / "staff-password.txt"


def make_practice(root: Path, n: int, tsa_url: str | None, tsa_root: Path | None) -> list[tuple[str, str]]:
    """A practice with n drafts awaiting their clients, and a staff account: [(agreement id, client name)]."""
    init_practice(root, passphrase=PASS, intake_passphrase=INTAKE_PASS, clinician_passphrase=CLINICIAN_PASS,
                  **DEMO_PRACTICE, tsa_urls=[tsa_url] if tsa_url else None)
    if tsa_root is not None:
        shutil.copyfile(tsa_root, root / "pki" / "tsa-roots.pem")
    practice = load_practice(root)
    PKI(root / "pki").issue_clinician("lee", "Dr. Robin Lee", practice.name, CLINICIAN_PASS, LEE_PASS)
    renderer = Renderer.load(root)
    clients = [(f"agr-int-{i:04d}", f"Client Number{i} Example") for i in range(1, n + 1)]
    drafts = render_many(renderer, [Job(make_spec(client=name, therapist="lee", id=aid), practice.drafts)
                                    for aid, name in clients])
    log_renders(practice, drafts)
    secret = staff_password_file(root)
    secret.write_text(STAFF[2] + "\n")
    secret.chmod(0o600)
    agreements("staff", "add", STAFF[0], "--practice", root, "--full-name", STAFF[1], "--password-file", secret)
    return clients


class Server:
    """``agreements intake serve`` in its own process, on a free loopback port; its log drained by a thread."""

    def __init__(self, root: Path, passphrase_file: Path):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log: list[str] = []
        self.ready = threading.Event()
        self.process = subprocess.Popen(
            [*AGREEMENTS, "intake", "serve", "--practice", str(root),
             "--host", "127.0.0.1", "--port", str(self.port), "--passphrase-file", str(passphrase_file)],
            cwd=REPO, env=environ(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            text=True)
        self.reader = threading.Thread(target=self._drain, daemon=True)
        self.reader.start()
        if not self.ready.wait(60) or self.process.poll() is not None:
            self.stop()
            raise SystemExit("the intake server did not start:\n" + "\n".join(self.log[-20:]))

    def _drain(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.log.append(line.rstrip("\n"))
            if line.startswith("intake server on "):
                self.ready.set()
        self.ready.set()  # it exited: the waiter looks at poll()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.reader.join(timeout=5)


def open_links_on_staff_pages(base: str, clients: list[tuple[str, str]]) -> list[str]:
    """Staff sign in at /staff and open one intake per client there: the one-time links."""
    desk = Browser(base)
    login = expect(desk.request("GET", "/staff"), 200, "the staff sign-in page").page().form("/staff/login")
    if login is None:
        raise SystemExit("the staff sign-in page has no sign-in form")
    form = fill(login, STAFF[0], "") | {"password": STAFF[2]}
    expect(desk.request("POST", "/staff/login", form), 302, "staff sign-in")
    links = []
    for agreement_id, _name in clients:
        home = expect(desk.request("GET", "/staff"), 200, "the staff page").page().form("/staff/open")
        if home is None:
            raise SystemExit("the staff page has no form to open an intake")
        # One document per intake: none of the packet's "also sign in this visit" boxes ticked.
        form = {k: v for k, v in fill(home, "", "").items() if k != "also"} | {
            "agreement": agreement_id, "role": "client", "identity": IDENTITY}
        page = expect(desk.request("POST", "/staff/open", form), 200, "opening an intake").page()
        found = [h for h in page.links if "/i/" in h]
        if not found:
            raise SystemExit(f"the staff page gave no link for {agreement_id}")
        links.append(found[0])
    return links


def open_links_with_cli(base: str, root: Path, clients: list[tuple[str, str]]) -> list[str]:
    """``agreements intake open`` once per client, as the staff member (their password from make_practice's file)."""
    secret = staff_password_file(root)
    links = []
    for agreement_id, _name in clients:
        out = agreements("intake", "open", agreement_id, "--practice", root, "--identity", IDENTITY,
                         "--checked-by", STAFF[1], "--staff", STAFF[0], "--staff-password-file", secret,
                         "--minutes", "60", "--url", base).stdout
        links.append(next(line for line in out.splitlines() if "/i/" in line).strip())
    return links


# ----------------------------------------------------------------------------- figures and checks


def percentile(values: list[float], p: float) -> float:
    """Nearest rank: the smallest value with at least p% of the values at or below it."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def check_archive(root: Path, intakes: list[Intake], staff_account: str) -> list[str]:
    """Problems with what the archive holds against what the clients did (an empty list: none)."""
    problems = []
    signed_dir = root / "signed"
    signed = {i.agreement_id for i in intakes if i.signed}
    folders = {p.name: p for p in signed_dir.iterdir() if p.is_dir() and not p.name.startswith(".")}
    client_records: dict[str, list[dict[str, Any]]] = {}
    for name, folder in folders.items():
        for path in sorted(folder.glob("[0-9][0-9]-*.json")):
            data = json.loads(path.read_text(encoding="utf-8"))
            if data.get("signer", {}).get("role") in ("client", "guardian"):
                client_records.setdefault(name, []).append(data)
    ledger = [json.loads(line) for line in (signed_dir / "ledger.jsonl").read_text(encoding="utf-8").splitlines()]
    entries = collections.Counter(e["agreement_id"] for e in ledger
                                  if e.get("event") == "sign" and e.get("role") in ("client", "guardian"))
    for i in intakes:
        records = client_records.get(i.agreement_id, [])
        if i.signed:
            if len(records) != 1:
                problems.append(f"{i.agreement_id}: {len(records)} client signing records, not 1")
            if entries[i.agreement_id] != 1:
                problems.append(f"{i.agreement_id}: {entries[i.agreement_id]} client sign entries in the ledger, not 1")
            if records and records[0]["signer"]["name"] != i.name:
                problems.append(f"{i.agreement_id}: the record names another signer")
            if records and records[0].get("identity", {}).get("staff_account") != staff_account:
                problems.append(f"{i.agreement_id}: the record does not name the staff account that opened it")
        if i.done:
            folder = folders.get(i.agreement_id)
            copy = folder / "01-client.copy.pdf" if folder else None
            if copy is None or not copy.is_file() or i.copy != copy.read_bytes():
                problems.append(f"{i.agreement_id}: the download is not the archived signed copy")
            elif not i.copy.startswith((folder / "agreement.pdf").read_bytes()):
                problems.append(f"{i.agreement_id}: the signed copy does not start with the archived PDF")
    for aid in set(client_records) - signed:
        problems.append(f"{aid}: signed in the archive, but no client's signature went through")
    for aid in set(entries) - signed:
        problems.append(f"{aid}: a client sign entry in the ledger, but no client's signature went through")
    return problems


def audit(root: Path, expect_valid: int, expect_incomplete: int) -> tuple[bool, str]:
    proc = agreements("audit", root / "signed", "--trust", root / "pki" / "root.pem", "--json", check=False)
    try:
        summary = json.loads(proc.stdout)["summary"]
    except (ValueError, KeyError):
        return False, f"exit {proc.returncode}: {(proc.stderr or proc.stdout)[-2000:]}"
    c = summary["counts"]
    line = (f"exit {proc.returncode}, ok={summary['ok']}: {summary['agreements']} agreements: {c['valid']} valid, "
            f"{c['invalid']} invalid, {c['incomplete']} incomplete, {c['voided']} voided; "
            f"ledger {summary['ledger']['entries']} entries, {len(summary['ledger']['problems'])} problems")
    good = (proc.returncode == 0 and summary["ok"] and c["invalid"] == 0 and c["valid"] == expect_valid
            and c["incomplete"] == expect_incomplete and summary["agreements"] == expect_valid + expect_incomplete)
    return good, line


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, default=20, help="intakes (one agreement and one client each)")
    ap.add_argument("--concurrency", type=int, default=4, help="clients signing at the same time")
    ap.add_argument("--time-limit", type=float, default=300.0, help="seconds after which no new client starts")
    ap.add_argument("--open", choices=("staff", "cli"), default="staff",
                    help="open the links on the staff pages (default) or with 'agreements intake open'")
    ap.add_argument("--no-tsa", action="store_true", help="no time-stamping (no local TSA)")
    ap.add_argument("--countersign", action="store_true",
                    help="the therapist countersigns each signed agreement before the audit (not timed)")
    ap.add_argument("--keep", type=Path, help="build the practice in this new folder and keep it")
    args = ap.parse_args()
    if not 1 <= args.clients <= 1000 or not 1 <= args.concurrency <= 64 or not 1 <= args.time_limit <= 3600:
        ap.error("--clients is 1 to 1000, --concurrency 1 to 64, --time-limit 1 to 3600 seconds")
    if args.keep is not None and args.keep.exists():
        ap.error(f"{args.keep} exists: --keep makes a new folder")
    with tempfile.TemporaryDirectory(prefix="agreements-bench-intake-") as tmp:
        work = args.keep.resolve() if args.keep else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        return run(args, work)


def run(args: argparse.Namespace, work: Path) -> int:
    import contextlib

    from agreements_kit import localtsa

    root = work / "practice"
    passphrase_file = work / "intake-passphrase.txt"
    with contextlib.ExitStack() as stack:
        tsa_url = tsa_root = None
        if not args.no_tsa:
            tsa = localtsa.create(work / "tsa", "bench TSA")
            tsa_url = stack.enter_context(localtsa.start(tsa.path)).url
            tsa_root = tsa.root
        print(f"setting up: a practice with {args.clients} drafts"
              + (", time-stamped by a local TSA on loopback" if tsa_url else ""), file=sys.stderr)
        clients = make_practice(root, args.clients, tsa_url, tsa_root)
        passphrase_file.write_bytes(INTAKE_PASS + b"\n")
        passphrase_file.chmod(0o600)
        server = Server(root, passphrase_file)
        stack.callback(server.stop)
        if args.open == "staff":
            links = open_links_on_staff_pages(server.base, clients)
        else:
            links = open_links_with_cli(server.base, root, clients)
        intakes = [Intake(aid, name, url) for (aid, name), url in zip(clients, links, strict=True)]
        print(f"running {len(intakes)} intakes, {args.concurrency} at a time, against {server.base}",
              file=sys.stderr)
        deadline = time.monotonic() + args.time_limit
        started: list[Intake] = []

        def one(intake: Intake) -> Intake | None:
            if time.monotonic() > deadline:
                return None  # the time limit: clients not yet started are left out
            started.append(intake)
            return run_intake(server.base, intake)

        t0 = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(max_workers=args.concurrency) as pool:
            list(pool.map(one, intakes))
        wall = time.perf_counter() - t0
        server.stop()
        if args.countersign:
            from agreements_kit.signing.sign import sign_therapist

            practice = load_practice(root)
            for i in started:
                if i.signed:
                    sign_therapist(practice, i.agreement_id, LEE_PASS)

    completed = [i for i in started if i.done]
    failed = [i for i in started if not i.done]
    print(f"intakes: {len(completed)} completed, {len(failed)} failed, {len(intakes) - len(started)} not started "
          f"(time limit {args.time_limit:.0f} s); concurrency {args.concurrency}; {os.cpu_count()} cores")
    print(f"throughput: {len(completed) / wall:.2f} intakes/s ({wall:.1f} s wall for {len(started)} intakes)")
    timings: dict[str, list[float]] = collections.defaultdict(list)
    for i in completed:
        for key, values in i.timings.items():
            timings[key] += values
    order = list(dict.fromkeys(k for i in completed for k in i.timings))
    width = max([len(k) for k in order] + [len("whole intake")])
    small = " (with fewer than 100, p99 is the slowest)" if len(completed) < 100 else ""
    print(f"latency in seconds, over the completed intakes; percentiles by nearest rank{small}:")
    print(f"  {'request':<{width}}  {'n':>4}  {'p50':>7}  {'p99':>7}  {'max':>7}")
    for key in order:
        v = timings[key]
        print(f"  {key:<{width}}  {len(v):>4}  {percentile(v, 50):7.3f}  {percentile(v, 99):7.3f}  {max(v):7.3f}")
    if completed:
        whole = [i.seconds for i in completed]
        print(f"  {'whole intake':<{width}}  {len(whole):>4}  {percentile(whole, 50):7.3f}  "
              f"{percentile(whole, 99):7.3f}  {max(whole):7.3f}")
    problems = [f"{i.agreement_id}: {i.error}" for i in failed]
    problems += check_archive(root, started, STAFF[0])  # opened on the staff pages or with --staff: the same
    signed = sum(1 for i in started if i.signed)
    good, line = audit(root, signed if args.countersign else 0, 0 if args.countersign else signed)
    print(f"signatures: {signed} clients signed; records and ledger entries checked one per client: "
          + ("ok" if not problems else f"{len(problems)} problem(s)"))
    print(f"audit: {line}: {'passed' if good else 'FAILED'}")
    for p in problems[:40]:
        print(f"  problem: {p}")
    if args.keep:
        print(f"practice kept in {root}", file=sys.stderr)
    return 0 if good and not problems else 1


if __name__ == "__main__":
    sys.exit(main())
