"""Model picker entries: a model that cannot work here is shown greyed with the reason, never offered.

Used by the toolbar's model picker and the Train tab's base-model box (both ``QComboBox``es, whose
default model is a ``QStandardItemModel``: a disabled item cannot be chosen by click or keyboard).
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QComboBox


def add_model_item(box: QComboBox, key: str, label: str, tip: str, unavailable: str = "") -> None:
    """Append ``key`` shown as ``label``; with ``unavailable`` (why it cannot be used) it is greyed,
    says "unavailable" and its tooltip gives the reason."""
    if unavailable:
        label = f"{label} — unavailable"
        tip = f"Cannot be used here: {unavailable}"
    box.addItem(label, key)
    i = box.count() - 1
    box.setItemData(i, tip, Qt.ItemDataRole.ToolTipRole)
    if unavailable:
        box.model().item(i).setEnabled(False)


def selectable(box: QComboBox, key) -> bool:
    """Whether ``key`` is in ``box`` and can be chosen."""
    i = box.findData(key)
    item = box.model().item(i) if i >= 0 else None
    return item is not None and item.isEnabled()
