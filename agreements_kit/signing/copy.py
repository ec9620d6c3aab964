"""The signed copy: the archived PDF with PAdES signatures any PDF reader can check.

The detached CMS signatures beside the records are the evidence of record, but a
PDF reader shows them to nobody. So each signer also signs a *copy* of the archived
PDF, as an incremental update (pyHanko): the archived bytes stay, exactly, as the
copy's prefix, and each update adds one visible signature field (name, role, time
in UTC, agreement id) on the last page, signed with the *same* key and certificate
as that signer's CMS signature. For the client that is the one-time key
``sign_client`` holds in memory: the copy is signed while the key exists, and the
key is never written anywhere.

- ``NN-ROLE.copy.pdf`` is written once, with the record it belongs to (the same
  ledger entry commits both); the therapist's copy extends the client's copy byte
  for byte, so the completed copy carries both signatures.
- Subfilter ETSI.CAdES.detached (PAdES baseline). PAdES B-T when the practice has
  TSAs: the signature time-stamp comes from the same TSAs, tried in order, through
  the same transport as the CMS time-stamps (no redirects, bounded replies).
- B-LT: the chain up to the practice root and the CRL set in force go into the
  document security store (DSS), in the signature's own revision (no VRI), so a
  reader needs only the practice root, years later too.

The stamp's font is DejaVu Sans (the agreement's own), embedded and subset, so the
stamp shows accented names and keeps PDF/A's rule that every font is embedded. The
update itself (a form, a signature field, the DSS) is what PDF/A-2/3 permit for
signatures; nothing of the archived revision is rewritten.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import json
import logging
import os
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from agreements_kit.errors import SigningError, TimestampError

#: The stamp's box on the last page (PDF points from the lower left): bottom and height, and its
#: left and right edges by signer (client or guardian on the left, the therapist on the right).
STAMP_BOTTOM = 50
STAMP_HEIGHT = 58
STAMP_EDGES = {"client": (40, 300), "guardian": (40, 300), "therapist": (312, 572)}
FONT_FILES = ("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
              "/usr/share/fonts/dejavu/DejaVuSans.ttf",
              "/usr/share/fonts/TTF/DejaVuSans.ttf")
FONT_SIZE = 8
STAMP_TEXT = "Signed by %(who)s, %(role)s\n%(when)s\nAgreement %(agreement)s"
ROLE_LABEL = {"client": "client", "guardian": "guardian (for the client)", "therapist": "therapist"}


def copy_name(sequence: int, role: str) -> str:
    """The copy's file name in the agreement folder: that of the record it belongs to, ``.copy.pdf``."""
    return f"{sequence:02d}-{role}.copy.pdf"


def field_name(sequence: int, role: str) -> str:
    """The signature field's name in the copy (one per record)."""
    return f"Signature-{sequence:02d}-{role}"


@dataclass(frozen=True)
class ValidationData:
    """What a reader needs to check the copy offline, put in the DSS (B-LT).

    ``roots``: the practice root (and the TSA roots, to check the time-stamps while
    signing); ``certificates``: the CAs under the root; ``crls``: the CRL set in force."""

    roots: tuple[x509.Certificate, ...]
    certificates: tuple[x509.Certificate, ...] = ()
    crls: tuple[x509.CertificateRevocationList, ...] = ()


def practice_validation_data(pki_dir: Path) -> ValidationData:
    """The practice's root, its CAs, its CRL set in force now and the TSA roots it trusts."""
    from agreements_kit.signing.evidence import practice_evidence

    cas, crls = practice_evidence(pki_dir)
    root, others = cas[0], tuple(cas[1:])
    tsa_file = Path(pki_dir) / "tsa-roots.pem"
    tsa_roots = tuple(x509.load_pem_x509_certificates(tsa_file.read_bytes())) if tsa_file.is_file() else ()
    return ValidationData((root, *tsa_roots), others, tuple(crls))


def _asn1_cert(cert: x509.Certificate) -> Any:
    from asn1crypto import x509 as ax509

    return ax509.Certificate.load(cert.public_bytes(serialization.Encoding.DER))


def _asn1_crl(crl: x509.CertificateRevocationList) -> Any:
    from asn1crypto import crl as acrl

    return acrl.CertificateList.load(crl.public_bytes(serialization.Encoding.DER))


def validation_context(data: ValidationData, moment: dt.datetime | None = None) -> Any:
    """A pyHanko validation context that trusts only ``data.roots`` and never fetches anything."""
    from pyhanko_certvalidator import ValidationContext

    return ValidationContext(trust_roots=[_asn1_cert(c) for c in data.roots],
                             other_certs=[_asn1_cert(c) for c in data.certificates],
                             crls=[_asn1_crl(c) for c in data.crls], allow_fetching=False,
                             revocation_mode="soft-fail", moment=moment, retroactive_revinfo=True)


# pyHanko's classes are subclassed inside functions: pyHanko is imported only when a copy is made.
def _timestamper_class() -> type:
    from pyhanko.sign.timestamps import TimeStamper
    from pyhanko.sign.timestamps.common_utils import TimestampRequestError, handle_tsp_response

    class PracticeTimeStamper(TimeStamper):  # pyHanko is untyped here (Any)
        """pyHanko's time-stamp client over the practice's TSAs, tried in order, with the CMS
        time-stamps' own transport (signing.timestamp: no redirects, a bounded reply)."""

        def __init__(self, urls: Sequence[str], timeout: float):
            from agreements_kit.signing.timestamp import Timestamper

            super().__init__(include_nonce=True)
            self.transport = Timestamper(tuple(urls), timeout)  # checks the URLs and the timeout

        async def async_timestamp(self, message_digest: bytes, md_algorithm: str) -> Any:
            from asn1crypto import tsp

            from agreements_kit.signing.timestamp import _Failure

            failures: list[tuple[str, str, str]] = []  # (url, code, what), as signing.timestamp words them
            for url in self.transport.urls:
                nonce, req = self.request_cms(message_digest, md_algorithm)
                try:
                    body = await asyncio.to_thread(self.transport._post, url, req.dump())
                    return handle_tsp_response(tsp.TimeStampResp.load(body), nonce)
                except _Failure as failure:
                    failures.append((url, failure.code, failure.what))
                except TimestampRequestError as exc:
                    failures.append((url, "unavailable.tsa-refused", str(exc)))
                except (ValueError, TypeError, KeyError):
                    failures.append((url, "unavailable.tsa-reply", "its answer is not a time-stamp reply"))
            codes = {code for _, code, _ in failures}
            who = "no TSA gave a" if len(failures) > 1 else "the TSA gave no"
            said = "; ".join(f"{url}: {what}" for url, _, what in failures)
            raise TimestampError(f"{who} time-stamp token for the signed copy ({said})",
                                 code=codes.pop() if len(codes) == 1 else "unavailable.tsa")

    return PracticeTimeStamper


def practice_timestamper(urls: Sequence[str], timeout: float = 10.0) -> Any:
    """A pyHanko TimeStamper asking the practice's TSAs (``practice.timestamping.urls``) in order."""
    return _timestamper_class()(urls, timeout)


def font_file() -> str | None:
    """DejaVu Sans (the agreement's font) on this machine, or None (then pyHanko's built-in font)."""
    for candidate in FONT_FILES:
        if os.path.isfile(candidate):
            return candidate
    if shutil.which("fc-match"):
        found = subprocess.run(["fc-match", "--format=%{file}", "DejaVu Sans:style=Book"], capture_output=True,
                               text=True, timeout=10).stdout.strip()
        if found.lower().endswith((".ttf", ".otf")) and os.path.isfile(found):
            return found
    return None


def stamp_font(text: str) -> bytes | None:
    """DejaVu Sans cut down to the glyphs of ``text`` and scaled to 1000 units per em, or None without the font.

    pyHanko writes glyph widths in the font's own units where PDF wants thousandths of
    an em, so a font of 2048 units per em (DejaVu's) comes out spaced twice too wide;
    scaling the cut-down font (about 0.1 s) makes both the same."""
    path = font_file()
    if path is None:
        return None
    from fontTools import subset
    from fontTools.ttLib import TTFont
    from fontTools.ttLib.scaleUpem import scale_upem

    font = TTFont(path, lazy=True)
    options = subset.Options()
    options.layout_features = ["*"]
    options.notdef_outline = True
    options.glyph_names = True
    options.name_IDs = ["*"]
    subsetter = subset.Subsetter(options)
    subsetter.populate(text=text)
    subsetter.subset(font)
    if font["head"].unitsPerEm != 1000:
        scale_upem(font, 1000)
    out = io.BytesIO()
    font.save(out)
    return out.getvalue()


def _font_factory(data: bytes, size: int) -> Any:
    from pyhanko.pdf_utils.font.api import FontEngineFactory
    from pyhanko.pdf_utils.font.opentype import GlyphAccumulator

    class FontBytes(FontEngineFactory):  # pyHanko is untyped here (Any)
        """pyHanko's GlyphAccumulatorFactory, for a font held in memory."""

        def create_font_engine(self, writer: Any, obj_stream: Any = None) -> Any:
            if obj_stream is None and writer.stream_xrefs:
                obj_stream = writer.prepare_object_stream()
            return GlyphAccumulator(writer=writer, font_handle=io.BytesIO(data), font_size=size,
                                    obj_stream=obj_stream)

    return FontBytes()


def _stamp_style(params: dict[str, str]) -> Any:
    from pyhanko.pdf_utils.text import TextBoxStyle
    from pyhanko.stamp import TextStampStyle

    font = stamp_font(STAMP_TEXT % params)
    box: dict[str, Any] = {"font_size": FONT_SIZE}
    if font is not None:
        box["font"] = _font_factory(font, FONT_SIZE)  # the same size for shaping and drawing (pyHanko #733)
    return TextStampStyle(stamp_text=STAMP_TEXT, text_box_style=TextBoxStyle(**box), border_width=1)


class _Quiet(logging.Filter):
    """Drop two warnings that say nothing to a signer: pyHanko's about fetching (we never fetch: the
    validation data is the practice's own) and fontTools' about a table it leaves out of a subset."""

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        return "fetching is not allowed" not in text and "NOT subset" not in text


for _name in ("pyhanko.sign.signers.pdf_signer", "fontTools.subset"):
    logging.getLogger(_name).addFilter(_Quiet())
for _name in ("pyhanko", "fontTools"):  # not Python's last-resort handler on stderr (an application's logging still)
    logging.getLogger(_name).addHandler(logging.NullHandler())


def _box(role: str) -> tuple[int, int, int, int]:
    left, right = STAMP_EDGES.get(role, STAMP_EDGES["client"])
    return left, STAMP_BOTTOM, right, STAMP_BOTTOM + STAMP_HEIGHT


def outside_event_loop(fn: Any) -> Any:
    """``fn()``, on a thread of its own when this one runs an event loop: pyHanko's synchronous calls
    start one (asyncio.run), which fails inside a running loop (a server or a browser test's thread)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return fn()
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(fn).result()


def sign_copy(prior: bytes, key, cert: x509.Certificate, chain: Sequence[x509.Certificate], *, role: str,
              name: str, signed_at: dt.datetime, agreement_id: str, field_name: str, timestamper: Any = None,
              validation_data: ValidationData | None = None) -> bytes:
    """``prior`` with one more PAdES signature (an incremental update): its bytes are the result's prefix.

    ``key`` and ``cert`` are the signer's, as in its CMS signature; ``chain`` the CAs
    between it and the root. With ``timestamper``, PAdES B-T; with ``validation_data``,
    the chain and CRLs go into the DSS (B-LT), checked against its roots at ``signed_at``."""
    from asn1crypto import keys as akeys
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.sign import fields, signers
    from pyhanko.sign.signers.pdf_signer import DSSContentSettings, SigDSSPlacementPreference
    from pyhanko_certvalidator.registry import SimpleCertificateStore

    when = signed_at.astimezone(dt.UTC).replace(microsecond=0)
    der_key = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())  # in memory only, for pyHanko
    signer = signers.SimpleSigner(signing_cert=_asn1_cert(cert), signing_key=akeys.PrivateKeyInfo.load(der_key),
                                  cert_registry=SimpleCertificateStore.from_certs([_asn1_cert(c) for c in chain]))
    meta = signers.PdfSignatureMetadata(
        field_name=field_name, md_algorithm="sha256", subfilter=fields.SigSeedSubFilter.PADES,
        name=name, reason=f"signed as {role} (agreement {agreement_id})",
        embed_validation_info=validation_data is not None,
        validation_context=None if validation_data is None else validation_context(validation_data, when),
        dss_settings=DSSContentSettings(include_vri=False,
                                        placement=SigDSSPlacementPreference.TOGETHER_WITH_SIGNATURE))
    params = {"who": name, "role": ROLE_LABEL.get(role, role), "when": f"{when:%Y-%m-%d %H:%M:%S} UTC",
              "agreement": agreement_id}
    out = io.BytesIO()
    try:
        pdf_signer = _at_time_class()(when, meta, signer, timestamper=timestamper, stamp_style=_stamp_style(params),
                             new_field_spec=fields.SigFieldSpec(field_name, on_page=-1, box=_box(role)))
        writer = IncrementalPdfFileWriter(io.BytesIO(prior))
        outside_event_loop(lambda: pdf_signer.sign_pdf(writer, output=out, appearance_text_params=params))
    except TimestampError:
        raise
    except Exception as exc:
        # pyHanko raises many kinds; none may pass for a signed copy. Its text may name the signer: not repeated.
        raise SigningError(f"nothing was signed: the signed copy could not be made ({type(exc).__name__})",
                           code="usage.signed-copy") from None
    data = out.getvalue()
    if not data.startswith(prior) or len(data) == len(prior):
        raise SigningError("the signed copy does not keep the prior PDF as its prefix", code="usage.signed-copy")
    return data


def _at_time_class() -> type:
    from pyhanko.sign import signers

    class AtTime(signers.PdfSigner):  # pyHanko is untyped here (Any)
        """A PdfSigner whose signing time (/M, the stamp) is the record's, not the clock's at this instant."""

        def __init__(self, when: dt.datetime, *args: Any, **kwargs: Any):
            super().__init__(*args, **kwargs)
            self.when = when

        def init_signing_session(self, pdf_out: Any, existing_fields_only: bool = False) -> Any:
            session = super().init_signing_session(pdf_out, existing_fields_only=existing_fields_only)
            session.system_time = self.when
            return session

    return AtTime


def make_copy(prior: bytes, key, cert: x509.Certificate, chain: Sequence[x509.Certificate], *, role: str,
              name: str, signed_at: dt.datetime, agreement_id: str, sequence: int, pki_dir: Path,
              timestamping: Any = None) -> tuple[bytes, str | None]:
    """What signing calls: the signed copy, B-LT, time-stamped by the practice's TSAs, and why it has
    no time-stamp (None: it has one). A TSA failure stops the signature as for the CMS signature,
    unless the practice archives untimestamped signatures (practice.yaml 'timestamping')."""
    data = practice_validation_data(pki_dir)
    kwargs: dict[str, Any] = dict(role=role, name=name, signed_at=signed_at, agreement_id=agreement_id,
                                  field_name=field_name(sequence, role), validation_data=data)
    if timestamping is None:
        return sign_copy(prior, key, cert, chain, **kwargs), "the practice configures no TSA"
    try:
        return sign_copy(prior, key, cert, chain, timestamper=practice_timestamper(
            timestamping.urls, timestamping.timeout), **kwargs), None
    except TimestampError as exc:
        if timestamping.on_failure != "archive-untimestamped":
            raise TimestampError(f"nothing was signed: {exc.message}", code=exc.code) from None
        return sign_copy(prior, key, cert, chain, **kwargs), f"no TSA answered ({exc.message})"


def latest_copy(folder: Path) -> tuple[str, bytes] | None:
    """The name and bytes of the folder's signed copy with the highest record number, or None."""
    from agreements_kit.formats.folder import COPY_RE, limit_for, read_file

    names = sorted(n for n in os.listdir(folder) if COPY_RE.match(n))
    if not names:
        return None
    return names[-1], read_file(str(Path(folder) / names[-1]), limit_for(names[-1]), names[-1])


def signed_copy(practice: Any, folder: Any, sequence: int, role: str, name: str, key, cert: x509.Certificate,
                chain: Sequence[x509.Certificate], now: dt.datetime) -> dict[str, bytes]:
    """``{NN-ROLE.copy.pdf: bytes}`` for record ``sequence``, about to be committed with it.

    The client's (or guardian's) copy extends agreement.pdf; the therapist's extends the
    newest copy in the folder, or is not made ({}) where there is none (an agreement the
    client signed before copies existed). ``folder`` is the store's AgreementFolder."""
    from agreements_kit.formats.record import CLIENT_ROLES

    folder.check_pdf()  # first: a PDF changed since rendering is refused for what it is
    pdf = folder.pdf.read_bytes()
    if role in CLIENT_ROLES:
        prior = pdf
    else:
        found = latest_copy(folder.path)
        if found is None:
            return {}
        prior_name, prior = found
        if not prior.startswith(pdf) or not _as_entered(practice, folder.id, prior_name, prior):
            raise SigningError(f"{prior_name} in agreement {folder.id} is not the signed copy its ledger entry "
                               "records: it was changed; run 'agreements verify' on the agreement",
                               code="conflict.signed-copy")
    data, _ = make_copy(prior, key, cert, chain, role=role, name=name, signed_at=now, agreement_id=folder.id,
                        sequence=sequence, pki_dir=Path(practice.root) / "pki", timestamping=practice.timestamping)
    return {copy_name(sequence, role): data}


def _as_entered(practice: Any, agreement_id: str, name: str, data: bytes) -> bool:
    """Whether ``data`` is the copy ``name`` as its signing record's ledger entry recorded it: a copy changed on
    disk is never countersigned (the therapist's signature would cover the change)."""
    import hashlib

    from agreements_kit.store.ledger import Ledger

    digest = hashlib.sha256(data).hexdigest()
    mark = f'"agreement_id":"{agreement_id}"'.encode()  # ledger lines are RFC 8785: no spaces
    for _, line in Ledger(Path(practice.archive) / "ledger.jsonl").lines():
        if mark not in line or b'"event":"sign"' not in line:
            continue  # cheap: a large ledger is not parsed line by line for one agreement
        files = json.loads(line).get("files", {})
        if name in files:
            return bool(files[name] == digest)
    return False
