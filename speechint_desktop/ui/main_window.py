"""The main window: toolbar, results table, transcript, plots, recorder and the training tab.

Widgets only: everything slow happens in ``workers`` (the analysis thread and pool jobs), in the
normalise dialog's thread or in a training subprocess; this module wires their signals to the
views. Exports live in ``exports``, playback in ``playback``, delivery checks in ``compliance``,
the queue's rows (add, retry, remove, clear/undo, saved queue) in ``queue_manager``, moving around
the shown file (zoom, click, playhead, Space) in ``navigator``.
"""

from __future__ import annotations

import logging
from pathlib import Path

from PySide6.QtCore import QSize, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QActionGroup, QIcon, QKeySequence
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

from speechint_desktop.core import paths
from speechint_desktop.core.results import Analysis
from speechint_desktop.ui.analysis_worker import AnalysisWorker
from speechint_desktop.ui.compliance import CompliancePanel, SpecChecker
from speechint_desktop.ui.exports import Exporter
from speechint_desktop.ui.file_view import FileView
from speechint_desktop.ui.help import show_levels_help
from speechint_desktop.ui.model_picker import add_model_item
from speechint_desktop.ui.navigator import Navigator
from speechint_desktop.ui.playback import Player
from speechint_desktop.ui.plots import AnalysisPlots
from speechint_desktop.ui.queue_manager import QueueManager
from speechint_desktop.ui.recorder import RecorderPanel
from speechint_desktop.ui.results_table import (
    PENDING,
    SPEC,
    ResultsModel,
    ResultsTable,
)
from speechint_desktop.ui.settings import Settings
from speechint_desktop.ui.summary import SummaryLabel
from speechint_desktop.ui.summary import model_label as _model_label
from speechint_desktop.ui.training_tab import TrainingTab
from speechint_desktop.ui.transcript import TranscriptPane
from speechint_desktop.ui.workers import run_job

log = logging.getLogger(__name__)

FALLBACK_MODELS = list(paths.CATALOG_MODELS)
ADD_LOCAL = "__add_local__"
ICON_DIR = paths.icons_dir()


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
        self._model_tips: dict[str, str] = {}
        self._unavailable: dict[str, str] = {}  # catalogue models that cannot work here, and why
        self.model_in_use: str | None = None
        self.device_in_use: str | None = None

        self.setWindowTitle("SpeechInt — transcript and voice intensity")
        if (ICON_DIR / "speechint-256.png").exists():
            self.setWindowIcon(QIcon(str(ICON_DIR / "speechint-256.png")))
        self.setAcceptDrops(True)
        self.resize(1480, 920)

        self.results = ResultsModel(self)
        self.results.model_label = _model_label
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
        self.training = TrainingTab(paths.runs_dir(self.home), paths.datasets_dir(self.home))
        self.player = Player(self)
        self.exporter = Exporter(
            self, self.settings, self.table.selected_rows, lambda: list(self.results.rows)
        )
        self.navigator = Navigator(
            self,
            self.plots,
            self.transcript_pane,
            self.player,
            self.table.current_row,
            lambda: self.tabs.currentIndex() == 0,
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
            options=self.settings.transcribe_options(),
            parent=self,
        )
        self.queue = QueueManager(self, self.results, self.table, self.worker, self.settings, self.home)
        self.view = FileView(
            self, self.table, self.transcript_pane, self.plots, self.summary, self.compliance,
            self.navigator,
        )  # fmt: skip
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
        self.cancel_action.setToolTip(
            "Cancel what is being analysed (short clips run together); the queue goes on"
        )
        self.cancel_action.triggered.connect(self.cancel_current)
        self.cancel_all_action = QAction(style.standardIcon(sp.SP_BrowserStop), "Cancel all", self)
        self.cancel_all_action.setToolTip("Cancel what is being analysed and empty the queue")
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

        # how the words are searched for (Analysis menu): one of two, applies from the next file
        self.decoding_group = QActionGroup(self)
        self.decoding_actions = {}
        for key, label, tip in (
            ("accurate", "Accurate decoding (beam search)", "The most accurate words (default)."),
            (
                "fast",
                "Fast decoding (greedy)",
                "About a sixth quicker on long recordings; a few more words wrong.",
            ),
        ):
            action = QAction(label, self, checkable=True, toolTip=tip + " Applies from the next file.")
            action.setChecked(self.settings.decoding == key)
            action.triggered.connect(lambda _=False, key=key: self.set_decoding(key))
            self.decoding_group.addAction(action)
            self.decoding_actions[key] = action

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
        file_menu.addSeparator()
        quit_action = file_menu.addAction("Quit", self.close)
        quit_action.setShortcut(QKeySequence.StandardKey.Quit)

        # the queue's rows: the table's context menu and the Edit menu
        self.undo_action = QAction("Undo", self)
        self.undo_action.setShortcut(QKeySequence.StandardKey.Undo)
        self.undo_action.setEnabled(False)
        self.undo_action.triggered.connect(lambda: self.queue.undo())
        self.retry_action = QAction("Retry", self)
        self.retry_action.setToolTip("Analyse the selected failed, cancelled or interrupted files again")
        self.retry_action.triggered.connect(lambda: self.queue.retry(self.table.selected_rows()))
        self.reanalyse_action = QAction("Analyse again with the current model", self)
        self.reanalyse_action.setToolTip(
            "Another model adds a row beside the earlier result; the same model asks before replacing it"
        )
        self.reanalyse_action.triggered.connect(lambda: self.queue.reanalyse(self.table.selected_rows()))
        self.remove_action = QAction("Remove", self.table)  # Delete acts while the table has focus
        self.remove_action.setShortcut(QKeySequence.StandardKey.Delete)
        self.remove_action.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        self.remove_action.triggered.connect(lambda: self.queue.remove(self.table.selected_rows()))
        self.clear_action = QAction("Clear results (start a new session)…", self)
        self.clear_action.triggered.connect(self.new_session)
        edit_menu = self.menuBar().addMenu("&Edit")
        for action in (self.undo_action, None, self.retry_action, self.reanalyse_action, self.remove_action,
                       None, self.clear_action):  # fmt: skip
            edit_menu.addSeparator() if action is None else edit_menu.addAction(action)

        analysis_menu = self.menuBar().addMenu("&Analysis")
        analysis_menu.setToolTipsVisible(True)  # the decoding choices say what they cost
        analysis_menu.addAction(self.cancel_action)
        analysis_menu.addAction(self.cancel_all_action)
        analysis_menu.addSeparator()
        analysis_menu.addAction(self.vad_action)
        analysis_menu.addSeparator()
        for action in self.decoding_actions.values():
            analysis_menu.addAction(action)
        analysis_menu.addSeparator()
        analysis_menu.addAction(self.normalize_action)
        analysis_menu.addAction("Calibrate to dB SPL…", self.calibrate)
        # the queue's context menu: what applies to the selected rows
        self.table.setContextMenuPolicy(Qt.ContextMenuPolicy.ActionsContextMenu)
        words_csv = QAction("Export words (CSV)…", self)
        words_csv.triggered.connect(lambda: self.exporter.words_dialog())
        separator = QAction(self)
        separator.setSeparator(True)
        self.table.addActions(
            [self.play_action, self.retry_action, self.reanalyse_action, self.remove_action, separator,
             self.normalize_action, words_csv]
        )  # fmt: skip
        help_menu = self.menuBar().addMenu("&Help")
        help_menu.addAction(
            "Levels explained (measured loudness, LUFS, model intensity)", self.show_levels_help
        )
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
        self.table.selectionModel().currentRowChanged.connect(lambda cur, prev: self.view.show_current())
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
        w.waveform_ready.connect(self.view.waveform)
        w.partial_file.connect(self.view.partial)
        w.delivery_ready.connect(self.checker.notify_loaded)
        q = self.queue
        q.message.connect(self.status)
        q.row_changed.connect(self.view.row_changed)
        q.finished.connect(self._finished)
        q.undo_changed.connect(self._undo_changed)

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
            tip, why = self._model_tips.get(key, key), self._unavailable.get(key, "")
            add_model_item(self.model_box, key, _model_label(key), tip, why)
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
                self._unavailable[m.name] = "" if m.available or m.installed else m.note
            return [m.name for m in models]

        def fill(names: list[str]) -> None:
            self._fill_models(names)
            self.training.set_models([(n, self._unavailable.get(n, "")) for n in names])

        self._job(names, fill, lambda msg: log.warning("model list: %s", msg))

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
        rows = self.queue.enqueue(files)
        self.files_added.emit(files)
        if rows and self.table.current_row() is None:
            self.table.select_key(rows[0].key)

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

    def _finished(self, key: str) -> None:
        # Show it in the next loop pass: the table's repaint and the plots' then fall into
        # separate event-loop turns, each short.
        QTimer.singleShot(0, self, lambda: self._show_finished(key))

    def _show_finished(self, key: str) -> None:
        current = self.table.current_row()
        if current is not None and current.key == key:
            self.view.show_current()
        elif current is None:
            self.table.select_key(key)  # shows it through currentRowChanged
        # Release the worker once this is painted: a zero timer is queued behind the update event.
        QTimer.singleShot(0, self, self.worker.result_shown)

    def _undo_changed(self, label: str) -> None:
        self.undo_action.setEnabled(bool(label))
        self.undo_action.setText(f"Undo {label.lower()}" if label else "Undo")

    # --- toolbar actions -----------------------------------------------------------------------------
    def _shown_analysis(self) -> Analysis | None:
        row = self.table.current_row()
        return row.analysis if row is not None else None

    def play_selection(self) -> None:
        """Play the selected span of the shown file (or from the play position); again to stop."""
        if not self.navigator.toggle_play():
            self.status("Select an analysed file to play it.")

    def play_span(self, span: tuple[float, float]) -> None:
        """Select ``span`` of the shown file in the plots and play it from its start."""
        row = self.table.current_row()
        if row is None or row.analysis is None:
            return
        self.plots.zoom_to(span)
        self.player.play(row.path, span)

    def normalize_selected(self) -> None:
        """Open the Normalize dialog on the selected files (a running one is shown again instead)."""
        from speechint_desktop.ui.normalize_dialog import NormalizeDialog

        old = self._normalize_dialog
        if old is not None and old.running:
            old.show()
            old.raise_()
            return
        paths = list(dict.fromkeys(r.path for r in self.table.selected_rows() if r.status not in PENDING))
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
        self.status("Cancelling the files being analysed…")

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
        if self._unavailable.get(key):
            self.status(f"{key} cannot be used here: {self._unavailable[key]}")
            self._select_data(self.model_box, self.settings.model)
            return
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

    def set_decoding(self, key: str) -> None:
        """Accurate (beam search) or fast (greedy) decoding, for the next file the worker starts."""
        self.settings.decoding = key
        self.decoding_actions[key].setChecked(True)
        self.worker.set_options(self.settings.transcribe_options())
        self.status(f"{key.capitalize()} decoding from the next file.", 5000)

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
        """Clear results (asks first; Edit ▸ Undo brings them back)."""
        if self.queue.clear():
            self.view.clear()

    @property
    def store(self):
        """The current session's store (``queue_manager`` switches it on Clear / Undo)."""
        return self.queue.store

    def show_levels_help(self) -> None:
        show_levels_help(self)

    def _reload_session(self) -> None:
        def apply(saved):
            self.queue.restore(saved)
            self.queue.save_queue()
            if saved:
                interrupted = sum(1 for x in saved if x.item is None and x.status != "cancelled")
                self.status(
                    f"Restored {len(saved)} row{'s' if len(saved) != 1 else ''} from the last session"
                    + (f" ({interrupted} interrupted: right-click ▸ Retry)" if interrupted else "")
                    + ".",
                    8000,
                )
                if self.table.current_row() is None:
                    self.table.selectRow(0)

        self._job(
            self.queue.store.load_rows,
            apply,
            lambda msg: self.status(f"Could not restore the last session: {msg}"),
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
