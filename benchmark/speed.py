"""Whole-process speed and WER: ``speechint analyze`` against faster-whisper, same files, one run (issue 9).

A user waits for the whole process (start-up, imports, model load, decoding, loudness, export), so
each system is one subprocess over all files of a set, timed by wall clock (``common.run_timed``;
its peak RSS is recorded too). WER beside it, as speed bought with words is no gain. Two sets:

(a) ``short``: 50+ clips of 2-6 s with known transcripts, since a batch of short files is dominated
    by per-process and per-file costs: ``jfk.flac`` cut at its phrase pauses, ``LDC93S1.wav``, and
    espeak-ng sentences (``data/sentences.txt``, several voices), each at a gain of -12..+6 dB
    around -24 dBFS RMS and written as 16 kHz mono WAV, 44.1 kHz stereo FLAC or 48 kHz stereo WAV,
    because users bring all of those. Deterministic from ``--seed``, cached under ``--cache``.
(b) ``long``: the long-form corpus of ``longform_data.py`` (default 3 x 10 min), where pauses, noise
    and many 30 s windows are what cost time and words.

Systems (runners shared with ``longform.py``): ``speechint analyze FILES --format json --out DIR``
with its defaults (more variants with ``--speechint-args``), and faster-whisper on the same tiny.en
CTranslate2 weights, int8, beam 1: sequential ``transcribe`` with and without ``vad_filter``, and
``BatchedInferencePipeline(batch_size=8)``. The issue's goal, per set: speechint's wall time <= 0.8x
the fastest faster-whisper configuration, with a WER no worse than that configuration's. A fourth
run, ``words``, is the batched pipeline doing the decoding work speechint's defaults do (beam 5, word
timestamps), compared on a line of its own: the goal's references skip that work. With ``--app``
the desktop app's queue (``AnalysisWorker``, offscreen, as a drop of the files fills it) runs too:
the issue asks that it take the same batched path. The machine's cores are shared with other
work: compare timings within one run.

    .venv/bin/python benchmark/speed.py                            # both sets
    .venv/bin/python benchmark/speed.py --sets short --speechint-args= --speechint-args="--compute int8"
    .venv/bin/python benchmark/speed.py --sets long --files 1 --minutes 3
    .venv/bin/python benchmark/speed.py --sets short --fw batched --app
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))

from benchmark.common import (  # noqa: E402
    FW_MODES,
    SAME_WORK_MODE,
    built_apart,
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
    SENTENCES_FILE,
    SHARED_AUDIO,
    VARIANTS,
    VOICES,
    CorpusSpec,
    Recording,
    _db,
    _rms_db,
    _Sources,
    build_corpus,
    load_sentences,
)

SHORT_VERSION = 1  # bump when the clips change, so old caches are not reused
# jfk.flac cut mid-pause between phrases (about -40 dBFS there). The pauses come from the product's
# own word timings (`speechint analyze jfk.flac --format json`): "Americans" ends at 2.24 s and "ask"
# starts at 3.30; "not" ends at 4.42, "what" starts at 5.41; "you" ends at 7.65, "ask" starts at 8.19.
JFK_CUTS = [
    (0.0, 2.77, "And so, my fellow Americans,"),
    (2.77, 7.92, "ask not what your country can do for you,"),
    (7.92, None, "ask what you can do for your country."),
    (0.0, 4.9, "And so, my fellow Americans, ask not"),
    (2.77, 4.9, "ask not"),
    (4.9, 7.92, "what your country can do for you,"),
    (4.9, None, "what your country can do for you, ask what you can do for your country."),
]
BASE_DBFS = -24.0  # speech RMS at gain 0
GAINS = (-12, -6, -3, 0, 3, 6)
PEAK_CAP_DBFS = -1.0  # a gain that would clip is backed off; the clip's real level is recorded
FORMATS = {  # tag: (rate, channels, soundfile format, subtype, suffix)
    "16k1": (16000, 1, "WAV", "PCM_16", ".wav"),
    "44k2": (44100, 2, "FLAC", "PCM_24", ".flac"),
    "48k2": (48000, 2, "WAV", "PCM_24", ".wav"),
}
VARIANTS_PER_REAL = 6
ESPEAK_PAD_S = 0.3
ESPEAK_FLOOR_DB = 46.0  # noise floor under espeak-ng's digital silence, below the speech's RMS
ESPEAK_S = (2.0, 6.0)


def _combos() -> list[tuple[int, str]]:
    return [(g, f) for g in GAINS for f in FORMATS]


def _load_at(path: Path, sr: int, channels: int, start: float = 0.0, end: float | None = None) -> np.ndarray:
    """``path[start:end]`` as (n, channels) float32 at ``sr``: stereo sources stay stereo, mono is doubled."""
    import soundfile as sf
    import soxr

    x, sr_in = sf.read(str(path), dtype="float32", always_2d=True)
    x = x[int(start * sr_in) : None if end is None else int(end * sr_in)]
    x = x.mean(axis=1, keepdims=True) if channels == 1 else x
    if x.shape[1] != channels:
        x = np.repeat(x[:, :1], channels, axis=1)
    if sr_in != sr:
        x = soxr.resample(x, sr_in, sr, quality="VHQ").astype(np.float32)
    return np.ascontiguousarray(x, np.float32)


def _write(folder: Path, name: str, x: np.ndarray, gain_db: float, fmt: str) -> tuple[Path, float, float]:
    """Gain ``x`` (RMS to BASE_DBFS + gain, peak capped) and write it in ``fmt``; path, real gain, level."""
    import soundfile as sf

    sr, _ch, major, subtype, suffix = FORMATS[fmt]
    g = BASE_DBFS + gain_db - _rms_db(x)
    g = min(g, PEAK_CAP_DBFS - float(20 * np.log10(np.max(np.abs(x)) + 1e-20)))
    y = (x * _db(g)).astype(np.float32)
    path = folder / f"{name}{suffix}"
    tmp = folder / f"{name}.tmp{suffix}"
    sf.write(str(tmp), y, sr, format=major, subtype=subtype)
    tmp.replace(path)
    return path, round(g + _rms_db(x) - BASE_DBFS, 2), round(_rms_db(y), 2)


def _short_key(seed: int, n_espeak: int) -> str:
    h = hashlib.sha256()
    spec = [
        SHORT_VERSION,
        seed,
        n_espeak,
        JFK_CUTS,
        BASE_DBFS,
        GAINS,
        PEAK_CAP_DBFS,
        FORMATS,
        ESPEAK_S,
        ESPEAK_PAD_S,
        ESPEAK_FLOOR_DB,
    ]
    h.update(json.dumps(spec).encode())
    h.update(SENTENCES_FILE.read_bytes())
    return h.hexdigest()[:12]


def build_short_clips(cache: Path, seed: int = 0, n_espeak: int = 24, log=print) -> list[Recording]:
    """The short-clip set: each real source in 6 of the 18 gain x format combinations, then espeak-ng.

    Built once per spec into ``<cache>/short-seed<seed>-<hash>/`` (manifest.json lists the clips).
    """
    folder = cache / f"short-seed{seed}-{_short_key(seed, n_espeak)}"
    manifest = folder / "manifest.json"
    if manifest.exists():
        recs = [Recording.from_json(d) for d in json.loads(manifest.read_text())["clips"]]
        if all(r.path.exists() for r in recs):
            return recs
    if log:
        log(f"building short clips in {folder}")
    folder.mkdir(parents=True, exist_ok=True)
    combos = _combos()
    sources = [("jfk.flac", s, e, t) for s, e, t in JFK_CUTS] + [
        ("LDC93S1.wav", 0.0, None, REAL_CLIPS["LDC93S1.wav"])
    ]
    recs: list[Recording] = []

    def add(name: str, x: np.ndarray, text: str, gain: int, fmt: str, meta: dict) -> None:
        path, real_gain, level = _write(folder, name, x, gain, fmt)
        sr, ch = FORMATS[fmt][:2]
        event = {"kind": "speech", "text": text, "gain_db": real_gain, "level_dbfs": level, **meta}
        recs.append(Recording(path, text, round(len(x) / sr, 3), sr, ch, [event]))

    for i, (src, start, end, text) in enumerate(sources):
        for j in range(VARIANTS_PER_REAL):
            gain, fmt = combos[(7 * i + 5 * j) % len(combos)]  # 5 is coprime to 18: distinct combos
            sr, ch = FORMATS[fmt][:2]
            x = _load_at(SHARED_AUDIO / src, sr, ch, start, end)
            cut = Path(src).stem + (f"{i + 1}" if src == "jfk.flac" else "")
            add(
                f"{len(recs):02d}-{cut}-{gain:+d}dB-{fmt}",
                x,
                text,
                gain,
                fmt,
                {"source": src, "start": start},
            )

    rng = np.random.default_rng([seed, 9])
    sentences = load_sentences()
    srcs = {fmt: _Sources(FORMATS[fmt][0], cache) for fmt in FORMATS}  # espeak-ng WAVs cached in cache/espeak
    k = 0
    for idx in rng.permutation(len(sentences)):
        if k == n_espeak:
            break
        voice = VOICES[k % len(VOICES)] + VARIANTS[rng.integers(len(VARIANTS))]
        wpm, pitch = int(rng.integers(150, 181)), int(rng.integers(40, 61))
        gain, fmt = combos[(5 * k) % len(combos)]
        sr, ch = FORMATS[fmt][:2]
        x = srcs[fmt].espeak(sentences[idx], voice, wpm, pitch)
        pad = int(ESPEAK_PAD_S * sr)
        if not ESPEAK_S[0] <= (len(x) + 2 * pad) / sr <= ESPEAK_S[1]:
            continue
        y = np.pad(x, (pad, pad))
        y = y + rng.standard_normal(len(y)).astype(np.float32) * _db(_rms_db(x) - ESPEAK_FLOOR_DB)
        y = np.repeat(y[:, None], ch, axis=1)
        meta = {"source": "espeak-ng", "voice": voice, "wpm": wpm, "pitch": pitch}
        add(f"{len(recs):02d}-espeak-{gain:+d}dB-{fmt}", y, sentences[idx], gain, fmt, meta)
        k += 1
    manifest.write_text(
        json.dumps({"builder": "benchmark/speed.py", "clips": [r.to_json() for r in recs]}) + "\n"
    )
    return recs


def _describe_short(recs: list[Recording]) -> str:
    d = [r.duration_s for r in recs]
    n_real = sum(r.events[0]["source"] != "espeak-ng" for r in recs)
    return (
        f"{len(recs)} clips, {sum(d) / 60:.1f} min ({n_real} cuts of jfk.flac / LDC93S1.wav, "
        f"{len(recs) - n_real} espeak-ng sentences; {min(d):.1f}-{max(d):.1f} s; 16 kHz mono WAV, "
        f"44.1 kHz stereo FLAC, 48 kHz stereo WAV; {min(GAINS):+d}..{max(GAINS):+d} dB around {BASE_DBFS:g} dBFS RMS)"
    )


def compare(runs: list[dict]) -> list[dict]:
    """Each speechint run against the fastest faster-whisper run: wall ratio and WER, with the goals."""
    same = [r for r in runs if r["system"] == FW_MODES[SAME_WORK_MODE]]
    fws = [r for r in runs if not r["system"].startswith("speechint") and r not in same]
    if not fws:
        return []
    fastest = min(fws, key=lambda r: r["wall_s"])
    best_wer = min(r["score"]["wer"] for r in fws)
    out = []
    for r in runs:
        if r["system"].startswith("speechint"):
            ratio = r["wall_s"] / fastest["wall_s"]
            out.append(
                {
                    "system": r["system"],
                    "fastest_fw": fastest["system"],
                    "wall_ratio": ratio,
                    "wer": r["score"]["wer"],
                    "fastest_fw_wer": fastest["score"]["wer"],
                    "best_fw_wer": best_wer,
                    "speed_goal_met": ratio <= 0.8,
                    "wer_goal_met": r["score"]["wer"] <= fastest["score"]["wer"],
                    "same_work": {
                        "system": same[0]["system"],
                        "wall_ratio": r["wall_s"] / same[0]["wall_s"],
                        "wer": same[0]["score"]["wer"],
                    }
                    if same
                    else None,
                }
            )
    return out


def print_table(title: str, runs: list[dict], comparisons: list[dict]) -> None:
    print(f"\n{title}")
    w = max(len(r["system"]) for r in runs) + 2
    head = (
        f"{'system':<{w}}{'wall s':>8}{'RTF':>8}{'WER %':>7}{'ins':>5}{'del':>5}{'sub':>5}{'words':>7}"
        f"{'peak RSS MB':>13}"
    )
    print(head)
    print("-" * len(head))
    for r in runs:
        s = r["score"]
        note = f"  exit {r['returncode']}, no output for {len(r['missing'])} file(s)" if r["missing"] else ""
        print(
            f"{r['system']:<{w}}{r['wall_s']:>8.1f}{s['rtf']:>8.4f}{100 * s['wer']:>7.1f}{s['insertions']:>5}"
            f"{s['deletions']:>5}{s['substitutions']:>5}{s['words']:>7}{r['peak_rss_mb']:>13.0f}{note}"
        )
    for c in comparisons:
        ok = {True: "met", False: "NOT met"}
        print(
            f"{c['system']} / fastest faster-whisper ({c['fastest_fw']}): {c['wall_ratio']:.2f}x wall "
            f"(goal <= 0.80: {ok[c['speed_goal_met']]}); WER {100 * c['wer']:.1f} % vs "
            f"{100 * c['fastest_fw_wer']:.1f} % (goal no worse: {ok[c['wer_goal_met']]}; "
            f"best faster-whisper WER {100 * c['best_fw_wer']:.1f} %)"
        )
        if c.get("same_work"):
            sw = c["same_work"]
            print(
                f"{c['system']} / the same decoding work ({sw['system']}): {sw['wall_ratio']:.2f}x wall; "
                f"WER {100 * c['wer']:.1f} % vs {100 * sw['wer']:.1f} %"
            )


def run_set(
    name: str,
    recs: list[Recording],
    run_dir: Path,
    variants: list[str],
    modes: list[str],
    threads: int,
    app: bool = False,
) -> list[dict]:
    """Every system over the same files, one after the other, one run each."""
    files = [r.path for r in recs]
    runs = []
    for i, variant in enumerate(variants):
        print(f"[{name}] running speechint {variant}".rstrip(), file=sys.stderr)
        runs.append(run_speechint(variant, files, run_dir / f"speechint-{i}"))
    if app:
        print(f"[{name}] running the app's queue", file=sys.stderr)
        runs.append(run_app(files, run_dir / "app"))
    for mode in modes:
        print(f"[{name}] running {FW_MODES[mode]}", file=sys.stderr)
        runs.append(run_fw(mode, files, run_dir / f"fw-{mode}", threads))
    for r in runs:
        r["score"] = score(r, recs)
    log_failures(runs)
    return runs


def _git_state() -> str:
    def git(*a: str) -> str:
        return subprocess.run(["git", *a], cwd=REPO, capture_output=True, text=True).stdout.strip()

    dirty = git("status", "--porcelain", "speechint_desktop")
    return git("rev-parse", "--short", "HEAD") + (" + uncommitted engine changes" if dirty else "")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sets", default="short,long", help="short, long or both (default short,long)")
    ap.add_argument("--seed", type=int, default=0, help="seed of both sets")
    ap.add_argument("--espeak", type=int, default=24, help="espeak-ng clips in the short set (default 24)")
    ap.add_argument("--files", type=int, default=3, help="long recordings (default 3)")
    ap.add_argument("--minutes", type=float, default=10.0, help="length of each long recording (default 10)")
    ap.add_argument("--stereo48k", action="store_true", help="48 kHz stereo long recordings, not 16 kHz mono")
    ap.add_argument(
        "--cache", type=Path, default=DEFAULT_CACHE, help=f"clips, corpus and runs (default {DEFAULT_CACHE})"
    )
    ap.add_argument(
        "--speechint-args",
        action="append",
        metavar="ARGS",
        help="one speechint variant: extra 'analyze' arguments, written with '=' "
        "(--speechint-args='--compute int8'); repeat for several; default: one run with the defaults",
    )
    ap.add_argument(
        "--fw",
        default="vad,novad,batched,words",
        help="faster-whisper configurations (default vad,novad,batched,words; words = batched at beam 5 with word "
        "timestamps, the same decoding work as speechint's defaults, compared on a line of its own)",
    )
    ap.add_argument(
        "--app", action="store_true", help="also the desktop app's queue (its AnalysisWorker) over each set"
    )
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="faster-whisper cpu_threads")
    ap.add_argument("--report", type=Path, help="JSON report (default: report.json in the run folder)")
    args = ap.parse_args(argv)
    sets = [s for s in args.sets.split(",") if s]
    modes = [m for m in args.fw.split(",") if m]
    if bad := [s for s in sets if s not in ("short", "long")] + [m for m in modes if m not in FW_MODES]:
        ap.error(f"unknown set or faster-whisper configuration: {bad}")
    variants = args.speechint_args or [""]

    corpora: dict[str, tuple[str, list[Recording], dict]] = {}
    if "short" in sets:
        recs = built_apart(build_short_clips, args.cache, args.seed, args.espeak)
        corpora["short"] = (
            "(a) short clips: " + _describe_short(recs),
            recs,
            {"folder": str(recs[0].path.parent)},
        )
    if "long" in sets:
        spec = CorpusSpec(
            minutes=args.minutes,
            seed=args.seed,
            sample_rate=48000 if args.stereo48k else 16000,
            channels=2 if args.stereo48k else 1,
        )
        recs = built_apart(build_corpus, spec, args.files, args.cache)
        title = (
            f"(b) long recordings: {len(recs)} x {args.minutes:g} min ({spec.sample_rate} Hz, {spec.channels} ch, "
            f"longform_data.py seed {args.seed}), {sum(r.duration_s for r in recs) / 60:.1f} min"
        )
        corpora["long"] = (
            title,
            recs,
            {"folder": str(spec.folder(args.cache)), "spec": dataclasses.asdict(spec)},
        )

    run_root = args.cache / "runs" / f"speed-{time.strftime('%Y%m%d-%H%M%S')}"
    print(f"outputs: {run_root}", file=sys.stderr)
    warm_page_cache()
    report: dict = {
        "engine": _git_state(),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "faster_whisper_threads": args.threads,
        "sets": {},
    }
    for name, (title, recs, info) in corpora.items():
        runs = run_set(name, recs, run_root / name, variants, modes, args.threads, args.app)
        comparisons = compare(runs)
        report["sets"][name] = {
            "title": title,
            "corpus": {
                **info,
                "audio_s": sum(r.duration_s for r in recs),
                "files": [str(r.path) for r in recs],
            },
            "systems": runs,
            "comparisons": comparisons,
        }
        print_table(title, runs, comparisons)
        sys.stdout.flush()

    print(
        f"\nengine {report['engine']}; {os.cpu_count()} cores; wall = whole process (imports, model load, "
        "all files), one run; RTF = wall / audio; WER with Whisper's English normaliser; peak RSS of the process"
    )
    path = args.report or run_root / "report.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=1) + "\n")
    print(f"report: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
