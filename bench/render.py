"""Rendering benchmark: our overhead against bare WeasyPrint, and batch scaling.

    python bench/render.py [--n 40] [--batch 40]

1. Overhead. For N agreements, in the same process and interleaved so that
   machine noise hits both alike, time
   - baseline: bare WeasyPrint ``write_pdf`` of the very same HTML with the same
     options (PDF/A-3u, the manifest attachment, one shared FontConfiguration);
   - ours: the whole per-agreement path (spec checks, variable resolution,
     sandboxed Jinja2, manifest and hashes, PDF, atomic private writes).
   Goal: median(ours) / median(baseline) - 1 < 10%. Loading the practice and the
   YAML library happens once per process (once per worker in a batch); its cost
   is printed separately, as a share of one PDF.
2. Batch. The same ``render_many`` on ``--batch`` agreements with 1 worker and
   with one worker per core, wall time including the pool's start-up.
   Goal on 2 cores: at least 1.7x the throughput of one worker.
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agreements_kit.authoring.practice import init_practice  # noqa: E402
from agreements_kit.authoring.render import Job, Renderer, render_many  # noqa: E402
from agreements_kit.authoring.spec import Spec, make_spec  # noqa: E402
from agreements_kit.cli.demo import DEMO_PRACTICE  # noqa: E402


def specs(n: int, prefix: str):
    return [make_spec(client=f"Client Number{i} Example", therapist="lee" if i % 2 else "ortiz",
                      id=f"{prefix}-{i:05d}", date="2026-11-27", variables={"cancel_notice_hours": 24 + i % 3})
            for i in range(n)]


def overhead(renderer: Renderer, n: int, out: Path) -> dict[str, float]:
    from weasyprint import HTML, Attachment

    from agreements_kit.authoring import pdf
    from agreements_kit.authoring.html import render_html
    from agreements_kit.authoring.manifest import build_manifest
    from agreements_kit.formats.jsonio import canonical_json

    base_url = renderer.template_dir.resolve().as_uri() + "/"
    fetcher = pdf.TemplateFolderFetcher(renderer.template_dir)
    ours, bare = [], []
    warm = specs(2, "warm")
    for s in warm:  # warm both paths: font configuration, imports, caches
        renderer.render_to(Job(s, out / "warm"))
    for s in specs(n, "ovh"):
        # The baseline's input is prepared outside its timer: it gets the HTML for free.
        agreement = renderer.prepare(s)
        html = render_html(agreement, renderer.template_dir)
        manifest = canonical_json(build_manifest(agreement, s, renderer.template, pdf.PDF_VARIANT,
                                                 pdf.WEASYPRINT_VERSION))

        # Both closures run within this iteration; the defaults bind this iteration's values explicitly.
        def run_bare(manifest: bytes = manifest, html: str = html) -> None:
            t0 = time.perf_counter()
            att = Attachment(string=manifest, name="manifest.json", relationship="Data", url_fetcher=fetcher)
            HTML(string=html, base_url=base_url, url_fetcher=fetcher).write_pdf(
                font_config=pdf.font_config(), pdf_variant=pdf.PDF_VARIANT, attachments=[att],
                attachment_relationships=["Data"])
            bare.append(time.perf_counter() - t0)

        def run_ours(s: Spec = s) -> None:
            t0 = time.perf_counter()
            renderer.render_to(Job(s, out / "ours"))
            ours.append(time.perf_counter() - t0)

        # Alternate which goes first, so that neither always runs on warmer caches, and
        # collect garbage before each (untimed): a WeasyPrint document leaves a large cyclic
        # heap, and whichever call came next would otherwise pay for collecting it.
        for step in ((run_bare, run_ours) if len(bare) % 2 == 0 else (run_ours, run_bare)):
            gc.collect()
            step()
    return {"bare": statistics.median(bare), "ours": statistics.median(ours)}


def batch(practice: Path, renderer: Renderer, n: int, out: Path, workers: int) -> float:
    jobs = [Job(s, out / f"w{workers}") for s in specs(n, f"b{workers}")]
    t0 = time.perf_counter()
    render_many(renderer, jobs, workers=workers)
    return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=40, help="agreements for the overhead measurement")
    ap.add_argument("--batch", type=int, default=40, help="agreements per batch run")
    args = ap.parse_args()
    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory(prefix="agreements-bench-") as tmp:
        tmp_path = Path(tmp)
        practice = init_practice(tmp_path / "practice", **DEMO_PRACTICE)
        t0 = time.perf_counter()
        renderer = Renderer.load(practice)
        load = time.perf_counter() - t0
        o = overhead(renderer, args.n, tmp_path / "out")
        ratio = o["ours"] / o["bare"] - 1
        print(f"per agreement, median of {args.n}: bare WeasyPrint {o['bare'] * 1000:.1f} ms, "
              f"agreements-kit {o['ours'] * 1000:.1f} ms -> overhead {ratio * 100:+.1f}% (goal < 10%): "
              f"{'met' if ratio < 0.10 else 'MISSED'}")
        print(f"once per process: practice + clause library load {load * 1000:.1f} ms "
              f"({load / o['bare'] * 100:.0f}% of one PDF)")
        one = batch(practice, renderer, args.batch, tmp_path / "batch", 1)
        many = batch(practice, renderer, args.batch, tmp_path / "batch", cores)
        speedup = one / many
        print(f"batch of {args.batch}: 1 worker {one:.2f} s ({args.batch / one:.1f}/s), {cores} workers "
              f"{many:.2f} s ({args.batch / many:.1f}/s) -> {speedup:.2f}x "
              f"(goal >= 1.7x on 2 cores): {'met' if speedup >= 1.7 or cores < 2 else 'MISSED'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
