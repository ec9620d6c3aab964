"""The intake web app (Flask): a client signs in person on a clinic tablet.

Pages, in order: a one-time link's "Start" page, consent to electronic records
(the ESIGN disclosure), read and initial (each clause's plain summary, its full
text, the PDF), sign (typed name, optional drawn signature, intent), and the
client's copy. A link may cover a packet (intake/packet.py): consent once, then
read, initial and sign each document in turn, and one done page and receipt for
all. Opening a link (GET, HEAD, a mail scanner, a browser's prefetch) uses nothing
up: only the client's "Start" (a POST with a CSRF token) claims it and opens a
session bound to its agreements and one role. No page names or lists another
client's agreements to a client, and no URL carries an id or a name. Staff open intakes from
``agreements intake open`` or from ``/staff``, where each person signs in with their
own account (intake/staff.py); the intake CA's passphrase, given when the server
starts, only unlocks the key that signs.

The signature itself is :func:`agreements_kit.signing.sign.sign_client`, the same code
as ``agreements sign``; the staff account that opened the intake goes into the
record. Every form carries a CSRF token; every HTML page is sent with a strict
Content-Security-Policy (scripts only from this server, none inline). Wrong links
and wrong passwords are slowed (HTTP 429 with Retry-After, growing waits, never a
lockout), per source address and overall, and a valid link, or a staff member on a
browser where they signed in before, is never held back by them. Sessions end after
an idle time (15 minutes by default) and an absolute time.
"""

from __future__ import annotations

import logging
import math
import os
import secrets
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from argon2 import PasswordHasher
from flask import (
    Blueprint,
    Flask,
    Response,
    abort,
    g,
    make_response,
    redirect,
    render_template,
    request,
    send_file,
    url_for,
)
from markupsafe import Markup
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge
from werkzeug.wrappers import Response as BaseResponse

from agreements_kit.authoring.documents import practice_for
from agreements_kit.authoring.practice import Practice, load_practice
from agreements_kit.errors import AgreementsError, DrawingError, StaffError
from agreements_kit.formats import record
from agreements_kit.intake import drawing, packet, words
from agreements_kit.intake.staff import KnownDevices, StaffStore
from agreements_kit.intake.tickets import (
    CLIENT_HOURS,
    ENDED_IDLE,
    ENDED_LIMIT,
    IDLE_MINUTES,
    MAX_PACKET,
    STAFF_HOURS,
    IntakeError,
    RateLimiter,
    Session,
    Sessions,
    StaffSession,
    Ticket,
    TicketStore,
    client_session,
    staff_session,
)
from agreements_kit.resources import templates_dir
from agreements_kit.signing.sign import ClientSigning, sign_client
from agreements_kit.store.archive import load_folder
from agreements_kit.store.tlog import LogKey

COOKIE = "intake_session"
STAFF_COOKIE = "intake_staff"
START_COOKIE = "intake_start"  # the Start form's CSRF token (double submit: cookie and form field)
LOGIN_COOKIE = "intake_login"  # the sign-in form's CSRF token
ARGON_SLOTS = 2  # password checks at once (argon2id: ~64 MiB and a core each)
ARGON_WAIT = 10  # seconds a sign-in waits for a slot before the busy answer
DEVICE_COOKIE = "intake_device"  # a browser where this staff account signed in before (staff.KnownDevices)
DEVICE_DAYS = 90
MAX_BODY = 1024 * 1024
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
       "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
PREFETCH_HEADERS = ("Sec-Purpose", "Purpose", "X-Purpose", "X-Moz")

log = logging.getLogger("agreements_kit.intake")


class Limits:
    """The rate limits of one app: failed link attempts and failed staff sign-ins, per source and overall.

    Links: the first 10 failures from an address (100 overall) are free, then waits
    double from 1 s to 60 s. A valid link is always let through; the limits only make
    a wrong one answer 429. Sign-ins: 3 free failures per name and address, 10 per
    address, 30 overall, then the same waits, during which a sign-in is not even
    tried (429), unless the browser is a known device of that account, which has its
    own limit (5 free failures).
    """

    def __init__(self, clock: Callable[[], float]):
        self.link_source = RateLimiter(free=10, clock=clock)
        self.link_all = RateLimiter(free=100, clock=clock)
        self.login_pair = RateLimiter(free=3, clock=clock)
        self.login_source = RateLimiter(free=10, clock=clock)
        self.login_all = RateLimiter(free=30, clock=clock)
        self.login_device = RateLimiter(free=5, clock=clock)


def create_app(practice_root: Path, ca_passphrase: bytes, *, secure_cookies: bool = False,
               base_url: str | None = None, log_key: LogKey | None = None, idle_minutes: int = IDLE_MINUTES,
               clock: Callable[[], float] | None = None, staff_hasher: PasswordHasher | None = None) -> Flask:
    """The intake app; with ``log_key`` (the log's keeper unlocked it) each signature is anchored at once.

    ``idle_minutes`` ends a client's or staff session left that long untouched. For tests
    only: ``clock`` (monotonic seconds) drives sessions and rate limits, and
    ``staff_hasher`` is the argon2 PasswordHasher the staff accounts were made with.
    """
    practice = load_practice(practice_root)
    web_dir = templates_dir() / "web"
    app = Flask(__name__, template_folder=str(web_dir), static_folder=str(web_dir / "static"),
                static_url_path="/static")
    app.config.update(MAX_CONTENT_LENGTH=MAX_BODY, TEMPLATES_AUTO_RELOAD=False)
    app.jinja_env.autoescape = True
    now = clock or time.monotonic
    if not 1 <= idle_minutes <= 120:
        raise IntakeError("a session's idle time is between 1 and 120 minutes", code="usage.intake")
    tickets = TicketStore(practice.root / "intake")
    sessions: Sessions[Session] = Sessions(idle_minutes * 60, CLIENT_HOURS * 3600, now)
    staff_sessions: Sessions[StaffSession] = Sessions(idle_minutes * 60, STAFF_HOURS * 3600, now)
    accounts = StaffStore(practice.root, staff_hasher)
    devices = KnownDevices(practice.root / "intake" / "device.key")
    argon_slots = threading.BoundedSemaphore(ARGON_SLOTS)
    limits = Limits(now)
    state: dict[str, Any] = {"practice": practice, "base_url": base_url}
    # Two blueprints over one validated signing request (sign.ClientSigning): the client's pages
    # on the tablet, and the staff pages that open intakes.
    signing = Blueprint("signing", __name__)
    staff = Blueprint("staff", __name__)

    def language() -> str:
        """This request's pages' language: the client session's (set by current() and the Start page), else English."""
        return str(g.get("language") or words.BASE)

    def say(key: str, **values: Any) -> str:
        return words.words(language()).text(key, **values)

    def page_time(iso: str) -> str:
        """A record's time as the pages' language writes it (Babel; English as it always was)."""
        if not iso or language() == words.BASE:
            return say_time(iso)
        return words.date_time(iso, words.words(language()))

    def page(template: str, status: int = 200, **context: Any) -> Response:
        context.setdefault("lang", language())
        context.setdefault("t", words.words(context["lang"]))
        context.setdefault("practice_name", practice.name)
        context.setdefault("step", None)
        context.setdefault("error", None)
        context.setdefault("idle_minutes", idle_minutes)
        return make_response(render_template(template, **context), status)

    def message(title: str, text: str, status: int) -> Response:
        return page("message.html.j2", status, title=title, message=text)

    def wait(response: Response, seconds: float) -> Response:
        response.headers["Retry-After"] = str(max(1, math.ceil(seconds)))
        return response

    def cookie(response: BaseResponse, name: str, value: str, max_age: int | None = None) -> None:
        response.set_cookie(name, value, httponly=True, samesite="Strict", secure=secure_cookies, path="/",
                            max_age=max_age)

    def ended(why: str | None) -> Response:
        if why == ENDED_IDLE:
            text = say("ended_idle", minutes=idle_minutes)
        elif why == ENDED_LIMIT:
            text = say("ended_limit", hours=CLIENT_HOURS)
        else:
            text = say("ended_other")
        response = message(say("ended_title"), text, 401)
        response.delete_cookie(COOKIE, path="/")
        return response

    def current() -> Session:
        s, why = sessions.lookup(request.cookies.get(COOKIE))
        if s is None:
            abort(ended(why))
        g.language = s.result.get("language", words.BASE)  # the session's pages' language (set at Start)
        return s

    def ticket_language(ticket: Ticket) -> str:
        """The language of a link's pages: staff's choice, else the first document's own, else English."""
        from agreements_kit.signing.receipt import agreement_language

        try:
            own = agreement_language(load_folder(folder_of(ticket.agreement_id)))
        except AgreementsError:
            own = None
        try:
            return words.choose(ticket.language, own)
        except AgreementsError:  # a language since removed from the templates: the pages still open
            return words.BASE

    def check_csrf(expected: str) -> None:
        sent = request.form.get("csrf", "")
        if len(expected) < 32 or not secrets.compare_digest(sent.encode(), expected.encode()):
            abort(make_response(message(say("expired_title"), say("expired_form"), 400)))

    def folder_of(agreement_id: str) -> Path:
        archived = practice.archive / agreement_id
        return archived if archived.is_dir() else practice.drafts / agreement_id

    def agreement_folder(s: Session) -> Path:
        """The document being signed now (once all are signed, the last)."""
        return folder_of(s.current_id or s.ticket.agreement_ids[-1])

    def clauses_for(s: Session) -> list[dict[str, Any]]:
        from agreements_kit.verification.reproduce import clauses_as_signed

        folder = load_folder(agreement_folder(s))
        return clauses_as_signed(folder, practice_for(practice, folder.manifest))  # from the library it names

    def documents_of(s: Session) -> list[dict[str, Any]]:
        """The session's documents as pages show them (number, id, title), each marked signed or not."""
        out = []
        for number, aid in enumerate(s.ticket.agreement_ids, start=1):
            described = packet.describe(practice, load_folder(folder_of(aid)))
            out.append({**described, "number": number, "signed": aid in s.done,
                        "signed_at": page_time(s.result.get("signed_times", {}).get(aid, ""))})
        return out

    def form_for_this_document(s: Session) -> bool:
        """The form posted was served for the document being signed now (its hidden ``document`` field).

        A page left open in another tab, or sent again after its document was signed, names an
        earlier document of the packet: it is refused, never applied to the next one."""
        sent = request.form.get("document", "")
        return s.current_id is not None and secrets.compare_digest(sent.encode(), s.current_id.encode())

    def this_document(s: Session) -> dict[str, Any]:
        """The document being signed now, and where it stands in the packet ("2 of 3")."""
        folder = load_folder(agreement_folder(s))
        return {**packet.describe(practice, folder), "number": len(s.done) + 1,
                "total": len(s.ticket.agreement_ids)}

    @app.after_request
    def headers(response: Response) -> Response:
        if response.mimetype == "text/html":
            response.headers["Content-Security-Policy"] = CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["Cache-Control"] = "no-store"
        return response

    @app.errorhandler(RequestEntityTooLarge)
    def too_large(_exc):
        return message("Too large", "What was sent is too large (a drawn signature must be a small picture). "
                       "Clear the drawing and try again.", 413)

    @app.errorhandler(StaffError)
    def staff_unavailable(exc: StaffError):
        log.error("staff accounts unreadable: %s", exc.message)  # the detail (a path, an OS error) stays in the log
        return message("Staff sign-in unavailable", "Staff sign-in is unavailable just now: ask the practice's "
                       "administrator to check the intake server's log.", 503)

    @app.errorhandler(AgreementsError)
    def agreements_error(exc: AgreementsError):
        # An error a request's data caused, anywhere in the app: its status from the kind of its code (the one
        # table, errors.HTTP_STATUSES), and only the code in the log: the message and the path may name an
        # agreement or a file, and Flask's own "Exception on <path>" line and traceback are not written.
        log.warning("request refused: %s", exc.code)
        return message("Not available", "This could not be done. Go back and try again, or ask the practice's "
                       "administrator to check the intake server's log.", exc.http_status)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        return message(exc.name, "This page is not available.", exc.code or 500)

    @signing.get("/")
    def index():
        return message(say("intake_title"), say("intake_ask"), 200)

    # ------------------------------------------------------------------ links

    def prefetching() -> bool:
        """A browser fetching ahead of the person (prefetch, prerender, a preview), not the person."""
        return any(word in request.headers.get(h, "").lower() for h in PREFETCH_HEADERS
                   for word in ("prefetch", "prerender", "preview"))

    def ticket_for(token: str, use: bool) -> Ticket | Response:
        """The link's ticket (claimed when ``use``), or the page that refuses it.

        Every refusal counts against the address (and overall); once failures from it
        are no longer free, refusals are 429 with Retry-After. A valid link is never
        refused for others' failures."""
        address = request.remote_addr or "?"
        waiting = max(limits.link_source.retry_after(address), limits.link_all.retry_after("*"))
        try:
            return tickets.claim(token) if use else tickets.check(token)
        except IntakeError as exc:
            later = max(limits.link_source.fail(address), limits.link_all.fail("*"))
            if waiting > 0:
                return wait(message("Please wait", "Too many links that do not work have been tried. "
                                    f"Wait {say_seconds(later)} before trying another, or ask the front desk "
                                    "for help.", 429), later)
            return message("Link not valid", f"{exc.message.capitalize()}.", exc.http_status)

    @signing.get("/i/<token>")
    def link(token: str):
        """The Start page: looking at a link (GET, HEAD, a scanner, a prefetch) uses nothing up."""
        if prefetching():
            response = message("Open the link", "This link opens only when you visit it yourself.", 503)
            response.headers["Vary"] = ", ".join(PREFETCH_HEADERS)
            return response
        found = ticket_for(token, use=False)
        if not isinstance(found, Ticket):
            return found
        csrf = request.cookies.get(START_COOKIE, "")
        if len(csrf) < 43:
            csrf = secrets.token_urlsafe(32)
        g.language = ticket_language(found)
        response = page("start.html.j2", title=say("start_title"), csrf=csrf, minutes=CLIENT_HOURS * 60)
        cookie(response, START_COOKIE, csrf)
        return response

    @signing.post("/i/<token>")
    def start(token: str):
        """The client pressed Start: the link is used up and this browser gets the session."""
        check_csrf(request.cookies.get(START_COOKIE, ""))
        found = ticket_for(token, use=True)
        if not isinstance(found, Ticket):
            return found
        s = sessions.add(client_session(found))
        s.result["language"] = ticket_language(found)  # every page of the session, and the disclosure accepted
        log.info("intake session opened")
        response = redirect(url_for("signing.consent"))
        cookie(response, COOKIE, s.id)
        response.delete_cookie(START_COOKIE, path="/")
        # The device now belongs to the client: end any staff session it had.
        staff_sessions.close(request.cookies.get(STAFF_COOKIE, ""))
        response.delete_cookie(STAFF_COOKIE, path="/")
        return response

    # ------------------------------------------------------------------ the client's pages

    @signing.route("/sign/consent", methods=["GET", "POST"])
    def consent():
        s = current()
        if s.signed:
            return redirect(url_for("signing.done"))
        disclosure = record.load_disclosure(language=language())  # in the pages' language: the words accepted
        # One consent for the visit: it is to electronic records and signatures, and the page lists every
        # document it covers (each is then read and signed on its own pages).
        context = dict(title=say("consent_title"), step=1, csrf=s.csrf, disclosure=disclosure.text,
                       documents=documents_of(s))
        if request.method == "POST":
            check_csrf(s.csrf)
            if request.form.get("consent") != "yes":
                return page("consent.html.j2", 422, **context, error=say("consent_error"))
            s.consent = True
            return redirect(url_for("signing.review"))
        return page("consent.html.j2", **context)

    @signing.route("/sign/agreement", methods=["GET", "POST"])
    def review():
        s = current()
        if s.signed:
            return redirect(url_for("signing.done"))
        if not s.consent:
            return redirect(url_for("signing.consent"))
        try:
            clauses = clauses_for(s)
            doc = this_document(s)
        except AgreementsError as exc:
            return message(say("cannot_title"), f"This agreement cannot be signed here: {exc.message}. "
                           "Please ask the front desk." if language() == words.BASE else say("cannot_sign"), 409)
        given = dict(s.result.get("initials", {})) if s.result.get("initials_for") == doc["id"] else {}
        context = dict(title=say("review_title"), step=2, csrf=s.csrf, clauses=clauses, document=doc,
                       notice=s.result.get("notice"))
        if request.method == "POST":
            check_csrf(s.csrf)
            if not form_for_this_document(s) or doc["id"] != s.current_id:
                return redirect(url_for("signing.review"))  # a form of another document: nothing is recorded
            given = {c["id"]: request.form.get(f"initials.{c['id']}", "").strip() for c in clauses if c["initials"]}
            missing = [c for c in clauses if c["initials"] and not given.get(c["id"])]
            bad = [c for c in clauses if c["initials"] and given.get(c["id"])
                   and not record_initials_ok(given[c["id"]])]
            if missing or bad:
                c = (missing or bad)[0]
                return page("review.html.j2", 422, **context, given=given,
                            error=say("initials_missing" if missing else "initials_bad", number=c["number"],
                                      title=c["title"]))
            s.result["initials"] = given
            s.result["initials_for"] = doc["id"]  # initials belong to one document of the packet
            return redirect(url_for("signing.signature"))
        return page("review.html.j2", **context, given=given)

    @signing.get("/sign/document.pdf")
    def document():
        s = current()
        return send_file(agreement_folder(s) / "agreement.pdf", mimetype="application/pdf",
                         download_name="agreement.pdf", as_attachment=False)

    @signing.route("/sign/signature", methods=["GET", "POST"])
    def signature():
        s = current()
        if s.signed:
            return redirect(url_for("signing.done"))
        if not s.consent or "initials" not in s.result or s.result.get("initials_for") != s.current_id:
            return redirect(url_for("signing.review" if s.consent else "signing.consent"))
        try:
            doc = this_document(s)
        except AgreementsError as exc:
            return message(say("cannot_title"), f"This agreement cannot be signed here: {exc.message}. "
                           "Please ask the front desk." if language() == words.BASE else say("cannot_sign"), 409)
        # The intent statement in the pages' language: the very words the record will say the client adopted.
        context = dict(title=say("sign_title"), step=3, csrf=s.csrf,
                       intent=record.intent_statement(language()), role=s.ticket.role, name="",
                       document=doc)
        if request.method == "GET":
            return page("signature.html.j2", **context)
        check_csrf(s.csrf)
        if not form_for_this_document(s) or doc["id"] != s.current_id:
            return redirect(url_for("signing.review"))  # a form of another document: nothing is signed
        name = request.form.get("name", "")
        context["name"] = name[:200]
        if request.form.get("intent") != "yes":
            return page("signature.html.j2", 422, **context,
                        error=say("intent_error"))
        try:
            png = drawing.from_data_url(request.form.get("drawn", ""))  # re-encoded: the stored, hashed picture
        except DrawingError as exc:
            return page("signature.html.j2", 422, **context, error=f"{exc.message}. Draw it again, or sign without "
                        "a drawing." if language() == words.BASE else say("drawing_error"))
        with s.lock:  # a double-submitted form signs once
            if s.signed:
                return redirect(url_for("signing.done"))
            agreement_id = s.current_id
            if agreement_id != doc["id"] or s.result.get("initials_for") != agreement_id:
                return redirect(url_for("signing.review"))  # this form was for a document signed meanwhile
            try:
                # One signature over this one document: its record names its id, PDF and manifest.
                result = sign_client(practice, agreement_id, ClientSigning(
                    name=name, consent=s.consent, initials=s.result["initials"], intent=True, role=s.ticket.role,
                    identity_method=s.ticket.identity_method, identity_checked_by=s.ticket.identity_checked_by,
                    drawn_png=png, staff_account=s.ticket.opened_by, language=language()), ca_passphrase,
                    log_key=log_key)
            except AgreementsError as exc:
                return page("signature.html.j2", 422, **context, error=f"{friendly(exc.message)}."
                            if language() == words.BASE else say("name_error" if exc.code == "usage.signing-name"
                                                                 else "sign_error"))
            s.done.append(agreement_id)
            for key in ("initials", "initials_for", "notice"):
                s.result.pop(key, None)
            s.result.setdefault("folders", []).append(str(result.folder.path))
            s.result.setdefault("signed_times", {})[agreement_id] = result.record["signed_at"]
            s.result.setdefault("folder", str(result.folder.path))  # the first document's
            s.result["signed_at"] = result.record["signed_at"]
            s.result["checkpoint"] = result.checkpoint  # the log's checkpoint that includes it, for the receipt
            s.signed = s.current_id is None
            if not s.signed:
                s.result["notice"] = {"number": doc["number"], "title": doc["title"], "total": doc["total"]}
        log.info("intake signature recorded")
        return redirect(url_for("signing.done" if s.signed else "signing.review"))

    @signing.get("/sign/done")
    def done():
        s = current()
        if not s.signed:
            return redirect(url_for("signing.consent"))
        return page("done.html.j2", title=say("done_title"), step=4, csrf=s.csrf, documents=documents_of(s),
                    signed_at=page_time(s.result["signed_at"]))

    @signing.get("/sign/copy/<name>")
    def copy(name: str):
        s = current()
        folders = [Path(f) for f in s.result.get("folders", [])]
        # agreement.pdf: the first document's copy; agreement-N.pdf: the N-th document's (a packet).
        copy_names = {"agreement.pdf": 0, **{f"agreement-{n}.pdf": n - 1 for n in range(1, len(folders) + 1)}}
        if not s.signed or (name not in copy_names and name != "receipt.pdf"):
            abort(404)
        if name in copy_names:
            folder = folders[copy_names[name]]
            # The signed copy (the agreement with the client's PAdES signature), which any PDF reader checks.
            copies = sorted(p for p in folder.glob("[0-9][0-9]-*.copy.pdf")
                            if p.name.endswith(("-client.copy.pdf", "-guardian.copy.pdf")))
            download = "signed-agreement.pdf" if len(folders) == 1 else f"signed-document-{copy_names[name] + 1}.pdf"
            return send_file(copies[-1] if copies else folder / "agreement.pdf", mimetype="application/pdf",
                             as_attachment=True, download_name=download)
        from agreements_kit.signing.receipt import client_checkpoint, receipt_pdf

        signed = [load_folder(f) for f in folders]  # one receipt lists every document of the visit
        try:  # the checkpoint signed with this signature, else the latest that includes it (if any)
            data = receipt_pdf(signed, checkpoint=s.result.get("checkpoint") or client_checkpoint(signed),
                               language=language())  # in the language the client read and signed in
        except AgreementsError as exc:
            log.error("receipt not made: %s", exc.code)  # the code only: the message may name the agreement
            return message(say("receipt_title"), say("receipt_later"), exc.http_status)
        response = make_response(data)
        response.headers["Content-Type"] = "application/pdf"
        response.headers["Content-Disposition"] = 'attachment; filename="receipt-of-signing.pdf"'
        return response

    @signing.post("/sign/finish")
    def finish():
        s = current()
        check_csrf(s.csrf)
        sessions.close(s.id)
        response = message(say("done_title_all"), say("done_closed"), 200)
        response.delete_cookie(COOKIE, path="/")
        return response

    # ------------------------------------------------------------------ staff

    def signed_in() -> tuple[StaffSession | None, str | None]:
        """This browser's staff session (ended when its account was removed), or None and why it ended."""
        s, why = staff_sessions.lookup(request.cookies.get(STAFF_COOKIE))
        if s is not None and accounts.get(s.account) is None:
            staff_sessions.close(s.id)
            return None, "removed"
        return s, why

    def login_page(status: int = 200, error: str | None = None, notice: str | None = None,
                   name: str = "") -> Response:
        csrf = request.cookies.get(LOGIN_COOKIE, "")
        if len(csrf) < 43:
            csrf = secrets.token_urlsafe(32)
        response = page("staff_login.html.j2", status, title="Staff sign-in", csrf=csrf, error=error,
                        notice=notice, name=name, no_accounts=not accounts.accounts())
        cookie(response, LOGIN_COOKIE, csrf)
        return response

    def home_page(s: StaffSession, status: int = 200, error: str | None = None) -> Response:
        packets = [packet.status(practice, t, used) for t, used in tickets.packets()]
        return page("staff_home.html.j2", status, title="Open an intake", csrf=s.csrf, agreements=awaiting(practice),
                    staff_name=s.name, error=error, packets=packets,
                    languages=[(code, words.language_name(code)) for code in words.languages()])

    @staff.route("/staff", methods=["GET"])
    def staff_home():
        s, why = signed_in()
        if s is None:
            notice = {ENDED_IDLE: f"You were signed out after {idle_minutes} minutes without activity.",
                      ENDED_LIMIT: f"You were signed out after {STAFF_HOURS} hours: please sign in again.",
                      "removed": "Your staff account was removed."}.get(why or "")
            response = login_page(notice=notice)
            response.delete_cookie(STAFF_COOKIE, path="/")
            return response
        return home_page(s)

    @staff.post("/staff/login")
    def staff_login():
        """Sign in with one's own name and password; wrong guesses slow the guesser, not the staff member."""
        expected = request.cookies.get(LOGIN_COOKIE, "")
        if len(expected) < 43:  # no sign-in form was served to this browser
            abort(make_response(message("Form expired", "Reload the sign-in page and try again.", 400)))
        check_csrf(expected)
        address = request.remote_addr or "?"
        name = request.form.get("name", "").strip().lower()[:64]
        password = request.form.get("password", "")
        device = devices.device(request.cookies.get(DEVICE_COOKIE), name)
        keys = ([(limits.login_device, device)] if device is not None else
                [(limits.login_pair, f"{name}\n{address}"), (limits.login_source, address), (limits.login_all, "*")])
        # The overall count only slows (a wait after a failure); it never refuses an attempt untried, so one
        # remote guesser cannot hold every staff member back.
        waiting = max(limiter.retry_after(key) for limiter, key in keys if limiter is not limits.login_all)
        if waiting > 0:  # not even tried: that is what slows a guesser down
            return wait(login_page(429, name=name, error=f"too many wrong sign-ins. Wait "
                                   f"{say_seconds(waiting)}, then try again."), waiting)
        if not argon_slots.acquire(timeout=ARGON_WAIT):  # each check holds ~64 MiB: a few at a time
            return wait(login_page(503, name=name, error="the server is busy. Try again in a moment."), 5)
        try:
            account = accounts.authenticate(name, password)
        finally:
            argon_slots.release()
        if account is None:
            later = max(limiter.fail(key) for limiter, key in keys)
            log.warning("staff sign-in refused")  # never the name typed, nor the address
            response = login_page(403, name=name, error="that name and password do not match a staff account.")
            return wait(response, later) if later > 0 else response
        for limiter, key in keys:
            if limiter in (limits.login_pair, limits.login_device):
                limiter.succeed(key)
        s = staff_sessions.add(staff_session(account.name, account.full_name))
        log.info("staff signed in")
        response = redirect(url_for("staff.staff_home"))
        cookie(response, STAFF_COOKIE, s.id)
        if device is None:
            cookie(response, DEVICE_COOKIE, devices.issue(account.name), max_age=DEVICE_DAYS * 86400)
        response.delete_cookie(LOGIN_COOKIE, path="/")
        return response

    @staff.post("/staff/open")
    def staff_open():
        s, _ = signed_in()
        if s is None:
            return redirect(url_for("staff.staff_home"))
        check_csrf(s.csrf)
        # The document chosen, then any others ticked for the same visit (a packet).
        chosen = list(dict.fromkeys([request.form.get("agreement", ""), *request.form.getlist("also")]))
        listed = {a["id"] for a in awaiting(practice)}
        if any(agreement_id not in listed for agreement_id in chosen):
            return home_page(s, 422, error="choose an agreement from the list.")
        role = request.form.get("role", "client")
        try:
            # The client's pages' language: the one chosen, else ("") the first document's own.
            asked = words.check_language(request.form["language"]) if request.form.get("language") else None
            folders = packet.check_packet(practice, chosen, role)  # one client's, each awaiting signature
            # Who checked the signer's identity: the person signed in, by their account's name.
            token, _ticket = tickets.open([f.id for f in folders], role, request.form.get("identity", ""), s.name,
                                          opened_by=s.account, language=asked)
        except AgreementsError as exc:
            return home_page(s, 422, error=f"{exc.message}.")
        link = intake_link(state["base_url"] or request.host_url, token)
        return page("staff_link.html.j2", title="Intake link", link=link, qr=qr_data_uri(link), minutes=15,
                    documents=[packet.describe(practice, f) for f in folders])

    @staff.post("/staff/logout")
    def staff_logout():
        s, _ = signed_in()
        if s is not None:
            check_csrf(s.csrf)
            staff_sessions.close(s.id)
        response = redirect(url_for("staff.staff_home"))
        response.delete_cookie(STAFF_COOKIE, path="/")
        return response

    app.register_blueprint(signing)
    app.register_blueprint(staff)
    app.extensions["agreements"] = {"tickets": tickets, "sessions": sessions, "staff_sessions": staff_sessions,
                                    "practice": practice, "accounts": accounts, "limits": limits,
                                    "page": page, "message": message,  # the pages' frame, for the hand-off's too
                                    "say": say,  # a message in this request's language (intake/words.py)
                                    "check_csrf": check_csrf}
    from agreements_kit.intake.handoff import register_handoff

    register_handoff(app, clock=now)  # the client's copy: email, print or phone
    return app


def record_initials_ok(value: str) -> bool:
    from agreements_kit.signing.sign import INITIALS_RE

    return bool(INITIALS_RE.match(value.replace(".", "")))


def say_time(iso: str) -> str:
    """A record's time (``2026-11-27T10:00:00Z``) as pages show it (``2026-11-27 10:00:00 UTC``)."""
    return iso.replace("T", " ").replace("Z", " UTC")


def say_seconds(seconds: float) -> str:
    """A wait in words: "1 second", "45 seconds"."""
    n = max(1, math.ceil(seconds))
    return "1 second" if n == 1 else f"{n} seconds"


def friendly(text: str) -> str:
    """Library messages, phrased for the person at the tablet."""
    return text.replace("typed name", "name").replace("the signer", "you")


def awaiting(practice: Practice) -> list[dict[str, str]]:
    """Agreements no client has signed yet: for staff only.

    Drafts not yet archived, and archived agreements without any record (a first
    signature interrupted after admission). Archived folders are only listed, not
    loaded, unless they hold no record: a record means the client signed, or it was voided.
    """
    out = []
    candidates = []
    if practice.archive.is_dir():
        for path in sorted(practice.archive.iterdir()):
            if path.is_dir() and not path.name.startswith(".") and \
                    not any(n[:2].isdigit() and n.endswith(".json") for n in os.listdir(path)):
                candidates.append(path)
    if practice.drafts.is_dir():
        candidates += [p for p in sorted(practice.drafts.iterdir()) if p.is_dir() and not p.name.startswith(".")
                       and not (practice.archive / p.name).exists()]
    for path in candidates:
        try:
            folder = load_folder(path)
        except AgreementsError:
            continue
        if folder.awaiting_client:
            out.append(packet.describe(practice, folder))
    return out


def intake_link(base: str, token: str) -> str:
    return f"{base.rstrip('/')}/i/{token}"


def qr_data_uri(link: str) -> Markup:
    import segno

    return Markup(segno.make(link, error="m").svg_data_uri(scale=6))


def quiet_request_handler():
    """A werkzeug request handler whose access log never shows a path (tokens live in paths)."""
    from urllib.parse import unquote, urlsplit

    from werkzeug.serving import WSGIRequestHandler

    known = {"/", "/sign/consent", "/sign/agreement", "/sign/signature", "/sign/done", "/sign/document.pdf",
             "/sign/copy/agreement.pdf", "/sign/copy/receipt.pdf", "/sign/finish", "/staff", "/staff/login",
             "/staff/open", "/staff/logout", *(f"/sign/copy/agreement-{n}.pdf" for n in range(1, MAX_PACKET + 1)),
             "/sign/handoff", "/sign/handoff/email", "/sign/handoff/print",
             "/sign/handoff/phone", "/h/files", "/staff/handoff"}

    class Quiet(WSGIRequestHandler):
        def log_request(self, code="-", size="-"):
            # Only fixed routes are ever written out; anything else (a link with its token, in
            # whatever spelling reaches the router) is logged as a placeholder.
            path = unquote(urlsplit(self.path).path)
            if path in known:
                route = path
            elif path.startswith("/static/"):
                route = "/static/…"
            elif path.lstrip("/").startswith("i/"):
                route = "/i/…"
            elif path.lstrip("/").startswith(("h/", "sign/handoff/", "staff/handoff/")):
                # a download token, a file, or an agreement of the front desk's list
                route = next(f"/{p}…" for p in ("h/files/", "h/", "sign/handoff/", "staff/handoff/")
                             if path.lstrip("/").startswith(p))
            else:
                route = "<other path>"
            log.info("%s %s %s", self.command, route, code)

    return Quiet


