"""Time from launching the desktop app to a shown, usable window (the model loads afterwards).

    .venv/bin/python benchmark/ui_startup.py [--runs 3]

Each run is a fresh interpreter (offscreen Qt unless a DISPLAY is set), timed from process
launch until the main window is shown and has processed its first events. Prints each run and
the median, and whether torch was imported before the window appeared (it must not be).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

CHILD = r"""
import sys, tempfile
from speechint_desktop.ui.app import create_app
app = create_app([])
from speechint_desktop.ui.main_window import MainWindow
from speechint_desktop.ui.settings import Settings
home = tempfile.mkdtemp()
w = MainWindow(settings=Settings(home + "/s.ini"), home=home)
w.show()
app.processEvents()
print("SHOWN", "torch" in sys.modules, flush=True)
w.close()
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    env = dict(os.environ)
    if not env.get("DISPLAY"):
        env["QT_QPA_PLATFORM"] = "offscreen"
    env.setdefault("SPEECHINT_HOME", tempfile.mkdtemp())
    times = []
    for i in range(args.runs):
        t0 = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-c", CHILD], stdout=subprocess.PIPE, text=True, env=env)
        shown = None
        torch_loaded = None
        for line in proc.stdout:
            if line.startswith("SHOWN"):
                shown = time.perf_counter() - t0
                torch_loaded = line.split()[1] == "True"
                break
        proc.wait(120)
        if shown is None:
            sys.exit(f"run {i + 1}: the window never appeared (exit code {proc.returncode})")
        times.append(shown)
        print(f"run {i + 1}: window shown after {shown:.2f} s (torch imported before: {torch_loaded})")
    print(f"median {statistics.median(times):.2f} s over {len(times)} runs (target < 3 s)")


if __name__ == "__main__":
    main()
