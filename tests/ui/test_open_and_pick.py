"""Opening files the way desktop users do, and a model picker that offers only what can work."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from PySide6.QtCore import Qt

from speechint_desktop.ui import app as gui

REPO = Path(__file__).resolve().parents[2]


def _no_display_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    env["PYTHONPATH"] = str(REPO)
    return env


def _run(module: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        env=_no_display_env(),
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )


def test_help_and_version_need_no_display_and_no_display_is_one_line():
    for module in ("speechint_desktop.ui.app", "speechint_desktop.launcher"):
        r = _run(module, "--help")
        assert r.returncode == 0 and "FILE|DIR" in r.stdout, r.stderr
        r = _run(module, "--version")
        assert r.returncode == 0 and r.stdout.startswith("SpeechInt "), r.stderr
        r = _run(module, "talk.wav")
        lines = r.stderr.strip().splitlines()
        assert r.returncode == 2 and len(lines) == 1, r.stderr
        assert "no display" in lines[0] and "speechint analyze" in lines[0]
        assert "qt.qpa" not in r.stderr and "Traceback" not in r.stderr


def test_arguments_left_by_qt_are_paths_or_an_unknown_option(tmp_path):
    dash_file = tmp_path / "-take.wav"
    dash_file.write_bytes(b"")
    paths, unknown = gui.paths_from_arguments(["a.wav", str(tmp_path), "--frobnicate", str(dash_file)])
    assert paths == ["a.wav", str(tmp_path), str(dash_file)] and unknown == ["--frobnicate"]


def test_files_and_folders_on_the_command_line_are_queued(
    qtbot, ui_home, tiny_en_dir, jfk_path, ldc_path, tmp_path
):
    from speechint_desktop.ui.settings import Settings

    folder = tmp_path / "interviews"
    (folder / "day1").mkdir(parents=True)
    (folder / "day1" / "ldc.wav").symlink_to(ldc_path)
    (folder / "notes.txt").write_text("not audio")
    window = gui.open_window(
        [str(jfk_path), str(folder)], settings=Settings(str(ui_home / "settings.ini")), home=ui_home
    )
    qtbot.addWidget(window)
    qtbot.waitUntil(lambda: len(window.results.rows) == 2, timeout=30_000)
    queued = sorted(Path(r.path).name for r in window.results.rows)
    assert queued == ["jfk.flac", "ldc.wav"]
    window.worker.cancel_all()
    window.close()


def test_an_unavailable_model_cannot_be_chosen(qtbot, make_window, monkeypatch):
    from PySide6.QtWidgets import QFileDialog

    # the walk below passes "Add local checkpoint…": its folder dialog answers "cancelled"
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", staticmethod(lambda *a, **k: ""))
    w = make_window(wait_model=False)
    box = w.model_box
    qtbot.waitUntil(
        lambda: box.findData("small") >= 0 and not box.model().item(box.findData("small")).isEnabled(),
        timeout=60_000,
    )
    i = box.findData("small")
    assert "unavailable" in box.itemText(i)
    assert "Cannot be used here" in box.itemData(i, Qt.ItemDataRole.ToolTipRole)
    assert box.model().item(box.findData("tiny.en")).isEnabled()
    # the keyboard walks past it
    box.setFocus()
    seen = set()
    for key in (Qt.Key.Key_Down,) * box.count() + (Qt.Key.Key_Up,) * box.count():
        qtbot.keyClick(box, key)
        seen.add(box.currentData())
    assert "small" not in seen and "tiny.en" in seen
    # and choosing it another way is refused with the reason
    w.set_model("small")
    assert w.settings.model == "tiny.en" and box.currentData() == "tiny.en"
    assert "small cannot be used here" in w.statusBar().currentMessage()
    # the Train tab's base-model box greys it too, and will not start a run on it
    tb = w.training.model_box
    j = tb.findData("small")
    assert j >= 0 and not tb.model().item(j).isEnabled()
    dataset = w.home / "ds"
    dataset.mkdir()
    w.training.dataset_edit.setText(str(dataset))
    tb.setEditText("small")
    assert not w.training.start_training() and not w.training.running
    assert "cannot be used here" in w.training.status.text()
