"""Word timings and speech-only loudness in the app: the word list, the plots, the summary, VAD.

Widget tests build an ``Analysis`` by hand (``word_analysis``); the last test runs the real
tiny.en engine through the app on real speech.
"""

from __future__ import annotations

import shutil

import pytest
from PySide6.QtCore import Qt

from speechint_desktop.ui.results_table import SPEECH
from speechint_desktop.ui.session_store import SessionStore
from speechint_desktop.ui.settings import Settings
from speechint_desktop.ui.summary import summary_html
from speechint_desktop.ui.transcript import SEGMENTS, WORDS, TranscriptPane
from speechint_desktop.ui.words import LOW_COLOR, SEGMENT_SHADE, WordsView


def click_row(qtbot, view, row: int, modifier=Qt.KeyboardModifier.NoModifier) -> None:
    """A real mouse click on a row's middle cell, as a user makes it."""
    index = view.table_model.index(row, 2)
    view.scrollTo(index)
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, modifier, view.visualRect(index).center())


def role(view, row: int, col: int, role: Qt.ItemDataRole):
    return view.table_model.data(view.table_model.index(row, col), role)


def show_in_window(qtbot, window, analysis) -> None:
    window.results.set_analysis(analysis)
    window.table.select_path(analysis.source)
    qtbot.waitUntil(lambda: window.summary.text().startswith("<span"), timeout=5_000)


def test_word_view_lists_every_word_with_its_numbers(qtbot, word_analysis):
    a = word_analysis()
    view = WordsView()
    qtbot.addWidget(view)
    view.set_analysis(a)
    words = [w for s in a.segments for w in s.words]
    assert view.rowCount() == len(words) == 5
    assert [view.cell(r, 2) for r in range(5)] == ["Hello", "there,", "quiet", "little", "world."]
    assert [view.cell(0, c) for c in range(6)] == [
        "0:00.20",
        "0:00.62",
        "Hello",
        "97%",
        "-21.0 dBFS",
        "-19.5 LUFS",
    ]
    assert view.cell(4, 5) == "—"  # no momentary value inside the word
    assert view.text() == a.text

    # a low-confidence word is grey and italic; the others are not
    assert role(view, 1, 2, Qt.ItemDataRole.FontRole).italic()
    assert role(view, 1, 2, Qt.ItemDataRole.ForegroundRole) == LOW_COLOR
    assert "low confidence (31%)" in role(view, 1, 3, Qt.ItemDataRole.ToolTipRole)
    assert role(view, 0, 2, Qt.ItemDataRole.FontRole) is None
    # every other segment's words share a tinted background, so segment boundaries show
    assert role(view, 2, 0, Qt.ItemDataRole.BackgroundRole) == SEGMENT_SHADE
    assert role(view, 1, 0, Qt.ItemDataRole.BackgroundRole) is None

    view.set_analysis(None)
    assert view.rowCount() == 0


def test_pane_switches_between_segments_and_words(qtbot, word_analysis):
    pane = TranscriptPane()
    qtbot.addWidget(pane)
    pane.show()
    pane.set_analysis(word_analysis())
    assert pane.shown == SEGMENTS and "2 segments, 5 words" in pane.info.text()

    with qtbot.waitSignal(pane.mode_changed) as changed:
        qtbot.mouseClick(pane.mode_buttons[WORDS], Qt.MouseButton.LeftButton)
    assert changed.args == [WORDS] and pane.shown == WORDS and pane.stack.currentWidget() is pane.words_panel

    # picking words moves the segment list along (quietly), so switching back shows where you were
    spans = []
    pane.span_selected.connect(lambda s, e: spans.append((s, e)))
    click_row(qtbot, pane.words, 3)
    assert spans == [(2.1, 2.5)]
    assert pane.segments.selected_indexes() == [1]

    # a result without word timings shows its segments; the wish for words is kept
    pane.set_analysis(word_analysis(words=False))
    assert pane.shown == SEGMENTS and pane.mode == WORDS
    assert not pane.mode_buttons[WORDS].isEnabled() and "no word timings" in pane.info.text()
    pane.set_analysis(word_analysis())
    assert pane.shown == WORDS


def test_clicking_a_word_selects_its_span_in_the_plots(qtbot, make_window, word_analysis):
    w = make_window(wait_model=False)
    a = word_analysis("/audio/words.wav")
    show_in_window(qtbot, w, a)
    qtbot.mouseClick(w.transcript_pane.mode_buttons[WORDS], Qt.MouseButton.LeftButton)
    assert w.transcript_pane.shown == WORDS and w.words.isVisible()
    assert w.settings.transcript_view == WORDS  # remembered for the next start

    click_row(qtbot, w.words, 1)
    word = a.segments[0].words[1]
    for region in w.plots.regions:  # waveform and loudness plot
        assert region.isVisible()
        assert region.getRegion() == pytest.approx((word.start, word.end))
    assert w.plots.selected_span() == pytest.approx((0.62, 1.4))

    # Shift+click: a run of words, from the first one's start to the last one's end
    click_row(qtbot, w.words, 3, Qt.KeyboardModifier.ShiftModifier)
    assert w.plots.regions[1].getRegion() == pytest.approx((0.62, 2.5))

    # the detected speech is shaded on both plots, and listed in the legend
    for bands in w.plots.speech_bands:
        assert list(bands.opts["x0"]) == [0.2, 1.7] and list(bands.opts["x1"]) == [1.4, 2.9]
        assert bands.isVisible()
    assert "Detected speech" in [label.text for _, label in w.plots.legend.items]
    w.plots.speech_bands[1].setVisible(False)  # what clicking its legend entry does
    assert not w.plots.speech_bands[0].isVisible()
    w.plots.speech_bands[1].setVisible(True)

    # the results table has the speech loudness beside the programme loudness
    i = w.results.position(a.source)
    assert w.results.data(w.results.index(i, SPEECH)) == "-20.5 LUFS"
    assert "2.4 s of detected speech (80% of the file)" in w.results.data(
        w.results.index(i, SPEECH), Qt.ItemDataRole.ToolTipRole
    )


def test_summary_shows_speech_loudness_beside_the_programme(qtbot, make_window, word_analysis):
    text = summary_html(word_analysis())
    assert "Programme" in text and "-23.0 LUFS" in text and "-25.0 dBFS" in text
    assert "Speech only" in text and "-20.5 LUFS" in text and "-22.2 dBFS" in text
    assert "2.4 s of 3.0 s (80%)" in text

    off = summary_html(word_analysis(vad=False))
    assert "speech detection was off" in off and "-20.5" not in off
    none = word_analysis()
    none.speech = []
    none.loudness.speech_integrated_lufs = none.loudness.speech_rms_dbfs = None
    assert "no speech detected" in summary_html(none)

    w = make_window(wait_model=False)
    show_in_window(qtbot, w, word_analysis("/audio/summary.wav"))
    assert "Speech only" in w.summary.text() and "-20.5 LUFS" in w.summary.text()
    show_in_window(qtbot, w, word_analysis("/audio/no-vad.wav", vad=False))
    assert "speech detection was off" in w.summary.text()
    assert all(len(b.opts["x0"]) == 0 for b in w.plots.speech_bands)


def test_vad_setting_round_trips_and_reaches_the_worker(qtbot, make_window, ui_home, tmp_path):
    s = Settings(str(tmp_path / "s.ini"))
    assert s.vad is True and s.transcribe_options().vad is True
    s.vad = False
    s.sync()
    assert Settings(str(tmp_path / "s.ini")).vad is False
    assert Settings(str(tmp_path / "s.ini")).transcribe_options().vad is False

    w = make_window(wait_model=False)
    assert w.vad_box.isChecked() and w.vad_action.isChecked() and w.worker.options.vad is True
    qtbot.mouseClick(w.vad_box, Qt.MouseButton.LeftButton)  # the toolbar checkbox
    assert not w.vad_box.isChecked() and not w.vad_action.isChecked()  # the menu item follows
    assert w.settings.vad is False and w.worker.options.vad is False
    w.vad_action.trigger()  # Analysis ▸ Detect speech (VAD)
    assert w.vad_box.isChecked() and w.settings.vad is True and w.worker.options.vad is True
    w.vad_action.trigger()
    w.close()

    w2 = make_window(wait_model=False)  # same settings file: starts with detection off
    assert not w2.vad_box.isChecked() and w2.worker.options.vad is False


def test_decoding_choice_round_trips_and_reaches_the_worker(make_window, ui_home, tmp_path):
    s = Settings(str(tmp_path / "s.ini"))
    assert s.decoding == "accurate" and s.transcribe_options().beam_size == 5
    s.decoding = "nonsense"  # an unknown value (an older or edited ini) reads as the default
    assert s.decoding == "accurate"

    w = make_window(wait_model=False)
    accurate, fast = w.decoding_actions["accurate"], w.decoding_actions["fast"]
    assert accurate.isChecked() and not fast.isChecked() and w.worker.options.beam_size == 5
    fast.trigger()  # Analysis ▸ Fast decoding (greedy)
    assert fast.isChecked() and not accurate.isChecked()  # one of two
    assert w.settings.decoding == "fast" and w.worker.options.beam_size == 1
    assert w.worker.options.vad is w.settings.vad  # the other options stay as they were
    w.close()

    w2 = make_window(wait_model=False)  # same settings file: starts with fast decoding
    assert w2.decoding_actions["fast"].isChecked() and w2.worker.options.beam_size == 1
    w2.decoding_actions["accurate"].trigger()
    assert w2.worker.options.beam_size == 5


def test_session_keeps_words_and_speech(tmp_path, word_analysis):
    store = SessionStore(tmp_path / "s")
    a = word_analysis("/audio/kept.wav")
    store.save(a)
    back = store.load()[0]
    assert back.vad is True and back.speech == [(0.2, 1.4), (1.7, 2.9)]
    assert [w.text for s in back.segments for w in s.words] == [w.text for s in a.segments for w in s.words]
    assert back.segments[0].words[1].probability == pytest.approx(0.31)
    assert back.segments[1].words[2].max_momentary_lufs is None
    assert back.loudness.speech_integrated_lufs == -20.5 and back.loudness.speech_duration_s == 2.4


@pytest.mark.slow
def test_real_engine_shows_words_and_speech_loudness(qtbot, make_window, wait_queue, jfk_path, tmp_path):
    w = make_window()
    assert w.settings.vad is True
    w.add_paths([jfk_path])
    wait_queue(w)
    row = w.results.rows[0]
    assert row.status == "done", row.error
    a = row.analysis
    assert a.vad and a.speech, "the engine detected no speech in jfk.flac"
    words = [x for s in a.segments for x in s.words]
    assert len(words) >= 15, "the engine returned no word timings"
    assert a.loudness.speech_integrated_lufs is not None

    w.transcript_pane.set_mode(WORDS)
    qtbot.waitUntil(lambda: w.words.rowCount() == len(words), timeout=5_000)
    assert "country" in w.words.text().lower()
    row_country = next(i for i, x in enumerate(words) if "country" in x.text.lower())
    click_row(qtbot, w.words, row_country)
    assert w.plots.regions[1].getRegion() == pytest.approx((words[row_country].start, words[row_country].end))
    assert w.plots.speech_bands[0].opts["x0"][0] == pytest.approx(a.speech[0][0])
    assert "Speech only" in w.summary.text() and "no speech" not in w.summary.text()

    # detection off: the next file is decoded whole, with no speech regions
    w.set_vad(False)
    again = tmp_path / "jfk-again.flac"
    shutil.copy(jfk_path, again)
    w.add_paths([again])

    def finished():
        row = w.results.row_for(str(again))
        assert row is not None and row.status in ("done", "failed")

    qtbot.waitUntil(finished, timeout=120_000)
    b = w.results.row_for(str(again)).analysis
    assert b is not None and b.vad is False and b.speech == []
    assert b.loudness.speech_integrated_lufs is None
    assert "country" in b.text.lower()
    w.table.select_path(str(again))
    qtbot.waitUntil(lambda: "speech detection was off" in w.summary.text(), timeout=5_000)
