"""The ``handoff:`` settings of practice.yaml: how a client's copy reaches them after intake.

At the end of intake the client chooses email, print or phone (agreements_kit.intake.handoff).
Email needs the practice's own mail server, set here; print and phone need nothing. Example::

    handoff:
      phone_minutes: 10          # a phone's QR download link works this long (1-60; default 10)
      link_hours: 72             # an emailed download link works this long (1-336; default 72)
      mail:
        host: mail.riverbend.example
        port: 587                # default: 587 for starttls, 465 for tls, 25 for none
        security: starttls       # starttls or tls (certificate checked); none: only to localhost
        from: "Riverbend DBT <frontdesk@riverbend.example>"
        username: frontdesk@riverbend.example
        password_file: /etc/agreements/mail-password   # or password_env: AGREEMENTS_MAIL_PASSWORD
        ca_bundle: pki/mail-ca.pem   # the mail server's CA, when it is the practice's own (else the system's)
        delivery: attach         # attach the signed copy, or link: a single-use download link
        link_url: https://intake.riverbend.example:8765   # with delivery: link, the intake server as clients reach it
        subject: "Your signed document from {practice}"

The password never goes in practice.yaml (a ``password`` key is refused): it is read from
its file or environment variable when a mail is sent, and never logged. ``security: none``
(no TLS at all) is accepted only for a mail server on this machine (a local relay that
then sends with TLS itself), and never with a password. The subject and body say only
what is written here ({practice} is the practice's name): never the client's name.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from email.utils import parseaddr
from pathlib import Path

from agreements_kit.authoring.practice import _keys
from agreements_kit.authoring.yamlfile import LineDict
from agreements_kit.errors import PracticeError
from agreements_kit.formats.text import check_text

SECURITY = ("starttls", "tls", "none")
DELIVERY = ("attach", "link")
DEFAULT_PORTS = {"starttls": 587, "tls": 465, "none": 25}
DEFAULT_SUBJECT = "Your signed document from {practice}"
PHONE_MINUTES = 10
LINK_HOURS = 72
ENV_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
HOST_RE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$|^\[?[0-9A-Fa-f:.]+\]?$")
URL_RE = re.compile(r"^https://[^\s/?#@]+(/[^\s?#]*)?$")


@dataclass(frozen=True)
class Mail:
    """The practice's outgoing mail server and what its mails to clients say."""

    host: str
    port: int
    security: str  # starttls | tls | none
    sender: str  # the From header, "Name <address>" or an address
    username: str | None = None
    password_file: Path | None = None
    password_env: str | None = None
    ca_bundle: Path | None = None
    delivery: str = "attach"  # attach | link
    link_url: str | None = None  # delivery: link: the intake server's address as clients reach it (https)
    subject: str = DEFAULT_SUBJECT
    body: str | None = None  # None: delivery.py's default text
    timeout: float = 20.0

    @property
    def sender_address(self) -> str:
        return parseaddr(self.sender)[1]


@dataclass(frozen=True)
class Handoff:
    mail: Mail | None = None
    phone_minutes: int = PHONE_MINUTES
    link_hours: int = LINK_HOURS


def is_local(host: str) -> bool:
    """A mail server on this machine (where mail without TLS never crosses a network)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def parse_handoff(d: LineDict, root: Path, path: Path) -> Handoff:
    """The ``handoff`` mapping of practice.yaml (absent: print and phone only, no email)."""
    h = d.get("handoff")
    if h is None:
        return Handoff()
    if not isinstance(h, LineDict):
        raise PracticeError("'handoff' must be a mapping (mail, phone_minutes, link_hours)", path=path,
                            line=d.line_of("handoff"))
    _keys(h, set(), {"mail", "phone_minutes", "link_hours"}, "'handoff'", path)
    phone = _whole(h, "phone_minutes", PHONE_MINUTES, 1, 60, "minutes", path)
    hours = _whole(h, "link_hours", LINK_HOURS, 1, 336, "hours", path)
    m = h.get("mail")
    if m is None:
        return Handoff(None, phone, hours)
    if not isinstance(m, LineDict):
        raise PracticeError("'mail' of 'handoff' must be a mapping (host, from, security, ...)", path=path,
                            line=h.line_of("mail"))
    return Handoff(_mail(m, root, path), phone, hours)


def _whole(m: LineDict, key: str, default: int, low: int, high: int, unit: str, path: Path) -> int:
    value = m.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise PracticeError(f"'{key}' must be a whole number of {unit} from {low} to {high}", path=path,
                            line=m.line_of(key))
    return value


def _string(m: LineDict, key: str, path: Path, default: str | None = None, max_len: int = 200) -> str | None:
    value = m.get(key, default)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise PracticeError(f"'{key}' of 'mail' must be a non-empty string", path=path, line=m.line_of(key))
    problem = check_text(value, max_len)
    if problem:
        raise PracticeError(f"'{key}' of 'mail' {problem}", path=path, line=m.line_of(key))
    return value.strip()


def _mail(m: LineDict, root: Path, path: Path) -> Mail:
    if "password" in m:
        raise PracticeError("a mail password never goes in practice.yaml: name a file with 'password_file' or an "
                            "environment variable with 'password_env'", path=path, line=m.line_of("password"))
    _keys(m, {"host", "from"}, {"port", "security", "username", "password_file", "password_env", "ca_bundle",
                                "delivery", "link_url", "subject", "body", "timeout"}, "'mail' of 'handoff'", path)
    host = _string(m, "host", path) or ""
    if not HOST_RE.match(host):
        raise PracticeError(f"'host' of 'mail' must be a host name or address, not {host!r}", path=path,
                            line=m.line_of("host"))
    security = m.get("security", "starttls")
    if security not in SECURITY:
        raise PracticeError("'security' of 'mail' must be starttls (port 587) or tls (port 465); none only for a mail "
                            "server on this machine", path=path, line=m.line_of("security"))
    if security == "none" and not is_local(host):
        raise PracticeError(f"'security: none' would send clients' documents unencrypted to {host}: it is allowed "
                            "only for a mail server on this machine (localhost); use starttls or tls", path=path,
                            line=m.line_of("security"))
    port = m.get("port", DEFAULT_PORTS[security])
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise PracticeError("'port' of 'mail' must be a port number (587 for starttls, 465 for tls)", path=path,
                            line=m.line_of("port"))
    sender = _string(m, "from", path) or ""
    address = parseaddr(sender)[1]
    if "\n" in sender or "@" not in address or address.startswith("@") or address.endswith("@") or " " in address:
        raise PracticeError(f"'from' of 'mail' must be an address such as \"Practice <desk@example.org>\", not "
                            f"{sender!r}", path=path, line=m.line_of("from"))
    username = _string(m, "username", path)
    password_file = _string(m, "password_file", path, max_len=1000)
    password_env = _string(m, "password_env", path)
    if password_file and password_env:
        raise PracticeError("give the mail password by 'password_file' or by 'password_env', not both", path=path,
                            line=m.line_of("password_env"))
    if password_env and not ENV_RE.match(password_env):
        raise PracticeError(f"'password_env' of 'mail' must be an environment variable's name, not {password_env!r}",
                            path=path, line=m.line_of("password_env"))
    has_password = bool(password_file or password_env)
    if has_password != bool(username):
        key = "username" if has_password else "password_file"
        raise PracticeError("a mail sign-in needs both 'username' and a password ('password_file' or "
                            "'password_env')", path=path, line=m.line_of(key if key in m else "username"))
    if has_password and security == "none":
        raise PracticeError("a mail password is never sent without TLS: use security starttls or tls", path=path,
                            line=m.line_of("security"))
    ca = _string(m, "ca_bundle", path, max_len=1000)
    ca_bundle = None
    if ca is not None:
        ca_bundle = (root / ca).resolve()
        if not ca_bundle.is_file():
            raise PracticeError(f"'ca_bundle' of 'mail' not found: {ca_bundle}", path=path, line=m.line_of("ca_bundle"))
    delivery = m.get("delivery", "attach")
    if delivery not in DELIVERY:
        raise PracticeError("'delivery' of 'mail' must be attach (the signed copy attached) or link (a single-use "
                            "download link)", path=path, line=m.line_of("delivery"))
    link_url = _string(m, "link_url", path, max_len=500)
    if delivery == "link" and link_url is None:
        raise PracticeError("'delivery: link' needs 'link_url': the https:// address at which clients reach the "
                            "intake server (agreements intake serve --tls)", path=path, line=m.line_of("delivery"))
    if link_url is not None and not URL_RE.match(link_url):
        raise PracticeError(f"'link_url' of 'mail' must be an https:// address, not {link_url!r}", path=path,
                            line=m.line_of("link_url"))
    subject = _string(m, "subject", path, DEFAULT_SUBJECT) or DEFAULT_SUBJECT
    if "\n" in subject or "\t" in subject:
        raise PracticeError("'subject' of 'mail' must be one line", path=path, line=m.line_of("subject"))
    body = _string(m, "body", path, max_len=2000)
    timeout = m.get("timeout", 20)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not 0 < timeout <= 120:
        raise PracticeError("'timeout' of 'mail' must be a number of seconds between 0 and 120", path=path,
                            line=m.line_of("timeout"))
    return Mail(host=host.strip("[]"), port=port, security=security, sender=sender, username=username,
                password_file=(root / password_file) if password_file else None, password_env=password_env,
                ca_bundle=ca_bundle, delivery=delivery, link_url=link_url.rstrip("/") if link_url else None,
                subject=subject, body=body, timeout=float(timeout))
