"""Calibrate to dB SPL: type the offset, or read it off a recording of a reference tone."""

from __future__ import annotations

from PySide6.QtWidgets import (
    QButtonGroup,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFileDialog,
    QGridLayout,
    QLabel,
    QPushButton,
    QRadioButton,
)

from speechint_desktop.core import calibration as cal


class CalibrationDialog(QDialog):
    """Off, a typed offset, or a reference recording at a known SPL; ``result_calibration``."""

    def __init__(self, current: cal.Calibration | None, parent=None):
        super().__init__(parent)
        self.setWindowTitle("Calibrate to dB SPL")
        self.result_calibration = current
        self._tone: cal.Calibration | None = None
        g = QGridLayout(self)
        intro = QLabel(
            "Voice level, RMS and word levels are also shown in dB SPL once the recording chain is "
            "calibrated (same microphone, distance and gain). Applies to files analysed from now on."
        )
        intro.setWordWrap(True)
        g.addWidget(intro, 0, 0, 1, 3)
        self.off = QRadioButton("Off (dBFS only)")
        self.typed = QRadioButton("Offset: dB SPL = dBFS +")
        self.tone = QRadioButton("Reference recording at")
        group = QButtonGroup(self)
        for b in (self.off, self.typed, self.tone):
            group.addButton(b)
        self.offset = QDoubleSpinBox(decimals=2, minimum=-50.0, maximum=250.0, value=100.0, suffix=" dB")
        self.spl = QDoubleSpinBox(decimals=1, minimum=20.0, maximum=140.0, value=94.0, suffix=" dB SPL")
        self.pick = QPushButton("Choose recording…")
        self.pick.clicked.connect(self._choose)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        g.addWidget(self.off, 1, 0)
        g.addWidget(self.typed, 2, 0)
        g.addWidget(self.offset, 2, 1)
        g.addWidget(self.tone, 3, 0)
        g.addWidget(self.spl, 3, 1)
        g.addWidget(self.pick, 3, 2)
        g.addWidget(self.status, 4, 0, 1, 3)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self._accept)
        buttons.rejected.connect(self.reject)
        self.ok = buttons.button(QDialogButtonBox.StandardButton.Ok)
        g.addWidget(buttons, 5, 0, 1, 3)
        self._path: str | None = None
        if current is None:
            self.off.setChecked(True)
        else:
            self.typed.setChecked(True)
            self.offset.setValue(current.spl_offset_db)
            self.status.setText(f"Now: {current.describe()}")
        self.spl.valueChanged.connect(lambda _v: self._read())

    def _choose(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Reference recording", "", "Audio (*.wav *.flac *.ogg *.mp3 *.m4a)"
        )
        if path:
            self.read_reference(path)

    def read_reference(self, path: str) -> None:
        """Measure the reference now, so a bad file says so before OK."""
        self._path = path
        self.tone.setChecked(True)
        self._read()

    def _read(self) -> None:
        if not self._path:
            return
        from speechint_desktop.core.audio import AudioError

        try:
            self._tone = cal.from_tone(self._path, self.spl.value())
        except (AudioError, cal.CalibrationError, OSError) as e:
            self._tone = None
            self.status.setText(f"<span style='color:#d9534f'>{e}</span>")
            return
        self.offset.setValue(self._tone.spl_offset_db)
        self.status.setText(self._tone.describe())

    def _accept(self) -> None:
        if self.off.isChecked():
            self.result_calibration = None
        elif self.typed.isChecked():
            self.result_calibration = cal.from_offset(self.offset.value())
        elif self._tone is None:
            self.status.setText(
                "<span style='color:#d9534f'>choose a readable reference recording first</span>"
            )
            return
        else:
            self.result_calibration = self._tone
        self.accept()
