"""Normalize…: bring the selected files to a delivery spec (or a custom target) with one gain.

The dialog picks the target — a preset of ``core.delivery`` or a custom integrated loudness and
true-peak ceiling — speech-only loudness, the output folder (default: beside each input, as
``<name>-<spec>.<ext>``) and whether an output may replace its input (off). ``NormalizeWorker``
runs ``core.normalize.normalize_file`` file after file in its own thread while the dialog shows
the progress and, per file, the integrated loudness and true peak before → after (the "after"
re-measured from the written file), the gain, and whether a ceiling limited it; a file that
fails gets one line. Cancel stops after the file in progress (every output is written
atomically, so none is left half-written). The window stays usable throughout.
"""

from __future__ import annotations

import html
import logging
import math
import threading
import traceback
from pathlib import Path

from PySide6.QtCore import Qt, QThread, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QButtonGroup,
    QCheckBox,
    QComboBox,
    QDialog,
    QDoubleSpinBox,
    QFileDialog,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QRadioButton,
    QTableView,
    QVBoxLayout,
)

from speechint_desktop.ui.item_table import Column, ItemModel
from speechint_desktop.ui.workers import one_line

log = logging.getLogger(__name__)

GOOD, LIMITED, BAD, GREY = QColor("#2e8b57"), QColor("#c77700"), QColor("#d9534f"), "#777"


def _db(value, unit: str = "") -> str:
    if value is None or not math.isfinite(value):
        return "—"
    return f"{value:.1f}" + (f" {unit}" if unit else "")


def before_after(result, key: str, unit: str) -> str:
    return f"{_db(result.before_loudness.get(key))} → {_db(result.after_loudness.get(key))} {unit}"


def outcome(result) -> tuple[str, QColor]:
    """The Result cell: whether the written file meets the spec, or why not, and its colour."""
    p, spec = result.plan, result.spec
    title = spec.title if spec.name != "custom" else "the target"
    if result.limited:
        return f"✗ reached {result.after:.1f} {p.unit}, not {p.target:g}", LIMITED
    if result.compliance is not None and not result.compliance.passed:
        return "✗ still fails " + ", ".join(c.name for c in result.compliance.failed), BAD
    return f"✓ meets {title}", GOOD


def result_tooltip(result) -> str:
    lines = [result.message(), f"output: {result.output}", f"report: {result.report}"]
    if result.format.get("note"):
        lines.append(result.format["note"])
    for c in result.compliance.failed if result.compliance is not None else []:
        measured = "—" if c.measured is None else f"{c.measured:.1f} {c.unit}"
        lines.append(f"✗ {c.name}: {measured} (limit {c.limit})" + (f" — {c.note}" if c.note else ""))
    return "\n".join(lines)


COLUMNS = [
    Column("File", "The input (hover for the output)", lambda r: Path(r.source).name, numeric=False),
    Column(
        "Integrated",
        "Integrated loudness before → after (re-measured from the written file), LUFS",
        lambda r: before_after(r, "integrated_lufs", "LUFS"),
    ),
    Column(
        "True peak",
        "True peak before → after, dBTP",
        lambda r: before_after(r, "true_peak_dbtp", "dBTP"),
    ),
    Column("Gain", "The one gain applied", lambda r: f"{r.plan.gain_db:+.2f} dB"),
    Column(
        "Limited by",
        "The ceiling (true peak, peak limit, 0 dBFS) that stopped the gain short of the target, if one did",
        lambda r: r.plan.limited_by if r.limited else "—",
        numeric=False,
    ),
    Column("Result", "Whether the written file meets the spec", lambda r: outcome(r)[0], numeric=False),
]
FILE, INTEGRATED, TRUE_PEAK, GAIN, CEILING, RESULT = range(len(COLUMNS))


class NormalizeWorker(QThread):
    """``normalize_file`` for each path in turn; ``cancel()`` stops after the file in progress."""

    file_started = Signal(int, str)
    file_done = Signal(int, object)  # core.normalize.NormalizeResult
    file_failed = Signal(int, str, str)  # index, path, one line

    def __init__(self, paths, spec, out_dir=None, overwrite=False, parent=None):
        super().__init__(parent)
        self.paths = [str(p) for p in paths]
        self.spec, self.out_dir, self.overwrite = spec, out_dir, overwrite
        self._cancel = threading.Event()
        self.done_count = 0

    def cancel(self) -> None:
        self._cancel.set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def run(self) -> None:
        from speechint_desktop.core import normalize
        from speechint_desktop.core.audio import AudioError
        from speechint_desktop.core.export import output_names

        # into one folder, a/x.wav and b/x.wav must not write the same file
        names = output_names(self.paths) if self.out_dir else [None] * len(self.paths)
        for i, path in enumerate(self.paths):
            if self._cancel.is_set():
                break
            self.file_started.emit(i, path)
            try:
                result = normalize.normalize_file(
                    path, self.spec, out_dir=self.out_dir, name=names[i], overwrite=self.overwrite,
                    keep=self.paths,
                )  # fmt: skip
            except (AudioError, normalize.NormalizeError) as exc:
                self.file_failed.emit(i, path, str(exc))
            except Exception as exc:  # noqa: BLE001 — anything else: one line, the batch goes on
                log.error("normalising %s failed:\n%s", path, traceback.format_exc())
                self.file_failed.emit(i, path, one_line(exc, path))
            else:
                self.file_done.emit(i, result)
            self.done_count = i + 1


class NormalizeDialog(QDialog):
    """Pick the target and the output, run, read the before/after. ``analyse_outputs(paths)``
    asks the window to analyse the written files."""

    analyse_outputs = Signal(list)
    run_finished = Signal()

    def __init__(self, paths, presets, spec_name: str | None = None, speech_only: bool = False, parent=None):
        super().__init__(parent)
        self.setWindowTitle("Normalize")
        self.setModal(False)
        self.resize(940, 540)
        self.paths = [str(p) for p in paths]
        self.presets = list(presets)
        self.worker: NormalizeWorker | None = None
        self.results: list = []  # NormalizeResult, in input order of completion
        self.failures: list[str] = []  # one line per file that failed

        names = ", ".join(Path(p).name for p in self.paths[:4]) + (" …" if len(self.paths) > 4 else "")
        files = QLabel(
            f"<b>{len(self.paths)} file{'s' if len(self.paths) != 1 else ''}</b>: {html.escape(names)}"
        )
        files.setToolTip("\n".join(self.paths))

        # --- the target ---
        self.preset_radio = QRadioButton("Delivery spec")
        self.custom_radio = QRadioButton("Custom")
        group = QButtonGroup(self)
        group.addButton(self.preset_radio)
        group.addButton(self.custom_radio)
        self.spec_box = QComboBox()
        for spec in self.presets:
            self.spec_box.addItem(spec.title, spec.name)
            self.spec_box.setItemData(self.spec_box.count() - 1, spec.summary(), Qt.ItemDataRole.ToolTipRole)
        self.spec_box.setCurrentIndex(max(0, self.spec_box.findData(spec_name)))
        self.target_spin = _spin(-40.0, -5.0, -16.0, " LUFS", "Integrated loudness to reach")
        self.ceiling_spin = _spin(-12.0, 0.0, -1.0, " dBTP", "The true peak never goes above this")
        self.speech_box = QCheckBox("Speech only: normalise the loudness of the detected speech (dialogue)")
        self.speech_box.setToolTip(
            "Measure the loudness of the speech alone (Silero VAD), so pauses and music beds do not count"
        )
        self.speech_box.setChecked(speech_only)
        self.spec_line = QLabel("")
        self.spec_line.setStyleSheet(f"color: {GREY};")
        target = QGroupBox("Target")
        grid = QGridLayout(target)
        grid.addWidget(self.preset_radio, 0, 0)
        grid.addWidget(self.spec_box, 0, 1, 1, 3)
        grid.addWidget(self.custom_radio, 1, 0)
        grid.addWidget(self.target_spin, 1, 1)
        grid.addWidget(QLabel("true-peak ceiling"), 1, 2, Qt.AlignmentFlag.AlignRight)
        grid.addWidget(self.ceiling_spin, 1, 3)
        grid.addWidget(self.speech_box, 2, 0, 1, 4)
        grid.addWidget(self.spec_line, 3, 0, 1, 4)
        grid.setColumnStretch(4, 1)
        (self.preset_radio if self.presets else self.custom_radio).setChecked(True)
        self.preset_radio.setEnabled(bool(self.presets))

        # --- the output ---
        self.out_edit = QLineEdit()
        self.out_edit.setPlaceholderText("beside each input, as <name>-<spec>.<ext>")
        self.out_edit.setClearButtonEnabled(True)
        choose = QPushButton("Choose…")
        choose.clicked.connect(self._choose_folder)
        self.overwrite_box = QCheckBox("Overwrite: an output may replace its input")
        self.overwrite_box.setToolTip(
            "Only matters when the output folder is an input's own folder; off, such a file fails instead"
        )
        output = QGroupBox("Output")
        olay = QGridLayout(output)
        olay.addWidget(QLabel("Folder"), 0, 0)
        olay.addWidget(self.out_edit, 0, 1)
        olay.addWidget(choose, 0, 2)
        olay.addWidget(self.overwrite_box, 1, 1, 1, 2)

        # --- progress, results, failures ---
        self.progress = QProgressBar()
        self.progress.setRange(0, len(self.paths))
        self.progress.setValue(0)
        self.progress.setFormat("%v of %m files")
        self.status = QLabel("")
        self.model = ItemModel(COLUMNS, self._style, self)
        self.table = QTableView()
        self.table.setModel(self.model)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.verticalHeader().setVisible(False)
        self.table.setWordWrap(False)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setStretchLastSection(True)
        self.failure_label = QLabel("")
        self.failure_label.setTextFormat(Qt.TextFormat.RichText)
        self.failure_label.setWordWrap(True)
        self.failure_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        # --- buttons ---
        self.run_button = QPushButton("Normalize")
        self.run_button.setDefault(True)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.analyse_button = QPushButton("Analyse the outputs")
        self.analyse_button.setToolTip(
            "Add the written files to the queue, to see their transcript and compliance"
        )
        self.analyse_button.setEnabled(False)
        self.close_button = QPushButton("Close")
        buttons = QHBoxLayout()
        buttons.addWidget(self.analyse_button)
        buttons.addStretch(1)
        buttons.addWidget(self.run_button)
        buttons.addWidget(self.cancel_button)
        buttons.addWidget(self.close_button)

        layout = QVBoxLayout(self)
        layout.addWidget(files)
        layout.addWidget(target)
        layout.addWidget(output)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.failure_label)
        layout.addLayout(buttons)

        self.run_button.clicked.connect(self.start)
        self.cancel_button.clicked.connect(self.cancel)
        self.close_button.clicked.connect(self.close)
        self.analyse_button.clicked.connect(
            lambda: self.analyse_outputs.emit([r.output for r in self.results])
        )
        for signal in (
            self.preset_radio.toggled,
            self.spec_box.currentIndexChanged,
            self.speech_box.toggled,
            self.target_spin.valueChanged,
            self.ceiling_spin.valueChanged,
        ):
            signal.connect(self._update_target)  # fmt: skip
        self._update_target()

    # --- the target ---------------------------------------------------------------------------
    def spec(self):
        """The ``core.delivery.Spec`` the files are normalised to."""
        from speechint_desktop.core import delivery

        speech = self.speech_box.isChecked()
        if self.preset_radio.isChecked() and self.presets:
            base = self.presets[max(0, self.spec_box.currentIndex())]
            return base.with_(speech_only=True) if speech and base.target_lufs is not None else base
        return delivery.custom_spec(
            target_lufs=self.target_spin.value(),
            true_peak_max_dbtp=self.ceiling_spin.value(),
            speech_only=speech,
        )

    def out_dir(self) -> str | None:
        return self.out_edit.text().strip() or None

    def _update_target(self, *args) -> None:
        custom = self.custom_radio.isChecked()
        self.spec_box.setEnabled(not custom and bool(self.presets))
        self.target_spin.setEnabled(custom)
        self.ceiling_spin.setEnabled(custom)
        spec = self.spec()
        self.speech_box.setEnabled(spec.target_lufs is not None)
        how = "one gain to " + spec.summary()
        if spec.target_lufs is None and spec.target_rms_dbfs is not None:
            how += f" (aims at RMS {spec.target_rms_dbfs:g} dBFS)"
        self.spec_line.setText(how + "; a ceiling that binds stops it short (no limiter)")

    def _choose_folder(self) -> None:
        start = self.out_dir() or str(Path(self.paths[0]).parent) if self.paths else ""
        folder = QFileDialog.getExistingDirectory(self, "Write the normalised files to", start)
        if folder:
            self.out_edit.setText(folder)

    # --- running ------------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self.worker is not None and self.worker.isRunning()

    def start(self) -> None:
        """Normalise every file in a worker thread (returns at once)."""
        if self.running or not self.paths:
            return
        self.results, self.failures = [], []
        self.model.set_items([])
        self.failure_label.setText("")
        self.progress.setValue(0)
        self.worker = NormalizeWorker(
            self.paths, self.spec(), self.out_dir(), self.overwrite_box.isChecked(), self
        )
        self.worker.file_started.connect(self._file_started)
        self.worker.file_done.connect(self._file_done)
        self.worker.file_failed.connect(self._file_failed)
        self.worker.finished.connect(self._finished)
        for w in (
            self.run_button,
            self.analyse_button,
            self.spec_box,
            self.preset_radio,
            self.custom_radio,
            self.target_spin,
            self.ceiling_spin,
            self.speech_box,
            self.out_edit,
            self.overwrite_box,
        ):
            w.setEnabled(False)  # fmt: skip
        self.cancel_button.setEnabled(True)
        self.worker.start()

    def cancel(self) -> None:
        if self.running:
            self.worker.cancel()
            self.cancel_button.setEnabled(False)
            self.status.setText("Cancelling: the file in progress is finished first…")

    def stop(self, wait_ms: int = 30_000) -> None:
        """Cancel and wait for the file in progress (the window is closing)."""
        if self.worker is not None:
            self.worker.cancel()
            self.worker.wait(wait_ms)

    def _file_started(self, i: int, path: str) -> None:
        self.status.setText(f"Normalising {i + 1} of {len(self.paths)}: {Path(path).name}…")

    def _file_done(self, i: int, result) -> None:
        self.results.append(result)
        self.model.set_items(self.results)
        self.progress.setValue(i + 1)

    def _file_failed(self, i: int, path: str, message: str) -> None:
        self.failures.append(message)
        self.failure_label.setText(
            "<br>".join(f"<span style='color:{BAD.name()}'>✗ {html.escape(m)}</span>" for m in self.failures)
        )
        self.progress.setValue(i + 1)

    def _finished(self) -> None:
        w = self.worker
        done, failed = len(self.results), len(self.failures)
        skipped = len(self.paths) - w.done_count
        limited = sum(1 for r in self.results if r.limited)
        parts = [f"{done} normalised"] + ([f"{limited} limited by a ceiling"] if limited else [])
        parts += ([f"{failed} failed"] if failed else []) + ([f"{skipped} cancelled"] if skipped else [])
        self.status.setText(("Cancelled: " if w.cancelled and skipped else "Done: ") + ", ".join(parts) + ".")
        for widget in (
            self.run_button,
            self.preset_radio,
            self.custom_radio,
            self.speech_box,
            self.out_edit,
            self.overwrite_box,
        ):
            widget.setEnabled(True)  # fmt: skip
        self.preset_radio.setEnabled(bool(self.presets))
        self._update_target()
        self.cancel_button.setEnabled(False)
        self.analyse_button.setEnabled(bool(self.results))
        self.run_finished.emit()

    # --- what the dialog shows (tests read it) ------------------------------------------------
    def cell(self, row: int, col: int) -> str:
        return self.model.data(self.model.index(row, col))

    def _style(self, row: int, col: int, role):
        r = self.results[row] if row < len(self.results) else None
        if r is None:
            return None
        if role == Qt.ItemDataRole.ForegroundRole:
            if col == RESULT:
                return outcome(r)[1]
            if col == CEILING and r.limited:
                return LIMITED
        if role == Qt.ItemDataRole.ToolTipRole:
            return r.output if col == FILE else result_tooltip(r)
        return None

    def closeEvent(self, event) -> None:  # noqa: N802
        self.cancel()  # the file in progress finishes in the background; the dialog stays alive until then
        super().closeEvent(event)


def _spin(lo: float, hi: float, value: float, suffix: str, tip: str) -> QDoubleSpinBox:
    box = QDoubleSpinBox()
    box.setRange(lo, hi)
    box.setDecimals(1)
    box.setSingleStep(0.5)
    box.setValue(value)
    box.setSuffix(suffix)
    box.setToolTip(tip)
    return box
