"""``python -m agreements_kit.localtsa serve FOLDER [--host H] [--port P]`` and ``init FOLDER [--name N]``.

Its own small argument parser rather than the ``agreements`` command's: the
layers contract keeps this package below ``agreements_kit.cli``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from agreements_kit.errors import AgreementsError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m agreements_kit.localtsa",
                                     description="A local RFC 3161 time-stamp authority (openssl ts -reply).")
    sub = parser.add_subparsers(dest="command", required=True)
    init = sub.add_parser("init", help="make a new TSA (root, certificate, key) in an empty folder")
    init.add_argument("folder", type=Path)
    init.add_argument("--name", default="agreements-kit local TSA")
    serve = sub.add_parser("serve", help="answer time-stamp queries over HTTP until stopped")
    serve.add_argument("folder", type=Path)
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        if args.command == "init":
            from agreements_kit.localtsa.folder import create

            tsa = create(args.folder, args.name)
            print(f"TSA made in {tsa.path}; auditors trust {tsa.root}")
        else:
            from agreements_kit.localtsa.server import serve as run_server

            run_server(args.folder, args.host, args.port)
    except AgreementsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
