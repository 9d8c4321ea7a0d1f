"""``speechint-desktop``: the GUI entry point.

Startup imports only Qt, pyqtgraph and numpy; torch and transformers load in the analysis
thread after the window is up, so the app is usable within a couple of seconds.
"""

from __future__ import annotations

import logging
import os
import sys


def audio_filter() -> str:
    from speechint_desktop.core.audio import AUDIO_EXTENSIONS  # numpy only; decoders load lazily

    exts = " ".join(f"*{e}" for e in sorted(AUDIO_EXTENSIONS))
    return f"Audio files ({exts});;All files (*)"


def _prepare_environment() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


def _excepthook(exc_type, exc, tb) -> None:
    """An unexpected error in a slot: log it and tell the user in one line, no traceback dialog."""
    logging.getLogger("speechint").error("unexpected error", exc_info=(exc_type, exc, tb))
    from PySide6.QtWidgets import QApplication, QMainWindow

    app = QApplication.instance()
    for w in app.topLevelWidgets() if app else []:
        if isinstance(w, QMainWindow):
            w.statusBar().showMessage(f"Something went wrong: {exc} (details in the log)")
            break


def create_app(argv: list[str] | None = None):
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication(argv if argv is not None else sys.argv)
    app.setApplicationName("SpeechInt")
    app.setOrganizationName("SpeechInt")
    app.setApplicationDisplayName("SpeechInt")
    app.setStyle("Fusion")
    return app


def main(argv: list[str] | None = None) -> int:
    _prepare_environment()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = create_app(argv)
    from speechint_desktop.ui.main_window import MainWindow

    window = MainWindow()
    window.show()
    sys.excepthook = _excepthook
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
