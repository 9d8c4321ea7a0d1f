"""``SpeechInt --check-training``: the Train tab driven as a user would, end to end, in this install.

Opens the real window, switches to the Train tab and clicks through: "Make demo corpus" (a few
espeak-ng clips), "Start training" for a few steps of the bundled model, "Evaluate" the checkpoint
on the test split, then "Use this model", and waits until the analysis worker has loaded the
trained checkpoint. Every stage runs the toolkit the way the tab always does (a child process of
this very program), so a pass proves that training works in the installed app — in the
PyInstaller bundle as from source. One line per stage; exit 0 when all pass, 1 with the reason.

    SpeechInt --check-training [--steps N] [--clips N] [--screenshot PNG]

``--screenshot`` saves the screen (Qt's grab of the whole display: a real X screenshot under
Xvfb) while the training runs, once it has reported a step.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


class CheckFailed(Exception):
    """One stage failed; ``str()`` says which and why."""


def _wait(app, cond, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise CheckFailed(f"{what}: no result after {timeout:.0f} s")
        app.processEvents()
        time.sleep(0.05)
    app.processEvents()


def _finished(app, tab, what: str, timeout: float) -> None:
    _wait(app, lambda: not tab.running, timeout, what)
    if tab.process.exitCode() != 0:
        tail = [line for line in tab.log.toPlainText().splitlines() if line.strip()][-3:]
        raise CheckFailed(f"{what} failed: {tab.status.text()} | " + " | ".join(tail))


def run(args: argparse.Namespace) -> str:
    """The stages; returns the summary line (raises CheckFailed)."""
    from speechint_desktop.core import paths
    from speechint_desktop.ui.app import create_app
    from speechint_desktop.ui.main_window import MainWindow
    from speechint_desktop.ui.settings import Settings

    app = create_app(sys.argv[:1])
    home = paths.data_dir()
    home.mkdir(parents=True, exist_ok=True)
    window = MainWindow(settings=Settings(str(home / "check-training.ini")), home=home)
    window.resize(1400, 900)
    window.show()
    window.tabs.setCurrentWidget(window.training)
    tab = window.training
    started = time.monotonic()

    tab.demo_n.setValue(args.clips)
    tab.demo_button.click()
    _finished(app, tab, "demo corpus", 300)
    dataset = Path(tab.dataset_edit.text())
    if not (dataset / "train" / "metadata.csv").is_file():
        raise CheckFailed(f"demo corpus: no dataset at {dataset}")
    print(f"check-training: demo corpus ok: {dataset.name}", flush=True)

    tab.model_box.setEditText(paths.DEFAULT_MODEL)
    tab.steps_spin.setValue(args.steps)
    tab.eval_spin.setValue(args.steps)
    tab.batch_spin.setValue(4)
    tab.epochs_spin.setValue(1)
    tab.start_button.click()
    if not tab.running:
        raise CheckFailed(f"training did not start: {tab.status.text()}")
    if args.screenshot:
        _wait(app, lambda: tab.tracker.step >= 1 or not tab.running, 900, "training's first step")
        for _ in range(10):  # let the curves and the status repaint
            app.processEvents()
            time.sleep(0.05)
        shot = app.primaryScreen().grabWindow(0)
        if not shot.save(str(args.screenshot)):
            raise CheckFailed(f"could not save the screenshot {args.screenshot}")
        print(f"check-training: screenshot {args.screenshot} ({tab.status.text()})", flush=True)
    _finished(app, tab, "training", 1800)
    progress = tab.tracker.progress()
    if progress.step != args.steps or progress.total != args.steps:
        raise CheckFailed(
            f"training: the tab showed step {progress.step} of {progress.total}, not {args.steps}"
        )
    from speechint_desktop.core.runs import find_checkpoint

    ckpt = find_checkpoint(tab.run_dir)
    if ckpt is None or not tab.use_button.isEnabled():
        raise CheckFailed(f"training: no checkpoint in {tab.run_dir}")
    print(f"check-training: training ok: {progress.text()}, {tab.status.text()}", flush=True)

    tab.evaluate_checkpoint(str(ckpt))
    _finished(app, tab, "evaluation", 900)
    if not tab.status.text().startswith("Evaluation finished: WER"):
        raise CheckFailed(f"evaluation: {tab.status.text()}")
    print(f"check-training: evaluation ok: {tab.status.text()}", flush=True)

    tab.use_button.click()
    _wait(app, lambda: window.model_in_use == str(ckpt), 600, "loading the trained model")
    if window.tabs.currentWidget() is tab:
        raise CheckFailed("Use this model: the window stayed on the Train tab")
    window.close()
    return (
        f"check-training ok: {ckpt.parent.parent.name}/{ckpt.name} in use, {time.monotonic() - started:.0f} s"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="SpeechInt --check-training", description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=3, help="optimizer steps to train (default 3)")
    ap.add_argument("--clips", type=int, default=12, help="demo corpus size (default 12)")
    ap.add_argument("--screenshot", type=Path, default=None, help="save a screenshot while training")
    args = ap.parse_args(argv)
    try:
        print(run(args), flush=True)
    except CheckFailed as e:
        print(f"check-training FAILED: {e}", flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
