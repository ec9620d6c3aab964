"""The agreement folder layout, read safely.

An agreement folder holds exactly these files, each a regular file inside it::

    agreement.pdf            the PDF as rendered
    manifest.json            its manifest (agreements_kit.formats.manifest)
    NN-ROLE.json             signing records, NN = 01, 02, ...; ROLE = client, guardian,
    NN-ROLE.json.p7s           therapist or void; each with its detached CMS signature (DER)
    NN-ROLE.png              a drawn signature, when one was given
    completion.pdf           the certificate of completion, once complete
    renewal-NN.json          archive time-stamps (agreements archive renew), each with
    renewal-NN.tsr             its RFC 3161 token (agreements_kit.formats.renewal)
    NN-ROLE.copy.pdf         the signed copy made with record NN (signing/copy.py): agreement.pdf
                               plus PAdES signatures; written once, with its record

Reading never follows a link, never opens a FIFO, device or socket (it would hang
or stream forever), and never reads more than a format's size limit, so a hostile
folder can make verification fail, never hang or exhaust memory. Anything else in
the folder is named as unexpected.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass, field
from typing import BinaryIO

from agreements_kit.errors import InvalidFormat

RECORD_RE = re.compile(r"^([0-9]{2})-(client|guardian|therapist|void)\.json\Z")  # ASCII digits; \Z, not $
PNG_RE = re.compile(r"^([0-9]{2})-(client|guardian)\.png\Z")
RENEWAL_RE = re.compile(r"^renewal-([0-9]{2})\.(json|tsr)\Z")  # archive time-stamps (formats/renewal.py)
COPY_RE = re.compile(r"^([0-9]{2})-(client|guardian|therapist)\.copy\.pdf\Z")  # signed copies (signing/copy.py)
LIMITS = {"agreement.pdf": 64 * 1024 * 1024, "manifest.json": 1024 * 1024, "completion.pdf": 16 * 1024 * 1024,
          ".json": 64 * 1024, ".p7s": 64 * 1024, ".png": 512 * 1024, ".tsr": 64 * 1024,
          ".pdf": 68 * 1024 * 1024}  # a signed copy: agreement.pdf and a few signatures
MAX_ENTRIES = 400


def limit_for(name: str) -> int:
    return LIMITS.get(name) or LIMITS[os.path.splitext(name)[1]]


def _open_regular_fd(path: str, where: str, dir_fd: int | None = None) -> tuple[int, os.stat_result]:
    """The descriptor and status of a regular file opened for reading (see :func:`open_regular`);
    ``path`` relative to the open folder ``dir_fd`` when given."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd)
    except FileNotFoundError:
        raise
    except OSError as exc:
        if stat.S_ISLNK(_lstat_mode(path, dir_fd)):
            raise InvalidFormat("is a symbolic link: agreement files must be regular files", path=where,
                                code="format.link") from None
        raise InvalidFormat(f"cannot be read ({exc.strerror})", path=where, code="format.unreadable") from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise InvalidFormat("is not a regular file (a FIFO, device or folder)", path=where, code="format.not-regular")
    return fd, info


def _lstat_mode(path: str, dir_fd: int | None) -> int:
    try:
        return os.stat(path, dir_fd=dir_fd, follow_symlinks=False).st_mode
    except OSError:
        return 0


def open_regular(path: str, where: str | None = None) -> BinaryIO:
    """A regular file opened for reading, never through a link, never a FIFO, device or socket."""
    fd, _ = _open_regular_fd(path, where or path)
    return os.fdopen(fd, "rb")


def read_file(path: str, limit: int, where: str | None = None, dir_fd: int | None = None) -> bytes:
    """A regular file's bytes, refusing links, special files and files over ``limit`` bytes.

    Read with os.read on the descriptor (no file object: an audit reads seven files per agreement);
    ``path`` relative to the open folder ``dir_fd`` when given."""
    where = where or path
    fd, info = _open_regular_fd(path, where, dir_fd)
    try:
        if info.st_size > limit:
            raise InvalidFormat(f"is larger than {limit} bytes", path=where, code="format.too-large")
        chunks: list[bytes] = []
        total = 0
        while total <= limit:  # the file may grow while it is read: never more than limit + 1
            # Ask for what the file holds (plus one byte, to see growth), not for the limit: os.read
            # allocates what it is asked for.
            asked = min(limit + 1 - total, max(info.st_size + 1 - total, 1 << 16))
            chunk = os.read(fd, asked)
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
            if len(chunk) < asked:
                break  # a short read of a regular file is its end: no second read to learn it
    finally:
        os.close(fd)
    data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
    if len(data) > limit:
        raise InvalidFormat(f"is larger than {limit} bytes", path=where, code="format.too-large")
    return data


@dataclass
class RecordFiles:
    name: str
    sequence: int
    kind: str
    raw: bytes
    p7s: bytes | None


@dataclass
class FolderFiles:
    """What an agreement folder holds, read once. ``problems`` are layout faults (name, code, sentence)."""

    path: str
    manifest: bytes | None = None
    pdf: bytes | None = None
    records: list[RecordFiles] = field(default_factory=list)
    pngs: dict[str, bytes] = field(default_factory=dict)
    has_completion: bool = False
    renewals: dict[str, bytes] = field(default_factory=dict)  # renewal-NN.json / .tsr by name
    copies: list[str] = field(default_factory=list)  # NN-ROLE.copy.pdf names (checked regular, read when checked)
    problems: list[tuple[str, str, str]] = field(default_factory=list)


def read_folder(path: str, *, read_pdf: bool = True) -> FolderFiles:
    """Read an agreement folder (``path`` must be a real folder, not a link to one).

    The folder is opened once and its files are opened relative to it: every file comes from the same
    folder, even if the path is renamed or replaced while it is read, and no file costs a path lookup."""
    try:
        dir_fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise InvalidFormat("no such agreement folder", path=path, code="format.missing") from None
    except OSError:  # ELOOP (a link), ENOTDIR (a file, FIFO, device), EACCES
        raise InvalidFormat("is not a folder (or is a link to one)", path=path, code="format.not-regular") from None
    try:
        return _read_folder(path, dir_fd, read_pdf)
    finally:
        os.close(dir_fd)


def _read_folder(path: str, dir_fd: int, read_pdf: bool) -> FolderFiles:
    out = FolderFiles(path)
    with os.scandir(dir_fd) as it:
        entries = []
        for i, entry in enumerate(it):
            if i >= MAX_ENTRIES:
                raise InvalidFormat(f"holds more than {MAX_ENTRIES} files", path=path, code="format.too-large")
            entries.append(entry.name)
    names = set(entries)
    records: dict[str, RecordFiles] = {}
    for name in sorted(names):
        if name.startswith("."):
            if name.endswith(".pending"):
                continue  # an interrupted commit: recovery's business, not part of the agreement
            out.problems.append((name, "layout.unexpected-file", f"{name} does not belong in an agreement folder"))
            continue
        m = RECORD_RE.match(name)
        try:
            if name == "manifest.json":
                out.manifest = read_file(name, limit_for(name), name, dir_fd)
            elif name == "agreement.pdf":
                if not read_pdf:
                    _check_regular(name, name, dir_fd)  # first: a link is a problem, not a PDF that is there
                out.pdf = read_file(name, limit_for(name), name, dir_fd) if read_pdf else b""
            elif name == "completion.pdf":
                _check_regular(name, name, dir_fd)
                out.has_completion = True
            elif m:
                records[name] = RecordFiles(name, int(m.group(1)), m.group(2),
                                            read_file(name, limit_for(name), name, dir_fd), None)
            elif name.endswith(".json.p7s") and RECORD_RE.match(name[:-4]):
                continue  # read with its record below
            elif RENEWAL_RE.match(name):
                out.renewals[name] = read_file(name, limit_for(name), name, dir_fd)
            elif PNG_RE.match(name):
                out.pngs[name] = read_file(name, limit_for(name), name, dir_fd)
            elif COPY_RE.match(name):
                _check_regular(name, name, dir_fd)
                out.copies.append(name)
            else:
                out.problems.append((name, "layout.unexpected-file",
                                     f"{name} does not belong in an agreement folder (added by hand?)"))
        except InvalidFormat as exc:
            out.problems.append((name, exc.code, f"{name} {exc.message}"))
    for name, rec in sorted(records.items()):
        sig = name + ".p7s"
        if sig in names:
            try:
                rec.p7s = read_file(sig, limit_for(sig), sig, dir_fd)
            except InvalidFormat as exc:
                out.problems.append((sig, exc.code, f"{sig} {exc.message}"))
        out.records.append(rec)
    for name in sorted(names):
        if name.endswith(".json.p7s") and RECORD_RE.match(name[:-4]) and name[:-4] not in records \
                and name[:-4] in names:
            continue
        if name.endswith(".json.p7s") and name[:-4] not in names:
            out.problems.append((name, "layout.orphan-signature",
                                 f"{name} has no record beside it: a record was deleted"))
    return out


def _check_regular(path: str, where: str, dir_fd: int | None = None) -> None:
    info = os.stat(path, dir_fd=dir_fd, follow_symlinks=False)
    if not stat.S_ISREG(info.st_mode):
        raise InvalidFormat("is not a regular file (a link, FIFO or device)", path=where, code="format.not-regular")
