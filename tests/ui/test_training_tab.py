"""The training tab drives the real training CLI in a subprocess and plots its metrics live."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from speechint_desktop.ui.training_tab import TrainingTab, find_checkpoint


@pytest.mark.slow
def test_training_tab_runs_a_tiny_training(qtbot, tmp_path, tiny_random_dir):
    tab = TrainingTab(runs_dir=tmp_path / "runs", datasets_dir=tmp_path / "datasets", models=["tiny.en"])
    qtbot.addWidget(tab)
    tab.show()
    messages = []
    tab.message.connect(messages.append)

    # "Make demo corpus" fills the dataset field when it is done
    tab.demo_n.setValue(8)
    with qtbot.waitSignal(tab.process.finished, timeout=120_000):
        assert tab.make_demo_corpus()
    dataset = Path(tab.dataset_edit.text())
    assert dataset.is_dir() and (dataset / "metadata.csv").exists() or any(dataset.rglob("metadata.csv")), (
        messages
    )

    tab.model_box.setEditText(str(tiny_random_dir))
    tab.target_box.setCurrentIndex(tab.target_box.findData("lufs"))
    tab.steps_spin.setValue(3)
    tab.eval_spin.setValue(3)
    tab.batch_spin.setValue(2)
    tab.epochs_spin.setValue(1)
    tab.lr_edit.setText("1e-3")
    args = tab.training_args()
    assert args[args.index("--intensity_method") + 1] == "lufs" and args[args.index("--max_steps") + 1] == "3"

    assert tab.start_training()
    assert tab.running and not tab.start_button.isEnabled()
    # curves receive points while the process runs (read live from metrics.jsonl)
    qtbot.waitUntil(lambda: tab.curves.points("loss") > 0 or not tab.running, timeout=180_000)
    live_points = tab.curves.points("loss")
    with qtbot.waitSignal(tab.process.finished, timeout=180_000, raising=False):
        pass
    if tab.running:
        tab.process.waitForFinished(1000)
    log = tab.log.toPlainText()
    assert tab.process.exitCode() == 0, log[-3000:]
    assert live_points > 0 or tab.curves.points("loss") > 0
    assert tab.curves.points("loss") >= 2
    assert tab.curves.points("wer") >= 1 and tab.curves.points("intensity_rmse") >= 1, log[-2000:]
    assert tab.status.text().startswith("Training finished.")
    assert "Test split: WER" in tab.status.text()

    # "Use this model" hands the checkpoint to the main window's model picker
    assert tab.use_button.isEnabled()
    with qtbot.waitSignal(tab.use_model) as used:
        tab.use_button.click()
    ckpt = Path(used.args[0])
    assert (ckpt / "config.json").exists() and ckpt == find_checkpoint(tab.run_dir)


def test_training_needs_a_dataset(qtbot, tmp_path):
    tab = TrainingTab(runs_dir=tmp_path / "runs", datasets_dir=tmp_path / "datasets")
    qtbot.addWidget(tab)
    messages = []
    tab.message.connect(messages.append)
    assert not tab.start_training()
    assert not tab.running and messages == ["Pick a dataset folder first (or make a demo corpus)."]


def test_stop_ends_the_process(qtbot, tmp_path):
    tab = TrainingTab(runs_dir=tmp_path / "runs", datasets_dir=tmp_path / "datasets")
    qtbot.addWidget(tab)
    assert tab._start(
        "test job", [sys.executable, "-m", "http.server", "0", "--bind", "127.0.0.1"]
    )  # a process that never ends
    qtbot.waitUntil(lambda: tab.process.state() == tab.process.ProcessState.Running, timeout=10_000)
    with qtbot.waitSignal(tab.process.finished, timeout=10_000):
        tab.stop()
    assert not tab.running and tab.start_button.isEnabled() and "stopped" in tab.status.text()


@pytest.mark.slow
def test_training_tab_trains_the_voice_level_head(qtbot, tmp_path, tiny_random_dir, ldc_path):
    """Voice level under noise: a clean-speech folder plus a noise folder, the same live curves,
    and a head file that names its target."""
    import numpy as np
    import soundfile as sf

    from speechint_desktop.core.audio import load_audio, to_model_input
    from speechint_desktop.core.model import read_head_card

    clean, noise = tmp_path / "clean", tmp_path / "noise"
    clean.mkdir()
    noise.mkdir()
    x = to_model_input(load_audio(ldc_path))
    for i in range(3):
        sf.write(clean / f"take{i}.wav", x[i * 8000 :], 16000)
    sf.write(noise / "fan.wav", np.random.default_rng(0).standard_normal(48000) * 0.05, 16000)
    (clean / "notes.txt").write_text("not audio")

    tab = TrainingTab(runs_dir=tmp_path / "runs", datasets_dir=tmp_path / "datasets", models=["tiny.en"])
    qtbot.addWidget(tab)
    tab.target_box.setCurrentIndex(tab.target_box.findData("voice"))
    assert tab.noise_row.isEnabled() and not tab.lambda_spin.isEnabled()
    tab.dataset_edit.setText(str(clean))
    messages = []
    tab.message.connect(messages.append)
    assert not tab.start_training() and messages[-1] == "Pick a noise folder for the voice-level target."
    tab.noise_edit.setText(str(noise))
    tab.model_box.setEditText(str(tiny_random_dir))
    tab.mixtures_spin.setValue(24)
    tab.steps_spin.setValue(200)
    assert tab.start_training()
    with qtbot.waitSignal(tab.process.finished, timeout=300_000, raising=False):
        pass
    log = tab.log.toPlainText()
    assert tab.process.exitCode() == 0, log[-3000:]
    assert tab.curves.points("loss") >= 2 and tab.curves.points("intensity_rmse") >= 2, log[-2000:]
    head = tab.run_dir / "voice-head.safetensors"
    assert head.is_file() and "Voice head:" in tab.status.text()
    assert read_head_card(head)["intensity_target"] == "voice_asl_dbfs"
