"""Atomic, private file writes.

Agreements name clients: everything is written owner-only (files 0600, folders
0700), through a temporary file that is fsynced and then moved into place with a
rename that refuses to replace anything. A crash leaves either nothing or the
whole file, never half of one, and never an overwritten one.
"""

from __future__ import annotations

import ctypes
import errno
import os
import secrets
from pathlib import Path
from typing import Any

FILE_MODE = 0o600
DIR_MODE = 0o700

_AT_FDCWD = -100
_RENAME_NOREPLACE = 1
try:
    _libc = ctypes.CDLL(None, use_errno=True)
    _renameat2 = getattr(_libc, "renameat2", None)
except OSError:  # pragma: no cover - no libc (not Linux)
    _renameat2 = None


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def rename_noreplace(src: Path, dst: Path) -> None:
    """Rename ``src`` to ``dst``; raise FileExistsError if ``dst`` exists.

    Uses Linux ``renameat2(RENAME_NOREPLACE)`` so that the check and the move are
    one step; elsewhere falls back to check-then-rename.
    """
    if _renameat2 is not None:
        res = _renameat2(_AT_FDCWD, os.fsencode(src), _AT_FDCWD, os.fsencode(dst), _RENAME_NOREPLACE)
        if res == 0:
            return
        err = ctypes.get_errno()
        if err == errno.EEXIST or (err == errno.ENOTEMPTY):
            raise FileExistsError(errno.EEXIST, "already exists", str(dst))
        if err not in (errno.ENOSYS, errno.EINVAL):
            raise OSError(err, os.strerror(err), str(dst))
    if os.path.lexists(dst):
        raise FileExistsError(errno.EEXIST, "already exists", str(dst))
    os.rename(src, dst)


def write_new(path: Path, data: bytes) -> None:
    """Write ``data`` to a new file at ``path`` atomically; never replace one."""
    _write_via_temporary(Path(path), data, rename_noreplace)


def replace_file(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically, replacing what is there: for the few files that are replaced in
    place (the log's latest checkpoint, the staff accounts), never for evidence."""
    _write_via_temporary(Path(path), data, os.replace)


def _write_via_temporary(path: Path, data: bytes, rename: Any) -> None:
    """An owner-only temporary file beside ``path``, written and fsynced, then renamed onto it."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        rename(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def make_private_dir(path: Path, exist_ok: bool = False) -> None:
    """Create a folder readable by the owner only (parents too, if missing: each one it creates is
    private as well, since ``mkdir(parents=True)`` gives the parents the umask's mode)."""
    path = Path(path)
    missing = []
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        missing.append(parent)
        parent = parent.parent
    for folder in reversed(missing):
        folder.mkdir(mode=DIR_MODE, exist_ok=True)
        os.chmod(folder, DIR_MODE)
    path.mkdir(mode=DIR_MODE, exist_ok=exist_ok)
    os.chmod(path, DIR_MODE)


class NewFile:
    """``with NewFile(path) as fh``: stream into a temporary file, renamed to ``path`` on success only."""

    def __init__(self, path: Path, mode: str = "wb", encoding: str | None = None):
        self.path = Path(path)
        self.tmp = self.path.with_name(f".{self.path.name}.{secrets.token_hex(6)}.tmp")
        fd = os.open(self.tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
        self.fh = os.fdopen(fd, mode, encoding=encoding)

    def __enter__(self):
        return self.fh

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None:
                self.fh.flush()
                os.fsync(self.fh.fileno())
            self.fh.close()
            if exc_type is None:
                rename_noreplace(self.tmp, self.path)
                fsync_dir(self.path.parent)
        finally:
            self.tmp.unlink(missing_ok=True)
