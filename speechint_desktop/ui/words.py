"""The transcript word by word: timing, confidence and measured level of every word; quiet words.

One row per word of the whole file, rows of one segment on the same background so segment
boundaries stay visible. Selecting a word (or a run of words, with Shift) emits its span, the
same signal the segment list emits, so the plots select it.

Quiet words at a glance: each word's level is its loudest momentary loudness (``Word.max_momentary_lufs``,
K-weighted, 400 ms) relative to the median of that value over the file's words — the speaker's
typical level, speech only, since words are speech. The Word and "vs median" cells are shaded by it
(warm when quieter, cool when louder), and words more than a chosen number of LU below the median
are flagged and listed under the words; clicking one there selects and plays it. Momentary
loudness rather than the word's RMS: RMS over a word's span drops with the pause a word boundary
may include (a final word often reads 10 dB low), the 400 ms window hears the voice.
"""

from __future__ import annotations

import math
import statistics

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor, QFont
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDoubleSpinBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from speechint_desktop.core.results import Analysis, Word
from speechint_desktop.ui.item_table import Column, ItemTable
from speechint_desktop.ui.results_table import fmt_db

LOW_PROBABILITY = 0.5  # words Whisper was less sure of than this are greyed and set in italics
SEGMENT_SHADE = QColor("#eef3f9")  # background of every other segment's words
LOW_COLOR = QColor("#8a8f95")
QUIET_LU = 6.0  # default: flag words more than this many LU below the median word
QUIET_COLOR = QColor("#f0a468")  # a flagged word
QUIETER_TINT = QColor("#fde3cc")  # quieter than the median (graded up to the threshold)
LOUDER_TINT = QColor("#d3e4f7")  # louder than the median (graded up to the threshold)
LEVEL_COLUMNS = (2, 6)  # the Word and "vs median" cells carry the level shade


def fmt_time(t: float) -> str:
    """m:ss.ss — word boundaries need hundredths, not the segment list's tenths."""
    m, s = divmod(max(float(t), 0.0), 60)
    return f"{int(m)}:{s:05.2f}"


def fmt_probability(p: float | None) -> str:
    return "—" if p is None else f"{p:.0%}"


def is_low(word: Word) -> bool:
    return word.probability is not None and word.probability < LOW_PROBABILITY


def relative_levels(words: list[Word]) -> tuple[list[float | None], float | None]:
    """Each word's loudest momentary LUFS minus the median of that over all ``words`` (LU; None
    where the word has no value), and the median (None when no word has a value)."""
    values = [w.max_momentary_lufs for w in words]
    known = [v for v in values if v is not None and math.isfinite(v)]
    if not known:
        return [None] * len(words), None
    median = float(statistics.median(known))
    return [v - median if v is not None and math.isfinite(v) else None for v in values], median


def fmt_relative(delta: float | None) -> str:
    return "—" if delta is None else f"{delta:+.1f}"


def _blend(color: QColor, t: float) -> QColor:
    t = min(max(t, 0.0), 1.0)
    return QColor.fromRgbF(*(1.0 - t * (1.0 - c) for c in (color.redF(), color.greenF(), color.blueF())))


def level_shade(delta: float | None, threshold: float) -> QColor | None:
    """The background for a word ``delta`` LU from the median: none near it, warmer the quieter
    (solid ``QUIET_COLOR`` once flagged), cooler the louder."""
    if delta is None or abs(delta) < 0.15 * threshold:
        return None
    if delta <= -threshold:
        return QUIET_COLOR
    return _blend(QUIETER_TINT if delta < 0 else LOUDER_TINT, abs(delta) / threshold)


class WordsView(ItemTable):
    """All words of an analysis; ``segment_selected(start, end)`` when words are selected.

    ``relative``: each word's level against the median (``relative_levels``); ``quiet_rows``: the
    rows more than ``threshold`` LU below it (``quiet_changed`` when they change)."""

    quiet_changed = Signal()

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

    def __init__(self, threshold: float = QUIET_LU, parent=None):
        rel = Column(
            "vs median",
            "The word's loudest momentary LUFS relative to the median over the file's words, LU;"
            " shaded warm when quieter, cool when louder; words more than the threshold below are flagged",
            lambda w: fmt_relative(self._relative_of.get(id(w))),
        )
        spl = Column(
            "RMS dB SPL",
            "The word's RMS in dB SPL, through the calibration (Analysis ▸ Calibrate to dB SPL…)",
            lambda w: fmt_db(self._spl(w.rms_dbfs), "dB SPL"),
        )
        self._spl = lambda v: None  # the shown analysis's dBFS → dB SPL (none: column hidden)
        super().__init__([*self.COLUMNS, rel, spl], stretch=2, style=self._style, multi=True, parent=parent)
        self.setColumnHidden(len(self.COLUMNS) + 1, True)
        self.setWordWrap(False)
        self.verticalHeader().setDefaultSectionSize(22)
        self.segment_of: list[int] = []  # index of each word's segment
        self.relative: list[float | None] = []  # level vs the median, LU, per row
        self.median: float | None = None  # the median word's loudest momentary LUFS
        self.threshold = float(threshold)
        self.quiet_rows: list[int] = []
        self._relative_of: dict[int, float | None] = {}
        self._row_of: dict[int, int] = {}
        self._shades: list[QColor | None] = []
        self._italic = QFont(self.font())
        self._italic.setItalic(True)
        self._bold = QFont(self.font())
        self._bold.setBold(True)

    @property
    def words(self) -> list[Word]:
        return self.items

    def set_analysis(self, analysis: Analysis | None) -> None:
        words, segment_of = [], []
        for i, seg in enumerate(analysis.segments if analysis is not None else []):
            words += seg.words
            segment_of += [i] * len(seg.words)
        self.segment_of = segment_of
        self.relative, self.median = relative_levels(words)
        self._relative_of = {id(w): d for w, d in zip(words, self.relative, strict=True)}
        self._row_of = {id(w): i for i, w in enumerate(words)}
        calibrated = analysis is not None and analysis.calibration is not None
        self._spl = analysis.spl if calibrated else (lambda v: None)
        self.setColumnHidden(len(self.COLUMNS) + 1, not calibrated)
        self._flag()
        self.set_items(words)
        self.quiet_changed.emit()

    def set_threshold(self, lu: float) -> None:
        """Flag words more than ``lu`` LU below the median (and re-shade)."""
        if float(lu) == self.threshold:
            return
        self.threshold = float(lu)
        self._flag()
        if self.rowCount():
            m = self.table_model
            m.dataChanged.emit(m.index(0, 0), m.index(self.rowCount() - 1, m.columnCount() - 1))
        self.quiet_changed.emit()

    def _flag(self) -> None:
        t = self.threshold
        self.quiet_rows = [i for i, d in enumerate(self.relative) if d is not None and d <= -t]
        self._shades = [level_shade(d, t) for d in self.relative]

    def is_quiet(self, row: int) -> bool:
        d = self.relative[row]
        return d is not None and d <= -self.threshold

    def row_of(self, word: Word) -> int | None:
        return self._row_of.get(id(word))

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

    def _level_tip(self, row: int) -> str | None:
        d = self.relative[row]
        if d is None or self.median is None:
            return None
        where = "below" if d < 0 else "above"
        tip = f"{abs(d):.1f} LU {where} the file's median word ({self.median:.1f} LUFS)"
        return tip + (f": quiet (more than {self.threshold:g} LU below)" if self.is_quiet(row) else "")

    def _style(self, row: int, col: int, role):
        if role == Qt.ItemDataRole.BackgroundRole:
            if col in LEVEL_COLUMNS and self._shades[row] is not None:
                return self._shades[row]
            return SEGMENT_SHADE if self.segment_of[row] % 2 else None
        if role == Qt.ItemDataRole.ToolTipRole and col in LEVEL_COLUMNS:
            tips = [self._level_tip(row)]
            if col == 2 and is_low(self.words[row]):
                tips.append(f"low confidence ({fmt_probability(self.words[row].probability)})")
            return "\n".join(t for t in tips if t) or None
        if role == Qt.ItemDataRole.FontRole and col == 6 and self.is_quiet(row):
            return self._bold
        if col not in (2, 3) or not is_low(self.words[row]):
            return None
        if role == Qt.ItemDataRole.ForegroundRole:
            return LOW_COLOR
        if role == Qt.ItemDataRole.FontRole:
            return self._italic
        if role == Qt.ItemDataRole.ToolTipRole:
            return f"low confidence ({fmt_probability(self.words[row].probability)})"
        return None


class QuietWordsList(ItemTable):
    """The flagged words of a ``WordsView``, in order; the panel plays the one clicked."""

    def __init__(self, view: WordsView, parent=None):
        self.view = view
        columns = [
            Column("At", "Where the word starts", lambda w: fmt_time(w.start)),
            Column(
                "Word",
                "A word more than the threshold below the median word",
                lambda w: w.text.strip(),
                False,
            ),
            Column(
                "Below median",
                "How far the word's loudest momentary LUFS is below the file's median word, LU",
                lambda w: f"{-(view.relative[view.row_of(w)] or 0.0):.1f} LU",
            ),
        ]
        super().__init__(columns, stretch=1, parent=parent)
        self.setWordWrap(False)
        self.verticalHeader().setDefaultSectionSize(22)
        self.setToolTip("Click a word to select it and play it")
        view.quiet_changed.connect(self._update)

    def _update(self) -> None:
        self.set_items([self.view.words[r] for r in self.view.quiet_rows])


class WordsPanel(QWidget):
    """The word list with its quiet-word controls: threshold, the flagged words, CSV export.

    ``play_requested(start, end)`` when a quiet word is clicked (after it is selected in the
    list, which selects its span in the plots); ``export_requested`` for "Export words (CSV)…"."""

    play_requested = Signal(float, float)
    export_requested = Signal()
    threshold_changed = Signal(float)

    def __init__(self, threshold: float = QUIET_LU, parent=None):
        super().__init__(parent)
        self.view = WordsView(threshold)
        self.quiet = QuietWordsList(self.view)
        self.threshold_box = QDoubleSpinBox()
        self.threshold_box.setRange(1.0, 40.0)
        self.threshold_box.setSingleStep(1.0)
        self.threshold_box.setDecimals(1)
        self.threshold_box.setSuffix(" LU")
        self.threshold_box.setValue(self.view.threshold)
        self.threshold_box.setToolTip(
            "Flag words whose loudest momentary loudness is more than this far below the file's median word"
        )
        self.quiet_label = QLabel("")
        self.quiet_label.setStyleSheet("color: #555;")
        self.export_button = QPushButton("Export words (CSV)…")
        self.export_button.setToolTip(
            "Every word with its start, end, text, probability, RMS and loudest momentary LUFS"
        )

        bar = QHBoxLayout()
        bar.setContentsMargins(0, 0, 0, 0)
        bar.addWidget(QLabel("Quiet: more than"))
        bar.addWidget(self.threshold_box)
        bar.addWidget(QLabel("below the median word"))
        bar.addStretch(1)
        bar.addWidget(self.export_button)

        quiet_box = QWidget()
        qlay = QVBoxLayout(quiet_box)
        qlay.setContentsMargins(0, 2, 0, 0)
        qlay.setSpacing(2)
        qlay.addWidget(self.quiet_label)
        qlay.addWidget(self.quiet, 1)
        self.split = QSplitter(Qt.Orientation.Vertical)
        self.split.addWidget(self.view)
        self.split.addWidget(quiet_box)
        self.split.setStretchFactor(0, 3)
        self.split.setStretchFactor(1, 2)
        self.split.setSizes([300, 170])
        self.split.setChildrenCollapsible(False)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(3)
        layout.addLayout(bar)
        layout.addWidget(self.split, 1)

        self.threshold_box.valueChanged.connect(self._threshold_picked)
        self.view.quiet_changed.connect(self._update_label)
        self.quiet.clicked.connect(self._quiet_clicked)
        self.export_button.clicked.connect(self.export_requested)
        self._update_label()

    def set_threshold(self, lu: float) -> None:
        self.threshold_box.setValue(lu)  # -> _threshold_picked

    def play_quiet(self, index: int) -> None:
        """Select the ``index``-th quiet word in the word list (its span in the plots) and ask to play it."""
        word = self.quiet.items[index]
        row = self.view.row_of(word)
        if row is not None:
            self.view.select_word(row)
        self.play_requested.emit(float(word.start), float(word.end))

    def _quiet_clicked(self, index) -> None:
        if index.isValid():
            self.play_quiet(index.row())

    def _threshold_picked(self, value: float) -> None:
        self.view.set_threshold(value)
        self.threshold_changed.emit(float(value))

    def _update_label(self) -> None:
        n, v = len(self.view.quiet_rows), self.view
        if not v.rowCount():
            text = "Quiet words"
        elif v.median is None:
            text = "Quiet words: the words have no measured loudness"
        elif not n:
            text = f"No quiet words (none more than {v.threshold:g} LU below the median, {v.median:.1f} LUFS)"
        else:
            text = (
                f"<b>{n} quiet word{'s' if n != 1 else ''}</b> (more than {v.threshold:g} LU below the median"
                f" word, {v.median:.1f} LUFS) — click one to select and play it"
            )
        self.quiet_label.setText(text)
