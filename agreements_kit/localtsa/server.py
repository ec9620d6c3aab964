"""The TSA's HTTP front: RFC 3161 over HTTP (RFC 3161 section 3.4) with ``openssl ts -reply`` behind it.

One POST of ``application/timestamp-query`` to ``/`` gets one
``application/timestamp-reply``; anything else is a 4xx with a one-line reason.
OpenSSL runs once per request inside the TSA folder (the query on its stdin: ``-queryfile -``
is not understood by ``ts``, ``/dev/stdin`` is), under a lock because every
token takes the next number from the serial file. Nothing about a request (who
asked, for what digest) is logged: the digests are of clinical records.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from agreements_kit.errors import AgreementsError
from agreements_kit.localtsa.folder import TsaFolder, open_folder

QUERY_TYPE = "application/timestamp-query"
REPLY_TYPE = "application/timestamp-reply"
MAX_QUERY = 16 * 1024  # a TimeStampReq is about 60 bytes; with extensions, still far below this
OPENSSL_TIMEOUT = 20.0
READ_TIMEOUT = 10.0  # a client that stops sending mid-request loses its connection, not a thread forever


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    tsa: TsaFolder
    lock: threading.Lock


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "agreements-kit-localtsa"
    sys_version = ""
    timeout = READ_TIMEOUT

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        """Silent: the default log line names the client and the request."""

    def _plain(self, status: int, message: str, extra: dict[str, str] | None = None) -> None:
        body = (message + "\n").encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        for key, value in (extra or {}).items():
            self.send_header(key, value)
        self.send_header("Connection", "close")
        self.close_connection = True
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _not_allowed(self) -> None:
        self._plain(405, "a time-stamp query is a POST of application/timestamp-query", {"Allow": "POST"})

    do_GET = do_HEAD = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _not_allowed

    def do_POST(self) -> None:
        if self.path.split("?", 1)[0] != "/":
            self._plain(404, "the TSA answers at /")
            return
        ctype = (self.headers.get("Content-Type") or "").split(";", 1)[0].strip().lower()
        if ctype != QUERY_TYPE:
            self._plain(415, f"Content-Type must be {QUERY_TYPE}")
            return
        if self.headers.get("Transfer-Encoding"):
            self._plain(411, "send the query with a Content-Length")
            return
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            self._plain(411, "send the query with a Content-Length")
            return
        if length <= 0 or length > MAX_QUERY:
            self._plain(413, f"a time-stamp query is at most {MAX_QUERY} bytes")
            return
        try:
            query = self.rfile.read(length)
        except OSError:
            return  # the client went away or stalled: nobody to answer
        if len(query) != length:
            self._plain(400, "the query is shorter than its Content-Length")
            return
        reply = self._reply(query)
        if reply is None:
            self._plain(500, "the TSA could not answer this query")
            return
        self.send_response(200)
        self.send_header("Content-Type", REPLY_TYPE)
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def _reply(self, query: bytes) -> bytes | None:
        """The TimeStampResp OpenSSL makes for ``query``, or None (reported without the query's contents)."""
        tsa = self.server.tsa
        command = ["openssl", "ts", "-reply", "-config", tsa.config.name, "-queryfile", "/dev/stdin",
                   "-passin", f"file:{tsa.passfile.name}"]
        with self.server.lock:
            try:
                done = subprocess.run(command, input=query, capture_output=True, cwd=tsa.path,
                                      timeout=OPENSSL_TIMEOUT, check=False)
            except (OSError, subprocess.TimeoutExpired) as exc:
                print(f"localtsa: openssl ts -reply could not run ({type(exc).__name__})", file=sys.stderr, flush=True)
                return None
        if done.returncode != 0 or not done.stdout:
            # OpenSSL's stderr names files and errors, never the query's bytes; one line of it is enough.
            last = next((ln for ln in reversed(done.stderr.decode(errors="replace").splitlines()) if ln.strip()), "")
            print(f"localtsa: openssl ts -reply failed (exit {done.returncode}): {last[:200]}", file=sys.stderr,
                  flush=True)
            return None
        return done.stdout


def make_server(folder: Path, host: str = "127.0.0.1", port: int = 0) -> _Server:
    """A bound (not yet serving) TSA server over the TSA folder ``folder``."""
    tsa = open_folder(folder)
    try:
        server = _Server((host, port), _Handler)
    except OSError as exc:
        raise AgreementsError(f"cannot listen on {host}:{port}: {exc.strerror or exc}",
                              code="usage.tsa-listen") from None
    server.tsa = tsa
    server.lock = threading.Lock()
    return server


def url_of(server: _Server) -> str:
    address, port = server.server_address[:2]
    host = address.decode() if isinstance(address, bytes) else str(address)
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/"


def serve(folder: Path, host: str = "127.0.0.1", port: int = 0) -> None:
    """Serve until SIGTERM or Ctrl-C; prints ``listening on URL`` once ready (what :func:`start` waits for)."""
    server = make_server(folder, host, port)

    def stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    print(f"listening on {url_of(server)}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
