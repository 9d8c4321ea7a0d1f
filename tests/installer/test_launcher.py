"""The launcher from the source tree: the fast half of the installer tests (no PyInstaller).

``python -m speechint_desktop.launcher --self-test`` must pass on the real tiny.en and the
bundled sample, and fail with one line when the model or the expected values are wrong.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from speechint_desktop import launcher, selftest
from speechint_desktop.core import catalog

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "resources" / "samples"


def run_launcher(*args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "QT_QPA_PLATFORM": "offscreen"}
    return subprocess.run(
        [sys.executable, "-m", "speechint_desktop.launcher", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_bundled_sample_is_small_and_described():
    spec = json.loads((SAMPLES / "selftest.json").read_text())
    audio = SAMPLES / spec["file"]
    assert audio.stat().st_size < 200_000
    assert spec["text"] and -40 < spec["integrated_lufs"] < -10


@pytest.mark.skipif(not (shutil.which("espeak-ng") and shutil.which("sox")), reason="needs espeak-ng and sox")
def test_make_sample_reproduces_the_committed_expected_values(tmp_path):
    """Rerunning packaging/make_sample.py gives the committed expected values (sox's dither
    makes the samples differ by a few LSB, below the values' rounding)."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    script = REPO / "packaging" / "make_sample.py"
    subprocess.run([sys.executable, str(script), "--out", str(tmp_path)], env=env, check=True, timeout=120)
    made = json.loads((tmp_path / "selftest.json").read_text())
    assert made == json.loads((SAMPLES / "selftest.json").read_text())
    assert made["asl_dbfs"] == pytest.approx(made["rms_dbfs"] + 0.25, abs=0.1)  # 94 % active


def test_self_test_from_source_passes(tiny_en_dir):
    result = run_launcher("--self-test")
    lines = result.stdout.strip().splitlines()
    assert result.returncode == 0, result.stdout + result.stderr
    assert len(lines) == 1 and lines[0].startswith("self-test ok: model tiny.en (ct2), WER 0.00"), lines
    assert "loudness -23.0" in lines[0] and "voice -23.17 dBFS" in lines[0]
    assert "Traceback" not in result.stderr


def test_self_test_reports_every_failed_check(tmp_path, tiny_en_dir):
    """Every check can fail: expect other words, 2 LU more loudness and 20 dB more RMS and voice level."""
    spec = json.loads((SAMPLES / "selftest.json").read_text())
    shutil.copy(SAMPLES / spec["file"], tmp_path / spec["file"])
    spec["integrated_lufs"] += 2.0
    spec["text"] = "An entirely different sentence about the weather in spring."
    spec["rms_dbfs"] += 20.0
    spec["asl_dbfs"] += 20.0
    (tmp_path / "selftest.json").write_text(json.dumps(spec))
    result = selftest.run(expected=tmp_path / "selftest.json")
    assert not result.ok and "\n" not in result.line
    assert result.line.startswith("self-test FAILED: transcript WER ")
    assert "; integrated loudness -23.00 LUFS, expected -21.00" in result.line
    assert "; active speech level -23.17 dBFS, expected -3.17 +/- 0.1" in result.line
    if catalog.head_path("tiny.en") is not None:  # a shipped head is checked against the sample too
        assert "; predicted intensity " in result.line


def test_self_test_missing_model_is_one_line(tmp_path):
    result = selftest.run(model=str(tmp_path / "no-such-model"))
    assert not result.ok
    assert result.line.startswith("self-test FAILED: ") and "no-such-model" in result.line
    assert "\n" not in result.line


def test_version_and_help(capsys):
    assert launcher.main(["--version"]) == 0
    assert launcher.main(["--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("SpeechInt ") and "--self-test" in out


def test_bad_quit_after_value(capsys):
    assert launcher.main(["--quit-after", "soon"]) == 2
    assert "--quit-after needs a number" in capsys.readouterr().err


@pytest.mark.skipif(
    not (REPO / "speechint_desktop" / "ui" / "app.py").exists(), reason="ui/app.py not written yet"
)
def test_gui_starts_and_quits_from_source(tmp_path):
    result = run_launcher("--quit-after", "3")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "gui ok: " in result.stdout and "0 window(s)" not in result.stdout, result.stdout
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("cuda", [False, True])
def test_bundled_models_carry_the_forms_their_devices_load(tmp_path, cuda):
    """``build_installer`` converts the bundle's models with the catalogue: every bundle has the
    CPU's int8 CTranslate2 form beside the model, a CUDA bundle the GPU's float16 one too, both
    current, so no first analysis converts anything."""
    import importlib.util

    from speechint_desktop.core import ct2

    spec = importlib.util.spec_from_file_location("build_installer", REPO / "build_installer.py")
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    (folder,) = build.convert_models(["tiny.en"], tmp_path / "home", cuda=cuda)
    assert ct2._current_beside(folder, "int8")
    assert ct2._current_beside(folder, "float16") == cuda
    if cuda:
        assert ct2.stored_form(folder, quantization="float16") == folder / ct2.BESIDE["float16"]
