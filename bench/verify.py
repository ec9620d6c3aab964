"""Verification benchmark: ``agreements verify`` beside the README's OpenSSL recipe.

    python bench/verify.py [--runs 15] [--out DIR] [--json] [--max-ratio X]

Builds (in a temporary folder, or DIR) the demo practice with ``agreements demo``:
one agreement signed by the client and countersigned by the therapist. Then, in
the same run, each as a whole process, interleaved A/B/A/B so both share the
machine's noise:
- A: ``agreements verify --practice P --trust P/pki/root.pem P/signed/ID``
  (the practice gives it the archive's ledger);
- B: the README's "Verify without agreements-kit" recipe, read from README.md
  at run time (so the bench follows the README), run as ``bash -c RECIPE`` with
  ``A`` set to the agreement's folder and the practice folder as cwd.
Both must succeed once before anything is timed. Goal: median(A) at most 3x
median(B). Then one ``python -X importtime`` run of A: the slowest imports, and
whether any of the modules verification must not import were imported.

Exit code 0 whatever the ratio (it is a measurement), unless --max-ratio is given
and the ratio exceeds it (exit 1). With --json, stdout is only
{"verify_ms", "openssl_ms", "ratio"} (medians) and the report goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
HEADING = "## Verify without agreements-kit"
TARGET = 3.0
FORBIDDEN = ("weasyprint", "aiohttp", "flask", "pyhanko")


def agreements_binary(given: str | None) -> Path:
    for cand in (given, REPO / ".venv" / "bin" / "agreements", shutil.which("agreements")):
        if cand and Path(cand).is_file():
            return Path(cand).resolve()
    sys.exit("error: no agreements binary (give --agreements PATH)")


def script_python(script: Path) -> str:
    """The interpreter the console script runs under (its shebang), for -X importtime."""
    first = script.read_text(errors="replace").splitlines()[0]
    if first.startswith("#!"):
        interp = first[2:].strip().split()[0]
        if Path(interp).is_file():
            return interp
    return sys.executable


def readme_recipe(readme: Path = README) -> str:
    """The ```sh block that follows HEADING, without its line setting A (the bench sets A)."""
    lines = readme.read_text().splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if line.strip() == HEADING)
        fence = next(i for i in range(start + 1, len(lines)) if lines[i].strip() == "```sh")
        end = next(i for i in range(fence + 1, len(lines)) if lines[i].strip() == "```")
    except StopIteration:
        sys.exit(f"error: no ```sh block after {HEADING!r} in {readme}")
    body = [line for line in lines[fence + 1:end] if not re.match(r"\s*A=", line)]
    return "\n".join(body) + "\n"


def build(out: Path | None, binary: Path, tmp: Path) -> tuple[Path, Path]:
    """(practice, agreement folder): the demo practice, made by `agreements demo` (reused if --out holds one)."""
    practice = out.resolve() if out else tmp / "practice"
    if not (practice / "practice.yaml").exists():
        p = subprocess.run([str(binary), "demo", str(practice)], capture_output=True, text=True)
        if p.returncode != 0:
            sys.exit(f"error: agreements demo exited {p.returncode}\n{p.stdout}{p.stderr}")
    folders = sorted(d for d in (practice / "signed").glob("agr-*") if d.is_dir())
    if not folders:
        sys.exit(f"error: no signed agreement in {practice / 'signed'}")
    return practice, folders[0]


def check(name: str, cmd: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    p = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if p.returncode != 0:
        sys.stderr.write(f"--- {name} stdout\n{p.stdout}--- {name} stderr\n{p.stderr}")
        sys.exit(f"error: {name} exited {p.returncode}: {' '.join(cmd)[:300]}")
    return p


def wall_ms(cmd: list[str], cwd: Path, env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    p = subprocess.run(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ms = (time.perf_counter() - t0) * 1000
    if p.returncode != 0:
        sys.exit(f"error: exited {p.returncode} while timing: {' '.join(cmd)[:300]}")
    return ms


def importtime(cmd: list[str], cwd: Path, env: dict[str, str]) -> list[tuple[int, str]]:
    """(cumulative us, module) for every import of one run, slowest first."""
    p = check("verify under -X importtime", cmd, cwd, env)
    rows = []
    for line in p.stderr.splitlines():
        m = re.match(r"import time:\s+(\d+)\s*\|\s*(\d+)\s*\|(\s*)(\S+)", line)
        if m:
            rows.append((int(m.group(2)), m.group(4)))
    return sorted(rows, reverse=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=15, help="timed runs of each command")
    ap.add_argument("--out", type=Path, help="build (or reuse) the practice here instead of a temporary folder")
    ap.add_argument("--agreements", help="the agreements binary (default: the venv's)")
    ap.add_argument("--json", action="store_true", help="print only a JSON object on stdout")
    ap.add_argument("--max-ratio", type=float, help="exit 1 if median(verify)/median(openssl) exceeds this")
    args = ap.parse_args()
    report = sys.stderr if args.json else sys.stdout
    binary = agreements_binary(args.agreements)
    recipe = readme_recipe()

    with tempfile.TemporaryDirectory(prefix="agreements-bench-") as tmp:
        practice, folder = build(args.out, binary, Path(tmp))
        rel = folder.relative_to(practice)
        env = dict(os.environ, A=str(rel))
        verify = [str(binary), "verify", "--practice", str(practice), "--trust", str(practice / "pki" / "root.pem"),
                  str(folder)]
        openssl = ["bash", "-c", recipe]

        check("agreements verify", verify, practice, env)
        # The recipe's exit code is its last command's; a strict run catches a failing step in the loop too.
        strict = check("README OpenSSL recipe (bash -eo pipefail)", ["bash", "-eo", "pipefail", "-c", recipe],
                       practice, env)
        records = len(list(folder.glob("[0-9][0-9]-*.json")))
        ok = (strict.stdout + strict.stderr).count("Verification successful")
        if ok != records:
            sys.stderr.write(strict.stdout + strict.stderr)
            sys.exit(f"error: OpenSSL verified {ok} of {records} records")
        check("README OpenSSL recipe", openssl, practice, env)

        a: list[float] = []
        b: list[float] = []
        for _ in range(args.runs):
            a.append(wall_ms(verify, practice, env))
            b.append(wall_ms(openssl, practice, env))
        imports = importtime([script_python(binary), "-X", "importtime", *verify], practice, env)

    ma, mb = statistics.median(a), statistics.median(b)
    ratio = ma / mb
    print(f"agreement {folder.name}: {records} signed records; {args.runs} runs each, interleaved", file=report)
    print(f"A agreements verify:        min {min(a):7.1f}  median {ma:7.1f}  max {max(a):7.1f} ms", file=report)
    print(f"B README OpenSSL recipe:    min {min(b):7.1f}  median {mb:7.1f}  max {max(b):7.1f} ms", file=report)
    print(f"ratio median(A)/median(B): {ratio:.2f}x (target: at most {TARGET:g}x): "
          f"{'met' if ratio <= TARGET else 'MISSED'}", file=report)
    print(f"slowest imports of verify (cumulative, one -X importtime run of {len(imports)} imports):", file=report)
    for us, mod in imports[:8]:
        print(f"  {us / 1000:8.1f} ms  {mod}", file=report)
    roots = {mod.split(".")[0].lower() for _, mod in imports}
    for name in FORBIDDEN:
        print(f"  {name:10s} {'IMPORTED' if name in roots else 'not imported'}", file=report)
    if args.json:
        print(json.dumps({"verify_ms": round(ma, 2), "openssl_ms": round(mb, 2), "ratio": round(ratio, 3)}))
    if args.max_ratio is not None and ratio > args.max_ratio:
        print(f"ratio {ratio:.2f}x exceeds --max-ratio {args.max_ratio:g}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
