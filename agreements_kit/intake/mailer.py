"""One mail to one client, through the practice's own SMTP server, always over TLS with its certificate checked.

``security: starttls`` upgrades a plain connection (port 587) and refuses a server that does
not offer STARTTLS, so a stripped capability list cannot turn it into plain text;
``security: tls`` speaks TLS from the first byte (port 465); ``security: none`` exists only
for a relay on this machine (authoring/handoff.py allows it for localhost alone, never with
a password). Certificates are checked against the system's CAs, or only against
``ca_bundle`` when the practice names its own mail server's CA; host names are checked too.
The password is read from its file or environment variable at the moment of sending and
is never logged; nor is the client's address, and no error message repeats it, nor the
server's own reply text (which often quotes the address): only its numeric code.
"""

from __future__ import annotations

import email.utils
import os
import re
import smtplib
import ssl
from email.message import EmailMessage
from pathlib import Path

from agreements_kit.authoring.handoff import Mail
from agreements_kit.errors import HandoffError, MailError

MAX_ADDRESS = 254
# Plain ASCII addresses only (no SMTPUTF8): one local part, one domain with at least one dot or "localhost".
_LOCAL = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
ADDRESS_RE = re.compile(rf"^{_LOCAL}@(?:{_LABEL}(?:\.{_LABEL})+|localhost)$")


def check_address(typed: str) -> str:
    """The client's typed address, trimmed, or HandoffError saying what to fix (never repeating it)."""
    address = (typed or "").strip()
    if not address:
        raise HandoffError("type your email address", code="usage.mail-address")
    if len(address) > MAX_ADDRESS or not ADDRESS_RE.match(address) or len(address.split("@")[0]) > 64:
        raise HandoffError("that does not look like an email address (like name@example.org); check it and try "
                           "again", code="usage.mail-address")
    return address


def password(mail: Mail) -> str | None:
    """The mail sign-in password, from its file or environment variable (None: no sign-in)."""
    if mail.password_file is not None:
        try:
            value = Path(mail.password_file).read_text(encoding="utf-8").rstrip("\r\n")
        except (OSError, UnicodeDecodeError) as exc:
            why = getattr(exc, "strerror", None) or "not UTF-8 text"
            raise MailError(f"cannot read the mail password file {mail.password_file}: {why}",
                            code="usage.mail-password") from None
        if not value:
            raise MailError(f"the mail password file {mail.password_file} is empty", code="usage.mail-password")
        return value
    if mail.password_env is not None:
        value = os.environ.get(mail.password_env, "")
        if not value:
            raise MailError(f"the mail password is not set: ${mail.password_env} is empty or missing (practice.yaml "
                            "names it in handoff: mail: password_env)", code="usage.mail-password")
        return value
    return None


def tls_context(mail: Mail) -> ssl.SSLContext:
    """Certificate and host name checked; TLS 1.2 at least; the practice's own CA alone when it names one."""
    try:
        context = ssl.create_default_context(cafile=str(mail.ca_bundle) if mail.ca_bundle else None)
    except (OSError, ssl.SSLError) as exc:
        raise MailError(f"cannot use the mail CA bundle {mail.ca_bundle}: {exc}", code="usage.mail-ca") from None
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def message(mail: Mail, to: str, subject: str, body: str, attachments: list[tuple[str, bytes]]) -> EmailMessage:
    """A plain-text mail with PDF attachments; nothing in its headers but the practice's words and the address."""
    msg = EmailMessage()
    msg["From"] = mail.sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = email.utils.formatdate(usegmt=True)
    msg["Message-ID"] = email.utils.make_msgid(domain=mail.sender_address.rsplit("@", 1)[-1])
    msg.set_content(body)
    for name, data in attachments:
        msg.add_attachment(data, maintype="application", subtype="pdf", filename=name)
    return msg


def where(mail: Mail) -> str:
    return f"{mail.host}:{mail.port}"


def send(mail: Mail, msg: EmailMessage, to: str) -> None:
    """Deliver ``msg`` to ``to``; MailError (one line, never the address) when it cannot be."""
    secret = password(mail)  # before connecting: a missing password is said as such
    context = None if mail.security == "none" else tls_context(mail)
    try:
        if mail.security == "tls":
            smtp: smtplib.SMTP = smtplib.SMTP_SSL(mail.host, mail.port, timeout=mail.timeout, context=context)
        else:
            smtp = smtplib.SMTP(mail.host, mail.port, timeout=mail.timeout)
        with smtp:
            smtp.ehlo()
            if mail.security == "starttls":
                if not smtp.has_extn("starttls"):
                    raise MailError(f"the mail server {where(mail)} does not offer STARTTLS, and mail to clients is "
                                    "never sent unencrypted (if it speaks TLS from the start, set 'security: tls')",
                                    code="unavailable.mail-no-tls")
                smtp.starttls(context=context)
                smtp.ehlo()
            if mail.username:
                smtp.login(mail.username, secret or "")
            smtp.send_message(msg, from_addr=mail.sender_address, to_addrs=[to])
    except MailError:
        raise
    except ssl.SSLCertVerificationError as exc:
        raise MailError(f"the mail server {where(mail)} has a certificate that is not trusted "
                        f"({exc.verify_message}); if it is the practice's own server, name its CA in 'ca_bundle' "
                        "under handoff: mail: in practice.yaml", code="unavailable.mail-certificate") from None
    except smtplib.SMTPAuthenticationError as exc:
        raise MailError(f"the mail server {where(mail)} refused the practice's sign-in (code {exc.smtp_code}): "
                        "check 'username' and the password", code="unavailable.mail-sign-in") from None
    except smtplib.SMTPRecipientsRefused as exc:
        codes = ", ".join(str(c) for c, _ in exc.recipients.values())
        raise MailError(f"the mail server {where(mail)} refused the client's address (code {codes})",
                        code="usage.mail-recipient") from None
    except smtplib.SMTPResponseException as exc:
        raise MailError(f"the mail server {where(mail)} refused the mail (code {exc.smtp_code})",
                        code="unavailable.mail-refused") from None
    except smtplib.SMTPNotSupportedError:
        raise MailError(f"the mail server {where(mail)} does not support signing in", code="unavailable.mail") \
            from None
    except (smtplib.SMTPException, ssl.SSLError) as exc:
        raise MailError(f"the mail server {where(mail)} broke off the conversation ({type(exc).__name__})",
                        code="unavailable.mail") from None
    except TimeoutError:
        raise MailError(f"the mail server {where(mail)} did not answer within {mail.timeout:g} s",
                        code="unavailable.mail") from None
    except OSError as exc:
        raise MailError(f"the mail server {where(mail)} could not be reached ({exc.strerror or exc})",
                        code="unavailable.mail") from None
