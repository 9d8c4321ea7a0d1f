"""The transcript word by word: timing, confidence and measured level of every word.

One row per word of the whole file, rows of one segment on the same background so segment
boundaries stay visible. Selecting a word (or a run of words, with Shift) emits its span, the
same signal the segment list emits, so the plots select it.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QFont
from PySide6.QtWidgets import QAbstractItemView

from speechint_desktop.core.results import Analysis, Word
from speechint_desktop.ui.item_table import Column, ItemTable
from speechint_desktop.ui.results_table import fmt_db

LOW_PROBABILITY = 0.5  # words Whisper was less sure of than this are greyed and set in italics
SEGMENT_SHADE = QColor("#eef3f9")  # background of every other segment's words
LOW_COLOR = QColor("#8a8f95")


def fmt_time(t: float) -> str:
    """m:ss.ss — word boundaries need hundredths, not the segment list's tenths."""
    m, s = divmod(max(float(t), 0.0), 60)
    return f"{int(m)}:{s:05.2f}"


def fmt_probability(p: float | None) -> str:
    return "—" if p is None else f"{p:.0%}"


def is_low(word: Word) -> bool:
    return word.probability is not None and word.probability < LOW_PROBABILITY


class WordsView(ItemTable):
    """All words of an analysis; ``segment_selected(start, end)`` when words are selected."""

    COLUMNS = [
        Column(
            "Start", "Where the word starts (from the decoder's cross-attention)", lambda w: fmt_time(w.start)
        ),
        Column("End", "Where the word ends", lambda w: fmt_time(w.end)),
        Column(
            "Word", "The word; low-confidence words are grey and in italics", lambda w: w.text.strip(), False
        ),
        Column("Prob.", "How sure the model is of the word", lambda w: fmt_probability(w.probability)),
        Column("RMS", "Measured RMS level of the word, dBFS", lambda w: fmt_db(w.rms_dbfs, "dBFS")),
        Column(
            "Max LUFS",
            "Loudest momentary (400 ms) loudness centred within the word, LUFS",
            lambda w: fmt_db(w.max_momentary_lufs, "LUFS"),
        ),
    ]

    def __init__(self, parent=None):
        super().__init__(self.COLUMNS, stretch=2, style=self._style, multi=True, parent=parent)
        self.setWordWrap(False)
        self.verticalHeader().setDefaultSectionSize(22)
        self.segment_of: list[int] = []  # index of each word's segment
        self._italic = QFont(self.font())
        self._italic.setItalic(True)

    @property
    def words(self) -> list[Word]:
        return self.items

    def set_analysis(self, analysis: Analysis | None) -> None:
        words, segment_of = [], []
        for i, seg in enumerate(analysis.segments if analysis is not None else []):
            words += seg.words
            segment_of += [i] * len(seg.words)
        self.segment_of = segment_of
        self.set_items(words)

    def rows_of_segment(self, index: int) -> list[int]:
        return [row for row, seg in enumerate(self.segment_of) if seg == index]

    def show_segment(self, index: int) -> None:
        """Scroll the segment's first word into view (without selecting it)."""
        rows = self.rows_of_segment(index)
        if rows:
            self.scrollTo(self.table_model.index(rows[0], 0), QAbstractItemView.ScrollHint.PositionAtTop)

    def select_word(self, row: int) -> None:
        self.selectRow(row)
        self.scrollTo(self.table_model.index(row, 0))

    def text(self) -> str:
        return "".join(w.text for w in self.words).strip()

    def _style(self, row: int, col: int, role):
        if role == Qt.ItemDataRole.BackgroundRole:
            return SEGMENT_SHADE if self.segment_of[row] % 2 else None
        if col not in (2, 3) or not is_low(self.words[row]):
            return None
        if role == Qt.ItemDataRole.ForegroundRole:
            return LOW_COLOR
        if role == Qt.ItemDataRole.FontRole:
            return self._italic
        if role == Qt.ItemDataRole.ToolTipRole:
            return f"low confidence ({fmt_probability(self.words[row].probability)})"
        return None
