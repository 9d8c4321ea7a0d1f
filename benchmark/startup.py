"""Start-up: how long until the engine can decode, and a whole run on one short clip (issue 9: ≤ 1.5 s).

A user who analyses one voice memo waits mostly for imports and the model load, so this times,
in fresh processes, interleaved and repeated (medians; the machine is shared, so a single run
says little):

- ``python -c pass``: the interpreter alone, the floor under everything;
- ``engine ready``: from the interpreter's start to ``Engine("tiny.en")`` returning, the imports
  and the model load of ``speechint analyze`` (measured inside the child from the process's own
  start time, so the interpreter's start-up counts too), and which heavy modules it imported;
- ``speechint analyze CLIP``: the whole command on a 3 s real-speech clip (JSON out);
- faster-whisper int8 (same weights): ``WhisperModel`` ready, and a whole run on the same clip
  (sequential, with its VAD filter), as the reference.

    .venv/bin/python benchmark/startup.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))

from benchmark.common import run_fw, run_speechint, subprocess_env, warm_page_cache  # noqa: E402

HEAVY = ("torch", "transformers", "scipy", "silero_vad", "av", "onnxruntime", "ctranslate2")

# Seconds from the process's start (its creation time in /proc, not the first line of Python)
# until the engine is ready, then the heavy modules that were imported on the way.
ENGINE_READY = """
import os, time
tick = os.sysconf("SC_CLK_TCK")
with open("/proc/self/stat") as f:
    started = int(f.read().rsplit(")", 1)[1].split()[19]) / tick
with open("/proc/uptime") as f:
    boot_offset = time.time() - float(f.read().split()[0])
from speechint_desktop.core.engine import Engine
engine = Engine("tiny.en")
import json, sys
print(json.dumps({"ready_s": time.time() - (boot_offset + started), "backend": engine.backend,
                  "imported": [m for m in %r if m in sys.modules]}))
"""


def _python_pass() -> float:
    t = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], check=True, env=subprocess_env())
    return time.perf_counter() - t


def _engine_ready() -> dict:
    t = time.perf_counter()
    r = subprocess.run(
        [sys.executable, "-c", ENGINE_READY % (HEAVY,)],
        capture_output=True,
        text=True,
        env=subprocess_env(),
        cwd=REPO,
        check=True,
    )
    out = json.loads(r.stdout.strip().splitlines()[-1])
    out["wall_s"] = time.perf_counter() - t
    return out


def _clip(folder: Path) -> Path:
    """The first 3 s of the JFK recording (real speech), 16-bit WAV."""
    import soundfile as sf

    x, sr = sf.read(str(REPO.parent / "shared" / "audio" / "jfk.flac"), dtype="int16")
    path = folder / "clip3s.wav"
    sf.write(str(path), x[: 3 * sr], sr)
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args(argv)
    warm_page_cache()
    rows: dict[str, list[float]] = {}
    ready: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="speechint-startup-") as tmp:
        tmp = Path(tmp)
        clip = _clip(tmp)
        run_speechint("", [clip], tmp / "warm")  # untimed: a first run may convert the model
        for i in range(args.repeats):
            rows.setdefault("python -c pass", []).append(_python_pass())
            r = _engine_ready()
            ready.append(r)
            rows.setdefault("speechint: engine ready", []).append(r["ready_s"])
            si = run_speechint("", [clip], tmp / f"si{i}")
            if si["returncode"] != 0 or si["missing"]:
                raise SystemExit(f"speechint failed: see {si['log']}")
            rows.setdefault("speechint analyze (3 s clip)", []).append(si["wall_s"])
            fw = run_fw("vad", [clip], tmp / f"fw{i}", threads=2)
            if fw["returncode"] != 0 or fw["missing"]:
                raise SystemExit(f"faster-whisper failed: see {fw['log']}")
            rows.setdefault("faster-whisper: model ready (in-process)", []).append(fw["model_load_s"])
            rows.setdefault("faster-whisper run (3 s clip, vad)", []).append(fw["wall_s"])
    print(f"\nstart-up, medians of {args.repeats} (seconds; min–max)")
    for name, xs in rows.items():
        print(f"  {name:44s} {statistics.median(xs):6.2f}   ({min(xs):.2f}–{max(xs):.2f})")
    si, fw = (
        statistics.median(rows["speechint analyze (3 s clip)"]),
        statistics.median(rows["faster-whisper run (3 s clip, vad)"]),
    )
    print(f"  whole run, speechint / faster-whisper: {si / fw:.2f}x")
    print(
        f"  engine backend: {ready[-1]['backend']}; heavy modules imported: {', '.join(ready[-1]['imported'])}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
