"""The training tab: drives the training toolkit in a separate process and plots its metrics live.

Training, evaluation and demo-corpus creation run as the toolkit's sub-commands through a
QProcess (``core.paths.toolkit_command``: ``python -m speechint_desktop.cli train …`` from source,
``SpeechInt train …`` in the bundle), so a crash or a Stop never takes the app down. Curves, the
step count and the ETA come from the run's ``metrics.jsonl`` (``core.runs``, read incrementally).
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import pyqtgraph as pg
from PySide6.QtCore import QProcess, QProcessEnvironment, Qt, QTimer, Signal
from PySide6.QtGui import QDoubleValidator, QFont
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from speechint_desktop.core import paths
from speechint_desktop.core.runs import MetricsTail, ProgressTracker, find_checkpoint
from speechint_desktop.ui.model_picker import add_model_item

TRAIN_SPLITS = ("train",)
EVAL_SPLITS = ("validation", "eval", "val", "valid", "dev")


def _num(value) -> float | None:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def evaluation_line(summary: dict) -> str:
    """One plain sentence from an evaluation summary (``evaluate --summary``): what the status shows."""
    parts = []
    if _num(summary.get("wer")) is not None:
        parts.append(f"WER {100 * _num(summary['wer']):.1f} %")
    unit = "LU" if summary.get("target") == "lufs" else "dB"
    if _num(summary.get("intensity_rmse")) is not None:
        parts.append(f"intensity RMSE {_num(summary['intensity_rmse']):.2f} {unit}")
    if _num(summary.get("intensity_n")) is not None:
        parts.append(f"{int(_num(summary['intensity_n']))} utterances")
    return ", ".join(parts)


class CurvePlots(pg.GraphicsLayoutWidget):
    """Training loss, validation WER and intensity RMSE against the step."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.ci.setSpacing(6)
        self.loss_plot = self.addPlot(row=0, col=0, title="Training loss")
        self.wer_plot = self.addPlot(row=0, col=1, title="Validation WER (%)")
        self.rmse_plot = self.addPlot(row=0, col=2, title="Intensity RMSE (dB)")
        for plot in (self.loss_plot, self.wer_plot, self.rmse_plot):
            plot.showGrid(x=True, y=True, alpha=0.2)
            plot.setLabel("bottom", "step")
            plot.hideButtons()
        self.loss_plot.addLegend(offset=(-5, 5), labelTextSize="8pt")
        self.loss = self.loss_plot.plot(name="total", pen=pg.mkPen("#1f5fa8", width=2))
        self.asr = self.loss_plot.plot(name="ASR", pen=pg.mkPen("#7fa7d6", width=1.2))
        self.intensity = self.loss_plot.plot(name="intensity", pen=pg.mkPen("#e08a2c", width=1.2))
        sym = {"symbol": "o", "symbolSize": 6}
        self.wer = self.wer_plot.plot(pen=pg.mkPen("#2f8f5b", width=2), symbolBrush="#2f8f5b", **sym)
        self.rmse = self.rmse_plot.plot(pen=pg.mkPen("#d0433f", width=2), symbolBrush="#d0433f", **sym)
        self.data: dict[str, tuple[list[float], list[float]]] = {}
        self.test_result: dict | None = None
        self.reset()

    def reset(self) -> None:
        self.data = {k: ([], []) for k in ("loss", "asr_loss", "intensity_loss", "wer", "intensity_rmse")}
        self.test_result = None
        self._redraw()

    def add(self, records: list[dict]) -> int:
        """Add metric records; returns how many points were added."""
        added = 0
        for r in records:
            step = _num(r.get("step", r.get("global_step")))
            if step is None:
                continue
            split = str(r.get("split", "train")).lower()
            if split == "test":
                self.test_result = r
                continue
            if split in TRAIN_SPLITS:
                keys = ("loss", "asr_loss", "intensity_loss")
            elif split in EVAL_SPLITS:
                keys = ("wer", "intensity_rmse")
            else:
                continue
            for key in keys:
                v = _num(r.get(key))
                if v is None:
                    continue
                if key == "wer":
                    v *= 100  # metrics.jsonl holds WER as a fraction
                self.data[key][0].append(step)
                self.data[key][1].append(v)
                added += 1
        if added:
            self._redraw()
        return added

    def _redraw(self) -> None:
        for key, item in (
            ("loss", self.loss),
            ("asr_loss", self.asr),
            ("intensity_loss", self.intensity),
            ("wer", self.wer),
            ("intensity_rmse", self.rmse),
        ):
            xs, ys = self.data[key]
            item.setData(xs, ys)

    def points(self, key: str) -> int:
        return len(self.data[key][0])


class TrainingTab(QWidget):
    """Dataset, base model, target and hyper-parameters; Start/Stop; log; live curves."""

    use_model = Signal(str)  # checkpoint folder to add to the model picker
    message = Signal(str)

    def __init__(self, runs_dir: Path, datasets_dir: Path, models: list[str] | None = None, parent=None):
        super().__init__(parent)
        self.runs_dir = Path(runs_dir)
        self.datasets_dir = Path(datasets_dir)
        self.run_dir: Path | None = None
        self.tail: MetricsTail | None = None
        self.task = ""
        self.process = QProcess(self)
        self.process.setProcessChannelMode(QProcess.ProcessChannelMode.MergedChannels)
        self.process.readyReadStandardOutput.connect(self._read_output)
        self.process.finished.connect(self._process_finished)
        self.process.errorOccurred.connect(self._process_error)
        self._pending_dataset: Path | None = None
        self._eval_summary: Path | None = None
        self.tracker = ProgressTracker()

        # --- form -------------------------------------------------------------------------------
        self.dataset_edit = QLineEdit()
        self.dataset_edit.setPlaceholderText("audiofolder (audio + metadata.csv) or a CSV/JSONL manifest")
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse_dataset)
        self.demo_n = QSpinBox()
        self.demo_n.setRange(4, 5000)
        self.demo_n.setValue(40)
        self.demo_n.setToolTip("Utterances in the demo corpus")
        self.demo_button = QPushButton("Make demo corpus")
        self.demo_button.setToolTip("Synthesise a small speech corpus with espeak-ng (offline)")
        self.demo_button.clicked.connect(self.make_demo_corpus)
        ds_row = QHBoxLayout()
        ds_row.addWidget(self.dataset_edit, 1)
        ds_row.addWidget(browse)
        ds_row.addWidget(self.demo_button)
        ds_row.addWidget(self.demo_n)

        self.model_box = QComboBox()
        self.model_box.setEditable(True)
        for m in models or paths.CATALOG_MODELS:
            self.model_box.addItem(m, m)
        self.model_box.setMinimumWidth(380)
        self.target_box = QComboBox()
        self.target_box.addItem("RMS level (dBFS)", "rms")
        self.target_box.addItem("Loudness (LUFS, BS.1770)", "lufs")
        self.target_box.addItem("Dataset's intensity column", "column")
        self.target_box.addItem("Voice level under noise (clean speech + noise folder)", "voice")
        self.target_box.currentIndexChanged.connect(self._target_changed)
        self.noise_edit = QLineEdit()
        self.noise_edit.setPlaceholderText(
            "folder of noise recordings (fans, traffic, rooms) mixed in at 0–40 dB SNR"
        )
        noise_browse = QPushButton("Browse…")
        noise_browse.clicked.connect(self._browse_noise)
        self.mixtures_spin = QSpinBox()
        self.mixtures_spin.setRange(20, 100_000)
        self.mixtures_spin.setValue(600)
        self.mixtures_spin.setToolTip("Noisy mixtures made from the clean speech (one encoder pass each)")
        self.noise_row = QWidget()
        noise_layout = QHBoxLayout(self.noise_row)
        noise_layout.setContentsMargins(0, 0, 0, 0)
        noise_layout.addWidget(self.noise_edit, 1)
        noise_layout.addWidget(noise_browse)
        noise_layout.addWidget(QLabel("Mixtures"))
        noise_layout.addWidget(self.mixtures_spin)
        self.lambda_spin = QDoubleSpinBox()
        self.lambda_spin.setRange(0.0, 100.0)
        self.lambda_spin.setDecimals(2)
        self.lambda_spin.setValue(1.0)
        self.lambda_spin.setToolTip("Weight of the intensity loss: loss = ASR + λ·MSE")
        self.epochs_spin = QSpinBox()
        self.epochs_spin.setRange(1, 1000)
        self.epochs_spin.setValue(3)
        self.steps_spin = QSpinBox()
        self.steps_spin.setRange(0, 10_000_000)
        self.steps_spin.setSpecialValueText("no limit")
        self.steps_spin.setToolTip("Stop after this many optimiser steps (overrides epochs)")
        self.lr_edit = QLineEdit("1e-5")
        self.lr_edit.setValidator(QDoubleValidator(0.0, 10.0, 10))
        self.batch_spin = QSpinBox()
        self.batch_spin.setRange(1, 1024)
        self.batch_spin.setValue(8)
        self.eval_spin = QSpinBox()
        self.eval_spin.setRange(0, 1_000_000)
        self.eval_spin.setSpecialValueText("each epoch")
        self.eval_spin.setToolTip("Validate every N steps")
        self.head_only = QCheckBox("Train only the intensity head (encoder and decoder frozen)")
        self.head_only.toggled.connect(lambda on: self.lr_edit.setText("1e-3" if on else "1e-5"))

        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        form.addRow("Dataset", ds_row)
        model_row = QHBoxLayout()
        model_row.addWidget(self.model_box)
        model_row.addSpacing(16)
        model_row.addWidget(QLabel("Intensity target"))
        model_row.addWidget(self.target_box)
        model_row.addStretch(1)
        form.addRow("Base model", model_row)
        form.addRow("Noise", self.noise_row)
        self._target_changed()
        grid = QHBoxLayout()
        for label, w in (
            ("λ", self.lambda_spin),
            ("Epochs", self.epochs_spin),
            ("Max steps", self.steps_spin),
            ("Learning rate", self.lr_edit),
            ("Batch", self.batch_spin),
            ("Validate every", self.eval_spin),
        ):
            grid.addWidget(QLabel(label))
            grid.addWidget(w)
            grid.addSpacing(8)
        grid.addStretch(1)
        form.addRow("Hyper-parameters", grid)
        form.addRow("", self.head_only)

        self.start_button = QPushButton("Start training")
        self.start_button.setDefault(True)
        self.start_button.clicked.connect(self.start_training)
        self.stop_button = QPushButton("Stop")
        self.stop_button.setEnabled(False)
        self.stop_button.clicked.connect(self.stop)
        self.eval_button = QPushButton("Evaluate checkpoint…")
        self.eval_button.clicked.connect(self.evaluate)
        self.use_button = QPushButton("Use this model")
        self.use_button.setEnabled(False)
        self.use_button.setToolTip("Add the run's checkpoint to the model picker and analyse with it")
        self.use_button.clicked.connect(self._use_model)
        self.status = QLabel("Idle")
        self.status.setStyleSheet("color: #555;")
        # the status line beside the bar says "step N of M": text drawn in a bar this small is
        # split by the chunk's edge (Fusion) and read as clipped
        self.progress = QProgressBar()
        self.progress.setFixedWidth(160)
        self.progress.setTextVisible(False)
        self.progress.hide()
        buttons = QHBoxLayout()
        for b in (self.start_button, self.stop_button, self.eval_button, self.use_button):
            buttons.addWidget(b)
        buttons.addSpacing(12)
        buttons.addWidget(self.progress)
        buttons.addWidget(self.status, 1)

        settings_box = QGroupBox()
        box_layout = QVBoxLayout(settings_box)
        box_layout.addLayout(form)
        box_layout.addLayout(buttons)

        self.curves = CurvePlots()
        self.log = QPlainTextEdit()
        self.log.setReadOnly(True)
        self.log.setMaximumBlockCount(5000)
        mono = QFont("DejaVu Sans Mono")
        mono.setStyleHint(QFont.StyleHint.Monospace)
        mono.setPointSize(9)
        self.log.setFont(mono)
        self.log.setPlaceholderText("The training log appears here.")

        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(self.curves)
        split.addWidget(self.log)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 2)

        layout = QVBoxLayout(self)
        layout.addWidget(settings_box)
        layout.addWidget(split, 1)

        self.timer = QTimer(self)
        self.timer.setInterval(300)
        self.timer.timeout.connect(self.poll_metrics)

    # --- process plumbing ----------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self.process.state() != QProcess.ProcessState.NotRunning

    def set_models(self, models: list[tuple[str, str]]) -> None:
        """The catalogue as ``(name, why it cannot be used here or "")``: unusable ones greyed."""
        current = self.model_box.currentText()
        self.model_box.clear()
        for name, unavailable in models:
            add_model_item(self.model_box, name, name, name, unavailable)
        i = self.model_box.findData(current)
        if i >= 0 and self.model_box.model().item(i).isEnabled():
            self.model_box.setCurrentIndex(i)
        else:
            self.model_box.setEditText(current if i < 0 else paths.DEFAULT_MODEL)

    def _start(self, task: str, cmd: list[str]) -> bool:
        """Run ``cmd`` (``core.paths.toolkit_command(...)``) as the tab's one child process."""
        if self.running:
            self.message.emit("A training job is already running: stop it first.")
            return False
        env = QProcessEnvironment()
        for key, value in paths.child_environment().items():
            env.insert(key, value)
        self.process.setProcessEnvironment(env)
        self.runs_dir.mkdir(parents=True, exist_ok=True)
        self.process.setWorkingDirectory(str(self.runs_dir))  # never litter the install folder
        self.task = task
        self.log.appendPlainText("$ " + " ".join(cmd))
        self.process.start(cmd[0], cmd[1:])
        self.start_button.setEnabled(False)
        self.demo_button.setEnabled(False)
        self.eval_button.setEnabled(False)
        self.stop_button.setEnabled(True)
        self.status.setText(f"{task.capitalize()}…")
        return True

    def _read_output(self) -> None:
        text = bytes(self.process.readAllStandardOutput()).decode("utf-8", "replace")
        for line in text.replace("\r", "\n").splitlines():
            if line.strip():
                self.log.appendPlainText(line)

    def _process_error(self, error) -> None:
        if error == QProcess.ProcessError.FailedToStart:
            self.log.appendPlainText(f"Could not start {self.task}: {self.process.errorString()}")
            self._finish(f"Could not start {self.task}.")

    def _process_finished(self, code: int, status) -> None:
        self._read_output()
        self.poll_metrics()
        crashed = status == QProcess.ExitStatus.CrashExit
        task = self.task
        if task == "demo corpus" and code == 0 and not crashed and self._pending_dataset:
            self.dataset_edit.setText(str(self._pending_dataset))
            self._finish(f"Demo corpus ready: {self._pending_dataset}")
        elif task == "evaluation" and code == 0 and not crashed:
            line = self._evaluation_summary()
            self._finish(f"Evaluation finished: {line}." if line else "Evaluation finished.")
        elif code == 0 and not crashed:
            head = self.run_dir / "voice-head.safetensors" if self.run_dir is not None else None
            where = f" Voice head: {head} (speechint analyze --head FILE)." if head and head.is_file() else ""
            self._finish(f"{task.capitalize()} finished.{self._test_summary()}{where}")
        elif self._stopping:
            self._finish(f"{task.capitalize()} stopped.")
        else:
            self._finish(f"{task.capitalize()} failed (exit code {code}): see the log.")
        if task == "training" and self.run_dir is not None and find_checkpoint(self.run_dir):
            self.use_button.setEnabled(True)

    _stopping = False

    def _evaluation_summary(self) -> str:
        try:
            return evaluation_line(json.loads(self._eval_summary.read_text(encoding="utf-8")))
        except (OSError, ValueError, AttributeError):
            return ""

    def _finish(self, text: str) -> None:
        self.timer.stop()
        self.progress.hide()
        self._stopping = False
        self.start_button.setEnabled(True)
        self.demo_button.setEnabled(True)
        self.eval_button.setEnabled(True)
        self.stop_button.setEnabled(False)
        self.status.setText(text)
        self.log.appendPlainText(text)
        self.message.emit(text)

    def _test_summary(self) -> str:
        r = self.curves.test_result if self.task == "training" else None
        if not r:
            return ""
        parts = []
        if _num(r.get("wer")) is not None:
            parts.append(f"WER {100 * _num(r['wer']):.1f}%")
        if _num(r.get("intensity_rmse")) is not None:
            parts.append(f"intensity RMSE {_num(r['intensity_rmse']):.2f} dB")
        return f" Test split: {', '.join(parts)}." if parts else ""

    def stop(self) -> None:
        if not self.running:
            return
        self._stopping = True
        self.status.setText("Stopping…")
        self.process.terminate()
        QTimer.singleShot(5000, self._kill_if_running)

    def _kill_if_running(self) -> None:
        if self.running:
            self.process.kill()

    # --- actions ------------------------------------------------------------------------------------
    def _browse_dataset(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Dataset folder", self.dataset_edit.text())
        if folder:
            self.dataset_edit.setText(folder)

    def _browse_noise(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Noise folder", self.noise_edit.text())
        if folder:
            self.noise_edit.setText(folder)

    def _target_changed(self, *_args) -> None:
        """The voice target trains the head alone from clean speech (the dataset folder) + noise."""
        voice = self.target_box.currentData() == "voice"
        self.noise_row.setEnabled(voice)
        for w in (self.lambda_spin, self.epochs_spin, self.batch_spin, self.eval_spin, self.head_only):
            w.setEnabled(not voice)
        self.dataset_edit.setPlaceholderText(
            "folder of clean speech recordings (any audio files)"
            if voice
            else "audiofolder (audio + metadata.csv) or a CSV/JSONL manifest"
        )

    def voice_args(self) -> list[str]:
        """``training.voice_head``: the frozen encoder's features of noisy mixtures, the head fitted."""
        args = [
            "--model",
            self.model_box.currentText().strip(),
            "--speech",
            self.dataset_edit.text().strip(),
            "--noise",
            self.noise_edit.text().strip(),
            "--mixtures",
            str(self.mixtures_spin.value()),
            "--espeak",
            "0",  # the user's own clean speech only
            "--no-heldout",
        ]
        if self.steps_spin.value():
            args += ["--steps", str(self.steps_spin.value())]
        return args

    def make_demo_corpus(self) -> bool:
        n = self.demo_n.value()
        out = self.datasets_dir / f"demo-{n}-{time.strftime('%Y%m%d-%H%M%S')}"
        self._pending_dataset = out
        return self._start("demo corpus", paths.toolkit_command("demo-corpus", [str(out), "--n", str(n)]))

    def training_args(self) -> list[str]:
        dataset = self.dataset_edit.text().strip()
        args = ["--model", self.model_name(), "--dataset", dataset]
        target = self.target_box.currentData()
        if target != "column":
            args += ["--intensity_method", target]
        lr = _num(self.lr_edit.text().replace(",", "."))
        args += [
            "--lambda_intensity",
            f"{self.lambda_spin.value():g}",
            "--epochs",
            str(self.epochs_spin.value()),
            "--batch_size",
            str(self.batch_spin.value()),
            "--lr",
            f"{lr if lr is not None else 1e-5:g}",
        ]
        if self.steps_spin.value():
            args += ["--max_steps", str(self.steps_spin.value())]
        if self.eval_spin.value():
            args += ["--eval_every", str(self.eval_spin.value())]
        if self.head_only.isChecked():
            args += ["--head_only", "--head_lr", f"{lr if lr is not None else 1e-3:g}"]
        return args

    def model_name(self) -> str:
        """The base model: the chosen catalogue entry, or what the user typed (a folder, a hub id)."""
        text = self.model_box.currentText().strip()
        i = self.model_box.currentIndex()
        if i >= 0 and self.model_box.itemText(i) == text and self.model_box.itemData(i):
            return str(self.model_box.itemData(i))
        return text

    def unavailable_reason(self, name: str) -> str:
        i = self.model_box.findData(name)
        item = self.model_box.model().item(i) if i >= 0 else None
        return "" if item is None or item.isEnabled() else str(item.toolTip())

    def start_training(self) -> bool:
        dataset = self.dataset_edit.text().strip()
        if not dataset or not Path(dataset).exists():
            self.message.emit("Pick a dataset folder first (or make a demo corpus).")
            self.status.setText("Pick a dataset folder first (or make a demo corpus).")
            return False
        why = self.unavailable_reason(self.model_name())
        if why:
            self.status.setText(f"{self.model_name()} cannot be used here: {why}")
            self.message.emit(self.status.text())
            return False
        voice = self.target_box.currentData() == "voice"
        noise = self.noise_edit.text().strip()
        if voice and (not noise or not Path(noise).is_dir()):
            self.message.emit("Pick a noise folder for the voice-level target.")
            self.status.setText("Pick a noise folder for the voice-level target.")
            return False
        self.run_dir = self.runs_dir / time.strftime("run-%Y%m%d-%H%M%S")
        self.runs_dir.mkdir(parents=True, exist_ok=True)
        self.curves.reset()
        self.tail = MetricsTail(self.run_dir / "metrics.jsonl")
        self.tracker = ProgressTracker()
        self.use_button.setEnabled(False)
        if voice:  # the head alone; written as RUN/voice-head.safetensors (use it with --head)
            out = [
                "--out",
                str(self.run_dir),
                "--name",
                "voice-head",
                "--metrics",
                str(self.run_dir / "metrics.jsonl"),
            ]
            ok = self._start("training", paths.toolkit_command("voice-head", [*self.voice_args(), *out]))
        else:
            args = [*self.training_args(), "--output_dir", str(self.run_dir)]
            ok = self._start("training", paths.toolkit_command("train", args))
        if ok:
            self.progress.setRange(0, 0)  # busy until the run says how many steps it will take
            self.progress.show()
            self.timer.start()
        return ok

    def evaluate(self) -> bool:
        start = str(find_checkpoint(self.run_dir) or self.run_dir) if self.run_dir else str(self.runs_dir)
        ckpt = QFileDialog.getExistingDirectory(self, "Checkpoint to evaluate", start)
        if not ckpt:
            return False
        return self.evaluate_checkpoint(ckpt)

    def evaluate_checkpoint(self, ckpt: str) -> bool:
        dataset = self.dataset_edit.text().strip()
        if not dataset:
            self.message.emit("Pick the dataset to evaluate on first.")
            return False
        report = self.runs_dir / time.strftime("eval-%Y%m%d-%H%M%S.csv")
        self._eval_summary = report.with_suffix(".json")
        args = [
            "--ckpt",
            ckpt,
            "--dataset",
            dataset,
            "--output",
            str(report),
            "--summary",
            str(self._eval_summary),
        ]
        return self._start("evaluation", paths.toolkit_command("evaluate", args))

    def poll_metrics(self) -> int:
        if self.tail is None:
            return 0
        records = self.tail.read()
        added = self.curves.add(records)
        if self.task == "training" and self.running:
            self.tracker.add(records)
            self.show_progress()
        return added

    def show_progress(self) -> None:
        """Step N of M, the ETA and the last loss, in the status line and the progress bar."""
        p = self.tracker.progress(time.time())
        if p.total:
            self.progress.setRange(0, p.total)
            self.progress.setValue(min(p.step, p.total))
        if p.step or p.total:
            loss = self.curves.data["loss"]
            tail = f" · loss {loss[1][-1]:.3f}" if loss[1] else ""
            self.status.setText(f"Training… {p.text()}{tail}")

    def _use_model(self) -> None:
        ckpt = find_checkpoint(self.run_dir) if self.run_dir else None
        if ckpt is None:
            self.message.emit("This run has no checkpoint yet.")
            return
        self.use_model.emit(str(ckpt))
