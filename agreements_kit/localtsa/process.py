"""The local TSA as its own process: what tests, the bench and the demo start and stop.

:func:`start` runs ``python -m agreements_kit.localtsa serve`` and waits for its
``listening on URL`` line (no guessing with sleeps), so the URL is known and the
port is really open before the first query; leaving the ``with`` block stops it.
"""

from __future__ import annotations

import os
import selectors
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from agreements_kit.errors import AgreementsError

STARTUP_TIMEOUT = 30.0
PREFIX = "listening on "


@dataclass(frozen=True)
class LocalTsa:
    """A running local TSA: its URL and its process."""

    url: str
    process: subprocess.Popen[bytes]


def _first_line(process: subprocess.Popen[bytes], timeout: float) -> str:
    """The first line the process prints, or '' if it exits (or stays silent past ``timeout``) first."""
    assert process.stdout is not None
    fd = process.stdout.fileno()
    data = b""
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as sel:
        sel.register(fd, selectors.EVENT_READ)
        while b"\n" not in data:
            left = deadline - time.monotonic()
            if left <= 0 or not sel.select(left):
                return ""
            chunk = os.read(fd, 4096)
            if not chunk:
                return ""
            data += chunk
    return data.split(b"\n", 1)[0].decode(errors="replace")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    if process.stdout is not None:
        process.stdout.close()


@contextmanager
def start(folder: Path, host: str = "127.0.0.1", port: int = 0, timeout: float = STARTUP_TIMEOUT,
          stderr: IO[bytes] | None = None) -> Iterator[LocalTsa]:
    """Run a local TSA over ``folder`` in its own process for the ``with`` block.

    Its stderr (a failing openssl, never a request's contents) goes to ``stderr``, else to ours.
    """
    command = [sys.executable, "-m", "agreements_kit.localtsa", "serve", os.fspath(folder),
               "--host", host, "--port", str(port)]
    process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=stderr)
    try:
        line = _first_line(process, timeout)
        if not line.startswith(PREFIX):
            _stop(process)
            raise AgreementsError(f"the local TSA did not start (exit code {process.returncode}; its error is "
                                  "above)", path=folder, code="unavailable.tsa-start")
        yield LocalTsa(line[len(PREFIX):].strip(), process)
    finally:
        _stop(process)
