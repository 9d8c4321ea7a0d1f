"""Screenshot of the app on a ~10 minute recording, zoomed to one segment while it plays.

Run under a real X server (``xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python
scripts/screenshot_long_recording.py docs/screenshots/long-recording-zoomed.png``). The recording
is built from the real speech in ../shared/audio (JFK, TIMIT, the two-speaker utterances) and
espeak-ng sentences, with pauses between them. A private PulseAudio null sink gives playback an
output device so the playhead runs. Needs the converted tiny.en (scripts/setup.sh).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "audio"
SR = 16000
SENTENCES = [
    "Welcome back to the show. Today we talk about how loud a voice really is.",
    "Loudness is not the same as level. Your ears weigh the middle frequencies more.",
    "A narrator who keeps an even voice makes the listener's job much easier.",
    "Let us take a short break, and then we will look at the numbers together.",
    "The integrated loudness of a podcast is usually around minus sixteen LUFS.",
    "Speech therapists often ask patients to read the same passage every week.",
    "When the voice drops at the end of a sentence, the words can get lost.",
    "That is all for this part. Thank you for listening, and see you next time.",
]


def _load(path: Path) -> np.ndarray:
    from speechint_desktop.core.audio import load_audio, to_model_input

    return to_model_input(load_audio(path))


def build(out: Path, minutes: float = 10.0) -> Path:
    """Real speech and espeak-ng sentences, 0.8–3 s pauses, at a few gains, to ``minutes``."""
    tmp = Path(tempfile.mkdtemp())
    pieces = [_load(SHARED / "jfk.flac"), _load(SHARED / "LDC93S1.wav")]
    pieces += [_load(p) for p in sorted((SHARED / "extra" / "speech").glob("*.wav"))]
    for i, text in enumerate(SENTENCES):
        wav = tmp / f"s{i}.wav"
        subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", str(wav), text], check=True)
        pieces.append(_load(wav))
    rng = np.random.default_rng(7)
    parts, total = [], 0
    while total < minutes * 60 * SR:
        x = pieces[int(rng.integers(len(pieces)))] * 10 ** (rng.uniform(-9, 0) / 20)
        pause = np.zeros(int(rng.uniform(0.8, 3.0) * SR), np.float32)
        parts += [x.astype(np.float32), pause]
        total += len(x) + len(pause)
    sf.write(out, np.concatenate(parts), SR, subtype="PCM_16")
    shutil.rmtree(tmp)
    return out


def start_pulse(tmp: Path) -> subprocess.Popen | None:
    exe = shutil.which("pulseaudio")
    if exe is None:
        return None
    runtime = tmp / "pulse"
    runtime.mkdir(mode=0o700)
    conf = tmp / "pulse.pa"
    conf.write_text(
        "load-module module-native-protocol-unix auth-anonymous=1\n"
        "load-module module-null-sink sink_name=speakers\nset-default-sink speakers\n"
    )
    env = dict(os.environ, XDG_RUNTIME_DIR=str(runtime), HOME=str(tmp))
    proc = subprocess.Popen(
        [exe, "-n", "--daemonize=no", "--exit-idle-time=-1", "-F", str(conf), "--log-target=stderr"],
        env=env,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(100):
        if (runtime / "pulse" / "native").exists():
            break
        time.sleep(0.05)
    os.environ["XDG_RUNTIME_DIR"] = str(runtime)
    os.environ["PULSE_SERVER"] = f"unix:{runtime / 'pulse' / 'native'}"
    return proc


def main() -> None:
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "long-recording.png").resolve()
    tmp = Path(tempfile.mkdtemp())
    pulse = start_pulse(tmp)
    audio = build(tmp / "episode-12.wav")

    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    app = QApplication([])
    from speechint_desktop.ui.main_window import MainWindow
    from speechint_desktop.ui.settings import Settings

    home = tmp / "home"
    w = MainWindow(settings=Settings(str(tmp / "settings.ini")), home=home, model="tiny.en", device="cpu")
    w.resize(1560, 960)
    w.show()
    state = {"t0": time.monotonic()}

    def shoot():
        subprocess.run(["import", "-window", "root", str(target)], check=True)
        print("saved", target, "playhead at", w.plots.playhead.position, "view", w.plots.view_range())
        app.quit()

    def finished(key, analysis):
        print(f"analysed {analysis.duration_s:.0f} s in {time.monotonic() - state['t0']:.0f} s")
        segs = analysis.segments
        k = min(range(len(segs)), key=lambda i: abs(segs[i].start - 0.6 * analysis.duration_s))
        QTimer.singleShot(500, lambda: w.transcript.selectRow(k))
        QTimer.singleShot(1500, w.play_selection)
        QTimer.singleShot(3200, shoot)

    w.worker.finished_file.connect(finished)
    QTimer.singleShot(500, lambda: w.add_paths([audio]))
    QTimer.singleShot(1800_000, app.quit)
    app.exec()
    w.close()
    if pulse is not None:
        pulse.send_signal(signal.SIGTERM)
        pulse.wait(5)
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
