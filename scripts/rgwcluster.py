#!/usr/bin/env python3
"""A throwaway one-node Ceph RGW cluster under one folder, for the tests, the bench and the README's demo.

    python3 scripts/rgwcluster.py start DIR     # prints `export AWS_...` lines on stdout
    python3 scripts/rgwcluster.py env DIR       # the same lines again, for `eval "$(...)"`
    python3 scripts/rgwcluster.py stop DIR

One ceph-mon, one ceph-osd keeping its objects in memory (``osd objectstore = memstore``) and
one radosgw on 127.0.0.1 at a free port; no mgr, no systemd. Everything the cluster has
(ceph.conf, keyrings, pid files, admin sockets, logs, data) lives in DIR (mode 0700), so two
clusters run side by side and removing DIR after ``stop`` leaves nothing behind. Ceph's own
src/vstart.sh is the reference; the settings that make it start in seconds are the ones it
uses (a short paxos propose interval, pools of size one, few placement groups).

The S3 user written to DIR/s3.env is an ordinary user. DIR/keyring holds the cluster's admin
key, which can delete objects that S3 keeps under COMPLIANCE retention (``radosgw-admin
bucket rm --purge-objects``): it stays in DIR and is never what the application is given.

Importable (stdlib only): ``Cluster.start(dir)`` starts one and returns it, ``Cluster.attach(dir)``
finds a running one, ``stop()`` stops radosgw, then the OSD, then the mon, by pid, waiting for
each; ``stop_gateway()`` / ``start_gateway()`` stop and restart only radosgw, on the same port.
Every wait polls with a deadline; a daemon that fails raises one :class:`ClusterError` naming
it with the last lines of its log.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import secrets
import shlex
import shutil
import signal
import socket
import ssl
import string
import struct
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

# Debian 12 packages: ceph-mon, ceph-osd, radosgw, ceph-common (16.2, "pacific").
PROGRAMS = {"ceph-mon": "ceph-mon", "ceph-osd": "ceph-osd", "radosgw": "radosgw", "radosgw-admin": "radosgw",
            "ceph": "ceph-common", "ceph-authtool": "ceph-common", "monmaptool": "ceph-common"}
MON, OSD, RGW = "mon.a", "osd.0", "client.rgw.gw"
DAEMON_PROGRAM = {MON: "ceph-mon", OSD: "ceph-osd", RGW: "radosgw"}
S3_USER = "agreements"
DEFAULT_REGION = "default"  # the api_name of RGW's default zonegroup: CreateBucket's LocationConstraint must match it
DEFAULT_MEMSTORE_BYTES = 4 << 30  # a cap, not an allocation: memstore holds what is written, in the OSD's memory
SOCKET_PATH_MAX = 107  # sun_path, less the terminating NUL


class ClusterError(RuntimeError):
    """The cluster could not be started or stopped; the message names the daemon and quotes its log."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def missing_programs() -> list[str]:
    """The Ceph programs not on PATH, each with the Debian package that has it."""
    return [f"{prog} (package {pkg})" for prog, pkg in PROGRAMS.items() if shutil.which(prog) is None]


def _tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.rstrip("\n").splitlines()[-lines:])


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when the process that started it dies (a test run killed with -9)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def admin_socket(path: Path, prefix: str, timeout: float = 5.0) -> dict:
    """One command to a daemon's admin socket: a JSON request ending in NUL; a 4-byte length, then JSON."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(str(path))
        s.sendall(json.dumps({"prefix": prefix, "format": "json"}).encode() + b"\0")
        data = b""
        while len(data) < 4 or len(data) < 4 + struct.unpack(">I", data[:4])[0]:
            chunk = s.recv(65536)
            if not chunk:
                raise OSError("admin socket closed early")
            data += chunk
    return json.loads(data[4:])


@dataclass
class Daemon:
    """One daemon: how to run it, where its pid file and log are, and its process while it runs."""

    name: str
    argv: list[str]
    root: Path
    pid: int | None = None
    proc: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def program(self) -> str:
        return DAEMON_PROGRAM[self.name]

    @property
    def pid_file(self) -> Path:
        return self.root / "run" / f"{self.name}.pid"

    @property
    def log(self) -> Path:
        return self.root / "log" / f"{self.name}.log"

    @property
    def out(self) -> Path:
        return self.root / "log" / f"{self.name}.out"

    @property
    def asok(self) -> Path:
        return self.root / "run" / f"{self.name}.asok"

    def launch(self, die_with_parent: bool) -> None:
        with open(self.out, "ab") as out:
            self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                         start_new_session=True, close_fds=True,
                                         preexec_fn=_die_with_parent if die_with_parent else None)
        self.pid = self.proc.pid
        tmp = self.pid_file.with_suffix(".tmp")
        tmp.write_text(f"{self.pid}\n")
        tmp.replace(self.pid_file)

    def adopt(self) -> None:
        """Take the pid from the pid file when it names this cluster's daemon (not a reused pid)."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return
        self.pid, self.proc = pid, None
        if not self.alive():
            self.pid = None

    def alive(self) -> bool:
        if self.pid is None:
            return False
        if self.proc is not None:
            return self.proc.poll() is None
        try:
            stat = Path(f"/proc/{self.pid}/stat").read_text()
            cmdline = Path(f"/proc/{self.pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            return False
        zombie = stat.rsplit(")", 1)[-1].split()[0] == "Z"
        return not zombie and str(self.root / "ceph.conf").encode() in cmdline

    def rss_kib(self) -> int | None:
        """Resident memory, from /proc (None when not running)."""
        if not self.alive():
            return None
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return None

    def failure(self, what: str) -> ClusterError:
        logs = "\n".join(f"--- {p}\n{t}" for p in (self.log, self.out) if (t := _tail(p)))
        state = "is running" if self.alive() else (
            f"exited with status {self.proc.returncode}" if self.proc is not None and self.proc.returncode is not None
            else "is not running")
        return ClusterError(f"{self.program} ({self.name}) {what}; it {state}. Last lines of its log:\n"
                            f"{logs or '(empty)'}")

    def stop(self, timeout: float) -> bool:
        """SIGTERM, wait for the exit; SIGKILL after ``timeout``. True when it exited on SIGTERM."""
        if not self.alive():
            self.pid = None
            return True
        assert self.pid is not None
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGTERM)
        clean = _poll(lambda: not self.alive(), timeout)
        if not clean:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
            _poll(lambda: not self.alive(), 10.0)
        if self.proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=1.0)
        self.pid = None
        self.pid_file.unlink(missing_ok=True)
        return clean


def _poll(ready: Callable[[], bool], timeout: float, interval: float = 0.02) -> bool:
    """Call ``ready`` until it returns True or ``timeout`` seconds pass; the interval grows to 0.2 s."""
    deadline = time.monotonic() + timeout
    while True:
        if ready():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)
        interval = min(interval * 1.5, 0.2)


def _conf(root: Path, fsid: str, mon_port: int, rgw_port: int, tls_port: int | None, memstore_bytes: int) -> str:
    d = str(root)
    # tcp_nodelay: without it every GET and listing waits ~40 ms (Nagle against the client's delayed ACK)
    frontend = f"beast endpoint=127.0.0.1:{rgw_port}" + (
        f" ssl_endpoint=127.0.0.1:{tls_port} ssl_certificate={d}/tls/rgw.crt ssl_private_key={d}/tls/rgw.key"
        if tls_port else "") + " tcp_nodelay=1"
    return f"""# A throwaway one-node cluster made by scripts/rgwcluster.py; everything it has is under {d}.
[global]
fsid = {fsid}
mon host = [v2:127.0.0.1:{mon_port}]
public addr = 127.0.0.1
ms bind msgr1 = false
auth cluster required = cephx
auth service required = cephx
auth client required = cephx
keyring = {d}/keyring
run dir = {d}/run
crash dir = {d}/crash
log file = {d}/log/$name.log
mon cluster log file = {d}/log/cluster.log
pid file =
admin socket =
log to stderr = false
err to stderr = true
# one OSD: pools of size one, few placement groups, no autoscaler (that lives in the mgr, which is not run)
mon allow pool size one = true
mon warn on pool no redundancy = false
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
mon max pg per osd = 1000
osd crush chooseleaf type = 0
# a test machine's disk may be nearly full: the mon would stop itself below 5% free
mon data avail warn = 2
mon data avail crit = 1

[mon]
mon data = {d}/mon
admin socket = {d}/run/$name.asok
# the default 1 s makes every map change (each pool radosgw creates) wait; vstart uses a short one
paxos propose interval = 0.05

[osd]
osd data = {d}/osd
admin socket = {d}/run/$name.asok
osd objectstore = memstore
memstore device bytes = {memstore_bytes}
osd crush update on start = true

[{RGW}]
admin socket = {d}/run/$name.asok
rgw data = {d}/rgw
rgw frontends = {frontend}
# lifecycle threads make a shutdown wait ~7 s; nothing here uses lifecycle rules
rgw enable lc threads = false
rgw enable usage log = false
"""


@dataclass
class Cluster:
    """A one-node cluster under ``root``: its S3 endpoints (HTTP; HTTPS too if asked) and user, and its daemons."""

    root: Path
    endpoint: str
    access_key: str
    secret_key: str
    region: str
    daemons: dict[str, Daemon]
    tls_endpoint: str | None = None
    start_seconds: float | None = None  # from the call to start to radosgw's first S3 answer
    die_with_parent: bool = False

    @property
    def ca_bundle(self) -> Path | None:
        """The test CA that signed radosgw's certificate, for a cluster started with ``tls=True``."""
        return self.root / "tls" / "ca.pem" if self.tls_endpoint else None

    # --- paths and views ----------------------------------------------------------------------
    @property
    def conf(self) -> Path:
        return self.root / "ceph.conf"

    @property
    def env_file(self) -> Path:
        return self.root / "s3.env"

    @property
    def pids(self) -> dict[str, int | None]:
        return {name: d.pid for name, d in self.daemons.items()}

    def rss_kib(self) -> dict[str, int | None]:
        return {name: d.rss_kib() for name, d in self.daemons.items()}

    def env(self, *, tls: bool = False) -> dict[str, str]:
        """The variables boto3 (and the AWS CLI) read: endpoint, the S3 user's keys, the region, checksums.

        ``tls``: the HTTPS endpoint and AWS_CA_BUNDLE (a cluster started with ``tls=True``).
        """
        if tls and not self.tls_endpoint:
            raise ClusterError(f"the cluster in {self.root} was started without TLS")
        return {
            "AWS_ENDPOINT_URL": (self.tls_endpoint if tls else None) or self.endpoint,
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": self.region,
            **({"AWS_CA_BUNDLE": str(self.ca_bundle)} if tls else {}),
            # boto3 >= 1.36 adds CRC32 checksums to every upload (as an aws-chunked trailer over HTTPS)
            # and drops Content-MD5; RGW 16 knows neither: only compute checksums when an operation requires one
            "AWS_REQUEST_CHECKSUM_CALCULATION": "when_required",
            "AWS_RESPONSE_CHECKSUM_VALIDATION": "when_required",
        }

    # --- starting -----------------------------------------------------------------------------
    @classmethod
    def start(cls, root: str | os.PathLike, *, region: str = DEFAULT_REGION, timeout: float = 90.0,
              memstore_bytes: int = DEFAULT_MEMSTORE_BYTES, die_with_parent: bool = False,
              tls: bool = False) -> Cluster:
        """Make and start a cluster in ``root`` (absent or empty); on any failure stop what was started and raise.

        ``tls``: radosgw also speaks HTTPS, at ``tls_endpoint`` (a second port), with a certificate
        for 127.0.0.1 from a test CA made in DIR/tls (``ca_bundle``); needs the openssl command.

        ``die_with_parent``: the daemons get SIGTERM when the calling process dies (for a test
        session; not for the command line, whose process exits right after starting them).
        """
        began = time.monotonic()
        missing = missing_programs()
        if missing:
            raise ClusterError("Ceph is not installed (missing " + ", ".join(missing)
                               + "): run scripts/bootstrap --test (or --rgw)")
        root = Path(root).absolute()
        if (root / "cluster.json").exists():
            raise ClusterError(f"{root} already holds a cluster (scripts/rgw env DIR prints its variables; "
                               f"scripts/rgw stop DIR stops it)")
        if root.exists() and any(root.iterdir()):
            raise ClusterError(f"{root} is not empty: a cluster is made in a new or empty folder")
        if len(str(root / "run" / f"{RGW}.asok")) > SOCKET_PATH_MAX:
            raise ClusterError(f"{root} is too long a path for the daemons' admin sockets: pick a shorter one")
        root.mkdir(mode=0o700, parents=True, exist_ok=True)
        root.chmod(0o700)
        for sub in ("run", "log", "crash", "mon", "osd", "rgw"):
            (root / sub).mkdir(mode=0o700)
        old_umask = os.umask(0o077)
        try:
            return cls._start(root, region, began, timeout, memstore_bytes, die_with_parent, tls)
        finally:
            os.umask(old_umask)

    @classmethod
    def _start(cls, root: Path, region: str, began: float, timeout: float, memstore_bytes: int,
               die_with_parent: bool, tls: bool) -> Cluster:
        deadline = began + timeout
        fsid, osd_uuid = str(uuid.uuid4()), str(uuid.uuid4())
        mon_port, rgw_port = free_port(), free_port()
        conf = root / "ceph.conf"
        tls_port = free_port() if tls else None
        endpoint = f"http://127.0.0.1:{rgw_port}"
        tls_endpoint = f"https://127.0.0.1:{tls_port}" if tls_port else None
        if tls:
            _make_tls(root / "tls", deadline)
        conf.write_text(_conf(root, fsid, mon_port, rgw_port, tls_port, memstore_bytes))
        (root / "cluster.json").write_text(json.dumps({"endpoint": endpoint, "tls_endpoint": tls_endpoint,
                                                       "region": region, "mon_port": mon_port, "fsid": fsid}) + "\n")
        keyring = root / "keyring"
        # every key in the mon's keyring at mkfs is imported into its auth database: no `ceph auth add` later
        _run(["ceph-authtool", "--create-keyring", keyring, "--gen-key", "-n", "mon.", "--cap", "mon", "allow *"],
             deadline)
        for name, caps in (("client.admin", ["mon", "allow *", "osd", "allow *", "mgr", "allow *"]),
                           (OSD, ["mon", "allow profile osd", "mgr", "allow profile osd", "osd", "allow *"]),
                           (RGW, ["mon", "allow rw", "osd", "allow rwx", "mgr", "allow rw"])):
            args: list[str | Path] = ["ceph-authtool", keyring, "--gen-key", "-n", name]
            for i in range(0, len(caps), 2):
                args += ["--cap", caps[i], caps[i + 1]]
            _run(args, deadline)
        monmap = root / "monmap"
        _run(["monmaptool", "--create", "--fsid", fsid, "--addv", "a", f"[v2:127.0.0.1:{mon_port}]", monmap], deadline)
        _run(["ceph-mon", "-c", conf, "--mkfs", "-i", "a", "--monmap", monmap, "--keyring", keyring], deadline)
        monmap.unlink()

        cluster = cls(root=root, endpoint=endpoint, access_key="", secret_key="", region=region,
                      daemons=cls._daemons(root), tls_endpoint=tls_endpoint, die_with_parent=die_with_parent)
        try:
            mon, osd = cluster.daemons[MON], cluster.daemons[OSD]
            cluster._launch(mon)
            cluster._wait(mon, "did not become the leader", deadline,
                          lambda: admin_socket(mon.asok, "mon_status").get("state") == "leader")
            _run(["ceph", "-c", conf, "--connect-timeout", "30", "osd", "new", osd_uuid, "0"], deadline, mon)
            _run(["ceph-osd", "-c", conf, "-i", "0", "--mkfs", "--osd-uuid", osd_uuid], deadline, osd)
            cluster._launch(osd)
            cluster._wait(osd, "did not become active", deadline,
                          lambda: admin_socket(osd.asok, "status").get("state") == "active")
            # the user first (radosgw-admin also makes the default realm, zonegroup and zone), then the gateway
            access_key, secret_key = _new_key(20), _new_key(40)
            _run(["radosgw-admin", "-c", conf, "-n", "client.admin", "user", "create", "--uid", S3_USER,
                  "--display-name", "agreements-kit", "--access-key", access_key, "--secret-key", secret_key],
                 deadline, osd)
            cluster.access_key, cluster.secret_key = access_key, secret_key
            cluster._start_gateway(deadline)
            cluster.start_seconds = time.monotonic() - began
            cluster._write_env(tls)
        except BaseException:
            cluster.stop(raise_on_kill=False)
            raise
        return cluster

    @staticmethod
    def _daemons(root: Path) -> dict[str, Daemon]:
        conf = str(root / "ceph.conf")
        return {
            MON: Daemon(MON, ["ceph-mon", "-f", "-c", conf, "-i", "a"], root),
            OSD: Daemon(OSD, ["ceph-osd", "-f", "-c", conf, "-i", "0"], root),
            RGW: Daemon(RGW, ["radosgw", "-f", "-c", conf, "-n", RGW], root),
        }

    def _launch(self, daemon: Daemon) -> None:
        if daemon.alive():
            raise ClusterError(f"{daemon.program} ({daemon.name}) is already running (pid {daemon.pid})")
        daemon.launch(self.die_with_parent)

    def _wait(self, daemon: Daemon, what: str, deadline: float, ready: Callable[[], bool]) -> None:
        """Poll ``ready`` until the deadline; fail at once when this daemon (or one it needs) has exited."""
        last: list[str] = []

        def check() -> bool:
            for other in self.daemons.values():
                if other.pid is not None and not other.alive():
                    raise other.failure("exited while the cluster was starting")
            try:
                return ready()
            except (OSError, ValueError) as exc:  # not listening yet, or not ready to answer (URLError, SSLError)
                last[:] = [f"{type(exc).__name__}: {exc}"]
                return False
        if not _poll(check, max(0.0, deadline - time.monotonic())):
            raise daemon.failure(f"{what} in time" + (f" (last attempt: {last[0]})" if last else ""))

    def _answers(self) -> bool:
        """True when radosgw answers an S3 request (anonymous ListBuckets) with any HTTP status, on each endpoint."""
        for url in filter(None, (self.endpoint, self.tls_endpoint)):
            context = ssl.create_default_context(cafile=str(self.ca_bundle)) if url.startswith("https:") else None
            try:
                with urllib.request.urlopen(url + "/", timeout=2.0, context=context) as resp:
                    resp.read()
            except urllib.error.HTTPError:
                pass
        return True

    def _start_gateway(self, deadline: float) -> None:
        rgw = self.daemons[RGW]
        self._launch(rgw)
        where = " and ".join(filter(None, (self.endpoint, self.tls_endpoint)))
        self._wait(rgw, f"did not answer S3 requests at {where}", deadline, self._answers)

    def _write_env(self, tls: bool) -> None:
        """DIR/s3.env (0600): ``env()`` as KEY=value lines (the HTTPS endpoint when started with TLS)."""
        path = self.env_file
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write("".join(f"{k}={shlex.quote(v)}\n" for k, v in self.env(tls=tls).items()))
        tmp.replace(path)

    # --- finding a running one --------------------------------------------------------------
    @classmethod
    def attach(cls, root: str | os.PathLike) -> Cluster:
        """The cluster a ``start`` made in ``root``, with the pids of those of its daemons still running."""
        root = Path(root).absolute()
        try:
            info = json.loads((root / "cluster.json").read_text())
        except (OSError, ValueError) as exc:
            raise ClusterError(f"{root} holds no cluster made by scripts/rgwcluster.py (no cluster.json)") from exc
        env = _read_env(root / "s3.env")
        cluster = cls(root=root, endpoint=info["endpoint"], access_key=env.get("AWS_ACCESS_KEY_ID", ""),
                      secret_key=env.get("AWS_SECRET_ACCESS_KEY", ""), region=info["region"],
                      daemons=cls._daemons(root), tls_endpoint=info.get("tls_endpoint"))
        for daemon in cluster.daemons.values():
            daemon.adopt()
        return cluster

    # --- stopping -----------------------------------------------------------------------------
    def stop_gateway(self, timeout: float = 30.0) -> None:
        """Stop radosgw only (SIGTERM, waiting for it to exit): S3 requests now fail to connect."""
        rgw = self.daemons[RGW]
        if not rgw.stop(timeout):
            raise ClusterError(f"radosgw ({RGW}) did not exit within {timeout:g} s of SIGTERM and was killed")

    def start_gateway(self, timeout: float = 60.0) -> None:
        """Start radosgw again on the same port; returns once it answers S3 requests."""
        self._start_gateway(time.monotonic() + timeout)

    def stop(self, timeout: float = 30.0, *, raise_on_kill: bool = True) -> None:
        """Stop radosgw, then the OSD, then the mon, each by pid, waiting for each to exit.

        A daemon still running ``timeout`` seconds after SIGTERM is killed; the others are
        stopped all the same, and then (``raise_on_kill``) a ClusterError names those killed.
        """
        killed = [d for name in (RGW, OSD, MON) if not (d := self.daemons[name]).stop(timeout)]
        if killed and raise_on_kill:
            raise ClusterError(", ".join(f"{d.program} ({d.name})" for d in killed)
                               + f" did not exit within {timeout:g} s of SIGTERM and had to be killed")


def _make_tls(folder: Path, deadline: float) -> None:
    """A test CA and radosgw's certificate for 127.0.0.1 and localhost (P-256), made with the openssl command."""
    if shutil.which("openssl") is None:
        raise ClusterError("the openssl command is not installed (package openssl): it makes the test certificate")
    folder.mkdir(mode=0o700)
    ca_key, ca, key, csr, crt, ext = (folder / n for n in ("ca.key", "ca.pem", "rgw.key", "rgw.csr", "rgw.crt", "ext"))
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    _run(["openssl", "req", "-x509", *ec, "-keyout", ca_key, "-out", ca, "-days", "30", "-subj",
          "/CN=rgwcluster test CA", "-addext", "basicConstraints=critical,CA:TRUE",
          "-addext", "keyUsage=critical,keyCertSign,cRLSign"], deadline)
    _run(["openssl", "req", *ec, "-keyout", key, "-out", csr, "-subj", "/CN=127.0.0.1"], deadline)
    ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=critical,CA:FALSE\n"
                   "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n"
                   "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n")
    _run(["openssl", "x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial", "-days", "30",
          "-extfile", ext, "-out", crt], deadline)
    for leftover in (csr, ext, folder / "ca.srl"):
        leftover.unlink(missing_ok=True)


def _new_key(length: int) -> str:
    """An S3 key of letters and digits (RGW's own are the same shape: 20 for the id, 40 for the secret)."""
    alphabet = string.ascii_uppercase + string.digits if length <= 20 else string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(length))


def _read_env(path: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    with contextlib.suppress(OSError):
        for line in path.read_text().splitlines():
            key, sep, value = line.partition("=")
            if sep:
                out[key] = shlex.split(value)[0] if value else ""
    return out


def _run(args: list, deadline: float, daemon: Daemon | None = None) -> str:
    """Run one Ceph command to completion within the deadline; a failure quotes its output (and ``daemon``'s log)."""
    argv = [str(a) for a in args]
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL,
                              timeout=max(1.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired as exc:
        raise ClusterError(f"`{' '.join(argv[:6])} ...` did not finish in time"
                           + (f"\n{daemon.failure('was waited on')}" if daemon else "")) from exc
    if proc.returncode != 0:
        out = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
        raise ClusterError(f"`{' '.join(argv[:6])} ...` failed (exit {proc.returncode}):\n{out}"
                           + (f"\n{daemon.failure('was waited on')}" if daemon else ""))
    return proc.stdout


def _exports(env: dict[str, str]) -> str:
    return "".join(f"export {k}={shlex.quote(v)}\n" for k, v in env.items())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="rgwcluster", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_start = sub.add_parser("start", help="make and start a cluster in DIR (new or empty); print export lines")
    p_start.add_argument("dir")
    p_start.add_argument("--region", default=DEFAULT_REGION)
    p_start.add_argument("--tls", action="store_true",
                         help="also HTTPS (s3.env then names it), with a test CA in DIR/tls (AWS_CA_BUNDLE)")
    p_start.add_argument("--memstore-gib", type=float, default=DEFAULT_MEMSTORE_BYTES / (1 << 30),
                         help="most data the OSD keeps (in memory), GiB (default %(default)g)")
    sub.add_parser("stop", help="stop the cluster in DIR (radosgw, OSD, mon)").add_argument("dir")
    sub.add_parser("env", help="print the S3 variables of the cluster in DIR as export lines").add_argument("dir")
    args = parser.parse_args(argv)
    try:
        if args.command == "start":
            cluster = Cluster.start(args.dir, region=args.region, memstore_bytes=int(args.memstore_gib * (1 << 30)),
                                    tls=args.tls)
            print(f"rgwcluster: RGW answers at {cluster.tls_endpoint or cluster.endpoint} "
                  f"(started in {cluster.start_seconds:.1f} s); stop it with: scripts/rgw stop {shlex.quote(args.dir)}",
                  file=sys.stderr)
            sys.stdout.write(_exports(cluster.env(tls=args.tls)))
        elif args.command == "env":
            cluster = Cluster.attach(args.dir)
            if not cluster.access_key:
                raise ClusterError(f"{cluster.root} has no s3.env: the cluster did not finish starting")
            if cluster.pids[RGW] is None:
                raise ClusterError(f"radosgw of the cluster in {cluster.root} is not running: "
                                   f"scripts/rgw stop it, then start a new one")
            sys.stdout.write(_exports(_read_env(cluster.env_file)))
        else:
            cluster = Cluster.attach(args.dir)
            running = [n for n in (RGW, OSD, MON) if cluster.pids[n] is not None]
            cluster.stop()
            print(f"rgwcluster: stopped {', '.join(running)}" if running else "rgwcluster: nothing was running",
                  file=sys.stderr)
    except ClusterError as exc:
        print(f"rgwcluster: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
