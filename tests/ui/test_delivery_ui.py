"""Delivery in the app: the compliance panel and the queue's Spec column, Normalize…, quiet words,
the word table export, the peaks in the summary.

Real speech throughout (../shared/audio), gain-adjusted to pass or fail; the analyses come from
the real tiny.en engine (analysed once for the module).
"""

from __future__ import annotations

import csv
import io
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf
from PySide6.QtCore import Qt

from speechint_desktop.core import delivery, loudness
from speechint_desktop.core.audio import as_clip
from speechint_desktop.core.export import WORDS_CSV_COLUMNS, to_words_csv
from speechint_desktop.ui.compliance import COLORS, CompliancePanel, SpecChecker
from speechint_desktop.ui.normalize_dialog import (
    CEILING,
    FILE,
    GAIN,
    INTEGRATED,
    RESULT,
    TRUE_PEAK,
    NormalizeDialog,
)
from speechint_desktop.ui.results_table import SPEC
from speechint_desktop.ui.results_table import TRUE_PEAK as TP_COLUMN
from speechint_desktop.ui.settings import Settings
from speechint_desktop.ui.summary import summary_html
from speechint_desktop.ui.transcript import WORDS
from speechint_desktop.ui.words import QUIET_COLOR, WordsView

QUIET_SPAN = (5.35, 7.75)  # "what your country can do for you" in jfk.flac, made 15 dB quieter
QUIET_WORDS = "what your country can do for you".split()


@pytest.fixture(scope="module")
def files(tmp_path_factory, jfk_path, ldc_path):
    """pass.flac: JFK at exactly -16 LUFS (Apple Podcasts); quiet.flac: JFK with one utterance
    at -15 dB; fail.wav: TIMIT's LDC93S1 as it is (-41 LUFS); broken.wav: not audio."""
    d = tmp_path_factory.mktemp("delivery")
    x, sr = sf.read(jfk_path, dtype="float32", always_2d=True)
    lufs = loudness.measure(as_clip(x, sr), trace=False).integrated_lufs
    ok = d / "pass.flac"
    sf.write(ok, x * 10 ** ((-16.0 - lufs) / 20), sr, subtype="PCM_24")
    g = np.ones(len(x), np.float32)
    a, b = (int(t * sr) for t in QUIET_SPAN)
    ramp = int(0.01 * sr)
    low = 10 ** (-15 / 20)
    g[a:b] = low
    g[a - ramp : a] = np.linspace(1, low, ramp)
    g[b : b + ramp] = np.linspace(low, 1, ramp)
    quiet = d / "quiet.flac"
    sf.write(quiet, x * g[:, None], sr, subtype="PCM_24")
    fail = d / "fail.wav"
    fail.write_bytes(ldc_path.read_bytes())
    broken = d / "broken.wav"
    broken.write_bytes(b"RIFF\x00\x00\x00\x00WAVEnot audio")
    return SimpleNamespace(ok=ok, quiet=quiet, fail=fail, broken=broken, dir=d)


@pytest.fixture(scope="module")
def analyses(files, tiny_en_dir):
    from speechint_desktop.core.engine import Engine

    engine = Engine("tiny.en", "cpu")
    out = {}
    for name in ("ok", "quiet", "fail"):
        a = engine.analyze(str(getattr(files, name)))
        a.source = str(getattr(files, name))
        out[name] = a
    return SimpleNamespace(**out)


def show(qtbot, window, *analyses) -> None:
    for a in analyses:
        window.results.set_analysis(a)
    window.table.select_path(analyses[0].source)
    qtbot.waitUntil(lambda: window.summary.text().startswith("<span"), timeout=30_000)
    qtbot.waitUntil(lambda: window.compliance.state is not None, timeout=30_000)


def spec_cell(window, path, role=Qt.ItemDataRole.DisplayRole):
    i = window.results.position(str(path))
    return window.results.data(window.results.index(i, SPEC), role)


def test_compliance_panel_and_spec_column(qtbot, make_window, analyses, files, ui_home):
    w = make_window(wait_model=False)
    assert w.checker.spec_name == "apple-podcasts"  # the default
    show(qtbot, w, analyses.ok, analyses.quiet, analyses.fail)

    # the file made to pass: every criterion listed with its measured value, limit and a green pass
    p = w.compliance
    assert p.spec_box.currentText() == "Apple Podcasts" and p.state == "pass"
    rows = p.rows()
    assert [r[0] for r in rows] == ["integrated loudness", "true peak"]
    assert rows[0][1] == "-16.0 LUFS" and rows[0][2] == "-16 ±1 LUFS" and rows[0][3] == "pass"
    assert rows[1][1].endswith("dBTP") and rows[1][2] == "≤ -1 dBTP" and rows[1][3] == "pass"
    assert "PASS" in p.verdict.text() and COLORS["pass"] in p.verdict.text()
    assert COLORS["pass"] in p.body.text() and "-16.0 LUFS" in p.body.text()

    # the queue's Spec column: ✓ / ✗ with the failed criteria in the tooltip, red for a fail
    assert spec_cell(w, files.ok) == "✓"
    assert spec_cell(w, files.fail) == "✗" and spec_cell(w, files.quiet) == "✗"
    tip = spec_cell(w, files.fail, Qt.ItemDataRole.ToolTipRole)
    assert "integrated loudness: -41." in tip and "(limit -16 ±1 LUFS)" in tip and "true peak" not in tip
    assert spec_cell(w, files.fail, Qt.ItemDataRole.ForegroundRole).name() == COLORS["fail"]
    i = w.results.position(str(files.ok))
    assert w.results.data(w.results.index(i, TP_COLUMN)).endswith("dBTP")

    # the failing file: red fail on loudness, true peak still passes
    w.table.select_path(str(files.fail))
    qtbot.waitUntil(lambda: p.state == "fail", timeout=30_000)
    assert [r[3] for r in p.rows()] == ["fail", "pass"] and "FAIL" in p.verdict.text()
    assert COLORS["fail"] in p.body.text()

    # EBU R128 (-23 ±0.5 LUFS): now the JFK at -16 fails, and the column follows
    p.set_spec("ebu-r128")
    assert w.settings.delivery_spec == "ebu-r128"
    assert spec_cell(w, files.ok) == "✗" and "-23 ±0.5 LUFS" in spec_cell(
        w, files.ok, Qt.ItemDataRole.ToolTipRole
    )

    # ACX needs the noise floor: measured off the GUI thread, "…" meanwhile, then known
    w.table.select_path(str(files.ok))
    p.set_spec("acx")
    names = [r[0] for r in p.rows()]
    assert names == ["RMS", "peak", "noise floor"]
    assert p.rows()[2][1] == "measuring…" and p.rows()[2][3] == "pending"
    qtbot.waitUntil(lambda: p.rows()[2][3] != "pending", timeout=60_000)
    floor = w.checker.noise_floor(str(files.ok))
    expected, _ = delivery.noise_floor(delivery.measure_file(files.ok).clip)
    assert floor.value == pytest.approx(expected, abs=0.01)
    assert p.rows()[2][1] == f"{expected:.1f} dBFS"
    # every row's noise floor gets measured for the column, one file at a time
    assert "noise floor still being measured" in spec_cell(w, files.fail, Qt.ItemDataRole.ToolTipRole)
    qtbot.waitUntil(
        lambda: all(w.checker.noise_floor(str(f)) for f in (files.quiet, files.fail)), timeout=60_000
    )
    assert "✗ noise floor: -46." in spec_cell(w, files.fail, Qt.ItemDataRole.ToolTipRole)  # above -60 dBFS
    assert not p.speech_box.isEnabled()  # ACX has no loudness target

    # speech-only loudness: judged on the detected speech alone
    p.set_spec("apple-podcasts")
    p.speech_box.setChecked(True)
    assert w.checker.spec().speech_only and w.settings.delivery_speech_only
    assert p.rows()[0][0] == "speech loudness"
    assert p.rows()[0][1] == f"{analyses.ok.loudness.speech_integrated_lufs:.1f} LUFS"
    p.speech_box.setChecked(False)

    # the choice is remembered, and a checker made from the same settings starts with it
    p.set_spec("spotify")
    w.settings.sync()
    again = SpecChecker(Settings(str(ui_home / "settings.ini")))  # the window's settings file
    assert again.spec_name == "spotify" and again.spec().title == "Spotify"
    panel = CompliancePanel(again)
    qtbot.addWidget(panel)
    assert panel.spec_box.currentData() == "spotify"
    assert [panel.spec_box.itemData(i) for i in range(panel.spec_box.count())] == list(delivery.PRESETS)


def test_summary_and_segments_show_true_peak_and_maxima(qtbot, make_window, analyses):
    a = analyses.ok
    text = summary_html(a)
    for value, unit in (
        (a.loudness.true_peak_dbtp, "dBTP"),
        (a.loudness.max_momentary_lufs, "LUFS"),
        (a.loudness.max_short_term_lufs, "LUFS"),
    ):
        assert value is not None and f"{value:.1f} {unit}" in text
    assert "True peak" in text and "max momentary" in text and "max short-term" in text

    w = make_window(wait_model=False)
    show(qtbot, w, a)
    assert "max short-term" in w.summary.text()
    seg = a.segments[0]
    assert seg.true_peak_dbtp is not None
    assert w.transcript.cell(0, 5) == f"{seg.true_peak_dbtp:.1f} dBTP"


def test_quiet_words_are_flagged_listed_and_played(qtbot, make_window, analyses, files, tmp_path):
    a = analyses.quiet
    words = [x for s in a.segments for x in s.words]
    # the quieted utterance's words, found by their text: the alignment may squeeze its last
    # word past the span's end (beam search put " you" at 7.81-7.84 s), where the 400 ms
    # momentary window still hears the quiet utterance
    said = [x.text.strip(" .,!?").lower() for x in words]
    first = next(i for i in range(len(said)) if said[i : i + len(QUIET_WORDS)] == QUIET_WORDS)
    inside = list(range(first, first + len(QUIET_WORDS)))
    assert all(QUIET_SPAN[0] - 0.1 <= words[i].start < QUIET_SPAN[1] + 0.1 for i in inside)

    w = make_window(wait_model=False)
    show(qtbot, w, a)
    w.transcript_pane.set_mode(WORDS)
    view, panel = w.words, w.transcript_pane.words_panel
    assert view.threshold == 6.0
    # the words of the utterance made 15 dB quieter, and only those, are flagged (momentary LUFS)
    assert view.quiet_rows == inside
    assert all(view.relative[i] < -6 for i in inside)
    model = view.table_model
    assert model.data(model.index(inside[0], 2), Qt.ItemDataRole.BackgroundRole) == QUIET_COLOR
    assert model.data(model.index(inside[0], 6)).startswith("-")
    loud_row = next(i for i in range(len(words)) if i not in inside)
    assert model.data(model.index(loud_row, 2), Qt.ItemDataRole.BackgroundRole) != QUIET_COLOR
    assert "below the file's median word" in model.data(
        model.index(inside[0], 2), Qt.ItemDataRole.ToolTipRole
    )
    # ... and listed under the word list
    assert panel.quiet.items == [words[i] for i in inside]
    assert f"{len(inside)} quiet words" in panel.quiet_label.text()

    # a stricter threshold flags fewer; it is remembered
    deepest = min(view.relative[i] for i in inside)
    panel.threshold_box.setValue(round(-deepest + 0.5, 1))
    assert view.quiet_rows == [] and "No quiet words" in panel.quiet_label.text()
    assert w.settings.quiet_word_lu == pytest.approx(round(-deepest + 0.5, 1))
    panel.threshold_box.setValue(6.0)
    assert view.quiet_rows == inside

    # clicking a quiet word selects it (its span in the plots) and plays it
    requests = []
    w.player.requested.connect(lambda path, s, e: requests.append((path, s, e)))
    k = len(inside) // 2
    word = words[inside[k]]
    index = panel.quiet.table_model.index(k, 1)
    panel.quiet.scrollTo(index)
    qtbot.mouseClick(
        panel.quiet.viewport(), Qt.MouseButton.LeftButton, pos=panel.quiet.visualRect(index).center()
    )
    assert view.selected_indexes() == [inside[k]]
    assert w.plots.selected_span() == pytest.approx((word.start, word.end))
    assert requests == [(a.source, pytest.approx(word.start), pytest.approx(word.end))]
    # (the span is then decoded off the GUI thread and played; with no sound card the status bar
    # says so, but other status messages may replace that line, so the request above is the check)

    # Export words (CSV): the core's word table, written atomically
    out = tmp_path / "words.csv"
    said = []
    w.exporter.message.connect(said.append)
    w.exporter.export_words([a], str(out))
    qtbot.waitUntil(lambda: bool(said), timeout=60_000)
    text = out.read_text()
    assert text == to_words_csv(a)
    rows = list(csv.DictReader(io.StringIO(text)))
    assert tuple(rows[0]) == WORDS_CSV_COLUMNS and len(rows) == len(words)
    assert rows[inside[0]]["text"] == words[inside[0]].text.strip()
    assert float(rows[inside[0]]["start"]) == pytest.approx(words[inside[0]].start, abs=0.001)
    assert float(rows[inside[0]]["max_momentary_lufs"]) == pytest.approx(
        words[inside[0]].max_momentary_lufs, abs=0.01
    )
    assert f"Exported {len(words)} words" in said[0]  # (the status line may show a later message)
    assert not list(tmp_path.glob(".words.csv.*"))  # no temporary file left behind


def test_quiet_words_without_levels(qtbot, word_analysis):
    view = WordsView()
    qtbot.addWidget(view)
    a = word_analysis()
    for s in a.segments:
        for x in s.words:
            x.max_momentary_lufs = None
    view.set_analysis(a)
    assert view.median is None and view.quiet_rows == [] and view.cell(0, 6) == "—"


def test_normalize_dialog_before_after(qtbot, make_window, analyses, files, tmp_path):
    w = make_window(wait_model=False)
    show(qtbot, w, analyses.ok, analyses.fail)
    w.results.add(str(files.broken), "failed")
    w.table.selectAll()
    w.normalize_action.trigger()  # the toolbar / Analysis menu / context-menu action
    d = w._normalize_dialog
    assert d is not None and d.isVisible()
    assert sorted(d.paths) == sorted(map(str, (files.ok, files.fail, files.broken)))
    assert d.spec().name == w.checker.spec_name == "apple-podcasts"
    assert d.out_dir() is None and not d.overwrite_box.isChecked()  # beside the inputs, never replacing one

    # Spotify: -14 LUFS, true peak <= -1 dBTP, into a folder
    d.spec_box.setCurrentIndex(d.spec_box.findData("spotify"))
    out = tmp_path / "delivered"
    d.out_edit.setText(str(out))
    qtbot.mouseClick(d.run_button, Qt.MouseButton.LeftButton)
    assert d.running and not d.run_button.isEnabled()  # the work is in a thread: the GUI goes on
    with qtbot.waitSignal(d.run_finished, timeout=60_000):
        pass
    assert d.progress.value() == 3 and d.status.text().startswith(
        "Done: 2 normalised, 1 limited by a ceiling, 1 failed"
    )

    by_name = {r.source.split("/")[-1]: (i, r) for i, r in enumerate(d.results)}
    i, ok = by_name["pass.flac"]
    # reached: the written file, measured again here, is at the target within 0.1 LU
    again = delivery.measure_file(ok.output)
    assert again.loudness.integrated_lufs == pytest.approx(-14.0, abs=0.1)
    assert again.loudness.true_peak_dbtp <= -1.0
    assert d.cell(i, FILE) == "pass.flac"
    assert d.cell(i, INTEGRATED) == f"-16.0 → {again.loudness.integrated_lufs:.1f} LUFS"
    assert d.cell(i, TRUE_PEAK).endswith(f"→ {again.loudness.true_peak_dbtp:.1f} dBTP")
    assert d.cell(i, GAIN) == "+2.00 dB" and d.cell(i, CEILING) == "—"
    assert d.cell(i, RESULT) == "✓ meets Spotify"
    assert ok.output == str(out / "pass.flac")

    # limited: LDC93S1's peaks stop it at the true-peak ceiling, and the dialog says so
    i, low = by_name["fail.wav"]
    assert low.limited and d.cell(i, CEILING) == "true-peak ceiling -1 dBTP"
    again = delivery.measure_file(low.output)
    assert again.loudness.integrated_lufs == pytest.approx(low.after, abs=0.1) and low.after < -15
    assert d.cell(i, RESULT).startswith(f"✗ reached {low.after:.1f} LUFS, not -14")
    assert again.loudness.true_peak_dbtp <= -1.0

    # the unreadable file: one line
    assert len(d.failures) == 1 and "broken.wav" in d.failures[0] and "\n" not in d.failures[0]
    assert "broken.wav" in d.failure_label.text()

    # the outputs can be analysed in the app
    assert d.analyse_button.isEnabled()
    with qtbot.waitSignal(w.files_added, timeout=60_000) as added:
        qtbot.mouseClick(d.analyse_button, Qt.MouseButton.LeftButton)
    assert sorted(added.args[0]) == sorted([ok.output, low.output])
    w.cancel_all()


def test_normalize_custom_target_and_cancel(qtbot, files, tmp_path):
    d = NormalizeDialog([files.fail, files.ok, files.quiet], list(delivery.PRESETS.values()), "acx")
    qtbot.addWidget(d)
    d.show()
    assert d.spec().name == "acx" and not d.speech_box.isEnabled()
    d.custom_radio.setChecked(True)
    d.target_spin.setValue(-30.0)
    d.ceiling_spin.setValue(-2.0)
    spec = d.spec()
    assert (spec.name, spec.target_lufs, spec.true_peak_max_dbtp) == ("custom", -30.0, -2.0)
    assert d.speech_box.isEnabled()

    # beside the input by default; cancelled right away, at most the file in progress is written
    d.start()
    d.cancel()
    with qtbot.waitSignal(d.run_finished, timeout=30_000):
        pass
    assert d.status.text().startswith("Cancelled: ") and "cancelled" in d.status.text()
    assert len(d.results) <= 1
    for r in d.results:
        assert r.output == str(files.dir / "fail-custom.wav")  # beside the input, named after the spec
        assert delivery.measure_file(r.output).loudness.integrated_lufs == pytest.approx(-30.0, abs=0.1)
    assert d.run_button.isEnabled()


def test_delivery_settings_round_trip(tmp_path):
    path = str(tmp_path / "s.ini")
    s = Settings(path)
    assert (s.delivery_spec, s.delivery_speech_only, s.quiet_word_lu) == ("apple-podcasts", False, 6.0)
    s.delivery_spec, s.delivery_speech_only, s.quiet_word_lu = "acx", True, 9.5
    s.sync()
    t = Settings(path)
    assert (t.delivery_spec, t.delivery_speech_only, t.quiet_word_lu) == ("acx", True, 9.5)
    t.quiet_word_lu = 500  # clamped to the spin box's range
    t.delivery_spec = "no-such-spec"  # an unknown name falls back to the default where it is used
    assert t.quiet_word_lu == 40.0 and SpecChecker(t).spec_name == "apple-podcasts"


def test_words_csv_of_several_files_has_one_header(word_analysis):
    from speechint_desktop.ui.exports import words_csv

    text = words_csv([word_analysis("/a/one.wav"), word_analysis("/b/two.wav")])
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == 10 and text.count("source,segment") == 1
    assert [r["source"] for r in rows[4:6]] == ["/a/one.wav", "/b/two.wav"]
