"""The main window against the real tiny.en and real speech: open, drop, cancel, responsiveness."""

from __future__ import annotations

import shutil
import time

import numpy as np
import pytest
from PySide6.QtCore import QMimeData, QPointF, Qt, QTimer, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QApplication

from speechint_desktop.ui.results_table import CANCELLED, DONE, FAILED, INTEGRATED, STATUS, TRANSCRIPT


def drop(widget, paths) -> None:
    """Simulate dragging files from a file manager and dropping them on ``widget``."""
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    pos = QPointF(widget.width() / 2, widget.height() / 2)
    enter = QDragEnterEvent(
        pos.toPoint(),
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    QApplication.sendEvent(widget, enter)
    assert enter.isAccepted()
    event = QDropEvent(
        pos, Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier
    )
    QApplication.sendEvent(widget, event)
    assert event.isAccepted()


def test_open_real_speech_fills_transcript_and_plots(qtbot, make_window, wait_queue, jfk_path):
    w = make_window()
    w.add_paths([jfk_path])
    wait_queue(w)
    row = w.results.rows[0]
    assert row.status == DONE, row.error
    a = row.analysis
    assert "ask not what your country" in a.text.lower()
    assert w.table.current_row().path == str(jfk_path)

    # transcript: timed segments with measured loudness
    qtbot.waitUntil(lambda: w.transcript.rowCount() >= 1, timeout=5_000)
    assert "country" in w.transcript.text().lower()
    assert "dBFS" in w.transcript.cell(0, 3)

    # loudness plot: the three traces over the file's length, finite values
    x, y = w.plots.short_term.getData()
    assert x is not None and len(x) > 100 and abs(x[-1] - a.duration_s) < 0.5
    assert np.isfinite(y).sum() > 100
    assert np.isfinite(w.plots.rms.getData()[1]).sum() > 100
    assert np.isfinite(w.plots.momentary.getData()[1]).sum() > 100
    assert w.plots.measured_line.isVisible()

    # waveform: drawn from the min/max envelope, with real signal in it
    qtbot.waitUntil(
        lambda: w.plots.wave_curve.getData()[0] is not None and len(w.plots.wave_curve.getData()[0]) > 200
    )
    wx, wy = w.plots.wave_curve.getData()
    assert np.max(np.abs(wy)) > 0.05 and wx[-1] <= a.duration_s + 0.01

    # clicking a segment selects its span on both plots
    w.transcript.selectRow(0)
    seg = a.segments[0]
    lo, hi = w.plots.regions[1].getRegion()
    assert (lo, hi) == (seg.start, seg.end) and w.plots.regions[0].isVisible()

    # the summary and the row show the numbers
    assert "LUFS" in w.summary.text()
    assert "LUFS" in w.results.data(w.results.index(0, INTEGRATED))

    # the result was saved to the session as it completed
    saved = list((w.store.root).glob("*/*.json"))
    assert len(saved) == 1


def test_drop_three_files_one_broken(qtbot, make_window, wait_queue, jfk_path, ldc_path, tmp_path):
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF\x00\x00\x00\x00WAVEthis is not audio at all")
    w = make_window()
    with qtbot.waitSignal(w.worker.queue_done, timeout=120_000):
        drop(w, [jfk_path, broken, ldc_path])
    wait_queue(w)
    rows = {r.path.split("/")[-1]: r for r in w.results.rows}
    assert len(rows) == 3
    assert rows["jfk.flac"].status == DONE and rows["LDC93S1.wav"].status == DONE
    failed = rows["broken.wav"]
    assert failed.status == FAILED
    assert "broken.wav" in failed.error and "\n" not in failed.error
    i = w.results.position(failed.path)
    assert w.results.data(w.results.index(i, STATUS)) == "failed"
    assert w.results.data(w.results.index(i, TRANSCRIPT)) == failed.error  # the reason, in the row
    assert "Queue finished: 2 done, 1 failed" in w.statusBar().currentMessage()

    # sorting by integrated loudness keeps the failed row (no number) at one end
    w.table.sortByColumn(3, Qt.SortOrder.DescendingOrder)
    assert w.table.row_at(2).status == FAILED

    # export: SRT per file and one CSV row per file, written off the GUI thread
    analyses = w.results.analyses()
    out = tmp_path / "export"
    w.export(analyses, "srt", str(out))
    qtbot.waitUntil(lambda: w.statusBar().currentMessage().startswith("Exported"), timeout=10_000)
    assert sorted(p.name for p in out.iterdir()) == ["LDC93S1.srt", "jfk.srt"]
    assert "-->" in (out / "jfk.srt").read_text()
    w.export(analyses, "csv", str(tmp_path / "all.csv"))
    qtbot.waitUntil(lambda: (tmp_path / "all.csv").exists(), timeout=10_000)
    assert len((tmp_path / "all.csv").read_text().strip().splitlines()) == 3


def test_a_truncated_file_is_analysed_and_flagged(qtbot, make_window, wait_queue, jfk_path, tmp_path):
    """A copy cut off mid-file: what is there is analysed, and the row and the summary say that
    it is not the whole recording (the header's length against what decoded)."""
    cut = tmp_path / "jfk_cut.flac"
    data = jfk_path.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    w = make_window()
    w.add_paths([jfk_path, cut])
    wait_queue(w)
    rows = {r.path.split("/")[-1]: r for r in w.results.rows}
    assert rows["jfk.flac"].status == DONE and rows["jfk_cut.flac"].status == DONE
    note = rows["jfk_cut.flac"].analysis.audio_note
    assert note.startswith("only 5.") and "of the 11.0 s its header gives" in note
    assert rows["jfk.flac"].analysis.audio_note is None
    qtbot.waitUntil(
        lambda: "Queue finished: 2 done (1 damaged or truncated ⚠)." in w.statusBar().currentMessage()
    )
    cell = {r.path: w.results.index(w.results.position(r.path), STATUS) for r in w.results.rows}
    assert w.results.data(cell[str(cut)]) == "done ⚠"
    assert w.results.data(cell[str(cut)], Qt.ItemDataRole.ToolTipRole) == note
    assert w.results.data(cell[str(jfk_path)]) == "done"
    w.table.select_path(str(cut))
    qtbot.waitUntil(lambda: "⚠ only 5." in w.summary.text(), timeout=5_000)
    w.table.select_path(str(jfk_path))
    qtbot.waitUntil(lambda: "jfk.flac" in w.summary.text(), timeout=5_000)
    assert "⚠" not in w.summary.text()


def test_cancel_mid_queue_then_keep_working(qtbot, make_window, wait_queue, jfk_path, tmp_path):
    files = []
    for i in range(4):
        p = tmp_path / f"take{i}.flac"
        shutil.copy(jfk_path, p)
        files.append(p)
    w = make_window()
    with qtbot.waitSignal(w.worker.started_file, timeout=30_000):
        w.add_paths(files)
    with qtbot.waitSignal(w.worker.queue_done, timeout=60_000):
        w.cancel_all()
    statuses = [w.results.row_for(str(p)).status for p in files]
    assert statuses[0] in (CANCELLED, DONE)
    assert statuses[1:] == [CANCELLED] * 3
    assert "cancelled" in w.statusBar().currentMessage()

    # the worker keeps going after a cancel: re-queue one file and it completes
    with qtbot.waitSignal(w.worker.queue_done, timeout=60_000):
        w.add_paths([files[2]])
    assert w.results.row_for(str(files[2])).status == DONE


def test_gui_never_stalls_during_analysis(qtbot, make_window, wait_queue, jfk_path, ldc_path, tmp_path):
    # enough audio for the analysis to outlast 50 ticks of the timer (two clips now take ~0.5 s)
    files = [jfk_path, ldc_path]
    for i in range(2):
        files.append(tmp_path / f"again{i}.flac")
        shutil.copy(jfk_path, files[-1])
    w = make_window()
    gaps = []
    last = [time.perf_counter()]

    def tick():
        now = time.perf_counter()
        gaps.append(now - last[0])
        last[0] = now

    timer = QTimer()
    timer.setInterval(10)
    timer.timeout.connect(tick)
    timer.start()
    with qtbot.waitSignal(w.worker.queue_done, timeout=120_000):
        w.add_paths(files)
    timer.stop()
    assert w.results.count(DONE) == len(files)
    assert len(gaps) > 50
    worst = max(gaps)
    print(f"event loop: {len(gaps)} ticks, worst gap {worst * 1000:.0f} ms")
    # the analysis shares 2 cores with the GUI (and, in CI, with nothing else): 28–83 ms measured
    # idle, ~100 ms under load 6; 200 ms is where a user sees the window hang
    assert worst < 0.200, f"the GUI thread stalled for {worst * 1000:.0f} ms"


def test_results_survive_restart(qtbot, make_window, wait_queue, jfk_path, ui_home):
    w = make_window()
    w.add_paths([jfk_path])
    wait_queue(w)
    a = w.results.rows[0].analysis
    w.close()
    w2 = make_window(wait_model=False)
    qtbot.waitUntil(lambda: len(w2.results.rows) == 1, timeout=10_000)
    restored = w2.results.rows[0].analysis
    assert restored.text == a.text
    assert restored.loudness.trace is not None and len(restored.loudness.trace.times) > 100
    # word timings, detected speech and the speech-only loudness come back too
    assert restored.vad and restored.speech == a.speech and restored.speech
    words = [x.text for s in a.segments for x in s.words]
    assert words and [x.text for s in restored.segments for x in s.words] == words
    assert restored.loudness.speech_integrated_lufs == pytest.approx(a.loudness.speech_integrated_lufs)
    qtbot.waitUntil(lambda: w2.words.rowCount() == len(words), timeout=5_000)
    assert w2.plots.speech == restored.speech
