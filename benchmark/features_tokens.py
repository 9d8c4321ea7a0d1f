"""The CTranslate2 path's input features and tokenizer without transformers, against transformers.
Prints times and ratios; asserts nothing.

    .venv/bin/python benchmark/features_tokens.py [--model tiny.en] [--repeats 7]

- import: a fresh interpreter importing ``core.mel`` + ``core.tokenizer`` and loading the model's
  tokenizer, against one importing transformers' WhisperFeatureExtractor + WhisperTokenizerFast
  and loading the same (each the median of ``--repeats`` runs);
- features: ``core.mel.log_mel`` of 8 windows of 30 s of real speech against
  ``WhisperFeatureExtractor(...)(chunks, return_tensors="np")`` (best of ``--repeats``);
- decode: 1000 token sequences (real text, timestamps and specials interleaved), ours and
  transformers' ``decode(skip_special_tokens=True)``.
"""

from __future__ import annotations

import argparse
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

AUDIO = REPO.parent / "shared" / "audio"

OURS = """
import time; t0 = time.perf_counter()
from speechint_desktop.core import mel, tokenizer
tok = tokenizer.Tokenizer.from_folder({folder!r}); s = mel.settings({folder!r})
print(time.perf_counter() - t0)
"""
THEIRS = """
import time; t0 = time.perf_counter()
from transformers import WhisperFeatureExtractor, WhisperTokenizerFast
tok = WhisperTokenizerFast.from_pretrained({folder!r}); fe = WhisperFeatureExtractor.from_pretrained({folder!r})
print(time.perf_counter() - t0)
"""


def import_time(code: str, repeats: int) -> float:
    runs = []
    for _ in range(repeats):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        runs.append(float(out.stdout.split()[-1]))
    return statistics.median(runs)


def best(f, repeats: int) -> float:
    """Best wall-clock time of ``repeats`` runs (after one warm-up)."""
    return best_wall_cpu(f, repeats)[0]


def best_wall_cpu(f, repeats: int) -> tuple[float, float]:
    """Best wall-clock and best CPU time (all threads) of ``repeats`` runs."""
    f()
    wall, cpu = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        f()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return min(wall), min(cpu)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="tiny.en")
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args()

    from speechint_desktop.core import catalog

    folder = str(catalog.model_folder(args.model))
    ours = import_time(OURS.format(folder=folder), args.repeats)
    theirs = import_time(THEIRS.format(folder=folder), args.repeats)
    print(
        f"import + load tokenizer: ours {ours * 1000:.0f} ms, transformers {theirs * 1000:.0f} ms, x{theirs / ours:.1f}"
    )

    from transformers import WhisperFeatureExtractor, WhisperTokenizerFast

    from speechint_desktop.core import mel
    from speechint_desktop.core.audio import load_audio, to_model_input
    from speechint_desktop.core.tokenizer import Tokenizer

    jfk = to_model_input(load_audio(AUDIO / "jfk.flac"))
    ldc = to_model_input(load_audio(AUDIO / "LDC93S1.wav"))
    speech = np.tile(np.concatenate([jfk, ldc]), 3)
    chunks = [speech[i * 8000 : i * 8000 + 480000] for i in range(8)]
    cfg = mel.settings(folder)
    fe = WhisperFeatureExtractor.from_pretrained(folder)
    a, a_cpu = best_wall_cpu(lambda: mel.log_mel(chunks, config=cfg), args.repeats)
    b, b_cpu = best_wall_cpu(lambda: fe(chunks, sampling_rate=16000, return_tensors="np"), args.repeats)
    err = np.abs(
        mel.log_mel(chunks, config=cfg) - fe(chunks, sampling_rate=16000, return_tensors="np").input_features
    )
    print(
        f"log-mel of 8 x 30 s: ours {a * 1000:.1f} ms, transformers {b * 1000:.1f} ms, x{b / a:.2f} "
        f"(CPU time ours {a_cpu * 1000:.1f} ms, transformers {b_cpu * 1000:.1f} ms; max diff {err.max():.1e})"
    )

    ref, tok = WhisperTokenizerFast.from_pretrained(folder), Tokenizer.from_folder(folder)
    rng = random.Random(0)
    words = "and so my fellow americans ask not what your country can do for you, it's 3.14 o'clock!".split()
    seqs = []
    for _ in range(1000):
        text = ref.encode(" " + " ".join(rng.choices(words, k=rng.randint(3, 30))), add_special_tokens=False)
        seqs.append([tok.sot, tok.timestamp_begin, *text, tok.timestamp_begin + 100, tok.eos_token_id])
    a = best(lambda: [tok.decode(s, skip_special_tokens=True) for s in seqs], args.repeats)
    b = best(lambda: [ref.decode(s, skip_special_tokens=True) for s in seqs], args.repeats)
    same = all(
        tok.decode(s, skip_special_tokens=True) == ref.decode(s, skip_special_tokens=True) for s in seqs
    )
    print(
        f"decode 1000 sequences: ours {a * 1000:.1f} ms, transformers {b * 1000:.1f} ms, x{b / a:.2f} (identical: {same})"
    )


if __name__ == "__main__":
    main()
