"""The main window: toolbar, results table, transcript, plots, recorder and the training tab.

Widgets only: everything slow happens in ``workers`` (the analysis thread and pool jobs), in the
normalise dialog's thread or in a training subprocess; this module wires their signals to the
views. Exports live in ``exports``, playback in ``playback``, delivery checks in ``compliance``.
"""

from __future__ import annotations

import logging
from pathlib import Path

from PySide6.QtCore import QSize, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QIcon, QKeySequence
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QLabel,
    QMainWindow,
    QMessageBox,
    QProgressBar,
    QSplitter,
    QTabWidget,
    QToolBar,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from speechint_desktop.core.results import Analysis, FileError
from speechint_desktop.ui import session_store
from speechint_desktop.ui.compliance import CompliancePanel, SpecChecker
from speechint_desktop.ui.exports import Exporter
from speechint_desktop.ui.playback import Player
from speechint_desktop.ui.plots import AnalysisPlots
from speechint_desktop.ui.recorder import RecorderPanel
from speechint_desktop.ui.results_table import (
    CANCELLED,
    DONE,
    FAILED,
    QUEUED,
    RUNNING,
    SPEC,
    ResultsModel,
    ResultsTable,
)
from speechint_desktop.ui.settings import Settings
from speechint_desktop.ui.summary import SummaryLabel
from speechint_desktop.ui.summary import model_label as _model_label
from speechint_desktop.ui.training_tab import TrainingTab
from speechint_desktop.ui.transcript import TranscriptPane
from speechint_desktop.ui.workers import AnalysisWorker, load_envelope, run_job

log = logging.getLogger(__name__)

FALLBACK_MODELS = ["tiny.en", "base", "small"]
ADD_LOCAL = "__add_local__"
ICON_DIR = Path(__file__).resolve().parents[2] / "resources" / "icons"


def default_data_dir() -> Path:
    from speechint_desktop.core.catalog import data_dir

    return Path(data_dir())


class MainWindow(QMainWindow):
    """One window; tests construct it with private ``settings`` and ``home`` folders."""

    files_added = Signal(list)

    def __init__(
        self,
        settings: Settings | None = None,
        home: Path | None = None,
        model: str | None = None,
        device: str | None = None,
        parent=None,
    ):
        super().__init__(parent)
        self.settings = settings or Settings()
        self.home = Path(home) if home else default_data_dir()
        if model:
            self.settings.model = model
        if device:
            self.settings.device = device
        if not self.settings.session:
            self.settings.session = session_store.new_session_id()
        self.store = session_store.SessionStore(self.home / "sessions" / self.settings.session)
        self.envelopes: dict[str, object] = {}
        self._model_tips: dict[str, str] = {}
        self._loading_envelope: set[str] = set()
        self._shown: str | None = None
        self._queue_total = 0
        self.model_in_use: str | None = None
        self.device_in_use: str | None = None

        self.setWindowTitle("SpeechInt — transcript and voice intensity")
        if (ICON_DIR / "speechint-256.png").exists():
            self.setWindowIcon(QIcon(str(ICON_DIR / "speechint-256.png")))
        self.setAcceptDrops(True)
        self.resize(1480, 920)

        self.results = ResultsModel(self)
        self.table = ResultsTable(self.results)
        self.checker = SpecChecker(self.settings, self)
        self.results.spec_cell = self.checker.cell
        self.compliance = CompliancePanel(self.checker)
        self.transcript_pane = TranscriptPane(self.settings.transcript_view, self.settings.quiet_word_lu)
        self.transcript, self.words = self.transcript_pane.segments, self.transcript_pane.words
        self.plots = AnalysisPlots()
        self.plots.set_unit(self.settings.intensity_unit)
        self.summary = SummaryLabel()
        self.recorder = RecorderPanel(self.home / "recordings", self.settings.input_device)
        self.training = TrainingTab(self.home / "runs", self.home / "datasets")
        self.player = Player(self)
        self.exporter = Exporter(
            self,
            self.settings,
            lambda: [r.analysis for r in self.table.selected_rows() if r.analysis is not None],
            self.results.analyses,
        )
        self._normalize_dialog = None

        self._build_layout()
        self._build_toolbar()
        self._build_menus()
        self._build_statusbar()
        self._connect()

        geometry = self.settings.geometry()
        if geometry is not None:
            self.restoreGeometry(geometry)
        state = self.settings.window_state()
        if state is not None:
            self.restoreState(state)

        self.worker = AnalysisWorker(
            self.settings.model,
            self.settings.device,
            store=self.store,
            options=self.settings.transcribe_options(),
            parent=self,
        )
        self._connect_worker()
        self.engine_label.setText(f"Loading model {_model_label(self.settings.model)}…")
        # Start the heavy imports (torch) only once the window is up: they compete for the GIL.
        QTimer.singleShot(150, self, self._start_background)

    def _start_background(self) -> None:
        if not self.worker.isRunning():
            self.worker.start()
        self._reload_session()
        self._load_model_list()

    # --- construction -----------------------------------------------------------------------------
    def _build_layout(self) -> None:
        details = QWidget()
        dlay = QVBoxLayout(details)
        dlay.setContentsMargins(0, 0, 0, 0)
        dlay.addWidget(self.summary)
        dlay.addWidget(self.compliance)
        dlay.addWidget(self.transcript_pane, 1)

        lower = QSplitter(Qt.Orientation.Horizontal)
        lower.addWidget(details)
        lower.addWidget(self.plots)
        lower.setStretchFactor(0, 2)
        lower.setStretchFactor(1, 3)
        lower.setSizes([560, 900])

        self.main_split = QSplitter(Qt.Orientation.Vertical)
        self.main_split.addWidget(self.table)
        self.main_split.addWidget(lower)
        self.main_split.setStretchFactor(0, 2)
        self.main_split.setStretchFactor(1, 5)
        self.main_split.setSizes([190, 620])

        analyse = QWidget()
        alay = QVBoxLayout(analyse)
        alay.setContentsMargins(4, 4, 4, 4)
        alay.addWidget(self.recorder)
        alay.addWidget(self.main_split, 1)

        self.tabs = QTabWidget()
        self.tabs.setDocumentMode(True)
        self.tabs.addTab(analyse, "Analyse")
        self.tabs.addTab(self.training, "Train")
        self.setCentralWidget(self.tabs)

    def _build_toolbar(self) -> None:
        tb = QToolBar("Main")
        tb.setObjectName("main-toolbar")
        tb.setMovable(False)
        tb.setIconSize(QSize(18, 18))
        tb.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.addToolBar(tb)
        style = self.style()
        sp = style.StandardPixmap

        self.open_action = QAction(style.standardIcon(sp.SP_DialogOpenButton), "Open files…", self)
        self.open_action.setShortcut(QKeySequence.StandardKey.Open)
        self.open_action.triggered.connect(self.open_files_dialog)
        self.folder_action = QAction(style.standardIcon(sp.SP_DirOpenIcon), "Open folder…", self)
        self.folder_action.triggered.connect(self.open_folder_dialog)
        self.record_action = QAction(style.standardIcon(sp.SP_MediaPlay), "Record", self)
        self.record_action.setCheckable(True)
        self.record_action.setShortcut("Ctrl+R")
        self.record_action.triggered.connect(self.toggle_recording)

        self.export_menu = self.exporter.menu
        self.export_button = QToolButton()
        self.export_button.setText("Export")
        self.export_button.setIcon(style.standardIcon(sp.SP_DialogSaveButton))
        self.export_button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.export_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.export_button.setMenu(self.export_menu)

        self.play_action = QAction(style.standardIcon(sp.SP_MediaVolume), "Play", self)
        self.play_action.setToolTip("Play the selected segment (or the whole file); again to stop")
        self.play_action.setShortcut("Ctrl+P")
        self.play_action.triggered.connect(self.play_selection)
        self.normalize_action = QAction(style.standardIcon(sp.SP_MediaSeekForward), "Normalize…", self)
        self.normalize_action.setToolTip(
            "Bring the selected files to a delivery spec or a target loudness with one gain (new files)"
        )
        self.normalize_action.setShortcut("Ctrl+L")
        self.normalize_action.triggered.connect(self.normalize_selected)

        self.cancel_action = QAction(style.standardIcon(sp.SP_MediaStop), "Cancel", self)
        self.cancel_action.setToolTip("Cancel the file being analysed")
        self.cancel_action.triggered.connect(self.cancel_current)
        self.cancel_all_action = QAction(style.standardIcon(sp.SP_BrowserStop), "Cancel all", self)
        self.cancel_all_action.setToolTip("Cancel the current file and empty the queue")
        self.cancel_all_action.triggered.connect(self.cancel_all)

        self.model_box = QComboBox()
        self.model_box.setMinimumWidth(170)
        self.model_box.setToolTip("Model used for new analyses")
        self.device_box = QComboBox()
        self.device_box.setMinimumWidth(150)
        self.device_box.setToolTip("Where the model runs")
        self.device_box.addItem("Auto", "auto")
        self.device_box.addItem("CPU", "cpu")
        self._select_data(self.device_box, self.settings.device)
        self.unit_box = QComboBox()
        self.unit_box.addItem("RMS dBFS", "dBFS")
        self.unit_box.addItem("LUFS", "LUFS")
        self.unit_box.setToolTip("Which measured level the loudness plot marks as the file's value")
        self._select_data(self.unit_box, self.settings.intensity_unit)
        self._fill_models(FALLBACK_MODELS)
        vad_tip = (
            "Detect speech (Silero VAD), decode only that and measure its loudness apart from the"
            " programme's; off decodes the whole file. Applies from the next file."
        )
        self.vad_box = QCheckBox("Detect speech")
        self.vad_box.setToolTip(vad_tip)
        self.vad_action = QAction("Detect speech (VAD)", self, checkable=True, toolTip=vad_tip)
        for control in (self.vad_box, self.vad_action):
            control.setChecked(self.settings.vad)
            control.toggled.connect(self.set_vad)

        tb.addAction(self.open_action)
        tb.addAction(self.folder_action)
        tb.addAction(self.record_action)
        tb.addWidget(self.export_button)
        tb.addAction(self.play_action)
        tb.addAction(self.normalize_action)
        tb.addSeparator()
        tb.addAction(self.cancel_action)
        tb.addAction(self.cancel_all_action)
        spacer = QWidget()
        spacer.setSizePolicy(
            spacer.sizePolicy().horizontalPolicy().Expanding, spacer.sizePolicy().verticalPolicy()
        )
        tb.addWidget(spacer)
        tb.addWidget(self.vad_box)
        for label, box in (
            ("  Model ", self.model_box),
            ("  Device ", self.device_box),
            ("  Level ", self.unit_box),
        ):
            tb.addWidget(QLabel(label))
            tb.addWidget(box)

    def _build_menus(self) -> None:
        file_menu = self.menuBar().addMenu("&File")
        file_menu.addAction(self.open_action)
        file_menu.addAction(self.folder_action)
        file_menu.addAction(self.record_action)
        file_menu.addMenu(self.export_menu)
        file_menu.addSeparator()
        file_menu.addAction("Add local checkpoint…", self.add_local_checkpoint)
        file_menu.addAction("Clear results (start a new session)", self.new_session)
        file_menu.addSeparator()
        quit_action = file_menu.addAction("Quit", self.close)
        quit_action.setShortcut(QKeySequence.StandardKey.Quit)
        analysis_menu = self.menuBar().addMenu("&Analysis")
        analysis_menu.addAction(self.cancel_action)
        analysis_menu.addAction(self.cancel_all_action)
        analysis_menu.addSeparator()
        analysis_menu.addAction(self.vad_action)
        analysis_menu.addSeparator()
        analysis_menu.addAction(self.normalize_action)
        analysis_menu.addAction("Calibrate to dB SPL…", self.calibrate)
        # the queue's context menu: what applies to the selected rows
        self.table.setContextMenuPolicy(Qt.ContextMenuPolicy.ActionsContextMenu)
        self.table.addActions([self.play_action, self.normalize_action])
        words_csv = QAction("Export words (CSV)…", self)
        words_csv.triggered.connect(lambda: self.exporter.words_dialog())
        self.table.addAction(words_csv)
        help_menu = self.menuBar().addMenu("&Help")
        help_menu.addAction("About SpeechInt", self._about)

    def _build_statusbar(self) -> None:
        bar = self.statusBar()
        self.queue_bar = QProgressBar()
        self.queue_bar.setMaximumWidth(220)
        self.queue_bar.setTextVisible(True)
        self.queue_bar.setVisible(False)
        self.engine_label = QLabel("Loading model…")
        self.engine_label.setStyleSheet("padding: 0 8px;")
        bar.addPermanentWidget(self.queue_bar)
        bar.addPermanentWidget(self.engine_label)

    def _connect(self) -> None:
        self.table.selectionModel().currentRowChanged.connect(lambda cur, prev: self._show_current())
        self.transcript_pane.span_selected.connect(lambda s, e: self.plots.select_span((s, e)))
        self.transcript_pane.mode_changed.connect(lambda m: setattr(self.settings, "transcript_view", m))
        self.transcript_pane.threshold_changed.connect(lambda lu: setattr(self.settings, "quiet_word_lu", lu))
        self.transcript_pane.play_requested.connect(lambda s, e: self.play_span((s, e)))
        self.transcript_pane.export_words_requested.connect(
            lambda: self.exporter.words_dialog([a] if (a := self._shown_analysis()) else [])
        )
        self.checker.changed.connect(lambda: self.results.refresh_column(SPEC))
        self.exporter.message.connect(self.status)
        self.player.message.connect(self.status)
        self.player.playing_changed.connect(
            lambda on: self.play_action.setText("Stop playing" if on else "Play")
        )
        self.recorder.message.connect(self.status)
        self.recorder.take_saved.connect(lambda p: self.add_paths([p]))
        self.recorder.state_changed.connect(self._recording_changed)
        self.recorder.device_box.currentIndexChanged.connect(self._input_changed)
        self.training.message.connect(self.status)
        self.training.use_model.connect(self.use_checkpoint)
        self.model_box.activated.connect(self._model_chosen)
        self.device_box.activated.connect(self._device_chosen)
        self.unit_box.currentIndexChanged.connect(self._unit_chosen)

    def _connect_worker(self) -> None:
        w = self.worker
        w.model_loading.connect(self._model_loading)
        w.model_ready.connect(self._model_ready)
        w.model_progress.connect(lambda f, m: self.status(f"Preparing the model: {m} ({f:.0%})"))
        w.model_failed.connect(self._model_failed)
        w.devices_found.connect(self._devices_found)
        w.started_file.connect(lambda p: self.results.update(p, status=RUNNING, fraction=0.0))
        w.progress.connect(self._progress)
        w.finished_file.connect(self._finished)
        w.failed_file.connect(self._failed)
        w.cancelled_file.connect(self._cancelled)
        w.waveform_ready.connect(self._waveform)
        w.queue_done.connect(self._queue_done)
        w.delivery_ready.connect(self.checker.notify_loaded)

    # --- helpers ------------------------------------------------------------------------------------
    def _job(self, fn, on_done=None, on_failed=None):
        """A background job whose callbacks are dropped if this widget is gone by then."""
        return run_job(fn, on_done, on_failed, owner=self)

    @staticmethod
    def _select_data(box: QComboBox, value) -> None:
        i = box.findData(value)
        if i >= 0:
            box.setCurrentIndex(i)

    def status(self, text: str, ms: int = 0) -> None:
        self.statusBar().showMessage(text, ms)

    def _fill_models(self, names: list[str]) -> None:
        current = self.settings.model
        self.model_box.blockSignals(True)
        self.model_box.clear()
        keys = list(dict.fromkeys([*names, *self.settings.local_models]))
        if current not in keys:
            keys.append(current)
        for key in keys:
            self.model_box.addItem(_model_label(key), key)
            tip = self._model_tips.get(key, key)
            self.model_box.setItemData(self.model_box.count() - 1, tip, Qt.ItemDataRole.ToolTipRole)
        self.model_box.insertSeparator(self.model_box.count())
        self.model_box.addItem("Add local checkpoint…", ADD_LOCAL)
        self._select_data(self.model_box, current)
        self.model_box.blockSignals(False)

    def _load_model_list(self) -> None:
        def names():
            from speechint_desktop.core import catalog

            models = catalog.list_models()
            for m in models:
                note = (
                    ""
                    if m.installed
                    else f" — not installed yet: installs on first use (~{m.download_mb} MB)"
                )
                self._model_tips[m.name] = m.description + note
            return [m.name for m in models]

        self._job(names, self._fill_models, lambda msg: log.warning("model list: %s", msg))

    # --- adding files ---------------------------------------------------------------------------------
    def open_files_dialog(self) -> None:
        from speechint_desktop.ui.app import audio_filter

        files, _ = QFileDialog.getOpenFileNames(self, "Open audio files", "", audio_filter())
        if files:
            self.add_paths(files)

    def open_folder_dialog(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Open a folder of audio files")
        if folder:
            self.add_paths([folder])

    def add_paths(self, paths) -> None:
        """Queue files and folders (expanded off the GUI thread)."""
        paths = [str(p) for p in paths]

        def expand():
            from speechint_desktop.core.audio import find_audio_files

            return [str(p) for p in find_audio_files(paths)]

        self._job(
            expand,
            lambda files: self._enqueue(files, paths),
            lambda msg: self.status(f"Could not open: {msg}"),
        )

    def _enqueue(self, files: list[str], asked: list[str]) -> None:
        if not files:
            self.status(f"No audio files found in {', '.join(Path(p).name for p in asked)}.")
            return
        if not self.worker.busy:
            self._queue_total = 0
        for f in files:
            self.results.add(f, QUEUED)
        self._queue_total += len(files)
        self.worker.enqueue(files)
        self._update_queue_bar()
        self.status(f"Queued {len(files)} file{'s' if len(files) != 1 else ''}.")
        self.files_added.emit(files)
        if self.table.current_row() is None and self.results.rows:
            self.table.select_path(files[0])

    def dragEnterEvent(self, event) -> None:  # noqa: N802
        if event.mimeData().hasUrls():
            event.acceptProposedAction()
        else:
            event.ignore()

    def dragMoveEvent(self, event) -> None:  # noqa: N802
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:  # noqa: N802
        paths = [u.toLocalFile() for u in event.mimeData().urls() if u.isLocalFile()]
        if paths:
            event.acceptProposedAction()
            self.add_paths(paths)
        else:
            self.status("Only local files and folders can be dropped here.")

    # --- worker signals ---------------------------------------------------------------------------------
    def _model_loading(self, model: str) -> None:
        self.engine_label.setText(f"Loading model {_model_label(model)}…")
        self.status(f"Loading model {_model_label(model)}… (you can queue files meanwhile)")

    def _model_ready(self, model: str, device: str) -> None:
        self.model_in_use, self.device_in_use = model, device
        self.engine_label.setText(f"Model {_model_label(model)} on {device.upper()}")
        self.status(f"Model {_model_label(model)} ready on {device}.", 5000)

    def _model_failed(self, message: str) -> None:
        self.engine_label.setText("No model loaded")
        self.status(message)
        box = QMessageBox(QMessageBox.Icon.Warning, "SpeechInt", message, parent=self)
        box.setInformativeText("Pick another model from the toolbar; files you queue will report this error.")
        box.setModal(False)
        box.show()
        self._model_box_dialog = box

    def _devices_found(self, choices) -> None:
        current = self.settings.device
        self.device_box.blockSignals(True)
        self.device_box.clear()
        self.device_box.addItem("Auto", "auto")
        for c in choices:
            self.device_box.addItem(c.label, c.key)
        self._select_data(self.device_box, current)
        self.device_box.blockSignals(False)

    def _progress(self, path: str, fraction: float, message: str) -> None:
        self.results.update(path, status=RUNNING, fraction=max(0.0, min(1.0, fraction)))
        self.status(f"Analysing {Path(path).name}: {message} ({fraction:.0%})")

    def _finished(self, analysis: Analysis) -> None:
        if analysis.calibration is None:
            analysis.calibration = self.settings.calibration  # dB SPL in the summary and exports
        self.results.set_analysis(analysis)
        self._update_queue_bar()
        # Show it in the next loop pass: the table's repaint and the plots' then fall into
        # separate event-loop turns, each short.
        QTimer.singleShot(0, self, lambda: self._show_finished(analysis.source))

    def _show_finished(self, source: str) -> None:
        current = self.table.current_row()
        if current is not None and current.path == source:
            self._show_current()
        elif current is None:
            self.table.select_path(source)  # shows it through currentRowChanged
        # Release the worker once this is painted: a zero timer is queued behind the update event.
        QTimer.singleShot(0, self, self.worker.result_shown)

    def _failed(self, error: FileError) -> None:
        self.results.set_error(error)
        self._update_queue_bar()
        current = self.table.current_row()
        if current is not None and current.path == error.source:
            self._show_current()

    def _cancelled(self, path: str) -> None:
        self.results.update(path, status=CANCELLED, fraction=0.0)
        self._update_queue_bar()

    def _waveform(self, path: str, envelope) -> None:
        self.envelopes[path] = envelope
        if self._shown == path:
            self.plots.set_envelope(envelope)

    def _queue_done(self) -> None:
        done, failed = self.results.count(DONE), self.results.count(FAILED)
        cancelled = self.results.count(CANCELLED)
        parts = (
            [f"{done} done"]
            + ([f"{failed} failed"] if failed else [])
            + ([f"{cancelled} cancelled"] if cancelled else [])
        )
        self.status("Queue finished: " + ", ".join(parts) + ".")
        self._queue_total = 0
        self._update_queue_bar()

    def _update_queue_bar(self) -> None:
        pending = self.results.count(QUEUED) + self.results.count(RUNNING)
        if not pending:
            self.queue_bar.setVisible(False)
            return
        total = max(self._queue_total, pending)
        self.queue_bar.setVisible(True)
        self.queue_bar.setRange(0, total)
        self.queue_bar.setValue(total - pending)
        self.queue_bar.setFormat(f"{total - pending} of {total} files")

    # --- selection ----------------------------------------------------------------------------------
    def _show_current(self) -> None:
        row = self.table.current_row()
        if row is None:
            return
        a = row.analysis
        self._shown = row.path
        if a is None:
            self.transcript_pane.set_analysis(None)
            self.plots.clear()
            self.summary.show_status(row.path, row.status, row.error)
            self.compliance.show_analysis(None, f"{Path(row.path).name}: {row.status}")
            return
        self.transcript_pane.set_analysis(a)
        self.plots.set_analysis(a)
        self.summary.show_analysis(a)
        self.compliance.show_analysis(a)
        env = self.envelopes.get(row.path)
        self.plots.set_envelope(env)
        if env is None and row.path not in self._loading_envelope and Path(row.path).exists():
            self._loading_envelope.add(row.path)
            self._job(
                lambda p=row.path: (p, load_envelope(p)),
                lambda res: (self._loading_envelope.discard(res[0]), self._waveform(*res)),
                lambda msg, p=row.path: (self._loading_envelope.discard(p), self.status(msg)),
            )

    # --- toolbar actions -----------------------------------------------------------------------------
    def _shown_analysis(self) -> Analysis | None:
        row = self.table.current_row()
        return row.analysis if row is not None else None

    def play_selection(self) -> None:
        """Play the selected span of the shown file (or the whole file); again to stop."""
        row = self.table.current_row()
        if row is None or row.analysis is None:
            self.status("Select an analysed file to play it.")
            return
        self.player.toggle(row.path, self.plots.selected_span())

    def play_span(self, span: tuple[float, float]) -> None:
        """Select ``span`` of the shown file in the plots and play it from its start."""
        row = self.table.current_row()
        if row is None or row.analysis is None:
            return
        self.plots.select_span(span)
        self.player.play(row.path, span)

    def normalize_selected(self) -> None:
        """Open the Normalize dialog on the selected files (a running one is shown again instead)."""
        from speechint_desktop.ui.normalize_dialog import NormalizeDialog

        old = self._normalize_dialog
        if old is not None and old.running:
            old.show()
            old.raise_()
            return
        paths = [r.path for r in self.table.selected_rows() if r.status not in (QUEUED, RUNNING)]
        if not paths:
            self.status("Select files in the queue to normalise them.")
            return
        if not self.checker.is_ready:
            self.status("The delivery specs are still loading; try again in a moment.")
            return
        if old is not None:
            old.deleteLater()
        dialog = NormalizeDialog(
            paths, self.checker.presets(), self.checker.spec_name, self.checker.speech_only, parent=self
        )
        dialog.analyse_outputs.connect(self.add_paths)
        self._normalize_dialog = dialog
        dialog.show()

    def cancel_current(self) -> None:
        self.worker.cancel_current()
        self.status("Cancelling the current file…")

    def cancel_all(self) -> None:
        self.worker.cancel_all()
        self.status("Cancelling the queue…")

    def toggle_recording(self, checked: bool | None = None) -> None:
        if self.recorder.recording:
            self.recorder.stop()
        elif not self.recorder.start():
            self.record_action.setChecked(False)

    def _recording_changed(self, recording: bool) -> None:
        style = self.style()
        self.record_action.setChecked(recording)
        self.record_action.setText("Stop" if recording else "Record")
        icon = style.StandardPixmap.SP_MediaStop if recording else style.StandardPixmap.SP_MediaPlay
        self.record_action.setIcon(style.standardIcon(icon))

    def _input_changed(self, index: int) -> None:
        name = self.recorder.current_device()
        if name:
            self.settings.input_device = name

    def _model_chosen(self, index: int) -> None:
        key = self.model_box.itemData(index)
        if key == ADD_LOCAL:
            self._select_data(self.model_box, self.settings.model)
            self.add_local_checkpoint()
            return
        self.set_model(key)

    def set_model(self, key: str) -> None:
        if key == self.settings.model and self.model_in_use == key:
            return
        self.settings.model = key
        self._fill_models(
            [
                self.model_box.itemData(i)
                for i in range(self.model_box.count())
                if self.model_box.itemData(i) not in (None, ADD_LOCAL)
            ]
        )
        self.worker.set_model(key, self.settings.device)

    def add_local_checkpoint(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "A trained SpeechInt / Whisper checkpoint folder")
        if folder:
            self.use_checkpoint(folder)

    def use_checkpoint(self, folder: str) -> None:
        if not (Path(folder) / "config.json").exists():
            self.status(f"{Path(folder).name}: not a model checkpoint (no config.json).")
            return
        self.settings.add_local_model(folder)
        self.set_model(folder)
        self.tabs.setCurrentIndex(0)

    def _device_chosen(self, index: int) -> None:
        key = self.device_box.itemData(index)
        if key and key != self.settings.device:
            self.settings.device = key
            self.worker.set_model(self.settings.model, key)

    def set_vad(self, on: bool) -> None:
        """Speech detection on or off, for the next file the worker starts."""
        self.settings.vad = on
        for control in (self.vad_box, self.vad_action):
            control.blockSignals(True)
            control.setChecked(on)
            control.blockSignals(False)
        self.worker.set_options(self.settings.transcribe_options())
        self.status(f"Speech detection {'on' if on else 'off'} from the next file.", 5000)

    def _unit_chosen(self, index: int) -> None:
        unit = self.unit_box.itemData(index)
        self.settings.intensity_unit = unit
        self.plots.set_unit(unit)

    def export_dialog(self, fmt: str, selected: bool) -> None:
        self.exporter.export_dialog(fmt, selected)

    def export(self, analyses: list[Analysis], fmt: str, target: str) -> None:
        """Write exports off the GUI thread; ``target`` is a folder (or the CSV file)."""
        self.exporter.export(analyses, fmt, target)

    def new_session(self) -> None:
        if self.worker.busy:
            self.worker.cancel_all()
        self.settings.session = session_store.new_session_id()
        self.store = session_store.SessionStore(self.home / "sessions" / self.settings.session)
        self.worker.store = self.store
        self.results.clear()
        self.envelopes.clear()
        self.transcript_pane.set_analysis(None)
        self.plots.clear()
        self.summary.show_empty()
        self.compliance.show_analysis(None)
        self.status("Started a new session.")

    def _reload_session(self) -> None:
        def apply(items):
            for item in items:
                if isinstance(item, Analysis):
                    self.results.set_analysis(item)
                else:
                    self.results.set_error(item)
            if items:
                self.status(
                    f"Restored {len(items)} result{'s' if len(items) != 1 else ''} from the last session.",
                    5000,
                )
                if self.table.current_row() is None:
                    self.table.selectRow(0)

        self._job(
            self.store.load, apply, lambda msg: self.status(f"Could not restore the last session: {msg}")
        )

    def calibrate(self) -> None:
        """dBFS → dB SPL for the files analysed from now on (``ui.calibration_dialog``)."""
        from speechint_desktop.ui.calibration_dialog import CalibrationDialog

        dialog = CalibrationDialog(self.settings.calibration, self)
        if dialog.exec():
            self.settings.calibration = dialog.result_calibration
            c = dialog.result_calibration
            self.status(
                "Calibration off." if c is None else f"Calibration: {c.describe()} (from the next file)."
            )

    def _about(self) -> None:
        QMessageBox.about(
            self,
            "About SpeechInt",
            "<b>SpeechInt</b><br>Transcribe speech and measure voice intensity in one pass "
            "(Whisper + an intensity head; loudness per ITU-R BS.1770-4 / EBU R128).",
        )

    # --- shutdown -----------------------------------------------------------------------------------
    def closeEvent(self, event) -> None:  # noqa: N802
        self.settings.save_window(self.saveGeometry(), self.saveState())
        self.settings.sync()
        if self.recorder.recording:
            self.recorder.stop()
        if self.training.running:
            self.training.stop()
            self.training.process.waitForFinished(3000)
        if self._normalize_dialog is not None:
            self._normalize_dialog.stop()
        self.player.stop()
        self.worker.stop()
        super().closeEvent(event)
