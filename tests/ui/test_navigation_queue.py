"""Working in the app day to day: zoom to a segment, click the plot, play with Space; remove rows,
undo Clear, analyse again with another model, export a selection with a failed file; and the queue
coming back after the app is killed mid-queue. Real widgets, the real tiny.en, real speech."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from PySide6.QtCore import QPointF, Qt

from speechint_desktop.ui.navigation import fmt_clock, zoom_range
from speechint_desktop.ui.results_table import (
    CANCELLED,
    DONE,
    DURATION,
    FAILED,
    INTEGRATED,
    INTERRUPTED,
    MODEL,
    PREDICTED,
    RUNNING,
    STATUS,
    ResultsModel,
    fmt_duration,
)

REPO = Path(__file__).resolve().parents[2]


def click_plot(qtbot, plots, t: float) -> None:
    """A real left click on the loudness plot at time ``t`` (through the view's viewport)."""
    vb = plots.loud_plot.vb
    y = sum(vb.viewRange()[1]) / 2
    scene = vb.mapViewToScene(QPointF(t, y))
    pos = plots.view.mapFromScene(scene)
    qtbot.mouseClick(plots.view.viewport(), Qt.MouseButton.LeftButton, pos=pos)


def test_clock_axis_and_zoom_range():
    assert fmt_clock(754.0) == "12:34"
    assert fmt_clock(3725.0) == "1:02:05"
    assert fmt_clock(65.4, spacing=0.1) == "1:05.4"
    assert fmt_clock(5.0) == "0:05"
    lo, hi = zoom_range((600.0, 604.0), 660.0)
    assert lo < 600.0 and hi > 604.0 and hi - lo < 8  # the span fills most of the view
    assert zoom_range((0.1, 0.3), 660.0)[0] == 0.0  # never before the start


def test_queue_progress_counts_fractions(qtbot, tmp_path):
    from PySide6.QtWidgets import QProgressBar, QWidget

    from speechint_desktop.ui.analysis_worker import AnalysisWorker
    from speechint_desktop.ui.queue_manager import QueueManager
    from speechint_desktop.ui.settings import Settings

    window = QWidget()
    qtbot.addWidget(window)
    window.queue_bar = QProgressBar()
    results = ResultsModel(window)
    worker = AnalysisWorker("tiny.en", parent=window)  # never started: the queue just fills
    q = QueueManager(window, results, None, worker, Settings(str(tmp_path / "s.ini")), tmp_path)
    rows = q.enqueue(["/a/0.wav", "/a/1.wav", "/a/2.wav"])
    assert window.queue_bar.format() == "0 of 3 files"
    results.update(rows[0].key, status=DONE)
    results.update(rows[1].key, status=RUNNING, fraction=0.33)
    q.update_bar()
    q.save_queue()
    assert window.queue_bar.format() == "1.33 of 3 files"
    assert window.queue_bar.value() == 133 and window.queue_bar.maximum() == 300
    # the queue file lists what has no result yet, for a restart after a crash
    expected = [("/a/1.wav", "interrupted"), ("/a/2.wav", "interrupted")]
    qtbot.waitUntil(lambda: [(p.path, p.status) for p in q.store.load_rows()] == expected, timeout=5_000)


def test_navigate_a_segment(qtbot, make_window, wait_queue, jfk_path, ldc_path):
    w = make_window()
    w.add_paths([jfk_path])
    wait_queue(w)
    a = w.results.rows[0].analysis
    assert len(a.segments) >= 2, [s.text for s in a.segments]
    qtbot.waitUntil(lambda: w.transcript.rowCount() == len(a.segments), timeout=5_000)
    # the whole file first, on a clock axis
    lo, hi = w.plots.view_range()
    assert lo <= 0.1 and hi >= a.duration_s - 0.2
    assert w.plots.loud_plot.getAxis("bottom").tickStrings([0, 5, 10], 1, 5) == ["0:00", "0:05", "0:10"]

    # clicking a segment zooms both plots to it, with a little context
    seg = a.segments[1]
    w.transcript.selectRow(1)
    lo, hi = w.plots.view_range()
    assert lo < seg.start and hi > seg.end, (lo, hi, seg)
    assert hi - lo < (seg.end - seg.start) * 2 + 1.5
    assert w.plots.selected_span() == (seg.start, seg.end)
    assert w.plots.loud_plot.viewRange()[0] == pytest.approx(w.plots.wave_plot.viewRange()[0])

    # a word zooms too
    word = seg.words[0]
    from speechint_desktop.ui.transcript import WORDS

    w.transcript_pane.set_mode(WORDS)
    w.words.select_word(w.words.row_of(word))
    lo, hi = w.plots.view_range()
    assert lo < word.start and hi > word.end and hi - lo < 3.0

    # back to the whole file, then a click on the plot inside segment 0 selects it and seeks
    w.transcript_pane.set_mode("segments")
    w.plots.show_all()
    first = a.segments[0]
    t = (first.start + first.end) / 2
    click_plot(qtbot, w.plots, t)
    assert w.transcript.selected_indexes() == [0]
    assert w.plots.selected_span() == (first.start, first.end)
    assert w.navigator.cursor == pytest.approx(t, abs=0.15)
    assert w.plots.playhead.position == pytest.approx(t, abs=0.15)

    # Space plays what is selected (the player is asked at once, output device or not)
    w.table.setFocus()
    with qtbot.waitSignal(w.player.requested, timeout=2_000) as req:
        qtbot.keyClick(w.table, Qt.Key.Key_Space)
    assert req.args[1:] == [first.start, first.end]

    # a file being analysed shows its own time axis and waveform, not the previous file's view
    seen = {}

    def started(key):
        w.table.select_key(key)

    def decoded(key, duration):
        seen.update(analysis=w.plots.analysis, view=w.plots.view_range(), duration=duration,
                    text=w.plots.placeholder.toPlainText())  # fmt: skip

    w.worker.started_file.connect(started)
    w.worker.decoded.connect(decoded)
    w.add_paths([ldc_path])
    qtbot.waitUntil(lambda: "view" in seen, timeout=60_000)
    assert seen["analysis"] is None
    assert seen["view"][1] == pytest.approx(seen["duration"], abs=0.2) and seen["duration"] < 4
    assert seen["text"].startswith("Analysing")


def _alias_of_tiny(tmp_path: Path, tiny_en_dir: Path) -> Path:
    """A second "model": a local checkpoint folder linking tiny.en's files."""
    alias = tmp_path / "tiny-alias"
    alias.mkdir()
    for f in Path(tiny_en_dir).iterdir():
        (alias / f.name).symlink_to(f)
    return alias


def test_manage_rows(qtbot, make_window, wait_queue, jfk_path, tmp_path, tiny_en_dir):
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF\x00\x00\x00\x00WAVEthis is not audio")
    w = make_window()
    questions = []
    answers = []
    w.queue.ask = lambda title, text: (questions.append(text), answers.pop(0))[1]
    w.add_paths([broken])
    wait_queue(w)
    w.add_paths([jfk_path])
    qtbot.waitUntil(lambda: len(w.results.rows) == 2, timeout=10_000)
    wait_queue(w)
    assert [r.status for r in w.results.rows] == [FAILED, DONE]
    assert w.results.data(w.results.index(1, MODEL)) == "tiny.en"

    # the same file with the same model asks; "No" leaves the table as it was
    answers.append(False)
    w.add_paths([jfk_path])
    qtbot.waitUntil(lambda: len(questions) == 1, timeout=10_000)
    assert "already analysed with tiny.en" in questions[0]
    assert len(w.results.rows) == 2

    # another model: a new row, with its Model column filled
    alias = _alias_of_tiny(tmp_path, tiny_en_dir)
    w.use_checkpoint(str(alias))
    w.table.selectRow(1)
    w.reanalyse_action.trigger()
    qtbot.waitUntil(lambda: len(w.results.rows) == 3, timeout=5_000)
    wait_queue(w, timeout=240_000)
    third = w.results.rows[2]
    assert third.status == DONE, third.error
    assert third.path == str(jfk_path) and third.model == str(alias)
    assert w.results.data(w.results.index(2, MODEL)) == "tiny-alias (local)"
    assert "country" in third.analysis.text.lower()
    assert len(questions) == 1  # a new model did not ask

    # export the selection (a result and the failed file): the failed one is named in the message
    w.table.clearSelection()
    w.table.selectRow(0)
    w.table.selectionModel().select(
        w.table.model().index(1, 0),
        w.table.selectionModel().SelectionFlag.Select | w.table.selectionModel().SelectionFlag.Rows,
    )
    rows = w.table.selected_rows()
    assert {r.status for r in rows} == {DONE, FAILED}
    out = tmp_path / "out"
    from speechint_desktop.ui.exports import left_out_text

    said = []  # the exporter's own messages (the status bar may show a later one by then)
    w.exporter.message.connect(said.append)
    w.exporter.export([r.analysis for r in rows if r.analysis], "vtt", str(out), left_out_text(rows))
    qtbot.waitUntil(lambda: any(m.startswith("Exported") for m in said), timeout=10_000)
    msg = next(m for m in said if m.startswith("Exported"))
    assert "Exported 1 file as VTT" in msg and "broken.wav (failed)" in msg
    assert (out / "jfk.vtt").read_text().startswith("WEBVTT")
    w.exporter.export([r.analysis for r in w.results.rows if r.analysis], "csv", str(tmp_path / "a.csv"))
    qtbot.waitUntil(lambda: any("rows (one per file)" in m for m in said), timeout=10_000)
    assert any("Exported 2 rows" in m for m in said)

    # Delete removes the selected row (from the session too); Undo brings it back
    saved_before = len(w.store.load_rows())
    w.table.setFocus()
    w.table.clearSelection()
    w.table.selectRow(2)
    qtbot.keyClick(w.table, Qt.Key.Key_Delete)
    assert [r.status for r in w.results.rows] == [FAILED, DONE]
    assert len(w.store.load_rows()) == saved_before - 1
    w.undo_action.trigger()
    assert [r.status for r in w.results.rows] == [FAILED, DONE, DONE]
    assert len(w.store.load_rows()) == saved_before

    # Clear asks; "No" keeps everything, "Yes" empties the table, Undo restores it all
    answers.append(False)
    w.clear_action.trigger()
    assert len(w.results.rows) == 3
    old_session = w.settings.session
    answers.append(True)
    w.clear_action.trigger()
    assert w.results.rows == [] and w.settings.session != old_session
    w.undo_action.trigger()
    assert [r.status for r in w.results.rows] == [FAILED, DONE, DONE]
    assert w.settings.session == old_session and w.store.root.name == old_session

    # a restart shows the same rows, models included
    models = [r.model for r in w.results.rows]
    w.close()
    w2 = make_window(wait_model=False)
    qtbot.waitUntil(lambda: len(w2.results.rows) == 3, timeout=10_000)
    assert [r.model for r in w2.results.rows] == models
    assert [r.status for r in w2.results.rows] == [FAILED, DONE, DONE]


KILLED_APP = textwrap.dedent(
    """
    import sys
    from PySide6.QtWidgets import QApplication
    app = QApplication([])
    from speechint_desktop.ui.main_window import MainWindow
    from speechint_desktop.ui.settings import Settings
    home, files = sys.argv[1], sys.argv[2:]
    w = MainWindow(settings=Settings(home + "/settings.ini"), home=home, model="tiny.en", device="cpu")
    w.show()
    def started(key):
        done = [r for r in w.results.rows if r.status == "done"]
        if done:
            w.settings.sync()
            print("READY", flush=True)
    w.worker.started_file.connect(started)
    w.add_paths(files)
    app.exec()
    """
)


def test_queue_survives_kill(qtbot, make_window, wait_queue, jfk_path, ldc_path, ui_home, tmp_path):
    import numpy as np
    import soundfile as sf

    from speechint_desktop.core import audio

    # analysed first (folders are expanded sorted) and alone: longer than a clip that joins a group
    first = tmp_path / "first.wav"
    jfk = audio.to_model_input(audio.load_audio(jfk_path))
    sf.write(first, np.concatenate([jfk, np.zeros(16000, np.float32)] * 3), 16000)
    files = [str(first)]
    for i in range(3):
        p = tmp_path / f"take{i}.flac"
        shutil.copy(jfk_path, p)
        files.append(str(p))
    env = dict(os.environ, PYTHONPATH=str(REPO), QT_QPA_PLATFORM="offscreen")
    proc = subprocess.Popen(
        [sys.executable, "-c", KILLED_APP, str(ui_home), *files],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        deadline = time.monotonic() + 300
        line = ""
        while "READY" not in line:
            assert time.monotonic() < deadline and proc.poll() is None, "the app did not get going"
            line = proc.stdout.readline()
        os.kill(proc.pid, signal.SIGKILL)  # mid-queue: the short clips' group has just started
    finally:
        proc.kill()
        proc.wait(10)

    w = make_window(home=ui_home)
    qtbot.waitUntil(lambda: len(w.results.rows) == 4, timeout=15_000)
    statuses = {Path(r.path).name: r.status for r in w.results.rows}
    assert statuses["first.wav"] == DONE
    assert [statuses[f"take{i}.flac"] for i in range(3)] == [INTERRUPTED] * 3
    i = w.results.position(files[1])
    assert w.results.data(w.results.index(i, STATUS)) == "interrupted"
    assert "Retry" in w.results.data(w.results.index(i, STATUS), Qt.ItemDataRole.ToolTipRole)
    assert w.results.rows[0].analysis.text

    # Retry (from the row's context menu) analyses the interrupted files
    w.table.clearSelection()
    w.table.selectRow(1)
    assert w.retry_action in w.table.actions()
    w.retry_action.trigger()
    qtbot.waitUntil(lambda: w.results.rows[1].status == DONE, timeout=120_000)
    assert "country" in w.results.rows[1].analysis.text.lower()
    assert [r.status for r in w.results.rows[2:]] == [INTERRUPTED, INTERRUPTED]
    assert CANCELLED not in [r.status for r in w.results.rows]


def test_level_selector_switches_every_line_and_label(qtbot, word_analysis):
    from speechint_desktop.ui.plots import AnalysisPlots

    plots = AnalysisPlots()
    qtbot.addWidget(plots)
    a = word_analysis()  # model intensity -24.1, trained on RMS dBFS
    plots.set_analysis(a)

    def legend():
        return [label.text for _, label in plots.legend.items]

    assert plots.rms.isVisible() and not plots.momentary.isVisible()
    assert "Model intensity (dBFS)" in legend() and not any("LUFS" in t for t in legend())
    assert plots.predicted_line.isVisible() and "dBFS" in plots.predicted_line.label.format
    assert plots.loud_plot.getAxis("left").labelText == "Level (dBFS)"
    assert list(plots.seg_measured.getData()[1][:2]) == [a.segments[0].rms_dbfs] * 2

    plots.set_unit("LUFS")
    assert plots.momentary.isVisible() and plots.short_term.isVisible() and not plots.rms.isVisible()
    assert not any("dBFS" in t for t in legend()), legend()
    assert "Segment LUFS" in legend() and "Detected speech" in legend()
    assert plots.loud_plot.getAxis("left").labelText == "Loudness (LUFS)"
    assert "LUFS" in plots.measured_line.label.format
    assert list(plots.seg_measured.getData()[1][:2]) == [a.segments[0].lufs] * 2
    # the model's dBFS estimate is not drawn on a LUFS scale
    assert not plots.predicted_line.isVisible() and len(plots.seg_predicted.getData()[0] or []) == 0


def test_no_output_device_is_one_plain_sentence(qtbot, jfk_path):
    from speechint_desktop.ui.playback import NO_OUTPUT, Player, output_problem

    if output_problem() is None:
        pytest.skip("this machine has an audio output device")
    player = Player()
    with qtbot.waitSignal(player.message, timeout=20_000) as said:
        player.play(str(jfk_path), (0.0, 1.0))
    assert said.args[0] == NO_OUTPUT and "-1" not in said.args[0]
    assert not player.playing


def test_input_devices_by_human_name(pulse_mic):
    from speechint_desktop.ui.device_names import human_name
    from speechint_desktop.ui.recorder import list_input_devices

    assert human_name("default") == "System default"
    assert human_name("HDA Intel PCH: ALC3246 Analog (hw:0,0)") == "HDA Intel PCH: ALC3246 Analog"
    labels = {d.name: d.label for d in list_input_devices(refresh=True)}
    assert "pulse" in labels, labels
    assert labels["pulse"] == "Sound server: Monitor of Null Output", labels


def test_drag_on_the_plot_selects_a_span(qtbot, word_analysis):
    from PySide6.QtTest import QTest

    from speechint_desktop.ui.plots import AnalysisPlots

    plots = AnalysisPlots()
    qtbot.addWidget(plots)
    plots.resize(900, 500)
    plots.show()
    qtbot.waitExposed(plots)
    plots.set_analysis(word_analysis())
    vb = plots.loud_plot.vb
    y = sum(vb.viewRange()[1]) / 2

    def at(t):
        return plots.view.mapFromScene(vb.mapViewToScene(QPointF(t, y)))

    port = plots.view.viewport()
    with qtbot.waitSignal(plots.region_changed, timeout=2_000) as changed:
        QTest.mousePress(port, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, at(0.8))
        for t in (0.9, 1.2, 1.6, 2.0):
            QTest.mouseMove(port, at(t))
        QTest.mouseRelease(port, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, at(2.0))
    a, b = changed.args
    assert a == pytest.approx(0.8, abs=0.05) and b == pytest.approx(2.0, abs=0.05)
    assert plots.selected_span() == pytest.approx((a, b))
    assert plots.view_range()[0] < 0.1  # a drag selects; it does not pan


def test_a_file_fills_in_while_it_is_analysed(qtbot, make_window, wait_queue, jfk_path, tmp_path):
    """The selected file being analysed shows its loudness as soon as the file is read and its
    transcript batch by batch, before the result replaces them."""
    import numpy as np
    import soundfile as sf

    from speechint_desktop.core import audio

    jfk = audio.to_model_input(audio.load_audio(jfk_path))
    gap = np.zeros(2 * 16000, np.float32)
    long = tmp_path / "four-times.wav"
    sf.write(long, np.concatenate([jfk, gap] * 4), 16000)

    w = make_window()
    seen = []

    def started(key):
        w.table.select_key(key)

    def partial(key, analysis):  # runs after the view's own slot (connected first)
        row = w.table.current_row()
        seen.append(
            dict(
                running=row.analysis is None,
                shown=w.plots.analysis is analysis,
                curve=0 if w.plots.momentary.getData()[0] is None else len(w.plots.momentary.getData()[0]),
                segments=w.transcript.rowCount(),
                duration=w.results.data(w.results.index(0, DURATION)),
                integrated=w.results.data(w.results.index(0, INTEGRATED)),
                model_level=w.results.data(w.results.index(0, PREDICTED)),
                status=w.statusBar().currentMessage(),
            )
        )

    w.worker.started_file.connect(started)
    w.worker.partial_file.connect(partial)
    w.add_paths([str(long)])
    wait_queue(w)
    assert seen and all(s["running"] and s["shown"] for s in seen), seen
    assert seen[0]["curve"] > 0 and seen[0]["segments"] == 0  # loudness first
    assert seen[0]["duration"] == fmt_duration(sf.info(long).duration)  # the length from the header
    # the loudness columns fill in once the file is read; the model's reading waits for the result
    assert all(s["integrated"].endswith("LUFS") and not s["model_level"] for s in seen), seen
    said = [s["status"] for s in seen if s["status"].startswith("Analysing")]
    assert said and all(m.count("four-times.wav") == 1 for m in said), said  # named once
    assert max(s["segments"] for s in seen) > 0  # then text, before the result
    a = w.results.rows[0].analysis
    assert a is not None
    qtbot.waitUntil(lambda: w.plots.analysis is a, timeout=5_000)  # the result replaces the preview
    assert seen[0]["integrated"] == w.results.data(w.results.index(0, INTEGRATED))
    assert w.results.rows[0].preview is None and w.results.data(w.results.index(0, PREDICTED))
    assert w.transcript.rowCount() == len(a.segments)


def test_a_row_selected_while_queued_says_when_it_runs(
    qtbot, make_window, wait_queue, jfk_path, ldc_path, tmp_path
):
    """The panel above the transcript names the selected row's state: a row picked while it
    waits says "analysing" once its turn comes, not "queued" until the result."""
    import numpy as np
    import soundfile as sf

    from speechint_desktop.core import audio

    jfk = audio.to_model_input(audio.load_audio(jfk_path))
    first = tmp_path / "first.wav"  # long enough (~2 s to analyse) to pick the second meanwhile
    sf.write(first, np.concatenate([jfk, np.zeros(32000, np.float32)] * 4), 16000)
    w = make_window()
    said = []
    w.add_paths([str(first), ldc_path])
    qtbot.waitUntil(lambda: len(w.results.rows) == 2, timeout=10_000)
    second = w.results.rows[1]
    w.table.select_key(second.key)
    assert "queued" in w.summary.text()
    w.worker.partial_file.connect(lambda key, a: said.append(w.summary.text()) if key == second.key else None)
    wait_queue(w)
    assert said and all("analysing" in s and "queued" not in s for s in said), said
