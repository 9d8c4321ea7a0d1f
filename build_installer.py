"""Build the double-clickable SpeechInt app for the machine this runs on.

    python build_installer.py [--cuda] [--out DIR] [--work DIR] [--model NAME ...]

Steps: convert the bundled catalogue model(s) (default tiny.en) into a temporary SPEECHINT_HOME,
run PyInstaller with ``packaging/SpeechInt.spec`` (one folder, the model and its shipped
intensity head inside, so the first launch needs no network and no conversion), prune what a
CPU app never loads, print the bundle's size, then package it for the platform:

- Linux:   DIR/SpeechInt/ (run ``SpeechInt``), DIR/SpeechInt.desktop + DIR/SpeechInt.png, and
           DIR/SpeechInt-<version>-linux-x86_64.tar.gz (with ``install-desktop-entry.sh``).
           The bundle uses the system's libGL/libEGL (as every Qt app does): a bare system
           needs ``libgl1 libegl1 libfontconfig1 libxkbcommon0 libdbus-1-3``.
- Windows: DIR/SpeechInt/SpeechInt.exe (windowed, speechint.ico) and a .zip of the folder.
           Build on Windows with the CPU torch wheel; not tested here.
- macOS:   DIR/SpeechInt.app (speechint.icns, microphone usage string) and a .zip of it; sign
           and notarise separately (``codesign``/``notarytool``). Not tested here.

``--cuda`` keeps the CUDA libraries (needs a CUDA build of torch; expect a bundle of several GB).
Run it with the project's venv interpreter; activating the venv is not needed.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent
sys.path.insert(0, str(REPO))
from speechint_desktop.core.paths import APP_NAME, DEFAULT_MODEL  # noqa: E402 - standard library only

SPEC = REPO / "packaging" / "SpeechInt.spec"
APP = APP_NAME


class BuildError(Exception):
    """A one-line reason the build cannot go on."""


def version() -> str:
    namespace: dict = {}
    exec((REPO / "speechint_desktop" / "__init__.py").read_text(), namespace)
    return namespace["__version__"]


def check_toolchain(cuda: bool) -> None:
    try:
        import PyInstaller  # noqa: F401
    except ImportError as exc:
        raise BuildError(
            'PyInstaller is not installed: pip install -c scripts/constraints.txt "pyinstaller>=6.10" '
            "(or the project's [build] extra)"
        ) from exc
    probe = subprocess.run(
        [sys.executable, "-c", "import torch; print(torch.version.cuda or '')"],
        capture_output=True,
        text=True,
    )
    if probe.returncode != 0:
        tail = (probe.stderr.strip().splitlines() or ["unknown error"])[-1]
        raise BuildError(f"cannot import torch with {sys.executable}: {tail}")
    torch_cuda = probe.stdout.strip()
    if cuda and not torch_cuda:
        raise BuildError("--cuda needs a CUDA build of torch; this environment has the CPU build")
    if not cuda and torch_cuda:
        raise BuildError(
            f"torch here is a CUDA {torch_cuda} build: pass --cuda, or install the CPU wheel "
            "(pip install torch --index-url https://download.pytorch.org/whl/cpu) for a small CPU bundle"
        )


def convert_models(names: list[str], home: Path, cuda: bool = False) -> list[Path]:
    """Convert catalogue models with the project's own catalogue, into a throwaway home.

    Installing writes the CPU's int8 CTranslate2 form beside each model; a CUDA bundle also
    gets the GPU's float16 form, so a GPU's first analysis does not convert one (which needs
    torch and transformers, seconds per model)."""
    code = (
        "import os, sys\n"
        "from speechint_desktop.core import catalog, ct2\n"
        "for name in sys.argv[1:]:\n"
        "    folder = catalog.install(name)\n"
        "    if os.environ['SPEECHINT_BUILD_CUDA'] == '1':\n"
        "        ct2.write_beside(folder, 'float16')\n"
        "    print(folder, flush=True)\n"
    )
    env = {
        **os.environ,
        "SPEECHINT_HOME": str(home),
        "HF_HUB_OFFLINE": "1",
        "PYTHONPATH": str(REPO),
        "SPEECHINT_BUILD_CUDA": "1" if cuda else "0",
    }
    result = subprocess.run(
        [sys.executable, "-c", code, *names], cwd=REPO, env=env, capture_output=True, text=True
    )
    if result.returncode != 0:
        tail = (result.stderr.strip().splitlines() or ["unknown error"])[-1]
        raise BuildError(f"converting {', '.join(names)} failed: {tail}")
    paths = [Path(line) for line in result.stdout.splitlines() if line.strip()][-len(names) :]
    for name, path in zip(names, paths, strict=True):
        if not (path / "config.json").is_file():
            raise BuildError(f"{name}: converted model has no config.json at {path}")
    return paths


def run_pyinstaller(names: list[str], models: list[Path], out: Path, work: Path, cuda: bool) -> None:
    # The spec adds every folder in SPEECHINT_BUILD_MODELS as resources/models/<folder name>.
    staged = work / "models"
    shutil.rmtree(staged, ignore_errors=True)
    staged.mkdir(parents=True)
    for name, model in zip(names, models, strict=True):
        shutil.copytree(model, staged / name)
    env = {
        **os.environ,
        "SPEECHINT_BUILD_MODELS": str(staged),
        "SPEECHINT_BUILD_CUDA": "1" if cuda else "0",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_VERBOSITY": "error",
        "PYTHONPATH": str(REPO),
    }
    cmd = [sys.executable, "-m", "PyInstaller", str(SPEC), "--noconfirm", "--clean", "--log-level", "WARN"]
    cmd += ["--distpath", str(out), "--workpath", str(work / "pyinstaller")]
    result = subprocess.run(cmd, cwd=REPO, env=env)
    if result.returncode != 0:
        raise BuildError(f"PyInstaller failed (exit {result.returncode}); see its output above")


def folder_size(path: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for f in files:
            p = Path(root) / f
            if not p.is_symlink():
                total += p.stat().st_size
    return total


def package_linux(out: Path) -> list[Path]:
    bundle = out / APP
    icon_src = REPO / "resources" / "icons" / "speechint-256.png"
    template = REPO / "packaging" / "speechint.desktop.in"
    icon = out / f"{APP}.png"
    shutil.copy2(icon_src, icon)
    desktop = out / f"{APP}.desktop"  # Exec ... %F: files opened with SpeechInt join its queue
    desktop.write_text(template.read_text().replace("@EXEC@", str(bundle / APP)).replace("@ICON@", str(icon)))
    desktop.chmod(0o755)
    # Inside the archive the final paths are unknown until unpacked: a script writes the entry there.
    shutil.copy2(template, bundle / "speechint.desktop.in")
    shutil.copy2(icon_src, bundle / f"{APP}.png")
    script = bundle / "install-desktop-entry.sh"
    script.write_text(
        "#!/bin/sh\n"
        "# Adds SpeechInt to this user's application menu, pointing at this folder.\n"
        "set -e\n"
        'here="$(cd "$(dirname "$0")" && pwd)"\n'
        'apps="${XDG_DATA_HOME:-$HOME/.local/share}/applications"\n'
        'mkdir -p "$apps"\n'
        f'sed -e "s|@EXEC@|$here/{APP}|" -e "s|@ICON@|$here/{APP}.png|" '
        f'"$here/speechint.desktop.in" > "$apps/{APP}.desktop"\n'
        '# register its audio types, so "Open with SpeechInt" and double-clicking a file work\n'
        'command -v update-desktop-database >/dev/null 2>&1 && update-desktop-database "$apps" || true\n'
        f'echo "installed $apps/{APP}.desktop"\n'
    )
    script.chmod(0o755)
    machine = platform.machine().lower() or "x86_64"
    archive = out / f"{APP}-{version()}-linux-{machine}.tar.gz"
    partial = archive.with_name(archive.name + ".partial")
    with tarfile.open(partial, "w:gz", compresslevel=6) as tar:
        tar.add(bundle, arcname=APP)
    os.replace(partial, archive)
    return [desktop, icon, archive]


def package_zip(out: Path, folder: Path, label: str) -> list[Path]:
    base = out / f"{APP}-{version()}-{label}"
    return [Path(shutil.make_archive(str(base), "zip", root_dir=out, base_dir=folder.name))]


def build(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    out = Path(args.out).resolve()
    check_toolchain(args.cuda)
    with tempfile.TemporaryDirectory(prefix="speechint-build-") as tmp:
        work = Path(args.work).resolve() if args.work else Path(tmp)
        print(f"[1/3] converting {', '.join(args.model)} for the bundle ...", flush=True)
        models = convert_models(args.model, Path(tmp) / "home", args.cuda)
        print(f"[2/3] PyInstaller -> {out / APP} ({'CUDA' if args.cuda else 'CPU'} build) ...", flush=True)
        run_pyinstaller(args.model, models, out, work, args.cuda)
    print("[3/3] packaging ...", flush=True)
    products: list[Path] = []
    if sys.platform.startswith("linux"):
        products = package_linux(out)
    elif sys.platform == "win32":
        products = package_zip(out, out / APP, "windows-x64")
    elif sys.platform == "darwin":
        products = package_zip(out, out / f"{APP}.app", f"macos-{platform.machine()}")
    bundle = out / (f"{APP}.app" if sys.platform == "darwin" else APP)
    print(f"bundle: {bundle} - {folder_size(bundle) / 1e6:.0f} MB", flush=True)
    for p in products:
        extra = f" ({p.stat().st_size / 1e6:.0f} MB)" if p.name.endswith((".gz", ".zip")) else ""
        print(f"wrote {p}{extra}", flush=True)
    minutes = (time.perf_counter() - started) / 60
    print(f"built in {minutes:.1f} min; try: {bundle / APP} --self-test", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cuda", action="store_true", help="keep CUDA libraries (needs a CUDA torch)")
    parser.add_argument("--out", default=str(REPO / "dist"), help="output folder (default: ./dist)")
    parser.add_argument("--work", default=None, help="PyInstaller work folder (default: a temp folder)")
    parser.add_argument(
        "--model", action="append", default=None, help="catalogue model to bundle (default: tiny.en)"
    )
    args = parser.parse_args(argv)
    args.model = args.model or [DEFAULT_MODEL]
    try:
        return build(args)
    except BuildError as exc:
        print(f"build_installer: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
