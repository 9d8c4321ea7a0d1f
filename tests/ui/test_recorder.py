"""Recording through a real PortAudio input: a PulseAudio null sink fed with espeak speech."""

from __future__ import annotations

import math
import shutil
import subprocess
from pathlib import Path

import pytest
import soundfile as sf

from speechint_desktop.ui.recorder import LevelMeter
from speechint_desktop.ui.results_table import DONE

SENTENCE = "Ask not what your country can do for you, ask what you can do for your country."


def speech_16k(tmp_path: Path) -> Path:
    """espeak-ng speech resampled to the sink's rate (16 kHz mono), with silence either side."""
    if not (shutil.which("espeak-ng") and shutil.which("sox")):
        pytest.fail("espeak-ng and sox are needed (apt)")
    raw = tmp_path / "raw.wav"
    out = tmp_path / "speech16k.wav"
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", str(raw), SENTENCE], check=True)
    subprocess.run(
        ["sox", str(raw), "-r", "16000", "-c", "1", "-b", "16", str(out), "pad", "0.3", "0.3"], check=True
    )
    return out


def test_record_real_input_then_analyse(qtbot, make_window, wait_queue, pulse_mic, tmp_path, ui_home):
    wav = speech_16k(tmp_path)
    w = make_window()
    panel = w.recorder
    panel.refresh_devices()
    qtbot.waitUntil(lambda: panel.device_box.findData("pulse") >= 0, timeout=10_000)
    panel.select_device("pulse")
    assert panel.current_device() == "pulse"

    w.record_action.trigger()  # the toolbar's Record
    assert panel.recording and w.record_action.text() == "Stop"
    qtbot.waitUntil(panel.recorder.first_block.is_set, timeout=10_000)  # the first callback comes late
    levels = []
    player = pulse_mic(wav)
    qtbot.waitUntil(lambda: levels.append(panel.meter.hold) or player.poll() is not None, timeout=30_000)
    assert player.returncode == 0
    qtbot.wait(400)
    assert "0:0" in panel.elapsed_label.text() and panel.recorder.elapsed_s > 2

    with qtbot.waitSignal(panel.take_saved, timeout=10_000) as saved:
        w.record_action.trigger()  # Stop
    assert not panel.recording and w.record_action.text() == "Record"
    take = Path(saved.args[0])
    assert take.parent == ui_home / "recordings" and take.exists()
    info = sf.info(take)
    source_s = sf.info(wav).duration
    assert info.samplerate == 16000 and source_s - 0.5 < info.duration < source_s + 3
    assert max(v for v in levels if math.isfinite(v)) > -30  # the meter moved while speech played

    wait_queue(w)
    row = w.results.row_for(str(take))
    assert row is not None and row.status == DONE, row and row.error
    text = row.analysis.text.lower()
    assert "country" in text, text


def test_no_microphone_is_a_plain_message(qtbot, make_window):
    w = make_window(wait_model=False)
    panel = w.recorder
    panel._set_devices([])  # what the panel shows when PortAudio lists no input
    messages = []
    panel.message.connect(messages.append)
    w.record_action.trigger()
    assert not panel.recording and not w.record_action.isChecked()
    assert messages and messages[-1].startswith("No microphone found")
    assert panel.device_box.currentText() == "No microphone found"


def test_level_meter_peak_hold(qtbot):
    meter = LevelMeter()
    qtbot.addWidget(meter)
    meter.set_level(-20, -6)
    meter.set_level(-30, -25)
    assert meter.hold == -6  # held
    meter._hold_time -= 5
    meter.set_level(-30, -25)
    assert meter.hold == -25  # released after the hold time
    meter.grab()  # paints without error
