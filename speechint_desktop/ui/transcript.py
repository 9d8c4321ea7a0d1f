"""The transcript pane: timed segments (each with its measured and predicted loudness) or words.

``TranscriptPane`` switches between the segment list (``TranscriptView``) and the word list
(``words.WordsPanel``: the ``WordsView`` with its quiet words); both lists emit
``segment_selected(start, end)``, which the pane passes on as ``span_selected`` for the plots.
A click on a quiet word also asks to play it (``play_requested``).
"""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QButtonGroup,
    QHBoxLayout,
    QLabel,
    QStackedWidget,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from speechint_desktop.core.results import Analysis
from speechint_desktop.ui.item_table import Column, ItemTable
from speechint_desktop.ui.results_table import fmt_db
from speechint_desktop.ui.words import QUIET_LU, WordsPanel

SEGMENTS, WORDS = "segments", "words"
SWITCH_STYLE = (
    "QToolButton { padding: 2px 10px; border: 1px solid #b9c1ca; background: #fbfcfd; }"
    "QToolButton:checked { background: #d9e6f6; border-color: #6d9bd3; font-weight: bold; }"
    "QToolButton:disabled { color: #a8adb3; }"
)


def fmt_time(t: float) -> str:
    m, s = divmod(max(float(t), 0.0), 60)
    return f"{int(m)}:{s:04.1f}"


class TranscriptView(ItemTable):
    """The timed segments; clicking one emits its span so the plots can select it."""

    def __init__(self, parent=None):
        self.unit = "dBFS"
        columns = [
            Column("Start", "Where the segment starts", lambda s: fmt_time(s.start)),
            Column("End", "Where the segment ends", lambda s: fmt_time(s.end)),
            Column("Text", "What was said", lambda s: s.text.strip(), numeric=False),
            Column("RMS", "Measured RMS level of the segment, dBFS", lambda s: fmt_db(s.rms_dbfs, "dBFS")),
            Column(
                "LUFS",
                "Integrated loudness of the segment (— when under 0.4 s)",
                lambda s: fmt_db(s.lufs, "LUFS"),
            ),
            Column(
                "True peak",
                "True peak of the segment, dBTP (the loudest 10 ms step it overlaps)",
                lambda s: fmt_db(s.true_peak_dbtp, "dBTP"),
            ),
            Column(
                "Model intensity",
                "The voice intensity the model's head estimates for the segment (its target unit);"
                " — where there is no speech. Help ▸ Levels explained.",
                lambda s: fmt_db(s.predicted_intensity, self.unit),
            ),
        ]
        super().__init__(columns, stretch=2, parent=parent)
        self.setWordWrap(True)
        self.setAlternatingRowColors(True)

    @property
    def segments(self) -> list:
        return self.items

    def set_analysis(self, analysis: Analysis | None) -> None:
        lufs = analysis is not None and (analysis.intensity_target or "").lower().startswith("lufs")
        self.unit = "LUFS" if lufs else "dBFS"
        self.set_items(analysis.segments if analysis is not None else [])
        self.resizeRowsToContents()

    def text(self) -> str:
        return " ".join(s.text.strip() for s in self.segments)


class TranscriptPane(QWidget):
    """A Segments / Words switch above the matching list; the lists follow each other's selection."""

    span_selected = Signal(float, float)
    mode_changed = Signal(str)

    def __init__(self, mode: str = SEGMENTS, quiet_lu: float = QUIET_LU, parent=None):
        super().__init__(parent)
        self.segments = TranscriptView()
        self.words_panel = WordsPanel(quiet_lu)
        self.words = self.words_panel.view
        self.play_requested = self.words_panel.play_requested
        self.export_words_requested = self.words_panel.export_requested
        self.threshold_changed = self.words_panel.threshold_changed
        self.stack = QStackedWidget()
        self.stack.addWidget(self.segments)
        self.stack.addWidget(self.words_panel)

        self.buttons = QButtonGroup(self)
        self.buttons.setExclusive(True)
        bar = QHBoxLayout()
        bar.setContentsMargins(0, 0, 0, 0)
        bar.setSpacing(0)
        self.mode_buttons: dict[str, QToolButton] = {}
        for key, label, tip in (
            (SEGMENTS, "Segments", "One row per timed segment"),
            (WORDS, "Words", "One row per word: timing, confidence, RMS and loudest momentary LUFS"),
        ):
            b = QToolButton()
            b.setText(label)
            b.setToolTip(tip)
            b.setCheckable(True)
            b.setMinimumWidth(76)
            b.setStyleSheet(SWITCH_STYLE)
            self.buttons.addButton(b)
            self.mode_buttons[key] = b
            bar.addWidget(b)
        self.words_tip = self.mode_buttons[WORDS].toolTip()
        self.info = QLabel("")
        self.info.setStyleSheet("color: #666; padding-left: 10px;")
        bar.addWidget(self.info, 1)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(3)
        layout.addLayout(bar)
        layout.addWidget(self.stack, 1)

        self._mode = WORDS if mode == WORDS else SEGMENTS
        self.mode_buttons[self._mode].setChecked(True)
        self.buttons.buttonClicked.connect(self._button_clicked)
        self.segments.segment_selected.connect(self._segment_picked)
        self.words.segment_selected.connect(self._word_picked)
        self._apply_mode()

    @property
    def mode(self) -> str:
        """The list the user asked for (``shown`` may be segments when a result has no words)."""
        return self._mode

    @property
    def shown(self) -> str:
        return WORDS if self.stack.currentWidget() is self.words_panel else SEGMENTS

    def set_mode(self, mode: str) -> None:
        mode = WORDS if mode == WORDS else SEGMENTS
        changed = mode != self._mode
        self._mode = mode
        self.mode_buttons[mode].setChecked(True)
        self._apply_mode()
        if changed:
            self.mode_changed.emit(mode)

    def set_analysis(self, analysis: Analysis | None) -> None:
        self.segments.set_analysis(analysis)
        self.words.set_analysis(analysis)
        n_seg, n_words = self.segments.rowCount(), self.words.rowCount()
        self.info.setText(
            ""
            if analysis is None
            else f"{n_seg} segment{'s' if n_seg != 1 else ''}"
            + (f", {n_words} word{'s' if n_words != 1 else ''}" if n_words else ", no word timings")
        )
        self._apply_mode()

    def select_at(self, t: float) -> tuple[float, float] | None:
        """Select (quietly) the word or segment of the shown list that contains ``t``; its span.

        None, and no selection, when ``t`` falls between them (a click on a pause)."""
        words = self.shown == WORDS
        view = self.words if words else self.segments
        items = view.items
        hit = next((i for i, x in enumerate(items) if x.start <= t <= x.end), None)
        if hit is None:
            for v in (self.segments, self.words):
                v.blockSignals(True)
                v.clearSelection()
                v.blockSignals(False)
            return None
        view.select_quietly(hit)
        view.scrollTo(view.table_model.index(hit, 0))
        if words:
            self.segments.select_quietly(self.words.segment_of[hit])
        return float(items[hit].start), float(items[hit].end)

    # --- internals ------------------------------------------------------------------------------
    def _apply_mode(self) -> None:
        has_words = self.words.rowCount() > 0 or not self.segments.segments
        words_button = self.mode_buttons[WORDS]
        words_button.setEnabled(has_words)
        words_button.setToolTip(self.words_tip if has_words else "This result has no word timings")
        show_words = self._mode == WORDS and has_words
        # the button shows what is on screen; the wish (``mode``) is kept for the next result
        self.mode_buttons[WORDS if show_words else SEGMENTS].setChecked(True)
        target = self.words_panel if show_words else self.segments
        if self.stack.currentWidget() is not target:
            self.stack.setCurrentWidget(target)
            rows = self.segments.selected_indexes()
            if show_words and rows:
                self.words.show_segment(rows[0])

    def _button_clicked(self, button) -> None:
        mode = next(k for k, b in self.mode_buttons.items() if b is button)
        self.set_mode(mode)

    def _segment_picked(self, start: float, end: float) -> None:
        self.span_selected.emit(start, end)

    def _word_picked(self, start: float, end: float) -> None:
        rows = self.words.selected_indexes()
        if rows:  # the segment list follows quietly, so switching back shows where you were
            self.segments.select_quietly(self.words.segment_of[rows[0]])
        self.span_selected.emit(start, end)
