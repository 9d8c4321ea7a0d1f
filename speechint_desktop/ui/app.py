"""``speechint-desktop [FILE|DIR …]``: the GUI entry point.

Files and folders named on the command line (as "Open with SpeechInt" and the desktop entry's
``%F`` pass them) join the queue. ``--help`` and ``--version`` need no display; with no display
at all the app says so in one line instead of Qt's plugin error.

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


USAGE = """usage: speechint-desktop [FILE|DIR ...]

Opens the SpeechInt window; audio files and folders named here join the analysis queue.

  -h, --help     show this help and exit
  -V, --version  show the version and exit

Without a window: speechint analyze|check|normalize|train ... (speechint --help)."""


def no_display_reason(environ=None) -> str | None:
    """Why no window can open here (Linux/BSD without X11 or Wayland), or None.

    Qt would abort with a paragraph about its xcb plugin; one line saying what is missing and
    what works instead serves better. An explicit ``QT_QPA_PLATFORM`` (offscreen, vnc, ...) is
    the user's choice and always tried.
    """
    env = os.environ if environ is None else environ
    if sys.platform in ("win32", "darwin") or env.get("QT_QPA_PLATFORM"):
        return None
    if env.get("DISPLAY") or env.get("WAYLAND_DISPLAY"):
        return None
    return (
        "no display to open a window on (neither DISPLAY nor WAYLAND_DISPLAY is set); "
        "run it in a desktop session, or use the command line: speechint analyze FILE"
    )


def parse_args(argv: list[str]) -> tuple[int | None, list[str]]:
    """``(exit code, [])`` for --help/--version/a bad option, else ``(None, paths)``.

    Runs before Qt: Qt's own options (``-platform``, ``-style``...) are left for QApplication,
    which removes them from its arguments; what is left are the paths."""
    for arg in argv:
        if arg in ("-h", "--help"):
            print(USAGE)
            return 0, []
        if arg in ("-V", "--version"):
            from speechint_desktop import __version__

            print(f"SpeechInt {__version__}")
            return 0, []
    return None, list(argv)


def _prepare_environment() -> None:
    from speechint_desktop.core.paths import limit_malloc_arenas, prepare_environment

    prepare_environment()
    limit_malloc_arenas()  # before the worker thread starts


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


def paths_from_arguments(arguments: list[str]) -> tuple[list[str], list[str]]:
    """QApplication's arguments after Qt took its own: (paths, unknown options)."""
    paths, unknown = [], []
    for arg in arguments:
        (unknown if arg.startswith("-") and not os.path.exists(arg) else paths).append(arg)
    return paths, unknown


def main(argv: list[str] | None = None) -> int:
    """``argv``: the arguments after the program name (default ``sys.argv[1:]``)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    code, _ = parse_args(argv)
    if code is not None:
        return code
    reason = no_display_reason()
    if reason:
        print(f"speechint-desktop: {reason}", file=sys.stderr)
        return 2
    _prepare_environment()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = create_app([sys.argv[0] if sys.argv else "speechint-desktop", *argv])
    paths, unknown = paths_from_arguments(app.arguments()[1:])
    if unknown:
        print(f"speechint-desktop: unknown option {unknown[0]} (see --help)", file=sys.stderr)
        return 2
    from speechint_desktop.core.paths import data_dir
    from speechint_desktop.ui import single_instance

    name = single_instance.server_name(data_dir())
    if single_instance.hand_over(name, paths):  # a window is open: it queues them
        if paths:
            print(f"speechint-desktop: {len(paths)} added to the SpeechInt window already open")
        return 0
    window = open_window(paths)
    server = single_instance.InstanceServer(name, window)
    if server.listen():
        server.paths_received.connect(lambda later: come_forward(window, later))
    sys.excepthook = _excepthook
    return app.exec()


def come_forward(window, paths: list[str]) -> None:
    """A later launch's files join this window's queue, and the window comes to the front."""
    from PySide6.QtCore import Qt

    if paths:
        window.add_paths(paths)
    if window.windowState() & Qt.WindowState.WindowMinimized:
        window.showNormal()
    window.raise_()
    window.activateWindow()


def open_window(paths: list[str] = (), settings=None, home=None):
    """Show the main window and queue ``paths`` (files and folders) once the event loop runs."""
    from PySide6.QtCore import QTimer

    from speechint_desktop.ui.main_window import MainWindow

    window = MainWindow(settings=settings, home=home)
    window.show()
    if paths:
        QTimer.singleShot(0, lambda: window.add_paths(list(paths)))
    return window


if __name__ == "__main__":
    sys.exit(main())
