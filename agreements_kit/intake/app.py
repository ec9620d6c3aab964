"""The intake web app (Flask): a client signs in person on a clinic tablet.

Pages, in order: consent to electronic records (the ESIGN disclosure), read
and initial (each clause's plain summary, its full text, the PDF), sign (typed
name, optional drawn signature, intent), and the client's copy. A one-time link
opens a session bound to one agreement and one role; no page names or lists
agreements to a client, and no URL carries an id or a name. Staff open intakes
from ``agreements intake open`` or from ``/staff`` (the intake CA's passphrase: the
only key the intake server holds).

The signature itself is :func:`agreements_kit.signing.sign.sign_client`, the same code
as ``agreements sign``. Every form carries a CSRF token; every HTML page is sent
with a strict Content-Security-Policy (scripts only from this server, none
inline); token guesses and staff logins are rate-limited per address.
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
import secrets
import time
from pathlib import Path
from typing import Any

from flask import (
    Blueprint,
    Flask,
    Response,
    abort,
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

from agreements_kit.authoring.practice import Practice, load_practice
from agreements_kit.errors import AgreementsError
from agreements_kit.formats import record
from agreements_kit.intake.tickets import IntakeError, RateLimiter, Sessions, TicketStore
from agreements_kit.resources import templates_dir
from agreements_kit.signing.sign import ClientSigning, sign_client
from agreements_kit.store.archive import load_folder
from agreements_kit.store.tlog import LogKey

COOKIE = "intake_session"
STAFF_COOKIE = "intake_staff"
MAX_BODY = 1024 * 1024
STAFF_MINUTES = 60
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
       "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")

log = logging.getLogger("agreements_kit.intake")


def create_app(practice_root: Path, ca_passphrase: bytes, *, secure_cookies: bool = False,
               base_url: str | None = None, log_key: LogKey | None = None) -> Flask:
    """The intake app; with ``log_key`` (the log's keeper unlocked it) each signature is anchored at once."""
    practice = load_practice(practice_root)
    web_dir = templates_dir() / "web"
    app = Flask(__name__, template_folder=str(web_dir), static_folder=str(web_dir / "static"),
                static_url_path="/static")
    app.config.update(MAX_CONTENT_LENGTH=MAX_BODY, TEMPLATES_AUTO_RELOAD=False)
    app.jinja_env.autoescape = True
    tickets = TicketStore(practice.root / "intake")
    sessions = Sessions()
    staff_sessions: dict[str, tuple[str, float]] = {}  # staff session id -> (csrf token, expiry)
    guesses = RateLimiter(limit=10, window=600)
    logins = RateLimiter(limit=5, window=600)
    state: dict[str, Any] = {"practice": practice, "base_url": base_url}
    # Two blueprints over one validated signing request (sign.ClientSigning): the client's pages
    # on the tablet, and the staff pages that open intakes.
    signing = Blueprint("signing", __name__)
    staff = Blueprint("staff", __name__)

    def page(template: str, status: int = 200, **context: Any) -> Response:
        context.setdefault("practice_name", practice.name)
        context.setdefault("step", None)
        context.setdefault("error", None)
        return make_response(render_template(template, **context), status)

    def message(title: str, text: str, status: int) -> Response:
        return page("message.html.j2", status, title=title, message=text)

    def cookie(response: BaseResponse, name: str, value: str) -> None:
        response.set_cookie(name, value, httponly=True, samesite="Strict", secure=secure_cookies, path="/")

    def current():
        s = sessions.get(request.cookies.get(COOKIE))
        if s is None:
            abort(make_response(message("Session ended", "This signing session has ended or was never opened. "
                                        "Please ask the front desk for help.", 401)))
        return s

    def check_csrf(expected: str) -> None:
        sent = request.form.get("csrf", "")
        if not secrets.compare_digest(sent.encode(), expected.encode()):
            abort(make_response(message("Form expired", "This form could not be accepted (it expired or did not "
                                        "come from this page). Go back, reload the page and try again.", 400)))

    def agreement_folder(s) -> Path:
        archived = practice.archive / s.ticket.agreement_id
        return archived if archived.is_dir() else practice.drafts / s.ticket.agreement_id

    def clauses_for(s) -> list[dict[str, Any]]:
        from agreements_kit.verification.reproduce import clauses_as_signed

        return clauses_as_signed(load_folder(agreement_folder(s)), practice)

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

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        return message(exc.name, "This page is not available.", exc.code or 500)

    @signing.get("/")
    def index():
        return message("Intake", "Please ask the front desk for your signing link.", 200)

    @signing.get("/i/<token>")
    def claim(token: str):
        address = request.remote_addr or "?"
        if guesses.blocked(address):
            return message("Too many tries", "Too many invalid links from this device. Ask the front desk.", 429)
        try:
            ticket = tickets.claim(token)
        except IntakeError as exc:
            guesses.fail(address)
            return message("Link not valid", f"{exc.message.capitalize()}.", exc.http_status)
        s = sessions.create(ticket)
        log.info("intake session opened")
        response = redirect(url_for("signing.consent"))
        cookie(response, COOKIE, s.id)
        # The device now belongs to the client: end any staff session it had.
        staff_sessions.pop(request.cookies.get(STAFF_COOKIE, ""), None)
        response.delete_cookie(STAFF_COOKIE, path="/")
        return response

    @signing.route("/sign/consent", methods=["GET", "POST"])
    def consent():
        s = current()
        if s.signed:
            return redirect(url_for("signing.done"))
        disclosure = record.load_disclosure()
        if request.method == "POST":
            check_csrf(s.csrf)
            if request.form.get("consent") != "yes":
                return page("consent.html.j2", 422, title="Before you sign", step=1, csrf=s.csrf,
                            disclosure=disclosure.text, error="to sign electronically, tick the box to agree. "
                            "If you prefer paper, tell the front desk.")
            s.consent = True
            return redirect(url_for("signing.review"))
        return page("consent.html.j2", title="Before you sign", step=1, csrf=s.csrf, disclosure=disclosure.text)

    @signing.route("/sign/agreement", methods=["GET", "POST"])
    def review():
        s = current()
        if s.signed:
            return redirect(url_for("signing.done"))
        if not s.consent:
            return redirect(url_for("signing.consent"))
        try:
            clauses = clauses_for(s)
        except AgreementsError as exc:
            return message("Cannot continue", f"This agreement cannot be signed here: {exc.message}. "
                           "Please ask the front desk.", 409)
        given = dict(s.result.get("initials", {}))
        if request.method == "POST":
            check_csrf(s.csrf)
            given = {c["id"]: request.form.get(f"initials.{c['id']}", "").strip() for c in clauses if c["initials"]}
            missing = [c for c in clauses if c["initials"] and not given.get(c["id"])]
            bad = [c for c in clauses if c["initials"] and given.get(c["id"])
                   and not record_initials_ok(given[c["id"]])]
            if missing or bad:
                c = (missing or bad)[0]
                why = "your initials are needed" if missing else "initials are 1 to 5 letters"
                return page("review.html.j2", 422, title="Read and initial", step=2, csrf=s.csrf, clauses=clauses,
                            given=given, error=f"{why} for part {c['number']}, \u201c{c['title']}\u201d.")
            s.result["initials"] = given
            return redirect(url_for("signing.signature"))
        return page("review.html.j2", title="Read and initial", step=2, csrf=s.csrf, clauses=clauses, given=given)

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
        if not s.consent or "initials" not in s.result:
            return redirect(url_for("signing.review" if s.consent else "signing.consent"))
        context = dict(title="Sign", step=3, csrf=s.csrf, intent=record.INTENT, role=s.ticket.role, name="")
        if request.method == "GET":
            return page("signature.html.j2", **context)
        check_csrf(s.csrf)
        name = request.form.get("name", "")
        context["name"] = name[:200]
        if request.form.get("intent") != "yes":
            return page("signature.html.j2", 422, **context,
                        error="tick the box to confirm that you intend to sign with your typed name.")
        try:
            png = decode_drawing(request.form.get("drawn", ""))
        except ValueError as exc:
            return page("signature.html.j2", 422, **context, error=f"{exc}. Clear the drawing and try again.")
        with s.lock:  # a double-submitted form signs once
            if s.signed:
                return redirect(url_for("signing.done"))
            try:
                result = sign_client(practice, s.ticket.agreement_id, ClientSigning(
                    name=name, consent=s.consent, initials=s.result["initials"], intent=True, role=s.ticket.role,
                    identity_method=s.ticket.identity_method, identity_checked_by=s.ticket.identity_checked_by,
                    drawn_png=png), ca_passphrase, log_key=log_key)
            except AgreementsError as exc:
                return page("signature.html.j2", 422, **context, error=f"{friendly(exc.message)}.")
            s.signed = True
            s.result["signed_at"] = result.record["signed_at"]
            s.result["folder"] = str(result.folder.path)
        log.info("intake signature recorded")
        return redirect(url_for("signing.done"))

    @signing.get("/sign/done")
    def done():
        s = current()
        if not s.signed:
            return redirect(url_for("signing.consent"))
        return page("done.html.j2", title="Signed", step=4, csrf=s.csrf,
                    signed_at=s.result["signed_at"].replace("T", " ").replace("Z", " UTC"))

    @signing.get("/sign/copy/<name>")
    def copy(name: str):
        s = current()
        if not s.signed or name not in ("agreement.pdf", "receipt.pdf"):
            abort(404)
        folder = Path(s.result["folder"])
        if name == "agreement.pdf":
            return send_file(folder / "agreement.pdf", mimetype="application/pdf", as_attachment=True,
                             download_name="signed-agreement.pdf")
        from agreements_kit.signing.completion import completion_pdf

        data = completion_pdf(load_folder(folder))
        response = make_response(data)
        response.headers["Content-Type"] = "application/pdf"
        response.headers["Content-Disposition"] = 'attachment; filename="receipt-of-signing.pdf"'
        return response

    @signing.post("/sign/finish")
    def finish():
        s = current()
        check_csrf(s.csrf)
        sessions.close(s.id)
        response = message("All done", "Thank you. This session is closed. Please hand the device back to the "
                           "front desk.", 200)
        response.delete_cookie(COOKIE, path="/")
        return response

    # ------------------------------------------------------------------ staff

    def staff_csrf() -> str | None:
        sid = request.cookies.get(STAFF_COOKIE, "")
        entry = staff_sessions.get(sid)
        if entry is None:
            return None
        if entry[1] < time.monotonic():
            staff_sessions.pop(sid, None)
            return None
        return entry[0]

    @staff.route("/staff", methods=["GET"])
    def staff_home():
        csrf = staff_csrf()
        if csrf is None:
            login_csrf = secrets.token_urlsafe(32)
            response = page("staff_login.html.j2", title="Staff sign-in", csrf=login_csrf)
            cookie(response, "intake_login", login_csrf)
            return response
        return page("staff_home.html.j2", title="Open an intake", csrf=csrf, agreements=awaiting(practice))

    @staff.post("/staff/login")
    def staff_login():
        address = request.remote_addr or "?"
        expected = request.cookies.get("intake_login", "")
        if len(expected) < 32:  # no login form was served to this browser
            abort(make_response(message("Form expired", "Reload the sign-in page and try again.", 400)))
        check_csrf(expected)
        if logins.blocked(address):
            return message("Too many tries", "Too many wrong passphrases. Wait ten minutes.", 429)
        if not secrets.compare_digest(request.form.get("passphrase", "").encode(), ca_passphrase):
            logins.fail(address)
            return page("staff_login.html.j2", 403, title="Staff sign-in", csrf=request.form.get("csrf", ""),
                        error="that passphrase is not right.")
        sid, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        staff_sessions[sid] = (csrf, time.monotonic() + STAFF_MINUTES * 60)
        response = redirect(url_for("staff.staff_home"))
        cookie(response, STAFF_COOKIE, sid)
        response.delete_cookie("intake_login", path="/")
        return response

    @staff.post("/staff/open")
    def staff_open():
        csrf = staff_csrf()
        if csrf is None:
            return redirect(url_for("staff.staff_home"))
        check_csrf(csrf)
        agreement_id = request.form.get("agreement", "")
        if agreement_id not in {a["id"] for a in awaiting(practice)}:
            return page("staff_home.html.j2", 422, title="Open an intake", csrf=csrf, agreements=awaiting(practice),
                        error="choose an agreement from the list.")
        try:
            from agreements_kit.signing.sign import check_intake_role, find_agreement

            check_intake_role(find_agreement(practice, agreement_id), request.form.get("role", "client"))
            token, ticket = tickets.open(agreement_id, request.form.get("role", "client"),
                                         request.form.get("identity", ""), request.form.get("checked_by", ""))
        except AgreementsError as exc:
            return page("staff_home.html.j2", 422, title="Open an intake", csrf=csrf, agreements=awaiting(practice),
                        error=f"{exc.message}.")
        link = intake_link(state["base_url"] or request.host_url, token)
        return page("staff_link.html.j2", title="Intake link", link=link, qr=qr_data_uri(link), minutes=15)

    @staff.post("/staff/logout")
    def staff_logout():
        sid = request.cookies.get(STAFF_COOKIE, "")
        csrf = staff_csrf()
        if csrf is not None:
            check_csrf(csrf)
            staff_sessions.pop(sid, None)
        response = redirect(url_for("staff.staff_home"))
        response.delete_cookie(STAFF_COOKIE, path="/")
        return response

    app.register_blueprint(signing)
    app.register_blueprint(staff)
    app.extensions["agreements"] = {"tickets": tickets, "sessions": sessions, "practice": practice}
    return app


def record_initials_ok(value: str) -> bool:
    from agreements_kit.signing.sign import INITIALS_RE

    return bool(INITIALS_RE.match(value.replace(".", "")))


def friendly(text: str) -> str:
    """Library messages, phrased for the person at the tablet."""
    return text.replace("typed name", "name").replace("the signer", "you")


def decode_drawing(value: str) -> bytes | None:
    """The canvas's ``data:image/png;base64,...`` value as PNG bytes (None when nothing was drawn)."""
    from agreements_kit.signing.sign import MAX_PNG, PNG_MAGIC

    if not value:
        return None
    prefix = "data:image/png;base64,"
    if not value.startswith(prefix):
        raise ValueError("the drawn signature is not a PNG picture")
    try:
        data = base64.b64decode(value[len(prefix):], validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("the drawn signature could not be read") from None
    if len(data) > MAX_PNG:
        raise ValueError("the drawn signature is too large")
    if not data.startswith(PNG_MAGIC):
        raise ValueError("the drawn signature is not a PNG picture")
    return data


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
            out.append({"id": folder.id, "client": folder.client_name, "date": folder.manifest["agreement"]["date"]})
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
             "/staff/open", "/staff/logout"}

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
            else:
                route = "<other path>"
            log.info("%s %s %s", self.command, route, code)

    return Quiet


