"""Peak memory of ``speechint analyze`` on long recordings: flat in duration, <= 1.5 GB at 3 h (issue 9).

A 3 h, 48 kHz stereo recording is ~2 GB of 16-bit PCM and 4 GB as float32: an engine that loads
the whole file, resamples it in one go or keeps per-frame traces grows with duration and runs a
laptop out of memory, so this measures exactly that. For each duration it writes a 48 kHz stereo
WAV on the spot (real and espeak-ng speech at -24 +-6 dBFS RMS, 1.5-6 s gaps, real background
noise at -45 dBFS under everything; written segment by segment, so this script itself stays
small), runs ``speechint analyze FILE --format json --out DIR`` in a subprocess and records its
peak RSS (``common.run_timed``: the kernel's high-water mark via wait4, plus the process tree's RSS
sampled every 0.1 s) and wall time. faster-whisper int8 (sequential, VAD) runs on the same file for
reference; it decodes the whole file into memory first. WER against the known transcript is a sanity
check that the run did the work.

With ``--app`` the desktop app's own path runs on the same file too: its ``AnalysisWorker``
(offscreen), which reads the file once for the analysis and the waveform together, as a user
dropping the file on the window would.

    .venv/bin/python benchmark/memory.py                       # 10 min, 1 h, 3 h
    .venv/bin/python benchmark/memory.py --durations 10m,1h --keep --app
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))

from benchmark.common import (  # noqa: E402
    FW_MODES,
    log_failures,
    run_app,
    run_fw,
    run_speechint,
    score,
    warm_page_cache,
)
from benchmark.longform_data import (  # noqa: E402
    DEFAULT_CACHE,
    REAL_CLIPS,
    SHARED_AUDIO,
    VARIANTS,
    VOICES,
    Recording,
    _db,
    _read_mono,
    _rms_db,
    _Sources,
    load_sentences,
)

SR = 48000
VERSION = 1  # bump when the recordings change, so kept files are not reused
LEVEL_DBFS, LEVEL_SPREAD_DB = -24.0, 6.0
NOISE_DBFS = -45.0
GAP_S = (1.5, 6.0)
N_ESPEAK = 40  # distinct espeak-ng utterances in the pool (the pool, not the file, is held in memory)
LIMIT_MB = 1500.0  # 1.5 GB, MB = 10^6 bytes
FLAT_TOLERANCE = 0.10  # "flat": the longest recording's peak within +10 % of the shortest's


def parse_duration(s: str) -> float:
    """'90s', '10m', '1.5h' or plain seconds -> seconds."""
    units = {"s": 1, "m": 60, "h": 3600}
    s = s.strip().lower()
    return float(s[:-1]) * units[s[-1]] if s[-1] in units else float(s)


def label(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:g} h"
    return f"{seconds / 60:g} min" if seconds >= 60 else f"{seconds:g} s"


def _pool(seed: int) -> list[tuple[np.ndarray, str]]:
    """Mono 48 kHz utterances with their transcripts: the real clips and espeak-ng sentences."""
    src = _Sources(SR, DEFAULT_CACHE)  # shares longform's espeak-ng cache
    rng = np.random.default_rng([seed, 48])
    pool = [(src.real(name), text) for name, text in REAL_CLIPS.items()]
    sentences = load_sentences()
    for k, i in enumerate(rng.permutation(len(sentences))[:N_ESPEAK]):
        voice = VOICES[k % len(VOICES)] + VARIANTS[rng.integers(len(VARIANTS))]
        x = src.espeak(sentences[i], voice, int(rng.integers(140, 191)), int(rng.integers(35, 66)))
        pool.append((x, sentences[i]))
    return pool


def make_recording(path: Path, seconds: float, seed: int = 0, subtype: str = "PCM_16") -> Recording:
    """Write a ``seconds``-long 48 kHz stereo WAV segment by segment; reuse it if kept from an earlier run."""
    import soundfile as sf

    meta_path = path.with_suffix(".json")
    key = {"version": VERSION, "seconds": seconds, "seed": seed, "subtype": subtype}
    if path.exists() and meta_path.exists():
        meta = json.loads(meta_path.read_text())
        if meta.get("key") == key:
            return Recording(path, meta["reference"], seconds, SR, 2)
    pool = _pool(seed)
    noises = [_read_mono(p, SR) for p in sorted((SHARED_AUDIO / "extra" / "noise").glob("*.wav"))]
    noises = [n * _db(NOISE_DBFS - _rms_db(n)) for n in noises]
    rng = np.random.default_rng([seed, int(seconds)])
    total, pos, texts = int(seconds * SR), 0, []
    tmp = path.with_suffix(".tmp.wav")
    riff_ok = seconds * SR * 2 * (2 if subtype == "PCM_16" else 3) < 4e9  # RIFF sizes are 32-bit
    with sf.SoundFile(str(tmp), "w", SR, 2, subtype=subtype, format="WAV" if riff_ok else "RF64") as f:
        while pos < total:
            x, text = pool[rng.integers(len(pool))]
            gap = int(rng.uniform(*GAP_S) * SR)
            n = min(gap + len(x), total - pos)
            seg = np.empty((n, 2), np.float32)
            for c in range(2):  # an independent noise bed per channel
                bed = noises[rng.integers(len(noises))]
                idx = (int(rng.integers(len(bed))) + np.arange(n)) % len(bed)
                seg[:, c] = bed[idx]
            if gap + len(x) <= n:  # the last segment may only have room for noise
                y = x * _db(LEVEL_DBFS + rng.uniform(-LEVEL_SPREAD_DB, LEVEL_SPREAD_DB) - _rms_db(x))
                seg[gap:, 0] += y
                seg[gap:, 1] += 0.8 * y  # the talker a little left of centre
                texts.append(text)
            f.write(np.clip(seg, -1.0, 1.0))
            pos += n
    tmp.replace(path)
    reference = " ".join(texts)
    meta_path.write_text(json.dumps({"key": key, "reference": reference}) + "\n")
    return Recording(path, reference, seconds, SR, 2)


def verdict(rows: list[dict], system: str) -> str:
    """Is ``system``'s peak flat in duration, and within the limit at 3 h?"""
    rs = sorted((r for r in rows if r["system"] == system and not r["missing"]), key=lambda r: r["seconds"])
    if len(rs) < 2:
        return f"{system}: fewer than two durations measured"
    a, b = rs[0], rs[-1]
    growth = b["peak_rss_mb"] / a["peak_rss_mb"] - 1
    per_h = (b["peak_rss_mb"] - a["peak_rss_mb"]) / ((b["seconds"] - a["seconds"]) / 3600)
    flat = "flat" if growth <= FLAT_TOLERANCE else "NOT flat"
    out = (
        f"{system}: {a['peak_rss_mb']:.0f} MB at {label(a['seconds'])} -> {b['peak_rss_mb']:.0f} MB at "
        f"{label(b['seconds'])} ({100 * growth:+.1f} %, {per_h:+.0f} MB/h): {flat} (within "
        f"+{100 * FLAT_TOLERANCE:.0f} %)"
    )
    at3 = [r for r in rs if r["seconds"] >= 3 * 3600]
    if at3:
        ok = "met" if at3[0]["peak_rss_mb"] <= LIMIT_MB else "NOT met"
        out += f"; <= {LIMIT_MB:.0f} MB at 3 h: {ok}"
    else:
        out += "; 3 h not measured"
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--durations", default="10m,1h,3h", help="comma-separated, e.g. 10m,1h,3h (default)")
    ap.add_argument(
        "--dir",
        type=Path,
        default=Path("/tmp/speechint-memory"),
        help="recordings and outputs (needs ~2 GB/3 h)",
    )
    ap.add_argument("--keep", action="store_true", help="keep the recordings (reused by the next run)")
    ap.add_argument("--subtype", default="PCM_16", choices=["PCM_16", "PCM_24"], help="WAV sample format")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--speechint-args", default="", metavar="ARGS", help="extra 'analyze' arguments, written with '='"
    )
    ap.add_argument("--no-fw", action="store_true", help="skip the faster-whisper reference")
    ap.add_argument("--app", action="store_true", help="also the desktop app's worker on each file")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="faster-whisper cpu_threads")
    ap.add_argument("--report", type=Path, help="JSON report (default: report.json in the run folder)")
    args = ap.parse_args(argv)
    durations = [parse_duration(d) for d in args.durations.split(",") if d]

    bytes_per_s = SR * 2 * (2 if args.subtype == "PCM_16" else 3)
    args.dir.mkdir(parents=True, exist_ok=True)
    need = max(durations) * bytes_per_s * 1.1 + (sum(durations) * bytes_per_s if args.keep else 0)
    free = shutil.disk_usage(args.dir).free
    if free < need:
        raise SystemExit(f"{args.dir}: {free / 1e9:.1f} GB free, need {need / 1e9:.1f} GB (choose --dir)")
    run_dir = args.dir / "runs" / time.strftime("%Y%m%d-%H%M%S")
    print(f"outputs: {run_dir}", file=sys.stderr)
    warm_page_cache()

    # a kill (SIGTERM) unwinds like Ctrl-C: run_timed stops the system, the big recording is removed
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    rows = []
    for seconds in durations:
        path = args.dir / f"memory-{label(seconds).replace(' ', '')}-seed{args.seed}-{args.subtype}.wav"
        tag = label(seconds).replace(" ", "")
        try:
            print(f"writing {path}", file=sys.stderr)
            t = time.perf_counter()
            rec = make_recording(path, seconds, args.seed, args.subtype)
            print(f"  {path.stat().st_size / 1e9:.2f} GB in {time.perf_counter() - t:.0f} s", file=sys.stderr)
            print(f"running speechint on {label(seconds)}", file=sys.stderr)
            runs = [run_speechint(args.speechint_args, [path], run_dir / f"speechint-{tag}")]
            if args.app:
                print(f"running the app's worker on {label(seconds)}", file=sys.stderr)
                runs.append(run_app([path], run_dir / f"app-{tag}"))
            if not args.no_fw:
                print(f"running {FW_MODES['vad']} on {label(seconds)}", file=sys.stderr)
                runs.append(run_fw("vad", [path], run_dir / f"fw-{tag}", args.threads))
        finally:
            if not args.keep:
                path.unlink(missing_ok=True)
                path.with_suffix(".json").unlink(missing_ok=True)
        for r in runs:
            r["score"] = score(r, [rec])
            r["seconds"] = seconds
            r.pop("texts")  # hours of text: the outputs are in the run folder
            print(f"  {r['system']}: {r['peak_rss_mb']:.0f} MB peak, {r['wall_s']:.0f} s", file=sys.stderr)
        log_failures(runs)
        rows += runs

    rows.sort(key=lambda r: (not r["system"].startswith("speechint"), r["system"], r["seconds"]))
    w = max(len(r["system"]) for r in rows) + 2
    print(
        f"\n48 kHz stereo {args.subtype} WAV made on the spot; whole process, one run each; MB = 10^6 bytes"
    )
    head = f"{'system':<{w}}{'duration':>9}{'peak RSS MB':>13}{'wall s':>9}{'RTF':>8}{'WER %':>7}"
    print(head)
    print("-" * len(head))
    for r in rows:
        note = f"  exit {r['returncode']}, no output" if r["missing"] else ""
        print(
            f"{r['system']:<{w}}{label(r['seconds']):>9}{r['peak_rss_mb']:>13.0f}{r['wall_s']:>9.1f}"
            f"{r['score']['rtf']:>8.4f}{100 * r['score']['wer']:>7.1f}{note}"
        )
    print()
    for system in dict.fromkeys(r["system"] for r in rows):
        print(verdict(rows, system))
    report = args.report or run_dir / "report.json"
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text(json.dumps({"subtype": args.subtype, "runs": rows}, indent=1) + "\n")
    print(f"report: {report}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
