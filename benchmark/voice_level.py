"""The voice-level head against the meter on held-out real speech mixed with held-out real noise.

For each SNR (voice P.56 active level minus noise RMS) and for the clean speech re-gained so its
RMS spans −45…−5 dBFS, the RMSE against the clean voice's level of:

- the voice level: the head checked against the mix's P.56 level (``core.voice``), what the
  analysis reports as ``predicted_intensity``;
- the head (``--head``, default the shipped head of ``--model``) alone, on the clip's pooled frames;
- the meter's readings of the mix: RMS, integrated LUFS and the P.56 active level of the mix.

Defaults: the real speech and noise that ``training.voice_head`` never trains on
(``training.voice_mix.HELDOUT_*``; with ``--engine`` also the ``extra/vad`` recordings, real
speech with real pauses); ``--speech DIR --noise DIR`` measure any other set.
``--engine`` runs the whole analysis (speech detection, decoding, the head pooled over the
detected speech) instead of the head on the whole clip: slower, the app's own number. Where the
engine detects no speech it gives no number; the head's RMSE covers the others and ``n`` counts
the items without one.

    .venv/bin/python benchmark/voice_level.py
    .venv/bin/python benchmark/voice_level.py --speech my_clean/ --noise my_noise/ --head my.safetensors
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE.parent) not in sys.path:
    sys.path.insert(0, str(HERE.parent))

import numpy as np  # noqa: E402


def engine_predictions(model: str, head: str | None, items) -> tuple[np.ndarray, np.ndarray]:
    """Per item, the analysis' head reading and its voice level (``predicted_intensity``)."""
    from speechint_desktop.core.engine import Engine

    eng = Engine(model, head=head)
    raw, voice = [], []
    for i, h in enumerate(items):
        a = eng.analyze(h.audio)
        raw.append(np.nan if a.head_intensity is None else a.head_intensity)
        voice.append(np.nan if a.predicted_intensity is None else a.predicted_intensity)
        if (i + 1) % 20 == 0:
            print(f"  engine: {i + 1}/{len(items)}", file=sys.stderr, flush=True)
    return np.array(raw), np.array(voice)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="tiny.en")
    ap.add_argument("--head", default=None, help="head file (default: the one shipped for --model)")
    ap.add_argument("--target", choices=("asl", "rms"), default=None, help="default: the head's own")
    ap.add_argument(
        "--speech", default=None, help="folder of clean speech (default: the held-out real speech)"
    )
    ap.add_argument("--noise", default=None, help="folder of noise (default: the held-out real noise)")
    ap.add_argument("--levels-per-snr", type=int, default=3)
    ap.add_argument("--engine", action="store_true", help="through the whole analysis (VAD, decoding)")
    ap.add_argument("--json", default=None, help="also write the table as JSON")
    a = ap.parse_args(argv)

    from speechint_desktop.core import catalog
    from speechint_desktop.core.model import load_head
    from training import voice_head as vh
    from training import voice_mix as vm

    head = a.head or catalog.head_path(a.model)
    if head is None:
        print(f"error: no head for {a.model}", file=sys.stderr)
        return 2
    model, processor = vh.load(a.model)
    meta = load_head(model, head)
    target_name = meta["intensity_target"]
    target = a.target or ("rms" if target_name in ("rms_dbfs", "voice_rms_dbfs") else "asl")
    # the whole analysis pools the head over detected speech: it also gets real pauses
    speech = vm.load_folder(a.speech) if a.speech else vm.heldout_speech(pauses=a.engine)
    noise = vm.load_folder(a.noise) if a.noise else None
    t0 = time.monotonic()
    items = vm.heldout_sets(target, speech, noise, levels_per_snr=a.levels_per_snr)
    print(
        f"{len(items)} held-out items ({len({h.speech for h in items})} utterances, "
        f"noise: {sorted({h.noise for h in items if h.noise})}); head {Path(head).name} "
        f"(target {target_name}); truth: clean voice {target.upper()}",
        file=sys.stderr,
    )
    if a.engine:
        raw, voice = engine_predictions(a.model, str(head), items)
        rows = vh.heldout_table(model, processor, items, predictions=raw, fused=voice)
    else:
        rows = vh.heldout_table(model, processor, items)
    print(f"# {'engine' if a.engine else 'head on whole clips'}, {time.monotonic() - t0:.0f} s")
    print(vh.format_table(rows, f"{target.upper()} ({target_name} head)"))
    if a.json:
        from speechint_desktop.core.fsutil import atomic_write_text

        atomic_write_text(a.json, json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
