"""Take the README's screenshots of the desktop app under a virtual X screen (Xvfb).

    .venv/bin/python scripts/screenshots.py [--out docs/screenshots] [--model tiny.en]

Starts ``Xvfb :99 -screen 0 1600x1000x24``, runs the real app on it with private settings and a
temporary data folder, analyses real speech (../shared/audio, JFK brought to -16 LUFS, JFK with one
utterance 15 dB quieter, an espeak-ng sentence and a broken file), and grabs the whole screen
with ImageMagick's ``import``: ``main-window.png`` with results (segments),
``main-window-words.png`` with the word list and a word selected, ``compliance.png`` (the
compliance panel and the queue's Spec column), ``quiet-words.png`` (the shaded word list with
its quiet words, one selected), ``normalize.png`` (the Normalize dialog after a run), then
``training-tab.png`` while a short training of the model is running (``--no-training`` skips it).
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

REPO = Path(__file__).resolve().parents[1]
SHARED_AUDIO = REPO.parent / "shared" / "audio"


def start_xvfb(display: str) -> subprocess.Popen:
    proc = subprocess.Popen(["Xvfb", display, "-screen", "0", "1600x1000x24", "-nolisten", "tcp"])
    deadline = time.monotonic() + 10
    sock = Path(f"/tmp/.X11-unix/X{display.lstrip(':')}")
    while not sock.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            sys.exit("Xvfb did not start")
        time.sleep(0.1)
    return proc


def shoot(path: Path, window: str = "root") -> None:
    """The whole screen, or one top-level window by its X id (a dialog: Xvfb has no window manager
    to draw its frame, so it is taken alone)."""
    subprocess.run(["import", "-window", window, str(path)], check=True)
    print(f"wrote {path}")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=str(REPO / "docs" / "screenshots"))
    ap.add_argument("--model", default="tiny.en")
    ap.add_argument("--display", default=":99")
    ap.add_argument("--no-training", action="store_true", help="skip the training-tab screenshot")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    xvfb = start_xvfb(args.display)
    os.environ["DISPLAY"] = args.display
    os.environ["QT_QPA_PLATFORM"] = "xcb"
    work = Path(tempfile.mkdtemp(prefix="speechint-shots-"))
    try:
        return run(args, out, work)
    finally:
        xvfb.terminate()
        xvfb.wait(10)
        shutil.rmtree(work, ignore_errors=True)


def run(args, out: Path, work: Path) -> int:
    from PySide6.QtCore import QEventLoop, QTimer

    from speechint_desktop.ui.app import create_app
    from speechint_desktop.ui.main_window import MainWindow
    from speechint_desktop.ui.settings import Settings

    app = create_app([])  # noqa: F841 — must stay alive while the window runs

    def wait(pred, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not pred():
            if time.monotonic() > deadline:
                raise SystemExit(f"timed out waiting for {what}")
            loop = QEventLoop()
            QTimer.singleShot(50, loop.quit)
            loop.exec()

    def settle(seconds: float) -> None:
        end = time.monotonic() + seconds
        wait(lambda: time.monotonic() > end, seconds + 1, "settle")

    master, quiet = make_delivery_files(work)
    speech = work / "espeak-sentence.wav"
    subprocess.run(
        ["espeak-ng", "-v", "en-gb", "-s", "150", "-w", str(speech),
         "Voice intensity and transcript, measured in one pass. Speak up a little, please."],
        check=True,
    )  # fmt: skip
    broken = work / "corrupted-upload.wav"
    broken.write_bytes(b"RIFF\x00\x00\x00\x00WAVEnot really audio")
    files = [SHARED_AUDIO / "jfk.flac", SHARED_AUDIO / "LDC93S1.wav", master, quiet, speech, broken]

    w = MainWindow(
        settings=Settings(str(work / "settings.ini")), home=work / "home", model=args.model, device="cpu"
    )
    w.setGeometry(0, 0, 1600, 1000)
    w.show()
    wait(lambda: w.model_in_use is not None, 300, "the model")
    w.add_paths([str(f) for f in files])
    wait(lambda: not w.worker.busy and w.results.rows and w.results.count("queued") == 0, 300, "the analyses")
    w.table.select_path(str(files[0]))
    settle(0.5)
    w.transcript_pane.set_mode("segments")
    w.transcript.selectRow(1 if w.transcript.rowCount() > 1 else 0)
    settle(1.0)
    shoot(out / "main-window.png")

    # the word list, one word selected (its span selected in the plots)
    w.transcript_pane.set_mode("words")
    words = [x.text.strip().lower() for x in w.words.words]
    w.words.select_word(next((i for i, x in enumerate(words) if x.startswith("country")), 0))
    settle(1.0)
    shoot(out / "main-window-words.png")
    delivery_shots(w, out, files, master, quiet, work, wait, settle)
    if args.no_training:
        w.close()
        return 0

    # training tab, mid-run: a demo corpus, then a short full fine-tune with frequent validation
    tab = w.training
    w.tabs.setCurrentWidget(tab)
    tab.demo_n.setValue(24)
    tab.make_demo_corpus()
    wait(lambda: not tab.running, 300, "the demo corpus")
    tab.model_box.setEditText(args.model)
    tab.steps_spin.setValue(60)
    tab.eval_spin.setValue(3)
    tab.batch_spin.setValue(2)
    tab.lr_edit.setText("1e-5")
    tab.start_training()
    wait(lambda: tab.curves.points("wer") >= 3 or not tab.running, 900, "training curves")
    settle(1.0)
    shoot(out / "training-tab.png")
    tab.stop()
    wait(lambda: not tab.running, 30, "training to stop")
    w.close()
    return 0


def make_delivery_files(work: Path) -> tuple[Path, Path]:
    """JFK brought to -16 LUFS (meets Apple Podcasts), and JFK with "what your country can do for
    you" 15 dB quieter (quiet words)."""
    import numpy as np
    import soundfile as sf

    from speechint_desktop.core import loudness
    from speechint_desktop.core.audio import as_clip

    x, sr = sf.read(SHARED_AUDIO / "jfk.flac", dtype="float32", always_2d=True)
    lufs = loudness.measure(as_clip(x, sr), trace=False).integrated_lufs
    master = work / "inaugural-master.flac"
    sf.write(master, x * 10 ** ((-16.0 - lufs) / 20), sr, subtype="PCM_24")
    g = np.ones(len(x), np.float32)
    a, b = int(5.35 * sr), int(7.75 * sr)
    g[a:b] = 10 ** (-15 / 20)
    quiet = work / "inaugural-quiet-line.flac"
    sf.write(quiet, x * g[:, None], sr, subtype="PCM_24")
    return master, quiet


def delivery_shots(w, out: Path, files, master: Path, quiet: Path, work: Path, wait, settle) -> None:
    # the compliance panel: TIMIT's LDC93S1 against Apple Podcasts (loudness fails, true peak passes)
    wait(lambda: w.checker.is_ready, 60, "the delivery specs")
    w.compliance.set_spec("apple-podcasts")
    w.transcript_pane.set_mode("segments")
    w.table.select_path(str(files[1]))
    settle(1.0)
    w.statusBar().clearMessage()
    settle(0.3)
    shoot(out / "compliance.png")

    # quiet words: the line said 15 dB quieter is flagged, one of its words selected (and played)
    w.table.select_path(str(quiet))
    settle(0.5)
    w.transcript_pane.set_mode("words")
    panel = w.transcript_pane.words_panel
    if panel.quiet.items:
        pick = min(2, len(panel.quiet.items) - 1)
        panel.play_quiet(pick)
        panel.quiet.selectRow(pick)
        first = w.words.quiet_rows[0]
        w.words.scrollTo(w.words.table_model.index(max(0, first - 3), 0), w.words.ScrollHint.PositionAtTop)
        status = w.statusBar().currentMessage
        wait(lambda: w.player.playing or "audio" in status(), 20, "playback to start")
    settle(1.0)
    w.player.stop()
    w.statusBar().clearMessage()  # no sound card under Xvfb: "No audio output available"
    settle(0.3)
    shoot(out / "quiet-words.png")

    # Normalize…: four files to Spotify into a folder, after the run
    w.transcript_pane.set_mode("segments")
    w.table.clearSelection()
    for f in (files[0], files[1], master, files[-1]):
        i = w.table.proxy.mapFromSource(w.results.index(w.results.position(str(f)), 0)).row()
        w.table.selectionModel().select(
            w.table.proxy.index(i, 0),
            w.table.selectionModel().SelectionFlag.Select | w.table.selectionModel().SelectionFlag.Rows,
        )
    w.normalize_selected()
    d = w._normalize_dialog
    d.spec_box.setCurrentIndex(d.spec_box.findData("spotify"))
    d.out_edit.setText(str(work / "delivered"))
    d.move(330, 200)
    d.start()
    wait(lambda: not d.running, 120, "normalising")
    settle(1.0)
    shoot(out / "normalize.png", hex(int(d.winId())))
    d.close()


if __name__ == "__main__":
    sys.exit(main())
