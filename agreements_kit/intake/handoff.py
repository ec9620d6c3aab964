"""The hand-off pages: at the end of intake the client chooses how to take their copy.

- **Email** (when practice.yaml has ``handoff: mail:``): the client types their address on
  the tablet; the signed copy and the receipt are mailed at once, attached or as a
  single-use download link, and the completed copy follows when the therapist countersigns
  (at once, when they already have). The address is kept (PRACTICE/intake/handoff/choices/,
  0600) only until then, and is never logged. Once an address is recorded for the visit, the
  tablet cannot change it (a tablet left signed in must not reroute a client's copies: the
  front desk can); the client may send again to the same address, at most MAX_SENDS mails
  per session, and after a send the page offers only Finish.
- **Print**: a page that opens the signed copy and the receipt for printing; the front desk
  prints them and hands them over. The completed copy goes on the front desk's list
  (``/staff/handoff``, ``agreements handoff list``) to print at the next visit.
- **Phone**: a QR code of a single-use download link for the client's phone, bound to this
  visit's agreements and their exact signed copies, valid 10 minutes (``phone_minutes``).
  Only over TLS (``agreements intake serve --tls``): over plain HTTP the page refuses and
  says why. The completed copy is shown as a fresh QR code by the front desk at the next visit.

Download links (``/h/TOKEN``, from a mail or a QR code) follow the intake link's rule:
looking (GET, HEAD, a mail scanner, a browser's prefetch) uses nothing; a GET shows a page
with a button, and only its POST (with a CSRF token from that page, sent back as cookie and
field) uses the link, once. The browser that pressed it then holds a short grant (10
minutes, in memory) to download the documents, as often as it needs within that time;
another browser, or a second use of the link, is refused. A link scanner that submits forms
could still use a link up, as it could an intake link: the client then asks for a new one.
All of /h/ is served only over TLS. Wrong tokens count against the same rate limits as
wrong intake links.
"""

from __future__ import annotations

import logging
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flask import Blueprint, Flask, Response, abort, g, make_response, redirect, request, url_for
from werkzeug.wrappers import Response as BaseResponse

from agreements_kit.errors import AgreementsError, HandoffError, MailError
from agreements_kit.formats.ids import ID_RE
from agreements_kit.intake import app as web
from agreements_kit.intake import delivery, mailer
from agreements_kit.intake.delivery import SIGNED, Document

GRANT_MINUTES = 10  # a used link's browser may download its documents this long
OPEN_COOKIE = "handoff_open"  # the download page's CSRF token (double submit)
GRANT_COOKIE = "handoff_grant"
MAX_GRANTS = 1000
MAX_SENDS = 3  # mails one signing session may send (a tablet left signed in mails no more than this)
DOUBLE_SUBMIT_SECONDS = 5  # the same address again this soon is the same form submitted twice: not resent

log = logging.getLogger("agreements_kit.intake")


@dataclass
class Grant:
    documents: tuple[Document, ...]
    started: float


class Grants:
    """Browsers that used a download link: what each may download, for GRANT_MINUTES (bounded, in memory)."""

    def __init__(self, clock: Callable[[], float]):
        self.clock = clock
        self._items: dict[str, Grant] = {}
        self._lock = threading.Lock()

    def add(self, docs: tuple[Document, ...]) -> str:
        key = secrets.token_urlsafe(32)
        with self._lock:
            now = self.clock()
            for old in [k for k, g in self._items.items() if now - g.started >= GRANT_MINUTES * 60]:
                del self._items[old]
            while len(self._items) >= MAX_GRANTS:
                self._items.pop(next(iter(self._items)))
            self._items[key] = Grant(docs, now)
        return key

    def get(self, key: str | None) -> Grant | None:
        with self._lock:
            grant = self._items.get(key or "")
            if grant is not None and self.clock() - grant.started >= GRANT_MINUTES * 60:
                del self._items[key or ""]
                return None
            return grant


def signed_ids(s: web.Session) -> list[str]:
    """The agreements this session signed (one, or a packet's several), by id."""
    folders = s.result.get("folders") or ([s.result["folder"]] if s.result.get("folder") else [])
    return [Path(f).name for f in folders]


def register_handoff(app: Flask, *, clock: Callable[[], float]) -> None:
    """Add the hand-off pages to the intake app (after its own blueprints: it uses their sessions and limits)."""
    shared = app.extensions["agreements"]
    practice = shared["practice"]
    sessions: web.Sessions[web.Session] = shared["sessions"]
    staff_sessions: web.Sessions[web.StaffSession] = shared["staff_sessions"]
    limits: web.Limits = shared["limits"]
    accounts = shared["accounts"]
    store = delivery.links(practice)
    store.sweep()
    grants = Grants(clock)
    hand = delivery.settings(practice)
    bp = Blueprint("handoff", __name__)

    page: Callable[..., Response] = shared["page"]  # the intake pages' frame (practice name, step, idle time)
    message: Callable[[str, str, int], Response] = shared["message"]
    check_csrf: Callable[[str], None] = shared["check_csrf"]  # the form's token, as on every intake page
    say: Callable[..., str] = shared["say"]  # a message in the client's language (intake/words.py)

    def cookie(response: BaseResponse, name: str, value: str) -> None:
        """Every hand-off cookie is Secure: /h/ is served only over TLS."""
        response.set_cookie(name, value, httponly=True, samesite="Strict", secure=True, path="/")


    def client() -> web.Session:
        s, _why = sessions.lookup(request.cookies.get(web.COOKIE))
        if s is None:
            abort(message(say("ended_title"), say("ended_other"), 401))
        g.language = s.result.get("language")  # the client's pages stay in the language they signed in
        if not s.signed or not signed_ids(s):
            abort(redirect(url_for("signing.consent")))
        return s

    def needs_tls(what: str) -> None:
        if not request.is_secure:
            abort(message("Secure connection needed", f"{what} only over a secure (https) connection, and this "
                          "intake server is not using one. Choose email or print instead, or ask the front desk "
                          "(the server is started with 'agreements intake serve --tls').", 403))

    @app.context_processor
    def choices_available() -> dict[str, Any]:
        return {"handoff": {"email": hand.mail is not None, "phone": request.is_secure,
                            "phone_minutes": hand.phone_minutes}}

    # ------------------------------------------------------------------ the client's choice (tablet)

    def chosen(s: web.Session, channel: str, then: str) -> BaseResponse:
        """Record the client's print or phone choice (its follow-up at countersigning), then show ``then``."""
        try:
            delivery.record_choice(practice, signed_ids(s), channel)
        except HandoffError as exc:
            return message("Please try again", f"{exc.message[:1].upper()}{exc.message[1:]}.", exc.http_status)
        log.info("hand-off chosen: %s", channel)
        return redirect(url_for(then))

    @bp.post("/sign/handoff")
    def choose():
        s = client()
        check_csrf(s.csrf)
        channel = request.form.get("channel", "")
        if channel == "email":
            if hand.mail is None:
                return message("Email not available", "This practice does not send copies by email. Choose print "
                               "or phone, or ask the front desk.", 409)
            return redirect(url_for("handoff.email"))
        if channel == "print":
            return chosen(s, "print", "handoff.printing")
        if channel == "phone":
            needs_tls("A copy goes to a phone")
            token, _link = store.open(delivery.documents(practice, signed_ids(s)), hand.phone_minutes, "phone")
            s.result["handoff_phone"] = token  # server memory only; shown as a QR code on the next page
            return chosen(s, "phone", "handoff.phone")
        return redirect(url_for("signing.done"))

    def fixed_address(s: web.Session) -> str | None:
        """The address this visit's copies go to, once one was recorded (the tablet cannot change it)."""
        return s.result.get("handoff_address") or delivery.recorded_address(practice, signed_ids(s))

    def sends_left(s: web.Session) -> int:
        return max(0, MAX_SENDS - int(s.result.get("handoff_sends", 0)))

    def masked(address: str | None) -> str:
        """Enough of an address for the client to recognise it, not enough for the next person at the tablet."""
        if not address:
            return ""
        local, _, domain = address.partition("@")
        return f"{local[:1]}…@{domain}"

    @bp.route("/sign/handoff/email", methods=["GET", "POST"])
    def email():
        s = client()
        if hand.mail is None:
            return message("Email not available", "This practice does not send copies by email.", 409)
        fixed = fixed_address(s)
        sends = int(s.result.get("handoff_sends", 0))
        context = dict(title=say("email_title"), step=4, csrf=s.csrf, address="",
                       delivery=hand.mail.delivery, link_hours=hand.link_hours, fixed=masked(fixed),
                       sent=bool(s.result.get("handoff_sent")), left=max(0, MAX_SENDS - sends),
                       completed=bool(s.result.get("handoff_completed")))
        if request.method == "GET":
            return page("handoff_email.html.j2", **context)
        check_csrf(s.csrf)
        if request.form.get("again") and fixed:
            typed = fixed
        else:
            typed = request.form.get("address", "")[:300]
            context["address"] = typed
        try:
            address = mailer.check_address(typed)
            with s.lock:  # one send at a time per visit
                fixed = fixed_address(s)
                if (fixed is not None and address == fixed and s.result.get("handoff_sent")
                        and clock() - float(s.result.get("handoff_sent_at", 0)) < DOUBLE_SUBMIT_SECONDS):
                    context.update(address=masked(address), left=sends_left(s))
                    return page("handoff_sent.html.j2", **context)  # a double-submitted form sends once
                if fixed is not None and address != fixed:
                    log.warning("hand-off: a different address was refused")  # never the address
                    context["address"] = ""
                    return page("handoff_email.html.j2", 409, **context,
                                error="your copies already go to the address given earlier in this visit, and it "
                                "cannot be changed here. Nothing was sent. To use a different address, ask the "
                                "front desk")
                sends = int(s.result.get("handoff_sends", 0))
                if sends >= MAX_SENDS:
                    return page("handoff_email.html.j2", 429, **context,
                                error=f"your copy was already sent {MAX_SENDS} times from this tablet, the most it "
                                "can be. Please ask the front desk")
                s.result["handoff_sends"] = sends + 1
                ids = signed_ids(s)
                # The choice is saved first (a failure after the mail went cannot lose the completed copy's
                # follow-up); an agreement already countersigned gets its completed copy from the follow-up.
                outcomes = delivery.record_choice(practice, ids, "email", address)
                done = {o.agreement_id for o in outcomes}
                waiting = [aid for aid in ids if aid not in done]
                try:
                    failed = next((o.error for o in outcomes if o.error is not None), None)
                    if failed is not None:
                        raise failed
                    if waiting:
                        delivery.send_documents(practice, waiting, address, SIGNED)
                except AgreementsError:
                    if fixed is None:  # a first address that never got a mail is not kept (it may be mistyped)
                        delivery.forget_address(practice, ids, address)
                    raise
                s.result["handoff_address"] = address
                s.result["handoff_sent"] = True
                s.result["handoff_sent_at"] = clock()
                s.result["handoff_completed"] = not waiting  # every copy mailed was already countersigned
        except MailError as exc:
            log.warning("hand-off mail not sent: %s", exc.message)  # the server and its code; never the address
            why = ("the practice's mail server did not accept that address; check it" if exc.code ==
                   "usage.mail-recipient" else "the practice's mail server could not send it just now")
            context.update(fixed=masked(fixed_address(s)), left=sends_left(s))
            return page("handoff_email.html.j2", 503 if exc.kind == "unavailable" else 422, **context,
                        error=f"your copy was not sent: {why}. You can choose print or phone instead, or ask the "
                        "front desk.")
        except HandoffError as exc:
            return page("handoff_email.html.j2", 422, **context, error=f"{exc.message}.")
        log.info("hand-off chosen: email")
        context.update(address=masked(address), left=sends_left(s),
                       completed=bool(s.result.get("handoff_completed")))
        return page("handoff_sent.html.j2", **context)

    @bp.get("/sign/handoff/print")
    def printing():
        s = client()
        docs = delivery.documents(practice, signed_ids(s))
        return page("handoff_print.html.j2", title=say("print_title"), step=4, csrf=s.csrf, documents=docs,
                    open_url=lambda d: url_for("handoff.print_document", name=d.name))

    @bp.get("/sign/handoff/print/<name>")
    def print_document(name: str):
        s = client()
        return pdf(delivery.documents(practice, signed_ids(s)), name, inline=True)

    @bp.get("/sign/handoff/phone")
    def phone():
        s = client()
        needs_tls("A copy goes to a phone")
        token = s.result.get("handoff_phone")
        state, link, until = "none", None, None
        if token:
            try:
                found = store.check(token)
                state, link = "ready", delivery.download_url(request.host_url, token)
                until = f"{found.expires:%H:%M} UTC"
            except HandoffError as exc:
                state = "used" if exc.code == "gone.download-link-used" else "expired"
        return page("handoff_phone.html.j2", title=say("phone_title"), step=4, csrf=s.csrf, state=state,
                    link=link, qr=web.qr_data_uri(link) if link else None, minutes=hand.phone_minutes,
                    until=until, again=url_for("handoff.choose"), staff=False)

    # ------------------------------------------------------------------ download links (/h/TOKEN)

    def link_refused(exc: AgreementsError) -> Response:
        address = request.remote_addr or "?"
        waiting = max(limits.link_source.retry_after(address), limits.link_all.retry_after("*"))
        later = max(limits.link_source.fail(address), limits.link_all.fail("*"))
        if waiting > 0:
            response = message("Please wait", "Too many links that do not work have been tried. Wait "
                               f"{web.say_seconds(later)} before trying another.", 429)
            response.headers["Retry-After"] = str(max(1, int(later + 0.999)))
            return response
        return message("Link not valid", f"{exc.message[:1].upper()}{exc.message[1:]}.", exc.http_status)

    def prefetching() -> bool:
        return any(word in request.headers.get(h, "").lower() for h in web.PREFETCH_HEADERS
                   for word in ("prefetch", "prerender", "preview"))

    @bp.get("/h/<token>")
    def download_page(token: str):
        """A look at a download link (GET, HEAD, a scanner): a page with a button; nothing is used."""
        needs_tls("Documents are downloaded")
        if prefetching():
            response = message("Open the link", "This link opens only when you visit it yourself.", 503)
            response.headers["Vary"] = ", ".join(web.PREFETCH_HEADERS)
            return response
        try:
            found = store.check(token)
        except HandoffError as exc:
            return link_refused(exc)
        csrf = request.cookies.get(OPEN_COOKIE, "")
        if len(csrf) < 43:
            csrf = secrets.token_urlsafe(32)
        response = page("handoff_download.html.j2", title=say("download_title"), csrf=csrf,
                        count=len(found.documents), until=f"{found.expires:%Y-%m-%d %H:%M} UTC")
        cookie(response, OPEN_COOKIE, csrf)
        return response

    @bp.post("/h/<token>")
    def download_open(token: str):
        """The person pressed the button: the link is used up and this browser may download, briefly."""
        needs_tls("Documents are downloaded")
        check_csrf(request.cookies.get(OPEN_COOKIE, ""))
        try:
            found = store.claim(token)
        except HandoffError as exc:
            return link_refused(exc)
        log.info("download link used")
        response = redirect(url_for("handoff.files"))
        cookie(response, GRANT_COOKIE, grants.add(found.documents))
        response.delete_cookie(OPEN_COOKIE, path="/")
        return response

    def granted() -> Grant:
        needs_tls("Documents are downloaded")
        grant = grants.get(request.cookies.get(GRANT_COOKIE))
        if grant is None:
            abort(message("Download ended", f"Downloads end {GRANT_MINUTES} minutes after the link is opened, and "
                          "only the browser that opened it can download. Ask the practice for a new link.", 401))
        return grant

    @bp.get("/h/files")
    def files():
        grant = granted()
        return page("handoff_files.html.j2", title=say("download_title"), documents=grant.documents,
                    minutes=GRANT_MINUTES)

    @bp.get("/h/files/<name>")
    def file(name: str):
        return pdf(granted().documents, name, inline=False)

    def pdf(docs: list[Document] | tuple[Document, ...], name: str, inline: bool) -> Response:
        doc = next((d for d in docs if d.name == name), None)
        if doc is None:
            abort(404)
        try:
            data = delivery.read_document(practice, doc)
        except HandoffError as exc:
            return message("Cannot download", f"{exc.message[:1].upper()}{exc.message[1:]}.", exc.http_status)
        response = make_response(data)
        response.headers["Content-Type"] = "application/pdf"
        response.headers["Content-Disposition"] = f'{"inline" if inline else "attachment"}; filename="{doc.name}"'
        return response

    # ------------------------------------------------------------------ the front desk's list (/staff/handoff)

    def staff() -> web.StaffSession:
        s, _why = staff_sessions.lookup(request.cookies.get(web.STAFF_COOKIE))
        if s is None or accounts.get(s.account) is None:
            abort(redirect(url_for("staff.staff_home")))
        return s

    def staff_list(s: web.StaffSession, status: int = 200, error: str | None = None) -> Response:
        rows = []
        for c in staff_choices():
            try:
                folder = delivery._folder(practice, c.agreement_id)
            except AgreementsError:
                continue
            if folder.voided:
                continue  # nothing will follow ('agreements handoff send' erases the choice)
            rows.append({"id": c.agreement_id, "client": folder.client_name,
                         "ready": (c.ready or folder.complete) and bool(c.front_desk),
                         "ways": c.front_desk, "email": c.email is not None, "mail_error": c.mail_error,
                         "complete": folder.complete})
        return page("handoff_staff.html.j2", status, title="Copies to hand over", csrf=s.csrf, rows=rows,
                    secure=request.is_secure, staff_name=s.name, error=error)

    def staff_choices() -> list[delivery.Choice]:
        """The hand-off records, each read on its own: a damaged one is skipped (its code logged), not the list."""
        folder = delivery.handoff_dir(practice) / "choices"
        out = []
        for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
            try:
                found = delivery.read_choice(practice, path.stem)
            except AgreementsError as exc:
                log.error("hand-off record skipped: %s", exc.code)  # the code only: the path names the agreement
                continue
            if found is not None:
                out.append(found)
        return out

    def agreement_named(agreement_id: str) -> str:
        """An agreement id from the path, or 404: anything else is never looked up on disk."""
        if not ID_RE.match(agreement_id):
            abort(404)
        return agreement_id

    def staff_documents(agreement_id: str) -> list[Document]:
        agreement_named(agreement_id)
        choice = delivery.read_choice(practice, agreement_id)
        if choice is None or not choice.front_desk:
            abort(404)
        try:
            complete = delivery._folder(practice, agreement_id).complete
        except AgreementsError:
            abort(404)
        if not (choice.ready or complete):
            abort(404)
        return delivery.documents(practice, [agreement_id])

    @bp.get("/staff/handoff")
    def staff_home():
        return staff_list(staff())

    @bp.get("/staff/handoff/<agreement_id>/<name>")
    def staff_document(agreement_id: str, name: str):
        staff()
        return pdf(staff_documents(agreement_id), name, inline=True)

    @bp.post("/staff/handoff/<agreement_id>/qr")
    def staff_qr(agreement_id: str):
        s = staff()
        check_csrf(s.csrf)
        needs_tls("A copy goes to a phone")
        token, found = store.open(staff_documents(agreement_id), hand.phone_minutes, "phone")
        link = delivery.download_url(request.host_url, token)
        log.info("hand-off: a phone link for a completed copy")
        return page("handoff_phone.html.j2", title="The completed copy on the client's phone", state="ready",
                    link=link, qr=web.qr_data_uri(link), minutes=hand.phone_minutes, csrf=s.csrf,
                    until=f"{found.expires:%H:%M} UTC", again=url_for("handoff.staff_qr", agreement_id=agreement_id),
                    staff=True)

    @bp.post("/staff/handoff/<agreement_id>/done")
    def staff_done(agreement_id: str):
        s = staff()
        check_csrf(s.csrf)
        agreement_named(agreement_id)
        try:
            delivery.handed_over(practice, agreement_id)
        except HandoffError as exc:
            return staff_list(s, 422, f"{exc.message}.")
        log.info("hand-off: completed copy handed over")
        return redirect(url_for("handoff.staff_home"))

    app.register_blueprint(bp)
    app.extensions["agreements"]["handoff"] = {"links": store, "grants": grants}
