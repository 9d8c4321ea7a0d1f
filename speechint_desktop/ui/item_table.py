"""A read-only table over a Python list, cells computed when Qt asks for them.

The transcript's segment and word lists use it instead of ``QTableWidget``: filling a widget
costs several Qt calls per cell (an hour of speech has ~10 000 words), a model costs none until
rows are painted. (It also sidesteps PySide6 6.12 on Python 3.11 dropping a reference to ``None``
on every call that returns nothing: tens of thousands in a burst can free ``None`` and abort.)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from PySide6.QtCore import QAbstractTableModel, QModelIndex, Qt, Signal
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QTableView

_ROOT = QModelIndex()
RIGHT = Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
LEFT = Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter


@dataclass(frozen=True)
class Column:
    title: str
    tooltip: str
    text: Callable[[object], str]
    numeric: bool = True  # right-aligned


class ItemModel(QAbstractTableModel):
    """Rows are ``items``; ``style(row, column, role)`` may add colours, fonts and tooltips."""

    def __init__(self, columns: Sequence[Column], style=None, parent=None):
        super().__init__(parent)
        self.columns = list(columns)
        self.items: list = []
        self.style = style or (lambda row, col, role: None)

    def set_items(self, items) -> None:
        self.beginResetModel()
        self.items = list(items)
        self.endResetModel()

    def rowCount(self, parent=_ROOT) -> int:  # noqa: N802
        return 0 if parent.isValid() else len(self.items)

    def columnCount(self, parent=_ROOT) -> int:  # noqa: N802
        return 0 if parent.isValid() else len(self.columns)

    def headerData(self, section, orientation, role=Qt.ItemDataRole.DisplayRole):  # noqa: N802
        if orientation == Qt.Orientation.Horizontal:
            if role == Qt.ItemDataRole.DisplayRole:
                return self.columns[section].title
            if role == Qt.ItemDataRole.ToolTipRole:
                return self.columns[section].tooltip
        return None

    def data(self, index, role=Qt.ItemDataRole.DisplayRole):
        if not index.isValid():
            return None
        row, col = index.row(), index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            return self.columns[col].text(self.items[row])
        if role == Qt.ItemDataRole.TextAlignmentRole:
            return int(RIGHT if self.columns[col].numeric else LEFT)
        return self.style(row, col, role)


class ItemTable(QTableView):
    """Rows selected as a whole; ``segment_selected(start, end)`` spans the selected items."""

    segment_selected = Signal(float, float)

    def __init__(self, columns: Sequence[Column], stretch: int, style=None, multi: bool = False, parent=None):
        super().__init__(parent)
        self.table_model = ItemModel(columns, style, self)
        self.setModel(self.table_model)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setSelectionMode(
            QAbstractItemView.SelectionMode.ContiguousSelection
            if multi
            else QAbstractItemView.SelectionMode.SingleSelection
        )
        self.verticalHeader().setVisible(False)
        header = self.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(stretch, QHeaderView.ResizeMode.Stretch)
        self.selectionModel().selectionChanged.connect(self._selected)

    @property
    def items(self) -> list:
        return self.table_model.items

    def set_items(self, items) -> None:
        self.blockSignals(True)  # a reset clears the selection: no span for that
        try:
            self.table_model.set_items(items)
        finally:
            self.blockSignals(False)

    def rowCount(self) -> int:  # noqa: N802 — as QTableWidget has it
        return self.table_model.rowCount()

    def cell(self, row: int, col: int) -> str:
        return self.table_model.data(self.table_model.index(row, col))

    def selected_indexes(self) -> list[int]:
        return sorted({i.row() for i in self.selectionModel().selectedRows()})

    def selected_span(self) -> tuple[float, float] | None:
        rows = self.selected_indexes()
        if not rows:
            return None
        return float(self.items[rows[0]].start), float(self.items[rows[-1]].end)

    def select_quietly(self, row: int) -> None:
        """Select ``row`` without emitting ``segment_selected`` (another list drives this one)."""
        self.blockSignals(True)
        try:
            self.selectRow(row)
        finally:
            self.blockSignals(False)

    def _selected(self, *args) -> None:
        if self.signalsBlocked():
            return
        span = self.selected_span()
        if span is not None:
            self.segment_selected.emit(*span)
