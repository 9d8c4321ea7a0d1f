"""The results table: one row per file with its status, loudness numbers and a transcript excerpt."""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QSortFilterProxyModel, Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QTableView

from speechint_desktop.core.results import Analysis, FileError

WARN = "#b8860b"  # amber: finished, but look (an interrupted row, a damaged file's result)

QUEUED, RUNNING, DONE, FAILED, CANCELLED = "queued", "analysing", "done", "failed", "cancelled"
INTERRUPTED = "interrupted"  # queued or running when the app stopped (crash, kill): Retry
RETRYABLE = (FAILED, CANCELLED, INTERRUPTED)
PENDING = (QUEUED, RUNNING)
SORT_ROLE = Qt.ItemDataRole.UserRole + 1
_SPEC_ROLES = (
    Qt.ItemDataRole.DisplayRole,
    Qt.ItemDataRole.ToolTipRole,
    Qt.ItemDataRole.ForegroundRole,
    SORT_ROLE,
)
_ROOT = QModelIndex()

# "Model intensity": the model head's estimate of the voice's level, beside the measured ones
MODEL_INTENSITY = "Model intensity"
MODEL_INTENSITY_TIP = (
    "The voice intensity the model's trained head estimates from what it hears (in its target unit:"
    " RMS dBFS or LUFS). The other columns are measured from the samples; the estimate follows the"
    " voice, so noise, music or pauses move it less. — when no trained head is loaded or there is no"
    " speech. Help ▸ Levels explained."
)
COLUMNS = [
    "File", "Model", "Status", "Duration", "Integrated", "Speech", "RMS", "Peak", "True peak",
    MODEL_INTENSITY, "Spec", "Transcript",
]  # fmt: skip
(
    FILE, MODEL, STATUS, DURATION, INTEGRATED, SPEECH, RMS, PEAK, TRUE_PEAK, PREDICTED, SPEC, TRANSCRIPT
) = range(len(COLUMNS))  # fmt: skip
NUMERIC = (DURATION, INTEGRATED, SPEECH, RMS, PEAK, TRUE_PEAK, PREDICTED)
TOOLTIPS = [
    "File name (hover for the full path)",
    "The model the file was (or will be) analysed with; analysing again with another model adds a row",
    "Queued, analysing (with progress), done, failed (with the reason), cancelled or interrupted"
    " (the app stopped before it finished); right-click to retry",
    "Length of the recording",
    "Integrated loudness of the whole file (programme loudness), LUFS (ITU-R BS.1770-4)",
    "Integrated loudness of the detected speech only (dialogue loudness), LUFS",
    "RMS level of the whole file, dBFS",
    "Sample peak, dBFS",
    "True peak (ITU-R BS.1770-4, oversampled to at least 192 kHz), dBTP",
    MODEL_INTENSITY_TIP,
    "Whether the file meets the delivery spec picked above the transcript: ✓ pass, ✗ fail (hover for the"
    " failed criteria), … still measuring",
    "Start of the transcript (or why the file failed)",
]


def new_key() -> str:
    return uuid.uuid4().hex[:12]


@dataclass
class Row:
    """One line of the queue: a file analysed (or to be analysed) with one model."""

    path: str
    status: str = QUEUED
    fraction: float = 0.0
    message: str = ""
    analysis: Analysis | None = None
    error: str | None = None
    model: str = ""
    key: str = field(default_factory=new_key)
    duration_s: float | None = None  # from the file's header, before the result (a group's rows)
    preview: Analysis | None = None  # the analysis so far while it runs (core.recording.preview)

    @property
    def audio_note(self) -> str | None:
        """A finished row's damaged or truncated file: what decoding lost (else None)."""
        return self.analysis.audio_note if self.status == DONE and self.analysis is not None else None


# known once a running file is read (its loudness, from the engine's first preview) or as it is
# decoded (the transcript so far): shown before the result; the model's reading waits for it
PREVIEW_COLUMNS = (DURATION, INTEGRATED, SPEECH, RMS, PEAK, TRUE_PEAK, TRANSCRIPT)


def _shown(row: Row, col: int) -> Analysis | None:
    """The analysis a cell shows: the result, or for a running row its preview in those columns."""
    if row.analysis is not None:
        return row.analysis
    return row.preview if row.status == RUNNING and col in PREVIEW_COLUMNS else None


def fmt_db(value: float | None, unit: str) -> str:
    if value is None or not math.isfinite(value):
        return "—"
    return f"{value:.1f} {unit}"


def fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    seconds = float(seconds)
    if seconds < 60:
        return f"{seconds:.1f} s"
    m, s = divmod(int(round(seconds)), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def predicted_text(a: Analysis) -> str:
    if a.predicted_intensity is None:
        return "—"
    unit = "LUFS" if (a.intensity_target or "").lower().startswith("lufs") else "dBFS"
    return fmt_db(a.predicted_intensity, unit)


def speech_seconds(a: Analysis) -> float:
    """Seconds of detected speech (0 when speech detection was off or found none)."""
    if a.loudness.speech_duration_s is not None:
        return float(a.loudness.speech_duration_s)
    return float(sum(max(0.0, e - s) for s, e in a.speech))


def speech_tooltip(a: Analysis) -> str:
    if not a.vad:
        return "speech detection was off for this file"
    if not a.speech:
        return "no speech detected"
    seconds = speech_seconds(a)
    share = f" ({seconds / a.duration_s:.0%} of the file)" if a.duration_s else ""
    return f"loudness of the {fmt_duration(seconds)} of detected speech{share}"


class ResultsModel(QAbstractTableModel):
    """Rows keyed by ``Row.key``: the same file may have a row per model."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.rows: list[Row] = []
        self._index: dict[str, int] = {}  # key -> row number
        self.model_label = str  # how the Model column names a model (summary.model_label)
        # row -> (text, tooltip function, colour, sort key) or None: the Spec column
        # (compliance.SpecChecker.cell)
        self.spec_cell = None

    # --- Qt model API ---------------------------------------------------------------------
    def rowCount(self, parent=_ROOT) -> int:  # noqa: N802
        return 0 if parent.isValid() else len(self.rows)

    def columnCount(self, parent=_ROOT) -> int:  # noqa: N802
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(self, section, orientation, role=Qt.ItemDataRole.DisplayRole):  # noqa: N802
        if orientation == Qt.Orientation.Horizontal:
            if role == Qt.ItemDataRole.DisplayRole:
                return COLUMNS[section]
            if role == Qt.ItemDataRole.ToolTipRole:
                return TOOLTIPS[section]
        return None

    def data(self, index, role=Qt.ItemDataRole.DisplayRole):
        if not index.isValid():
            return None
        row = self.rows[index.row()]
        col = index.column()
        a = row.analysis
        if col == SPEC:
            return self._spec_data(row, role)
        if role == Qt.ItemDataRole.DisplayRole:
            return self._display(row, col)
        if role == SORT_ROLE:
            return self._sort_key(row, col)
        if role == Qt.ItemDataRole.ToolTipRole:
            if col == FILE:
                return row.path
            if col == MODEL:
                return row.model or None
            if col == STATUS and row.status == INTERRUPTED:
                return "The app stopped before this file finished: right-click ▸ Retry"
            if col in (STATUS, TRANSCRIPT) and row.error:
                return row.error
            if col == STATUS and row.audio_note:
                return row.audio_note
            if col == TRANSCRIPT and a is not None:
                return a.text
            if col == PREDICTED and a is not None and a.intensity_note:
                return a.intensity_note
            if col == INTEGRATED and a is not None and a.loudness.note:
                return a.loudness.note
            if col == SPEECH and a is not None:
                return speech_tooltip(a)
        if role == Qt.ItemDataRole.ForegroundRole and col == TRANSCRIPT and row.status == FAILED:
            return QColor("#d9534f")
        if role == Qt.ItemDataRole.ForegroundRole and col == STATUS:
            if row.audio_note:
                return QColor(WARN)
            return {
                FAILED: QColor("#d9534f"),
                DONE: QColor("#3c9d5d"),
                CANCELLED: QColor("#999999"),
                INTERRUPTED: QColor(WARN),
            }.get(row.status)
        if role == Qt.ItemDataRole.TextAlignmentRole and col in NUMERIC:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None

    def _spec_data(self, row: Row, role):
        if role == Qt.ItemDataRole.TextAlignmentRole:
            return int(Qt.AlignmentFlag.AlignCenter)
        if role not in _SPEC_ROLES:
            return None
        cell = self.spec_cell(row) if self.spec_cell is not None and row.analysis is not None else None
        if role == SORT_ROLE:
            return cell[3] if cell else -math.inf
        if cell is None:
            return "" if role == Qt.ItemDataRole.DisplayRole else None
        if role == Qt.ItemDataRole.ToolTipRole:
            return cell[1]()
        return cell[0] if role == Qt.ItemDataRole.DisplayRole else cell[2]

    def _display(self, row: Row, col: int) -> str:
        a = _shown(row, col)
        if col == FILE:
            return Path(row.path).name
        if col == MODEL:
            model = row.model or (a.model if a is not None else "")
            return self.model_label(model) if model else ""
        if col == STATUS:
            if row.status == RUNNING:
                return f"analysing {row.fraction:.0%}"
            if row.audio_note:
                return f"{row.status} ⚠"  # a damaged or truncated file: the tooltip says what
            return row.status
        if col == DURATION and (a is not None or row.duration_s is not None):
            return fmt_duration(a.duration_s if a is not None else row.duration_s)
        if a is None:
            return (row.error or "") if col == TRANSCRIPT else ""
        if col == INTEGRATED:
            return fmt_db(a.loudness.integrated_lufs, "LUFS")
        if col == SPEECH:
            return fmt_db(a.loudness.speech_integrated_lufs, "LUFS")
        if col == RMS:
            return fmt_db(a.loudness.rms_dbfs, "dBFS")
        if col == PEAK:
            return fmt_db(a.loudness.sample_peak_dbfs, "dBFS")
        if col == TRUE_PEAK:
            return fmt_db(a.loudness.true_peak_dbtp, "dBTP")
        if col == PREDICTED:
            return predicted_text(a)
        text = " ".join(a.text.split())
        return text if len(text) <= 90 else text[:87] + "…"

    def _sort_key(self, row: Row, col: int):
        a = _shown(row, col)
        if col in (FILE, MODEL, STATUS, TRANSCRIPT):
            return self._display(row, col).lower()
        if col == DURATION and a is None and row.duration_s is not None:
            return row.duration_s
        if a is None:
            return -math.inf
        value = {
            DURATION: a.duration_s,
            INTEGRATED: a.loudness.integrated_lufs,
            SPEECH: a.loudness.speech_integrated_lufs,
            RMS: a.loudness.rms_dbfs,
            PEAK: a.loudness.sample_peak_dbfs,
            TRUE_PEAK: a.loudness.true_peak_dbtp,
            PREDICTED: a.predicted_intensity,
        }[col]
        return value if value is not None and math.isfinite(value) else -math.inf

    # --- updates ----------------------------------------------------------------------------
    def refresh_column(self, col: int) -> None:
        """Repaint one column (e.g. the Spec column after the spec changed)."""
        if self.rows:
            self.dataChanged.emit(self.index(0, col), self.index(len(self.rows) - 1, col))

    def _changed(self, i: int) -> None:
        self.dataChanged.emit(self.index(i, 0), self.index(i, len(COLUMNS) - 1))

    def _reindex(self) -> None:
        self._index = {r.key: i for i, r in enumerate(self.rows)}

    def get(self, key: str) -> Row | None:
        i = self._index.get(key)
        return None if i is None else self.rows[i]

    def row_for(self, path: str, model: str | None = None) -> Row | None:
        """The latest row of ``path`` (analysed with ``model``, if given)."""
        for r in reversed(self.rows):
            if r.path == str(path) and (model is None or r.model == model):
                return r
        return None

    def position(self, path: str) -> int | None:
        """The row number of ``path``'s latest row."""
        row = self.row_for(path)
        return None if row is None else self._index[row.key]

    def add(self, path: str, status: str = QUEUED, model: str = "", key: str | None = None) -> Row:
        """A new row at the end (a file analysed again with another model gets its own row)."""
        row = Row(str(path), status, model=model, key=key or new_key())
        self.beginInsertRows(QModelIndex(), len(self.rows), len(self.rows))
        self._index[row.key] = len(self.rows)
        self.rows.append(row)
        self.endInsertRows()
        return row

    def insert(self, rows: list[tuple[int, Row]]) -> None:
        """Put rows back where they were (undo of ``remove``/``clear``)."""
        for i, row in sorted(rows, key=lambda x: x[0]):
            i = min(i, len(self.rows))
            self.beginInsertRows(QModelIndex(), i, i)
            self.rows.insert(i, row)
            self.endInsertRows()
        self._reindex()

    def remove(self, keys) -> list[tuple[int, Row]]:
        """Take the rows out; returns (position, row) for ``insert``."""
        taken = [(i, r) for i, r in enumerate(self.rows) if r.key in set(keys)]
        for i, _ in reversed(taken):
            self.beginRemoveRows(QModelIndex(), i, i)
            del self.rows[i]
            self.endRemoveRows()
        self._reindex()
        return taken

    def update(self, key: str, **changes) -> None:
        i = self._index.get(key)
        if i is None:
            return
        for k, v in changes.items():
            setattr(self.rows[i], k, v)
        self._changed(i)

    def set_analysis(self, analysis: Analysis, key: str | None = None) -> Row:
        row = self.get(key) if key else None
        if row is None:
            row = self.add(analysis.source, DONE, analysis.model, key)
        self.update(
            row.key,
            status=DONE,
            fraction=1.0,
            analysis=analysis,
            error=None,
            model=analysis.model,
            preview=None,
        )
        return row

    def set_error(self, error: FileError, key: str | None = None, model: str = "") -> Row:
        row = self.get(key) if key else None
        if row is None:
            row = self.add(error.source, FAILED, model, key)
        self.update(row.key, status=FAILED, error=error.message, analysis=None, preview=None)
        return row

    def clear(self) -> list[tuple[int, Row]]:
        taken = list(enumerate(self.rows))
        self.beginResetModel()
        self.rows.clear()
        self._index.clear()
        self.endResetModel()
        return taken

    def count(self, status: str) -> int:
        return sum(1 for r in self.rows if r.status == status)

    def analyses(self) -> list[Analysis]:
        return [r.analysis for r in self.rows if r.analysis is not None]


class ResultsTable(QTableView):
    """Sortable view over a ``ResultsModel`` (sorting by numbers, not by their text)."""

    def __init__(self, model: ResultsModel, parent=None):
        super().__init__(parent)
        self.results = model
        self.proxy = QSortFilterProxyModel(self)
        self.proxy.setSourceModel(model)
        self.proxy.setSortRole(SORT_ROLE)
        self.setModel(self.proxy)
        self.setSortingEnabled(True)
        self.sortByColumn(-1, Qt.SortOrder.AscendingOrder)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setAlternatingRowColors(True)
        self.setWordWrap(False)
        self.verticalHeader().setVisible(False)
        self.verticalHeader().setDefaultSectionSize(26)
        header = self.horizontalHeader()
        header.setStretchLastSection(True)
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        for col, width in enumerate([190, 90, 130, 70, 95, 95, 95, 90, 90, 105, 44]):
            self.setColumnWidth(col, width)

    def row_at(self, proxy_row: int) -> Row:
        return self.results.rows[self.proxy.mapToSource(self.proxy.index(proxy_row, 0)).row()]

    def selected_rows(self) -> list[Row]:
        rows = sorted({i.row() for i in self.selectionModel().selectedRows()})
        return [self.row_at(r) for r in rows]

    def current_row(self) -> Row | None:
        index = self.currentIndex()
        return self.row_at(index.row()) if index.isValid() else None

    def select_path(self, path: str) -> None:
        row = self.results.row_for(path)
        if row is not None:
            self.select_key(row.key)

    def select_key(self, key: str) -> None:
        i = self.results._index.get(key)
        if i is None:
            return
        proxy_index = self.proxy.mapFromSource(self.results.index(i, 0))
        self.selectRow(proxy_index.row())
