"""core.paths (names, places, how to start the toolkit) and core.runs (a training run's files)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from speechint_desktop.core import catalog, paths, runs
from tests.conftest import kill_mid_write

REPO = Path(__file__).resolve().parents[2]


def test_names_are_said_once():
    assert tuple(catalog.CATALOG) == paths.CATALOG_MODELS
    assert catalog.DEFAULT_MODEL == paths.DEFAULT_MODEL in paths.CATALOG_MODELS
    from speechint_desktop.ui.settings import DEFAULT_MODEL

    assert DEFAULT_MODEL == paths.DEFAULT_MODEL
    assert catalog.head_path(paths.DEFAULT_MODEL) == paths.heads_dir() / "tiny.en.safetensors"


def test_toolkit_command_from_source_and_frozen(monkeypatch):
    cmd = paths.toolkit_command("train", ["--max_steps", "3"])
    assert cmd == [sys.executable, "-m", "speechint_desktop.cli", "train", "--max_steps", "3"]
    env = paths.child_environment({"PATH": "/bin"})
    assert env["PYTHONPATH"].split(":")[0] == str(REPO) and env["HF_HUB_OFFLINE"] == "1"
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    assert paths.toolkit_command("demo-corpus", ["x"]) == [sys.executable, "demo-corpus", "x"]
    assert "PYTHONPATH" not in paths.child_environment({"PATH": "/bin"})
    try:
        paths.toolkit_command("rm", [])
    except ValueError as e:
        assert "unknown toolkit command" in str(e)
    else:
        raise AssertionError("an unknown command must be refused")


def test_the_toolkit_command_runs_from_another_folder(tmp_path):
    """What the Train tab starts: the CLI's demo-corpus --help, from a folder outside the repo."""
    r = subprocess.run(
        paths.toolkit_command("demo-corpus", ["--help"]),
        cwd=tmp_path,
        env=paths.child_environment(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0 and "usage: speechint demo-corpus" in r.stdout, r.stderr


def test_paths_and_runs_import_neither_torch_nor_qt():
    code = (
        "import sys; import speechint_desktop.core.paths, speechint_desktop.core.runs; "
        "print([m for m in ('torch', 'transformers', 'PySide6', 'numpy') if m in sys.modules])"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert r.stdout.strip() == "[]", r.stdout + r.stderr


def _checkpoint(run: Path, step: int) -> Path:
    d = runs.step_dir(run, step)
    d.mkdir(parents=True)
    for name in ("config.json", "model.safetensors", *runs.OPTIMIZER_FILES):
        (d / name).write_text("{}")
    return d


def test_prune_keeps_the_latest_and_the_best_with_optimizer_state_only_in_the_latest(tmp_path):
    run = tmp_path / "run"
    for step, best in ((4, True), (8, False), (12, True), (16, False), (20, False)):
        d = _checkpoint(run, step)
        runs.write_pointers(run, d, step, best_metric=0.5 if best else None, is_best=best)
        runs.prune(run)
    left = sorted(p.name for p in runs.checkpoints_dir(run).glob("step-*"))
    assert left == ["step-0000012", "step-0000020"]
    assert (
        runs.latest_checkpoint(run).name == "step-0000020"
        and runs.best_checkpoint(run).name == "step-0000012"
    )
    assert all((runs.latest_checkpoint(run) / f).is_file() for f in runs.OPTIMIZER_FILES)
    assert not any((runs.best_checkpoint(run) / f).exists() for f in runs.OPTIMIZER_FILES)
    assert (runs.best_checkpoint(run) / "model.safetensors").is_file()
    assert runs.find_checkpoint(run).name == "step-0000012"  # the best is the run's model
    # the best is also the latest: one folder, with its optimizer state (a resume reads it)
    d = _checkpoint(run, 24)
    runs.write_pointers(run, d, 24, 0.1, is_best=True)
    runs.prune(run)
    assert [p.name for p in runs.checkpoints_dir(run).glob("step-*")] == ["step-0000024"]
    assert (d / "optimizer.safetensors").is_file()
    best = json.loads((runs.checkpoints_dir(run) / runs.BEST).read_text())
    assert best == {"path": "step-0000024", "step": 24, "metric": 0.1}


def test_prune_removes_what_a_killed_save_left(tmp_path):
    """A kill inside ``atomic_dir`` leaves its hidden half checkpoint (as large as the model);
    the next save's prune removes it, and nothing that is not such a name."""
    from speechint_desktop.core.fsutil import atomic_dir

    run = tmp_path / "run"
    root = runs.checkpoints_dir(run)
    kill_mid_write(runs.step_dir(run, 4), "atomic_dir")
    (half,) = [x.name for x in root.iterdir()]
    assert half.startswith(".step-0000004.") and half.endswith(".partial")
    (root / ".step-0000002.old-4242").mkdir()  # killed between atomic_dir's two renames
    (root / "notes.partial").write_text("kept")
    with atomic_dir(runs.step_dir(run, 4)) as d:  # the resumed run saves again
        (d / "config.json").write_text("{}")
    runs.write_pointers(run, runs.step_dir(run, 4), 4, None, is_best=False)
    runs.prune(run)
    assert sorted(x.name for x in root.iterdir()) == ["latest.json", "notes.partial", "step-0000004"]


def test_metrics_are_json_without_nan_and_a_torn_line_is_skipped(tmp_path):
    w = runs.MetricsWriter(tmp_path)
    w.write(runs.metrics_record("validation", 3, wer=float("nan"), loss=1.5))
    w.close()
    with open(tmp_path / runs.METRICS_FILE, "a") as f:
        f.write('{"split": "train", "st')
    recs = runs.read_metrics(tmp_path / runs.METRICS_FILE)
    assert len(recs) == 1 and recs[0]["wer"] is None and recs[0]["loss"] == 1.5
    assert "NaN" not in (tmp_path / runs.METRICS_FILE).read_text()
    runs.truncate_metrics(tmp_path, 2)
    assert runs.read_metrics(tmp_path / runs.METRICS_FILE) == []


def test_progress_step_of_total_with_eta():
    t = runs.ProgressTracker()
    assert t.progress().text() == "step 0"
    t.add([{"split": "config", "step": 0, "time": 100.0, "total_steps": 20}])
    assert t.progress().text() == "step 0 of 20"
    t.add([{"split": "train", "step": s, "time": 100.0 + 3 * s, "loss": 1.0} for s in (1, 2, 3, 4)])
    p = t.progress()
    assert (p.step, p.total) == (4, 20) and abs(p.eta_s - 48.0) < 1e-9  # 3 s a step, 16 to go
    assert p.text() == "step 4 of 20 · about 48 s left"
    assert t.progress(now=100.0 + 12 + 10).eta_s == 38.0  # time since the last step counts
    t.add([{"split": "validation", "step": 4, "time": 200.0}, {"split": "train", "step": 20, "time": 160.0}])
    assert t.progress().text() == "step 20 of 20"
    assert runs.format_duration(3725) == "1 h 02 min" and runs.format_duration(95) == "1 min 35 s"


def test_malloc_arenas_are_capped_unless_the_user_chose(monkeypatch):
    import sys

    from speechint_desktop.core.paths import limit_malloc_arenas

    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    assert limit_malloc_arenas() is False  # the user's setting wins
    monkeypatch.delenv("MALLOC_ARENA_MAX")
    assert limit_malloc_arenas() is sys.platform.startswith("linux")
