"""The double-clicked app's entry point (the PyInstaller bundle's ``SpeechInt`` executable).

    SpeechInt [FILE|DIR ...]          the desktop app (files and folders named join its queue)
    SpeechInt --quit-after SECONDS    the app, closed after SECONDS (smoke test of a GUI start)
    SpeechInt --self-test             analyse the bundled sample, print one line, exit 0 if ok
    SpeechInt --check-training        click through the Train tab: demo corpus, train, evaluate, use
    SpeechInt analyze FILE ...        the command-line tool (any sub-command of ``speechint``)
    SpeechInt train|evaluate|baseline|demo-corpus ...   the training toolkit
    SpeechInt --version

The same module runs from a source tree: ``python -m speechint_desktop.launcher --self-test``.
"""

from __future__ import annotations

import os
import sys
import threading
import time

from speechint_desktop.core import paths
from speechint_desktop.core.paths import frozen

USAGE = __doc__.split("\n\n")[1].rstrip()
# the sub-commands that run the command-line tool instead of the window
CLI_COMMANDS = ("analyze", "models", "check", "normalize", *paths.TOOLKIT_COMMANDS)
_KEEP_ALIVE: list = []


def prepare_environment() -> None:
    """Settings every entry needs before torch/transformers are imported: offline, quiet."""
    paths.prepare_environment()  # the app never downloads models at run time
    if frozen():
        # A windowed build on Windows has no console: keep print() from failing.
        if sys.stdout is None:
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the process
        if sys.stderr is None:
            sys.stderr = open(os.devnull, "w")  # noqa: SIM115


def _close_gui_after(seconds: float) -> None:
    """Close every window and quit the event loop ``seconds`` after the app starts.

    Runs in a helper thread so it works whatever ``ui.app.main`` does; the closing itself is
    queued into the GUI thread. Prints which windows were open, so a test can tell a GUI that
    showed nothing from one that worked.
    """
    from PySide6.QtCore import QObject, Qt, Signal, Slot
    from PySide6.QtWidgets import QApplication

    class Closer(QObject):
        fire = Signal()

        @Slot()
        def close_all(self) -> None:
            app = QApplication.instance()
            titles = [w.windowTitle() or type(w).__name__ for w in app.topLevelWidgets() if w.isVisible()]
            print(f"gui ok: {len(titles)} window(s) shown {titles}, closing after {seconds:g} s", flush=True)
            app.closeAllWindows()
            app.quit()

    def wait_and_fire() -> None:
        while QApplication.instance() is None:
            time.sleep(0.05)
        app = QApplication.instance()
        closer = Closer()
        closer.moveToThread(app.thread())
        closer.fire.connect(closer.close_all, Qt.ConnectionType.QueuedConnection)
        _KEEP_ALIVE.append(closer)  # a queued slot on a deleted object never runs
        time.sleep(seconds)
        closer.fire.emit()

    threading.Thread(target=wait_and_fire, name="quit-after", daemon=True).start()


def _set_app_identity(app) -> None:
    """The window icon and the desktop-entry name (so docks group windows under the .desktop)."""
    from PySide6.QtGui import QIcon

    icons = paths.icons_dir()
    icon = QIcon()
    for size in (16, 24, 32, 48, 64, 128, 256, 512):
        png = icons / f"speechint-{size}.png"
        if png.exists():
            icon.addFile(str(png))
    app.setWindowIcon(icon)
    app.setDesktopFileName("SpeechInt")


def run_gui(argv: list[str]) -> int:
    quit_after = None
    rest: list[str] = []
    it = iter(argv)
    for arg in it:
        if arg == "--quit-after" or arg.startswith("--quit-after="):
            value = arg.split("=", 1)[1] if "=" in arg else next(it, "")
            try:
                quit_after = float(value)
            except ValueError:
                print(f"SpeechInt: --quit-after needs a number of seconds, got {value!r}", file=sys.stderr)
                return 2
        else:
            rest.append(arg)
    from speechint_desktop.ui import app as gui

    code, _ = gui.parse_args(rest)
    if code is not None:
        return code
    reason = gui.no_display_reason()
    if reason:
        print(f"SpeechInt: {reason}", file=sys.stderr)
        return 2
    sys.argv = [sys.argv[0], *rest]  # Qt options such as -platform go to the app; the rest are files
    if quit_after is not None:
        _close_gui_after(quit_after)
    _set_app_identity(gui.create_app(sys.argv))
    return int(gui.main(rest) or 0)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    prepare_environment()
    if argv[:1] in (["--self-test"], ["self-test"]):
        from speechint_desktop import selftest

        return selftest.main(argv[1:])
    if argv[:1] == ["--check-training"]:
        from speechint_desktop.ui.app import no_display_reason

        reason = no_display_reason()
        if reason:
            print(f"SpeechInt: {reason}", file=sys.stderr)
            return 2
        from speechint_desktop.ui import training_check

        return training_check.main(argv[1:])
    if argv[:1] in (["--version"], ["-V"]):
        from speechint_desktop import __version__

        print(f"SpeechInt {__version__}")
        return 0
    if argv[:1] in (["--help"], ["-h"]):
        print(USAGE)
        return 0
    if argv and argv[0] in CLI_COMMANDS:
        from speechint_desktop.cli import main as cli_main

        return int(cli_main(argv) or 0)
    return run_gui(argv)  # anything else: the window, with the files named queued


def entry() -> None:
    """The frozen executable's entry: exit codes from SystemExit pass through unchanged."""
    import multiprocessing

    multiprocessing.freeze_support()
    try:
        code = main()
    except KeyboardInterrupt:
        code = 130
    sys.exit(code)


if __name__ == "__main__":
    entry()
