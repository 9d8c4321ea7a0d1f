"""Make the bundled self-test sample: espeak-ng speech, 16 kHz mono FLAC, normalised to -23 LUFS.

``resources/samples/selftest.flac`` + ``selftest.json`` (expected transcript and loudness) are
committed; rerun this only to change them. The expected loudness is measured with pyloudnorm's
"DeMan" K-weighting (an independent BS.1770 meter, see docs/machine-facts) on the file as
written, so the self-test checks SpeechInt's own meter against a second implementation. The
expected active speech level (ITU-T P.56, ``asl_dbfs``) is SpeechInt's own (``core.asl``; no
other implementation exists on PyPI): it pins the bundle's meter to the tested one and is what
a shipped voice-level head is checked against.

``--out DIR`` writes both files elsewhere (to compare a rerun with the committed ones).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pyloudnorm
import soundfile as sf

SAMPLES = Path(__file__).resolve().parents[1] / "resources" / "samples"
TEXT = "Please speak clearly into the microphone so we can measure how loud your voice is."
TARGET_LUFS = -23.0


def measure(path: Path) -> tuple[float, float, float]:
    x, sr = sf.read(path, dtype="float64", always_2d=True)
    meter = pyloudnorm.Meter(sr, filter_class="DeMan")
    lufs = meter.integrated_loudness(x)
    rms = 10 * np.log10(np.mean(x**2))
    return float(lufs), float(rms), len(x) / sr


def active_level(path: Path) -> float:
    """P.56 active speech level (dBFS) of the file, as ``analyze`` measures it (16 kHz mono)."""
    from speechint_desktop.core import audio
    from speechint_desktop.core.asl import active_speech_level

    x = audio.to_model_input(audio.load_audio(path))
    return active_speech_level(x, audio.MODEL_SAMPLE_RATE).rounded()[0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=SAMPLES, help=f"output folder (default {SAMPLES})")
    folder = parser.parse_args(argv).out
    for tool in ("espeak-ng", "sox"):
        if shutil.which(tool) is None:
            print(f"{tool} is not installed", file=sys.stderr)
            return 1
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / "selftest.flac"
    with tempfile.TemporaryDirectory() as tmp:
        raw, mono = Path(tmp) / "raw.wav", Path(tmp) / "mono.flac"
        subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", str(raw), TEXT], check=True)
        subprocess.run(["sox", str(raw), "-r", "16000", "-c", "1", "-b", "16", str(mono)], check=True)
        lufs, _, _ = measure(mono)
        gain = TARGET_LUFS - lufs
        subprocess.run(["sox", str(mono), str(out), "gain", f"{gain:.3f}"], check=True)
    lufs, rms, duration = measure(out)
    expected = {
        "file": out.name,
        "text": TEXT,
        "integrated_lufs": round(lufs, 2),
        "rms_dbfs": round(rms, 2),
        "asl_dbfs": round(active_level(out), 2),
        "duration_s": round(duration, 3),
        "sample_rate": 16000,
        "channels": 1,
        "made_with": "espeak-ng -v en-us -s 150; sox to 16 kHz mono 16-bit FLAC; gain to -23 LUFS",
        "loudness_reference": "pyloudnorm Meter(filter_class='DeMan'), ITU-R BS.1770-4",
    }
    (folder / "selftest.json").write_text(json.dumps(expected, indent=2) + "\n")
    print(f"{out.name}: {duration:.2f} s, {lufs:.2f} LUFS, {rms:.2f} dBFS RMS, {out.stat().st_size} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
