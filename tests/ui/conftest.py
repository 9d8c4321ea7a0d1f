"""UI fixtures: a main window with private settings/data folders, and a PulseAudio "microphone"."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest


@pytest.fixture
def ui_home(tmp_path) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    return home


@pytest.fixture
def make_window(qtbot, ui_home, tiny_en_dir):
    """Build a MainWindow on the real tiny.en; waits until the model is loaded."""
    from speechint_desktop.ui.main_window import MainWindow
    from speechint_desktop.ui.settings import Settings

    windows = []

    def make(wait_model: bool = True, home: Path | None = None, **kw):
        settings = Settings(str((home or ui_home) / "settings.ini"))
        w = MainWindow(
            settings=settings, home=home or ui_home, model="tiny.en", device="cpu", **kw
        )  # installed by tiny_en_dir
        qtbot.addWidget(w)
        windows.append(w)
        if wait_model:
            with qtbot.waitSignal(w.worker.model_ready, timeout=120_000, raising=False) as blocker:
                w.show()
            if not blocker.signal_triggered:
                assert w.model_in_use, (
                    f"model did not load: {w.engine_label.text()} / {w.statusBar().currentMessage()}"
                )
        else:
            w.show()
        return w

    yield make
    for w in windows:
        w.close()


@pytest.fixture
def wait_queue(qtbot):
    """wait_queue(window): wait until no row is queued or analysing."""
    from speechint_desktop.ui.results_table import QUEUED, RUNNING

    def wait(window, timeout=120_000):
        def idle():
            assert window.results.rows
            assert window.results.count(QUEUED) == 0 and window.results.count(RUNNING) == 0
            row = window.table.current_row()
            if row is not None and row.analysis is not None:
                # the result is on show (it replaces the running file's preview a turn later)
                assert window.plots.analysis is row.analysis

        qtbot.waitUntil(idle, timeout=timeout)

    return wait


@pytest.fixture
def pulse_mic(tmp_path):
    """A PulseAudio daemon with a 16 kHz mono null sink whose monitor is the default source.

    Returns a function that starts playing a WAV into the sink (a Popen to wait on). The daemon
    runs with a private runtime dir and config and is killed at teardown.
    """
    exe = shutil.which("pulseaudio")
    paplay = shutil.which("paplay")
    if exe is None or paplay is None:
        pytest.fail(
            "pulseaudio / paplay are not installed (apt: pulseaudio pulseaudio-utils libasound2-plugins)"
        )
    runtime = tmp_path / "pulse-runtime"
    runtime.mkdir(mode=0o700)
    config = tmp_path / "pulse.pa"
    config.write_text(
        "load-module module-native-protocol-unix auth-anonymous=1\n"
        "load-module module-null-sink sink_name=vsink rate=16000 channels=1\n"
        "set-default-sink vsink\n"
        "set-default-source vsink.monitor\n"
    )
    env = dict(os.environ, XDG_RUNTIME_DIR=str(runtime), HOME=str(tmp_path))
    saved = {k: os.environ.get(k) for k in ("XDG_RUNTIME_DIR", "PULSE_SERVER")}
    proc = subprocess.Popen(
        [exe, "-n", "--daemonize=no", "--exit-idle-time=-1", "--disallow-exit", "--use-pid-file=no",
         "--system=false", "-F", str(config), "--log-target=stderr", "--log-level=error"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )  # fmt: skip
    socket = runtime / "pulse" / "native"
    deadline = time.monotonic() + 15
    while not socket.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            err = proc.stderr.read().decode() if proc.poll() is not None else "timeout"
            proc.kill()
            pytest.fail(f"pulseaudio did not start: {err}")
        time.sleep(0.05)
    os.environ["XDG_RUNTIME_DIR"] = str(runtime)
    os.environ["PULSE_SERVER"] = f"unix:{socket}"

    def play(wav: Path) -> subprocess.Popen:
        return subprocess.Popen([paplay, "--latency-msec=50", str(wav)], env=dict(os.environ))

    yield play
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture
def word_analysis():
    """word_analysis(source, vad=True): a hand-built 3 s Analysis with two segments of timed words."""
    import numpy as np

    from speechint_desktop.core.results import Analysis, Loudness, LoudnessTrace, Segment, Word

    def make(source: str = "/audio/hello.wav", vad: bool = True, words: bool = True) -> Analysis:
        t = np.arange(1, 301) * 0.01
        mom = np.full(300, -23.0)
        mom[:39] = -np.inf
        trace = LoudnessTrace(times=t, momentary_lufs=mom, short_term_lufs=mom.copy(), rms_dbfs=mom - 2)
        speech = [(0.2, 1.4), (1.7, 2.9)] if vad else []
        loud = Loudness(
            -23.0, 4.5, -25.0, -3.0, 3.0, trace=trace,
            speech_integrated_lufs=-20.5 if vad else None,
            speech_rms_dbfs=-22.25 if vad else None,
            speech_duration_s=2.4 if vad else None,
        )  # fmt: skip
        w1 = [Word(0.2, 0.62, " Hello", 0.97, -21.0, -19.5), Word(0.62, 1.4, " there,", 0.31, -24.0, -22.0)]
        w2 = [
            Word(1.7, 2.1, " quiet", 0.88, -30.0, -28.0),
            Word(2.1, 2.5, " little", 0.9, -29.0, -27.5),
            Word(2.5, 2.9, " world.", 0.95, -27.0, None),
        ]
        segs = [
            Segment(0.2, 1.4, " Hello there,", -22.0, -21.0, -22.4, words=w1 if words else []),
            Segment(1.7, 2.9, " quiet little world.", -28.0, -27.0, None, words=w2 if words else []),
        ]
        text = "Hello there, quiet little world."
        return Analysis(
            source,
            3.0,
            16000,
            1,
            text,
            segs,
            loud,
            "tiny.en",
            "en",
            -24.1,
            "rms_dbfs",
            speech=speech,
            vad=vad,
        )

    return make
