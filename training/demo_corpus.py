"""A speech corpus made on the spot with espeak-ng, so training works offline.

Several voices, rates and pitches speak distinct sentences; each clip gets a known gain so the
levels span ~45 dB (LibriSpeech's span only a few). Sentences never cross splits, so the
validation and test WER measure unseen text. The layout is 🤗 ``audiofolder``:
``OUT/<split>/metadata.csv`` with ``file_name,transcription`` plus the recipe columns.

    python -m training.demo_corpus OUT --n 300
"""

from __future__ import annotations

import argparse
import csv
import io
import itertools
import random
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from speechint_desktop.core.audio import AudioError, load_audio, to_model_input
from speechint_desktop.core.fsutil import atomic_dir, atomic_write_bytes, atomic_write_text
from speechint_desktop.core.loudness import rms_dbfs, sample_peak_dbfs

SAMPLE_RATE = 16000
SPLITS = ("train", "validation", "test")
VOICES = (
    "en-us",
    "en-gb",
    "en-gb-scotland",
    "en-us+f3",
    "en-us+m3",
    "en-gb+f2",
    "en-gb+m1",
    "en-gb-scotland+f4",
    "en-us+m7",
    "en-gb-x-rp+f1",
)
RATES = (130, 145, 160, 175, 190)
PITCHES = (30, 40, 50, 60, 70)
# Target RMS levels in dBFS: a 48 dB span, from a quiet far-away voice to a hot podcast mix.
LEVEL_RANGE_DB = (-62.0, -14.0)
PEAK_CEILING_DBFS = -0.5

_SUBJECTS = (
    "the old farmer",
    "my younger sister",
    "a tired student",
    "the museum guide",
    "our new neighbour",
    "the night nurse",
    "a quiet engineer",
    "the ship captain",
    "her best friend",
    "the village baker",
    "a famous painter",
    "the local doctor",
    "the bus driver",
    "an honest lawyer",
    "the football coach",
    "my grandfather",
    "the young pilot",
    "a curious child",
    "the head chef",
    "the radio host",
)
_VERBS = (
    "carried",
    "painted",
    "found",
    "cleaned",
    "sold",
    "opened",
    "borrowed",
    "repaired",
    "described",
    "forgot",
    "measured",
    "delivered",
    "hid",
    "photographed",
    "ordered",
    "returned",
)
_OBJECTS = (
    "a wooden chair",
    "the broken window",
    "seven green apples",
    "an empty bottle",
    "the silver key",
    "a heavy suitcase",
    "the morning paper",
    "two warm blankets",
    "a small red boat",
    "the kitchen table",
    "a box of old letters",
    "the garden gate",
    "a bright yellow kite",
    "the winter coat",
    "a jar of honey",
)
_PLACES = (
    "before lunch",
    "near the river",
    "after the storm",
    "in the dark hallway",
    "on a cold Sunday",
    "behind the station",
    "at the edge of town",
    "during the concert",
    "under the bridge",
    "late last night",
    "beside the market",
    "in the quiet library",
)
_QUESTIONS = (
    "Did {s} really leave {o} {p}?",
    "Why would {s} want {o} {p}?",
    "Have you seen {o} that {s} {v}?",
)
_STATEMENTS = (
    "{S} {v} {o} {p}.",
    "{P}, {s} {v} {o}.",
    "Everyone knew that {s} {v} {o} {p}.",
    "{S} never {v} {o}, not even {p}.",
)


@dataclass(frozen=True)
class Recipe:
    """How one clip was made: enough to re-create it and to know its level exactly."""

    file_name: str
    transcription: str
    voice: str
    rate: int
    pitch: int
    gain_db: float


def sentence_bank(n: int, seed: int = 0) -> list[str]:
    """``n`` distinct sentences from templates (statements and questions), in a seeded order."""
    rng = random.Random(seed)
    combos = list(itertools.product(range(len(_SUBJECTS)), range(len(_VERBS)), range(len(_OBJECTS))))
    rng.shuffle(combos)
    out: list[str] = []
    seen: set[str] = set()
    templates = _STATEMENTS + _QUESTIONS
    for i, (si, vi, oi) in enumerate(combos):
        if len(out) >= n:
            break
        t = templates[i % len(templates)]
        p = _PLACES[rng.randrange(len(_PLACES))]
        s = _SUBJECTS[si]
        text = t.format(
            s=s, S=s[0].upper() + s[1:], v=_VERBS[vi], o=_OBJECTS[oi], p=p, P=p[0].upper() + p[1:]
        )
        if text not in seen:
            seen.add(text)
            out.append(text)
    if len(out) < n:
        raise ValueError(f"the sentence bank holds only {len(out)} sentences (asked for {n})")
    return out


def split_sizes(n: int) -> dict[str, int]:
    """80/10/10, with at least one clip per split whenever n ≥ 3."""
    if n < 3:
        raise ValueError("--n must be at least 3 (one clip per split)")
    val = max(1, round(0.1 * n))
    test = max(1, round(0.1 * n))
    return {"train": n - val - test, "validation": val, "test": test}


def _speak(text: str, voice: str, rate: int, pitch: int, tmp: Path) -> np.ndarray:
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise RuntimeError("espeak-ng is not installed (apt-get install espeak-ng)")
    wav = tmp / "speak.wav"
    subprocess.run(
        [exe, "-v", voice, "-s", str(rate), "-p", str(pitch), "-w", str(wav), text],
        check=True,
        capture_output=True,
    )
    try:
        return to_model_input(load_audio(wav))
    except AudioError as e:  # pragma: no cover - espeak-ng always writes audio
        raise RuntimeError(f"espeak-ng produced no audio for {text!r}: {e}") from e


def _wav_bytes(x: np.ndarray) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, x, SAMPLE_RATE, subtype="PCM_16", format="WAV")
    return buf.getvalue()


def make_corpus(
    out: str | Path,
    n: int = 300,
    seed: int = 0,
    progress: Callable[[float, str], None] | None = None,
) -> dict[str, list[Recipe]]:
    """Write the corpus to ``out`` atomically; return the recipes per split."""
    rng = random.Random(seed)
    sizes = split_sizes(n)
    sentences = sentence_bank(n, seed)
    recipes: dict[str, list[Recipe]] = {}
    done = 0
    with atomic_dir(out) as root, tempfile.TemporaryDirectory() as tmpd:
        tmp = Path(tmpd)
        start = 0
        for split in SPLITS:
            rows: list[Recipe] = []
            (root / split).mkdir()
            for k, text in enumerate(sentences[start : start + sizes[split]]):
                voice = rng.choice(VOICES)
                rate, pitch = rng.choice(RATES), rng.choice(PITCHES)
                x = _speak(text, voice, rate, pitch, tmp)
                level = rng.uniform(*LEVEL_RANGE_DB)
                gain = level - rms_dbfs(x)
                gain = min(gain, PEAK_CEILING_DBFS - sample_peak_dbfs(x))  # never clip
                y = (x * 10 ** (gain / 20)).astype(np.float32)
                name = f"{split}_{k:05d}.wav"
                atomic_write_bytes(root / split / name, _wav_bytes(y))
                rows.append(Recipe(name, text, voice, rate, pitch, round(gain, 3)))
                done += 1
                if progress:
                    progress(done / n, f"{split}: {name}")
            buf = io.StringIO()
            w = csv.writer(buf, lineterminator="\n")
            w.writerow(["file_name", "transcription", "voice", "rate", "pitch", "gain_db"])
            for r in rows:
                w.writerow([r.file_name, r.transcription, r.voice, r.rate, r.pitch, r.gain_db])
            atomic_write_text(root / split / "metadata.csv", buf.getvalue())
            recipes[split] = rows
            start += sizes[split]
    return recipes


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="speechint demo-corpus", description=__doc__.splitlines()[0])
    ap.add_argument("out", help="output folder (audiofolder layout; replaced if it exists)")
    ap.add_argument("--n", type=int, default=300, help="number of clips over all splits (default 300)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    def report(frac: float, msg: str) -> None:
        print(f"[{frac:6.1%}] {msg}", flush=True)

    try:
        recipes = make_corpus(args.out, args.n, args.seed, progress=report)
    except (ValueError, RuntimeError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    counts = ", ".join(f"{k}={len(v)}" for k, v in recipes.items())
    print(f"wrote {args.out} ({counts})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
