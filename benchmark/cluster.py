"""Throughput of ``speechint analyze --ray`` with 1 and 2 actors against the plain CLI, one run (issue 11).

Each system is one subprocess over the same files, timed by wall clock (``common.run_timed``), so
what a user waits for counts: start-up, Ray's own start (a local instance), the model loaded once
per actor, analysis, the per-file JSON, and for Ray the two Parquet tables. Reported: files per
second, hours of audio per hour of wall time, the ratio to the plain CLI, peak memory of the whole
process tree, and how many transcripts equal the plain CLI's.

Files: the short-clip set of ``speed.py`` (jfk/LDC cuts and espeak-ng sentences at several gains
and formats, 2-6 s each), each clip listed ``--repeat`` times under its own name, so the fixed
costs (Ray's start, a model per actor) are paid against a corpus rather than a handful of files.

    .venv/bin/python benchmark/cluster.py                     # 1 and 2 actors vs the plain CLI
    .venv/bin/python benchmark/cluster.py --rounds 2            # A B C A B C, fastest of each

On this machine (2 shared cores) two actors of one thread compete with the plain CLI's two threads
for the same cores: the ratio shows Ray's overhead and per-actor scaling, not a cluster's gain.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))

from benchmark.common import log_failures, run_speechint, warm_page_cache  # noqa: E402
from benchmark.longform_data import DEFAULT_CACHE  # noqa: E402
from benchmark.speed import build_short_clips  # noqa: E402


def corpus(cache: Path, repeat: int, seed: int) -> tuple[list[Path], float]:
    """The short clips, each ``repeat`` times (symlinks with distinct names); total audio seconds."""
    recs = build_short_clips(cache, seed=seed)
    folder = cache / f"cluster-x{repeat}-seed{seed}"
    folder.mkdir(parents=True, exist_ok=True)
    files, audio_s = [], 0.0
    for k in range(repeat):
        for r in recs:
            link = folder / f"r{k}-{r.path.name}"
            if not link.exists():
                link.symlink_to(r.path.resolve())
            files.append(link)
            audio_s += r.duration_s
    return files, audio_s


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=2, help="times each short clip is listed (default 2)")
    ap.add_argument("--actors", default="1,2", help="actor counts to run on Ray (default 1,2)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--files-per-task", type=int, default=8)
    ap.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="run every system this many times, in turn (A B C A B C), and keep each one's fastest: "
        "other work on a shared machine then weighs on all of them alike (default 1)",
    )
    ap.add_argument(
        "--cache", type=Path, default=DEFAULT_CACHE, help=f"clips and runs (default {DEFAULT_CACHE})"
    )
    ap.add_argument("--report", type=Path, help="JSON report (default: report.json in the run folder)")
    args = ap.parse_args(argv)
    cpus = os.cpu_count() or 1
    files, audio_s = corpus(args.cache, args.repeat, args.seed)
    run_dir = args.cache / "runs" / f"cluster-{time.strftime('%Y%m%d-%H%M%S')}"
    print(
        f"{len(files)} files, {audio_s / 60:.1f} min of audio; {cpus} CPUs; runs in {run_dir}",
        file=sys.stderr,
    )
    warm_page_cache()

    variants = [("plain CLI", "")]
    for n in (int(a) for a in args.actors.split(",") if a.strip()):
        per = max(1, cpus // n)  # the machine's cores shared out among the actors
        variants.append(
            (
                f"--ray, {n} actor{'s' if n > 1 else ''} x {per} CPU",
                f"--ray --actors {n} --cpus-per-actor {per} --files-per-task {args.files_per_task}",
            )
        )
    tries: dict[str, list[dict]] = {name: [] for name, _ in variants}
    for k in range(args.rounds):
        for i, (name, extra) in enumerate(variants):
            print(f"round {k + 1}/{args.rounds}: running {name}", file=sys.stderr)
            r = run_speechint(extra, files, run_dir / f"round{k}-run{i}")
            r["system"] = name
            tries[name].append(r)
    runs = []
    for rs in tries.values():
        best = min(rs, key=lambda r: r["wall_s"])
        best["walls_s"] = [r["wall_s"] for r in rs]
        runs.append(best)
    log_failures(runs)

    plain = runs[0]
    print(
        f"\n{len(files)} files, {audio_s / 3600:.3f} h of audio (short clips, 2-6 s), tiny.en, {cpus} CPUs; "
        f"fastest of {args.rounds} round(s)"
    )
    head = f"{'system':<26}{'wall s':>8}{'files/s':>9}{'audio h/h':>11}{'vs plain':>10}{'same text':>11}{'peak RSS MB':>13}"
    print(head)
    print("-" * len(head))
    for r in runs:
        r["files_per_s"] = len(files) / r["wall_s"]
        r["audio_h_per_h"] = audio_s / r["wall_s"]
        r["speedup_vs_plain"] = plain["wall_s"] / r["wall_s"]
        r["same_text"] = sum(r["texts"].get(f) == t for f, t in plain["texts"].items())
        print(
            f"{r['system']:<26}{r['wall_s']:>8.1f}{r['files_per_s']:>9.2f}{r['audio_h_per_h']:>11.1f}"
            f"{r['speedup_vs_plain']:>9.2f}x{r['same_text']:>6}/{len(plain['texts']):<4}{r['peak_rss_mb']:>13.0f}"
        )
    report = args.report or run_dir / "report.json"
    report.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "files": len(files),
        "audio_s": audio_s,
        "cpus": cpus,
        "rounds": args.rounds,
        "machine": platform.platform(),
    }
    slim = [{k: v for k, v in r.items() if k != "texts"} for r in runs]
    report.write_text(json.dumps({"meta": meta, "runs": slim}, indent=1) + "\n")
    print(f"\nreport: {report}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
