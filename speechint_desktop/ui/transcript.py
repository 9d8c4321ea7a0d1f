"""The transcript as timed segments, each with its measured and predicted loudness."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QTableWidget, QTableWidgetItem

from speechint_desktop.core.results import Analysis
from speechint_desktop.ui.results_table import fmt_db


def fmt_time(t: float) -> str:
    m, s = divmod(max(float(t), 0.0), 60)
    return f"{int(m)}:{s:04.1f}"


class TranscriptView(QTableWidget):
    """Clicking a segment emits its span so the plots can select it."""

    segment_selected = Signal(float, float)

    HEADERS = ["Start", "End", "Text", "RMS", "LUFS", "Predicted"]

    def __init__(self, parent=None):
        super().__init__(0, len(self.HEADERS), parent)
        self.setHorizontalHeaderLabels(self.HEADERS)
        self.horizontalHeaderItem(3).setToolTip("Measured RMS level of the segment, dBFS")
        self.horizontalHeaderItem(4).setToolTip("Integrated loudness of the segment (— when under 0.4 s)")
        self.horizontalHeaderItem(5).setToolTip("Intensity predicted by the model's head for the segment")
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setWordWrap(True)
        self.setAlternatingRowColors(True)
        self.verticalHeader().setVisible(False)
        header = self.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.Stretch)
        self.segments = []
        self.itemSelectionChanged.connect(self._selected)

    def set_analysis(self, analysis: Analysis | None) -> None:
        self.blockSignals(True)
        self.clearSelection()
        self.segments = list(analysis.segments) if analysis is not None else []
        self.setRowCount(len(self.segments))
        unit = "LUFS" if analysis and (analysis.intensity_target or "").lower().startswith("lufs") else "dBFS"
        for i, seg in enumerate(self.segments):
            cells = [
                fmt_time(seg.start),
                fmt_time(seg.end),
                seg.text.strip(),
                fmt_db(seg.rms_dbfs, "dBFS"),
                fmt_db(seg.lufs, "LUFS"),
                fmt_db(seg.predicted_intensity, unit),
            ]
            for col, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if col != 2:
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                self.setItem(i, col, item)
        self.resizeRowsToContents()
        self.blockSignals(False)

    def text(self) -> str:
        return " ".join(s.text.strip() for s in self.segments)

    def _selected(self) -> None:
        rows = self.selectionModel().selectedRows()
        if rows:
            seg = self.segments[rows[0].row()]
            self.segment_selected.emit(float(seg.start), float(seg.end))
